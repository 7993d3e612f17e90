/* linebuf — the buffer is compacted only when new bytes arrive, and the newline search
 * resumes where it stopped, so many small lines and one huge line both cost linear time. */
#include "sandbox/linebuf.h"

#include <errno.h>
#include <string.h>

void linebuf_init(linebuf *lb, size_t max)
{
    memset(lb, 0, sizeof(*lb));
    lb->max = max;
}

int linebuf_feed(linebuf *lb, const char *p, size_t n)
{
    if (lb->skipping) {
        const char *nl = memchr(p, '\n', n);
        if (!nl)
            return 0;
        lb->skipping = 0;
        lb->skipped++;
        n -= (size_t)(nl + 1 - p);
        p = nl + 1;
    }
    if (lb->off) {
        strbuf_consume(&lb->buf, lb->off);
        lb->off = 0;
    }
    int rc = strbuf_append(&lb->buf, p, n);
    if (rc)
        return rc;
    if (lb->max && !memchr(lb->buf.data + lb->scanned, '\n', lb->buf.len - lb->scanned) &&
        lb->buf.len > lb->max) {
        if (!lb->skip_long)
            return -E2BIG;
        strbuf_reset(&lb->buf);
        lb->scanned = 0;
        lb->skipping = 1;
    }
    return 0;
}

int linebuf_next(linebuf *lb, char **line, size_t *len)
{
    size_t avail = lb->buf.len - lb->off;
    if (lb->scanned >= avail)
        return 0;
    char *start = lb->buf.data + lb->off;
    char *nl = memchr(start + lb->scanned, '\n', avail - lb->scanned);
    if (!nl) {
        lb->scanned = avail;
        return 0;
    }
    size_t n = (size_t)(nl - start);
    *nl = '\0';
    lb->off += n + 1;
    lb->scanned = 0;
    if (n && start[n - 1] == '\r')
        start[--n] = '\0';
    if (lb->max && n > lb->max) {
        if (!lb->skip_long)
            return -E2BIG;
        lb->skipped++;
        return linebuf_next(lb, line, len);
    }
    *line = start;
    *len = n;
    return 1;
}

size_t linebuf_pending(const linebuf *lb)
{
    return lb->buf.len - lb->off;
}

void linebuf_free(linebuf *lb)
{
    strbuf_free(&lb->buf);
    lb->off = 0;
    lb->scanned = 0;
    lb->skipping = 0;
}

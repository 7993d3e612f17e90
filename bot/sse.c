/* sse — the parser follows the "interpreting an event stream" algorithm of the WHATWG HTML
 * standard (9.2.6). Complete lines are parsed straight from the caller's chunk; only a line
 * cut by the end of a chunk is copied, so that a long stream costs one pass over its bytes.
 * A CR at the end of a chunk leaves `after_cr` set so that the LF of a CRLF split across two
 * reads does not count as a second (blank) line. */
#include "bot/sse.h"

#include <errno.h>
#include <string.h>

#define SSE_DEFAULT_MAX (1024 * 1024)

void sse_init(sse_parser *p, size_t max_event, sse_event_fn cb, void *ud)
{
    memset(p, 0, sizeof *p);
    p->cb = cb;
    p->ud = ud;
    p->max_event = max_event ? max_event : SSE_DEFAULT_MAX;
    p->retry_ms = -1;
}

void sse_reset(sse_parser *p)
{
    strbuf_reset(&p->line);
    strbuf_reset(&p->data);
    strbuf_reset(&p->event);
    strbuf_reset(&p->id);
    p->retry_ms = -1;
    p->started = 0;
    p->after_cr = 0;
    p->failed = 0;
}

void sse_free(sse_parser *p)
{
    strbuf_free(&p->line);
    strbuf_free(&p->data);
    strbuf_free(&p->event);
    strbuf_free(&p->id);
}

static int dispatch(sse_parser *p)
{
    if (p->data.len == 0) {
        strbuf_reset(&p->event);
        return 0;
    }
    /* Every data line added a "\n"; the last one is not part of the data. */
    p->data.len--;
    p->data.data[p->data.len] = '\0';
    sse_event ev = {
        .event = p->event.len ? p->event.data : "message",
        .data = p->data.data,
        .data_len = p->data.len,
        .id = strbuf_str(&p->id),
    };
    int rc = p->cb(p->ud, &ev);
    strbuf_reset(&p->data);
    strbuf_reset(&p->event);
    return rc;
}

static void set_retry(sse_parser *p, const char *v, size_t n)
{
    long ms = 0;
    if (n == 0 || n > 9)
        return;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return;
        ms = ms * 10 + (v[i] - '0');
    }
    p->retry_ms = ms;
}

static int field(sse_parser *p, const char *name, size_t nl, const char *v, size_t vl)
{
    int rc = 0;
    if (nl == 4 && memcmp(name, "data", 4) == 0) {
        if (p->data.len + vl + 1 > p->max_event)
            return -E2BIG;
        rc = strbuf_append(&p->data, v, vl);
        if (!rc)
            rc = strbuf_append(&p->data, "\n", 1);
    } else if (nl == 5 && memcmp(name, "event", 5) == 0) {
        strbuf_reset(&p->event);
        rc = strbuf_append(&p->event, v, vl);
    } else if (nl == 2 && memcmp(name, "id", 2) == 0) {
        if (!memchr(v, '\0', vl)) {
            strbuf_reset(&p->id);
            rc = strbuf_append(&p->id, v, vl);
        }
    } else if (nl == 5 && memcmp(name, "retry", 5) == 0) {
        set_retry(p, v, vl);
    }
    return rc;
}

static int process_line(sse_parser *p, const char *s, size_t n)
{
    if (!p->started) {
        p->started = 1;
        if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
            s += 3;
            n -= 3;
        }
    }
    if (n == 0)
        return dispatch(p);
    if (s[0] == ':')
        return 0;
    const char *colon = memchr(s, ':', n);
    if (!colon)
        return field(p, s, n, "", 0);
    size_t nl = (size_t)(colon - s);
    const char *v = colon + 1;
    size_t vl = n - nl - 1;
    if (vl && *v == ' ') {
        v++;
        vl--;
    }
    return field(p, s, nl, v, vl);
}

static size_t find_eol(const char *buf, size_t i, size_t len)
{
    while (i < len && buf[i] != '\n' && buf[i] != '\r')
        i++;
    return i;
}

static int hold_partial(sse_parser *p, const char *s, size_t n)
{
    if (p->line.len + n > p->max_event)
        return -E2BIG;
    return strbuf_append(&p->line, s, n);
}

static int take_line(sse_parser *p, const char *s, size_t n)
{
    if (p->line.len == 0)
        return process_line(p, s, n);
    int rc = hold_partial(p, s, n);
    if (!rc)
        rc = process_line(p, p->line.data, p->line.len);
    strbuf_reset(&p->line);
    return rc;
}

int sse_feed(sse_parser *p, const char *buf, size_t len)
{
    if (p->failed)
        return -EINVAL;
    size_t i = 0;
    if (p->after_cr && len > 0) {
        p->after_cr = 0;
        if (buf[0] == '\n')
            i = 1;
    }
    int rc = 0;
    while (i < len && !rc) {
        size_t j = find_eol(buf, i, len);
        if (j == len) {
            rc = hold_partial(p, buf + i, len - i);
            break;
        }
        rc = take_line(p, buf + i, j - i);
        if (buf[j] == '\r') {
            if (j + 1 == len)
                p->after_cr = 1;
            else if (buf[j + 1] == '\n')
                j++;
        }
        i = j + 1;
    }
    if (rc)
        p->failed = 1;
    return rc;
}

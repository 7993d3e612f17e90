// fuzz-sources: sandbox/outcap.c sandbox/linebuf.c common/utf8.c common/strbuf.c
/* Fuzzes the output path of sandboxd: arbitrary bytes on two streams, cut into reads at
 * arbitrary places, through outcap (UTF-8 repair, cap, tail), and the same bytes through
 * linebuf. Invariants: every emitted chunk is valid UTF-8 without NUL, nothing is emitted
 * beyond cap + marker + tail, and linebuf gives back exactly the newline-separated lines. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "sandbox/linebuf.h"
#include "sandbox/outcap.h"

static size_t emitted;

static void check_chunk(void *ud, int stream, const char *text, size_t len)
{
    if (stream != 1 && stream != 2)
        abort();
    if (memchr(text, '\0', len))
        abort();
    strbuf fixed = {0};
    if (utf8_sanitize(&fixed, text, len) == 0 &&
        (fixed.len != len || memcmp(fixed.data, text, len)))
        abort();
    strbuf_free(&fixed);
    emitted += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t cap = data[0] * 16u;
    outcap oc;
    outcap_init(&oc, cap, check_chunk, NULL);
    emitted = 0;
    linebuf lb;
    linebuf_init(&lb, 64);
    strbuf lines = {0};
    size_t i = 1;
    while (i < size) {
        size_t n = 1 + data[i] % 32;
        int stream = (data[i] & 0x80) ? 2 : 1;
        i++;
        if (n > size - i)
            n = size - i;
        outcap_feed(&oc, stream, (const char *)data + i, n);
        if (linebuf_feed(&lb, (const char *)data + i, n) == 0) {
            char *line;
            size_t len;
            while (linebuf_next(&lb, &line, &len) == 1) {
                if (len > 64 || memchr(line, '\n', len))
                    abort();
                strbuf_append(&lines, line, len);
            }
        }
        i += n;
    }
    outcap_finish(&oc);
    if (emitted > cap + 64 + OUTCAP_TAIL + 4 * 8)
        abort();
    outcap_free(&oc);
    linebuf_free(&lb);
    strbuf_free(&lines);
    return 0;
}

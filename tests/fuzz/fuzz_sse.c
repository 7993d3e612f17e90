// fuzz-sources: bot/sse.c common/strbuf.c
/* fuzz_sse — feeds arbitrary bytes to the SSE parser, split at positions taken from the
 * input itself, and checks that the events do not depend on how the stream was split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bot/sse.h"
#include "common/strbuf.h"

static int record(void *ud, const sse_event *ev)
{
    strbuf *log = ud;
    if (strlen(ev->data) > ev->data_len)
        abort();
    strbuf_printf(log, "%s\x01%s\x01", ev->event, ev->id);
    strbuf_append(log, ev->data, ev->data_len);
    strbuf_append(log, "\x02", 1);
    return 0;
}

static int run(const uint8_t *data, size_t size, size_t step, strbuf *log)
{
    sse_parser p;
    sse_init(&p, 4096, record, log);
    int rc = 0;
    for (size_t i = 0; i < size && !rc; i += step)
        rc = sse_feed(&p, (const char *)data + i, i + step > size ? size - i : step);
    sse_free(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    strbuf whole = {0}, pieces = {0};
    int a = run(data + 1, size - 1, size, &whole);
    int b = run(data + 1, size - 1, step, &pieces);
    /* The size guard may trip at different places, but a clean run must agree. */
    if (a == 0 && b == 0 &&
        (whole.len != pieces.len ||
         memcmp(strbuf_str(&whole), strbuf_str(&pieces), whole.len) != 0))
        abort();
    strbuf_free(&whole);
    strbuf_free(&pieces);
    return 0;
}

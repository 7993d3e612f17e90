// fuzz-sources: bot/render.c common/strbuf.c common/utf8.c
/* fuzz_render — drives a render with arbitrary inputs and checks the promises of render.h:
 * the text always fits both limits and is valid UTF-8 without NUL or stray controls.
 *
 * Input layout: 2 bytes max_chars, 2 bytes max_bytes, then commands: an opcode byte and a
 * length byte followed by that many bytes of argument. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bot/render.h"
#include "common/strbuf.h"
#include "common/utf8.h"

static char *cstr(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void check(render *r, size_t mc, size_t mb, uint64_t now)
{
    char *t = render_text(r, now);
    if (!t)
        abort();
    size_t n = strlen(t);
    if (utf8_count(t, n) > mc || (mb && n > mb))
        abort();
    strbuf b = {0};
    if (utf8_sanitize(&b, t, n) != 0 || strcmp(strbuf_str(&b), t) != 0)
        abort();
    strbuf_free(&b);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] < 0x20 && t[i] != '\n' && t[i] != '\t')
            abort();
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t mc = 1 + (((size_t)data[0] << 8 | data[1]) % 4000);
    size_t mb = ((size_t)data[2] << 8 | data[3]) % 9000;
    render *r = render_new(mc, mb, 3);
    if (!r)
        return 0;
    uint64_t now = 0;
    size_t i = 4;
    while (i + 2 <= size) {
        uint8_t op = data[i], len = data[i + 1];
        i += 2;
        if (len > size - i)
            len = (uint8_t)(size - i);
        const uint8_t *arg = data + i;
        i += len;
        char *s = cstr(arg, len);
        now += op;
        switch (op % 8) {
        case 0:
        case 1:
            render_output(r, 1 + op % 2, (const char *)arg, len);
            break;
        case 2:
            render_code(r, len ? s + len / 2 : NULL, s);
            break;
        case 3:
            render_phase(r, (enum render_phase)(op / 8 % 6), len ? s : NULL, now);
            break;
        case 4:
            render_error(r, s, s + len / 2);
            break;
        case 5:
            render_note(r, s);
            break;
        case 6:
            render_attempt(r, 1 + op / 8 % 4);
            break;
        case 7:
            /* a big repeated chunk, to reach the cutting paths */
            for (int k = 0; k < 64; k++)
                render_output(r, 1 + k % 2, (const char *)arg, len);
            break;
        }
        free(s);
        check(r, mc, mb, now);
    }
    render_free(r);
    return 0;
}

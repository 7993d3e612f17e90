/* utf8 — validation by the table in RFC 3629 section 4 (no overlongs, no surrogates,
 * nothing above U+10FFFF). */
#include "common/utf8.h"

#include <stdint.h>

/* Length of the valid sequence starting at S (at most N bytes available); 0 if invalid,
 * -1 if valid so far but incomplete. */
static int seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    int len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n)
            return -1;
        unsigned d = s[i];
        if (i == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF))
            return 0;
    }
    return len;
}

size_t utf8_complete_prefix(const char *s, size_t n)
{
    size_t start = n > 3 ? n - 3 : 0;
    for (size_t i = start; i < n; i++) {
        const unsigned char *p = (const unsigned char *)s + i;
        if ((*p & 0xC0) == 0x80)
            continue;
        if (seq_len(p, n - i) == -1)
            return i;
    }
    return n;
}

int utf8_sanitize(strbuf *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n) {
        int l = seq_len(p + i, n - i);
        if (l > 0 && p[i] != 0) {
            i += (size_t)l;
            continue;
        }
        int rc = strbuf_append(out, s + run, i - run);
        if (rc == 0 && p[i] != 0)
            rc = strbuf_append(out, "\xEF\xBF\xBD", 3);
        if (rc)
            return rc;
        i++;
        run = i;
    }
    return strbuf_append(out, s + run, n - run);
}

size_t utf8_truncate(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t i = max;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

size_t utf8_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

/* utf8 — keeps text that reaches JSON, a terminal or a chat message valid UTF-8.
 *
 * Program output is arbitrary bytes: invalid sequences become U+FFFD, and a sequence cut
 * at the end of a read is held back until the next read completes it. Pure functions. */
#ifndef CODEBOT_UTF8_H
#define CODEBOT_UTF8_H
#include <stddef.h>

#include "common/strbuf.h"

/* Length of the longest prefix of S[0..N) that does not end inside an incomplete (but so
 * far valid) multi-byte sequence: the rest should wait for more bytes. */
size_t utf8_complete_prefix(const char *s, size_t n);
/* Appends S[0..N) to OUT with each invalid byte replaced by U+FFFD and NUL bytes dropped.
 * Returns 0 or -ENOMEM. */
int utf8_sanitize(strbuf *out, const char *s, size_t n);
/* Length of the longest prefix of S[0..N) (valid UTF-8) that is at most MAX bytes and does
 * not split a character. */
size_t utf8_truncate(const char *s, size_t n, size_t max);
/* Number of code points in the valid UTF-8 text S[0..N). */
size_t utf8_count(const char *s, size_t n);

#endif

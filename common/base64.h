/* base64 — RFC 4648 decoding and encoding, for files and figures that travel in JSON.
 * Pure functions; the caller owns OUT. */
#ifndef CODEBOT_BASE64_H
#define CODEBOT_BASE64_H
#include <stddef.h>

#include "common/strbuf.h"

/* Appends the bytes S[0..N) encodes; white space is skipped. -EINVAL on a bad character or
 * length, -ENOMEM. */
int base64_decode(strbuf *out, const char *s, size_t n);
int base64_encode(strbuf *out, const void *data, size_t n);

#endif

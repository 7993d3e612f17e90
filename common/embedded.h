/* embedded — files compiled into the binary (scripts/embed.py writes the table).
 *
 * The sandbox kernels (the files in sandbox/kernel/) travel inside build/codebot, so that
 * sandboxd writes them into each jail without an install path. The data is static and
 * NUL-terminated; the caller never frees it. */
#ifndef CODEBOT_EMBEDDED_H
#define CODEBOT_EMBEDDED_H
#include <stddef.h>

/* The contents of the file whose base name is NAME, or NULL. LEN gets its size. */
const unsigned char *embedded_get(const char *name, size_t *len);

#endif

/* strbuf — a growable byte buffer, always NUL-terminated.
 *
 * Owned by whoever declared it; zero-initialise (`strbuf b = {0};`) and release with
 * strbuf_free(). Appends return 0 or -ENOMEM and leave the buffer intact on failure. */
#ifndef CODEBOT_STRBUF_H
#define CODEBOT_STRBUF_H
#include <stdarg.h>
#include <stddef.h>

typedef struct strbuf {
    char *data; /* NULL until the first append; then NUL-terminated */
    size_t len;
    size_t cap;
} strbuf;

int strbuf_append(strbuf *b, const void *p, size_t n);
int strbuf_puts(strbuf *b, const char *s);
int strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strbuf_vprintf(strbuf *b, const char *fmt, va_list ap);
/* Drops the first N bytes (N > len drops everything). */
void strbuf_consume(strbuf *b, size_t n);
void strbuf_reset(strbuf *b);
/* Hands the data to the caller (never NULL: "" when empty) and empties B. NULL on ENOMEM. */
char *strbuf_steal(strbuf *b);
void strbuf_free(strbuf *b);
/* The text, "" while empty. */
const char *strbuf_str(const strbuf *b);

#endif

/* linebuf — splits a byte stream into newline-terminated lines, tolerant of partial reads.
 *
 * Used by sandboxd (client requests, kernel ctl lines) and the sandbox client (answers and
 * events). Pure, no loop. The owner zero-initialises or calls linebuf_init(), feeds every
 * read, takes complete lines with linebuf_next(), and frees with linebuf_free(). A line
 * returned by linebuf_next() lives until the next linebuf_feed()/linebuf_free(). */
#ifndef CODEBOT_LINEBUF_H
#define CODEBOT_LINEBUF_H
#include <stddef.h>

#include "common/strbuf.h"

typedef struct linebuf {
    strbuf buf;
    size_t off;     /* start of the first line not yet returned */
    size_t scanned; /* bytes from off known to hold no newline */
    size_t max;     /* longest line allowed, without its newline */
    int skip_long;  /* set by the owner: drop longer lines instead of failing */
    int skipping;   /* inside a line being dropped */
    size_t skipped; /* lines dropped so far */
} linebuf;

void linebuf_init(linebuf *lb, size_t max);
/* Appends N bytes. -E2BIG when an unterminated line grows beyond max (the buffer is then
 * useless: the stream is out of sync) unless skip_long is set: then that line is dropped up
 * to its newline and counted in `skipped`. -ENOMEM. */
int linebuf_feed(linebuf *lb, const char *p, size_t n);
/* The next complete line without its "\n" (and without a "\r" before it), NUL-terminated.
 * Returns 1 with *LINE and *LEN set, 0 when no complete line is buffered, -E2BIG when the
 * line is longer than max (with skip_long, such lines are counted and passed over). */
int linebuf_next(linebuf *lb, char **line, size_t *len);
/* Bytes buffered that do not yet form a complete line. */
size_t linebuf_pending(const linebuf *lb);
void linebuf_free(linebuf *lb);

#endif

/* sse — a push parser for text/event-stream (the WHATWG "server-sent events" wire format).
 *
 * Feed it the bytes of a response in chunks of any size, as they arrive; it calls back once
 * per complete event. Lines may be split anywhere across chunks and end in CRLF, LF or CR;
 * a UTF-8 BOM at the very start is dropped; `:` lines are comments; `data:` lines join with
 * "\n"; a field without a colon is a field with an empty value; an event with no data is
 * not dispatched (as in browsers). Pure code, no I/O: usable on any loop or none.
 *
 * The parser is owned by whoever declared it (zero-initialise, then sse_init, and release
 * with sse_free). The event handed to the callback lives only during the callback. */
#ifndef CODEBOT_SSE_H
#define CODEBOT_SSE_H
#include <stddef.h>

#include "common/strbuf.h"

typedef struct sse_event {
    const char *event; /* the `event:` field, "message" when the event named none */
    const char *data;  /* the `data:` lines joined by "\n", NUL-terminated */
    size_t data_len;
    const char *id; /* the last event id seen on this stream, "" when none */
} sse_event;

/* Returns 0 to go on; anything else stops sse_feed, which then returns that value. */
typedef int (*sse_event_fn)(void *ud, const sse_event *ev);

typedef struct sse_parser {
    sse_event_fn cb;
    void *ud;
    size_t max_event; /* bytes one event (or one line) may take before sse_feed fails */
    strbuf line;      /* the current line, not yet terminated */
    strbuf data;
    strbuf event;
    strbuf id;
    long retry_ms; /* the last valid `retry:` value, -1 while none */
    int started;   /* past the position where a BOM may appear */
    int after_cr;  /* the previous chunk ended with CR: a leading LF belongs to it */
    int failed;    /* a fatal error happened; sse_feed refuses more */
} sse_parser;

/* MAX_EVENT 0 means 1 MiB. */
void sse_init(sse_parser *p, size_t max_event, sse_event_fn cb, void *ud);
/* Parses BUF[0..LEN). Returns 0, -E2BIG when an event or line grows past max_event,
 * -ENOMEM, or the callback's non-zero value. After an error the parser stays failed. */
int sse_feed(sse_parser *p, const char *buf, size_t len);
/* The stream ended: per the standard, an event without its blank line is dropped. Resets
 * the parser for a new stream (keeping callback and limit). */
void sse_reset(sse_parser *p);
void sse_free(sse_parser *p);

#endif

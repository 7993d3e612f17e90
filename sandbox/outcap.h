/* outcap — turns a run's raw stdout/stderr bytes into valid UTF-8 chunks and applies the
 * per-run output cap.
 *
 * Used by sandboxd for each run. Pure, no loop. A sequence cut at the end of a read is held
 * back until the next read of that stream; invalid bytes become U+FFFD. The first CAP bytes
 * of text are emitted as they arrive; after that nothing is emitted until outcap_finish(),
 * which emits a "[... N bytes dropped ...]" marker (when anything was dropped) and then the
 * last OUTCAP_TAIL bytes, so that the end of a flood (the final error, the summary) is kept.
 * Text handed to the emit callback lives only during the call. */
#ifndef CODEBOT_OUTCAP_H
#define CODEBOT_OUTCAP_H
#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"

#define OUTCAP_TAIL (64 * 1024)

/* STREAM is 1 (stdout) or 2 (stderr). */
typedef void (*outcap_emit_fn)(void *ud, int stream, const char *text, size_t len);

typedef struct outcap_seg {
    int stream;
    strbuf text;
} outcap_seg;

typedef struct outcap {
    size_t cap;
    uint64_t emitted; /* text bytes emitted while under the cap */
    uint64_t dropped; /* text bytes neither emitted nor kept in the tail */
    strbuf hold[2];   /* per stream: an incomplete UTF-8 sequence from the last read */
    char last[2];     /* per stream: the last byte emitted, to start the marker on a line */
    outcap_seg *segs; /* the tail, oldest first, adjacent segments of different streams */
    size_t nsegs, tail_len;
    outcap_emit_fn emit;
    void *ud;
} outcap;

void outcap_init(outcap *oc, size_t cap, outcap_emit_fn emit, void *ud);
/* Feeds N raw bytes read from STREAM. Returns 0 or -ENOMEM. */
int outcap_feed(outcap *oc, int stream, const char *p, size_t n);
/* Flushes held-back bytes and the tail. Returns 0 or -ENOMEM. */
int outcap_finish(outcap *oc);
void outcap_free(outcap *oc);

#endif

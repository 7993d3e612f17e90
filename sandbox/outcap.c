/* outcap — the tail is a short list of per-stream segments; trimming from its front keeps it
 * at OUTCAP_TAIL bytes and never splits a character (continuation bytes at the new front are
 * dropped too, and counted). */
#include "sandbox/outcap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

void outcap_init(outcap *oc, size_t cap, outcap_emit_fn emit, void *ud)
{
    memset(oc, 0, sizeof(*oc));
    oc->cap = cap;
    oc->emit = emit;
    oc->ud = ud;
    oc->last[0] = oc->last[1] = '\n';
}

static void emit_text(outcap *oc, int stream, const char *s, size_t n)
{
    if (!n)
        return;
    oc->last[stream - 1] = s[n - 1];
    oc->emit(oc->ud, stream, s, n);
}

static void trim_tail(outcap *oc)
{
    while (oc->tail_len > OUTCAP_TAIL && oc->nsegs) {
        outcap_seg *first = &oc->segs[0];
        size_t cut = oc->tail_len - OUTCAP_TAIL;
        if (cut < first->text.len) {
            while (cut < first->text.len && ((unsigned char)first->text.data[cut] & 0xC0) == 0x80)
                cut++;
        }
        if (cut >= first->text.len) {
            cut = first->text.len;
            strbuf_free(&first->text);
            memmove(oc->segs, oc->segs + 1, (oc->nsegs - 1) * sizeof(*oc->segs));
            oc->nsegs--;
        } else {
            strbuf_consume(&first->text, cut);
        }
        oc->tail_len -= cut;
        oc->dropped += cut;
    }
}

static int keep_tail(outcap *oc, int stream, const char *s, size_t n)
{
    if (!n)
        return 0;
    outcap_seg *last = oc->nsegs ? &oc->segs[oc->nsegs - 1] : NULL;
    if (!last || last->stream != stream) {
        outcap_seg *segs = realloc(oc->segs, (oc->nsegs + 1) * sizeof(*segs));
        if (!segs)
            return -ENOMEM;
        oc->segs = segs;
        last = &segs[oc->nsegs++];
        memset(last, 0, sizeof(*last));
        last->stream = stream;
    }
    int rc = strbuf_append(&last->text, s, n);
    if (rc)
        return rc;
    oc->tail_len += n;
    trim_tail(oc);
    return 0;
}

/* S is valid UTF-8: emitted up to the cap, the rest goes to the tail. */
static int route(outcap *oc, int stream, const char *s, size_t n)
{
    size_t room = oc->emitted < oc->cap ? oc->cap - (size_t)oc->emitted : 0;
    size_t head = n <= room ? n : utf8_truncate(s, n, room);
    emit_text(oc, stream, s, head);
    oc->emitted += head;
    return keep_tail(oc, stream, s + head, n - head);
}

int outcap_feed(outcap *oc, int stream, const char *p, size_t n)
{
    strbuf *hold = &oc->hold[stream - 1];
    const char *data = p;
    size_t len = n;
    strbuf joined = {0};
    if (hold->len) {
        if (strbuf_append(&joined, hold->data, hold->len) || strbuf_append(&joined, p, n)) {
            strbuf_free(&joined);
            return -ENOMEM;
        }
        data = joined.data;
        len = joined.len;
    }
    size_t done = utf8_complete_prefix(data, len);
    strbuf text = {0};
    int rc = utf8_sanitize(&text, data, done);
    if (rc == 0)
        rc = route(oc, stream, strbuf_str(&text), text.len);
    if (rc == 0) {
        strbuf rest = {0};
        rc = strbuf_append(&rest, data + done, len - done);
        strbuf_free(hold);
        *hold = rest;
    }
    strbuf_free(&text);
    strbuf_free(&joined);
    return rc;
}

int outcap_finish(outcap *oc)
{
    for (int i = 0; i < 2; i++) {
        if (!oc->hold[i].len)
            continue;
        strbuf text = {0};
        int rc = utf8_sanitize(&text, oc->hold[i].data, oc->hold[i].len);
        strbuf_free(&oc->hold[i]);
        if (rc == 0)
            rc = route(oc, i + 1, strbuf_str(&text), text.len);
        strbuf_free(&text);
        if (rc)
            return rc;
    }
    if (!oc->nsegs)
        return 0;
    if (oc->dropped) {
        int stream = oc->segs[0].stream;
        char marker[80];
        int m = snprintf(marker, sizeof(marker), "%s[... %llu bytes dropped ...]\n",
                         oc->last[stream - 1] == '\n' ? "" : "\n", (unsigned long long)oc->dropped);
        emit_text(oc, stream, marker, (size_t)m);
    }
    for (size_t i = 0; i < oc->nsegs; i++)
        emit_text(oc, oc->segs[i].stream, oc->segs[i].text.data, oc->segs[i].text.len);
    for (size_t i = 0; i < oc->nsegs; i++)
        strbuf_free(&oc->segs[i].text);
    oc->nsegs = 0;
    oc->tail_len = 0;
    return 0;
}

void outcap_free(outcap *oc)
{
    for (int i = 0; i < 2; i++)
        strbuf_free(&oc->hold[i]);
    for (size_t i = 0; i < oc->nsegs; i++)
        strbuf_free(&oc->segs[i].text);
    free(oc->segs);
    oc->segs = NULL;
    oc->nsegs = 0;
    oc->tail_len = 0;
}

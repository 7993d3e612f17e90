/* render — the live message's text. Inputs are cleaned once, when they arrive: single-line
 * fields (detail, error, notes, summaries) become one safe line; code becomes safe lines;
 * output is fed through a per-stream filter (UTF-8 reassembly across calls, ANSI escape
 * stripping, \r overwrite) into a ring of finished lines that keeps only what a message of
 * max_chars / max_bytes could ever show, plus a count of the lines it let go. Backtick runs
 * get a zero-width space after every second backtick so that no "```" survives inside a
 * fence (Discord and Slack close a block at the first ``` anywhere, so a longer fence would
 * not help). render_text() lays the message out at the most generous "level" that fits:
 * the status, error and notes first, then the code (head and tail when it alone is too big),
 * then as many of the newest output lines as the rest allows. Levels shorten one-line fields
 * and drop summaries, notes and code when even the fixed parts do not fit; a last resort cuts
 * the text at a character boundary, so the limit holds for any max_chars >= 1. */
#include "bot/render.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "common/utf8.h"

#define ZWSP "\xE2\x80\x8B"
#define ELLIPSIS "\xE2\x80\xA6"
#define STDERR_MARK "\xE2\x9A\xA0\xEF\xB8\x8F " /* "⚠️ " */
#define MAX_NOTES 16
#define MAX_SUMMARIES 16
#define LINE_KEEP 1000 /* code points kept of a one-line field (shown: at most 300) */
#define ESC_MAX 256    /* an escape sequence longer than this is not one */

typedef struct cost {
    size_t c, b; /* code points, bytes */
} cost;

typedef struct oline {
    char *s;
    size_t len, chars;
    int stream; /* 1 stdout, 2 stderr */
    int cut;    /* longer than could ever be shown: rendered with a trailing … */
} oline;

enum esc_state { ESC_NONE, ESC_START, ESC_INTER, ESC_CSI, ESC_OSC };

/* Per-stream decoder state: bytes of a UTF-8 sequence cut by the end of a read, and where
 * we are in an escape sequence. */
typedef struct filter {
    char pend[4];
    size_t npend;
    enum esc_state esc;
    size_t esc_len;
} filter;

struct render {
    size_t max_chars, max_bytes;
    int max_attempts, attempt;

    char *summaries[MAX_SUMMARIES]; /* one cleaned line per earlier attempt */
    int n_summaries, summaries_dropped;

    char *lang;
    strbuf code; /* cleaned display code, no trailing newline */

    enum render_phase phase;
    char *detail;
    uint64_t phase_ms, run_ms, done_dur_ms;
    int ran, have_dur;

    char *err; /* cleaned "Name: value" */
    char *notes[MAX_NOTES];
    int n_notes, notes_dropped;

    /* output: finished lines, oldest first, in a ring */
    oline *ring;
    size_t rcap, rhead, rn;
    size_t keep_c, keep_b;
    unsigned long long dropped;
    /* the line being written */
    strbuf open;
    size_t open_chars;
    int open_stream, open_cut, open_ticks, open_cr;
    filter f[2];
};

typedef struct level {
    size_t cap;    /* one-line fields are cut to this many code points */
    int summaries; /* show earlier attempts */
    int notes;     /* how many notes (the newest) */
    int code;      /* show the code */
} level;

static const level levels[] = {
    {300, 1, MAX_NOTES, 1},
    {100, 1, MAX_NOTES, 1},
    {50, 0, 2, 1},
    {30, 0, 0, 0},
};

/* ---- small helpers ---- */

static cost measure(const char *s, size_t n)
{
    return (cost){utf8_count(s, n), n};
}

static cost cost_add(cost a, cost b)
{
    return (cost){a.c + b.c, a.b + b.b};
}

static int fits(cost have, cost need)
{
    return need.c <= have.c && need.b <= have.b;
}

static cost cost_sub(cost a, cost b)
{
    return (cost){a.c > b.c ? a.c - b.c : 0, a.b > b.b ? a.b - b.b : 0};
}

static cost scost(const char *s)
{
    return measure(s, strlen(s));
}

/* Byte length of the longest prefix of valid S[0..N) with at most MAX.c code points and
 * MAX.b bytes. */
static size_t prefix_fit(const char *s, size_t n, cost max)
{
    size_t i = utf8_truncate(s, n, max.b), c = 0, j = 0;
    while (j < i) {
        size_t k = j + 1;
        while (k < i && ((unsigned char)s[k] & 0xC0) == 0x80)
            k++;
        if (++c > max.c)
            break;
        j = k;
    }
    return j;
}

static size_t seq_bytes(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

static unsigned decode(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    if (n == 1)
        return u[0];
    unsigned cp = u[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (u[i] & 0x3F);
    return cp;
}

static int is_dropped_control(unsigned cp)
{
    return (cp < 0x20 && cp != '\t') || cp == 0x7F || (cp >= 0x80 && cp < 0xA0);
}

/* Appends one code point, breaking backtick runs: *TICKS counts the run so far. */
static void put_cp(strbuf *b, const char *p, size_t n, int *ticks, size_t *chars)
{
    if (n == 1 && *p == '`') {
        if (*ticks == 2) {
            strbuf_append(b, ZWSP, 3);
            *ticks = 0;
            (*chars)++;
        }
        (*ticks)++;
    } else {
        *ticks = 0;
    }
    strbuf_append(b, p, n);
    (*chars)++;
}

/* One safe line: valid UTF-8, controls and line breaks as spaces, backtick runs broken. */
static char *clean_line(const char *s)
{
    strbuf raw = {0}, out = {0};
    if (!s)
        s = "";
    utf8_sanitize(&raw, s, strlen(s));
    const char *p = strbuf_str(&raw);
    int ticks = 0;
    size_t chars = 0;
    for (size_t i = 0; i < raw.len;) {
        size_t n = seq_bytes((unsigned char)p[i]);
        unsigned cp = decode(p + i, n);
        if (chars >= LINE_KEEP) {
            /* more than any layout shows: keep a bounded copy */
            strbuf_puts(&out, ELLIPSIS);
            break;
        }
        if (cp == '\n' || cp == '\r' || cp == '\t')
            put_cp(&out, " ", 1, &ticks, &chars);
        else if (!is_dropped_control(cp))
            put_cp(&out, p + i, n, &ticks, &chars);
        i += n;
    }
    strbuf_free(&raw);
    return strbuf_steal(&out);
}

/* Code for display: valid UTF-8, CRLF and lone CR as line breaks, other controls but tab
 * dropped, backtick runs broken, trailing newlines trimmed. */
static void clean_code(strbuf *out, const char *s)
{
    strbuf raw = {0};
    utf8_sanitize(&raw, s, strlen(s));
    const char *p = strbuf_str(&raw);
    int ticks = 0;
    size_t chars = 0;
    for (size_t i = 0; i < raw.len;) {
        size_t n = seq_bytes((unsigned char)p[i]);
        unsigned cp = decode(p + i, n);
        if (cp == '\r' && i + 1 < raw.len && p[i + 1] == '\n') {
            i++;
            continue;
        }
        if (cp == '\n' || cp == '\r') {
            strbuf_append(out, "\n", 1);
            ticks = 0;
        } else if (!is_dropped_control(cp)) {
            put_cp(out, p + i, n, &ticks, &chars);
        }
        i += n;
    }
    while (out->len && out->data[out->len - 1] == '\n')
        out->data[--out->len] = '\0';
    strbuf_free(&raw);
}

/* Fence info strings are one word: keep what Discord accepts there. */
static char *clean_lang(const char *lang)
{
    strbuf b = {0};
    for (const char *p = lang ? lang : ""; *p && b.len < 24; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("_+-.#", *p))
            strbuf_append(&b, p, 1);
    return strbuf_steal(&b);
}

static void set_str(char **dst, char *s)
{
    free(*dst);
    *dst = s;
}

/* ---- output ---- */

static cost line_cost(const oline *l)
{
    cost k = {l->chars + 1, l->len + 1};
    if (l->stream == 2)
        k = cost_add(k, scost(STDERR_MARK));
    if (l->cut)
        k = cost_add(k, (cost){1, 3});
    return k;
}

static oline *ring_at(render *r, size_t i)
{
    return &r->ring[(r->rhead + i) % r->rcap];
}

/* Lets go of the oldest lines once the newer ones alone fill a whole message. */
static void ring_trim(render *r)
{
    while (r->rn > 1) {
        cost k = line_cost(ring_at(r, 0));
        size_t rest_c = r->keep_c - k.c, rest_b = r->keep_b - k.b;
        if (rest_c < r->max_chars && (!r->max_bytes || rest_b < r->max_bytes))
            break;
        free(ring_at(r, 0)->s);
        r->keep_c -= k.c;
        r->keep_b -= k.b;
        r->rhead = (r->rhead + 1) % r->rcap;
        r->rn--;
        r->dropped++;
    }
}

static int ring_push(render *r, oline l)
{
    if (r->rn == r->rcap) {
        size_t ncap = r->rcap ? r->rcap * 2 : 64;
        oline *v = malloc(ncap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        for (size_t i = 0; i < r->rn; i++)
            v[i] = *ring_at(r, i);
        free(r->ring);
        r->ring = v;
        r->rcap = ncap;
        r->rhead = 0;
    }
    r->ring[(r->rhead + r->rn) % r->rcap] = l;
    r->rn++;
    cost k = line_cost(&l);
    r->keep_c += k.c;
    r->keep_b += k.b;
    ring_trim(r);
    return 0;
}

static void open_clear(render *r)
{
    strbuf_reset(&r->open);
    r->open_chars = 0;
    r->open_cut = r->open_ticks = r->open_cr = 0;
}

static void open_commit(render *r)
{
    oline l = {NULL, r->open.len, r->open_chars, r->open_stream, r->open_cut};
    l.s = strbuf_steal(&r->open);
    if (!l.s || ring_push(r, l) != 0) {
        free(l.s);
        r->dropped++;
    }
    open_clear(r);
}

/* Escape sequences (colours, cursor moves, titles) are dropped. Returns 1 when CP was eaten;
 * 0 when CP must be handled as text (state is back to none). */
static int esc_step(filter *f, unsigned cp)
{
    switch (f->esc) {
    case ESC_NONE:
        if (cp != 0x1B)
            return 0;
        f->esc = ESC_START;
        f->esc_len = 0;
        return 1;
    case ESC_START:
    case ESC_INTER: /* ESC, intermediates 0x20-0x2F, a final byte (e.g. ESC ( B) */
        if (cp < 0x20 && cp != 0x1B) {
            f->esc = ESC_NONE;
            return 0;
        }
        if (f->esc == ESC_START && (cp == '[' || cp == ']'))
            f->esc = cp == '[' ? ESC_CSI : ESC_OSC;
        else if (cp >= 0x20 && cp <= 0x2F && ++f->esc_len < ESC_MAX)
            f->esc = ESC_INTER;
        else
            f->esc = cp == 0x1B ? ESC_START : ESC_NONE;
        return 1;
    case ESC_CSI:
        if (cp >= 0x40 && cp <= 0x7E) {
            f->esc = ESC_NONE;
            return 1;
        }
        if (cp >= 0x20 && cp <= 0x3F && ++f->esc_len < ESC_MAX)
            return 1;
        f->esc = ESC_NONE;
        return 0;
    case ESC_OSC:
        if (cp == 0x07) {
            f->esc = ESC_NONE;
            return 1;
        }
        if (cp == 0x1B) {
            f->esc = ESC_START;
            return 1;
        }
        if (cp != '\n' && ++f->esc_len < ESC_MAX)
            return 1;
        f->esc = ESC_NONE;
        return 0;
    }
    return 0;
}

static void out_cp(render *r, int stream, const char *p, size_t n)
{
    unsigned cp = decode(p, n);
    if (esc_step(&r->f[stream - 1], cp))
        return;
    if (cp != '\n' && cp != '\r' && is_dropped_control(cp))
        return;
    if (r->open_stream != stream) {
        /* the other stream's unfinished line ends where this stream cuts in */
        if (r->open.len)
            open_commit(r);
        else
            open_clear(r);
        r->open_stream = stream;
    }
    if (cp == '\n') {
        open_commit(r);
        return;
    }
    if (cp == '\r') {
        r->open_cr = 1;
        return;
    }
    if (r->open_cr)
        open_clear(r); /* a bare \r rewinds the line: progress bars redraw in place */
    if (r->open_cut)
        return;
    size_t extra = n + (cp == '`' && r->open_ticks == 2 ? 3 : 0);
    size_t xc = 1 + (extra > n);
    if (r->open_chars + xc > r->max_chars || (r->max_bytes && r->open.len + extra > r->max_bytes)) {
        r->open_cut = 1;
        return;
    }
    put_cp(&r->open, p, n, &r->open_ticks, &r->open_chars);
}

/* Feeds DATA (complete UTF-8 sequences only) through the filter, a block at a time. */
static void out_feed(render *r, int stream, const char *data, size_t len)
{
    size_t ascii = 0;
    while (ascii < len && data[ascii] > 0)
        ascii++;
    if (ascii == len) {
        /* the common case needs no cleaning copy */
        for (size_t i = 0; i < len; i++)
            out_cp(r, stream, data + i, 1);
        return;
    }
    strbuf clean = {0};
    if (utf8_sanitize(&clean, data, len) != 0)
        return;
    const char *p = strbuf_str(&clean);
    for (size_t i = 0; i < clean.len;) {
        size_t n = seq_bytes((unsigned char)p[i]);
        out_cp(r, stream, p + i, n);
        i += n;
    }
    strbuf_free(&clean);
}

/* Completes a sequence the previous read cut, with at most 3 bytes of DATA; returns how
 * many bytes of DATA it used. */
static size_t finish_pending(render *r, int stream, const char *data, size_t len)
{
    filter *f = &r->f[stream - 1];
    char tmp[8];
    size_t np = f->npend, m = np, p = 0;
    memcpy(tmp, f->pend, np);
    for (size_t used = 1; used <= len && used <= 3; used++) {
        tmp[m++] = data[used - 1];
        p = utf8_complete_prefix(tmp, m);
        if (p >= np) {
            out_feed(r, stream, tmp, p);
            f->npend = 0;
            return p - np;
        }
    }
    /* still incomplete: DATA ran out */
    out_feed(r, stream, tmp, p);
    memcpy(f->pend, tmp + p, m - p);
    f->npend = m - p;
    return len;
}

void render_output(render *r, int stream, const char *data, size_t len)
{
    if (!r || !data)
        return;
    stream = stream == 2 ? 2 : 1;
    filter *f = &r->f[stream - 1];
    if (f->npend && len) {
        size_t used = finish_pending(r, stream, data, len);
        data += used;
        len -= used;
    }
    if (f->npend || !len)
        return;
    const size_t block = 1 << 16;
    while (len) {
        size_t n = len < block ? len : block;
        size_t done = utf8_complete_prefix(data, n);
        if (done == 0 && n == len)
            break; /* only the start of a sequence is left */
        if (done == 0)
            done = n;
        out_feed(r, stream, data, done);
        data += done;
        len -= done;
    }
    memcpy(f->pend, data, len);
    f->npend = len;
}

/* ---- other inputs ---- */

render *render_new(size_t max_chars, size_t max_bytes, int max_attempts)
{
    if (max_chars == 0)
        return NULL;
    render *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->max_chars = max_chars;
    r->max_bytes = max_bytes;
    r->max_attempts = max_attempts > 0 ? max_attempts : 1;
    r->attempt = 1;
    r->open_stream = 1;
    return r;
}

static void clear_attempt(render *r)
{
    strbuf_reset(&r->code);
    set_str(&r->err, NULL);
    for (size_t i = 0; i < r->rn; i++)
        free(ring_at(r, i)->s);
    r->rn = r->rhead = 0;
    r->keep_c = r->keep_b = 0;
    r->dropped = 0;
    open_clear(r);
    r->open_stream = 1;
    memset(r->f, 0, sizeof(r->f));
    r->ran = r->have_dur = 0;
}

void render_free(render *r)
{
    if (!r)
        return;
    clear_attempt(r);
    for (int i = 0; i < r->n_summaries; i++)
        free(r->summaries[i]);
    for (int i = 0; i < r->n_notes; i++)
        free(r->notes[i]);
    free(r->ring);
    free(r->lang);
    free(r->detail);
    strbuf_free(&r->code);
    strbuf_free(&r->open);
    free(r);
}

/* The last stderr line, the best guess at why an attempt without an error failed. */
static const char *last_stderr(render *r)
{
    if (r->open.len && r->open_stream == 2)
        return strbuf_str(&r->open);
    for (size_t i = r->rn; i > 0; i--)
        if (ring_at(r, i - 1)->stream == 2 && ring_at(r, i - 1)->len)
            return ring_at(r, i - 1)->s;
    return NULL;
}

void render_attempt(render *r, int attempt)
{
    if (!r || attempt <= r->attempt)
        return;
    const char *why = r->err ? r->err : last_stderr(r);
    strbuf b = {0};
    strbuf_printf(&b, "\xE2\x9D\x8C Attempt %d/%d: %s", r->attempt, r->max_attempts,
                  why ? why : "failed");
    if (r->n_summaries == MAX_SUMMARIES) {
        free(r->summaries[0]);
        memmove(r->summaries, r->summaries + 1, (MAX_SUMMARIES - 1) * sizeof(char *));
        r->n_summaries--;
        r->summaries_dropped++;
    }
    r->summaries[r->n_summaries++] = strbuf_steal(&b);
    clear_attempt(r);
    r->attempt = attempt;
}

void render_code(render *r, const char *lang, const char *code)
{
    if (!r)
        return;
    set_str(&r->lang, clean_lang(lang));
    strbuf_reset(&r->code);
    clean_code(&r->code, code ? code : "");
}

void render_phase(render *r, enum render_phase phase, const char *detail, uint64_t now_ms)
{
    if (!r)
        return;
    /* a new attempt's run starts its clock even when the phase did not visibly change */
    int new_run = phase == RENDER_RUNNING && !r->ran;
    if (new_run) {
        r->run_ms = now_ms;
        r->ran = 1;
    }
    if (phase == RENDER_DONE && r->phase != RENDER_DONE && r->ran) {
        r->done_dur_ms = now_ms >= r->run_ms ? now_ms - r->run_ms : 0;
        r->have_dur = 1;
    }
    if (phase != r->phase || new_run)
        r->phase_ms = now_ms;
    r->phase = phase;
    set_str(&r->detail, detail && *detail ? clean_line(detail) : NULL);
}

void render_error(render *r, const char *name, const char *value)
{
    if (!r)
        return;
    strbuf b = {0};
    if (name && *name)
        strbuf_printf(&b, "%s: ", name);
    strbuf_puts(&b, value ? value : "");
    set_str(&r->err, clean_line(strbuf_str(&b)));
    strbuf_free(&b);
}

void render_note(render *r, const char *note)
{
    if (!r || !note)
        return;
    if (r->n_notes == MAX_NOTES) {
        r->notes_dropped++;
        return;
    }
    r->notes[r->n_notes++] = clean_line(note);
}

/* ---- layout ---- */

/* Appends PREFIX + TEXT as one line, cut (with …) to CAP code points. */
static void put_line(strbuf *b, const char *prefix, const char *text, size_t cap)
{
    if (b->len)
        strbuf_append(b, "\n", 1);
    strbuf_puts(b, prefix);
    size_t n = strlen(text), pc = utf8_count(prefix, strlen(prefix));
    if (pc + utf8_count(text, n) <= cap) {
        strbuf_append(b, text, n);
        return;
    }
    size_t room = cap > pc + 1 ? cap - pc - 1 : 0;
    strbuf_append(b, text, prefix_fit(text, n, (cost){room, (size_t)-1}));
    strbuf_puts(b, ELLIPSIS);
}

static void put_status(render *r, strbuf *b, uint64_t now_ms, size_t cap)
{
    const char *d = r->detail;
    char tmp[96];
    switch (r->phase) {
    case RENDER_GENERATING:
        put_line(b, "", "\xE2\x9C\x8D\xEF\xB8\x8F Writing code" ELLIPSIS, cap);
        break;
    case RENDER_WAITING:
        put_line(b, "\xE2\x8F\xB3 ", d ? d : "Waiting" ELLIPSIS, cap);
        break;
    case RENDER_RUNNING: {
        uint64_t s = now_ms > r->phase_ms ? (now_ms - r->phase_ms) / 1000 : 0;
        snprintf(tmp, sizeof(tmp), "\xF0\x9F\x9A\x80 Running" ELLIPSIS " %llu s",
                 (unsigned long long)s);
        put_line(b, "", tmp, cap);
        break;
    }
    case RENDER_DONE:
        if (r->have_dur)
            snprintf(tmp, sizeof(tmp), "\xE2\x9C\x85 Done. (%.1f s)", r->done_dur_ms / 1000.0);
        else
            snprintf(tmp, sizeof(tmp), "\xE2\x9C\x85 Done.");
        put_line(b, "", tmp, cap);
        break;
    case RENDER_FAILED:
        snprintf(tmp, sizeof(tmp), "\xF0\x9F\x9B\x91 Failed after %d attempt%s.", r->attempt,
                 r->attempt == 1 ? "" : "s");
        put_line(b, "", tmp, cap);
        break;
    case RENDER_STOPPED:
        put_line(b, d ? "\xE2\x8F\xB9 Stopped: " : "", d ? d : "\xE2\x8F\xB9 Stopped.", cap);
        break;
    }
}

static void put_head(render *r, strbuf *b, const level *L)
{
    if (L->summaries) {
        if (r->summaries_dropped) {
            char tmp[64];
            snprintf(tmp, sizeof(tmp), ELLIPSIS " %d earlier attempts", r->summaries_dropped);
            put_line(b, "", tmp, L->cap);
        }
        for (int i = 0; i < r->n_summaries; i++)
            put_line(b, "", r->summaries[i], L->cap);
    }
    if (r->attempt > 1) {
        char tmp[96];
        snprintf(tmp, sizeof(tmp), "\xF0\x9F\x94\x84 Attempt %d/%d \xE2\x80\x94 fixing error",
                 r->attempt, r->max_attempts);
        put_line(b, "", tmp, L->cap);
    }
}

static void put_tail(render *r, strbuf *b, const level *L)
{
    if (r->err)
        put_line(b, "\xE2\x9D\x8C Error: ", r->err, L->cap);
    int first = r->n_notes > L->notes ? r->n_notes - L->notes : 0;
    for (int i = first; i < r->n_notes; i++)
        put_line(b, "", r->notes[i], L->cap);
    int hidden = first + r->notes_dropped;
    if (hidden && L->notes) {
        char tmp[64];
        snprintf(tmp, sizeof(tmp), ELLIPSIS " %d more notes", hidden);
        put_line(b, "", tmp, L->cap);
    }
}

typedef struct span {
    size_t off, len, chars;
} span;

/* The code's lines as spans of r->code. *N gets the count; NULL on ENOMEM. */
static span *code_lines(render *r, size_t *n)
{
    const char *s = strbuf_str(&r->code);
    size_t cnt = 1;
    for (size_t i = 0; i < r->code.len; i++)
        cnt += s[i] == '\n';
    span *v = malloc(cnt * sizeof(*v));
    if (!v)
        return NULL;
    size_t start = 0, k = 0;
    for (size_t i = 0; i <= r->code.len; i++) {
        if (i == r->code.len || s[i] == '\n') {
            v[k].off = start;
            v[k].len = i - start;
            v[k].chars = utf8_count(s + start, i - start);
            k++;
            start = i + 1;
        }
    }
    *n = k;
    return v;
}

static int ndigits(unsigned long long v)
{
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

static int fits_after(cost lim, cost used, cost k)
{
    return used.c + k.c <= lim.c && used.b + k.b <= lim.b;
}

/* The code body cut to AVAIL: head lines, a "… N lines …" marker, tail lines. */
static void code_cut(render *r, strbuf *b, cost avail)
{
    size_t n = 0;
    span *v = code_lines(r, &n);
    if (!v)
        return;
    const char *s = strbuf_str(&r->code);
    /* the marker and its newline, sized for the largest count it may show */
    size_t mb = strlen(ELLIPSIS "  lines " ELLIPSIS) + (size_t)ndigits(n) + 1;
    cost mk = {mb - 4, mb};
    if (!fits(avail, mk)) {
        free(v);
        return;
    }
    cost room = cost_sub(avail, mk), half = {room.c / 2, room.b / 2}, used = {0, 0};
    size_t h = 0, t = 0;
    while (h < n && fits_after(half, used, (cost){v[h].chars + 1, v[h].len + 1})) {
        used = cost_add(used, (cost){v[h].chars + 1, v[h].len + 1});
        h++;
    }
    while (h + t < n) {
        span *l = &v[n - 1 - t];
        if (!fits_after(room, used, (cost){l->chars + 1, l->len + 1}))
            break;
        used = cost_add(used, (cost){l->chars + 1, l->len + 1});
        t++;
    }
    while (h + t < n && fits_after(room, used, (cost){v[h].chars + 1, v[h].len + 1})) {
        used = cost_add(used, (cost){v[h].chars + 1, v[h].len + 1});
        h++;
    }
    if (h == 0 && t == 0 && room.c >= 3 && room.b >= 5) {
        /* even the first line is too long: show its start */
        size_t cut = prefix_fit(s + v[0].off, v[0].len, (cost){room.c - 2, room.b - 4});
        strbuf_append(b, s + v[0].off, cut);
        strbuf_puts(b, ELLIPSIS "\n");
    }
    for (size_t i = 0; i < h; i++) {
        strbuf_append(b, s + v[i].off, v[i].len);
        strbuf_append(b, "\n", 1);
    }
    strbuf_printf(b, ELLIPSIS " %zu lines " ELLIPSIS, n - h - t);
    for (size_t i = n - t; i < n; i++) {
        strbuf_append(b, "\n", 1);
        strbuf_append(b, s + v[i].off, v[i].len);
    }
    free(v);
}

/* The code section within AVAIL into B (left empty when not even its frame fits). */
static void put_code(render *r, strbuf *b, cost avail)
{
    if (!r->code.len)
        return;
    strbuf_printf(b, "\xF0\x9F\x93\x9D Code:\n```%s\n", r->lang ? r->lang : "");
    cost frame = cost_add(measure(b->data, b->len), scost("\n```"));
    cost body = measure(r->code.data, r->code.len);
    if (fits(avail, cost_add(frame, body))) {
        strbuf_append(b, r->code.data, r->code.len);
    } else {
        size_t before = b->len;
        if (fits(avail, frame))
            code_cut(r, b, cost_sub(avail, frame));
        if (b->len == before) {
            strbuf_reset(b);
            return;
        }
    }
    strbuf_puts(b, "\n```");
}

/* Output line I of the view: stored lines, then the open one. */
static oline view_at(render *r, size_t i)
{
    if (i < r->rn)
        return *ring_at(r, i);
    return (oline){r->open.data, r->open.len, r->open_chars, r->open_stream, r->open_cut};
}

static size_t view_len(render *r)
{
    return r->rn + (r->open.len > 0);
}

static void put_oline(strbuf *b, const oline *l, size_t len, int cut)
{
    if (l->stream == 2)
        strbuf_puts(b, STDERR_MARK);
    strbuf_append(b, l->s, len);
    if (cut)
        strbuf_puts(b, ELLIPSIS);
    strbuf_append(b, "\n", 1);
}

/* How many of the newest lines fit ROOM. */
static size_t newest_fitting(render *r, cost room)
{
    size_t nv = view_len(r), k = 0;
    cost used = {0, 0};
    for (; k < nv; k++) {
        oline l = view_at(r, nv - 1 - k);
        if (!fits_after(room, used, line_cost(&l)))
            break;
        used = cost_add(used, line_cost(&l));
    }
    return k;
}

/* The output section into B: the newest lines that fit AVAIL, after a count of the rest. */
static void put_output(render *r, strbuf *b, cost avail)
{
    size_t nv = view_len(r);
    cost frame = scost("```\n```");
    if (!nv || !fits(avail, frame))
        return;
    cost room = cost_sub(avail, frame);
    unsigned long long total = r->dropped + nv;
    size_t k = newest_fitting(r, room);
    if (k == nv && !r->dropped) {
        strbuf_puts(b, "```\n");
        for (size_t i = 0; i < nv; i++) {
            oline l = view_at(r, i);
            put_oline(b, &l, l.len, l.cut);
        }
        strbuf_puts(b, "```");
        return;
    }
    size_t mb =
        strlen(ELLIPSIS "  earlier lines not shown " ELLIPSIS "\n") + (size_t)ndigits(total);
    cost mk = {mb - 4, mb};
    if (!fits(room, mk))
        return;
    room = cost_sub(room, mk);
    k = newest_fitting(r, room);
    oline last = view_at(r, nv - 1);
    cost fixed = cost_add((cost){2, 4}, last.stream == 2 ? scost(STDERR_MARK) : (cost){0, 0});
    int partial = k == 0 && fits(room, fixed); /* the newest line's start */
    strbuf_printf(b, "```\n" ELLIPSIS " %llu earlier lines not shown " ELLIPSIS "\n",
                  total - k - (unsigned long long)partial);
    if (partial)
        put_oline(b, &last, prefix_fit(last.s, last.len, cost_sub(room, fixed)), 1);
    for (size_t i = nv - k; i < nv; i++) {
        oline l = view_at(r, i);
        put_oline(b, &l, l.len, l.cut);
    }
    strbuf_puts(b, "```");
}

static void join(strbuf *out, const strbuf *sec)
{
    if (!sec->len)
        return;
    if (out->len)
        strbuf_append(out, "\n", 1);
    strbuf_append(out, sec->data, sec->len);
}

static cost sec_cost(const strbuf *s)
{
    return s->len ? measure(s->data, s->len) : (cost){0, 0};
}

/* Sections, top to bottom, joined by newlines: head, code, status, output, tail. The fixed
 * ones are measured first; code and output share what is left, each paying its newline. */
static void build(render *r, uint64_t now_ms, const level *L, strbuf *out)
{
    cost budget = {r->max_chars, r->max_bytes ? r->max_bytes : (size_t)-1}, nl = {1, 1};
    strbuf head = {0}, code = {0}, status = {0}, output = {0}, tail = {0};
    put_head(r, &head, L);
    put_status(r, &status, now_ms, L->cap);
    put_tail(r, &tail, L);
    cost fixed = cost_add(cost_add(sec_cost(&head), sec_cost(&status)), sec_cost(&tail));
    fixed =
        cost_add(fixed, (cost){(head.len > 0) + (tail.len > 0), (head.len > 0) + (tail.len > 0)});
    cost rest = cost_sub(cost_sub(budget, fixed), nl);
    if (L->code && fits(budget, fixed)) {
        /* with output waiting, a shortened code block leaves it a third of the room */
        cost room = rest, body = measure(strbuf_str(&r->code), r->code.len);
        if (view_len(r) && !fits(rest, cost_add(body, (cost){32, 64})))
            room = (cost){rest.c - rest.c / 3, rest.b - rest.b / 3};
        put_code(r, &code, room);
        if (code.len)
            rest = cost_sub(cost_sub(rest, sec_cost(&code)), nl);
    }
    if (fits(budget, fixed))
        put_output(r, &output, rest);
    join(out, &head);
    join(out, &code);
    join(out, &status);
    join(out, &output);
    join(out, &tail);
    strbuf_free(&head);
    strbuf_free(&code);
    strbuf_free(&status);
    strbuf_free(&output);
    strbuf_free(&tail);
}

static int text_fits(render *r, const strbuf *b)
{
    return utf8_count(strbuf_str(b), b->len) <= r->max_chars &&
           (!r->max_bytes || b->len <= r->max_bytes);
}

char *render_text(render *r, uint64_t now_ms)
{
    if (!r)
        return NULL;
    strbuf b = {0};
    size_t nlevels = sizeof(levels) / sizeof(levels[0]);
    for (size_t i = 0; i < nlevels; i++) {
        strbuf_reset(&b);
        build(r, now_ms, &levels[i], &b);
        if (text_fits(r, &b))
            return strbuf_steal(&b);
    }
    /* limits too small for any layout: cut the last one */
    size_t keep = prefix_fit(strbuf_str(&b), b.len,
                             (cost){r->max_chars, r->max_bytes ? r->max_bytes : (size_t)-1});
    b.len = keep;
    if (b.data)
        b.data[keep] = '\0';
    return strbuf_steal(&b);
}

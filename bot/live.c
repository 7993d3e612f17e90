/* live — the edit loop behind a live message, and the console's transcript printer.
 *
 * Editing adapters: the state is a render plus a few flags — dirty (changed since the last
 * send), inflight (a post or edit awaits its callback), and two deadlines: interval_until
 * (min_edit_interval_ms after the last send) and ratelimit_until (set by a 429). schedule()
 * turns them into one timer; send_state() renders the text and posts or edits. The final send
 * ignores the interval but not a 429. Completion, failure and the final close all run from
 * callbacks, never from inside an update call, so the caller never sees reentrancy.
 *
 * Streaming adapters: each update prints its piece at once; the printer remembers what it
 * already printed (the code so far, whether a fence or an output line is open). */
#include "bot/live.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "common/utf8.h"

#define FAIL_BACKOFF_MS 1000
#define MAX_FINAL_RETRIES 5

/* The console's output filter for one stream. */
typedef struct cfilter {
    char pend[4];
    size_t npend;
    int esc; /* 0 none, 1 after ESC, 2 inside a CSI sequence */
} cfilter;

struct live {
    uv_loop_t *loop;
    adapter *a;
    char *channel, *reply_to;
    int max_attempts, attempt;
    uv_timer_t timer;
    enum render_phase phase;
    uint64_t phase_ms;

    /* editing */
    render *r;
    char *msg_id;
    char *last_sent; /* the text the message shows */
    char *sending;   /* the text of the call in flight */
    int dirty, inflight, warned, broken;
    uint64_t interval_until, ratelimit_until;
    int finishing, final_sent, final_retries;
    void (*done)(void *ud);
    void *done_ud;

    /* streaming */
    int streams, have_phase;
    strbuf code;   /* the code printed so far */
    int code_open; /* a code fence is open */
    int line_open; /* an output line has text and no newline yet */
    int out_stream, cr;
    cfilter cf[2];
};

static void schedule(live *l);

static void set_str(char **dst, char *s)
{
    free(*dst);
    *dst = s;
}

static uint64_t max3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t m = a > b ? a : b;
    return m > c ? m : c;
}

int live_new(uv_loop_t *loop, adapter *a, const char *channel, const char *reply_to,
             int max_attempts, live **out)
{
    live *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->loop = loop;
    l->a = a;
    l->max_attempts = max_attempts > 0 ? max_attempts : 1;
    l->attempt = 1;
    l->streams = a->policy.streams;
    l->channel = strdup(channel ? channel : "");
    l->reply_to = reply_to ? strdup(reply_to) : NULL;
    if (!l->streams)
        l->r = render_new(a->policy.max_chars ? a->policy.max_chars : 2000, a->policy.max_bytes,
                          l->max_attempts);
    if (!l->channel || (reply_to && !l->reply_to) || (!l->streams && !l->r)) {
        render_free(l->r);
        free(l->channel);
        free(l->reply_to);
        free(l);
        return -ENOMEM;
    }
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    *out = l;
    return 0;
}

const char *live_msg_id(const live *l)
{
    return l->msg_id;
}

/* ---- editing ---- */

static void on_closed(uv_handle_t *h)
{
    live *l = h->data;
    if (l->done)
        l->done(l->done_ud);
    render_free(l->r);
    free(l->channel);
    free(l->reply_to);
    free(l->msg_id);
    free(l->last_sent);
    free(l->sending);
    strbuf_free(&l->code);
    free(l);
}

static void finish_now(live *l)
{
    uv_timer_stop(&l->timer);
    uv_close((uv_handle_t *)&l->timer, on_closed);
}

static void failed(live *l, const char *what, int status, int remote, const char *error)
{
    if (!l->warned)
        log_warn("live", "%s in %s failed: %d/%d %s", what, l->channel, status, remote,
                 error ? error : "");
    l->warned = 1;
    uint64_t wait = l->a->policy.min_edit_interval_ms;
    uint64_t until = uv_now(l->loop) + (wait > FAIL_BACKOFF_MS ? wait : FAIL_BACKOFF_MS);
    if (until > l->interval_until)
        l->interval_until = until;
    l->dirty = 1;
}

static int result_ok(const adapter_result *res)
{
    return res->status == 0 && !res->error && res->retry_after_ms == 0 &&
           (res->remote_status == 0 || res->remote_status / 100 == 2);
}

static void on_sent(void *ud, const adapter_result *res)
{
    live *l = ud;
    int was_post = !l->msg_id, was_final = l->final_sent;
    l->inflight = 0;
    l->final_sent = 0;
    if (result_ok(res)) {
        if (was_post && (!res->msg_id || !(l->msg_id = strdup(res->msg_id)))) {
            log_warn("live", "post in %s returned no message id: no more edits", l->channel);
            l->broken = 1;
        }
        set_str(&l->last_sent, l->sending);
        l->sending = NULL;
        l->warned = 0;
        if (was_final || l->broken) {
            if (l->finishing)
                finish_now(l);
            return;
        }
    } else if (res->retry_after_ms > 0) {
        uint64_t until = uv_now(l->loop) + res->retry_after_ms;
        if (until > l->ratelimit_until)
            l->ratelimit_until = until;
        log_info("live", "rate-limited in %s: next call in %llu ms", l->channel,
                 (unsigned long long)res->retry_after_ms);
        l->dirty = 1;
        if (was_final && ++l->final_retries > MAX_FINAL_RETRIES) {
            log_warn("live", "final state for %s not sent: still rate-limited", l->channel);
            finish_now(l);
            return;
        }
    } else {
        failed(l, was_post ? "post" : "edit", res->status, res->remote_status, res->error);
        if (was_final) {
            finish_now(l);
            return;
        }
    }
    set_str(&l->sending, NULL);
    schedule(l);
}

/* After a send that ended without a call in flight. */
static void settle(live *l)
{
    if (l->finishing)
        finish_now(l);
    else
        schedule(l);
}

static void send_state(live *l)
{
    uint64_t now = uv_now(l->loop);
    char *text = render_text(l->r, now);
    if (!text) {
        failed(l, "render", -ENOMEM, 0, "out of memory");
        settle(l);
        return;
    }
    if (l->last_sent && strcmp(text, l->last_sent) == 0) {
        /* nothing visible changed */
        free(text);
        l->dirty = 0;
        settle(l);
        return;
    }
    adapter *a = l->a;
    /* set before the call, in case an adapter completes it at once */
    l->inflight = 1;
    l->final_sent = l->finishing;
    l->sending = text;
    l->dirty = 0;
    l->interval_until = now + a->policy.min_edit_interval_ms;
    int edit = l->msg_id != NULL;
    int rc = edit ? a->ops->edit(a, l->channel, l->msg_id, text, on_sent, l)
                  : a->ops->post(a, l->channel, l->reply_to, text, on_sent, l);
    if (rc != 0) {
        l->inflight = l->final_sent = 0;
        set_str(&l->sending, NULL);
        failed(l, edit ? "edit" : "post", rc, 0, "call refused");
        settle(l);
    }
}

static void on_timer(uv_timer_t *t)
{
    live *l = t->data;
    if (!l->inflight)
        send_state(l);
}

/* The next moment the running message shows another second. */
static uint64_t next_tick(live *l, uint64_t now)
{
    uint64_t since = now > l->phase_ms ? now - l->phase_ms : 0;
    return l->phase_ms + (since / 1000 + 1) * 1000;
}

static void schedule(live *l)
{
    if (l->inflight || l->streams || uv_is_closing((uv_handle_t *)&l->timer))
        return;
    if (l->broken) {
        if (l->finishing)
            finish_now(l);
        return;
    }
    uint64_t now = uv_now(l->loop), at;
    if (l->finishing)
        at = l->ratelimit_until > now ? l->ratelimit_until : now;
    else if (l->dirty)
        at = max3(now, l->interval_until, l->ratelimit_until);
    else if (l->phase == RENDER_RUNNING)
        at = max3(next_tick(l, now), l->interval_until, l->ratelimit_until);
    else {
        uv_timer_stop(&l->timer);
        return;
    }
    uv_timer_start(&l->timer, on_timer, at - now, 0);
}

static void changed(live *l)
{
    l->dirty = 1;
    schedule(l);
}

/* ---- streaming (console) ---- */

static void print(live *l, const char *s)
{
    l->a->ops->print(l->a, l->channel, s);
}

/* Ends an open output line and an open code fence before a new piece of the transcript. */
static void print_break(live *l)
{
    if (l->line_open) {
        print(l, "\n");
        l->line_open = 0;
    }
    if (l->code_open) {
        print(l, l->code.len && l->code.data[l->code.len - 1] != '\n' ? "\n```\n" : "```\n");
        l->code_open = 0;
        strbuf_reset(&l->code);
    }
    l->cr = 0;
}

/* Code as the console shows it: valid UTF-8 (an incomplete end waits), no controls but
 * \t and \n. */
static char *console_code(const char *code)
{
    strbuf raw = {0}, out = {0};
    utf8_sanitize(&raw, code, utf8_complete_prefix(code, strlen(code)));
    for (size_t i = 0; i < raw.len; i++) {
        unsigned char c = (unsigned char)raw.data[i];
        if (c >= 0x20 || c == '\n' || c == '\t')
            strbuf_append(&out, &raw.data[i], 1);
    }
    strbuf_free(&raw);
    return strbuf_steal(&out);
}

static void stream_code(live *l, const char *lang, const char *code)
{
    char *c = console_code(code ? code : "");
    if (!c)
        return;
    if (!l->code_open) {
        print_break(l);
        strbuf head = {0};
        strbuf_printf(&head, "\n\xF0\x9F\x93\x9D Generated code:\n```%s\n", lang ? lang : "");
        print(l, strbuf_str(&head));
        strbuf_free(&head);
        l->code_open = 1;
    }
    size_t n = strlen(c);
    if (n < l->code.len || memcmp(c, strbuf_str(&l->code), l->code.len) != 0) {
        /* the code changed behind what is printed: print it again */
        print(l, "\n");
        strbuf_reset(&l->code);
    }
    if (n > l->code.len)
        print(l, c + l->code.len);
    strbuf_reset(&l->code);
    strbuf_append(&l->code, c, n);
    free(c);
}

static void stream_phase(live *l, enum render_phase phase, const char *detail)
{
    if (l->have_phase && phase == l->phase && phase != RENDER_WAITING)
        return;
    print_break(l);
    strbuf s = {0};
    switch (phase) {
    case RENDER_GENERATING:
        break;
    case RENDER_WAITING:
        strbuf_printf(&s, "\xE2\x8F\xB3 %s\n", detail ? detail : "Waiting\xE2\x80\xA6");
        break;
    case RENDER_RUNNING:
        strbuf_puts(&s, "\n\xF0\x9F\x9A\x80 Running...\n");
        break;
    case RENDER_DONE:
        strbuf_puts(&s, "\n\xE2\x9C\x85 Done.\n");
        break;
    case RENDER_FAILED:
        strbuf_printf(&s, "\n\xF0\x9F\x9B\x91 Failed after %d attempt%s.\n", l->attempt,
                      l->attempt == 1 ? "" : "s");
        break;
    case RENDER_STOPPED:
        strbuf_printf(&s, "\n\xE2\x8F\xB9 Stopped%s%s\n", detail ? ": " : ".",
                      detail ? detail : "");
        break;
    }
    if (s.len)
        print(l, s.data);
    strbuf_free(&s);
}

/* Appends the printable part of valid UTF-8 TEXT for stream S to OUT: line prefixes, \r
 * redraws, escape sequences and other controls dropped. */
static void stream_text(live *l, int s, const char *text, size_t n, strbuf *out)
{
    cfilter *f = &l->cf[s - 1];
    const char *prefix = s == 2 ? "  \xE2\x9A\xA0\xEF\xB8\x8F  " : "  ";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (f->esc == 1) {
            f->esc = c == '[' ? 2 : 0;
            continue;
        }
        if (f->esc == 2) {
            if (c >= 0x40 && c <= 0x7E)
                f->esc = 0;
            if (c >= 0x20)
                continue;
            f->esc = 0;
        }
        if (c == 0x1B) {
            f->esc = 1;
            continue;
        }
        if (c == '\r') {
            l->cr = 1;
            continue;
        }
        if (c == '\n') {
            strbuf_append(out, "\n", 1);
            l->line_open = l->cr = 0;
            continue;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            continue;
        if (l->line_open && l->cr) {
            strbuf_append(out, "\r", 1); /* a progress bar redraws its line */
            l->line_open = 0;
        }
        if (!l->line_open)
            strbuf_puts(out, prefix);
        l->line_open = 1;
        l->cr = 0;
        strbuf_append(out, &text[i], 1);
    }
}

static void stream_output(live *l, int s, const char *data, size_t len)
{
    cfilter *f = &l->cf[s - 1];
    if (l->code_open || (l->out_stream != s && l->line_open))
        print_break(l);
    l->out_stream = s;
    strbuf buf = {0}, clean = {0}, out = {0};
    strbuf_append(&buf, f->pend, f->npend);
    strbuf_append(&buf, data, len);
    size_t ok = utf8_complete_prefix(strbuf_str(&buf), buf.len);
    if (buf.len - ok <= 3) {
        f->npend = buf.len - ok;
        memcpy(f->pend, strbuf_str(&buf) + ok, f->npend);
    } else {
        ok = buf.len;
        f->npend = 0;
    }
    utf8_sanitize(&clean, strbuf_str(&buf), ok);
    stream_text(l, s, strbuf_str(&clean), clean.len, &out);
    if (out.len)
        print(l, out.data);
    strbuf_free(&buf);
    strbuf_free(&clean);
    strbuf_free(&out);
}

static void stream_line(live *l, const char *prefix, const char *text)
{
    print_break(l);
    strbuf s = {0};
    strbuf_puts(&s, prefix);
    size_t start = s.len;
    utf8_sanitize(&s, text, strlen(text));
    for (size_t i = start; i < s.len; i++)
        if ((unsigned char)s.data[i] < 0x20 && s.data[i] != '\t')
            s.data[i] = ' ';
    strbuf_puts(&s, "\n");
    print(l, s.data);
    strbuf_free(&s);
}

/* ---- updates ---- */

void live_attempt(live *l, int attempt)
{
    if (attempt <= l->attempt) {
        if (!l->streams)
            render_attempt(l->r, attempt);
        return;
    }
    l->attempt = attempt;
    /* the clock of the new attempt's run starts when it runs */
    l->have_phase = 0;
    if (l->streams) {
        char head[96];
        print_break(l);
        snprintf(head, sizeof(head),
                 "\n\xF0\x9F\x94\x84 Attempt %d/%d \xE2\x80\x94 fixing error...\n", attempt,
                 l->max_attempts);
        print(l, head);
        return;
    }
    render_attempt(l->r, attempt);
    changed(l);
}

void live_code(live *l, const char *lang, const char *code)
{
    if (l->streams) {
        stream_code(l, lang, code);
        return;
    }
    render_code(l->r, lang, code);
    changed(l);
}

void live_phase(live *l, enum render_phase phase, const char *detail)
{
    uint64_t now = uv_now(l->loop);
    if (l->streams)
        stream_phase(l, phase, detail);
    else
        render_phase(l->r, phase, detail, now);
    if (!l->have_phase || phase != l->phase)
        l->phase_ms = now;
    l->phase = phase;
    l->have_phase = 1;
    if (!l->streams)
        changed(l);
}

void live_output(live *l, int stream, const char *data, size_t len)
{
    stream = stream == 2 ? 2 : 1;
    if (l->streams) {
        stream_output(l, stream, data, len);
        return;
    }
    render_output(l->r, stream, data, len);
    changed(l);
}

void live_error(live *l, const char *name, const char *value)
{
    if (l->streams) {
        strbuf s = {0};
        if (name && *name)
            strbuf_printf(&s, "%s: ", name);
        strbuf_puts(&s, value ? value : "");
        stream_line(l, "\n\xE2\x9D\x8C Error: ", strbuf_str(&s));
        strbuf_free(&s);
        return;
    }
    render_error(l->r, name, value);
    changed(l);
}

void live_note(live *l, const char *note)
{
    if (l->streams) {
        stream_line(l, "", note ? note : "");
        return;
    }
    render_note(l->r, note);
    changed(l);
}

void live_finish(live *l, void (*done)(void *ud), void *ud)
{
    l->done = done;
    l->done_ud = ud;
    l->finishing = 1;
    if (l->streams) {
        print_break(l);
        finish_now(l);
        return;
    }
    l->dirty = 1;
    schedule(l);
}

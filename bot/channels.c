/* channels — a linked list of channel states (a bot serves tens to thousands of channels;
 * lookups happen once per message, far from any hot path). Each state has the running turn
 * and a FIFO of copied messages waiting for it. */
#include "bot/channels.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "sandbox/client.h"

#define QUEUE_MAX 20

typedef struct queued {
    struct queued *next;
    adapter_msg *m;
} queued;

typedef struct chan {
    struct chan *next;
    struct channels *cs;
    adapter *ad;
    char *platform, *channel;
    turn *running;
    queued *head, *tail;
    int queued_n;
} chan;

typedef struct receiver {
    struct receiver *next;
    channels *cs;
    adapter *ad;
} receiver;

struct channels {
    turn_ctx ctx;
    chan *list;
    receiver *receivers;
    int running;
};

static void start_next(chan *c);

static chan *find_chan(channels *cs, adapter *a, const char *platform, const char *channel)
{
    for (chan *c = cs->list; c; c = c->next)
        if (c->ad == a && strcmp(c->platform, platform) == 0 && strcmp(c->channel, channel) == 0)
            return c;
    chan *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->platform = strdup(platform);
    c->channel = strdup(channel);
    if (!c->platform || !c->channel) {
        free(c->platform);
        free(c->channel);
        free(c);
        return NULL;
    }
    c->cs = cs;
    c->ad = a;
    c->next = cs->list;
    cs->list = c;
    return c;
}

static void say(chan *c, const char *reply_to, const char *text)
{
    if (c->ad->policy.streams) {
        c->ad->ops->print(c->ad, c->channel, text);
        c->ad->ops->print(c->ad, c->channel, "\n");
    } else {
        c->ad->ops->post(c->ad, c->channel, reply_to, text, NULL, NULL);
    }
}

static void notify_idle(chan *c)
{
    if (!c->running && !c->head && c->ad->ops->idle)
        c->ad->ops->idle(c->ad, c->channel);
}

static void free_queued(queued *q)
{
    adapter_msg_free(q->m);
    free(q);
}

static void drop_queue(chan *c)
{
    while (c->head) {
        queued *q = c->head;
        c->head = q->next;
        free_queued(q);
    }
    c->tail = NULL;
    c->queued_n = 0;
}

static void on_turn_done(void *ud, turn *t)
{
    chan *c = ud;
    c->running = NULL;
    c->cs->running--;
    start_next(c);
    notify_idle(c);
}

static void start_msg(chan *c, const adapter_msg *m)
{
    turn *t = NULL;
    c->cs->running++;
    c->running = (turn *)1; /* busy while turn_start runs, even if it finishes at once */
    int rc = turn_start(&c->cs->ctx, c->ad, m, on_turn_done, c, &t);
    if (rc) {
        c->running = NULL;
        c->cs->running--;
        log_error("channels", "%s:%s: cannot start a turn: %s", c->platform, c->channel,
                  strerror(-rc));
        say(c, m->msg_id, "🛑 codebot could not start this turn (out of resources); try again.");
        return;
    }
    /* on_turn_done may already have run and cleared `running`. */
    if (c->running == (turn *)1)
        c->running = t;
}

static void start_next(chan *c)
{
    while (!c->running && c->head) {
        queued *q = c->head;
        c->head = q->next;
        if (!c->head)
            c->tail = NULL;
        c->queued_n--;
        start_msg(c, q->m);
        free_queued(q);
    }
}

static int enqueue(chan *c, const adapter_msg *m)
{
    if (c->queued_n >= QUEUE_MAX)
        return -ENOSPC;
    queued *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    if (!(q->m = adapter_msg_dup(m))) {
        free(q);
        return -ENOMEM;
    }
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    c->queued_n++;
    return 0;
}

/* ---- commands ---- */

typedef struct status_req {
    chan *c;
    char *reply_to;
    char *sandbox;
    long long turns;
    int waits;
} status_req;

static void status_send(status_req *r)
{
    if (--r->waits > 0)
        return;
    chan *c = r->c;
    strbuf b = {0};
    const config *cfg = c->cs->ctx.cfg;
    strbuf_printf(&b, "ℹ️ Sandbox: %s\nHistory: %lld messages%s\nModel: %s%s%s\nTurn: %s",
                  r->sandbox ? r->sandbox : "none yet", r->turns,
                  c->cs->ctx.st && !store_connected(c->cs->ctx.st) ? " (Redis unavailable)" : "",
                  config_provider_name(cfg->llm), cfg->llm ? " / " : "", cfg->llm ? cfg->model : "",
                  c->running ? "running" : "idle");
    if (c->queued_n)
        strbuf_printf(&b, ", %d queued", c->queued_n);
    say(c, r->reply_to, strbuf_str(&b));
    strbuf_free(&b);
    free(r->sandbox);
    free(r->reply_to);
    free(r);
    notify_idle(c);
}

static void on_status_sandbox(void *ud, int status, const char *value)
{
    status_req *r = ud;
    if (status == 0 && value && *value)
        r->sandbox = strdup(value);
    status_send(r);
}

static void on_status_len(void *ud, int status, long long n)
{
    status_req *r = ud;
    r->turns = status == 0 ? n : 0;
    status_send(r);
}

static void cmd_status(chan *c, const adapter_msg *m)
{
    status_req *r = calloc(1, sizeof *r);
    if (!r)
        return;
    r->c = c;
    r->reply_to = m->msg_id ? strdup(m->msg_id) : NULL;
    r->waits = 1;
    store *st = c->cs->ctx.st;
    if (st) {
        r->waits += 2;
        if (store_sandbox_get(st, c->platform, c->channel, on_status_sandbox, r) != 0)
            r->waits--;
        if (store_history_len(st, c->platform, c->channel, on_status_len, r) != 0)
            r->waits--;
    }
    status_send(r);
}

typedef struct reset_req {
    chan *c;
    char *reply_to;
    int waits, failed;
} reset_req;

static void reset_step(reset_req *r)
{
    if (--r->waits > 0)
        return;
    say(r->c, r->reply_to,
        r->failed ? "🧹 Reset done, but history could not be cleared (Redis unavailable)."
                  : "🧹 Fresh start: the sandbox and the conversation history were cleared.");
    chan *c = r->c;
    free(r->reply_to);
    free(r);
    notify_idle(c);
}

static void on_reset_killed(void *ud, const cJSON *reply, const char *error)
{
    reset_step(ud);
}

static void on_reset_cleared(void *ud, int status)
{
    reset_req *r = ud;
    if (status < 0)
        r->failed = 1;
    reset_step(r);
}

static void cmd_reset(chan *c, const adapter_msg *m)
{
    if (c->running)
        turn_cancel(c->running);
    drop_queue(c);
    reset_req *r = calloc(1, sizeof *r);
    if (!r)
        return;
    r->c = c;
    r->reply_to = m->msg_id ? strdup(m->msg_id) : NULL;
    r->waits = 1;
    char *session = turn_session_key(c->platform, c->channel);
    cJSON *req = cJSON_CreateObject();
    if (session && req) {
        cJSON_AddStringToObject(req, "op", "kill");
        cJSON_AddStringToObject(req, "session", session);
        if (sbx_request(c->cs->ctx.loop, req, on_reset_killed, r) == 0)
            r->waits++;
    }
    cJSON_Delete(req);
    free(session);
    store *st = c->cs->ctx.st;
    if (st) {
        r->waits += 2;
        if (store_history_clear(st, c->platform, c->channel, on_reset_cleared, r) != 0)
            r->waits--;
        if (store_sandbox_set(st, c->platform, c->channel, "", "", on_reset_cleared, r) != 0)
            r->waits--;
    }
    reset_step(r);
}

static const char help_text[] =
    "ℹ️ Write a task in plain words and I write Python for it, run it in this channel's "
    "sandbox and show the output as it prints; on an error I retry with the traceback.\n"
    "A message that is a fenced code block (```python, ```bash, ```javascript) runs as is.\n"
    "Variables, imports and files stay for the next message.\n"
    "Commands: help · status · cancel (stop the running turn) · reset (fresh sandbox and "
    "history)";

/* 1 when TEXT is command NAME, alone or with a leading '/' or '!', any case. */
static int is_cmd(const char *text, const char *name)
{
    while (isspace((unsigned char)*text))
        text++;
    if (*text == '/' || *text == '!')
        text++;
    size_t n = strlen(name);
    if (strncasecmp(text, name, n) != 0)
        return 0;
    for (text += n; *text; text++)
        if (!isspace((unsigned char)*text))
            return 0;
    return 1;
}

static int command(chan *c, const adapter_msg *m)
{
    if (is_cmd(m->text, "help")) {
        say(c, m->msg_id, help_text);
        notify_idle(c);
    } else if (is_cmd(m->text, "status")) {
        cmd_status(c, m);
    } else if (is_cmd(m->text, "cancel")) {
        drop_queue(c);
        if (c->running)
            turn_cancel(c->running);
        else {
            say(c, m->msg_id, "Nothing is running.");
            notify_idle(c);
        }
    } else if (is_cmd(m->text, "reset")) {
        cmd_reset(c, m);
    } else {
        return 0;
    }
    return 1;
}

static void on_message(void *ud, const adapter_msg *m)
{
    receiver *r = ud;
    chan *c = find_chan(r->cs, r->ad, m->platform, m->channel);
    if (!c) {
        log_error("channels", "out of memory for channel %s:%s", m->platform, m->channel);
        return;
    }
    if (command(c, m))
        return;
    if (!c->running) {
        start_msg(c, m);
        return;
    }
    int rc = enqueue(c, m);
    char note[160];
    if (rc == 0)
        snprintf(note, sizeof note, "⏳ Queued: a turn is running in this channel (%d waiting).",
                 c->queued_n);
    else
        snprintf(note, sizeof note, "🛑 Too many messages waiting in this channel; dropped.");
    say(c, m->msg_id, note);
}

int channels_new(const turn_ctx *ctx, channels **out)
{
    channels *cs = calloc(1, sizeof *cs);
    if (!cs)
        return -ENOMEM;
    cs->ctx = *ctx;
    *out = cs;
    return 0;
}

int channels_attach(channels *cs, adapter *a)
{
    receiver *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->cs = cs;
    r->ad = a;
    r->next = cs->receivers;
    cs->receivers = r;
    return a->ops->start(a, on_message, r);
}

void channels_cancel_all(channels *cs)
{
    for (chan *c = cs->list; c; c = c->next) {
        drop_queue(c);
        if (c->running)
            turn_cancel(c->running);
    }
}

int channels_running(const channels *cs)
{
    return cs->running;
}

void channels_free(channels *cs)
{
    while (cs->list) {
        chan *c = cs->list;
        cs->list = c->next;
        drop_queue(c);
        free(c->platform);
        free(c->channel);
        free(c);
    }
    while (cs->receivers) {
        receiver *r = cs->receivers;
        cs->receivers = r->next;
        free(r);
    }
    free(cs);
}

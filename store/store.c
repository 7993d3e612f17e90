/* store — codebot's Redis client: one hiredis 0.14 async connection driven by the bot's libuv
 * loop through hiredis' own adapter (hiredis/adapters/libuv.h).
 *
 * Lifetime rules of hiredis 0.14.1 and its libuv adapter, which this file relies on:
 * - redisAsyncConnect()/redisAsyncConnectUnix() return a context with ->err set when the
 *   connect fails at once (typical for a unix socket nobody listens on); we free it with
 *   redisAsyncFree() before attaching, so no poll handle exists yet.
 * - redisLibuvAttach() mallocs a redisLibuvEvents holding the uv_poll_t. hiredis owns it: when
 *   the context goes away the adapter's cleanup hook uv_close()s the poll handle and frees it
 *   in the close callback. We never touch it; the loop must keep running after store_close()
 *   (or be run once more) for that memory to be released.
 * - Nothing is polled until a command is queued, so the connection is only noticed once the
 *   handshake (AUTH, SELECT, PING) is queued; the connect callback fires on the first write
 *   event. On a failed connect hiredis calls onConnect(REDIS_ERR), then runs every queued
 *   callback with a NULL reply and frees the context; onDisconnect is meant only for a
 *   context that was connected (the store does not depend on that: it ignores callbacks of a
 *   context it already forgot). After either callback the context is gone: never touch it.
 * - When an established connection drops, hiredis runs every pending reply callback with a
 *   NULL reply (that is how an in-flight command learns it failed: -EIO), then onDisconnect,
 *   then frees the context, all in the same call stack. redisAsyncFree() from inside a reply
 *   callback only marks the context; it is freed when that callback returns, still in the same
 *   call stack. redisAsyncFree() must never run inside onConnect (hiredis keeps using the
 *   context after it), so onConnect only records state.
 * - The 0.14 adapter ignores poll errors (status != 0), and libuv stops a poll handle that
 *   reports one (EPOLLERR: a peer that closed with our command unread, a refused TCP
 *   connect). hiredis would then never learn the connection is dead and every later call
 *   would hang. So after redisLibuvAttach() the store wraps the adapter's add/del hooks: they
 *   run unchanged, then restart the same poll handle with poll_cb(), which is the adapter's
 *   callback except that on an error it lets hiredis read, so hiredis sees the error and
 *   tears the connection down. Later hiredis versions fixed their adapter the same way.
 *   Every connect attempt is also bounded by our own timer (black-holed hosts).
 * So the store forgets s->ac the moment it learns the context is dying, checks `ac == s->ac`
 * in every hiredis callback, and frees itself only from the close callback of its own handles,
 * which the loop runs after any hiredis call stack has unwound.
 *
 * Outages. Calls never wait long for Redis: only while the first connect attempt is under way
 * (at most 5 s) are they held, and sent on connecting; once Redis is known to be down, reads and
 * dedup answer at once (deferred to the loop's idle phase, never inside the call) with
 * -ECONNREFUSED and empty data. Writes (history append and clear, sandbox set) answer -ECONNREFUSED
 * the same way but are also kept, in order, in a queue of at most QUEUE_MAX commands and sent when
 * the connection is back, so a short outage loses nothing; when the queue is full further writes
 * answer -ENOBUFS and are dropped. A write that was in flight when the connection dropped is
 * not re-sent (it may have been applied): its callback gets -EIO. A connection on which
 * commands stay unanswered for 10 s is dropped the same way. One warning per outage, one
 * info line when it ends; reconnects back off from 0.5 s doubling to 30 s. */
#include "store/store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "store/redis_url.h"

#define MOD "store"
#define QUEUE_MAX 1000
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define CONNECT_TIMEOUT_MS 5000
#define REPLY_TIMEOUT_MS 10000
#define MAX_TURNS_DEFAULT 200
#define MAX_CMDS 5
#define MAX_ARGS 20

enum op_kind { OP_LOAD, OP_APPEND, OP_CLEAR, OP_LEN, OP_SBX_GET, OP_SBX_SET, OP_DEDUP };

typedef struct op op;
struct op {
    op *next;  /* in the queue */
    op *dnext; /* in the list of deferred callbacks */
    store *s;
    enum op_kind kind;
    int is_write;
    int cb_pending; /* the user callback has not fired yet */
    int active;     /* in the queue or in flight */
    int in_defer;
    int defer_status;
    union {
        store_history_cb hist;
        store_done_cb done;
        store_string_cb str;
        store_len_cb len;
        store_sandbox_cb sbx;
    } cb;
    void *ud;
    int ncmd;
    int argc[MAX_CMDS];
    int nargs;
    char *argv[MAX_ARGS];
    size_t argvlen[MAX_ARGS];
};

typedef struct resolver {
    uv_getaddrinfo_t req;
    store *s; /* NULL once the store gave up on this lookup */
} resolver;

struct store {
    uv_loop_t *loop;
    redis_url url;
    char where[160]; /* the URL for logs, without the password */
    size_t budget;
    long max_turns;
    redisAsyncContext *ac; /* NULL unless a connection is being made or is up */
    resolver *resolving;
    int ready;   /* connected, handshake done */
    int down;    /* an outage is known: calls answer at once */
    int warned;  /* the outage warning was logged */
    int dropped; /* the queue-full warning was logged in this outage */
    int closing;
    unsigned backoff_ms;
    uv_timer_t timer; /* reconnect backoff, connect timeout */
    uv_timer_t flush_timer;
    uv_idle_t idle; /* delivers deferred callbacks */
    int open_handles;
    op *qhead, *qtail; /* not yet sent */
    int qlen;
    op *dhead, *dtail;
    int queued_writes, inflight_writes, inflight;
    int flush_expired;
};

static void connect_start(store *s);
static void went_down(store *s, const char *reason);
static void on_timer(uv_timer_t *t);

/* Handshake steps, as reply privdata. */
static char step_auth[] = "AUTH", step_select[] = "SELECT", step_ping[] = "PING";

/* ---- ops ---- */

static op *op_new(store *s, enum op_kind kind, int is_write, void *ud)
{
    op *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->s = s;
    o->kind = kind;
    o->is_write = is_write;
    o->cb_pending = 1;
    o->ud = ud;
    return o;
}

static void op_free(op *o)
{
    for (int i = 0; i < o->nargs; i++)
        free(o->argv[i]);
    free(o);
}

static void op_release(op *o)
{
    if (!o->active && !o->in_defer)
        op_free(o);
}

/* Starts a new command in O. */
static void op_cmd(op *o)
{
    o->argc[o->ncmd++] = 0;
}

static int op_arg(op *o, const char *p, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        return -ENOMEM;
    memcpy(c, p, n);
    c[n] = '\0';
    if (o->nargs >= MAX_ARGS) {
        free(c);
        return -E2BIG;
    }
    o->argv[o->nargs] = c;
    o->argvlen[o->nargs++] = n;
    o->argc[o->ncmd - 1]++;
    return 0;
}

static int op_str(op *o, const char *p)
{
    return op_arg(o, p, strlen(p));
}

/* Fires O's user callback with STATUS and the data in REPLY (NULL: empty data). */
static void op_fire(op *o, int status, const void *data, long long n)
{
    if (!o->cb_pending)
        return;
    o->cb_pending = 0;
    switch (o->kind) {
    case OP_LOAD: {
        static const store_history empty = {0};
        if (o->cb.hist)
            o->cb.hist(o->ud, status, data ? data : &empty);
        break;
    }
    case OP_APPEND:
    case OP_CLEAR:
    case OP_SBX_SET:
    case OP_DEDUP:
        if (o->cb.done)
            o->cb.done(o->ud, status);
        break;
    case OP_LEN:
        if (o->cb.len)
            o->cb.len(o->ud, status, n);
        break;
    case OP_SBX_GET: {
        const char *const *v = data;
        if (o->cb.sbx)
            o->cb.sbx(o->ud, status, v ? v[0] : NULL, v ? v[1] : NULL);
        break;
    }
    }
}

/* ---- deferred callbacks ---- */

static void on_idle(uv_idle_t *h)
{
    store *s = h->data;
    op *list = s->dhead;
    s->dhead = s->dtail = NULL;
    uv_idle_stop(&s->idle);
    while (list) {
        op *o = list;
        list = o->dnext;
        o->in_defer = 0;
        op_fire(o, o->defer_status, NULL, 0);
        op_release(o);
    }
}

static void op_defer(op *o, int status)
{
    store *s = o->s;
    if (!o->cb_pending || o->in_defer)
        return;
    o->in_defer = 1;
    o->defer_status = status;
    o->dnext = NULL;
    if (s->dtail)
        s->dtail->dnext = o;
    else
        s->dhead = o;
    s->dtail = o;
    uv_idle_start(&s->idle, on_idle);
}

/* ---- the queue ---- */

static void queue_push(store *s, op *o)
{
    o->next = NULL;
    o->active = 1;
    if (s->qtail)
        s->qtail->next = o;
    else
        s->qhead = o;
    s->qtail = o;
    s->qlen++;
    s->queued_writes += o->is_write;
}

static op *queue_pop(store *s)
{
    op *o = s->qhead;
    if (!o)
        return NULL;
    s->qhead = o->next;
    if (!s->qhead)
        s->qtail = NULL;
    s->qlen--;
    s->queued_writes -= o->is_write;
    o->next = NULL;
    o->active = 0;
    return o;
}

/* Reads held while the first connect was under way get their answer now; writes stay queued
 * but their callers hear that they are not saved yet. */
static void queue_fail_reads(store *s)
{
    op **pp = &s->qhead, *last = NULL;
    while (*pp) {
        op *o = *pp;
        op_defer(o, -ECONNREFUSED);
        if (o->is_write) {
            last = o;
            pp = &o->next;
            continue;
        }
        *pp = o->next;
        s->qlen--;
        o->active = 0;
        op_release(o);
    }
    s->qtail = last;
}

/* ---- replies ---- */

/* Number of characters (code points; stray bytes count as one) in S[0..N). */
static size_t count_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* Byte offset of the start of character number K in S[0..N) (N when K is past the end). */
static size_t char_offset(const char *s, size_t n, size_t k)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (c == k)
                return i;
            c++;
        }
    }
    return n;
}

static size_t marker_chars(size_t omitted)
{
    char m[64];
    int len = snprintf(m, sizeof(m), "\n[... %zu characters left out ...]\n", omitted);
    return len > 0 ? (size_t)len : 0;
}

/* Appends S[0..N) to OUT, cut to at most MAX characters by leaving out its middle behind a
 * marker saying how much is missing. */
static int cut_middle(strbuf *out, const char *s, size_t n, size_t max)
{
    size_t chars = count_chars(s, n);
    if (chars <= max)
        return strbuf_append(out, s, n);
    size_t mlen = marker_chars(chars);
    if (max < mlen + 2) /* no room for a marker: the head is all that fits */
        return strbuf_append(out, s, char_offset(s, n, max));
    size_t keep = max - mlen;
    size_t head = keep - keep / 2, tail = keep / 2;
    size_t tail_at = char_offset(s, n, chars - tail);
    int rc = strbuf_append(out, s, char_offset(s, n, head));
    if (!rc)
        rc = strbuf_printf(out, "\n[... %zu characters left out ...]\n", chars - keep);
    if (!rc)
        rc = strbuf_append(out, s + tail_at, n - tail_at);
    return rc;
}

typedef struct entry {
    int is_user;
    const char *content;
    size_t len;   /* bytes */
    size_t chars; /* characters */
} entry;

static int parse_entry(const redisReply *r, cJSON **json, entry *e)
{
    if (r->type != REDIS_REPLY_STRING)
        return -1;
    cJSON *j = cJSON_ParseWithLength(r->str, r->len);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(j, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content");
    if (!cJSON_IsString(role) || !cJSON_IsString(content) ||
        (strcmp(role->valuestring, "user") != 0 && strcmp(role->valuestring, "assistant") != 0)) {
        cJSON_Delete(j);
        return -1;
    }
    *json = j;
    e->is_user = strcmp(role->valuestring, "user") == 0;
    e->content = content->valuestring;
    e->len = strlen(e->content);
    e->chars = count_chars(e->content, e->len);
    return 0;
}

/* Finds the user+assistant pairs of E[0..N): PAIRS gets the index of each pair's user turn,
 * newest first (*NPAIRS of them); turns without a partner are counted in *ORPHANS. Returns how
 * many of the newest pairs fit the budget together (all of them when the budget is 0). */
static size_t pick_pairs(const entry *e, size_t n, size_t budget, size_t *pairs, size_t *npairs,
                         size_t *orphans)
{
    size_t m = 0;
    *orphans = 0;
    for (size_t i = n; i > 0;) {
        i--;
        if (!e[i].is_user && i > 0 && e[i - 1].is_user) {
            pairs[m++] = i - 1;
            i--;
        } else {
            (*orphans)++;
        }
    }
    *npairs = m;
    size_t total = 0, k = 0;
    for (; k < m; k++) {
        size_t c = e[pairs[k]].chars + e[pairs[k] + 1].chars;
        if (budget && total + c > budget)
            break;
        total += c;
    }
    return k;
}

static void deliver_history(op *o, const redisReply *r)
{
    store *s = o->s;
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    cJSON **json = calloc(n + 1, sizeof(*json));
    entry *e = calloc(n + 1, sizeof(*e));
    size_t *pairs = calloc(n / 2 + 1, sizeof(*pairs));
    store_turn *turns = calloc(n + 2, sizeof(*turns));
    strbuf cut[2] = {{0}, {0}};
    if (!json || !e || !pairs || !turns) {
        log_error(MOD, "out of memory loading history");
        op_fire(o, -ENOMEM, NULL, 0);
        goto out;
    }
    size_t ne = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (parse_entry(r->element[i], &json[ne], &e[ne]) == 0)
            ne++;
        else
            bad++;
    }
    if (bad)
        log_warn(MOD, "history: dropped %zu malformed entr%s (not {\"role\",\"content\"} JSON)",
                 bad, bad == 1 ? "y" : "ies");
    size_t npairs, orphans;
    size_t k = pick_pairs(e, ne, s->budget, pairs, &npairs, &orphans);
    if (orphans)
        log_debug(MOD, "history: skipped %zu turn(s) without a partner", orphans);
    size_t nt = 0;
    if (k == 0 && npairs > 0) {
        /* The newest pair alone is over budget: it is cut so the LLM context still fits. */
        const entry *u = &e[pairs[0]], *a = &e[pairs[0] + 1];
        size_t umax = u->chars, amax;
        if (u->chars <= s->budget) {
            amax = s->budget - u->chars;
        } else {
            amax = a->chars < s->budget / 2 ? a->chars : s->budget / 2;
            umax = s->budget - amax;
        }
        if (cut_middle(&cut[0], u->content, u->len, umax) ||
            cut_middle(&cut[1], a->content, a->len, amax)) {
            op_fire(o, -ENOMEM, NULL, 0);
            goto out;
        }
        turns[nt++] = (store_turn){"user", strbuf_str(&cut[0])};
        turns[nt++] = (store_turn){"assistant", strbuf_str(&cut[1])};
    }
    for (size_t j = k; j > 0; j--) {
        turns[nt++] = (store_turn){"user", e[pairs[j - 1]].content};
        turns[nt++] = (store_turn){"assistant", e[pairs[j - 1] + 1].content};
    }
    store_history h = {turns, nt};
    op_fire(o, 0, &h, 0);
out:
    for (size_t i = 0; json && i < n; i++)
        cJSON_Delete(json[i]);
    strbuf_free(&cut[0]);
    strbuf_free(&cut[1]);
    free(json);
    free(e);
    free(pairs);
    free(turns);
}

static const char *op_name(enum op_kind k)
{
    static const char *names[] = {"history load",   "history append", "history clear",
                                  "history length", "sandbox get",    "sandbox set",
                                  "dedup"};
    return names[k];
}

/* A reply of the right shape for O, or -EPROTO. */
static int check_reply(op *o, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        log_warn(MOD, "Redis refused %s: %.*s", op_name(o->kind), (int)r->len, r->str);
        return -EPROTO;
    }
    int ok = 1;
    switch (o->kind) {
    case OP_LOAD:
        ok = r->type == REDIS_REPLY_ARRAY;
        break;
    case OP_APPEND:
        ok = r->type == REDIS_REPLY_ARRAY;
        for (size_t i = 0; ok && i < r->elements; i++)
            ok = r->element[i]->type != REDIS_REPLY_ERROR;
        break;
    case OP_CLEAR:
    case OP_LEN:
    case OP_SBX_SET:
        ok = r->type == REDIS_REPLY_INTEGER;
        break;
    case OP_SBX_GET:
        ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2;
        break;
    case OP_DEDUP:
        ok = r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_NIL;
        break;
    }
    if (!ok)
        log_warn(MOD, "unexpected Redis reply to %s (type %d)", op_name(o->kind), r->type);
    return ok ? 0 : -EPROTO;
}

static void deliver(op *o, const redisReply *r)
{
    int rc = check_reply(o, r);
    if (rc) {
        op_fire(o, rc, NULL, 0);
        return;
    }
    switch (o->kind) {
    case OP_LOAD:
        deliver_history(o, r);
        break;
    case OP_LEN:
        op_fire(o, 0, NULL, r->integer);
        break;
    case OP_SBX_GET: {
        const char *v[2];
        for (int i = 0; i < 2; i++)
            v[i] = r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : NULL;
        op_fire(o, 0, v[0] ? v : NULL, 0);
        break;
    }
    case OP_DEDUP:
        op_fire(o, r->type == REDIS_REPLY_STATUS ? 1 : 0, NULL, 0);
        break;
    default:
        op_fire(o, 0, NULL, 0);
        break;
    }
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    op *o = priv;
    store *s = o->s;
    o->active = 0;
    s->inflight_writes -= o->is_write;
    s->inflight--;
    if (reply && s->ac == ac && s->ready) {
        /* Progress: the watchdog only fires when Redis stops answering altogether. */
        if (s->inflight > 0)
            uv_timer_start(&s->timer, on_timer, REPLY_TIMEOUT_MS, 0);
        else
            uv_timer_stop(&s->timer);
    }
    if (!reply) {
        /* The connection is being torn down: the store learns it here, before anything runs
         * a user callback that might call back into the store. */
        if (s->ac == ac) {
            s->ac = NULL;
            s->ready = 0;
            went_down(s, ac->errstr[0] ? ac->errstr : "connection lost");
        }
        op_fire(o, s->closing ? -ECANCELED : -EIO, NULL, 0);
    } else {
        deliver(o, reply);
    }
    op_release(o);
}

/* ---- sending ---- */

static void op_send(store *s, op *o)
{
    int argi = 0;
    for (int c = 0; c < o->ncmd; c++) {
        int last = c == o->ncmd - 1;
        if (redisAsyncCommandArgv(s->ac, last ? on_reply : NULL, last ? o : NULL, o->argc[c],
                                  (const char **)&o->argv[argi], &o->argvlen[argi]) != REDIS_OK) {
            /* Only on out of memory: the connection may hold half a transaction, so drop it. */
            log_error(MOD, "could not queue a Redis command (%s)", op_name(o->kind));
            op_defer(o, -ENOMEM);
            op_release(o);
            redisAsyncContext *ac = s->ac;
            s->ac = NULL;
            s->ready = 0;
            went_down(s, "could not queue a command");
            redisAsyncFree(ac);
            return;
        }
        argi += o->argc[c];
    }
    o->active = 1;
    s->inflight_writes += o->is_write;
    /* A Redis that stops answering (stopped, overloaded, a dead peer that sent no reset)
     * would leave the caller waiting forever: the connection is dropped after a while. */
    if (s->inflight++ == 0)
        uv_timer_start(&s->timer, on_timer, REPLY_TIMEOUT_MS, 0);
}

static void queue_drain(store *s)
{
    while (s->ready && s->qhead) {
        op *o = queue_pop(s);
        op_send(s, o);
    }
}

/* Hands O to Redis, the queue or the deferred list, depending on the connection. */
static void op_submit(store *s, op *o)
{
    if (s->ready) {
        queue_push(s, o); /* behind anything still queued */
        queue_drain(s);
        return;
    }
    if (!s->down || o->is_write) {
        if (s->qlen >= QUEUE_MAX) {
            if (!s->dropped)
                log_warn(MOD,
                         "Redis write queue full (%d commands): dropping writes until "
                         "Redis is back",
                         QUEUE_MAX);
            s->dropped = 1;
            op_defer(o, -ENOBUFS);
            return;
        }
        queue_push(s, o);
        if (s->down)
            op_defer(o, -ECONNREFUSED);
        return;
    }
    op_defer(o, -ECONNREFUSED);
}

/* ---- connection ---- */

static void went_down(store *s, const char *reason)
{
    s->ready = 0;
    if (s->closing)
        return;
    if (!s->warned) {
        log_warn(MOD, "Redis unavailable: history is not being saved (will retry) [%s: %s]",
                 s->where, reason);
        s->warned = 1;
    } else {
        log_debug(MOD, "Redis still unavailable [%s: %s]", s->where, reason);
    }
    s->down = 1;
    queue_fail_reads(s);
    uv_timer_start(&s->timer, on_timer, s->backoff_ms, 0);
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

/* Gives up on the connection being made or in use (not from inside onConnect). */
static void conn_abort(store *s, const char *reason)
{
    redisAsyncContext *ac = s->ac;
    s->ac = NULL;
    if (s->resolving) {
        s->resolving->s = NULL;
        uv_cancel((uv_req_t *)&s->resolving->req);
        s->resolving = NULL;
    }
    went_down(s, reason);
    if (ac)
        redisAsyncFree(ac);
}

static void became_ready(store *s)
{
    s->ready = 1;
    s->down = 0;
    s->dropped = 0;
    s->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_stop(&s->timer);
    if (s->warned)
        log_info(MOD, "Redis connection restored [%s]", s->where);
    else
        log_info(MOD, "connected to Redis at %s", s->where);
    s->warned = 0;
    queue_drain(s);
}

/* Handshake replies: AUTH and SELECT must say OK, PING ends the handshake. */
static void on_handshake(redisAsyncContext *ac, void *reply, void *priv)
{
    store *s = ac->data;
    redisReply *r = reply;
    if (s->ac != ac || s->closing)
        return;
    if (!r) {
        s->ac = NULL;
        went_down(s, ac->errstr[0] ? ac->errstr : "connection closed during the handshake");
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        char reason[256];
        snprintf(reason, sizeof(reason), "%s refused: %.*s", (const char *)priv, (int)r->len,
                 r->str);
        conn_abort(s, reason);
        return;
    }
    if (priv == step_ping)
        became_ready(s);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    store *s = ac->data;
    if (status == REDIS_OK || s->ac != ac || s->closing)
        return;
    s->ac = NULL; /* hiredis frees it after this callback */
    went_down(s, ac->errstr[0] ? ac->errstr : "connect failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    store *s = ac->data;
    if (s->ac != ac || s->closing)
        return;
    s->ac = NULL;
    went_down(s, ac->errstr[0] ? ac->errstr : "disconnected");
}

static int handshake(store *s)
{
    const char *argv[3];
    size_t len[3];
    int argc = 0;
    if (s->url.password) {
        argv[argc] = "AUTH", len[argc++] = 4;
        if (s->url.user)
            argv[argc] = s->url.user, len[argc] = strlen(s->url.user), argc++;
        argv[argc] = s->url.password, len[argc] = strlen(s->url.password), argc++;
        if (redisAsyncCommandArgv(s->ac, on_handshake, step_auth, argc, argv, len) != REDIS_OK)
            return -1;
    }
    if (s->url.db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", s->url.db);
        argv[0] = "SELECT", len[0] = 6;
        argv[1] = db, len[1] = strlen(db);
        if (redisAsyncCommandArgv(s->ac, on_handshake, step_select, 2, argv, len) != REDIS_OK)
            return -1;
    }
    argv[0] = "PING", len[0] = 4;
    return redisAsyncCommandArgv(s->ac, on_handshake, step_ping, 1, argv, len) == REDIS_OK ? 0 : -1;
}

/* ---- the libuv adapter, with poll errors passed on (see the top of the file) ---- */

static void poll_cb(uv_poll_t *handle, int status, int events)
{
    redisLibuvEvents *p = handle->data;
    if (status != 0) {
        /* The read fails with the socket's error and hiredis disconnects. */
        if (p->context)
            redisAsyncHandleRead(p->context);
        return;
    }
    if (p->context && (events & UV_READABLE))
        redisAsyncHandleRead(p->context);
    if (p->context && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->context);
}

static void repoll(void *privdata)
{
    redisLibuvEvents *p = privdata;
    if (p->events)
        uv_poll_start(&p->handle, p->events, poll_cb);
}

static void hook_add_read(void *privdata)
{
    redisLibuvAddRead(privdata);
    repoll(privdata);
}

static void hook_del_read(void *privdata)
{
    redisLibuvDelRead(privdata);
    repoll(privdata);
}

static void hook_add_write(void *privdata)
{
    redisLibuvAddWrite(privdata);
    repoll(privdata);
}

static void hook_del_write(void *privdata)
{
    redisLibuvDelWrite(privdata);
    repoll(privdata);
}

static void connect_to(store *s, const char *ip)
{
    redisAsyncContext *ac =
        s->url.is_unix ? redisAsyncConnectUnix(s->url.path) : redisAsyncConnect(ip, s->url.port);
    if (!ac) {
        went_down(s, "out of memory");
        return;
    }
    if (ac->err) {
        char reason[128];
        snprintf(reason, sizeof(reason), "%s", ac->errstr);
        redisAsyncFree(ac);
        went_down(s, reason);
        return;
    }
    ac->data = s;
    if (redisLibuvAttach(ac, s->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        went_down(s, "could not watch the socket");
        return;
    }
    ac->ev.addRead = hook_add_read;
    ac->ev.delRead = hook_del_read;
    ac->ev.addWrite = hook_add_write;
    ac->ev.delWrite = hook_del_write;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    s->ac = ac;
    if (handshake(s) != 0)
        conn_abort(s, "could not queue the handshake");
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    resolver *r = req->data;
    store *s = r->s;
    char ip[64] = "";
    /* IPv4 first, as hiredis itself does when it resolves. */
    const struct addrinfo *pick = res;
    for (const struct addrinfo *a = res; status == 0 && a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    }
    if (status == 0 && pick)
        uv_ip_name(pick->ai_addr, ip, sizeof(ip));
    uv_freeaddrinfo(res);
    free(r);
    if (!s)
        return;
    s->resolving = NULL;
    if (status != 0 || !ip[0]) {
        char reason[160];
        snprintf(reason, sizeof(reason), "cannot resolve %s: %s", s->url.host,
                 status ? uv_strerror(status) : "no address");
        went_down(s, reason);
        return;
    }
    connect_to(s, ip);
}

/* Host names are resolved on libuv's thread pool: hiredis would block the loop on DNS. */
static void resolve(store *s)
{
    resolver *r = calloc(1, sizeof(*r));
    if (!r) {
        went_down(s, "out of memory");
        return;
    }
    r->s = s;
    r->req.data = r;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = uv_getaddrinfo(s->loop, &r->req, on_resolved, s->url.host, NULL, &hints);
    if (rc) {
        free(r);
        went_down(s, uv_strerror(rc));
        return;
    }
    s->resolving = r;
}

static void on_timer(uv_timer_t *t)
{
    store *s = t->data;
    if (s->ready)
        conn_abort(s, "no reply for 10 s");
    else if (s->ac || s->resolving)
        conn_abort(s, "connect timed out");
    else
        connect_start(s);
}

static void connect_start(store *s)
{
    uv_timer_start(&s->timer, on_timer, CONNECT_TIMEOUT_MS, 0);
    if (s->url.is_unix)
        connect_to(s, NULL);
    else
        resolve(s);
}

/* ---- open / close ---- */

static int read_max_turns(long *out)
{
    const char *v = getenv("CODEBOT_HISTORY_MAX_TURNS");
    *out = MAX_TURNS_DEFAULT;
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < 2 || n > 1000000) {
        log_error(MOD, "CODEBOT_HISTORY_MAX_TURNS must be a number from 2 to 1000000, not '%s'", v);
        return -EINVAL;
    }
    *out = n;
    return 0;
}

int store_open(uv_loop_t *loop, const char *url, size_t history_budget, store **out)
{
    const char *why;
    *out = NULL;
    store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    int rc = redis_url_parse(url, &s->url, &why);
    if (rc == -EINVAL)
        log_error(MOD,
                  "REDIS_URL is invalid: %s (expected redis://[:password@]host[:port][/db] or "
                  "unix:///path/to/socket[?db=N])",
                  why);
    if (!rc)
        rc = read_max_turns(&s->max_turns);
    if (rc) {
        redis_url_free(&s->url);
        free(s);
        return rc;
    }
    if (s->url.password)
        log_add_secret(s->url.password);
    redis_url_describe(&s->url, s->where, sizeof(s->where));
    s->loop = loop;
    s->budget = history_budget;
    s->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(loop, &s->timer);
    uv_timer_init(loop, &s->flush_timer);
    uv_idle_init(loop, &s->idle);
    s->timer.data = s->flush_timer.data = s->idle.data = s;
    s->open_handles = 3;
    connect_start(s);
    *out = s;
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    store *s = h->data;
    if (--s->open_handles == 0) {
        redis_url_free(&s->url);
        free(s);
    }
}

void store_close(store *s)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    s->ready = 0;
    while (s->qhead) {
        op *o = queue_pop(s);
        op_fire(o, -ECANCELED, NULL, 0);
        op_release(o);
    }
    while (s->dhead) {
        op *o = s->dhead;
        s->dhead = o->dnext;
        o->in_defer = 0;
        op_fire(o, -ECANCELED, NULL, 0);
        op_release(o);
    }
    s->dtail = NULL;
    /* In-flight commands get -ECANCELED from their NULL replies, now or (when called from a
     * reply callback) as soon as that callback returns. */
    conn_abort(s, "closing");
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->flush_timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->idle, on_handle_closed);
}

int store_connected(const store *s)
{
    return s && s->ready;
}

static void on_flush_timeout(uv_timer_t *t)
{
    store *s = t->data;
    s->flush_expired = 1;
}

void store_flush(store *s, unsigned timeout_ms)
{
    if (!s || s->closing)
        return;
    s->flush_expired = 0;
    uv_timer_start(&s->flush_timer, on_flush_timeout, timeout_ms, 0);
    while (!s->flush_expired && (s->queued_writes > 0 || s->inflight_writes > 0))
        uv_run(s->loop, UV_RUN_ONCE);
    uv_timer_stop(&s->flush_timer);
    if (s->queued_writes > 0 || s->inflight_writes > 0)
        log_warn(MOD, "%d Redis write(s) still unanswered after %u ms",
                 s->queued_writes + s->inflight_writes, timeout_ms);
}

/* ---- calls ---- */

static int key_arg(op *o, const char *platform, const char *mid, const char *what)
{
    strbuf k = {0};
    int rc = strbuf_printf(&k, "codebot:%s:%s:%s", platform, mid, what);
    if (!rc)
        rc = op_arg(o, k.data, k.len);
    strbuf_free(&k);
    return rc;
}

/* Submits O if building it worked (RC == 0); otherwise frees it and returns RC. */
static int finish(store *s, op *o, int rc)
{
    if (rc) {
        op_free(o);
        return rc;
    }
    op_submit(s, o);
    return 0;
}

static int usable(const store *s, const char *platform, const char *channel)
{
    return s && !s->closing && platform && channel;
}

int store_history_load(store *s, const char *platform, const char *channel, store_history_cb cb,
                       void *ud)
{
    if (!usable(s, platform, channel))
        return -EINVAL;
    op *o = op_new(s, OP_LOAD, 0, ud);
    if (!o)
        return -ENOMEM;
    o->cb.hist = cb;
    op_cmd(o);
    int rc = op_str(o, "LRANGE");
    rc = rc ? rc : key_arg(o, platform, channel, "history");
    rc = rc ? rc : op_str(o, "0");
    rc = rc ? rc : op_str(o, "-1");
    return finish(s, o, rc);
}

static int turn_json(op *o, const char *role, const char *content)
{
    cJSON *j = cJSON_CreateObject();
    if (!j || !cJSON_AddStringToObject(j, "role", role) ||
        !cJSON_AddStringToObject(j, "content", content)) {
        cJSON_Delete(j);
        return -ENOMEM;
    }
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text)
        return -ENOMEM;
    int rc = op_str(o, text);
    free(text);
    return rc;
}

int store_history_append(store *s, const char *platform, const char *channel, const char *user,
                         const char *assistant, store_done_cb cb, void *ud)
{
    if (!usable(s, platform, channel) || !user || !assistant)
        return -EINVAL;
    op *o = op_new(s, OP_APPEND, 1, ud);
    if (!o)
        return -ENOMEM;
    o->cb.done = cb;
    char trim[24];
    snprintf(trim, sizeof(trim), "%ld", -s->max_turns);
    op_cmd(o);
    int rc = op_str(o, "MULTI");
    const char *roles[2] = {"user", "assistant"}, *texts[2] = {user, assistant};
    for (int i = 0; i < 2 && !rc; i++) {
        op_cmd(o);
        rc = op_str(o, "RPUSH");
        rc = rc ? rc : key_arg(o, platform, channel, "history");
        rc = rc ? rc : turn_json(o, roles[i], texts[i]);
    }
    if (!rc) {
        op_cmd(o);
        rc = op_str(o, "LTRIM");
        rc = rc ? rc : key_arg(o, platform, channel, "history");
        rc = rc ? rc : op_str(o, trim);
        rc = rc ? rc : op_str(o, "-1");
    }
    if (!rc) {
        op_cmd(o);
        rc = op_str(o, "EXEC");
    }
    return finish(s, o, rc);
}

static int simple(store *s, enum op_kind kind, int is_write, const char *cmd, const char *platform,
                  const char *channel, const char *what, void *ud, op **out)
{
    if (!usable(s, platform, channel))
        return -EINVAL;
    op *o = op_new(s, kind, is_write, ud);
    if (!o)
        return -ENOMEM;
    op_cmd(o);
    int rc = op_str(o, cmd);
    rc = rc ? rc : key_arg(o, platform, channel, what);
    if (rc) {
        op_free(o);
        return rc;
    }
    *out = o;
    return 0;
}

int store_history_clear(store *s, const char *platform, const char *channel, store_done_cb cb,
                        void *ud)
{
    op *o;
    int rc = simple(s, OP_CLEAR, 1, "DEL", platform, channel, "history", ud, &o);
    if (rc)
        return rc;
    o->cb.done = cb;
    return finish(s, o, 0);
}

int store_history_len(store *s, const char *platform, const char *channel, store_len_cb cb,
                      void *ud)
{
    op *o;
    int rc = simple(s, OP_LEN, 0, "LLEN", platform, channel, "history", ud, &o);
    if (rc)
        return rc;
    o->cb.len = cb;
    return finish(s, o, 0);
}

int store_sandbox_lookup(store *s, const char *platform, const char *channel, store_sandbox_cb cb,
                         void *ud)
{
    op *o;
    int rc = simple(s, OP_SBX_GET, 0, "HMGET", platform, channel, "sandbox", ud, &o);
    if (rc)
        return rc;
    o->cb.sbx = cb;
    rc = op_str(o, "id");
    rc = rc ? rc : op_str(o, "host");
    return finish(s, o, rc);
}

typedef struct sbx_get_ud {
    store_string_cb cb;
    void *ud;
} sbx_get_ud;

static void sbx_get_done(void *ud, int status, const char *id, const char *host)
{
    sbx_get_ud g = *(sbx_get_ud *)ud;
    free(ud);
    if (g.cb)
        g.cb(g.ud, status, id);
}

int store_sandbox_get(store *s, const char *platform, const char *channel, store_string_cb cb,
                      void *ud)
{
    sbx_get_ud *g = malloc(sizeof(*g));
    if (!g)
        return -ENOMEM;
    *g = (sbx_get_ud){cb, ud};
    int rc = store_sandbox_lookup(s, platform, channel, sbx_get_done, g);
    if (rc)
        free(g);
    return rc;
}

int store_sandbox_set(store *s, const char *platform, const char *channel, const char *id,
                      const char *host, store_done_cb cb, void *ud)
{
    if (!id || !host)
        return -EINVAL;
    op *o;
    int rc = simple(s, OP_SBX_SET, 1, "HSET", platform, channel, "sandbox", ud, &o);
    if (rc)
        return rc;
    o->cb.done = cb;
    rc = op_str(o, "id");
    rc = rc ? rc : op_str(o, id);
    rc = rc ? rc : op_str(o, "host");
    rc = rc ? rc : op_str(o, host);
    return finish(s, o, rc);
}

int store_dedup(store *s, const char *platform, const char *key, unsigned ttl_s, store_done_cb cb,
                void *ud)
{
    if (ttl_s == 0 || !key)
        return -EINVAL;
    op *o;
    int rc = simple(s, OP_DEDUP, 0, "SET", platform, "dedup", key, ud, &o);
    if (rc)
        return rc;
    o->cb.done = cb;
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%u", ttl_s);
    rc = op_str(o, "1");
    rc = rc ? rc : op_str(o, "NX");
    rc = rc ? rc : op_str(o, "EX");
    rc = rc ? rc : op_str(o, ttl);
    return finish(s, o, rc);
}

/* http — libcurl's multi_socket API on libuv, in the shape of curl's own "multi-uv" example.
 * curl tells us which sockets to watch and when to wake it; libuv tells curl which socket
 * is ready. Completed transfers are collected with curl_multi_info_read after each
 * curl_multi_socket_action.
 *
 * Re-entrancy is the delicate part: libcurl forbids removing a handle from inside its own
 * callbacks, and our callers may cancel or free from inside theirs. So every path that
 * calls out to a caller runs with `depth` raised; a cancel or free at depth > 0 only marks
 * the request (or the client) dead, and `leave` reaps the dead once the outermost frame
 * returns. Each request owns a uv_timer for its idle timeout, so its memory goes in that
 * timer's close callback; the client goes when its last handle has closed. */
#include "bot/http.h"

#include "bot/curl_api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/strbuf.h"

typedef struct http_sock {
    uv_poll_t poll;
    http_client *c;
    curl_socket_t fd;
    struct http_sock *next;
} http_sock;

struct http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    http_req *reqs;
    http_sock *socks;
    int depth;     /* frames that may call a callback are on the stack */
    int in_curl;   /* inside curl_multi_socket_action: no add/remove allowed */
    int freeing;   /* http_client_free was called */
    int open;      /* libuv handles not yet closed */
    int torn_down; /* multi cleaned up, handles closing */
};

struct http_req {
    http_client *c;
    http_req *prev, *next;
    CURL *easy;
    struct curl_slist *hdrs;
    http_callbacks cb;
    void *ud;
    uv_timer_t idle;
    uint64_t idle_ms;
    strbuf head;  /* response header lines of the last header block, "\n"-separated */
    strbuf value; /* storage for http_req_header's answer */
    uint64_t body_bytes;
    int added;     /* in the multi handle */
    int need_add;  /* started inside a curl callback: added on the way out */
    int head_done; /* on_headers fired */
    int dead;      /* cancelled or finished: no callbacks, reap */
    char errbuf[CURL_ERROR_SIZE];
};

static void leave(http_client *c);

static void maybe_release(http_client *c)
{
    if (c->torn_down && c->open == 0)
        free(c);
}

static void handle_closed(uv_handle_t *h)
{
    http_client *c = h->data;
    c->open--;
    maybe_release(c);
}

static void sock_closed(uv_handle_t *h)
{
    http_sock *s = h->data;
    http_client *c = s->c;
    free(s);
    c->open--;
    maybe_release(c);
}

static void req_closed(uv_handle_t *h)
{
    http_req *r = h->data;
    http_client *c = r->c;
    strbuf_free(&r->head);
    strbuf_free(&r->value);
    free(r);
    c->open--;
    maybe_release(c);
}

static void unlink_req(http_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        r->c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void destroy_req(http_req *r)
{
    unlink_req(r);
    if (r->added)
        curl_multi_remove_handle(r->c->multi, r->easy);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    r->easy = NULL;
    r->hdrs = NULL;
    uv_close((uv_handle_t *)&r->idle, req_closed);
}

static void teardown(http_client *c)
{
    while (c->reqs)
        destroy_req(c->reqs);
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->socks) {
        http_sock *s = c->socks;
        c->socks = s->next;
        uv_close((uv_handle_t *)&s->poll, sock_closed);
    }
    c->torn_down = 1;
    uv_close((uv_handle_t *)&c->timer, handle_closed);
}

static void finish(http_req *r, int code, int idle_timeout, const char *error)
{
    if (r->dead)
        return;
    http_result res = {
        .http_status = 0,
        .curl_code = code,
        .idle_timeout = idle_timeout,
        .error = error,
        .body_bytes = r->body_bytes,
    };
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    res.http_status = (int)status;
    if (!r->head_done && status >= 200 && r->cb.on_headers) {
        r->head_done = 1;
        r->cb.on_headers(r->ud, r, (int)status);
    }
    if (r->dead)
        return;
    r->dead = 1;
    uv_timer_stop(&r->idle);
    r->cb.on_done(r->ud, r, &res);
}

static void check_done(http_client *c)
{
    CURLMsg *m;
    int left;
    while (c->multi && !c->freeing && (m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        http_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (!r || r->dead)
            continue;
        CURLcode code = m->data.result;
        const char *err = code == CURLE_OK ? ""
                          : r->errbuf[0]   ? r->errbuf
                                           : curl_easy_strerror(code);
        finish(r, (int)code, 0, err);
    }
}

static void add_pending(http_client *c)
{
    for (http_req *r = c->reqs; r; r = r->next) {
        if (!r->need_add || r->dead)
            continue;
        r->need_add = 0;
        CURLMcode mc = curl_multi_add_handle(c->multi, r->easy);
        if (mc != CURLM_OK) {
            log_error("http", "cannot start a request: %s", curl_multi_strerror(mc));
            finish(r, CURLE_FAILED_INIT, 0, curl_multi_strerror(mc));
            continue;
        }
        r->added = 1;
    }
}

/* The way out of every frame that may have called a caller: reap at the outermost one. */
static void leave(http_client *c)
{
    if (--c->depth > 0)
        return;
    c->depth++;
    check_done(c);
    if (!c->freeing)
        add_pending(c);
    c->depth--;
    if (c->freeing) {
        if (!c->torn_down)
            teardown(c);
        return;
    }
    http_req *r = c->reqs;
    while (r) {
        http_req *next = r->next;
        if (r->dead)
            destroy_req(r);
        r = next;
    }
}

static void drive(http_client *c, curl_socket_t fd, int flags)
{
    int running = 0;
    c->depth++;
    c->in_curl++;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    c->in_curl--;
    leave(c);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    http_sock *s = h->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    drive(s->c, s->fd, flags);
}

static void on_curl_timer(uv_timer_t *t)
{
    drive(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static void forget_sock(http_client *c, http_sock *s)
{
    for (http_sock **pp = &c->socks; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            return;
        }
    }
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    http_client *c = userp;
    http_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            curl_multi_assign(c->multi, fd, NULL);
            forget_sock(c, s);
            uv_close((uv_handle_t *)&s->poll, sock_closed);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return -1;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->c = c;
        s->fd = fd;
        s->poll.data = s;
        s->next = c->socks;
        c->socks = s;
        c->open++;
        curl_multi_assign(c->multi, fd, s);
    }
    int ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= UV_WRITABLE;
    return uv_poll_start(&s->poll, ev, on_poll) == 0 ? 0 : -1;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    http_client *c = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_curl_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

int http_client_new(uv_loop_t *loop, http_client **out)
{
    int rc = curl_api_load();
    if (rc)
        return rc;
    http_client *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->loop = loop;
    c->multi = curl_multi_init();
    if (!c->multi) {
        free(c);
        return -ENOMEM;
    }
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open = 1;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    *out = c;
    return 0;
}

void http_client_free(http_client *c)
{
    if (!c || c->freeing)
        return;
    c->freeing = 1;
    for (http_req *r = c->reqs; r; r = r->next)
        r->dead = 1;
    if (c->depth == 0)
        teardown(c);
}

void http_cancel(http_req *r)
{
    if (!r || r->dead)
        return;
    r->dead = 1;
    uv_timer_stop(&r->idle);
    if (r->c->depth == 0)
        destroy_req(r);
}

static void on_idle(uv_timer_t *t)
{
    http_req *r = t->data;
    http_client *c = r->c;
    char msg[96];
    snprintf(msg, sizeof msg, "no data received for %llu ms", (unsigned long long)r->idle_ms);
    c->depth++;
    finish(r, CURLE_OPERATION_TIMEDOUT, 1, msg);
    leave(c);
}

static void touch(http_req *r)
{
    if (r->idle_ms)
        uv_timer_start(&r->idle, on_idle, r->idle_ms, 0);
}

static size_t header_cb(char *buf, size_t size, size_t n, void *ud)
{
    http_req *r = ud;
    size_t len = size * n;
    if (r->dead)
        return 0;
    touch(r);
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        strbuf_reset(&r->head);
        return len;
    }
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (len && (strbuf_append(&r->head, buf, len) || strbuf_append(&r->head, "\n", 1)))
        return 0;
    return size * n;
}

static size_t write_cb(char *buf, size_t size, size_t n, void *ud)
{
    http_req *r = ud;
    size_t len = size * n;
    if (r->dead)
        return 0;
    touch(r);
    if (!r->head_done) {
        r->head_done = 1;
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        if (r->cb.on_headers)
            r->cb.on_headers(r->ud, r, (int)status);
        if (r->dead)
            return 0;
    }
    r->body_bytes += len;
    if (r->cb.on_body)
        r->cb.on_body(r->ud, r, buf, len);
    return r->dead ? 0 : len;
}

const char *http_req_header(http_req *r, const char *name)
{
    size_t nl = strlen(name);
    const char *found = NULL, *end = NULL;
    const char *p = strbuf_str(&r->head);
    while (*p) {
        const char *eol = strchr(p, '\n');
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            found = p + nl + 1;
            end = eol;
        }
        p = eol + 1;
    }
    if (!found)
        return NULL;
    while (found < end && (*found == ' ' || *found == '\t'))
        found++;
    while (end > found && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    strbuf_reset(&r->value);
    if (strbuf_append(&r->value, found, (size_t)(end - found)))
        return NULL;
    return r->value.data;
}

static int setup_easy(http_req *r, const http_request *q)
{
    CURL *e = r->easy;
    for (const char *const *h = q->headers; h && *h; h++) {
        struct curl_slist *n = curl_slist_append(r->hdrs, *h);
        if (!n)
            return -ENOMEM;
        r->hdrs = n;
    }
    /* A body over 1 KiB would otherwise wait for "100 Continue" first. */
    struct curl_slist *n = curl_slist_append(r->hdrs, "Expect:");
    if (!n)
        return -ENOMEM;
    r->hdrs = n;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, q->url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "codebot/1") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
    if (q->connect_timeout_ms)
        bad |=
            curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)q->connect_timeout_ms) != CURLE_OK;
    if (q->total_timeout_ms)
        bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)q->total_timeout_ms) != CURLE_OK;
    if (q->body) {
        bad |=
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, q->body) != CURLE_OK;
    }
    if (q->method && strcmp(q->method, q->body ? "POST" : "GET") != 0)
        bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q->method) != CURLE_OK;
    return bad ? -EINVAL : 0;
}

int http_start(http_client *c, const http_request *q, const http_callbacks *cb, void *ud,
               http_req **out)
{
    if (c->freeing || !q->url || !cb->on_done)
        return -EINVAL;
    http_req *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->c = c;
    r->cb = *cb;
    r->ud = ud;
    r->idle_ms = q->idle_timeout_ms;
    r->easy = curl_easy_init();
    int rc = r->easy ? setup_easy(r, q) : -ENOMEM;
    if (rc) {
        log_error("http", "cannot set up a request: %s", strerror(-rc));
        curl_easy_cleanup(r->easy);
        curl_slist_free_all(r->hdrs);
        free(r);
        return rc;
    }
    uv_timer_init(c->loop, &r->idle);
    r->idle.data = r;
    c->open++;
    r->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = r;
    c->reqs = r;
    touch(r);
    if (c->in_curl) {
        r->need_add = 1;
    } else {
        CURLMcode mc = curl_multi_add_handle(c->multi, r->easy);
        if (mc != CURLM_OK) {
            log_error("http", "cannot start a request: %s", curl_multi_strerror(mc));
            r->dead = 1;
            destroy_req(r);
            return -EIO;
        }
        r->added = 1;
    }
    if (out)
        *out = r;
    return 0;
}

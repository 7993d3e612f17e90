/* llm — one call is a little state machine: a request in flight (`req`), or a wait before
 * the next attempt (`timer`), then done. The HTTP layer streams the body into an SSE parser
 * whose events are read per provider (Anthropic's typed events or OpenAI's `data:` chunks)
 * and turned into on_text calls. Everything that ends a call goes through finish(), which
 * fires on_done once, cancels what is still running and closes the call's timer; the call's
 * memory goes in that timer's close callback, so a call that ends inside one of its own
 * callbacks (a user's on_text calling llm_cancel, an error event) is never freed under the
 * frames still using it. Those frames check `done` after every callback. */
#include "bot/llm.h"

#include "bot/curl_api.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bot/http.h"
#include "bot/sse.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/utf8.h"

#define MAX_ERR_BODY (64 * 1024)
#define MAX_JSON_BODY (8 * 1024 * 1024)
#define MAX_RETRY_AFTER 60.0
#define MAX_MESSAGE 400

struct llm_client {
    uv_loop_t *loop;
    http_client *http;
    enum llm_provider provider;
    char *url;
    char *model;
    char *auth; /* the header carrying the key, or NULL */
    int max_tokens;
    int max_retries;
    uint64_t connect_timeout_ms;
    uint64_t idle_timeout_ms;
    llm_call *calls; /* not yet done */
    int alive;       /* calls whose memory is not yet freed */
    int freeing;
    uint64_t rng;
};

struct llm_call {
    llm_client *c;
    llm_call *prev, *next;
    llm_callbacks cb;
    void *ud;
    char *body;
    uv_timer_t timer; /* the wait before a retry */
    http_req *req;
    int retries; /* retries started so far */
    int done;
    int got_text;
    /* per attempt */
    int status;
    int streaming; /* a 200 answered with an event stream */
    sse_parser sse;
    strbuf raw; /* an error body, or a 200 answered with plain JSON */
    strbuf stop_reason;
    double retry_after; /* seconds the server asked for, < 0 when none */
    int should_retry;   /* x-should-retry: -1 absent, 0 false, 1 true */
    strbuf msg;
};

/* ---- small helpers ---- */

static double rand01(llm_client *c)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return (double)(c->rng >> 11) / (double)(1ULL << 53);
}

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int is_str(const cJSON *j)
{
    return cJSON_IsString(j) && j->valuestring;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return is_str(j) ? j->valuestring : NULL;
}

/* The whole of S[0..N) as JSON, nothing after it; S must be NUL-terminated at N. */
static cJSON *parse_json(const char *s, size_t n)
{
    return cJSON_ParseWithLengthOpts(s, n + 1, NULL, 1);
}

/* One line for a person: no control characters, valid UTF-8, bounded, no secret. */
static void set_message(llm_call *call, const char *fmt, ...)
{
    strbuf raw = {0};
    va_list ap;
    va_start(ap, fmt);
    int rc = strbuf_vprintf(&raw, fmt, ap);
    va_end(ap);
    strbuf_reset(&call->msg);
    if (rc || utf8_sanitize(&call->msg, raw.data, raw.len)) {
        strbuf_free(&raw);
        strbuf_reset(&call->msg);
        strbuf_puts(&call->msg, "out of memory");
        return;
    }
    strbuf_free(&raw);
    for (size_t i = 0; i < call->msg.len; i++)
        if ((unsigned char)call->msg.data[i] < 0x20 || call->msg.data[i] == 0x7f)
            call->msg.data[i] = ' ';
    if (call->msg.len > MAX_MESSAGE) {
        call->msg.len = utf8_truncate(call->msg.data, call->msg.len, MAX_MESSAGE - 3);
        call->msg.data[call->msg.len] = '\0';
        strbuf_puts(&call->msg, "...");
    }
    log_redact(call->msg.data);
    call->msg.len = strlen(call->msg.data);
}

/* ---- the end of a call ---- */

static void call_closed(uv_handle_t *h)
{
    llm_call *call = h->data;
    llm_client *c = call->c;
    sse_free(&call->sse);
    strbuf_free(&call->raw);
    strbuf_free(&call->stop_reason);
    strbuf_free(&call->msg);
    free(call->body);
    free(call);
    if (--c->alive == 0 && c->freeing) {
        free(c->url);
        free(c->model);
        free(c->auth);
        free(c);
    }
}

static void unlink_call(llm_call *call)
{
    llm_client *c = call->c;
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

/* Ends CALL with STATUS; the message was set with set_message (unless LLM_OK). */
static void finish(llm_call *call, enum llm_status status)
{
    if (call->done)
        return;
    call->done = 1;
    uv_timer_stop(&call->timer);
    if (call->req) {
        http_cancel(call->req);
        call->req = NULL;
    }
    unlink_call(call);
    uv_close((uv_handle_t *)&call->timer, call_closed);
    llm_result res = {
        .status = status,
        .http_status = call->status,
        .message = status == LLM_OK ? NULL : strbuf_str(&call->msg),
        .stop_reason = call->stop_reason.len ? call->stop_reason.data : NULL,
    };
    if (status != LLM_OK && status != LLM_ERR_CANCELLED)
        log_info("llm", "call failed: %s", res.message);
    if (call->cb.on_done)
        call->cb.on_done(call->ud, &res);
}

static void fail(llm_call *call, enum llm_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(llm_call *call, enum llm_status status, const char *fmt, ...)
{
    if (call->done)
        return;
    strbuf raw = {0};
    va_list ap;
    va_start(ap, fmt);
    int rc = strbuf_vprintf(&raw, fmt, ap);
    va_end(ap);
    set_message(call, "%s", rc ? "out of memory" : raw.data);
    strbuf_free(&raw);
    finish(call, status);
}

static void emit_text(llm_call *call, const char *s, size_t n)
{
    if (n == 0 || call->done)
        return;
    call->got_text = 1;
    if (call->cb.on_text)
        call->cb.on_text(call->ud, s, n);
}

static void set_stop_reason(llm_call *call, const char *s)
{
    if (!s)
        return;
    strbuf_reset(&call->stop_reason);
    strbuf_puts(&call->stop_reason, s);
}

/* ---- the providers' streams ---- */

static void anthropic_event(llm_call *call, const char *name, const cJSON *d)
{
    if (strcmp(name, "content_block_start") == 0) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(d, "content_block");
        const char *type = jstr(b, "type"), *text = jstr(b, "text");
        if (type && strcmp(type, "text") == 0 && text)
            emit_text(call, text, strlen(text));
    } else if (strcmp(name, "content_block_delta") == 0) {
        const cJSON *delta = cJSON_GetObjectItemCaseSensitive(d, "delta");
        const char *type = jstr(delta, "type");
        const char *text = jstr(delta, "text");
        if (type && strcmp(type, "text_delta") == 0 && text)
            emit_text(call, text, strlen(text));
    } else if (strcmp(name, "message_delta") == 0) {
        set_stop_reason(call, jstr(cJSON_GetObjectItemCaseSensitive(d, "delta"), "stop_reason"));
    } else if (strcmp(name, "message_stop") == 0) {
        finish(call, LLM_OK);
    } else if (strcmp(name, "error") == 0) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(d, "error");
        const char *type = jstr(e, "type"), *m = jstr(e, "message");
        fail(call, LLM_ERR_STREAM, "the model's stream failed (%s: %s)", type ? type : "error",
             m ? m : "no message");
    }
}

static int anthropic_sse(llm_call *call, const sse_event *ev)
{
    const char *name = ev->event;
    if (strcmp(name, "ping") == 0)
        return 0;
    int known = strcmp(name, "message") == 0 || strcmp(name, "content_block_start") == 0 ||
                strcmp(name, "content_block_delta") == 0 || strcmp(name, "message_delta") == 0 ||
                strcmp(name, "message_stop") == 0 || strcmp(name, "error") == 0;
    if (!known)
        return 0; /* new event types may appear: ignore them */
    cJSON *d = parse_json(ev->data, ev->data_len);
    if (!d) {
        fail(call, LLM_ERR_STREAM, "the model's stream carried an unreadable %s event", name);
        return 1;
    }
    if (strcmp(name, "message") == 0) { /* a server that names events only in data.type */
        name = jstr(d, "type") ? jstr(d, "type") : "";
    }
    anthropic_event(call, name, d);
    cJSON_Delete(d);
    return call->done;
}

static const char *error_text(const cJSON *e)
{
    if (is_str(e))
        return e->valuestring;
    const char *m = jstr(e, "message");
    return m ? m : "no message";
}

static int openai_sse(llm_call *call, const sse_event *ev)
{
    if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
        finish(call, LLM_OK);
        return 1;
    }
    cJSON *d = parse_json(ev->data, ev->data_len);
    if (!d) {
        fail(call, LLM_ERR_STREAM, "the model's stream carried unreadable data");
        return 1;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(d, "error");
    if (e && !cJSON_IsNull(e)) {
        fail(call, LLM_ERR_STREAM, "the model's stream failed (%s)", error_text(e));
        cJSON_Delete(d);
        return 1;
    }
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d, "choices"), 0);
    const char *text = jstr(cJSON_GetObjectItemCaseSensitive(choice, "delta"), "content");
    if (text)
        emit_text(call, text, strlen(text));
    if (!call->done)
        set_stop_reason(call, jstr(choice, "finish_reason"));
    cJSON_Delete(d);
    return call->done;
}

static int on_sse(void *ud, const sse_event *ev)
{
    llm_call *call = ud;
    if (call->done)
        return 1;
    return call->c->provider == LLM_ANTHROPIC ? anthropic_sse(call, ev) : openai_sse(call, ev);
}

/* A 200 with a plain JSON body: a server that ignored "stream": true. */
static void plain_json_answer(llm_call *call)
{
    cJSON *d = parse_json(strbuf_str(&call->raw), call->raw.len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(d, "error");
    if (!d) {
        fail(call, LLM_ERR_STREAM, "the model's API answered with something that is not JSON");
    } else if (e && !cJSON_IsNull(e)) {
        fail(call, LLM_ERR_STREAM, "the model's API failed (%s)", error_text(e));
    } else if (call->c->provider == LLM_ANTHROPIC) {
        const cJSON *b;
        cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(d, "content"))
        {
            const char *t = jstr(b, "text");
            if (t)
                emit_text(call, t, strlen(t));
        }
        set_stop_reason(call, jstr(d, "stop_reason"));
        finish(call, LLM_OK);
    } else {
        const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d, "choices"), 0);
        const char *t = jstr(cJSON_GetObjectItemCaseSensitive(ch, "message"), "content");
        if (t)
            emit_text(call, t, strlen(t));
        set_stop_reason(call, jstr(ch, "finish_reason"));
        finish(call, LLM_OK);
    }
    cJSON_Delete(d);
}

/* ---- HTTP errors and retries ---- */

static double parse_retry_after(http_req *r)
{
    const char *v = http_req_header(r, "retry-after-ms");
    char *end;
    if (v) {
        double ms = strtod(v, &end);
        if (end != v && *end == '\0' && isfinite(ms) && ms >= 0)
            return ms / 1000.0;
    }
    v = http_req_header(r, "retry-after");
    if (!v)
        return -1;
    double s = strtod(v, &end);
    if (end != v && *end == '\0' && isfinite(s))
        return s >= 0 ? s : -1;
    time_t when = curl_getdate(v, NULL);
    if (when == (time_t)-1)
        return -1;
    double d = difftime(when, time(NULL));
    return d >= 0 ? d : 0;
}

static double retry_delay(llm_call *call, int n)
{
    if (call->retry_after >= 0) {
        if (call->retry_after <= MAX_RETRY_AFTER)
            return call->retry_after;
        log_info("llm", "the server asked to wait %.0f s before retrying; waiting %.0f s",
                 call->retry_after, MAX_RETRY_AFTER);
        return MAX_RETRY_AFTER;
    }
    double d = 0.5 * pow(2.0, n);
    if (d > 8.0)
        d = 8.0;
    return d * (1.0 - 0.25 * rand01(call->c));
}

static int start_attempt(llm_call *call);

static void on_retry_timer(uv_timer_t *t)
{
    llm_call *call = t->data;
    int rc = start_attempt(call);
    if (rc)
        fail(call, LLM_ERR_LOCAL, "could not send the request again: %s", strerror(-rc));
}

/* WHY says what failed, for the final message when no retry is left. */
static void retry_or_fail(llm_call *call, const char *why)
{
    llm_client *c = call->c;
    if (call->retries >= c->max_retries) {
        fail(call, LLM_ERR_RETRIES, "%s; gave up after %d %s", why, call->retries,
             call->retries == 1 ? "retry" : "retries");
        return;
    }
    double wait = retry_delay(call, call->retries);
    call->retries++;
    log_info("llm", "%s; retry %d of %d in %.1f s", why, call->retries, c->max_retries, wait);
    if (call->cb.on_wait)
        call->cb.on_wait(call->ud, call->retries, wait, call->status);
    if (call->done)
        return;
    uv_timer_start(&call->timer, on_retry_timer, (uint64_t)(wait * 1000.0 + 0.5), 0);
}

/* The error's type and message from any of the shapes servers use: Anthropic's and OpenAI's
 * {"error":{...}}, {"error":"text"} (Ollama), {"message":...,"type":...} (vLLM). */
static int error_detail(llm_call *call, strbuf *out)
{
    cJSON *d = parse_json(strbuf_str(&call->raw), call->raw.len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(d, "error");
    const char *type = NULL, *m = NULL;
    if (is_str(e)) {
        m = e->valuestring;
    } else if (cJSON_IsObject(e)) {
        type = jstr(e, "type");
        m = jstr(e, "message");
    } else if (d) {
        type = jstr(d, "type");
        m = jstr(d, "message");
        if (type && strcmp(type, "error") == 0)
            type = NULL;
    }
    strbuf_printf(out, "%d", call->status);
    if (type)
        strbuf_printf(out, " %s", type);
    if (m)
        strbuf_printf(out, ": %s", m);
    else if (!d && call->raw.len && call->raw.len < 200 &&
             !memchr(call->raw.data, '<', call->raw.len))
        strbuf_printf(out, ": %s", call->raw.data); /* a short plain-text answer, not a page */
    cJSON_Delete(d);
    return m != NULL;
}

static int retryable_status(int s)
{
    return s == 408 || s == 429 || s >= 500;
}

static void http_error(llm_call *call)
{
    int s = call->status;
    strbuf det = {0};
    int explained = error_detail(call, &det);
    int retry = call->should_retry >= 0 ? call->should_retry : retryable_status(s);
    const char *d = strbuf_str(&det);
    if (retry) {
        strbuf why = {0};
        const char *what = s == 429   ? "the model's API is rate-limiting this key"
                           : s == 529 ? "the model is overloaded"
                           : s == 408 ? "the model's API timed out"
                                      : "the model's API failed";
        strbuf_printf(&why, "%s (%s)", what, d);
        retry_or_fail(call, strbuf_str(&why));
        strbuf_free(&why);
    } else if (s == 401) {
        fail(call, LLM_ERR_HTTP, "%s (%s)",
             call->c->auth ? "the API key was rejected"
                           : "the server wants an API key and none is configured",
             d);
    } else if (s == 403) {
        fail(call, LLM_ERR_HTTP, "the API key may not do this (%s)", d);
    } else if (s == 404 && explained) {
        fail(call, LLM_ERR_HTTP, "model '%s' not found (%s)", call->c->model, d);
    } else if (s == 404) {
        fail(call, LLM_ERR_HTTP, "nothing found at %s; check the base URL (%s)", call->c->url, d);
    } else if (s == 402) {
        fail(call, LLM_ERR_HTTP, "the API account has a billing problem (%s)", d);
    } else if (s == 413) {
        fail(call, LLM_ERR_HTTP, "the conversation is too large for the model's API (%s)", d);
    } else if (s >= 500) {
        fail(call, LLM_ERR_HTTP, "the model's API failed (%s)", d);
    } else if (s >= 400) {
        fail(call, LLM_ERR_HTTP, "the model's API rejected the request (%s)", d);
    } else {
        fail(call, LLM_ERR_HTTP, "the model's API answered with an unexpected status (%s)", d);
    }
    strbuf_free(&det);
}

/* ---- the HTTP callbacks ---- */

static void on_headers(void *ud, http_req *r, int status)
{
    llm_call *call = ud;
    call->status = status;
    if (status == 200) {
        const char *ct = http_req_header(r, "content-type");
        call->streaming = !(ct && strncasecmp(ct, "application/json", 16) == 0);
        return;
    }
    call->retry_after = parse_retry_after(r);
    const char *sr = http_req_header(r, "x-should-retry");
    if (sr && strcasecmp(sr, "true") == 0)
        call->should_retry = 1;
    else if (sr && strcasecmp(sr, "false") == 0)
        call->should_retry = 0;
}

static void on_body(void *ud, http_req *r, const char *data, size_t len)
{
    llm_call *call = ud;
    if (call->status == 200 && call->streaming) {
        int rc = sse_feed(&call->sse, data, len);
        if (rc < 0 && !call->done)
            fail(call, LLM_ERR_STREAM, "the model's stream was unreadable (%s)",
                 rc == -E2BIG ? "an event over 1 MiB" : strerror(-rc));
        return;
    }
    size_t cap = call->status == 200 ? MAX_JSON_BODY : MAX_ERR_BODY;
    if (call->raw.len + len <= cap && strbuf_append(&call->raw, data, len))
        fail(call, LLM_ERR_LOCAL, "out of memory");
}

/* Transport errors that another attempt cannot fix. */
static int local_curl_error(int code)
{
    return code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_URL_MALFORMAT ||
           code == CURLE_OUT_OF_MEMORY || code == CURLE_FAILED_INIT ||
           code == CURLE_BAD_FUNCTION_ARGUMENT || code == CURLE_NOT_BUILT_IN;
}

static void transport_error(llm_call *call, const http_result *res)
{
    if (res->idle_timeout) {
        fail(call, LLM_ERR_STREAM, "no data from the model for %g s",
             (double)call->c->idle_timeout_ms / 1000.0);
    } else if (call->got_text) {
        fail(call, LLM_ERR_STREAM, "the model's stream was cut off: %s", res->error);
    } else if (local_curl_error(res->curl_code)) {
        fail(call, LLM_ERR_LOCAL, "cannot send the request to %s: %s", call->c->url, res->error);
    } else {
        strbuf why = {0};
        if (call->status == 200)
            strbuf_printf(&why, "the model's stream broke before any text: %s", res->error);
        else
            strbuf_printf(&why, "could not reach the model's API at %s: %s", call->c->url,
                          res->error);
        call->status = 0;
        retry_or_fail(call, strbuf_str(&why));
        strbuf_free(&why);
    }
}

static void on_http_done(void *ud, http_req *r, const http_result *res)
{
    llm_call *call = ud;
    call->req = NULL;
    if (call->done)
        return;
    if (res->curl_code != 0) {
        transport_error(call, res);
    } else if (call->status == 200 && !call->streaming) {
        plain_json_answer(call);
    } else if (call->status == 200 && call->stop_reason.len) {
        finish(call, LLM_OK); /* the end marker is missing but the answer said it ended */
    } else if (call->status == 200 && call->got_text) {
        fail(call, LLM_ERR_STREAM,
             "the model's stream was cut off: the connection closed before the answer ended");
    } else if (call->status == 200) {
        retry_or_fail(call, "the model's API closed the stream before answering");
    } else {
        http_error(call);
    }
}

static int start_attempt(llm_call *call)
{
    llm_client *c = call->c;
    call->status = 0;
    call->streaming = 0;
    call->retry_after = -1;
    call->should_retry = -1;
    strbuf_reset(&call->raw);
    strbuf_reset(&call->stop_reason);
    sse_free(&call->sse);
    sse_init(&call->sse, 0, on_sse, call);
    const char *hdrs[6];
    int n = 0;
    hdrs[n++] = "content-type: application/json";
    hdrs[n++] = "accept: text/event-stream";
    if (c->provider == LLM_ANTHROPIC)
        hdrs[n++] = "anthropic-version: 2023-06-01";
    if (c->auth)
        hdrs[n++] = c->auth;
    hdrs[n] = NULL;
    http_request q = {
        .method = "POST",
        .url = c->url,
        .headers = hdrs,
        .body = call->body,
        .body_len = strlen(call->body),
        .connect_timeout_ms = c->connect_timeout_ms,
        .idle_timeout_ms = c->idle_timeout_ms,
    };
    http_callbacks cb = {.on_headers = on_headers, .on_body = on_body, .on_done = on_http_done};
    return http_start(c->http, &q, &cb, call, &call->req);
}

/* ---- requests ---- */

static char *build_body(llm_client *c, const llm_request *req)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *msgs = cJSON_CreateArray();
    int bad = !o || !msgs;
    if (!bad) {
        cJSON_AddItemToObject(o, "model", cJSON_CreateString(c->model));
        if (c->provider == LLM_ANTHROPIC) {
            cJSON_AddItemToObject(o, "max_tokens", cJSON_CreateNumber(c->max_tokens));
            if (req->system && *req->system)
                cJSON_AddItemToObject(o, "system", cJSON_CreateString(req->system));
        }
        cJSON_AddItemToObject(o, "messages", msgs);
        msgs = NULL;
        cJSON_AddItemToObject(o, "stream", cJSON_CreateTrue());
    }
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (!bad && c->provider == LLM_OPENAI && req->system && *req->system) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, m);
        cJSON_AddItemToObject(m, "role", cJSON_CreateString("system"));
        cJSON_AddItemToObject(m, "content", cJSON_CreateString(req->system));
    }
    for (size_t i = 0; !bad && i < req->n_messages; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, m);
        cJSON_AddItemToObject(m, "role", cJSON_CreateString(req->messages[i].role));
        cJSON_AddItemToObject(m, "content", cJSON_CreateString(req->messages[i].content));
    }
    char *s = bad ? NULL : cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cJSON_Delete(msgs);
    return s;
}

static int valid_request(const llm_request *req)
{
    if (!req || !req->messages || req->n_messages == 0)
        return 0;
    for (size_t i = 0; i < req->n_messages; i++) {
        const llm_msg *m = &req->messages[i];
        if (!m->role || !m->content ||
            (strcmp(m->role, "user") != 0 && strcmp(m->role, "assistant") != 0))
            return 0;
    }
    return 1;
}

int llm_generate(llm_client *c, const llm_request *req, const llm_callbacks *cb, void *ud,
                 llm_call **out)
{
    if (c->freeing)
        return -ECANCELED;
    if (!valid_request(req) || !cb)
        return -EINVAL;
    llm_call *call = calloc(1, sizeof *call);
    if (!call)
        return -ENOMEM;
    call->c = c;
    call->cb = *cb;
    call->ud = ud;
    call->body = build_body(c, req);
    if (!call->body) {
        free(call);
        return -ENOMEM;
    }
    int rc = start_attempt(call);
    if (rc) {
        sse_free(&call->sse);
        free(call->body);
        free(call);
        return rc;
    }
    uv_timer_init(c->loop, &call->timer);
    call->timer.data = call;
    c->alive++;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    if (out)
        *out = call;
    return 0;
}

void llm_cancel(llm_call *call)
{
    if (!call || call->done)
        return;
    set_message(call, "cancelled");
    finish(call, LLM_ERR_CANCELLED);
}

/* ---- the client ---- */

static char *make_url(const char *base, enum llm_provider p)
{
    strbuf u = {0};
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    strbuf_append(&u, base, n);
    if (p == LLM_ANTHROPIC) {
        /* Tolerate a base that already names the API version. */
        int has_v1 = n >= 3 && memcmp(base + n - 3, "/v1", 3) == 0;
        strbuf_puts(&u, has_v1 ? "/messages" : "/v1/messages");
    } else {
        strbuf_puts(&u, "/chat/completions");
    }
    return u.data;
}

static char *make_auth(const llm_config *cfg)
{
    if (!cfg->api_key || !*cfg->api_key)
        return NULL;
    strbuf h = {0};
    if (cfg->provider == LLM_ANTHROPIC)
        strbuf_printf(&h, "x-api-key: %s", cfg->api_key);
    else
        strbuf_printf(&h, "Authorization: Bearer %s", cfg->api_key);
    return h.data;
}

int llm_client_new(uv_loop_t *loop, const llm_config *cfg, llm_client **out)
{
    if (!cfg || (cfg->provider != LLM_ANTHROPIC && cfg->provider != LLM_OPENAI) || !cfg->base_url ||
        !*cfg->base_url || !cfg->model || !*cfg->model)
        return -EINVAL;
    llm_client *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->loop = loop;
    c->provider = cfg->provider;
    c->max_tokens = cfg->max_tokens > 0 ? cfg->max_tokens : 4096;
    c->max_retries = cfg->max_retries > 0 ? cfg->max_retries : cfg->max_retries < 0 ? 0 : 4;
    c->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 10000;
    c->idle_timeout_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : 60000;
    c->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)c;
    if (!c->rng)
        c->rng = 0x9e3779b97f4a7c15ULL;
    c->url = make_url(cfg->base_url, cfg->provider);
    c->model = dupstr(cfg->model);
    c->auth = make_auth(cfg);
    int rc = (!c->url || !c->model || (cfg->api_key && *cfg->api_key && !c->auth)) ? -ENOMEM : 0;
    if (!rc)
        rc = http_client_new(loop, &c->http);
    if (rc) {
        free(c->url);
        free(c->model);
        free(c->auth);
        free(c);
        return rc;
    }
    if (cfg->api_key)
        log_add_secret(cfg->api_key);
    *out = c;
    return 0;
}

void llm_client_free(llm_client *c)
{
    if (!c || c->freeing)
        return;
    c->freeing = 1;
    while (c->calls)
        llm_cancel(c->calls);
    http_client_free(c->http);
    c->http = NULL;
    if (c->alive == 0) {
        free(c->url);
        free(c->model);
        free(c->auth);
        free(c);
    }
}

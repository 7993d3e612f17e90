/* http — streaming HTTP requests on the bot's libuv loop, through one libcurl multi handle.
 *
 * libuv watches curl's sockets (one uv_poll per socket, CURLMOPT_SOCKETFUNCTION) and runs
 * its one timer (CURLMOPT_TIMERFUNCTION); nothing blocks the loop. Each request streams:
 * on_headers once the response head is in (status and headers readable through
 * http_req_header during that call and later ones), on_body for each piece of the body as
 * it arrives, then on_done exactly once, unless the request was cancelled. Used by the LLM
 * clients and by the chat adapters' REST calls.
 *
 * Ownership: the client owns its requests. http_start copies the URL, headers and body.
 * A request handle is valid until on_done returns or http_cancel is called. Callbacks may
 * call http_start, http_cancel (on any request) and http_client_free; after http_cancel
 * nothing fires for that request, and after http_client_free nothing fires at all. The
 * memory of a freed client goes once libuv has closed its handles (keep running the loop).
 * Strings handed to callbacks live only during the callback. */
#ifndef CODEBOT_HTTP_H
#define CODEBOT_HTTP_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http_client http_client;
typedef struct http_req http_req;

typedef struct http_request {
    const char *method; /* "GET" when NULL */
    const char *url;
    const char *const *headers; /* "Name: value" strings, NULL-terminated; may be NULL */
    const char *body;           /* sent when not NULL (also when BODY_LEN is 0) */
    size_t body_len;
    uint64_t connect_timeout_ms; /* 0: curl's default */
    uint64_t idle_timeout_ms;    /* no byte received for this long ends the request; 0: none */
    uint64_t total_timeout_ms;   /* 0: none */
} http_request;

typedef struct http_result {
    int http_status;   /* of the final response, 0 when none arrived */
    int curl_code;     /* CURLE_OK (0) when the transfer completed */
    int idle_timeout;  /* 1 when ended by idle_timeout_ms */
    const char *error; /* what went wrong, "" when curl_code is 0 */
    uint64_t body_bytes;
} http_result;

typedef struct http_callbacks {
    void (*on_headers)(void *ud, http_req *r, int http_status);           /* optional */
    void (*on_body)(void *ud, http_req *r, const char *data, size_t len); /* optional */
    void (*on_done)(void *ud, http_req *r, const http_result *res);
} http_callbacks;

/* Returns 0 or -errno (-ENOMEM, -EIO when libcurl cannot start). */
int http_client_new(uv_loop_t *loop, http_client **out);
/* Cancels every request silently and frees the client once its handles have closed. */
void http_client_free(http_client *c);
/* Starts REQ. Returns 0 (then on_done will fire unless cancelled) or -errno (nothing fires).
 * OUT (optional) gets the handle. */
int http_start(http_client *c, const http_request *req, const http_callbacks *cb, void *ud,
               http_req **out);
/* Aborts R; no callback fires for it afterwards. Safe inside any callback. */
void http_cancel(http_req *r);
/* The value of response header NAME (case-insensitive; the last one when repeated), without
 * surrounding white space, or NULL. Valid from on_headers on; the string lives until the
 * next callback of R returns. */
const char *http_req_header(http_req *r, const char *name);

#endif

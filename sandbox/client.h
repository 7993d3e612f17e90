/* sandbox client — talks to codebot sandboxd (docs/sandbox-protocol.md) on a libuv loop.
 *
 * Used by the bot's turns and by `codebot exec` / `codebot sandbox ...`. Each call opens one
 * connection for one request. A call that fails (returns -errno) never fires its callback;
 * otherwise exactly one terminal callback fires (`on_end` for runs, `on_reply` for the rest),
 * also when the service is unreachable or dies mid-run (then with status "sandbox_error").
 * Strings and JSON handed to callbacks live only during the callback.
 * sbx_run_cancel() interrupts a run; its on_end still fires (status "interrupted"). */
#ifndef CODEBOT_SANDBOX_CLIENT_H
#define CODEBOT_SANDBOX_CLIENT_H
#include <cjson/cJSON.h>
#include <stdint.h>
#include <uv.h>

typedef struct sbx_run sbx_run;

typedef struct sbx_end {
    int ok;
    const char *status; /* see the protocol: ok, error, timeout, interrupted, killed, ... */
    const char *message;
    uint64_t duration_ms;
    int execution_count;
    int state_lost;
    uint64_t dropped_bytes;
} sbx_end;

typedef struct sbx_run_cbs {
    /* `start`: the sandbox id (store it) and whether the sandbox is new. */
    void (*on_start)(void *ud, const char *sandbox_id, int is_new);
    /* stdout (stream 1) or stderr (stream 2) text, valid UTF-8. */
    void (*on_output)(void *ud, int stream, const char *text, size_t len);
    /* `result`, `file` and `error` events, as parsed JSON. */
    void (*on_event)(void *ud, const char *ev, const cJSON *obj);
    void (*on_end)(void *ud, const sbx_end *end);
} sbx_run_cbs;

typedef struct sbx_run_opts {
    const char *session;
    const char *lang; /* NULL: python */
    const char *code;
    uint64_t timeout_ms;    /* 0: the service's default */
    const char *sandbox_id; /* NULL or the id stored for the session */
} sbx_run_opts;

/* The socket path: CODEBOT_SANDBOX_SOCKET, $XDG_RUNTIME_DIR/codebot/sandboxd.sock, or
 * var/sandboxd.sock. Returns a static string. */
const char *sbx_socket_path(void);

/* Makes sure a service answers on the socket, starting `SELF sandboxd` in the background
 * (detached, its own session) when none does; SELF is this binary (/proc/self/exe).
 * Blocking, bounded by TIMEOUT_MS: call before the loop runs, or from the CLI.
 * Returns 0 or -errno. */
int sbx_ensure_service(uint64_t timeout_ms);

int sbx_run_start(uv_loop_t *loop, const sbx_run_opts *opts, const sbx_run_cbs *cbs, void *ud,
                  sbx_run **out);
/* Interrupts the run (closing the connection); on_end fires later. */
void sbx_run_cancel(sbx_run *run);

/* Any other request: REQ is sent as is; ON_REPLY gets the parsed answer (NULL with an
 * error text when the service could not be reached or answered garbage). */
typedef void (*sbx_reply_cb)(void *ud, const cJSON *reply, const char *error);
int sbx_request(uv_loop_t *loop, const cJSON *req, sbx_reply_cb on_reply, void *ud);

#endif

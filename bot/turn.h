/* turn — one user message answered: generate code (LLM, streamed) -> run it in the
 * channel's sandbox (streamed) -> on error feed the traceback back and retry, up to
 * max_attempts -> save the turn to history. The seed's flow, on the bot's loop.
 *
 * A turn copies the message it is given. It drives a live message (bot/live.h) on the
 * adapter, reads history and the sandbox id from the store (working on without them when
 * Redis is down), and fires DONE exactly once when everything it started has finished (live
 * message sent, history write answered); the turn frees itself after DONE returns.
 * turn_cancel() stops it at any point; DONE still fires. */
#ifndef CODEBOT_TURN_H
#define CODEBOT_TURN_H
#include <uv.h>

#include "adapters/adapter.h"
#include "bot/config.h"
#include "bot/llm.h"
#include "store/store.h"

typedef struct turn_ctx {
    uv_loop_t *loop;
    const config *cfg;
    store *st;       /* NULL: no history */
    llm_client *llm; /* NULL: no LLM configured; fenced code still runs */
} turn_ctx;

typedef struct turn turn;
typedef void (*turn_done_cb)(void *ud, turn *t);

/* Starts answering M on adapter A. Returns 0 or -errno (then DONE never fires). */
int turn_start(const turn_ctx *ctx, adapter *a, const adapter_msg *m, turn_done_cb done, void *ud,
               turn **out);
void turn_cancel(turn *t);
/* The sandbox session name for a channel: "platform:channel" (malloc'd). */
char *turn_session_key(const char *platform, const char *channel);

#endif

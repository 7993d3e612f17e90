/* channels — the bot's front door: every adapter's messages arrive here, per channel.
 *
 * A channel (platform + channel id) runs one turn at a time; a message that arrives while
 * one runs is queued (the user is told so, with its place) and started when the channel is
 * free. Different channels run concurrently and never wait for each other. Chat commands are
 * the same on every adapter and act at once: `help`, `status` (sandbox, history size,
 * model), `cancel` (stops the running turn, drops the queue), `reset` (cancels, then gives
 * the channel a fresh sandbox and an empty history). On the bot's loop; the module owns its
 * channel table and the turns it starts. */
#ifndef CODEBOT_CHANNELS_H
#define CODEBOT_CHANNELS_H
#include "adapters/adapter.h"
#include "bot/turn.h"

typedef struct channels channels;

/* CTX is copied; its pointers must outlive the channels. */
int channels_new(const turn_ctx *ctx, channels **out);
/* Starts adapter A with this module as its receiver. */
int channels_attach(channels *cs, adapter *a);
/* Cancels every running turn and drops the queues (shutdown). */
void channels_cancel_all(channels *cs);
/* Number of turns running now. */
int channels_running(const channels *cs);
/* Frees the table; call when channels_running() is 0. */
void channels_free(channels *cs);

#endif

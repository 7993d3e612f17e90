/* live — one turn's live message in one channel: it feeds a render (bot/render.h) and keeps
 * one chat message showing it, paced by the adapter's edit policy; for a streaming adapter
 * (policy.streams, the console) it prints each piece of the transcript as it happens instead.
 *
 * Runs on the bot's libuv loop; the clock is uv_now() of that loop. The live owns its render,
 * one timer and copies of every string it is given; the adapter must outlive it (until DONE
 * of live_finish has fired). Lifetime: live_new, any number of updates, then live_finish
 * exactly once; after live_finish the caller must not touch the live again.
 *
 * Pacing (editing adapters): every update marks the state dirty and is sent from a zero
 * timer, so that all updates of one loop iteration go out as one call. The first send posts
 * the message (ops->post; the msg_id arrives in its callback) and later ones edit it. At most
 * one call is in flight; while one is, or until the post returned its msg_id, updates only
 * accumulate and the newest state goes out next. Sends are at least
 * policy.min_edit_interval_ms apart. While the phase is RENDER_RUNNING the message is
 * refreshed when the elapsed seconds change (still no more often than the interval). A
 * callback with retry_after_ms > 0 (429) holds every call back that long; any other failure
 * is logged once (until the next success) and the newest state is tried again after the
 * interval, at least 1 s later. A text equal to the one last shown is not sent again.
 *
 * Streaming adapters: no render and no edits; ops->print receives, in order: "📝 Generated
 * code:" and the fence when code first arrives, then only the new end of the code as it
 * streams, the closing fence and "🚀 Running..." when the phase changes, each output chunk as
 * it comes (stdout lines indented two spaces, stderr lines with "  ⚠️  "), "❌ Error: ...",
 * the attempt header, notes and the final ✅ / 🛑 / ⏹ line — the seed's console transcript.
 * Output for the console is made safe too (valid UTF-8, no NUL, escape sequences and control
 * characters other than \t, \n and \r dropped). */
#ifndef CODEBOT_LIVE_H
#define CODEBOT_LIVE_H
#include <stddef.h>
#include <uv.h>

#include "adapters/adapter.h"
#include "bot/render.h"

typedef struct live live;

/* A live message for CHANNEL, answering REPLY_TO (may be NULL), sized by A's policy
 * (max_chars 0 is taken as Discord's 2000). Nothing is sent until the first update. Returns
 * 0 or -ENOMEM. */
int live_new(uv_loop_t *loop, adapter *a, const char *channel, const char *reply_to,
             int max_attempts, live **out);
/* Mirrors of render.h's inputs; each updates the message. */
void live_attempt(live *l, int attempt);
void live_code(live *l, const char *lang, const char *code);
void live_phase(live *l, enum render_phase phase, const char *detail);
void live_output(live *l, int stream, const char *data, size_t len);
void live_error(live *l, const char *name, const char *value);
void live_note(live *l, const char *note);
/* The id of the posted message, NULL until the post's callback brought it. Valid until the
 * next call into the loop. */
const char *live_msg_id(const live *l);
/* Sends the final state (as soon as no call is in flight and no 429 holds it back; the edit
 * interval does not apply), then calls DONE(UD) once the last post/edit completed or failed
 * (after at most 5 rate-limited retries of it), and frees the live. DONE is never called from
 * within live_finish itself. */
void live_finish(live *l, void (*done)(void *ud), void *ud);

#endif

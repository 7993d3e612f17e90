/* store — everything codebot keeps in Redis, through hiredis' async API on the bot's loop.
 *
 * Keys are namespaced `codebot:{platform}:{channel}:{what}`:
 *   history  a list of JSON turns {"role","content"}, oldest first (the seed's format)
 *   sandbox  a hash {id, host}: the channel's sandbox, found again after a restart
 *   cursor, dedup:{event id}, lease  reserved for the adapters
 * Redis may be down: calls still succeed locally (the callback fires with status
 * -ECONNREFUSED / -EIO and empty data), the store logs once that history is not being saved,
 * reconnects with backoff (0.5 s doubling to 30 s) and resumes. It never aborts the process.
 * A call that returns -errno never fires its callback; otherwise its callback fires exactly
 * once, also on store_close (status -ECANCELED). Data handed to a callback lives only
 * during it. Callbacks never fire inside the call that asked for them.
 *
 * Statuses: 0 (or 1/0 for store_dedup); -ECONNREFUSED: Redis is down, nothing was read; for
 * writes (history append and clear, sandbox set) the command is kept in a queue of at most
 * 1000 and sent, in order, once Redis is back, so a short outage loses nothing;
 * -ENOBUFS: that queue was full, the write is lost; -EIO: the connection dropped (or Redis
 * gave no answer for 10 s and the store dropped it) while the command was in flight (it may
 * or may not have been applied; it is not re-sent);
 * -EPROTO: Redis answered with an error (logged); -ECANCELED: store_close ran first.
 * While the very first connection is being made (up to 5 s) calls wait for it instead.
 * Calls return 0, -EINVAL (a NULL argument, or the store is closing) or -ENOMEM. Any
 * callback may be NULL (the result is dropped). Platform and channel are used as given.
 *
 * Single loop, single thread. store_close() frees the store only once its handles (and
 * hiredis' poll handle) are closed, so the loop must run afterwards before uv_loop_close(). */
#ifndef CODEBOT_STORE_H
#define CODEBOT_STORE_H
#include <stddef.h>
#include <uv.h>

typedef struct store store;

typedef struct store_turn {
    const char *role; /* "user" or "assistant" */
    const char *content;
} store_turn;

typedef struct store_history {
    const store_turn *turns;
    size_t n_turns;
} store_history;

/* URL: redis://[[user]:password@]host[:port][/db] or unix:///path/to/sock[?db=N] (see
 * store/redis_url.h). HISTORY_BUDGET: the most characters of history handed back by
 * store_history_load (the newest whole user+assistant pairs that fit; 0: no limit). Reads
 * CODEBOT_HISTORY_MAX_TURNS (2..1000000). Returns 0, -ENOMEM or -EINVAL (bad URL or bad
 * CODEBOT_HISTORY_MAX_TURNS, logged naming the variable). Connecting happens in the
 * background; host names are resolved off the loop. */
int store_open(uv_loop_t *loop, const char *url, size_t history_budget, store **out);
/* Fails pending calls with -ECANCELED (their callbacks run inside store_close or, for commands
 * in flight when called from a store callback, right after that callback; they must not use
 * S again), flushes nothing more, frees after the handles closed. */
void store_close(store *s);
/* 1 when connected now. */
int store_connected(const store *s);
/* Waits (up to TIMEOUT_MS, running the loop) until every write sent so far is answered,
 * including the ones queued during an outage; used at shutdown. Runs uv_run() itself, so it
 * must not be called from a loop callback. */
void store_flush(store *s, unsigned timeout_ms);

typedef void (*store_history_cb)(void *ud, int status, const store_history *h);
typedef void (*store_done_cb)(void *ud, int status);
typedef void (*store_string_cb)(void *ud, int status, const char *value);
typedef void (*store_len_cb)(void *ud, int status, long long n);
/* ID and HOST are NULL when no sandbox is stored (or on error). */
typedef void (*store_sandbox_cb)(void *ud, int status, const char *id, const char *host);

/* Turns alternate user, assistant, ..., starting with a user turn. Entries that are not
 * {"role","content"} JSON are dropped with a warning. When the newest pair alone is over
 * the budget it is cut: the middle of its text is replaced by
 * "\n[... N characters left out ...]\n" (the user turn is kept whole when it fits).
 * Characters are code points of the contents; roles do not count. */
int store_history_load(store *s, const char *platform, const char *channel, store_history_cb cb,
                       void *ud);
/* Appends one user turn and one assistant turn, atomically (MULTI/RPUSH/LTRIM/EXEC); the list
 * is capped at CODEBOT_HISTORY_MAX_TURNS (default 200) entries. */
int store_history_append(store *s, const char *platform, const char *channel, const char *user,
                         const char *assistant, store_done_cb cb, void *ud);
int store_history_clear(store *s, const char *platform, const char *channel, store_done_cb cb,
                        void *ud);
/* Number of entries (turns) in the list. */
int store_history_len(store *s, const char *platform, const char *channel, store_len_cb cb,
                      void *ud);
/* VALUE: the stored sandbox id, NULL when none. */
int store_sandbox_get(store *s, const char *platform, const char *channel, store_string_cb cb,
                      void *ud);
int store_sandbox_set(store *s, const char *platform, const char *channel, const char *id,
                      const char *host, store_done_cb cb, void *ud);
/* Both fields of the channel's sandbox hash (an addition to the lead's contract). */
int store_sandbox_lookup(store *s, const char *platform, const char *channel, store_sandbox_cb cb,
                         void *ud);
/* Key codebot:{platform}:dedup:{key}; TTL_S > 0. SET key 1 NX EX ttl: status 1 when newly set, 0
 * when it existed (an event seen before). */
int store_dedup(store *s, const char *platform, const char *key, unsigned ttl_s, store_done_cb cb,
                void *ud);

#endif

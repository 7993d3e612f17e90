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
 * during it. */
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

/* URL: redis://[:password@]host[:port][/db] or unix:///path/to/sock[?db=N].
 * HISTORY_BUDGET: the most characters of history handed back by store_history_load (the
 * newest whole user+assistant pairs that fit). Returns 0 or -EINVAL (bad URL). Connecting
 * happens in the background. */
int store_open(uv_loop_t *loop, const char *url, size_t history_budget, store **out);
/* Fails pending calls with -ECANCELED, flushes nothing more, frees after the handles closed. */
void store_close(store *s);
/* 1 when connected now. */
int store_connected(const store *s);
/* Waits (up to TIMEOUT_MS, running the loop) until every write sent so far is answered;
 * used at shutdown. */
void store_flush(store *s, unsigned timeout_ms);

typedef void (*store_history_cb)(void *ud, int status, const store_history *h);
typedef void (*store_done_cb)(void *ud, int status);
typedef void (*store_string_cb)(void *ud, int status, const char *value);

int store_history_load(store *s, const char *platform, const char *channel, store_history_cb cb,
                       void *ud);
/* Appends one user turn and one assistant turn, atomically (MULTI/RPUSH/LTRIM/EXEC); the list
 * is capped at CODEBOT_HISTORY_MAX_TURNS (default 200) entries. */
int store_history_append(store *s, const char *platform, const char *channel, const char *user,
                         const char *assistant, store_done_cb cb, void *ud);
int store_history_clear(store *s, const char *platform, const char *channel, store_done_cb cb,
                        void *ud);
int store_history_len(store *s, const char *platform, const char *channel,
                      void (*cb)(void *ud, int status, long long n), void *ud);
int store_sandbox_get(store *s, const char *platform, const char *channel, store_string_cb cb,
                      void *ud);
int store_sandbox_set(store *s, const char *platform, const char *channel, const char *id,
                      const char *host, store_done_cb cb, void *ud);
/* SET key NX EX ttl: status 1 when newly set, 0 when it existed (an event seen before). */
int store_dedup(store *s, const char *platform, const char *key, unsigned ttl_s,
                store_done_cb cb, void *ud);

#endif

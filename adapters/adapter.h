/* adapter — the one interface every chat platform implements (console, discord, slack,
 * matrix), on the bot's libuv loop.
 *
 * Inbound: the adapter turns platform events into adapter_msg and hands them to the bot
 * through the on_message callback it was given; the message lives only during the call.
 * Outbound: post / edit / upload / typing, each asynchronous, each with a completion callback
 * that fires exactly once when the call returned 0 (never when it returned -errno). Remote
 * failures arrive in the callback as adapter_result: the HTTP status or platform error and,
 * for rate limits, how long to wait. Strings passed in are copied by the adapter.
 * The adapter also tells the live-message code how to pace edits (edit policy) and how big a
 * message may be; an adapter that cannot edit (console) sets `streams` and receives each
 * turn event as text to print through `print` instead. */
#ifndef CODEBOT_ADAPTER_H
#define CODEBOT_ADAPTER_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct adapter adapter;

/* Attachments reach the bot with their DATA: the adapter downloads them first (with the
 * platform's credentials, which the core never sees). One with only a URL is reported to the
 * user as not fetched. */
typedef struct adapter_attachment {
    const char *filename;
    const char *mime;
    const char *url;  /* where the adapter can fetch it, or NULL when data is given */
    const void *data; /* NULL when only a URL is known */
    size_t size;
} adapter_attachment;

typedef struct adapter_msg {
    const char *platform; /* "console", "discord", "slack", "matrix" */
    const char *channel;  /* the platform's channel/room id: with platform, the session key */
    const char *user;     /* who wrote it (platform id) */
    const char *text;     /* mention of the bot already stripped */
    const char *msg_id;   /* the platform's id of this message, for replies and dedup */
    const char *reply_to; /* id of the message it answers, or NULL */
    const adapter_attachment *attachments;
    size_t n_attachments;
} adapter_msg;

typedef struct adapter_result {
    int status;              /* 0, or -errno for a local/transport failure */
    int remote_status;       /* HTTP status or platform error code; 0 if none */
    const char *error;       /* one line for a log, NULL on success */
    uint64_t retry_after_ms; /* > 0 when rate-limited: wait this long before the next call */
    const char *msg_id;      /* post: the id of the new message */
} adapter_result;

typedef void (*adapter_cb)(void *ud, const adapter_result *res);

typedef struct adapter_ops {
    const char *name;
    /* Start receiving (connect, log in); messages go to ON_MESSAGE with UD. */
    int (*start)(adapter *a, void (*on_message)(void *ud, const adapter_msg *m), void *ud);
    /* Stop receiving and close; DONE fires when every handle is closed. */
    void (*stop)(adapter *a, void (*done)(void *ud), void *ud);
    int (*post)(adapter *a, const char *channel, const char *reply_to, const char *text,
                adapter_cb cb, void *ud);
    int (*edit)(adapter *a, const char *channel, const char *msg_id, const char *text,
                adapter_cb cb, void *ud);
    int (*upload)(adapter *a, const char *channel, const char *filename, const char *mime,
                  const void *data, size_t len, adapter_cb cb, void *ud);
    int (*typing)(adapter *a, const char *channel, adapter_cb cb, void *ud);
    /* Streaming adapters (console) only: print a piece of a turn's transcript as it happens. */
    void (*print)(adapter *a, const char *channel, const char *text);
    /* Optional: CHANNEL has nothing running or queued any more (the console then reads its
     * next line, so that a piped script runs one turn after the other). */
    void (*idle)(adapter *a, const char *channel);
    void (*free)(adapter *a);
} adapter_ops;

typedef struct adapter_policy {
    size_t max_chars;              /* message size cap in code points (Discord 2000) */
    size_t max_bytes;              /* and in bytes (Matrix 65536 per event); 0: none */
    uint64_t min_edit_interval_ms; /* at most one edit per interval; 0 with streams */
    size_t max_upload_bytes;       /* largest file the platform takes */
    int streams;                   /* 1: no editing; print each event as it comes */
} adapter_policy;

/* A deep copy of M (strings and attachment data), for a message that must outlive the
 * callback that delivered it (a queued message). NULL on ENOMEM. */
adapter_msg *adapter_msg_dup(const adapter_msg *m);
void adapter_msg_free(adapter_msg *m);

struct adapter {
    const adapter_ops *ops;
    adapter_policy policy;
    uv_loop_t *loop;
    void *impl; /* the adapter's own state */
};

#endif

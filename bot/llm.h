/* llm — streaming chat completions from Anthropic's Messages API or an OpenAI-compatible
 * server (OpenAI, Ollama, llama.cpp, vLLM), on the bot's libuv loop through libcurl multi.
 *
 * One llm_client per process, many calls at once. A call streams text through on_text as the
 * model writes it. 429, 529 and 5xx (and connection failures before any text arrived) are
 * retried, at most `max_retries` times, waiting `retry-after` when the server gives one
 * (bounded exponential backoff with jitter otherwise); each wait is announced through on_wait
 * first. Exactly one on_done ends a call that started (returned 0), also after llm_cancel.
 * Strings handed to callbacks live only during the callback. The key never appears in an
 * error text or a log line. */
#ifndef CODEBOT_LLM_H
#define CODEBOT_LLM_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

enum llm_provider { LLM_NONE, LLM_ANTHROPIC, LLM_OPENAI };

typedef struct llm_config {
    enum llm_provider provider;
    const char
        *base_url; /* Anthropic: https://api.anthropic.com; OpenAI: https://api.openai.com/v1 */
    const char *api_key; /* may be NULL/"" for local OpenAI-compatible servers */
    const char *model;
    int max_tokens;              /* default 4096 */
    int max_retries;             /* default 4 (when 0); negative: no retries */
    uint64_t connect_timeout_ms; /* default 10000 */
    uint64_t idle_timeout_ms;    /* no byte for this long: the stream is dead; default 60000 */
} llm_config;

typedef struct llm_msg {
    const char *role; /* "user" or "assistant" */
    const char *content;
} llm_msg;

typedef struct llm_request {
    const char *system;
    const llm_msg *messages;
    size_t n_messages;
} llm_request;

enum llm_status {
    LLM_OK = 0,
    LLM_ERR_HTTP,      /* a non-retryable HTTP error (bad key, unknown model, ...) */
    LLM_ERR_RETRIES,   /* still 429/529/5xx (or unreachable: http_status 0) after every retry */
    LLM_ERR_STREAM,    /* the stream broke or timed out, or the server sent an error event */
    LLM_ERR_CANCELLED, /* llm_cancel */
    LLM_ERR_LOCAL,     /* out of memory, curl failure before sending */
};

typedef struct llm_result {
    enum llm_status status;
    int http_status;         /* last HTTP status seen, 0 if none */
    const char *message;     /* one line for a person when status != LLM_OK */
    const char *stop_reason; /* end_turn / stop / max_tokens / length ..., or NULL */
} llm_result;

typedef struct llm_callbacks {
    void (*on_text)(void *ud, const char *text, size_t len);
    /* A retry is coming after SECONDS; ATTEMPT is the retry's number (1..max_retries). */
    void (*on_wait)(void *ud, int attempt, double seconds, int http_status);
    void (*on_done)(void *ud, const llm_result *res);
} llm_callbacks;

typedef struct llm_client llm_client;
typedef struct llm_call llm_call;

/* Copies CFG. Returns 0 or -errno. */
int llm_client_new(uv_loop_t *loop, const llm_config *cfg, llm_client **out);
/* Cancels every call (each gets on_done with LLM_ERR_CANCELLED, before this returns) and
 * frees the client after its handles closed (keep running the loop). Safe inside callbacks. */
void llm_client_free(llm_client *c);
/* REQ is copied; OUT (optional) gets a handle for llm_cancel, valid until on_done. */
int llm_generate(llm_client *c, const llm_request *req, const llm_callbacks *cb, void *ud,
                 llm_call **out);
/* Ends CALL: its on_done (LLM_ERR_CANCELLED) runs before llm_cancel returns. Safe inside any
 * callback of the client (also the call's own on_text / on_wait); not after its on_done. */
void llm_cancel(llm_call *call);

#endif

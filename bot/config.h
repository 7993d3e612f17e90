/* config — codebot's settings, read once from the environment at start-up (12-factor).
 *
 * Every variable is listed in README with its default. An invalid value stops start-up with
 * one line naming the variable. The config owns its strings; config_free releases them.
 * Secrets (API keys) are registered with log_add_secret() as they are read. */
#ifndef CODEBOT_CONFIG_H
#define CODEBOT_CONFIG_H
#include <stddef.h>
#include <stdint.h>

#include "bot/llm.h"

typedef struct config {
    char *redis_url;         /* REDIS_URL; NULL: run without history */
    enum llm_provider llm;   /* CODEBOT_LLM, or picked from which key is set */
    char *anthropic_key;     /* ANTHROPIC_API_KEY */
    char *anthropic_base;    /* ANTHROPIC_BASE_URL, default https://api.anthropic.com */
    char *openai_key;        /* OPENAI_API_KEY */
    char *openai_base;       /* OPENAI_BASE_URL, default https://api.openai.com/v1 */
    char *model;             /* CODEBOT_MODEL, default per provider */
    int max_attempts;        /* CODEBOT_MAX_ATTEMPTS, 1..10, default 3 */
    int max_tokens;          /* CODEBOT_MAX_TOKENS, default 4096 */
    size_t history_budget;   /* CODEBOT_HISTORY_BUDGET characters, default 24000 */
    uint64_t run_timeout_ms; /* CODEBOT_RUN_TIMEOUT seconds, default 120 */
    uint64_t llm_idle_ms;    /* CODEBOT_LLM_IDLE_TIMEOUT seconds, default 60 */
    int llm_max_retries;     /* CODEBOT_LLM_RETRIES, default 4 */
} config;

/* Reads the environment into C. On error returns -EINVAL with a one-line message in ERR
 * (naming the variable) and C left empty. */
int config_load(config *c, char *err, size_t err_len);
void config_free(config *c);
/* "anthropic", "openai" or "none". */
const char *config_provider_name(enum llm_provider p);
/* Fills an llm_config that borrows C's strings. */
void config_llm(const config *c, llm_config *out);

#endif

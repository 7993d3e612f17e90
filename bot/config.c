/* config — parses and validates environment variables. Each getter names the variable in
 * its error, so that start-up fails with a line a person can act on. */
#include "bot/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int dup_env(char **dst, const char *name, const char *def)
{
    const char *v = env(name);
    if (!v)
        v = def;
    *dst = v ? strdup(v) : NULL;
    return v && !*dst ? -ENOMEM : 0;
}

static int get_long(const char *name, long def, long lo, long hi, long *out, char *err, size_t len)
{
    const char *v = env(name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi)
        return fail(err, len, "%s must be a whole number from %ld to %ld, not '%s'", name, lo, hi,
                    v);
    *out = n;
    return 0;
}

static int check_http_url(const char *name, const char *url, char *err, size_t len)
{
    if (url && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return fail(err, len, "%s must start with http:// or https://, not '%s'", name, url);
    return 0;
}

static int check_redis_url(const char *url, char *err, size_t len)
{
    if (!url)
        return 0;
    if (strncmp(url, "redis://", 8) == 0 && url[8])
        return 0;
    if (strncmp(url, "unix://", 7) == 0 && url[7] == '/')
        return 0;
    return fail(err, len, "REDIS_URL must be redis://host:port/db or unix:///path, not '%s'", url);
}

static int pick_provider(config *c, char *err, size_t len)
{
    const char *v = env("CODEBOT_LLM");
    if (!v) {
        if (c->anthropic_key)
            c->llm = LLM_ANTHROPIC;
        else if (c->openai_key || env("OPENAI_BASE_URL"))
            c->llm = LLM_OPENAI;
        else
            c->llm = LLM_NONE;
        return 0;
    }
    if (strcmp(v, "anthropic") == 0) {
        if (!c->anthropic_key)
            return fail(err, len, "CODEBOT_LLM=anthropic needs ANTHROPIC_API_KEY");
        c->llm = LLM_ANTHROPIC;
    } else if (strcmp(v, "openai") == 0) {
        c->llm = LLM_OPENAI;
    } else if (strcmp(v, "none") == 0) {
        c->llm = LLM_NONE;
    } else {
        return fail(err, len, "CODEBOT_LLM must be 'anthropic', 'openai' or 'none', not '%s'", v);
    }
    return 0;
}

static int load_numbers(config *c, char *err, size_t len)
{
    long n;
    int rc;
    if ((rc = get_long("CODEBOT_MAX_ATTEMPTS", 3, 1, 10, &n, err, len)))
        return rc;
    c->max_attempts = (int)n;
    if ((rc = get_long("CODEBOT_MAX_TOKENS", 4096, 16, 1000000, &n, err, len)))
        return rc;
    c->max_tokens = (int)n;
    if ((rc = get_long("CODEBOT_HISTORY_BUDGET", 24000, 1000, 10000000, &n, err, len)))
        return rc;
    c->history_budget = (size_t)n;
    if ((rc = get_long("CODEBOT_RUN_TIMEOUT", 120, 1, 86400, &n, err, len)))
        return rc;
    c->run_timeout_ms = (uint64_t)n * 1000;
    if ((rc = get_long("CODEBOT_LLM_IDLE_TIMEOUT", 60, 1, 3600, &n, err, len)))
        return rc;
    c->llm_idle_ms = (uint64_t)n * 1000;
    if ((rc = get_long("CODEBOT_LLM_RETRIES", 4, 0, 20, &n, err, len)))
        return rc;
    c->llm_max_retries = (int)n;
    return 0;
}

static int load(config *c, char *err, size_t len)
{
    int rc;
    if ((rc = dup_env(&c->redis_url, "REDIS_URL", NULL)) ||
        (rc = dup_env(&c->anthropic_key, "ANTHROPIC_API_KEY", NULL)) ||
        (rc = dup_env(&c->anthropic_base, "ANTHROPIC_BASE_URL", "https://api.anthropic.com")) ||
        (rc = dup_env(&c->openai_key, "OPENAI_API_KEY", NULL)) ||
        (rc = dup_env(&c->openai_base, "OPENAI_BASE_URL", "https://api.openai.com/v1")))
        return rc == -ENOMEM ? fail(err, len, "out of memory reading the environment") : rc;
    log_add_secret(c->anthropic_key);
    log_add_secret(c->openai_key);
    if ((rc = check_redis_url(c->redis_url, err, len)) ||
        (rc = check_http_url("ANTHROPIC_BASE_URL", c->anthropic_base, err, len)) ||
        (rc = check_http_url("OPENAI_BASE_URL", c->openai_base, err, len)) ||
        (rc = pick_provider(c, err, len)) || (rc = load_numbers(c, err, len)))
        return rc;
    const char *def = c->llm == LLM_OPENAI ? "gpt-4o-mini" : "claude-sonnet-4-5";
    if (dup_env(&c->model, "CODEBOT_MODEL", def))
        return fail(err, len, "out of memory reading the environment");
    return 0;
}

int config_load(config *c, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    int rc = load(c, err, err_len);
    if (rc)
        config_free(c);
    return rc;
}

void config_free(config *c)
{
    free(c->redis_url);
    free(c->anthropic_key);
    free(c->anthropic_base);
    free(c->openai_key);
    free(c->openai_base);
    free(c->model);
    memset(c, 0, sizeof *c);
}

const char *config_provider_name(enum llm_provider p)
{
    return p == LLM_ANTHROPIC ? "anthropic" : p == LLM_OPENAI ? "openai" : "none";
}

void config_llm(const config *c, llm_config *out)
{
    memset(out, 0, sizeof *out);
    out->provider = c->llm;
    out->base_url = c->llm == LLM_ANTHROPIC ? c->anthropic_base : c->openai_base;
    out->api_key = c->llm == LLM_ANTHROPIC ? c->anthropic_key : c->openai_key;
    out->model = c->model;
    out->max_tokens = c->max_tokens;
    out->max_retries = c->llm_max_retries;
    out->connect_timeout_ms = 10000;
    out->idle_timeout_ms = c->llm_idle_ms;
}

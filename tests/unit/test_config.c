/* Unit tests for bot/config: defaults, provider choice, and one clear line per bad value. */
#include "tests/unit/check.h"

#include "bot/config.h"

static const char *vars[] = {"REDIS_URL",
                             "ANTHROPIC_API_KEY",
                             "ANTHROPIC_BASE_URL",
                             "OPENAI_API_KEY",
                             "OPENAI_BASE_URL",
                             "CODEBOT_LLM",
                             "CODEBOT_MODEL",
                             "CODEBOT_MAX_ATTEMPTS",
                             "CODEBOT_HISTORY_BUDGET",
                             "CODEBOT_RUN_TIMEOUT",
                             NULL};

static void clean(void)
{
    for (int i = 0; vars[i]; i++)
        unsetenv(vars[i]);
}

TEST(defaults_without_any_variable)
{
    clean();
    config c;
    char err[256] = "";
    CHECK_INT(config_load(&c, err, sizeof err), 0);
    CHECK_INT(c.llm, LLM_NONE);
    CHECK_INT(c.max_attempts, 3);
    CHECK(c.redis_url == NULL);
    CHECK_STR(c.anthropic_base, "https://api.anthropic.com");
    CHECK_INT(c.run_timeout_ms, 120000);
    config_free(&c);
}

TEST(provider_picked_from_key)
{
    clean();
    setenv("OPENAI_API_KEY", "sk-test-openai", 1);
    config c;
    char err[256];
    CHECK_INT(config_load(&c, err, sizeof err), 0);
    CHECK_INT(c.llm, LLM_OPENAI);
    CHECK_STR(c.model, "gpt-4o-mini");
    config_free(&c);
    setenv("ANTHROPIC_API_KEY", "sk-ant-test", 1);
    CHECK_INT(config_load(&c, err, sizeof err), 0);
    CHECK_INT(c.llm, LLM_ANTHROPIC);
    config_free(&c);
}

TEST(openai_base_url_alone_selects_openai)
{
    clean();
    setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1", 1);
    config c;
    char err[256];
    CHECK_INT(config_load(&c, err, sizeof err), 0);
    CHECK_INT(c.llm, LLM_OPENAI);
    CHECK(c.openai_key == NULL);
    config_free(&c);
}

static void expect_error(const char *var, const char *value, const char *needle)
{
    clean();
    setenv(var, value, 1);
    config c;
    char err[256] = "";
    CHECK_INT(config_load(&c, err, sizeof err), -EINVAL);
    if (!strstr(err, needle)) {
        fprintf(stderr, "error '%s' lacks '%s'\n", err, needle);
        exit(1);
    }
    CHECK(strchr(err, '\n') == NULL);
}

TEST(bad_values_name_the_variable)
{
    expect_error("CODEBOT_MAX_ATTEMPTS", "zero", "CODEBOT_MAX_ATTEMPTS");
    expect_error("CODEBOT_MAX_ATTEMPTS", "0", "CODEBOT_MAX_ATTEMPTS");
    expect_error("CODEBOT_MAX_ATTEMPTS", "3x", "CODEBOT_MAX_ATTEMPTS");
    expect_error("CODEBOT_LLM", "gemini", "CODEBOT_LLM");
    expect_error("CODEBOT_LLM", "anthropic", "ANTHROPIC_API_KEY");
    expect_error("REDIS_URL", "localhost:6379", "REDIS_URL");
    expect_error("ANTHROPIC_BASE_URL", "ftp://x", "ANTHROPIC_BASE_URL");
    expect_error("CODEBOT_HISTORY_BUDGET", "-5", "CODEBOT_HISTORY_BUDGET");
}

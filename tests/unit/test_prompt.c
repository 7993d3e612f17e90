/* Unit tests for bot/prompt: the seed's history format and the prompt's rules. */
#include "tests/unit/check.h"

#include "bot/prompt.h"

TEST(system_prompt_names_language_and_rules)
{
    char *p = prompt_system("python");
    CHECK(strstr(p, "Python") != NULL);
    CHECK(strstr(p, "ONLY the Python code") != NULL);
    CHECK(strstr(p, "print()") != NULL);
    CHECK(strstr(p, "matplotlib") != NULL);
    free(p);
    p = prompt_system("bash");
    CHECK(strstr(p, "ONLY the Bash code") != NULL);
    free(p);
}

TEST(history_entry_matches_seed_format)
{
    char *ok = prompt_history_entry("python", "print(1)", 1, "1\n", NULL);
    CHECK_STR(ok, "I ran this code:\n```python\nprint(1)\n```\nOutput:\n1\n");
    free(ok);
    char *bad = prompt_history_entry("python", "1/0", 0, "", "ZeroDivisionError: division by zero");
    CHECK_STR(bad, "I tried to run this code but it failed:\n```python\n1/0\n```\nError: "
                   "ZeroDivisionError: division by zero");
    free(bad);
}

TEST(fix_request_carries_error)
{
    char *f = prompt_fix_request("NameError: name 'x' is not defined\nTraceback...");
    CHECK(strstr(f, "NameError: name 'x' is not defined") != NULL);
    CHECK(strstr(f, "Fix the code") != NULL);
    free(f);
}

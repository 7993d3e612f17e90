/* prompt — texts for the model. The system prompt follows the seed design (only code, use
 * print, common packages available) and adds what our sandbox is: persistent, offline. */
#include "bot/prompt.h"

#include <string.h>

#include "common/strbuf.h"

static const char *lang_title(const char *lang)
{
    if (strcmp(lang, "bash") == 0)
        return "Bash";
    if (strcmp(lang, "javascript") == 0)
        return "JavaScript (Node.js)";
    return "Python";
}

char *prompt_system(const char *lang)
{
    const char *t = lang_title(lang);
    strbuf b = {0};
    int rc = strbuf_printf(
        &b,
        "You are an expert %s developer.\n"
        "The user will describe a coding task. Write clean, working %s code to accomplish it.\n"
        "The code runs in a persistent sandbox, like a notebook kernel: variables, imports and "
        "files from earlier turns are still there, so build on them.\n"
        "Rules:\n"
        "- Output ONLY the %s code. No markdown fences, no explanation.\n"
        "- Use %s to show results; they are streamed to the user as the code runs.\n",
        t, t, t, strcmp(lang, "python") == 0 ? "print()" : "output to stdout");
    if (rc == 0 && strcmp(lang, "python") == 0)
        rc = strbuf_puts(&b, "- You may import the standard library and the common packages "
                             "installed: numpy, pandas, matplotlib. Figures you draw with "
                             "matplotlib are sent to the user as images; files you save in the "
                             "working directory are sent as attachments.\n");
    if (rc == 0)
        rc = strbuf_puts(&b, "- There is no network access; do not install packages.\n"
                             "- Keep code concise and readable.\n");
    if (rc) {
        strbuf_free(&b);
        return NULL;
    }
    return strbuf_steal(&b);
}

char *prompt_fix_request(const char *error)
{
    strbuf b = {0};
    if (strbuf_printf(&b,
                      "The previous attempt failed with this error:\n%s\nFix the code. Output "
                      "only the complete corrected code.",
                      error)) {
        strbuf_free(&b);
        return NULL;
    }
    return strbuf_steal(&b);
}

char *prompt_history_entry(const char *lang, const char *code, int ok, const char *output,
                           const char *error)
{
    strbuf b = {0};
    int rc;
    if (ok)
        rc = strbuf_printf(&b, "I ran this code:\n```%s\n%s\n```\nOutput:\n%s", lang, code,
                           output ? output : "");
    else
        rc = strbuf_printf(&b, "I tried to run this code but it failed:\n```%s\n%s\n```\nError: %s",
                           lang, code, error ? error : "");
    if (rc) {
        strbuf_free(&b);
        return NULL;
    }
    return strbuf_steal(&b);
}

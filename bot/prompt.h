/* prompt — the words codebot says to the model: the system prompt, the request to fix a
 * failed attempt, and the assistant turn stored in history (the seed's format, so that
 * "now plot them" finds what "them" was). Pure functions; results are malloc'd, caller frees,
 * NULL on ENOMEM. */
#ifndef CODEBOT_PROMPT_H
#define CODEBOT_PROMPT_H

/* The system prompt for code in LANG ("python", "bash", "javascript"). */
char *prompt_system(const char *lang);
/* The user turn that asks for a fix after ERROR (name: value and traceback). */
char *prompt_fix_request(const char *error);
/* The assistant turn kept in history: "I ran this code: ... Output: ..." when OK, else
 * "I tried to run this code but it failed: ... Error: ...". */
char *prompt_history_entry(const char *lang, const char *code, int ok, const char *output,
                           const char *error);

#endif

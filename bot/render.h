/* render — turns a turn's events into the text of one chat message (the "live message").
 *
 * Platform-neutral and pure: no I/O, no clock of its own (the caller passes now_ms). The text
 * follows the seed's flow — 🔄 attempt N/M, 📝 the code in a fenced block, 🚀 running with
 * elapsed seconds, the output so far in a fenced block, ❌ the error, ✅ Done. / 🛑 Failed
 * after N attempts. — and always fits the limit it was given (code points and bytes): it keeps
 * the status and the code (the code shortened only when it alone is too big), keeps the newest
 * output, and says how many lines it left out. Output is arbitrary bytes: invalid UTF-8, NULs
 * and control characters are made safe, and a fence inside output cannot close the block.
 * The renderer owns its copies of everything it is given.
 *
 * Layout, top to bottom, one section per line group (sections are left out while empty):
 *   ❌ Attempt 1/3: NameError: name 'x' is not defined     one per earlier attempt
 *   🔄 Attempt 2/3 — fixing error                          when attempt > 1
 *   📝 Code: + ```lang fenced code
 *   status: ✍️ Writing code… | ⏳ <detail> | 🚀 Running… N s | ✅ Done. (1.2 s) |
 *           🛑 Failed after N attempts. | ⏹ Stopped: <detail>
 *   ``` fenced output ```                                  the newest lines
 *   ❌ Error: Name: value
 *   notes, one per line
 * Conventions (platform-neutral Markdown; Discord, Slack and Matrix show it acceptably):
 * - stderr lines are prefixed "⚠️ " inside the output block; stdout and stderr keep their
 *   interleaving order, and an unfinished line of one stream ends where the other cuts in.
 * - No "```" survives inside a block or a one-line field: every run of backticks gets a
 *   zero-width space (U+200B) after each second backtick. (Discord and Slack close a block
 *   at the first ``` anywhere, so a longer fence would not help.) Shown code can thus differ
 *   from the code that ran by these invisible characters.
 * - Output: invalid UTF-8 becomes U+FFFD, NUL and other control characters except \n and
 *   \t are dropped, ANSI escape sequences (colours, cursor moves, titles) are dropped, \r\n
 *   is a line break and a bare \r rewinds the line (the next text replaces it), so that
 *   progress bars show their last state. A sequence cut between two render_output calls of
 *   the same stream is put back together.
 * - Only what can ever be shown is kept: a tail of lines worth one message plus the count
 *   of the lines let go; a line longer than a message is cut and shown ending with "…".
 * - When everything does not fit: status, error and notes stay; the code stays (head and
 *   tail around "… N lines …" if it alone is too big); the newest output fills the rest
 *   under "… N earlier lines not shown …". One-line fields are cut to 300 code points (then
 *   shorter, and summaries, notes and code dropped, for very small limits); when not even
 *   that fits (limits of a few dozen code points) the text is cut at a character boundary.
 * - The text of a finished turn (DONE, FAILED, STOPPED) does not depend on now_ms. */
#ifndef CODEBOT_RENDER_H
#define CODEBOT_RENDER_H
#include <stddef.h>
#include <stdint.h>

typedef struct render render;

enum render_phase {
    RENDER_GENERATING, /* the model is writing code */
    RENDER_WAITING,    /* LLM retry wait: detail says why and how long */
    RENDER_RUNNING,
    RENDER_DONE,
    RENDER_FAILED,  /* out of attempts */
    RENDER_STOPPED, /* cancelled, or a non-code failure (no LLM, LLM error): detail says */
};

/* MAX_CHARS in code points (> 0), MAX_BYTES in bytes (0: no byte limit). NULL on ENOMEM or
 * when MAX_CHARS is 0. */
render *render_new(size_t max_chars, size_t max_bytes, int max_attempts);
void render_free(render *r);
/* A new attempt (1-based) begins: the previous attempt's code and output are folded into a
 * one-line summary. */
void render_attempt(render *r, int attempt);
/* The code so far (replaces; called repeatedly while it streams). */
void render_code(render *r, const char *lang, const char *code);
/* DETAIL (may be NULL) is the whole text after ⏳ for RENDER_WAITING (e.g. "Model busy
 * (529), retrying in 2 s") and after "Stopped: " for RENDER_STOPPED; other phases ignore it.
 * Running's seconds count from the call that entered RENDER_RUNNING (in this attempt);
 * Done's duration is from there to the call that entered RENDER_DONE. */
void render_phase(render *r, enum render_phase phase, const char *detail, uint64_t now_ms);
/* Output bytes from stdout (1) or stderr (2; any other value counts as stdout). */
void render_output(render *r, int stream, const char *data, size_t len);
/* The run's error: name, value (shown as `❌ name: value`). */
void render_error(render *r, const char *name, const char *value);
/* A note line under the output (e.g. "📎 fibonacci.png", "sandbox restarted: state lost").
 * Notes outlive attempts; after 16 notes more are only counted. */
void render_note(render *r, const char *note);
/* The message text now (malloc'd, caller frees); NULL on ENOMEM. */
char *render_text(render *r, uint64_t now_ms);

#endif

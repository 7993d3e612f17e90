/* render — turns a turn's events into the text of one chat message (the "live message").
 *
 * Platform-neutral and pure: no I/O, no clock of its own (the caller passes now_ms). The text
 * follows the seed's flow — 🔄 attempt N/M, 📝 the code in a fenced block, 🚀 running with
 * elapsed seconds, the output so far in a fenced block, ❌ the error, ✅ Done. / 🛑 Failed
 * after N attempts. — and always fits the limit it was given (code points and bytes): it keeps
 * the status and the code (the code shortened only when it alone is too big), keeps the newest
 * output, and says how many lines it left out. Output is arbitrary bytes: invalid UTF-8, NULs
 * and control characters are made safe, and a fence inside output cannot close the block.
 * The renderer owns its copies of everything it is given. */
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
    RENDER_FAILED,     /* out of attempts */
    RENDER_STOPPED,    /* cancelled, or a non-code failure (no LLM, LLM error): detail says */
};

/* MAX_CHARS in code points, MAX_BYTES in bytes (0: no byte limit). NULL on ENOMEM. */
render *render_new(size_t max_chars, size_t max_bytes, int max_attempts);
void render_free(render *r);
/* A new attempt (1-based) begins: the previous attempt's code and output are folded into a
 * one-line summary. */
void render_attempt(render *r, int attempt);
/* The code so far (replaces; called repeatedly while it streams). */
void render_code(render *r, const char *lang, const char *code);
void render_phase(render *r, enum render_phase phase, const char *detail, uint64_t now_ms);
/* Output bytes from stdout (1) or stderr (2). */
void render_output(render *r, int stream, const char *data, size_t len);
/* The run's error: name, value (shown as `❌ name: value`). */
void render_error(render *r, const char *name, const char *value);
/* A note line under the output (e.g. "📎 fibonacci.png", "sandbox restarted: state lost"). */
void render_note(render *r, const char *note);
/* The message text now (malloc'd, caller frees); NULL on ENOMEM. */
char *render_text(render *r, uint64_t now_ms);

#endif

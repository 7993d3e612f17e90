/* console — the terminal adapter: the seed's REPL on the bot's loop.
 *
 * One channel, "console:local" (CODEBOT_CONSOLE_CHANNEL names another, e.g. one per user
 * or per test). It prints `You: `, reads one line, hands it to the bot and
 * reads the next line only when the bot says the channel is idle, so a piped script of
 * messages runs one turn after the other. `exit` or end of input quits once the last turn is
 * done. Ctrl-C while a turn runs sends the bot a `cancel`; a second Ctrl-C, or one at the
 * prompt, quits. Turns stream: each piece of the transcript is printed as it happens.
 * Uploads are written to CODEBOT_CONSOLE_FILES (default var/files) and their path printed.
 * stdout is written with blocking stdio: a terminal or a pipe to a reader keeps up. */
#ifndef CODEBOT_CONSOLE_H
#define CODEBOT_CONSOLE_H
#include <uv.h>

#include "adapters/adapter.h"

int console_new(uv_loop_t *loop, adapter **out);
/* QUIT fires once, when the console wants the process to end (exit, EOF, Ctrl-C). */
void console_set_quit(adapter *a, void (*quit)(void *ud), void *ud);

#endif

/* app — the bot process: configuration, the loop, the store, the LLM client, the adapters
 * and the channels, started in order and shut down gracefully (SIGTERM/SIGINT: running turns
 * are told they stop, pending Redis writes are flushed, sandboxes are left running for the
 * next start). Owns everything it creates; runs on the default libuv loop. */
#ifndef CODEBOT_APP_H
#define CODEBOT_APP_H

/* `codebot console` (CONSOLE_ONLY) and `codebot run`. Returns the process exit status. */
int app_main(int console_only);

#endif

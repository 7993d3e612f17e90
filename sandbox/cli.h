/* cli — the sandbox commands of the codebot binary: `codebot sandboxd`, `codebot exec` and
 * `codebot sandbox ls|kill|stats|shutdown`.
 *
 * Each takes the arguments after the command name (ARGV[0] is the command itself), runs to
 * completion on a private libuv loop and returns the process exit status. They write to
 * stdout/stderr and are meant for main() only.
 *
 * exec exit status: 0 the code ran fine; 1 it raised or was stopped (error, timeout,
 * interrupted, killed, crashed, limit); 2 the sandbox failed or the request was invalid
 * (bad flags, unknown language, service unreachable). A message is on stderr unless 0. */
#ifndef CODEBOT_CLI_H
#define CODEBOT_CLI_H

int cli_sandboxd(int argc, char **argv);
int cli_exec(int argc, char **argv);
int cli_sandbox(int argc, char **argv);

#endif

/* sandboxd — the service that owns every sandbox on a host (`codebot sandboxd`).
 *
 * Serves docs/sandbox-protocol.md on a unix socket (sbx_socket_path()), one request per
 * connection, on its own libuv loop in its own process. It starts one zygote (jail.h) at
 * start and restarts it when it dies; each session gets a sandbox: a jailed kernel forked
 * from the zygote, with a ctl socket and stdout/stderr pipes read on the loop. Runs of one
 * sandbox are serialised (a FIFO queue); sandboxes never wait on each other. Per run: a wall
 * timeout (SIGINT to the session init, then after a grace period the session is destroyed),
 * an output cap that keeps the tail (outcap.h), interrupt when the client goes away (its
 * connection closed, or only its writing side: end of input during a run means "stop").
 *
 * Lifetime: sandboxes live until `kill`, until idle for CODEBOT_SANDBOX_IDLE_S, or until the
 * service ends. The service ends on `shutdown` and on SIGTERM/SIGINT; in both cases it
 * destroys every sandbox first (jail_destroy: no process, mount or cgroup stays behind),
 * because a session without the service that holds its pipes cannot be used again.
 * It reaps its children itself (SIGCHLD + waitpid(-1)) and is a child subreaper.
 *
 * Details of the protocol left open by docs/sandbox-protocol.md: `ls` states are "starting",
 * "idle", "running" and "stopped" (the kernel died or was killed; the next run starts a fresh
 * one, `new` true, same id). `new` is also true when the client's stored `sandbox` id is not
 * the session's. put_file creates the session's sandbox if needed; get_file and list_files
 * on an unknown session fail. File ops queue behind runs like runs do. `kill` takes an id or
 * a session name. A kernel line {"ev":"exit","signal":N,"code":N} sent by a session init
 * before it ends names the signal in a crash message; {"ev":"fatal","error":E} becomes the
 * failure message of the runs waiting for that kernel.
 *
 * Environment: CODEBOT_SANDBOX_TIMEOUT_MS (default run timeout, 120000),
 * CODEBOT_SANDBOX_GRACE_MS (3000), CODEBOT_SANDBOX_OUTPUT_MAX (bytes per run, 1 MiB),
 * CODEBOT_SANDBOX_IDLE_S (1800), CODEBOT_SANDBOX_SOCKET(_MODE), the limits of jail.h. */
#ifndef CODEBOT_SANDBOXD_H
#define CODEBOT_SANDBOXD_H

#ifndef CODEBOT_VERSION
#define CODEBOT_VERSION "0.1.0"
#endif

/* Runs the service in the foreground until it is shut down. Returns the process exit
 * status: 0 after a shutdown (or when another service already owns the socket), 1 when it
 * could not start (the reason is logged). */
int sandboxd_main(void);

#endif

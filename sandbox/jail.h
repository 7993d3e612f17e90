/* jail — the containment of sandboxes: a zygote per host, and one jailed session kernel per
 * sandbox forked from it.
 *
 * sandboxd (root, or holding the privileges in docs/security.md) starts one zygote: a Python
 * process in its own user namespace (uid/gid ranges mapped to unprivileged host ids), mount
 * namespace (a read-only view of the system dirs, nothing of /root, /home or the service's
 * state) and an empty environment, that imported numpy, pandas and matplotlib once. For each
 * sandbox the zygote forks a session: new pid, mount, net (loopback only), ipc, uts
 * namespaces; private /tmp, /dev/shm and a size-limited working dir; its own /proc; cgroup
 * limits; rlimits; an unprivileged uid; no_new_privs and the seccomp filter (seccomp.c). Forked
 * sessions share the zygote's imported pages copy-on-write: that is what makes a new session
 * start warm and an idle one cheap.
 *
 * Session kernel protocol (sandbox/kernel/kernel.py is the other side):
 *   fds[0] ctl, a SOCK_STREAM socketpair end: JSON lines both ways.
 *     service -> kernel: {"op":"run","lang","code"} | {"op":"put_file","path","data"(b64)}
 *                        | {"op":"get_file","path"} | {"op":"list_files"}
 *     kernel -> service: {"ev":"ready"} once, when the session is set up; per run any of
 *                        {"ev":"result"|"file"|"error",...} (as in docs/sandbox-protocol.md)
 *                        then {"ev":"end","ok":bool,"execution_count":N}; a file op gets one
 *                        line {"ok":bool,...}.
 *   fds[1], fds[2]: write ends of the stdout and stderr pipes. The kernel flushes both before
 *     it writes "end", so the service drains the pipes when it reads "end".
 *   SIGINT to the session's init (the pid jail_spawn returns) interrupts the running code
 *     (Python: KeyboardInterrupt, state kept). SIGKILL to it ends the whole session: the init
 *     is pid 1 of the session's pid namespace.
 *   The kernel may send {"ev":"fatal","error":"..."} instead of "ready" when its setup fails,
 *   then exits. jail_spawn returns once the session may run (after the go below); "ready"
 *   arrives on ctl shortly after (tens of ms), read it on the loop like any other line.
 *   The end of a session shows as EOF on ctl (the kernel keeps ctl close-on-exec, so no
 *   child of the user's code holds it); jail_oom_killed() then tells whether it ran out of
 *   memory.
 *
 * Service <-> zygote protocol (all inside jail.c; written down for review and debugging):
 *   The zygote is /usr/bin/python3 -I /kernel.py --zygote, uid 0 in a user namespace whose
 *   0..65535 map to host CODEBOT_SANDBOX_UID_BASE.. (default 100000). Its fd 3 is a
 *   SOCK_SEQPACKET socket (one JSON object per message), fd 4 a memfd holding the seccomp
 *   BPF program (struct sock_filter[], from seccomp.c), read once and closed.
 *   zygote -> service  {"ev":"ready"}                       once, data stack imported
 *   service -> zygote  {"op":"spawn","id":S,"uid":U,"cpu_seconds":N,"file_bytes":N,
 *                       "max_files":N,"max_pids":N,"disk_bytes":N,"as_bytes":N,"seq":N}
 *                      + SCM_RIGHTS [ctl, stdout, stderr]
 *   zygote -> service  {"seq":N,"ok":true,"pid":P} + SCM_RIGHTS [gate]
 *                      or {"seq":N,"ok":false,"error":E}
 *   (as_bytes: RLIMIT_AS, set only when there is no memory cgroup; 0 = none. seq: echoed, so
 *   that a late answer to a request that timed out is recognised and dropped.)
 *   The zygote clones B straight into new pid, mount, net, ipc and uts namespaces (B is pid 1
 *   inside, host pid P, the zygote's child). B mounts its /proc, /tmp, /var/tmp, /dev/shm and
 *   the working dir and brings lo up, then blocks reading one byte from the gate pipe. The
 *   service puts P in the session's cgroups, then writes "g" to the gate and closes it. Only
 *   then does B fork the kernel C (pid 2), the first process that runs user code, so no user
 *   code runs outside the cgroups. EOF on the gate (service gone or spawn failed) makes B
 *   exit. B stays as init: reaps, forwards SIGINT to C's process group, and exits (which
 *   kills everything in the namespace) when C exits or when the service's end of ctl hangs
 *   up (close or shutdown).
 *   C drops to uid/gid U (host base+U), sets rlimits, no_new_privs and the seccomp filter,
 *   then sends "ready". The session uid U is 10000 + a slot that jail.c allocates per live
 *   session, so two sessions never share a uid.
 * All calls are blocking but short (a spawn is a fork in the zygote, milliseconds); they run
 * on sandboxd's loop thread. Return 0 or -errno. */
#ifndef CODEBOT_JAIL_H
#define CODEBOT_JAIL_H
#include <stdint.h>
#include <sys/types.h>

typedef struct jail_limits {
    uint64_t mem_bytes;   /* cgroup memory limit; default 512 MiB */
    unsigned max_pids;    /* processes+threads in the session; default 64 */
    unsigned cpu_seconds; /* RLIMIT_CPU per process; default 600 */
    uint64_t file_bytes;  /* RLIMIT_FSIZE; default 64 MiB */
    unsigned max_files;   /* RLIMIT_NOFILE; default 256 */
    uint64_t disk_bytes;  /* size of the working dir tmpfs (and of /tmp); default 256 MiB */
    unsigned cpu_percent; /* cgroup CPU bandwidth, 100 = one CPU, 0 = unlimited; default 100 */
} jail_limits;

typedef struct jail_zygote {
    pid_t pid;  /* host pid of the zygote */
    int ctl_fd; /* the service's end of the zygote's control socket */
} jail_zygote;

/* Fills L with the defaults, overridden by CODEBOT_SANDBOX_MEMORY_MB, _PIDS, _CPU_SECONDS,
 * _FILE_MB, _FILES, _DISK_MB, _CPU_PERCENT. -EINVAL (variable named on stderr) for a bad value. */
int jail_limits_from_env(jail_limits *l);
/* 1 when this process can build jails (user namespaces usable, enough privilege). WHY gets a
 * sentence for a person otherwise. */
int jail_supported(char *why, size_t why_len);
/* Starts the zygote (blocking until it reports ready or fails, at most a few seconds).
 * -EINVAL for a bad CODEBOT_SANDBOX_UID_BASE (named on stderr). */
int jail_zygote_start(jail_zygote *z);
/* Kills and reaps the zygote. Sessions spawned from it keep running: they end with
 * jail_destroy or when the service closes their ctl. */
void jail_zygote_stop(jail_zygote *z);
/* Forks a session kernel for sandbox ID; FDS as above (the caller keeps and later closes its
 * own copies). *PID gets the host pid of the session's init. */
int jail_spawn(jail_zygote *z, const char *id, const jail_limits *l, const int fds[3], pid_t *pid);
/* Kills every process of the session and removes its cgroups; idempotent. Call it for every
 * session jail_spawn started, also one that died by itself: it frees the session's uid slot.
 * Closing the service's end of ctl also ends a session (its init notices the hang-up). */
int jail_destroy(const char *id, pid_t pid);
/* Memory now and CPU time so far of a session (from its cgroups); -ENOENT when gone. */
int jail_stats(const char *id, uint64_t *mem_bytes, uint64_t *cpu_ms);
/* 1 when the kernel's OOM killer struck in the session's memory cgroup (call it before
 * jail_destroy), 0 when not, -ENOENT without cgroups or once destroyed. */
int jail_oom_killed(const char *id);

#endif

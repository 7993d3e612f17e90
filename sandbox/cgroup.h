/* cgroup — one control group per sandbox session: memory limit, process limit, CPU
 * accounting, kill-all and removal.
 *
 * cgroup_init() picks the flavour once per process: cgroup v2 when /sys/fs/cgroup is a pure
 * cgroup2 mount whose memory and pids controllers can be delegated to our subtree, else v1
 * (memory, pids, cpuacct hierarchies under /sys/fs/cgroup/<ctrl>/), else none: then it logs a
 * warning and every other call returns -ENOTSUP, so that sessions run with rlimits only.
 * Session groups live in <hierarchy>/<base>/<id>, base from CODEBOT_SANDBOX_CGROUP (default
 * "codebot"); an id that is not a safe file name is replaced by a hash of it. Root (or write
 * access to those directories) is needed. Blocking file I/O on small files; call from the
 * loop thread. Return 0 or -errno. */
#ifndef CODEBOT_CGROUP_H
#define CODEBOT_CGROUP_H
#include <stdint.h>
#include <sys/types.h>

enum cgroup_mode { CGROUP_NONE = 0, CGROUP_V1 = 1, CGROUP_V2 = 2 };

/* Detects (first call only) and returns the mode. CODEBOT_SANDBOX_CGROUP_ROOT overrides
 * /sys/fs/cgroup (tests use it with a fake tree); CODEBOT_SANDBOX_CGROUPS=off forces none. */
enum cgroup_mode cgroup_init(void);
/* Creates the groups of session ID (removing leftovers of an earlier one with that id).
 * CPU_PERCENT: bandwidth in percent of one CPU (0 = unlimited), applied when the cpu
 * controller is available. */
int cgroup_create(const char *id, uint64_t mem_bytes, unsigned max_pids, unsigned cpu_percent);
/* Moves PID (a host pid) into the session's groups. */
int cgroup_attach(const char *id, pid_t pid);
/* Memory in use (rss + page cache, tmpfs included) and CPU time used so far. */
int cgroup_stats(const char *id, uint64_t *mem_bytes, uint64_t *cpu_ms);
/* 1 if the OOM killer killed a process of the session, else 0. */
int cgroup_oom_killed(const char *id);
/* SIGKILLs every process in the session's groups until they are empty. */
int cgroup_kill(const char *id);
/* Kills, then removes the groups; idempotent (0 when they do not exist). */
int cgroup_destroy(const char *id);

#endif

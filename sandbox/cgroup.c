/* cgroup — per-session control groups for the jail (see cgroup.h).
 *
 * v1 uses four hierarchies: memory (limit, swap limit, OOM count), pids (pids.max), cpuacct
 * (CPU time) and cpu (bandwidth quota); memory is mandatory, the others are used when
 * mounted. v2 uses one directory with memory.max, memory.swap.max, pids.max, cpu.max,
 * memory.events and cgroup.kill; to delegate controllers to our base group the service may
 * have to move itself into a leaf ("<own group>/service"), as the cgroup2 "no internal
 * processes" rule requires. Killing reads cgroup.procs and SIGKILLs until it is empty,
 * because v1 has no cgroup.kill and a fork may race with the read. */
#include "sandbox/cgroup.h"

#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#define CGROUP2_MAGIC 0x63677270
#define KILL_ROUNDS 200

enum ctl { C_MEM, C_PIDS, C_CPU, C_CPUCTL, C_N };

static struct {
    int done;
    enum cgroup_mode mode;
    char dir[C_N][PATH_MAX]; /* v1: <hier>/<base> per controller ("" when absent); v2: [0] */
} cg;

/* snprintf that reports truncation as -ENAMETOOLONG. */
static int __attribute__((format(printf, 3, 4))) fmt(char *out, size_t len, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(out, len, f, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int write_file(const char *path, const char *val)
{
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC); /* O_TRUNC: as a shell's ">" */
    if (fd < 0)
        return -errno;
    size_t n = strlen(val);
    ssize_t w = write(fd, val, n);
    int err = w < 0 ? -errno : (size_t)w != n ? -EIO : 0;
    close(fd);
    return err;
}

static int read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t r = read(fd, buf, len - 1);
    int err = r < 0 ? -errno : 0;
    close(fd);
    buf[r < 0 ? 0 : r] = 0;
    return err;
}

/* The value of KEY in a "key value" per line file such as memory.stat; 0 when absent. */
static uint64_t keyed_value(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
            return strtoull(p + kl + 1, NULL, 10);
    }
    return 0;
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static int mkdir_ok(const char *path)
{
    return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -errno;
}

static const char *cg_root(void)
{
    const char *r = getenv("CODEBOT_SANDBOX_CGROUP_ROOT");
    return r && *r ? r : "/sys/fs/cgroup";
}

static const char *cg_base(void)
{
    const char *b = getenv("CODEBOT_SANDBOX_CGROUP");
    if (!b || !*b || strchr(b, '/') || b[0] == '.')
        return "codebot";
    return b;
}

/* The v1 hierarchy directory that holds FILE: distributions mount cpuacct alone or as
 * "cpu,cpuacct". */
static int v1_find(const char *const *names, const char *file, char *out, size_t len)
{
    for (; *names; names++) {
        char p[PATH_MAX];
        fmt(p, sizeof p, "%s/%s/%s", cg_root(), *names, file);
        if (exists(p)) {
            fmt(out, len, "%s/%s/%s", cg_root(), *names, cg_base());
            return mkdir_ok(out);
        }
    }
    out[0] = 0;
    return -ENOENT;
}

static int v1_detect(void)
{
    static const char *const mem[] = {"memory", NULL};
    static const char *const pids[] = {"pids", NULL};
    static const char *const cpu[] = {"cpuacct", "cpu,cpuacct", "cpuacct,cpu", NULL};
    static const char *const cpuctl[] = {"cpu", "cpu,cpuacct", "cpuacct,cpu", NULL};
    int err = v1_find(mem, "memory.limit_in_bytes", cg.dir[C_MEM], PATH_MAX);
    if (err < 0)
        return err;
    if (v1_find(pids, "cgroup.procs", cg.dir[C_PIDS], PATH_MAX) < 0)
        log_warn("cgroup", "no v1 pids hierarchy: process limits by rlimit only");
    v1_find(cpu, "cpuacct.usage", cg.dir[C_CPU], PATH_MAX);
    v1_find(cpuctl, "cpu.cfs_quota_us", cg.dir[C_CPUCTL], PATH_MAX);
    return 0;
}

/* Our own v2 group, from /proc/self/cgroup's "0::/path" line. */
static int v2_own_group(char *out, size_t len)
{
    char buf[4096];
    int err = read_file("/proc/self/cgroup", buf, sizeof buf);
    if (err < 0)
        return err;
    char *p = strstr(buf, "0::");
    if (!p)
        return -ENOENT;
    p += 3;
    p[strcspn(p, "\n")] = 0;
    fmt(out, len, "%s", strcmp(p, "/") == 0 ? "" : p);
    return 0;
}

static int v2_enable(const char *dir)
{
    char p[PATH_MAX];
    fmt(p, sizeof p, "%s/cgroup.subtree_control", dir);
    int err = write_file(p, "+memory +pids");
    if (err == 0)
        write_file(p, "+cpu"); /* optional: cpu.stat works without it */
    return err;
}

static int v2_detect(void)
{
    struct statfs sf;
    if (statfs(cg_root(), &sf) < 0 || (unsigned long)sf.f_type != CGROUP2_MAGIC) {
        if (!getenv("CODEBOT_SANDBOX_CGROUP_ROOT"))
            return -ENOENT;
    }
    char own[PATH_MAX], parent[PATH_MAX], p[PATH_MAX + 32], have[512];
    if (v2_own_group(own, sizeof own) < 0)
        own[0] = 0;
    fmt(parent, sizeof parent, "%s%s", cg_root(), own);
    fmt(p, sizeof p, "%s/cgroup.controllers", parent);
    if (read_file(p, have, sizeof have) < 0 || !strstr(have, "memory") || !strstr(have, "pids"))
        return -ENOTSUP;
    int err = v2_enable(parent);
    if (err == -EBUSY) {
        /* Processes in our own group (also the root of a container's cgroup namespace) block
         * delegation: move ourselves into a leaf. */
        fmt(p, sizeof p, "%s/service", parent);
        if (mkdir_ok(p) == 0) {
            char procs[PATH_MAX + 64], me[32];
            fmt(procs, sizeof procs, "%s/cgroup.procs", p);
            fmt(me, sizeof me, "%d", (int)getpid());
            if (write_file(procs, me) == 0)
                err = v2_enable(parent);
        }
    }
    if (err < 0)
        return err;
    fmt(cg.dir[C_MEM], PATH_MAX, "%s/%s", parent, cg_base());
    if ((err = mkdir_ok(cg.dir[C_MEM])) < 0 || (err = v2_enable(cg.dir[C_MEM])) < 0)
        return err;
    return 0;
}

enum cgroup_mode cgroup_init(void)
{
    if (cg.done)
        return cg.mode;
    cg.done = 1;
    const char *off = getenv("CODEBOT_SANDBOX_CGROUPS");
    if (off && strcmp(off, "off") == 0) {
        log_warn("cgroup", "cgroups disabled by CODEBOT_SANDBOX_CGROUPS=off: rlimits only");
        return cg.mode = CGROUP_NONE;
    }
    if (v2_detect() == 0)
        return cg.mode = CGROUP_V2;
    memset(cg.dir, 0, sizeof cg.dir);
    if (v1_detect() == 0)
        return cg.mode = CGROUP_V1;
    memset(cg.dir, 0, sizeof cg.dir);
    log_warn("cgroup", "no usable cgroups (v2 with delegated memory+pids, or v1 memory): "
                       "sandboxes run with rlimits only, no memory limit per sandbox");
    return cg.mode = CGROUP_NONE;
}

/* A directory name for ID: itself when it is a safe name, else "h" + a 64-bit FNV-1a hash. */
static void id_name(const char *id, char *out, size_t len)
{
    size_t n = strlen(id);
    int safe = n > 0 && n <= 64 && id[0] != '.';
    for (size_t i = 0; safe && i < n; i++) {
        char c = id[i];
        safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.';
    }
    if (safe) {
        fmt(out, len, "%s", id);
        return;
    }
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
    fmt(out, len, "h%016llx", (unsigned long long)h);
}

/* Path of FILE (or of the group itself when FILE is NULL) for controller C; -ENOENT when
 * that controller is not in use. */
static int path_of(enum ctl c, const char *id, const char *file, char *out, size_t len)
{
    if (cgroup_init() == CGROUP_NONE)
        return -ENOTSUP;
    if (cg.mode == CGROUP_V2)
        c = C_MEM;
    if (!cg.dir[c][0])
        return -ENOENT;
    char name[80];
    id_name(id, name, sizeof name);
    return fmt(out, len, "%s/%s%s%s", cg.dir[c], name, file ? "/" : "", file ? file : "");
}

static int set_value(enum ctl c, const char *id, const char *file, uint64_t v)
{
    char p[PATH_MAX], val[32];
    int err = path_of(c, id, file, p, sizeof p);
    if (err < 0)
        return err;
    fmt(val, sizeof val, "%llu", (unsigned long long)v);
    return write_file(p, val);
}

/* CPU bandwidth: PERCENT of one CPU per 100 ms period; 0 leaves it unlimited. */
#define CPU_PERIOD_US 100000

static int create_v1(const char *id, uint64_t mem_bytes, unsigned max_pids, unsigned cpu_percent)
{
    char p[PATH_MAX];
    for (int c = 0; c < C_N; c++) {
        if (path_of(c, id, NULL, p, sizeof p) == 0 && mkdir_ok(p) < 0)
            return -errno;
    }
    int err = set_value(C_MEM, id, "memory.limit_in_bytes", mem_bytes);
    if (err < 0)
        return err;
    /* No swap beyond the limit where swap accounting exists. */
    if (path_of(C_MEM, id, "memory.memsw.limit_in_bytes", p, sizeof p) == 0 && exists(p))
        set_value(C_MEM, id, "memory.memsw.limit_in_bytes", mem_bytes);
    if (cg.dir[C_PIDS][0] && (err = set_value(C_PIDS, id, "pids.max", max_pids)) < 0)
        return err;
    if (cg.dir[C_CPUCTL][0] && cpu_percent) {
        set_value(C_CPUCTL, id, "cpu.cfs_period_us", CPU_PERIOD_US);
        err = set_value(C_CPUCTL, id, "cpu.cfs_quota_us", (uint64_t)cpu_percent * 1000);
        if (err < 0)
            return err;
    }
    return 0;
}

static int create_v2(const char *id, uint64_t mem_bytes, unsigned max_pids, unsigned cpu_percent)
{
    char p[PATH_MAX];
    int err = path_of(C_MEM, id, NULL, p, sizeof p);
    if (err < 0 || (err = mkdir_ok(p)) < 0)
        return err;
    if ((err = set_value(C_MEM, id, "memory.max", mem_bytes)) < 0 ||
        (err = set_value(C_MEM, id, "pids.max", max_pids)) < 0)
        return err;
    set_value(C_MEM, id, "memory.swap.max", 0); /* absent without swap accounting */
    if (cpu_percent && path_of(C_MEM, id, "cpu.max", p, sizeof p) == 0 && exists(p)) {
        char val[64];
        fmt(val, sizeof val, "%u %u", cpu_percent * 1000, CPU_PERIOD_US);
        if ((err = write_file(p, val)) < 0)
            return err;
    }
    return 0;
}

int cgroup_create(const char *id, uint64_t mem_bytes, unsigned max_pids, unsigned cpu_percent)
{
    if (cgroup_init() == CGROUP_NONE)
        return -ENOTSUP;
    cgroup_destroy(id);
    int err = cg.mode == CGROUP_V2 ? create_v2(id, mem_bytes, max_pids, cpu_percent)
                                   : create_v1(id, mem_bytes, max_pids, cpu_percent);
    if (err < 0) {
        log_error("cgroup", "creating the groups of sandbox %s: %s", id, strerror(-err));
        cgroup_destroy(id);
    }
    return err;
}

int cgroup_attach(const char *id, pid_t pid)
{
    if (cgroup_init() == CGROUP_NONE)
        return -ENOTSUP;
    char p[PATH_MAX], val[32];
    fmt(val, sizeof val, "%d", (int)pid);
    for (int c = 0; c < C_N; c++) {
        if (path_of(c, id, "cgroup.procs", p, sizeof p) < 0)
            continue;
        int err = write_file(p, val);
        if (err < 0) {
            log_error("cgroup", "attaching pid %d to %s: %s", (int)pid, p, strerror(-err));
            return err;
        }
        if (cg.mode == CGROUP_V2)
            break;
    }
    return 0;
}

int cgroup_stats(const char *id, uint64_t *mem_bytes, uint64_t *cpu_ms)
{
    char p[PATH_MAX], buf[8192];
    int err =
        path_of(C_MEM, id, cg.mode == CGROUP_V2 ? "memory.current" : "memory.stat", p, sizeof p);
    if (err < 0 || (err = read_file(p, buf, sizeof buf)) < 0)
        return err;
    if (cg.mode == CGROUP_V2) {
        *mem_bytes = strtoull(buf, NULL, 10);
        *cpu_ms = 0;
        if (path_of(C_MEM, id, "cpu.stat", p, sizeof p) == 0 && read_file(p, buf, sizeof buf) == 0)
            *cpu_ms = keyed_value(buf, "usage_usec") / 1000;
        return 0;
    }
    *mem_bytes = keyed_value(buf, "total_rss") + keyed_value(buf, "total_cache");
    *cpu_ms = 0;
    if (path_of(C_CPU, id, "cpuacct.usage", p, sizeof p) == 0 && read_file(p, buf, sizeof buf) == 0)
        *cpu_ms = strtoull(buf, NULL, 10) / 1000000;
    return 0;
}

int cgroup_oom_killed(const char *id)
{
    char p[PATH_MAX], buf[4096];
    int err = path_of(C_MEM, id, cg.mode == CGROUP_V2 ? "memory.events" : "memory.oom_control", p,
                      sizeof p);
    if (err < 0 || (err = read_file(p, buf, sizeof buf)) < 0)
        return err;
    return keyed_value(buf, "oom_kill") > 0 || keyed_value(buf, "under_oom") > 0;
}

/* One pass over cgroup.procs: SIGKILLs each pid; returns how many there were. */
static int kill_listed(const char *procs)
{
    FILE *f = fopen(procs, "re");
    if (!f)
        return 0;
    int n = 0;
    char line[32];
    while (fgets(line, sizeof line, f)) {
        long pid = strtol(line, NULL, 10);
        if (pid > 1) {
            kill((pid_t)pid, SIGKILL);
            n++;
        }
    }
    fclose(f);
    return n;
}

int cgroup_kill(const char *id)
{
    char p[PATH_MAX];
    if (cg.mode == CGROUP_V2 && path_of(C_MEM, id, "cgroup.kill", p, sizeof p) == 0)
        write_file(p, "1"); /* absent before Linux 5.14; the loop below covers it */
    for (int c = 0; c < C_N; c++) {
        if (path_of(c, id, "cgroup.procs", p, sizeof p) < 0)
            continue;
        for (int round = 0; round < KILL_ROUNDS && kill_listed(p) > 0; round++)
            nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
        if (kill_listed(p) > 0)
            return -EBUSY;
    }
    return 0;
}

/* rmdir, retried for a while: a killed task leaves its group only once it is fully gone. */
static int remove_dir(const char *p)
{
    for (int i = 0; i < 200; i++) {
        if (rmdir(p) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            return -errno;
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    return -EBUSY;
}

int cgroup_destroy(const char *id)
{
    if (cgroup_init() == CGROUP_NONE)
        return -ENOTSUP;
    int ret = cgroup_kill(id);
    char p[PATH_MAX];
    for (int c = 0; c < C_N; c++) {
        if (path_of(c, id, NULL, p, sizeof p) < 0 || !exists(p))
            continue;
        int err = remove_dir(p);
        if (err < 0) {
            log_error("cgroup", "removing %s: %s", p, strerror(-err));
            ret = err;
        }
        if (cg.mode == CGROUP_V2)
            break;
    }
    return ret;
}

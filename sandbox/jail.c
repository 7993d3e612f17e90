/* jail — starts the zygote and forks sessions from it (protocol in jail.h, layers in
 * docs/security.md).
 *
 * The zygote is cloned straight into new user, mount, ipc, uts and net namespaces (not a
 * new pid namespace: its forks must have host pids, which the service needs for cgroups and
 * signals). Between clone and exec the child builds its root file system on a tmpfs: read-only
 * binds of /usr and the usr-merged symlinks, a curated /etc, a /dev of six device nodes, and
 * the kernel written from the binary; then pivot_root, an empty environment and python. The
 * parent may have threads (libuv's pool), so the child never allocates: everything it needs is
 * prepared before the clone, and a failure travels back as text on a close-on-exec pipe. */
#include "sandbox/jail.h"

#include "common/embedded.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "sandbox/cgroup.h"
#include "sandbox/seccomp.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NEWROOT "/tmp"
#define SLOTS 1024
#define SESSION_UID0 10000
#define MAP_SIZE 65536u
#define MSG_MAX 4096

static const char *const zygote_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin",
                                         "HOME=/home/sandbox",
                                         "USER=sandbox",
                                         "LOGNAME=sandbox",
                                         "LANG=C.UTF-8",
                                         "MPLBACKEND=Agg",
                                         "MPLCONFIGDIR=/var/cache/mpl",
                                         "OPENBLAS_NUM_THREADS=1",
                                         "OMP_NUM_THREADS=1",
                                         "MKL_NUM_THREADS=1",
                                         "PYTHONUNBUFFERED=1",
                                         "PYTHONDONTWRITEBYTECODE=1",
                                         "TERM=dumb",
                                         NULL};

/* Host paths that appear in the jail when they exist: directories become read-only binds,
 * symlinks (usr-merged systems) are recreated. */
static const char *const top_dirs[] = {"/usr",    "/lib", "/lib64", "/lib32",
                                       "/libx32", "/bin", "/sbin",  NULL};
static const char *const etc_entries[] = {"alternatives", "fonts",     "ld.so.cache", "ld.so.conf",
                                          "ld.so.conf.d", "localtime", "timezone",    "mime.types",
                                          "matplotlibrc", "python3",   "python3.11",  "bash.bashrc",
                                          "inputrc",      NULL};
static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty", NULL};

/* Live sessions: the slot gives the session's uid; the pidfd kills the right process even
 * after its pid was reused. */
static struct slot {
    int used;
    pid_t pid;
    int pidfd;
    char id[256];
} slots[SLOTS];
static unsigned spawn_seq;

static int env_u64(const char *name, uint64_t def, uint64_t mult, uint64_t *out)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        *out = def * mult;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end || n == 0 || v[0] == '-' || n > UINT64_MAX / mult) {
        fprintf(stderr, "%s: not a positive whole number: %s\n", name, v);
        return -EINVAL;
    }
    *out = n * mult;
    return 0;
}

int jail_limits_from_env(jail_limits *l)
{
    uint64_t pids, cpu, files, pct;
    const uint64_t mib = 1024 * 1024;
    if (env_u64("CODEBOT_SANDBOX_MEMORY_MB", 512, mib, &l->mem_bytes) < 0 ||
        env_u64("CODEBOT_SANDBOX_PIDS", 64, 1, &pids) < 0 ||
        env_u64("CODEBOT_SANDBOX_CPU_SECONDS", 600, 1, &cpu) < 0 ||
        env_u64("CODEBOT_SANDBOX_FILE_MB", 64, mib, &l->file_bytes) < 0 ||
        env_u64("CODEBOT_SANDBOX_FILES", 256, 1, &files) < 0 ||
        env_u64("CODEBOT_SANDBOX_DISK_MB", 256, mib, &l->disk_bytes) < 0 ||
        env_u64("CODEBOT_SANDBOX_CPU_PERCENT", 100, 1, &pct) < 0)
        return -EINVAL;
    if (pids > 1000000 || cpu > UINT32_MAX || files > 1048576 || pct > 100000) {
        fprintf(stderr, "CODEBOT_SANDBOX_PIDS, _CPU_SECONDS, _FILES or _CPU_PERCENT: value too "
                        "large\n");
        return -EINVAL;
    }
    l->max_pids = (unsigned)pids;
    l->cpu_seconds = (unsigned)cpu;
    l->max_files = (unsigned)files;
    l->cpu_percent = (unsigned)pct;
    return 0;
}

/* The first host uid of the jail's range. Below 65536 the range would cover system and
 * regular users (base 0 would make the jail's root the host's root): refused. */
static int uid_base(unsigned *base)
{
    uint64_t b;
    if (env_u64("CODEBOT_SANDBOX_UID_BASE", 100000, 1, &b) < 0)
        return -EINVAL;
    if (b < MAP_SIZE || b + MAP_SIZE > UINT32_MAX - 1) {
        fprintf(stderr, "CODEBOT_SANDBOX_UID_BASE: must be at least 65536 and leave room for "
                        "65536 ids\n");
        return -EINVAL;
    }
    *base = (unsigned)b;
    return 0;
}

int jail_supported(char *why, size_t why_len)
{
    if (geteuid() != 0) {
        snprintf(why, why_len,
                 "sandboxd must run as root (it maps uid ranges into user "
                 "namespaces and writes cgroups; see docs/security.md)");
        return 0;
    }
    if (access("/usr/bin/python3", X_OK) < 0) {
        snprintf(why, why_len, "/usr/bin/python3 is missing (apt-get install python3)");
        return 0;
    }
    /* The verdict travels on a pipe: a SIGCHLD handler of the caller may reap the child. */
    int p[2];
    char ok = 0;
    if (pipe2(p, O_CLOEXEC) < 0)
        return 0;
    pid_t pid = fork();
    if (pid == 0) {
        char r = unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET) == 0 ? 'y' : 'n';
        _exit(write(p[1], &r, 1) == 1 ? 0 : 1);
    }
    close(p[1]);
    if (pid > 0 && read(p[0], &ok, 1) != 1)
        ok = 0;
    close(p[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    if (ok != 'y') {
        snprintf(why, why_len,
                 "this kernel refuses new user namespaces (check "
                 "/proc/sys/user/max_user_namespaces, or the container's seccomp "
                 "profile)");
        return 0;
    }
    return 1;
}

/* ---- the zygote's child, between clone and exec: no allocation, errors to errfd ---- */

struct child_ctx {
    int errfd, syncfd, ctlfd, bpffd;
    const char *passwd, *group;
    const unsigned char *kernel, *jskernel;
    size_t kernel_len, jskernel_len;
};

static __attribute__((noreturn)) void child_fail(int errfd, const char *what, const char *arg)
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s %s: %s", what, arg ? arg : "", strerror(errno));
    if (n > 0 && write(errfd, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1) < 0) {
        /* nothing else to tell */
    }
    _exit(127);
}

/* Mount flags that a remount must keep: the kernel locks them on mounts that came from a
 * more privileged namespace and refuses a remount that would drop them. */
static unsigned long locked_flags(const char *path)
{
    struct statvfs sv;
    unsigned long f = 0;
    if (statvfs(path, &sv) < 0)
        return 0;
    if (sv.f_flag & ST_NOSUID)
        f |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV)
        f |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC)
        f |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME)
        f |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME)
        f |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME)
        f |= MS_RELATIME;
    return f;
}

static void bind_ro(int errfd, const char *src, const char *dst)
{
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
        child_fail(errfd, "bind", dst);
    unsigned long f = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | locked_flags(dst);
    if (mount(NULL, dst, NULL, f, NULL) < 0)
        child_fail(errfd, "remount read-only", dst);
}

static void write_text(int errfd, const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        child_fail(errfd, "create", path);
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0)
            child_fail(errfd, "write", path);
        p += w;
        len -= (size_t)w;
    }
    close(fd);
}

static void make_dir(int errfd, const char *path, mode_t mode)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        child_fail(errfd, "mkdir", path);
    if (chmod(path, mode) < 0)
        child_fail(errfd, "chmod", path);
}

/* Puts host path SRC at DST in the new root: a bind for a directory or file, the same
 * symlink for a symlink; nothing when SRC does not exist. */
static void mirror(int errfd, const char *src, const char *dst)
{
    struct stat st;
    if (lstat(src, &st) < 0)
        return;
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(src, target, sizeof target - 1);
        if (n < 0)
            child_fail(errfd, "readlink", src);
        target[n] = 0;
        if (symlink(target, dst) < 0)
            child_fail(errfd, "symlink", dst);
        return;
    }
    if (S_ISDIR(st.st_mode))
        make_dir(errfd, dst, 0755);
    else if (S_ISREG(st.st_mode))
        write_text(errfd, dst, "", 0, 0444);
    else
        return;
    bind_ro(errfd, src, dst);
}

static void build_etc(const struct child_ctx *c)
{
    char src[PATH_MAX], dst[PATH_MAX];
    make_dir(c->errfd, NEWROOT "/etc", 0755);
    for (const char *const *e = etc_entries; *e; e++) {
        snprintf(src, sizeof src, "/etc/%s", *e);
        snprintf(dst, sizeof dst, NEWROOT "/etc/%s", *e);
        mirror(c->errfd, src, dst);
    }
    static const char hosts[] = "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost\n";
    static const char nss[] = "passwd: files\ngroup: files\nshadow: files\nhosts: files\n";
    write_text(c->errfd, NEWROOT "/etc/passwd", c->passwd, strlen(c->passwd), 0444);
    write_text(c->errfd, NEWROOT "/etc/group", c->group, strlen(c->group), 0444);
    write_text(c->errfd, NEWROOT "/etc/hostname", "sandbox\n", 8, 0444);
    write_text(c->errfd, NEWROOT "/etc/hosts", hosts, sizeof hosts - 1, 0444);
    write_text(c->errfd, NEWROOT "/etc/nsswitch.conf", nss, sizeof nss - 1, 0444);
}

static void build_dev(int errfd)
{
    char src[64], dst[PATH_MAX];
    make_dir(errfd, NEWROOT "/dev", 0755);
    if (mount("tmpfs", NEWROOT "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") < 0)
        child_fail(errfd, "mount tmpfs", "/dev");
    for (const char *const *d = dev_nodes; *d; d++) {
        snprintf(src, sizeof src, "/dev/%s", *d);
        snprintf(dst, sizeof dst, NEWROOT "/dev/%s", *d);
        write_text(errfd, dst, "", 0, 0666);
        if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
            child_fail(errfd, "bind", src);
    }
    static const char *const links[][2] = {{"/proc/self/fd", "fd"},
                                           {"/proc/self/fd/0", "stdin"},
                                           {"/proc/self/fd/1", "stdout"},
                                           {"/proc/self/fd/2", "stderr"}};
    for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
        snprintf(dst, sizeof dst, NEWROOT "/dev/%s", links[i][1]);
        if (symlink(links[i][0], dst) < 0)
            child_fail(errfd, "symlink", dst);
    }
    make_dir(errfd, NEWROOT "/dev/shm", 01777);
    if (mount(NULL, NEWROOT "/dev", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) < 0)
        child_fail(errfd, "remount read-only", "/dev");
}

static void build_root(const struct child_ctx *c)
{
    int e = c->errfd;
    char dst[PATH_MAX];
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail(e, "make private", "/");
    if (mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m") < 0)
        child_fail(e, "mount tmpfs", NEWROOT);
    for (const char *const *d = top_dirs; *d; d++) {
        snprintf(dst, sizeof dst, NEWROOT "%s", *d);
        mirror(e, *d, dst);
    }
    build_etc(c);
    build_dev(e);
    /* The sessions mount their own proc over this one; the kernel lets a user namespace
     * mount proc only where a full proc is already visible. */
    make_dir(e, NEWROOT "/proc", 0555);
    if (mount("/proc", NEWROOT "/proc", NULL, MS_BIND | MS_REC, NULL) < 0)
        child_fail(e, "bind", "/proc");
    static const char *const dirs[] = {
        "/tmp",           "/home",    "/home/sandbox", "/var",  "/var/cache",
        "/var/cache/mpl", "/var/tmp", "/run",          "/.old", NULL};
    for (const char *const *d = dirs; *d; d++) {
        snprintf(dst, sizeof dst, NEWROOT "%s", *d);
        make_dir(e, dst, strcmp(*d, "/tmp") == 0 || strcmp(*d, "/var/tmp") == 0 ? 01777 : 0755);
    }
    if (mount("tmpfs", NEWROOT "/var/cache/mpl", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0755,size=32m") < 0)
        child_fail(e, "mount tmpfs", "/var/cache/mpl");
    write_text(e, NEWROOT "/kernel.py", c->kernel, c->kernel_len, 0444);
    if (c->jskernel)
        write_text(e, NEWROOT "/jskernel.js", c->jskernel, c->jskernel_len, 0444);
}

static void enter_root(int errfd)
{
    if (syscall(SYS_pivot_root, NEWROOT, NEWROOT "/.old") < 0)
        child_fail(errfd, "pivot_root", NEWROOT);
    if (chdir("/") < 0)
        child_fail(errfd, "chdir", "/");
    if (umount2("/.old", MNT_DETACH) < 0)
        child_fail(errfd, "umount", "/.old");
    if (rmdir("/.old") < 0)
        child_fail(errfd, "rmdir", "/.old");
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        child_fail(errfd, "remount read-only", "/");
    if (sethostname("sandbox", 7) < 0)
        child_fail(errfd, "sethostname", "sandbox");
}

/* Puts ctl on fd 3 and the BPF memfd on fd 4, /dev/null on 0, the service's stderr on 1 and 2
 * (the zygote's own failures land in the service's log), and closes everything else. */
static void arrange_fds(const struct child_ctx *c)
{
    int e = c->errfd;
    int ctl = fcntl(c->ctlfd, F_DUPFD, 10), bpf = fcntl(c->bpffd, F_DUPFD, 10);
    int errfd = fcntl(e, F_DUPFD_CLOEXEC, 10);
    if (ctl < 0 || bpf < 0 || errfd < 0 || dup2(ctl, 3) < 0 || dup2(bpf, 4) < 0)
        child_fail(e, "dup2", "ctl");
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, 0) < 0 || dup2(2, 1) < 0)
        child_fail(e, "open", "/dev/null");
    if (errfd > 5)
        close_range(5, (unsigned)errfd - 1, 0);
    close_range((unsigned)errfd + 1, ~0U, 0);
}

static __attribute__((noreturn)) void zygote_child(const struct child_ctx *c, pid_t parent)
{
    int e = c->errfd;
    char b;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(127);
    if (read(c->syncfd, &b, 1) != 1)
        _exit(127); /* the parent failed to write the id maps and told us so */
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
        child_fail(e, "setresuid", "0");
    /* Drop the service's supplementary groups (host gid 0 among them). */
    if (setgroups(0, NULL) < 0)
        child_fail(e, "setgroups", "");
    build_root(c);
    enter_root(e);
    arrange_fds(c);
    static char *const argv[] = {"python3", "-I", "/kernel.py", "--zygote", NULL};
    execve("/usr/bin/python3", argv, (char *const *)zygote_env);
    child_fail(e, "exec", "/usr/bin/python3");
}

/* ---- the service's side ---- */

static int write_map(pid_t pid, const char *file, const char *text)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int err = n < 0 ? -errno : 0;
    close(fd);
    return err;
}

/* passwd and group lines for root, nobody and every session uid, all named "sandbox". */
static int make_ids(strbuf *passwd, strbuf *group)
{
    int err = strbuf_puts(passwd, "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n");
    err = err ? err : strbuf_puts(group, "root:x:0:\n");
    for (unsigned i = 0; i < SLOTS && !err; i++) {
        unsigned u = SESSION_UID0 + i;
        err = strbuf_printf(passwd, "sandbox:x:%u:%u:sandbox:/home/sandbox:/bin/bash\n", u, u);
        err = err ? err : strbuf_printf(group, "sandbox:x:%u:\n", u);
    }
    err = err ? err : strbuf_puts(passwd, "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
    return err ? err : strbuf_puts(group, "nogroup:x:65534:\n");
}

static int bpf_memfd(void)
{
    unsigned char *bpf;
    size_t len;
    int err = seccomp_build(&bpf, &len);
    if (err < 0)
        return err;
    int fd = memfd_create("codebot-seccomp", MFD_CLOEXEC);
    if (fd < 0 || write(fd, bpf, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) < 0)
        err = -errno ? -errno : -EIO;
    free(bpf);
    if (err < 0 && fd >= 0)
        close(fd);
    return err < 0 ? err : fd;
}

/* Reads one message from the zygote within TIMEOUT_MS; up to MAXFDS fds into FDS. */
static ssize_t recv_msg(int sock, char *buf, size_t len, int *fds, int maxfds, int *nfds,
                        int timeout_ms)
{
    struct pollfd p = {.fd = sock, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (r == 0)
        return -ETIMEDOUT;
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * 4)];
    } cm;
    struct iovec iov = {buf, len - 1};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof cm};
    ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -EPIPE;
    buf[n] = 0;
    *nfds = 0;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
            continue;
        int k = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *in = (int *)CMSG_DATA(h);
        for (int i = 0; i < k; i++) {
            if (*nfds < maxfds)
                fds[(*nfds)++] = in[i];
            else
                close(in[i]);
        }
    }
    return n;
}

static int wait_ready(jail_zygote *z)
{
    char buf[MSG_MAX];
    int fds[4], nfds = 0;
    long ms = 60000;
    const char *t = getenv("CODEBOT_SANDBOX_ZYGOTE_TIMEOUT_MS");
    if (t && *t)
        ms = strtol(t, NULL, 10) > 0 ? strtol(t, NULL, 10) : ms;
    ssize_t n = recv_msg(z->ctl_fd, buf, sizeof buf, fds, 4, &nfds, (int)ms);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    if (n < 0)
        return (int)n;
    cJSON *j = cJSON_Parse(buf);
    int ok = j && cJSON_IsString(cJSON_GetObjectItem(j, "ev")) &&
             strcmp(cJSON_GetObjectItem(j, "ev")->valuestring, "ready") == 0;
    if (!ok)
        log_error("jail", "zygote said %.200s instead of ready", buf);
    cJSON_Delete(j);
    return ok ? 0 : -EPROTO;
}

struct zstart {
    int sock[2], sync[2], err[2], bpf;
    strbuf passwd, group;
};

static void zstart_close(struct zstart *s)
{
    int *fds[] = {&s->sock[0], &s->sock[1], &s->sync[0], &s->sync[1],
                  &s->err[0],  &s->err[1],  &s->bpf};
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
    strbuf_free(&s->passwd);
    strbuf_free(&s->group);
}

static int zstart_prepare(struct zstart *s, struct child_ctx *c)
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s->sock) < 0 ||
        pipe2(s->sync, O_CLOEXEC) < 0 || pipe2(s->err, O_CLOEXEC) < 0)
        return -errno;
    if ((s->bpf = bpf_memfd()) < 0)
        return s->bpf;
    int err = make_ids(&s->passwd, &s->group);
    if (err < 0)
        return err;
    c->kernel = embedded_get("kernel.py", &c->kernel_len);
    c->jskernel = embedded_get("jskernel.js", &c->jskernel_len);
    if (!c->kernel) {
        log_error("jail", "kernel.py is not embedded in this binary");
        return -ENOENT;
    }
    c->errfd = s->err[1];
    c->syncfd = s->sync[0];
    c->ctlfd = s->sock[1];
    c->bpffd = s->bpf;
    c->passwd = strbuf_str(&s->passwd);
    c->group = strbuf_str(&s->group);
    return 0;
}

/* Writes the child's id maps, lets it go, and reads its verdict: EOF on the error pipe means
 * it reached exec. */
static int zstart_release(struct zstart *s, pid_t pid, unsigned base)
{
    char map[64], msg[512];
    snprintf(map, sizeof map, "0 %u %u\n", base, MAP_SIZE);
    int err = write_map(pid, "uid_map", map);
    if (err == 0)
        err = write_map(pid, "gid_map", map);
    if (err < 0) {
        log_error("jail", "writing the zygote's id maps: %s", strerror(-err));
        return err;
    }
    if (write(s->sync[1], "g", 1) != 1)
        return -errno;
    close(s->err[1]);
    s->err[1] = -1;
    ssize_t n = read(s->err[0], msg, sizeof msg - 1);
    if (n > 0) {
        msg[n] = 0;
        log_error("jail", "starting the zygote: %s", msg);
        return -EIO;
    }
    return 0;
}

int jail_zygote_start(jail_zygote *z)
{
    struct zstart s = {{-1, -1}, {-1, -1}, {-1, -1}, -1, {0}, {0}};
    struct child_ctx c = {0};
    unsigned base;
    z->pid = -1;
    z->ctl_fd = -1;
    if (uid_base(&base) < 0)
        return -EINVAL;
    cgroup_init();
    int err = zstart_prepare(&s, &c);
    if (err < 0) {
        zstart_close(&s);
        return err;
    }
    pid_t parent = getpid();
    long pid =
        syscall(SYS_clone,
                CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | SIGCHLD,
                NULL, NULL, NULL, NULL);
    if (pid == 0)
        zygote_child(&c, parent);
    if (pid < 0) {
        err = -errno;
        log_error("jail", "clone for the zygote: %s", strerror(errno));
        zstart_close(&s);
        return err;
    }
    err = zstart_release(&s, (pid_t)pid, base);
    z->pid = (pid_t)pid;
    z->ctl_fd = s.sock[0];
    s.sock[0] = -1;
    zstart_close(&s);
    if (err == 0 && (err = wait_ready(z)) < 0)
        log_error("jail", "the zygote did not get ready: %s", strerror(-err));
    if (err < 0)
        jail_zygote_stop(z);
    else
        log_info("jail", "zygote %d ready (uids %u..%u)", (int)pid, base, base + MAP_SIZE - 1);
    return err;
}

void jail_zygote_stop(jail_zygote *z)
{
    if (z->ctl_fd >= 0)
        close(z->ctl_fd);
    z->ctl_fd = -1;
    if (z->pid > 0) {
        kill(z->pid, SIGKILL);
        while (waitpid(z->pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    z->pid = -1;
}

/* ---- sessions ---- */

static struct slot *slot_alloc(const char *id)
{
    for (int i = 0; i < SLOTS; i++) {
        if (!slots[i].used) {
            slots[i] = (struct slot){.used = 1, .pid = -1, .pidfd = -1};
            snprintf(slots[i].id, sizeof slots[i].id, "%s", id);
            return &slots[i];
        }
    }
    return NULL;
}

static void slot_free(struct slot *s)
{
    if (s->pidfd >= 0)
        close(s->pidfd);
    *s = (struct slot){.pidfd = -1};
}

static struct slot *slot_find(const char *id, pid_t pid)
{
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].used && slots[i].pid == pid && strcmp(slots[i].id, id) == 0)
            return &slots[i];
    }
    return NULL;
}

static char *spawn_request(const char *id, unsigned uid, unsigned seq, const jail_limits *l,
                           int use_cg)
{
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    cJSON_AddStringToObject(j, "op", "spawn");
    cJSON_AddNumberToObject(j, "seq", seq);
    cJSON_AddStringToObject(j, "id", id);
    cJSON_AddNumberToObject(j, "uid", uid);
    cJSON_AddNumberToObject(j, "cpu_seconds", l->cpu_seconds);
    cJSON_AddNumberToObject(j, "file_bytes", (double)l->file_bytes);
    cJSON_AddNumberToObject(j, "max_files", l->max_files);
    cJSON_AddNumberToObject(j, "max_pids", l->max_pids);
    cJSON_AddNumberToObject(j, "disk_bytes", (double)l->disk_bytes);
    /* Without a memory cgroup, an address space limit is the only memory bound left. */
    cJSON_AddNumberToObject(j, "as_bytes", use_cg ? 0 : (double)l->mem_bytes);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static int send_request(int sock, const char *req, const int fds[3])
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * 3)];
    } cm;
    memset(&cm, 0, sizeof cm);
    struct iovec iov = {(void *)req, strlen(req)};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof cm};
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int) * 3);
    memcpy(CMSG_DATA(h), fds, sizeof(int) * 3);
    return sendmsg(sock, &m, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* Waits for the answer to request SEQ (dropping stale answers of requests that timed out:
 * closing their gate makes those sessions exit). */
static int read_answer(int sock, unsigned seq, pid_t *pid, int *gate)
{
    for (;;) {
        char buf[MSG_MAX];
        int fds[4], nfds = 0;
        ssize_t n = recv_msg(sock, buf, sizeof buf, fds, 4, &nfds, 10000);
        if (n < 0)
            return (int)n;
        cJSON *j = cJSON_Parse(buf);
        cJSON *s = j ? cJSON_GetObjectItem(j, "seq") : NULL,
              *p = j ? cJSON_GetObjectItem(j, "pid") : NULL;
        int mine = cJSON_IsNumber(s) && (unsigned)s->valuedouble == seq;
        int err = 0;
        if (mine && cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")) && cJSON_IsNumber(p) &&
            p->valuedouble > 1 && nfds == 1) {
            *pid = (pid_t)p->valuedouble;
            *gate = fds[0];
            nfds = 0;
        } else if (mine) {
            cJSON *e = cJSON_GetObjectItem(j, "error");
            log_error("jail", "the zygote refused a spawn: %.300s",
                      cJSON_IsString(e) ? e->valuestring : buf);
            err = -EIO;
        }
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        cJSON_Delete(j);
        if (mine)
            return err;
    }
}

static int spawn_in(jail_zygote *z, struct slot *sl, const jail_limits *l, const int fds[3],
                    int use_cg)
{
    unsigned seq = ++spawn_seq, uid = SESSION_UID0 + (unsigned)(sl - slots);
    char *req = spawn_request(sl->id, uid, seq, l, use_cg);
    if (!req)
        return -ENOMEM;
    int gate = -1, err = send_request(z->ctl_fd, req, fds);
    free(req);
    if (err == 0)
        err = read_answer(z->ctl_fd, seq, &sl->pid, &gate);
    if (err < 0) {
        log_error("jail", "spawning sandbox %s: %s", sl->id, strerror(-err));
        return err;
    }
    sl->pidfd = pidfd_open(sl->pid, 0);
    if (sl->pidfd < 0)
        err = -errno;
    if (err == 0 && use_cg)
        err = cgroup_attach(sl->id, sl->pid);
    /* The session starts only when it reads the go byte; without it, EOF makes it exit. */
    if (err == 0 && write(gate, "g", 1) != 1)
        err = -errno;
    close(gate);
    return err;
}

int jail_spawn(jail_zygote *z, const char *id, const jail_limits *l, const int fds[3], pid_t *pid)
{
    if (z->ctl_fd < 0)
        return -ENOTCONN;
    if (!id || !*id || strlen(id) > 200)
        return -EINVAL;
    struct slot *sl = slot_alloc(id);
    if (!sl) {
        log_error("jail", "more than %d live sandboxes", SLOTS);
        return -EAGAIN;
    }
    int use_cg = cgroup_init() != CGROUP_NONE, err = 0;
    if (use_cg)
        err = cgroup_create(id, l->mem_bytes, l->max_pids, l->cpu_percent);
    if (err == 0)
        err = spawn_in(z, sl, l, fds, use_cg);
    if (err < 0) {
        if (sl->pid > 0)
            jail_destroy(id, sl->pid);
        else if (use_cg)
            cgroup_destroy(id);
        slot_free(sl);
        return err;
    }
    *pid = sl->pid;
    return 0;
}

/* Waits until the process behind PIDFD has exited (it is then a zombie at most). */
static void wait_gone(int pidfd, int ms)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    while (poll(&p, 1, ms) < 0 && errno == EINTR) {
    }
}

int jail_destroy(const char *id, pid_t pid)
{
    struct slot *sl = slot_find(id, pid);
    if (sl && sl->pidfd >= 0) {
        /* Killing the init of a pid namespace kills everything in it. */
        syscall(SYS_pidfd_send_signal, sl->pidfd, SIGKILL, NULL, 0);
        wait_gone(sl->pidfd, 2000);
    }
    int err = 0;
    if (cgroup_init() != CGROUP_NONE) {
        err = cgroup_destroy(id);
        if (err == -ENOENT)
            err = 0;
    }
    if (sl)
        slot_free(sl);
    return err;
}

int jail_stats(const char *id, uint64_t *mem_bytes, uint64_t *cpu_ms)
{
    int err = cgroup_stats(id, mem_bytes, cpu_ms);
    return err == -ENOTSUP ? -ENOENT : err;
}

int jail_oom_killed(const char *id)
{
    int err = cgroup_oom_killed(id);
    return err == -ENOTSUP ? -ENOENT : err;
}

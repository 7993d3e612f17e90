/* seccomp — builds the sessions' system call filter with libseccomp and exports it as raw BPF
 * (see seccomp.h). The lists below are the policy; docs/security.md explains it. Names that
 * this libseccomp or architecture does not know are skipped, so the filter builds everywhere
 * Debian 12 does. */
#include "sandbox/seccomp.h"

#include "common/log.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Calls that fail with EPERM. */
static const char *const denied[] = {
    /* undoing the jail: file system views, namespaces, other processes' memory */
    "mount", "umount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen", "fsconfig",
    "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "ptrace", "process_vm_readv",
    "process_vm_writev", "pidfd_getfd", "kcmp", "open_by_handle_at", "name_to_handle_at",
    "sethostname", "setdomainname",
    /* large kernel attack surface a notebook never needs */
    "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "fanotify_init", "lookup_dcookie", "move_pages",
    "migrate_pages", "uselib", "vm86", "vm86old", "modify_ldt", "nfsservctl", "vhangup",
    /* host administration */
    "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "init_module", "finit_module",
    "delete_module", "create_module", "acct", "quotactl", "quotactl_fd", "iopl", "ioperm", "syslog",
    "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64", "settimeofday",
    "adjtimex", "_sysctl", NULL};

/* clone flags that create namespaces; each one makes clone fail with EPERM. */
static const uint64_t clone_ns_flags[] = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS,
                                          CLONE_NEWIPC, CLONE_NEWUSER,   CLONE_NEWPID,
                                          CLONE_NEWNET};

/* personality() bits that weaken the address space layout (ASLR, executable heap, page 0).
 * Bit 31 is in the mask so that the query personality(0xffffffff) stays allowed. */
static const uint64_t personality_bad[] = {
    0x0040000 /* ADDR_NO_RANDOMIZE */, 0x0100000 /* MMAP_PAGE_ZERO */,
    0x0200000 /* ADDR_COMPAT_LAYOUT */, 0x0400000 /* READ_IMPLIES_EXEC */};

static int add_rules(scmp_filter_ctx ctx)
{
    int err;
    for (const char *const *n = denied; *n; n++) {
        int nr = seccomp_syscall_resolve_name(*n);
        if (nr == __NR_SCMP_ERROR || nr < 0)
            continue;
        if ((err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0)) < 0)
            return err;
    }
    for (size_t i = 0; i < sizeof clone_ns_flags / sizeof *clone_ns_flags; i++) {
        uint64_t f = clone_ns_flags[i];
        err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, f, f));
        if (err < 0)
            return err;
    }
    /* clone3 passes its flags in memory, out of BPF's sight. */
    if ((err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0)
        return err;
    for (size_t i = 0; i < sizeof personality_bad / sizeof *personality_bad; i++) {
        uint64_t f = personality_bad[i];
        err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, f | 0x80000000u, f));
        if (err < 0)
            return err;
    }
    /* Pushing bytes into a terminal's input would reach outside the session. */
    return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                            SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI));
}

static int export_bpf(scmp_filter_ctx ctx, unsigned char **bpf, size_t *len)
{
    int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int err = seccomp_export_bpf(ctx, fd);
    struct stat st;
    if (err == 0 && fstat(fd, &st) < 0)
        err = -errno;
    unsigned char *buf = NULL;
    if (err == 0 && (st.st_size <= 0 || st.st_size % 8 != 0))
        err = -EINVAL;
    if (err == 0 && !(buf = malloc((size_t)st.st_size)))
        err = -ENOMEM;
    if (err == 0 && pread(fd, buf, (size_t)st.st_size, 0) != st.st_size)
        err = -EIO;
    close(fd);
    if (err < 0) {
        free(buf);
        return err;
    }
    *bpf = buf;
    *len = (size_t)st.st_size;
    return 0;
}

int seccomp_build(unsigned char **bpf, size_t *len)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return -ENOMEM;
    int err = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (err == 0)
        err = add_rules(ctx);
    if (err == 0)
        err = export_bpf(ctx, bpf, len);
    seccomp_release(ctx);
    if (err < 0)
        log_error("seccomp", "building the filter: %s", strerror(-err));
    return err;
}

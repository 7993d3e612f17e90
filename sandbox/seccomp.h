/* seccomp — the system call filter of sandbox sessions.
 *
 * Built here with libseccomp and exported as a raw BPF program (an array of struct
 * sock_filter), because the process that installs it is the Python session kernel: jail.c
 * hands the bytes to the zygote, and each session kernel loads them with
 * prctl(PR_SET_SECCOMP) after PR_SET_NO_NEW_PRIVS. Default allow; the calls that reach
 * kernel attack surface a notebook never needs, or that would undo the jail (mount,
 * namespaces, ptrace, bpf, keyrings, io_uring, module loading, clock setting, ...), fail with
 * EPERM; clone3 fails with ENOSYS so that glibc falls back to clone, whose namespace flags the
 * filter can see. Syscalls of other ABIs (i386, x32) kill the process. docs/security.md lists
 * the rules. Pure computation; any thread. */
#ifndef CODEBOT_SECCOMP_H
#define CODEBOT_SECCOMP_H
#include <stddef.h>

/* Builds the filter. *BPF gets a malloc'd program of *LEN bytes (a multiple of 8). */
int seccomp_build(unsigned char **bpf, size_t *len);

#endif

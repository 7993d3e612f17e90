/* check.h — the unit-test harness: each TEST runs in its own forked process with a
 * timeout, and reports `PASS: file:name` or `FAIL: file:name` for scripts/test.sh to count.
 *
 *   TEST(parses_crlf) { CHECK(x == 1); CHECK_STR(a, "b"); }
 *
 * A failed CHECK prints where and why and ends that test's process. Run one test with
 * `./test_x name`. */
#ifndef CODEBOT_CHECK_H
#define CODEBOT_CHECK_H
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

typedef void (*check_fn)(void);
static struct {
    const char *name;
    check_fn fn;
} check_tests[256];
static int check_n;

#define TEST(tname)                                                                                \
    static void test_##tname(void);                                                                \
    __attribute__((constructor)) static void reg_##tname(void)                                     \
    {                                                                                              \
        check_tests[check_n].name = #tname;                                                        \
        check_tests[check_n++].fn = test_##tname;                                                  \
    }                                                                                              \
    static void test_##tname(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_) {                                                                          \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, va_,     \
                    vb_);                                                                          \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                               \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,      \
                    sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int check_run(int i, const char *file)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(getenv("CHECK_TIMEOUT") ? (unsigned)strtoul(getenv("CHECK_TIMEOUT"), NULL, 10) : 30);
        check_tests[i].fn();
        fflush(NULL);
#if defined(__SANITIZE_ADDRESS__)
        /* _exit skips LeakSanitizer's exit hook: check here, so a leak fails the test. */
        if (__lsan_do_recoverable_leak_check())
            _exit(1);
#endif
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (WIFSIGNALED(st))
        fprintf(stderr, "%s: killed by signal %d%s\n", check_tests[i].name, WTERMSIG(st),
                WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
    printf("%s: %s:%s\n", ok ? "PASS" : "FAIL", file, check_tests[i].name);
    fflush(stdout);
    return ok;
}

int main(int argc, char **argv)
{
    const char *file = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    int failed = 0, ran = 0;
    for (int i = 0; i < check_n; i++) {
        if (argc > 1 && strcmp(argv[1], check_tests[i].name) != 0)
            continue;
        ran++;
        failed += !check_run(i, file);
    }
    return failed || !ran ? 1 : 0;
}
#endif

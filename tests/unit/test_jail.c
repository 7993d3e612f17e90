/* Tests of the jail: a real zygote, real sessions, runs over the ctl socket, limits and the
 * isolation seen from inside. Needs root (the harness runs as root). */
#include "tests/unit/check.h"

#include "common/strbuf.h"
#include "sandbox/cgroup.h"
#include "sandbox/jail.h"
#include "sandbox/seccomp.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

typedef struct session {
    jail_zygote z;
    char id[64];
    pid_t pid;
    int ctl, out, err;
    strbuf rbuf;    /* unparsed bytes from ctl */
    size_t scanned; /* bytes of rbuf known to hold no newline */
    strbuf stdout_; /* everything read from the stdout pipe */
    strbuf stderr_;
    cJSON *events; /* array of the last run's events */
} session;

static void drain(int fd, strbuf *into)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            return;
        strbuf_append(into, buf, (size_t)n);
    }
}

/* The next JSON line from ctl (NULL on EOF or timeout), draining the output pipes meanwhile. */
static cJSON *next_line(session *s, int timeout_ms)
{
    for (;;) {
        char *nl =
            s->rbuf.data ? memchr(s->rbuf.data + s->scanned, '\n', s->rbuf.len - s->scanned) : NULL;
        s->scanned = nl ? 0 : s->rbuf.len;
        if (nl) {
            *nl = 0;
            cJSON *j = cJSON_Parse(s->rbuf.data);
            if (!j)
                fprintf(stderr, "bad line from kernel: %s\n", s->rbuf.data);
            strbuf_consume(&s->rbuf, (size_t)(nl - s->rbuf.data) + 1);
            return j;
        }
        struct pollfd p[3] = {{s->ctl, POLLIN, 0}, {s->out, POLLIN, 0}, {s->err, POLLIN, 0}};
        if (poll(p, 3, timeout_ms) <= 0)
            return NULL;
        drain(s->out, &s->stdout_);
        drain(s->err, &s->stderr_);
        if (p[0].revents) {
            static char buf[1 << 20];
            ssize_t n = read(s->ctl, buf, sizeof buf);
            if (n <= 0)
                return NULL;
            strbuf_append(&s->rbuf, buf, (size_t)n);
        }
    }
}

static const char *str_of(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(j, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void spawn_limits(session *s, const char *name, const jail_limits *l)
{
    int sp[2], out[2], err[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
    CHECK(pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0);
    snprintf(s->id, sizeof s->id, "test-%s-%d", name, (int)getpid());
    int fds[3] = {sp[1], out[1], err[1]};
    CHECK_INT(jail_spawn(&s->z, s->id, l, fds, &s->pid), 0);
    close(sp[1]);
    close(out[1]);
    close(err[1]);
    s->ctl = sp[0];
    s->out = out[0];
    s->err = err[0];
    nonblock(s->out);
    nonblock(s->err);
    cJSON *ready = next_line(s, 10000);
    if (!ready)
        fprintf(stderr, "no ready; stderr: %s\n", strbuf_str(&s->stderr_));
    CHECK(ready != NULL);
    if (!str_of(ready, "ev") || strcmp(str_of(ready, "ev"), "ready") != 0)
        fprintf(stderr, "got %s\n", cJSON_PrintUnformatted(ready));
    CHECK_STR(str_of(ready, "ev"), "ready");
    cJSON_Delete(ready);
}

static void start(session *s, const char *name)
{
    memset(s, 0, sizeof *s);
    CHECK_INT(jail_zygote_start(&s->z), 0);
    jail_limits l;
    CHECK_INT(jail_limits_from_env(&l), 0);
    spawn_limits(s, name, &l);
}

static void send_line(session *s, cJSON *req)
{
    char *line = cJSON_PrintUnformatted(req);
    size_t n = strlen(line);
    line[n] = '\n';
    CHECK(write(s->ctl, line, n + 1) == (ssize_t)(n + 1));
    free(line);
    cJSON_Delete(req);
}

/* Runs CODE; returns the end event (owned by s->events); NULL when the kernel died. */
static const cJSON *run_lang(session *s, const char *lang, const char *code)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", "run");
    cJSON_AddStringToObject(req, "lang", lang);
    cJSON_AddStringToObject(req, "code", code);
    send_line(s, req);
    cJSON_Delete(s->events);
    s->events = cJSON_CreateArray();
    strbuf_reset(&s->stdout_);
    strbuf_reset(&s->stderr_);
    for (;;) {
        cJSON *ev = next_line(s, 20000);
        if (!ev)
            return NULL;
        cJSON_AddItemToArray(s->events, ev);
        if (str_of(ev, "ev") && strcmp(str_of(ev, "ev"), "end") == 0) {
            drain(s->out, &s->stdout_);
            drain(s->err, &s->stderr_);
            return ev;
        }
    }
}

static const cJSON *run(session *s, const char *code)
{
    return run_lang(s, "python", code);
}

/* The first event of the last run named EV (and with MIME, when given). */
static const cJSON *event(session *s, const char *ev, const char *mime)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, s->events)
    {
        if (str_of(e, "ev") && strcmp(str_of(e, "ev"), ev) == 0 &&
            (!mime || (str_of(e, "mime") && strcmp(str_of(e, "mime"), mime) == 0)))
            return e;
    }
    return NULL;
}

static int ok_of(const cJSON *end)
{
    return end && cJSON_IsTrue(cJSON_GetObjectItem(end, "ok"));
}

/* Runs CODE, which must succeed and print exactly WANT. */
static void expect_output(session *s, const char *code, const char *want)
{
    const cJSON *end = run(s, code);
    CHECK(end != NULL);
    if (!ok_of(end))
        fprintf(stderr, "run failed: %s\nstderr: %s\n", cJSON_PrintUnformatted(s->events),
                strbuf_str(&s->stderr_));
    CHECK(ok_of(end));
    CHECK_STR(strbuf_str(&s->stdout_), want);
}

/* The test's own copies: ctl, what was read, the events. */
static void session_free(session *s)
{
    if (s->ctl > 0)
        close(s->ctl);
    s->ctl = -1;
    strbuf_free(&s->rbuf);
    strbuf_free(&s->stdout_);
    strbuf_free(&s->stderr_);
    cJSON_Delete(s->events);
    s->events = NULL;
}

/* 1 when PID no longer runs: gone, or a zombie waiting for its parent to reap it. */
static int pid_ended(pid_t pid)
{
    char p[64], buf[512];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *close = strrchr(buf, ')');
    return close && close[1] == ' ' && close[2] == 'Z';
}

static void finish(session *s)
{
    CHECK_INT(jail_destroy(s->id, s->pid), 0);
    for (int i = 0; i < 200 && !pid_ended(s->pid); i++)
        usleep(10000);
    CHECK(pid_ended(s->pid));
    jail_zygote_stop(&s->z);
    session_free(s);
}

TEST(run_print_result_error)
{
    session s;
    start(&s, "basic");
    expect_output(&s, "print(1)", "1\n");
    const cJSON *end = run(&s, "x = 40\nx + 2");
    CHECK(ok_of(end));
    CHECK_INT(cJSON_GetObjectItem(end, "execution_count")->valueint, 2);
    const cJSON *res = event(&s, "result", "text/plain");
    CHECK(res != NULL);
    CHECK_STR(str_of(res, "data"), "42");

    end = run(&s, "def f():\n    return 1 / 0\n\nf()");
    CHECK(end && !ok_of(end));
    const cJSON *err = event(&s, "error", NULL);
    CHECK(err != NULL);
    CHECK_STR(str_of(err, "name"), "ZeroDivisionError");
    CHECK_STR(str_of(err, "value"), "division by zero");
    const char *tb = str_of(err, "traceback");
    CHECK(tb && strstr(tb, "File \"<cell>\", line 4"));
    CHECK(strstr(tb, "return 1 / 0"));
    CHECK(!strstr(tb, "kernel.py"));

    /* A function from an earlier cell shows its own line, not the current cell's. */
    end = run(&s, "print('padding line')\nf()");
    CHECK(end && !ok_of(end));
    tb = str_of(event(&s, "error", NULL), "traceback");
    CHECK(tb && strstr(tb, "File \"<cell>\", line 2, in <module>\n    f()"));
    CHECK(strstr(tb, "File \"<cell>\", line 2, in f\n    return 1 / 0"));

    end = run(&s, "if True print(2)");
    CHECK(end && !ok_of(end));
    CHECK_STR(str_of(event(&s, "error", NULL), "name"), "SyntaxError");
    CHECK(strstr(str_of(event(&s, "error", NULL), "traceback"), "File \"<cell>\", line 1"));
    expect_output(&s, "print(x)", "40\n");
    CHECK(ok_of(run(&s, "'x' * 1000000")));
    const char *big = str_of(event(&s, "result", "text/plain"), "data");
    CHECK(big && strlen(big) < 100100 && strstr(big, "[... 900002 more characters]"));
    finish(&s);
}

TEST(state_persists_and_interrupt)
{
    session s;
    start(&s, "intr");
    expect_output(&s, "import numpy as np\nacc = np.arange(5)\ncount = 7", "");
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", "run");
    cJSON_AddStringToObject(req, "code", "print('looping', flush=True)\nwhile True: pass");
    send_line(&s, req);
    /* Interrupt once the loop runs (its first output is there). */
    for (int i = 0; i < 100 && !strstr(strbuf_str(&s.stdout_), "looping"); i++) {
        struct pollfd p = {s.out, POLLIN, 0};
        poll(&p, 1, 100);
        drain(s.out, &s.stdout_);
    }
    CHECK(strstr(strbuf_str(&s.stdout_), "looping"));
    CHECK(kill(s.pid, SIGINT) == 0);
    cJSON *ev;
    int saw_kbi = 0;
    while ((ev = next_line(&s, 10000))) {
        if (str_of(ev, "name") && strcmp(str_of(ev, "name"), "KeyboardInterrupt") == 0)
            saw_kbi = 1;
        int end = strcmp(str_of(ev, "ev"), "end") == 0;
        if (end)
            CHECK(!cJSON_IsTrue(cJSON_GetObjectItem(ev, "ok")));
        cJSON_Delete(ev);
        if (end)
            break;
    }
    CHECK(saw_kbi);
    expect_output(&s, "print(int(acc.sum()), count)", "10 7\n");
    finish(&s);
}

TEST(destroy_leaves_nothing)
{
    session s;
    start(&s, "destroy");
    expect_output(&s,
                  "import subprocess, os\n"
                  "p = subprocess.Popen(['sleep', '1000'])\n"
                  "print(open('/proc/self/stat').read().split()[0])",
                  "2\n");
    /* Host pids of the session: the init and everything in its cgroup. */
    char path[512];
    snprintf(path, sizeof path, "/sys/fs/cgroup/pids/codebot/%s/cgroup.procs", s.id);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    pid_t pids[16];
    int n = 0;
    char line[32];
    while (n < 16 && fgets(line, sizeof line, f))
        pids[n++] = (pid_t)strtol(line, NULL, 10);
    fclose(f);
    CHECK(n >= 3); /* init, kernel, sleep */
    CHECK_INT(jail_destroy(s.id, s.pid), 0);
    /* Everything is gone or a zombie on its way (the zygote reaps the init). */
    for (int i = 0; i < n; i++) {
        char st[64], buf[512] = "";
        snprintf(st, sizeof st, "/proc/%d/stat", (int)pids[i]);
        int ok = 0;
        for (int k = 0; k < 100 && !ok; k++) {
            FILE *g = fopen(st, "r");
            ok = !g || !fgets(buf, sizeof buf, g) || strstr(buf, ") Z ");
            if (g)
                fclose(g);
            if (!ok)
                usleep(10000);
        }
        CHECK(ok);
    }
    CHECK(access(path, F_OK) < 0);
    snprintf(path, sizeof path, "/sys/fs/cgroup/memory/codebot/%s", s.id);
    CHECK(access(path, F_OK) < 0);
    CHECK_INT(jail_destroy(s.id, s.pid), 0); /* idempotent */
    CHECK_INT(jail_stats(s.id, &(uint64_t){0}, &(uint64_t){0}), -ENOENT);
    jail_zygote_stop(&s.z);
    session_free(&s);
}

TEST(memory_limit_kills_and_reports_oom)
{
    session s;
    memset(&s, 0, sizeof s);
    CHECK_INT(jail_zygote_start(&s.z), 0);
    jail_limits l;
    CHECK_INT(jail_limits_from_env(&l), 0);
    l.mem_bytes = 100 << 20;
    spawn_limits(&s, "oom", &l);
    uint64_t mem = 0, cpu = 0;
    CHECK_INT(jail_stats(s.id, &mem, &cpu), 0);
    CHECK(mem > 0 && mem < (100 << 20));
    CHECK_INT(jail_oom_killed(s.id), 0);
    const cJSON *end = run(&s, "blocks = []\nwhile True: blocks.append(bytearray(1 << 20))");
    CHECK(end == NULL); /* the kernel died: ctl closed without an end */
    CHECK_INT(jail_oom_killed(s.id), 1);
    finish(&s);
}

TEST(isolation_seen_from_inside)
{
    session s;
    setenv("CODEBOT_TEST_SECRET", "hunter2", 1); /* must not reach the session */
    start(&s, "iso");
    expect_output(&s, "import os, socket\nprint(os.getuid() != 0, os.getgid() != 0)",
                  "True True\n");
    expect_output(&s, "print(socket.gethostname())", "sandbox\n");
    expect_output(&s,
                  "print(sorted(os.listdir('/sys/class/net')) if os.path.exists('/sys') "
                  "else [n for _, n in socket.if_nameindex()])",
                  "['lo']\n");
    expect_output(&s, "print(os.path.exists('/root'), sorted(os.listdir('/home')))",
                  "False ['sandbox']\n");
    expect_output(&s, "print(sorted(os.environ))",
                  "['HOME', 'LANG', 'LOGNAME', 'MKL_NUM_THREADS', 'MPLBACKEND', 'MPLCONFIGDIR', "
                  "'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'PATH', 'PYTHONDONTWRITEBYTECODE', "
                  "'PYTHONUNBUFFERED', 'TERM', 'USER']\n");
    expect_output(&s, "print(sorted(p for p in os.listdir('/proc') if p.isdigit()))",
                  "['1', '2']\n");
    /* Nothing of the zygote or the service leaked: stdin, stdout, stderr, ctl, the kernel's
     * copies of the two output pipes (4, 5) and listdir's. */
    expect_output(&s, "print(sorted(os.listdir('/proc/self/fd')))",
                  "['0', '1', '2', '3', '4', '5', '6']\n");
    expect_output(&s,
                  "import os\nprint(sorted(os.readlink('/proc/self/fd/%d' % f).split(':')[0] "
                  "for f in (1, 2, 4, 5)))",
                  "['pipe', 'pipe', 'pipe', 'pipe']\n");
    /* Its own cgroup namespace: the host's cgroup paths (and our session's id) are hidden. */
    expect_output(&s,
                  "lines = open('/proc/self/cgroup').read().split()\n"
                  "print(all(l.endswith(':/') for l in lines), len(lines) > 0)",
                  "True True\n");
    expect_output(&s,
                  "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                  "r = libc.unshare(0x10000000)\nprint(r, ctypes.get_errno())\n"
                  "r = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)\n"
                  "print(r, ctypes.get_errno())",
                  "-1 1\n-1 1\n");
    expect_output(&s,
                  "import socket\ns = socket.socket()\n"
                  "try:\n    s.connect(('1.1.1.1', 80))\nexcept OSError as e:\n"
                  "    print(e.errno)",
                  "101\n");
    expect_output(&s, "try:\n    open('/usr/x', 'w')\nexcept OSError as e:\n    print(e.errno)",
                  "30\n");
    finish(&s);
}

TEST(threads_processes_and_libraries_work)
{
    session s;
    start(&s, "libs");
    expect_output(&s,
                  "import threading, multiprocessing as mp, subprocess\n"
                  "t = threading.Thread(target=print, args=('thread',)); t.start(); "
                  "t.join()\n"
                  "with mp.Pool(2) as p: print(sum(p.map(abs, [-1, -2, 3])))\n"
                  "print(subprocess.run(['bash', '-c', 'echo $((6*7))'], "
                  "capture_output=True, text=True).stdout.strip())",
                  "thread\n6\n42\n");
    expect_output(&s,
                  "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})\n"
                  "print(int(df.a.sum()))",
                  "6\n");
    const cJSON *end = run(&s, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\n"
                               "open('out.txt', 'w').write('hi')");
    CHECK(ok_of(end));
    const cJSON *png = event(&s, "result", "image/png");
    CHECK(png && strncmp(str_of(png, "data"), "iVBORw0KGgo", 11) == 0);
    const cJSON *file = event(&s, "file", NULL);
    CHECK(file != NULL);
    CHECK_STR(str_of(file, "path"), "out.txt");
    CHECK_INT(cJSON_GetObjectItem(file, "size")->valueint, 2);
    finish(&s);
}

TEST(bash_and_javascript)
{
    session s;
    start(&s, "langs");
    const cJSON *end = run_lang(&s, "bash", "X=5\ncd /tmp\necho hello $X");
    CHECK(ok_of(end));
    CHECK_STR(strbuf_str(&s.stdout_), "hello 5\n");
    end = run_lang(&s, "bash", "echo $X $(pwd)\nfalse");
    CHECK(end && !ok_of(end));
    CHECK_STR(strbuf_str(&s.stdout_), "5 /tmp\n");
    CHECK_STR(str_of(event(&s, "error", NULL), "name"), "BashError");
    CHECK_STR(str_of(event(&s, "error", NULL), "value"), "exit status 1");
    if (access("/usr/bin/node", X_OK) == 0) {
        end = run_lang(&s, "javascript", "var a = 20; console.log('js', a + 1); a * 2");
        CHECK(ok_of(end));
        CHECK_STR(strbuf_str(&s.stdout_), "js 21\n");
        CHECK_STR(str_of(event(&s, "result", NULL), "data"), "40");
        /* The event loop runs between runs: a timer set by one run fires before the next. */
        CHECK(ok_of(run_lang(&s, "javascript",
                             "var fired = false; setTimeout(() => fired = "
                             "true, 10); 0")));
        usleep(300000);
        CHECK(ok_of(run_lang(&s, "javascript", "fired")));
        CHECK_STR(str_of(event(&s, "result", NULL), "data"), "true");
        end = run_lang(&s, "javascript", "a + undefinedThing");
        CHECK(end && !ok_of(end));
        CHECK_STR(str_of(event(&s, "error", NULL), "name"), "ReferenceError");
    }
    finish(&s);
}

static cJSON *file_op(session *s, const char *op, const char *path, const char *data)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", op);
    if (path)
        cJSON_AddStringToObject(req, "path", path);
    if (data)
        cJSON_AddStringToObject(req, "data", data);
    send_line(s, req);
    return next_line(s, 10000);
}

TEST(file_operations)
{
    session s;
    start(&s, "files");
    cJSON *a = file_op(&s, "put_file", "data/in.csv", "YSxiCjEsMgo="); /* "a,b\n1,2\n" */
    CHECK(a && cJSON_IsTrue(cJSON_GetObjectItem(a, "ok")));
    CHECK_INT(cJSON_GetObjectItem(a, "size")->valueint, 8);
    cJSON_Delete(a);
    expect_output(&s, "import pandas as pd\nprint(int(pd.read_csv('data/in.csv').b[0]))", "2\n");
    a = file_op(&s, "get_file", "data/in.csv", NULL);
    CHECK(a && cJSON_IsTrue(cJSON_GetObjectItem(a, "ok")));
    CHECK_STR(str_of(a, "data"), "YSxiCjEsMgo=");
    cJSON_Delete(a);
    a = file_op(&s, "list_files", NULL, NULL);
    CHECK(a && cJSON_GetArraySize(cJSON_GetObjectItem(a, "files")) == 1);
    cJSON_Delete(a);
    static const char *const bad[] = {"/etc/passwd", "../x", "a/../../x", "", "link"};
    expect_output(&s, "import os\nos.symlink('/etc/hostname', 'link')", "");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        a = file_op(&s, "get_file", bad[i], NULL);
        CHECK(a && cJSON_IsFalse(cJSON_GetObjectItem(a, "ok")) && str_of(a, "error"));
        cJSON_Delete(a);
    }
    a = file_op(&s, "put_file", "link", "eA==");
    CHECK(a && cJSON_IsFalse(cJSON_GetObjectItem(a, "ok")));
    cJSON_Delete(a);
    finish(&s);
}

TEST(sessions_are_apart)
{
    session s, t;
    start(&s, "apart1");
    memset(&t, 0, sizeof t);
    t.z = s.z;
    jail_limits l;
    CHECK_INT(jail_limits_from_env(&l), 0);
    spawn_limits(&t, "apart2", &l);
    expect_output(&s, "import os\nopen('/tmp/mine', 'w').write('x')\nprint(os.getuid())",
                  "10000\n");
    expect_output(&t, "import os\nprint(os.path.exists('/tmp/mine'), os.getuid())",
                  "False 10001\n");
    CHECK_INT(jail_destroy(t.id, t.pid), 0);
    session_free(&t);
    finish(&s);
}

TEST(supported_here_and_explains_otherwise)
{
    char why[256] = "";
    CHECK_INT(jail_supported(why, sizeof why), 1);
    /* Unprivileged, it says why (the check runs in a child that gave up root). */
    pid_t pid = fork();
    if (pid == 0) {
        if (setresuid(65534, 65534, 65534) < 0)
            _exit(2);
        _exit(jail_supported(why, sizeof why) == 0 && strstr(why, "root") ? 0 : 1);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST(uid_base_must_not_cover_host_users)
{
    jail_zygote z;
    setenv("CODEBOT_SANDBOX_UID_BASE", "1000", 1);
    CHECK_INT(jail_zygote_start(&z), -EINVAL);
    setenv("CODEBOT_SANDBOX_UID_BASE", "0", 1);
    CHECK_INT(jail_zygote_start(&z), -EINVAL);
}

TEST(seccomp_filter_builds)
{
    unsigned char *bpf = NULL;
    size_t len = 0;
    CHECK_INT(seccomp_build(&bpf, &len), 0);
    CHECK(len >= 8 * 20 && len % 8 == 0);
    free(bpf);
}

TEST(limits_from_env)
{
    jail_limits l;
    unsetenv("CODEBOT_SANDBOX_MEMORY_MB");
    CHECK_INT(jail_limits_from_env(&l), 0);
    CHECK(l.mem_bytes == 512ULL << 20);
    CHECK_INT(l.max_pids, 64);
    setenv("CODEBOT_SANDBOX_MEMORY_MB", "12x", 1);
    CHECK_INT(jail_limits_from_env(&l), -EINVAL);
    setenv("CODEBOT_SANDBOX_MEMORY_MB", "100", 1);
    CHECK_INT(jail_limits_from_env(&l), 0);
    CHECK(l.mem_bytes == 100ULL << 20);
}

/* Sends a run and interrupts it once its first output line (a marker) arrived. */
static const cJSON *run_interrupted(session *s, const char *lang, const char *code)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", "run");
    cJSON_AddStringToObject(req, "lang", lang);
    cJSON_AddStringToObject(req, "code", code);
    send_line(s, req);
    strbuf_reset(&s->stdout_);
    for (int i = 0; i < 100 && !strstr(strbuf_str(&s->stdout_), "started"); i++) {
        struct pollfd p = {s->out, POLLIN, 0};
        poll(&p, 1, 100);
        drain(s->out, &s->stdout_);
    }
    CHECK(strstr(strbuf_str(&s->stdout_), "started"));
    usleep(100000);
    CHECK(kill(s->pid, SIGINT) == 0);
    cJSON_Delete(s->events);
    s->events = cJSON_CreateArray();
    for (;;) {
        cJSON *ev = next_line(s, 10000);
        if (!ev)
            return NULL;
        cJSON_AddItemToArray(s->events, ev);
        if (strcmp(str_of(ev, "ev"), "end") == 0)
            return ev;
    }
}

TEST(interrupt_bash_and_javascript_keeps_state)
{
    session s;
    start(&s, "intr2");
    CHECK(ok_of(run_lang(&s, "bash", "Y=kept")));
    const cJSON *end = run_interrupted(&s, "bash", "echo started; sleep 30; echo not-here");
    CHECK(end && !ok_of(end));
    CHECK_STR(str_of(event(&s, "error", NULL), "name"), "KeyboardInterrupt");
    CHECK(ok_of(run_lang(&s, "bash", "echo $Y")));
    CHECK_STR(strbuf_str(&s.stdout_), "kept\n");
    if (access("/usr/bin/node", X_OK) == 0) {
        CHECK(ok_of(run_lang(&s, "javascript", "var k = 'js-kept'")));
        end = run_interrupted(&s, "javascript", "console.log('started'); while (true) {}");
        CHECK(end && !ok_of(end));
        CHECK(event(&s, "error", NULL) != NULL);
        CHECK(ok_of(run_lang(&s, "javascript", "console.log(k)")));
        CHECK_STR(strbuf_str(&s.stdout_), "js-kept\n");
    }
    finish(&s);
}

TEST(hangup_ends_the_session)
{
    session s;
    start(&s, "hangup");
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", "run");
    cJSON_AddStringToObject(req, "code", "while True: pass");
    send_line(&s, req);
    usleep(200000);
    int pidfd = pidfd_open(s.pid, 0);
    CHECK(pidfd >= 0);
    close(s.ctl);
    struct pollfd p = {pidfd, POLLIN, 0};
    CHECK_INT(poll(&p, 1, 5000), 1); /* the init exited */
    close(pidfd);
    finish(&s);
}

TEST(process_and_disk_limits)
{
    session s;
    memset(&s, 0, sizeof s);
    CHECK_INT(jail_zygote_start(&s.z), 0);
    jail_limits l;
    CHECK_INT(jail_limits_from_env(&l), 0);
    l.max_pids = 16;
    l.disk_bytes = 1 << 20;
    spawn_limits(&s, "limits", &l);
    expect_output(&s,
                  "import subprocess\nprocs, err = [], None\n"
                  "try:\n"
                  "    for i in range(40):\n"
                  "        procs.append(subprocess.Popen(['sleep', '100']))\n"
                  "except OSError as e:\n"
                  "    err = e.errno\n"
                  "print(len(procs) < 16, err)\n"
                  "for p in procs: p.kill(); p.wait()",
                  "True 11\n");
    expect_output(&s,
                  "try:\n    open('big', 'wb').write(b'x' * (2 << 20))\n"
                  "except OSError as e:\n    print(e.errno)",
                  "28\n");
    expect_output(&s, "print('still alive')", "still alive\n");
    finish(&s);
}

TEST(stats_and_cpu_quota)
{
    session s;
    start(&s, "stats");
    char path[512], buf[64] = "";
    snprintf(path, sizeof path, "/sys/fs/cgroup/cpu/codebot/%s/cpu.cfs_quota_us", s.id);
    FILE *f = fopen(path, "r");
    if (f) { /* the v1 cpu controller is mounted on this host */
        CHECK(fgets(buf, sizeof buf, f) != NULL);
        fclose(f);
        CHECK_STR(buf, "100000\n");
    }
    expect_output(&s,
                  "import time\nt = time.process_time()\n"
                  "while time.process_time() - t < 0.3: pass",
                  "");
    uint64_t mem = 0, cpu = 0;
    CHECK_INT(jail_stats(s.id, &mem, &cpu), 0);
    CHECK(cpu >= 300);
    CHECK(mem > 1 << 20);
    finish(&s);
}

TEST(forked_user_code_does_not_speak_for_the_kernel)
{
    session s;
    start(&s, "fork");
    /* The child returns from the cell without exiting: it must vanish, not run a 2nd kernel. */
    expect_output(&s,
                  "import os, time\npid = os.fork()\nif pid == 0:\n    print('child')\n"
                  "else:\n    os.waitpid(pid, 0)\n    print('parent')",
                  "child\nparent\n");
    expect_output(&s, "print('next')", "next\n");
    expect_output(&s, "import sys\nsys.exit(0)", "");
    const cJSON *end = run(&s, "sys.exit(3)");
    CHECK(end && !ok_of(end));
    CHECK_STR(str_of(event(&s, "error", NULL), "name"), "SystemExit");
    end = run(&s, "input()");
    CHECK(end && !ok_of(end));
    CHECK_STR(str_of(event(&s, "error", NULL), "name"), "EOFError");
    expect_output(&s, "print('alive')", "alive\n");
    finish(&s);
}

TEST(without_cgroups_rlimits_bound_the_session)
{
    setenv("CODEBOT_SANDBOX_CGROUPS", "off", 1);
    session s;
    memset(&s, 0, sizeof s);
    CHECK_INT(jail_zygote_start(&s.z), 0);
    jail_limits l;
    CHECK_INT(jail_limits_from_env(&l), 0);
    l.mem_bytes = 300 << 20;
    spawn_limits(&s, "nocg", &l);
    expect_output(&s,
                  "try:\n    b = bytearray(400 << 20)\nexcept MemoryError:\n    print('bounded')",
                  "bounded\n");
    expect_output(&s, "import subprocess\np = subprocess.Popen(['sleep', '1000'])\nprint(p.pid)",
                  "3\n");
    CHECK_INT(jail_stats(s.id, &(uint64_t){0}, &(uint64_t){0}), -ENOENT);
    int pidfd = pidfd_open(s.pid, 0);
    CHECK(pidfd >= 0);
    CHECK_INT(jail_destroy(s.id, s.pid), 0);
    struct pollfd p = {pidfd, POLLIN, 0};
    CHECK_INT(poll(&p, 1, 5000), 1);
    close(pidfd);
    jail_zygote_stop(&s.z);
    session_free(&s);
}

TEST(big_file_round_trip)
{
    session s;
    start(&s, "bigfile");
    size_t n = 12 << 20, b64 = 4 * n / 3; /* n is a multiple of 3 */
    char *data = malloc(b64 + 1);
    CHECK(data != NULL);
    for (size_t i = 0; i < b64; i += 4)
        memcpy(data + i, "QUJD", 4); /* "ABC" repeated */
    data[b64] = 0;
    cJSON *a = file_op(&s, "put_file", "big.bin", data);
    free(data);
    CHECK(a && cJSON_IsTrue(cJSON_GetObjectItem(a, "ok")));
    CHECK(cJSON_GetObjectItem(a, "size")->valuedouble == (double)n);
    cJSON_Delete(a);
    expect_output(&s, "d = open('big.bin', 'rb').read()\nprint(len(d), d[:6])",
                  "12582912 b'ABCABC'\n");
    a = file_op(&s, "get_file", "big.bin", NULL);
    CHECK(a && cJSON_IsTrue(cJSON_GetObjectItem(a, "ok")));
    CHECK(strlen(str_of(a, "data")) == b64);
    cJSON_Delete(a);
    finish(&s);
}

TEST(cpu_time_and_open_files_limits)
{
    session s;
    memset(&s, 0, sizeof s);
    CHECK_INT(jail_zygote_start(&s.z), 0);
    jail_limits l;
    CHECK_INT(jail_limits_from_env(&l), 0);
    l.cpu_seconds = 1;
    l.max_files = 64;
    spawn_limits(&s, "rlim", &l);
    expect_output(&s,
                  "fs = []\ntry:\n    for i in range(100): fs.append(open('/dev/null'))\n"
                  "except OSError as e:\n    print(e.errno, len(fs) < 64)\n"
                  "for f in fs: f.close()",
                  "24 True\n");
    const cJSON *end = run(&s, "while True: pass");
    CHECK(end == NULL); /* SIGXCPU ended the kernel, so the session */
    finish(&s);
}

TEST(file_ops_do_not_follow_symlinked_directories)
{
    session s;
    start(&s, "symdir");
    expect_output(&s, "import os\nos.symlink('/etc', 'etcdir')\nos.mkdir('real')", "");
    cJSON *a = file_op(&s, "get_file", "etcdir/passwd", NULL);
    CHECK(a && cJSON_IsFalse(cJSON_GetObjectItem(a, "ok")));
    cJSON_Delete(a);
    a = file_op(&s, "put_file", "etcdir/x", "eA==");
    CHECK(a && cJSON_IsFalse(cJSON_GetObjectItem(a, "ok")));
    cJSON_Delete(a);
    a = file_op(&s, "put_file", "real/x", "eA==");
    CHECK(a && cJSON_IsTrue(cJSON_GetObjectItem(a, "ok")));
    cJSON_Delete(a);
    a = file_op(&s, "get_file", "./real//x", NULL);
    CHECK(a && cJSON_IsTrue(cJSON_GetObjectItem(a, "ok")));
    CHECK_STR(str_of(a, "path"), "real/x");
    cJSON_Delete(a);
    finish(&s);
}

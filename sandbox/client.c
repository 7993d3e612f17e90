/* client — each call is one uv_pipe_t connection to sandboxd carrying one request line; the
 * answer is framed with linebuf (lines up to 64 MiB, any split across reads). A run ends
 * with the service's `end` event, or with a synthesised one when the connection fails.
 * sbx_run_cancel() half-closes the connection (the service reads that as "interrupt") and
 * keeps reading, so the caller still gets the run's last output and real `end`; a timer
 * ends the run locally if the service never answers. sbx_ensure_service() is plain blocking
 * code for the time before a loop runs. */
#include "sandbox/client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "sandbox/linebuf.h"

#define MOD "sbx"
#define MAX_LINE ((size_t)64 << 20)
#define CANCEL_WAIT_MS 30000

extern char **environ;

const char *sbx_socket_path(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("CODEBOT_SANDBOX_SOCKET");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (env && *env)
        snprintf(path, sizeof(path), "%s", env);
    else if (xdg && *xdg)
        snprintf(path, sizeof(path), "%s/codebot/sandboxd.sock", xdg);
    else
        snprintf(path, sizeof(path), "var/sandboxd.sock");
    return path;
}

/* ---- starting the service ---- */

static int try_connect(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(a.sun_path))
        return -ENAMETOOLONG;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static int mkdirs(const char *dir)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* The socket path made absolute (the service runs in /), and its directory created. */
static int socket_abs(char *out, size_t len, char *dir, size_t dlen)
{
    const char *path = sbx_socket_path();
    char cwd[PATH_MAX] = "";
    if (path[0] != '/' && !getcwd(cwd, sizeof(cwd)))
        return -errno;
    int n = snprintf(out, len, "%s%s%s", cwd, cwd[0] ? "/" : "", path);
    if (n < 0 || (size_t)n >= len)
        return -ENAMETOOLONG;
    snprintf(dir, dlen, "%s", out);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir)
        *slash = '\0';
    return mkdirs(dir);
}

static int keep_env(const char *kv)
{
    static const char *const prefixes[] = {
        "CODEBOT_SANDBOX_",
        "CODEBOT_LOG_",
        "CODEBOT_VAR=",
        "PATH=",
        "LANG=",
        "LC_",
        "TZ=",
        "XDG_RUNTIME_DIR=",
        "ASAN_OPTIONS=",
        "UBSAN_OPTIONS=",
        "LSAN_OPTIONS=",
    };
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(kv, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

/* The daemon's environment: only what configures it, never the bot's secrets. */
static char **daemon_env(const char *sock, strbuf *own)
{
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n++;
    char **env = calloc(n + 3, sizeof(*env));
    if (!env)
        return NULL;
    size_t k = 0;
    for (char **e = environ; *e; e++)
        if (keep_env(*e) && strncmp(*e, "CODEBOT_SANDBOX_SOCKET=", 23) != 0)
            env[k++] = *e;
    strbuf_printf(&own[0], "CODEBOT_SANDBOX_SOCKET=%s", sock);
    strbuf_printf(&own[1], "CODEBOT_SANDBOXD_NOTIFY_FD=3");
    env[k++] = own[0].data;
    env[k++] = own[1].data;
    return env;
}

static void log_path(char *out, size_t len, const char *sockdir)
{
    const char *var = getenv("CODEBOT_VAR");
    snprintf(out, len, "%s/sandboxd.log", var && *var ? var : sockdir);
}

/* Double fork: the service is nobody's child but init's (or a subreaper's). Its fd 3 is the
 * write end of NOTIFY; it writes "ready" there once it listens. */
static int spawn_daemon(const char *sock, const char *logfile, int notify_w)
{
    strbuf own[2] = {{0}, {0}};
    /* CODEBOT_SANDBOXD_BIN: another codebot binary to serve sandboxes (tests whose process is
     * not codebot, the bot under valgrind). Resolved now: the child changes directory. */
    char bin[PATH_MAX] = "/proc/self/exe";
    const char *alt = getenv("CODEBOT_SANDBOXD_BIN");
    if (alt && *alt && !realpath(alt, bin))
        return -errno;
    char **env = daemon_env(sock, own);
    if (!env)
        return -ENOMEM;
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        free(env);
        strbuf_free(&own[0]);
        strbuf_free(&own[1]);
        return e;
    }
    if (pid == 0) {
        setsid();
        if (fork() != 0)
            _exit(0);
        int null = open("/dev/null", O_RDWR);
        int log = open(logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (log < 0)
            log = null;
        dup2(null, 0);
        dup2(log, 1);
        dup2(log, 2);
        dup2(notify_w, 3);
        closefrom(4);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (chdir("/") < 0)
            _exit(127);
        char *argv[] = {"codebot", "sandboxd", NULL};
        execve(bin, argv, env);
        _exit(127);
    }
    free(env);
    strbuf_free(&own[0]);
    strbuf_free(&own[1]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void report_log_tail(const char *logfile)
{
    char buf[4096];
    int fd = open(logfile, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    char *last = strrchr(buf, '\n');
    log_error(MOD, "sandboxd did not start: %s (log: %s)", last ? last + 1 : buf, logfile);
}

/* Waits for the service's word on NOTIFY_R: 1 ready, 0 another service is starting, -errno. */
static int wait_notify(int fd, uint64_t deadline)
{
    char buf[16];
    size_t got = 0;
    for (;;) {
        uint64_t now = mono_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, (int)(deadline - now));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return rc < 0 ? -errno : -ETIMEDOUT;
        ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return got && strncmp(buf, "busy", 4) == 0 ? 0 : -ECONNREFUSED;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "ready"))
            return 1;
        if (got >= sizeof(buf) - 1)
            return -EPROTO;
    }
}

int sbx_ensure_service(uint64_t timeout_ms)
{
    int rc = try_connect(sbx_socket_path());
    if (rc == 0)
        return 0;
    if (rc != -ENOENT && rc != -ECONNREFUSED) {
        log_error(MOD, "cannot connect to %s: %s", sbx_socket_path(), strerror(-rc));
        return rc;
    }
    char sock[PATH_MAX], dir[PATH_MAX], logfile[PATH_MAX + 16];
    rc = socket_abs(sock, sizeof(sock), dir, sizeof(dir));
    if (rc < 0) {
        log_error(MOD, "cannot create the directory of %s: %s", sbx_socket_path(), strerror(-rc));
        return rc;
    }
    log_path(logfile, sizeof(logfile), dir);
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    uint64_t deadline = mono_ms() + timeout_ms;
    rc = spawn_daemon(sock, logfile, pfd[1]);
    close(pfd[1]);
    if (rc == 0)
        rc = wait_notify(pfd[0], deadline);
    close(pfd[0]);
    if (rc == -ECONNREFUSED)
        report_log_tail(logfile);
    if (rc < 0 && rc != -ECONNREFUSED)
        log_error(MOD, "sandboxd did not start: %s (log: %s)", strerror(-rc), logfile);
    /* ready, or another service won the race: wait until it answers */
    while (rc >= 0) {
        if (try_connect(sock) == 0)
            return 0;
        if (mono_ms() >= deadline) {
            log_error(MOD, "sandboxd did not answer on %s in time", sock);
            return -ETIMEDOUT;
        }
        usleep(5000);
    }
    return rc;
}

/* ---- one connection ---- */

typedef struct conn {
    uv_pipe_t h;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    linebuf lb;
    char *line;
    size_t line_len;
    int open_handles;
    int closing;
    void (*on_line)(struct conn *c, char *line, size_t len);
    void (*on_fail)(struct conn *c, const char *error);
    void (*on_freed)(struct conn *c);
} conn;

static void conn_handle_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (--c->open_handles == 0)
        c->on_freed(c);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->h, conn_handle_closed);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char space[65536];
    buf->base = space;
    buf->len = sizeof(space);
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        c->on_fail(c, nread == UV_EOF ? "the sandbox service closed the connection"
                                      : uv_strerror((int)nread));
        return;
    }
    if (linebuf_feed(&c->lb, buf->base, (size_t)nread) < 0) {
        c->on_fail(c, "the sandbox service sent an oversized line");
        return;
    }
    char *line;
    size_t len;
    int rc;
    while (!c->closing && (rc = linebuf_next(&c->lb, &line, &len)) != 0) {
        if (rc < 0) {
            c->on_fail(c, "the sandbox service sent an oversized line");
            return;
        }
        c->on_line(c, line, len);
    }
}

static void conn_written(uv_write_t *w, int status)
{
    conn *c = w->data;
    free(c->line);
    c->line = NULL;
    if (status < 0 && !c->closing && status != UV_ECANCELED)
        c->on_fail(c, uv_strerror(status));
}

static void conn_connected(uv_connect_t *req, int status)
{
    conn *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        char msg[PATH_MAX + 64];
        snprintf(msg, sizeof(msg), "cannot reach the sandbox service at %s: %s", sbx_socket_path(),
                 uv_strerror(status));
        c->on_fail(c, msg);
        return;
    }
    uv_buf_t buf = uv_buf_init(c->line, (unsigned)c->line_len);
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->h, &buf, 1, conn_written);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&c->h, conn_alloc, conn_read);
    if (rc < 0)
        c->on_fail(c, uv_strerror(rc));
}

/* Takes REQ's text as the request line. */
static int conn_start(conn *c, uv_loop_t *loop, const cJSON *req)
{
    char *s = cJSON_PrintUnformatted(req);
    if (!s)
        return -ENOMEM;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return -ENOMEM;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    c->line = line;
    c->line_len = n + 1;
    linebuf_init(&c->lb, MAX_LINE);
    int rc = uv_pipe_init(loop, &c->h, 0);
    if (rc < 0) {
        free(line);
        return rc;
    }
    c->h.data = c;
    c->open_handles++;
    c->creq.data = c;
    uv_pipe_connect(&c->creq, &c->h, sbx_socket_path(), conn_connected);
    return 0;
}

/* ---- runs ---- */

struct sbx_run {
    conn c; /* first: the conn callbacks cast back */
    uv_timer_t timer;
    sbx_run_cbs cbs;
    void *ud;
    int ended, cancelled;
};

static void run_end(sbx_run *r, const sbx_end *e)
{
    if (r->ended)
        return;
    r->ended = 1;
    uv_timer_stop(&r->timer);
    if (r->cbs.on_end)
        r->cbs.on_end(r->ud, e);
    conn_close(&r->c);
    if (!uv_is_closing((uv_handle_t *)&r->timer))
        uv_close((uv_handle_t *)&r->timer, conn_handle_closed);
}

static void run_end_local(sbx_run *r, const char *status, const char *message)
{
    sbx_end e = {.ok = 0, .status = status, .message = message, .state_lost = 0};
    run_end(r, &e);
}

static void run_fail(conn *c, const char *error)
{
    sbx_run *r = (sbx_run *)c;
    if (r->cancelled)
        run_end_local(r, "interrupted", "interrupted");
    else
        run_end_local(r, "sandbox_error", error);
}

static uint64_t num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble : 0;
}

static void run_line(conn *c, char *line, size_t len)
{
    sbx_run *r = (sbx_run *)c;
    cJSON *o = cJSON_ParseWithLength(line, len);
    const cJSON *evj = cJSON_GetObjectItemCaseSensitive(o, "ev");
    const char *ev = cJSON_IsString(evj) ? evj->valuestring : NULL;
    if (!cJSON_IsObject(o)) {
        run_fail(c, "the sandbox service sent a malformed line");
    } else if (!ev) {
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
        run_end_local(r, "sandbox_error",
                      cJSON_IsString(err) ? err->valuestring : "the sandbox service refused");
    } else if (strcmp(ev, "stdout") == 0 || strcmp(ev, "stderr") == 0) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
        if (cJSON_IsString(t) && r->cbs.on_output)
            r->cbs.on_output(r->ud, ev[3] == 'o' ? 1 : 2, t->valuestring, strlen(t->valuestring));
    } else if (strcmp(ev, "start") == 0) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "sandbox");
        if (r->cbs.on_start)
            r->cbs.on_start(r->ud, cJSON_IsString(id) ? id->valuestring : "",
                            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "new")));
    } else if (strcmp(ev, "end") == 0) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "status");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "message");
        sbx_end e = {
            .ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok")),
            .status = cJSON_IsString(st) ? st->valuestring : "sandbox_error",
            .message = cJSON_IsString(msg) ? msg->valuestring : NULL,
            .duration_ms = num(o, "duration_ms"),
            .execution_count = (int)num(o, "execution_count"),
            .state_lost = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "state_lost")),
            .dropped_bytes = num(o, "dropped_bytes"),
        };
        run_end(r, &e);
    } else if (r->cbs.on_event) {
        r->cbs.on_event(r->ud, ev, o);
    }
    cJSON_Delete(o);
}

static void run_freed(conn *c)
{
    sbx_run *r = (sbx_run *)c;
    linebuf_free(&c->lb);
    free(c->line);
    free(r);
}

int sbx_run_start(uv_loop_t *loop, const sbx_run_opts *opts, const sbx_run_cbs *cbs, void *ud,
                  sbx_run **out)
{
    if (!opts || !opts->session || !opts->code || !cbs || !cbs->on_end)
        return -EINVAL;
    size_t slen = strlen(opts->session);
    if (slen == 0 || slen > 200)
        return -EINVAL;
    sbx_run *r = calloc(1, sizeof(*r));
    cJSON *req = cJSON_CreateObject();
    if (!r || !req) {
        free(r);
        cJSON_Delete(req);
        return -ENOMEM;
    }
    cJSON_AddStringToObject(req, "op", "run");
    cJSON_AddStringToObject(req, "session", opts->session);
    cJSON_AddStringToObject(req, "lang", opts->lang ? opts->lang : "python");
    cJSON_AddStringToObject(req, "code", opts->code);
    if (opts->timeout_ms)
        cJSON_AddNumberToObject(req, "timeout_ms", (double)opts->timeout_ms);
    if (opts->sandbox_id)
        cJSON_AddStringToObject(req, "sandbox", opts->sandbox_id);
    r->cbs = *cbs;
    r->ud = ud;
    r->c.on_line = run_line;
    r->c.on_fail = run_fail;
    r->c.on_freed = run_freed;
    int rc = conn_start(&r->c, loop, req);
    cJSON_Delete(req);
    if (rc < 0) {
        free(r);
        return rc;
    }
    uv_timer_init(loop, &r->timer);
    r->timer.data = &r->c;
    r->c.open_handles++;
    if (out)
        *out = r;
    return 0;
}

static void cancel_timeout(uv_timer_t *t)
{
    sbx_run *r = (sbx_run *)t->data;
    run_end_local(r, "interrupted", "interrupted (the sandbox service did not confirm)");
}

static void shutdown_done(uv_shutdown_t *req, int status) {}

void sbx_run_cancel(sbx_run *r)
{
    if (!r || r->ended || r->cancelled)
        return;
    r->cancelled = 1;
    /* The shutdown is queued behind the request line; before the connection is made it
     * fails, and the run ends at once (from the timer: on_end never fires from here). */
    int rc = uv_shutdown(&r->c.sreq, (uv_stream_t *)&r->c.h, shutdown_done);
    uv_timer_start(&r->timer, cancel_timeout, rc < 0 ? 0 : CANCEL_WAIT_MS, 0);
}

/* ---- one-answer requests ---- */

typedef struct sbx_req {
    conn c;
    sbx_reply_cb cb;
    void *ud;
    int done;
} sbx_req;

static void req_fail(conn *c, const char *error)
{
    sbx_req *q = (sbx_req *)c;
    if (!q->done) {
        q->done = 1;
        q->cb(q->ud, NULL, error);
    }
    conn_close(c);
}

static void req_line(conn *c, char *line, size_t len)
{
    sbx_req *q = (sbx_req *)c;
    cJSON *o = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        req_fail(c, "the sandbox service answered garbage");
        return;
    }
    q->done = 1;
    q->cb(q->ud, o, NULL);
    cJSON_Delete(o);
    conn_close(c);
}

static void req_freed(conn *c)
{
    linebuf_free(&c->lb);
    free(c->line);
    free(c);
}

int sbx_request(uv_loop_t *loop, const cJSON *req, sbx_reply_cb on_reply, void *ud)
{
    if (!req || !on_reply)
        return -EINVAL;
    sbx_req *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->cb = on_reply;
    q->ud = ud;
    q->c.on_line = req_line;
    q->c.on_fail = req_fail;
    q->c.on_freed = req_freed;
    int rc = conn_start(&q->c, loop, req);
    if (rc < 0)
        free(q);
    return rc;
}

/* cli — thin front ends over client.h. `exec` reads the code from stdin before anything
 * else, makes sure a service runs, and streams the run's events as they arrive: plain text
 * to its own stdout/stderr (unbuffered writes), or one JSON event per line with --json.
 * Ctrl-C cancels the run (the service interrupts it and the real end still arrives); a
 * second Ctrl-C leaves at once. */
#include "sandbox/cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "sandbox/client.h"
#include "sandbox/sandboxd.h"

#define ENSURE_TIMEOUT_MS 60000

/* Writes everything, also to a non-blocking descriptor. */
static void write_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, -1);
            continue;
        }
        if (w < 0 && errno == EPIPE) {
            /* the reader went away: end like any filter whose output is closed */
            signal(SIGPIPE, SIG_DFL);
            raise(SIGPIPE);
        }
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void write_str(int fd, const char *s)
{
    write_all(fd, s, strlen(s));
}

static void write_json_line(const cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    if (!s)
        return;
    size_t n = strlen(s);
    s[n] = '\n'; /* the terminating NUL becomes the newline; the length says where to stop */
    write_all(1, s, n + 1);
    free(s);
}

int cli_sandboxd(int argc, char **argv)
{
    if (argc > 1) {
        int help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
        fprintf(help ? stdout : stderr,
                "usage: codebot sandboxd   (runs the sandbox service in the foreground;\n"
                "       clients start it on demand, see sandbox/sandboxd.h)\n");
        return help ? 0 : 2;
    }
    return sandboxd_main();
}

/* ---- exec ---- */

typedef struct exec_state {
    int json;
    const char *lang;
    sbx_run *run;
    int sigints;
    int status; /* exit status once ended, -1 before */
    uv_signal_t sigint;
} exec_state;

static const char exec_usage[] =
    "usage: codebot exec --session NAME [--lang python|bash|javascript] [--timeout SECONDS]\n"
    "                    [--json]   < code\n"
    "Runs the code read from stdin in the session's sandbox (started when needed) and\n"
    "streams its output. Exit status: 0 ran fine, 1 raised or stopped, 2 sandbox failure or\n"
    "invalid request.\n";

static void exec_on_start(void *ud, const char *id, int is_new)
{
    exec_state *st = ud;
    if (!st->json)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "ev", "start");
    cJSON_AddStringToObject(o, "sandbox", id);
    cJSON_AddBoolToObject(o, "new", is_new);
    cJSON_AddStringToObject(o, "lang", st->lang);
    write_json_line(o);
    cJSON_Delete(o);
}

static void exec_on_output(void *ud, int stream, const char *text, size_t len)
{
    exec_state *st = ud;
    if (!st->json) {
        write_all(stream == 2 ? 2 : 1, text, len);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "ev", stream == 2 ? "stderr" : "stdout");
    cJSON_AddStringToObject(o, "text", text);
    write_json_line(o);
    cJSON_Delete(o);
}

static const char *str_field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Like Python: the traceback, then "Name: value" unless the traceback already ends so. */
static void print_error(const cJSON *o)
{
    const char *name = str_field(o, "name"), *value = str_field(o, "value");
    const char *tb = str_field(o, "traceback");
    strbuf last = {0};
    strbuf_printf(&last, "%s%s%s\n", name, *value ? ": " : "", value);
    size_t n = strlen(tb);
    write_all(2, tb, n);
    if (n && tb[n - 1] != '\n')
        write_str(2, "\n");
    if (n < last.len || strcmp(tb + n - last.len, last.data) != 0)
        write_all(2, last.data, last.len);
    strbuf_free(&last);
}

static void exec_on_event(void *ud, const char *ev, const cJSON *o)
{
    exec_state *st = ud;
    if (st->json) {
        write_json_line(o);
        /* The contract: a run that raised exits 1 with a message on stderr, in JSON mode
         * too; the event itself is on stdout. */
        if (strcmp(ev, "error") == 0) {
            char line[600];
            snprintf(line, sizeof(line), "codebot: %s: %s\n", str_field(o, "name"),
                     str_field(o, "value"));
            write_str(2, line);
        }
        return;
    }
    if (strcmp(ev, "error") == 0) {
        print_error(o);
    } else if (strcmp(ev, "result") == 0) {
        const char *mime = str_field(o, "mime"), *data = str_field(o, "data");
        if (strncmp(mime, "text/", 5) == 0) {
            write_str(1, data);
            if (*data && data[strlen(data) - 1] != '\n')
                write_str(1, "\n");
        } else {
            char line[160];
            snprintf(line, sizeof(line), "[%s result, %zu bytes of base64]\n", mime, strlen(data));
            write_str(2, line);
        }
    }
}

static int exit_status_for(const sbx_end *e)
{
    if (e->ok)
        return 0;
    return strcmp(e->status, "sandbox_error") == 0 ? 2 : 1;
}

static void exec_on_end(void *ud, const sbx_end *e)
{
    exec_state *st = ud;
    st->status = exit_status_for(e);
    st->run = NULL;
    uv_close((uv_handle_t *)&st->sigint, NULL);
    if (st->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "ev", "end");
        cJSON_AddBoolToObject(o, "ok", e->ok);
        cJSON_AddStringToObject(o, "status", e->status);
        cJSON_AddNumberToObject(o, "duration_ms", (double)e->duration_ms);
        cJSON_AddNumberToObject(o, "execution_count", e->execution_count);
        cJSON_AddBoolToObject(o, "state_lost", e->state_lost);
        cJSON_AddNumberToObject(o, "dropped_bytes", (double)e->dropped_bytes);
        if (e->message)
            cJSON_AddStringToObject(o, "message", e->message);
        write_json_line(o);
        cJSON_Delete(o);
    }
    if (e->ok || strcmp(e->status, "error") == 0)
        return;
    char line[600];
    snprintf(line, sizeof(line), "codebot: %s: %s\n",
             strcmp(e->status, "sandbox_error") == 0 ? "sandbox error" : e->status,
             e->message ? e->message : e->status);
    write_str(2, line);
}

static void exec_on_sigint(uv_signal_t *h, int signum)
{
    exec_state *st = h->data;
    if (++st->sigints > 1 || !st->run)
        _exit(130);
    sbx_run_cancel(st->run);
}

static int parse_timeout(const char *s, uint64_t *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v <= 0 || v > 86400)
        return -EINVAL;
    *ms = (uint64_t)(v * 1000 + 0.5);
    if (!*ms)
        *ms = 1;
    return 0;
}

static int read_stdin(strbuf *code)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(0, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        if (strbuf_append(code, buf, (size_t)n))
            return -ENOMEM;
    }
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "codebot exec: %s%s%s\n%s", what, arg ? " " : "", arg ? arg : "", exec_usage);
    return 2;
}

/* Flag values come as "--flag VALUE" or "--flag=VALUE". */
static const char *flag_value(int argc, char **argv, int *i, const char *flag)
{
    size_t n = strlen(flag);
    if (strncmp(argv[*i], flag, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static int parse_exec_args(int argc, char **argv, sbx_run_opts *o, exec_state *st)
{
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--json") == 0)
            st->json = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(exec_usage, stdout);
            return 0;
        } else if ((v = flag_value(argc, argv, &i, "--session")))
            o->session = v;
        else if ((v = flag_value(argc, argv, &i, "--lang")))
            o->lang = v;
        else if ((v = flag_value(argc, argv, &i, "--timeout"))) {
            if (parse_timeout(v, &o->timeout_ms) < 0)
                return usage_error("--timeout wants seconds (up to 86400), not", v);
        } else
            return usage_error("unknown or incomplete argument", argv[i]);
    }
    if (!o->session || !*o->session || strlen(o->session) > 200)
        return usage_error("--session NAME (1 to 200 bytes) is required", NULL);
    if (!o->lang)
        o->lang = "python";
    if (strcmp(o->lang, "python") != 0 && strcmp(o->lang, "bash") != 0 &&
        strcmp(o->lang, "javascript") != 0)
        return usage_error("unknown language (use python, bash or javascript):", o->lang);
    st->lang = o->lang;
    return -1;
}

int cli_exec(int argc, char **argv)
{
    sbx_run_opts opts = {0};
    exec_state st = {.status = -1};
    int rc = parse_exec_args(argc, argv, &opts, &st);
    if (rc >= 0)
        return rc;
    if (log_init() < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN); /* a service that vanishes is reported, not fatal */
    strbuf code = {0};
    if (read_stdin(&code) < 0) {
        fprintf(stderr, "codebot exec: cannot read the code from stdin: %s\n", strerror(errno));
        return 2;
    }
    opts.code = strbuf_str(&code);
    if (sbx_ensure_service(ENSURE_TIMEOUT_MS) < 0) {
        fprintf(stderr, "codebot exec: the sandbox service is unreachable (%s)\n",
                sbx_socket_path());
        strbuf_free(&code);
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_signal_init(loop, &st.sigint);
    st.sigint.data = &st;
    uv_signal_start(&st.sigint, exec_on_sigint, SIGINT);
    sbx_run_cbs cbs = {exec_on_start, exec_on_output, exec_on_event, exec_on_end};
    rc = sbx_run_start(loop, &opts, &cbs, &st, &st.run);
    if (rc < 0) {
        fprintf(stderr, "codebot exec: %s\n", strerror(-rc));
        uv_close((uv_handle_t *)&st.sigint, NULL);
        st.status = 2;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    strbuf_free(&code);
    return st.status < 0 ? 2 : st.status;
}

/* ---- sandbox ls|kill|stats|shutdown ---- */

typedef struct admin {
    const char *cmd;
    int status;
} admin;

static const char sandbox_usage[] =
    "usage: codebot sandbox ls | stats | kill ID|SESSION | shutdown\n";

static void fmt_bytes(char *out, size_t len, double b)
{
    if (b >= 1 << 30)
        snprintf(out, len, "%.1f GiB", b / (1 << 30));
    else if (b >= 1 << 20)
        snprintf(out, len, "%.1f MiB", b / (1 << 20));
    else
        snprintf(out, len, "%.0f KiB", b / 1024);
}

static void fmt_secs(char *out, size_t len, double s)
{
    long v = (long)s;
    if (v >= 3600)
        snprintf(out, len, "%ldh%02ldm", v / 3600, v / 60 % 60);
    else if (v >= 60)
        snprintf(out, len, "%ldm%02lds", v / 60, v % 60);
    else
        snprintf(out, len, "%lds", v);
}

static double num_field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void print_table(const cJSON *reply, int stats)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(reply, "sandboxes");
    if (!cJSON_GetArraySize(arr) && !stats) {
        printf("no sandboxes\n");
        return;
    }
    printf("%-19s  %-20s  %7s  %-8s  %7s  %7s  %5s  %10s  %9s\n", "ID", "SESSION", "PID", "STATE",
           "AGE", "IDLE", "RUNS", "MEMORY", "CPU");
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        char age[48], idle[48], mem[32];
        fmt_secs(age, sizeof(age), num_field(e, "age_s"));
        fmt_secs(idle, sizeof(idle), num_field(e, "idle_s"));
        fmt_bytes(mem, sizeof(mem), num_field(e, "mem_bytes"));
        printf("%-19s  %-20.20s  %7.0f  %-8s  %7s  %7s  %5.0f  %10s  %7.0fms\n", str_field(e, "id"),
               str_field(e, "session"), num_field(e, "pid"), str_field(e, "state"), age, idle,
               num_field(e, "runs"), mem, num_field(e, "cpu_ms"));
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(reply, "totals");
    if (stats && t) {
        char mem[16];
        fmt_bytes(mem, sizeof(mem), num_field(t, "mem_bytes"));
        printf("total: %.0f sandbox(es), memory %s, CPU %.0f ms\n", num_field(t, "sandboxes"), mem,
               num_field(t, "cpu_ms"));
    }
}

static void admin_reply(void *ud, const cJSON *reply, const char *error)
{
    admin *a = ud;
    if (!reply) {
        fprintf(stderr, "codebot sandbox %s: %s\n", a->cmd, error);
        a->status = 2;
        return;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
        fprintf(stderr, "codebot sandbox %s: %s\n", a->cmd, str_field(reply, "error"));
        a->status = 1;
        return;
    }
    a->status = 0;
    if (strcmp(a->cmd, "ls") == 0 || strcmp(a->cmd, "stats") == 0)
        print_table(reply, a->cmd[0] == 's');
    else if (strcmp(a->cmd, "kill") == 0)
        printf("killed\n");
    else if (strcmp(a->cmd, "shutdown") == 0)
        printf("sandboxd stopped\n");
}

static int service_running(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sbx_socket_path());
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

int cli_sandbox(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;
    int known = cmd && (strcmp(cmd, "ls") == 0 || strcmp(cmd, "stats") == 0 ||
                        strcmp(cmd, "kill") == 0 || strcmp(cmd, "shutdown") == 0);
    if (cmd && (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)) {
        fputs(sandbox_usage, stdout);
        return 0;
    }
    if (!known || argc != (strcmp(cmd, "kill") == 0 ? 3 : 2)) {
        fputs(sandbox_usage, stderr);
        return 2;
    }
    if (log_init() < 0)
        return 2;
    if (!service_running()) {
        if (strcmp(cmd, "kill") == 0) {
            fprintf(stderr, "codebot sandbox kill: no such sandbox (sandboxd is not running)\n");
            return 1;
        }
        printf("sandboxd is not running (%s)\n", sbx_socket_path());
        return 0;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", cmd);
    if (strcmp(cmd, "kill") == 0)
        cJSON_AddStringToObject(req, strncmp(argv[2], "sb-", 3) == 0 ? "id" : "session", argv[2]);
    admin a = {.cmd = cmd, .status = 2};
    uv_loop_t *loop = uv_default_loop();
    int rc = sbx_request(loop, req, admin_reply, &a);
    cJSON_Delete(req);
    if (rc < 0) {
        fprintf(stderr, "codebot sandbox %s: %s\n", cmd, strerror(-rc));
        return 2;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    fflush(stdout);
    return a.status;
}

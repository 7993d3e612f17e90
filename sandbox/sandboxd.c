/* sandboxd — the service loop. Three kinds of objects: a conn per client connection, a
 * sandbox per session (with a FIFO of jobs: runs and file ops), and a kern per kernel
 * incarnation of a sandbox (its ctl socket and output pipes as uv handles). A kern is
 * detached from its sandbox when the kernel dies or is destroyed and freed when its handles
 * have closed, so that a sandbox can spawn the next kernel at once. A sandbox is freed when
 * its timer has closed; a conn when its pipe has closed. Jobs point to their conn and the
 * conn to its job; whichever goes first clears the other's pointer. */
#include "sandbox/sandboxd.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "sandbox/client.h"
#include "sandbox/jail.h"
#include "sandbox/linebuf.h"
#include "sandbox/outcap.h"

#define MOD "sandboxd"
#define MAX_LINE ((size_t)64 << 20)
#define READY_TIMEOUT_MS 30000
#define FILE_OP_TIMEOUT_MS 60000
#define SESSION_MAX 200
#define REQUEST_TIMEOUT_MS 10000 /* a client that connects says what it wants by then */
/* During the grace period SIGINT is repeated this often: a signal that reaches the kernel
 * between two cells (before the code started, or while it reports) is ignored there. */
#define RESIGNAL_MS 200
/* Output is sent at most this long after it was read, in as few events as possible. */
#define FLUSH_MS 20
#define FLUSH_BYTES 65536

typedef struct conn conn;
typedef struct job job;
typedef struct kern kern;
typedef struct sandbox sandbox;

enum job_kind { JOB_RUN, JOB_FILE };
enum timer_phase { T_NONE, T_READY, T_RUN, T_GRACE };

struct conn {
    uv_pipe_t h;
    conn *prev, *next;
    linebuf lb;
    job *job;
    int have_request, finishing, closing;
    unsigned writes;
    uint64_t accepted_ms;
};

struct job {
    job *next;
    enum job_kind kind;
    conn *c;
    sandbox *sb;
    char *line; /* for the kernel, newline-terminated */
    size_t line_len;
    int started;
    /* runs only */
    char lang[16];
    uint64_t timeout_ms;
    int id_mismatch; /* the client stored another sandbox id: its state is gone */
    uint64_t t0;
    const char *forced; /* "timeout", "interrupted" once SIGINT was sent */
    uint64_t grace_end; /* when the session is destroyed if the run has not ended */
    char *error_summary;
    outcap oc;
    strbuf pend; /* output text not yet sent, all of stream pend_stream */
    int pend_stream;
};

struct kern {
    sandbox *sb; /* NULL once detached */
    pid_t pid;
    uv_pipe_t ctl, out[2];
    int open_handles;
    linebuf lb;
    int ready, lost;
    int exit_signal, exit_code; /* from an "exit" line of the init, when it sends one */
    char fatal[200];            /* why its setup failed, from a "fatal" line */
    int reaped, wstatus;
};

struct sandbox {
    sandbox *next;
    char id[24];
    char *session;
    kern *k;
    uint64_t created_ms, used_ms;
    unsigned runs;
    int exec_count;
    int fresh; /* the kernel has not run anything yet */
    int dead;  /* destroyed, waiting for its timer to close */
    job *cur, *qhead, *qtail;
    uv_timer_t timer;
    enum timer_phase phase;
    uv_timer_t flush;
    int open_timers;
    /* CPU used while no run is active (see watch_idle_cpu) */
    uint64_t watch_ms, watch_cpu, busy_ms;
};

static struct {
    uv_loop_t *loop;
    uv_pipe_t server;
    uv_signal_t sigchld, sigterm, sigint;
    uv_timer_t sweep, zrestart;
    jail_zygote z;
    int z_up, z_failures;
    jail_limits limits;
    uint64_t timeout_ms, grace_ms, output_max, idle_ms, idle_cpu_ms;
    unsigned sock_mode;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int lock_fd, listening, stopping;
    int notify_fd; /* CODEBOT_SANDBOXD_NOTIFY_FD: told "ready" or "busy", then closed */
    sandbox *list;
    conn *conns;
} svc;

static void pump(sandbox *sb);
static void kern_detach(sandbox *sb);
static void conn_close(conn *c);

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* ---- configuration ---- */

static int env_u64(const char *name, uint64_t def, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s = getenv(name);
    *out = def;
    if (!s || !*s)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "codebot: %s must be a number from %llu to %llu, not '%s'\n", name,
                (unsigned long long)min, (unsigned long long)max, s);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int read_config(void)
{
    uint64_t idle_s, mode = 0600;
    const char *m = getenv("CODEBOT_SANDBOX_SOCKET_MODE");
    if (m && *m) {
        char *end;
        errno = 0;
        mode = strtoull(m, &end, 8);
        if (errno || *end || mode > 0777) {
            fprintf(stderr, "codebot: CODEBOT_SANDBOX_SOCKET_MODE must be octal like 0660\n");
            return -EINVAL;
        }
    }
    svc.sock_mode = (unsigned)mode;
    if (env_u64("CODEBOT_SANDBOX_TIMEOUT_MS", 120000, 1, 86400000, &svc.timeout_ms) ||
        env_u64("CODEBOT_SANDBOX_GRACE_MS", 3000, 1, 600000, &svc.grace_ms) ||
        env_u64("CODEBOT_SANDBOX_OUTPUT_MAX", 1 << 20, 1, (uint64_t)1 << 32, &svc.output_max) ||
        env_u64("CODEBOT_SANDBOX_IDLE_S", 1800, 1, 86400 * 365, &idle_s) ||
        env_u64("CODEBOT_SANDBOX_IDLE_CPU_S", 5, 1, 86400, &svc.idle_cpu_ms))
        return -EINVAL;
    svc.idle_ms = idle_s * 1000;
    svc.idle_cpu_ms *= 1000;
    return jail_limits_from_env(&svc.limits);
}

/* ---- connections ---- */

static void on_conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (c->prev)
        c->prev->next = c->next;
    else
        svc.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    linebuf_free(&c->lb);
    free(c);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->job) {
        c->job->c = NULL;
        c->job = NULL;
    }
    uv_close((uv_handle_t *)&c->h, on_conn_closed);
}

/* Closes once the answer is written out. */
static void conn_finish(conn *c)
{
    if (c->job) {
        c->job->c = NULL;
        c->job = NULL;
    }
    c->finishing = 1;
    if (!c->writes)
        conn_close(c);
}

static void job_client_gone(job *j);

/* A write that owns its bytes: libuv keeps only pointers until the callback. */
typedef struct owned_write {
    uv_write_t w;
    char *data;
} owned_write;

static int write_owned(uv_stream_t *s, char *data, size_t len, uv_write_cb cb, void *ud)
{
    owned_write *ow = malloc(sizeof(*ow));
    if (!ow) {
        free(data);
        return -ENOMEM;
    }
    ow->data = data;
    ow->w.data = ud;
    uv_buf_t buf = uv_buf_init(data, (unsigned)len);
    int rc = uv_write(&ow->w, s, &buf, 1, cb);
    if (rc < 0) {
        free(data);
        free(ow);
    }
    return rc;
}

static void *write_done(uv_write_t *w)
{
    owned_write *ow = (owned_write *)w;
    void *ud = w->data;
    free(ow->data);
    free(ow);
    return ud;
}

static void on_conn_written(uv_write_t *w, int status)
{
    conn *c = write_done(w);
    c->writes--;
    if (status < 0 && !c->closing) {
        if (c->job)
            job_client_gone(c->job);
        conn_close(c);
        return;
    }
    if (c->finishing && !c->writes)
        conn_close(c);
}

/* Takes DATA (malloc'd, LEN bytes) in every case. */
static void conn_send_owned(conn *c, char *data, size_t len)
{
    if (!c || c->closing) {
        free(data);
        return;
    }
    int rc = write_owned((uv_stream_t *)&c->h, data, len, on_conn_written, c);
    if (rc < 0) {
        if (c->job)
            job_client_gone(c->job);
        conn_close(c);
        return;
    }
    c->writes++;
}

static void conn_send_json(conn *c, const cJSON *obj)
{
    char *s = cJSON_PrintUnformatted(obj);
    if (!s)
        return;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    conn_send_owned(c, line, n + 1);
}

static void conn_fail(conn *c, const char *error)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 0);
    cJSON_AddStringToObject(o, "error", error);
    conn_send_json(c, o);
    cJSON_Delete(o);
    conn_finish(c);
}

static void conn_ok(conn *c)
{
    static const char ok[] = "{\"ok\":true}\n";
    char *s = strdup(ok);
    if (s)
        conn_send_owned(c, s, sizeof(ok) - 1);
    conn_finish(c);
}

/* ---- JSON text for output events, without a cJSON round trip ---- */

static int json_escape(strbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        if (strbuf_append(b, s + run, i - run))
            return -ENOMEM;
        char esc[7] = {'\\', 0};
        size_t el = 2;
        if (ch == '"' || ch == '\\')
            esc[1] = (char)ch;
        else if (ch == '\n')
            esc[1] = 'n';
        else if (ch == '\t')
            esc[1] = 't';
        else if (ch == '\r')
            esc[1] = 'r';
        else {
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            el = 6;
        }
        if (strbuf_append(b, esc, el))
            return -ENOMEM;
        run = i + 1;
    }
    return strbuf_append(b, s + run, n - run);
}

/* Sends the output held back for coalescing as one event. */
static void job_flush(job *j)
{
    uv_timer_stop(&j->sb->flush);
    if (!j->pend.len)
        return;
    strbuf b = {0};
    int rc = strbuf_puts(&b, j->pend_stream == 1 ? "{\"ev\":\"stdout\",\"text\":\""
                                                 : "{\"ev\":\"stderr\",\"text\":\"");
    if (rc == 0)
        rc = json_escape(&b, j->pend.data, j->pend.len);
    if (rc == 0)
        rc = strbuf_puts(&b, "\"}\n");
    strbuf_reset(&j->pend);
    if (rc) {
        strbuf_free(&b);
        return;
    }
    size_t n = b.len;
    conn_send_owned(j->c, strbuf_steal(&b), n);
}

static void on_flush_timer(uv_timer_t *t)
{
    sandbox *sb = t->data;
    if (sb->cur && sb->cur->kind == JOB_RUN)
        job_flush(sb->cur);
}

static void emit_output(void *ud, int stream, const char *text, size_t len)
{
    job *j = ud;
    if (!j->c)
        return;
    if (j->pend.len && j->pend_stream != stream)
        job_flush(j);
    j->pend_stream = stream;
    if (strbuf_append(&j->pend, text, len) < 0)
        return;
    if (j->pend.len >= FLUSH_BYTES)
        job_flush(j);
    else if (!uv_is_active((uv_handle_t *)&j->sb->flush))
        uv_timer_start(&j->sb->flush, on_flush_timer, FLUSH_MS, 0);
}

/* ---- jobs ---- */

static void job_free(job *j)
{
    if (j->c)
        j->c->job = NULL;
    if (j->kind == JOB_RUN)
        outcap_free(&j->oc);
    strbuf_free(&j->pend);
    free(j->line);
    free(j->error_summary);
    free(j);
}

static void queue_remove(sandbox *sb, job *j)
{
    job **pp = &sb->qhead;
    sb->qtail = NULL;
    while (*pp) {
        if (*pp == j)
            *pp = j->next;
        else {
            sb->qtail = *pp;
            pp = &(*pp)->next;
        }
    }
    j->next = NULL;
}

static void timer_set(sandbox *sb, enum timer_phase phase, uint64_t ms);

/* Ends the current run of SB (or a run that never started, SB->cur != J). */
static void run_end(job *j, int ok, const char *status, const char *message, int state_lost)
{
    sandbox *sb = j->sb;
    if (j->started) {
        outcap_finish(&j->oc);
        job_flush(j);
    }
    if (j->c) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "ev", "end");
        cJSON_AddBoolToObject(o, "ok", ok);
        cJSON_AddStringToObject(o, "status", status);
        cJSON_AddNumberToObject(o, "duration_ms", j->started ? (double)(now_ms() - j->t0) : 0);
        cJSON_AddNumberToObject(o, "execution_count", sb->exec_count);
        cJSON_AddBoolToObject(o, "state_lost", state_lost);
        cJSON_AddNumberToObject(o, "dropped_bytes", (double)j->oc.dropped);
        if (!ok && message)
            cJSON_AddStringToObject(o, "message", message);
        conn_send_json(j->c, o);
        cJSON_Delete(o);
        conn_finish(j->c);
    }
    if (sb->cur == j) {
        sb->cur = NULL;
        timer_set(sb, T_NONE, 0);
    }
    sb->used_ms = now_ms();
    if (ok)
        log_info(MOD, "%s run ok", sb->id);
    else
        log_info(MOD, "%s run %s: %s", sb->id, status, message ? message : "");
    job_free(j);
}

static void file_end(job *j, const cJSON *answer, const char *error)
{
    sandbox *sb = j->sb;
    if (j->c) {
        if (answer) {
            conn_send_json(j->c, answer);
            conn_finish(j->c);
        } else {
            conn_fail(j->c, error);
        }
    }
    if (sb->cur == j) {
        sb->cur = NULL;
        timer_set(sb, T_NONE, 0);
    }
    sb->used_ms = now_ms();
    job_free(j);
}

/* Ends job J, which is not running, with ERROR. */
static void job_abort(job *j, const char *error)
{
    if (j->kind == JOB_RUN)
        run_end(j, 0, "sandbox_error", error, 1);
    else
        file_end(j, NULL, error);
}

static void fail_queue(sandbox *sb, const char *error)
{
    while (sb->qhead) {
        job *j = sb->qhead;
        queue_remove(sb, j);
        job_abort(j, error);
    }
}

/* SIGINT to the session; if the run has not ended after the grace period, the session is
 * destroyed (timer phase T_GRACE). */
static void run_interrupt(job *j, const char *why)
{
    sandbox *sb = j->sb;
    if (j->forced)
        return;
    j->forced = why;
    j->grace_end = now_ms() + svc.grace_ms;
    if (sb->k && sb->k->pid > 0)
        kill(sb->k->pid, SIGINT);
    timer_set(sb, T_GRACE, svc.grace_ms < RESIGNAL_MS ? svc.grace_ms : RESIGNAL_MS);
}

static void job_client_gone(job *j)
{
    conn *c = j->c;
    if (c) {
        c->job = NULL;
        j->c = NULL;
    }
    if (j->started) {
        if (j->kind == JOB_RUN)
            run_interrupt(j, "interrupted");
        return;
    }
    queue_remove(j->sb, j);
    job_free(j);
}

/* ---- kernels ---- */

static void on_kern_handle_closed(uv_handle_t *h)
{
    kern *k = h->data;
    if (--k->open_handles == 0) {
        linebuf_free(&k->lb);
        free(k);
    }
}

/* Reads what the output pipes hold right now, so that output printed before a ctl event is
 * sent before it. */
static void drain_pipes(sandbox *sb)
{
    static char buf[65536];
    kern *k = sb->k;
    if (!k)
        return;
    for (int i = 0; i < 2; i++) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&k->out[i], &fd) < 0)
            continue;
        for (;;) {
            ssize_t n = read(fd, buf, sizeof(buf));
            if (n <= 0)
                break;
            if (sb->cur && sb->cur->kind == JOB_RUN && sb->cur->started)
                outcap_feed(&sb->cur->oc, i + 1, buf, (size_t)n);
        }
    }
}

static const char *signal_name(int sig)
{
    static char buf[32];
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(buf, sizeof(buf), "SIG%s", abbrev);
    else
        snprintf(buf, sizeof(buf), "signal %d", sig);
    return buf;
}

/* Why the kernel of SB ended, for a person; *STATUS gets "crashed" or "limit". */
static void death_reason(sandbox *sb, char *msg, size_t len, const char **status)
{
    kern *k = sb->k;
    int sig = k->exit_signal, code = k->exit_code;
    if (k->reaped && WIFSIGNALED(k->wstatus))
        sig = WTERMSIG(k->wstatus);
    else if (k->reaped && WIFEXITED(k->wstatus))
        code = WEXITSTATUS(k->wstatus);
    if (!sig && code > 128 && code < 128 + 65)
        sig = code - 128;
    *status = "crashed";
    if (k->fatal[0]) {
        snprintf(msg, len, "%s", k->fatal);
    } else if (jail_oom_killed(sb->id) == 1) {
        *status = "limit";
        snprintf(msg, len,
                 "out of memory (the sandbox may use %llu MiB); the kernel was "
                 "restarted and its state is lost",
                 (unsigned long long)(svc.limits.mem_bytes >> 20));
    } else if (sig == SIGXCPU || (sig == SIGKILL && k->exit_signal == SIGXCPU)) {
        *status = "limit";
        snprintf(msg, len,
                 "CPU time limit reached (%u s of CPU per process); the kernel was restarted "
                 "and its state is lost",
                 svc.limits.cpu_seconds);
    } else if (sig) {
        snprintf(msg, len, "the kernel died from %s (%s); its state is lost", signal_name(sig),
                 strsignal(sig));
    } else if (code) {
        snprintf(msg, len, "the kernel exited with status %d; its state is lost", code);
    } else {
        snprintf(msg, len, "the kernel exited; its state is lost");
    }
}

/* The kernel of SB ended on its own (EOF on ctl). */
static void kern_lost(sandbox *sb)
{
    kern *k = sb->k;
    if (k->lost)
        return;
    k->lost = 1;
    drain_pipes(sb);
    if (!k->reaped && k->pid > 0) {
        int st;
        if (waitpid(k->pid, &st, WNOHANG) == k->pid) {
            k->reaped = 1;
            k->wstatus = st;
        }
    }
    char msg[256];
    const char *status;
    death_reason(sb, msg, sizeof(msg), &status);
    int was_ready = k->ready;
    log_warn(MOD, "%s (session %s): %s", sb->id, sb->session, msg);
    kern_detach(sb);
    job *j = sb->cur;
    if (j && j->kind == JOB_RUN) {
        sb->exec_count++; /* the cell that died counted in the dead kernel */
        run_end(j, 0, status, msg, 1);
    } else if (j)
        file_end(j, NULL, msg);
    if (!was_ready) {
        char why[300];
        snprintf(why, sizeof(why), "the sandbox failed to start: %s", msg);
        fail_queue(sb, why);
    }
    pump(sb);
}

static void kern_send(sandbox *sb, const char *line, size_t len);

static void forward_event(job *j, cJSON *o, const char *ev)
{
    if (strcmp(ev, "error") == 0 && !j->error_summary) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(o, "value");
        strbuf b = {0};
        strbuf_printf(&b, "%s", cJSON_IsString(name) ? name->valuestring : "Error");
        if (cJSON_IsString(value) && value->valuestring[0])
            strbuf_printf(&b, ": %s", value->valuestring);
        j->error_summary = strbuf_steal(&b);
    }
    if (j->c)
        conn_send_json(j->c, o);
}

static void kern_end_run(sandbox *sb, job *j, const cJSON *o)
{
    int ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"));
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "execution_count");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "status");
    if (cJSON_IsNumber(n))
        sb->exec_count = n->valueint;
    const char *status = ok ? "ok" : "error";
    if (!ok && j->forced)
        status = j->forced;
    else if (!ok && cJSON_IsString(st) && strcmp(st->valuestring, "limit") == 0)
        status = "limit";
    char msg[300];
    if (strcmp(status, "timeout") == 0)
        snprintf(msg, sizeof(msg),
                 "timed out after %.3g s and was interrupted; the session's state is kept",
                 (double)j->timeout_ms / 1000);
    else if (strcmp(status, "interrupted") == 0)
        snprintf(msg, sizeof(msg), "interrupted; the session's state is kept");
    else if (j->error_summary)
        snprintf(msg, sizeof(msg), "%s", j->error_summary);
    else
        snprintf(msg, sizeof(msg), "the code failed");
    run_end(j, ok, status, msg, 0);
}

static void kern_line(sandbox *sb, char *line, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(o)) {
        log_warn(MOD, "%s: ignoring a malformed line from the kernel", sb->id);
        cJSON_Delete(o);
        return;
    }
    const cJSON *evj = cJSON_GetObjectItemCaseSensitive(o, "ev");
    const char *ev = cJSON_IsString(evj) ? evj->valuestring : NULL;
    job *j = sb->cur;
    kern *k = sb->k;
    if (!ev) {
        if (j && j->kind == JOB_FILE && j->started)
            file_end(j, o, NULL);
    } else if (strcmp(ev, "ready") == 0 && !k->ready) {
        k->ready = 1;
        if (sb->phase == T_READY)
            timer_set(sb, T_NONE, 0);
        log_info(MOD, "%s (session %s): kernel %d ready", sb->id, sb->session, (int)k->pid);
    } else if (strcmp(ev, "fatal") == 0) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
        snprintf(k->fatal, sizeof(k->fatal), "%s", cJSON_IsString(e) ? e->valuestring : "?");
        log_error(MOD, "%s: kernel setup failed: %s", sb->id, k->fatal);
    } else if (strcmp(ev, "exit") == 0) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "signal");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "code");
        k->exit_signal = cJSON_IsNumber(s) ? s->valueint : 0;
        k->exit_code = cJSON_IsNumber(c) ? c->valueint : 0;
    } else if (j && j->kind == JOB_RUN && j->started) {
        drain_pipes(sb);
        job_flush(j);
        if (strcmp(ev, "end") == 0)
            kern_end_run(sb, j, o);
        else if (strcmp(ev, "result") == 0 || strcmp(ev, "file") == 0 || strcmp(ev, "error") == 0)
            forward_event(j, o, ev);
    }
    cJSON_Delete(o);
    pump(sb);
}

static void alloc_buf(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char space[65536];
    buf->base = space;
    buf->len = sizeof(space);
}

/* Tells the run about kernel events too big for a line (more than 64 MiB), dropped. */
static void note_skipped(sandbox *sb, kern *k, size_t before)
{
    if (k->lb.skipped == before)
        return;
    log_warn(MOD, "%s: dropped %zu oversized line(s) from the kernel", sb->id,
             k->lb.skipped - before);
    job *j = sb->cur;
    if (j && j->kind == JOB_RUN && j->started) {
        static const char note[] = "\n[an event larger than 64 MiB from the kernel was dropped]\n";
        outcap_feed(&j->oc, 2, note, sizeof(note) - 1);
    }
}

static void on_ctl_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    kern *k = s->data;
    sandbox *sb = k->sb;
    if (!sb || nread == 0)
        return;
    if (nread < 0) {
        uv_read_stop(s);
        kern_lost(sb);
        return;
    }
    size_t skipped = k->lb.skipped;
    if (linebuf_feed(&k->lb, buf->base, (size_t)nread) < 0) {
        log_error(MOD, "%s: out of memory reading the kernel; destroying it", sb->id);
        kern_lost(sb);
        return;
    }
    char *line;
    size_t len;
    while (k->sb == sb && sb->k == k && linebuf_next(&k->lb, &line, &len) == 1) {
        note_skipped(sb, k, skipped);
        skipped = k->lb.skipped;
        kern_line(sb, line, len);
    }
    if (k->sb == sb && sb->k == k)
        note_skipped(sb, k, skipped);
}

static void on_out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    kern *k = s->data;
    sandbox *sb = k->sb;
    if (nread < 0) {
        uv_read_stop(s);
        return;
    }
    if (!sb || nread == 0)
        return;
    job *j = sb->cur;
    if (j && j->kind == JOB_RUN && j->started)
        outcap_feed(&j->oc, s == (uv_stream_t *)&k->out[0] ? 1 : 2, buf->base, (size_t)nread);
}

static void on_kern_written(uv_write_t *w, int status)
{
    write_done(w);
}

static void kern_send(sandbox *sb, const char *line, size_t len)
{
    char *copy = malloc(len);
    if (!copy)
        return;
    memcpy(copy, line, len);
    write_owned((uv_stream_t *)&sb->k->ctl, copy, len, on_kern_written, NULL);
}

/* Kills the kernel of SB and forgets it; the sandbox stays and spawns a fresh one on the
 * next job. */
static void kern_detach(sandbox *sb)
{
    kern *k = sb->k;
    if (!k)
        return;
    int rc = jail_destroy(sb->id, k->pid);
    if (rc < 0)
        log_error(MOD, "%s: destroying the session failed: %s", sb->id, strerror(-rc));
    sb->k = NULL;
    k->sb = NULL;
    if (sb->phase == T_READY)
        timer_set(sb, T_NONE, 0);
    uv_close((uv_handle_t *)&k->ctl, on_kern_handle_closed);
    uv_close((uv_handle_t *)&k->out[0], on_kern_handle_closed);
    uv_close((uv_handle_t *)&k->out[1], on_kern_handle_closed);
}

static int zygote_start(void);

static int kern_open(sandbox *sb, int ctl, int out, int err, pid_t pid)
{
    kern *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->sb = sb;
    k->pid = pid;
    linebuf_init(&k->lb, MAX_LINE);
    k->lb.skip_long = 1; /* a huge event is dropped, not the session */
    uv_pipe_t *hs[3] = {&k->ctl, &k->out[0], &k->out[1]};
    int fds[3] = {ctl, out, err};
    for (int i = 0; i < 3; i++) {
        uv_pipe_init(svc.loop, hs[i], 0);
        hs[i]->data = k;
        k->open_handles++;
        uv_pipe_open(hs[i], fds[i]);
    }
    sb->k = k;
    uv_read_start((uv_stream_t *)&k->ctl, alloc_buf, on_ctl_read);
    uv_read_start((uv_stream_t *)&k->out[0], alloc_buf, on_out_read);
    uv_read_start((uv_stream_t *)&k->out[1], alloc_buf, on_out_read);
    return 0;
}

static int zygote_gone(int rc)
{
    return rc == -ECONNRESET || rc == -EPIPE || rc == -ENOTCONN || rc == -ECONNREFUSED;
}

static int kern_spawn(sandbox *sb)
{
    if (!svc.z_up) {
        int rc = zygote_start();
        if (rc < 0)
            return rc;
    }
    int sv[2], po[2], pe[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    if (pipe2(po, O_CLOEXEC) < 0) {
        int e = -errno;
        close(sv[0]);
        close(sv[1]);
        return e;
    }
    if (pipe2(pe, O_CLOEXEC) < 0) {
        int e = -errno;
        close(sv[0]);
        close(sv[1]);
        close(po[0]);
        close(po[1]);
        return e;
    }
    int fds[3] = {sv[1], po[1], pe[1]};
    pid_t pid = 0;
    int rc = jail_spawn(&svc.z, sb->id, &svc.limits, fds, &pid);
    if (zygote_gone(rc)) {
        /* died, and its SIGCHLD is not handled yet: replace it now and try once more */
        log_error(MOD, "the zygote did not answer (%s); restarting it", strerror(-rc));
        svc.z_up = 0;
        jail_zygote_stop(&svc.z);
        rc = zygote_start();
        if (rc == 0)
            rc = jail_spawn(&svc.z, sb->id, &svc.limits, fds, &pid);
    }
    close(sv[1]);
    close(po[1]);
    close(pe[1]);
    if (rc == 0)
        rc = kern_open(sb, sv[0], po[0], pe[0], pid);
    if (rc < 0) {
        if (pid > 0)
            jail_destroy(sb->id, pid);
        close(sv[0]);
        close(po[0]);
        close(pe[0]);
        return rc;
    }
    sb->fresh = 1;
    timer_set(sb, T_READY, READY_TIMEOUT_MS);
    log_info(MOD, "%s (session %s): spawned kernel %d", sb->id, sb->session, (int)pid);
    return 0;
}

/* ---- sandboxes ---- */

static void job_begin(sandbox *sb, job *j)
{
    sb->cur = j;
    j->started = 1;
    sb->used_ms = now_ms();
    if (j->kind == JOB_FILE) {
        timer_set(sb, T_RUN, FILE_OP_TIMEOUT_MS);
        kern_send(sb, j->line, j->line_len);
        return;
    }
    j->t0 = now_ms();
    sb->runs++;
    int is_new = sb->fresh || j->id_mismatch;
    sb->fresh = 0;
    outcap_init(&j->oc, svc.output_max, emit_output, j);
    if (j->c) {
        strbuf b = {0};
        strbuf_printf(&b, "{\"ev\":\"start\",\"sandbox\":\"%s\",\"new\":%s,\"lang\":\"%s\"}\n",
                      sb->id, is_new ? "true" : "false", j->lang);
        size_t n = b.len;
        char *s = strbuf_steal(&b);
        if (s)
            conn_send_owned(j->c, s, n);
    }
    timer_set(sb, T_RUN, j->timeout_ms);
    kern_send(sb, j->line, j->line_len);
}

static void pump(sandbox *sb)
{
    if (svc.stopping || sb->dead || sb->cur || !sb->qhead)
        return;
    if (!sb->k) {
        int rc = kern_spawn(sb);
        if (rc < 0) {
            char msg[200];
            snprintf(msg, sizeof(msg), "could not start a sandbox: %s", strerror(-rc));
            log_error(MOD, "%s: %s", sb->id, msg);
            fail_queue(sb, msg);
        }
        return;
    }
    if (!sb->k->ready || sb->k->lost)
        return;
    job *j = sb->qhead;
    queue_remove(sb, j);
    job_begin(sb, j);
}

static void on_sb_timer_closed(uv_handle_t *h)
{
    sandbox *sb = h->data;
    if (--sb->open_timers)
        return;
    free(sb->session);
    free(sb);
}

static void sandbox_destroy(sandbox *sb, const char *why)
{
    sandbox **pp = &svc.list;
    while (*pp && *pp != sb)
        pp = &(*pp)->next;
    if (*pp)
        *pp = sb->next;
    sb->dead = 1;
    char msg[200];
    snprintf(msg, sizeof(msg), "the sandbox was %s", why);
    job *j = sb->cur;
    kern_detach(sb);
    if (j && j->kind == JOB_RUN)
        run_end(j, 0, "killed", msg, 1);
    else if (j)
        file_end(j, NULL, msg);
    fail_queue(sb, msg);
    log_info(MOD, "%s (session %s): destroyed (%s)", sb->id, sb->session, why);
    uv_close((uv_handle_t *)&sb->timer, on_sb_timer_closed);
    uv_close((uv_handle_t *)&sb->flush, on_sb_timer_closed);
}

static sandbox *find_session(const char *session)
{
    for (sandbox *sb = svc.list; sb; sb = sb->next)
        if (strcmp(sb->session, session) == 0)
            return sb;
    return NULL;
}

static sandbox *find_id(const char *id)
{
    for (sandbox *sb = svc.list; sb; sb = sb->next)
        if (strcmp(sb->id, id) == 0)
            return sb;
    return NULL;
}

static void on_sb_timer(uv_timer_t *t);

static sandbox *sandbox_new(const char *session)
{
    sandbox *sb = calloc(1, sizeof(*sb));
    if (!sb)
        return NULL;
    sb->session = strdup(session);
    unsigned long long r = 0;
    if (!sb->session || getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        free(sb->session);
        free(sb);
        return NULL;
    }
    snprintf(sb->id, sizeof(sb->id), "sb-%016llx", r);
    sb->created_ms = sb->used_ms = now_ms();
    uv_timer_init(svc.loop, &sb->timer);
    uv_timer_init(svc.loop, &sb->flush);
    sb->timer.data = sb;
    sb->flush.data = sb;
    sb->open_timers = 2;
    sb->next = svc.list;
    svc.list = sb;
    return sb;
}

static void timer_set(sandbox *sb, enum timer_phase phase, uint64_t ms)
{
    sb->phase = phase;
    if (phase == T_NONE)
        uv_timer_stop(&sb->timer);
    else
        uv_timer_start(&sb->timer, on_sb_timer, ms, 0);
}

static void on_sb_timer(uv_timer_t *t)
{
    sandbox *sb = t->data;
    enum timer_phase phase = sb->phase;
    sb->phase = T_NONE;
    job *j = sb->cur;
    if (phase == T_READY) {
        log_error(MOD, "%s: the kernel did not get ready in time", sb->id);
        kern_detach(sb);
        fail_queue(sb, "the sandbox did not start in time");
    } else if (phase == T_RUN && j && j->kind == JOB_RUN) {
        run_interrupt(j, "timeout");
    } else if (phase == T_RUN && j) {
        kern_detach(sb);
        file_end(j, NULL, "the sandbox did not answer; it was restarted");
    } else if (phase == T_GRACE && j && j->kind == JOB_RUN && now_ms() < j->grace_end) {
        uint64_t left = j->grace_end - now_ms();
        if (sb->k && sb->k->pid > 0)
            kill(sb->k->pid, SIGINT);
        timer_set(sb, T_GRACE, left < RESIGNAL_MS ? left : RESIGNAL_MS);
        return;
    } else if (phase == T_GRACE && j && j->kind == JOB_RUN) {
        kern_detach(sb);
        sb->exec_count++;
        run_end(j, 0, "killed",
                "the code did not stop after an interrupt; the kernel was restarted and its "
                "state is lost",
                1);
    }
    pump(sb);
}

/* Code in a sandbox can keep working after its run ended: background processes, threads,
 * or code that wrote a forged "end" to its kernel's channel (it runs in the kernel's process
 * and can always speak for it) to escape the wall timeout. No run is active, so nothing
 * else bounds it: a sandbox that keeps a CPU busy for idle_cpu_ms while idle is destroyed.
 * 1 when SB was destroyed. */
static int watch_idle_cpu(sandbox *sb, uint64_t now)
{
    uint64_t mem, cpu;
    if (sb->cur || sb->qhead || !sb->k || !sb->k->ready || jail_stats(sb->id, &mem, &cpu) < 0) {
        sb->watch_ms = sb->busy_ms = 0;
        return 0;
    }
    if (sb->watch_ms && now > sb->watch_ms) {
        /* On a loaded host a spinning process gets far less than a CPU: a quarter counts as
         * busy; only below a tenth is the sandbox idle again. */
        uint64_t wall = now - sb->watch_ms, used = cpu >= sb->watch_cpu ? cpu - sb->watch_cpu : 0;
        if (used * 4 >= wall)
            sb->busy_ms += wall;
        else if (used * 10 < wall)
            sb->busy_ms = 0;
    }
    sb->watch_ms = now;
    sb->watch_cpu = cpu;
    if (sb->busy_ms < svc.idle_cpu_ms)
        return 0;
    log_warn(MOD, "%s (session %s): busy for %llu ms with no run active", sb->id, sb->session,
             (unsigned long long)sb->busy_ms);
    sandbox_destroy(sb, "stopped: its code kept running after its run had ended");
    return 1;
}

static void sweep_idle(uv_timer_t *t)
{
    uint64_t now = now_ms();
    for (conn *c = svc.conns; c; c = c->next)
        if (!c->have_request && !c->closing && now - c->accepted_ms >= REQUEST_TIMEOUT_MS)
            conn_close(c);
    sandbox *next;
    for (sandbox *sb = svc.list; sb; sb = next) {
        next = sb->next;
        if (!sb->cur && !sb->qhead && now - sb->used_ms >= svc.idle_ms)
            sandbox_destroy(sb, "idle");
        else
            watch_idle_cpu(sb, now);
    }
}

/* ---- requests ---- */

static const char *get_str(const cJSON *req, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int valid_session(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= SESSION_MAX;
}

static job *job_new(conn *c, sandbox *sb, enum job_kind kind, cJSON *kreq)
{
    job *j = calloc(1, sizeof(*j));
    char *s = kreq ? cJSON_PrintUnformatted(kreq) : NULL;
    if (!j || !s) {
        free(j);
        free(s);
        return NULL;
    }
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        free(j);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    j->line = line;
    j->line_len = n + 1;
    j->kind = kind;
    j->sb = sb;
    j->c = c;
    c->job = j;
    if (sb->qtail)
        sb->qtail->next = j;
    else
        sb->qhead = j;
    sb->qtail = j;
    return j;
}

static void req_run(conn *c, const cJSON *req)
{
    const char *session = get_str(req, "session");
    const char *code = get_str(req, "code");
    const char *lang = get_str(req, "lang");
    const char *sbid = get_str(req, "sandbox");
    const cJSON *tmo = cJSON_GetObjectItemCaseSensitive(req, "timeout_ms");
    if (!valid_session(session))
        return conn_fail(c, "run needs a session name of 1 to 200 bytes");
    if (!code)
        return conn_fail(c, "run needs the code as a string");
    if (!lang)
        lang = "python";
    if (strcmp(lang, "python") != 0 && strcmp(lang, "bash") != 0 && strcmp(lang, "javascript") != 0)
        return conn_fail(c, "unknown language: use python, bash or javascript");
    uint64_t timeout = svc.timeout_ms;
    if (tmo && !cJSON_IsNull(tmo)) {
        if (!cJSON_IsNumber(tmo) || tmo->valuedouble < 1 || tmo->valuedouble > 86400000.0)
            return conn_fail(c, "timeout_ms must be a number of milliseconds from 1 to 86400000");
        timeout = (uint64_t)tmo->valuedouble;
    }
    sandbox *sb = find_session(session);
    if (!sb && !(sb = sandbox_new(session)))
        return conn_fail(c, "out of memory");
    cJSON *kreq = cJSON_CreateObject();
    cJSON_AddStringToObject(kreq, "op", "run");
    cJSON_AddStringToObject(kreq, "lang", lang);
    cJSON_AddStringToObject(kreq, "code", code);
    job *j = job_new(c, sb, JOB_RUN, kreq);
    cJSON_Delete(kreq);
    if (!j)
        return conn_fail(c, "out of memory");
    snprintf(j->lang, sizeof(j->lang), "%s", lang);
    j->timeout_ms = timeout;
    j->id_mismatch = sbid && strcmp(sbid, sb->id) != 0;
    pump(sb);
}

static int valid_path(const char *p)
{
    if (!p || !*p || p[0] == '/' || strlen(p) > 4096)
        return 0;
    for (const char *s = p; *s;) {
        size_t n = strcspn(s, "/");
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return 0;
        s += n;
        if (*s == '/')
            s++;
    }
    return 1;
}

static void req_file(conn *c, const cJSON *req, const char *op)
{
    const char *session = get_str(req, "session");
    const char *path = get_str(req, "path");
    const char *data = get_str(req, "data");
    int put = strcmp(op, "put_file") == 0, list = strcmp(op, "list_files") == 0;
    if (!valid_session(session))
        return conn_fail(c, "a session name of 1 to 200 bytes is needed");
    if (!list && !valid_path(path))
        return conn_fail(c, "path must be relative to the working dir, without '..'");
    if (put && !data)
        return conn_fail(c, "put_file needs data (base64)");
    sandbox *sb = find_session(session);
    if (!sb && !put)
        return conn_fail(c, "no such session");
    if (!sb && !(sb = sandbox_new(session)))
        return conn_fail(c, "out of memory");
    cJSON *kreq = cJSON_CreateObject();
    cJSON_AddStringToObject(kreq, "op", op);
    if (!list)
        cJSON_AddStringToObject(kreq, "path", path);
    if (put)
        cJSON_AddStringToObject(kreq, "data", data);
    job *j = job_new(c, sb, JOB_FILE, kreq);
    cJSON_Delete(kreq);
    if (!j)
        return conn_fail(c, "out of memory");
    pump(sb);
}

static const char *sandbox_state(const sandbox *sb)
{
    if (!sb->k)
        return "stopped";
    if (!sb->k->ready)
        return "starting";
    return sb->cur ? "running" : "idle";
}

static void req_list(conn *c, int with_totals)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    cJSON *arr = cJSON_AddArrayToObject(o, "sandboxes");
    uint64_t now = now_ms(), tmem = 0, tcpu = 0;
    unsigned n = 0;
    for (sandbox *sb = svc.list; sb; sb = sb->next) {
        uint64_t mem = 0, cpu = 0;
        if (sb->k && jail_stats(sb->id, &mem, &cpu) < 0)
            mem = cpu = 0;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", sb->id);
        cJSON_AddStringToObject(e, "session", sb->session);
        cJSON_AddNumberToObject(e, "pid", sb->k ? sb->k->pid : 0);
        cJSON_AddNumberToObject(e, "age_s", (double)((now - sb->created_ms) / 1000));
        cJSON_AddNumberToObject(e, "idle_s", sb->cur ? 0 : (double)((now - sb->used_ms) / 1000));
        cJSON_AddNumberToObject(e, "mem_bytes", (double)mem);
        cJSON_AddNumberToObject(e, "cpu_ms", (double)cpu);
        cJSON_AddNumberToObject(e, "runs", sb->runs);
        cJSON_AddStringToObject(e, "state", sandbox_state(sb));
        cJSON_AddItemToArray(arr, e);
        tmem += mem;
        tcpu += cpu;
        n++;
    }
    if (with_totals) {
        cJSON *t = cJSON_AddObjectToObject(o, "totals");
        cJSON_AddNumberToObject(t, "sandboxes", n);
        cJSON_AddNumberToObject(t, "mem_bytes", (double)tmem);
        cJSON_AddNumberToObject(t, "cpu_ms", (double)tcpu);
    }
    conn_send_json(c, o);
    cJSON_Delete(o);
    conn_finish(c);
}

static void req_kill(conn *c, const cJSON *req)
{
    const char *id = get_str(req, "id");
    const char *session = get_str(req, "session");
    sandbox *sb = id ? find_id(id) : session ? find_session(session) : NULL;
    if (!sb && id && !session)
        sb = find_session(id);
    if (!sb)
        return conn_fail(c, "no such sandbox");
    sandbox_destroy(sb, "killed");
    conn_ok(c);
}

static void req_interrupt(conn *c, const cJSON *req)
{
    const char *session = get_str(req, "session");
    if (!valid_session(session))
        return conn_fail(c, "interrupt needs a session");
    sandbox *sb = find_session(session);
    int running = sb && sb->cur && sb->cur->kind == JOB_RUN;
    if (running)
        run_interrupt(sb->cur, "interrupted");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    cJSON_AddBoolToObject(o, "running", running);
    conn_send_json(c, o);
    cJSON_Delete(o);
    conn_finish(c);
}

static void service_stop(void);

static void handle_request(conn *c, const char *line, size_t len)
{
    cJSON *req = cJSON_ParseWithLength(line, len);
    const char *op = cJSON_IsObject(req) ? get_str(req, "op") : NULL;
    if (!cJSON_IsObject(req))
        conn_fail(c, "malformed request: expected one JSON object");
    else if (!op)
        conn_fail(c, "malformed request: no op");
    else if (strcmp(op, "ping") == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", 1);
        cJSON_AddStringToObject(o, "version", CODEBOT_VERSION);
        conn_send_json(c, o);
        cJSON_Delete(o);
        conn_finish(c);
    } else if (strcmp(op, "run") == 0)
        req_run(c, req);
    else if (strcmp(op, "interrupt") == 0)
        req_interrupt(c, req);
    else if (strcmp(op, "ls") == 0 || strcmp(op, "stats") == 0)
        req_list(c, op[0] == 's');
    else if (strcmp(op, "kill") == 0)
        req_kill(c, req);
    else if (strcmp(op, "put_file") == 0 || strcmp(op, "get_file") == 0 ||
             strcmp(op, "list_files") == 0)
        req_file(c, req, op);
    else if (strcmp(op, "shutdown") == 0) {
        log_info(MOD, "shutdown requested");
        /* answered once the socket is gone and every sandbox destroyed, so that the next
         * client never reaches this service */
        c->finishing = 1;
        service_stop();
        conn_ok(c);
    } else
        conn_fail(c, "unknown op");
    cJSON_Delete(req);
}

static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        uv_read_stop(s);
        job *j = c->job;
        if (j && nread == UV_EOF && j->kind == JOB_RUN && j->started) {
            /* half-closed: the client still reads the end of the interrupted run */
            run_interrupt(j, "interrupted");
        } else if (j) {
            job_client_gone(j);
            conn_close(c);
        } else if (!c->finishing) {
            conn_close(c);
        }
        return;
    }
    if (c->have_request)
        return;
    if (linebuf_feed(&c->lb, buf->base, (size_t)nread) < 0) {
        c->have_request = 1;
        return conn_fail(c, "request line too long");
    }
    char *line;
    size_t len;
    int rc = linebuf_next(&c->lb, &line, &len);
    if (rc == 0)
        return;
    c->have_request = 1;
    if (rc < 0)
        return conn_fail(c, "request line too long");
    handle_request(c, line, len);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    uv_pipe_init(svc.loop, &c->h, 0);
    c->h.data = c;
    c->accepted_ms = now_ms();
    linebuf_init(&c->lb, MAX_LINE);
    c->next = svc.conns;
    if (svc.conns)
        svc.conns->prev = c;
    svc.conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->h) < 0 || svc.stopping) {
        conn_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->h, alloc_buf, on_conn_read);
}

/* ---- process: zygote, children, signals ---- */

static int zygote_start(void)
{
    int rc = jail_zygote_start(&svc.z);
    if (rc < 0) {
        log_error(MOD, "cannot start the zygote: %s", strerror(-rc));
        return rc;
    }
    svc.z_up = 1;
    log_info(MOD, "zygote %d ready", (int)svc.z.pid);
    return 0;
}

static void on_zygote_restart(uv_timer_t *t)
{
    if (svc.z_up || svc.stopping)
        return;
    if (zygote_start() == 0) {
        svc.z_failures = 0;
        return;
    }
    unsigned delay = 1000u << (svc.z_failures < 5 ? svc.z_failures : 5);
    svc.z_failures++;
    uv_timer_start(&svc.zrestart, on_zygote_restart, delay, 0);
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (svc.z_up && pid == svc.z.pid) {
            log_error(MOD, "zygote %d died (status 0x%x); restarting it", (int)pid, st);
            svc.z_up = 0;
            jail_zygote_stop(&svc.z);
            if (!svc.stopping)
                uv_timer_start(&svc.zrestart, on_zygote_restart, 0, 0);
            continue;
        }
        for (sandbox *sb = svc.list; sb; sb = sb->next) {
            if (sb->k && sb->k->pid == pid) {
                sb->k->reaped = 1;
                sb->k->wstatus = st;
            }
        }
    }
}

static void on_close_noop(uv_handle_t *h) {}

static void service_stop(void)
{
    if (svc.stopping)
        return;
    svc.stopping = 1;
    /* New clients start a new service at once; it waits for our lock. */
    if (svc.listening) {
        unlink(svc.path);
        uv_close((uv_handle_t *)&svc.server, on_close_noop);
        svc.listening = 0;
    }
    while (svc.list)
        sandbox_destroy(svc.list, "shut down");
    if (svc.z_up) {
        svc.z_up = 0;
        jail_zygote_stop(&svc.z);
    }
    uv_close((uv_handle_t *)&svc.sigchld, on_close_noop);
    uv_close((uv_handle_t *)&svc.sigterm, on_close_noop);
    uv_close((uv_handle_t *)&svc.sigint, on_close_noop);
    uv_close((uv_handle_t *)&svc.sweep, on_close_noop);
    uv_close((uv_handle_t *)&svc.zrestart, on_close_noop);
    for (conn *c = svc.conns; c; c = c->next)
        if (!c->finishing)
            conn_close(c);
}

static void on_term(uv_signal_t *h, int signum)
{
    log_info(MOD, "%s: destroying every sandbox and exiting", strsignal(signum));
    service_stop();
}

/* ---- start ---- */

static int mkdirs_for(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int socket_answers(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* 1 with the lock held, 0 when another live service owns the socket, -errno. The lock
 * (a file next to the socket) lets two services started at once settle who serves. */
static int take_lock(void)
{
    char lock[PATH_MAX];
    snprintf(lock, sizeof(lock), "%s.lock", svc.path);
    svc.lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (svc.lock_fd < 0)
        return -errno;
    for (int i = 0; i < 200; i++) {
        if (flock(svc.lock_fd, LOCK_EX | LOCK_NB) == 0)
            return 1;
        if (socket_answers(svc.path))
            break;
        usleep(50000);
    }
    close(svc.lock_fd);
    svc.lock_fd = -1;
    return 0;
}

static int start_listening(void)
{
    unlink(svc.path);
    uv_pipe_init(svc.loop, &svc.server, 0);
    mode_t old = umask(0177);
    int rc = uv_pipe_bind(&svc.server, svc.path);
    umask(old);
    if (rc == 0 && chmod(svc.path, svc.sock_mode) < 0)
        rc = -errno;
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&svc.server, 128, on_connection);
    if (rc < 0) {
        log_error(MOD, "cannot listen on %s: %s", svc.path, uv_strerror(rc));
        uv_close((uv_handle_t *)&svc.server, NULL);
        return rc;
    }
    svc.listening = 1;
    return 0;
}

static int service_init(void)
{
    char why[256] = "";
    if (!jail_supported(why, sizeof(why))) {
        log_error(MOD, "cannot build sandboxes here: %s", why);
        return -ENOTSUP;
    }
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max; /* three descriptors per sandbox, one per client */
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        log_warn(MOD, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    uv_signal_init(svc.loop, &svc.sigchld);
    uv_signal_start(&svc.sigchld, on_sigchld, SIGCHLD);
    uv_signal_init(svc.loop, &svc.sigterm);
    uv_signal_start(&svc.sigterm, on_term, SIGTERM);
    uv_signal_init(svc.loop, &svc.sigint);
    uv_signal_start(&svc.sigint, on_term, SIGINT);
    uv_timer_init(svc.loop, &svc.zrestart);
    uv_timer_init(svc.loop, &svc.sweep);
    uint64_t every = svc.idle_ms / 4 < 1000 ? (svc.idle_ms / 4 ? svc.idle_ms / 4 : 1) : 1000;
    uv_timer_start(&svc.sweep, sweep_idle, every, every);
    int rc = zygote_start();
    if (rc < 0)
        return rc;
    return start_listening();
}

/* The client that started us waits on this fd (see client.c). */
static void notify(const char *word)
{
    if (svc.notify_fd < 0)
        return;
    if (word && write(svc.notify_fd, word, strlen(word)) < 0)
        log_warn(MOD, "cannot notify the starter: %s", strerror(errno));
    close(svc.notify_fd);
    svc.notify_fd = -1;
}

static void notify_init(void)
{
    const char *s = getenv("CODEBOT_SANDBOXD_NOTIFY_FD");
    char *end;
    svc.notify_fd = -1;
    if (!s || !*s)
        return;
    long fd = strtol(s, &end, 10);
    unsetenv("CODEBOT_SANDBOXD_NOTIFY_FD");
    if (*end || fd < 3 || fd > 1024 || fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0)
        return;
    svc.notify_fd = (int)fd;
}

int sandboxd_main(void)
{
    notify_init();
    if (log_init() < 0 || read_config() < 0) {
        notify(NULL);
        return 1;
    }
    snprintf(svc.path, sizeof(svc.path), "%s", sbx_socket_path());
    int rc = mkdirs_for(svc.path);
    if (rc < 0) {
        log_error(MOD, "cannot create the directory of %s: %s", svc.path, strerror(-rc));
        notify(NULL);
        return 1;
    }
    rc = take_lock();
    if (rc <= 0) {
        if (rc == 0)
            log_info(MOD, "another sandboxd serves %s", svc.path);
        else
            log_error(MOD, "cannot lock %s.lock: %s", svc.path, strerror(-rc));
        notify(rc == 0 ? "busy\n" : NULL);
        return rc == 0 ? 0 : 1;
    }
    svc.loop = uv_default_loop();
    if (service_init() < 0) {
        notify(NULL);
        service_stop();
        uv_run(svc.loop, UV_RUN_DEFAULT);
        return 1;
    }
    log_info(MOD, "serving %s (pid %d)", svc.path, (int)getpid());
    notify("ready\n");
    uv_run(svc.loop, UV_RUN_DEFAULT);
    uv_loop_close(svc.loop);
    close(svc.lock_fd);
    log_info(MOD, "stopped");
    log_close();
    return 0;
}

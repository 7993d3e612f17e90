/* Unit tests for sandbox/client: against a fake sandboxd on the same loop that answers with
 * scripted chunks (split anywhere, with pauses), closes early, or waits for the half-close
 * of a cancelled run. */
#include "tests/unit/check.h"

#include <errno.h>
#include <stdlib.h>
#include <uv.h>

#include "common/strbuf.h"
#include "sandbox/client.h"

/* ---- the fake service ---- */

typedef struct fake {
    uv_pipe_t server, peer;
    uv_timer_t timer;
    strbuf request;
    const char *const *chunks; /* written one per timer tick after the request line */
    int next;
    int close_after; /* close the connection after the chunks */
    int wait_eof;    /* write the chunks only after the client's half-close */
    int got_eof;
    int writing; /* writes not yet completed: closing would cancel them */
} fake;

static fake F;

static void fake_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    static char buf[65536];
    b->base = buf;
    b->len = sizeof(buf);
}

static void fake_written(uv_write_t *w, int status)
{
    F.writing--;
    free(w);
}

static void fake_write(const char *s)
{
    uv_write_t *w = malloc(sizeof(*w));
    uv_buf_t b = uv_buf_init((char *)s, (unsigned)strlen(s));
    CHECK(uv_write(w, (uv_stream_t *)&F.peer, &b, 1, fake_written) == 0);
    F.writing++;
}

static void fake_tick(uv_timer_t *t)
{
    if (F.chunks && F.chunks[F.next]) {
        fake_write(F.chunks[F.next++]);
        return;
    }
    if (F.writing)
        return;
    uv_timer_stop(t);
    if (F.close_after)
        uv_close((uv_handle_t *)&F.peer, NULL);
}

static void fake_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n > 0) {
        strbuf_append(&F.request, b->base, (size_t)n);
        if (!F.wait_eof && memchr(b->base, '\n', (size_t)n))
            uv_timer_start(&F.timer, fake_tick, 5, 5);
    } else if (n < 0) {
        F.got_eof = 1;
        uv_read_stop(s);
        if (F.wait_eof)
            uv_timer_start(&F.timer, fake_tick, 5, 5);
    }
}

static void fake_accept(uv_stream_t *server, int status)
{
    CHECK(status == 0);
    uv_pipe_init(server->loop, &F.peer, 0);
    CHECK(uv_accept(server, (uv_stream_t *)&F.peer) == 0);
    uv_read_start((uv_stream_t *)&F.peer, fake_alloc, fake_read);
}

static uv_loop_t *fake_start(const char *const *chunks, int close_after)
{
    static char dir[] = "/tmp/sbx-client-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof(path), "%s/s.sock", dir);
    setenv("CODEBOT_SANDBOX_SOCKET", path, 1);
    uv_loop_t *loop = uv_default_loop();
    F.chunks = chunks;
    F.close_after = close_after;
    uv_pipe_init(loop, &F.server, 0);
    CHECK(uv_pipe_bind(&F.server, path) == 0);
    CHECK(uv_listen((uv_stream_t *)&F.server, 8, fake_accept) == 0);
    uv_timer_init(loop, &F.timer);
    return loop;
}

static void fake_stop(void)
{
    uv_close((uv_handle_t *)&F.server, NULL);
    uv_close((uv_handle_t *)&F.timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&F.peer) && F.peer.loop)
        uv_close((uv_handle_t *)&F.peer, NULL);
}

/* ---- what the client reports ---- */

typedef struct seen {
    char id[64];
    int is_new, starts, ends, events;
    strbuf out, err;
    char ev[32];
    char status[32];
    char message[256];
    sbx_end end;
} seen;

static void on_start(void *ud, const char *id, int is_new)
{
    seen *s = ud;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->is_new = is_new;
    s->starts++;
}

static void on_output(void *ud, int stream, const char *text, size_t len)
{
    seen *s = ud;
    strbuf_append(stream == 1 ? &s->out : &s->err, text, len);
}

static void on_event(void *ud, const char *ev, const cJSON *obj)
{
    seen *s = ud;
    snprintf(s->ev, sizeof(s->ev), "%s", ev);
    s->events++;
}

static void on_end(void *ud, const sbx_end *e)
{
    seen *s = ud;
    s->ends++;
    s->end = *e;
    snprintf(s->status, sizeof(s->status), "%s", e->status);
    snprintf(s->message, sizeof(s->message), "%s", e->message ? e->message : "");
    s->end.status = s->status;
    s->end.message = s->message;
}

static const sbx_run_cbs CBS = {on_start, on_output, on_event, on_end};

/* ---- cases ---- */

TEST(run_events_split_across_reads)
{
    static const char *const chunks[] = {
        "{\"ev\":\"start\",\"sandbox\":\"sb-0123456789abcdef\",\"new\":tr",
        "ue,\"lang\":\"python\"}\n{\"ev\":\"stdout\",\"text\":\"caf\xc3",
        "\xa9\\n\"}\n{\"ev\":\"stderr\",\"text\":\"warn\"}\n",
        "{\"ev\":\"result\",\"mime\":\"text/plain\",\"data\":\"5\"}\n{\"ev\":\"end\",\"ok\":true,",
        "\"status\":\"ok\",\"duration_ms\":12,\"execution_count\":3,\"state_lost\":false,"
        "\"dropped_bytes\":0}\n",
        NULL};
    uv_loop_t *loop = fake_start(chunks, 1);
    seen s = {0};
    sbx_run_opts o = {.session = "chan", .code = "print('café')", .timeout_ms = 5000};
    sbx_run *run = NULL;
    CHECK(sbx_run_start(loop, &o, &CBS, &s, &run) == 0);
    CHECK(run != NULL);
    uv_run(loop, UV_RUN_ONCE);
    while (!s.ends)
        uv_run(loop, UV_RUN_ONCE);
    fake_stop();
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(s.starts, 1);
    CHECK_STR(s.id, "sb-0123456789abcdef");
    CHECK_INT(s.is_new, 1);
    CHECK_STR(s.out.data, "caf\xc3\xa9\n");
    CHECK_STR(s.err.data, "warn");
    CHECK_INT(s.events, 1);
    CHECK_STR(s.ev, "result");
    CHECK_INT(s.ends, 1);
    CHECK_INT(s.end.ok, 1);
    CHECK_STR(s.status, "ok");
    CHECK_INT(s.end.duration_ms, 12);
    CHECK_INT(s.end.execution_count, 3);
    cJSON *req = cJSON_Parse(F.request.data);
    CHECK(req != NULL);
    CHECK_STR(cJSON_GetObjectItem(req, "op")->valuestring, "run");
    CHECK_STR(cJSON_GetObjectItem(req, "session")->valuestring, "chan");
    CHECK_STR(cJSON_GetObjectItem(req, "lang")->valuestring, "python");
    CHECK_STR(cJSON_GetObjectItem(req, "code")->valuestring, "print('café')");
    CHECK_INT(cJSON_GetObjectItem(req, "timeout_ms")->valueint, 5000);
    CHECK(cJSON_GetObjectItem(req, "sandbox") == NULL);
    CHECK(F.request.data[F.request.len - 1] == '\n');
    cJSON_Delete(req);
    strbuf_free(&s.out);
    strbuf_free(&s.err);
}

TEST(unreachable_service_ends_the_run_once)
{
    setenv("CODEBOT_SANDBOX_SOCKET", "/nonexistent/dir/s.sock", 1);
    uv_loop_t *loop = uv_default_loop();
    seen s = {0};
    sbx_run_opts o = {.session = "chan", .code = "1"};
    CHECK(sbx_run_start(loop, &o, &CBS, &s, NULL) == 0);
    CHECK_INT(s.ends, 0); /* never from inside the call */
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(s.ends, 1);
    CHECK_INT(s.end.ok, 0);
    CHECK_STR(s.status, "sandbox_error");
    CHECK(strstr(s.message, "/nonexistent/dir/s.sock") != NULL);
    strbuf_free(&s.out);
    strbuf_free(&s.err);
}

TEST(service_closing_midway_is_a_sandbox_error)
{
    static const char *const chunks[] = {
        "{\"ev\":\"start\",\"sandbox\":\"sb-1\",\"new\":false,\"lang\":\"python\"}\n",
        "{\"ev\":\"stdout\",\"text\":\"partial\"}\n{\"ev\":\"std", NULL};
    uv_loop_t *loop = fake_start(chunks, 1);
    seen s = {0};
    sbx_run_opts o = {.session = "chan", .code = "1"};
    CHECK(sbx_run_start(loop, &o, &CBS, &s, NULL) == 0);
    while (!s.ends)
        uv_run(loop, UV_RUN_ONCE);
    fake_stop();
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(s.ends, 1);
    CHECK_STR(s.out.data, "partial");
    CHECK_STR(s.status, "sandbox_error");
    CHECK(strstr(s.message, "closed") != NULL);
    strbuf_free(&s.out);
    strbuf_free(&s.err);
}

TEST(cancel_half_closes_and_still_gets_the_real_end)
{
    static const char *const chunks[] = {
        "{\"ev\":\"error\",\"name\":\"KeyboardInterrupt\",\"value\":\"\",\"traceback\":\"\"}\n",
        "{\"ev\":\"end\",\"ok\":false,\"status\":\"interrupted\",\"message\":\"from server\","
        "\"duration_ms\":5,\"execution_count\":1,\"state_lost\":false,\"dropped_bytes\":0}\n",
        NULL};
    uv_loop_t *loop = fake_start(chunks, 1);
    F.wait_eof = 1;
    seen s = {0};
    sbx_run_opts o = {.session = "chan", .code = "while True: pass"};
    sbx_run *run;
    CHECK(sbx_run_start(loop, &o, &CBS, &s, &run) == 0);
    while (!F.request.len)
        uv_run(loop, UV_RUN_ONCE);
    sbx_run_cancel(run);
    CHECK_INT(s.ends, 0);
    while (!s.ends)
        uv_run(loop, UV_RUN_ONCE);
    fake_stop();
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(F.got_eof, 1);
    CHECK_INT(s.events, 1);
    CHECK_INT(s.ends, 1);
    CHECK_STR(s.status, "interrupted");
    CHECK_STR(s.message, "from server");
    strbuf_free(&s.out);
    strbuf_free(&s.err);
}

TEST(refused_run_reports_the_service_error)
{
    static const char *const chunks[] = {"{\"ok\":false,\"error\":\"unknown language\"}\n", NULL};
    uv_loop_t *loop = fake_start(chunks, 1);
    seen s = {0};
    sbx_run_opts o = {.session = "chan", .code = "1", .lang = "cobol"};
    CHECK(sbx_run_start(loop, &o, &CBS, &s, NULL) == 0);
    while (!s.ends)
        uv_run(loop, UV_RUN_ONCE);
    fake_stop();
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_STR(s.status, "sandbox_error");
    CHECK_STR(s.message, "unknown language");
    strbuf_free(&s.out);
    strbuf_free(&s.err);
}

TEST(invalid_run_options_fail_without_callback)
{
    uv_loop_t *loop = uv_default_loop();
    seen s = {0};
    sbx_run_opts o = {.session = "", .code = "1"};
    CHECK_INT(sbx_run_start(loop, &o, &CBS, &s, NULL), -EINVAL);
    o.session = "x";
    o.code = NULL;
    CHECK_INT(sbx_run_start(loop, &o, &CBS, &s, NULL), -EINVAL);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(s.ends, 0);
    strbuf_free(&s.out);
    strbuf_free(&s.err);
}

typedef struct reply {
    int calls;
    int ok;
    char error[200];
} reply;

static void on_reply(void *ud, const cJSON *r, const char *error)
{
    reply *p = ud;
    p->calls++;
    p->ok = r && cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"));
    snprintf(p->error, sizeof(p->error), "%s", error ? error : "");
}

TEST(request_gets_one_reply)
{
    static const char *const chunks[] = {"{\"ok\":tr", "ue,\"sandboxes\":[]}\n", NULL};
    uv_loop_t *loop = fake_start(chunks, 0);
    reply p = {0};
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", "ls");
    CHECK(sbx_request(loop, req, on_reply, &p) == 0);
    cJSON_Delete(req);
    while (!p.calls)
        uv_run(loop, UV_RUN_ONCE);
    fake_stop();
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(p.calls, 1);
    CHECK_INT(p.ok, 1);
    CHECK_STR(F.request.data, "{\"op\":\"ls\"}\n");
}

TEST(request_with_garbage_answer_reports_an_error)
{
    static const char *const chunks[] = {"this is not json\n", NULL};
    uv_loop_t *loop = fake_start(chunks, 0);
    reply p = {0};
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", "ping");
    CHECK(sbx_request(loop, req, on_reply, &p) == 0);
    cJSON_Delete(req);
    while (!p.calls)
        uv_run(loop, UV_RUN_ONCE);
    fake_stop();
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(p.calls, 1);
    CHECK(p.error[0] != '\0');
}

TEST(big_output_line_arrives_whole)
{
    static strbuf line;
    strbuf_puts(&line, "{\"ev\":\"stdout\",\"text\":\"");
    for (int i = 0; i < 5 << 20; i++)
        strbuf_append(&line, "ab" + (i & 1), 1);
    strbuf_puts(&line, "\"}\n{\"ev\":\"end\",\"ok\":true,\"status\":\"ok\"}\n");
    static const char *chunks[2];
    chunks[0] = line.data;
    uv_loop_t *loop = fake_start(chunks, 1);
    seen s = {0};
    sbx_run_opts o = {.session = "chan", .code = "1"};
    CHECK(sbx_run_start(loop, &o, &CBS, &s, NULL) == 0);
    while (!s.ends)
        uv_run(loop, UV_RUN_ONCE);
    fake_stop();
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(s.out.len, 5 << 20);
    CHECK(memcmp(s.out.data, "abab", 4) == 0);
    CHECK_STR(s.status, "ok");
    strbuf_free(&s.out);
    strbuf_free(&s.err);
}

TEST(socket_path_from_the_environment)
{
    setenv("CODEBOT_SANDBOX_SOCKET", "/x/y.sock", 1);
    CHECK_STR(sbx_socket_path(), "/x/y.sock");
    unsetenv("CODEBOT_SANDBOX_SOCKET");
    setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
    CHECK_STR(sbx_socket_path(), "/run/user/7/codebot/sandboxd.sock");
    unsetenv("XDG_RUNTIME_DIR");
    CHECK_STR(sbx_socket_path(), "var/sandboxd.sock");
}

/* console — stdin is read as a stream (terminal, pipe) or, when it is a regular file, by
 * uv_fs_read; bytes collect in `in` and whole lines are handed out one at a time, only while
 * the channel is idle. SIGINT is caught with a uv_signal so that it cancels instead of
 * killing the process. */
#include "adapters/console.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/strbuf.h"

typedef struct console {
    adapter base;
    uv_loop_t *loop;
    uv_stream_t *stream; /* tty or pipe; NULL when stdin is a file */
    union {
        uv_tty_t tty;
        uv_pipe_t pipe;
    } h;
    uv_fs_t fs_req;
    char fs_buf[4096];
    int reading_file;
    uv_signal_t sigint;
    strbuf in;
    int eof, idle, quitting, closing, cancels;
    void (*on_message)(void *ud, const adapter_msg *m);
    void *ud;
    void (*quit)(void *ud);
    void *quit_ud;
    void (*stop_done)(void *ud);
    void *stop_ud;
    int open_handles;
    unsigned uploads;
    char channel[128];
} console;

static void pump(console *c);

static void do_quit(console *c)
{
    if (c->quitting)
        return;
    c->quitting = 1;
    if (c->quit)
        c->quit(c->quit_ud);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    static char mem[65536];
    buf->base = mem;
    buf->len = sizeof mem;
}

static void stop_reading(console *c)
{
    if (c->stream)
        uv_read_stop(c->stream);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    console *c = s->data;
    if (n < 0) {
        if (n != UV_EOF)
            log_warn("console", "reading stdin: %s", uv_strerror((int)n));
        c->eof = 1;
        stop_reading(c);
    } else if (n > 0 && strbuf_append(&c->in, buf->base, (size_t)n) != 0) {
        log_error("console", "out of memory reading stdin");
        c->eof = 1;
    }
    pump(c);
}

static void read_file_chunk(console *c);

static void on_fs_read(uv_fs_t *req)
{
    console *c = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    c->reading_file = 0;
    if (n <= 0)
        c->eof = 1;
    else if (strbuf_append(&c->in, c->fs_buf, (size_t)n) != 0)
        c->eof = 1;
    pump(c);
}

static void read_file_chunk(console *c)
{
    if (c->reading_file || c->eof || c->closing)
        return;
    uv_buf_t b = uv_buf_init(c->fs_buf, sizeof c->fs_buf);
    c->fs_req.data = c;
    if (uv_fs_read(c->loop, &c->fs_req, 0, &b, 1, -1, on_fs_read) == 0)
        c->reading_file = 1;
    else
        c->eof = 1;
}

static void want_more(console *c)
{
    if (c->eof || c->closing)
        return;
    if (c->stream)
        uv_read_start(c->stream, on_alloc, on_read);
    else
        read_file_chunk(c);
}

static void deliver(console *c, char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        line[--n] = '\0';
    if (strcmp(line, "exit") == 0 || strcmp(line, "quit") == 0) {
        c->eof = 1;
        do_quit(c);
        return;
    }
    if (n == 0) {
        fputs("You: ", stdout);
        fflush(stdout);
        return;
    }
    c->idle = 0;
    c->cancels = 0;
    stop_reading(c);
    fputs("\nAssistant:\n", stdout);
    fflush(stdout);
    adapter_msg m = {.platform = "console", .channel = c->channel, .user = "local", .text = line};
    c->on_message(c->ud, &m);
}

/* Hands out the next complete line while idle; at the end of input quits. A message may
 * span lines when it is a fenced code block: lines are joined until the fence closes. */
static void pump(console *c)
{
    while (c->idle && !c->quitting) {
        const char *data = strbuf_str(&c->in);
        const char *nl = strchr(data, '\n');
        if (nl && strncmp(data, "```", 3) == 0) {
            const char *close = strstr(nl + 1, "```");
            const char *end = close ? strchr(close, '\n') : NULL;
            nl = close ? (end ? end : (c->eof ? close + strlen(close) : NULL)) : NULL;
            if (!nl && c->eof)
                nl = data + c->in.len;
        }
        if (!nl && c->eof && c->in.len)
            nl = data + c->in.len;
        if (!nl) {
            if (c->eof)
                do_quit(c);
            else
                want_more(c);
            return;
        }
        size_t len = (size_t)(nl - data);
        char *line = strndup(data, len);
        strbuf_consume(&c->in, len + (len < c->in.len ? 1 : 0));
        if (!line) {
            log_error("console", "out of memory");
            do_quit(c);
            return;
        }
        deliver(c, line);
        free(line);
    }
}

static void on_sigint(uv_signal_t *s, int signum)
{
    console *c = s->data;
    putchar('\n');
    fflush(stdout);
    if (c->idle || ++c->cancels > 1) {
        do_quit(c);
        return;
    }
    adapter_msg m = {
        .platform = "console", .channel = c->channel, .user = "local", .text = "cancel"};
    c->on_message(c->ud, &m);
}

static int con_start(adapter *a, void (*on_message)(void *ud, const adapter_msg *m), void *ud)
{
    console *c = a->impl;
    c->on_message = on_message;
    c->ud = ud;
    int rc = uv_signal_start(&c->sigint, on_sigint, SIGINT);
    if (rc)
        return rc;
    c->idle = 1;
    fputs("🤖 codebot ready. Type a task, a ```fenced``` code block, or \"help\"; \"exit\" "
          "quits.\n\n"
          "You: ",
          stdout);
    fflush(stdout);
    pump(c);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    console *c = h->data;
    if (--c->open_handles == 0 && c->stop_done)
        c->stop_done(c->stop_ud);
}

static void con_stop(adapter *a, void (*done)(void *ud), void *ud)
{
    console *c = a->impl;
    c->closing = 1;
    c->stop_done = done;
    c->stop_ud = ud;
    if (c->reading_file)
        uv_cancel((uv_req_t *)&c->fs_req);
    uv_close((uv_handle_t *)&c->sigint, on_closed);
    if (c->stream)
        uv_close((uv_handle_t *)c->stream, on_closed);
}

static void print_text(const char *text)
{
    fputs(text, stdout);
    fflush(stdout);
}

static void con_print(adapter *a, const char *channel, const char *text)
{
    print_text(text);
}

static void finish_cb(adapter_cb cb, void *ud, int status, const char *msg_id)
{
    adapter_result r = {.status = status, .msg_id = msg_id};
    if (cb)
        cb(ud, &r);
}

static int con_post(adapter *a, const char *channel, const char *reply_to, const char *text,
                    adapter_cb cb, void *ud)
{
    print_text(text);
    if (*text && text[strlen(text) - 1] != '\n')
        print_text("\n");
    finish_cb(cb, ud, 0, "console");
    return 0;
}

static int con_edit(adapter *a, const char *channel, const char *msg_id, const char *text,
                    adapter_cb cb, void *ud)
{
    return con_post(a, channel, NULL, text, cb, ud);
}

static int con_upload(adapter *a, const char *channel, const char *filename, const char *mime,
                      const void *data, size_t len, adapter_cb cb, void *ud)
{
    console *c = a->impl;
    const char *dir = getenv("CODEBOT_CONSOLE_FILES");
    if (!dir || !*dir)
        dir = "var/files";
    const char *base = strrchr(filename, '/') ? strrchr(filename, '/') + 1 : filename;
    char path[4096];
    mkdir("var", 0755);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%u-%s", dir, ++c->uploads, base);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        int err = errno;
        if (f)
            fclose(f);
        log_warn("console", "cannot save %s: %s", path, strerror(err));
        return -err;
    }
    fclose(f);
    printf("📎 %s (%zu bytes) saved to %s\n", base, len, path);
    fflush(stdout);
    finish_cb(cb, ud, 0, NULL);
    return 0;
}

static void con_idle(adapter *a, const char *channel)
{
    console *c = a->impl;
    if (c->idle || c->closing)
        return;
    c->idle = 1;
    if (!c->quitting) {
        fputs("\nYou: ", stdout);
        fflush(stdout);
    }
    pump(c);
}

static void con_free(adapter *a)
{
    console *c = a->impl;
    strbuf_free(&c->in);
    free(c);
}

static const adapter_ops console_ops = {
    .name = "console",
    .start = con_start,
    .stop = con_stop,
    .post = con_post,
    .edit = con_edit,
    .upload = con_upload,
    .print = con_print,
    .idle = con_idle,
    .free = con_free,
};

static void free_on_close(uv_handle_t *h)
{
    free(h->data);
}

static int open_stdin(console *c)
{
    uv_handle_type t = uv_guess_handle(0);
    int rc = 0;
    if (t == UV_TTY) {
        rc = uv_tty_init(c->loop, &c->h.tty, 0, 1);
        c->stream = (uv_stream_t *)&c->h.tty;
    } else if (t == UV_NAMED_PIPE) {
        rc = uv_pipe_init(c->loop, &c->h.pipe, 0);
        if (rc == 0)
            rc = uv_pipe_open(&c->h.pipe, 0);
        c->stream = (uv_stream_t *)&c->h.pipe;
    }
    if (rc) {
        log_error("console", "cannot read stdin: %s", uv_strerror(rc));
        return rc;
    }
    if (c->stream) {
        c->stream->data = c;
        c->open_handles++;
    }
    return 0;
}

int console_new(uv_loop_t *loop, adapter **out)
{
    console *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->loop = loop;
    const char *ch = getenv("CODEBOT_CONSOLE_CHANNEL");
    snprintf(c->channel, sizeof c->channel, "%s", ch && *ch ? ch : "local");
    c->base.ops = &console_ops;
    c->base.loop = loop;
    c->base.impl = c;
    c->base.policy =
        (adapter_policy){.max_chars = 1u << 30, .streams = 1, .max_upload_bytes = 64u << 20};
    int rc = uv_signal_init(loop, &c->sigint);
    if (rc) {
        free(c);
        return rc;
    }
    c->sigint.data = c;
    c->open_handles = 1;
    if ((rc = open_stdin(c)) != 0) {
        /* The struct must outlive its signal handle: freed by the close callback. */
        uv_close((uv_handle_t *)&c->sigint, free_on_close);
        return rc;
    }
    *out = &c->base;
    return 0;
}

void console_set_quit(adapter *a, void (*quit)(void *ud), void *ud)
{
    console *c = a->impl;
    c->quit = quit;
    c->quit_ud = ud;
}

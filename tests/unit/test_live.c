/* Unit tests for bot/live: edit pacing against a fake adapter on a real libuv loop — coalescing
 * within the interval, the final state, 429s, a late post, failures, the running clock — and
 * the console transcript of a streaming adapter. */
#include "tests/unit/check.h"

#include <errno.h>
#include <stdint.h>

#include "bot/live.h"
#include "bot/render.h"
#include "common/strbuf.h"

/* ---- a fake adapter that records every call ---- */

enum { POST, EDIT };

typedef struct call {
    int kind;
    uint64_t t_call, t_done;
    char *text;
    char *msg_id; /* the id an edit named */
} call;

typedef struct fake {
    adapter a;
    call calls[1024];
    int n, inflight, max_inflight;
    uint64_t post_delay, edit_delay;
    int fail_at, limit_at, refuse_at, final_limit; /* call indexes; -1 none */
    uint64_t retry_after;
    int sync; /* complete calls before returning */
    strbuf printed;
    int prints;
} fake;

typedef struct pending {
    uv_timer_t t;
    fake *f;
    int idx;
    adapter_cb cb;
    void *ud;
} pending;

static void pending_closed(uv_handle_t *h)
{
    free(h->data);
}

static void deliver(uv_timer_t *t)
{
    pending *p = t->data;
    fake *f = p->f;
    call *c = &f->calls[p->idx];
    adapter_result res = {0};
    c->t_done = uv_now(t->loop);
    if (p->idx == f->limit_at || (f->final_limit && strstr(c->text, "Done") && f->final_limit--)) {
        res.remote_status = 429;
        res.error = "rate limited";
        res.retry_after_ms = f->retry_after;
    } else if (p->idx == f->fail_at) {
        res.remote_status = 500;
        res.error = "server error";
    } else if (c->kind == POST) {
        res.remote_status = 200;
        res.msg_id = "m1";
    }
    f->inflight--;
    p->cb(p->ud, &res);
    uv_close((uv_handle_t *)t, pending_closed);
}

static int record(fake *f, int kind, const char *msg_id, const char *text, adapter_cb cb, void *ud)
{
    CHECK(f->n < 1024);
    int idx = f->n;
    if (idx == f->refuse_at) {
        f->refuse_at = -2; /* once */
        return -EIO;
    }
    call *c = &f->calls[f->n++];
    c->kind = kind;
    c->t_call = uv_now(f->a.loop);
    c->text = strdup(text);
    c->msg_id = msg_id ? strdup(msg_id) : NULL;
    f->inflight++;
    if (f->inflight > f->max_inflight)
        f->max_inflight = f->inflight;
    pending *p = calloc(1, sizeof(*p));
    p->f = f;
    p->idx = idx;
    p->cb = cb;
    p->ud = ud;
    uv_timer_init(f->a.loop, &p->t);
    p->t.data = p;
    if (f->sync)
        deliver(&p->t);
    else
        uv_timer_start(&p->t, deliver, kind == POST ? f->post_delay : f->edit_delay, 0);
    return 0;
}

static int fake_post(adapter *a, const char *channel, const char *reply_to, const char *text,
                     adapter_cb cb, void *ud)
{
    CHECK_STR(channel, "chan");
    CHECK_STR(reply_to, "q1");
    return record(a->impl, POST, NULL, text, cb, ud);
}

static int fake_edit(adapter *a, const char *channel, const char *msg_id, const char *text,
                     adapter_cb cb, void *ud)
{
    CHECK_STR(channel, "chan");
    return record(a->impl, EDIT, msg_id, text, cb, ud);
}

static void fake_print(adapter *a, const char *channel, const char *text)
{
    fake *f = a->impl;
    CHECK_STR(channel, "chan");
    strbuf_puts(&f->printed, text);
    f->prints++;
}

static void fake_free(fake *f)
{
    for (int i = 0; i < f->n; i++) {
        free(f->calls[i].text);
        free(f->calls[i].msg_id);
    }
    strbuf_free(&f->printed);
    free(f);
}

static const adapter_ops fake_ops = {
    .name = "fake", .post = fake_post, .edit = fake_edit, .print = fake_print};

static fake *fake_new(uv_loop_t *loop, uint64_t interval)
{
    fake *f = calloc(1, sizeof(*f));
    f->a.ops = &fake_ops;
    f->a.loop = loop;
    f->a.impl = f;
    f->a.policy.max_chars = 2000;
    f->a.policy.min_edit_interval_ms = interval;
    f->fail_at = f->limit_at = f->refuse_at = -1;
    f->post_delay = f->edit_delay = 20;
    return f;
}

/* ---- a script: a live and a mirror render fed the same inputs at the same times ---- */

typedef struct script {
    uv_loop_t loop;
    uv_timer_t tick;
    fake *f;
    live *l;
    render *mirror;
    int step, steps, done;
    uint64_t at[1024]; /* when each step ran */
    uint64_t every, finish_at_step;
    void (*act)(struct script *s, int step);
} script;

static void on_done(void *ud)
{
    script *s = ud;
    s->done++;
}

static void do_output(script *s, int stream, const char *text)
{
    live_output(s->l, stream, text, strlen(text));
    render_output(s->mirror, stream, text, strlen(text));
}

static void do_phase(script *s, enum render_phase p)
{
    live_phase(s->l, p, NULL);
    render_phase(s->mirror, p, NULL, uv_now(&s->loop));
}

static void do_code(script *s, const char *code)
{
    live_code(s->l, "python", code);
    render_code(s->mirror, "python", code);
}

static void ticked(uv_timer_t *t)
{
    script *s = t->data;
    s->at[s->step] = uv_now(t->loop);
    s->act(s, s->step);
    if (++s->step >= s->steps) {
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, NULL);
        live_finish(s->l, on_done, s);
    }
}

/* Runs ACT(step) every EVERY ms for STEPS steps, then finishes the live and runs the loop
 * until nothing is left; checks that the live closed everything. */
static void run(script *s, fake *f, uint64_t every, int steps, void (*act)(script *, int))
{
    CHECK(uv_loop_init(&s->loop) == 0);
    f->a.loop = &s->loop;
    s->f = f;
    s->every = every;
    s->steps = steps;
    s->act = act;
    s->mirror = render_new(f->a.policy.max_chars, f->a.policy.max_bytes, 3);
    CHECK(live_new(&s->loop, &f->a, "chan", "q1", 3, &s->l) == 0);
    uv_timer_init(&s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, ticked, 0, every);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    CHECK_INT(s->done, 1);
    CHECK(uv_loop_close(&s->loop) == 0); /* every handle was closed */
    CHECK(f->max_inflight <= 1);
}

static void check_final(script *s)
{
    fake *f = s->f;
    CHECK(f->n > 0);
    char *want = render_text(s->mirror, uv_now(&s->loop));
    CHECK_STR(f->calls[f->n - 1].text, want);
    free(want);
}

/* Non-final calls start at least INTERVAL apart. */
static void check_spacing(fake *f, uint64_t interval)
{
    for (int i = 1; i < f->n - 1; i++)
        CHECK(f->calls[i].t_call - f->calls[i - 1].t_call >= interval);
}

static void check_edits_name_the_post(fake *f)
{
    CHECK(f->n > 0 && f->calls[0].kind == POST);
    for (int i = 1; i < f->n; i++) {
        CHECK(f->calls[i].kind == EDIT);
        CHECK_STR(f->calls[i].msg_id, "m1");
        CHECK(f->calls[i].t_call >= f->calls[0].t_done);
    }
}

/* step 0: code and run; then one output line per step; the last step: done */
static void act_lines(script *s, int step)
{
    if (step == 0) {
        do_phase(s, RENDER_GENERATING);
        do_code(s, "for i in range(200): print(i)");
        do_phase(s, RENDER_RUNNING);
        return;
    }
    char line[32];
    snprintf(line, sizeof(line), "line %d\n", step);
    do_output(s, 1 + (step % 5 == 0), line);
    if (step == s->steps - 1)
        do_phase(s, RENDER_DONE);
}

TEST(quick_outputs_coalesce_into_paced_edits)
{
    script s = {0};
    fake *f = fake_new(NULL, 500);
    run(&s, f, 10, 200, act_lines); /* 200 updates in 2 s */
    check_edits_name_the_post(f);
    check_spacing(f, 500);
    CHECK(f->n >= 4); /* progress was shown while it ran */
    CHECK(f->n <= 2000 / 500 + 3);
    check_final(&s);
    CHECK(strstr(f->calls[f->n - 1].text, "line 199\n```"));
    CHECK(strstr(f->calls[f->n - 1].text, "✅ Done."));
    /* each edit shows the newest state of its moment: a later one never shows less */
    for (int i = 2; i < f->n; i++)
        CHECK(strlen(f->calls[i].text) >= strlen(f->calls[i - 1].text) ||
              strstr(f->calls[i].text, "earlier lines"));
    render_free(s.mirror);
    fake_free(f);
}

TEST(final_state_is_sent_before_the_interval_passes)
{
    script s = {0};
    fake *f = fake_new(NULL, 10000);
    run(&s, f, 50, 6, act_lines); /* finishes after 300 ms, interval 10 s */
    CHECK_INT(f->n, 2);
    CHECK(f->calls[1].t_call < 1000 + f->calls[0].t_call);
    check_final(&s);
    render_free(s.mirror);
    fake_free(f);
}

TEST(rate_limit_delays_the_next_edit)
{
    script s = {0};
    fake *f = fake_new(NULL, 200);
    f->limit_at = 2;
    f->retry_after = 1500;
    run(&s, f, 20, 150, act_lines); /* 3 s */
    check_edits_name_the_post(f);
    CHECK(f->n > 4);
    CHECK(f->calls[3].t_call >= f->calls[2].t_done + 1500);
    check_spacing(f, 200);
    check_final(&s);
    render_free(s.mirror);
    fake_free(f);
}

TEST(rate_limited_final_edit_is_retried)
{
    script s = {0};
    fake *f = fake_new(NULL, 200);
    f->final_limit = 2; /* the last call is rate-limited twice */
    f->retry_after = 300;
    run(&s, f, 20, 30, act_lines);
    check_final(&s);
    CHECK(f->n >= 3);
    CHECK_STR(f->calls[f->n - 1].text, f->calls[f->n - 2].text);
    CHECK(f->calls[f->n - 1].t_call >= f->calls[f->n - 2].t_done + 300);
    render_free(s.mirror);
    fake_free(f);
}

TEST(updates_wait_for_a_late_post)
{
    script s = {0};
    fake *f = fake_new(NULL, 100);
    f->post_delay = 1000;
    run(&s, f, 20, 75, act_lines); /* 1.5 s */
    check_edits_name_the_post(f);  /* no edit before the post's id came */
    CHECK(f->calls[1].t_call - f->calls[0].t_done < 100);
    /* the first edit shows everything written while the post was on its way */
    CHECK(f->calls[0].t_done >= 1000);
    int newest = 0;
    while (newest + 1 < s.steps && s.at[newest + 1] < f->calls[0].t_done)
        newest++;
    CHECK(newest > 30);
    char want[32];
    snprintf(want, sizeof(want), "line %d\n", newest);
    CHECK(strstr(f->calls[1].text, want));
    check_spacing(f, 100);
    check_final(&s);
    render_free(s.mirror);
    fake_free(f);
}

TEST(edit_failure_does_not_stop_later_edits)
{
    script s = {0};
    fake *f = fake_new(NULL, 100);
    f->fail_at = 1;
    f->refuse_at = 3;               /* refused synchronously: no callback */
    run(&s, f, 20, 150, act_lines); /* 3 s */
    check_edits_name_the_post(f);
    CHECK(f->n >= 5);
    CHECK(f->n <= 3000 / 100 + 3); /* no spin */
    /* after the failure the next try waits at least the backoff */
    CHECK(f->calls[2].t_call >= f->calls[1].t_done + 1000);
    check_final(&s);
    render_free(s.mirror);
    fake_free(f);
}

static void act_idle_run(script *s, int step)
{
    if (step == 0) {
        do_code(s, "import time; time.sleep(3.5)");
        do_phase(s, RENDER_RUNNING);
    }
    if (step == s->steps - 1)
        do_phase(s, RENDER_DONE);
}

TEST(running_clock_ticks_every_second)
{
    script s = {0};
    fake *f = fake_new(NULL, 300);
    run(&s, f, 100, 36, act_idle_run);
    check_edits_name_the_post(f);
    const char *want[] = {"Running… 0 s", "Running… 1 s", "Running… 2 s", "Running… 3 s"};
    int w = 0;
    for (int i = 0; i < f->n && w < 4; i++)
        if (strstr(f->calls[i].text, want[w]))
            w++;
    CHECK_INT(w, 4);
    CHECK(f->n <= 6);
    check_final(&s);
    CHECK(strstr(f->calls[f->n - 1].text, "✅ Done. (3."));
    render_free(s.mirror);
    fake_free(f);
}

TEST(failed_post_is_retried)
{
    script s = {0};
    fake *f = fake_new(NULL, 100);
    f->fail_at = 0;
    run(&s, f, 20, 100, act_lines);
    CHECK(f->calls[0].kind == POST && f->calls[1].kind == POST);
    CHECK(f->calls[1].t_call >= f->calls[0].t_done + 1000);
    for (int i = 2; i < f->n; i++)
        CHECK(f->calls[i].kind == EDIT);
    check_final(&s);
    render_free(s.mirror);
    fake_free(f);
}

static void act_console(script *s, int step)
{
    live *l = s->l;
    switch (step) {
    case 0:
        live_phase(l, RENDER_GENERATING, NULL);
        live_code(l, "python", "pri");
        live_code(l, "python", "print(1)");
        live_code(l, "python", "print(1)\nimport sys; print(2, file=sys.stderr)\n");
        break;
    case 1:
        live_phase(l, RENDER_RUNNING, NULL);
        live_output(l, 1, "1\n", 2);
        live_output(l, 2, "2\n", 2);
        live_output(l, 1, "50%\r100%\r\n\xE2\x82", 12);
        live_output(l, 1, "\xAC \x1b[1mbold\x1b[0m\0", 15);
        break;
    case 2:
        live_error(l, "ZeroDivisionError", "division by zero");
        live_attempt(l, 2);
        live_phase(l, RENDER_GENERATING, NULL);
        live_code(l, "python", "print(3)");
        live_phase(l, RENDER_RUNNING, NULL);
        live_output(l, 1, "3", 1);
        live_note(l, "📎 fibonacci.png");
        live_phase(l, RENDER_DONE, NULL);
        break;
    }
}

TEST(streaming_adapter_prints_the_transcript_in_order)
{
    script s = {0};
    fake *f = fake_new(NULL, 0);
    f->a.policy.streams = 1;
    run(&s, f, 10, 3, act_console);
    CHECK_INT(f->n, 0);
    CHECK_STR(strbuf_str(&f->printed), "\n📝 Generated code:\n```python\n"
                                       "print(1)\nimport sys; print(2, file=sys.stderr)\n```\n"
                                       "\n🚀 Running...\n"
                                       "  1\n"
                                       "  ⚠️  2\n"
                                       "  50%\r  100%\n"
                                       "  € bold\n"
                                       "\n❌ Error: ZeroDivisionError: division by zero\n"
                                       "\n🔄 Attempt 2/3 — fixing error...\n"
                                       "\n📝 Generated code:\n```python\nprint(3)\n```\n"
                                       "\n🚀 Running...\n"
                                       "  3\n"
                                       "📎 fibonacci.png\n"
                                       "\n✅ Done.\n");
    /* the code streamed: each print added only the new end */
    CHECK(f->prints > 10);
    strbuf_free(&f->printed);
    render_free(s.mirror);
    fake_free(f);
}

TEST(adapter_completing_at_once_is_handled)
{
    script s = {0};
    fake *f = fake_new(NULL, 100);
    f->sync = 1;
    run(&s, f, 20, 50, act_lines);
    check_edits_name_the_post(f);
    CHECK(f->n >= 5);
    check_spacing(f, 100);
    check_final(&s);
    render_free(s.mirror);
    fake_free(f);
}

static void act_nothing(script *s, int step) {}

TEST(finish_without_updates_posts_once)
{
    script s = {0};
    fake *f = fake_new(NULL, 100);
    run(&s, f, 20, 1, act_nothing);
    CHECK_INT(f->n, 1);
    CHECK(f->calls[0].kind == POST);
    check_final(&s);
    render_free(s.mirror);
    fake_free(f);
}

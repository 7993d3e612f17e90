/* bot/channels with the real turn and the real sandbox service, through a fake editing
 * adapter: channels run concurrently, a busy channel queues (and says so), commands act at
 * once, and a cancelled turn stops. Direct code blocks need no LLM. */
#include "tests/unit/check.h"

#include <errno.h>

#include "bot/channels.h"
#include "common/strbuf.h"
#include "sandbox/client.h"

typedef struct msgrec {
    char channel[32];
    char id[16];
    strbuf text; /* the newest text of the message */
    uint64_t t_last;
} msgrec;

typedef struct fake {
    adapter a;
    msgrec msgs[64];
    int n;
    int idle[4]; /* idle notifications per channel "c0".."c3" */
    void (*on_message)(void *ud, const adapter_msg *m);
    void *ud;
} fake;

static int chan_index(const char *ch)
{
    return ch[0] == 'c' && ch[1] >= '0' && ch[1] <= '3' ? ch[1] - '0' : 0;
}

static int f_start(adapter *a, void (*on_message)(void *, const adapter_msg *), void *ud)
{
    fake *f = a->impl;
    f->on_message = on_message;
    f->ud = ud;
    return 0;
}

static int f_post(adapter *a, const char *channel, const char *reply_to, const char *text,
                  adapter_cb cb, void *ud)
{
    fake *f = a->impl;
    CHECK(f->n < 64);
    msgrec *m = &f->msgs[f->n];
    snprintf(m->channel, sizeof m->channel, "%s", channel);
    snprintf(m->id, sizeof m->id, "m%d", f->n);
    strbuf_puts(&m->text, text);
    m->t_last = uv_now(a->loop);
    f->n++;
    adapter_result r = {.msg_id = m->id};
    if (cb)
        cb(ud, &r);
    return 0;
}

static int f_edit(adapter *a, const char *channel, const char *msg_id, const char *text,
                  adapter_cb cb, void *ud)
{
    fake *f = a->impl;
    int i = (int)strtol(msg_id + 1, NULL, 10);
    CHECK(i >= 0 && i < f->n);
    CHECK_STR(f->msgs[i].channel, channel);
    strbuf_reset(&f->msgs[i].text);
    strbuf_puts(&f->msgs[i].text, text);
    f->msgs[i].t_last = uv_now(a->loop);
    adapter_result r = {0};
    if (cb)
        cb(ud, &r);
    return 0;
}

static int f_upload(adapter *a, const char *channel, const char *filename, const char *mime,
                    const void *data, size_t len, adapter_cb cb, void *ud)
{
    adapter_result r = {0};
    if (cb)
        cb(ud, &r);
    return 0;
}

static void f_idle(adapter *a, const char *channel)
{
    fake *f = a->impl;
    f->idle[chan_index(channel)]++;
}

static const adapter_ops fake_ops = {.name = "fake",
                                     .start = f_start,
                                     .post = f_post,
                                     .edit = f_edit,
                                     .upload = f_upload,
                                     .idle = f_idle};

static uv_loop_t loop;
static fake fk;
static config cfg;
static channels *cs;

static void setup(void)
{
    /* This process is not codebot: the service is the binary under test. */
    const char *bin = getenv("CODEBOT_BIN");
    setenv("CODEBOT_SANDBOXD_BIN", bin && *bin ? bin : "build/codebot", 1);
    CHECK_INT(sbx_ensure_service(30000), 0);
    uv_loop_init(&loop);
    fk.a.ops = &fake_ops;
    fk.a.loop = &loop;
    fk.a.impl = &fk;
    fk.a.policy = (adapter_policy){.max_chars = 4000, .min_edit_interval_ms = 100};
    cfg.max_attempts = 3;
    cfg.run_timeout_ms = 30000;
    cfg.model = "none";
    turn_ctx ctx = {.loop = &loop, .cfg = &cfg};
    CHECK_INT(channels_new(&ctx, &cs), 0);
    CHECK_INT(channels_attach(cs, &fk.a), 0);
}

static char chan_names[4][32];

static void say_in(int ch, const char *text)
{
    snprintf(chan_names[ch], sizeof chan_names[ch], "c%d-%d", ch, (int)getpid());
    adapter_msg m = {
        .platform = "fake", .channel = chan_names[ch], .user = "u", .text = text, .msg_id = "q"};
    fk.on_message(fk.ud, &m);
}

/* The index of the first message in channel CH whose text contains NEEDLE, or -1. */
static int find(int ch, const char *needle)
{
    for (int i = 0; i < fk.n; i++)
        if (strcmp(fk.msgs[i].channel, chan_names[ch]) == 0 &&
            strstr(strbuf_str(&fk.msgs[i].text), needle))
            return i;
    return -1;
}

static void run_until(int (*cond)(void), unsigned ms)
{
    uint64_t end = uv_now(&loop) + ms;
    while (!cond() && uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
    }
}

static int both_done(void)
{
    return find(0, "Done") >= 0 && find(1, "Done") >= 0 && channels_running(cs) == 0;
}

static int never(void)
{
    return 0;
}

static void sleep_ms(unsigned ms)
{
    run_until(never, ms);
}

TEST(channels_run_concurrently)
{
    setup();
    say_in(0, "```python\nimport time\ntime.sleep(2)\nprint('slow done')\n```");
    say_in(1, "```python\nprint('fast done')\n```");
    run_until(both_done, 60000);
    int slow = find(0, "slow done"), fast = find(1, "fast done");
    CHECK(slow >= 0 && fast >= 0);
    /* the fast channel finished while the slow one was still sleeping */
    CHECK(fk.msgs[fast].t_last + 1000 < fk.msgs[slow].t_last);
}

static int queue_done(void)
{
    return find(0, "second ran") >= 0 && find(0, "Done") >= 0 && channels_running(cs) == 0;
}

TEST(busy_channel_queues_and_says_so)
{
    setup();
    say_in(0, "```python\nimport time\ntime.sleep(1)\nprint('first ran')\n```");
    say_in(0, "```python\nprint('second ran')\n```");
    CHECK(find(0, "Queued") >= 0);
    run_until(queue_done, 60000);
    int first = find(0, "first ran"), second = find(0, "second ran");
    CHECK(first >= 0 && second >= 0 && first < second);
    CHECK(fk.idle[0] >= 1);
}

static int cancelled(void)
{
    return find(0, "Stopped") >= 0 && channels_running(cs) == 0;
}

TEST(cancel_stops_the_running_turn)
{
    setup();
    say_in(0, "```python\nimport time\nprint('started', flush=True)\ntime.sleep(30)\n```");
    sleep_ms(1500);
    say_in(0, "cancel");
    run_until(cancelled, 20000);
    CHECK(find(0, "Stopped") >= 0);
    CHECK(find(0, "cancel") >= 0);
}

static int status_seen(void)
{
    return find(2, "Sandbox:") >= 0;
}

TEST(commands_answer_at_once)
{
    setup();
    say_in(2, "help");
    CHECK(find(2, "Commands:") >= 0);
    say_in(2, "  /STATUS ");
    run_until(status_seen, 5000);
    CHECK(find(2, "History:") >= 0 && find(2, "Model:") >= 0);
    say_in(2, "cancel");
    CHECK(find(2, "Nothing is running") >= 0);
}

static int attachments_done(void)
{
    return find(3, "rows 2") >= 0 && find(3, "Done") >= 0 && channels_running(cs) == 0;
}

TEST(attachments_land_in_the_working_directory_also_when_queued)
{
    setup();
    snprintf(chan_names[3], sizeof chan_names[3], "c3-%d", (int)getpid());
    adapter_msg busy = {.platform = "fake",
                        .channel = chan_names[3],
                        .user = "u",
                        .text = "```python\nimport time\ntime.sleep(1)\n```",
                        .msg_id = "q"};
    fk.on_message(fk.ud, &busy);
    static const char csv[] = "a,b\n1,2\n3,4\n";
    adapter_attachment att[] = {
        {.filename = "../../etc/data.csv", .mime = "text/csv", .data = csv, .size = sizeof csv - 1},
        {.filename = "remote.bin", .url = "https://example.invalid/remote.bin"}};
    adapter_msg m = {.platform = "fake",
                     .channel = chan_names[3],
                     .user = "u",
                     .text = "```python\nimport pandas as pd\nprint('rows', len(pd.read_csv("
                             "'data.csv')))\n```",
                     .msg_id = "q2",
                     .attachments = att,
                     .n_attachments = 2};
    fk.on_message(fk.ud, &m);
    CHECK(find(3, "Queued") >= 0);
    run_until(attachments_done, 60000);
    CHECK(find(3, "rows 2") >= 0);
    CHECK(find(3, "data.csv (12 bytes) is in the working directory") >= 0);
    CHECK(find(3, "could not be downloaded") >= 0);
}

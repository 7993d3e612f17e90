/* Unit tests for store/: against the private Redis of scripts/test.sh (REDIS_URL, a unix
 * socket), in database 9 under a key prefix of this process; the outage tests start and kill
 * their own redis-server on a socket of their own. Every wait is bounded by a timer. */
#include "tests/unit/check.h"

#include <errno.h>
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <uv.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "store/redis_url.h"
#include "store/store.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
/* check.h ends each test with _exit(), which skips LeakSanitizer: run it here instead. */
#define LEAK_CHECK() __lsan_do_leak_check()
#else
#define LEAK_CHECK() ((void)0)
#endif

#define TEST_DB 9

static uv_loop_t loop;
static char platform[64];
static char logpath[512];
static char srvdir[64]; /* a redis-server this test started, or "" */
static int srvpid;

/* ---- harness ---- */

static void on_deadline(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop until *FLAG is set or MS pass; returns *FLAG. */
static int run_until(const int *flag, unsigned ms)
{
    int expired = 0;
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_deadline, ms, 0);
    while (!*flag && !expired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return *flag;
}

static void sleep_loop(unsigned ms)
{
    int never = 0;
    run_until(&never, ms);
}

static void setup(void)
{
    snprintf(platform, sizeof(platform), "test%d", (int)getpid());
    const char *var = getenv("CODEBOT_VAR");
    snprintf(logpath, sizeof(logpath), "%s/store-test-%d.log", var && *var ? var : "/tmp",
             (int)getpid());
    unlink(logpath);
    setenv("CODEBOT_LOG_FILE", logpath, 1);
    CHECK_INT(log_init(), 0);
    CHECK_INT(uv_loop_init(&loop), 0);
}

static int log_count(const char *needle)
{
    FILE *f = fopen(logpath, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static const char *redis_sock(void)
{
    static char path[256];
    const char *url = getenv("REDIS_URL");
    CHECK(url != NULL);
    redis_url u;
    CHECK_INT(redis_url_parse(url, &u, NULL), 0);
    CHECK(u.is_unix);
    snprintf(path, sizeof(path), "%s", u.path);
    redis_url_free(&u);
    return path;
}

static const char *test_url(void)
{
    static char url[300];
    snprintf(url, sizeof(url), "unix://%s?db=%d", redis_sock(), TEST_DB);
    return url;
}

/* A blocking connection for checking what the store wrote. */
static redisContext *sync_open(const char *sock)
{
    redisContext *c = redisConnectUnix(sock);
    CHECK(c && !c->err);
    redisReply *r = redisCommand(c, "SELECT %d", TEST_DB);
    CHECK(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    return c;
}

static void sync_del_prefix(redisContext *c)
{
    redisReply *r = redisCommand(c, "KEYS codebot:%s:*", platform);
    CHECK(r && r->type == REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements; i++)
        freeReplyObject(redisCommand(c, "DEL %s", r->element[i]->str));
    freeReplyObject(r);
}

static void cleanup_keys(void)
{
    redisContext *c = sync_open(redis_sock());
    sync_del_prefix(c);
    redisFree(c);
}

static void close_store(store *s)
{
    store_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    unlink(logpath);
    LEAK_CHECK();
}

/* ---- callbacks ---- */

typedef struct res {
    int fired;
    int status;
    long long n;
    strbuf text; /* turns as "role: content\n", or the value */
    int has_value;
} res;

static void on_history(void *ud, int status, const store_history *h)
{
    res *r = ud;
    r->fired++;
    r->status = status;
    r->n = (long long)h->n_turns;
    strbuf_reset(&r->text);
    for (size_t i = 0; i < h->n_turns; i++)
        strbuf_printf(&r->text, "%s: %s\n", h->turns[i].role, h->turns[i].content);
}

static void on_done(void *ud, int status)
{
    res *r = ud;
    r->fired++;
    r->status = status;
}

static void on_len(void *ud, int status, long long n)
{
    res *r = ud;
    r->fired++;
    r->status = status;
    r->n = n;
}

static void on_string(void *ud, int status, const char *v)
{
    res *r = ud;
    r->fired++;
    r->status = status;
    strbuf_reset(&r->text);
    r->has_value = v != NULL;
    if (v)
        strbuf_puts(&r->text, v);
}

static void on_sandbox(void *ud, int status, const char *id, const char *host)
{
    res *r = ud;
    r->fired++;
    r->status = status;
    strbuf_reset(&r->text);
    r->has_value = id != NULL;
    if (id)
        strbuf_printf(&r->text, "%s@%s", id, host ? host : "(null)");
}

/* Each helper makes one call and waits for its callback. */
static void append(store *s, const char *ch, const char *u, const char *a, int want)
{
    res r = {0};
    CHECK_INT(store_history_append(s, platform, ch, u, a, on_done, &r), 0);
    CHECK(run_until(&r.fired, 5000));
    CHECK_INT(r.status, want);
    CHECK_INT(r.fired, 1);
}

static char *load(store *s, const char *ch, int want, long long *n_turns)
{
    res r = {0};
    CHECK_INT(store_history_load(s, platform, ch, on_history, &r), 0);
    CHECK(run_until(&r.fired, 5000));
    CHECK_INT(r.status, want);
    if (n_turns)
        *n_turns = r.n;
    return strbuf_steal(&r.text);
}

static long long hlen(store *s, const char *ch)
{
    res r = {0};
    CHECK_INT(store_history_len(s, platform, ch, on_len, &r), 0);
    CHECK(run_until(&r.fired, 5000));
    CHECK_INT(r.status, 0);
    return r.n;
}

static store *open_store(const char *url, size_t budget)
{
    store *s = NULL;
    CHECK_INT(store_open(&loop, url, budget, &s), 0);
    CHECK(s != NULL);
    return s;
}

static store *open_connected(size_t budget)
{
    store *s = open_store(test_url(), budget);
    for (int i = 0; i < 500 && !store_connected(s); i++)
        sleep_loop(10);
    CHECK(store_connected(s));
    return s;
}

/* ---- a redis-server of the test's own ---- */

static const char *srv_sock(void)
{
    static char p[128];
    snprintf(p, sizeof(p), "%s/redis.sock", srvdir);
    return p;
}

static void srv_kill(void)
{
    if (srvpid > 0) {
        kill(srvpid, SIGKILL);
        for (int i = 0; i < 200 && kill(srvpid, 0) == 0; i++)
            usleep(10000);
        srvpid = 0;
    }
    /* A SIGKILLed server leaves its pid file: the next one must not be mistaken for it. */
    if (srvdir[0]) {
        char pidf[128];
        snprintf(pidf, sizeof(pidf), "%s/redis.pid", srvdir);
        unlink(pidf);
    }
}

static void srv_cleanup(void)
{
    srv_kill();
    if (srvdir[0]) {
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", srvdir);
        CHECK(system(cmd) == 0);
        srvdir[0] = '\0';
    }
}

static void srv_dir(void)
{
    snprintf(srvdir, sizeof(srvdir), "/tmp/cbstore-XXXXXX");
    CHECK(mkdtemp(srvdir) != NULL);
    atexit(srv_cleanup);
}

/* EXTRA: more redis-server options (a TCP port, a password). */
static void srv_start_with(const char *extra)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "redis-server --port 0 --unixsocket %s/redis.sock --daemonize yes --pidfile "
             "%s/redis.pid --dir %s --logfile %s/redis.log --save '' --appendonly no %s",
             srvdir, srvdir, srvdir, srvdir, extra);
    CHECK(system(cmd) == 0);
    for (int i = 0; i < 200; i++) {
        redisContext *c = redisConnectUnix(srv_sock());
        int ok = c && !c->err;
        redisFree(c);
        char pidf[128];
        snprintf(pidf, sizeof(pidf), "%s/redis.pid", srvdir);
        FILE *f = fopen(pidf, "r");
        if (ok && f && fscanf(f, "%d", &srvpid) == 1 && srvpid > 0 && kill(srvpid, 0) == 0) {
            fclose(f);
            return;
        }
        if (f)
            fclose(f);
        usleep(20000);
    }
    CHECK(!"redis-server did not start");
}

static void srv_start(void)
{
    srv_start_with("");
}

static void wait_connected(store *s, int want)
{
    for (int i = 0; i < 1500 && store_connected(s) != want; i++)
        sleep_loop(10);
    CHECK_INT(store_connected(s), want);
}

static char *srv_lrange(const char *ch)
{
    redisContext *c = redisConnectUnix(srv_sock());
    CHECK(c && !c->err);
    redisReply *r = redisCommand(c, "LRANGE codebot:%s:%s:history 0 -1", platform, ch);
    CHECK(r && r->type == REDIS_REPLY_ARRAY);
    strbuf b = {0};
    for (size_t i = 0; i < r->elements; i++)
        strbuf_printf(&b, "%s\n", r->element[i]->str);
    freeReplyObject(r);
    redisFree(c);
    return strbuf_steal(&b);
}

/* ---- tests ---- */

TEST(bad_url_is_einval_and_logged)
{
    setup();
    store *s = (store *)1;
    CHECK_INT(store_open(&loop, "http://nope", 1000, &s), -EINVAL);
    CHECK(s == NULL);
    CHECK_INT(store_open(&loop, "redis://:pw@", 1000, &s), -EINVAL);
    CHECK_INT(log_count("REDIS_URL is invalid"), 2);
    setenv("CODEBOT_HISTORY_MAX_TURNS", "zero", 1);
    CHECK_INT(store_open(&loop, test_url(), 1000, &s), -EINVAL);
    CHECK_INT(log_count("CODEBOT_HISTORY_MAX_TURNS"), 1);
    CHECK_INT(uv_loop_close(&loop), 0);
    unlink(logpath);
    LEAK_CHECK();
}

TEST(append_load_round_trip_in_order)
{
    setup();
    store *s = open_connected(0);
    const char *ch = "C0:thread:1"; /* channel ids may hold ':' */
    append(s, ch, "first \"q\"\nline2", "answer 1 \xc3\xa9", 0);
    append(s, ch, "second", "answer 2", 0);
    append(s, ch, "third %s %n", "answer 3\t{}", 0);
    long long n;
    char *t = load(s, ch, 0, &n);
    CHECK_INT(n, 6);
    CHECK_STR(t, "user: first \"q\"\nline2\nassistant: answer 1 \xc3\xa9\n"
                 "user: second\nassistant: answer 2\n"
                 "user: third %s %n\nassistant: answer 3\t{}\n");
    free(t);
    CHECK_INT(hlen(s, ch), 6);
    /* The list holds one {"role","content"} JSON object per turn, under the documented key. */
    redisContext *c = sync_open(redis_sock());
    redisReply *r = redisCommand(c, "LINDEX codebot:%s:%s:history 0", platform, ch);
    CHECK(r && r->type == REDIS_REPLY_STRING);
    CHECK_STR(r->str, "{\"role\":\"user\",\"content\":\"first \\\"q\\\"\\nline2\"}");
    freeReplyObject(r);
    redisFree(c);
    t = load(s, "other", 0, &n);
    CHECK_INT(n, 0);
    free(t);
    cleanup_keys();
    close_store(s);
}

TEST(load_trims_to_budget_by_whole_pairs)
{
    setup();
    store *s = open_connected(30);
    const char *ch = "budget";
    append(s, ch, "u1-------", "a1-------", 0); /* 18 chars */
    append(s, ch, "u2---", "a2---", 0);         /* 10 */
    append(s, ch, "u3---", "a3---", 0);         /* 10 */
    append(s, ch, "u4", "a4\xe2\x82\xac", 0);   /* 5 characters (7 bytes) */
    long long n;
    char *t = load(s, ch, 0, &n);
    /* 5 + 10 + 10 = 25 fits 30; adding u1 (18) would not. */
    CHECK_INT(n, 6);
    CHECK_STR(t, "user: u2---\nassistant: a2---\nuser: u3---\nassistant: a3---\n"
                 "user: u4\nassistant: a4\xe2\x82\xac\n");
    free(t);
    cleanup_keys();
    close_store(s);
}

static size_t chars_of(const char *s)
{
    size_t c = 0;
    for (; *s; s++)
        c += ((unsigned char)*s & 0xC0) != 0x80;
    return c;
}

TEST(load_cuts_one_giant_pair_from_the_middle)
{
    setup();
    store *s = open_connected(200);
    const char *ch = "giant";
    strbuf big = {0};
    strbuf_puts(&big, "HEAD");
    for (int i = 0; i < 500; i++)
        strbuf_puts(&big, "\xc3\xa9xyz"); /* multi-byte characters must not be split */
    strbuf_puts(&big, "TAIL");
    append(s, ch, "older", "pair", 0);
    append(s, ch, "question", big.data, 0);
    long long n;
    char *t = load(s, ch, 0, &n);
    CHECK_INT(n, 2);
    CHECK(strncmp(t, "user: question\nassistant: HEAD", 30) == 0);
    CHECK(strstr(t, "TAIL\n") != NULL);
    const char *m = strstr(t, "\n[... ");
    CHECK(m != NULL);
    char *end;
    unsigned long omitted = strtoul(m + 6, &end, 10);
    CHECK(strncmp(end, " characters left out ...]\n", 26) == 0);
    /* What is kept plus the marker is exactly the budget; the user turn is whole. */
    const char *a = strstr(t, "assistant: ") + 11;
    size_t acount = chars_of(a) - 1; /* the final "\n" is ours */
    CHECK_INT(acount + strlen("question"), 200);
    size_t marker = strlen(m) - strlen(strstr(m, "]\n")) + 2;
    CHECK_INT(acount - marker + omitted, chars_of(big.data));
    /* The cut text is still valid UTF-8: no é was split. */
    strbuf check = {0};
    CHECK_INT(utf8_sanitize(&check, t, strlen(t)), 0);
    CHECK_STR(check.data, t);
    strbuf_free(&check);
    free(t);

    /* A user turn larger than the budget is cut too; the pair still fits the budget. */
    append(s, ch, big.data, "short answer", 0);
    t = load(s, ch, 0, &n);
    CHECK_INT(n, 2);
    CHECK(strstr(t, "assistant: short answer\n") != NULL);
    CHECK(strstr(t, "characters left out") != NULL);
    CHECK_INT(chars_of(t) - strlen("user: \nassistant: \n"), 200);
    free(t);
    strbuf_free(&big);
    cleanup_keys();
    close_store(s);
}

TEST(max_turns_caps_the_list)
{
    setup();
    setenv("CODEBOT_HISTORY_MAX_TURNS", "6", 1);
    store *s = open_connected(0);
    const char *ch = "cap";
    char u[16], a[16];
    for (int i = 1; i <= 5; i++) {
        snprintf(u, sizeof(u), "u%d", i);
        snprintf(a, sizeof(a), "a%d", i);
        append(s, ch, u, a, 0);
    }
    CHECK_INT(hlen(s, ch), 6);
    char *t = load(s, ch, 0, NULL);
    CHECK_STR(t, "user: u3\nassistant: a3\nuser: u4\nassistant: a4\nuser: u5\nassistant: a5\n");
    free(t);
    cleanup_keys();
    close_store(s);
}

TEST(malformed_entries_are_dropped_with_a_warning)
{
    setup();
    store *s = open_connected(0);
    const char *ch = "bad";
    redisContext *c = sync_open(redis_sock());
    const char *items[] = {
        "{\"role\":\"assistant\",\"content\":\"orphan answer\"}",
        "{\"role\":\"user\",\"content\":\"q1\"}",
        "not json",
        "{\"role\":\"assistant\",\"content\":\"a1\"}",
        "{\"role\":\"user\",\"content\":42}",
        "{\"role\":\"system\",\"content\":\"x\"}",
        "{\"role\":\"user\",\"content\":\"q2\"}",
        "{\"role\":\"user\",\"content\":\"q3\"}",
        "{\"role\":\"assistant\",\"content\":\"a3\"}",
        "{\"role\":\"user\"",
        "{\"role\":\"user\",\"content\":\"trailing question\"}",
    };
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
        freeReplyObject(redisCommand(c, "RPUSH codebot:%s:%s:history %s", platform, ch, items[i]));
    redisFree(c);
    char *t = load(s, ch, 0, NULL);
    CHECK_STR(t, "user: q1\nassistant: a1\nuser: q3\nassistant: a3\n");
    free(t);
    CHECK_INT(log_count("dropped 4 malformed entries"), 1);
    cleanup_keys();
    close_store(s);
}

TEST(clear_empties_the_history)
{
    setup();
    store *s = open_connected(0);
    append(s, "clr", "u", "a", 0);
    CHECK_INT(hlen(s, "clr"), 2);
    res r = {0};
    CHECK_INT(store_history_clear(s, platform, "clr", on_done, &r), 0);
    CHECK(run_until(&r.fired, 5000));
    CHECK_INT(r.status, 0);
    CHECK_INT(hlen(s, "clr"), 0);
    long long n = -1;
    free(load(s, "clr", 0, &n));
    CHECK_INT(n, 0);
    close_store(s);
}

TEST(sandbox_get_and_set)
{
    setup();
    store *s = open_connected(0);
    res r = {0};
    CHECK_INT(store_sandbox_get(s, platform, "sb", on_string, &r), 0);
    CHECK(run_until(&r.fired, 5000));
    CHECK_INT(r.status, 0);
    CHECK_INT(r.has_value, 0);
    res w = {0};
    CHECK_INT(store_sandbox_set(s, platform, "sb", "sbx-42", "host-a", on_done, &w), 0);
    CHECK(run_until(&w.fired, 5000));
    CHECK_INT(w.status, 0);
    res g = {0};
    CHECK_INT(store_sandbox_get(s, platform, "sb", on_string, &g), 0);
    CHECK(run_until(&g.fired, 5000));
    CHECK_INT(g.status, 0);
    CHECK_STR(g.text.data, "sbx-42");
    res l = {0};
    CHECK_INT(store_sandbox_lookup(s, platform, "sb", on_sandbox, &l), 0);
    CHECK(run_until(&l.fired, 5000));
    CHECK_STR(l.text.data, "sbx-42@host-a");
    redisContext *c = sync_open(redis_sock());
    redisReply *rr = redisCommand(c, "HGET codebot:%s:sb:sandbox host", platform);
    CHECK(rr && rr->type == REDIS_REPLY_STRING);
    CHECK_STR(rr->str, "host-a");
    freeReplyObject(rr);
    redisFree(c);
    CHECK_INT(store_sandbox_set(s, platform, "sb", NULL, "h", on_done, &w), -EINVAL);
    strbuf_free(&g.text);
    strbuf_free(&l.text);
    strbuf_free(&r.text);
    cleanup_keys();
    close_store(s);
}

TEST(dedup_reports_new_then_seen)
{
    setup();
    store *s = open_connected(0);
    res a = {0}, b = {0}, c = {0};
    CHECK_INT(store_dedup(s, platform, "evt:1", 60, on_done, &a), 0);
    CHECK_INT(store_dedup(s, platform, "evt:1", 60, on_done, &b), 0);
    CHECK_INT(store_dedup(s, platform, "evt:2", 60, on_done, &c), 0);
    CHECK(run_until(&c.fired, 5000));
    CHECK_INT(a.status, 1);
    CHECK_INT(b.status, 0);
    CHECK_INT(c.status, 1);
    redisContext *sc = sync_open(redis_sock());
    redisReply *r = redisCommand(sc, "TTL codebot:%s:dedup:evt:1", platform);
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer > 0 && r->integer <= 60);
    freeReplyObject(r);
    redisFree(sc);
    CHECK_INT(store_dedup(s, platform, "evt:3", 0, on_done, &a), -EINVAL);
    cleanup_keys();
    close_store(s);
}

TEST(history_survives_a_new_store)
{
    setup();
    store *s = open_connected(0);
    append(s, "restart", "before restart", "kept", 0);
    store_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    s = open_connected(0);
    char *t = load(s, "restart", 0, NULL);
    CHECK_STR(t, "user: before restart\nassistant: kept\n");
    free(t);
    cleanup_keys();
    close_store(s);
}

TEST(redis_down_at_start_then_up)
{
    setup();
    srv_dir();
    char url[200];
    snprintf(url, sizeof(url), "unix://%s", srv_sock());
    store *s = open_store(url, 0);
    /* Nothing listens: calls succeed and answer -ECONNREFUSED with empty data, never inside
     * the call itself. */
    res l = {0}, w1 = {0}, w2 = {0}, n = {0}, d = {0}, g = {0};
    CHECK_INT(store_history_load(s, platform, "c", on_history, &l), 0);
    CHECK_INT(store_history_append(s, platform, "c", "queued q1", "queued a1", on_done, &w1), 0);
    CHECK_INT(store_history_len(s, platform, "c", on_len, &n), 0);
    CHECK_INT(store_dedup(s, platform, "e", 10, on_done, &d), 0);
    CHECK_INT(store_sandbox_get(s, platform, "c", on_string, &g), 0);
    CHECK_INT(l.fired + w1.fired + n.fired + d.fired + g.fired, 0);
    CHECK(run_until(&g.fired, 2000));
    CHECK_INT(l.fired, 1);
    CHECK_INT(l.status, -ECONNREFUSED);
    CHECK_INT(l.n, 0);
    CHECK_INT(w1.status, -ECONNREFUSED);
    CHECK_INT(n.status, -ECONNREFUSED);
    CHECK_INT(d.status, -ECONNREFUSED);
    CHECK_INT(g.status, -ECONNREFUSED);
    CHECK_INT(g.has_value, 0);
    CHECK_INT(store_connected(s), 0);
    /* Retries go on (0.5 s, 1 s, ...) but the outage is logged once. */
    sleep_loop(1700);
    CHECK_INT(store_history_append(s, platform, "c", "queued q2", "queued a2", on_done, &w2), 0);
    CHECK(run_until(&w2.fired, 2000));
    CHECK_INT(w2.status, -ECONNREFUSED);
    CHECK_INT(log_count("Redis unavailable: history is not being saved (will retry)"), 1);
    /* Redis comes up: the store reconnects and the queued writes land, in order. */
    srv_start();
    int up = 0;
    for (int i = 0; i < 1000 && !(up = store_connected(s)); i++)
        sleep_loop(10);
    CHECK(up);
    store_flush(s, 5000);
    CHECK_INT(log_count("Redis connection restored"), 1);
    char *t = load(s, "c", 0, NULL);
    CHECK_STR(t, "user: queued q1\nassistant: queued a1\nuser: queued q2\nassistant: queued a2\n");
    free(t);
    char *raw = srv_lrange("c");
    CHECK(strstr(raw, "queued q1") != NULL);
    free(raw);
    /* Callbacks fired exactly once each. */
    CHECK_INT(w1.fired + w2.fired, 2);
    close_store(s);
    srv_cleanup();
}

TEST(connection_lost_midway_recovers)
{
    setup();
    srv_dir();
    srv_start();
    char url[200];
    snprintf(url, sizeof(url), "unix://%s", srv_sock());
    store *s = open_store(url, 0);
    for (int i = 0; i < 500 && !store_connected(s); i++)
        sleep_loop(10);
    CHECK(store_connected(s));
    append(s, "m", "q1", "a1", 0);

    /* A command in flight when the server dies gets -EIO. */
    CHECK_INT(kill(srvpid, SIGSTOP), 0);
    res w = {0};
    CHECK_INT(store_history_append(s, platform, "m", "lost?", "maybe", on_done, &w), 0);
    sleep_loop(200);
    CHECK_INT(w.fired, 0);
    srv_kill();
    CHECK(run_until(&w.fired, 5000));
    CHECK_INT(w.status, -EIO);
    CHECK_INT(store_connected(s), 0);
    CHECK_INT(log_count("Redis unavailable"), 1);
    /* Writes during the outage are queued and land after the reconnect. */
    res w2 = {0};
    CHECK_INT(store_history_append(s, platform, "m", "q2", "a2", on_done, &w2), 0);
    CHECK(run_until(&w2.fired, 2000));
    CHECK_INT(w2.status, -ECONNREFUSED);
    srv_start();
    int up = 0;
    for (int i = 0; i < 1000 && !(up = store_connected(s)); i++)
        sleep_loop(10);
    CHECK(up);
    store_flush(s, 5000);
    CHECK_INT(log_count("Redis connection restored"), 1);
    char *t = load(s, "m", 0, NULL); /* the server started empty */
    CHECK_STR(t, "user: q2\nassistant: a2\n");
    free(t);

    /* The server closes our connection (CLIENT KILL): the store notices and reconnects. */
    redisContext *c = redisConnectUnix(srv_sock());
    CHECK(c && !c->err);
    redisReply *r = redisCommand(c, "CLIENT KILL TYPE normal SKIPME yes");
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    redisFree(c);
    for (int i = 0; i < 500 && store_connected(s); i++)
        sleep_loop(10);
    for (int i = 0; i < 500 && !store_connected(s); i++)
        sleep_loop(10);
    CHECK(store_connected(s));
    append(s, "m", "q3", "a3", 0);
    t = load(s, "m", 0, NULL);
    CHECK_STR(t, "user: q2\nassistant: a2\nuser: q3\nassistant: a3\n");
    free(t);
    CHECK_INT(log_count("Redis unavailable"), 2);
    CHECK_INT(log_count("Redis connection restored"), 2);
    close_store(s);
    srv_cleanup();
}

TEST(close_cancels_pending_calls)
{
    setup();
    store *s = open_connected(0);
    res l = {0}, w = {0}, d = {0}, n = {0};
    CHECK_INT(store_history_load(s, platform, "x", on_history, &l), 0);
    CHECK_INT(store_history_append(s, platform, "x", "u", "a", on_done, &w), 0);
    CHECK_INT(store_dedup(s, platform, "k", 5, on_done, &d), 0);
    CHECK_INT(store_history_len(s, platform, "x", on_len, &n), 0);
    store_close(s);
    CHECK_INT(l.fired, 1);
    CHECK_INT(l.status, -ECANCELED);
    CHECK_INT(w.fired, 1);
    CHECK_INT(w.status, -ECANCELED);
    CHECK_INT(d.fired, 1);
    CHECK_INT(d.status, -ECANCELED);
    CHECK_INT(n.fired, 1);
    CHECK_INT(n.status, -ECANCELED);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(l.fired + w.fired + d.fired + n.fired, 4);
    CHECK_INT(uv_loop_close(&loop), 0);
    unlink(logpath);
    cleanup_keys();
    LEAK_CHECK();
}

static store *closing_store;
static res closed_from_cb;

static void close_in_callback(void *ud, int status)
{
    on_done(ud, status);
    store_close(closing_store);
}

TEST(close_from_inside_a_callback)
{
    setup();
    store *s = open_connected(0);
    closing_store = s;
    res a = {0};
    CHECK_INT(store_dedup(s, platform, "k1", 5, close_in_callback, &a), 0);
    CHECK_INT(store_dedup(s, platform, "k2", 5, on_done, &closed_from_cb), 0);
    CHECK(run_until(&a.fired, 5000));
    CHECK_INT(a.status, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(closed_from_cb.fired, 1);
    CHECK(closed_from_cb.status == -ECANCELED || closed_from_cb.status == 1);
    CHECK_INT(uv_loop_close(&loop), 0);
    unlink(logpath);
    cleanup_keys();
    LEAK_CHECK();
}

TEST(close_while_down_and_queue_bound)
{
    setup();
    store *s = open_store("unix:///nonexistent/codebot-test.sock", 0);
    static res w[1002];
    for (int i = 0; i < 1001; i++)
        CHECK_INT(store_history_append(s, platform, "q", "u", "a", on_done, &w[i]), 0);
    CHECK(run_until(&w[1000].fired, 2000));
    CHECK_INT(w[0].status, -ECONNREFUSED);
    CHECK_INT(w[999].status, -ECONNREFUSED);
    CHECK_INT(w[1000].status, -ENOBUFS);
    CHECK_INT(log_count("write queue full"), 1);
    /* A write whose answer is still to be delivered is cancelled by close. */
    CHECK_INT(store_history_append(s, platform, "q", "u", "a", on_done, &w[1001]), 0);
    /* Flush gives up after its timeout: Redis never comes back. */
    uint64_t t0 = uv_hrtime();
    store_flush(s, 300);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    CHECK(ms >= 250 && ms < 3000);
    CHECK_INT(w[1001].fired, 1);
    close_store(s);
    for (int i = 0; i < 1002; i++)
        CHECK_INT(w[i].fired, 1);
}

/* A TCP port nobody uses right now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

TEST(tcp_with_password_and_db)
{
    setup();
    srv_dir();
    int port = free_port();
    char extra[128], url[200];
    snprintf(extra, sizeof(extra), "--port %d --bind 127.0.0.1 --requirepass 'pw:@/x'", port);
    srv_start_with(extra);
    /* A host name, resolved off the loop; the password percent-encoded; database 3. */
    snprintf(url, sizeof(url), "redis://:pw%%3A%%40%%2Fx@localhost:%d/3", port);
    store *s = open_store(url, 0);
    wait_connected(s, 1);
    append(s, "tcp", "over tcp", "yes", 0);
    redisContext *c = redisConnectUnix(srv_sock());
    CHECK(c && !c->err);
    freeReplyObject(redisCommand(c, "AUTH %s", "pw:@/x"));
    freeReplyObject(redisCommand(c, "SELECT 3"));
    redisReply *r = redisCommand(c, "LLEN codebot:%s:tcp:history", platform);
    CHECK(r && r->type == REDIS_REPLY_INTEGER);
    CHECK_INT(r->integer, 2);
    freeReplyObject(r);
    redisFree(c);
    store_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    /* The password never reaches the log. */
    CHECK_INT(log_count("pw:@/x"), 0);

    /* A wrong password is an outage (logged once, retried), not a crash. */
    snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%d", port);
    s = open_store(url, 0);
    res l = {0};
    CHECK_INT(store_history_load(s, platform, "tcp", on_history, &l), 0);
    CHECK(run_until(&l.fired, 5000));
    CHECK_INT(l.status, -ECONNREFUSED);
    sleep_loop(1000);
    CHECK_INT(store_connected(s), 0);
    CHECK_INT(log_count("AUTH refused"), 1);
    store_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);

    /* Nobody listens on the port any more: the refusal is noticed at once, not after the
     * connect timeout. */
    srv_kill();
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    s = open_store(url, 0);
    res l2 = {0};
    CHECK_INT(store_history_load(s, platform, "tcp", on_history, &l2), 0);
    CHECK(run_until(&l2.fired, 2000));
    CHECK_INT(l2.status, -ECONNREFUSED);
    close_store(s);
    srv_cleanup();
}

TEST(unresponsive_redis_is_dropped_and_recovered)
{
    setup();
    srv_dir();
    srv_start();
    char url[200];
    snprintf(url, sizeof(url), "unix://%s", srv_sock());
    store *s = open_store(url, 0);
    wait_connected(s, 1);
    CHECK_INT(kill(srvpid, SIGSTOP), 0);
    res w = {0};
    CHECK_INT(store_history_append(s, platform, "h", "q", "a", on_done, &w), 0);
    CHECK(run_until(&w.fired, 15000));
    CHECK_INT(w.status, -EIO);
    CHECK_INT(log_count("no reply for 10 s"), 1);
    CHECK_INT(kill(srvpid, SIGCONT), 0);
    wait_connected(s, 1);
    append(s, "h", "q2", "a2", 0);
    /* The dropped command may still have been applied when Redis woke up (that is why -EIO
     * says "unknown" and it is not re-sent); the new one is there, once. */
    char *t = load(s, "h", 0, NULL);
    CHECK(strcmp(t, "user: q2\nassistant: a2\n") == 0 ||
          strcmp(t, "user: q\nassistant: a\nuser: q2\nassistant: a2\n") == 0);
    free(t);
    close_store(s);
    srv_cleanup();
}

TEST(calls_made_while_connecting_wait_for_the_connection)
{
    setup();
    store *s = open_store(test_url(), 0);
    CHECK_INT(store_connected(s), 0);
    res w = {0}, l = {0};
    CHECK_INT(store_history_append(s, platform, "early", "hello", "hi", on_done, &w), 0);
    CHECK_INT(store_history_load(s, platform, "early", on_history, &l), 0);
    CHECK(run_until(&l.fired, 5000));
    CHECK_INT(w.fired, 1);
    CHECK_INT(w.status, 0);
    CHECK_INT(l.status, 0);
    CHECK_STR(l.text.data, "user: hello\nassistant: hi\n");
    CHECK_INT(log_count("Redis unavailable"), 0);
    strbuf_free(&l.text);
    cleanup_keys();
    close_store(s);
}

/* Unit tests for bot/llm.c (and bot/http.c under it): each test starts
 * tests/fakes/fake_llm.py with a script, drives one client on a uv loop against it, and
 * checks what came back and what the fake logged as sent. */
#include "tests/unit/check.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "bot/llm.h"
#include "common/strbuf.h"
#include "tests/unit/fake_llm.h"

#define KEY "sk-test-0123456789abcdef"

/* ---- driving the client ---- */

typedef struct run {
    uv_loop_t loop;
    llm_client *client;
    llm_call *call;
    strbuf text;
    int n_text;
    int n_done;
    int n_text_after_done;
    enum llm_status status;
    int http_status;
    char message[512];
    char stop_reason[64];
    int n_wait;
    int wait_attempt[8];
    double wait_secs[8];
    int wait_status[8];
    int cancel_on_text; /* llm_cancel from the Nth on_text */
    int free_on_text;   /* llm_client_free from the Nth on_text */
    int cancel_on_wait; /* llm_cancel inside the Nth on_wait */
    uint64_t cancel_ms; /* llm_cancel from a timer this long after the first on_wait */
    uv_timer_t cancel_timer;
    uint64_t t0, t_done;
} run;

static void on_cancel_timer(uv_timer_t *t)
{
    run *r = t->data;
    llm_cancel(r->call);
    uv_close((uv_handle_t *)t, NULL);
}

static void on_text(void *ud, const char *s, size_t n)
{
    run *r = ud;
    if (r->n_done)
        r->n_text_after_done++;
    strbuf_append(&r->text, s, n);
    r->n_text++;
    if (r->cancel_on_text == r->n_text)
        llm_cancel(r->call);
    if (r->free_on_text == r->n_text) {
        llm_client_free(r->client);
        r->client = NULL;
    }
}

static void on_wait(void *ud, int attempt, double secs, int status)
{
    run *r = ud;
    CHECK(r->n_wait < 8);
    r->wait_attempt[r->n_wait] = attempt;
    r->wait_secs[r->n_wait] = secs;
    r->wait_status[r->n_wait] = status;
    r->n_wait++;
    if (r->cancel_on_wait == r->n_wait)
        llm_cancel(r->call);
    if (r->cancel_ms && r->n_wait == 1) {
        uv_timer_init(&r->loop, &r->cancel_timer);
        r->cancel_timer.data = r;
        uv_timer_start(&r->cancel_timer, on_cancel_timer, r->cancel_ms, 0);
    }
}

static void on_done(void *ud, const llm_result *res)
{
    run *r = ud;
    r->n_done++;
    r->t_done = uv_hrtime();
    r->status = res->status;
    r->http_status = res->http_status;
    snprintf(r->message, sizeof r->message, "%s", res->message ? res->message : "");
    snprintf(r->stop_reason, sizeof r->stop_reason, "%s", res->stop_reason ? res->stop_reason : "");
    CHECK(res->status == LLM_OK || res->message != NULL);
    /* Freeing the client from inside on_done is allowed. */
    if (r->client) {
        llm_client_free(r->client);
        r->client = NULL;
    }
}

static const llm_msg three_msgs[] = {
    {"user", "first question"},
    {"assistant", "first answer"},
    {"user", "second question"},
};

static llm_config config(enum llm_provider p, const char *key)
{
    static char base[96];
    if (p == LLM_ANTHROPIC)
        snprintf(base, sizeof base, "%s", fake.url);
    else
        snprintf(base, sizeof base, "%s/v1", fake.url);
    llm_config cfg = {
        .provider = p,
        .base_url = base,
        .api_key = key,
        .model = "test-model",
        .max_tokens = 1000,
        .max_retries = 3,
        .connect_timeout_ms = 2000,
        .idle_timeout_ms = 5000,
    };
    return cfg;
}

/* Runs one call to the end; the loop must then have nothing left open. */
static void drive(run *r, const llm_config *cfg, const llm_request *req)
{
    CHECK_INT(uv_loop_init(&r->loop), 0);
    CHECK_INT(llm_client_new(&r->loop, cfg, &r->client), 0);
    llm_callbacks cb = {on_text, on_wait, on_done};
    r->t0 = uv_hrtime();
    CHECK_INT(llm_generate(r->client, req, &cb, r, &r->call), 0);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    CHECK_INT(r->n_done, 1);
    CHECK_INT(r->n_text_after_done, 0);
    CHECK(r->client == NULL);
    CHECK_INT(uv_loop_close(&r->loop), 0);
}

static void go(run *r, enum llm_provider p, const char *key)
{
    llm_config cfg = config(p, key);
    llm_request req = {"You write Python.", three_msgs, 3};
    drive(r, &cfg, &req);
}

static double elapsed(const run *r)
{
    return (double)(r->t_done - r->t0) / 1e9;
}

static const char long_text[] =
    "Here is the code:\n```python\nfor i in range(10):\n    print(i * i)\n```\n"
    "It prints the first ten squares, one per line. \xc3\xa9\xe2\x82\xac done.";

/* ---- tests ---- */

TEST(anthropic_streams_text_in_order)
{
    fake_start("[{\"text\": \"Here is the code:\\n```python\\nfor i in range(10):\\n    "
               "print(i * i)\\n```\\nIt prints the first ten squares, one per line. "
               "\\u00e9\\u20ac done.\", \"chunk\": 3, \"delay_ms\": 1}]",
               KEY);
    run r = {0};
    go(&r, LLM_ANTHROPIC, KEY);
    CHECK_INT(r.status, LLM_OK);
    CHECK_INT(r.http_status, 200);
    CHECK_STR(r.text.data, long_text);
    CHECK(r.n_text > 20);
    CHECK_STR(r.stop_reason, "end_turn");

    cJSON *log = fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 1);
    cJSON *q = cJSON_GetArrayItem(log, 0);
    CHECK_STR(cJSON_GetObjectItem(q, "path")->valuestring, "/v1/messages");
    CHECK_STR(header(q, "x-api-key"), KEY);
    CHECK_STR(header(q, "anthropic-version"), "2023-06-01");
    CHECK_STR(header(q, "content-type"), "application/json");
    CHECK(header(q, "authorization") == NULL);
    cJSON *b = cJSON_GetObjectItem(q, "body");
    CHECK_STR(cJSON_GetObjectItem(b, "model")->valuestring, "test-model");
    CHECK_INT(cJSON_GetObjectItem(b, "max_tokens")->valueint, 1000);
    CHECK_STR(cJSON_GetObjectItem(b, "system")->valuestring, "You write Python.");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(b, "stream")));
    cJSON *msgs = cJSON_GetObjectItem(b, "messages");
    CHECK_INT(cJSON_GetArraySize(msgs), 3);
    for (int i = 0; i < 3; i++) {
        cJSON *m = cJSON_GetArrayItem(msgs, i);
        CHECK_STR(cJSON_GetObjectItem(m, "role")->valuestring, three_msgs[i].role);
        CHECK_STR(cJSON_GetObjectItem(m, "content")->valuestring, three_msgs[i].content);
    }
    cJSON_Delete(log);
    strbuf_free(&r.text);
}

TEST(openai_streams_text_in_order)
{
    fake_start("[{\"text\": \"Here is the code:\\n```python\\nfor i in range(10):\\n    "
               "print(i * i)\\n```\\nIt prints the first ten squares, one per line. "
               "\\u00e9\\u20ac done.\", \"chunk\": 2, \"delay_ms\": 1}]",
               KEY);
    run r = {0};
    go(&r, LLM_OPENAI, KEY);
    CHECK_INT(r.status, LLM_OK);
    CHECK_STR(r.text.data, long_text);
    CHECK(r.n_text > 20);
    CHECK_STR(r.stop_reason, "stop");

    cJSON *log = fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 1);
    cJSON *q = cJSON_GetArrayItem(log, 0);
    CHECK_STR(cJSON_GetObjectItem(q, "path")->valuestring, "/v1/chat/completions");
    CHECK_STR(header(q, "authorization"), "Bearer " KEY);
    CHECK(header(q, "x-api-key") == NULL);
    cJSON *b = cJSON_GetObjectItem(q, "body");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(b, "stream")));
    CHECK(cJSON_GetObjectItem(b, "system") == NULL);
    cJSON *msgs = cJSON_GetObjectItem(b, "messages");
    CHECK_INT(cJSON_GetArraySize(msgs), 4);
    cJSON *sys = cJSON_GetArrayItem(msgs, 0);
    CHECK_STR(cJSON_GetObjectItem(sys, "role")->valuestring, "system");
    CHECK_STR(cJSON_GetObjectItem(sys, "content")->valuestring, "You write Python.");
    for (int i = 0; i < 3; i++) {
        cJSON *m = cJSON_GetArrayItem(msgs, i + 1);
        CHECK_STR(cJSON_GetObjectItem(m, "role")->valuestring, three_msgs[i].role);
        CHECK_STR(cJSON_GetObjectItem(m, "content")->valuestring, three_msgs[i].content);
    }
    cJSON_Delete(log);
    strbuf_free(&r.text);
}

TEST(openai_without_key_sends_no_authorization)
{
    fake_start("[{\"text\": \"echo: {{last_user}}\"}]", NULL);
    run r = {0};
    go(&r, LLM_OPENAI, NULL);
    CHECK_INT(r.status, LLM_OK);
    CHECK_STR(r.text.data, "echo: second question");
    cJSON *log = fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 1);
    CHECK(header(cJSON_GetArrayItem(log, 0), "authorization") == NULL);
    cJSON_Delete(log);
    strbuf_free(&r.text);
}

TEST(pings_and_comments_ignored)
{
    const char *script = "[{\"text\": \"abcdefghijklmnop\", \"chunk\": 3, \"ping\": true}]";
    for (int p = 0; p < 2; p++) {
        fake_start(script, KEY);
        run r = {0};
        go(&r, p ? LLM_OPENAI : LLM_ANTHROPIC, KEY);
        CHECK_INT(r.status, LLM_OK);
        CHECK_STR(r.text.data, "abcdefghijklmnop");
        CHECK_INT(r.n_text, 6);
        strbuf_free(&r.text);
        fake_stop();
    }
}

TEST(overloaded_529_waits_retry_after_then_succeeds)
{
    fake_start("[{\"status\": 529, \"headers\": {\"retry-after\": \"1\"}},"
               " {\"text\": \"fine now\"}]",
               KEY);
    run r = {0};
    go(&r, LLM_ANTHROPIC, KEY);
    CHECK_INT(r.status, LLM_OK);
    CHECK_STR(r.text.data, "fine now");
    CHECK_INT(r.n_wait, 1);
    CHECK_INT(r.wait_attempt[0], 1);
    CHECK(r.wait_secs[0] == 1.0);
    CHECK_INT(r.wait_status[0], 529);
    CHECK(elapsed(&r) >= 0.9);
    cJSON *log = fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 2);
    cJSON_Delete(log);
    strbuf_free(&r.text);
}

TEST(rate_limited_429_without_header_backs_off)
{
    fake_start("[{\"status\": 429}, {\"status\": 429}, {\"text\": \"ok\"}]", KEY);
    run r = {0};
    go(&r, LLM_OPENAI, KEY);
    CHECK_INT(r.status, LLM_OK);
    CHECK_STR(r.text.data, "ok");
    CHECK_INT(r.n_wait, 2);
    /* 0.5 s then 1 s, each times a jitter of 0.75 to 1. */
    CHECK(r.wait_secs[0] >= 0.375 && r.wait_secs[0] <= 0.5);
    CHECK(r.wait_secs[1] >= 0.75 && r.wait_secs[1] <= 1.0);
    CHECK_INT(r.wait_attempt[1], 2);
    CHECK_INT(r.wait_status[1], 429);
    strbuf_free(&r.text);
}

TEST(retry_after_ms_and_http_date)
{
    char date[64], script[256];
    time_t when = time(NULL) + 30;
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(script, sizeof script,
             "[{\"status\": 503, \"headers\": {\"retry-after-ms\": \"120\"}},"
             " {\"status\": 500, \"headers\": {\"retry-after\": \"%s\"}}, {\"text\": \"ok\"}]",
             date);
    fake_start(script, KEY);
    run r = {.cancel_on_wait = 2};
    go(&r, LLM_ANTHROPIC, KEY);
    CHECK_INT(r.status, LLM_ERR_CANCELLED);
    CHECK_INT(r.n_wait, 2);
    CHECK(r.wait_secs[0] > 0.119 && r.wait_secs[0] < 0.121);
    CHECK_INT(r.wait_status[0], 503);
    /* The date is 30 s ahead when the script is written; some of that passes before. */
    CHECK(r.wait_secs[1] >= 15.0 && r.wait_secs[1] <= 30.0);
    CHECK_INT(r.wait_status[1], 500);
}

TEST(retry_after_over_a_minute_is_capped)
{
    fake_start("[{\"status\": 429, \"headers\": {\"retry-after\": \"3600\"}}]", KEY);
    run r = {.cancel_on_wait = 1};
    go(&r, LLM_ANTHROPIC, KEY);
    CHECK_INT(r.n_wait, 1);
    CHECK(r.wait_secs[0] == 60.0);
    CHECK_INT(r.status, LLM_ERR_CANCELLED);
}

TEST(retries_exhausted)
{
    fake_start("[{\"status\": 529, \"headers\": {\"retry-after-ms\": \"20\"}}]", KEY);
    run r = {0};
    llm_config cfg = config(LLM_ANTHROPIC, KEY);
    cfg.max_retries = 2;
    llm_request req = {NULL, three_msgs, 1};
    drive(&r, &cfg, &req);
    CHECK_INT(r.status, LLM_ERR_RETRIES);
    CHECK_INT(r.http_status, 529);
    CHECK_INT(r.n_wait, 2);
    CHECK(strstr(r.message, "overloaded") != NULL);
    CHECK(strstr(r.message, "gave up after 2 retries") != NULL);
    cJSON *log = fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 3);
    /* No system prompt given: none sent. */
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(log, 0), "body"), "system") ==
          NULL);
    cJSON_Delete(log);
}

TEST(x_should_retry_overrides_status)
{
    fake_start("[{\"status\": 500, \"headers\": {\"x-should-retry\": \"false\"}},"
               " {\"text\": \"never\"}]",
               KEY);
    run r = {0};
    go(&r, LLM_ANTHROPIC, KEY);
    CHECK_INT(r.status, LLM_ERR_HTTP);
    CHECK_INT(r.n_wait, 0);
    fake_stop();
    fake_start("[{\"status\": 400, \"headers\": {\"x-should-retry\": \"true\","
               " \"retry-after\": \"0\"}}, {\"text\": \"ok\"}]",
               KEY);
    run r2 = {0};
    go(&r2, LLM_ANTHROPIC, KEY);
    CHECK_INT(r2.status, LLM_OK);
    CHECK_INT(r2.n_wait, 1);
    strbuf_free(&r2.text);
}

TEST(bad_key_401_says_so_without_the_key)
{
    const char *wrong = "sk-wrong-key-987654321";
    fake_start("[{\"text\": \"unused\"}]", KEY);
    run r = {0};
    go(&r, LLM_ANTHROPIC, wrong);
    CHECK_INT(r.status, LLM_ERR_HTTP);
    CHECK_INT(r.http_status, 401);
    CHECK_STR(r.message, "the API key was rejected (401 authentication_error: invalid x-api-key)");
    CHECK(strstr(r.message, wrong) == NULL);
    CHECK_INT(r.n_wait, 0);
    fake_stop();

    fake_start("[{\"text\": \"unused\"}]", KEY);
    run r2 = {0};
    go(&r2, LLM_OPENAI, wrong);
    CHECK_INT(r2.status, LLM_ERR_HTTP);
    CHECK(strstr(r2.message, "the API key was rejected (401") == r2.message);
    CHECK(strstr(r2.message, wrong) == NULL);
}

TEST(missing_key_401_says_none_configured)
{
    fake_start("[{\"text\": \"unused\"}]", KEY);
    run r = {0};
    go(&r, LLM_OPENAI, NULL);
    CHECK_INT(r.status, LLM_ERR_HTTP);
    CHECK(strstr(r.message, "none is configured") != NULL);
}

TEST(unknown_model_404)
{
    fake_start("[{\"status\": 404}]", KEY);
    run r = {0};
    go(&r, LLM_ANTHROPIC, KEY);
    CHECK_INT(r.status, LLM_ERR_HTTP);
    CHECK_INT(r.http_status, 404);
    CHECK_STR(r.message, "model 'test-model' not found (404 not_found_error: model: test-model)");
    fake_stop();
    fake_start("[{\"status\": 404}]", KEY);
    run r2 = {0};
    go(&r2, LLM_OPENAI, KEY);
    CHECK(strstr(r2.message, "model 'test-model' not found (404 invalid_request_error: The "
                             "model `test-model` does not exist") == r2.message);
}

TEST(invalid_request_400_carries_the_reason)
{
    fake_start("[{\"text\": \"unused\"}]", KEY);
    run r = {0};
    llm_config cfg = config(LLM_ANTHROPIC, KEY);
    llm_msg starts_with_assistant[] = {{"assistant", "hi"}};
    llm_request req = {NULL, starts_with_assistant, 1};
    drive(&r, &cfg, &req);
    CHECK_INT(r.status, LLM_ERR_HTTP);
    CHECK_INT(r.http_status, 400);
    CHECK(strstr(r.message, "rejected the request (400 invalid_request_error: messages: roles "
                            "must alternate") != NULL);
}

TEST(error_event_mid_stream)
{
    fake_start("[{\"text\": \"partial answer\", \"chunk\": 4, \"error_event\": {\"type\": "
               "\"overloaded_error\", \"message\": \"Overloaded\"}}]",
               KEY);
    run r = {0};
    go(&r, LLM_ANTHROPIC, KEY);
    CHECK_INT(r.status, LLM_ERR_STREAM);
    CHECK_INT(r.http_status, 200);
    CHECK_STR(r.text.data, "partial answer");
    CHECK_STR(r.message, "the model's stream failed (overloaded_error: Overloaded)");
    CHECK_INT(r.n_wait, 0);
    strbuf_free(&r.text);
}

TEST(openai_error_object_mid_stream)
{
    fake_start("[{\"text\": \"partial\", \"error_event\": {\"type\": \"server_error\", "
               "\"message\": \"model crashed\"}}]",
               NULL);
    run r = {0};
    go(&r, LLM_OPENAI, NULL);
    CHECK_INT(r.status, LLM_ERR_STREAM);
    CHECK(strstr(r.message, "model crashed") != NULL);
    strbuf_free(&r.text);
}

TEST(cut_stream_is_an_error_not_a_retry)
{
    for (int p = 0; p < 2; p++) {
        fake_start("[{\"text\": \"abcdefghijklmnopqrstuvwxyz\", \"chunk\": 5, \"cut_after\": 2},"
                   " {\"text\": \"second try\"}]",
                   KEY);
        run r = {0};
        go(&r, p ? LLM_OPENAI : LLM_ANTHROPIC, KEY);
        CHECK_INT(r.status, LLM_ERR_STREAM);
        CHECK_STR(r.text.data, "abcdefghij");
        CHECK(strstr(r.message, "the model's stream was cut off: ") == r.message);
        CHECK_INT(r.n_wait, 0);
        cJSON *log = fake_requests();
        CHECK_INT(cJSON_GetArraySize(log), 1);
        cJSON_Delete(log);
        strbuf_free(&r.text);
        fake_stop();
    }
}

TEST(cut_before_any_text_is_retried)
{
    fake_start("[{\"text\": \"abc\", \"cut_after\": 0}, {\"text\": \"second try\"}]", KEY);
    run r = {0};
    go(&r, LLM_ANTHROPIC, KEY);
    CHECK_INT(r.status, LLM_OK);
    CHECK_STR(r.text.data, "second try");
    CHECK_INT(r.n_wait, 1);
    strbuf_free(&r.text);
}

TEST(connection_refused_is_retried_then_given_up)
{
    /* A port that was free a moment ago: nothing listens there. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK_INT(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_INT(getsockname(s, (struct sockaddr *)&a, &al), 0);
    snprintf(fake.url, sizeof fake.url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    close(s);
    run r = {0};
    llm_config cfg = config(LLM_OPENAI, NULL);
    cfg.max_retries = 1;
    llm_request req = {NULL, three_msgs, 1};
    drive(&r, &cfg, &req);
    CHECK_INT(r.status, LLM_ERR_RETRIES);
    CHECK_INT(r.http_status, 0);
    CHECK_INT(r.n_wait, 1);
    CHECK_INT(r.wait_status[0], 0);
    CHECK(strstr(r.message, "could not reach the model's API at http://127.0.0.1:") == r.message);
    CHECK(strstr(r.message, "gave up after 1 retry") != NULL);
}

TEST(idle_timeout)
{
    fake_start("[{\"text\": \"abcdefghij\", \"chunk\": 5, \"stall_ms\": 6000}]", KEY);
    run r = {0};
    llm_config cfg = config(LLM_ANTHROPIC, KEY);
    cfg.idle_timeout_ms = 1500;
    llm_request req = {NULL, three_msgs, 1};
    drive(&r, &cfg, &req);
    CHECK_INT(r.status, LLM_ERR_STREAM);
    CHECK_STR(r.message, "no data from the model for 1.5 s");
    CHECK_STR(r.text.data, "abcde");
    CHECK(elapsed(&r) < 5.5);
    strbuf_free(&r.text);
}

TEST(cancel_during_stream)
{
    fake_start("[{\"text\": \"abcdefghijklmnopqrstuvwxyz\", \"chunk\": 2, \"delay_ms\": 20}]", KEY);
    run r = {.cancel_on_text = 3};
    go(&r, LLM_ANTHROPIC, KEY);
    CHECK_INT(r.status, LLM_ERR_CANCELLED);
    CHECK_INT(r.n_text, 3);
    CHECK_STR(r.text.data, "abcdef");
    strbuf_free(&r.text);
}

TEST(cancel_during_retry_wait)
{
    fake_start("[{\"status\": 529, \"headers\": {\"retry-after\": \"2\"}}, {\"text\": \"no\"}]",
               KEY);
    run r = {.cancel_ms = 100};
    go(&r, LLM_ANTHROPIC, KEY);
    CHECK_INT(r.status, LLM_ERR_CANCELLED);
    CHECK_INT(r.n_wait, 1);
    CHECK_INT(r.n_text, 0);
    CHECK(elapsed(&r) < 1.5);
    cJSON *log = fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 1);
    cJSON_Delete(log);
}

/* Two calls at once; freeing the client from inside one's on_text ends both. */
typedef struct pair {
    run a, b;
    llm_client *client;
} pair;

static void pair_text(void *ud, const char *s, size_t n)
{
    run *r = ud;
    r->n_text++;
    if (r->free_on_text == r->n_text && r->client) {
        llm_client *c = r->client;
        r->client = NULL;
        llm_client_free(c);
    }
}

static void pair_done(void *ud, const llm_result *res)
{
    run *r = ud;
    r->n_done++;
    r->status = res->status;
}

TEST(client_free_cancels_every_call)
{
    fake_start("[{\"text\": \"abcdefghijklmnopqrstuvwxyz\", \"chunk\": 1, \"delay_ms\": 20}]", KEY);
    pair p = {0};
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    llm_config cfg = config(LLM_ANTHROPIC, KEY);
    llm_client *c;
    CHECK_INT(llm_client_new(&loop, &cfg, &c), 0);
    p.a.client = c;
    p.a.free_on_text = 2;
    llm_callbacks cb = {pair_text, NULL, pair_done};
    llm_request req = {NULL, three_msgs, 1};
    CHECK_INT(llm_generate(c, &req, &cb, &p.a, NULL), 0);
    CHECK_INT(llm_generate(c, &req, &cb, &p.b, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(p.a.n_done, 1);
    CHECK_INT(p.b.n_done, 1);
    CHECK_INT(p.a.status, LLM_ERR_CANCELLED);
    CHECK_INT(p.b.status, LLM_ERR_CANCELLED);
    CHECK_INT(p.a.n_text, 2);
    CHECK_INT(uv_loop_close(&loop), 0);
}

TEST(many_calls_at_once)
{
    fake_start("[{\"text\": \"{{last_user}}\", \"chunk\": 1, \"delay_ms\": 2}]", KEY);
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    llm_config cfg = config(LLM_ANTHROPIC, KEY);
    llm_client *c;
    CHECK_INT(llm_client_new(&loop, &cfg, &c), 0);
    enum { N = 8 };
    run rs[N];
    memset(rs, 0, sizeof rs);
    char words[N][32];
    llm_msg msgs[N];
    llm_callbacks cb = {on_text, NULL, pair_done};
    for (int i = 0; i < N; i++) {
        snprintf(words[i], sizeof words[i], "call-%d", i);
        msgs[i] = (llm_msg){"user", words[i]};
        llm_request req = {NULL, &msgs[i], 1};
        CHECK_INT(llm_generate(c, &req, &cb, &rs[i], NULL), 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < N; i++) {
        CHECK_INT(rs[i].n_done, 1);
        CHECK_INT(rs[i].status, LLM_OK);
        CHECK_STR(rs[i].text.data, words[i]);
        strbuf_free(&rs[i].text);
    }
    llm_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
}

TEST(bad_arguments_fail_without_callbacks)
{
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    llm_config cfg = {.provider = LLM_NONE, .base_url = "http://x", .model = "m"};
    llm_client *c = NULL;
    CHECK_INT(llm_client_new(&loop, &cfg, &c), -EINVAL);
    cfg.provider = LLM_OPENAI;
    cfg.model = "";
    CHECK_INT(llm_client_new(&loop, &cfg, &c), -EINVAL);
    cfg.model = "m";
    CHECK_INT(llm_client_new(&loop, &cfg, &c), 0);
    run r = {0};
    llm_callbacks cb = {on_text, on_wait, on_done};
    llm_request empty = {NULL, three_msgs, 0};
    CHECK_INT(llm_generate(c, &empty, &cb, &r, NULL), -EINVAL);
    llm_msg bad_role[] = {{"system", "x"}};
    llm_request bad = {NULL, bad_role, 1};
    CHECK_INT(llm_generate(c, &bad, &cb, &r, NULL), -EINVAL);
    llm_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(r.n_done, 0);
    CHECK_INT(uv_loop_close(&loop), 0);
}

TEST(plain_json_answer_when_the_server_ignores_stream)
{
    for (int p = 0; p < 2; p++) {
        fake_start("[{\"text\": \"all at once\", \"json\": true}]", KEY);
        run r = {0};
        go(&r, p ? LLM_OPENAI : LLM_ANTHROPIC, KEY);
        CHECK_INT(r.status, LLM_OK);
        CHECK_STR(r.text.data, "all at once");
        CHECK_STR(r.stop_reason, p ? "stop" : "end_turn");
        strbuf_free(&r.text);
        fake_stop();
    }
}

TEST(wrong_base_url_404_names_the_url)
{
    fake_start("[{\"text\": \"unused\"}]", NULL);
    run r = {0};
    llm_config cfg = config(LLM_OPENAI, NULL);
    char base[128];
    snprintf(base, sizeof base, "%s/wrong", fake.url);
    cfg.base_url = base;
    llm_request req = {NULL, three_msgs, 1};
    drive(&r, &cfg, &req);
    CHECK_INT(r.status, LLM_ERR_HTTP);
    CHECK_INT(r.http_status, 404);
    char want[256];
    snprintf(want, sizeof want,
             "nothing found at %s/wrong/chat/completions; check the base URL (404: 404: Not "
             "Found)",
             fake.url);
    CHECK_STR(r.message, want);
}

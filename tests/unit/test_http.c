/* Unit tests for bot/http.c: requests against tests/fakes/fake_llm.py on a uv loop, with
 * cancels and frees from inside the callbacks. */
#include "tests/unit/check.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "bot/http.h"
#include "common/strbuf.h"
#include "tests/unit/fake_llm.h"

#define KEY "sk-http-test-key"

typedef struct got {
    http_client *client;
    http_req *req;
    int status_at_headers;
    char header[128];
    char ctype[128];
    strbuf body;
    int n_body;
    int n_done;
    http_result res;
    char error[256];
    int cancel_on_body; /* http_cancel from the Nth on_body */
    int free_on_body;   /* http_client_free from the Nth on_body */
    int chain;          /* start another request from on_done */
    int chain_on_body;  /* start another request from the Nth on_body */
    struct got *next;
} got;

static int start(http_client *c, const char *path, const char *body, got *g, uint64_t idle);

#define TWO "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"two\"}]}"

static void on_headers(void *ud, http_req *r, int status)
{
    got *g = ud;
    g->status_at_headers = status;
    const char *h = http_req_header(r, "X-Test");
    snprintf(g->header, sizeof g->header, "%s", h ? h : "(none)");
    h = http_req_header(r, "content-type");
    snprintf(g->ctype, sizeof g->ctype, "%s", h ? h : "(none)");
}

static void on_body(void *ud, http_req *r, const char *data, size_t len)
{
    got *g = ud;
    strbuf_append(&g->body, data, len);
    g->n_body++;
    if (g->cancel_on_body == g->n_body)
        http_cancel(r);
    if (g->free_on_body == g->n_body)
        http_client_free(g->client);
    if (g->chain_on_body == g->n_body)
        CHECK_INT(start(g->client, "/v1/chat/completions", TWO, g->next, 0), 0);
}

static void on_done(void *ud, http_req *r, const http_result *res)
{
    got *g = ud;
    g->n_done++;
    g->res = *res;
    snprintf(g->error, sizeof g->error, "%s", res->error);
    if (g->chain && g->next)
        CHECK_INT(start(g->client, "/v1/chat/completions", TWO, g->next, 0), 0);
}

static int start(http_client *c, const char *path, const char *body, got *g, uint64_t idle)
{
    char url[160];
    snprintf(url, sizeof url, "%s%s", fake.url, path);
    const char *hdrs[] = {"Content-Type: application/json", "Authorization: Bearer " KEY, NULL};
    http_request q = {
        .method = body ? "POST" : "GET",
        .url = url,
        .headers = hdrs,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .connect_timeout_ms = 2000,
        .idle_timeout_ms = idle,
    };
    http_callbacks cb = {on_headers, on_body, on_done};
    g->client = c;
    return http_start(c, &q, &cb, g, &g->req);
}

#define CHAT "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"
#define CHAT_STREAM                                                                                \
    "{\"model\": \"m\", \"stream\": true, \"messages\": [{\"role\": \"user\", \"content\": "       \
    "\"hi\"}]}"

static void loop_done(uv_loop_t *loop, http_client *c)
{
    if (c)
        http_client_free(c);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(loop), 0);
}

TEST(post_reads_status_headers_and_body)
{
    fake_start("[{\"text\": \"hello\", \"headers\": {\"X-Test\": \"  some value \"}}]", KEY);
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_client *c;
    CHECK_INT(http_client_new(&loop, &c), 0);
    got g = {0};
    CHECK_INT(start(c, "/v1/chat/completions", CHAT, &g, 5000), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(g.n_done, 1);
    CHECK_INT(g.res.curl_code, 0);
    CHECK_INT(g.res.http_status, 200);
    CHECK_INT(g.status_at_headers, 200);
    CHECK_STR(g.header, "some value");
    CHECK(strncmp(g.ctype, "application/json", 16) == 0);
    CHECK_STR(g.error, "");
    CHECK_INT(g.res.body_bytes, g.body.len);
    cJSON *j = cJSON_Parse(g.body.data);
    CHECK(j != NULL);
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    CHECK_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"), "content")->valuestring,
              "hello");
    cJSON_Delete(j);
    /* What the server saw. */
    cJSON *log = fake_requests();
    cJSON *q = cJSON_GetArrayItem(log, 0);
    CHECK_STR(header(q, "authorization"), "Bearer " KEY);
    CHECK(header(q, "expect") == NULL);
    cJSON_Delete(log);
    strbuf_free(&g.body);
    loop_done(&loop, c);
}

TEST(get_and_error_status_are_not_transport_errors)
{
    fake_start("[{\"text\": \"x\"}]", KEY);
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_client *c;
    CHECK_INT(http_client_new(&loop, &c), 0);
    got g = {0}, g2 = {0};
    CHECK_INT(start(c, "/nowhere", NULL, &g, 0), 0);
    CHECK_INT(start(c, "/v1/chat/completions", NULL, &g2, 0), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(g.n_done, 1);
    CHECK_INT(g.res.curl_code, 0);
    CHECK_INT(g.res.http_status, 404);
    CHECK_INT(g2.res.http_status, 405); /* GET on a POST route */
    strbuf_free(&g.body);
    strbuf_free(&g2.body);
    loop_done(&loop, c);
}

TEST(streamed_body_arrives_in_pieces)
{
    fake_start("[{\"text\": \"abcdefghijklmnopqrstuvwxyz\", \"chunk\": 2, \"delay_ms\": 5}]", KEY);
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_client *c;
    CHECK_INT(http_client_new(&loop, &c), 0);
    got g = {0};
    CHECK_INT(start(c, "/chat/completions", CHAT_STREAM, &g, 5000), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(g.n_done, 1);
    CHECK(g.n_body > 5);
    CHECK(strstr(g.body.data, "data: [DONE]") != NULL);
    CHECK_STR(g.ctype, "text/event-stream");
    strbuf_free(&g.body);
    loop_done(&loop, c);
}

TEST(cancel_inside_on_body_fires_nothing_more)
{
    fake_start("[{\"text\": \"abcdefghijklmnopqrstuvwxyz\", \"chunk\": 1, \"delay_ms\": 10}]", KEY);
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_client *c;
    CHECK_INT(http_client_new(&loop, &c), 0);
    got g = {.cancel_on_body = 2};
    CHECK_INT(start(c, "/chat/completions", CHAT_STREAM, &g, 5000), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(g.n_body, 2);
    CHECK_INT(g.n_done, 0);
    strbuf_free(&g.body);
    loop_done(&loop, c);
}

TEST(cancel_before_the_loop_runs)
{
    fake_start("[{\"text\": \"x\"}]", KEY);
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_client *c;
    CHECK_INT(http_client_new(&loop, &c), 0);
    got g = {0};
    CHECK_INT(start(c, "/chat/completions", CHAT, &g, 5000), 0);
    http_cancel(g.req);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(g.n_done + g.n_body, 0);
    loop_done(&loop, c);
}

TEST(free_inside_on_body_fires_nothing_more)
{
    fake_start("[{\"text\": \"abcdefghijklmnopqrstuvwxyz\", \"chunk\": 1, \"delay_ms\": 10}]", KEY);
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_client *c;
    CHECK_INT(http_client_new(&loop, &c), 0);
    got a = {.free_on_body = 3}, b = {0};
    CHECK_INT(start(c, "/chat/completions", CHAT_STREAM, &a, 5000), 0);
    CHECK_INT(start(c, "/chat/completions", CHAT_STREAM, &b, 5000), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(a.n_body, 3);
    CHECK_INT(a.n_done + b.n_done, 0);
    strbuf_free(&a.body);
    strbuf_free(&b.body);
    loop_done(&loop, NULL);
}

TEST(start_from_inside_on_done)
{
    fake_start("[{\"text\": \"{{last_user}}\"}]", KEY);
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_client *c;
    CHECK_INT(http_client_new(&loop, &c), 0);
    got second = {0};
    got first = {.chain = 1, .next = &second};
    CHECK_INT(start(c, "/chat/completions", CHAT, &first, 5000), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(first.n_done, 1);
    CHECK_INT(second.n_done, 1);
    CHECK(strstr(second.body.data, "\"two\"") != NULL);
    strbuf_free(&first.body);
    strbuf_free(&second.body);
    loop_done(&loop, c);
}

TEST(idle_timeout_ends_a_silent_response)
{
    fake_start("[{\"text\": \"abcdefghij\", \"chunk\": 5, \"stall_ms\": 6000}]", KEY);
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_client *c;
    CHECK_INT(http_client_new(&loop, &c), 0);
    got g = {0};
    CHECK_INT(start(c, "/chat/completions", CHAT_STREAM, &g, 1000), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(g.n_done, 1);
    CHECK_INT(g.res.idle_timeout, 1);
    CHECK_INT(g.res.curl_code, CURLE_OPERATION_TIMEDOUT);
    CHECK_INT(g.res.http_status, 200);
    CHECK_STR(g.error, "no data received for 1000 ms");
    strbuf_free(&g.body);
    loop_done(&loop, c);
}

TEST(connection_refused_is_a_transport_error)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK_INT(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_INT(getsockname(s, (struct sockaddr *)&a, &al), 0);
    snprintf(fake.url, sizeof fake.url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    close(s);
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_client *c;
    CHECK_INT(http_client_new(&loop, &c), 0);
    got g = {0};
    CHECK_INT(start(c, "/x", NULL, &g, 0), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(g.n_done, 1);
    CHECK_INT(g.res.curl_code, CURLE_COULDNT_CONNECT);
    CHECK_INT(g.res.http_status, 0);
    CHECK(strlen(g.error) > 0);
    loop_done(&loop, c);
}

TEST(disallowed_protocol_and_missing_url)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_client *c;
    CHECK_INT(http_client_new(&loop, &c), 0);
    got g = {0};
    snprintf(fake.url, sizeof fake.url, "gopher://127.0.0.1:1");
    CHECK_INT(start(c, "/x", NULL, &g, 0), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(g.n_done, 1);
    CHECK_INT(g.res.curl_code, CURLE_UNSUPPORTED_PROTOCOL);
    http_request q = {.url = NULL};
    http_callbacks cb = {NULL, NULL, on_done};
    CHECK_INT(http_start(c, &q, &cb, &g, NULL), -EINVAL);
    loop_done(&loop, c);
}

TEST(start_from_inside_on_body)
{
    fake_start("[{\"text\": \"abcdefghij\", \"chunk\": 2}, {\"text\": \"{{last_user}}\"}]", KEY);
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_client *c;
    CHECK_INT(http_client_new(&loop, &c), 0);
    got second = {0};
    got first = {.chain_on_body = 1, .next = &second};
    CHECK_INT(start(c, "/chat/completions", CHAT_STREAM, &first, 5000), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(first.n_done, 1);
    CHECK_INT(first.res.curl_code, 0);
    CHECK_INT(second.n_done, 1);
    CHECK_INT(second.res.http_status, 200);
    CHECK(strstr(second.body.data, "\"two\"") != NULL);
    strbuf_free(&first.body);
    strbuf_free(&second.body);
    loop_done(&loop, c);
}

/* Unit tests for bot/sse.c: the event-stream parser fed whole, byte by byte and in odd
 * splits. */
#include "tests/unit/check.h"

#include <errno.h>

#include "bot/sse.h"
#include "common/strbuf.h"

/* Every dispatched event as "event|id|data;" */
typedef struct seen {
    strbuf log;
    int n;
    int stop_at; /* return non-zero on this event number (1-based), 0: never */
} seen;

static int record(void *ud, const sse_event *ev)
{
    seen *s = ud;
    s->n++;
    CHECK(strlen(ev->data) == ev->data_len);
    strbuf_printf(&s->log, "%s|%s|%s;", ev->event, ev->id, ev->data);
    return s->stop_at && s->n == s->stop_at ? 7 : 0;
}

/* Parses IN in pieces of STEP bytes (0: all at once) and returns the log. */
static char *parse(const char *in, size_t step, int *rc_out)
{
    seen s = {0};
    sse_parser p;
    sse_init(&p, 0, record, &s);
    size_t n = strlen(in);
    int rc = 0;
    if (!step)
        step = n ? n : 1;
    for (size_t i = 0; i < n && !rc; i += step)
        rc = sse_feed(&p, in + i, i + step > n ? n - i : step);
    if (rc_out)
        *rc_out = rc;
    sse_free(&p);
    return strbuf_steal(&s.log);
}

/* The same stream must parse to the same events however it is split. */
static void check_all_splits(const char *in, const char *want)
{
    for (size_t step = 0; step <= 7; step++) {
        char *got = parse(in, step, NULL);
        CHECK_STR(got, want);
        free(got);
    }
}

TEST(anthropic_stream)
{
    check_all_splits("event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
                     "event: ping\ndata: {\"type\": \"ping\"}\n\n",
                     "message_start||{\"type\":\"message_start\"};ping||{\"type\": \"ping\"};");
}

TEST(line_endings_crlf_cr_lf)
{
    check_all_splits("data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n",
                     "message||a;message||b;message||c;message||d;");
}

TEST(crlf_split_between_reads_is_one_line_end)
{
    seen s = {0};
    sse_parser p;
    sse_init(&p, 0, record, &s);
    CHECK_INT(sse_feed(&p, "data: x\r", 8), 0);
    CHECK_INT(sse_feed(&p, "\n", 1), 0);
    CHECK_INT(s.n, 0); /* the LF closed the data line, not a blank line */
    CHECK_INT(sse_feed(&p, "\r", 1), 0);
    CHECK_INT(s.n, 1);
    CHECK_INT(sse_feed(&p, "\ndata: y\n\n", 10), 0);
    CHECK_STR(s.log.data, "message||x;message||y;");
    sse_free(&p);
    strbuf_free(&s.log);
}

TEST(multiline_data_joined_by_newline)
{
    check_all_splits("data: one\ndata:two\ndata:  three\ndata\n\n", "message||one\ntwo\n three\n;");
}

TEST(comments_and_unknown_fields_ignored)
{
    check_all_splits(": keep-alive\n:\nfoo: bar\ndata: x\n: mid\n\n", "message||x;");
}

TEST(event_without_data_not_dispatched_and_type_reset)
{
    check_all_splits("event: a\n\ndata: x\n\n", "message||x;");
}

TEST(empty_data_line_dispatches_empty_string)
{
    check_all_splits("data\n\ndata:\n\n", "message||;message||;");
}

TEST(id_persists_and_nul_id_ignored)
{
    seen s = {0};
    sse_parser p;
    sse_init(&p, 0, record, &s);
    const char in[] = "id: 7\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\nid\ndata: d\n\n";
    CHECK_INT(sse_feed(&p, in, sizeof in - 1), 0);
    CHECK_STR(s.log.data, "message|7|a;message|7|b;message|7|c;message||d;");
    sse_free(&p);
    strbuf_free(&s.log);
}

TEST(retry_field)
{
    seen s = {0};
    sse_parser p;
    sse_init(&p, 0, record, &s);
    CHECK_INT(sse_feed(&p, "retry: 1500\n", 12), 0);
    CHECK_INT(p.retry_ms, 1500);
    CHECK_INT(sse_feed(&p, "retry: 15x\nretry\n", 17), 0);
    CHECK_INT(p.retry_ms, 1500);
    sse_free(&p);
}

TEST(bom_stripped_only_at_start)
{
    check_all_splits("\xEF\xBB\xBF"
                     "data: a\n\ndata: \xEF\xBB\xBF"
                     "b\n\n",
                     "message||a;message||\xEF\xBB\xBF"
                     "b;");
    /* A BOM in the middle makes the field name unknown, so that line is ignored. */
    check_all_splits("data: a\n\n\xEF\xBB\xBF"
                     "data: b\n\n",
                     "message||a;");
}

TEST(incomplete_event_at_end_not_dispatched)
{
    check_all_splits("data: a\n\ndata: b\n", "message||a;");
}

TEST(field_without_colon_and_value_without_space)
{
    check_all_splits("event\ndata:x\n\n", "message||x;");
}

TEST(max_event_size_guard)
{
    seen s = {0};
    sse_parser p;
    sse_init(&p, 16, record, &s);
    CHECK_INT(sse_feed(&p, "data: 0123456789\n", 17), 0);
    CHECK_INT(sse_feed(&p, "data: 0123456789\n", 17), -E2BIG);
    CHECK_INT(sse_feed(&p, "\n", 1), -EINVAL);
    sse_free(&p);
    sse_init(&p, 16, record, &s);
    /* A line cut by reads counts too. */
    CHECK_INT(sse_feed(&p, "data: 0123456789", 16), 0);
    CHECK_INT(sse_feed(&p, "0123456789", 10), -E2BIG);
    CHECK_INT(s.n, 0);
    sse_free(&p);
}

TEST(callback_stops_feed)
{
    seen s = {.stop_at = 1};
    sse_parser p;
    sse_init(&p, 0, record, &s);
    CHECK_INT(sse_feed(&p, "data: a\n\ndata: b\n\n", 18), 7);
    CHECK_INT(s.n, 1);
    sse_free(&p);
    strbuf_free(&s.log);
}

TEST(reset_starts_a_new_stream)
{
    seen s = {0};
    sse_parser p;
    sse_init(&p, 0, record, &s);
    CHECK_INT(sse_feed(&p, "event: x\ndata: half", 19), 0);
    sse_reset(&p);
    CHECK_INT(sse_feed(&p,
                       "\xEF\xBB\xBF"
                       "data: new\n\n",
                       14),
              0);
    CHECK_STR(s.log.data, "message||new;");
    sse_free(&p);
    strbuf_free(&s.log);
}

TEST(openai_stream_with_done)
{
    check_all_splits("data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"
                     "data: [DONE]\n\n",
                     "message||{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]};message||[DONE];");
}

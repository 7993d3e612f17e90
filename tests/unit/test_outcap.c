/* Unit tests for sandbox/outcap: UTF-8 hold-back and repair, the cap and the kept tail. */
#include "tests/unit/check.h"

#include "sandbox/outcap.h"

typedef struct seen {
    strbuf out[2];
    int events;
} seen;

static void seen_free(seen *s)
{
    strbuf_free(&s->out[0]);
    strbuf_free(&s->out[1]);
}

static void collect(void *ud, int stream, const char *text, size_t len)
{
    seen *s = ud;
    strbuf_append(&s->out[stream - 1], text, len);
    s->events++;
}

TEST(passes_text_through_under_the_cap)
{
    seen s = {0};
    outcap oc;
    outcap_init(&oc, 1000, collect, &s);
    CHECK(outcap_feed(&oc, 1, "hello ", 6) == 0);
    CHECK(outcap_feed(&oc, 2, "oops\n", 5) == 0);
    CHECK(outcap_feed(&oc, 1, "world\n", 6) == 0);
    CHECK_INT(s.events, 3);
    CHECK(outcap_finish(&oc) == 0);
    CHECK_STR(s.out[0].data, "hello world\n");
    CHECK_STR(s.out[1].data, "oops\n");
    CHECK_INT(oc.dropped, 0);
    outcap_free(&oc);
    seen_free(&s);
}

TEST(holds_back_a_split_character)
{
    seen s = {0};
    outcap oc;
    outcap_init(&oc, 1000, collect, &s);
    /* "é€" split in the middle of each character */
    CHECK(outcap_feed(&oc, 1, "a\xc3", 2) == 0);
    CHECK_STR(s.out[0].data, "a");
    CHECK(outcap_feed(&oc, 1, "\xa9\xe2\x82", 3) == 0);
    CHECK_STR(s.out[0].data, "a\xc3\xa9");
    CHECK(outcap_feed(&oc, 1, "\xac", 1) == 0);
    CHECK_STR(s.out[0].data, "a\xc3\xa9\xe2\x82\xac");
    CHECK(outcap_finish(&oc) == 0);
    outcap_free(&oc);
    seen_free(&s);
}

TEST(repairs_invalid_bytes_and_a_truncated_end)
{
    seen s = {0};
    outcap oc;
    outcap_init(&oc, 1000, collect, &s);
    CHECK(outcap_feed(&oc, 2,
                      "x\xff"
                      "y\xe2\x82",
                      5) == 0);
    CHECK_STR(s.out[1].data, "x\xef\xbf\xbdy");
    CHECK(outcap_finish(&oc) == 0);
    CHECK_STR(s.out[1].data, "x\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbd");
    outcap_free(&oc);
    seen_free(&s);
}

TEST(keeps_head_and_tail_of_a_flood)
{
    seen s = {0};
    outcap oc;
    outcap_init(&oc, 1000, collect, &s);
    char line[101];
    memset(line, 'x', 99);
    line[99] = '\n';
    line[100] = 0;
    for (int i = 0; i < 5000; i++) {
        if (i == 4999)
            line[0] = 'E';
        CHECK(outcap_feed(&oc, 1, line, 100) == 0);
    }
    CHECK_INT(s.out[0].len, 1000);
    CHECK(outcap_finish(&oc) == 0);
    uint64_t total = 5000 * 100;
    CHECK_INT(oc.dropped, total - 1000 - OUTCAP_TAIL);
    char marker[64];
    snprintf(marker, sizeof(marker), "[... %llu bytes dropped ...]\n",
             (unsigned long long)oc.dropped);
    CHECK(strstr(s.out[0].data, marker) == s.out[0].data + 1000);
    size_t n = s.out[0].len;
    CHECK_INT(n, 1000 + strlen(marker) + OUTCAP_TAIL);
    CHECK(s.out[0].data[n - 100] == 'E');
    outcap_free(&oc);
    seen_free(&s);
}

TEST(one_huge_line_without_newline)
{
    seen s = {0};
    outcap oc;
    outcap_init(&oc, 1 << 20, collect, &s);
    static char chunk[65536];
    memset(chunk, 'y', sizeof(chunk));
    for (int i = 0; i < 17; i++)
        CHECK(outcap_feed(&oc, 1, chunk, sizeof(chunk)) == 0);
    CHECK_INT(s.out[0].len, 1 << 20);
    CHECK(outcap_feed(&oc, 1, "END", 3) == 0);
    CHECK(outcap_finish(&oc) == 0);
    CHECK_INT(oc.dropped, 3);
    /* the marker starts on its own line since the head did not end with one */
    CHECK(strstr(s.out[0].data, "y\n[... 3 bytes dropped ...]\n") != NULL);
    CHECK(memcmp(s.out[0].data + s.out[0].len - 3, "END", 3) == 0);
    outcap_free(&oc);
    seen_free(&s);
}

TEST(tail_keeps_streams_apart_and_never_splits_characters)
{
    seen s = {0};
    outcap oc;
    outcap_init(&oc, 0, collect, &s);
    strbuf big = {0};
    for (int i = 0; i < OUTCAP_TAIL; i++)
        strbuf_append(&big, "\xc3\xa9", 2);
    CHECK(outcap_feed(&oc, 2, big.data, big.len) == 0);
    CHECK(outcap_feed(&oc, 1, "last\n", 5) == 0);
    CHECK_INT(s.events, 0);
    CHECK(outcap_finish(&oc) == 0);
    CHECK_STR(s.out[0].data, "last\n");
    /* stderr got the marker and a tail that starts on a character boundary */
    const char *t = strstr(s.out[1].data, "...]\n");
    CHECK(t != NULL);
    t += 5;
    CHECK((unsigned char)t[0] == 0xc3);
    /* 5 bytes of "last\n" pushed out 6 of stderr: 5, plus the orphaned continuation byte */
    CHECK_INT(strlen(t), OUTCAP_TAIL - 6);
    CHECK_INT(oc.dropped, 2 * OUTCAP_TAIL - (OUTCAP_TAIL - 6));
    strbuf_free(&big);
    outcap_free(&oc);
    seen_free(&s);
}

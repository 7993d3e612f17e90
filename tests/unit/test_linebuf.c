/* Unit tests for sandbox/linebuf: framing across partial reads, CRLF, size limit. */
#include "tests/unit/check.h"

#include <errno.h>

#include "sandbox/linebuf.h"

TEST(lines_split_across_reads)
{
    linebuf lb;
    linebuf_init(&lb, 100);
    char *line;
    size_t len;
    CHECK(linebuf_feed(&lb, "{\"a\":", 5) == 0);
    CHECK_INT(linebuf_next(&lb, &line, &len), 0);
    CHECK(linebuf_feed(&lb, "1}\nsecond\r\nthi", 14) == 0);
    CHECK_INT(linebuf_next(&lb, &line, &len), 1);
    CHECK_STR(line, "{\"a\":1}");
    CHECK_INT(len, 7);
    CHECK_INT(linebuf_next(&lb, &line, &len), 1);
    CHECK_STR(line, "second");
    CHECK_INT(linebuf_next(&lb, &line, &len), 0);
    CHECK_INT(linebuf_pending(&lb), 3);
    CHECK(linebuf_feed(&lb, "rd\n", 3) == 0);
    CHECK_INT(linebuf_next(&lb, &line, &len), 1);
    CHECK_STR(line, "third");
    CHECK_INT(linebuf_pending(&lb), 0);
    linebuf_free(&lb);
}

TEST(byte_by_byte_and_empty_lines)
{
    linebuf lb;
    linebuf_init(&lb, 0);
    const char *in = "ab\n\ncd\n";
    int got = 0;
    char *line;
    size_t len;
    const char *want[] = {"ab", "", "cd"};
    for (size_t i = 0; in[i]; i++) {
        CHECK(linebuf_feed(&lb, in + i, 1) == 0);
        while (linebuf_next(&lb, &line, &len) == 1) {
            CHECK(got < 3);
            CHECK_STR(line, want[got]);
            got++;
        }
    }
    CHECK_INT(got, 3);
    linebuf_free(&lb);
}

TEST(oversized_line_is_refused)
{
    linebuf lb;
    linebuf_init(&lb, 10);
    char *line;
    size_t len;
    CHECK(linebuf_feed(&lb, "0123456789", 10) == 0);
    CHECK_INT(linebuf_next(&lb, &line, &len), 0);
    CHECK_INT(linebuf_feed(&lb, "x", 1), -E2BIG);
    linebuf_free(&lb);
    linebuf_init(&lb, 10);
    CHECK(linebuf_feed(&lb, "0123456789abc\nok\n", 17) == 0);
    CHECK_INT(linebuf_next(&lb, &line, &len), -E2BIG);
    linebuf_free(&lb);
}

TEST(many_lines_in_one_read)
{
    linebuf lb;
    linebuf_init(&lb, 1 << 20);
    strbuf in = {0};
    for (int i = 0; i < 10000; i++)
        strbuf_printf(&in, "%d\n", i);
    CHECK(linebuf_feed(&lb, in.data, in.len) == 0);
    char *line;
    size_t len;
    int n = 0;
    while (linebuf_next(&lb, &line, &len) == 1) {
        char want[16];
        snprintf(want, sizeof(want), "%d", n++);
        CHECK_STR(line, want);
    }
    CHECK_INT(n, 10000);
    strbuf_free(&in);
    linebuf_free(&lb);
}

TEST(skip_long_drops_only_the_oversized_lines)
{
    linebuf lb;
    linebuf_init(&lb, 8);
    lb.skip_long = 1;
    char *line;
    size_t len;
    CHECK(linebuf_feed(&lb, "ok\n0123456789", 13) == 0);
    CHECK_INT(linebuf_next(&lb, &line, &len), 1);
    CHECK_STR(line, "ok");
    CHECK_INT(linebuf_next(&lb, &line, &len), 0);
    CHECK(linebuf_feed(&lb, "abcdef", 6) == 0); /* now beyond max without a newline */
    CHECK_INT(linebuf_next(&lb, &line, &len), 0);
    CHECK(linebuf_feed(&lb, "still the long one", 18) == 0);
    CHECK(linebuf_feed(&lb, "...\nnext\n0123456789abc\nlast\n", 28) == 0);
    CHECK_INT(linebuf_next(&lb, &line, &len), 1);
    CHECK_STR(line, "next");
    CHECK_INT(linebuf_next(&lb, &line, &len), 1);
    CHECK_STR(line, "last");
    CHECK_INT(linebuf_next(&lb, &line, &len), 0);
    CHECK_INT(lb.skipped, 2);
    linebuf_free(&lb);
}

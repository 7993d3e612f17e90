/* Unit tests for common/: strbuf, utf8, log redaction. */
#include "tests/unit/check.h"

#include <errno.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "common/utf8.h"

TEST(strbuf_grows_and_consumes)
{
    strbuf b = {0};
    CHECK_STR(strbuf_str(&b), "");
    for (int i = 0; i < 1000; i++)
        CHECK(strbuf_printf(&b, "%d,", i) == 0);
    CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
    strbuf_consume(&b, 4);
    CHECK(strncmp(b.data, "2,3,", 4) == 0);
    char *s = strbuf_steal(&b);
    CHECK(b.data == NULL && b.len == 0);
    free(s);
}

TEST(utf8_sanitize_replaces_invalid)
{
    strbuf b = {0};
    CHECK(utf8_sanitize(&b,
                        "a\xff"
                        "b\xc3\xa9\xed\xa0\x80z",
                        9) == 0);
    CHECK_STR(b.data, "a\xEF\xBF\xBD"
                      "b\xc3\xa9\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz");
    strbuf_free(&b);
}

TEST(utf8_sanitize_drops_nul)
{
    strbuf b = {0};
    CHECK(utf8_sanitize(&b, "a\0b", 3) == 0);
    CHECK_STR(b.data, "ab");
    strbuf_free(&b);
}

TEST(utf8_complete_prefix_holds_back_cut_sequence)
{
    CHECK_INT(utf8_complete_prefix("ab\xe2\x82", 4), 2);
    CHECK_INT(utf8_complete_prefix("ab\xe2\x82\xac", 5), 5);
    CHECK_INT(utf8_complete_prefix("ab\xff", 3), 3);
    CHECK_INT(utf8_complete_prefix("\xf0\x9f\x98", 3), 0);
}

TEST(utf8_truncate_never_splits)
{
    const char *s = "\xe2\x82\xac\xe2\x82\xac";
    CHECK_INT(utf8_truncate(s, 6, 4), 3);
    CHECK_INT(utf8_truncate(s, 6, 6), 6);
    CHECK_INT(utf8_count(s, 6), 2);
}

TEST(log_redacts_secrets)
{
    log_add_secret("sk-ant-supersecret");
    char line[] = "auth failed for key sk-ant-supersecret, retry sk-ant-supersecret";
    log_redact(line);
    CHECK(strstr(line, "supersecret") == NULL);
    CHECK(strstr(line, "[redacted]") != NULL);
}

#include "common/base64.h"

TEST(base64_round_trip)
{
    strbuf e = {0}, d = {0};
    const char bin[] = "\x00\xff\x10hello\x89PNG";
    for (size_t n = 0; n < sizeof bin; n++) {
        strbuf_reset(&e);
        strbuf_reset(&d);
        CHECK(base64_encode(&e, bin, n) == 0);
        CHECK(base64_decode(&d, e.data ? e.data : "", e.len) == 0);
        CHECK_INT(d.len, n);
        CHECK(n == 0 || memcmp(d.data, bin, n) == 0);
    }
    strbuf_reset(&d);
    CHECK(base64_decode(&d, "aGVs\nbG8=", 9) == 0);
    CHECK_STR(d.data, "hello");
    CHECK_INT(base64_decode(&d, "a$==", 4), -EINVAL);
    strbuf_free(&e);
    strbuf_free(&d);
}

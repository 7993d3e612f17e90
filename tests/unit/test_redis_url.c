/* Unit tests for store/redis_url: a table of good URLs with what they mean, and a table of bad
 * ones that must all be refused with a reason. */
#include "tests/unit/check.h"

#include <errno.h>

#include "store/redis_url.h"

static const struct good {
    const char *url;
    int is_unix;
    const char *host, *path, *user, *password;
    int port, db;
    const char *described;
} goods[] = {
    {"redis://localhost", 0, "localhost", NULL, NULL, NULL, 6379, 0, "redis://localhost:6379/0"},
    {"redis://127.0.0.1:6380", 0, "127.0.0.1", NULL, NULL, NULL, 6380, 0,
     "redis://127.0.0.1:6380/0"},
    {"redis://h:1/15", 0, "h", NULL, NULL, NULL, 1, 15, "redis://h:1/15"},
    {"redis://h/", 0, "h", NULL, NULL, NULL, 6379, 0, "redis://h:6379/0"},
    {"redis://:s3cret@redis.example.com:6379/2", 0, "redis.example.com", NULL, NULL, "s3cret", 6379,
     2, "redis://redis.example.com:6379/2"},
    {"redis://bot:p%40ss%2Fw:rd@h", 0, "h", NULL, "bot", "p@ss/w:rd", 6379, 0, "redis://h:6379/0"},
    {"redis://:a@b@h:7", 0, "h", NULL, NULL, "a@b", 7, 0, "redis://h:7/0"},
    {"redis://[::1]:6390/3", 0, "::1", NULL, NULL, NULL, 6390, 3, "redis://[::1]:6390/3"},
    {"redis://my_host-1.local:65535", 0, "my_host-1.local", NULL, NULL, NULL, 65535, 0,
     "redis://my_host-1.local:65535/0"},
    {"unix:///var/run/redis.sock", 1, NULL, "/var/run/redis.sock", NULL, NULL, 0, 0,
     "unix:///var/run/redis.sock?db=0"},
    {"unix:///tmp/r.sock?db=7", 1, NULL, "/tmp/r.sock", NULL, NULL, 0, 7,
     "unix:///tmp/r.sock?db=7"},
};

static const char *bads[] = {
    "",
    "localhost:6379",
    "http://localhost",
    "rediss://localhost",
    "redis://",
    "redis://:6379",
    "redis://h:",
    "redis://h:0",
    "redis://h:65536",
    "redis://h:12x",
    "redis://h:-1",
    "redis://h/x",
    "redis://h/-1",
    "redis://h/1/2",
    "redis://h/99999999999",
    "redis://h?db=1",
    "redis://h#x",
    "redis://pass@h",
    "redis://:@h",
    "redis://:a%zz@h",
    "redis://:a%0@h",
    "redis://:a%00b@h",
    "redis://ho st",
    "redis://[::1",
    "redis://[::1]x",
    "redis://[]:1",
    "unix://relative/path",
    "unix://",
    "unix:///tmp/s?db=",
    "unix:///tmp/s?db=x",
    "unix:///tmp/s?password=x",
    "unix:///tmp/s#frag",
    "unix:///aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
};

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

TEST(good_urls_parse)
{
    for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
        const struct good *g = &goods[i];
        redis_url u;
        const char *why = NULL;
        int rc = redis_url_parse(g->url, &u, &why);
        if (rc != 0)
            fprintf(stderr, "%s: %s\n", g->url, why);
        CHECK_INT(rc, 0);
        CHECK_INT(u.is_unix, g->is_unix);
        CHECK(same(u.host, g->host));
        CHECK(same(u.path, g->path));
        CHECK(same(u.user, g->user));
        CHECK(same(u.password, g->password));
        CHECK_INT(u.port, g->port);
        CHECK_INT(u.db, g->db);
        char d[200];
        redis_url_describe(&u, d, sizeof(d));
        CHECK_STR(d, g->described);
        redis_url_free(&u);
    }
}

TEST(bad_urls_are_refused_with_a_reason)
{
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        redis_url u;
        const char *why = NULL;
        int rc = redis_url_parse(bads[i], &u, &why);
        if (rc != -EINVAL)
            fprintf(stderr, "accepted: '%s'\n", bads[i]);
        CHECK_INT(rc, -EINVAL);
        CHECK(why && *why);
        CHECK(u.host == NULL && u.path == NULL && u.password == NULL);
    }
    redis_url u;
    CHECK_INT(redis_url_parse(NULL, &u, NULL), -EINVAL);
}

TEST(describe_never_shows_the_password)
{
    redis_url u;
    CHECK_INT(redis_url_parse("redis://:hunter22@h:1/2", &u, NULL), 0);
    char d[100];
    redis_url_describe(&u, d, sizeof(d));
    CHECK(strstr(d, "hunter22") == NULL);
    char small[8];
    redis_url_describe(&u, small, sizeof(small));
    CHECK_INT(strlen(small), 7);
    redis_url_free(&u);
}

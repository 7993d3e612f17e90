/* redis_url — a strict parser: anything it does not understand is an error with a reason,
 * because a silently misread URL would send history to the wrong database (or nowhere). */
#include "store/redis_url.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "common/strbuf.h"

#define DEFAULT_PORT 6379

static int fail(const char **why, const char *text)
{
    *why = text;
    return -EINVAL;
}

static char *dup_range(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes S[0..N) into a new string; NUL bytes are refused (Redis takes them, but a
 * C string cannot hold them). */
static int decode(const char *s, size_t n, char **out, const char **why)
{
    strbuf b = {0};
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                strbuf_free(&b);
                return fail(why, "bad percent-encoding in the credentials");
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (strbuf_append(&b, &c, 1)) {
            strbuf_free(&b);
            return -ENOMEM;
        }
    }
    *out = strbuf_steal(&b);
    return *out ? 0 : -ENOMEM;
}

/* A decimal number in [MIN, MAX] filling S[0..N) exactly. */
static int parse_num(const char *s, size_t n, long min, long max, int *out)
{
    if (n == 0 || n > 10)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

static int host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* [user]:password part, S[0..N) without the '@'. */
static int parse_userinfo(const char *s, size_t n, redis_url *u, const char **why)
{
    const char *colon = memchr(s, ':', n);
    if (!colon)
        return fail(why, "credentials must be written ':password@' or 'user:password@'");
    size_t ulen = (size_t)(colon - s);
    if (ulen > 0) {
        int rc = decode(s, ulen, &u->user, why);
        if (rc)
            return rc;
    }
    size_t plen = n - ulen - 1;
    if (plen == 0)
        return fail(why, "empty password after ':'");
    return decode(colon + 1, plen, &u->password, why);
}

/* host[:port] or [v6][:port], S[0..N). */
static int parse_hostport(const char *s, size_t n, redis_url *u, const char **why)
{
    const char *host = s, *rest;
    size_t hlen;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return fail(why, "missing ']' after an IPv6 address");
        host = s + 1;
        hlen = (size_t)(close - host);
        for (size_t i = 0; i < hlen; i++)
            if (!(host_char_ok(host[i]) || host[i] == ':'))
                return fail(why, "bad character in the IPv6 address");
        rest = close + 1;
    } else {
        const char *colon = memchr(s, ':', n);
        hlen = colon ? (size_t)(colon - s) : n;
        for (size_t i = 0; i < hlen; i++)
            if (!host_char_ok(s[i]))
                return fail(why, "bad character in the host name");
        rest = s + hlen;
    }
    if (hlen == 0)
        return fail(why, "no host");
    size_t rlen = n - (size_t)(rest - s);
    u->port = DEFAULT_PORT;
    if (rlen > 0) {
        if (rest[0] != ':' || parse_num(rest + 1, rlen - 1, 1, 65535, &u->port) != 0)
            return fail(why, "the port must be a number from 1 to 65535");
    }
    u->host = dup_range(host, hlen);
    return u->host ? 0 : -ENOMEM;
}

static int parse_tcp(const char *s, redis_url *u, const char **why)
{
    size_t alen = strcspn(s, "/?#");
    if (s[alen] == '?' || s[alen] == '#')
        return fail(why, "redis:// URLs take no query or fragment");
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (s[i] == '@')
            at = s + i;
    int rc;
    if (at && (rc = parse_userinfo(s, (size_t)(at - s), u, why)) != 0)
        return rc;
    const char *hp = at ? at + 1 : s;
    if ((rc = parse_hostport(hp, alen - (size_t)(hp - s), u, why)) != 0)
        return rc;
    const char *path = s + alen;
    if (*path == '/' && path[1] != '\0' &&
        parse_num(path + 1, strlen(path + 1), 0, INT_MAX, &u->db) != 0)
        return fail(why, "the path must be a database number, as in redis://host:6379/2");
    return 0;
}

static int parse_unix(const char *s, redis_url *u, const char **why)
{
    if (s[0] != '/')
        return fail(why, "a unix socket URL is unix:///absolute/path (three slashes)");
    size_t plen = strcspn(s, "?#");
    if (s[plen] == '#')
        return fail(why, "unix:// URLs take no fragment");
    if (plen >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return fail(why, "the socket path is too long");
    const char *q = s + plen;
    if (*q == '?') {
        if (strncmp(q, "?db=", 4) != 0 || parse_num(q + 4, strlen(q + 4), 0, INT_MAX, &u->db))
            return fail(why, "the only query a unix:// URL takes is ?db=N");
    }
    u->path = dup_range(s, plen);
    return u->path ? 0 : -ENOMEM;
}

int redis_url_parse(const char *url, redis_url *out, const char **why)
{
    static const char *none = "";
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = none;
    memset(out, 0, sizeof(*out));
    if (!url || !*url)
        return fail(why, "empty");
    int rc;
    if (strncmp(url, "redis://", 8) == 0) {
        rc = parse_tcp(url + 8, out, why);
    } else if (strncmp(url, "unix://", 7) == 0) {
        out->is_unix = 1;
        rc = parse_unix(url + 7, out, why);
    } else if (strncmp(url, "rediss://", 9) == 0) {
        rc = fail(why, "TLS (rediss://) is not supported");
    } else {
        rc = fail(why, "the scheme must be redis:// or unix://");
    }
    if (rc)
        redis_url_free(out);
    return rc;
}

void redis_url_free(redis_url *u)
{
    free(u->host);
    free(u->path);
    free(u->user);
    if (u->password) /* wiped: it is a secret */
        memset(u->password, 0, strlen(u->password));
    free(u->password);
    memset(u, 0, sizeof(*u));
}

void redis_url_describe(const redis_url *u, char *buf, unsigned size)
{
    if (size == 0)
        return;
    if (u->is_unix)
        snprintf(buf, size, "unix://%s?db=%d", u->path ? u->path : "", u->db);
    else if (u->host && strchr(u->host, ':'))
        snprintf(buf, size, "redis://[%s]:%d/%d", u->host, u->port, u->db);
    else
        snprintf(buf, size, "redis://%s:%d/%d", u->host ? u->host : "", u->port, u->db);
}

/* redis_url — parses REDIS_URL into what the store needs to connect. Pure, no I/O.
 *
 *   redis://[[user]:password@]host[:port][/db]   host may be [IPv6]; port 6379, db 0 by default
 *   unix:///path/to/socket[?db=N]
 *
 * The password may be percent-encoded (%40 for '@', %2F for '/'). The parsed struct owns its
 * strings; release it with redis_url_free(). */
#ifndef CODEBOT_REDIS_URL_H
#define CODEBOT_REDIS_URL_H

typedef struct redis_url {
    int is_unix;
    char *host;     /* NULL for unix: a name or an IP, without brackets */
    int port;       /* 0 for unix */
    char *path;     /* NULL for redis:// */
    char *user;     /* NULL unless given (Redis 6 ACL user) */
    char *password; /* NULL unless given */
    int db;
} redis_url;

/* Returns 0 or -EINVAL (and *WHY points at a static text saying what is wrong) or -ENOMEM.
 * On failure OUT holds nothing to free. */
int redis_url_parse(const char *url, redis_url *out, const char **why);
void redis_url_free(redis_url *u);
/* The URL for logs, never with the password: "redis://host:port/db" or "unix:///p?db=N".
 * Writes at most SIZE bytes (always NUL-terminated). */
void redis_url_describe(const redis_url *u, char *buf, unsigned size);

#endif

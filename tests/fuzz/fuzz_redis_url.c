// fuzz-sources: store/redis_url.c common/strbuf.c
/* libFuzzer entry for store/redis_url: any bytes as REDIS_URL must give either -EINVAL with a
 * reason or a URL that holds together, never a crash or a leak. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    redis_url u;
    const char *why = NULL;
    int rc = redis_url_parse(s, &u, &why);
    if (rc == 0) {
        if (u.is_unix) {
            if (!u.path || u.path[0] != '/' || u.host)
                abort();
        } else if (!u.host || !u.host[0] || u.port < 1 || u.port > 65535 || u.path) {
            abort();
        }
        if (u.db < 0 || (u.password && !u.password[0]))
            abort();
        char d[64];
        redis_url_describe(&u, d, sizeof(d));
        if (strlen(d) >= sizeof(d))
            abort();
        redis_url_free(&u);
    } else if (rc != -EINVAL || !why || !why[0]) {
        if (rc != -ENOMEM)
            abort();
    }
    free(s);
    return 0;
}

/* log — formatting, redaction and output of log lines. The JSON form escapes the message
 * with cJSON, so that any byte a remote peer sent us stays inside its string. */
#include "common/log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/strbuf.h"

#define MAX_SECRETS 16

static enum log_level threshold = LOG_INFO;
static int json_format;
static FILE *out;
static char *secrets[MAX_SECRETS];
static int n_secrets;

static const char *level_names[] = {"debug", "info", "warn", "error"};

static int parse_level(const char *s, enum log_level *lvl)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *lvl = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

int log_init(void)
{
    const char *fmt = getenv("CODEBOT_LOG_FORMAT");
    const char *lvl = getenv("CODEBOT_LOG_LEVEL");
    const char *file = getenv("CODEBOT_LOG_FILE");
    if (fmt && *fmt && strcmp(fmt, "json") != 0 && strcmp(fmt, "text") != 0) {
        fprintf(stderr, "codebot: CODEBOT_LOG_FORMAT must be 'text' or 'json', not '%s'\n", fmt);
        return -EINVAL;
    }
    json_format = fmt && strcmp(fmt, "json") == 0;
    if (lvl && *lvl && parse_level(lvl, &threshold) != 0) {
        fprintf(stderr, "codebot: CODEBOT_LOG_LEVEL must be debug, info, warn or error, not '%s'\n",
                lvl);
        return -EINVAL;
    }
    if (file && *file) {
        FILE *f = fopen(file, "a");
        if (!f) {
            fprintf(stderr, "codebot: CODEBOT_LOG_FILE: cannot open '%s': %s\n", file,
                    strerror(errno));
            return -errno;
        }
        setvbuf(f, NULL, _IOLBF, 0);
        out = f;
    }
    return 0;
}

void log_set_level(enum log_level level)
{
    threshold = level;
}

void log_add_secret(const char *secret)
{
    if (!secret || strlen(secret) < 4 || n_secrets == MAX_SECRETS)
        return;
    char *copy = strdup(secret);
    if (copy)
        secrets[n_secrets++] = copy;
}

void log_redact(char *s)
{
    static const char mark[] = "[redacted]";
    for (int i = 0; i < n_secrets; i++) {
        size_t sl = strlen(secrets[i]);
        char *p;
        /* The mark is never longer than a secret worth redacting... unless the secret is
         * short; then the line just keeps its length by cutting the mark. */
        while ((p = strstr(s, secrets[i])) != NULL) {
            size_t ml = sl < sizeof mark - 1 ? sl : sizeof mark - 1;
            memcpy(p, mark, ml);
            memmove(p + ml, p + sl, strlen(p + sl) + 1);
        }
    }
}

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
{
    if (level < threshold)
        return;
    strbuf msg = {0};
    va_list ap;
    va_start(ap, fmt);
    int rc = strbuf_vprintf(&msg, fmt, ap);
    va_end(ap);
    if (rc)
        return;
    log_redact(msg.data);
    char ts[32];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof ts - tl, ".%03ldZ", now.tv_nsec / 1000000);
    FILE *f = out ? out : stderr;
    if (json_format) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "ts", ts);
        cJSON_AddStringToObject(o, "level", level_names[level]);
        cJSON_AddStringToObject(o, "module", module);
        cJSON_AddStringToObject(o, "msg", msg.data);
        char *line = cJSON_PrintUnformatted(o);
        if (line)
            fprintf(f, "%s\n", line);
        free(line);
        cJSON_Delete(o);
    } else {
        fprintf(f, "%s %-5s %s: %s\n", ts, level_names[level], module, msg.data);
    }
    strbuf_free(&msg);
}

void log_close(void)
{
    if (out)
        fclose(out);
    out = NULL;
    for (int i = 0; i < n_secrets; i++)
        free(secrets[i]);
    n_secrets = 0;
}

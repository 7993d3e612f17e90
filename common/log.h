/* log — one line per event, with a level and the module that speaks.
 *
 * Human-readable by default, one JSON object per line with CODEBOT_LOG_FORMAT=json; level
 * from CODEBOT_LOG_LEVEL (debug|info|warn|error, default info), to stderr or to
 * CODEBOT_LOG_FILE. Every string registered with log_add_secret() is replaced by "[redacted]"
 * in every line, so that a key that slips into an error text never reaches a log.
 * Single-threaded like the rest of the process: call from the loop thread only. */
#ifndef CODEBOT_LOG_H
#define CODEBOT_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Reads the environment. Returns 0 or -EINVAL (an invalid value was named on stderr). */
int log_init(void);
/* Changes the threshold (the console raises it to keep the conversation readable). */
void log_set_level(enum log_level level);
/* Registers a secret (copied) to be redacted; strings shorter than 4 bytes are ignored. */
void log_add_secret(const char *secret);
/* Replaces each registered secret in S (in place, shrinking it). Also used on text that
 * leaves the process for a chat message. */
void log_redact(char *s);
void log_msg(enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_close(void);

#define log_debug(mod, ...) log_msg(LOG_DEBUG, mod, __VA_ARGS__)
#define log_info(mod, ...) log_msg(LOG_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_msg(LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_msg(LOG_ERROR, mod, __VA_ARGS__)

#endif

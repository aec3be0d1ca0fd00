/*
 * log.h - structured logs: one JSON object per line on stderr.
 *
 *   log_info("http", "listening", "\"addr\":\"%s\"", addr);
 *
 * The third argument is a printf format for extra JSON members (already
 * comma-free at the ends; may be NULL). Strings that come from outside must go
 * through log_json_str() so the line stays valid JSON.
 */
#ifndef SLUICE_UTIL_LOG_H
#define SLUICE_UTIL_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Set the minimum level from "debug" | "info" | "warn" | "error"; -1 if unknown. */
int log_set_level(const char *name);
int log_enabled(enum log_level lvl);

void log_write(enum log_level lvl, const char *component, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_debug(c, m, ...)                                                                       \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_write(LOG_DEBUG, c, m, __VA_ARGS__);                                               \
    } while (0)
#define log_info(c, m, ...) log_write(LOG_INFO, c, m, __VA_ARGS__)
#define log_warn(c, m, ...) log_write(LOG_WARN, c, m, __VA_ARGS__)
#define log_error(c, m, ...) log_write(LOG_ERROR, c, m, __VA_ARGS__)

/*
 * Escape s (len bytes, or strlen if len == (size_t)-1) as the inside of a JSON
 * string into out (cap bytes, always NUL-terminated, truncated with "..." when
 * too long). Invalid UTF-8 bytes become \u00XX. Returns out.
 */
char *log_json_str(char *out, size_t cap, const char *s, size_t len);

#endif

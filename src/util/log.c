/*
 * log.c - JSON-lines logging on stderr. Each line is built in a stack buffer
 * and written with one write(2), so lines from different threads never
 * interleave.
 */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

int log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0) {
            min_level = (enum log_level)i;
            return 0;
        }
    return -1;
}

int log_enabled(enum log_level lvl)
{
    return lvl >= min_level;
}

char *log_json_str(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (len == (size_t)-1)
        len = s ? strlen(s) : 0;
    if (cap < 8) {
        if (cap)
            out[0] = 0;
        return out;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 10 >= cap) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c < 0x20 || c >= 0x80) {
            /* Bytes >= 0x80 are escaped too: simpler than validating UTF-8 here
             * and the line stays valid JSON whatever the input was. */
            if (c >= 0x80) {
                size_t n = (c >= 0xf0) ? 4 : (c >= 0xe0) ? 3 : (c >= 0xc2 && c < 0xe0) ? 2 : 0;
                int ok = n && i + n <= len;
                for (size_t k = 1; ok && k < n; k++)
                    ok = ((unsigned char)s[i + k] & 0xc0) == 0x80;
                if (ok) {
                    memcpy(out + o, s + i, n);
                    o += n;
                    i += n - 1;
                    continue;
                }
            }
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[c >> 4];
            out[o + 5] = hex[c & 15];
            o += 6;
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = 0;
    return out;
}

void log_write(enum log_level lvl, const char *component, const char *msg, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    char line[4096];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    char m[1024];
    int n = snprintf(line, sizeof line,
                     "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\","
                     "\"component\":\"%s\",\"msg\":\"%s\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long)(tv.tv_usec / 1000), level_names[lvl], component,
                     log_json_str(m, sizeof m, msg, (size_t)-1));
    if (n < 0 || (size_t)n >= sizeof line - 4)
        n = (int)sizeof line - 4;
    if (fmt && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        line[n++] = ',';
        int k = vsnprintf(line + n, sizeof line - (size_t)n - 3, fmt, ap);
        va_end(ap);
        if (k < 0)
            n--;
        else if ((size_t)k >= sizeof line - (size_t)n - 3)
            n = (int)sizeof line - 3;
        else
            n += k;
    }
    line[n++] = '}';
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

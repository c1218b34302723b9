/* Structured logging. Each record is built in a bounded buffer and written
 * with a single fwrite so concurrent writers (librdkafka's threads route
 * their diagnostics here) never interleave inside a line. */
#include "zw/log.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LINE_MAX_BYTES 8192

static zw_log_level_t log_level = ZW_LOG_INFO;
static zw_log_format_t log_format = ZW_LOG_FORMAT_JSON;
static FILE *log_stream;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void zw_log_setup(zw_log_level_t level, zw_log_format_t format, FILE *stream)
{
    log_level = level;
    log_format = format;
    if (stream)
        log_stream = stream;
}

bool zw_log_enabled(zw_log_level_t level)
{
    return level >= log_level;
}

int zw_log_level_parse(const char *name, zw_log_level_t *level)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *level = (zw_log_level_t)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *level = ZW_LOG_WARN;
        return 0;
    }
    return -1;
}

int zw_log_format_parse(const char *name, zw_log_format_t *format)
{
    if (strcasecmp(name, "json") == 0)
        *format = ZW_LOG_FORMAT_JSON;
    else if (strcasecmp(name, "text") == 0)
        *format = ZW_LOG_FORMAT_TEXT;
    else
        return -1;
    return 0;
}

const char *zw_log_level_name(zw_log_level_t level)
{
    if ((int)level < 0 || level > ZW_LOG_ERROR)
        return "unknown";
    return level_names[level];
}

/* A bounded line under construction; once full, further appends are dropped
 * and the line ends with a truncation mark. */
typedef struct line_s {
    char buf[LINE_MAX_BYTES];
    size_t len;
    bool truncated;
} line_t;

static void put_mem(line_t *line, const char *s, size_t n)
{
    /* Keep room for the closing characters and the newline. */
    size_t room = sizeof(line->buf) - 8 - line->len;
    if (n > room) {
        n = room;
        line->truncated = true;
    }
    memcpy(line->buf + line->len, s, n);
    line->len += n;
}

static void put(line_t *line, const char *s)
{
    put_mem(line, s, strlen(s));
}

static void put_json_string(line_t *line, const char *s)
{
    put(line, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p && !line->truncated; p++) {
        char esc[8];
        switch (*p) {
        case '"': put(line, "\\\""); break;
        case '\\': put(line, "\\\\"); break;
        case '\n': put(line, "\\n"); break;
        case '\r': put(line, "\\r"); break;
        case '\t': put(line, "\\t"); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", *p);
                put(line, esc);
            } else {
                put_mem(line, (const char *)p, 1);
            }
        }
    }
    put(line, "\"");
}

static void put_timestamp(line_t *line)
{
    struct timespec ts;
    struct tm tm;
    char buf[40];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    put(line, buf);
}

void zw_log_write(zw_log_level_t level, const char *msg, const zw_log_field_t *fields,
                  size_t n_fields)
{
    line_t line;
    char num[32];
    FILE *out = log_stream ? log_stream : stderr;

    if (!zw_log_enabled(level))
        return;
    line.len = 0;
    line.truncated = false;

    if (log_format == ZW_LOG_FORMAT_JSON) {
        put(&line, "{\"ts\":\"");
        put_timestamp(&line);
        put(&line, "\",\"level\":\"");
        put(&line, zw_log_level_name(level));
        put(&line, "\",\"msg\":");
        put_json_string(&line, msg);
        for (size_t i = 0; i < n_fields; i++) {
            const zw_log_field_t *f = &fields[i];
            if (!f->key || (f->type == ZW_LOG_FIELD_STR && !f->s))
                continue;
            put(&line, ",");
            put_json_string(&line, f->key);
            put(&line, ":");
            if (f->type == ZW_LOG_FIELD_INT) {
                snprintf(num, sizeof(num), "%lld", f->i);
                put(&line, num);
            } else {
                put_json_string(&line, f->s);
            }
        }
        if (line.truncated) {
            /* The cut may fall inside a string: close it so the line parses. */
            line.truncated = false;
            put(&line, "\",\"truncated\":true");
        }
        put(&line, "}\n");
    } else {
        put_timestamp(&line);
        put(&line, " ");
        put(&line, zw_log_level_name(level));
        put(&line, " ");
        put(&line, msg);
        for (size_t i = 0; i < n_fields; i++) {
            const zw_log_field_t *f = &fields[i];
            if (!f->key || (f->type == ZW_LOG_FIELD_STR && !f->s))
                continue;
            put(&line, " ");
            put(&line, f->key);
            put(&line, "=");
            if (f->type == ZW_LOG_FIELD_INT) {
                snprintf(num, sizeof(num), "%lld", f->i);
                put(&line, num);
            } else {
                put(&line, f->s);
            }
        }
        line.truncated = false;
        put(&line, "\n");
    }
    fwrite(line.buf, 1, line.len, out);
    fflush(out);
}

void zw_logf(zw_log_level_t level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    if (!zw_log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    zw_log_write(level, msg, NULL, 0);
}

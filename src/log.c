/* Structured logging. Each record is built in a bounded buffer and written
 * with a single fwrite so concurrent writers (librdkafka's threads route
 * their diagnostics here) never interleave inside a line. */
#include "zw/log.h"

#include <stdarg.h>
#include <stdio.h>
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

/* A bounded line under construction. Content goes up to LINE_BODY_BYTES;
 * each append fits whole or sets truncated and adds nothing, and the tail
 * (the truncation mark, the closing brace, the newline) always fits in the
 * room kept after the body, so a long line is cut, never left open. */
#define LINE_TAIL_BYTES 64
#define LINE_BODY_BYTES (LINE_MAX_BYTES - LINE_TAIL_BYTES)

typedef struct line_s {
    char buf[LINE_MAX_BYTES];
    size_t len;
    bool truncated;
} line_t;

static void put_mem(line_t *line, const char *s, size_t n)
{
    if (line->truncated || n > LINE_BODY_BYTES - line->len) {
        line->truncated = true;
        return;
    }
    memcpy(line->buf + line->len, s, n);
    line->len += n;
}

static void put(line_t *line, const char *s)
{
    put_mem(line, s, strlen(s));
}

/* The tail, in the room kept for it. */
static void put_tail(line_t *line, const char *s)
{
    size_t n = strlen(s);

    if (n > sizeof(line->buf) - line->len)
        n = sizeof(line->buf) - line->len;
    memcpy(line->buf + line->len, s, n);
    line->len += n;
}

/* A cut string may end inside a UTF-8 sequence: drop its first bytes, so
 * the line stays valid UTF-8 as far as the input was. */
static void trim_partial_utf8(line_t *line, size_t string_start)
{
    size_t i = line->len, cont = 0;

    while (i > string_start && cont < 3 && ((unsigned char)line->buf[i - 1] & 0xC0) == 0x80) {
        i--;
        cont++;
    }
    if (i > string_start) {
        unsigned char lead = (unsigned char)line->buf[i - 1];
        size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
        if (lead >= 0xC0 && cont < need)
            line->len = i - 1;
    }
}

/* Control characters escaped as in JSON, in both formats: an event's
 * fields cannot start a line of their own (log forging). */
static void put_escaped(line_t *line, const char *s, bool quote_too)
{
    size_t start = line->len;

    for (const unsigned char *p = (const unsigned char *)s; *p && !line->truncated; p++) {
        char esc[8];
        switch (*p) {
        case '"': put(line, quote_too ? "\\\"" : "\""); break;
        case '\\': put(line, quote_too ? "\\\\" : "\\"); break;
        case '\n': put(line, "\\n"); break;
        case '\r': put(line, "\\r"); break;
        case '\t': put(line, "\\t"); break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                snprintf(esc, sizeof(esc), "\\u%04x", *p);
                put(line, esc);
            } else {
                put_mem(line, (const char *)p, 1);
            }
        }
    }
    if (line->truncated)
        trim_partial_utf8(line, start);
}

/* A JSON string. Returns true when it was cut inside, left open for the
 * caller to close; false when it fit whole or not even its quote did. */
static bool put_json_string(line_t *line, const char *s)
{
    put(line, "\"");
    if (line->truncated)
        return false;
    put_escaped(line, s, true);
    put(line, "\"");
    return line->truncated;
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

static bool field_present(const zw_log_field_t *f)
{
    return f->key && (f->type != ZW_LOG_FIELD_STR || f->s);
}

/* {"ts":..,"level":..,"msg":..,"key":value...}. A cut inside a string value
 * (the message or a field's) keeps what fit and closes the string; a cut
 * anywhere else drops the field it fell in. Either way the line ends with
 * "truncated":true and parses. */
static void format_json(line_t *line, zw_log_level_t level, const char *msg,
                        const zw_log_field_t *fields, size_t n_fields)
{
    char num[32];
    bool open_string = false;

    put(line, "{\"ts\":\"");
    put_timestamp(line);
    put(line, "\",\"level\":\"");
    put(line, zw_log_level_name(level));
    put(line, "\",\"msg\":");
    open_string = put_json_string(line, msg);
    for (size_t i = 0; i < n_fields && !line->truncated; i++) {
        const zw_log_field_t *f = &fields[i];
        size_t mark = line->len;

        if (!field_present(f))
            continue;
        put(line, ",");
        put_json_string(line, f->key);
        put(line, ":");
        if (f->type == ZW_LOG_FIELD_INT) {
            snprintf(num, sizeof(num), "%lld", f->i);
            put(line, num);
        } else if (!line->truncated) {
            open_string = put_json_string(line, f->s);
        }
        if (line->truncated && !open_string)
            line->len = mark; /* cut in the key, a number or a separator */
    }
    if (open_string)
        put_tail(line, "\"");
    if (line->truncated)
        put_tail(line, ",\"truncated\":true");
    put_tail(line, "}\n");
}

/* TS LEVEL msg key=value...: a value with a space, a quote, an '=' or a
 * control character (or none at all) is quoted and escaped. */
static void put_text_value(line_t *line, const char *s)
{
    bool plain = *s != '\0';

    for (const unsigned char *p = (const unsigned char *)s; *p && plain; p++)
        plain = *p > 0x20 && *p != 0x7f && *p != '"' && *p != '=' && *p != '\\';
    if (plain) {
        put_escaped(line, s, false); /* nothing to escape: cut byte-wise if long */
        return;
    }
    put(line, "\"");
    put_escaped(line, s, true);
    if (line->truncated)
        put_tail(line, "\"");
    else
        put(line, "\"");
}

static void format_text(line_t *line, zw_log_level_t level, const char *msg,
                        const zw_log_field_t *fields, size_t n_fields)
{
    char num[32];

    put_timestamp(line);
    put(line, " ");
    put(line, zw_log_level_name(level));
    put(line, " ");
    put_escaped(line, msg, false);
    for (size_t i = 0; i < n_fields && !line->truncated; i++) {
        const zw_log_field_t *f = &fields[i];

        if (!field_present(f))
            continue;
        put(line, " ");
        put_escaped(line, f->key, false);
        put(line, "=");
        if (f->type == ZW_LOG_FIELD_INT) {
            snprintf(num, sizeof(num), "%lld", f->i);
            put(line, num);
        } else {
            put_text_value(line, f->s);
        }
    }
    if (line->truncated)
        put_tail(line, " truncated=true");
    put_tail(line, "\n");
}

void zw_log_write(zw_log_level_t level, const char *msg, const zw_log_field_t *fields,
                  size_t n_fields)
{
    line_t line;
    FILE *out = log_stream ? log_stream : stderr;

    if (!zw_log_enabled(level))
        return;
    line.len = 0;
    line.truncated = false;
    if (log_format == ZW_LOG_FORMAT_JSON)
        format_json(&line, level, msg ? msg : "", fields, n_fields);
    else
        format_text(&line, level, msg ? msg : "", fields, n_fields);
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

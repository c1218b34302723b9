/* Structured logging: one line per record on stderr, JSON by default or a
 * human-readable text form for terminals. Only log.c writes log output.
 * Records below the configured level are never formatted. */
#ifndef ZW_LOG_H
#define ZW_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum {
    ZW_LOG_DEBUG = 0,
    ZW_LOG_INFO = 1,
    ZW_LOG_WARN = 2,
    ZW_LOG_ERROR = 3,
} zw_log_level_t;

typedef enum {
    ZW_LOG_FORMAT_JSON = 0,
    ZW_LOG_FORMAT_TEXT = 1,
} zw_log_format_t;

typedef enum {
    ZW_LOG_FIELD_STR = 0,
    ZW_LOG_FIELD_INT = 1,
} zw_log_field_type_t;

/* One key/value of a record. Strings are lent for the duration of the call. */
typedef struct zw_log_field_s {
    const char *key;
    zw_log_field_type_t type;
    const char *s;
    long long i;
} zw_log_field_t;

#define ZW_LF_STR(k, v) ((zw_log_field_t){.key = (k), .type = ZW_LOG_FIELD_STR, .s = (v)})
#define ZW_LF_INT(k, v) ((zw_log_field_t){.key = (k), .type = ZW_LOG_FIELD_INT, .i = (long long)(v)})

/* Sets the threshold and the format. The stream defaults to stderr; pass
 * NULL to keep the current one. Not thread-safe: call before threads start. */
void zw_log_setup(zw_log_level_t level, zw_log_format_t format, FILE *stream);

/* Whether a record at this level would be written. */
bool zw_log_enabled(zw_log_level_t level);

/* Parse "debug" | "info" | "warn" | "error" (and "warning"). Returns 0 / -1. */
int zw_log_level_parse(const char *name, zw_log_level_t *level);
/* Parse "json" | "text". Returns 0 / -1. */
int zw_log_format_parse(const char *name, zw_log_format_t *format);
const char *zw_log_level_name(zw_log_level_t level);

/* Writes one record: a message plus fields (NULL-valued string fields are
 * skipped). Thread-safe: each record is a single write. */
void zw_log_write(zw_log_level_t level, const char *msg, const zw_log_field_t *fields,
                  size_t n_fields);

/* printf-style message without fields. */
void zw_logf(zw_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ZW_LOG(level, msg, ZW_LF_STR("tenant", t), ...): fields are optional. */
#define ZW_LOG(level, msg, ...)                                                                    \
    do {                                                                                           \
        if (zw_log_enabled(level)) {                                                               \
            const zw_log_field_t zw_log_f_[] = {ZW_LF_STR(NULL, NULL), __VA_ARGS__};               \
            zw_log_write((level), (msg), zw_log_f_ + 1,                                            \
                         sizeof(zw_log_f_) / sizeof(zw_log_f_[0]) - 1);                            \
        }                                                                                          \
    } while (0)

#endif

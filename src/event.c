/* Provisioning requests: parse and validate. The rules are those of
 * schemas/provisioning-request.schema.json, written out by hand so a bad
 * event is named precisely ("person.group_ids[2]: expected an integer"). */
#include "zw/event.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vctx_s {
    zw_event_error_t err;
    char *errstr;
    size_t errstr_size;
} vctx_t;

static void verr(vctx_t *v, zw_event_error_t err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void verr(vctx_t *v, zw_event_error_t err, const char *fmt, ...)
{
    va_list ap;

    if (v->err != ZW_EVENT_OK)
        return;
    v->err = err;
    va_start(ap, fmt);
    vsnprintf(v->errstr, v->errstr_size, fmt, ap);
    va_end(ap);
}

static const char *json_type_label(json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_double: return "a number";
    case json_type_int: return "an integer";
    case json_type_object: return "an object";
    case json_type_array: return "an array";
    case json_type_string: return "a string";
    }
    return "unknown";
}

/* Counts UTF-8 code points, as JSON Schema's minLength/maxLength do. */
static size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    }
    return n;
}

/* Decodes the UTF-8 sequence at *p and steps past it. json-c has checked the
 * encoding (JSON_TOKENER_VALIDATE_UTF8); a bad byte anyway is stepped over
 * alone and returned as U+FFFD. */
static uint32_t utf8_next(const char **p)
{
    const unsigned char *s = (const unsigned char *)*p;
    uint32_t cp;
    int more;

    if (s[0] < 0x80) {
        *p += 1;
        return s[0];
    }
    if ((s[0] & 0xE0) == 0xC0) {
        cp = s[0] & 0x1F;
        more = 1;
    } else if ((s[0] & 0xF0) == 0xE0) {
        cp = s[0] & 0x0F;
        more = 2;
    } else if ((s[0] & 0xF8) == 0xF0) {
        cp = s[0] & 0x07;
        more = 3;
    } else {
        *p += 1;
        return 0xFFFD;
    }
    for (int i = 1; i <= more; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *p += 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    *p += 1 + more;
    return cp;
}

/* ECMA-262 \s (WhiteSpace and LineTerminator), which the schema's patterns
 * use: wider than isspace(), and not locale-dependent. */
static bool is_ecma_space(uint32_t cp)
{
    switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
    case 0xFEFF: return true;
    }
    return cp >= 0x2000 && cp <= 0x200A;
}

/* Room for QUOTE_MAX code points of up to 6 bytes each ("\u2028"), "..."
 * and the NUL. */
#define QUOTE_MAX 64
#define QUOTE_SIZE (QUOTE_MAX * 6 + 4)

/* Copies s into buf (QUOTE_SIZE bytes) fit to be quoted in a message: at most
 * QUOTE_MAX code points, then "...", with control characters, line
 * separators, backslash and ' escaped. Input is arbitrary, and a message
 * must stay one short line in the DLQ header, the log and validate-event's
 * output. Returns buf. */
static const char *quoted(char buf[QUOTE_SIZE], const char *s)
{
    size_t o = 0;

    for (int n = 0; *s; n++) {
        const char *start = s;
        uint32_t cp;

        if (n == QUOTE_MAX) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        cp = utf8_next(&s);
        if (cp == '\\' || cp == '\'') {
            buf[o++] = '\\';
            buf[o++] = (char)cp;
        } else if (cp == '\n') {
            memcpy(buf + o, "\\n", 2);
            o += 2;
        } else if (cp == '\r') {
            memcpy(buf + o, "\\r", 2);
            o += 2;
        } else if (cp == '\t') {
            memcpy(buf + o, "\\t", 2);
            o += 2;
        } else if (cp == 0xFFFD && s - start == 1) {
            o += (size_t)snprintf(buf + o, 5, "\\x%02X", (unsigned char)*start);
        } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029) {
            o += (size_t)snprintf(buf + o, 7, "\\u%04X", (unsigned)cp);
        } else {
            memcpy(buf + o, start, (size_t)(s - start));
            o += (size_t)(s - start);
        }
    }
    buf[o] = '\0';
    return buf;
}

/* A string field within [min, max] characters; returns a copy or NULL. */
static char *get_str(vctx_t *v, json_object *obj, const char *field, const char *label,
                     bool required, size_t min, size_t max)
{
    json_object *f;
    const char *s;
    size_t n;
    char *copy;

    if (v->err)
        return NULL;
    if (!json_object_object_get_ex(obj, field, &f)) {
        if (required)
            verr(v, ZW_EVENT_ERR_MISSING_FIELD, "%s: missing required field", label);
        return NULL;
    }
    if (!json_object_is_type(f, json_type_string)) {
        verr(v, ZW_EVENT_ERR_WRONG_TYPE, "%s: expected a string, got %s", label,
             json_type_label(f));
        return NULL;
    }
    s = json_object_get_string(f);
    n = utf8_length(s);
    if (n < min || n > max) {
        verr(v, ZW_EVENT_ERR_INVALID_VALUE, "%s: length %zu is outside [%zu, %zu]", label, n, min,
             max);
        return NULL;
    }
    if (strlen(s) != (size_t)json_object_get_string_len(f)) {
        verr(v, ZW_EVENT_ERR_INVALID_VALUE, "%s: contains a NUL character", label);
        return NULL;
    }
    copy = strdup(s);
    if (!copy)
        verr(v, ZW_EVENT_ERR_INVALID_VALUE, "%s: out of memory", label);
    return copy;
}

/* RFC 8259 section 6: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json_number_text(const char *t)
{
    if (*t == '-')
        t++;
    if (*t == '0')
        t++;
    else if (*t >= '1' && *t <= '9')
        while (*t >= '0' && *t <= '9')
            t++;
    else
        return false;
    if (*t == '.') {
        t++;
        if (!(*t >= '0' && *t <= '9'))
            return false;
        while (*t >= '0' && *t <= '9')
            t++;
    }
    if (*t == 'e' || *t == 'E') {
        t++;
        if (*t == '+' || *t == '-')
            t++;
        if (!(*t >= '0' && *t <= '9'))
            return false;
        while (*t >= '0' && *t <= '9')
            t++;
    }
    return *t == '\0';
}

typedef enum {
    NUM_INTEGER,  /* integral and within int64 */
    NUM_FRACTION, /* not integral */
    NUM_HUGE,     /* integral, above INT64_MAX */
    NUM_TINY,     /* integral, below INT64_MIN */
} num_kind_t;

/* Reads a JSON number's text exactly: JSON Schema calls 7.0, 1e2 and 1.5e1
 * integers, and an id must not be rounded through a double (2^53 + 1). */
static num_kind_t number_text_value(const char *t, int64_t *out)
{
    bool neg = false, started = false, in_frac = false;
    char digits[19];
    int64_t n = 0, last_nz = 0, n_frac = 0, exp = 0, exp10;
    uint64_t v = 0;

    if (*t == '-') {
        neg = true;
        t++;
    }
    for (; (*t >= '0' && *t <= '9') || *t == '.'; t++) {
        if (*t == '.') {
            in_frac = true;
            continue;
        }
        if (in_frac)
            n_frac++;
        if (*t != '0')
            started = true;
        if (!started)
            continue;
        if (n < (int64_t)sizeof(digits))
            digits[n] = *t;
        n++;
        if (*t != '0')
            last_nz = n;
    }
    if (*t == 'e' || *t == 'E') {
        bool exp_neg = *++t == '-';
        if (*t == '+' || *t == '-')
            t++;
        /* Saturate: past 10^9 only the sign of the exponent matters. */
        for (; *t >= '0' && *t <= '9'; t++)
            exp = exp < 1000000000 ? exp * 10 + (*t - '0') : exp;
        if (exp_neg)
            exp = -exp;
    }
    *out = 0;
    if (!started)
        return NUM_INTEGER;
    /* The value is digits[0..last_nz) * 10^exp10, the digits without trailing zeros. */
    exp10 = exp - n_frac + (n - last_nz);
    if (exp10 < 0)
        return NUM_FRACTION;
    if (last_nz + exp10 > 19)
        return neg ? NUM_TINY : NUM_HUGE;
    for (int64_t i = 0; i < last_nz; i++)
        v = v * 10 + (uint64_t)(digits[i] - '0');
    for (int64_t i = 0; i < exp10; i++)
        v *= 10;
    if (!neg && v > (uint64_t)INT64_MAX)
        return NUM_HUGE;
    if (neg && v > (uint64_t)INT64_MAX + 1)
        return NUM_TINY;
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return NUM_INTEGER;
}

/* A JSON number as an integer when JSON Schema would call it one. json-c
 * makes 7.0 a double and clamps integers past 64 bits, so both are read
 * back: a double from its text, which json-c keeps, and an int through
 * its unsigned value. */
static num_kind_t number_value(json_object *o, int64_t *out)
{
    *out = 0;
    if (json_object_is_type(o, json_type_int)) {
        int64_t i = json_object_get_int64(o);
        /* json-c keeps 2^63..2^64-1 as unsigned and clamps past that. */
        if (i == INT64_MAX && json_object_get_uint64(o) > (uint64_t)INT64_MAX)
            return NUM_HUGE;
        *out = i;
        return NUM_INTEGER;
    }
    if (json_object_is_type(o, json_type_double)) {
        const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        double d = json_object_get_double(o);

        if (t && json_number_text(t))
            return number_text_value(t, out);
        /* No source text (not from the tokener): judge the double. */
        if (!isfinite(d) || floor(d) != d)
            return NUM_FRACTION;
        if (d >= 9223372036854775808.0)
            return NUM_HUGE;
        if (d < -9223372036854775808.0)
            return NUM_TINY;
        *out = (int64_t)d;
        return NUM_INTEGER;
    }
    return NUM_FRACTION;
}

/* An id (integer >= 1); false with the error set otherwise. */
static bool id_value(vctx_t *v, json_object *f, const char *label, const char *expected,
                     int64_t *out)
{
    num_kind_t kind =
        json_object_is_type(f, json_type_int) || json_object_is_type(f, json_type_double)
            ? number_value(f, out)
            : NUM_FRACTION;

    if (kind == NUM_FRACTION) {
        verr(v, ZW_EVENT_ERR_WRONG_TYPE, "%s: expected %s, got %s", label, expected,
             json_type_label(f));
        return false;
    }
    if (kind == NUM_HUGE) {
        verr(v, ZW_EVENT_ERR_INVALID_VALUE,
             "%s: larger than 9223372036854775807, the largest id the worker can handle", label);
        return false;
    }
    if (kind == NUM_TINY || *out < 1) {
        verr(v, ZW_EVENT_ERR_INVALID_VALUE, "%s: must be an integer >= 1", label);
        return false;
    }
    return true;
}

/* An id, or null. Sets *has and *is_null. */
static void get_id(vctx_t *v, json_object *obj, const char *field, const char *label, bool *has,
                   bool *is_null, int64_t *out)
{
    json_object *f;

    if (v->err || !json_object_object_get_ex(obj, field, &f))
        return;
    *has = true;
    if (json_object_is_type(f, json_type_null)) {
        *is_null = true;
        return;
    }
    id_value(v, f, label, "an integer or null", out);
}

static bool valid_tenant(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        /* ASCII ranges: islower() would follow the locale. */
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    }
    return true;
}

/* ^[^@\s]+@[^@\s]+$ */
static bool valid_email(const char *s)
{
    const char *at = strchr(s, '@');

    if (!at || at == s || at[1] == '\0' || strchr(at + 1, '@'))
        return false;
    while (*s) {
        if (is_ecma_space(utf8_next(&s)))
            return false;
    }
    return true;
}

/* RFC 3339 date-time, as JSON Schema's "date-time" format. A leap second is
 * the last second of a UTC day: 23:59:60Z, or that instant in an offset. */
static bool valid_date_time(const char *s)
{
    int y, mo, d, h, mi, sec, n = 0, offset = 0;
    const char *p;

    if (strlen(s) < 20)
        return false;
    for (int i = 0; i < 19; i++) {
        bool digit_pos = !(i == 4 || i == 7 || i == 10 || i == 13 || i == 16);
        if (digit_pos && !isdigit((unsigned char)s[i]))
            return false;
    }
    if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':')
        return false;
    if (s[10] == ' ')
        return false;
    if (sscanf(s, "%4d-%2d-%2d%*c%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    {
        static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
            return false;
    }
    p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'Z' || *p == 'z') {
        if (p[1] != '\0')
            return false;
    } else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
               isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
               isdigit((unsigned char)p[5]) && p[6] == '\0') {
        int oh = (p[1] - '0') * 10 + (p[2] - '0'), om = (p[4] - '0') * 10 + (p[5] - '0');
        if (oh > 23 || om > 59)
            return false;
        offset = (oh * 60 + om) * (*p == '-' ? -1 : 1);
    } else {
        return false;
    }
    /* Local time minus the offset is UTC; +1440 keeps the remainder positive. */
    return sec < 60 || (h * 60 + mi - offset + 1440) % 1440 == 23 * 60 + 59;
}

static void check_known(vctx_t *v, json_object *obj, const char *prefix, const char *const *known)
{
    json_object_object_foreach(obj, key, val)
    {
        bool found = false;
        (void)val;
        for (const char *const *k = known; *k; k++) {
            if (strcmp(*k, key) == 0) {
                found = true;
                break;
            }
        }
        if (!found) {
            char q[QUOTE_SIZE];
            verr(v, ZW_EVENT_ERR_UNKNOWN_FIELD, "%s%s: unknown field", prefix, quoted(q, key));
            return;
        }
    }
}

static void parse_group_ids(vctx_t *v, json_object *person, zw_person_t *p)
{
    json_object *arr;
    size_t n;

    if (v->err || !json_object_object_get_ex(person, "group_ids", &arr))
        return;
    p->has_group_ids = true;
    if (!json_object_is_type(arr, json_type_array)) {
        verr(v, ZW_EVENT_ERR_WRONG_TYPE, "person.group_ids: expected an array, got %s",
             json_type_label(arr));
        return;
    }
    n = json_object_array_length(arr);
    if (n > 100) {
        verr(v, ZW_EVENT_ERR_INVALID_VALUE, "person.group_ids: more than 100 items");
        return;
    }
    p->group_ids = calloc(n ? n : 1, sizeof(int64_t));
    if (!p->group_ids) {
        verr(v, ZW_EVENT_ERR_INVALID_VALUE, "person.group_ids: out of memory");
        return;
    }
    for (size_t i = 0; i < n && !v->err; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        char label[48];
        int64_t id;

        snprintf(label, sizeof(label), "person.group_ids[%zu]", i);
        if (!id_value(v, e, label, "an integer", &id))
            break;
        for (size_t j = 0; j < p->n_group_ids; j++) {
            if (p->group_ids[j] == id) {
                verr(v, ZW_EVENT_ERR_INVALID_VALUE, "person.group_ids[%zu]: duplicate %lld", i,
                     (long long)id);
                break;
            }
        }
        p->group_ids[p->n_group_ids++] = id;
    }
}

/* ^[^\s,]+$ */
static bool valid_tag(const char *s)
{
    if (!*s)
        return false;
    while (*s) {
        uint32_t cp = utf8_next(&s);
        if (is_ecma_space(cp) || cp == ',')
            return false;
    }
    return true;
}

static void parse_tags(vctx_t *v, json_object *person, zw_person_t *p)
{
    json_object *arr;
    size_t n;

    if (v->err || !json_object_object_get_ex(person, "tags", &arr))
        return;
    p->has_tags = true;
    if (!json_object_is_type(arr, json_type_array)) {
        verr(v, ZW_EVENT_ERR_WRONG_TYPE, "person.tags: expected an array, got %s",
             json_type_label(arr));
        return;
    }
    n = json_object_array_length(arr);
    if (n > 100) {
        verr(v, ZW_EVENT_ERR_INVALID_VALUE, "person.tags: more than 100 items");
        return;
    }
    p->tags = calloc(n ? n : 1, sizeof(char *));
    if (!p->tags) {
        verr(v, ZW_EVENT_ERR_INVALID_VALUE, "person.tags: out of memory");
        return;
    }
    for (size_t i = 0; i < n && !v->err; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        const char *s;
        if (!json_object_is_type(e, json_type_string)) {
            verr(v, ZW_EVENT_ERR_WRONG_TYPE, "person.tags[%zu]: expected a string, got %s", i,
                 json_type_label(e));
            break;
        }
        s = json_object_get_string(e);
        if (utf8_length(s) > 80 || !valid_tag(s)) {
            verr(v, ZW_EVENT_ERR_INVALID_VALUE,
                 "person.tags[%zu]: must be 1..80 characters without spaces or commas", i);
            break;
        }
        for (size_t j = 0; j < p->n_tags; j++) {
            if (strcmp(p->tags[j], s) == 0) {
                char q[QUOTE_SIZE];
                verr(v, ZW_EVENT_ERR_INVALID_VALUE, "person.tags[%zu]: duplicate '%s'", i,
                     quoted(q, s));
                break;
            }
        }
        if (v->err)
            break;
        p->tags[p->n_tags] = strdup(s);
        if (!p->tags[p->n_tags]) {
            verr(v, ZW_EVENT_ERR_INVALID_VALUE, "person.tags: out of memory");
            break;
        }
        p->n_tags++;
    }
}

static void parse_user_fields(vctx_t *v, json_object *person, zw_person_t *p)
{
    json_object *uf;

    if (v->err || !json_object_object_get_ex(person, "user_fields", &uf))
        return;
    if (!json_object_is_type(uf, json_type_object)) {
        verr(v, ZW_EVENT_ERR_WRONG_TYPE, "person.user_fields: expected an object, got %s",
             json_type_label(uf));
        return;
    }
    if (json_object_object_length(uf) > 100) {
        verr(v, ZW_EVENT_ERR_INVALID_VALUE, "person.user_fields: more than 100 fields");
        return;
    }
    json_object_object_foreach(uf, key, val)
    {
        json_type t = json_object_get_type(val);
        char q[QUOTE_SIZE];

        if (t == json_type_object || t == json_type_array) {
            verr(v, ZW_EVENT_ERR_WRONG_TYPE,
                 "person.user_fields.%s: expected a string, number, boolean or null, got %s",
                 quoted(q, key), json_type_label(val));
            return;
        }
        /* An integral number (1e300 included) must fit a signed 64-bit
         * integer: json-c clamps bigger ones, and Zendesk would store the
         * clamped number, so refuse rather than change it. -2^63 itself is
         * what json-c clamps to, so it is refused too. The schema says the
         * same: integers from -9223372036854775807 to 9223372036854775807.
         * A number past double range (1e400) is passed on as written. */
        if (t == json_type_int || (t == json_type_double && isfinite(json_object_get_double(val)))) {
            int64_t n = 0;
            num_kind_t k = number_value(val, &n);
            if (k == NUM_HUGE || k == NUM_TINY || (k == NUM_INTEGER && n == INT64_MIN)) {
                verr(v, ZW_EVENT_ERR_INVALID_VALUE,
                     "person.user_fields.%s: integer outside the range the worker can pass on "
                     "exactly (-9223372036854775807 to 9223372036854775807)",
                     quoted(q, key));
                return;
            }
        }
    }
    p->user_fields = json_object_get(uf);
}

static void parse_person(vctx_t *v, json_object *root, zw_event_t *ev)
{
    static const char *const known[] = {
        "external_id",      "email",     "name",   "role",      "custom_role_id", "organization_id",
        "default_group_id", "group_ids", "locale", "time_zone", "phone",          "tags",
        "user_fields",      NULL};
    zw_person_t *p = &ev->person;
    json_object *person, *phone;

    if (!json_object_object_get_ex(root, "person", &person)) {
        verr(v, ZW_EVENT_ERR_MISSING_FIELD, "person: missing required field");
        return;
    }
    if (!json_object_is_type(person, json_type_object)) {
        verr(v, ZW_EVENT_ERR_WRONG_TYPE, "person: expected an object, got %s",
             json_type_label(person));
        return;
    }
    check_known(v, person, "person.", known);
    p->external_id = get_str(v, person, "external_id", "person.external_id", true, 1, 255);
    p->email = get_str(v, person, "email", "person.email", false, 0, 254);
    if (!v->err && p->email && !valid_email(p->email))
        verr(v, ZW_EVENT_ERR_INVALID_VALUE, "person.email: not an e-mail address");
    p->name = get_str(v, person, "name", "person.name", false, 1, 255);
    p->role = get_str(v, person, "role", "person.role", false, 0, 16);
    if (!v->err && p->role && strcmp(p->role, "end-user") != 0 && strcmp(p->role, "agent") != 0 &&
        strcmp(p->role, "admin") != 0) {
        char q[QUOTE_SIZE];
        verr(v, ZW_EVENT_ERR_INVALID_VALUE,
             "person.role: '%s' is not one of: end-user, agent, admin", quoted(q, p->role));
    }
    get_id(v, person, "custom_role_id", "person.custom_role_id", &p->has_custom_role_id,
           &p->custom_role_id_null, &p->custom_role_id);
    get_id(v, person, "organization_id", "person.organization_id", &p->has_organization_id,
           &p->organization_id_null, &p->organization_id);
    get_id(v, person, "default_group_id", "person.default_group_id", &p->has_default_group_id,
           &p->default_group_id_null, &p->default_group_id);
    parse_group_ids(v, person, p);
    p->locale = get_str(v, person, "locale", "person.locale", false, 1, 20);
    p->time_zone = get_str(v, person, "time_zone", "person.time_zone", false, 1, 100);
    if (!v->err && json_object_object_get_ex(person, "phone", &phone)) {
        if (json_object_is_type(phone, json_type_null))
            p->phone_null = true;
        else
            p->phone = get_str(v, person, "phone", "person.phone", false, 0, 50);
    }
    parse_tags(v, person, p);
    parse_user_fields(v, person, p);
}

static void parse_leaver(vctx_t *v, json_object *root, zw_event_t *ev)
{
    static const char *const known[] = {"action", NULL};
    json_object *leaver;
    char *action;

    if (v->err || !json_object_object_get_ex(root, "leaver", &leaver))
        return;
    if (!json_object_is_type(leaver, json_type_object)) {
        verr(v, ZW_EVENT_ERR_WRONG_TYPE, "leaver: expected an object, got %s",
             json_type_label(leaver));
        return;
    }
    check_known(v, leaver, "leaver.", known);
    action = get_str(v, leaver, "action", "leaver.action", true, 1, 32);
    if (!action)
        return;
    if (strcmp(action, "suspend") == 0)
        ev->leaver_action = ZW_LEAVER_ACTION_SUSPEND;
    else if (strcmp(action, "downgrade_suspend") == 0)
        ev->leaver_action = ZW_LEAVER_ACTION_DOWNGRADE_SUSPEND;
    else if (strcmp(action, "delete") == 0)
        ev->leaver_action = ZW_LEAVER_ACTION_DELETE;
    else {
        char q[QUOTE_SIZE];
        verr(v, ZW_EVENT_ERR_INVALID_VALUE,
             "leaver.action: '%s' is not one of: suspend, downgrade_suspend, delete",
             quoted(q, action));
    }
    free(action);
}

/* RFC 8259 whitespace; isspace() would also pass \v and \f. */
static bool json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Where json-c, even with JSON_TOKENER_STRICT, accepts what RFC 8259 does
 * not, for a document it parsed: a raw control character inside a string
 * (section 7 wants it escaped). Returns a description, or NULL. */
static const char *raw_control_in_string(const char *data, size_t len)
{
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (!in_string) {
            in_string = c == '"';
        } else if (c == '\\') {
            i++;
        } else if (c == '"') {
            in_string = false;
        } else if (c < 0x20) {
            return "a control character in a string must be escaped";
        }
    }
    return NULL;
}

/* The same for numbers: json-c reads NaN, Infinity, -Infinity and "1." as
 * doubles. A double from the tokener keeps its text, so each is checked
 * against the grammar. Recursion is bounded by the tokener's depth. */
static const char *bad_number(json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_double: {
        const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        double d = json_object_get_double(o);
        if (t && json_number_text(t))
            return NULL;
        if (isnan(d))
            return "NaN is not a JSON number";
        if (isinf(d))
            return "Infinity is not a JSON number";
        return "a number must have digits after its decimal point";
    }
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(o); i++) {
            const char *why = bad_number(json_object_array_get_idx(o, i));
            if (why)
                return why;
        }
        return NULL;
    case json_type_object: {
        json_object_object_foreach(o, key, val)
        {
            const char *why = bad_number(val);
            (void)key;
            if (why)
                return why;
        }
        return NULL;
    }
    default: return NULL;
    }
}

/* Parses data as one RFC 8259 JSON text into *root (a new reference; NULL
 * for the text "null"). Returns false with the error set if it is not one. */
static bool parse_json(vctx_t *v, const char *data, size_t len, json_object **root_out)
{
    json_tokener *tok;
    json_object *root;
    enum json_tokener_error jerr;
    size_t end;
    const char *why = NULL;

    tok = json_tokener_new_ex(64);
    *root_out = NULL;
    if (!tok) {
        verr(v, ZW_EVENT_ERR_NOT_JSON, "out of memory");
        return false;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    root = json_tokener_parse_ex(tok, data, (int)len);
    jerr = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    /* A number at the very end ("7") waits for a byte that ends it. */
    if (!root && jerr == json_tokener_continue && end == len) {
        root = json_tokener_parse_ex(tok, " ", 1);
        jerr = json_tokener_get_error(tok);
    }
    json_tokener_free(tok);
    if (jerr != json_tokener_success) {
        why = jerr == json_tokener_continue ? "unexpected end of data"
                                            : json_tokener_error_desc(jerr);
    } else {
        /* Trailing whitespace is fine; anything else after the value is not. */
        for (size_t i = end; i < len && !why; i++) {
            if (!json_space(data[i]))
                why = "trailing data after the value";
        }
        if (!why)
            why = raw_control_in_string(data, len);
        if (!why)
            why = bad_number(root);
    }
    if (why) {
        verr(v, ZW_EVENT_ERR_NOT_JSON, "not valid JSON: %s", why);
        json_object_put(root);
        return false;
    }
    *root_out = root;
    return true;
}

/* What every message goes through first: size, JSON, an object, and its id
 * copied into *id_out (when readable) so even an invalid message can get a
 * result. Returns the root object (a new reference) or NULL with the error
 * set. `what` names the message in size errors. */
static json_object *open_message(vctx_t *v, const char *data, size_t len, size_t max_bytes,
                                 const char *what, const char *id_field, char **id_out)
{
    json_object *root, *f;

    if (len > max_bytes) {
        verr(v, ZW_EVENT_ERR_TOO_LARGE, "%s of %zu bytes exceeds the limit of %zu", what, len,
             max_bytes);
        return NULL;
    }
    if (len > INT_MAX) { /* json-c's limit */
        verr(v, ZW_EVENT_ERR_TOO_LARGE, "%s of %zu bytes exceeds the limit of %d", what, len,
             INT_MAX);
        return NULL;
    }
    if (len == 0 || !data) {
        verr(v, ZW_EVENT_ERR_NOT_JSON, "empty message");
        return NULL;
    }
    if (!parse_json(v, data, len, &root))
        return NULL;
    if (!json_object_is_type(root, json_type_object)) {
        verr(v, ZW_EVENT_ERR_NOT_OBJECT, "expected a JSON object, got %s", json_type_label(root));
        json_object_put(root);
        return NULL;
    }
    if (json_object_object_get_ex(root, id_field, &f) &&
        json_object_is_type(f, json_type_string) && json_object_get_string_len(f) > 0 &&
        strlen(json_object_get_string(f)) == (size_t)json_object_get_string_len(f) &&
        utf8_length(json_object_get_string(f)) <= 200)
        *id_out = strdup(json_object_get_string(f));
    return root;
}

zw_event_error_t zw_event_parse(const char *data, size_t len, size_t max_bytes, zw_event_t *ev,
                                char **event_id_out, char *errstr, size_t errstr_size)
{
    static const char *const known[] = {"schema",  "event_id", "type",   "tenant", "occurred_at",
                                        "dry_run", "person",   "leaver", NULL};
    vctx_t v = {.err = ZW_EVENT_OK, .errstr = errstr, .errstr_size = errstr_size};
    json_object *root, *f;
    char *schema = NULL, *type = NULL;
    char q[QUOTE_SIZE];

    memset(ev, 0, sizeof(*ev));
    *event_id_out = NULL;
    if (errstr_size)
        errstr[0] = '\0';
    root = open_message(&v, data, len, max_bytes, "event", "event_id", event_id_out);
    if (!root)
        return v.err;

    check_known(&v, root, "", known);
    schema = get_str(&v, root, "schema", "schema", true, 1, 200);
    if (!v.err && strcmp(schema, ZW_EVENT_SCHEMA) != 0)
        verr(&v, ZW_EVENT_ERR_SCHEMA, "schema: expected '%s', got '%s'", ZW_EVENT_SCHEMA,
             quoted(q, schema));
    ev->event_id = get_str(&v, root, "event_id", "event_id", true, 1, 200);
    type = get_str(&v, root, "type", "type", true, 1, 32);
    if (!v.err) {
        if (strcmp(type, "joiner") == 0)
            ev->type = ZW_EVENT_JOINER;
        else if (strcmp(type, "mover") == 0)
            ev->type = ZW_EVENT_MOVER;
        else if (strcmp(type, "leaver") == 0)
            ev->type = ZW_EVENT_LEAVER;
        else if (strcmp(type, "rehire") == 0)
            ev->type = ZW_EVENT_REHIRE;
        else
            verr(&v, ZW_EVENT_ERR_INVALID_VALUE,
                 "type: '%s' is not one of: joiner, mover, leaver, rehire", quoted(q, type));
    }
    ev->tenant = get_str(&v, root, "tenant", "tenant", true, 1, 63);
    if (!v.err && !valid_tenant(ev->tenant))
        verr(&v, ZW_EVENT_ERR_INVALID_VALUE,
             "tenant: '%s' is not a Zendesk subdomain (lowercase letters, digits, '-')",
             quoted(q, ev->tenant));
    ev->occurred_at = get_str(&v, root, "occurred_at", "occurred_at", false, 0, 64);
    if (!v.err && ev->occurred_at && !valid_date_time(ev->occurred_at))
        verr(&v, ZW_EVENT_ERR_INVALID_VALUE, "occurred_at: not an RFC 3339 date-time");
    if (!v.err && json_object_object_get_ex(root, "dry_run", &f)) {
        if (!json_object_is_type(f, json_type_boolean))
            verr(&v, ZW_EVENT_ERR_WRONG_TYPE, "dry_run: expected a boolean, got %s",
                 json_type_label(f));
        else
            ev->dry_run = json_object_get_boolean(f);
    }
    if (!v.err)
        parse_person(&v, root, ev);
    parse_leaver(&v, root, ev);
    if (!v.err && ev->type == ZW_EVENT_JOINER) {
        if (!ev->person.email)
            verr(&v, ZW_EVENT_ERR_MISSING_FIELD, "person.email: required for a joiner");
        else if (!ev->person.name)
            verr(&v, ZW_EVENT_ERR_MISSING_FIELD, "person.name: required for a joiner");
    }
    free(schema);
    free(type);
    json_object_put(root);
    if (v.err)
        zw_event_cleanup(ev);
    return v.err;
}

void zw_event_cleanup(zw_event_t *ev)
{
    zw_person_t *p = &ev->person;

    free(ev->event_id);
    free(ev->tenant);
    free(ev->occurred_at);
    free(p->external_id);
    free(p->email);
    free(p->name);
    free(p->role);
    free(p->group_ids);
    free(p->locale);
    free(p->time_zone);
    free(p->phone);
    for (size_t i = 0; i < p->n_tags; i++)
        free(p->tags[i]);
    free(p->tags);
    json_object_put(p->user_fields);
    memset(ev, 0, sizeof(*ev));
}

const char *zw_event_type_name(zw_event_type_t type)
{
    switch (type) {
    case ZW_EVENT_JOINER: return "joiner";
    case ZW_EVENT_MOVER: return "mover";
    case ZW_EVENT_LEAVER: return "leaver";
    case ZW_EVENT_REHIRE: return "rehire";
    }
    return "unknown";
}

const char *zw_event_error_name(zw_event_error_t err)
{
    switch (err) {
    case ZW_EVENT_OK: return "ok";
    case ZW_EVENT_ERR_TOO_LARGE: return "too_large";
    case ZW_EVENT_ERR_NOT_JSON: return "not_json";
    case ZW_EVENT_ERR_NOT_OBJECT: return "not_object";
    case ZW_EVENT_ERR_SCHEMA: return "schema";
    case ZW_EVENT_ERR_MISSING_FIELD: return "missing_field";
    case ZW_EVENT_ERR_WRONG_TYPE: return "wrong_type";
    case ZW_EVENT_ERR_INVALID_VALUE: return "invalid_value";
    case ZW_EVENT_ERR_UNKNOWN_FIELD: return "unknown_field";
    }
    return "unknown";
}

const char *zw_leaver_action_name(zw_leaver_action_t action)
{
    switch (action) {
    case ZW_LEAVER_ACTION_SUSPEND: return "suspend";
    case ZW_LEAVER_ACTION_DOWNGRADE_SUSPEND: return "downgrade_suspend";
    case ZW_LEAVER_ACTION_DELETE: return "delete";
    case ZW_LEAVER_ACTION_NONE: break;
    }
    return "policy";
}

static void parse_roles(vctx_t *v, json_object *root, zw_sync_request_t *r)
{
    static const char *const known[] = {"roles", NULL};
    json_object *filter, *roles;
    char q[QUOTE_SIZE];
    size_t n;

    if (v->err || !json_object_object_get_ex(root, "filter", &filter))
        return;
    if (!json_object_is_type(filter, json_type_object)) {
        verr(v, ZW_EVENT_ERR_WRONG_TYPE, "filter: expected an object, got %s",
             json_type_label(filter));
        return;
    }
    check_known(v, filter, "filter.", known);
    if (v->err || !json_object_object_get_ex(filter, "roles", &roles))
        return;
    if (!json_object_is_type(roles, json_type_array)) {
        verr(v, ZW_EVENT_ERR_WRONG_TYPE, "filter.roles: expected an array, got %s",
             json_type_label(roles));
        return;
    }
    n = json_object_array_length(roles);
    if (n == 0) {
        verr(v, ZW_EVENT_ERR_INVALID_VALUE, "filter.roles: at least one role is required");
        return;
    }
    r->has_roles = true;
    for (size_t i = 0; i < n && !v->err; i++) {
        json_object *e = json_object_array_get_idx(roles, i);
        const char *role;
        bool *slot;
        if (!json_object_is_type(e, json_type_string)) {
            verr(v, ZW_EVENT_ERR_WRONG_TYPE, "filter.roles[%zu]: expected a string, got %s", i,
                 json_type_label(e));
            return;
        }
        role = json_object_get_string(e);
        if (strcmp(role, "end-user") == 0)
            slot = &r->role_end_user;
        else if (strcmp(role, "agent") == 0)
            slot = &r->role_agent;
        else if (strcmp(role, "admin") == 0)
            slot = &r->role_admin;
        else {
            verr(v, ZW_EVENT_ERR_INVALID_VALUE,
                 "filter.roles[%zu]: '%s' is not one of: end-user, agent, admin", i,
                 quoted(q, role));
            return;
        }
        if (*slot) {
            verr(v, ZW_EVENT_ERR_INVALID_VALUE, "filter.roles[%zu]: duplicate '%s'", i, role);
            return;
        }
        *slot = true;
    }
}

zw_event_error_t zw_sync_request_parse(const char *data, size_t len, size_t max_bytes,
                                       zw_sync_request_t *r, char **request_id_out,
                                       char *errstr, size_t errstr_size)
{
    static const char *const known[] = {"schema", "request_id", "tenant", "mode",
                                        "cursor", "start_time", "filter", NULL};
    vctx_t v = {.err = ZW_EVENT_OK, .errstr = errstr, .errstr_size = errstr_size};
    json_object *root, *f;
    char *schema = NULL, *mode = NULL;
    char q[QUOTE_SIZE];

    memset(r, 0, sizeof(*r));
    *request_id_out = NULL;
    if (errstr_size)
        errstr[0] = '\0';
    root = open_message(&v, data, len, max_bytes, "request", "request_id", request_id_out);
    if (!root)
        return v.err;

    check_known(&v, root, "", known);
    schema = get_str(&v, root, "schema", "schema", true, 1, 200);
    if (!v.err && strcmp(schema, ZW_SYNC_SCHEMA) != 0)
        verr(&v, ZW_EVENT_ERR_SCHEMA, "schema: expected '%s', got '%s'", ZW_SYNC_SCHEMA,
             quoted(q, schema));
    r->request_id = get_str(&v, root, "request_id", "request_id", true, 1, 200);
    r->tenant = get_str(&v, root, "tenant", "tenant", true, 1, 63);
    if (!v.err && !valid_tenant(r->tenant))
        verr(&v, ZW_EVENT_ERR_INVALID_VALUE,
             "tenant: '%s' is not a Zendesk subdomain (lowercase letters, digits, '-')",
             quoted(q, r->tenant));
    mode = get_str(&v, root, "mode", "mode", false, 1, 32);
    if (!v.err && mode) {
        if (strcmp(mode, "incremental") == 0)
            r->incremental = true;
        else if (strcmp(mode, "full") != 0)
            verr(&v, ZW_EVENT_ERR_INVALID_VALUE, "mode: '%s' is not one of: full, incremental",
                 quoted(q, mode));
    }
    r->cursor = get_str(&v, root, "cursor", "cursor", false, 1, 2000);
    if (!v.err && json_object_object_get_ex(root, "start_time", &f)) {
        int64_t t = 0;
        num_kind_t k = number_value(f, &t);
        if (k == NUM_HUGE)
            verr(&v, ZW_EVENT_ERR_INVALID_VALUE, "start_time: too large");
        else if (k == NUM_TINY)
            verr(&v, ZW_EVENT_ERR_INVALID_VALUE, "start_time: must be >= 0");
        else if (k != NUM_INTEGER)
            verr(&v, ZW_EVENT_ERR_WRONG_TYPE, "start_time: expected an integer, got %s",
                 json_type_label(f));
        else if (t < 0)
            verr(&v, ZW_EVENT_ERR_INVALID_VALUE, "start_time: must be >= 0");
        else {
            r->has_start_time = true;
            r->start_time = t;
        }
    }
    parse_roles(&v, root, r);
    free(schema);
    free(mode);
    json_object_put(root);
    if (v.err)
        zw_sync_request_cleanup(r);
    return v.err;
}

void zw_sync_request_cleanup(zw_sync_request_t *r)
{
    free(r->request_id);
    free(r->tenant);
    free(r->cursor);
    memset(r, 0, sizeof(*r));
}

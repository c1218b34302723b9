/* Provisioning requests: parse and validate. The rules are those of
 * schemas/provisioning-request.schema.json, written out by hand so a bad
 * event is named precisely ("person.group_ids[2]: expected an integer"). */
#include "zw/event.h"

#include <ctype.h>
#include <errno.h>
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
        verr(v, ZW_EVENT_ERR_INVALID_VALUE, "%s: length %zu is outside [%zu, %zu]", label, n,
             min, max);
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

/* An integer >= 1, or null when nullable. Sets *has and *is_null. */
static void get_id(vctx_t *v, json_object *obj, const char *field, const char *label,
                   bool *has, bool *is_null, int64_t *out)
{
    json_object *f;

    if (v->err || !json_object_object_get_ex(obj, field, &f))
        return;
    *has = true;
    if (json_object_is_type(f, json_type_null)) {
        *is_null = true;
        return;
    }
    if (!json_object_is_type(f, json_type_int)) {
        verr(v, ZW_EVENT_ERR_WRONG_TYPE, "%s: expected an integer or null, got %s", label,
             json_type_label(f));
        return;
    }
    errno = 0;
    *out = json_object_get_int64(f);
    if (*out < 1 || errno == ERANGE)
        verr(v, ZW_EVENT_ERR_INVALID_VALUE, "%s: must be an integer >= 1", label);
}

static bool valid_tenant(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
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
    for (const char *p = s; *p; p++) {
        if (isspace((unsigned char)*p))
            return false;
    }
    return true;
}

/* RFC 3339 date-time, as JSON Schema's "date-time" format. */
static bool valid_date_time(const char *s)
{
    int y, mo, d, h, mi, sec, n = 0;
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
    if (*p == 'Z' || *p == 'z')
        return p[1] == '\0';
    if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
        p[3] == ':' && isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5]) &&
        p[6] == '\0') {
        int oh = (p[1] - '0') * 10 + (p[2] - '0'), om = (p[4] - '0') * 10 + (p[5] - '0');
        return oh <= 23 && om <= 59;
    }
    return false;
}

static void check_known(vctx_t *v, json_object *obj, const char *prefix,
                        const char *const *known)
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
            verr(v, ZW_EVENT_ERR_UNKNOWN_FIELD, "%s%s: unknown field", prefix, key);
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
        int64_t id;
        if (!json_object_is_type(e, json_type_int)) {
            verr(v, ZW_EVENT_ERR_WRONG_TYPE, "person.group_ids[%zu]: expected an integer, got %s",
                 i, json_type_label(e));
            break;
        }
        errno = 0;
        id = json_object_get_int64(e);
        if (id < 1 || errno == ERANGE) {
            verr(v, ZW_EVENT_ERR_INVALID_VALUE, "person.group_ids[%zu]: must be >= 1", i);
            break;
        }
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

static bool valid_tag(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (isspace((unsigned char)*s) || *s == ',')
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
                verr(v, ZW_EVENT_ERR_INVALID_VALUE, "person.tags[%zu]: duplicate '%s'", i, s);
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
        if (t == json_type_object || t == json_type_array) {
            verr(v, ZW_EVENT_ERR_WRONG_TYPE,
                 "person.user_fields.%s: expected a string, number, boolean or null, got %s",
                 key, json_type_label(val));
            return;
        }
    }
    p->user_fields = json_object_get(uf);
}

static void parse_person(vctx_t *v, json_object *root, zw_event_t *ev)
{
    static const char *const known[] = {"external_id", "email",     "name",           "role",
                                        "custom_role_id", "organization_id", "default_group_id",
                                        "group_ids",   "locale",    "time_zone",      "phone",
                                        "tags",        "user_fields", NULL};
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
        strcmp(p->role, "admin") != 0)
        verr(v, ZW_EVENT_ERR_INVALID_VALUE,
             "person.role: '%s' is not one of: end-user, agent, admin", p->role);
    get_id(v, person, "custom_role_id", "person.custom_role_id", &p->has_custom_role_id,
           &p->custom_role_id_null, &p->custom_role_id);
    get_id(v, person, "organization_id", "person.organization_id", &p->has_organization_id,
           &p->organization_id_null, &p->organization_id);
    get_id(v, person, "default_group_id", "person.default_group_id", &p->has_default_group_id,
           &p->default_group_id_null, &p->default_group_id);
    parse_group_ids(v, person, p);
    p->locale = get_str(v, person, "locale", "person.locale", false, 1, 20);
    p->time_zone = get_str(v, person, "time_zone", "person.time_zone", false, 1, 100);
    if (!v->err && json_object_object_get_ex(person, "phone", &phone) &&
        !json_object_is_type(phone, json_type_null))
        p->phone = get_str(v, person, "phone", "person.phone", false, 0, 50);
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
    else
        verr(v, ZW_EVENT_ERR_INVALID_VALUE,
             "leaver.action: '%s' is not one of: suspend, downgrade_suspend, delete", action);
    free(action);
}

zw_event_error_t zw_event_parse(const char *data, size_t len, size_t max_bytes, zw_event_t *ev,
                                char **event_id_out, char *errstr, size_t errstr_size)
{
    static const char *const known[] = {"schema", "event_id", "type",   "tenant",
                                        "occurred_at", "dry_run", "person", "leaver", NULL};
    vctx_t v = {.err = ZW_EVENT_OK, .errstr = errstr, .errstr_size = errstr_size};
    json_tokener *tok;
    json_object *root = NULL, *f;
    char *schema = NULL, *type = NULL;

    memset(ev, 0, sizeof(*ev));
    *event_id_out = NULL;
    if (errstr_size)
        errstr[0] = '\0';
    if (len > max_bytes) {
        verr(&v, ZW_EVENT_ERR_TOO_LARGE, "event of %zu bytes exceeds the limit of %zu", len,
             max_bytes);
        return v.err;
    }
    if (len == 0 || !data) {
        verr(&v, ZW_EVENT_ERR_NOT_JSON, "empty message");
        return v.err;
    }
    tok = json_tokener_new_ex(64);
    if (!tok) {
        verr(&v, ZW_EVENT_ERR_NOT_JSON, "out of memory");
        return v.err;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    root = json_tokener_parse_ex(tok, data, (int)len);
    if (!root || json_tokener_get_error(tok) != json_tokener_success ||
        json_tokener_get_parse_end(tok) != len) {
        /* Trailing whitespace is fine; anything else after the value is not. */
        size_t end = json_tokener_get_parse_end(tok);
        bool only_space = root && json_tokener_get_error(tok) == json_tokener_success;
        for (size_t i = end; only_space && i < len; i++)
            only_space = isspace((unsigned char)data[i]);
        if (!only_space) {
            verr(&v, ZW_EVENT_ERR_NOT_JSON, "not valid JSON: %s",
                 root ? "trailing data after the value"
                 : json_tokener_get_error(tok) == json_tokener_continue
                     ? "unexpected end of data"
                     : json_tokener_error_desc(json_tokener_get_error(tok)));
            json_tokener_free(tok);
            json_object_put(root);
            return v.err;
        }
    }
    json_tokener_free(tok);

    if (!json_object_is_type(root, json_type_object)) {
        verr(&v, ZW_EVENT_ERR_NOT_OBJECT, "expected a JSON object, got %s", json_type_label(root));
        json_object_put(root);
        return v.err;
    }
    /* The event id first, so even an invalid event can get a result. */
    if (json_object_object_get_ex(root, "event_id", &f) && json_object_is_type(f, json_type_string) &&
        json_object_get_string_len(f) > 0 && json_object_get_string_len(f) <= 200 &&
        strlen(json_object_get_string(f)) == (size_t)json_object_get_string_len(f))
        *event_id_out = strdup(json_object_get_string(f));

    check_known(&v, root, "", known);
    schema = get_str(&v, root, "schema", "schema", true, 1, 200);
    if (!v.err && strcmp(schema, ZW_EVENT_SCHEMA) != 0)
        verr(&v, ZW_EVENT_ERR_SCHEMA, "schema: expected \"%s\", got \"%s\"", ZW_EVENT_SCHEMA,
             schema);
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
                 "type: '%s' is not one of: joiner, mover, leaver, rehire", type);
    }
    ev->tenant = get_str(&v, root, "tenant", "tenant", true, 1, 63);
    if (!v.err && !valid_tenant(ev->tenant))
        verr(&v, ZW_EVENT_ERR_INVALID_VALUE,
             "tenant: '%s' is not a Zendesk subdomain (lowercase letters, digits, '-')",
             ev->tenant);
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

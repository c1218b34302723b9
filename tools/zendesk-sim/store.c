/*
 * zendesk-sim: the state of every account: config, users and their indexes, groups,
 * background jobs, OAuth tokens and the request log. No HTTP here; callers hold g_sim.lock.
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

sim_t g_sim = {.lock = PTHREAD_MUTEX_INITIALIZER, .max_body = 1024 * 1024};

/* ---------- config ---------- */

void sim_config_defaults(sim_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->token_ttl = 1800;
    cfg->refresh_ttl = 30 * 86400;
    cfg->limits_enabled = true;
    cfg->rpm = 700;
    cfg->user_write_per_sec = 1;
    cfg->user_write_per_user_min = 5;
    cfg->incremental_per_min = 10;
    cfg->max_jobs = 30;
    snprintf(cfg->limit_body, sizeof(cfg->limit_body), "text");
    cfg->job_queue_ms = 100;
    cfg->job_item_ms = 5;
    cfg->incremental_withhold_s = 60;
    cfg->error_statuses[0] = 500;
    cfg->error_statuses[1] = 502;
    cfg->error_statuses[2] = 503;
    cfg->n_error_statuses = 3;
    cfg->hang_ms = 600000;
    snprintf(cfg->fault_path, sizeof(cfg->fault_path), "*");
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
        *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"))
        *out = false;
    else
        return -1;
    return 0;
}

static int parse_rate(const char *v, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || d < 0 || d > 1)
        return -1;
    *out = d;
    return 0;
}

/* "500|502|503" or "500 502" or "500;503". */
static int parse_statuses(sim_config_t *cfg, const char *v)
{
    int n = 0;
    const char *p = v;
    while (*p) {
        char *end;
        long s = strtol(p, &end, 10);
        if (end == p || s < 100 || s > 599 || n >= 8)
            return -1;
        cfg->error_statuses[n++] = (int)s;
        p = end;
        while (*p == '|' || *p == ' ' || *p == ';' || *p == ':')
            p++;
    }
    if (!n)
        return -1;
    cfg->n_error_statuses = n;
    return 0;
}

#define STR_KEY(name)                                                   \
    if (!strcmp(key, #name)) {                                          \
        if (strlen(val) >= sizeof(cfg->name))                           \
            goto bad;                                                   \
        sim_strlcpy(cfg->name, val, sizeof(cfg->name));              \
        return 0;                                                       \
    }
#define INT_KEY(name, min)                                              \
    if (!strcmp(key, #name)) {                                          \
        if (sim_parse_i64(val, &cfg->name) != 0 || cfg->name < (min))   \
            goto bad;                                                   \
        return 0;                                                       \
    }

int sim_config_set(sim_config_t *cfg, const char *key, const char *val, char *errstr, size_t errlen)
{
    if (!strcmp(key, "subdomain")) {
        if (!*val || strlen(val) >= sizeof(cfg->subdomain) || strchr(val, '.'))
            goto bad;
        sim_lower(cfg->subdomain, val, sizeof(cfg->subdomain));
        return 0;
    }
    STR_KEY(email)
    STR_KEY(token)
    STR_KEY(client_id)
    STR_KEY(client_secret)
    INT_KEY(token_ttl, 1)
    INT_KEY(refresh_ttl, 1)
    INT_KEY(rpm, 0)
    INT_KEY(user_write_per_sec, 0)
    INT_KEY(user_write_per_user_min, 0)
    INT_KEY(incremental_per_min, 0)
    INT_KEY(max_jobs, 0)
    INT_KEY(job_queue_ms, 0)
    INT_KEY(job_item_ms, 0)
    INT_KEY(incremental_withhold_s, 0)
    INT_KEY(latency_ms, 0)
    INT_KEY(latency_jitter_ms, 0)
    INT_KEY(error_retry_after, 0)
    INT_KEY(hang_ms, 0)
    STR_KEY(fault_path)
    if (!strcmp(key, "bulk_import")) {
        if (parse_bool(val, &cfg->bulk_import) != 0)
            goto bad;
        return 0;
    }
    if (!strcmp(key, "limits_enabled") || !strcmp(key, "limits")) {
        if (parse_bool(val, &cfg->limits_enabled) != 0)
            goto bad;
        return 0;
    }
    if (!strcmp(key, "limit_body")) {
        if (strcmp(val, "text") && strcmp(val, "html") && strcmp(val, "json"))
            goto bad;
        sim_strlcpy(cfg->limit_body, val, sizeof(cfg->limit_body));
        return 0;
    }
    if (!strcmp(key, "error_rate")) {
        if (parse_rate(val, &cfg->error_rate) != 0)
            goto bad;
        return 0;
    }
    if (!strcmp(key, "job_fail_rate")) {
        if (parse_rate(val, &cfg->job_fail_rate) != 0)
            goto bad;
        return 0;
    }
    if (!strcmp(key, "conflict_rate")) {
        if (parse_rate(val, &cfg->conflict_rate) != 0)
            goto bad;
        return 0;
    }
    if (!strcmp(key, "drop_rate")) {
        if (parse_rate(val, &cfg->drop_rate) != 0)
            goto bad;
        return 0;
    }
    if (!strcmp(key, "hang_rate")) {
        if (parse_rate(val, &cfg->hang_rate) != 0)
            goto bad;
        return 0;
    }
    if (!strcmp(key, "error_statuses")) {
        if (parse_statuses(cfg, val) != 0)
            goto bad;
        return 0;
    }
    snprintf(errstr, errlen, "unknown account key '%s'", key);
    return -1;
bad:
    snprintf(errstr, errlen, "invalid value for account key '%s': '%s'", key, val);
    return -1;
}

int sim_config_parse(sim_config_t *cfg, const char *spec, char *errstr, size_t errlen)
{
    char *copy = strdup(spec);
    if (!copy) {
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    char *save = NULL;
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) {
            snprintf(errstr, errlen, "account key without '=': '%s'", kv);
            rc = -1;
            break;
        }
        *eq = '\0';
        if (sim_config_set(cfg, kv, eq + 1, errstr, errlen) != 0) {
            rc = -1;
            break;
        }
    }
    free(copy);
    return rc;
}

int sim_config_apply_json(sim_config_t *cfg, json_object *obj, char *errstr, size_t errlen)
{
    if (!json_object_is_type(obj, json_type_object)) {
        snprintf(errstr, errlen, "expected a JSON object");
        return -1;
    }
    json_object_object_foreach(obj, key, val)
    {
        char text[256];
        if (json_object_is_type(val, json_type_array)) {
            /* error_statuses: [500, 503] */
            size_t o = 0;
            text[0] = '\0';
            for (size_t i = 0; i < json_object_array_length(val) && o + 8 < sizeof(text); i++)
                o += (size_t)snprintf(text + o, sizeof(text) - o, "%s%s", i ? "|" : "",
                                      json_object_get_string(json_object_array_get_idx(val, i)));
        } else if (json_object_is_type(val, json_type_null)) {
            snprintf(errstr, errlen, "account key '%s' may not be null", key);
            return -1;
        } else {
            sim_strlcpy(text, json_object_get_string(val), sizeof(text));
        }
        if (sim_config_set(cfg, key, text, errstr, errlen) != 0)
            return -1;
    }
    return 0;
}

json_object *sim_config_to_json(const sim_config_t *cfg)
{
    json_object *o = json_object_new_object();
#define JS(name) json_object_object_add(o, #name, json_object_new_string(cfg->name))
#define JI(name) json_object_object_add(o, #name, json_object_new_int64(cfg->name))
#define JB(name) json_object_object_add(o, #name, json_object_new_boolean(cfg->name))
#define JD(name) json_object_object_add(o, #name, json_object_new_double(cfg->name))
    JS(subdomain);
    JS(email);
    JS(token);
    JS(client_id);
    JS(client_secret);
    JI(token_ttl);
    JI(refresh_ttl);
    JB(bulk_import);
    JB(limits_enabled);
    JI(rpm);
    JI(user_write_per_sec);
    JI(user_write_per_user_min);
    JI(incremental_per_min);
    JI(max_jobs);
    JS(limit_body);
    JI(job_queue_ms);
    JI(job_item_ms);
    JI(incremental_withhold_s);
    JI(latency_ms);
    JI(latency_jitter_ms);
    JD(error_rate);
    JI(error_retry_after);
    JD(conflict_rate);
    JD(job_fail_rate);
    JD(drop_rate);
    JD(hang_rate);
    JI(hang_ms);
    JS(fault_path);
#undef JS
#undef JI
#undef JB
#undef JD
    json_object *st = json_object_new_array();
    for (int i = 0; i < cfg->n_error_statuses; i++)
        json_object_array_add(st, json_object_new_int(cfg->error_statuses[i]));
    json_object_object_add(o, "error_statuses", st);
    return o;
}

/* ---------- users ---------- */

static void user_free(sim_user_t *u)
{
    if (!u)
        return;
    free(u->name);
    free(u->email);
    free(u->external_id);
    free(u->phone);
    free(u->locale);
    free(u->time_zone);
    json_object_put(u->tags);
    json_object_put(u->user_fields);
    json_object_put(u->identities);
    free(u);
}

static void set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? strdup(src) : NULL;
}

static void index_email(sim_account_t *acct, const char *email, sim_user_t *u)
{
    char key[256];
    sim_lower(key, email, sizeof(key));
    if (u)
        sim_map_put(&acct->by_email, key, u);
    else
        sim_map_del(&acct->by_email, key);
}

static void index_external_id(sim_account_t *acct, const char *ext, sim_user_t *u)
{
    char key[256];
    sim_lower(key, ext, sizeof(key));
    if (u)
        sim_map_put(&acct->by_external_id, key, u);
    else
        sim_map_del(&acct->by_external_id, key);
}

sim_user_t *sim_user_by_email(sim_account_t *acct, const char *email)
{
    char key[256];
    if (strlen(email) >= sizeof(key))
        return NULL;
    sim_lower(key, email, sizeof(key));
    return sim_map_get(&acct->by_email, key);
}

sim_user_t *sim_user_by_external_id(sim_account_t *acct, const char *ext)
{
    char key[256];
    if (strlen(ext) >= sizeof(key))
        return NULL;
    sim_lower(key, ext, sizeof(key));
    return sim_map_get(&acct->by_external_id, key);
}

static ssize_t user_index(const sim_account_t *acct, int64_t id)
{
    size_t lo = 0, hi = acct->nusers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (acct->users[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < acct->nusers && acct->users[lo]->id == id ? (ssize_t)lo : -1;
}

sim_user_t *sim_user_by_id(sim_account_t *acct, int64_t id)
{
    ssize_t i = user_index(acct, id);
    return i < 0 ? NULL : acct->users[i];
}

static void touch(sim_account_t *acct, sim_user_t *u)
{
    u->updated_at = sim_now_ms() / 1000;
    u->seq = ++acct->seq;
}

/* Allocates a user with the next id and appends it (ids only grow, so the array stays sorted). */
static sim_user_t *user_new(sim_account_t *acct)
{
    if (acct->nusers == acct->users_cap) {
        size_t cap = acct->users_cap ? acct->users_cap * 2 : 256;
        sim_user_t **n = realloc(acct->users, cap * sizeof(*n));
        if (!n)
            return NULL;
        acct->users = n;
        acct->users_cap = cap;
    }
    sim_user_t *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->id = acct->next_id;
    acct->next_id += 1 + (int64_t)(sim_rand(&acct->rng) % 7);
    snprintf(u->role, sizeof(u->role), "end-user");
    u->active = true;
    /* tags, user_fields and identities stay NULL until used: json-c objects are large and
     * most users never have them (100,000 seeded users would cost 150 MB more). */
    u->created_at = sim_now_ms() / 1000;
    touch(acct, u);
    acct->users[acct->nusers++] = u;
    return u;
}

static void set_err(sim_err_t *err, int status, const char *field, const char *field_code,
                    const char *desc)
{
    err->status = status;
    sim_strlcpy(err->code, status == 422 ? "RecordInvalid" : "InvalidValue", sizeof(err->code));
    sim_strlcpy(err->field, field, sizeof(err->field));
    sim_strlcpy(err->field_code, field_code, sizeof(err->field_code));
    sim_strlcpy(err->desc, desc, sizeof(err->desc));
}

static bool valid_role(const char *r)
{
    return !strcmp(r, "end-user") || !strcmp(r, "agent") || !strcmp(r, "admin");
}

/* external_id may arrive as a number; Zendesk stores it as text. */
static int ext_text(json_object *v, char *out, size_t outsz)
{
    if (json_object_is_type(v, json_type_string) || json_object_is_type(v, json_type_int)) {
        const char *s = json_object_get_string(v);
        if (strlen(s) >= outsz)
            return -1;
        sim_strlcpy(out, s, outsz);
        return 0;
    }
    return -1;
}

static bool is_str_or_null(json_object *v)
{
    return !v || json_object_is_type(v, json_type_string) || json_object_is_type(v, json_type_null);
}

static bool is_id_or_null(json_object *v)
{
    return !v || json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_null);
}

/* Checks every field of in against u (NULL when creating) before anything changes. */
static int user_validate(sim_account_t *acct, sim_user_t *u, json_object *in, sim_err_t *err)
{
    json_object *v;
    char buf[300];
    if (!json_object_is_type(in, json_type_object)) {
        set_err(err, 400, "user", "InvalidValue", "Parameter user is required and must be an object");
        snprintf(err->code, sizeof(err->code), "InvalidValue");
        return -1;
    }
    bool has_name = json_object_object_get_ex(in, "name", &v);
    if (has_name && (!json_object_is_type(v, json_type_string) || !*json_object_get_string(v))) {
        set_err(err, 422, "name", "BlankValue", "Name: is too short (minimum one character)");
        return -1;
    }
    if (!u && !has_name) {
        set_err(err, 422, "name", "BlankValue", "Name: is too short (minimum one character)");
        return -1;
    }
    if (json_object_object_get_ex(in, "email", &v) && !json_object_is_type(v, json_type_null)) {
        const char *email = json_object_get_string(v);
        if (!json_object_is_type(v, json_type_string) || !sim_email_valid(email)) {
            snprintf(buf, sizeof(buf), "Email: %.200s is not properly formatted", email);
            set_err(err, 422, "email", "InvalidFormat", buf);
            return -1;
        }
        sim_user_t *other = sim_user_by_email(acct, email);
        if (other && other != u) {
            snprintf(buf, sizeof(buf), "Email: %.200s is already being used by another user", email);
            set_err(err, 422, "email", "DuplicateValue", buf);
            return -1;
        }
    }
    if (json_object_object_get_ex(in, "external_id", &v) && !json_object_is_type(v, json_type_null)) {
        char ext[256];
        if (ext_text(v, ext, sizeof(ext)) != 0) {
            set_err(err, 422, "external_id", "InvalidValue", "External ID: is invalid");
            return -1;
        }
        sim_user_t *other = sim_user_by_external_id(acct, ext);
        if (other && other != u) {
            snprintf(buf, sizeof(buf), "External ID: %.200s has already been taken", ext);
            set_err(err, 422, "external_id", "DuplicateValue", buf);
            return -1;
        }
    }
    if (json_object_object_get_ex(in, "role", &v) &&
        (!json_object_is_type(v, json_type_string) || !valid_role(json_object_get_string(v)))) {
        snprintf(buf, sizeof(buf), "Role: %.100s is not included in the list",
                 json_object_get_string(v));
        set_err(err, 422, "role", "InvalidValue", buf);
        return -1;
    }
    static const char *const bools[] = {"suspended", "verified"};
    for (size_t i = 0; i < 2; i++) {
        if (json_object_object_get_ex(in, bools[i], &v) && !json_object_is_type(v, json_type_boolean)) {
            snprintf(buf, sizeof(buf), "%s: is not a boolean", bools[i]);
            set_err(err, 422, bools[i], "InvalidValue", buf);
            return -1;
        }
    }
    static const char *const ids[] = {"custom_role_id", "organization_id", "default_group_id"};
    for (size_t i = 0; i < 3; i++) {
        if (json_object_object_get_ex(in, ids[i], &v) && !is_id_or_null(v)) {
            snprintf(buf, sizeof(buf), "%s: is not a number", ids[i]);
            set_err(err, 422, ids[i], "InvalidValue", buf);
            return -1;
        }
    }
    static const char *const strs[] = {"phone", "locale", "time_zone"};
    for (size_t i = 0; i < 3; i++) {
        if (json_object_object_get_ex(in, strs[i], &v) && !is_str_or_null(v)) {
            snprintf(buf, sizeof(buf), "%s: is invalid", strs[i]);
            set_err(err, 422, strs[i], "InvalidValue", buf);
            return -1;
        }
    }
    if (json_object_object_get_ex(in, "tags", &v) && !json_object_is_type(v, json_type_array) &&
        !json_object_is_type(v, json_type_null)) {
        set_err(err, 422, "tags", "InvalidValue", "Tags: is invalid");
        return -1;
    }
    if (json_object_object_get_ex(in, "user_fields", &v) && !json_object_is_type(v, json_type_object) &&
        !json_object_is_type(v, json_type_null)) {
        set_err(err, 422, "user_fields", "InvalidValue", "User fields: is invalid");
        return -1;
    }
    return 0;
}

static void drop_memberships(sim_account_t *acct, int64_t user_id)
{
    size_t o = 0;
    for (size_t i = 0; i < acct->nmemberships; i++)
        if (acct->memberships[i].user_id != user_id)
            acct->memberships[o++] = acct->memberships[i];
    acct->nmemberships = o;
}

static int64_t id_or_zero(json_object *v)
{
    return json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
}

/* Applies a validated user object. creating: the e-mail becomes the primary one. */
static void user_apply(sim_account_t *acct, sim_user_t *u, json_object *in, bool creating)
{
    json_object *v;
    if (json_object_object_get_ex(in, "name", &v))
        set_str(&u->name, json_object_get_string(v));
    if (json_object_object_get_ex(in, "email", &v) && !json_object_is_type(v, json_type_null)) {
        const char *email = json_object_get_string(v);
        if (!u->email) {
            set_str(&u->email, email);
            index_email(acct, email, u);
        } else if (sim_user_by_email(acct, email) != u) {
            /* Zendesk: an e-mail sent on update becomes a secondary identity. */
            if (!u->identities)
                u->identities = json_object_new_array();
            json_object_array_add(u->identities, json_object_new_string(email));
            index_email(acct, email, u);
        }
        (void)creating;
    }
    if (json_object_object_get_ex(in, "external_id", &v)) {
        if (u->external_id)
            index_external_id(acct, u->external_id, NULL);
        if (json_object_is_type(v, json_type_null)) {
            set_str(&u->external_id, NULL);
        } else {
            char ext[256];
            ext_text(v, ext, sizeof(ext));
            set_str(&u->external_id, ext);
            index_external_id(acct, ext, u);
        }
    }
    if (json_object_object_get_ex(in, "role", &v)) {
        const char *role = json_object_get_string(v);
        if (strcmp(role, u->role) != 0 && !strcmp(role, "end-user")) {
            /* Downgrading frees the seat: groups and custom role go with it. */
            drop_memberships(acct, u->id);
            u->default_group_id = 0;
            u->custom_role_id = 0;
        }
        sim_strlcpy(u->role, role, sizeof(u->role));
    }
    if (json_object_object_get_ex(in, "custom_role_id", &v))
        u->custom_role_id = strcmp(u->role, "end-user") ? id_or_zero(v) : 0;
    if (json_object_object_get_ex(in, "organization_id", &v))
        u->organization_id = id_or_zero(v);
    if (json_object_object_get_ex(in, "default_group_id", &v))
        u->default_group_id = id_or_zero(v);
    if (json_object_object_get_ex(in, "suspended", &v))
        u->suspended = json_object_get_boolean(v);
    if (json_object_object_get_ex(in, "verified", &v))
        u->verified = json_object_get_boolean(v);
    if (json_object_object_get_ex(in, "phone", &v))
        set_str(&u->phone, json_object_is_type(v, json_type_null) ? NULL : json_object_get_string(v));
    if (json_object_object_get_ex(in, "locale", &v))
        set_str(&u->locale, json_object_is_type(v, json_type_null) ? NULL : json_object_get_string(v));
    if (json_object_object_get_ex(in, "time_zone", &v))
        set_str(&u->time_zone, json_object_is_type(v, json_type_null) ? NULL : json_object_get_string(v));
    if (json_object_object_get_ex(in, "tags", &v)) {
        json_object *tags = json_object_new_array();
        for (size_t i = 0; v && i < json_object_array_length(v); i++) {
            json_object *t = json_object_array_get_idx(v, i);
            if (json_object_is_type(t, json_type_string))
                json_object_array_add(tags, json_object_new_string(json_object_get_string(t)));
        }
        json_object_put(u->tags);
        u->tags = tags;
    }
    if (json_object_object_get_ex(in, "user_fields", &v) && v) {
        if (!u->user_fields)
            u->user_fields = json_object_new_object();
        json_object_object_foreach(v, key, fv)
        {
            json_object_object_add(u->user_fields, key, json_object_get(fv));
        }
    }
    touch(acct, u);
}

sim_user_t *sim_user_create(sim_account_t *acct, json_object *in, sim_err_t *err)
{
    if (user_validate(acct, NULL, in, err) != 0)
        return NULL;
    sim_user_t *u = user_new(acct);
    if (!u) {
        set_err(err, 500, "user", "InternalError", "out of memory");
        return NULL;
    }
    user_apply(acct, u, in, true);
    return u;
}

int sim_user_update(sim_account_t *acct, sim_user_t *u, json_object *in, sim_err_t *err)
{
    if (user_validate(acct, u, in, err) != 0)
        return -1;
    user_apply(acct, u, in, false);
    return 0;
}

/* Soft delete: the user stays readable (active:false) and in deleted_users; its e-mail
 * addresses and external_id are released so a rehire can create a new user with them. */
void sim_user_soft_delete(sim_account_t *acct, sim_user_t *u)
{
    if (u->email)
        index_email(acct, u->email, NULL);
    for (size_t i = 0; u->identities && i < json_object_array_length(u->identities); i++)
        index_email(acct, json_object_get_string(json_object_array_get_idx(u->identities, i)), NULL);
    if (u->external_id)
        index_external_id(acct, u->external_id, NULL);
    drop_memberships(acct, u->id);
    u->active = false;
    u->deleted_at = sim_now_ms() / 1000;
    u->default_group_id = 0;
    touch(acct, u);
}

void sim_user_purge(sim_account_t *acct, sim_user_t *u)
{
    ssize_t i = user_index(acct, u->id);
    if (i < 0)
        return;
    if (u->active)
        sim_user_soft_delete(acct, u);
    memmove(&acct->users[i], &acct->users[i + 1], (acct->nusers - (size_t)i - 1) * sizeof(u));
    acct->nusers--;
    if (acct->owner == u)
        acct->owner = NULL;
    user_free(u);
}

static json_object *str_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static json_object *id_or_null(int64_t id)
{
    return id ? json_object_new_int64(id) : NULL;
}

static json_object *time_or_null(int64_t t)
{
    char iso[32];
    if (!t)
        return NULL;
    sim_iso8601(t, iso, sizeof(iso));
    return json_object_new_string(iso);
}

json_object *sim_user_json(const sim_user_t *u, const char *host, bool full)
{
    json_object *o = json_object_new_object();
    char url[400];
    snprintf(url, sizeof(url), "http://%s/api/v2/users/%lld.json", host, (long long)u->id);
    json_object_object_add(o, "id", json_object_new_int64(u->id));
    json_object_object_add(o, "url", json_object_new_string(url));
    json_object_object_add(o, "name", str_or_null(u->name));
    json_object_object_add(o, "email", str_or_null(u->email));
    json_object_object_add(o, "created_at", time_or_null(u->created_at));
    json_object_object_add(o, "updated_at", time_or_null(u->updated_at));
    json_object_object_add(o, "time_zone", json_object_new_string(u->time_zone ? u->time_zone : "UTC"));
    json_object_object_add(o, "iana_time_zone", json_object_new_string(u->time_zone ? u->time_zone : "Etc/UTC"));
    json_object_object_add(o, "phone", str_or_null(u->phone));
    json_object_object_add(o, "shared_phone_number", NULL);
    json_object_object_add(o, "photo", NULL);
    json_object_object_add(o, "locale_id", json_object_new_int(1));
    json_object_object_add(o, "locale", json_object_new_string(u->locale ? u->locale : "en-US"));
    json_object_object_add(o, "organization_id", id_or_null(u->organization_id));
    json_object_object_add(o, "role", json_object_new_string(u->role));
    json_object_object_add(o, "verified", json_object_new_boolean(u->verified));
    json_object_object_add(o, "external_id", str_or_null(u->external_id));
    json_object_object_add(o, "tags", u->tags ? json_object_get(u->tags) : json_object_new_array());
    json_object_object_add(o, "alias", json_object_new_string(""));
    json_object_object_add(o, "active", json_object_new_boolean(u->active));
    json_object_object_add(o, "shared", json_object_new_boolean(0));
    json_object_object_add(o, "shared_agent", json_object_new_boolean(0));
    json_object_object_add(o, "last_login_at", time_or_null(u->last_login_at));
    json_object_object_add(o, "two_factor_auth_enabled", json_object_new_boolean(0));
    json_object_object_add(o, "signature", NULL);
    json_object_object_add(o, "details", json_object_new_string(""));
    json_object_object_add(o, "notes", json_object_new_string(""));
    json_object_object_add(o, "role_type", u->custom_role_id ? json_object_new_int(0) : NULL);
    json_object_object_add(o, "custom_role_id", id_or_null(u->custom_role_id));
    json_object_object_add(o, "moderator", json_object_new_boolean(strcmp(u->role, "end-user") != 0));
    json_object_object_add(o, "ticket_restriction",
                           strcmp(u->role, "end-user") ? NULL : json_object_new_string("requested"));
    json_object_object_add(o, "only_private_comments", json_object_new_boolean(0));
    json_object_object_add(o, "restricted_agent", json_object_new_boolean(0));
    json_object_object_add(o, "suspended", json_object_new_boolean(u->suspended));
    json_object_object_add(o, "default_group_id", id_or_null(u->default_group_id));
    json_object_object_add(o, "report_csv", json_object_new_boolean(0));
    json_object_object_add(o, "user_fields",
                           u->user_fields ? json_object_get(u->user_fields) : json_object_new_object());
    if (full) {
        json_object_object_add(o, "identities",
                               u->identities ? json_object_get(u->identities) : json_object_new_array());
        json_object_object_add(o, "deleted_at", time_or_null(u->deleted_at));
        json_object_object_add(o, "seq", json_object_new_int64((int64_t)u->seq));
    }
    return o;
}

int sim_seed_users(sim_account_t *acct, int count, const char *role, const char *prefix, int start)
{
    char domain[200] = "example.test";
    const char *at = strchr(acct->cfg.email, '@');
    if (at && at[1])
        sim_strlcpy(domain, at + 1, sizeof(domain));
    char lprefix[64];
    sim_lower(lprefix, prefix, sizeof(lprefix));
    int made = 0;
    for (int i = 0; i < count; i++) {
        int n = start + i;
        char ext[96], email[320], name[128];
        snprintf(ext, sizeof(ext), "%s-%06d", prefix, n);
        snprintf(email, sizeof(email), "%s-%06d@%s", lprefix, n, domain);
        snprintf(name, sizeof(name), "%s User %06d", prefix, n);
        if (sim_user_by_external_id(acct, ext) || sim_user_by_email(acct, email))
            continue;
        sim_user_t *u = user_new(acct);
        if (!u)
            break;
        u->name = strdup(name);
        u->email = strdup(email);
        u->external_id = strdup(ext);
        u->verified = true;
        const char *r = role;
        if (!strcmp(role, "mixed"))
            r = n % 100 == 0 ? "admin" : n % 10 == 0 ? "agent" : "end-user";
        sim_strlcpy(u->role, r, sizeof(u->role));
        index_email(acct, email, u);
        index_external_id(acct, ext, u);
        made++;
    }
    return made;
}

/* ---------- accounts ---------- */

static void account_clear(sim_account_t *acct)
{
    for (size_t i = 0; i < acct->nusers; i++)
        user_free(acct->users[i]);
    free(acct->users);
    acct->users = NULL;
    acct->nusers = acct->users_cap = 0;
    sim_map_cleanup(&acct->by_email);
    sim_map_cleanup(&acct->by_external_id);
    free(acct->groups);
    acct->groups = NULL;
    acct->ngroups = 0;
    free(acct->memberships);
    acct->memberships = NULL;
    acct->nmemberships = 0;
    for (size_t i = 0; i < acct->njobs; i++) {
        json_object_put(acct->jobs[i]->items);
        json_object_put(acct->jobs[i]->change);
        json_object_put(acct->jobs[i]->results);
        free(acct->jobs[i]);
    }
    free(acct->jobs);
    acct->jobs = NULL;
    acct->njobs = 0;
    for (size_t i = 0; i < acct->ntokens; i++)
        free(acct->tokens[i]);
    free(acct->tokens);
    acct->tokens = NULL;
    acct->ntokens = 0;
    sim_map_cleanup(&acct->by_access);
    sim_map_cleanup(&acct->by_refresh);
    for (size_t i = 0; i < acct->nrules; i++)
        free(acct->rules[i].body);
    free(acct->rules);
    acct->rules = NULL;
    acct->nrules = 0;
    free(acct->counts);
    acct->counts = NULL;
    acct->ncounts = 0;
    acct->log_total = 0;
    acct->win_minute = acct->win_count = 0;
    acct->uw_second = acct->uw_count = 0;
    acct->inc_minute = acct->inc_count = 0;
}

/* Fills a fresh account: the owner (admin) and one default group. */
static void account_populate(sim_account_t *acct)
{
    acct->rng = (g_sim.seed ? g_sim.seed : 42) ^ sim_hash(acct->cfg.subdomain);
    if (!acct->rng)
        acct->rng = 1;
    acct->next_id = 360000000000LL + (int64_t)(sim_rand(&acct->rng) % 1000000) * 1000;
    acct->next_aux_id = 360000000LL + (int64_t)(sim_rand(&acct->rng) % 100000) * 100;
    acct->seq = 0;
    sim_user_t *u = user_new(acct);
    if (u) {
        u->name = strdup("Account Owner");
        u->email = strdup(acct->cfg.email);
        snprintf(u->role, sizeof(u->role), "admin");
        u->verified = true;
        u->last_login_at = u->created_at;
        index_email(acct, acct->cfg.email, u);
    }
    acct->owner = u;
    acct->groups = calloc(1, sizeof(sim_group_t));
    if (acct->groups) {
        acct->groups[0].id = acct->next_aux_id++;
        snprintf(acct->groups[0].name, sizeof(acct->groups[0].name), "Support");
        acct->groups[0].created_at = sim_now_ms() / 1000;
        acct->ngroups = 1;
    }
}

sim_account_t *sim_account_find(const char *sub)
{
    for (int i = 0; i < g_sim.naccounts; i++)
        if (!strcmp(g_sim.accounts[i]->cfg.subdomain, sub))
            return g_sim.accounts[i];
    return NULL;
}

sim_account_t *sim_account_add(const sim_config_t *cfg, char *errstr, size_t errlen)
{
    if (!cfg->subdomain[0] || !cfg->email[0]) {
        snprintf(errstr, errlen, "an account needs at least subdomain and email");
        return NULL;
    }
    if (sim_account_find(cfg->subdomain)) {
        snprintf(errstr, errlen, "account '%s' exists already", cfg->subdomain);
        return NULL;
    }
    if (g_sim.naccounts >= SIM_MAX_ACCOUNTS) {
        snprintf(errstr, errlen, "too many accounts (max %d)", SIM_MAX_ACCOUNTS);
        return NULL;
    }
    sim_account_t *acct = calloc(1, sizeof(*acct));
    if (!acct || !(acct->log = calloc(SIM_LOG_CAP, sizeof(sim_log_entry_t)))) {
        free(acct);
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    acct->cfg = *cfg;
    acct->initial = *cfg;
    account_populate(acct);
    g_sim.accounts[g_sim.naccounts++] = acct;
    return acct;
}

void sim_account_reset(sim_account_t *acct, bool restore_cfg)
{
    account_clear(acct);
    if (restore_cfg)
        acct->cfg = acct->initial;
    account_populate(acct);
}

void sim_account_remove(sim_account_t *acct)
{
    for (int i = 0; i < g_sim.naccounts; i++) {
        if (g_sim.accounts[i] == acct) {
            g_sim.accounts[i] = g_sim.accounts[--g_sim.naccounts];
            break;
        }
    }
    account_clear(acct);
    free(acct->log);
    free(acct);
}

void sim_accounts_destroy(void)
{
    while (g_sim.naccounts)
        sim_account_remove(g_sim.accounts[0]);
}

/* ---------- OAuth tokens ---------- */

static void random_hex(sim_account_t *acct, char *out, size_t nchars)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < nchars; i++)
        out[i] = hex[sim_rand(&acct->rng) & 15];
    out[nchars] = '\0';
}

sim_token_t *sim_token_issue(sim_account_t *acct, const char *scope, int64_t ttl_s)
{
    sim_token_t **n = realloc(acct->tokens, (acct->ntokens + 1) * sizeof(*n));
    if (!n)
        return NULL;
    acct->tokens = n;
    sim_token_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    random_hex(acct, t->access, 64);
    random_hex(acct, t->refresh, 64);
    sim_strlcpy(t->scope, scope, sizeof(t->scope));
    int64_t now = sim_now_ms();
    t->access_exp_ms = now + ttl_s * 1000;
    t->refresh_exp_ms = now + acct->cfg.refresh_ttl * 1000;
    acct->tokens[acct->ntokens++] = t;
    sim_map_put(&acct->by_access, t->access, t);
    sim_map_put(&acct->by_refresh, t->refresh, t);
    return t;
}

sim_token_t *sim_token_by_access(sim_account_t *acct, const char *access)
{
    return sim_map_get(&acct->by_access, access);
}

sim_token_t *sim_token_by_refresh(sim_account_t *acct, const char *refresh)
{
    return sim_map_get(&acct->by_refresh, refresh);
}

/* ---------- request log ---------- */

void sim_log_request(sim_account_t *acct, const sim_req_t *req, const char *endpoint, int status)
{
    sim_log_entry_t *e = &acct->log[acct->log_total % SIM_LOG_CAP];
    e->time_ms = sim_now_ms();
    sim_strlcpy(e->method, req->method, sizeof(e->method));
    sim_strlcpy(e->path, req->raw_path ? req->raw_path : "", sizeof(e->path));
    sim_strlcpy(e->endpoint, endpoint, sizeof(e->endpoint));
    sim_strlcpy(e->request_id, req->request_id, sizeof(e->request_id));
    e->status = status;
    acct->log_total++;
    for (size_t i = 0; i < acct->ncounts; i++) {
        if (acct->counts[i].status == status && !strcmp(acct->counts[i].endpoint, endpoint)) {
            acct->counts[i].count++;
            return;
        }
    }
    sim_count_t *c = realloc(acct->counts, (acct->ncounts + 1) * sizeof(*c));
    if (!c)
        return;
    acct->counts = c;
    sim_count_t *nc = &c[acct->ncounts++];
    sim_strlcpy(nc->endpoint, endpoint, sizeof(nc->endpoint));
    nc->status = status;
    nc->count = 1;
}

/*
 * zendesk-sim: the control API under /__sim/ (no auth, any Host). Tests and demos use it to
 * reset, seed, inspect users and the request log, and set faults, limits and scripts.
 * JSON in, JSON out; every endpoint is listed in README.md. Runs with g_sim.lock held.
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const FAULT_KEYS[] = {"latency_ms", "latency_jitter_ms", "error_rate", "error_statuses",
                                         "error_retry_after", "conflict_rate", "drop_rate", "hang_rate",
                                         "hang_ms", "fault_path", "job_fail_rate", NULL};
static const char *const LIMIT_KEYS[] = {"limits_enabled", "rpm", "user_write_per_sec",
                                         "user_write_per_user_min", "incremental_per_min", "max_jobs",
                                         "limit_body", NULL};

static bool key_in(const char *key, const char *const *keys)
{
    for (; *keys; keys++)
        if (!strcmp(key, *keys))
            return true;
    return false;
}

static void ok(sim_resp_t *resp, int status, json_object *o)
{
    sim_resp_json(resp, status, o);
}

static void fail(sim_resp_t *resp, int status, const char *code, const char *desc)
{
    sim_resp_error(resp, status, code, desc);
}

/* Parses the body; an empty body is {}. Returns a new object or NULL with 400 set. */
static json_object *body(sim_req_t *req, sim_resp_t *resp)
{
    if (!req->body.len)
        return json_object_new_object();
    json_object *o = json_tokener_parse(req->body.data);
    if (!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        fail(resp, 400, "InvalidJSON", "the body must be a JSON object");
        return NULL;
    }
    return o;
}

static json_object *account_json(const sim_account_t *acct)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "config", sim_config_to_json(&acct->cfg));
    size_t active = 0;
    for (size_t i = 0; i < acct->nusers; i++)
        active += acct->users[i]->active;
    json_object_object_add(o, "users", json_object_new_int64((int64_t)active));
    json_object_object_add(o, "deleted_users", json_object_new_int64((int64_t)(acct->nusers - active)));
    json_object_object_add(o, "owner_id", acct->owner ? json_object_new_int64(acct->owner->id) : NULL);
    json_object_object_add(o, "jobs_active", json_object_new_int(sim_jobs_active(acct)));
    json_object_object_add(o, "scripts_pending", json_object_new_int((int)acct->nrules));
    return o;
}

static void accounts_list(sim_resp_t *resp)
{
    json_object *arr = json_object_new_array();
    for (int i = 0; i < g_sim.naccounts; i++) {
        json_object *a = account_json(g_sim.accounts[i]);
        json_object_object_add(a, "subdomain", json_object_new_string(g_sim.accounts[i]->cfg.subdomain));
        json_object_array_add(arr, a);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "accounts", arr);
    ok(resp, 200, o);
}

static void accounts_create(sim_req_t *req, sim_resp_t *resp)
{
    json_object *in = body(req, resp);
    if (!in)
        return;
    sim_config_t cfg;
    char err[256];
    sim_config_defaults(&cfg);
    json_object *spec;
    int rc;
    if (json_object_object_get_ex(in, "spec", &spec))
        rc = sim_config_parse(&cfg, json_object_get_string(spec), err, sizeof(err));
    else
        rc = sim_config_apply_json(&cfg, in, err, sizeof(err));
    json_object_put(in);
    if (rc != 0) {
        fail(resp, 400, "InvalidValue", err);
        return;
    }
    if (sim_account_find(cfg.subdomain)) {
        fail(resp, 409, "AccountExists", "an account with this subdomain exists; PUT /__sim/accounts/{sub} changes it");
        return;
    }
    sim_account_t *acct = sim_account_add(&cfg, err, sizeof(err));
    if (!acct) {
        fail(resp, 400, "InvalidValue", err);
        return;
    }
    ok(resp, 201, account_json(acct));
}

/* PUT/PATCH an account, its faults or its limits: keys limited to allowed (NULL = any but
 * subdomain). reset_first: start faults from defaults (PUT faults replaces). */
static void account_configure(sim_account_t *acct, sim_req_t *req, sim_resp_t *resp,
                              const char *const *allowed, bool reset_faults)
{
    json_object *in = body(req, resp);
    if (!in)
        return;
    sim_config_t cfg = acct->cfg;
    char err[256] = "";
    if (reset_faults) {
        sim_config_t def;
        sim_config_defaults(&def);
        cfg.latency_ms = def.latency_ms;
        cfg.latency_jitter_ms = def.latency_jitter_ms;
        cfg.error_rate = def.error_rate;
        memcpy(cfg.error_statuses, def.error_statuses, sizeof(cfg.error_statuses));
        cfg.n_error_statuses = def.n_error_statuses;
        cfg.error_retry_after = def.error_retry_after;
        cfg.conflict_rate = def.conflict_rate;
        cfg.job_fail_rate = def.job_fail_rate;
        cfg.drop_rate = def.drop_rate;
        cfg.hang_rate = def.hang_rate;
        cfg.hang_ms = def.hang_ms;
        memcpy(cfg.fault_path, def.fault_path, sizeof(cfg.fault_path));
    }
    json_object_object_foreach(in, key, val)
    {
        (void)val;
        if (!strcmp(key, "subdomain") || (allowed && !key_in(key, allowed))) {
            snprintf(err, sizeof(err), "key '%s' cannot be set here", key);
            break;
        }
    }
    if (!err[0])
        sim_config_apply_json(&cfg, in, err, sizeof(err));
    json_object_put(in);
    if (err[0]) {
        fail(resp, 400, "InvalidValue", err);
        return;
    }
    acct->cfg = cfg;
    if (allowed == LIMIT_KEYS || !allowed) {
        /* New limits start with full windows. */
        acct->win_minute = acct->win_count = 0;
        acct->uw_second = acct->uw_count = 0;
        acct->inc_minute = acct->inc_count = 0;
        for (size_t i = 0; i < acct->nusers; i++)
            acct->users[i]->write_count = 0;
    }
    ok(resp, 200, account_json(acct));
}

static void config_subset(const sim_account_t *acct, sim_resp_t *resp, const char *const *keys)
{
    json_object *all = sim_config_to_json(&acct->cfg);
    json_object *o = json_object_new_object();
    for (; *keys; keys++) {
        json_object *v;
        if (json_object_object_get_ex(all, *keys, &v))
            json_object_object_add(o, *keys, json_object_get(v));
    }
    json_object_put(all);
    ok(resp, 200, o);
}

static void seed(sim_account_t *acct, sim_req_t *req, sim_resp_t *resp)
{
    json_object *in = body(req, resp);
    if (!in)
        return;
    json_object *v;
    int64_t count = json_object_object_get_ex(in, "count", &v) ? json_object_get_int64(v) : 0;
    int64_t start = json_object_object_get_ex(in, "start", &v) ? json_object_get_int64(v) : 0;
    const char *role = json_object_object_get_ex(in, "role", &v) ? json_object_get_string(v) : "end-user";
    const char *prefix = json_object_object_get_ex(in, "prefix", &v) ? json_object_get_string(v) : "SEED";
    if (count < 1 || count > 1000000 || (strcmp(role, "end-user") && strcmp(role, "agent") &&
                                          strcmp(role, "admin") && strcmp(role, "mixed")) ||
        !*prefix || strlen(prefix) > 40 || start < 0) {
        json_object_put(in);
        fail(resp, 400, "InvalidValue",
             "count must be 1..1000000, role end-user|agent|admin|mixed, prefix 1..40 characters");
        return;
    }
    if (start == 0) {
        /* Continue numbering after the users seeded before. */
        start = 1;
        char ext[96];
        for (;;) {
            snprintf(ext, sizeof(ext), "%s-%06lld", prefix, (long long)start);
            if (!sim_user_by_external_id(acct, ext))
                break;
            start++;
        }
    }
    int64_t first_id = acct->next_id;
    int made = sim_seed_users(acct, (int)count, role, prefix, (int)start);
    json_object_put(in);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "created", json_object_new_int(made));
    json_object_object_add(o, "first_id", made ? json_object_new_int64(first_id) : NULL);
    json_object_object_add(o, "last_id", made ? json_object_new_int64(acct->users[acct->nusers - 1]->id) : NULL);
    json_object_object_add(o, "start", json_object_new_int64(start));
    ok(resp, 201, o);
}

static void users_dump(sim_account_t *acct, sim_req_t *req, sim_resp_t *resp)
{
    const char *ext = req->query(req, "external_id"), *email = req->query(req, "email"),
               *idq = req->query(req, "id"), *role = req->query(req, "role"),
               *active = req->query(req, "active");
    char host[128];
    snprintf(host, sizeof(host), "%s.zendesk.test:%d", acct->cfg.subdomain, g_sim.port);
    json_object *arr = json_object_new_array();
    int64_t id = 0;
    if (idq)
        sim_parse_i64(idq, &id);
    for (size_t i = 0; i < acct->nusers; i++) {
        sim_user_t *u = acct->users[i];
        if (ext && (!u->external_id || sim_strcasecmp(u->external_id, ext)))
            continue;
        if (email && (!u->email || sim_strcasecmp(u->email, email))) {
            bool secondary = false;
            for (size_t k = 0; u->identities && k < json_object_array_length(u->identities); k++)
                secondary = secondary ||
                            !sim_strcasecmp(json_object_get_string(json_object_array_get_idx(u->identities, k)), email);
            if (!secondary)
                continue;
        }
        if ((idq && u->id != id) || (role && strcmp(role, u->role)) ||
            (active && u->active != !strcmp(active, "true")))
            continue;
        json_object *uj = sim_user_json(u, host, true);
        json_object *groups = json_object_new_array();
        for (size_t m = 0; m < acct->nmemberships; m++)
            if (acct->memberships[m].user_id == u->id)
                json_object_array_add(groups, json_object_new_int64(acct->memberships[m].group_id));
        json_object_object_add(uj, "group_ids", groups);
        json_object_array_add(arr, uj);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "count", json_object_new_int((int)json_object_array_length(arr)));
    json_object_object_add(o, "users", arr);
    ok(resp, 200, o);
}

static void requests_dump(sim_account_t *acct, sim_req_t *req, sim_resp_t *resp)
{
    int64_t limit = 1000;
    const char *l = req->query(req, "limit");
    if (l && (sim_parse_i64(l, &limit) != 0 || limit < 1))
        limit = 1000;
    uint64_t kept = acct->log_total < SIM_LOG_CAP ? acct->log_total : SIM_LOG_CAP;
    if ((uint64_t)limit > kept)
        limit = (int64_t)kept;
    json_object *arr = json_object_new_array();
    for (uint64_t i = acct->log_total - (uint64_t)limit; i < acct->log_total; i++) {
        const sim_log_entry_t *e = &acct->log[i % SIM_LOG_CAP];
        json_object *o = json_object_new_object();
        char iso[32];
        sim_iso8601(e->time_ms / 1000, iso, sizeof(iso));
        json_object_object_add(o, "seq", json_object_new_int64((int64_t)i + 1));
        json_object_object_add(o, "time", json_object_new_string(iso));
        json_object_object_add(o, "time_ms", json_object_new_int64(e->time_ms));
        json_object_object_add(o, "account", json_object_new_string(acct->cfg.subdomain));
        json_object_object_add(o, "method", json_object_new_string(e->method));
        json_object_object_add(o, "path", json_object_new_string(e->path));
        json_object_object_add(o, "endpoint", json_object_new_string(e->endpoint));
        json_object_object_add(o, "status", json_object_new_int(e->status));
        json_object_object_add(o, "request_id", json_object_new_string(e->request_id));
        json_object_array_add(arr, o);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "total", json_object_new_int64((int64_t)acct->log_total));
    json_object_object_add(o, "requests", arr);
    ok(resp, 200, o);
}

static void stats(sim_account_t *acct, sim_resp_t *resp)
{
    json_object *by_ep = json_object_new_object(), *by_status = json_object_new_object();
    for (size_t i = 0; i < acct->ncounts; i++) {
        const sim_count_t *c = &acct->counts[i];
        char st[16];
        snprintf(st, sizeof(st), "%d", c->status);
        json_object *ep;
        if (!json_object_object_get_ex(by_ep, c->endpoint, &ep)) {
            ep = json_object_new_object();
            json_object_object_add(by_ep, c->endpoint, ep);
        }
        json_object_object_add(ep, st, json_object_new_int64((int64_t)c->count));
        json_object *prev;
        int64_t sum = (int64_t)c->count;
        if (json_object_object_get_ex(by_status, st, &prev))
            sum += json_object_get_int64(prev);
        json_object_object_add(by_status, st, json_object_new_int64(sum));
    }
    json_object *roles = json_object_new_object();
    int64_t n_end = 0, n_agent = 0, n_admin = 0, n_del = 0, n_susp = 0;
    for (size_t i = 0; i < acct->nusers; i++) {
        const sim_user_t *u = acct->users[i];
        if (!u->active) {
            n_del++;
            continue;
        }
        n_susp += u->suspended;
        if (!strcmp(u->role, "agent")) n_agent++;
        else if (!strcmp(u->role, "admin")) n_admin++;
        else n_end++;
    }
    json_object_object_add(roles, "end-user", json_object_new_int64(n_end));
    json_object_object_add(roles, "agent", json_object_new_int64(n_agent));
    json_object_object_add(roles, "admin", json_object_new_int64(n_admin));
    json_object *users = json_object_new_object();
    json_object_object_add(users, "active", json_object_new_int64(n_end + n_agent + n_admin));
    json_object_object_add(users, "deleted", json_object_new_int64(n_del));
    json_object_object_add(users, "suspended", json_object_new_int64(n_susp));
    json_object_object_add(users, "by_role", roles);
    json_object *jobs = json_object_new_object();
    json_object_object_add(jobs, "active", json_object_new_int(sim_jobs_active(acct)));
    json_object_object_add(jobs, "kept", json_object_new_int((int)acct->njobs));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "account", json_object_new_string(acct->cfg.subdomain));
    json_object_object_add(o, "total_requests", json_object_new_int64((int64_t)acct->log_total));
    json_object_object_add(o, "by_endpoint", by_ep);
    json_object_object_add(o, "by_status", by_status);
    json_object_object_add(o, "users", users);
    json_object_object_add(o, "jobs", jobs);
    ok(resp, 200, o);
}

static int rule_parse(json_object *in, sim_rule_t *r, char *err, size_t errlen)
{
    json_object *v;
    memset(r, 0, sizeof(*r));
    snprintf(r->method, sizeof(r->method), "*");
    snprintf(r->path, sizeof(r->path), "*");
    r->remaining = 1;
    r->status = 503;
    if (!json_object_is_type(in, json_type_object)) {
        snprintf(err, errlen, "a rule must be an object");
        return -1;
    }
    if (json_object_object_get_ex(in, "method", &v))
        sim_strlcpy(r->method, json_object_get_string(v), sizeof(r->method));
    if (json_object_object_get_ex(in, "path", &v)) {
        const char *p = json_object_get_string(v);
        size_t l = strlen(p);
        /* Paths are matched without the .json suffix, as the router sees them. */
        if (l > 5 && !strcmp(p + l - 5, ".json"))
            l -= 5;
        snprintf(r->path, sizeof(r->path), "%.*s", (int)l, p);
    }
    if (json_object_object_get_ex(in, "count", &v))
        r->remaining = json_object_get_int(v);
    if (json_object_object_get_ex(in, "status", &v))
        r->status = json_object_get_int(v);
    if (json_object_object_get_ex(in, "latency_ms", &v))
        r->latency_ms = json_object_get_int64(v);
    if (json_object_object_get_ex(in, "action", &v)) {
        const char *a = json_object_get_string(v);
        if (!strcmp(a, "respond")) r->action = SIM_ACT_RESPOND;
        else if (!strcmp(a, "drop")) r->action = SIM_ACT_DROP;
        else if (!strcmp(a, "hang")) r->action = SIM_ACT_HANG;
        else if (!strcmp(a, "lose_answer")) r->action = SIM_ACT_LOSE;
        else {
            snprintf(err, errlen, "action must be respond, drop, hang or lose_answer");
            return -1;
        }
    }
    if (r->remaining < 1 || r->status < 100 || r->status > 599 || r->latency_ms < 0) {
        snprintf(err, errlen, "count must be >= 1, status 100..599, latency_ms >= 0");
        return -1;
    }
    snprintf(r->ctype, sizeof(r->ctype), "application/json; charset=utf-8");
    if (json_object_object_get_ex(in, "body", &v)) {
        if (json_object_is_type(v, json_type_string)) {
            r->body = strdup(json_object_get_string(v));
            snprintf(r->ctype, sizeof(r->ctype), "text/plain; charset=utf-8");
        } else {
            r->body = strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
        }
    }
    if (json_object_object_get_ex(in, "content_type", &v))
        sim_strlcpy(r->ctype, json_object_get_string(v), sizeof(r->ctype));
    if (json_object_object_get_ex(in, "headers", &v) && json_object_is_type(v, json_type_object)) {
        json_object_object_foreach(v, hk, hv)
        {
            if (r->nhdr >= 8)
                break;
            sim_strlcpy(r->hdr_name[r->nhdr], hk, sizeof(r->hdr_name[0]));
            sim_strlcpy(r->hdr_val[r->nhdr], json_object_get_string(hv), sizeof(r->hdr_val[0]));
            r->nhdr++;
        }
    }
    return 0;
}

static json_object *rules_json(const sim_account_t *acct)
{
    json_object *arr = json_object_new_array();
    static const char *const actions[] = {"respond", "drop", "hang", "lose_answer"};
    for (size_t i = 0; i < acct->nrules; i++) {
        const sim_rule_t *r = &acct->rules[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "method", json_object_new_string(r->method));
        json_object_object_add(o, "path", json_object_new_string(r->path));
        json_object_object_add(o, "remaining", json_object_new_int(r->remaining));
        json_object_object_add(o, "status", json_object_new_int(r->status));
        json_object_object_add(o, "action", json_object_new_string(actions[r->action]));
        json_object_object_add(o, "latency_ms", json_object_new_int64(r->latency_ms));
        json_object_array_add(arr, o);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "rules", arr);
    return o;
}

static void script_add(sim_account_t *acct, sim_req_t *req, sim_resp_t *resp)
{
    json_object *in = body(req, resp);
    if (!in)
        return;
    json_object *list;
    bool many = json_object_object_get_ex(in, "rules", &list) && json_object_is_type(list, json_type_array);
    size_t n = many ? json_object_array_length(list) : 1;
    sim_rule_t *rules = calloc(n ? n : 1, sizeof(*rules));
    char err[200];
    size_t ok_n = 0;
    for (; rules && ok_n < n; ok_n++) {
        if (rule_parse(many ? json_object_array_get_idx(list, ok_n) : in, &rules[ok_n], err, sizeof(err)) != 0)
            break;
    }
    json_object_put(in);
    if (!rules || ok_n < n) {
        for (size_t i = 0; rules && i < ok_n; i++)
            free(rules[i].body);
        free(rules);
        fail(resp, 400, "InvalidValue", rules ? err : "out of memory");
        return;
    }
    sim_rule_t *all = realloc(acct->rules, (acct->nrules + n) * sizeof(*all));
    if (!all) {
        for (size_t i = 0; i < n; i++)
            free(rules[i].body);
        free(rules);
        fail(resp, 500, "InternalServerError", "out of memory");
        return;
    }
    memcpy(all + acct->nrules, rules, n * sizeof(*rules));
    acct->rules = all;
    acct->nrules += n;
    free(rules);
    ok(resp, 201, rules_json(acct));
}

static void script_clear(sim_account_t *acct)
{
    for (size_t i = 0; i < acct->nrules; i++)
        free(acct->rules[i].body);
    free(acct->rules);
    acct->rules = NULL;
    acct->nrules = 0;
}

static void reset_all(sim_req_t *req, sim_resp_t *resp)
{
    json_object *in = body(req, resp);
    if (!in)
        return;
    json_object *v;
    if (json_object_object_get_ex(in, "account", &v)) {
        sim_account_t *acct = sim_account_find(json_object_get_string(v));
        json_object_put(in);
        if (!acct) {
            fail(resp, 404, "RecordNotFound", "no such account");
            return;
        }
        sim_account_reset(acct, true);
    } else {
        json_object_put(in);
        for (int i = 0; i < g_sim.naccounts; i++)
            sim_account_reset(g_sim.accounts[i], true);
        sim_clock_advance(-sim_clock_offset());
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "reset", json_object_new_boolean(1));
    ok(resp, 200, o);
}

static void clock_op(sim_req_t *req, sim_resp_t *resp, bool set)
{
    if (set) {
        json_object *in = body(req, resp);
        if (!in)
            return;
        json_object *v;
        int64_t ms = 0;
        if (json_object_object_get_ex(in, "advance_s", &v))
            ms += (int64_t)(json_object_get_double(v) * 1000);
        if (json_object_object_get_ex(in, "advance_ms", &v))
            ms += json_object_get_int64(v);
        if (json_object_object_get_ex(in, "align_minute", &v) && json_object_get_boolean(v)) {
            /* Move to 100 ms past the next minute, so a test has a whole fixed window. */
            int64_t now = sim_now_ms() + ms;
            ms += (now / 60000 + 1) * 60000 + 100 - now;
        }
        json_object_put(in);
        if (ms < 0) {
            fail(resp, 400, "InvalidValue", "the clock only moves forward");
            return;
        }
        sim_clock_advance(ms);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "now_ms", json_object_new_int64(sim_now_ms()));
    json_object_object_add(o, "offset_ms", json_object_new_int64(sim_clock_offset()));
    ok(resp, 200, o);
}

void sim_control_handle(sim_req_t *req, sim_resp_t *resp)
{
    const char *p = req->path + strlen("/__sim");
    const char *m = req->method;
    bool get = !strcmp(m, "GET"), post = !strcmp(m, "POST"), put = !strcmp(m, "PUT") || !strcmp(m, "PATCH"),
         del = !strcmp(m, "DELETE");
    if (!strcmp(p, "/health") && get) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "ok", json_object_new_boolean(1));
        json_object_object_add(o, "port", json_object_new_int(g_sim.port));
        ok(resp, 200, o);
        return;
    }
    if (!strcmp(p, "/reset") && post) {
        reset_all(req, resp);
        return;
    }
    if (!strcmp(p, "/clock") && (get || post)) {
        clock_op(req, resp, post);
        return;
    }
    if (!strcmp(p, "/accounts")) {
        if (get)
            accounts_list(resp);
        else if (post)
            accounts_create(req, resp);
        else
            fail(resp, 405, "MethodNotAllowed", "GET or POST");
        return;
    }
    if (strncmp(p, "/accounts/", 10) != 0) {
        fail(resp, 404, "InvalidEndpoint", "unknown control endpoint; see README.md");
        return;
    }
    char sub[64];
    const char *s = p + 10;
    const char *slash = strchr(s, '/');
    size_t len = slash ? (size_t)(slash - s) : strlen(s);
    if (len == 0 || len >= sizeof(sub)) {
        fail(resp, 404, "RecordNotFound", "no such account");
        return;
    }
    memcpy(sub, s, len);
    sub[len] = '\0';
    sim_lower(sub, sub, sizeof(sub));
    sim_account_t *acct = sim_account_find(sub);
    if (!acct) {
        fail(resp, 404, "RecordNotFound", "no such account");
        return;
    }
    const char *rest = slash ? slash : "";
    sim_jobs_tick(acct, sim_now_ms());
    if (!*rest) {
        if (get) {
            ok(resp, 200, account_json(acct));
        } else if (put) {
            account_configure(acct, req, resp, NULL, false);
        } else if (del) {
            sim_account_remove(acct);
            sim_resp_text(resp, 204, "application/json", NULL);
        } else {
            fail(resp, 405, "MethodNotAllowed", "GET, PUT, PATCH or DELETE");
        }
        return;
    }
    if (!strcmp(rest, "/reset") && post) {
        sim_account_reset(acct, true);
        ok(resp, 200, account_json(acct));
    } else if (!strcmp(rest, "/seed") && post) {
        seed(acct, req, resp);
    } else if (!strcmp(rest, "/users") && get) {
        users_dump(acct, req, resp);
    } else if (!strcmp(rest, "/requests") && get) {
        requests_dump(acct, req, resp);
    } else if (!strcmp(rest, "/requests") && del) {
        acct->log_total = 0;
        free(acct->counts);
        acct->counts = NULL;
        acct->ncounts = 0;
        sim_resp_text(resp, 204, "application/json", NULL);
    } else if (!strcmp(rest, "/stats") && get) {
        stats(acct, resp);
    } else if (!strcmp(rest, "/faults") && get) {
        config_subset(acct, resp, FAULT_KEYS);
    } else if (!strcmp(rest, "/faults") && put) {
        account_configure(acct, req, resp, FAULT_KEYS, !strcmp(m, "PUT"));
    } else if (!strcmp(rest, "/faults") && del) {
        sim_req_t empty = *req;
        empty.body.len = 0;
        account_configure(acct, &empty, resp, FAULT_KEYS, true);
    } else if (!strcmp(rest, "/limits") && get) {
        config_subset(acct, resp, LIMIT_KEYS);
    } else if (!strcmp(rest, "/limits") && put) {
        account_configure(acct, req, resp, LIMIT_KEYS, false);
    } else if (!strcmp(rest, "/script") && get) {
        ok(resp, 200, rules_json(acct));
    } else if (!strcmp(rest, "/script") && post) {
        script_add(acct, req, resp);
    } else if (!strcmp(rest, "/script") && del) {
        script_clear(acct);
        sim_resp_text(resp, 204, "application/json", NULL);
    } else {
        fail(resp, 404, "InvalidEndpoint", "unknown control endpoint; see README.md");
    }
}

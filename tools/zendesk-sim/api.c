/*
 * zendesk-sim: the Zendesk Support API surface: routing, auth, faults and the user,
 * bulk, job-status, incremental-export, group-membership and OAuth endpoints.
 * Every function here runs with g_sim.lock held (server.c takes it).
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    R_NONE = 0,
    R_USERS_LIST, R_USERS_CREATE, R_ME, R_SHOW_MANY, R_SEARCH, R_CREATE_OR_UPDATE,
    R_CREATE_MANY, R_COU_MANY, R_UPDATE_MANY, R_DESTROY_MANY,
    R_USER_SHOW, R_USER_UPDATE, R_USER_DELETE,
    R_USER_GM_LIST, R_USER_GM_CREATE, R_USER_GM_SHOW, R_USER_GM_DELETE,
    R_GM_LIST, R_GM_CREATE, R_GM_SHOW, R_GM_DELETE,
    R_GROUPS_LIST, R_GROUPS_CREATE,
    R_DELETED_LIST, R_DELETED_SHOW, R_DELETED_DELETE,
    R_JOB_SHOW, R_JOBS_SHOW_MANY, R_JOBS_LIST,
    R_INCREMENTAL, R_OAUTH_TOKENS, R_SEARCH_ALL
} route_t;

typedef struct ctx_s {
    sim_account_t *acct;
    sim_req_t *req;
    sim_resp_t *resp;
    int64_t now_ms;
    route_t route;
    const char *label;
    int64_t id1, id2;          /* path ids */
    char job_id[40];
    char scope[128];
    bool bearer;
} ctx_t;

static const char *const JSON_CT = "application/json; charset=utf-8";

/* ---------- routing ---------- */

static bool is_num(const char *s, int64_t *out)
{
    return sim_parse_i64(s, out) == 0 && *out > 0;
}

static void route(ctx_t *c)
{
    const char *m = c->req->method;
    const char *p = c->req->path;
    char segs[6][64];
    int n = 0;
    bool get = !strcmp(m, "GET"), post = !strcmp(m, "POST"), put = !strcmp(m, "PUT"),
         del = !strcmp(m, "DELETE");
    c->route = R_NONE;
    c->label = "unknown";

    if (!strcmp(p, "/oauth/tokens")) {
        if (post) {
            c->route = R_OAUTH_TOKENS;
            c->label = "POST /oauth/tokens";
        }
        return;
    }
    if (strncmp(p, "/api/v2/", 8) != 0)
        return;
    const char *s = p + 8;
    while (*s && n < 6) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 0 || len >= sizeof(segs[0]))
            return;
        memcpy(segs[n], s, len);
        segs[n][len] = '\0';
        n++;
        s = e ? e + 1 : s + len;
        if (e && !*s)
            break;
    }
    if (*s)
        return;
#define SEG(i, lit) (n > (i) && !strcmp(segs[i], lit))
#define SET(r, l)      \
    do {               \
        c->route = r;  \
        c->label = l;  \
    } while (0)
    if (SEG(0, "users")) {
        if (n == 1) {
            if (get) SET(R_USERS_LIST, "GET /api/v2/users");
            else if (post) SET(R_USERS_CREATE, "POST /api/v2/users");
            return;
        }
        if (n == 2) {
            if (SEG(1, "me")) { if (get) SET(R_ME, "GET /api/v2/users/me"); return; }
            if (SEG(1, "show_many")) { if (get) SET(R_SHOW_MANY, "GET /api/v2/users/show_many"); return; }
            if (SEG(1, "search")) { if (get) SET(R_SEARCH, "GET /api/v2/users/search"); return; }
            if (SEG(1, "create_or_update")) { if (post) SET(R_CREATE_OR_UPDATE, "POST /api/v2/users/create_or_update"); return; }
            if (SEG(1, "create_many")) { if (post) SET(R_CREATE_MANY, "POST /api/v2/users/create_many"); return; }
            if (SEG(1, "create_or_update_many")) { if (post) SET(R_COU_MANY, "POST /api/v2/users/create_or_update_many"); return; }
            if (SEG(1, "update_many")) { if (put) SET(R_UPDATE_MANY, "PUT /api/v2/users/update_many"); return; }
            if (SEG(1, "destroy_many")) { if (del) SET(R_DESTROY_MANY, "DELETE /api/v2/users/destroy_many"); return; }
            if (!is_num(segs[1], &c->id1))
                return;
            if (get) SET(R_USER_SHOW, "GET /api/v2/users/{id}");
            else if (put) SET(R_USER_UPDATE, "PUT /api/v2/users/{id}");
            else if (del) SET(R_USER_DELETE, "DELETE /api/v2/users/{id}");
            return;
        }
        if (!is_num(segs[1], &c->id1) || !SEG(2, "group_memberships"))
            return;
        if (n == 3) {
            if (get) SET(R_USER_GM_LIST, "GET /api/v2/users/{id}/group_memberships");
            else if (post) SET(R_USER_GM_CREATE, "POST /api/v2/users/{id}/group_memberships");
            return;
        }
        if (n == 4 && is_num(segs[3], &c->id2)) {
            if (get) SET(R_USER_GM_SHOW, "GET /api/v2/users/{id}/group_memberships/{id}");
            else if (del) SET(R_USER_GM_DELETE, "DELETE /api/v2/users/{id}/group_memberships/{id}");
        }
        return;
    }
    if (SEG(0, "group_memberships")) {
        if (n == 1) {
            if (get) SET(R_GM_LIST, "GET /api/v2/group_memberships");
            else if (post) SET(R_GM_CREATE, "POST /api/v2/group_memberships");
        } else if (n == 2 && is_num(segs[1], &c->id1)) {
            if (get) SET(R_GM_SHOW, "GET /api/v2/group_memberships/{id}");
            else if (del) SET(R_GM_DELETE, "DELETE /api/v2/group_memberships/{id}");
        }
        return;
    }
    if (SEG(0, "groups") && n == 1) {
        if (get) SET(R_GROUPS_LIST, "GET /api/v2/groups");
        else if (post) SET(R_GROUPS_CREATE, "POST /api/v2/groups");
        return;
    }
    if (SEG(0, "deleted_users")) {
        if (n == 1) {
            if (get) SET(R_DELETED_LIST, "GET /api/v2/deleted_users");
        } else if (n == 2 && is_num(segs[1], &c->id1)) {
            if (get) SET(R_DELETED_SHOW, "GET /api/v2/deleted_users/{id}");
            else if (del) SET(R_DELETED_DELETE, "DELETE /api/v2/deleted_users/{id}");
        }
        return;
    }
    if (SEG(0, "job_statuses")) {
        if (n == 1) {
            if (get) SET(R_JOBS_LIST, "GET /api/v2/job_statuses");
        } else if (n == 2 && SEG(1, "show_many")) {
            if (get) SET(R_JOBS_SHOW_MANY, "GET /api/v2/job_statuses/show_many");
        } else if (n == 2 && strlen(segs[1]) < sizeof(c->job_id)) {
            sim_strlcpy(c->job_id, segs[1], sizeof(c->job_id));
            if (get) SET(R_JOB_SHOW, "GET /api/v2/job_statuses/{id}");
        }
        return;
    }
    if (n == 1 && SEG(0, "search") && get) {
        SET(R_SEARCH_ALL, "GET /api/v2/search");
        return;
    }
    if (n == 3 && SEG(0, "incremental") && SEG(1, "users") && SEG(2, "cursor") && get)
        SET(R_INCREMENTAL, "GET /api/v2/incremental/users/cursor");
#undef SEG
#undef SET
}

/* ---------- helpers ---------- */

static const char *Q(ctx_t *c, const char *key)
{
    return c->req->query(c->req, key);
}

static void not_found(ctx_t *c)
{
    sim_resp_error(c->resp, 404, "RecordNotFound", "Not found");
}

static void bad_request(ctx_t *c, const char *code, const char *desc)
{
    sim_resp_error(c->resp, 400, code, desc);
}

static void record_invalid(ctx_t *c, const sim_err_t *err)
{
    if (err->status != 422) {
        sim_resp_error(c->resp, err->status ? err->status : 400, err->code, err->desc);
        return;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string("RecordInvalid"));
    json_object_object_add(o, "description", json_object_new_string("Record validation errors"));
    json_object *details = json_object_new_object();
    json_object *arr = json_object_new_array();
    json_object *d = json_object_new_object();
    json_object_object_add(d, "description", json_object_new_string(err->desc));
    json_object_object_add(d, "error", json_object_new_string(err->field_code));
    json_object_array_add(arr, d);
    json_object_object_add(details, err->field, arr);
    json_object_object_add(o, "details", details);
    sim_resp_json(c->resp, 422, o);
}

/* Parses the request body as JSON. Returns a new object (caller puts it), or NULL with a
 * 400 answer set. A body that is not JSON-typed is not parsed at all, as in Rails, so the
 * expected root key is then missing. */
static json_object *body_json(ctx_t *c, const char *root)
{
    const char *ct = c->req->content_type;
    char desc[128];
    snprintf(desc, sizeof(desc), "Parameter %s is required", root);
    if (!c->req->body.len || !ct || !strstr(ct, "json")) {
        bad_request(c, "ParameterMissing", desc);
        return NULL;
    }
    json_tokener *tok = json_tokener_new();
    json_object *o = tok ? json_tokener_parse_ex(tok, c->req->body.data, (int)c->req->body.len) : NULL;
    bool complete = tok && json_tokener_get_error(tok) == json_tokener_success &&
                    (size_t)json_tokener_get_parse_end(tok) >= c->req->body.len - 0;
    if (tok)
        json_tokener_free(tok);
    if (!o || !complete) {
        json_object_put(o);
        bad_request(c, "InvalidJSON", "Server could not parse JSON");
        return NULL;
    }
    if (!json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        bad_request(c, "ParameterMissing", desc);
        return NULL;
    }
    return o;
}

/* The root object of a body ({"user": {...}}): lent from doc. */
static json_object *root_obj(ctx_t *c, json_object *doc, const char *root)
{
    json_object *v;
    if (!json_object_object_get_ex(doc, root, &v) || !json_object_is_type(v, json_type_object)) {
        char desc[128];
        snprintf(desc, sizeof(desc), "Parameter %s is required", root);
        bad_request(c, "ParameterMissing", desc);
        return NULL;
    }
    return v;
}

static void respond_user(ctx_t *c, int status, const char *root, const sim_user_t *u)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, root, sim_user_json(u, c->req->host, false));
    sim_resp_json(c->resp, status, o);
}

/* Splits "1,2, 3" into up to max tokens copied into out[max][96]; returns the count or -1. */
static int split_list(const char *s, char out[][96], int max)
{
    int n = 0;
    while (s && *s) {
        while (*s == ' ' || *s == ',')
            s++;
        if (!*s)
            break;
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        while (len && s[len - 1] == ' ')
            len--;
        if (n >= max || len >= 96)
            return -1;
        memcpy(out[n], s, len);
        out[n][len] = '\0';
        n++;
        s = e ? e + 1 : NULL;
    }
    return n;
}

static bool scope_has(const char *scope, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = scope; (p = strstr(p, word)) != NULL; p += wl) {
        bool start = p == scope || p[-1] == ' ';
        bool end = p[wl] == '\0' || p[wl] == ' ';
        if (start && end)
            return true;
    }
    return false;
}

/* ---------- auth ---------- */

static int authenticate(ctx_t *c)
{
    const char *auth = c->req->authorization;
    sim_account_t *acct = c->acct;
    if (auth && !strncmp(auth, "Bearer ", 7)) {
        const char *tok = auth + 7;
        while (*tok == ' ')
            tok++;
        sim_token_t *t = sim_token_by_access(acct, tok);
        if (!t || t->revoked || c->now_ms >= t->access_exp_ms || !acct->owner || !acct->owner->active) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "error", json_object_new_string("invalid_token"));
            json_object_object_add(o, "error_description",
                                   json_object_new_string("The access token provided is expired, revoked, "
                                                          "malformed or invalid for other reasons."));
            sim_resp_json(c->resp, 401, o);
            sim_resp_header(c->resp, "WWW-Authenticate",
                            "Bearer realm=\"Doorkeeper\", error=\"invalid_token\"");
            return -1;
        }
        c->bearer = true;
        sim_strlcpy(c->scope, t->scope, sizeof(c->scope));
        return 0;
    }
    if (auth && !strncmp(auth, "Basic ", 6)) {
        unsigned char dec[512];
        int n = sim_b64_decode(auth + 6, dec, sizeof(dec));
        if (n > 0) {
            char *cred = (char *)dec;
            char *sep = strstr(cred, "/token:");
            if (sep && acct->cfg.token[0] && acct->owner && acct->owner->active &&
                !acct->owner->suspended) {
                *sep = '\0';
                const char *token = sep + 7;
                if (!sim_strcasecmp(cred, acct->cfg.email) && !strcmp(token, acct->cfg.token))
                    return 0;
            }
        }
    }
    sim_resp_text(c->resp, 401, JSON_CT, "{\"error\":\"Couldn't authenticate you\"}");
    sim_resp_header(c->resp, "WWW-Authenticate", "Basic realm=\"Web Password\"");
    return -1;
}

static void forbidden(ctx_t *c)
{
    sim_resp_error(c->resp, 403, "Forbidden",
                   "You do not have access to this page. Please contact the account owner of this "
                   "help desk for further help.");
}

/* OAuth scopes: reads need read (or users:read), writes need write (or users:write). */
static int authorize(ctx_t *c)
{
    if (!c->bearer)
        return 0;
    bool read = !strcmp(c->req->method, "GET");
    bool users = c->route != R_GROUPS_LIST && c->route != R_GROUPS_CREATE && c->route != R_JOB_SHOW &&
                 c->route != R_JOBS_SHOW_MANY && c->route != R_JOBS_LIST;
    bool ok = read ? scope_has(c->scope, "read") || (users && scope_has(c->scope, "users:read"))
                   : scope_has(c->scope, "write") || (users && scope_has(c->scope, "users:write"));
    if (!ok) {
        forbidden(c);
        return -1;
    }
    return 0;
}

/* ---------- faults ---------- */

static void fault_error(sim_account_t *acct, sim_resp_t *resp, int status)
{
    char ra[32];
    switch (status) {
    case 502:
        sim_resp_text(resp, 502, "text/html",
                      "<html><head><title>502 Bad Gateway</title></head><body>"
                      "<center><h1>502 Bad Gateway</h1></center></body></html>\n");
        break;
    case 503:
        sim_resp_error(resp, 503, "DatabaseTimeout", "The database timed out. Please try again.");
        break;
    case 409:
        sim_resp_error(resp, 409, "DatabaseConflict", "Database collision");
        break;
    default:
        sim_resp_error(resp, status, "InternalServerError", "Something went wrong. Please try again.");
        break;
    }
    if (status != 409 && acct->cfg.error_retry_after > 0) {
        snprintf(ra, sizeof(ra), "%lld", (long long)acct->cfg.error_retry_after);
        sim_resp_header(resp, "Retry-After", ra);
    }
}

bool sim_faults_apply(sim_account_t *acct, sim_req_t *req, sim_resp_t *resp)
{
    const sim_config_t *cfg = &acct->cfg;
    /* Scripted answers first: deterministic, consumed in order. */
    for (size_t i = 0; i < acct->nrules; i++) {
        sim_rule_t *r = &acct->rules[i];
        if (strcmp(r->method, "*") && sim_strcasecmp(r->method, req->method))
            continue;
        if (!sim_glob(r->path, req->path))
            continue;
        if (r->action == SIM_ACT_LOSE) {
            /* Handled as usual below; the server drops the answer. */
            resp->lose_answer = true;
            if (--r->remaining <= 0) {
                free(r->body);
                memmove(r, r + 1, (acct->nrules - i - 1) * sizeof(*r));
                acct->nrules--;
            }
            break;
        }
        resp->action = r->action;
        resp->delay_ms = r->latency_ms;
        resp->hang_ms = cfg->hang_ms;
        if (r->action == SIM_ACT_RESPOND) {
            sim_resp_text(resp, r->status, r->ctype[0] ? r->ctype : JSON_CT, r->body ? r->body : "");
            for (int h = 0; h < r->nhdr; h++)
                sim_resp_header(resp, r->hdr_name[h], r->hdr_val[h]);
        }
        if (--r->remaining <= 0) {
            free(r->body);
            memmove(r, r + 1, (acct->nrules - i - 1) * sizeof(*r));
            acct->nrules--;
        }
        return true;
    }
    if (cfg->latency_ms || cfg->latency_jitter_ms)
        resp->delay_ms = cfg->latency_ms +
                         (cfg->latency_jitter_ms ? (int64_t)(sim_rand01(&acct->rng) * (double)(cfg->latency_jitter_ms + 1)) : 0);
    if (!(cfg->drop_rate > 0 || cfg->hang_rate > 0 || cfg->error_rate > 0 || cfg->conflict_rate > 0))
        return false;
    if (!sim_glob(cfg->fault_path, req->path))
        return false;
    double u = sim_rand01(&acct->rng);
    double edge = cfg->drop_rate;
    if (u < edge) {
        resp->action = SIM_ACT_DROP;
        return true;
    }
    edge += cfg->hang_rate;
    if (u < edge) {
        resp->action = SIM_ACT_HANG;
        resp->hang_ms = cfg->hang_ms;
        return true;
    }
    edge += cfg->error_rate;
    if (u < edge && cfg->n_error_statuses > 0) {
        int status = cfg->error_statuses[sim_rand(&acct->rng) % (uint64_t)cfg->n_error_statuses];
        fault_error(acct, resp, status);
        return true;
    }
    edge += cfg->conflict_rate;
    if (u < edge) {
        fault_error(acct, resp, 409);
        return true;
    }
    return false;
}

/* ---------- users: reads ---------- */

typedef struct role_filter_s {
    char roles[3][16];
    int n;
} role_filter_t;

static void add_role(void *arg, const char *val)
{
    role_filter_t *f = arg;
    char list[3][96];
    int n = split_list(val, list, 3);
    for (int i = 0; i < n && f->n < 3; i++)
        sim_strlcpy(f->roles[f->n++], list[i], sizeof(f->roles[0]));
}

static bool role_match(const role_filter_t *f, const sim_user_t *u)
{
    if (!f->n)
        return true;
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->roles[i], u->role))
            return true;
    return false;
}

static int page_size(ctx_t *c, const char *key, int def, int max, int *out)
{
    const char *v = Q(c, key);
    int64_t n = def;
    if (v && (sim_parse_i64(v, &n) != 0 || n < 1)) {
        char desc[128];
        snprintf(desc, sizeof(desc), "%s must be a positive integer", key);
        bad_request(c, "InvalidPaginationParameter", desc);
        return -1;
    }
    if (n > max) {
        char desc[128];
        snprintf(desc, sizeof(desc), "%s must be less than or equal to %d", key, max);
        bad_request(c, "InvalidPaginationParameter", desc);
        return -1;
    }
    *out = (int)n;
    return 0;
}

/* Offset pagination's next_page, previous_page and count. */
static void offset_links(json_object *o, const char *base, const char *suffix, int64_t page,
                         int per_page, bool more, int64_t count)
{
    char url[700];

    if (more) {
        snprintf(url, sizeof(url), "%s%s?page=%lld&per_page=%d", base, suffix, (long long)page + 1,
                 per_page);
        json_object_object_add(o, "next_page", json_object_new_string(url));
    } else {
        json_object_object_add(o, "next_page", NULL);
    }
    if (page > 1) {
        snprintf(url, sizeof(url), "%s%s?page=%lld&per_page=%d", base, suffix, (long long)page - 1,
                 per_page);
        json_object_object_add(o, "previous_page", json_object_new_string(url));
    } else {
        json_object_object_add(o, "previous_page", NULL);
    }
    json_object_object_add(o, "count", json_object_new_int64(count));
}

static void base_url(ctx_t *c, const char *path, char *out, size_t outsz)
{
    snprintf(out, outsz, "http://%s%s", c->req->host, path);
}

/* Offset pagination over a filtered list (users or deleted users). */
static void list_offset(ctx_t *c, const char *root, const char *path, bool deleted, const role_filter_t *f)
{
    int per_page;
    int64_t page = 1;
    if (page_size(c, "per_page", 100, 100, &per_page) != 0)
        return;
    const char *pv = Q(c, "page");
    if (pv && (sim_parse_i64(pv, &page) != 0 || page < 1)) {
        bad_request(c, "InvalidPaginationParameter", "page must be a positive integer");
        return;
    }
    if ((page - 1) * per_page >= 10000) {
        bad_request(c, "InvalidPaginationParameter",
                    "Offset pagination is limited to the first 10000 records. Use cursor based pagination instead.");
        return;
    }
    int64_t skip = (page - 1) * per_page, count = 0;
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < c->acct->nusers; i++) {
        sim_user_t *u = c->acct->users[i];
        if (u->active == deleted || (f && !role_match(f, u)))
            continue;
        if (count >= skip && count < skip + per_page)
            json_object_array_add(arr, sim_user_json(u, c->req->host, false));
        count++;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, root, arr);
    char base[400];
    base_url(c, path, base, sizeof(base));
    offset_links(o, base, ".json", page, per_page, skip + per_page < count, count);
    sim_resp_json(c->resp, 200, o);
}

/* Cursor pagination ordered by id: page[size], page[after], page[before]. */
static void list_cursor(ctx_t *c, const char *root, const char *path, bool deleted, const role_filter_t *f)
{
    int size;
    if (page_size(c, "page[size]", 100, 100, &size) != 0)
        return;
    const char *after = Q(c, "page[after]"), *before = Q(c, "page[before]");
    int64_t cur = 0;
    if ((after && *after && sim_cursor_decode(after, 'u', &cur) != 0) ||
        (before && *before && sim_cursor_decode(before, 'u', &cur) != 0)) {
        bad_request(c, "InvalidPaginationParameter", "page[after] or page[before] is not a valid cursor");
        return;
    }
    bool backwards = before && *before;
    sim_account_t *acct = c->acct;
    sim_user_t **picked = malloc(sizeof(*picked) * (size_t)(size + 1));
    if (!picked) {
        sim_resp_error(c->resp, 500, "InternalServerError", "out of memory");
        return;
    }
    int n = 0;
    bool more = false;
    if (!backwards) {
        for (size_t i = 0; i < acct->nusers; i++) {
            sim_user_t *u = acct->users[i];
            if ((after && *after && u->id <= cur) || u->active == deleted || (f && !role_match(f, u)))
                continue;
            if (n == size) {
                more = true;
                break;
            }
            picked[n++] = u;
        }
    } else {
        for (size_t i = acct->nusers; i-- > 0;) {
            sim_user_t *u = acct->users[i];
            if (u->id >= cur || u->active == deleted || (f && !role_match(f, u)))
                continue;
            if (n == size) {
                more = true;
                break;
            }
            picked[n++] = u;
        }
        for (int i = 0; i < n / 2; i++) {
            sim_user_t *t = picked[i];
            picked[i] = picked[n - 1 - i];
            picked[n - 1 - i] = t;
        }
    }
    json_object *arr = json_object_new_array();
    for (int i = 0; i < n; i++)
        json_object_array_add(arr, sim_user_json(picked[i], c->req->host, false));
    char ac[64] = "", bc[64] = "";
    if (n) {
        sim_cursor_encode('u', picked[n - 1]->id, ac, sizeof(ac));
        sim_cursor_encode('u', picked[0]->id, bc, sizeof(bc));
    }
    free(picked);
    /* has_more refers to the direction of travel. */
    json_object *meta = json_object_new_object();
    json_object_object_add(meta, "has_more", json_object_new_boolean(more));
    json_object_object_add(meta, "after_cursor", n ? json_object_new_string(ac) : NULL);
    json_object_object_add(meta, "before_cursor", n ? json_object_new_string(bc) : NULL);
    json_object *links = json_object_new_object();
    char base[400], url[800], enc[128];
    base_url(c, path, base, sizeof(base));
    char roleq[128] = "";
    for (int i = 0; f && i < f->n; i++) {
        size_t l = strlen(roleq);
        snprintf(roleq + l, sizeof(roleq) - l, "&role%%5B%%5D=%s", f->roles[i]);
    }
    if (n && (backwards || more)) {
        sim_url_encode(ac, enc, sizeof(enc));
        snprintf(url, sizeof(url), "%s.json?page%%5Bafter%%5D=%s&page%%5Bsize%%5D=%d%s", base, enc, size, roleq);
        json_object_object_add(links, "next", json_object_new_string(url));
    } else {
        json_object_object_add(links, "next", NULL);
    }
    if (n && (!backwards ? (after && *after) : more)) {
        sim_url_encode(bc, enc, sizeof(enc));
        snprintf(url, sizeof(url), "%s.json?page%%5Bbefore%%5D=%s&page%%5Bsize%%5D=%d%s", base, enc, size, roleq);
        json_object_object_add(links, "prev", json_object_new_string(url));
    } else {
        json_object_object_add(links, "prev", NULL);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, root, arr);
    json_object_object_add(o, "meta", meta);
    json_object_object_add(o, "links", links);
    sim_resp_json(c->resp, 200, o);
}

static bool wants_cursor(ctx_t *c)
{
    return Q(c, "page[size]") || Q(c, "page[after]") || Q(c, "page[before]");
}

static void users_list(ctx_t *c)
{
    role_filter_t f = {.n = 0};
    c->req->query_each(c->req, "role", add_role, &f);
    c->req->query_each(c->req, "role[]", add_role, &f);
    for (int i = 0; i < f.n; i++) {
        if (strcmp(f.roles[i], "end-user") && strcmp(f.roles[i], "agent") && strcmp(f.roles[i], "admin")) {
            bad_request(c, "InvalidValue", "role must be one of end-user, agent, admin");
            return;
        }
    }
    if (wants_cursor(c))
        list_cursor(c, "users", "/api/v2/users", false, &f);
    else
        list_offset(c, "users", "/api/v2/users", false, &f);
}

static void show_many(ctx_t *c)
{
    static char list[100][96];
    const char *ids = Q(c, "ids"), *exts = Q(c, "external_ids");
    if (!ids && !exts) {
        bad_request(c, "InvalidValue", "ids or external_ids is required");
        return;
    }
    int n = split_list(ids ? ids : exts, list, 100);
    if (n < 0) {
        bad_request(c, "TooManyValues", "Too many values: at most 100 ids or external_ids");
        return;
    }
    json_object *arr = json_object_new_array();
    for (int i = 0; i < n; i++) {
        sim_user_t *u = NULL;
        int64_t id;
        if (ids)
            u = sim_parse_i64(list[i], &id) == 0 ? sim_user_by_id(c->acct, id) : NULL;
        else
            u = sim_user_by_external_id(c->acct, list[i]);
        if (u)
            json_object_array_add(arr, sim_user_json(u, c->req->host, false));
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "users", arr);
    json_object_object_add(o, "next_page", NULL);
    json_object_object_add(o, "previous_page", NULL);
    json_object_object_add(o, "count", json_object_new_int((int)json_object_array_length(arr)));
    sim_resp_json(c->resp, 200, o);
}

static bool contains_ci(const char *hay, const char *needle)
{
    if (!hay)
        return false;
    size_t nl = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < nl && hay[i] && (hay[i] | 32) == (needle[i] | 32))
            i++;
        if (i == nl)
            return true;
    }
    return false;
}

/* Search: query terms "email:x", "external_id:x", "role:agent", "name:x", "type:user", or
 * free text (name or e-mail contains); also the external_id= parameter. Offset pages only. */
static void search(ctx_t *c, bool general)
{
    char email[256] = "", ext[256] = "", role[16] = "", name[128] = "", text[128] = "", type[32] = "";
    const char *extp = Q(c, "external_id"), *query = Q(c, "query");
    if (extp)
        sim_strlcpy(ext, extp, sizeof(ext));
    if (!extp && !query) {
        bad_request(c, "InvalidValue", "query or external_id is required");
        return;
    }
    if (query) {
        char q[512];
        sim_strlcpy(q, query, sizeof(q));
        char *save = NULL;
        for (char *t = strtok_r(q, " +", &save); t; t = strtok_r(NULL, " +", &save)) {
            char *colon = strchr(t, ':');
            char *v = colon ? colon + 1 : t;
            if (*v == '"') {
                v++;
                size_t l = strlen(v);
                if (l && v[l - 1] == '"')
                    v[l - 1] = '\0';
            }
            if (colon) {
                *colon = '\0';
                if (!strcmp(t, "email")) sim_strlcpy(email, v, sizeof(email));
                else if (!strcmp(t, "external_id")) sim_strlcpy(ext, v, sizeof(ext));
                else if (!strcmp(t, "role")) sim_strlcpy(role, v, sizeof(role));
                else if (!strcmp(t, "name")) sim_strlcpy(name, v, sizeof(name));
                else if (!strcmp(t, "type")) sim_strlcpy(type, v, sizeof(type));
            } else {
                sim_strlcpy(text, v, sizeof(text));
            }
        }
    }
    int per_page;
    int64_t page = 1;
    if (page_size(c, "per_page", 100, 100, &per_page) != 0)
        return;
    const char *pv = Q(c, "page");
    if (pv && (sim_parse_i64(pv, &page) != 0 || page < 1)) {
        bad_request(c, "InvalidPaginationParameter", "page must be a positive integer");
        return;
    }
    if ((page - 1) * per_page >= 1000 * 10) {
        bad_request(c, "InvalidPaginationParameter", "Search results are limited to 10000 records");
        return;
    }
    json_object *arr = json_object_new_array();
    int64_t count = 0, skip = (page - 1) * per_page;
    if (general && strcmp(type, "user")) {
        /* The general search finds users only here; other types find nothing. */
    } else if (email[0] || ext[0]) {
        sim_user_t *u = email[0] ? sim_user_by_email(c->acct, email) : sim_user_by_external_id(c->acct, ext);
        if (u && email[0] && ext[0] && (!u->external_id || sim_strcasecmp(u->external_id, ext)))
            u = NULL;
        if (u && (!role[0] || !strcmp(role, u->role)) && skip == 0)
            json_object_array_add(arr, sim_user_json(u, c->req->host, false));
        count = u ? 1 : 0;
    } else {
        for (size_t i = 0; i < c->acct->nusers; i++) {
            sim_user_t *u = c->acct->users[i];
            if (!u->active || (role[0] && strcmp(role, u->role)) || (name[0] && !contains_ci(u->name, name)) ||
                (text[0] && !contains_ci(u->name, text) && !contains_ci(u->email, text)))
                continue;
            if (count >= skip && count < skip + per_page)
                json_object_array_add(arr, sim_user_json(u, c->req->host, false));
            count++;
        }
    }
    json_object *o = json_object_new_object();
    if (general) {
        for (size_t i = 0; i < json_object_array_length(arr); i++)
            json_object_object_add(json_object_array_get_idx(arr, i), "result_type", json_object_new_string("user"));
        json_object_object_add(o, "results", arr);
        json_object_object_add(o, "facets", NULL);
    } else {
        json_object_object_add(o, "users", arr);
    }
    json_object_object_add(o, "next_page", NULL);
    if (skip + per_page < count) {
        char url[1100], base[400], qenc[600];
        base_url(c, general ? "/api/v2/search.json" : "/api/v2/users/search.json", base, sizeof(base));
        sim_url_encode(query ? query : "", qenc, sizeof(qenc));
        snprintf(url, sizeof(url), "%s?page=%lld&per_page=%d&query=%s", base, (long long)page + 1, per_page, qenc);
        json_object_object_add(o, "next_page", json_object_new_string(url));
    }
    json_object_object_add(o, "previous_page", NULL);
    json_object_object_add(o, "count", json_object_new_int64(count));
    sim_resp_json(c->resp, 200, o);
}

/* ---------- users: writes ---------- */

static void user_create(ctx_t *c)
{
    json_object *doc = body_json(c, "user");
    json_object *in = doc ? root_obj(c, doc, "user") : NULL;
    if (in) {
        sim_err_t err = {0};
        sim_user_t *u = sim_user_create(c->acct, in, &err);
        if (!u) {
            record_invalid(c, &err);
        } else {
            char loc[400];
            snprintf(loc, sizeof(loc), "http://%s/api/v2/users/%lld.json", c->req->host, (long long)u->id);
            respond_user(c, 201, "user", u);
            sim_resp_header(c->resp, "Location", loc);
        }
    }
    json_object_put(doc);
}

static void create_or_update(ctx_t *c)
{
    json_object *doc = body_json(c, "user");
    json_object *in = doc ? root_obj(c, doc, "user") : NULL;
    if (!in) {
        json_object_put(doc);
        return;
    }
    json_object *v;
    sim_user_t *u = NULL;
    if (json_object_object_get_ex(in, "external_id", &v) && !json_object_is_type(v, json_type_null))
        u = sim_user_by_external_id(c->acct, json_object_get_string(v));
    if (!u && json_object_object_get_ex(in, "email", &v) && json_object_is_type(v, json_type_string))
        u = sim_user_by_email(c->acct, json_object_get_string(v));
    if (sim_limit_endpoint(c->acct, SIM_EP_USER_WRITE, u, c->resp, c->now_ms) == 0) {
        sim_err_t err = {0};
        if (u) {
            if (sim_user_update(c->acct, u, in, &err) != 0)
                record_invalid(c, &err);
            else
                respond_user(c, 200, "user", u);
        } else {
            u = sim_user_create(c->acct, in, &err);
            if (!u)
                record_invalid(c, &err);
            else
                respond_user(c, 201, "user", u);
        }
    }
    json_object_put(doc);
}

static void user_update(ctx_t *c)
{
    sim_user_t *u = sim_user_by_id(c->acct, c->id1);
    if (!u || !u->active) {
        not_found(c);
        return;
    }
    json_object *doc = body_json(c, "user");
    json_object *in = doc ? root_obj(c, doc, "user") : NULL;
    if (in && sim_limit_endpoint(c->acct, SIM_EP_USER_WRITE, u, c->resp, c->now_ms) == 0) {
        sim_err_t err = {0};
        if (sim_user_update(c->acct, u, in, &err) != 0)
            record_invalid(c, &err);
        else
            respond_user(c, 200, "user", u);
    }
    json_object_put(doc);
}

static void user_delete(ctx_t *c)
{
    sim_user_t *u = sim_user_by_id(c->acct, c->id1);
    if (!u || !u->active) {
        not_found(c);
        return;
    }
    if (u == c->acct->owner) {
        sim_resp_error(c->resp, 403, "Forbidden", "The account owner cannot be deleted");
        return;
    }
    sim_user_soft_delete(c->acct, u);
    respond_user(c, 200, "user", u);
}

static void deleted_show(ctx_t *c, bool purge)
{
    sim_user_t *u = sim_user_by_id(c->acct, c->id1);
    if (!u || u->active) {
        not_found(c);
        return;
    }
    respond_user(c, 200, "deleted_user", u);
    if (purge)
        sim_user_purge(c->acct, u);
}

/* ---------- bulk jobs ---------- */

static void job_headers(ctx_t *c, int64_t active)
{
    if (!c->acct->cfg.limits_enabled || c->acct->cfg.max_jobs <= 0)
        return;
    char buf[96];
    int64_t rem = c->acct->cfg.max_jobs - active;
    snprintf(buf, sizeof(buf), "total=%lld; remaining=%lld; resets=60", (long long)c->acct->cfg.max_jobs,
             (long long)(rem < 0 ? 0 : rem));
    sim_resp_header(c->resp, "zendesk-ratelimit-inflight-jobs", buf);
}

/* Queues a job; takes items and change. */
static void queue_job(ctx_t *c, sim_job_kind_t kind, json_object *items, json_object *change)
{
    sim_account_t *acct = c->acct;
    int active = sim_jobs_active(acct);
    if (acct->cfg.limits_enabled && acct->cfg.max_jobs > 0 && active >= acct->cfg.max_jobs) {
        json_object *o = json_object_new_object();
        char desc[128];
        snprintf(desc, sizeof(desc), "Number of allowed background jobs exceeded. Allowed: %lld",
                 (long long)acct->cfg.max_jobs);
        json_object_object_add(o, "error", json_object_new_string("TooManyJobs"));
        json_object_object_add(o, "description", json_object_new_string(desc));
        json_object *ids = json_object_new_array();
        for (size_t j = 0; j < acct->njobs; j++)
            if (!acct->jobs[j]->completed_ms)
                json_object_array_add(ids, json_object_new_string(acct->jobs[j]->id));
        json_object_object_add(o, "current_job_ids", ids);
        sim_resp_json(c->resp, 429, o);
        job_headers(c, active);
        json_object_put(items);
        json_object_put(change);
        return;
    }
    sim_job_t *job = sim_job_add(acct, kind, items, change);
    if (!job) {
        json_object_put(items);
        json_object_put(change);
        sim_resp_error(c->resp, 500, "InternalServerError", "out of memory");
        return;
    }
    sim_jobs_tick(acct, c->now_ms);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "job_status", sim_job_json(job, acct, c->req->host, c->now_ms));
    sim_resp_json(c->resp, 200, o);
    job_headers(c, sim_jobs_active(acct));
}

static json_object *users_array(ctx_t *c, json_object *doc)
{
    json_object *arr;
    if (!json_object_object_get_ex(doc, "users", &arr) || !json_object_is_type(arr, json_type_array) ||
        json_object_array_length(arr) == 0) {
        bad_request(c, "ParameterMissing", "Parameter users is required");
        return NULL;
    }
    if (json_object_array_length(arr) > 100) {
        bad_request(c, "TooManyValues", "Too many values: at most 100 users per request");
        return NULL;
    }
    return arr;
}

static void bulk_create(ctx_t *c, sim_job_kind_t kind)
{
    if (!c->acct->cfg.bulk_import) {
        forbidden(c);
        return;
    }
    json_object *doc = body_json(c, "users");
    json_object *arr = doc ? users_array(c, doc) : NULL;
    if (arr)
        queue_job(c, kind, json_object_get(arr), NULL);
    json_object_put(doc);
}

/* ?ids= / ?external_ids= into [{"id":..}] / [{"external_id":..}]; NULL with 400 set. */
static json_object *ident_items(ctx_t *c)
{
    static char list[100][96];
    const char *ids = Q(c, "ids"), *exts = Q(c, "external_ids");
    int n = split_list(ids ? ids : exts, list, 100);
    if (n < 0) {
        bad_request(c, "TooManyValues", "Too many values: at most 100 ids or external_ids");
        return NULL;
    }
    if (n == 0) {
        bad_request(c, "ParameterMissing", "Parameter ids or external_ids is required");
        return NULL;
    }
    json_object *items = json_object_new_array();
    for (int i = 0; i < n; i++) {
        json_object *it = json_object_new_object();
        int64_t id;
        if (ids) {
            if (sim_parse_i64(list[i], &id) != 0) {
                json_object_put(it);
                json_object_put(items);
                bad_request(c, "InvalidValue", "ids must be integers");
                return NULL;
            }
            json_object_object_add(it, "id", json_object_new_int64(id));
        } else {
            json_object_object_add(it, "external_id", json_object_new_string(list[i]));
        }
        json_object_array_add(items, it);
    }
    return items;
}

static void update_many(ctx_t *c)
{
    json_object *doc = body_json(c, "user");
    if (!doc)
        return;
    json_object *one;
    if (Q(c, "ids") || Q(c, "external_ids")) {
        one = root_obj(c, doc, "user");
        json_object *items = one ? ident_items(c) : NULL;
        if (items)
            queue_job(c, SIM_JOB_UPDATE, items, json_object_get(one));
    } else {
        json_object *arr = users_array(c, doc);
        if (arr)
            queue_job(c, SIM_JOB_UPDATE, json_object_get(arr), NULL);
    }
    json_object_put(doc);
}

static void destroy_many(ctx_t *c)
{
    json_object *items = ident_items(c);
    if (items)
        queue_job(c, SIM_JOB_DESTROY, items, NULL);
}

static void job_show(ctx_t *c)
{
    sim_job_t *job = sim_job_find(c->acct, c->job_id);
    if (!job) {
        not_found(c);
        return;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "job_status", sim_job_json(job, c->acct, c->req->host, c->now_ms));
    sim_resp_json(c->resp, 200, o);
}

static void jobs_many(ctx_t *c, bool all)
{
    static char list[100][96];
    int n = 0;
    if (!all) {
        n = split_list(Q(c, "ids"), list, 100);
        if (n <= 0) {
            bad_request(c, n < 0 ? "TooManyValues" : "ParameterMissing", "Parameter ids is required (at most 100)");
            return;
        }
    }
    json_object *arr = json_object_new_array();
    if (all) {
        for (size_t j = c->acct->njobs; j-- > 0;)
            json_object_array_add(arr, sim_job_json(c->acct->jobs[j], c->acct, c->req->host, c->now_ms));
    } else {
        for (int i = 0; i < n; i++) {
            sim_job_t *job = sim_job_find(c->acct, list[i]);
            if (job)
                json_object_array_add(arr, sim_job_json(job, c->acct, c->req->host, c->now_ms));
        }
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "job_statuses", arr);
    sim_resp_json(c->resp, 200, o);
}

/* ---------- incremental export ---------- */

static int by_seq(const void *a, const void *b)
{
    const sim_user_t *x = *(sim_user_t *const *)a, *y = *(sim_user_t *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void incremental(ctx_t *c)
{
    sim_account_t *acct = c->acct;
    const char *st = Q(c, "start_time"), *cursor = Q(c, "cursor");
    int per_page;
    if (page_size(c, "per_page", 1000, 1000, &per_page) != 0)
        return;
    int64_t now_s = c->now_ms / 1000, cutoff = now_s - acct->cfg.incremental_withhold_s;
    int64_t after_seq = 0, start = 0;
    bool by_time = false;
    if (cursor && *cursor) {
        if (sim_cursor_decode(cursor, 'i', &after_seq) != 0) {
            bad_request(c, "InvalidValue", "cursor is invalid");
            return;
        }
    } else if (st) {
        if (sim_parse_i64(st, &start) != 0 || start < 0) {
            bad_request(c, "InvalidValue", "start_time must be a Unix epoch time in seconds");
            return;
        }
        if (start > cutoff) {
            bad_request(c, "InvalidValue", "Too recent start_time. Use a start_time older than 1 minute");
            return;
        }
        by_time = true;
    } else {
        bad_request(c, "InvalidValue", "start_time or cursor is required");
        return;
    }
    if (sim_limit_endpoint(acct, SIM_EP_INCREMENTAL, NULL, c->resp, c->now_ms) != 0)
        return;
    sim_user_t **cand = malloc(sizeof(*cand) * (acct->nusers + 1));
    if (!cand) {
        sim_resp_error(c->resp, 500, "InternalServerError", "out of memory");
        return;
    }
    size_t nc = 0;
    uint64_t floor_seq = (uint64_t)after_seq;
    for (size_t i = 0; i < acct->nusers; i++) {
        sim_user_t *u = acct->users[i];
        if (by_time) {
            if (u->updated_at < start) {
                if (u->seq > floor_seq)
                    floor_seq = u->seq;
                continue;
            }
        } else if (u->seq <= (uint64_t)after_seq) {
            continue;
        }
        if (u->updated_at > cutoff)
            continue;   /* the newest minute is withheld */
        cand[nc++] = u;
    }
    qsort(cand, nc, sizeof(*cand), by_seq);
    size_t take = nc < (size_t)per_page ? nc : (size_t)per_page;
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < take; i++)
        json_object_array_add(arr, sim_user_json(cand[i], c->req->host, false));
    uint64_t last = take ? cand[take - 1]->seq : floor_seq;
    bool end = take == nc;
    free(cand);
    char ac[64], url[600], base[400], enc[128];
    sim_cursor_encode('i', (int64_t)last, ac, sizeof(ac));
    sim_url_encode(ac, enc, sizeof(enc));
    base_url(c, "/api/v2/incremental/users/cursor.json", base, sizeof(base));
    snprintf(url, sizeof(url), "%s?cursor=%s", base, enc);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "users", arr);
    json_object_object_add(o, "after_url", json_object_new_string(url));
    json_object_object_add(o, "after_cursor", json_object_new_string(ac));
    json_object_object_add(o, "before_url", NULL);
    json_object_object_add(o, "before_cursor", NULL);
    json_object_object_add(o, "end_of_stream", json_object_new_boolean(end));
    sim_resp_json(c->resp, 200, o);
}

/* ---------- groups and memberships ---------- */

static json_object *membership_json(ctx_t *c, const sim_membership_t *m)
{
    json_object *o = json_object_new_object();
    char url[400], iso[32];
    snprintf(url, sizeof(url), "http://%s/api/v2/group_memberships/%lld.json", c->req->host, (long long)m->id);
    sim_iso8601(m->created_at, iso, sizeof(iso));
    json_object_object_add(o, "id", json_object_new_int64(m->id));
    json_object_object_add(o, "url", json_object_new_string(url));
    json_object_object_add(o, "user_id", json_object_new_int64(m->user_id));
    json_object_object_add(o, "group_id", json_object_new_int64(m->group_id));
    json_object_object_add(o, "default", json_object_new_boolean(m->is_default));
    json_object_object_add(o, "created_at", json_object_new_string(iso));
    json_object_object_add(o, "updated_at", json_object_new_string(iso));
    return o;
}

static sim_membership_t *membership_find(sim_account_t *acct, int64_t id)
{
    for (size_t i = 0; i < acct->nmemberships; i++)
        if (acct->memberships[i].id == id)
            return &acct->memberships[i];
    return NULL;
}

static sim_group_t *group_find(sim_account_t *acct, int64_t id)
{
    for (size_t i = 0; i < acct->ngroups; i++)
        if (acct->groups[i].id == id)
            return &acct->groups[i];
    return NULL;
}

/* Offset (page, per_page) or, with page[size], cursor pagination, at most
 * 100 a page, in id order: "List Memberships" supports both
 * (developer.zendesk.com/api-reference/ticketing/groups/group_memberships/). */
static void memberships_list(ctx_t *c, int64_t user_id)
{
    if (user_id) {
        sim_user_t *u = sim_user_by_id(c->acct, user_id);
        if (!u || !u->active) {
            not_found(c);
            return;
        }
    }
    bool cursor = Q(c, "page[size]") != NULL;
    int size;
    int64_t page = 1, after = 0;
    const char *av = Q(c, "page[after]"), *pv = Q(c, "page");
    if (page_size(c, cursor ? "page[size]" : "per_page", 100, 100, &size) != 0)
        return;
    if (cursor && av && *av && sim_cursor_decode(av, 'm', &after) != 0) {
        bad_request(c, "InvalidPaginationParameter", "page[after] is not a valid cursor");
        return;
    }
    if (!cursor && pv && (sim_parse_i64(pv, &page) != 0 || page < 1)) {
        bad_request(c, "InvalidPaginationParameter", "page must be a positive integer");
        return;
    }
    json_object *arr = json_object_new_array();
    int64_t skip = cursor ? 0 : (page - 1) * size, seen = 0, last_id = 0;
    bool more = false;
    for (size_t i = 0; i < c->acct->nmemberships; i++) {
        const sim_membership_t *m = &c->acct->memberships[i];
        if ((user_id && m->user_id != user_id) || (cursor && m->id <= after))
            continue;
        if (seen++ < skip)
            continue;
        if ((int64_t)json_object_array_length(arr) == size) {
            more = true;
            break;
        }
        json_object_array_add(arr, membership_json(c, m));
        last_id = m->id;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "group_memberships", arr);
    char base[400], url[800], enc[128], cur[64] = "";
    base_url(c, c->req->path, base, sizeof(base));
    if (cursor) {
        json_object *meta = json_object_new_object(), *links = json_object_new_object();
        if (last_id)
            sim_cursor_encode('m', last_id, cur, sizeof(cur));
        json_object_object_add(meta, "has_more", json_object_new_boolean(more));
        json_object_object_add(meta, "after_cursor", last_id ? json_object_new_string(cur) : NULL);
        json_object_object_add(meta, "before_cursor", NULL);
        if (more) {
            sim_url_encode(cur, enc, sizeof(enc));
            snprintf(url, sizeof(url), "%s?page%%5Bafter%%5D=%s&page%%5Bsize%%5D=%d", base, enc, size);
            json_object_object_add(links, "next", json_object_new_string(url));
        } else {
            json_object_object_add(links, "next", NULL);
        }
        json_object_object_add(links, "prev", NULL);
        json_object_object_add(o, "meta", meta);
        json_object_object_add(o, "links", links);
    } else {
        int64_t count = 0;
        for (size_t i = 0; i < c->acct->nmemberships; i++)
            count += !user_id || c->acct->memberships[i].user_id == user_id;
        offset_links(o, base, "", page, size, more, count);
    }
    sim_resp_json(c->resp, 200, o);
}

static void membership_create(ctx_t *c, int64_t user_id)
{
    json_object *doc = body_json(c, "group_membership");
    json_object *in = doc ? root_obj(c, doc, "group_membership") : NULL;
    if (!in) {
        json_object_put(doc);
        return;
    }
    json_object *v;
    if (!user_id && json_object_object_get_ex(in, "user_id", &v))
        user_id = json_object_get_int64(v);
    int64_t group_id = json_object_object_get_ex(in, "group_id", &v) ? json_object_get_int64(v) : 0;
    json_object_put(doc);
    sim_user_t *u = sim_user_by_id(c->acct, user_id);
    sim_err_t err = {0};
    if (!u || !u->active) {
        not_found(c);
        return;
    }
    if (!group_find(c->acct, group_id)) {
        snprintf(err.desc, sizeof(err.desc), "Group: cannot be blank");
        snprintf(err.field, sizeof(err.field), "group");
        snprintf(err.field_code, sizeof(err.field_code), "BlankValue");
        err.status = 422;
        record_invalid(c, &err);
        return;
    }
    if (!strcmp(u->role, "end-user")) {
        /* Only agents can be members of groups. */
        snprintf(err.desc, sizeof(err.desc), "User: %s is not an agent", u->name ? u->name : "");
        snprintf(err.field, sizeof(err.field), "user_id");
        snprintf(err.field_code, sizeof(err.field_code), "InvalidValue");
        err.status = 422;
        record_invalid(c, &err);
        return;
    }
    bool first = true;
    for (size_t i = 0; i < c->acct->nmemberships; i++) {
        sim_membership_t *m = &c->acct->memberships[i];
        if (m->user_id == user_id && m->group_id == group_id) {
            snprintf(err.desc, sizeof(err.desc), "User: is already a member of this group");
            snprintf(err.field, sizeof(err.field), "user_id");
            snprintf(err.field_code, sizeof(err.field_code), "DuplicateValue");
            err.status = 422;
            record_invalid(c, &err);
            return;
        }
        if (m->user_id == user_id)
            first = false;
    }
    sim_membership_t *n = realloc(c->acct->memberships, (c->acct->nmemberships + 1) * sizeof(*n));
    if (!n) {
        sim_resp_error(c->resp, 500, "InternalServerError", "out of memory");
        return;
    }
    c->acct->memberships = n;
    sim_membership_t *m = &n[c->acct->nmemberships++];
    m->id = c->acct->next_aux_id++;
    m->user_id = user_id;
    m->group_id = group_id;
    m->is_default = first;
    m->created_at = c->now_ms / 1000;
    if (first)
        u->default_group_id = group_id;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "group_membership", membership_json(c, m));
    sim_resp_json(c->resp, 201, o);
}

static void membership_show(ctx_t *c, int64_t user_id, int64_t id, bool del)
{
    sim_membership_t *m = membership_find(c->acct, id);
    if (!m || (user_id && m->user_id != user_id)) {
        not_found(c);
        return;
    }
    if (!del) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "group_membership", membership_json(c, m));
        sim_resp_json(c->resp, 200, o);
        return;
    }
    sim_user_t *u = sim_user_by_id(c->acct, m->user_id);
    if (u && u->default_group_id == m->group_id)
        u->default_group_id = 0;
    size_t i = (size_t)(m - c->acct->memberships);
    memmove(m, m + 1, (c->acct->nmemberships - i - 1) * sizeof(*m));
    c->acct->nmemberships--;
    sim_resp_text(c->resp, 204, JSON_CT, NULL);
}

static void groups(ctx_t *c, bool create)
{
    if (create) {
        json_object *doc = body_json(c, "group");
        json_object *in = doc ? root_obj(c, doc, "group") : NULL;
        json_object *v;
        if (in) {
            if (!json_object_object_get_ex(in, "name", &v) || !json_object_is_type(v, json_type_string)) {
                sim_err_t err = {.status = 422};
                snprintf(err.desc, sizeof(err.desc), "Name: cannot be blank");
                snprintf(err.field, sizeof(err.field), "name");
                snprintf(err.field_code, sizeof(err.field_code), "BlankValue");
                record_invalid(c, &err);
            } else {
                sim_group_t *g = realloc(c->acct->groups, (c->acct->ngroups + 1) * sizeof(*g));
                if (g) {
                    c->acct->groups = g;
                    sim_group_t *ng = &g[c->acct->ngroups++];
                    ng->id = c->acct->next_aux_id++;
                    sim_strlcpy(ng->name, json_object_get_string(v), sizeof(ng->name));
                    ng->created_at = c->now_ms / 1000;
                }
            }
        }
        json_object_put(doc);
        if (c->resp->status)
            return;
    }
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < c->acct->ngroups; i++) {
        sim_group_t *g = &c->acct->groups[i];
        json_object *o = json_object_new_object();
        char iso[32];
        sim_iso8601(g->created_at, iso, sizeof(iso));
        json_object_object_add(o, "id", json_object_new_int64(g->id));
        json_object_object_add(o, "name", json_object_new_string(g->name));
        json_object_object_add(o, "deleted", json_object_new_boolean(0));
        json_object_object_add(o, "created_at", json_object_new_string(iso));
        json_object_object_add(o, "updated_at", json_object_new_string(iso));
        if (create && i + 1 == c->acct->ngroups) {
            json_object *w = json_object_new_object();
            json_object_object_add(w, "group", o);
            json_object_put(arr);
            sim_resp_json(c->resp, 201, w);
            return;
        }
        json_object_array_add(arr, o);
    }
    json_object *w = json_object_new_object();
    json_object_object_add(w, "groups", arr);
    json_object_object_add(w, "count", json_object_new_int((int)c->acct->ngroups));
    json_object_object_add(w, "next_page", NULL);
    json_object_object_add(w, "previous_page", NULL);
    sim_resp_json(c->resp, 200, w);
}

/* ---------- OAuth ---------- */

static void oauth_error(ctx_t *c, int status, const char *code, const char *desc)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string(code));
    json_object_object_add(o, "error_description", json_object_new_string(desc));
    sim_resp_json(c->resp, status, o);
}

/* application/x-www-form-urlencoded into a JSON object of strings. */
static json_object *form_json(const char *body)
{
    json_object *o = json_object_new_object();
    char *copy = strdup(body), *save = NULL;
    for (char *kv = copy ? strtok_r(copy, "&", &save) : NULL; kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            continue;
        *eq = '\0';
        char *v = eq + 1, *w = v;
        for (char *r = v; *r; r++) {
            if (*r == '+') {
                *w++ = ' ';
            } else if (*r == '%' && r[1] && r[2]) {
                char hx[3] = {r[1], r[2], 0};
                *w++ = (char)strtol(hx, NULL, 16);
                r += 2;
            } else {
                *w++ = *r;
            }
        }
        *w = '\0';
        json_object_object_add(o, kv, json_object_new_string(v));
    }
    free(copy);
    return o;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && !json_object_is_type(v, json_type_null)
               ? json_object_get_string(v) : NULL;
}

static void oauth_tokens(ctx_t *c)
{
    sim_account_t *acct = c->acct;
    json_object *doc;
    const char *ct = c->req->content_type;
    if (ct && strstr(ct, "x-www-form-urlencoded"))
        doc = form_json(c->req->body.data ? c->req->body.data : "");
    else if (!(doc = body_json(c, "grant_type")))
        return;
    const char *grant = jstr(doc, "grant_type"), *cid = jstr(doc, "client_id"),
               *secret = jstr(doc, "client_secret"), *scope = jstr(doc, "scope");
    const char *exp = jstr(doc, "expires_in");
    int64_t ttl = acct->cfg.token_ttl, e;
    if (!grant) {
        oauth_error(c, 400, "invalid_request", "The request is missing a required parameter: grant_type.");
    } else if (!acct->cfg.client_id[0] || !cid || !secret || strcmp(cid, acct->cfg.client_id) ||
               strcmp(secret, acct->cfg.client_secret)) {
        oauth_error(c, 401, "invalid_client",
                    "Client authentication failed due to unknown client, no client authentication "
                    "included, or unsupported authentication method.");
    } else if (exp && (sim_parse_i64(exp, &e) != 0 || e <= 300 || e >= 172800)) {
        oauth_error(c, 400, "invalid_request", "expires_in must be between 300 and 172800 seconds.");
    } else if (!strcmp(grant, "client_credentials") || !strcmp(grant, "refresh_token")) {
        if (exp)
            ttl = e;
        sim_token_t *old = NULL;
        if (!strcmp(grant, "refresh_token")) {
            const char *rt = jstr(doc, "refresh_token");
            old = rt ? sim_token_by_refresh(acct, rt) : NULL;
            if (!old || old->revoked || c->now_ms >= old->refresh_exp_ms) {
                oauth_error(c, 400, "invalid_grant",
                            "The provided authorization grant is invalid, expired, revoked, does not match "
                            "the redirection URI used in the authorization request, or was issued to "
                            "another client.");
                json_object_put(doc);
                return;
            }
        }
        char sc[128];
        sim_strlcpy(sc, scope ? scope : old ? old->scope : "read write", sizeof(sc));
        char words[8][96];
        char scopy[128];
        sim_strlcpy(scopy, sc, sizeof(scopy));
        for (char *p = scopy; *p; p++)
            if (*p == ' ')
                *p = ',';
        int nw = split_list(scopy, words, 8);
        bool valid = nw > 0;
        for (int i = 0; i < nw; i++) {
            static const char *const known[] = {"read", "write", "users:read", "users:write",
                                                "tickets:read", "tickets:write", "impersonate",
                                                "organizations:read", "organizations:write"};
            bool k = false;
            for (size_t j = 0; j < sizeof(known) / sizeof(known[0]); j++)
                k = k || !strcmp(words[i], known[j]);
            valid = valid && k;
        }
        if (!valid) {
            oauth_error(c, 400, "invalid_scope",
                        "The requested scope is invalid, unknown, or malformed.");
        } else {
            if (old) {
                /* Rotation: the old pair dies with this refresh. */
                old->revoked = true;
            }
            sim_token_t *t = sim_token_issue(acct, sc, ttl);
            if (!t) {
                sim_resp_error(c->resp, 500, "InternalServerError", "out of memory");
            } else {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "access_token", json_object_new_string(t->access));
                json_object_object_add(o, "token_type", json_object_new_string("bearer"));
                json_object_object_add(o, "scope", json_object_new_string(t->scope));
                json_object_object_add(o, "expires_in", json_object_new_int64(ttl));
                json_object_object_add(o, "refresh_token", json_object_new_string(t->refresh));
                json_object_object_add(o, "refresh_token_expires_in", json_object_new_int64(acct->cfg.refresh_ttl));
                sim_resp_json(c->resp, 201, o);
                sim_resp_header(c->resp, "Cache-Control", "no-store");
            }
        }
    } else if (!strcmp(grant, "authorization_code")) {
        oauth_error(c, 400, "invalid_grant",
                    "The provided authorization grant is invalid, expired, revoked, does not match the "
                    "redirection URI used in the authorization request, or was issued to another client.");
    } else {
        oauth_error(c, 400, "unsupported_grant_type",
                    "The authorization grant type is not supported by the authorization server.");
    }
    json_object_put(doc);
}

/* ---------- dispatch ---------- */

static void dispatch(ctx_t *c)
{
    switch (c->route) {
    case R_USERS_LIST: users_list(c); break;
    case R_USERS_CREATE: user_create(c); break;
    case R_ME:
        if (c->acct->owner)
            respond_user(c, 200, "user", c->acct->owner);
        else
            not_found(c);
        break;
    case R_SHOW_MANY: show_many(c); break;
    case R_SEARCH: search(c, false); break;
    case R_SEARCH_ALL: search(c, true); break;
    case R_CREATE_OR_UPDATE: create_or_update(c); break;
    case R_CREATE_MANY: bulk_create(c, SIM_JOB_CREATE); break;
    case R_COU_MANY: bulk_create(c, SIM_JOB_CREATE_OR_UPDATE); break;
    case R_UPDATE_MANY: update_many(c); break;
    case R_DESTROY_MANY: destroy_many(c); break;
    case R_USER_SHOW: {
        sim_user_t *u = sim_user_by_id(c->acct, c->id1);
        if (u)
            respond_user(c, 200, "user", u);
        else
            not_found(c);
        break;
    }
    case R_USER_UPDATE: user_update(c); break;
    case R_USER_DELETE: user_delete(c); break;
    case R_USER_GM_LIST: memberships_list(c, c->id1); break;
    case R_USER_GM_CREATE: membership_create(c, c->id1); break;
    case R_USER_GM_SHOW: membership_show(c, c->id1, c->id2, false); break;
    case R_USER_GM_DELETE: membership_show(c, c->id1, c->id2, true); break;
    case R_GM_LIST: memberships_list(c, 0); break;
    case R_GM_CREATE: membership_create(c, 0); break;
    case R_GM_SHOW: membership_show(c, 0, c->id1, false); break;
    case R_GM_DELETE: membership_show(c, 0, c->id1, true); break;
    case R_GROUPS_LIST: groups(c, false); break;
    case R_GROUPS_CREATE: groups(c, true); break;
    case R_DELETED_LIST:
        if (wants_cursor(c))
            list_cursor(c, "deleted_users", "/api/v2/deleted_users", true, NULL);
        else
            list_offset(c, "deleted_users", "/api/v2/deleted_users", true, NULL);
        break;
    case R_DELETED_SHOW: deleted_show(c, false); break;
    case R_DELETED_DELETE: deleted_show(c, true); break;
    case R_JOB_SHOW: job_show(c); break;
    case R_JOBS_SHOW_MANY: jobs_many(c, false); break;
    case R_JOBS_LIST: jobs_many(c, true); break;
    case R_INCREMENTAL: incremental(c); break;
    case R_OAUTH_TOKENS: oauth_tokens(c); break;
    case R_NONE:
        sim_resp_error(c->resp, 404, "InvalidEndpoint", "Not found");
        break;
    }
}

const char *sim_api_handle(sim_account_t *acct, sim_req_t *req, sim_resp_t *resp, int64_t now_ms)
{
    ctx_t c = {.acct = acct, .req = req, .resp = resp, .now_ms = now_ms};
    route(&c);
    sim_jobs_tick(acct, now_ms);
    if (sim_faults_apply(acct, req, resp))
        return c.label;
    if (req->too_large) {
        sim_resp_text(resp, 413, "text/html",
                      "<html><head><title>413 Request Entity Too Large</title></head><body>"
                      "<center><h1>413 Request Entity Too Large</h1></center></body></html>\n");
        return c.label;
    }
    if (c.route == R_OAUTH_TOKENS) {
        dispatch(&c);
        return c.label;
    }
    if (c.route == R_NONE) {
        /* Zendesk answers unknown endpoints before it looks at credentials. */
        dispatch(&c);
        return c.label;
    }
    if (authenticate(&c) != 0 || authorize(&c) != 0)
        return c.label;
    if (sim_limit_account(acct, resp, now_ms) != 0)
        return c.label;
    dispatch(&c);
    return c.label;
}

/* The bulk path. When at least worker.bulk_min_items planned writes of one
 * kind wait for a tenant, up to 100 of them go to Zendesk as one background
 * job: creates into create_or_update_many, updates (movers, leavers'
 * downgrade and suspend) into update_many, deletes into destroy_many. Open
 * jobs are polled together through job_statuses; each item's result is
 * mapped back to its event, which then ends as it would after a single call
 * (group memberships, result). Events stay uncommitted until then, so a job
 * lost to a restart is simply replayed: every write is idempotent.
 *
 * Single calls go on beside it: below the threshold, when every job slot is
 * taken, and for a tenant whose account refuses bulk import (403 on the
 * create endpoint), which is said once in the log and in a metric and tried
 * again after worker.bulk_refused_retry_ms. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "zw/log.h"
#include "zw/retry.h"

#include "worker_internal.h"

#define POLL_IDS_MAX 100
#define POLL_URL_MAX 4000
#define LOST_AFTER_POLLS 3         /* polls in a row that do not list a job */
#define TOO_MANY_JOBS_WAIT_MS 5000 /* when Zendesk does not say when a slot frees */
#define JOBS_HEADER_WAIT_MAX_MS 60000

static const char *const OP_NAMES[N_BULK_OPS] = {"none", "create_or_update", "update", "destroy"};

bulk_op_t zw_bulk_op_of(const job_t *job)
{
    if (!job->tenant || job->w->cfg->worker.bulk_min_items == 0 || job->tenant->bulk_off ||
        job->no_bulk || job->is_sync || !job->lookup_done || job->group_phase)
        return BULK_NONE;
    switch (job->plan.step) {
    case ZW_STEP_CREATE_OR_UPDATE:
        return job->tenant->bulk_create_refused ? BULK_NONE : BULK_CREATE_OR_UPDATE;
    case ZW_STEP_UPDATE:
        return BULK_UPDATE;
    case ZW_STEP_DELETE:
        return BULK_DESTROY;
    default:
        return BULK_NONE;
    }
}

void zw_bulk_count(tenant_t *t, job_t *job, int delta)
{
    bulk_op_t op = job->bulk_op;

    t->bulk_waiting[op] += delta;
    /* The first write of a kind to wait gives the others a moment to join it. */
    if (op != BULK_NONE && delta > 0 && t->bulk_waiting[op] == 1)
        t->bulk_ready_at[op] = zw_loop_now_ms() + t->w->cfg->worker.bulk_linger_ms;
}

/* After bulk create is refused or allowed again: what waits, by op. */
static void recount(tenant_t *t)
{
    memset(t->bulk_waiting, 0, sizeof(t->bulk_waiting));
    for (int lane = 0; lane < N_LANES; lane++) {
        for (job_t *job = t->lane_head[lane]; job; job = job->lane_next) {
            job->bulk_op = zw_bulk_op_of(job);
            zw_bulk_count(t, job, 1);
        }
    }
}

/* Job slots this replica may use: the account's cap, shared like the budget. */
static int job_slots(const tenant_t *t)
{
    int slots = (int)(t->cfg->max_jobs * t->w->share);

    return slots < 1 ? 1 : slots;
}

static bool has_open_job(const tenant_t *t)
{
    for (const bulk_t *b = t->bulk_head; b; b = b->next)
        if (b->zid[0])
            return true;
    return false;
}

/* Unlinks b from its tenant and frees it; its events are no longer in it. */
static void bulk_free(bulk_t *b)
{
    tenant_t *t = b->tenant;

    if (b->prev)
        b->prev->next = b->next;
    else
        t->bulk_head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    t->n_bulk--;
    for (size_t i = 0; i < b->n; i++)
        if (b->jobs[i])
            b->jobs[i]->bulk = NULL;
    free(b);
}

/* Moves b's live events into out (returns how many) and frees b. */
static size_t bulk_take(bulk_t *b, job_t **out)
{
    size_t n = 0;

    for (size_t i = 0; i < b->n; i++) {
        if (b->jobs[i]) {
            out[n++] = b->jobs[i];
            b->jobs[i]->bulk = NULL;
            b->jobs[i] = NULL;
        }
    }
    bulk_free(b);
    return n;
}

void zw_bulk_forget(job_t *job)
{
    bulk_t *b = job->bulk;

    if (b && (size_t)job->bulk_idx < b->n && b->jobs[job->bulk_idx] == job)
        b->jobs[job->bulk_idx] = NULL;
    job->bulk = NULL;
}

/* Whether a space-separated OAuth scope holds word. */
static bool scope_has(const char *scope, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = scope; p && *p;) {
        size_t len = strcspn(p, " ");
        if (len == n && strncmp(p, word, n) == 0)
            return true;
        p += len;
        p += strspn(p, " ");
    }
    return false;
}

void zw_bulk_setup(tenant_t *t)
{
    /* Job statuses are no users resource: "users:read" does not show them,
     * and jobs that cannot be polled are no use. */
    if (t->w->cfg->worker.bulk_min_items == 0 ||
        t->cfg->auth_type != ZW_AUTH_OAUTH_CLIENT_CREDENTIALS || scope_has(t->cfg->scope, "read"))
        return;
    t->bulk_off = true;
    t->bulk_off_retry_at = 0;
    ZW_LOG(ZW_LOG_WARN,
           "bulk jobs off for this tenant: its OAuth scope lacks 'read', which job statuses "
           "need; writing one user at a time",
           ZW_LF_STR("tenant", t->cfg->subdomain), ZW_LF_STR("scope", t->cfg->scope));
}

void zw_bulk_cleanup(tenant_t *t)
{
    while (t->bulk_head)
        bulk_free(t->bulk_head);
}

/* The "user" object of an event's planned write; a new reference. */
static json_object *plan_user(const job_t *job)
{
    json_object *root = job->plan.body ? json_tokener_parse(job->plan.body) : NULL, *user;

    if (!root || !json_object_object_get_ex(root, "user", &user) ||
        !json_object_is_type(user, json_type_object)) {
        json_object_put(root);
        return NULL;
    }
    json_object_get(user);
    json_object_put(root);
    return user;
}

/* At most one event per person in a job. */
static bool in_batch(const bulk_t *b, const job_t *job)
{
    for (size_t i = 0; i < b->n; i++) {
        if (strcasecmp(b->jobs[i]->ev.person.external_id, job->ev.person.external_id) == 0)
            return true;
        if (job->plan.user_id > 0 && b->jobs[i]->plan.user_id == job->plan.user_id)
            return true;
    }
    return false;
}

/* Appends s to a comma-separated list in buf. */
static void append(char *buf, size_t cap, size_t *len, bool first, const char *s)
{
    if (*len < cap)
        *len += (size_t)snprintf(buf + *len, cap - *len, "%s%s", first ? "" : ",", s);
}

/* Takes up to 100 waiting events of op from their lane into one *_many
 * request. Returns false when none could go. */
static bool bulk_send(tenant_t *t, bulk_op_t op)
{
    worker_t *w = t->w;
    int lane = op == BULK_DESTROY ? LANE_READ : LANE_WRITE;
    bulk_t *b = calloc(1, sizeof(*b));
    json_object *items = json_object_new_array(), *body = NULL;
    char *change = NULL, path[BULK_MAX_ITEMS * 24 + 64], errstr[256];
    const char *method = op == BULK_CREATE_OR_UPDATE ? "POST" : op == BULK_UPDATE ? "PUT" : "DELETE";
    bool same = true; /* every update carries the same change */
    size_t len = 0;
    job_t *job, *prev = NULL, *next;
    zw_http_t *req;

    if (!b || !items) {
        free(b);
        json_object_put(items);
        return false;
    }
    b->kind = OWNER_BULK;
    b->tenant = t;
    b->op = op;
    for (job = t->lane_head[lane]; job && b->n < BULK_MAX_ITEMS; job = next) {
        json_object *user = NULL;

        next = job->lane_next;
        if (job->bulk_op != op || in_batch(b, job)) {
            prev = job;
            continue;
        }
        if (op != BULK_DESTROY && !(user = plan_user(job))) {
            /* Cannot be itemised (out of memory): a single call then. */
            zw_bulk_count(t, job, -1);
            job->no_bulk = true;
            job->bulk_op = BULK_NONE;
            zw_bulk_count(t, job, 1);
            prev = job;
            continue;
        }
        if (op == BULK_UPDATE) {
            const char *s = json_object_to_json_string_ext(user, JSON_C_TO_STRING_PLAIN);
            if (!change)
                change = strdup(s);
            else if (strcmp(change, s) != 0)
                same = false;
            json_object_object_add(user, "id", json_object_new_int64(job->plan.user_id));
        }
        if (user)
            json_object_array_add(items, user);
        wk_lane_unlink(t, job, prev);
        job->bulk = b;
        job->bulk_idx = (int)b->n;
        b->jobs[b->n++] = job;
    }
    if (b->n == 0 || (op == BULK_UPDATE && !change)) {
        /* Nothing could be taken (or out of memory): the events stay single. */
        for (size_t i = 0; i < b->n; i++) {
            b->jobs[i]->bulk = NULL;
            b->jobs[i]->no_bulk = true;
            wk_job_submit(b->jobs[i]);
        }
        json_object_put(items);
        free(change);
        free(b);
        return false;
    }

    if (op == BULK_CREATE_OR_UPDATE) {
        len = (size_t)snprintf(path, sizeof(path), "/api/v2/users/create_or_update_many");
        body = json_object_new_object();
        json_object_object_add(body, "users", json_object_get(items));
    } else if (op == BULK_UPDATE && !same) {
        len = (size_t)snprintf(path, sizeof(path), "/api/v2/users/update_many");
        body = json_object_new_object();
        json_object_object_add(body, "users", json_object_get(items));
    } else {
        /* One change for many ids (leavers: downgrade and suspend), or deletes. */
        len = (size_t)snprintf(path, sizeof(path), "/api/v2/users/%s?ids=",
                               op == BULK_UPDATE ? "update_many" : "destroy_many");
        for (size_t i = 0; i < b->n; i++) {
            char id[24];
            snprintf(id, sizeof(id), "%lld", (long long)b->jobs[i]->plan.user_id);
            append(path, sizeof(path), &len, i == 0, id);
        }
        if (op == BULK_UPDATE) {
            body = json_object_new_object();
            json_object_object_add(body, "user", json_tokener_parse(change));
        }
    }
    json_object_put(items);
    free(change);
    req = zw_http_new(&w->http, t->cfg->subdomain, method, path,
                      body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
                                                                      JSON_C_TO_STRING_NOSLASHESCAPE)
                           : NULL,
                      t->authorization, ZW_ENDPOINT_BULK, b, errstr, sizeof(errstr));
    json_object_put(body);
    b->opened_ms = zw_loop_now_ms();
    b->next = t->bulk_head;
    if (t->bulk_head)
        t->bulk_head->prev = b;
    t->bulk_head = b;
    t->n_bulk++;
    if (!req || zw_loop_http_start(w->loop, req) != 0) {
        job_t *jobs[BULK_MAX_ITEMS];
        size_t n;

        zw_http_destroy(req);
        n = bulk_take(b, jobs);
        for (size_t i = 0; i < n; i++) {
            jobs[i]->no_bulk = true;
            wk_job_submit(jobs[i]);
        }
        return false;
    }
    w->stats.http_requests++;
    b->token_gen = t->token_gen;
    for (size_t i = 0; i < b->n; i++) {
        b->jobs[i]->token_gen = t->token_gen;
        if (b->jobs[i]->attempts == 0)
            b->jobs[i]->attempts = 1;
    }
    ZW_LOG(ZW_LOG_DEBUG, "bulk job submitted", ZW_LF_STR("tenant", t->cfg->subdomain),
           ZW_LF_STR("op", OP_NAMES[op]), ZW_LF_INT("items", b->n));
    return true;
}

/* Asks for the status of every open job (up to 100) in one request. */
static void send_poll(tenant_t *t)
{
    worker_t *w = t->w;
    char url[POLL_URL_MAX + 200], errstr[256];
    size_t len = 0, n = 0;
    zw_http_t *req;

    for (bulk_t *b = t->bulk_head; b && n < POLL_IDS_MAX; b = b->next) {
        b->polled = false;
        if (b->zid[0] && len + strlen(b->zid) + 1 < POLL_URL_MAX) {
            b->polled = true;
            n++;
        }
    }
    if (n == 1) {
        for (bulk_t *b = t->bulk_head; b; b = b->next)
            if (b->polled)
                len = (size_t)snprintf(url, sizeof(url), "/api/v2/job_statuses/%s", b->zid);
    } else {
        bool first = true;
        len = (size_t)snprintf(url, sizeof(url), "/api/v2/job_statuses/show_many?ids=");
        for (bulk_t *b = t->bulk_head; b; b = b->next) {
            if (b->polled) {
                append(url, sizeof(url), &len, first, b->zid);
                first = false;
            }
        }
    }
    req = zw_http_new(&w->http, t->cfg->subdomain, "GET", url, NULL, t->authorization,
                      ZW_ENDPOINT_BULK, &t->poll, errstr, sizeof(errstr));
    if (!req || zw_loop_http_start(w->loop, req) != 0) {
        zw_http_destroy(req);
        t->poll_due = zw_loop_now_ms() + w->cfg->worker.bulk_poll_ms;
        return;
    }
    w->stats.http_requests++;
    t->poll_in_flight = true;
    t->poll_token_gen = t->token_gen;
}

/* Whether a bulk job of op could go now, budget aside. */
/* Until an account has accepted a bulk create, one probes it at a time: a
 * burst must not send twenty to learn once that bulk import is off. */
static bool create_probe_in_flight(const tenant_t *t)
{
    if (t->bulk_create_proven)
        return false;
    for (const bulk_t *b = t->bulk_head; b; b = b->next)
        if (b->op == BULK_CREATE_OR_UPDATE && !b->zid[0])
            return true;
    return false;
}

static bool op_can_go(const tenant_t *t, bulk_op_t op, int64_t now)
{
    int min = t->w->cfg->worker.bulk_min_items;

    if (op == BULK_CREATE_OR_UPDATE && create_probe_in_flight(t))
        return false;

    /* Enough work counts the events still being looked up: their writes
     * are on their way. */
    return op != BULK_NONE && min > 0 && t->bulk_waiting[op] > 0 &&
           t->bulk_waiting[op] + t->n_looking >= min && t->n_bulk < job_slots(t) &&
           now >= t->bulk_blocked_until;
}

bool zw_bulk_holds(const tenant_t *t, const job_t *job)
{
    return op_can_go(t, job->bulk_op, zw_loop_now_ms());
}

int zw_bulk_pump(tenant_t *t, int64_t now)
{
    const zw_config_t *c = t->w->cfg;
    int min = c->worker.bulk_min_items;
    bulk_op_t op = BULK_NONE;
    int64_t wait;

    if (!t->poll_in_flight && has_open_job(t)) {
        if (now >= t->poll_due) {
            wait = zw_ratelimit_take(t->budget, now);
            if (wait > 0) {
                wk_tenant_wake_in(t, wait);
                return -1;
            }
            send_poll(t);
            return t->poll_in_flight ? 1 : 0;
        }
        wk_tenant_wake_in(t, t->poll_due - now);
    }
    if (min == 0)
        return 0;
    if (t->bulk_create_refused && t->bulk_create_retry_at && now >= t->bulk_create_retry_at) {
        t->bulk_create_refused = false;
        recount(t);
        ZW_LOG(ZW_LOG_INFO, "trying bulk create again", ZW_LF_STR("tenant", t->cfg->subdomain));
    }
    if (t->bulk_off && t->bulk_off_retry_at && now >= t->bulk_off_retry_at) {
        t->bulk_off = false;
        recount(t);
        ZW_LOG(ZW_LOG_INFO, "trying bulk jobs again", ZW_LF_STR("tenant", t->cfg->subdomain));
    }
    if (now < t->bulk_blocked_until) {
        wk_tenant_wake_in(t, t->bulk_blocked_until - now);
        return 0; /* single calls go on meanwhile */
    }
    for (int k = 0; k < N_BULK_OPS - 1 && op == BULK_NONE; k++) {
        bulk_op_t o = (bulk_op_t)((t->bulk_next_op + k) % (N_BULK_OPS - 1) + 1);

        if (!op_can_go(t, o, now))
            continue;
        if (t->bulk_waiting[o] < BULK_MAX_ITEMS && now < t->bulk_ready_at[o]) {
            wk_tenant_wake_in(t, t->bulk_ready_at[o] - now); /* lingering for more */
            continue;
        }
        op = o;
        t->bulk_next_op = o % (N_BULK_OPS - 1);
    }
    if (op == BULK_NONE)
        return 0;
    wait = zw_ratelimit_take(t->budget, now);
    if (wait > 0) {
        wk_tenant_wake_in(t, wait);
        return -1;
    }
    if (!bulk_send(t, op)) {
        zw_ratelimit_refund(t->budget);
        return 0;
    }
    return 1;
}

/* The job cap's header: none left means no submission until one of ours
 * completes or the header's reset passes. */
static void observe_jobs_header(tenant_t *t, const zw_http_t *req, int64_t now)
{
    if (req->jobs_remaining != 0)
        return;
    t->bulk_wait_completion = true;
    t->bulk_blocked_until =
        now + (req->jobs_reset > 0 && req->jobs_reset * 1000 < JOBS_HEADER_WAIT_MAX_MS
                   ? req->jobs_reset * 1000
                   : JOBS_HEADER_WAIT_MAX_MS);
}

/* A 429 on a bulk request or a poll. TooManyJobs (the account's 30 jobs are
 * taken) stops only submissions; any other 429 is the account budget. */
static void rate_limited(tenant_t *t, const zw_http_t *req, int64_t now)
{
    worker_t *w = t->w;
    char code[64];
    int64_t wait;

    zw_http_error_code(req, code, sizeof(code));
    w->stats.rate_limited++;
    if (strcmp(code, "TooManyJobs") == 0) {
        wait = req->jobs_reset > 0 && req->jobs_reset * 1000 < TOO_MANY_JOBS_WAIT_MS
                   ? req->jobs_reset * 1000
                   : TOO_MANY_JOBS_WAIT_MS;
        t->bulk_wait_completion = true;
        t->bulk_blocked_until = now + wait;
        zw_metrics_rate_limited(w->metrics, t->cfg->subdomain, (double)wait / 1000.0);
        ZW_LOG(ZW_LOG_WARN, "Zendesk's background job cap is full; waiting for a job to finish",
               ZW_LF_STR("tenant", t->cfg->subdomain), ZW_LF_INT("open_jobs", t->n_bulk),
               ZW_LF_INT("retry_after_ms", wait));
        return;
    }
    wait = zw_retry_after_ms(req->retry_after, time(NULL));
    if (wait < 0)
        wait = req->rl_reset > 0 ? req->rl_reset * 1000 : 10000;
    zw_ratelimit_block_until(t->budget, now + wait);
    zw_metrics_rate_limited(w->metrics, t->cfg->subdomain, (double)wait / 1000.0);
    ZW_LOG(ZW_LOG_WARN, "rate limited by Zendesk", ZW_LF_STR("tenant", t->cfg->subdomain),
           ZW_LF_INT("retry_after_ms", wait), ZW_LF_STR("during", "bulk"));
}

/* A 403 turns bulk off for a while: for creates (no bulk import on the
 * account) or for everything (job statuses cannot be read, e.g. an OAuth
 * scope without "read"). Said once per refusal, in the log and a metric. */
static void refuse_bulk(tenant_t *t, const zw_http_t *req, int64_t now, bool all)
{
    const zw_config_t *c = t->w->cfg;
    int64_t retry_at = c->worker.bulk_refused_retry_ms ? now + c->worker.bulk_refused_retry_ms : 0;
    bool *off = all ? &t->bulk_off : &t->bulk_create_refused;

    *(all ? &t->bulk_off_retry_at : &t->bulk_create_retry_at) = retry_at;
    if (*off)
        return;
    *off = true;
    recount(t);
    zw_metrics_bulk_fallback(t->w->metrics, t->cfg->subdomain);
    if (all)
        ZW_LOG(ZW_LOG_WARN,
               "Zendesk refused to show bulk job statuses (HTTP 403; an OAuth token needs the "
               "'read' scope): writing one user at a time",
               ZW_LF_STR("tenant", t->cfg->subdomain), ZW_LF_INT("http_status", req->status),
               ZW_LF_INT("retry_in_ms", c->worker.bulk_refused_retry_ms));
    else
        ZW_LOG(ZW_LOG_WARN,
               "Zendesk refused bulk import for this account (HTTP 403): creating users one at "
               "a time",
               ZW_LF_STR("tenant", t->cfg->subdomain), ZW_LF_INT("http_status", req->status),
               ZW_LF_INT("retry_in_ms", c->worker.bulk_refused_retry_ms));
}

/* A 401 on a bulk request or poll with an OAuth token: get a new token
 * (once per token), as the single path does. */
static void token_refused(tenant_t *t, unsigned gen)
{
    if (t->cfg->auth_type != ZW_AUTH_OAUTH_CLIENT_CREDENTIALS || gen != t->token_gen ||
        t->token_state != TOKEN_READY)
        return;
    t->token_state = TOKEN_NONE;
    zw_metrics_retry(t->w->metrics, t->cfg->subdomain, "auth");
    ZW_LOG(ZW_LOG_INFO, "access token refused, renewing", ZW_LF_STR("tenant", t->cfg->subdomain));
}

/* Gives an event's write another go: backoff, and a fresh lookup so the plan
 * reflects whatever part of the job did happen. */
static void retry_event(job_t *job, long http, const char *code, const char *msg)
{
    const zw_config_t *c = job->w->cfg;
    int64_t delay;

    job->failures++;
    delay = zw_backoff_delay_ms(job->failures, c->worker.backoff_base_ms,
                                c->worker.backoff_max_ms, &job->w->rng);
    if (job->failures >= c->worker.max_attempts || wk_past_deadline(job, delay)) {
        wk_job_fail(job, "transient_exhausted", http, code, msg);
        return;
    }
    job->lookup_done = false;
    wk_job_retry_later(job, delay);
}

void zw_bulk_http_done(zw_http_t *req)
{
    bulk_t *b = req->owner;
    tenant_t *t = b->tenant;
    worker_t *w = t->w;
    zw_class_t cls = zw_retry_classify(req->status, req->curl_code);
    int64_t now = zw_loop_now_ms();
    const char *op = OP_NAMES[b->op];
    bulk_op_t b_op = b->op; /* b is freed before its events go back in line */
    job_t *jobs[BULK_MAX_ITEMS];
    size_t n;
    char code[64], msg[300];

    for (size_t i = 0; i < b->n; i++)
        if (b->jobs[i])
            wk_record_request_id(b->jobs[i], req);
    observe_jobs_header(t, req, now);
    if (cls == ZW_CLASS_OK) {
        json_object *root = zw_http_json(req), *js, *v;
        const char *id = NULL;

        if (root && json_object_object_get_ex(root, "job_status", &js) &&
            json_object_object_get_ex(js, "id", &v) && json_object_is_type(v, json_type_string))
            id = json_object_get_string(v);
        if (id && *id && strlen(id) < sizeof(b->zid) &&
            strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") ==
                strlen(id)) {
            snprintf(b->zid, sizeof(b->zid), "%s", id);
            json_object_put(root);
            if (b->op == BULK_CREATE_OR_UPDATE)
                t->bulk_create_proven = true;
            b->opened_ms = now;
            if (t->poll_due < now)
                t->poll_due = now + w->cfg->worker.bulk_poll_ms;
            zw_metrics_bulk_items(w->metrics, t->cfg->subdomain, op, "submitted", (long)b->n);
            ZW_LOG(ZW_LOG_INFO, "bulk job accepted", ZW_LF_STR("tenant", t->cfg->subdomain),
                   ZW_LF_STR("op", op), ZW_LF_STR("job_id", b->zid), ZW_LF_INT("items", b->n));
            return;
        }
        json_object_put(root);
        zw_metrics_bulk_job(w->metrics, t->cfg->subdomain, op, "rejected");
        n = bulk_take(b, jobs);
        for (size_t i = 0; i < n; i++)
            retry_event(jobs[i], req->status, "InvalidResponse",
                        "Zendesk answered a bulk request without a job_status id");
        return;
    }
    zw_metrics_bulk_job(w->metrics, t->cfg->subdomain, op, "rejected");
    if (cls == ZW_CLASS_AUTH && req->status == 403 && b->op == BULK_CREATE_OR_UPDATE)
        refuse_bulk(t, req, now, false);
    else if (cls == ZW_CLASS_RATE_LIMITED)
        rate_limited(t, req, now);
    else if (cls == ZW_CLASS_AUTH && req->status == 401)
        token_refused(t, b->token_gen);
    n = bulk_take(b, jobs);
    for (size_t i = 0; i < n; i++) {
        job_t *job = jobs[i];
        bool renew = cls == ZW_CLASS_AUTH && req->status == 401 &&
                     t->cfg->auth_type == ZW_AUTH_OAUTH_CLIENT_CREDENTIALS && !job->auth_retried;

        if (renew)
            job->auth_retried = true;
        if (cls == ZW_CLASS_RATE_LIMITED && wk_past_deadline(job, 0)) {
            wk_job_fail(job, "rate_limited", 429, "APIRateLimitExceeded",
                        "still rate limited when the retry deadline passed");
        } else if (cls == ZW_CLASS_RATE_LIMITED || renew ||
                   (cls == ZW_CLASS_AUTH && req->status == 403 &&
                    b_op == BULK_CREATE_OR_UPDATE)) {
            /* Back in line: the lane waits out the block, or goes single. */
            job->attempts++;
            wk_job_submit(job);
        } else if (cls == ZW_CLASS_TRANSIENT) {
            /* The job may or may not exist: a retry is idempotent either way. */
            zw_http_error_code(req, code, sizeof(code));
            if (req->status)
                snprintf(msg, sizeof(msg), "bulk %s request failed: HTTP %ld%s%s", op,
                         req->status, code[0] ? " " : "", code);
            else
                snprintf(msg, sizeof(msg), "bulk %s request failed: %s", op,
                         curl_easy_strerror((CURLcode)req->curl_code));
            retry_event(job, req->status, code[0] ? code : NULL, msg);
        } else {
            /* Refused as a whole (auth, 4xx): each event asks on its own and
             * gets its own answer. */
            job->no_bulk = true;
            job->attempts++;
            wk_job_submit(job);
        }
    }
}

static const char *obj_str(json_object *o, const char *key)
{
    json_object *v;

    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int64_t obj_int(json_object *o, const char *key)
{
    json_object *v;

    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    return json_object_get_int64(v);
}

/* Whether a job result names this event's person (when it names anyone). */
static bool result_matches(const job_t *job, json_object *r)
{
    const char *ext = obj_str(r, "external_id");
    int64_t id = obj_int(r, "id");

    if (ext)
        return strcasecmp(ext, job->ev.person.external_id) == 0;
    if (id > 0 && job->plan.user_id > 0)
        return id == job->plan.user_id;
    return true;
}

/* One item's result becomes the event's outcome. */
static void apply_item(job_t *job, bulk_op_t op, json_object *r, const char *zid)
{
    const char *status = obj_str(r, "status");
    const char *error = obj_str(r, "error");
    int64_t id = obj_int(r, "id");
    json_object *v;

    if (error || !status || strcmp(status, "Failed") == 0) {
        char details[200] = "", msg[300];

        if (json_object_object_get_ex(r, "details", &v) && v)
            snprintf(details, sizeof(details), "%s",
                     json_object_is_type(v, json_type_string)
                         ? json_object_get_string(v)
                         : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
        if (error && (strcmp(error, "RecordNotFound") == 0 || strcmp(error, "UserNotFound") == 0)) {
            if (op == BULK_DESTROY) {
                job->status = "succeeded"; /* gone already: the leaver's goal is met */
                job->outcome = "not_found";
                wk_job_person_done(job);
            } else {
                job->lookup_done = false; /* vanished since the lookup: look again */
                job->attempts++;
                wk_job_submit(job);
            }
            return;
        }
        snprintf(msg, sizeof(msg), "Zendesk refused the change in bulk job %s%s%s", zid,
                 details[0] ? ": " : "", details);
        wk_job_fail(job, "permanent", 0, error ? error : "BulkItemFailed", msg);
        return;
    }
    if (id > 0)
        job->user_id = id;
    job->status = "succeeded";
    job->outcome = job->plan.outcome;
    if (op == BULK_CREATE_OR_UPDATE && strcmp(status, "Updated") == 0)
        job->outcome = "updated"; /* matched an existing user by e-mail */
    wk_job_person_done(job);
}

/* A job is over (completed, failed, or lost): each event takes its item's
 * result; an event without one tries again. */
static void bulk_end(bulk_t *b, json_object *js, const char *how)
{
    tenant_t *t = b->tenant;
    worker_t *w = t->w;
    json_object *results = NULL, *res_for[BULK_MAX_ITEMS] = {0};
    job_t *slot[BULK_MAX_ITEMS];
    bulk_op_t op = b->op;
    char zid[sizeof(b->zid)], msg[300];
    size_t n_results = 0, n = b->n, failed = 0;
    const char *message = obj_str(js, "message");

    memcpy(slot, b->jobs, sizeof(slot[0]) * n);
    snprintf(zid, sizeof(zid), "%s", b->zid);
    if (js && json_object_object_get_ex(js, "results", &results) &&
        json_object_is_type(results, json_type_array))
        n_results = json_object_array_length(results);
    for (size_t p = 0; p < n_results; p++) {
        json_object *r = json_object_array_get_idx(results, p);
        int64_t idx = obj_int(r, "index");
        size_t i = idx >= 0 && (size_t)idx < n ? (size_t)idx : p;

        if (i >= n || !slot[i] || !result_matches(slot[i], r)) {
            /* No usable index: find the event the result names. */
            for (i = 0; i < n; i++)
                if (slot[i] && !res_for[i] && result_matches(slot[i], r) &&
                    (obj_str(r, "external_id") || obj_int(r, "id") > 0))
                    break;
        }
        if (i < n && slot[i] && !res_for[i])
            res_for[i] = r;
    }
    zw_metrics_bulk_job(w->metrics, t->cfg->subdomain, OP_NAMES[op], how);
    if (t->bulk_wait_completion) {
        t->bulk_wait_completion = false;
        t->bulk_blocked_until = 0; /* a slot is free again */
    }
    bulk_free(b); /* its events are in slot[] */
    snprintf(msg, sizeof(msg), "bulk job %s %s%s%s", zid, how, message ? ": " : "",
             message ? message : "");
    for (size_t i = 0; i < n; i++) {
        if (!slot[i])
            continue; /* revoked meanwhile */
        if (res_for[i]) {
            const char *st = obj_str(res_for[i], "status");
            if (obj_str(res_for[i], "error") || !st || strcmp(st, "Failed") == 0)
                failed++;
            apply_item(slot[i], op, res_for[i], zid);
        } else {
            retry_event(slot[i], 0,
                        strcmp(how, "lost") == 0     ? "BulkJobLost"
                        : strcmp(how, "failed") == 0 ? "BulkJobFailed"
                                                     : "BulkItemMissing",
                        msg);
        }
    }
    zw_metrics_bulk_items(w->metrics, t->cfg->subdomain, OP_NAMES[op], "failed", (long)failed);
    ZW_LOG(strcmp(how, "completed") == 0 ? ZW_LOG_INFO : ZW_LOG_WARN, "bulk job ended",
           ZW_LF_STR("tenant", t->cfg->subdomain), ZW_LF_STR("op", OP_NAMES[op]),
           ZW_LF_STR("job_id", zid), ZW_LF_STR("status", how), ZW_LF_INT("items", n),
           ZW_LF_INT("results", n_results), ZW_LF_INT("failed_items", failed));
}

void zw_bulk_poll_done(tenant_t *t, zw_http_t *req)
{
    worker_t *w = t->w;
    const zw_config_t *c = w->cfg;
    zw_class_t cls = zw_retry_classify(req->status, req->curl_code);
    int64_t now = zw_loop_now_ms();
    json_object *root = NULL, *list = NULL, *one = NULL;
    bulk_t *b, *next;

    t->poll_in_flight = false;
    t->poll_due = now + c->worker.bulk_poll_ms;
    if (cls == ZW_CLASS_RATE_LIMITED) {
        rate_limited(t, req, now);
        return;
    }
    if (cls == ZW_CLASS_AUTH && req->status == 401 &&
        t->cfg->auth_type == ZW_AUTH_OAUTH_CLIENT_CREDENTIALS) {
        token_refused(t, t->poll_token_gen); /* the pump waits for the new token */
        t->poll_due = now;
        return;
    }
    if (cls == ZW_CLASS_AUTH) {
        /* Jobs we cannot see are as good as lost: their events look up again. */
        refuse_bulk(t, req, now, true);
        for (b = t->bulk_head; b; b = next) {
            next = b->next;
            if (b->zid[0])
                bulk_end(b, NULL, "lost");
        }
        return;
    }
    if (cls == ZW_CLASS_OK)
        root = zw_http_json(req);
    if (root && !(json_object_object_get_ex(root, "job_statuses", &list) &&
                  json_object_is_type(list, json_type_array)))
        list = NULL;
    if (root && !list && !(json_object_object_get_ex(root, "job_status", &one) &&
                           json_object_is_type(one, json_type_object)))
        one = NULL;
    if (!list && !one && cls != ZW_CLASS_NOT_FOUND) {
        /* Not an answer about the jobs: try again after a backoff. */
        t->poll_failures++;
        t->poll_due = now + zw_backoff_delay_ms(t->poll_failures, c->worker.bulk_poll_ms,
                                                c->worker.backoff_max_ms, &w->rng);
        json_object_put(root);
        ZW_LOG(ZW_LOG_DEBUG, "job status poll failed", ZW_LF_STR("tenant", t->cfg->subdomain),
               ZW_LF_INT("http_status", req->status), ZW_LF_INT("curl_code", req->curl_code));
        return;
    }
    t->poll_failures = 0;
    for (b = t->bulk_head; b; b = next) {
        json_object *js = NULL;
        const char *status;

        next = b->next;
        if (!b->polled)
            continue;
        b->polled = false;
        if (one && obj_str(one, "id") && strcmp(obj_str(one, "id"), b->zid) == 0)
            js = one;
        for (size_t i = 0; list && !js && i < json_object_array_length(list); i++) {
            json_object *s = json_object_array_get_idx(list, i);
            const char *id = obj_str(s, "id");
            if (id && strcmp(id, b->zid) == 0)
                js = s;
        }
        status = obj_str(js, "status");
        if (!js) {
            /* Not listed (expired, or never ours): after a few polls it is lost. */
            if (++b->missing >= LOST_AFTER_POLLS || cls == ZW_CLASS_NOT_FOUND)
                bulk_end(b, NULL, "lost");
        } else if (status && strcmp(status, "completed") == 0) {
            bulk_end(b, js, "completed");
        } else if (status && (strcmp(status, "failed") == 0 || strcmp(status, "killed") == 0)) {
            bulk_end(b, js, "failed");
        } else if (now - b->opened_ms > c->worker.retry_deadline_ms) {
            bulk_end(b, NULL, "lost"); /* never finishing is as good as lost */
        } else {
            b->missing = 0;
        }
    }
    json_object_put(root);
}

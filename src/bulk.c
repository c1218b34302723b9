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
#include "bulk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "zw/log.h"
#include "zw/metrics.h"
#include "zw/retry.h"

#include "provision.h"

#define BULK_MAX_ITEMS 100
#define POLL_IDS_MAX 100
#define POLL_URL_MAX 4000
#define LOST_AFTER_POLLS 3         /* polls in a row that do not list a job */
#define TOO_MANY_JOBS_WAIT_MS 5000 /* when Zendesk does not say when a slot frees */
#define JOBS_HEADER_WAIT_MAX_MS 60000

/* What kind of *_many job a write can go in (a tenant lane class). */
typedef enum {
    BULK_NONE = 0,
    BULK_CREATE_OR_UPDATE = 1, /* POST /api/v2/users/create_or_update_many */
    BULK_UPDATE = 2,           /* PUT /api/v2/users/update_many */
    BULK_DESTROY = 3,          /* DELETE /api/v2/users/destroy_many */
    N_BULK_OPS = 4
} bulk_op_t;

static const char *const OP_NAMES[N_BULK_OPS] = {"none", "create_or_update", "update", "destroy"};

typedef struct bulk_tenant_s bulk_tenant_t;

/* A bulk job: up to 100 events' writes in one *_many request, then polled. */
typedef struct zw_bulk_job_s {
    bulk_tenant_t *bt;
    bulk_op_t op;
    char zid[64];                 /* Zendesk's job id once accepted */
    zw_job_t *jobs[BULK_MAX_ITEMS]; /* NULL where an event was forgotten */
    size_t n;
    int64_t opened_ms;
    unsigned token_gen;
    bool polled;                  /* in the poll in flight */
    int missing;                  /* polls in a row that did not list it */
    struct zw_bulk_job_s *prev, *next;
} bulk_t;

/* One tenant's bulk state. */
struct bulk_tenant_s {
    zw_bulks_t *bs;
    zw_tenant_t *t;
    bulk_t *head;                 /* jobs being submitted or open at Zendesk */
    int n_bulk;
    int next_op;                  /* ops take turns */
    bool create_proven;           /* a create_or_update_many was accepted */
    bool create_refused;          /* 403 on create_or_update_many: single calls */
    int64_t create_retry_at;      /* when to try bulk create again; 0 = never */
    bool off;                     /* 403 on job_statuses: no bulk at all */
    int64_t off_retry_at;         /* when to try bulk again; 0 = never */
    int64_t blocked_until;        /* no submission before (TooManyJobs, no slot left) */
    bool wait_completion;         /* ... or until one of our jobs completes */
    unsigned poll_token_gen;      /* the token the poll in flight carries */
    bool poll_in_flight;
    int poll_failures;
    int64_t poll_due;
};

struct zw_bulks_s {
    zw_jobs_t *js;
    bulk_tenant_t *bt; /* by zw_tenant_index */
    size_t n;
};

static zw_env_t *env_of(const bulk_tenant_t *bt)
{
    return bt->bs->js->env;
}

static const char *name_of(const bulk_tenant_t *bt)
{
    return zw_tenant_name(bt->t);
}

static bulk_tenant_t *bt_of(zw_bulks_t *bs, const zw_tenant_t *t)
{
    return &bs->bt[zw_tenant_index(t)];
}

int zw_bulk_classify(zw_tenant_t *t, const zw_lane_item_t *item, void *arg)
{
    bulk_tenant_t *bt = bt_of(arg, t);
    const zw_job_t *job = ZW_JOB_OF(item, lane);

    if (env_of(bt)->cfg->worker.bulk_min_items == 0 || bt->off || job->bulk.no_bulk ||
        job->ops != &zw_provision_ops || job->state != ZW_JOB_WRITE)
        return BULK_NONE;
    switch (job->prov.plan.step) {
    case ZW_STEP_CREATE_OR_UPDATE:
        return bt->create_refused ? BULK_NONE : BULK_CREATE_OR_UPDATE;
    case ZW_STEP_UPDATE:
        return BULK_UPDATE;
    case ZW_STEP_DELETE:
        return BULK_DESTROY;
    default:
        return BULK_NONE;
    }
}

/* Job slots this replica may use: the account's cap, shared like the budget. */
static int job_slots(const bulk_tenant_t *bt)
{
    int slots = (int)(zw_tenant_config(bt->t)->max_jobs * zw_tenants_share(bt->bs->js->tenants));

    return slots < 1 ? 1 : slots;
}

static bool has_open_job(const bulk_tenant_t *bt)
{
    for (const bulk_t *b = bt->head; b; b = b->next)
        if (b->zid[0])
            return true;
    return false;
}

/* Unlinks b from its tenant and frees it; its events are no longer in it. */
static void bulk_free(bulk_t *b)
{
    bulk_tenant_t *bt = b->bt;

    if (b->prev)
        b->prev->next = b->next;
    else
        bt->head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    bt->n_bulk--;
    for (size_t i = 0; i < b->n; i++)
        if (b->jobs[i])
            b->jobs[i]->bulk.job = NULL;
    free(b);
}

/* Moves b's live events into out (returns how many) and frees b. */
static size_t bulk_take(bulk_t *b, zw_job_t **out)
{
    size_t n = 0;

    for (size_t i = 0; i < b->n; i++) {
        if (b->jobs[i]) {
            out[n++] = b->jobs[i];
            b->jobs[i]->bulk.job = NULL;
            b->jobs[i] = NULL;
        }
    }
    bulk_free(b);
    return n;
}

void zw_bulk_forget(zw_job_t *job)
{
    bulk_t *b = job->bulk.job;

    if (b && (size_t)job->bulk.idx < b->n && b->jobs[job->bulk.idx] == job)
        b->jobs[job->bulk.idx] = NULL;
    job->bulk.job = NULL;
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

static void setup(bulk_tenant_t *bt)
{
    const zw_tenant_config_t *tc = zw_tenant_config(bt->t);

    /* Job statuses are no users resource: "users:read" does not show them,
     * and jobs that cannot be polled are no use. */
    if (env_of(bt)->cfg->worker.bulk_min_items == 0 ||
        tc->auth_type != ZW_AUTH_OAUTH_CLIENT_CREDENTIALS || scope_has(tc->scope, "read"))
        return;
    bt->off = true;
    bt->off_retry_at = 0;
    ZW_LOG(ZW_LOG_WARN,
           "bulk jobs off for this tenant: its OAuth scope lacks 'read', which job statuses "
           "need; writing one user at a time",
           ZW_LF_STR("tenant", tc->subdomain), ZW_LF_STR("scope", tc->scope));
}

zw_bulks_t *zw_bulks_new(zw_jobs_t *js)
{
    zw_bulks_t *bs = calloc(1, sizeof(*bs));
    size_t n = zw_tenants_count(js->tenants);

    if (!bs || !(bs->bt = calloc(n ? n : 1, sizeof(*bs->bt)))) {
        free(bs);
        return NULL;
    }
    bs->js = js;
    bs->n = n;
    for (size_t i = 0; i < n; i++) {
        bs->bt[i].bs = bs;
        bs->bt[i].t = zw_tenants_at(js->tenants, i);
        setup(&bs->bt[i]);
    }
    return bs;
}

void zw_bulks_destroy(zw_bulks_t *bs)
{
    if (!bs)
        return;
    for (size_t i = 0; i < bs->n; i++)
        while (bs->bt[i].head)
            bulk_free(bs->bt[i].head);
    free(bs->bt);
    free(bs);
}

/* ---- submitting ---- */

/* The "user" object of an event's planned write; a new reference. */
static json_object *plan_user(const zw_job_t *job)
{
    const char *body = job->prov.plan.body;
    json_object *root = body ? json_tokener_parse(body) : NULL, *user;

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
static bool in_batch(const bulk_t *b, const zw_job_t *job)
{
    for (size_t i = 0; i < b->n; i++) {
        if (strcasecmp(b->jobs[i]->prov.ev.person.external_id,
                       job->prov.ev.person.external_id) == 0)
            return true;
        if (job->prov.plan.user_id > 0 && b->jobs[i]->prov.plan.user_id == job->prov.plan.user_id)
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

/* The events go back to single calls. */
static void submit_single(zw_job_t **jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        jobs[i]->bulk.job = NULL;
        jobs[i]->bulk.no_bulk = true;
        jobs[i]->ops->submit(jobs[i]);
    }
}

/* Takes up to 100 waiting events of op out of their lane into b; the
 * items go into items, and *change is the one change of an update (NULL
 * when they differ, *same false). */
static void gather(bulk_t *b, json_object *items, char **change, bool *same)
{
    zw_tenant_t *t = b->bt->t;
    int lane = b->op == BULK_DESTROY ? ZW_LANE_READ : ZW_LANE_WRITE;
    zw_lane_item_t *item, *prev = NULL, *next;

    for (item = zw_tenant_lane_head(t, lane); item && b->n < BULK_MAX_ITEMS; item = next) {
        zw_job_t *job = ZW_JOB_OF(item, lane);
        json_object *user = NULL;

        next = item->next;
        if (item->cls != (int)b->op || in_batch(b, job)) {
            prev = item;
            continue;
        }
        if (b->op != BULK_DESTROY && !(user = plan_user(job))) {
            /* Cannot be itemised (out of memory): a single call then. */
            job->bulk.no_bulk = true;
            zw_tenant_reclassify(t, item);
            prev = item;
            continue;
        }
        if (b->op == BULK_UPDATE) {
            const char *s = json_object_to_json_string_ext(user, JSON_C_TO_STRING_PLAIN);
            if (!*change)
                *change = strdup(s);
            else if (strcmp(*change, s) != 0)
                *same = false;
            json_object_object_add(user, "id", json_object_new_int64(job->prov.plan.user_id));
        }
        if (user)
            json_object_array_add(items, user);
        zw_tenant_unlink(t, item, prev);
        job->bulk.job = b;
        job->bulk.idx = (int)b->n;
        b->jobs[b->n++] = job;
    }
}

/* The *_many request of b: path into path, the body returned (NULL for a
 * delete). */
static json_object *bulk_request(const bulk_t *b, json_object *items, const char *change,
                                 bool same, char *path, size_t size)
{
    json_object *body = NULL;
    size_t len;

    if (b->op == BULK_CREATE_OR_UPDATE || (b->op == BULK_UPDATE && !same)) {
        snprintf(path, size, "/api/v2/users/%s",
                 b->op == BULK_UPDATE ? "update_many" : "create_or_update_many");
        body = json_object_new_object();
        json_object_object_add(body, "users", json_object_get(items));
        return body;
    }
    /* One change for many ids (leavers: downgrade and suspend), or deletes. */
    len = (size_t)snprintf(path, size, "/api/v2/users/%s?ids=",
                           b->op == BULK_UPDATE ? "update_many" : "destroy_many");
    for (size_t i = 0; i < b->n; i++) {
        char id[24];
        snprintf(id, sizeof(id), "%lld", (long long)b->jobs[i]->prov.plan.user_id);
        append(path, size, &len, i == 0, id);
    }
    if (b->op == BULK_UPDATE) {
        body = json_object_new_object();
        json_object_object_add(body, "user", json_tokener_parse(change));
    }
    return body;
}

static void bulk_answer(zw_http_t *req, void *arg);

/* Takes up to 100 waiting events of op from their lane into one *_many
 * request. Returns false when none could go. */
static bool bulk_send(bulk_tenant_t *bt, bulk_op_t op)
{
    zw_tenant_t *t = bt->t;
    zw_auth_t *auth = zw_tenant_auth(t);
    bulk_t *b = calloc(1, sizeof(*b));
    json_object *items = json_object_new_array(), *body;
    char *change = NULL, path[BULK_MAX_ITEMS * 24 + 64], errstr[256];
    const char *method = op == BULK_CREATE_OR_UPDATE ? "POST" : op == BULK_UPDATE ? "PUT" : "DELETE";
    bool same = true; /* every update carries the same change */
    zw_http_t *req;

    if (!b || !items) {
        free(b);
        json_object_put(items);
        return false;
    }
    b->bt = bt;
    b->op = op;
    gather(b, items, &change, &same);
    if (b->n == 0 || (op == BULK_UPDATE && !change)) {
        /* Nothing could be taken (or out of memory): the events stay single. */
        submit_single(b->jobs, b->n);
        json_object_put(items);
        free(change);
        free(b);
        return false;
    }
    body = bulk_request(b, items, change, same, path, sizeof(path));
    json_object_put(items);
    free(change);
    req = zw_http_new(&env_of(bt)->http, name_of(bt), method, path,
                      body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
                                                                      JSON_C_TO_STRING_NOSLASHESCAPE)
                           : NULL,
                      zw_auth_header(auth), ZW_ENDPOINT_BULK, errstr, sizeof(errstr));
    json_object_put(body);
    b->opened_ms = zw_loop_now_ms();
    b->next = bt->head;
    if (bt->head)
        bt->head->prev = b;
    bt->head = b;
    bt->n_bulk++;
    if (!zw_tenant_send(t, req, bulk_answer, b)) {
        zw_job_t *jobs[BULK_MAX_ITEMS];
        size_t n = bulk_take(b, jobs);

        submit_single(jobs, n);
        return false;
    }
    b->token_gen = zw_auth_gen(auth);
    for (size_t i = 0; i < b->n; i++) {
        b->jobs[i]->token_gen = b->token_gen;
        if (b->jobs[i]->attempts == 0)
            b->jobs[i]->attempts = 1;
    }
    ZW_LOG(ZW_LOG_DEBUG, "bulk job submitted", ZW_LF_STR("tenant", name_of(bt)),
           ZW_LF_STR("op", OP_NAMES[op]), ZW_LF_INT("items", b->n));
    return true;
}

static void poll_answer(zw_http_t *req, void *arg);

/* Asks for the status of every open job (up to 100) in one request. */
static void send_poll(bulk_tenant_t *bt)
{
    zw_env_t *env = env_of(bt);
    zw_auth_t *auth = zw_tenant_auth(bt->t);
    char url[POLL_URL_MAX + 200], errstr[256];
    size_t len = 0, n = 0;
    bool first = true;
    zw_http_t *req;

    for (bulk_t *b = bt->head; b && n < POLL_IDS_MAX; b = b->next) {
        b->polled = false;
        if (b->zid[0] && len + strlen(b->zid) + 1 < POLL_URL_MAX) {
            b->polled = true;
            len += strlen(b->zid) + 1;
            n++;
        }
    }
    len = 0;
    if (n == 1) {
        for (bulk_t *b = bt->head; b; b = b->next)
            if (b->polled)
                snprintf(url, sizeof(url), "/api/v2/job_statuses/%s", b->zid);
    } else {
        len = (size_t)snprintf(url, sizeof(url), "/api/v2/job_statuses/show_many?ids=");
        for (bulk_t *b = bt->head; b; b = b->next) {
            if (b->polled) {
                append(url, sizeof(url), &len, first, b->zid);
                first = false;
            }
        }
    }
    req = zw_http_new(&env->http, name_of(bt), "GET", url, NULL, zw_auth_header(auth),
                      ZW_ENDPOINT_BULK, errstr, sizeof(errstr));
    if (!zw_tenant_send(bt->t, req, poll_answer, bt)) {
        bt->poll_due = zw_loop_now_ms() + env->cfg->worker.bulk_poll_ms;
        return;
    }
    bt->poll_in_flight = true;
    bt->poll_token_gen = zw_auth_gen(auth);
}

/* Until an account has accepted a bulk create, one probes it at a time: a
 * burst must not send twenty to learn once that bulk import is off. */
static bool create_probe_in_flight(const bulk_tenant_t *bt)
{
    if (bt->create_proven)
        return false;
    for (const bulk_t *b = bt->head; b; b = b->next)
        if (b->op == BULK_CREATE_OR_UPDATE && !b->zid[0])
            return true;
    return false;
}

/* Whether a bulk job of op could go now, budget aside. */
static bool op_can_go(const bulk_tenant_t *bt, int op, int64_t now)
{
    int min = env_of(bt)->cfg->worker.bulk_min_items;
    int waiting = zw_tenant_waiting(bt->t, op);

    if (op == BULK_CREATE_OR_UPDATE && create_probe_in_flight(bt))
        return false;
    /* Enough work counts the events still being looked up: their writes
     * are on their way. */
    return op != BULK_NONE && min > 0 && waiting > 0 &&
           waiting + zw_tenant_looking(bt->t) >= min && bt->n_bulk < job_slots(bt) &&
           now >= bt->blocked_until;
}

bool zw_bulk_holds(zw_tenant_t *t, const zw_lane_item_t *item, void *arg)
{
    return op_can_go(bt_of(arg, t), item->cls, zw_loop_now_ms());
}

/* A poll when one is due: 1 sent, 0 none, -1 the budget is spent. */
static int poll_if_due(bulk_tenant_t *bt, int64_t now)
{
    int64_t wait;

    if (bt->poll_in_flight || !has_open_job(bt))
        return 0;
    if (now < bt->poll_due) {
        zw_tenant_wake_in(bt->t, bt->poll_due - now);
        return 0;
    }
    wait = zw_ratelimit_take(zw_tenant_budget(bt->t), now);
    if (wait > 0) {
        zw_tenant_wake_in(bt->t, wait);
        return -1;
    }
    send_poll(bt);
    return bt->poll_in_flight ? 1 : 2;
}

/* Bulk create or bulk at all allowed again once their refusal's time is up. */
static void retry_refused(bulk_tenant_t *bt, int64_t now)
{
    if (bt->create_refused && bt->create_retry_at && now >= bt->create_retry_at) {
        bt->create_refused = false;
        zw_tenant_recount(bt->t);
        ZW_LOG(ZW_LOG_INFO, "trying bulk create again", ZW_LF_STR("tenant", name_of(bt)));
    }
    if (bt->off && bt->off_retry_at && now >= bt->off_retry_at) {
        bt->off = false;
        zw_tenant_recount(bt->t);
        ZW_LOG(ZW_LOG_INFO, "trying bulk jobs again", ZW_LF_STR("tenant", name_of(bt)));
    }
}

/* The op whose bulk job goes next, taking turns; BULK_NONE when none. */
static bulk_op_t next_op(bulk_tenant_t *bt, int64_t now)
{
    for (int k = 0; k < N_BULK_OPS - 1; k++) {
        int o = (bt->next_op + k) % (N_BULK_OPS - 1) + 1;

        if (!op_can_go(bt, o, now))
            continue;
        if (zw_tenant_waiting(bt->t, o) < BULK_MAX_ITEMS && now < zw_tenant_ready_at(bt->t, o)) {
            zw_tenant_wake_in(bt->t, zw_tenant_ready_at(bt->t, o) - now); /* lingering */
            continue;
        }
        bt->next_op = o % (N_BULK_OPS - 1);
        return (bulk_op_t)o;
    }
    return BULK_NONE;
}

int zw_bulk_before_lanes(zw_tenant_t *t, int64_t now, void *arg)
{
    bulk_tenant_t *bt = bt_of(arg, t);
    int polled = poll_if_due(bt, now);
    bulk_op_t op;
    int64_t wait;

    if (polled == 1 || polled < 0)
        return polled;
    if (polled == 2)
        return 0; /* the poll could not start; it is due again later */
    if (env_of(bt)->cfg->worker.bulk_min_items == 0)
        return 0;
    retry_refused(bt, now);
    if (now < bt->blocked_until) {
        zw_tenant_wake_in(t, bt->blocked_until - now);
        return 0; /* single calls go on meanwhile */
    }
    op = next_op(bt, now);
    if (op == BULK_NONE)
        return 0;
    wait = zw_ratelimit_take(zw_tenant_budget(t), now);
    if (wait > 0) {
        zw_tenant_wake_in(t, wait);
        return -1;
    }
    if (!bulk_send(bt, op)) {
        zw_ratelimit_refund(zw_tenant_budget(t));
        return 0;
    }
    return 1;
}

/* ---- answers ---- */

/* A reset header in seconds as a wait, capped. */
static int64_t reset_wait_ms(long long reset_s, int64_t cap_ms)
{
    return reset_s > 0 && reset_s < cap_ms / 1000 ? (int64_t)reset_s * 1000 : cap_ms;
}

/* The job cap's header: none left means no submission until one of ours
 * completes or the header's reset passes. */
static void observe_jobs_header(bulk_tenant_t *bt, const zw_http_t *req, int64_t now)
{
    if (req->jobs_remaining != 0)
        return;
    bt->wait_completion = true;
    bt->blocked_until = now + reset_wait_ms(req->jobs_reset, JOBS_HEADER_WAIT_MAX_MS);
}

/* A 429 on a bulk request or a poll. TooManyJobs (the account's 30 jobs are
 * taken) stops only submissions; any other 429 is the account budget. */
static void rate_limited(bulk_tenant_t *bt, const zw_http_t *req, int64_t now)
{
    zw_env_t *env = env_of(bt);
    char code[64];
    int64_t wait;

    zw_http_error_code(req, code, sizeof(code));
    env->stats.rate_limited++;
    if (strcmp(code, "TooManyJobs") == 0) {
        wait = reset_wait_ms(req->jobs_reset, TOO_MANY_JOBS_WAIT_MS);
        bt->wait_completion = true;
        bt->blocked_until = now + wait;
        zw_metrics_rate_limited(env->metrics, name_of(bt), (double)wait / 1000.0);
        ZW_LOG(ZW_LOG_WARN, "Zendesk's background job cap is full; waiting for a job to finish",
               ZW_LF_STR("tenant", name_of(bt)), ZW_LF_INT("open_jobs", bt->n_bulk),
               ZW_LF_INT("retry_after_ms", wait));
        return;
    }
    wait = zw_retry_429_wait_ms(req->retry_after, req->rl_reset, time(NULL), 10000);
    zw_ratelimit_block_until(zw_tenant_budget(bt->t), now + wait);
    zw_metrics_rate_limited(env->metrics, name_of(bt), (double)wait / 1000.0);
    ZW_LOG(ZW_LOG_WARN, "rate limited by Zendesk", ZW_LF_STR("tenant", name_of(bt)),
           ZW_LF_INT("retry_after_ms", wait), ZW_LF_STR("during", "bulk"));
}

/* A 403 turns bulk off for a while: for creates (no bulk import on the
 * account) or for everything (job statuses cannot be read, e.g. an OAuth
 * scope without "read"). Said once per refusal, in the log and a metric. */
static void refuse_bulk(bulk_tenant_t *bt, const zw_http_t *req, int64_t now, bool all)
{
    const zw_config_t *c = env_of(bt)->cfg;
    int64_t retry_at = c->worker.bulk_refused_retry_ms ? now + c->worker.bulk_refused_retry_ms : 0;
    bool *off = all ? &bt->off : &bt->create_refused;

    *(all ? &bt->off_retry_at : &bt->create_retry_at) = retry_at;
    if (*off)
        return;
    *off = true;
    zw_tenant_recount(bt->t);
    zw_metrics_bulk_fallback(env_of(bt)->metrics, name_of(bt));
    if (all)
        ZW_LOG(ZW_LOG_WARN,
               "Zendesk refused to show bulk job statuses (HTTP 403; an OAuth token needs the "
               "'read' scope): writing one user at a time",
               ZW_LF_STR("tenant", name_of(bt)), ZW_LF_INT("http_status", req->status),
               ZW_LF_INT("retry_in_ms", c->worker.bulk_refused_retry_ms));
    else
        ZW_LOG(ZW_LOG_WARN,
               "Zendesk refused bulk import for this account (HTTP 403): creating users one at "
               "a time",
               ZW_LF_STR("tenant", name_of(bt)), ZW_LF_INT("http_status", req->status),
               ZW_LF_INT("retry_in_ms", c->worker.bulk_refused_retry_ms));
}

/* A 401 on a bulk request or poll with an OAuth token: get a new token
 * (once per token), as the single path does. */
static void token_refused(bulk_tenant_t *bt, unsigned gen)
{
    if (zw_auth_rejected(zw_tenant_auth(bt->t), gen))
        zw_metrics_retry(env_of(bt)->metrics, name_of(bt), "auth");
}

/* Gives an event's write another go: backoff, and a fresh lookup so the plan
 * reflects whatever part of the job did happen. */
static void retry_event(zw_job_t *job, long http, const char *code, const char *msg)
{
    zw_env_t *env = job->js->env;
    int64_t delay = zw_env_backoff_ms(env, ++job->failures);

    if (job->failures >= env->cfg->worker.max_attempts || zw_job_past_deadline(job, delay)) {
        zw_job_fail(job, "transient_exhausted", http, code, msg);
        return;
    }
    zw_provision_relookup(job);
    zw_job_retry_later(job, delay);
}

/* Zendesk accepted the bulk job: it is polled from now on. */
static bool accepted(bulk_t *b, const zw_http_t *req, int64_t now)
{
    bulk_tenant_t *bt = b->bt;
    zw_env_t *env = env_of(bt);
    json_object *root = zw_http_json(req), *js, *v;
    const char *id = NULL;

    if (root && json_object_object_get_ex(root, "job_status", &js) &&
        json_object_object_get_ex(js, "id", &v) && json_object_is_type(v, json_type_string))
        id = json_object_get_string(v);
    if (!id || !*id || strlen(id) >= sizeof(b->zid) ||
        strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
            strlen(id)) {
        json_object_put(root);
        return false;
    }
    snprintf(b->zid, sizeof(b->zid), "%s", id);
    json_object_put(root);
    if (b->op == BULK_CREATE_OR_UPDATE)
        bt->create_proven = true;
    b->opened_ms = now;
    if (bt->poll_due < now)
        bt->poll_due = now + env->cfg->worker.bulk_poll_ms;
    zw_metrics_bulk_items(env->metrics, name_of(bt), OP_NAMES[b->op], "submitted", (long)b->n);
    ZW_LOG(ZW_LOG_INFO, "bulk job accepted", ZW_LF_STR("tenant", name_of(bt)),
           ZW_LF_STR("op", OP_NAMES[b->op]), ZW_LF_STR("job_id", b->zid),
           ZW_LF_INT("items", b->n));
    return true;
}

/* The bulk request was refused as a whole: what each of its events does. */
static void refused_event(zw_job_t *job, const zw_http_t *req, zw_class_t cls, bulk_op_t op)
{
    bool renew = cls == ZW_CLASS_AUTH && req->status == 401 &&
                 zw_auth_is_oauth(zw_tenant_auth(job->tenant)) && !job->auth_retried;
    char code[64], msg[300];

    if (renew)
        job->auth_retried = true;
    if (cls == ZW_CLASS_RATE_LIMITED && zw_job_past_deadline(job, 0)) {
        zw_job_fail(job, "rate_limited", 429, "APIRateLimitExceeded",
                    "still rate limited when the retry deadline passed");
    } else if (cls == ZW_CLASS_RATE_LIMITED || renew ||
               (cls == ZW_CLASS_AUTH && req->status == 403 && op == BULK_CREATE_OR_UPDATE)) {
        /* Back in line: the lane waits out the block, or goes single. */
        job->attempts++;
        job->ops->submit(job);
    } else if (cls == ZW_CLASS_TRANSIENT) {
        /* The job may or may not exist: a retry is idempotent either way. */
        zw_http_error_code(req, code, sizeof(code));
        if (req->status)
            snprintf(msg, sizeof(msg), "bulk %s request failed: HTTP %ld%s%s", OP_NAMES[op],
                     req->status, code[0] ? " " : "", code);
        else
            snprintf(msg, sizeof(msg), "bulk %s request failed: %s", OP_NAMES[op],
                     curl_easy_strerror((CURLcode)req->curl_code));
        retry_event(job, req->status, code[0] ? code : NULL, msg);
    } else {
        /* Refused as a whole (auth, 4xx): each event asks on its own and
         * gets its own answer. */
        job->bulk.no_bulk = true;
        job->attempts++;
        job->ops->submit(job);
    }
}

static void bulk_answer(zw_http_t *req, void *arg)
{
    bulk_t *b = arg;
    bulk_tenant_t *bt = b->bt;
    zw_env_t *env = env_of(bt);
    zw_class_t cls = zw_retry_classify(req->status, req->curl_code);
    int64_t now = zw_loop_now_ms();
    bulk_op_t op = b->op; /* b is freed before its events go back in line */
    zw_job_t *jobs[BULK_MAX_ITEMS];
    size_t n;

    for (size_t i = 0; i < b->n; i++)
        if (b->jobs[i])
            zw_job_record_request_id(b->jobs[i], req);
    observe_jobs_header(bt, req, now);
    if (cls == ZW_CLASS_OK && accepted(b, req, now))
        return;
    zw_metrics_bulk_job(env->metrics, name_of(bt), OP_NAMES[op], "rejected");
    if (cls == ZW_CLASS_OK) {
        n = bulk_take(b, jobs);
        for (size_t i = 0; i < n; i++)
            retry_event(jobs[i], req->status, "InvalidResponse",
                        "Zendesk answered a bulk request without a job_status id");
        return;
    }
    if (cls == ZW_CLASS_AUTH && req->status == 403 && op == BULK_CREATE_OR_UPDATE)
        refuse_bulk(bt, req, now, false);
    else if (cls == ZW_CLASS_RATE_LIMITED)
        rate_limited(bt, req, now);
    else if (cls == ZW_CLASS_AUTH && req->status == 401)
        token_refused(bt, b->token_gen);
    n = bulk_take(b, jobs);
    for (size_t i = 0; i < n; i++)
        refused_event(jobs[i], req, cls, op);
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
static bool result_matches(const zw_job_t *job, json_object *r)
{
    const char *ext = obj_str(r, "external_id");
    int64_t id = obj_int(r, "id");

    if (ext)
        return strcasecmp(ext, job->prov.ev.person.external_id) == 0;
    if (id > 0 && job->prov.plan.user_id > 0)
        return id == job->prov.plan.user_id;
    return true;
}

static bool item_failed(json_object *r)
{
    const char *status = obj_str(r, "status");

    return obj_str(r, "error") || !status || strcmp(status, "Failed") == 0;
}

/* One item's result becomes the event's outcome, by provision.c's rules. */
static void apply_item(zw_job_t *job, bulk_op_t op, json_object *r, const char *zid)
{
    const char *status = obj_str(r, "status"), *error = obj_str(r, "error");
    zw_write_result_t wr = {0};
    char details[200] = "", msg[300];
    json_object *v;

    wr.user_id = obj_int(r, "id");
    if (!item_failed(r)) {
        wr.how = ZW_WRITTEN_OK;
        wr.matched_existing = op == BULK_CREATE_OR_UPDATE && strcmp(status, "Updated") == 0;
    } else if (error &&
               (strcmp(error, "RecordNotFound") == 0 || strcmp(error, "UserNotFound") == 0)) {
        wr.how = ZW_WRITTEN_NOT_FOUND;
    } else {
        if (json_object_object_get_ex(r, "details", &v) && v)
            snprintf(details, sizeof(details), "%s",
                     json_object_is_type(v, json_type_string)
                         ? json_object_get_string(v)
                         : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
        snprintf(msg, sizeof(msg), "Zendesk refused the change in bulk job %s%s%s", zid,
                 details[0] ? ": " : "", details);
        wr.how = ZW_WRITTEN_FAILED;
        wr.code = error ? error : "BulkItemFailed";
        wr.msg = msg;
    }
    zw_provision_written(job, &wr);
}

/* Pairs each of the job's events with its item's result, by index where
 * Zendesk gives one and it agrees, else by what the result names. */
static void match_results(zw_job_t **slot, size_t n, json_object *results, size_t n_results,
                          json_object **res_for)
{
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
}

/* A job is over (completed, failed, or lost): each event takes its item's
 * result; an event without one tries again. */
static void bulk_end(bulk_t *b, json_object *js, const char *how)
{
    bulk_tenant_t *bt = b->bt;
    zw_env_t *env = env_of(bt);
    json_object *results = NULL, *res_for[BULK_MAX_ITEMS] = {0};
    zw_job_t *slot[BULK_MAX_ITEMS];
    bulk_op_t op = b->op;
    char zid[sizeof(b->zid)], msg[300];
    size_t n_results = 0, n = b->n, failed = 0;
    const char *message = obj_str(js, "message");

    memcpy(slot, b->jobs, sizeof(slot[0]) * n);
    snprintf(zid, sizeof(zid), "%s", b->zid);
    if (js && json_object_object_get_ex(js, "results", &results) &&
        json_object_is_type(results, json_type_array))
        n_results = json_object_array_length(results);
    match_results(slot, n, results, n_results, res_for);
    zw_metrics_bulk_job(env->metrics, name_of(bt), OP_NAMES[op], how);
    if (bt->wait_completion) {
        bt->wait_completion = false;
        bt->blocked_until = 0; /* a slot is free again */
    }
    bulk_free(b); /* its events are in slot[] */
    snprintf(msg, sizeof(msg), "bulk job %s %s%s%s", zid, how, message ? ": " : "",
             message ? message : "");
    for (size_t i = 0; i < n; i++) {
        if (!slot[i])
            continue; /* revoked meanwhile */
        if (res_for[i]) {
            if (item_failed(res_for[i]))
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
    zw_metrics_bulk_items(env->metrics, name_of(bt), OP_NAMES[op], "failed", (long)failed);
    ZW_LOG(strcmp(how, "completed") == 0 ? ZW_LOG_INFO : ZW_LOG_WARN, "bulk job ended",
           ZW_LF_STR("tenant", name_of(bt)), ZW_LF_STR("op", OP_NAMES[op]),
           ZW_LF_STR("job_id", zid), ZW_LF_STR("status", how), ZW_LF_INT("items", n),
           ZW_LF_INT("results", n_results), ZW_LF_INT("failed_items", failed));
}

/* The status a poll's answer gives for b, or NULL when it does not list it. */
static json_object *status_of(const bulk_t *b, json_object *list, json_object *one)
{
    if (one && obj_str(one, "id") && strcmp(obj_str(one, "id"), b->zid) == 0)
        return one;
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        json_object *s = json_object_array_get_idx(list, i);
        const char *id = obj_str(s, "id");
        if (id && strcmp(id, b->zid) == 0)
            return s;
    }
    return NULL;
}

/* Each polled job moves on by what the poll says of it. */
static void polled(bulk_tenant_t *bt, json_object *list, json_object *one, zw_class_t cls,
                   int64_t now)
{
    const zw_config_t *c = env_of(bt)->cfg;
    bulk_t *b, *next;

    for (b = bt->head; b; b = next) {
        json_object *js;
        const char *status;

        next = b->next;
        if (!b->polled)
            continue;
        b->polled = false;
        js = status_of(b, list, one);
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
}

/* A poll that could not be read: the jobs are asked about again later. */
static bool poll_refused(bulk_tenant_t *bt, const zw_http_t *req, zw_class_t cls, int64_t now)
{
    bulk_t *b, *next;

    if (cls == ZW_CLASS_RATE_LIMITED) {
        rate_limited(bt, req, now);
        return true;
    }
    if (cls == ZW_CLASS_AUTH && req->status == 401 && zw_auth_is_oauth(zw_tenant_auth(bt->t))) {
        token_refused(bt, bt->poll_token_gen); /* the pump waits for the new token */
        bt->poll_due = now;
        return true;
    }
    if (cls != ZW_CLASS_AUTH)
        return false;
    /* Jobs we cannot see are as good as lost: their events look up again. */
    refuse_bulk(bt, req, now, true);
    for (b = bt->head; b; b = next) {
        next = b->next;
        if (b->zid[0])
            bulk_end(b, NULL, "lost");
    }
    return true;
}

static void poll_answer(zw_http_t *req, void *arg)
{
    bulk_tenant_t *bt = arg;
    zw_env_t *env = env_of(bt);
    const zw_config_t *c = env->cfg;
    zw_class_t cls = zw_retry_classify(req->status, req->curl_code);
    int64_t now = zw_loop_now_ms();
    json_object *root = NULL, *list = NULL, *one = NULL;

    bt->poll_in_flight = false;
    bt->poll_due = now + c->worker.bulk_poll_ms;
    if (poll_refused(bt, req, cls, now))
        return;
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
        bt->poll_failures++;
        bt->poll_due = now + zw_backoff_delay_ms(bt->poll_failures, c->worker.bulk_poll_ms,
                                                 c->worker.backoff_max_ms, &env->rng);
        json_object_put(root);
        ZW_LOG(ZW_LOG_DEBUG, "job status poll failed", ZW_LF_STR("tenant", name_of(bt)),
               ZW_LF_INT("http_status", req->status), ZW_LF_INT("curl_code", req->curl_code));
        return;
    }
    bt->poll_failures = 0;
    polled(bt, list, one, cls, now);
    json_object_put(root);
}

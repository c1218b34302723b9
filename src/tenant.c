/* The tenants and their schedulers: for each, three lanes take turns for the
 * rate budget (lookups, single-user writes, snapshot pages), so neither
 * provisioning nor a snapshot starves the other; a lane waiting on its own
 * limit (the write limit, the export limit) lets the others go. Responses
 * come back through one frame that counts them and corrects the budget. */
#include "zw/tenant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "zw/log.h"

#include "env.h"

struct zw_tenant_s {
    zw_tenants_t *ts;
    size_t index;
    const zw_tenant_config_t *cfg;
    zw_auth_t *auth;
    zw_ratelimit_t *budget, *writes, *exports;
    zw_lane_item_t *head[ZW_N_LANES], *tail[ZW_N_LANES];
    int next_lane;
    uint64_t wake_timer;
    int64_t wake_due;
    int waiting[ZW_TENANT_CLASSES];
    int64_t ready_at[ZW_TENANT_CLASSES];
    int n_looking;
    int64_t self_id;      /* the user the OAuth token acts as; 0 until known */
    bool self_asking;     /* GET /users/me in flight */
    int64_t self_retry_ms; /* no new question before this */
    int n_events;   /* provisioning events in memory */
    int n_deferred; /* events deferred (read again later) */
};

struct zw_tenants_s {
    zw_env_t *env;
    zw_tenant_t *t;
    size_t n;
    zw_tenant_policy_t policy;
    int held;
    size_t start; /* pump_all's rotation */
    double share;
};

/* ---- lanes ---- */

static int classify(zw_tenant_t *t, const zw_lane_item_t *item)
{
    const zw_tenant_policy_t *p = &t->ts->policy;
    int cls = p->classify ? p->classify(t, item, p->bulk_arg) : 0;

    return cls > 0 && cls < ZW_TENANT_CLASSES ? cls : 0;
}

static void count(zw_tenant_t *t, const zw_lane_item_t *item, int delta)
{
    t->waiting[item->cls] += delta;
    /* The first item of a class to wait gives the others a moment to join it. */
    if (item->cls != 0 && delta > 0 && t->waiting[item->cls] == 1)
        t->ready_at[item->cls] = zw_loop_now_ms() + t->ts->env->cfg->worker.bulk_linger_ms;
}

void zw_tenant_push(zw_tenant_t *t, zw_lane_item_t *item, int lane)
{
    item->next = NULL;
    item->lane = lane;
    item->in_lane = true;
    item->cls = classify(t, item);
    count(t, item, 1);
    if (t->tail[lane])
        t->tail[lane]->next = item;
    else
        t->head[lane] = item;
    t->tail[lane] = item;
    zw_tenant_pump(t);
}

zw_lane_item_t *zw_tenant_lane_head(zw_tenant_t *t, int lane)
{
    return t->head[lane];
}

void zw_tenant_unlink(zw_tenant_t *t, zw_lane_item_t *item, zw_lane_item_t *prev)
{
    int lane = item->lane;

    if (prev)
        prev->next = item->next;
    else
        t->head[lane] = item->next;
    if (t->tail[lane] == item)
        t->tail[lane] = prev;
    item->next = NULL;
    item->in_lane = false;
    count(t, item, -1);
}

zw_lane_item_t *zw_tenant_pop(zw_tenant_t *t, int lane)
{
    zw_lane_item_t *item = t->head[lane];

    if (item)
        zw_tenant_unlink(t, item, NULL);
    return item;
}

void zw_tenant_remove(zw_tenant_t *t, zw_lane_item_t *item)
{
    zw_lane_item_t *prev = NULL, *k;

    if (!item->in_lane)
        return;
    for (k = t->head[item->lane]; k && k != item; k = k->next)
        prev = k;
    if (k)
        zw_tenant_unlink(t, item, prev);
    item->in_lane = false;
    item->next = NULL;
}

int zw_tenant_waiting(const zw_tenant_t *t, int cls)
{
    return cls >= 0 && cls < ZW_TENANT_CLASSES ? t->waiting[cls] : 0;
}

int64_t zw_tenant_ready_at(const zw_tenant_t *t, int cls)
{
    return cls >= 0 && cls < ZW_TENANT_CLASSES ? t->ready_at[cls] : 0;
}

void zw_tenant_recount(zw_tenant_t *t)
{
    memset(t->waiting, 0, sizeof(t->waiting));
    for (int lane = 0; lane < ZW_N_LANES; lane++) {
        for (zw_lane_item_t *item = t->head[lane]; item; item = item->next) {
            item->cls = classify(t, item);
            count(t, item, 1);
        }
    }
}

void zw_tenant_reclassify(zw_tenant_t *t, zw_lane_item_t *item)
{
    count(t, item, -1);
    item->cls = classify(t, item);
    count(t, item, 1);
}

int zw_tenant_looking(const zw_tenant_t *t)
{
    return t->n_looking;
}

int zw_tenant_events(const zw_tenant_t *t)
{
    return t->n_events;
}

void zw_tenant_add_events(zw_tenant_t *t, int delta)
{
    t->n_events += delta;
}

int zw_tenant_deferred(const zw_tenant_t *t)
{
    return t->n_deferred;
}

void zw_tenant_add_deferred(zw_tenant_t *t, int delta)
{
    t->n_deferred += delta;
}

void zw_tenant_add_looking(zw_tenant_t *t, int delta)
{
    t->n_looking += delta;
}

/* ---- pumping ---- */

static void on_wake(void *arg)
{
    zw_tenant_t *t = arg;

    t->wake_timer = 0;
    zw_tenant_pump(t);
}

void zw_tenant_wake_in(zw_tenant_t *t, int64_t wait_ms)
{
    int64_t due = zw_loop_now_ms() + wait_ms;
    zw_timers_t *timers = zw_loop_timers(t->ts->env->loop);

    if (t->wake_timer && t->wake_due <= due)
        return;
    if (t->wake_timer)
        zw_timers_cancel(timers, t->wake_timer);
    t->wake_due = due;
    t->wake_timer = zw_timers_add(timers, due, on_wake, t);
}

/* Credentials refused: what waits fails now rather than wait for nothing. */
static void fail_waiting(zw_tenant_t *t, long http_status, const char *code)
{
    const zw_tenant_policy_t *p = &t->ts->policy;

    for (int lane = 0; lane < ZW_N_LANES; lane++) {
        zw_lane_item_t *item;
        while ((item = zw_tenant_pop(t, lane)))
            p->refused(t, item, http_status, code, p->work_arg);
    }
}

/* The extra limit a lane's next request is under, beyond the account budget. */
static zw_ratelimit_t *lane_limit(zw_tenant_t *t, int lane)
{
    if (lane == ZW_LANE_WRITE)
        return t->writes;
    if (lane == ZW_LANE_SYNC && t->head[lane]->export_page)
        return t->exports;
    return NULL;
}

/* One request from the lanes, taking turns: 1 sent, 0 nothing could go
 * (a wake-up is set where a lane waits on its limit), -1 the budget is
 * spent (a wake-up is set). */
static int send_from_lanes(zw_tenant_t *t, int64_t now)
{
    const zw_tenant_policy_t *p = &t->ts->policy;
    int64_t lane_wait = -1;

    for (int k = 0; k < ZW_N_LANES; k++) {
        int lane = (t->next_lane + k) % ZW_N_LANES;
        zw_ratelimit_t *extra;
        int64_t wait;

        if (!t->head[lane] || (p->holds && p->holds(t, t->head[lane], p->bulk_arg)))
            continue; /* a bulk job takes it soon */
        wait = zw_ratelimit_take(t->budget, now);
        if (wait > 0) {
            zw_tenant_wake_in(t, wait);
            return -1;
        }
        extra = lane_limit(t, lane);
        if (extra) {
            int64_t ewait = zw_ratelimit_take(extra, now);
            if (ewait > 0) {
                /* This lane waits; the others may still go. */
                zw_ratelimit_refund(t->budget);
                if (lane_wait < 0 || ewait < lane_wait)
                    lane_wait = ewait;
                continue;
            }
        }
        t->next_lane = (lane + 1) % ZW_N_LANES;
        p->send(t, lane, p->work_arg);
        return 1;
    }
    if (lane_wait > 0)
        zw_tenant_wake_in(t, lane_wait);
    return 0;
}

void zw_tenant_pump(zw_tenant_t *t)
{
    zw_tenants_t *ts = t->ts;
    zw_env_t *env = ts->env;
    const zw_tenant_policy_t *p = &ts->policy;
    int64_t now = zw_loop_now_ms();
    zw_cred_t cred;

    if (ts->held || !p->send)
        return;
    cred = zw_auth_check(t->auth);
    if (cred == ZW_CRED_REFUSED)
        fail_waiting(t, 0, "OAuthGrantRefused");
    if (cred != ZW_CRED_READY)
        return;
    while (zw_loop_http_in_flight(env->loop) < (size_t)env->cfg->worker.max_in_flight) {
        int bulk = p->before_lanes ? p->before_lanes(t, now, p->bulk_arg) : 0;

        if (bulk < 0)
            return;
        if (bulk > 0)
            continue;
        if (send_from_lanes(t, now) <= 0)
            return;
    }
}

void zw_tenants_pump_all(zw_tenants_t *ts)
{
    if (ts->n == 0)
        return;
    ts->start = (ts->start + 1) % ts->n;
    for (size_t i = 0; i < ts->n; i++)
        zw_tenant_pump(&ts->t[(ts->start + i) % ts->n]);
}

void zw_tenants_hold(zw_tenants_t *ts)
{
    ts->held++;
}

void zw_tenants_release(zw_tenants_t *ts)
{
    if (ts->held > 0)
        ts->held--;
    zw_tenants_pump_all(ts);
}

/* ---- requests ---- */

static void response_frame(zw_http_t *req, void *arg)
{
    zw_tenant_t *t = arg;
    zw_tenants_t *ts = t->ts;

    /* Events this response moves on are pumped once, at the end: a batch's
     * or a bulk job's events then reach their lanes together. */
    zw_tenants_hold(ts);
    zw_metrics_http_request(ts->env->metrics, t->cfg->subdomain, zw_http_metric_endpoint(req),
                            req->status, zw_http_seconds(req));
    if (req->rl_remaining >= 0)
        zw_ratelimit_observe(t->budget, zw_loop_now_ms(), req->rl_remaining, req->rl_limit,
                             req->rl_reset, ts->share);
    if (req->on_done)
        req->on_done(req, req->done_arg);
    zw_http_destroy(req);
    zw_tenants_release(ts);
}

zw_http_t *zw_tenant_send(zw_tenant_t *t, zw_http_t *req, zw_http_done_fn fn, void *arg)
{
    if (!req)
        return NULL;
    zw_http_on_done(req, fn, arg);
    req->frame = response_frame;
    req->frame_arg = t;
    if (zw_loop_http_start(t->ts->env->loop, req) != 0) {
        zw_http_destroy(req);
        return NULL;
    }
    t->ts->env->stats.http_requests++;
    return req;
}

/* ---- the table ---- */

static void auth_hold(void *arg)
{
    zw_tenant_t *t = arg;
    zw_tenants_hold(t->ts);
}

static void ask_self(zw_tenant_t *t);

/* A grant ended: with a token, learn whom it acts as before a leaver needs
 * to know (zw_tenant_is_self). */
static void auth_release(void *arg)
{
    zw_tenant_t *t = arg;

    if (t->cfg->auth_type != ZW_AUTH_API_TOKEN && t->self_id <= 0)
        ask_self(t);
    zw_tenants_release(t->ts);
}

static void auth_refused(void *arg, long http_status, const char *code)
{
    fail_waiting(arg, http_status, code);
}

static double burst_of(double per_minute, double divisor)
{
    return per_minute / divisor > 1 ? per_minute / divisor : 1;
}

static int tenant_init(zw_tenants_t *ts, zw_tenant_t *t, size_t i)
{
    const zw_tenant_config_t *tc = &ts->env->cfg->zendesk.tenants[i];
    int64_t now = zw_loop_now_ms();
    zw_auth_hooks_t hooks = {auth_hold, auth_release, auth_refused, t};

    t->ts = ts;
    t->index = i;
    t->cfg = tc;
    t->budget = zw_ratelimit_new(tc->plan_rpm, burst_of(tc->plan_rpm, 12), now);
    /* A burst of a tenth of a second: with a high limit, writes finishing
     * in the same millisecond must not wait for each other. */
    t->writes = zw_ratelimit_new(tc->single_write_per_minute,
                                 burst_of(tc->single_write_per_minute, 600), now);
    /* Zendesk allows 10 incremental export pages a minute. */
    t->exports = zw_ratelimit_new(10, 1, now);
    t->auth = zw_auth_new(ts->env, tc, &hooks);
    return t->budget && t->writes && t->exports && t->auth ? 0 : -1;
}

zw_tenants_t *zw_tenants_new(zw_env_t *env, char *errstr, size_t errstr_size)
{
    zw_tenants_t *ts = calloc(1, sizeof(*ts));

    if (!ts)
        goto oom;
    ts->env = env;
    ts->share = 1.0;
    ts->n = env->cfg->zendesk.n_tenants;
    ts->t = calloc(ts->n ? ts->n : 1, sizeof(zw_tenant_t));
    if (!ts->t)
        goto oom;
    for (size_t i = 0; i < ts->n; i++) {
        if (tenant_init(ts, &ts->t[i], i) != 0)
            goto oom;
    }
    return ts;
oom:
    zw_tenants_destroy(ts);
    snprintf(errstr, errstr_size, "out of memory setting up tenants");
    return NULL;
}

void zw_tenants_destroy(zw_tenants_t *ts)
{
    if (!ts)
        return;
    for (size_t i = 0; ts->t && i < ts->n; i++) {
        zw_tenant_t *t = &ts->t[i];
        if (t->wake_timer)
            zw_timers_cancel(zw_loop_timers(ts->env->loop), t->wake_timer);
        zw_auth_destroy(t->auth);
        zw_ratelimit_destroy(t->budget);
        zw_ratelimit_destroy(t->writes);
        zw_ratelimit_destroy(t->exports);
    }
    free(ts->t);
    free(ts);
}

void zw_tenants_set_policy(zw_tenants_t *ts, const zw_tenant_policy_t *policy)
{
    ts->policy = *policy;
}

size_t zw_tenants_count(const zw_tenants_t *ts)
{
    return ts->n;
}

zw_tenant_t *zw_tenants_at(zw_tenants_t *ts, size_t i)
{
    return i < ts->n ? &ts->t[i] : NULL;
}

zw_tenant_t *zw_tenants_find(zw_tenants_t *ts, const char *subdomain)
{
    const zw_tenant_config_t *tc = subdomain ? zw_config_tenant(ts->env->cfg, subdomain) : NULL;

    return tc ? &ts->t[tc - ts->env->cfg->zendesk.tenants] : NULL;
}

void zw_tenants_set_share(zw_tenants_t *ts, double share)
{
    int64_t now = zw_loop_now_ms();

    ts->share = share;
    for (size_t i = 0; i < ts->n; i++) {
        zw_tenant_t *t = &ts->t[i];
        double rpm = t->cfg->plan_rpm * share, wrpm = t->cfg->single_write_per_minute * share;
        zw_ratelimit_set_rate(t->budget, rpm, burst_of(rpm, 12), now);
        zw_ratelimit_set_rate(t->writes, wrpm, burst_of(wrpm, 600), now);
    }
}

double zw_tenants_share(const zw_tenants_t *ts)
{
    return ts->share;
}

void zw_tenants_publish(zw_tenants_t *ts, int64_t now)
{
    for (size_t i = 0; i < ts->n; i++) {
        zw_tenant_t *t = &ts->t[i];
        zw_metrics_set_budget(ts->env->metrics, t->cfg->subdomain,
                              zw_ratelimit_available(t->budget, now), t->cfg->plan_rpm * ts->share);
        zw_metrics_set_tenant_events(ts->env->metrics, t->cfg->subdomain, t->n_events,
                                     t->n_deferred);
    }
}

/* ---- the worker's own identity ---- */

static int64_t user_id_of(json_object *user)
{
    json_object *v;

    return user && json_object_object_get_ex(user, "id", &v) &&
                   json_object_is_type(v, json_type_int)
               ? json_object_get_int64(v)
               : 0;
}

static void self_answer(zw_http_t *req, void *arg)
{
    zw_tenant_t *t = arg;
    json_object *root = req->status == 200 ? zw_http_json(req) : NULL, *user = NULL;

    t->self_asking = false;
    if (root && json_object_object_get_ex(root, "user", &user))
        t->self_id = user_id_of(user);
    if (t->self_id > 0)
        ZW_LOG(ZW_LOG_INFO, "the worker's own Zendesk user is known",
               ZW_LF_STR("tenant", t->cfg->subdomain), ZW_LF_INT("user_id", t->self_id));
    else
        ZW_LOG(ZW_LOG_WARN, "cannot learn the worker's own Zendesk user (GET /api/v2/users/me)",
               ZW_LF_STR("tenant", t->cfg->subdomain), ZW_LF_INT("http_status", req->status));
    json_object_put(root);
}

static void ask_self(zw_tenant_t *t)
{
    zw_env_t *env = t->ts->env;
    const char *authz = zw_auth_header(t->auth);
    int64_t now = zw_loop_now_ms();
    char errstr[256];
    zw_http_t *req;

    if (t->self_asking || now < t->self_retry_ms || !authz)
        return;
    t->self_retry_ms = now + 5000;
    req = zw_http_new(&env->http, t->cfg->subdomain, "GET", "/api/v2/users/me", NULL, authz,
                      ZW_ENDPOINT_READ, errstr, sizeof(errstr));
    if (zw_tenant_send(t, req, self_answer, t))
        t->self_asking = true;
}

int zw_tenant_is_self(zw_tenant_t *t, json_object *user)
{
    json_object *v;

    if (!user)
        return 0;
    if (t->cfg->auth_type == ZW_AUTH_API_TOKEN) {
        const char *email = json_object_object_get_ex(user, "email", &v) &&
                                    json_object_is_type(v, json_type_string)
                                ? json_object_get_string(v)
                                : NULL;
        return email && t->cfg->email && strcasecmp(email, t->cfg->email) == 0;
    }
    if (t->self_id > 0)
        return user_id_of(user) == t->self_id;
    ask_self(t);
    return -1;
}

bool zw_tenant_throttled(const zw_tenant_t *t, int64_t now)
{
    double per_s = t->cfg->plan_rpm * t->ts->share / 60.0;

    if (zw_ratelimit_blocked_until(t->budget) > now + 1000 ||
        zw_ratelimit_blocked_until(t->writes) > now + 1000)
        return true;
    if (t->n_events == 0)
        return false;
    return per_s <= 0 || t->n_events / per_s > ZW_TENANT_THROTTLED_S;
}

void zw_tenants_backlog(const zw_tenants_t *ts, int64_t now, zw_tenants_backlog_t *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < ts->n; i++) {
        const zw_tenant_t *t = &ts->t[i];
        if (zw_tenant_throttled(t, now)) {
            out->throttled_held += t->n_events;
            out->throttled_deferred += t->n_deferred;
        } else {
            out->ready_held += t->n_events;
            out->ready_deferred += t->n_deferred;
        }
    }
}

size_t zw_tenant_index(const zw_tenant_t *t)
{
    return t->index;
}

const zw_tenant_config_t *zw_tenant_config(const zw_tenant_t *t)
{
    return t->cfg;
}

const char *zw_tenant_name(const zw_tenant_t *t)
{
    return t->cfg->subdomain;
}

zw_auth_t *zw_tenant_auth(zw_tenant_t *t)
{
    return t->auth;
}

zw_ratelimit_t *zw_tenant_budget(zw_tenant_t *t)
{
    return t->budget;
}

zw_ratelimit_t *zw_tenant_writes(zw_tenant_t *t)
{
    return t->writes;
}

zw_ratelimit_t *zw_tenant_exports(zw_tenant_t *t)
{
    return t->exports;
}

/* The configured tenants and each tenant's scheduler: its rate budgets
 * (every request, single-user writes, incremental export pages), its
 * credentials, and three lanes that take turns for the budget: lookups,
 * writes and snapshot pages. Work waits in a lane as an embedded
 * zw_lane_item_t, so this module never sees what the work is; what to send
 * and what may hold work back are the policy's (seam 4). Every Zendesk
 * request of a tenant goes out through zw_tenant_send(). */
#ifndef ZW_TENANT_H
#define ZW_TENANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zw/auth.h"
#include "zw/config.h"
#include "zw/ratelimit.h"
#include "zw/zendesk.h"

#include <json-c/json.h>

struct zw_env_s;
typedef struct zw_tenant_s zw_tenant_t;
typedef struct zw_tenants_s zw_tenants_t;

enum { ZW_LANE_READ = 0, ZW_LANE_WRITE = 1, ZW_LANE_SYNC = 2, ZW_N_LANES = 3 };

/* Classes of waiting work a policy counts (the bulk path's kinds); 0 is
 * "none". */
#define ZW_TENANT_CLASSES 4

/* A piece of work waiting in a lane, embedded in it (tenant.c writes every
 * field but export_page). */
typedef struct zw_lane_item_s {
    struct zw_lane_item_s *next;
    int lane;
    bool in_lane;
    int cls;     /* the policy's classify() at push */
    bool export_page; /* set by the owner: a sync page under the export limit */
} zw_lane_item_t;

/* What the tenants ask of the work above them. before_lanes runs first on
 * every turn of a tenant's pump (returns 1 when it sent a request, 0 when
 * not, -1 when the budget is spent and a wake-up is set); holds says an item
 * waits for something other than the budget (a bulk job soon); classify
 * gives an item its class when pushed. send sends the head of lane (and
 * whatever it takes along), taking them out of the lane itself; refused
 * fails an item taken out of its lane because the tenant's credentials were
 * refused. Any hook may be NULL except send and refused. */
typedef struct zw_tenant_policy_s {
    int (*before_lanes)(zw_tenant_t *t, int64_t now, void *arg);
    bool (*holds)(zw_tenant_t *t, const zw_lane_item_t *item, void *arg);
    int (*classify)(zw_tenant_t *t, const zw_lane_item_t *item, void *arg);
    void *bulk_arg;
    void (*send)(zw_tenant_t *t, int lane, void *arg);
    void (*refused)(zw_tenant_t *t, zw_lane_item_t *item, long http_status, const char *code,
                    void *arg);
    void *work_arg;
} zw_tenant_policy_t;

/* The tenants of env's configuration (env lent for their lifetime), with
 * their budgets at the full plan and their credentials. NULL with errstr
 * when out of memory. */
zw_tenants_t *zw_tenants_new(struct zw_env_s *env, char *errstr, size_t errstr_size);

/* Accepts NULL. */
void zw_tenants_destroy(zw_tenants_t *ts);

/* Sets the policy (copied). Until then nothing is sent. */
void zw_tenants_set_policy(zw_tenants_t *ts, const zw_tenant_policy_t *policy);

size_t zw_tenants_count(const zw_tenants_t *ts);
zw_tenant_t *zw_tenants_at(zw_tenants_t *ts, size_t i);

/* The configured tenant of this subdomain, or NULL: only configured tenants
 * are ever reached. */
zw_tenant_t *zw_tenants_find(zw_tenants_t *ts, const char *subdomain);

/* This replica's share of every tenant (0..1]: the budgets' rates follow. */
void zw_tenants_set_share(zw_tenants_t *ts, double share);
double zw_tenants_share(const zw_tenants_t *ts);

/* Pumping is held while a consumer poll's events or a response's events are
 * handed out; the last release pumps every tenant once, so they reach their
 * lanes together (a lookup batch, a bulk job) before anything is sent. */
void zw_tenants_hold(zw_tenants_t *ts);
void zw_tenants_release(zw_tenants_t *ts);

/* Pumps every tenant, starting at a rotating one so none is always last. */
void zw_tenants_pump_all(zw_tenants_t *ts);

/* Publishes each tenant's budget gauges. */
void zw_tenants_publish(zw_tenants_t *ts, int64_t now);

/* Whether the tenant's work waits on the tenant itself: blocked by a 429
 * for more than a second, or holding more events than its share of the
 * budget sends in ZW_TENANT_THROTTLED_S (a tenant working through a burst
 * at a good rate is not throttled; one with an hour of work in memory is).
 * More replicas would not make it go faster: the budget is the account's,
 * shared out among them. */
#define ZW_TENANT_THROTTLED_S 30
bool zw_tenant_throttled(const zw_tenant_t *t, int64_t now);

/* Whether user (a Zendesk user object) is the one the worker acts as: with
 * an API token, the configured e-mail's user; with OAuth, the user
 * GET /api/v2/users/me names, asked on first need. Returns 1 or 0, or -1
 * while that is not known yet (the question is then under way: ask again
 * after a backoff). A leaver for this user would lock the worker out. */
int zw_tenant_is_self(zw_tenant_t *t, json_object *user);

/* The provisioning events of every tenant, in memory (held) and deferred,
 * split by whether their tenant is throttled. */
typedef struct zw_tenants_backlog_s {
    long ready_held, ready_deferred;
    long throttled_held, throttled_deferred;
} zw_tenants_backlog_t;

void zw_tenants_backlog(const zw_tenants_t *ts, int64_t now, zw_tenants_backlog_t *out);

size_t zw_tenant_index(const zw_tenant_t *t);
const zw_tenant_config_t *zw_tenant_config(const zw_tenant_t *t);
const char *zw_tenant_name(const zw_tenant_t *t);
zw_auth_t *zw_tenant_auth(zw_tenant_t *t);
zw_ratelimit_t *zw_tenant_budget(zw_tenant_t *t);  /* every API request */
zw_ratelimit_t *zw_tenant_writes(zw_tenant_t *t);  /* single-user writes */
zw_ratelimit_t *zw_tenant_exports(zw_tenant_t *t); /* incremental export pages */

/* Puts item at the end of lane and pumps (unless held). */
void zw_tenant_push(zw_tenant_t *t, zw_lane_item_t *item, int lane);

/* The first item of lane, or NULL; items follow through ->next. */
zw_lane_item_t *zw_tenant_lane_head(zw_tenant_t *t, int lane);

/* Takes the first item out of lane; NULL when empty. */
zw_lane_item_t *zw_tenant_pop(zw_tenant_t *t, int lane);

/* Takes item out of its lane, prev being the item before it there (NULL
 * for the head). */
void zw_tenant_unlink(zw_tenant_t *t, zw_lane_item_t *item, zw_lane_item_t *prev);

/* Takes item out of its lane wherever it is; no-op when not in a lane. */
void zw_tenant_remove(zw_tenant_t *t, zw_lane_item_t *item);

/* Items of class cls waiting in the lanes, and when the first of them began
 * to wait plus worker.bulk_linger_ms (the others may join it until then). */
int zw_tenant_waiting(const zw_tenant_t *t, int cls);
int64_t zw_tenant_ready_at(const zw_tenant_t *t, int cls);

/* Classifies every waiting item again (the policy changed its mind), or
 * one item. */
void zw_tenant_recount(zw_tenant_t *t);
void zw_tenant_reclassify(zw_tenant_t *t, zw_lane_item_t *item);

/* Events between consume and their plan: writes still to come. */
int zw_tenant_looking(const zw_tenant_t *t);
void zw_tenant_add_looking(zw_tenant_t *t, int delta);

/* Provisioning events of the tenant in memory (consumed, not done), and
 * events deferred: read, dropped from memory, to be read again. */
int zw_tenant_events(const zw_tenant_t *t);
void zw_tenant_add_events(zw_tenant_t *t, int delta);
int zw_tenant_deferred(const zw_tenant_t *t);
void zw_tenant_add_deferred(zw_tenant_t *t, int delta);
/* Sends what the budget, the credentials and the in-flight cap allow. */
void zw_tenant_pump(zw_tenant_t *t);

/* Pumps the tenant again in wait_ms (the earliest wake-up wins). */
void zw_tenant_wake_in(zw_tenant_t *t, int64_t wait_ms);

/* Starts req (owned from here) for this tenant. When it finishes, pumping is
 * held, the answer is counted in the metrics and its rate-limit headers
 * correct the budget, then fn(req, arg) runs, then req is destroyed and the
 * tenants pumped. Returns req, or NULL (req destroyed) when it could not
 * start; req may be NULL (returns NULL). */
zw_http_t *zw_tenant_send(zw_tenant_t *t, zw_http_t *req, zw_http_done_fn fn, void *arg);

#endif

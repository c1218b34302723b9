/* The rebalance callback: cooperative (incremental) assignment. A revoked
 * partition's unfinished jobs leave their key queues, tenant lanes and bulk
 * jobs; one whose request is in flight is STOPPED and ends quietly when the
 * answer comes; finished ones still deliver their results. */
#include "rebalance.h"

#include <stdlib.h>
#include <string.h>

#include "zw/log.h"
#include "zw/metrics.h"

struct zw_rebalance_s {
    zw_core_t *core;
    zw_admin_t *admin;
    zw_consume_t *consume;
    size_t n_assigned; /* of the provisioning topic */
    int topic_partitions; /* the provisioning topic's, last known; 0 before */
    bool share_stale;     /* the last count failed: try again from the tick */
    int64_t share_retry_ms;
    bool ever_assigned;
    bool stopping;
};

zw_rebalance_t *zw_rebalance_new(zw_core_t *core, zw_admin_t *admin)
{
    zw_rebalance_t *r = calloc(1, sizeof(*r));

    if (r) {
        r->core = core;
        r->admin = admin;
    }
    return r;
}

void zw_rebalance_destroy(zw_rebalance_t *r)
{
    free(r);
}

void zw_rebalance_set_consume(zw_rebalance_t *r, zw_consume_t *consume)
{
    r->consume = consume;
}

void zw_rebalance_set_stopping(zw_rebalance_t *r)
{
    r->stopping = true;
}

bool zw_rebalance_ever_assigned(const zw_rebalance_t *r)
{
    return r->ever_assigned;
}

/* The provisioning topic's partitions in parts: only they divide a
 * tenant's budget (sync requests take turns inside it). */
static size_t provisioning_count(const zw_rebalance_t *r, const rd_kafka_topic_partition_list_t *parts)
{
    const char *topic = r->core->env.cfg->kafka.topic_provisioning;
    size_t n = 0;

    for (int i = 0; i < parts->cnt; i++)
        if (strcmp(parts->elems[i].topic, topic) == 0)
            n++;
    return n;
}

/* The provisioning topic's partition count from the broker, 0 when it does
 * not answer within timeout_ms. */
static int topic_partitions(zw_rebalance_t *r, rd_kafka_t *rk, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, r->core->env.cfg->kafka.topic_provisioning,
                                               NULL);
    int total = 0;

    if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md && md->topic_cnt == 1 && !md->topics[0].err)
        total = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    return total;
}

/* Tenants' events are spread over partitions by key, so this replica's
 * share of a tenant's work is its share of partitions. Without an answer
 * about the partition count, the last one known serves; before any, the
 * smallest share (never the whole budget: every replica would think it owns
 * it) until the tick's next try. */
static void update_share(zw_rebalance_t *r, rd_kafka_t *rk, int timeout_ms)
{
    int total = topic_partitions(r, rk, timeout_ms);
    double share;

    r->share_stale = total <= 0;
    r->share_retry_ms = zw_loop_now_ms() + 5000;
    if (total > 0)
        r->topic_partitions = total;
    else
        ZW_LOG(ZW_LOG_WARN, "cannot read the provisioning topic's partition count",
               ZW_LF_INT("last_known", r->topic_partitions));
    total = r->topic_partitions;
    share = total > 0 ? (double)r->n_assigned / total : 0.01;
    if (share > 1.0)
        share = 1.0;
    if (share < 0.01)
        share = 0.01;
    zw_tenants_set_share(r->core->jobs.tenants, share);
    ZW_LOG(ZW_LOG_INFO, "assignment changed", ZW_LF_INT("partitions", (long long)r->n_assigned),
           ZW_LF_INT("topic_partitions", total),
           ZW_LF_INT("share_permille", (long long)(share * 1000)));
}

/* Drops one revoked job's work that has not reached Zendesk. */
static void drop_job(zw_job_t *job)
{
    if (zw_walk_running(job)) {
        /* A walk handed back ends without an end marker: the new owner
         * makes a new, complete snapshot. */
        zw_walk_stop(job, NULL);
        return;
    }
    if (job->state == ZW_JOB_PRODUCING || job->state == ZW_JOB_STOPPED)
        return; /* finished: its records are on their way */
    zw_bulk_forget(job);
    zw_job_detach(job);
    if (job->http)
        zw_job_set_state(job, ZW_JOB_STOPPED); /* freed when the answer comes */
    else
        zw_job_free(job);
}

static void forget_deferred(const char *tenant, void *arg)
{
    zw_tenant_t *t = zw_tenants_find(arg, tenant);

    if (t)
        zw_tenant_add_deferred(t, -1);
}

static void revoke(zw_rebalance_t *r, zw_part_t *part)
{
    zw_jobs_t *js = &r->core->jobs;
    zw_part_link_t *link, *next;

    for (link = zw_part_links(part); link; link = link->next)
        zw_keyq_drop(js->keyqs, &ZW_JOB_OF(link, plink)->klink);
    for (link = zw_part_links(part); link; link = next) {
        next = link->next;
        drop_job(ZW_JOB_OF(link, plink));
    }
    /* Deferred events go with the partition: the new owner reads them. */
    zw_part_deferred_each(part, forget_deferred, js->tenants);
    /* Only now: a revoked partition goes with its last job. */
    zw_parts_revoke(js->parts, part);
}

static rd_kafka_error_t *assign(zw_rebalance_t *r, rd_kafka_t *rk,
                                rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_error_t *error;

    for (int i = 0; i < parts->cnt; i++)
        zw_parts_get(r->core->jobs.parts, parts->elems[i].topic, parts->elems[i].partition);
    error = rd_kafka_incremental_assign(rk, parts);
    r->ever_assigned = true;
    if (!r->stopping)
        zw_admin_set_ready(r->admin, true, NULL); /* a broker answered */
    r->n_assigned += provisioning_count(r, parts);
    if (r->consume && zw_consume_paused(r->consume))
        rd_kafka_pause_partitions(rk, parts);
    return error;
}

static rd_kafka_error_t *unassign(zw_rebalance_t *r, rd_kafka_t *rk,
                                  rd_kafka_topic_partition_list_t *parts, bool commit)
{
    zw_jobs_t *js = &r->core->jobs;
    rd_kafka_error_t *error;

    /* Commit what is done before handing the partitions over. */
    if (commit)
        rd_kafka_commit(rk, NULL, 0);
    for (int i = 0; i < parts->cnt; i++) {
        zw_part_t *p = zw_parts_find(js->parts, parts->elems[i].topic, parts->elems[i].partition);
        zw_metrics_remove_partition(r->core->env.metrics, parts->elems[i].topic,
                                    parts->elems[i].partition);
        if (p)
            revoke(r, p);
    }
    error = rd_kafka_incremental_unassign(rk, parts);
    {
        size_t n = provisioning_count(r, parts);
        r->n_assigned = r->n_assigned >= n ? r->n_assigned - n : 0;
    }
    return error;
}

void zw_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                     rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    zw_rebalance_t *r = opaque;
    rd_kafka_error_t *error;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        error = assign(r, rk, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        error = unassign(r, rk, parts, true);
    } else {
        /* The assignment is lost: its work is dropped as on a revoke (the
         * next owner redoes it), and nothing is committed for it. */
        ZW_LOG(ZW_LOG_ERROR, "rebalance failed", ZW_LF_STR("error", rd_kafka_err2str(err)));
        error = unassign(r, rk, parts, false);
    }
    if (error) {
        ZW_LOG(ZW_LOG_ERROR, "incremental (un)assign failed",
               ZW_LF_STR("error", rd_kafka_error_string(error)));
        rd_kafka_error_destroy(error);
    }
    for (int i = 0; i < parts->cnt; i++)
        ZW_LOG(ZW_LOG_INFO,
               err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "partition assigned"
                                                           : "partition revoked",
               ZW_LF_STR("topic", parts->elems[i].topic),
               ZW_LF_INT("partition", parts->elems[i].partition));
    if (!r->stopping)
        update_share(r, rk, 2000);
}

void zw_rebalance_tick(zw_rebalance_t *r, rd_kafka_t *rk)
{
    if (r->share_stale && !r->stopping && zw_loop_now_ms() >= r->share_retry_ms)
        update_share(r, rk, 200);
}

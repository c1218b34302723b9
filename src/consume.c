/* Consuming and admission: every polled message becomes a job tracked in its
 * partition (so a later commit can never skip it), is validated, and goes
 * to its walk or its key queue. */
#include "consume.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zw/log.h"
#include "zw/metrics.h"

#include "provision.h"

#define CONSUME_BATCH 500

struct zw_consume_s {
    zw_jobs_t *js;
    zw_walks_t *ws;
    rd_kafka_t *consumer;
    size_t max_jobs;
    int tenant_cap;     /* events one tenant may hold in memory */
    long throttled_held; /* events in memory of throttled tenants (this poll) */
    int64_t next_rewind_ms;
    bool paused;
    bool stopped;
    bool more;
};

zw_consume_t *zw_consume_new(zw_jobs_t *js, zw_walks_t *ws, rd_kafka_t *consumer,
                             size_t max_jobs)
{
    zw_consume_t *c = calloc(1, sizeof(*c));

    if (c) {
        c->js = js;
        c->ws = ws;
        c->consumer = consumer;
        c->max_jobs = max_jobs;
        c->tenant_cap = js->env->cfg->worker.max_tenant_events;
        /* Three quarters of the worker's cap: a lone busy tenant keeps most
         * of the concurrency it had, and a quarter stays for the others. */
        if (c->tenant_cap <= 0)
            c->tenant_cap = max_jobs * 3 / 4 > 64 ? (int)(max_jobs * 3 / 4) : 64;
    }
    return c;
}

void zw_consume_destroy(zw_consume_t *c)
{
    free(c);
}

/* After parsing: counts the message, and rejects it (a failed result and a
 * DLQ record) when it is invalid or names a tenant that is not configured.
 * Returns whether the job goes on. type and tenant are read only when perr
 * is ZW_EVENT_OK. */
static bool admit(zw_job_t *job, zw_event_error_t perr, char *id, const char *type,
                  const char *tenant, char *errstr, size_t errstr_size)
{
    zw_env_t *env = job->js->env;

    job->event_id = id;
    zw_metrics_event_consumed(env->metrics, perr == ZW_EVENT_OK ? type : "invalid",
                              perr == ZW_EVENT_OK ? tenant : NULL);
    if (perr != ZW_EVENT_OK) {
        zw_job_reject(job, zw_event_error_name(perr), "invalid_event", errstr);
        return false;
    }
    job->tenant = zw_tenants_find(job->js->tenants, tenant);
    if (!job->tenant) {
        /* Never a URL from event data: only configured tenants are reached. */
        snprintf(errstr, errstr_size, "tenant '%s' is not configured", tenant);
        zw_job_reject(job, "unknown_tenant", "unknown_tenant", errstr);
        return false;
    }
    return true;
}

/* A sync request: validated like an event; one walk per tenant at a time. */
static void on_sync(zw_consume_t *c, zw_job_t *job, const rd_kafka_message_t *m)
{
    char errstr[300], *id = NULL;
    zw_event_error_t perr = zw_walk_parse(job, m->payload, m->len, &id, errstr, sizeof(errstr));

    if (admit(job, perr, id, "sync", job->walk.req.tenant, errstr, sizeof(errstr)))
        zw_walk_start(c->ws, job, NULL);
}

/* A tenant that holds as many events as it may, or whose earlier events of
 * this partition (or of this key) are deferred, or that is throttled while
 * throttled tenants together hold a tenant's cap: this event is deferred
 * too (the offset stays uncommitted and is read again after a rewind), so
 * throttled tenants' backlogs never fill the memory other tenants need. */
static bool deferred(zw_consume_t *c, zw_job_t *job, zw_event_error_t perr, char *id)
{
    zw_tenant_t *t = perr == ZW_EVENT_OK ? zw_tenants_find(c->js->tenants, job->prov.ev.tenant)
                                         : NULL;
    bool throttled = t && zw_tenant_throttled(t, zw_loop_now_ms());

    if (!t)
        return false;
    if (zw_tenant_events(t) < c->tenant_cap &&
        !zw_part_defers(job->part, job->offset, zw_tenant_name(t), job->key) &&
        !(throttled && c->throttled_held >= c->tenant_cap)) {
        c->throttled_held += throttled;
        return false;
    }
    if (zw_part_defer(job->part, job->offset, zw_tenant_name(t), job->key) != 0)
        return false; /* out of memory: keep it */
    zw_tenant_add_deferred(t, 1);
    if (zw_tenant_deferred(t) == 1) /* said once, not per event */
        ZW_LOG(ZW_LOG_WARN, "tenant holds as many events as it may; deferring its further events",
               ZW_LF_STR("tenant", zw_tenant_name(t)), ZW_LF_INT("held", zw_tenant_events(t)),
               ZW_LF_INT("cap", c->tenant_cap), ZW_LF_INT("throttled", throttled),
               ZW_LF_STR("note", "they stay uncommitted in Kafka and are read again later"));
    c->js->env->stats.consumed--; /* counted when read again */
    free(id);
    zw_job_free(job);
    return true;
}

/* An event: same key, offset order, so it waits behind its key's active
 * event; the key queue is per partition, as Kafka's ordering is. */
static void on_event(zw_consume_t *c, zw_job_t *job, const rd_kafka_message_t *m)
{
    char errstr[300], *id = NULL, *name;
    zw_event_error_t perr = zw_provision_parse(job, m->payload, m->len, &id, errstr,
                                               sizeof(errstr));
    int at;

    if (deferred(c, job, perr, id))
        return;
    if (!admit(job, perr, id, zw_event_type_name(job->prov.ev.type), job->prov.ev.tenant, errstr,
               sizeof(errstr)))
        return;
    job->held = true;
    zw_tenant_add_events(job->tenant, 1);
    name = zw_provision_queue_name(job);
    at = name ? zw_keyq_add(c->js->keyqs, name, &job->klink) : -1;
    free(name);
    if (at < 0) {
        zw_job_fail(job, "permanent", 0, "LocalError", "out of memory");
        return;
    }
    if (at == 1)
        job->ops->start(job);
    else
        zw_job_set_state(job, ZW_JOB_QUEUED);
}

/* A deferred offset read again is no longer counted as deferred. */
static void undefer_count(zw_consume_t *c, const zw_part_t *part, int64_t offset)
{
    const char *name = zw_part_deferred_tenant(part, offset);
    zw_tenant_t *t = name ? zw_tenants_find(c->js->tenants, name) : NULL;

    if (!t)
        return;
    zw_tenant_add_deferred(t, -1);
    if (zw_tenant_deferred(t) == 0)
        ZW_LOG(ZW_LOG_INFO, "tenant's deferred events are all read again",
               ZW_LF_STR("tenant", name), ZW_LF_INT("held", zw_tenant_events(t)));
}

static void on_message(zw_consume_t *c, const rd_kafka_message_t *m)
{
    const zw_config_t *cfg = c->js->env->cfg;
    const char *topic = rd_kafka_topic_name(m->rkt);
    bool sync = strcmp(topic, cfg->kafka.topic_sync) == 0;
    zw_part_t *part = zw_parts_get(c->js->parts, topic, m->partition);
    zw_job_t *job;

    if (!part) {
        ZW_LOG(ZW_LOG_ERROR, "no state for partition; message left uncommitted",
               ZW_LF_STR("topic", topic), ZW_LF_INT("partition", m->partition));
        return;
    }
    if (zw_part_seen(part, m->offset))
        return; /* read again by a rewind, and not deferred: done or under way */
    undefer_count(c, part, m->offset);
    job = zw_job_new(c->js, part, m->offset, sync ? &zw_walk_ops : &zw_provision_ops);
    if (!job) {
        ZW_LOG(ZW_LOG_ERROR, "cannot track message; it stays uncommitted",
               ZW_LF_STR("topic", topic), ZW_LF_INT("partition", m->partition),
               ZW_LF_INT("offset", m->offset));
        return;
    }
    zw_job_copy_message(job, m);
    if (sync)
        on_sync(c, job, m);
    else
        on_event(c, job, m);
}

static void set_paused(zw_consume_t *c, bool pause)
{
    rd_kafka_topic_partition_list_t *a = NULL;

    if (c->paused == pause || !c->consumer)
        return;
    if (rd_kafka_assignment(c->consumer, &a) == RD_KAFKA_RESP_ERR_NO_ERROR && a) {
        if (pause)
            rd_kafka_pause_partitions(c->consumer, a);
        else
            rd_kafka_resume_partitions(c->consumer, a);
        rd_kafka_topic_partition_list_destroy(a);
    }
    c->paused = pause;
    zw_metrics_set_paused(c->js->env->metrics, pause);
    ZW_LOG(ZW_LOG_DEBUG, pause ? "partitions paused" : "partitions resumed",
           ZW_LF_INT("jobs", c->js->n_jobs));
}

/* Counts the events throttled tenants hold now. */
static void count_throttled(zw_consume_t *c)
{
    zw_tenants_backlog_t b;

    zw_tenants_backlog(c->js->tenants, zw_loop_now_ms(), &b);
    c->throttled_held = b.throttled_held;
}

/* Pausing every partition stops every tenant, so it answers only work that
 * will drain: the events of tenants that can go on (ready) reaching the
 * cap. Throttled tenants' events are bounded by deferral instead (at most a
 * tenant's cap of them in all, beyond what they held when they became
 * throttled), and a quarter of the cap more is the hard bound on memory, so
 * a healthy tenant always finds room even when throttled ones hold all of
 * the cap. Resume once ready work has halved and there is room again. */
void zw_consume_backpressure(zw_consume_t *c)
{
    size_t hard = c->max_jobs + c->max_jobs / 4, n = c->js->n_jobs, ready;

    if (c->stopped)
        return;
    count_throttled(c);
    ready = n > (size_t)c->throttled_held ? n - (size_t)c->throttled_held : 0;
    if (!c->paused && (n >= hard || ready >= c->max_jobs))
        set_paused(c, true);
    else if (c->paused && n <= hard - c->max_jobs / 8 && ready <= c->max_jobs / 2)
        set_paused(c, false);
}

void zw_consume_poll(zw_consume_t *c)
{
    int n = 0;
    rd_kafka_message_t *m;

    c->more = false;
    count_throttled(c);
    /* The events of one poll reach their lanes first, then go out together:
     * their lookups share show_many requests (up to 100 ids) instead of
     * leaving one by one as each arrives. */
    zw_tenants_hold(c->js->tenants);
    while ((m = rd_kafka_consumer_poll(c->consumer, 0))) {
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ZW_LOG(ZW_LOG_WARN, "consumer error",
                       ZW_LF_STR("error", rd_kafka_message_errstr(m)));
        } else {
            /* Every polled message is processed, even while pausing:
             * dropping one would let a later commit skip it. */
            on_message(c, m);
        }
        rd_kafka_message_destroy(m);
        if (++n >= CONSUME_BATCH) {
            c->more = true;
            break;
        }
        if (c->js->n_jobs >= c->max_jobs)
            zw_consume_backpressure(c); /* counts the throttled tenants' events too */
    }
    zw_tenants_release(c->js->tenants);
    zw_consume_backpressure(c);
}

bool zw_consume_more(const zw_consume_t *c)
{
    return c->more;
}

void zw_consume_stop(zw_consume_t *c)
{
    c->paused = false;
    set_paused(c, true);
    c->stopped = true;
}

/* Whether a tenant with deferred events in part has room again (below half
 * its cap, and, when throttled, throttled tenants below half a cap in all,
 * so a rewind reads a worthwhile batch rather than deferring it again). */
static bool part_has_room(zw_consume_t *c, const zw_part_t *part)
{
    zw_tenants_t *ts = c->js->tenants;
    int64_t now = zw_loop_now_ms();

    count_throttled(c);
    for (size_t i = 0; i < zw_tenants_count(ts); i++) {
        zw_tenant_t *t = zw_tenants_at(ts, i);
        if (zw_tenant_deferred(t) > 0 && zw_tenant_events(t) < c->tenant_cap / 2 &&
            (!zw_tenant_throttled(t, now) || c->throttled_held < c->tenant_cap / 2) &&
            zw_part_defers(part, INT64_MAX, zw_tenant_name(t), NULL))
            return true;
    }
    return false;
}

static void rewind_part(zw_part_t *part, void *arg)
{
    zw_consume_t *c = arg;
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_error_t *err;
    int64_t offset;

    if (zw_part_deferred(part) == 0 || !part_has_room(c, part) ||
        (offset = zw_part_rewind_offset(part)) < 0)
        return;
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, zw_part_topic(part), zw_part_partition(part))->offset =
        offset;
    err = rd_kafka_seek_partitions(c->consumer, l, 0);
    if (err) {
        ZW_LOG(ZW_LOG_WARN, "cannot rewind to deferred events",
               ZW_LF_STR("topic", zw_part_topic(part)),
               ZW_LF_INT("partition", zw_part_partition(part)),
               ZW_LF_STR("error", rd_kafka_error_string(err)));
        rd_kafka_error_destroy(err);
    } else {
        ZW_LOG(ZW_LOG_DEBUG, "rewinding to deferred events",
               ZW_LF_STR("topic", zw_part_topic(part)),
               ZW_LF_INT("partition", zw_part_partition(part)), ZW_LF_INT("offset", offset),
               ZW_LF_INT("deferred", (long long)zw_part_deferred(part)));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

void zw_consume_rewind(zw_consume_t *c)
{
    int64_t now = zw_loop_now_ms();

    if (c->stopped || now < c->next_rewind_ms)
        return;
    c->next_rewind_ms = now + 1000;
    zw_parts_each(c->js->parts, rewind_part, c);
}

bool zw_consume_paused(const zw_consume_t *c)
{
    return c->paused;
}

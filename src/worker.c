/* The provisioning pipeline. One thread runs the loop (loop.c) and owns the
 * consumer, the producer and curl. The path of one event:
 *   consume -> parse and validate -> wait for its key's turn -> per tenant
 *   lane, wait for the rate budget -> look the person up (lookups waiting
 *   together share one show_many) -> plan -> write (or not; alone, or with
 *   others in a bulk job, see bulk.c) -> classify, retry after a timer if
 *   needed -> produce the
 *   result -> when the broker acks it, mark the offset done and store the
 *   partition's contiguous done prefix (librdkafka commits what is stored).
 * Bad input becomes a failed result plus a DLQ record; the partition moves on. */
#include "zw/worker.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "zw/admin.h"
#include "zw/event.h"
#include "zw/kafka.h"
#include "zw/log.h"
#include "zw/loop.h"
#include "zw/map.h"
#include "zw/metrics.h"
#include "zw/offsets.h"
#include "zw/plan.h"
#include "zw/ratelimit.h"
#include "zw/retry.h"
#include "zw/version.h"
#include "zw/zendesk.h"

#include "worker_internal.h"


static volatile sig_atomic_t signals_seen;
static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    (void)sig;
    if (signals_seen++ > 0)
        _exit(130); /* second signal: at once, committing nothing more */
    if (signal_pipe[1] >= 0) {
        ssize_t n = write(signal_pipe[1], "x", 1);
        (void)n;
    }
}

/* ---- small helpers ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void iso_now(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

static void uuid4(worker_t *w, char out[37])
{
    uint64_t a = rng_next(&w->rng), b = rng_next(&w->rng);

    a = (a & 0xFFFFFFFFFFFF0FFFull) | 0x4000ull;
    b = (b & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;
    snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)((a >> 16) & 0xFFFF), (unsigned)(a & 0xFFFF), (unsigned)(b >> 48),
             (unsigned long long)(b & 0xFFFFFFFFFFFFull));
}

static char *part_name(const char *topic, int32_t partition)
{
    size_t n = strlen(topic) + 16;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s\x1f%d", topic, (int)partition);
    return s;
}

static tenant_t *tenant_find(worker_t *w, const char *subdomain)
{
    for (size_t i = 0; i < w->n_tenants; i++) {
        if (strcmp(w->tenants[i].cfg->subdomain, subdomain) == 0)
            return &w->tenants[i];
    }
    return NULL;
}

static const char *job_type_label(const job_t *job)
{
    if (job->is_sync)
        return "sync";
    return job->ev.tenant ? zw_event_type_name(job->ev.type) : "invalid";
}

static const char *job_tenant_label(const job_t *job)
{
    return job->tenant ? job->tenant->cfg->subdomain : NULL;
}

static void job_log(zw_log_level_t level, const job_t *job, const char *msg)
{
    ZW_LOG(level, msg, ZW_LF_STR("event_id", job->event_id),
           ZW_LF_STR("tenant", job->tenant ? job->tenant->cfg->subdomain : NULL),
           ZW_LF_STR("type", job->ev.tenant ? zw_event_type_name(job->ev.type) : NULL),
           ZW_LF_STR("topic", job->part->topic), ZW_LF_INT("partition", job->part->partition),
           ZW_LF_INT("offset", job->offset), ZW_LF_INT("attempt", job->attempts),
           ZW_LF_STR("status", job->status), ZW_LF_STR("outcome", job->outcome),
           ZW_LF_STR("error_class", job->err_class),
           ZW_LF_STR("error_code", job->err_code[0] ? job->err_code : NULL));
}

static void tenant_pump(tenant_t *t);
static void tenant_fail_waiting(tenant_t *t, const char *cls, long http, const char *code,
                                const char *msg);
static void pump_all(worker_t *w);
static void job_submit(job_t *job);
static void set_looking(job_t *job, bool looking);
static void job_finish(job_t *job);
static void job_retry_later(job_t *job, int64_t delay_ms);
static void snapshot_record_acked(job_t *job, rd_kafka_resp_err_t err);
static void sync_page_path(job_t *job, char *path, size_t size);
static void job_person_done(job_t *job);
static void token_fetch(tenant_t *t);

/* ---- jobs and partitions ---- */

/* Frees what a job owns and the job; nothing else. */
static void job_release(job_t *job)
{
    zw_sync_request_cleanup(&job->sync);
    if (job->snap) {
        free(job->snap->cursor);
        free(job->snap->next_cursor);
        free(job->snap);
    }
    free(job->end_json);
    free(job->group_ops);
    zw_event_cleanup(&job->ev);
    zw_plan_cleanup(&job->plan);
    json_object_put(job->current);
    if (job->headers)
        rd_kafka_headers_destroy(job->headers);
    for (size_t i = 0; i < job->n_request_ids; i++)
        free(job->request_ids[i]);
    free(job->event_id);
    free(job->key);
    free(job->raw);
    free(job->result_json);
    free(job);
}

static void part_free(part_t *part)
{
    zw_offsets_destroy(part->offsets);
    free(part->topic);
    free(part);
}

/* Unlinks a job from its partition and frees it; a revoked partition goes
 * with its last job. */
static void job_free(job_t *job)
{
    worker_t *w = job->w;
    part_t *part = job->part;

    if (job->part_prev)
        job->part_prev->part_next = job->part_next;
    else
        part->jobs = job->part_next;
    if (job->part_next)
        job->part_next->part_prev = job->part_prev;
    if (job->timer)
        zw_timers_cancel(zw_loop_timers(w->loop), job->timer);
    if (job->is_sync && job->tenant && job->tenant->sync_job == job)
        job->tenant->sync_job = NULL;
    job_release(job);
    w->n_jobs--;
    if (part->revoked && !part->jobs) {
        part_t **pp = &w->zombies;
        while (*pp && *pp != part)
            pp = &(*pp)->zombie_next;
        if (*pp)
            *pp = part->zombie_next;
        part_free(part);
    }
}

/* The event's results are all acknowledged: its offset is done. */
static void job_done(job_t *job)
{
    worker_t *w = job->w;
    part_t *part = job->part;

    zw_metrics_event_finished(w->metrics, job_type_label(job), job_tenant_label(job), job->status,
                              job->outcome, (double)(zw_loop_now_ms() - job->start_ms) / 1000.0);
    if (!part->revoked && zw_offsets_done(part->offsets, job->offset) == 0) {
        int64_t commit = zw_offsets_committable(part->offsets);
        if (commit >= 0) {
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, part->topic, part->partition)->offset = commit;
            rd_kafka_resp_err_t err = rd_kafka_offsets_store(w->consumer, l);
            if (!err)
                part->stored = commit;
            if (err)
                ZW_LOG(ZW_LOG_WARN, "cannot store offset", ZW_LF_STR("topic", part->topic),
                       ZW_LF_INT("partition", part->partition), ZW_LF_INT("offset", commit),
                       ZW_LF_STR("error", rd_kafka_err2str(err)));
            rd_kafka_topic_partition_list_destroy(l);
        }
    }
    job_free(job);
}

/* Takes the job out of whatever it waits in (lane or timer). */
static void job_detach(job_t *job)
{
    if (job->timer) {
        zw_timers_cancel(zw_loop_timers(job->w->loop), job->timer);
        job->timer = 0;
    }
    if (job->in_lane) {
        tenant_t *t = job->tenant;
        job_t *prev = NULL, *k = t->lane_head[job->lane];
        while (k && k != job) {
            prev = k;
            k = k->lane_next;
        }
        if (k)
            wk_lane_unlink(t, job, prev);
        job->in_lane = false;
        job->lane_next = NULL;
    }
    if (job->bulk)
        zw_bulk_forget(job);
    set_looking(job, false);
}

/* ---- producing results and DLQ records ---- */

static void add_header(rd_kafka_headers_t *h, const char *name, const char *value)
{
    rd_kafka_header_add(h, name, -1, value, -1);
}

static rd_kafka_headers_t *ce_headers(job_t *job, const char *type)
{
    worker_t *w = job->w;
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    char id[37], now[32];
    const void *tp;
    size_t tp_len;

    uuid4(w, id);
    iso_now(now, sizeof(now));
    add_header(h, "ce_specversion", "1.0");
    add_header(h, "ce_id", id);
    add_header(h, "ce_source", "/zendesk-worker");
    add_header(h, "ce_type", type);
    add_header(h, "ce_time", now);
    if (job->event_id)
        add_header(h, "ce_subject", job->event_id);
    add_header(h, "content-type", "application/json");
    if (job->headers &&
        rd_kafka_header_get_last(job->headers, "traceparent", &tp, &tp_len) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        tp)
        rd_kafka_header_add(h, "traceparent", -1, tp, (ssize_t)tp_len);
    return h;
}

static void produce_retry_timer(void *arg);

static void produce(job_t *job, delivery_t *dr)
{
    worker_t *w = job->w;
    const zw_config_t *c = w->cfg;
    rd_kafka_headers_t *h;
    rd_kafka_resp_err_t err;
    const char *topic, *value;
    size_t value_len;

    const char *key = job->key;
    size_t key_len = job->key_len;

    if (dr->kind == DR_DLQ) {
        char num[32], now[32];
        h = job->headers ? rd_kafka_headers_copy(job->headers) : rd_kafka_headers_new(8);
        /* Replace, not duplicate, our headers if the input already had them
         * (a record replayed from the DLQ). */
        rd_kafka_header_remove(h, "zw_error_reason");
        rd_kafka_header_remove(h, "zw_error_message");
        rd_kafka_header_remove(h, "zw_source_topic");
        rd_kafka_header_remove(h, "zw_source_partition");
        rd_kafka_header_remove(h, "zw_source_offset");
        rd_kafka_header_remove(h, "zw_worker_id");
        rd_kafka_header_remove(h, "zw_failed_at");
        add_header(h, "zw_error_reason", job->dlq_reason);
        add_header(h, "zw_error_message", job->dlq_message);
        add_header(h, "zw_source_topic", job->part->topic);
        snprintf(num, sizeof(num), "%d", (int)job->part->partition);
        add_header(h, "zw_source_partition", num);
        snprintf(num, sizeof(num), "%lld", (long long)job->offset);
        add_header(h, "zw_source_offset", num);
        add_header(h, "zw_worker_id", w->worker_id);
        iso_now(now, sizeof(now));
        add_header(h, "zw_failed_at", now);
        topic = c->kafka.topic_dead_letter;
        value = job->raw;
        value_len = job->raw_len;
    } else if (dr->kind == DR_END) {
        h = ce_headers(job, "dev.zendesk-worker.user-snapshot.v1");
        topic = c->kafka.topic_snapshots;
        value = job->end_json;
        value_len = strlen(job->end_json);
        key = job->sync.tenant;
        key_len = strlen(key);
    } else {
        h = ce_headers(job, "dev.zendesk-worker.provisioning.result.v1");
        topic = c->kafka.topic_results;
        value = job->result_json;
        value_len = strlen(job->result_json);
    }
    err = rd_kafka_producev(w->producer, RD_KAFKA_V_TOPIC(topic),
                            RD_KAFKA_V_KEY(key, key_len),
                            RD_KAFKA_V_VALUE((void *)value, value_len),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                            RD_KAFKA_V_OPAQUE(dr), RD_KAFKA_V_END);
    if (err) {
        /* Not handed over: ours to free. Try again shortly (queue full, or
         * a transient local error); the event stays uncommitted meanwhile. */
        rd_kafka_headers_destroy(h);
        ZW_LOG(ZW_LOG_WARN, "cannot produce, will retry", ZW_LF_STR("topic", topic),
               ZW_LF_STR("error", rd_kafka_err2str(err)));
        job->timer = zw_timers_add(zw_loop_timers(w->loop), zw_loop_now_ms() + 200,
                                   produce_retry_timer, dr);
    }
}

static void produce_retry_timer(void *arg)
{
    delivery_t *dr = arg;
    dr->job->timer = 0;
    produce(dr->job, dr);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    delivery_t *dr = m->_private;
    job_t *job = dr->job;

    (void)rk;
    (void)opaque;
    if (dr->kind == DR_SNAPSHOT) {
        snapshot_record_acked(job, m->err);
        return;
    }
    if (m->err) {
        /* The record did not reach the broker: produce it again; the
         * offset stays uncommitted until it does. */
        ZW_LOG(ZW_LOG_WARN, "delivery failed, producing again",
               ZW_LF_STR("topic", rd_kafka_topic_name(m->rkt)),
               ZW_LF_STR("error", rd_kafka_err2str(m->err)), ZW_LF_STR("event_id", job->event_id));
        job->timer = zw_timers_add(zw_loop_timers(job->w->loop), zw_loop_now_ms() + 500,
                                   produce_retry_timer, dr);
        return;
    }
    if (--job->pending == 0)
        job_done(job);
}

static void build_result(job_t *job)
{
    worker_t *w = job->w;
    json_object *r = json_object_new_object(), *o, *ids;
    char finished_at[32];
    int64_t now = zw_loop_now_ms();

    iso_now(finished_at, sizeof(finished_at));
    json_object_object_add(r, "schema", json_object_new_string(RESULT_SCHEMA));
    json_object_object_add(r, "event_id", json_object_new_string(job->event_id));
    if (job->is_sync) {
        json_object_object_add(r, "tenant", job->sync.tenant
                                                ? json_object_new_string(job->sync.tenant)
                                                : NULL);
        json_object_object_add(r, "type", json_object_new_string("sync"));
    } else {
        json_object_object_add(r, "tenant", job->ev.tenant
                                                ? json_object_new_string(job->ev.tenant)
                                                : NULL);
        json_object_object_add(
            r, "type",
            job->ev.tenant ? json_object_new_string(zw_event_type_name(job->ev.type)) : NULL);
    }
    json_object_object_add(r, "status", json_object_new_string(job->status));
    json_object_object_add(r, "outcome", json_object_new_string(job->outcome));
    json_object_object_add(r, "zendesk_user_id",
                           job->user_id > 0 ? json_object_new_int64(job->user_id) : NULL);
    json_object_object_add(r, "attempts", json_object_new_int(job->attempts));
    json_object_object_add(r, "dry_run",
                           json_object_new_boolean(job->ev.dry_run || w->cfg->worker.dry_run));
    if (job->err_class) {
        o = json_object_new_object();
        json_object_object_add(o, "class", json_object_new_string(job->err_class));
        json_object_object_add(o, "http_status",
                               job->err_http > 0 ? json_object_new_int((int)job->err_http) : NULL);
        json_object_object_add(o, "code",
                               job->err_code[0] ? json_object_new_string(job->err_code) : NULL);
        json_object_object_add(o, "message", json_object_new_string(job->err_msg));
        json_object_object_add(r, "error", o);
    } else {
        json_object_object_add(r, "error", NULL);
    }
    ids = json_object_new_array();
    for (size_t i = 0; i < job->n_request_ids; i++)
        json_object_array_add(ids, json_object_new_string(job->request_ids[i]));
    json_object_object_add(r, "zendesk_request_ids", ids);
    json_object_object_add(r, "started_at", json_object_new_string(job->started_at));
    json_object_object_add(r, "finished_at", json_object_new_string(finished_at));
    json_object_object_add(r, "duration_ms", json_object_new_int64(now - job->start_ms));
    o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(w->worker_id));
    json_object_object_add(o, "version", json_object_new_string(ZW_VERSION));
    json_object_object_add(r, "worker", o);
    o = json_object_new_object();
    json_object_object_add(o, "topic", json_object_new_string(job->part->topic));
    json_object_object_add(o, "partition", json_object_new_int(job->part->partition));
    json_object_object_add(o, "offset", json_object_new_int64(job->offset));
    json_object_object_add(r, "source", o);
    if (job->snap) {
        json_object_object_add(r, "snapshot_id", json_object_new_string(job->snap->id));
        json_object_object_add(r, "count", json_object_new_int64(job->snap->count));
    }
    job->result_json = strdup(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(r);
}

/* Ends an event: its result (and DLQ record) go out; its key's next event
 * may start. The job lives on until the broker acks what it produced. */
static void job_finish(job_t *job)
{
    worker_t *w = job->w;
    keyq_t *q = job->keyq;

    job->finished = true;
    job_detach(job);
    w->stats.finished++;
    if (strcmp(job->status, "succeeded") == 0)
        w->stats.succeeded++;
    else if (strcmp(job->status, "dry_run") == 0)
        w->stats.dry_run++;
    else
        w->stats.failed++;
    job_log(strcmp(job->status, "failed") == 0 ? ZW_LOG_WARN : ZW_LOG_INFO, job,
            "event finished");
    if (job->is_sync && job->tenant && job->tenant->sync_job == job)
        job->tenant->sync_job = NULL;
    if (w->oneshot)
        return; /* the sync command reads the job's state and frees it */

    if (job->event_id) {
        build_result(job);
        if (job->result_json) {
            job->pending++;
            produce(job, &job->dr_result);
        }
    }
    if (job->dlq_reason) {
        w->stats.dlq++;
        zw_metrics_dlq(w->metrics, job->dlq_reason);
        job->pending++;
        produce(job, &job->dr_dlq);
    }
    /* The raw bytes are only needed for the DLQ record (copied by produce). */
    if (!job->dlq_reason) {
        free(job->raw);
        job->raw = NULL;
    }

    if (q) {
        job->keyq = NULL;
        q->head = job->key_next;
        if (!q->head) {
            zw_map_remove(w->keyqs, q->name);
            free(q->name);
            free(q);
        } else {
            q->head->started = true;
            job_submit(q->head);
        }
    }
    if (job->pending == 0)
        job_done(job);
}

static void sync_try_end(job_t *job);

static void job_fail(job_t *job, const char *cls, long http, const char *code, const char *msg)
{
    if (job->snap && !job->snap->ended) {
        /* A walk that cannot go on ends with a failed marker, once the
         * records already produced are acked. */
        job->snap->failed = true;
        job->snap->walk_done = true;
        job->err_class = cls;
        job->err_http = http;
        snprintf(job->err_code, sizeof(job->err_code), "%s", code ? code : "");
        snprintf(job->err_msg, sizeof(job->err_msg), "%s", msg);
        job_detach(job);
        sync_try_end(job);
        return;
    }
    job->status = "failed";
    /* Only these outcomes describe a failure more precisely than "failed". */
    if (!job->outcome ||
        (strcmp(job->outcome, "not_found") != 0 && strcmp(job->outcome, "duplicate_request") != 0))
        job->outcome = "failed";
    job->err_class = cls;
    job->err_http = http;
    snprintf(job->err_code, sizeof(job->err_code), "%s", code ? code : "");
    snprintf(job->err_msg, sizeof(job->err_msg), "%s", msg);
    job_finish(job);
}

/* ---- tenants: lanes, budgets, auth ---- */

static void tenant_wake(void *arg)
{
    tenant_t *t = arg;
    t->wake_timer = 0;
    tenant_pump(t);
}

static void tenant_wake_in(tenant_t *t, int64_t wait_ms)
{
    int64_t due = zw_loop_now_ms() + wait_ms;
    zw_timers_t *timers = zw_loop_timers(t->w->loop);

    if (t->wake_timer && t->wake_due <= due)
        return;
    if (t->wake_timer)
        zw_timers_cancel(timers, t->wake_timer);
    t->wake_due = due;
    t->wake_timer = zw_timers_add(timers, due, tenant_wake, t);
}

static void lane_push(tenant_t *t, job_t *job)
{
    job->lane_next = NULL;
    job->in_lane = true;
    job->bulk_op = zw_bulk_op_of(job);
    zw_bulk_count(t, job, 1);
    if (t->lane_tail[job->lane])
        t->lane_tail[job->lane]->lane_next = job;
    else
        t->lane_head[job->lane] = job;
    t->lane_tail[job->lane] = job;
}

static job_t *lane_pop(tenant_t *t, int lane)
{
    job_t *job = t->lane_head[lane];

    if (!job)
        return NULL;
    t->lane_head[lane] = job->lane_next;
    if (!t->lane_head[lane])
        t->lane_tail[lane] = NULL;
    job->lane_next = NULL;
    job->in_lane = false;
    zw_bulk_count(t, job, -1);
    return job;
}

/* Takes job out of its lane, prev being the job before it there (or NULL). */
void wk_lane_unlink(tenant_t *t, job_t *job, job_t *prev)
{
    if (prev)
        prev->lane_next = job->lane_next;
    else
        t->lane_head[job->lane] = job->lane_next;
    if (t->lane_tail[job->lane] == job)
        t->lane_tail[job->lane] = prev;
    job->lane_next = NULL;
    job->in_lane = false;
    zw_bulk_count(t, job, -1);
}

static void send_request(job_t *job);
static void send_lookups(tenant_t *t);
static bool is_plain_lookup(const job_t *job);

/* The extra limit a lane's next request is under, beyond the account budget. */
static zw_ratelimit_t *lane_limit(tenant_t *t, int lane)
{
    if (lane == LANE_WRITE)
        return t->writes;
    if (lane == LANE_SYNC && t->lane_head[lane]->sync.incremental)
        return t->exports;
    return NULL;
}

/* Sends what the tenant's budget and the global in-flight cap allow, the
 * lanes taking turns so lookups, writes and snapshot pages all progress. */
static void tenant_pump(tenant_t *t)
{
    worker_t *w = t->w;
    int64_t now = zw_loop_now_ms();

    if (w->defer_pump)
        return;
    if (t->cfg->auth_type == ZW_AUTH_OAUTH_CLIENT_CREDENTIALS && t->token_state != TOKEN_READY) {
        if (t->token_state == TOKEN_NONE)
            token_fetch(t);
        else if (t->token_state == TOKEN_FAILED && t->token_refused)
            /* Until the next grant attempt, events fail now rather than
             * wait: the credentials were refused, not delayed. */
            tenant_fail_waiting(t, "auth", 0, "OAuthGrantRefused",
                                "the OAuth client credentials grant was refused");
        return;
    }
    while (zw_loop_http_in_flight(w->loop) < (size_t)w->cfg->worker.max_in_flight) {
        int64_t lane_wait = -1;
        bool sent = false;
        int bulk = zw_bulk_pump(t, now);

        if (bulk < 0)
            return;
        if (bulk > 0)
            continue;

        for (int k = 0; k < N_LANES && !sent; k++) {
            int lane = (t->next_lane + k) % N_LANES;
            zw_ratelimit_t *extra;
            int64_t wait;

            if (!t->lane_head[lane] || zw_bulk_holds(t, t->lane_head[lane]))
                continue; /* a bulk job takes it soon */
            wait = zw_ratelimit_take(t->budget, now);
            if (wait > 0) {
                tenant_wake_in(t, wait);
                return;
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
            t->next_lane = (lane + 1) % N_LANES;
            if (lane == LANE_READ && is_plain_lookup(t->lane_head[lane]))
                send_lookups(t);
            else
                send_request(lane_pop(t, lane));
            sent = true;
        }
        if (!sent) {
            if (lane_wait > 0)
                tenant_wake_in(t, lane_wait);
            return;
        }
    }
}

static void pump_all(worker_t *w)
{
    /* Start at a rotating tenant so none is always served last. */
    static size_t start;

    if (w->n_tenants == 0)
        return;
    start = (start + 1) % w->n_tenants;
    for (size_t i = 0; i < w->n_tenants; i++)
        tenant_pump(&w->tenants[(start + i) % w->n_tenants]);
}

static void token_timer(void *arg)
{
    tenant_t *t = arg;

    t->token_timer = 0;
    if (t->token_state == TOKEN_FAILED)
        t->token_state = TOKEN_NONE;
    if (t->token_state == TOKEN_READY)
        t->token_renewing = true;
    token_fetch(t);
}

static void token_fetch(tenant_t *t)
{
    worker_t *w = t->w;
    json_object *body = json_object_new_object();
    char errstr[256];
    zw_http_t *req;

    if (t->token_state == TOKEN_FETCHING)
        return;
    if (t->token_state != TOKEN_READY)
        t->token_state = TOKEN_FETCHING;
    json_object_object_add(body, "grant_type", json_object_new_string("client_credentials"));
    json_object_object_add(body, "client_id", json_object_new_string(t->cfg->client_id));
    json_object_object_add(body, "client_secret", json_object_new_string(t->cfg->client_secret));
    json_object_object_add(body, "scope", json_object_new_string(t->cfg->scope));
    req = zw_http_new(&w->http, t->cfg->subdomain, "POST", "/oauth/tokens",
                      json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), NULL,
                      ZW_ENDPOINT_OAUTH, t, errstr, sizeof(errstr));
    /* The serialised body held the secret; json-c frees it with the object. */
    json_object_put(body);
    if (!req || zw_loop_http_start(w->loop, req) != 0) {
        zw_http_destroy(req);
        t->token_state = t->token_state == TOKEN_FETCHING ? TOKEN_FAILED : t->token_state;
        t->token_timer = zw_timers_add(zw_loop_timers(w->loop), zw_loop_now_ms() + 1000,
                                       token_timer, t);
        return;
    }
    ZW_LOG(ZW_LOG_DEBUG, "requesting an OAuth access token", ZW_LF_STR("tenant", t->cfg->subdomain));
}

static void tenant_fail_waiting(tenant_t *t, const char *cls, long http, const char *code,
                                const char *msg)
{
    for (int lane = 0; lane < N_LANES; lane++) {
        job_t *job;
        while ((job = lane_pop(t, lane)))
            job_fail(job, cls, http, code, msg);
    }
}

static void token_done(tenant_t *t, zw_http_t *req)
{
    worker_t *w = t->w;
    zw_class_t cls = zw_retry_classify(req->status, req->curl_code);
    json_object *root = NULL, *v;
    const char *token = NULL;
    int64_t expires_in = 0;

    if (cls == ZW_CLASS_OK && (root = zw_http_json(req)) &&
        json_object_object_get_ex(root, "access_token", &v) &&
        json_object_is_type(v, json_type_string)) {
        token = json_object_get_string(v);
        if (json_object_object_get_ex(root, "expires_in", &v))
            expires_in = json_object_get_int64(v);
    }
    if (token && *token) {
        size_t n = strlen(token) + 8;
        char *auth = malloc(n);
        if (auth) {
            snprintf(auth, n, "Bearer %s", token);
            if (t->authorization) {
                memset(t->authorization, 0, strlen(t->authorization));
                free(t->authorization);
            }
            t->authorization = auth;
            t->token_state = TOKEN_READY;
            t->token_refused = false;
            t->token_renewing = false;
            t->token_gen++;
            t->token_failures = 0;
            /* Renew at 80% of the lifetime: never use a token about to expire. */
            if (expires_in <= 0)
                expires_in = 3600;
            if (t->token_timer)
                zw_timers_cancel(zw_loop_timers(w->loop), t->token_timer);
            t->token_timer = zw_timers_add(zw_loop_timers(w->loop),
                                           zw_loop_now_ms() + (expires_in * 800 > 5000
                                                                   ? expires_in * 800
                                                                   : 5000),
                                           token_timer, t);
            ZW_LOG(ZW_LOG_INFO, "OAuth access token obtained",
                   ZW_LF_STR("tenant", t->cfg->subdomain), ZW_LF_INT("expires_in_s", expires_in));
        }
        json_object_put(root);
        tenant_pump(t);
        return;
    }
    json_object_put(root);
    t->token_failures++;
    if (t->token_renewing) {
        /* The current token still works: try again later. */
        t->token_renewing = false;
        t->token_timer = zw_timers_add(zw_loop_timers(w->loop), zw_loop_now_ms() + 5000,
                                       token_timer, t);
        return;
    }
    if (cls == ZW_CLASS_TRANSIENT || cls == ZW_CLASS_RATE_LIMITED) {
        int64_t delay = zw_backoff_delay_ms(t->token_failures, w->cfg->worker.backoff_base_ms,
                                            w->cfg->worker.backoff_max_ms, &w->rng);
        t->token_state = TOKEN_FAILED;
        t->token_timer = zw_timers_add(zw_loop_timers(w->loop), zw_loop_now_ms() + delay,
                                       token_timer, t);
        ZW_LOG(ZW_LOG_WARN, "OAuth token request failed, retrying",
               ZW_LF_STR("tenant", t->cfg->subdomain), ZW_LF_INT("http_status", req->status));
        return;
    }
    /* Refused credentials: waiting events fail with class auth; a new
     * grant is tried later for the events still to come. */
    {
        char code[64];
        zw_http_error_code(req, code, sizeof(code));
        ZW_LOG(ZW_LOG_ERROR, "OAuth token refused", ZW_LF_STR("tenant", t->cfg->subdomain),
               ZW_LF_INT("http_status", req->status), ZW_LF_STR("code", code));
        t->token_state = TOKEN_FAILED;
        t->token_refused = true;
        t->token_timer = zw_timers_add(zw_loop_timers(w->loop), zw_loop_now_ms() + OAUTH_RETRY_MS,
                                       token_timer, t);
        tenant_fail_waiting(t, "auth", req->status, code[0] ? code : "invalid_grant",
                            "the OAuth client credentials grant was refused");
    }
}

/* ---- one event's Zendesk calls ---- */

static bool job_is_dry(const job_t *job)
{
    return job->ev.dry_run || job->w->cfg->worker.dry_run;
}

/* ---- snapshots (sync requests) ---- */

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a 64 offset basis */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* The next page's path: the cursor-paginated user list for a full walk,
 * the cursor-based incremental export otherwise. */
static void sync_page_path(job_t *job, char *path, size_t size)
{
    const zw_sync_request_t *r = &job->sync;
    snapshot_t *snap = job->snap;
    char *esc = snap->cursor ? zw_zendesk_escape(snap->cursor) : NULL;
    size_t n;

    if (!r->incremental) {
        n = (size_t)snprintf(path, size, "/api/v2/users?page[size]=%d", SNAPSHOT_PAGE_SIZE);
        if (r->has_roles) {
            if (r->role_end_user && n < size)
                n += (size_t)snprintf(path + n, size - n, "&role[]=end-user");
            if (r->role_agent && n < size)
                n += (size_t)snprintf(path + n, size - n, "&role[]=agent");
            if (r->role_admin && n < size)
                n += (size_t)snprintf(path + n, size - n, "&role[]=admin");
        }
        if (esc && n < size)
            snprintf(path + n, size - n, "&page[after]=%s", esc);
    } else if (esc) {
        snprintf(path, size, "/api/v2/incremental/users/cursor?cursor=%s&per_page=%d", esc,
                 EXPORT_PAGE_SIZE);
    } else {
        /* Zendesk refuses a start time within the last minute (it withholds
         * that minute): start earlier; re-listing a user is harmless. */
        int64_t start = r->has_start_time ? r->start_time : 0, latest = (int64_t)time(NULL) - 61;
        snprintf(path, size, "/api/v2/incremental/users/cursor?start_time=%lld&per_page=%d",
                 (long long)(start < latest ? start : latest), EXPORT_PAGE_SIZE);
    }
    free(esc);
}

static bool role_wanted(const zw_sync_request_t *r, const char *role)
{
    if (!r->has_roles)
        return true;
    if (!role)
        return false;
    return (r->role_end_user && strcmp(role, "end-user") == 0) ||
           (r->role_agent && strcmp(role, "agent") == 0) ||
           (r->role_admin && strcmp(role, "admin") == 0);
}

/* A snapshot record: {schema, snapshot_id, request_id, tenant, kind, seq, ...}. */
static json_object *snapshot_record(job_t *job, const char *kind)
{
    json_object *r = json_object_new_object();

    json_object_object_add(r, "schema", json_object_new_string(SNAPSHOT_SCHEMA));
    json_object_object_add(r, "snapshot_id", json_object_new_string(job->snap->id));
    json_object_object_add(r, "request_id", json_object_new_string(job->sync.request_id));
    json_object_object_add(r, "tenant", json_object_new_string(job->sync.tenant));
    json_object_object_add(r, "kind", json_object_new_string(kind));
    json_object_object_add(r, "seq", json_object_new_int64(job->snap->seq++));
    return r;
}

/* Publishes a begin or user record: to Kafka (acked later), or to the
 * one-shot file (done at once). */
static void snapshot_emit(job_t *job, json_object *record, const char *key)
{
    worker_t *w = job->w;
    snapshot_t *snap = job->snap;
    const char *json = json_object_to_json_string_ext(record, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

    if (snap->out) {
        fputs(json, snap->out);
        fputc('\n', snap->out);
        return;
    }
    rd_kafka_headers_t *h = ce_headers(job, "dev.zendesk-worker.user-snapshot.v1");
    rd_kafka_resp_err_t err = rd_kafka_producev(
        w->producer, RD_KAFKA_V_TOPIC(w->cfg->kafka.topic_snapshots),
        RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)json, strlen(json)),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_OPAQUE(&job->dr_snapshot), RD_KAFKA_V_END);
    if (err) {
        /* A record that cannot be queued makes the snapshot incomplete:
         * its end marker will say failed. */
        rd_kafka_headers_destroy(h);
        snap->broken = true;
        ZW_LOG(ZW_LOG_ERROR, "cannot produce a snapshot record", ZW_LF_STR("error", rd_kafka_err2str(err)),
               ZW_LF_STR("snapshot_id", snap->id));
        return;
    }
    snap->pending++;
}

static void sync_try_end(job_t *job);

/* Frees a stopped walk once nothing refers to it any more. */
static void sync_release_if_idle(job_t *job)
{
    if (job->snap->stop && !job->http && job->snap->pending == 0 && job->pending == 0)
        job_free(job);
}

static void snapshot_record_acked(job_t *job, rd_kafka_resp_err_t err)
{
    snapshot_t *snap = job->snap;

    snap->pending--;
    if (err) {
        snap->broken = true;
        ZW_LOG(ZW_LOG_ERROR, "snapshot record not delivered; the snapshot will end failed",
               ZW_LF_STR("snapshot_id", snap->id), ZW_LF_STR("error", rd_kafka_err2str(err)));
    }
    if (snap->stop) {
        sync_release_if_idle(job);
        return;
    }
    sync_try_end(job);
}

/* Ends the snapshot when the walk is over and every record is acked: the
 * end marker, then the request's result. "complete" only if nothing was
 * lost, so a consumer can trust it. */
static void sync_try_end(job_t *job)
{
    snapshot_t *snap = job->snap;
    json_object *rec, *end;
    char sum[40];

    if (!snap->walk_done || snap->pending > 0 || snap->ended || snap->stop)
        return;
    snap->ended = true;
    if (snap->broken && !snap->failed) {
        snap->failed = true;
        job->err_class = "transient_exhausted";
        snprintf(job->err_code, sizeof(job->err_code), "DeliveryFailed");
        snprintf(job->err_msg, sizeof(job->err_msg),
                 "a snapshot record could not be delivered to Kafka");
    }
    rec = snapshot_record(job, "end");
    end = json_object_new_object();
    snprintf(sum, sizeof(sum), "fnv1a64-sum:%016llx", (unsigned long long)snap->checksum);
    json_object_object_add(end, "status", json_object_new_string(snap->failed ? "failed"
                                                                              : "complete"));
    json_object_object_add(end, "count", json_object_new_int64(snap->count));
    json_object_object_add(end, "checksum", json_object_new_string(sum));
    json_object_object_add(end, "next_cursor", snap->next_cursor
                                                   ? json_object_new_string(snap->next_cursor)
                                                   : NULL);
    json_object_object_add(rec, "end", end);
    job->end_json = strdup(json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(rec);
    ZW_LOG(ZW_LOG_INFO, "snapshot ended", ZW_LF_STR("tenant", job->sync.tenant),
           ZW_LF_STR("snapshot_id", snap->id), ZW_LF_STR("request_id", job->sync.request_id),
           ZW_LF_STR("status", snap->failed ? "failed" : "complete"),
           ZW_LF_INT("count", snap->count), ZW_LF_INT("pages", snap->pages));
    if (snap->out) {
        if (job->end_json) {
            fputs(job->end_json, snap->out);
            fputc('\n', snap->out);
        }
    } else if (job->end_json) {
        job->pending++;
        produce(job, &job->dr_end);
    }
    job->status = snap->failed ? "failed" : "succeeded";
    job->outcome = snap->failed ? "snapshot_failed" : "snapshot_complete";
    job_finish(job);
}

/* Copies the user attributes a snapshot carries, with the ones the schema
 * requires always present. */
static json_object *snapshot_user(json_object *u)
{
    static const char *const keys[] = {"id",         "external_id",      "email",
                                       "name",       "role",             "custom_role_id",
                                       "suspended",  "active",           "organization_id",
                                       "default_group_id", "tags",       "user_fields",
                                       "created_at", "updated_at",       "last_login_at", NULL};
    json_object *out = json_object_new_object(), *v;

    for (const char *const *k = keys; *k; k++) {
        if (json_object_object_get_ex(u, *k, &v))
            json_object_object_add(out, *k, json_object_get(v));
    }
    if (!json_object_object_get_ex(out, "external_id", NULL))
        json_object_object_add(out, "external_id", NULL);
    if (!json_object_object_get_ex(out, "email", NULL))
        json_object_object_add(out, "email", NULL);
    if (!json_object_object_get_ex(out, "name", NULL))
        json_object_object_add(out, "name", json_object_new_string(""));
    if (!json_object_object_get_ex(out, "role", NULL))
        json_object_object_add(out, "role", json_object_new_string("end-user"));
    if (!json_object_object_get_ex(out, "suspended", NULL))
        json_object_object_add(out, "suspended", json_object_new_boolean(0));
    if (!json_object_object_get_ex(out, "active", NULL))
        json_object_object_add(out, "active", json_object_new_boolean(1));
    return out;
}

static void sync_next_page_timer(void *arg)
{
    job_t *job = arg;
    job->timer = 0;
    if (job->snap->stop) {
        sync_release_if_idle(job);
        return;
    }
    job_submit(job);
}

static void set_cursor(char **slot, const char *value)
{
    free(*slot);
    *slot = value ? strdup(value) : NULL;
}

/* One page: publish its users, then ask for the next page from the cursor
 * the page gave (a failed page is retried from the same cursor). */
static void sync_page_done(job_t *job, zw_http_t *req)
{
    worker_t *w = job->w;
    snapshot_t *snap = job->snap;
    json_object *root = zw_http_json(req), *users = NULL, *v;
    const char *after = NULL;
    bool more = false;
    size_t n;
    char key[128];

    if (!root || !json_object_object_get_ex(root, "users", &users) ||
        !json_object_is_type(users, json_type_array)) {
        json_object_put(root);
        job->failures++;
        if (job->failures >= w->cfg->worker.max_attempts) {
            job_fail(job, "transient_exhausted", req->status, "InvalidResponse",
                     "Zendesk answered a page with a body that is not a user list");
            return;
        }
        job_retry_later(job, zw_backoff_delay_ms(job->failures, w->cfg->worker.backoff_base_ms,
                                                 w->cfg->worker.backoff_max_ms, &w->rng));
        return;
    }
    job->failures = 0;
    job->page_start_ms = zw_loop_now_ms();
    snap->pages++;
    n = json_object_array_length(users);
    for (size_t i = 0; i < n; i++) {
        json_object *u = json_object_array_get_idx(users, i), *rec, *user;
        int64_t id = 0;
        const char *role = NULL;

        if (json_object_object_get_ex(u, "role", &v))
            role = json_object_get_string(v);
        if (!role_wanted(&job->sync, role))
            continue;
        if (json_object_object_get_ex(u, "id", &v))
            id = json_object_get_int64(v);
        user = snapshot_user(u);
        snap->checksum += fnv1a64(json_object_to_json_string_ext(user, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        rec = snapshot_record(job, "user");
        json_object_object_add(rec, "user", user);
        snprintf(key, sizeof(key), "%s/%lld", job->sync.tenant, (long long)id);
        snapshot_emit(job, rec, key);
        json_object_put(rec);
        snap->count++;
    }
    if (!job->sync.incremental) {
        json_object *meta;
        if (json_object_object_get_ex(root, "meta", &meta)) {
            if (json_object_object_get_ex(meta, "has_more", &v))
                more = json_object_get_boolean(v);
            if (json_object_object_get_ex(meta, "after_cursor", &v) &&
                json_object_is_type(v, json_type_string))
                after = json_object_get_string(v);
        }
        more = more && after && *after;
        if (!more) {
            /* A full snapshot continues incrementally from its start time. */
            char next[48];
            snprintf(next, sizeof(next), "start_time:%lld", (long long)snap->start_unix);
            set_cursor(&snap->next_cursor, next);
        }
    } else {
        bool end_of_stream = json_object_object_get_ex(root, "end_of_stream", &v) &&
                             json_object_get_boolean(v);
        if (json_object_object_get_ex(root, "after_cursor", &v) &&
            json_object_is_type(v, json_type_string))
            after = json_object_get_string(v);
        if (after && *after)
            set_cursor(&snap->next_cursor, after);
        /* Stop at end_of_stream, never loop on the last page. */
        more = !end_of_stream && after && *after;
    }
    if (more)
        set_cursor(&snap->cursor, after);
    json_object_put(root);
    zw_metrics_snapshot_progress(w->metrics, job->sync.tenant, (long)snap->count, more);
    if (!more) {
        snap->walk_done = true;
        sync_try_end(job);
        return;
    }
    /* Let the producer drain before listing more: memory stays flat. */
    if (!snap->out && rd_kafka_outq_len(w->producer) > PRODUCER_QUEUE_HIGH)
        job->timer = zw_timers_add(zw_loop_timers(w->loop), zw_loop_now_ms() + 50,
                                   sync_next_page_timer, job);
    else
        job_submit(job);
}

/* Starts a snapshot: begin marker, then the first page. */
static void sync_start(job_t *job)
{
    snapshot_t *snap = job->snap;
    json_object *rec;

    job->tenant->sync_job = job;
    uuid4(job->w, snap->id);
    snap->start_unix = (int64_t)time(NULL);
    if (job->sync.cursor) {
        /* "start_time:N" is the cursor a full snapshot hands out. */
        if (strncmp(job->sync.cursor, "start_time:", 11) == 0) {
            job->sync.has_start_time = true;
            job->sync.start_time = strtoll(job->sync.cursor + 11, NULL, 10);
        } else {
            set_cursor(&snap->cursor, job->sync.cursor);
        }
    }
    ZW_LOG(ZW_LOG_INFO, "snapshot started", ZW_LF_STR("tenant", job->sync.tenant),
           ZW_LF_STR("snapshot_id", snap->id), ZW_LF_STR("request_id", job->sync.request_id),
           ZW_LF_STR("mode", job->sync.incremental ? "incremental" : "full"));
    rec = snapshot_record(job, "begin");
    snapshot_emit(job, rec, job->sync.tenant);
    json_object_put(rec);
    job->started = true;
    job->page_start_ms = zw_loop_now_ms();
    job_submit(job);
}

/* Queues the job's next request on its tenant's lane. */
/* Counts a job into or out of its tenant's events waiting for their lookup:
 * the writes they will bring decide whether writes wait for a bulk job. */
static void set_looking(job_t *job, bool looking)
{
    if (job->looking == looking || !job->tenant)
        return;
    job->looking = looking;
    job->tenant->n_looking += looking ? 1 : -1;
}

static void job_submit(job_t *job)
{
    tenant_t *t = job->tenant;

    set_looking(job, !job->is_sync && !job->group_phase && !job->lookup_done);
    if (job->is_sync)
        job->lane = LANE_SYNC;
    else if (job->group_phase)
        job->lane = LANE_READ; /* membership calls count against the account budget only */
    else if (!job->lookup_done)
        job->lane = LANE_READ;
    else
        job->lane = job->plan.step == ZW_STEP_DELETE ? LANE_READ : LANE_WRITE;
    lane_push(t, job);
    tenant_pump(t);
}

static bool is_plain_lookup(const job_t *job)
{
    /* An id with a comma cannot share a comma-separated list. */
    return !job->is_sync && !job->group_phase && !job->lookup_done &&
           !strchr(job->ev.person.external_id, ',');
}

/* Sends the head lookup of the read lane together with the other lookups
 * waiting there (up to 100): one request instead of one per event, which
 * matters most when the account budget is what limits throughput. */
static void send_lookups(tenant_t *t)
{
    worker_t *w = t->w;
    batch_t *b;
    job_t *job, *prev = NULL, *next;
    char *url = NULL, errstr[256];
    size_t len, cap = LOOKUP_URL_MAX + 300;
    zw_http_t *req;

    /* Only one lookup waiting: the single path. */
    job = t->lane_head[LANE_READ];
    for (next = job->lane_next; next && !is_plain_lookup(next); next = next->lane_next)
        ;
    if (!next) {
        send_request(lane_pop(t, LANE_READ));
        return;
    }
    b = calloc(1, sizeof(*b));
    url = malloc(cap);
    if (!b || !url) {
        free(b);
        free(url);
        send_request(lane_pop(t, LANE_READ));
        return;
    }
    b->kind = OWNER_BATCH;
    b->tenant = t;
    len = (size_t)snprintf(url, cap, "/api/v2/users/show_many?external_ids=");
    for (job = t->lane_head[LANE_READ]; job && b->n < LOOKUP_BATCH_MAX; job = next) {
        char *esc;
        size_t elen;

        next = job->lane_next;
        if (!is_plain_lookup(job)) {
            prev = job;
            continue;
        }
        esc = zw_zendesk_escape(job->ev.person.external_id);
        elen = esc ? strlen(esc) : 0;
        if (!esc || (b->n > 0 && len + elen + 1 > LOOKUP_URL_MAX)) {
            free(esc);
            break;
        }
        len += (size_t)snprintf(url + len, cap - len, "%s%s", b->n ? "," : "", esc);
        free(esc);
        wk_lane_unlink(t, job, prev);
        b->jobs[b->n++] = job;
    }
    req = zw_http_new(&w->http, t->cfg->subdomain, "GET", url, NULL, t->authorization,
                      ZW_ENDPOINT_READ, b, errstr, sizeof(errstr));
    free(url);
    if (!req || zw_loop_http_start(w->loop, req) != 0) {
        zw_http_destroy(req);
        for (size_t i = 0; i < b->n; i++)
            job_fail(b->jobs[i], "transient_exhausted", 0, "LocalError",
                     "cannot start a Zendesk request");
        free(b);
        return;
    }
    w->stats.http_requests++;
    b->next = w->batches;
    if (w->batches)
        w->batches->prev = b;
    w->batches = b;
    for (size_t i = 0; i < b->n; i++) {
        b->jobs[i]->http = req;
        b->jobs[i]->token_gen = t->token_gen;
        if (b->jobs[i]->attempts == 0)
            b->jobs[i]->attempts = 1;
    }
}

static void send_request(job_t *job)
{
    worker_t *w = job->w;
    tenant_t *t = job->tenant;
    char path[600], errstr[256];
    const char *method = "GET";
    zw_endpoint_class_t ep = ZW_ENDPOINT_READ;
    zw_http_t *req;

    char body[160];
    const char *json_body = NULL;

    if (job->is_sync) {
        sync_page_path(job, path, sizeof(path));
    } else if (job->group_phase == 1) {
        snprintf(path, sizeof(path), "/api/v2/users/%lld/group_memberships",
                 (long long)job->user_id);
    } else if (job->group_phase == 2) {
        int64_t op = job->group_ops[job->group_op];
        if (op > 0) {
            method = "POST";
            snprintf(path, sizeof(path), "/api/v2/group_memberships");
            snprintf(body, sizeof(body),
                     "{\"group_membership\":{\"user_id\":%lld,\"group_id\":%lld}}",
                     (long long)job->user_id, (long long)op);
            json_body = body;
        } else {
            method = "DELETE";
            ep = ZW_ENDPOINT_DELETE;
            snprintf(path, sizeof(path), "/api/v2/group_memberships/%lld", (long long)-op);
        }
    } else if (!job->lookup_done) {
        char *esc = zw_zendesk_escape(job->ev.person.external_id);
        snprintf(path, sizeof(path), "/api/v2/users/show_many?external_ids=%s", esc ? esc : "");
        free(esc);
    } else if (job->plan.step == ZW_STEP_CREATE_OR_UPDATE) {
        method = "POST";
        ep = ZW_ENDPOINT_WRITE;
        snprintf(path, sizeof(path), "/api/v2/users/create_or_update");
    } else if (job->plan.step == ZW_STEP_UPDATE) {
        method = "PUT";
        ep = ZW_ENDPOINT_WRITE;
        snprintf(path, sizeof(path), "/api/v2/users/%lld", (long long)job->plan.user_id);
    } else {
        method = "DELETE";
        ep = ZW_ENDPOINT_DELETE;
        snprintf(path, sizeof(path), "/api/v2/users/%lld", (long long)job->plan.user_id);
    }
    if (!json_body && job->lookup_done && !job->is_sync && !job->group_phase)
        json_body = job->plan.body;
    req = zw_http_new(&w->http, t->cfg->subdomain, method, path, json_body, t->authorization, ep, job, errstr,
                      sizeof(errstr));
    if (!req || zw_loop_http_start(w->loop, req) != 0) {
        zw_http_destroy(req);
        job_fail(job, "transient_exhausted", 0, "LocalError", "cannot start a Zendesk request");
        return;
    }
    job->http = req;
    job->token_gen = t->token_gen;
    if (job->attempts == 0)
        job->attempts = 1;
    w->stats.http_requests++;
}

static void job_retry_timer(void *arg)
{
    job_t *job = arg;
    job->timer = 0;
    job_submit(job);
}

/* Retrying stops once the retry deadline has passed since the event
 * started; for a snapshot, since its current page was first asked for, so a
 * long walk is not failed by one late fault. */
static bool past_deadline(const job_t *job, int64_t extra_ms)
{
    int64_t base = job->snap ? job->page_start_ms : job->start_ms;
    return zw_loop_now_ms() + extra_ms - base > job->w->cfg->worker.retry_deadline_ms;
}

static void job_retry_later(job_t *job, int64_t delay_ms)
{
    job->w->stats.retries++;
    zw_metrics_retry(job->w->metrics, job_tenant_label(job), "transient");
    job->attempts++;
    job->timer = zw_timers_add(zw_loop_timers(job->w->loop), zw_loop_now_ms() + delay_ms,
                               job_retry_timer, job);
}

static void record_request_id(job_t *job, const zw_http_t *req)
{
    if (req->request_id[0] && job->n_request_ids < MAX_REQUEST_IDS) {
        char *id = strdup(req->request_id);
        if (id)
            job->request_ids[job->n_request_ids++] = id;
    }
}

/* Finds the active user whose external_id matches (case-insensitively, as
 * Zendesk matches it) in a show_many answer. Returns a new reference. */
static json_object *pick_user(json_object *root, const char *external_id)
{
    json_object *users;
    size_t n;

    if (!root || !json_object_object_get_ex(root, "users", &users) ||
        !json_object_is_type(users, json_type_array))
        return NULL;
    n = json_object_array_length(users);
    for (size_t i = 0; i < n; i++) {
        json_object *u = json_object_array_get_idx(users, i), *v;
        const char *ext;
        if (!json_object_object_get_ex(u, "external_id", &v) ||
            !(ext = json_object_get_string(v)) || strcasecmp(ext, external_id) != 0)
            continue;
        if (json_object_object_get_ex(u, "active", &v) && !json_object_get_boolean(v))
            continue;
        return json_object_get(u);
    }
    return NULL;
}

static int64_t response_user_id(const zw_http_t *req)
{
    json_object *root = zw_http_json(req), *user, *id;
    int64_t v = 0;

    if (root && json_object_object_get_ex(root, "user", &user) &&
        json_object_object_get_ex(user, "id", &id))
        v = json_object_get_int64(id);
    json_object_put(root);
    return v;
}

/* The role the person has once the user write is done. */
static const char *person_role(const job_t *job)
{
    json_object *v;

    if (job->ev.person.role)
        return job->ev.person.role;
    if (job->current && json_object_object_get_ex(job->current, "role", &v))
        return json_object_get_string(v);
    return "end-user";
}

/* The user is as the event asks; group memberships follow when the event
 * names them and the person is an agent or admin (Zendesk refuses groups
 * for end-users). */
static void job_person_done(job_t *job)
{
    const char *role = person_role(job);

    if (!job->ev.person.has_group_ids || job->user_id <= 0 || job->ev.type == ZW_EVENT_LEAVER ||
        strcmp(role, "end-user") == 0 || (job_is_dry(job) && !job->current)) {
        job_finish(job);
        return;
    }
    job->group_phase = 1;
    job->failures = 0;
    job_submit(job);
}

/* Compares the listed memberships with the event's group_ids. */
static void groups_listed(job_t *job, zw_http_t *req)
{
    const zw_person_t *p = &job->ev.person;
    json_object *root = zw_http_json(req), *list = NULL, *v;
    size_t n = 0, ops = 0;

    if (root && json_object_object_get_ex(root, "group_memberships", &list) &&
        json_object_is_type(list, json_type_array))
        n = json_object_array_length(list);
    free(job->group_ops);
    job->group_ops = calloc(n + p->n_group_ids + 1, sizeof(int64_t));
    if (!job->group_ops) {
        json_object_put(root);
        job_fail(job, "permanent", 0, "LocalError", "out of memory");
        return;
    }
    for (size_t i = 0; i < p->n_group_ids; i++) {
        bool have = false;
        for (size_t j = 0; j < n && !have; j++) {
            json_object *m = json_object_array_get_idx(list, j);
            have = json_object_object_get_ex(m, "group_id", &v) &&
                   json_object_get_int64(v) == p->group_ids[i];
        }
        if (!have)
            job->group_ops[ops++] = p->group_ids[i];
    }
    for (size_t j = 0; j < n; j++) {
        json_object *m = json_object_array_get_idx(list, j);
        int64_t gid = 0, mid = 0;
        bool wanted = false;
        if (json_object_object_get_ex(m, "group_id", &v))
            gid = json_object_get_int64(v);
        if (json_object_object_get_ex(m, "id", &v))
            mid = json_object_get_int64(v);
        for (size_t i = 0; i < p->n_group_ids && !wanted; i++)
            wanted = p->group_ids[i] == gid;
        if (!wanted && mid > 0)
            job->group_ops[ops++] = -mid;
    }
    json_object_put(root);
    job->n_group_ops = ops;
    job->group_op = 0;
    if (ops == 0) {
        job_finish(job);
        return;
    }
    if (strcmp(job->outcome, "unchanged") == 0)
        job->outcome = job_is_dry(job) ? "would_update" : "updated";
    if (job_is_dry(job)) {
        job_finish(job);
        return;
    }
    job->group_phase = 2;
    job_submit(job);
}

static void group_op_done(job_t *job)
{
    job->failures = 0;
    if (++job->group_op >= job->n_group_ops) {
        job_finish(job);
        return;
    }
    job_submit(job);
}

static void job_after_lookup(job_t *job, zw_http_t *req)
{
    /* A batch's answer is parsed once and lent to each of its events. */
    json_object *root = job->w->batch_root ? json_object_get(job->w->batch_root)
                                           : zw_http_json(req);
    zw_leaver_policy_t policy = job->tenant->cfg->leaver_policy;

    if (!root) {
        /* A 200 that is not JSON: Zendesk misbehaved; retry as transient. */
        json_object_put(root);
        job->failures++;
        if (job->failures >= job->w->cfg->worker.max_attempts || past_deadline(job, 0)) {
            job_fail(job, "transient_exhausted", req->status, "InvalidResponse",
                     "Zendesk answered the lookup with a body that is not JSON");
            return;
        }
        job_retry_later(job, zw_backoff_delay_ms(job->failures, job->w->cfg->worker.backoff_base_ms,
                                                 job->w->cfg->worker.backoff_max_ms, &job->w->rng));
        return;
    }
    json_object_put(job->current);
    job->current = pick_user(root, job->ev.person.external_id);
    json_object_put(root);
    zw_plan_cleanup(&job->plan);
    if (zw_plan_decide(&job->ev, policy, job->current, &job->plan) != 0) {
        job_fail(job, "permanent", 0, "LocalError", "out of memory planning the change");
        return;
    }
    job->lookup_done = true;
    set_looking(job, false);
    job->failures = 0; /* max_attempts counts per Zendesk call */
    job->user_id = job->plan.user_id;
    if (job->plan.fail_not_found) {
        job->outcome = "not_found";
        job_fail(job, "permanent", 0, "UserNotFound",
                 "no Zendesk user has this external_id, and the event lacks email and name to "
                 "create one");
        return;
    }
    if (job->plan.step == ZW_STEP_NONE) {
        job->status = job_is_dry(job) ? "dry_run" : "succeeded";
        job->outcome = job->plan.outcome;
        job_person_done(job);
        return;
    }
    if (job_is_dry(job)) {
        job->status = "dry_run";
        job->outcome = job->plan.dry_outcome;
        job_person_done(job);
        return;
    }
    job_submit(job);
}

static void job_after_write(job_t *job, zw_http_t *req, zw_class_t cls)
{
    if (cls == ZW_CLASS_NOT_FOUND) {
        if (job->plan.step == ZW_STEP_DELETE) {
            /* Gone already: a leaver's goal is met. */
            job->status = "succeeded";
            job->outcome = "not_found";
            job_finish(job);
            return;
        }
        /* The user vanished between lookup and write: look again. */
        job->lookup_done = false;
        job->attempts++;
        job_submit(job);
        return;
    }
    job->status = "succeeded";
    job->outcome = job->plan.outcome;
    if (job->plan.step == ZW_STEP_CREATE_OR_UPDATE && req->status == 200)
        job->outcome = "updated"; /* matched an existing user by e-mail */
    if (job->plan.step != ZW_STEP_DELETE) {
        int64_t id = response_user_id(req);
        if (id > 0)
            job->user_id = id;
    }
    job_person_done(job);
}

static void job_http_done(job_t *job, zw_http_t *req)
{
    worker_t *w = job->w;
    tenant_t *t = job->tenant;
    zw_class_t cls = zw_retry_classify(req->status, req->curl_code);
    const zw_config_t *c = w->cfg;
    char code[64] = "", msg[300];

    job->http = NULL;
    if (job->abandoned) {
        /* Its partition was handed back while this was in flight. */
        if (job->snap)
            sync_release_if_idle(job);
        else
            job_free(job);
        return;
    }
    if (job->snap && job->snap->stop) {
        sync_release_if_idle(job);
        return;
    }
    if (!job->snap)
        record_request_id(job, req);
    if (job->snap && cls == ZW_CLASS_OK) {
        sync_page_done(job, req);
        return;
    }
    if (job->group_phase && (cls == ZW_CLASS_OK || cls == ZW_CLASS_NOT_FOUND)) {
        if (job->group_phase == 1 && cls == ZW_CLASS_OK)
            groups_listed(job, req);
        else if (job->group_phase == 2 && (cls == ZW_CLASS_OK ||
                                           job->group_ops[job->group_op] < 0))
            group_op_done(job); /* a 404 on removal: already gone */
        else if (job->group_phase == 2)
            job_fail(job, "permanent", req->status, "RecordNotFound",
                     "a group the event names does not exist");
        else
            job_fail(job, "permanent", req->status, "RecordNotFound",
                     "the user's group memberships could not be listed");
        return;
    }
    if (cls == ZW_CLASS_OK || (cls == ZW_CLASS_NOT_FOUND && job->lookup_done)) {
        if (!job->lookup_done)
            job_after_lookup(job, req);
        else
            job_after_write(job, req, cls);
        return;
    }
    switch (cls) {
    case ZW_CLASS_RATE_LIMITED: {
        int64_t wait = zw_retry_after_ms(req->retry_after, time(NULL));
        if (wait < 0)
            wait = req->rl_reset > 0 ? req->rl_reset * 1000 : 10000;
        /* One 429 answers every event of a lookup batch: count, block
         * and log it once per response, retry each event. */
        if (w->batch_429_seen)
            goto requeue;
        if (w->batch_root_pending)
            w->batch_429_seen = true;
        w->stats.rate_limited++;
        zw_metrics_rate_limited(w->metrics, t->cfg->subdomain, (double)wait / 1000.0);
        zw_metrics_retry(w->metrics, t->cfg->subdomain, "rate_limited");
        /* A write refused because this person had their five writes this
         * minute: only this event waits, everyone else goes on. */
        if (req->endpoint == ZW_ENDPOINT_WRITE && req->user_writes_remaining == 0) {
            ZW_LOG(ZW_LOG_INFO, "person's write limit reached, waiting",
                   ZW_LF_STR("tenant", t->cfg->subdomain), ZW_LF_INT("retry_after_ms", wait),
                   ZW_LF_STR("event_id", job->event_id));
            if (past_deadline(job, wait)) {
                job_fail(job, "rate_limited", 429, "APIRateLimitExceeded",
                         "the person's write limit still held when the retry deadline passed");
                return;
            }
            job->attempts++;
            job->timer = zw_timers_add(zw_loop_timers(w->loop), zw_loop_now_ms() + wait,
                                       job_retry_timer, job);
            return;
        }
        /* A write refused while the account still has budget hit the
         * single-user write limit: stop only the tenant's writes. */
        if (req->endpoint == ZW_ENDPOINT_WRITE && req->rl_remaining > 0)
            zw_ratelimit_block_until(t->writes, zw_loop_now_ms() + wait);
        else if (job->snap && job->sync.incremental && req->rl_remaining > 0)
            zw_ratelimit_block_until(t->exports, zw_loop_now_ms() + wait);
        else
            zw_ratelimit_block_until(t->budget, zw_loop_now_ms() + wait);
        ZW_LOG(ZW_LOG_WARN, "rate limited by Zendesk", ZW_LF_STR("tenant", t->cfg->subdomain),
               ZW_LF_INT("retry_after_ms", wait), ZW_LF_STR("event_id", job->event_id));
    requeue:
        if (past_deadline(job, wait)) {
            job_fail(job, "rate_limited", 429, "APIRateLimitExceeded",
                     "still rate limited when the retry deadline passed");
            return;
        }
        /* The wait is the tenant's block: requeue now, the lane waits. */
        job->attempts++;
        job_submit(job);
        return;
    }
    case ZW_CLASS_AUTH:
        zw_http_error_code(req, code, sizeof(code));
        /* Zendesk's 401 body is a sentence ("Couldn't authenticate you"). */
        if (!code[0] || strchr(code, ' '))
            snprintf(code, sizeof(code), "%s", req->status == 401 ? "Unauthorized" : "Forbidden");
        if (t->cfg->auth_type == ZW_AUTH_OAUTH_CLIENT_CREDENTIALS && req->status == 401 &&
            !job->auth_retried) {
            job->auth_retried = true;
            zw_metrics_retry(w->metrics, t->cfg->subdomain, "auth");
            if (job->token_gen == t->token_gen && t->token_state == TOKEN_READY) {
                t->token_state = TOKEN_NONE; /* expired or revoked: get a new one */
                ZW_LOG(ZW_LOG_INFO, "access token refused, renewing",
                       ZW_LF_STR("tenant", t->cfg->subdomain));
            }
            job->attempts++;
            job_submit(job);
            return;
        }
        snprintf(msg, sizeof(msg), "Zendesk refused the credentials (HTTP %ld)", req->status);
        job_fail(job, "auth", req->status, code, msg);
        return;
    case ZW_CLASS_PERMANENT:
    case ZW_CLASS_NOT_FOUND:
        zw_http_error_code(req, code, sizeof(code));
        if (req->status)
            snprintf(msg, sizeof(msg), "Zendesk refused the %s (HTTP %ld%s%s)",
                     job->lookup_done ? "change" : "lookup", req->status, code[0] ? ", " : "",
                     code);
        else
            snprintf(msg, sizeof(msg), "request failed: %s",
                     req->errbuf[0] ? req->errbuf : curl_easy_strerror((CURLcode)req->curl_code));
        job_fail(job, "permanent", req->status, code, msg);
        return;
    case ZW_CLASS_TRANSIENT:
    default: {
        int64_t delay;
        job->failures++;
        zw_http_error_code(req, code, sizeof(code));
        if (req->status)
            snprintf(msg, sizeof(msg), "gave up after %d attempts; last: HTTP %ld%s%s",
                     job->failures, req->status, code[0] ? " " : "", code);
        else
            snprintf(msg, sizeof(msg), "gave up after %d attempts; last: %s", job->failures,
                     curl_easy_strerror((CURLcode)req->curl_code));
        delay = zw_backoff_delay_ms(job->failures, c->worker.backoff_base_ms,
                                    c->worker.backoff_max_ms, &w->rng);
        /* A 503 with Retry-After says exactly how long to wait. */
        if (req->retry_after[0]) {
            int64_t ra = zw_retry_after_ms(req->retry_after, time(NULL));
            if (ra > delay)
                delay = ra;
        }
        if (job->failures >= c->worker.max_attempts || past_deadline(job, delay)) {
            job_fail(job, "transient_exhausted", req->status, code[0] ? code : NULL, msg);
            return;
        }
        ZW_LOG(ZW_LOG_DEBUG, "transient failure, retrying", ZW_LF_STR("event_id", job->event_id),
               ZW_LF_INT("http_status", req->status), ZW_LF_INT("curl_code", req->curl_code),
               ZW_LF_INT("delay_ms", delay));
        job_retry_later(job, delay);
        return;
    }
    }
}

static void on_http_done(zw_http_t *req, void *arg)
{
    worker_t *w = arg;
    owner_kind_t kind = *(owner_kind_t *)req->owner;
    tenant_t *t = kind == OWNER_TENANT  ? (tenant_t *)req->owner
                  : kind == OWNER_BATCH ? ((batch_t *)req->owner)->tenant
                  : kind == OWNER_BULK  ? ((bulk_t *)req->owner)->tenant
                  : kind == OWNER_POLL  ? ((bulk_poll_t *)req->owner)->tenant
                                        : ((job_t *)req->owner)->tenant;
    curl_off_t us = 0;
    const char *endpoint;

    /* Events this response moves on are pumped once, at the end: a batch's
     * or a bulk job's events then reach their lanes together. */
    w->defer_pump++;
    /* The metric's endpoint class follows the method (as operators read a
     * request log), not the rate bucket the request was under. */
    if (req->endpoint == ZW_ENDPOINT_OAUTH)
        endpoint = "oauth";
    else if (req->endpoint == ZW_ENDPOINT_BULK)
        endpoint = "bulk";
    else if (kind == OWNER_JOB && ((job_t *)req->owner)->is_sync)
        endpoint = "list";
    else if (strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0)
        endpoint = "write";
    else if (strcmp(req->method, "DELETE") == 0)
        endpoint = "delete";
    else
        endpoint = "read";
    curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME_T, &us);
    zw_metrics_http_request(w->metrics, t->cfg->subdomain, endpoint, req->status,
                            (double)us / 1e6);

    if (kind == OWNER_TENANT) {
        t = req->owner;
        token_done(t, req);
    } else if (kind == OWNER_BULK || kind == OWNER_POLL) {
        if (req->rl_remaining >= 0)
            zw_ratelimit_observe(t->budget, zw_loop_now_ms(), req->rl_remaining, req->rl_limit,
                                 req->rl_reset, w->share);
        if (kind == OWNER_BULK)
            zw_bulk_http_done(req);
        else
            zw_bulk_poll_done(t, req);
    } else if (kind == OWNER_BATCH) {
        batch_t *b = req->owner;
        if (req->rl_remaining >= 0)
            zw_ratelimit_observe(t->budget, zw_loop_now_ms(), req->rl_remaining, req->rl_limit,
                                 req->rl_reset, w->share);
        /* Each event takes the answer as if the request were its own; a
         * failure is classified and retried per event. */
        if (zw_retry_classify(req->status, req->curl_code) == ZW_CLASS_OK)
            w->batch_root = zw_http_json(req);
        w->batch_root_pending = true;
        w->batch_429_seen = false;
        for (size_t i = 0; i < b->n; i++)
            job_http_done(b->jobs[i], req);
        w->batch_root_pending = false;
        json_object_put(w->batch_root);
        w->batch_root = NULL;
        if (b->prev)
            b->prev->next = b->next;
        else
            w->batches = b->next;
        if (b->next)
            b->next->prev = b->prev;
        free(b);
    } else {
        job_t *job = req->owner;
        t = job->tenant;
        if (req->endpoint != ZW_ENDPOINT_OAUTH && req->rl_remaining >= 0)
            zw_ratelimit_observe(t->budget, zw_loop_now_ms(), req->rl_remaining, req->rl_limit,
                                 req->rl_reset, w->share);
        job_http_done(job, req);
    }
    zw_http_destroy(req);
    w->defer_pump--;
    pump_all(w);
}

/* ---- consuming ---- */

static part_t *part_get(worker_t *w, const char *topic, int32_t partition)
{
    char *name = part_name(topic, partition);
    part_t *p = name ? zw_map_get(w->parts, name) : NULL;

    if (!p && name) {
        p = calloc(1, sizeof(*p));
        if (p) {
            p->topic = strdup(topic);
            p->partition = partition;
            p->stored = -1;
            p->offsets = zw_offsets_new();
            if (!p->topic || !p->offsets || zw_map_put(w->parts, name, p) != 0) {
                zw_offsets_destroy(p->offsets);
                free(p->topic);
                free(p);
                p = NULL;
            }
        }
    }
    free(name);
    return p;
}

static void job_reject(job_t *job, const char *reason, const char *cls, const char *msg)
{
    job->dlq_reason = reason;
    snprintf(job->dlq_message, sizeof(job->dlq_message), "%s", msg);
    job->outcome = "failed";
    job_fail(job, cls, 0, reason, msg);
}

/* A sync request: validated like an event; one walk per tenant at a time,
 * a second request while one runs is reported, not run. */
/* After parsing an event or a sync request: counts it, and rejects it (a
 * failed result and a DLQ record) when it is invalid or names a tenant that
 * is not configured. Returns whether the job goes on. type and tenant are
 * the parsed ones, read only when perr is ZW_EVENT_OK. */
static bool job_admit(worker_t *w, job_t *job, zw_event_error_t perr, char *id, const char *type,
                      const char *tenant, char *errstr, size_t errstr_size)
{
    job->event_id = id;
    zw_metrics_event_consumed(w->metrics, perr == ZW_EVENT_OK ? type : "invalid",
                              perr == ZW_EVENT_OK ? tenant : NULL);
    if (perr != ZW_EVENT_OK) {
        job_reject(job, zw_event_error_name(perr), "invalid_event", errstr);
        return false;
    }
    job->tenant = tenant_find(w, tenant);
    if (!job->tenant) {
        /* Never a URL from event data: only configured tenants are reached. */
        snprintf(errstr, errstr_size, "tenant '%s' is not configured", tenant);
        job_reject(job, "unknown_tenant", "unknown_tenant", errstr);
        return false;
    }
    return true;
}

static void on_sync_message(worker_t *w, job_t *job, const rd_kafka_message_t *m)
{
    char errstr[300], *id = NULL, msg[200];
    zw_event_error_t perr;

    job->is_sync = true;
    perr = zw_sync_request_parse(m->payload, m->len, (size_t)w->cfg->worker.max_event_bytes,
                                 &job->sync, &id, errstr, sizeof(errstr));
    if (!job_admit(w, job, perr, id, "sync", job->sync.tenant, errstr, sizeof(errstr)))
        return;
    if (job->tenant->sync_job) {
        snprintf(msg, sizeof(msg), "snapshot %s of this tenant is still running",
                 job->tenant->sync_job->snap->id);
        job->outcome = "duplicate_request";
        job_fail(job, "permanent", 0, "DuplicateRequest", msg);
        return;
    }
    job->snap = calloc(1, sizeof(*job->snap));
    if (!job->snap) {
        job_fail(job, "permanent", 0, "LocalError", "out of memory");
        return;
    }
    job->dr_snapshot.job = job;
    job->dr_snapshot.kind = DR_SNAPSHOT;
    job->dr_end.job = job;
    job->dr_end.kind = DR_END;
    sync_start(job);
}

static void on_message(worker_t *w, rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    part_t *part = part_get(w, topic, m->partition);
    job_t *job;
    char errstr[300], *id = NULL;
    zw_event_error_t perr;
    rd_kafka_headers_t *hdrs = NULL;

    if (!part || part->revoked) {
        ZW_LOG(ZW_LOG_ERROR, "no state for partition; message left uncommitted",
               ZW_LF_STR("topic", topic), ZW_LF_INT("partition", m->partition));
        return;
    }
    job = calloc(1, sizeof(*job));
    if (!job || zw_offsets_track(part->offsets, m->offset) != 0) {
        ZW_LOG(ZW_LOG_ERROR, "cannot track message; it stays uncommitted",
               ZW_LF_STR("topic", topic), ZW_LF_INT("partition", m->partition),
               ZW_LF_INT("offset", m->offset));
        free(job);
        return;
    }
    w->n_jobs++;
    w->stats.consumed++;
    job->kind = OWNER_JOB;
    job->w = w;
    job->part = part;
    job->offset = m->offset;
    job->part_next = part->jobs;
    if (part->jobs)
        part->jobs->part_prev = job;
    part->jobs = job;
    job->start_ms = zw_loop_now_ms();
    iso_now(job->started_at, sizeof(job->started_at));
    job->dr_result.job = job;
    job->dr_dlq.job = job;
    job->dr_dlq.kind = DR_DLQ;
    if (m->key_len > 0) {
        job->key = malloc(m->key_len + 1);
        if (job->key) {
            memcpy(job->key, m->key, m->key_len);
            job->key[m->key_len] = '\0';
            job->key_len = m->key_len;
        }
    }
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs)
        job->headers = rd_kafka_headers_copy(hdrs);
    job->raw = malloc(m->len + 1);
    if (job->raw) {
        if (m->len)
            memcpy(job->raw, m->payload, m->len);
        job->raw_len = m->len;
    }

    if (strcmp(topic, w->cfg->kafka.topic_sync) == 0) {
        on_sync_message(w, job, m);
        return;
    }
    perr = zw_event_parse(m->payload, m->len, (size_t)w->cfg->worker.max_event_bytes, &job->ev,
                          &id, errstr, sizeof(errstr));
    if (!job_admit(w, job, perr, id, zw_event_type_name(job->ev.type), job->ev.tenant, errstr,
                   sizeof(errstr)))
        return;

    /* Same key, offset order: queue behind the key's active event. The
     * key queue is per partition, as Kafka's ordering is. */
    {
        size_t n = strlen(topic) + (job->key ? job->key_len : 0) + strlen(job->ev.tenant) +
                   strlen(job->ev.person.external_id) + 32;
        char *name = malloc(n);
        keyq_t *q;
        if (!name) {
            job_fail(job, "permanent", 0, "LocalError", "out of memory");
            return;
        }
        if (job->key)
            snprintf(name, n, "%s\x1f%d\x1f%s", topic, (int)m->partition, job->key);
        else
            snprintf(name, n, "%s\x1f%d\x1f%s/%s", topic, (int)m->partition, job->ev.tenant,
                     job->ev.person.external_id);
        q = zw_map_get(w->keyqs, name);
        if (q) {
            q->tail->key_next = job;
            q->tail = job;
            job->keyq = q;
            free(name);
            return;
        }
        q = calloc(1, sizeof(*q));
        if (!q || zw_map_put(w->keyqs, name, q) != 0) {
            free(q);
            free(name);
            job_fail(job, "permanent", 0, "LocalError", "out of memory");
            return;
        }
        q->name = name;
        q->head = q->tail = job;
        job->keyq = q;
        job->started = true;
        job_submit(job);
    }
}

static void set_paused(worker_t *w, bool pause)
{
    rd_kafka_topic_partition_list_t *a = NULL;

    if (w->paused == pause || !w->consumer)
        return;
    if (rd_kafka_assignment(w->consumer, &a) == RD_KAFKA_RESP_ERR_NO_ERROR && a) {
        if (pause)
            rd_kafka_pause_partitions(w->consumer, a);
        else
            rd_kafka_resume_partitions(w->consumer, a);
        rd_kafka_topic_partition_list_destroy(a);
    }
    w->paused = pause;
    zw_metrics_set_paused(w->metrics, pause);
    ZW_LOG(ZW_LOG_DEBUG, pause ? "partitions paused" : "partitions resumed",
           ZW_LF_INT("jobs", w->n_jobs));
}

static void backpressure(worker_t *w)
{
    if (w->stopping)
        return;
    if (!w->paused && w->n_jobs >= w->max_jobs)
        set_paused(w, true);
    else if (w->paused && w->n_jobs <= w->max_jobs / 2)
        set_paused(w, false);
}

static void consume_some(worker_t *w)
{
    int n = 0;
    rd_kafka_message_t *m;

    w->consumer_more = false;
    /* The events of one poll reach their lanes first, then go out together:
     * their lookups share show_many requests (up to 100 ids) instead of
     * leaving one by one as each arrives. */
    w->defer_pump++;
    while ((m = rd_kafka_consumer_poll(w->consumer, 0))) {
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ZW_LOG(ZW_LOG_WARN, "consumer error", ZW_LF_STR("error", rd_kafka_message_errstr(m)));
        } else {
            /* Every polled message is processed, even while pausing:
             * dropping one would let a later commit skip it. */
            on_message(w, m);
        }
        rd_kafka_message_destroy(m);
        if (++n >= CONSUME_BATCH) {
            w->consumer_more = true; /* the fd will not fire again until drained */
            break;
        }
        if (w->n_jobs >= w->max_jobs)
            backpressure(w);
    }
    w->defer_pump--;
    pump_all(w);
    backpressure(w);
}

static void on_consumer_fd(int fd, void *arg)
{
    zw_kafka_fd_drain(fd);
    consume_some(arg);
}

static void on_producer_fd(int fd, void *arg)
{
    worker_t *w = arg;
    zw_kafka_fd_drain(fd);
    while (rd_kafka_poll(w->producer, 0) > 0)
        ;
    backpressure(w);
}

static void on_signal_fd(int fd, void *arg)
{
    worker_t *w = arg;
    char buf[16];
    ssize_t n = read(fd, buf, sizeof(buf));

    (void)n;
    if (w->oneshot) {
        w->stopping = true; /* the sync command stops where it is */
        return;
    }
    if (!w->stopping) {
        w->stopping = true;
        w->stop_deadline = zw_loop_now_ms() + w->cfg->worker.shutdown_timeout_ms;
        ZW_LOG(ZW_LOG_INFO, "shutting down: finishing in-flight work",
               ZW_LF_INT("jobs", w->n_jobs),
               ZW_LF_INT("timeout_ms", w->cfg->worker.shutdown_timeout_ms));
        zw_admin_set_ready(w->admin, false, "draining");
        w->paused = false;
        set_paused(w, true);
        /* A snapshot walk can outlast any shutdown deadline: stop it
         * without an end marker and leave its request uncommitted, so it
         * is redelivered and walked whole. */
        for (size_t i = 0; i < w->n_tenants; i++) {
            job_t *job = w->tenants[i].sync_job;
            if (job && job->snap && !job->snap->ended) {
                job_detach(job);
                job->snap->stop = true;
                w->tenants[i].sync_job = NULL;
                ZW_LOG(ZW_LOG_INFO, "snapshot stopped by shutdown; its request stays uncommitted",
                       ZW_LF_STR("tenant", w->tenants[i].cfg->subdomain),
                       ZW_LF_STR("snapshot_id", job->snap->id));
                sync_release_if_idle(job);
            }
        }
    }
}

/* ---- rebalancing ---- */

static void update_share(worker_t *w)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(w->consumer, w->cfg->kafka.topic_provisioning, NULL);
    int total = 0;
    double share;

    if (rkt && rd_kafka_metadata(w->consumer, 0, rkt, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md && md->topic_cnt == 1)
        total = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    /* Tenants' events are spread over partitions by key, so this
     * replica's share of a tenant's work is its share of partitions. */
    share = total > 0 ? (double)w->n_assigned / total : 1.0;
    if (share > 1.0)
        share = 1.0;
    if (share < 0.01)
        share = 0.01;
    w->share = share;
    for (size_t i = 0; i < w->n_tenants; i++) {
        tenant_t *t = &w->tenants[i];
        double rpm = t->cfg->plan_rpm * share, wrpm = t->cfg->single_write_per_minute * share;
        zw_ratelimit_set_rate(t->budget, rpm, rpm / 12 > 1 ? rpm / 12 : 1, zw_loop_now_ms());
        /* A burst of a tenth of a second: with a high limit, writes
         * finishing in the same millisecond must not wait for each other. */
        zw_ratelimit_set_rate(t->writes, wrpm, wrpm / 600 > 1 ? wrpm / 600 : 1, zw_loop_now_ms());
    }
    ZW_LOG(ZW_LOG_INFO, "assignment changed", ZW_LF_INT("partitions", (long long)w->n_assigned),
           ZW_LF_INT("topic_partitions", total), ZW_LF_INT("share_permille", (long long)(share * 1000)));
}

/* Drops the revoked partition's work that has not reached Zendesk; work in
 * flight ends quietly when its response arrives; finished work still
 * delivers its results. The new owner redoes the rest (idempotently). */
static void part_revoke(worker_t *w, part_t *part)
{
    job_t *job = part->jobs;

    while (job) {
        job_t *next = job->part_next;
        if (job->keyq) {
            keyq_t *q = job->keyq;
            if (zw_map_get(w->keyqs, q->name) == q)
                zw_map_remove(w->keyqs, q->name);
            for (job_t *k = q->head; k; k = k->key_next)
                k->keyq = NULL;
            free(q->name);
            free(q);
        }
        job = next;
    }
    job = part->jobs;
    while (job) {
        job_t *next = job->part_next;
        if (job->snap && !job->finished) {
            /* A walk handed back ends without an end marker: the new owner
             * makes a new, complete snapshot. */
            job_detach(job);
            job->snap->stop = true;
            if (job->tenant && job->tenant->sync_job == job)
                job->tenant->sync_job = NULL;
            sync_release_if_idle(job);
        } else if (!job->finished) {
            job_detach(job);
            if (job->http)
                job->abandoned = true;
            else
                job_free(job);
        }
        job = next;
    }
    /* Only now: job_free() frees a revoked partition with its last job. */
    part->revoked = true;
    if (!part->jobs) {
        part_free(part);
    } else {
        part->zombie_next = w->zombies;
        w->zombies = part;
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    worker_t *w = opaque;
    rd_kafka_error_t *error = NULL;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++)
            part_get(w, parts->elems[i].topic, parts->elems[i].partition);
        error = rd_kafka_incremental_assign(rk, parts);
        w->ever_assigned = true;
        if (!w->stopping)
            zw_admin_set_ready(w->admin, true, NULL); /* a broker answered */
        w->n_assigned += (size_t)parts->cnt;
        if (w->paused)
            rd_kafka_pause_partitions(rk, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        /* Commit what is done before handing the partitions over. */
        rd_kafka_commit(rk, NULL, 0);
        for (int i = 0; i < parts->cnt; i++) {
            char *name = part_name(parts->elems[i].topic, parts->elems[i].partition);
            part_t *p = name ? zw_map_remove(w->parts, name) : NULL;
            free(name);
            zw_metrics_remove_partition(w->metrics, parts->elems[i].topic,
                                        parts->elems[i].partition);
            if (p)
                part_revoke(w, p);
        }
        error = rd_kafka_incremental_unassign(rk, parts);
        w->n_assigned = w->n_assigned >= (size_t)parts->cnt ? w->n_assigned - (size_t)parts->cnt
                                                            : 0;
    } else {
        ZW_LOG(ZW_LOG_ERROR, "rebalance failed", ZW_LF_STR("error", rd_kafka_err2str(err)));
        error = rd_kafka_incremental_unassign(rk, parts);
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
    if (!w->stopping)
        update_share(w);
}

/* ---- setup, the loop, shutdown ---- */

static void partition_gauge(const char *key, void *value, void *arg)
{
    worker_t *w = arg;
    part_t *p = value;
    int64_t lo = -1, hi = -1;

    (void)key;
    /* Cached watermarks: no broker round trip on the loop. */
    if (rd_kafka_get_watermark_offsets(w->consumer, p->topic, p->partition, &lo, &hi) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
        hi = -1;
    zw_metrics_set_partition(w->metrics, p->topic, p->partition, p->stored,
                             hi >= 0 && p->stored >= 0 ? hi - p->stored : -1);
}

static void publish_gauges(worker_t *w)
{
    int64_t now = zw_loop_now_ms();

    zw_metrics_set_in_flight(w->metrics, (long)zw_loop_http_in_flight(w->loop));
    zw_metrics_set_pending_events(w->metrics, (long)w->n_jobs);
    for (size_t i = 0; i < w->n_tenants; i++) {
        tenant_t *t = &w->tenants[i];
        zw_metrics_set_budget(w->metrics, t->cfg->subdomain, zw_ratelimit_available(t->budget, now),
                              t->cfg->plan_rpm * w->share);
    }
    if (w->consumer)
        zw_map_each(w->parts, partition_gauge, w);
}

static void tick(void *arg)
{
    worker_t *w = arg;
    int64_t now = zw_loop_now_ms();

    /* librdkafka's fds fire only on empty -> non-empty: poll anyway. */
    consume_some(w);
    publish_gauges(w);
    while (rd_kafka_poll(w->producer, 0) > 0)
        ;
    if (now >= w->next_stats_ms) {
        w->next_stats_ms = now + STATS_EVERY_MS;
        ZW_LOG(ZW_LOG_INFO, "progress", ZW_LF_INT("consumed", w->stats.consumed),
               ZW_LF_INT("finished", w->stats.finished), ZW_LF_INT("succeeded", w->stats.succeeded),
               ZW_LF_INT("failed", w->stats.failed), ZW_LF_INT("dlq", w->stats.dlq),
               ZW_LF_INT("retries", w->stats.retries),
               ZW_LF_INT("rate_limited", w->stats.rate_limited),
               ZW_LF_INT("http_requests", w->stats.http_requests),
               ZW_LF_INT("jobs", w->n_jobs),
               ZW_LF_INT("in_flight", zw_loop_http_in_flight(w->loop)));
    }
    zw_timers_add(zw_loop_timers(w->loop), now + TICK_MS, tick, w);
}

static int setup_tenants(worker_t *w, char *errstr, size_t errstr_size)
{
    const zw_config_t *c = w->cfg;
    int64_t now = zw_loop_now_ms();

    w->n_tenants = c->zendesk.n_tenants;
    w->tenants = calloc(w->n_tenants, sizeof(tenant_t));
    if (!w->tenants)
        goto oom;
    for (size_t i = 0; i < w->n_tenants; i++) {
        tenant_t *t = &w->tenants[i];
        const zw_tenant_config_t *tc = &c->zendesk.tenants[i];
        t->kind = OWNER_TENANT;
        t->w = w;
        t->cfg = tc;
        t->poll.kind = OWNER_POLL;
        t->poll.tenant = t;
        zw_bulk_setup(t);
        t->budget = zw_ratelimit_new(tc->plan_rpm, tc->plan_rpm / 12 > 1 ? tc->plan_rpm / 12 : 1,
                                     now);
        t->writes = zw_ratelimit_new(tc->single_write_per_minute,
                                     tc->single_write_per_minute / 600 > 1
                                         ? tc->single_write_per_minute / 600
                                         : 1,
                                     now);
        /* Zendesk allows 10 incremental export pages a minute. */
        t->exports = zw_ratelimit_new(10, 1, now);
        if (!t->budget || !t->writes || !t->exports)
            goto oom;
        if (tc->auth_type == ZW_AUTH_API_TOKEN) {
            t->authorization = zw_zendesk_basic_auth(tc->email, tc->token);
            if (!t->authorization)
                goto oom;
            t->token_state = TOKEN_READY;
        }
    }
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory setting up tenants");
    return -1;
}

static void worker_id(char *out, size_t size)
{
    const char *pod = getenv("POD_NAME");
    char host[100] = "localhost";

    if (pod && *pod) {
        snprintf(out, size, "%s", pod);
        return;
    }
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(out, size, "%s:%ld", host, (long)getpid());
}

static void worker_cleanup(worker_t *w);

static void free_keyq(const char *key, void *value, void *arg)
{
    keyq_t *q = value;
    (void)key;
    (void)arg;
    free(q->name);
    free(q);
}

/* At exit: frees a partition and whatever jobs it still has. */
static void free_part_jobs(part_t *p)
{
    while (p->jobs) {
        job_t *job = p->jobs;
        p->jobs = job->part_next;
        job_release(job);
    }
    part_free(p);
}

static void free_part(const char *key, void *value, void *arg)
{
    (void)key;
    (void)arg;
    free_part_jobs(value);
}

/* What run and the one-shot sync share: curl, signals, the loop, tenants.
 * Returns 0, or -1 after logging why. */
static int worker_init(worker_t *w, const zw_config_t *config)
{
    char errstr[512];
    struct sigaction sa;

    memset(w, 0, sizeof(*w));
    w->cfg = config;
    w->consumer_fd = w->producer_fd = -1;
    w->share = 1.0;
    w->max_jobs = (size_t)config->worker.max_in_flight * 8 > 1024
                      ? (size_t)config->worker.max_in_flight * 8
                      : 1024;
    w->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)zw_loop_now_ms();
    if (!w->rng)
        w->rng = 0x9E3779B97F4A7C15ull;
    worker_id(w->worker_id, sizeof(w->worker_id));
    snprintf(w->user_agent, sizeof(w->user_agent), "zendesk-worker/%s", ZW_VERSION);
    w->http.base_url = config->zendesk.base_url;
    w->http.connect_to = config->zendesk.connect_to;
    w->http.ca_file = config->zendesk.ca_file;
    w->http.timeout_ms = config->zendesk.timeout_ms;
    w->http.user_agent = w->user_agent;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        zw_logf(ZW_LOG_ERROR, "cannot initialise libcurl");
        return -1;
    }
    if (pipe(signal_pipe) != 0) {
        zw_logf(ZW_LOG_ERROR, "pipe: %s", strerror(errno));
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    w->parts = zw_map_new();
    w->keyqs = zw_map_new();
    w->loop = zw_loop_new(on_http_done, w, 0, errstr, sizeof(errstr));
    {
        const char *names[1024];
        size_t n = config->zendesk.n_tenants < 1024 ? config->zendesk.n_tenants : 1024;
        for (size_t i = 0; i < n; i++)
            names[i] = config->zendesk.tenants[i].subdomain;
        w->metrics = zw_metrics_new(names, n, ZW_VERSION);
    }
    if (!w->parts || !w->keyqs || !w->loop || !w->metrics ||
        setup_tenants(w, errstr, sizeof(errstr)) != 0 ||
        zw_loop_watch_fd(w->loop, signal_pipe[0], on_signal_fd, w) != 0) {
        zw_logf(ZW_LOG_ERROR, "setup: %s", w->loop ? errstr : "out of memory");
        return -1;
    }
    return 0;
}

int zw_worker_run(const zw_config_t *config)
{
    worker_t w_storage, *w = &w_storage;
    char errstr[512];
    rd_kafka_topic_partition_list_t *topics;
    rd_kafka_queue_t *q;
    int rc = ZW_EXIT_OK;

    if (worker_init(w, config) != 0) {
        rc = ZW_EXIT_SOFTWARE;
        goto out;
    }
    if (*config->admin.listen) {
        w->admin = zw_admin_start(config->admin.listen, w->metrics, errstr, sizeof(errstr));
        if (!w->admin) {
            zw_logf(ZW_LOG_ERROR, "admin endpoint on %s: %s", config->admin.listen, errstr);
            rc = ZW_EXIT_UNAVAILABLE;
            goto out;
        }
        ZW_LOG(ZW_LOG_INFO, "admin endpoint listening", ZW_LF_STR("listen", config->admin.listen),
               ZW_LF_INT("port", zw_admin_port(w->admin)));
        zw_admin_set_ready(w->admin, false, "connecting to Kafka");
    }
    w->producer = zw_kafka_producer_new(config, on_delivery, w, errstr, sizeof(errstr));
    if (!w->producer) {
        zw_logf(ZW_LOG_ERROR, "cannot create the producer: %s", errstr);
        rc = ZW_EXIT_SOFTWARE;
        goto out;
    }
    w->consumer = zw_kafka_consumer_new(config, on_rebalance, w, errstr, sizeof(errstr));
    if (!w->consumer) {
        zw_logf(ZW_LOG_ERROR, "cannot create the consumer: %s", errstr);
        rc = ZW_EXIT_SOFTWARE;
        goto out;
    }
    rd_kafka_poll_set_consumer(w->consumer);
    q = rd_kafka_queue_get_consumer(w->consumer);
    w->consumer_fd = zw_kafka_queue_fd(q);
    rd_kafka_queue_destroy(q);
    q = rd_kafka_queue_get_main(w->producer);
    w->producer_fd = zw_kafka_queue_fd(q);
    rd_kafka_queue_destroy(q);
    if (w->consumer_fd < 0 || w->producer_fd < 0 ||
        zw_loop_watch_fd(w->loop, w->consumer_fd, on_consumer_fd, w) != 0 ||
        zw_loop_watch_fd(w->loop, w->producer_fd, on_producer_fd, w) != 0) {
        zw_logf(ZW_LOG_ERROR, "cannot watch the Kafka queues: %s", strerror(errno));
        rc = ZW_EXIT_SOFTWARE;
        goto out;
    }
    topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, config->kafka.topic_provisioning,
                                      RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(topics, config->kafka.topic_sync, RD_KAFKA_PARTITION_UA);
    if (rd_kafka_subscribe(w->consumer, topics) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_topic_partition_list_destroy(topics);
        zw_logf(ZW_LOG_ERROR, "cannot subscribe");
        rc = ZW_EXIT_UNAVAILABLE;
        goto out;
    }
    rd_kafka_topic_partition_list_destroy(topics);
    {
        /* Ready once a broker answers; partitions may still be on their way. */
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(w->producer, 1, NULL, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            md->broker_cnt > 0) {
            zw_admin_set_ready(w->admin, true, NULL);
        } else {
            zw_logf(ZW_LOG_WARN, "no Kafka broker answered yet; not ready");
            zw_admin_set_ready(w->admin, false, "Kafka broker unreachable");
        }
        if (md)
            rd_kafka_metadata_destroy(md);
    }
    for (size_t i = 0; i < w->n_tenants; i++) {
        if (w->tenants[i].cfg->auth_type == ZW_AUTH_OAUTH_CLIENT_CREDENTIALS)
            token_fetch(&w->tenants[i]);
    }
    w->next_stats_ms = zw_loop_now_ms() + STATS_EVERY_MS;
    tick(w);
    ZW_LOG(ZW_LOG_INFO, "worker started", ZW_LF_STR("worker_id", w->worker_id),
           ZW_LF_STR("version", ZW_VERSION), ZW_LF_STR("group", config->kafka.group_id),
           ZW_LF_STR("topic", config->kafka.topic_provisioning),
           ZW_LF_INT("tenants", w->n_tenants), ZW_LF_INT("dry_run", config->worker.dry_run));

    for (;;) {
        if (zw_loop_run_once(w->loop, w->consumer_more ? 0 : TICK_MS) != 0) {
            zw_logf(ZW_LOG_ERROR, "event loop failed: %s", strerror(errno));
            rc = ZW_EXIT_SOFTWARE;
            break;
        }
        zw_admin_heartbeat(w->admin, zw_loop_now_ms());
        if (w->consumer_more)
            consume_some(w);
        if (w->stopping && (w->n_jobs == 0 || zw_loop_now_ms() >= w->stop_deadline))
            break;
    }
    if (w->n_jobs > 0)
        ZW_LOG(ZW_LOG_WARN, "shutdown deadline passed; unfinished events stay uncommitted",
               ZW_LF_INT("jobs", w->n_jobs));
    /* Deliver what is finished (bounded), then commit what is stored. */
    rd_kafka_flush(w->producer, 5000);
    rd_kafka_commit(w->consumer, NULL, 0);
    ZW_LOG(ZW_LOG_INFO, "stopped", ZW_LF_INT("consumed", w->stats.consumed),
           ZW_LF_INT("finished", w->stats.finished), ZW_LF_INT("dlq", w->stats.dlq));

out:
    if (w->consumer) {
        /* librdkafka 2.0.2 may crash closing a cooperative consumer that was
         * never assigned anything: skip the close then. */
        if (w->ever_assigned)
            rd_kafka_consumer_close(w->consumer);
        rd_kafka_destroy_flags(w->consumer,
                               w->ever_assigned ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    if (w->producer) {
        rd_kafka_flush(w->producer, 1000);
        rd_kafka_destroy(w->producer);
    }
    worker_cleanup(w);
    return rc;
}

/* Frees what worker_init made, and whatever work is left. */
static void worker_cleanup(worker_t *w)
{
    zw_admin_stop(w->admin);
    zw_loop_destroy(w->loop);
    while (w->batches) {
        batch_t *b = w->batches;
        w->batches = b->next;
        free(b);
    }
    if (w->keyqs) {
        zw_map_each(w->keyqs, free_keyq, NULL);
        zw_map_destroy(w->keyqs);
    }
    if (w->parts) {
        zw_map_each(w->parts, free_part, NULL);
        zw_map_destroy(w->parts);
    }
    while (w->zombies) {
        part_t *p = w->zombies;
        w->zombies = p->zombie_next;
        free_part_jobs(p);
    }
    for (size_t i = 0; w->tenants && i < w->n_tenants; i++) {
        tenant_t *t = &w->tenants[i];
        zw_bulk_cleanup(t);
        zw_ratelimit_destroy(t->budget);
        zw_ratelimit_destroy(t->writes);
        zw_ratelimit_destroy(t->exports);
        if (t->authorization) {
            memset(t->authorization, 0, strlen(t->authorization));
            free(t->authorization);
        }
    }
    free(w->tenants);
    if (w->consumer_fd >= 0)
        close(w->consumer_fd);
    if (w->producer_fd >= 0)
        close(w->producer_fd);
    if (signal_pipe[0] >= 0) {
        close(signal_pipe[0]);
        close(signal_pipe[1]);
        signal_pipe[0] = signal_pipe[1] = -1;
    }
    zw_metrics_destroy(w->metrics);
    zw_http_pool_drain();
    curl_global_cleanup();
}

/* ---- the one-shot sync command ---- */

static void progress_tick(void *arg)
{
    worker_t *w = arg;
    job_t *job = w->oneshot_job;
    int64_t now = zw_loop_now_ms();
    double secs = (double)(now - job->start_ms) / 1000.0;
    tenant_t *t = job->tenant;

    if (job->finished)
        return;
    /* One line, redrawn: users so far, pages, rate, and the budget that
     * paces the walk (Zendesk gives no total, so no time left is guessed
     * beyond what the budget allows per minute). */
    fprintf(stderr,
            "\r\033[K%s: %lld users, %d pages, %.0f users/s, %.0f s, budget %.0f of %d req/min left",
            t->cfg->subdomain, (long long)job->snap->count, job->snap->pages,
            secs > 0 ? (double)job->snap->count / secs : 0.0, secs,
            zw_ratelimit_available(t->budget, now), t->cfg->plan_rpm);
    zw_timers_add(zw_loop_timers(w->loop), now + 250, progress_tick, w);
}

int zw_worker_sync_oneshot(const zw_config_t *config, const char *tenant, bool incremental,
                           const char *cursor, const char *out_path)
{
    worker_t w_storage, *w = &w_storage;
    part_t *part = NULL;
    job_t *job = NULL;
    FILE *out = NULL;
    int rc = ZW_EXIT_SOFTWARE;
    char request_id[64];
    bool tty = isatty(2) != 0;

    if (worker_init(w, config) != 0)
        goto out;
    w->oneshot = true;
    if (!tenant_find(w, tenant)) {
        zw_logf(ZW_LOG_ERROR, "tenant '%s' is not configured in %s", tenant, config->path);
        rc = ZW_EXIT_CONFIG;
        goto out;
    }
    out = out_path ? fopen(out_path, "w") : stdout;
    if (!out) {
        zw_logf(ZW_LOG_ERROR, "cannot write %s: %s", out_path, strerror(errno));
        rc = ZW_EXIT_CANTCREAT;
        goto out;
    }
    part = calloc(1, sizeof(*part));
    job = calloc(1, sizeof(*job));
    if (!part || !job || !(part->topic = strdup("(sync command)")) ||
        !(job->snap = calloc(1, sizeof(*job->snap))))
        goto out;
    snprintf(request_id, sizeof(request_id), "cli-%lld-%ld", (long long)time(NULL),
             (long)getpid());
    job->kind = OWNER_JOB;
    job->w = w;
    job->part = part;
    part->jobs = job;
    w->n_jobs = 1;
    job->is_sync = true;
    job->sync.request_id = strdup(request_id);
    job->sync.tenant = strdup(tenant);
    job->sync.incremental = incremental;
    job->sync.cursor = cursor ? strdup(cursor) : NULL;
    job->event_id = strdup(request_id);
    job->tenant = tenant_find(w, tenant);
    job->start_ms = zw_loop_now_ms();
    iso_now(job->started_at, sizeof(job->started_at));
    job->snap->out = out;
    w->oneshot_job = job;
    for (size_t i = 0; i < w->n_tenants; i++) {
        if (w->tenants[i].cfg->auth_type == ZW_AUTH_OAUTH_CLIENT_CREDENTIALS &&
            &w->tenants[i] == job->tenant)
            token_fetch(&w->tenants[i]);
    }
    sync_start(job);
    if (tty)
        progress_tick(w);
    while (!job->finished && !w->stopping) {
        if (zw_loop_run_once(w->loop, 1000) != 0)
            break;
    }
    if (tty)
        fputs("\r\033[K", stderr);
    if (job->finished) {
        int64_t ms = zw_loop_now_ms() - job->start_ms;
        fprintf(stderr, "snapshot %s of %s: %s, %lld users, %d pages, %.1f s%s%s\n",
                job->snap->id, tenant, job->snap->failed ? "FAILED" : "complete",
                (long long)job->snap->count, job->snap->pages, (double)ms / 1000.0,
                job->snap->failed ? ": " : "", job->snap->failed ? job->err_msg : "");
        if (job->snap->next_cursor && !job->snap->failed)
            fprintf(stderr, "continue later with: --mode incremental --cursor '%s'\n",
                    job->snap->next_cursor);
        rc = job->snap->failed ? ZW_EXIT_UNAVAILABLE : ZW_EXIT_OK;
    } else {
        fprintf(stderr, "interrupted: the output has no end marker\n");
        rc = ZW_EXIT_INTERRUPTED;
    }

out:
    if (job) {
        if (job->timer && w->loop)
            zw_timers_cancel(zw_loop_timers(w->loop), job->timer);
        job_release(job);
        if (part)
            part->jobs = NULL;
    }
    if (part) {
        free(part->topic);
        free(part);
    }
    if (out && out != stdout)
        fclose(out);
    else if (out)
        fflush(out);
    w->n_jobs = 0;
    worker_cleanup(w);
    return rc;
}

/* ---- for bulk.c ---- */

void wk_job_submit(job_t *job)
{
    job_submit(job);
}

void wk_job_fail(job_t *job, const char *cls, long http, const char *code, const char *msg)
{
    job_fail(job, cls, http, code, msg);
}

void wk_job_person_done(job_t *job)
{
    job_person_done(job);
}

void wk_job_retry_later(job_t *job, int64_t delay_ms)
{
    job_retry_later(job, delay_ms);
}

bool wk_past_deadline(const job_t *job, int64_t extra_ms)
{
    return past_deadline(job, extra_ms);
}

void wk_record_request_id(job_t *job, const zw_http_t *req)
{
    record_request_id(job, req);
}

void wk_tenant_wake_in(tenant_t *t, int64_t wait_ms)
{
    tenant_wake_in(t, wait_ms);
}

/* A job's lifecycle, whatever the work: made from a consumed message, moved
 * through its states, retried on a timer, ended with a result (and a DLQ
 * record for bad input), freed once the broker acked them, which is when its
 * offset counts as done. Also the one policy for answers that failed. */
#include "job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zw/log.h"
#include "zw/metrics.h"
#include "zw/version.h"

static const char *const STATE_NAMES[] = {
    "NEW",         "QUEUED",       "LOOKUP",        "WRITE",     "GROUPS_LIST",
    "GROUPS_APPLY", "WALK_PAGING", "WALK_DRAINING", "PRODUCING", "STOPPED"};


zw_job_t *zw_job_new(zw_jobs_t *js, zw_part_t *part, int64_t offset, const zw_job_ops_t *ops)
{
    zw_job_t *job = calloc(1, sizeof(*job));

    if (!job || zw_part_track(part, offset, &job->plink) != 0) {
        free(job);
        return NULL;
    }
    js->n_jobs++;
    js->env->stats.consumed++;
    job->js = js;
    job->ops = ops;
    job->part = part;
    job->offset = offset;
    job->start_ms = job->retry_base_ms = zw_loop_now_ms();
    zw_env_iso_now(job->started_at, sizeof(job->started_at));
    job->dr_result.acked = job->dr_dlq.acked = zw_job_acked;
    job->dr_result.arg = job->dr_dlq.arg = job;
    job->dr_result.retry = job->dr_dlq.retry = true;
    return job;
}

void zw_job_copy_message(zw_job_t *job, const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *hdrs = NULL;

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
}

void zw_job_set_state(zw_job_t *job, zw_job_state_t state)
{
    if (job->state == state)
        return;
    if (zw_log_enabled(ZW_LOG_DEBUG)) {
        char change[48];
        snprintf(change, sizeof(change), "%s -> %s", STATE_NAMES[job->state], STATE_NAMES[state]);
        ZW_LOG(ZW_LOG_DEBUG, "job state", ZW_LF_STR("event_id", job->event_id),
               ZW_LF_STR("change", change));
    }
    job->state = state;
}

void zw_job_release(zw_job_t *job)
{
    if (job->ops && job->ops->release)
        job->ops->release(job);
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

void zw_job_free(zw_job_t *job)
{
    zw_jobs_t *js = job->js;

    zw_env_cancel(js->env, &job->timer);
    if (js->output) {
        zw_output_cancel(js->output, &job->dr_result);
        zw_output_cancel(js->output, &job->dr_dlq);
    }
    if (job->held)
        zw_tenant_add_events(job->tenant, -1);
    zw_part_unlink(js->parts, job->part, &job->plink);
    zw_job_release(job);
    js->n_jobs--;
}

void zw_job_set_looking(zw_job_t *job, bool looking)
{
    if (job->looking == looking || !job->tenant)
        return;
    job->looking = looking;
    zw_tenant_add_looking(job->tenant, looking ? 1 : -1);
}

void zw_job_detach(zw_job_t *job)
{
    zw_env_cancel(job->js->env, &job->timer);
    if (job->lane.in_lane)
        zw_tenant_remove(job->tenant, &job->lane);
    zw_job_set_looking(job, false);
}

/* ---- the end ---- */

/* Every record the job produced is acked: its offset is done. */
static void job_done(zw_job_t *job)
{
    zw_jobs_t *js = job->js;

    zw_metrics_event_finished(js->env->metrics, job->ops->type_label(job),
                              job->tenant ? zw_tenant_name(job->tenant) : NULL, job->status,
                              job->outcome, (double)(zw_loop_now_ms() - job->start_ms) / 1000.0);
    zw_part_done(js->parts, job->part, job->offset);
    zw_job_free(job);
}

void zw_job_acked(zw_delivery_t *d, rd_kafka_resp_err_t err)
{
    zw_job_t *job = d->arg;

    (void)err; /* these records are produced until delivered */
    if (--job->pending == 0)
        job_done(job);
}

static void job_log(zw_log_level_t level, const zw_job_t *job, const char *type, const char *msg)
{
    ZW_LOG(level, msg, ZW_LF_STR("event_id", job->event_id),
           ZW_LF_STR("tenant", job->tenant ? zw_tenant_name(job->tenant) : NULL),
           ZW_LF_STR("type", type), ZW_LF_STR("topic", zw_part_topic(job->part)),
           ZW_LF_INT("partition", zw_part_partition(job->part)), ZW_LF_INT("offset", job->offset),
           ZW_LF_INT("attempt", job->attempts), ZW_LF_STR("status", job->status),
           ZW_LF_STR("outcome", job->outcome), ZW_LF_STR("error_class", job->err_class),
           ZW_LF_STR("error_code", job->err_code[0] ? job->err_code : NULL));
}

static void count_finished(zw_job_t *job)
{
    zw_stats_t *st = &job->js->env->stats;

    st->finished++;
    if (strcmp(job->status, "succeeded") == 0)
        st->succeeded++;
    else if (strcmp(job->status, "dry_run") == 0)
        st->dry_run++;
    else
        st->failed++;
}

static void produce_result(zw_job_t *job, const zw_result_t *r)
{
    zw_delivery_t *d = &job->dr_result;

    job->result_json = zw_result_json(r);
    if (!job->result_json)
        return;
    d->topic = job->js->env->cfg->kafka.topic_results;
    d->key = job->key;
    d->key_len = job->key_len;
    d->value = job->result_json;
    d->value_len = strlen(job->result_json);
    d->input_headers = job->headers;
    d->ce_type = "dev.zendesk-worker.provisioning.result.v1";
    d->subject = job->event_id;
    job->pending++;
    zw_output_produce(job->js->output, d);
}

static void produce_dlq(zw_job_t *job)
{
    zw_env_t *env = job->js->env;
    zw_delivery_t *d = &job->dr_dlq;

    env->stats.dlq++;
    zw_metrics_dlq(env->metrics, job->dlq_reason);
    job->dlq.reason = job->dlq_reason;
    job->dlq.message = job->dlq_message;
    job->dlq.source_topic = zw_part_topic(job->part);
    job->dlq.source_partition = zw_part_partition(job->part);
    job->dlq.source_offset = job->offset;
    d->topic = env->cfg->kafka.topic_dead_letter;
    d->key = job->key;
    d->key_len = job->key_len;
    d->value = job->raw;
    d->value_len = job->raw_len;
    d->input_headers = job->headers;
    d->subject = job->event_id;
    d->dlq = &job->dlq;
    job->pending++;
    zw_output_produce(job->js->output, d);
}

void zw_job_finish(zw_job_t *job)
{
    zw_env_t *env = job->js->env;
    zw_result_t r;
    char finished_at[32];
    zw_keyq_link_t *next;

    memset(&r, 0, sizeof(r));
    job->ops->describe(job, &r);
    zw_job_set_state(job, ZW_JOB_PRODUCING);
    zw_job_detach(job);
    count_finished(job);
    job_log(strcmp(job->status, "failed") == 0 ? ZW_LOG_WARN : ZW_LOG_INFO, job, r.type,
            "event finished");
    if (env->oneshot)
        return; /* the sync command reads the job's state and frees it */
    if (job->event_id) {
        zw_env_iso_now(finished_at, sizeof(finished_at));
        r.event_id = job->event_id;
        r.status = job->status;
        r.outcome = job->outcome;
        r.user_id = job->user_id;
        r.attempts = job->attempts;
        r.err_class = job->err_class;
        r.err_http = job->err_http;
        r.err_code = job->err_code;
        r.err_msg = job->err_msg;
        r.request_ids = job->request_ids;
        r.n_request_ids = job->n_request_ids;
        r.started_at = job->started_at;
        r.finished_at = finished_at;
        r.duration_ms = zw_loop_now_ms() - job->start_ms;
        r.worker_id = env->worker_id;
        r.worker_version = ZW_VERSION;
        r.topic = zw_part_topic(job->part);
        r.partition = zw_part_partition(job->part);
        r.offset = job->offset;
        produce_result(job, &r);
    }
    if (job->dlq_reason)
        produce_dlq(job);
    else {
        /* The raw bytes are only needed for the DLQ record (copied when produced). */
        free(job->raw);
        job->raw = NULL;
    }
    next = zw_keyq_next(job->js->keyqs, &job->klink);
    if (next) {
        zw_job_t *n = ZW_JOB_OF(next, klink);
        n->ops->start(n);
    }
    if (job->pending == 0)
        job_done(job);
}

void zw_job_set_error(zw_job_t *job, const char *cls, long http, const char *code,
                      const char *msg)
{
    job->err_class = cls;
    job->err_http = http;
    snprintf(job->err_code, sizeof(job->err_code), "%s", code ? code : "");
    snprintf(job->err_msg, sizeof(job->err_msg), "%s", msg);
}

void zw_job_fail(zw_job_t *job, const char *cls, long http, const char *code, const char *msg)
{
    if (job->ops->fail && job->ops->fail(job, cls, http, code, msg))
        return;
    job->status = "failed";
    /* Only these outcomes describe a failure more precisely than "failed". */
    if (!job->outcome ||
        (strcmp(job->outcome, "not_found") != 0 && strcmp(job->outcome, "duplicate_request") != 0))
        job->outcome = "failed";
    zw_job_set_error(job, cls, http, code, msg);
    zw_job_finish(job);
}

void zw_job_reject(zw_job_t *job, const char *reason, const char *cls, const char *msg)
{
    job->dlq_reason = reason;
    snprintf(job->dlq_message, sizeof(job->dlq_message), "%s", msg);
    job->outcome = "failed";
    zw_job_fail(job, cls, 0, reason, msg);
}

/* ---- retries ---- */

static void retry_timer(void *arg)
{
    zw_job_t *job = arg;

    job->timer = 0;
    job->ops->submit(job);
}

void zw_job_wait(zw_job_t *job, int64_t delay_ms)
{
    job->attempts++;
    zw_env_cancel(job->js->env, &job->timer);
    job->timer = zw_env_timer(job->js->env, delay_ms, retry_timer, job);
}

void zw_job_hold_for(zw_job_t *job, int64_t delay_ms)
{
    zw_env_cancel(job->js->env, &job->timer);
    job->timer = zw_env_timer(job->js->env, delay_ms, retry_timer, job);
}

void zw_job_retry_later(zw_job_t *job, int64_t delay_ms)
{
    job->js->env->stats.retries++;
    zw_metrics_retry(job->js->env->metrics, job->tenant ? zw_tenant_name(job->tenant) : NULL,
                     "transient");
    zw_job_wait(job, delay_ms);
}

bool zw_job_past_deadline(const zw_job_t *job, int64_t delay_ms)
{
    return zw_loop_now_ms() + delay_ms - job->retry_base_ms >
           job->js->env->cfg->worker.retry_deadline_ms;
}

void zw_job_record_request_id(zw_job_t *job, const zw_http_t *req)
{
    if (req->request_id[0] && job->n_request_ids < ZW_JOB_MAX_REQUEST_IDS) {
        char *id = strdup(req->request_id);
        if (id)
            job->request_ids[job->n_request_ids++] = id;
    }
}

bool zw_job_send(zw_job_t *job, zw_http_t *req, zw_http_done_fn fn)
{
    req = zw_tenant_send(job->tenant, req, fn, job);
    if (!req) {
        zw_job_fail(job, "transient_exhausted", 0, "LocalError", "cannot start a Zendesk request");
        return false;
    }
    job->http = req;
    job->token_gen = zw_auth_gen(zw_tenant_auth(job->tenant));
    if (job->attempts == 0)
        job->attempts = 1;
    return true;
}

void zw_job_backoff_or_fail(zw_job_t *job, long http, const char *code, const char *msg)
{
    int64_t delay = zw_env_backoff_ms(job->js->env, ++job->failures);

    if (job->failures >= job->js->env->cfg->worker.max_attempts ||
        zw_job_past_deadline(job, delay)) {
        zw_job_fail(job, "transient_exhausted", http, code, msg);
        return;
    }
    zw_job_retry_later(job, delay);
}

/* ---- the answer policy ---- */

/* A 429: wait the Retry-After, blocking what it stops (one person's writes,
 * the tenant's writes, its exports or its whole budget), then go again. */
static void rate_limited(zw_job_t *job, const zw_http_t *req, const zw_answer_ctx_t *ctx)
{
    zw_env_t *env = job->js->env;
    zw_tenant_t *t = job->tenant;
    const char *name = zw_tenant_name(t);
    int64_t wait = zw_retry_429_wait_ms(req->retry_after, req->rl_reset, time(NULL), 10000);

    /* One 429 answers every event of a lookup batch: count, block and log
     * it once per response, retry each event. */
    if (!ctx->seen_429 || !*ctx->seen_429) {
        if (ctx->seen_429)
            *ctx->seen_429 = true;
        env->stats.rate_limited++;
        zw_metrics_rate_limited(env->metrics, name, (double)wait / 1000.0);
        zw_metrics_retry(env->metrics, name, "rate_limited");
        /* A write refused because this person had their five writes this
         * minute: only this event waits, everyone else goes on. */
        if (req->endpoint == ZW_ENDPOINT_WRITE && req->user_writes_remaining == 0) {
            ZW_LOG(ZW_LOG_INFO, "person's write limit reached, waiting", ZW_LF_STR("tenant", name),
                   ZW_LF_INT("retry_after_ms", wait), ZW_LF_STR("event_id", job->event_id));
            if (zw_job_past_deadline(job, wait))
                zw_job_fail(job, "rate_limited", 429, "APIRateLimitExceeded",
                            "the person's write limit still held when the retry deadline passed");
            else
                zw_job_wait(job, wait);
            return;
        }
        /* A write refused while the account still has budget hit the
         * single-user write limit: stop only the tenant's writes. */
        if (req->endpoint == ZW_ENDPOINT_WRITE && req->rl_remaining > 0)
            zw_ratelimit_block_until(zw_tenant_writes(t), zw_loop_now_ms() + wait);
        else if (ctx->export_page && req->rl_remaining > 0)
            zw_ratelimit_block_until(zw_tenant_exports(t), zw_loop_now_ms() + wait);
        else
            zw_ratelimit_block_until(zw_tenant_budget(t), zw_loop_now_ms() + wait);
        ZW_LOG(ZW_LOG_WARN, "rate limited by Zendesk", ZW_LF_STR("tenant", name),
               ZW_LF_INT("retry_after_ms", wait), ZW_LF_STR("event_id", job->event_id));
    }
    if (zw_job_past_deadline(job, wait)) {
        zw_job_fail(job, "rate_limited", 429, "APIRateLimitExceeded",
                    "still rate limited when the retry deadline passed");
        return;
    }
    /* The wait is the tenant's block: requeue now, the lane waits. */
    job->attempts++;
    job->ops->submit(job);
}

static void auth_refused(zw_job_t *job, const zw_http_t *req)
{
    zw_auth_t *auth = zw_tenant_auth(job->tenant);
    char code[64], msg[300];

    zw_http_error_code(req, code, sizeof(code));
    /* Zendesk's 401 body is a sentence ("Couldn't authenticate you"). */
    if (!code[0] || strchr(code, ' '))
        snprintf(code, sizeof(code), "%s", req->status == 401 ? "Unauthorized" : "Forbidden");
    if (zw_auth_is_oauth(auth) && req->status == 401 && !job->auth_retried) {
        job->auth_retried = true;
        zw_metrics_retry(job->js->env->metrics, zw_tenant_name(job->tenant), "auth");
        zw_auth_rejected(auth, job->token_gen);
        job->attempts++;
        job->ops->submit(job);
        return;
    }
    snprintf(msg, sizeof(msg), "Zendesk refused the credentials (HTTP %ld)", req->status);
    zw_job_fail(job, "auth", req->status, code, msg);
}

static void refused(zw_job_t *job, const zw_http_t *req, const zw_answer_ctx_t *ctx)
{
    char code[64], msg[300];

    zw_http_error_code(req, code, sizeof(code));
    if (req->status)
        snprintf(msg, sizeof(msg), "Zendesk refused the %s (HTTP %ld%s%s)", ctx->what,
                 req->status, code[0] ? ", " : "", code);
    else
        snprintf(msg, sizeof(msg), "request failed: %s",
                 req->errbuf[0] ? req->errbuf : curl_easy_strerror((CURLcode)req->curl_code));
    zw_job_fail(job, "permanent", req->status, code, msg);
}

static void transient(zw_job_t *job, const zw_http_t *req)
{
    const zw_config_t *c = job->js->env->cfg;
    char code[64], msg[300];
    int64_t delay;

    job->failures++;
    zw_http_error_code(req, code, sizeof(code));
    if (req->status)
        snprintf(msg, sizeof(msg), "gave up after %d attempts; last: HTTP %ld%s%s", job->failures,
                 req->status, code[0] ? " " : "", code);
    else
        snprintf(msg, sizeof(msg), "gave up after %d attempts; last: %s", job->failures,
                 curl_easy_strerror((CURLcode)req->curl_code));
    delay = zw_env_backoff_ms(job->js->env, job->failures);
    /* A 503 with Retry-After says exactly how long to wait. */
    if (req->retry_after[0]) {
        int64_t ra = zw_retry_after_ms(req->retry_after, time(NULL));
        if (ra > delay)
            delay = ra;
    }
    if (job->failures >= c->worker.max_attempts || zw_job_past_deadline(job, delay)) {
        zw_job_fail(job, "transient_exhausted", req->status, code[0] ? code : NULL, msg);
        return;
    }
    ZW_LOG(ZW_LOG_DEBUG, "transient failure, retrying", ZW_LF_STR("event_id", job->event_id),
           ZW_LF_INT("http_status", req->status), ZW_LF_INT("curl_code", req->curl_code),
           ZW_LF_INT("delay_ms", delay));
    zw_job_retry_later(job, delay);
}

void zw_job_answer_failed(zw_job_t *job, const zw_http_t *req, zw_class_t cls,
                          const zw_answer_ctx_t *ctx)
{
    switch (cls) {
    case ZW_CLASS_RATE_LIMITED:
        rate_limited(job, req, ctx);
        return;
    case ZW_CLASS_AUTH:
        auth_refused(job, req);
        return;
    case ZW_CLASS_PERMANENT:
    case ZW_CLASS_NOT_FOUND:
        refused(job, req, ctx);
        return;
    case ZW_CLASS_OK:
    case ZW_CLASS_TRANSIENT:
    default:
        transient(job, req);
        return;
    }
}

/* Producing results, snapshot records and DLQ records: their headers, and
 * producing again what the broker did not take, so an event's offset is
 * never committed before its result is acked. */
#include "zw/output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zw/log.h"

#include "env.h"

#define RETRY_QUEUE_MS 200    /* the producer's local queue refused the record */
#define RETRY_DELIVERY_MS 500 /* the broker did not take it */
#define DLQ_CUT_BYTES 262144  /* what a DLQ value too large to produce is cut to */

struct zw_output_s {
    zw_env_t *env;
    rd_kafka_t *producer;
};

zw_output_t *zw_output_new(zw_env_t *env, rd_kafka_t *producer)
{
    zw_output_t *o = calloc(1, sizeof(*o));

    if (o) {
        o->env = env;
        o->producer = producer;
    }
    return o;
}

void zw_output_destroy(zw_output_t *o)
{
    free(o);
}

static void add_header(rd_kafka_headers_t *h, const char *name, const char *value)
{
    rd_kafka_header_add(h, name, -1, value, -1);
}

static void pass_traceparent(rd_kafka_headers_t *h, const rd_kafka_headers_t *input)
{
    const void *tp;
    size_t tp_len;

    if (input &&
        rd_kafka_header_get_last(input, "traceparent", &tp, &tp_len) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        tp)
        rd_kafka_header_add(h, "traceparent", -1, tp, (ssize_t)tp_len);
}

static rd_kafka_headers_t *ce_headers(zw_output_t *o, const zw_delivery_t *d)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    char id[37], now[32];

    zw_env_uuid4(o->env, id);
    zw_env_iso_now(now, sizeof(now));
    add_header(h, "ce_specversion", "1.0");
    add_header(h, "ce_id", id);
    add_header(h, "ce_source", "/zendesk-worker");
    add_header(h, "ce_type", d->ce_type);
    add_header(h, "ce_time", now);
    if (d->subject)
        add_header(h, "ce_subject", d->subject);
    add_header(h, "content-type", "application/json");
    pass_traceparent(h, d->input_headers);
    return h;
}

static rd_kafka_headers_t *dlq_headers(zw_output_t *o, const zw_delivery_t *d)
{
    static const char *const ours[] = {"zw_error_reason",     "zw_error_message",
                                       "zw_source_topic",     "zw_source_partition",
                                       "zw_source_offset",    "zw_worker_id",
                                       "zw_failed_at",        "zw_value_truncated",
                                       NULL};
    rd_kafka_headers_t *h = d->input_headers ? rd_kafka_headers_copy(d->input_headers)
                                             : rd_kafka_headers_new(8);
    char num[32], now[32];

    /* Replace, not duplicate, our headers if the input already had them (a
     * record replayed from the DLQ). */
    for (const char *const *k = ours; *k; k++)
        rd_kafka_header_remove(h, *k);
    add_header(h, "zw_error_reason", d->dlq->reason);
    add_header(h, "zw_error_message", d->dlq->message);
    add_header(h, "zw_source_topic", d->dlq->source_topic);
    snprintf(num, sizeof(num), "%d", (int)d->dlq->source_partition);
    add_header(h, "zw_source_partition", num);
    snprintf(num, sizeof(num), "%lld", (long long)d->dlq->source_offset);
    add_header(h, "zw_source_offset", num);
    add_header(h, "zw_worker_id", o->env->worker_id);
    zw_env_iso_now(now, sizeof(now));
    add_header(h, "zw_failed_at", now);
    rd_kafka_header_remove(h, "zw_value_truncated");
    if (d->truncated_from) {
        snprintf(num, sizeof(num), "%zu", d->truncated_from);
        add_header(h, "zw_value_truncated", num);
    }
    return h;
}

static void retry_timer(void *arg)
{
    zw_delivery_t *d = arg;

    d->timer = 0;
    zw_output_produce(d->out, d);
}

static void retry_in(zw_output_t *o, zw_delivery_t *d, int64_t delay_ms)
{
    d->timer = zw_env_timer(o->env, delay_ms, retry_timer, d);
}

/* A fatal producer error is not one of these: it is not about the record,
 * and the worker exits on it so a new process redoes the event. */
bool zw_output_permanent(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return true;
    default:
        return false;
    }
}

/* A DLQ record the producer or the topic cannot take as it is: smaller
 * first (the value cut, then no value), so the input's offset can move on
 * with its headers saying why. false when nothing is left to cut. */
static bool shrink(zw_delivery_t *d, rd_kafka_resp_err_t err)
{
    if (!d->dlq || (err != RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE &&
                    err != RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE))
        return false;
    if (d->value_len == 0)
        return false;
    if (!d->truncated_from)
        d->truncated_from = d->value_len;
    d->value_len = d->value_len > DLQ_CUT_BYTES ? DLQ_CUT_BYTES : 0;
    ZW_LOG(ZW_LOG_WARN, "DLQ record too large; producing it with its value cut",
           ZW_LF_STR("topic", d->topic), ZW_LF_INT("input_bytes", (long long)d->truncated_from),
           ZW_LF_INT("kept_bytes", (long long)d->value_len), ZW_LF_STR("event_id", d->subject));
    return true;
}

/* What cannot be produced, ever: said once, and the record's owner is told,
 * so a bad record does not freeze its partition's commits. */
static void give_up(zw_delivery_t *d, rd_kafka_resp_err_t err)
{
    ZW_LOG(ZW_LOG_ERROR, "record cannot be produced (permanent error); it is dropped",
           ZW_LF_STR("topic", d->topic), ZW_LF_STR("error", rd_kafka_err2str(err)),
           ZW_LF_STR("event_id", d->subject));
    d->acked(d, err);
}

static void give_up_timer(void *arg)
{
    zw_delivery_t *d = arg;

    d->timer = 0;
    give_up(d, d->err);
}

rd_kafka_resp_err_t zw_output_produce(zw_output_t *o, zw_delivery_t *d)
{
    rd_kafka_headers_t *h = d->dlq ? dlq_headers(o, d) : ce_headers(o, d);
    rd_kafka_resp_err_t err;

    d->out = o;
    err = rd_kafka_producev(o->producer, RD_KAFKA_V_TOPIC(d->topic),
                            RD_KAFKA_V_KEY(d->key, d->key_len),
                            RD_KAFKA_V_VALUE((void *)d->value, d->value_len),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                            RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    if (!err)
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    /* Not handed over: the headers are ours to free. */
    rd_kafka_headers_destroy(h);
    if (!d->retry)
        return err;
    if (zw_output_permanent(err)) {
        if (shrink(d, err))
            return zw_output_produce(o, d);
        /* Not from inside the caller's produce: its owner may be mid-way. */
        d->err = err;
        d->timer = zw_env_timer(o->env, 0, give_up_timer, d);
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    /* Try again shortly (queue full, or a transient local error); the event
     * stays uncommitted meanwhile. */
    ZW_LOG(ZW_LOG_WARN, "cannot produce, will retry", ZW_LF_STR("topic", d->topic),
           ZW_LF_STR("error", rd_kafka_err2str(err)));
    retry_in(o, d, RETRY_QUEUE_MS);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

void zw_output_cancel(zw_output_t *o, zw_delivery_t *d)
{
    zw_env_cancel(o->env, &d->timer);
}

void zw_output_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    zw_delivery_t *d = m->_private;

    (void)rk;
    (void)opaque;
    if (m->err && d->retry && zw_output_permanent(m->err)) {
        if (shrink(d, m->err))
            zw_output_produce(d->out, d);
        else
            give_up(d, m->err);
        return;
    }
    if (m->err && d->retry) {
        /* The record did not reach the broker: produce it again; the offset
         * stays uncommitted until it does. */
        ZW_LOG(ZW_LOG_WARN, "delivery failed, producing again",
               ZW_LF_STR("topic", rd_kafka_topic_name(m->rkt)),
               ZW_LF_STR("error", rd_kafka_err2str(m->err)), ZW_LF_STR("event_id", d->subject));
        retry_in(d->out, d, RETRY_DELIVERY_MS);
        return;
    }
    d->acked(d, m->err);
}

int zw_output_queue_len(const zw_output_t *o)
{
    return rd_kafka_outq_len(o->producer);
}

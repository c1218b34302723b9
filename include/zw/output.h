/* Producing: results, snapshot records and DLQ records go to the producer
 * with CloudEvents 1.0 binary-mode headers (the DLQ with the input's headers
 * and zw_* headers saying why), the input's traceparent passed through. A
 * record is described by a zw_delivery_t that lives until its delivery
 * report, which comes back through the delivery's acked callback (seam 2). */
#ifndef ZW_OUTPUT_H
#define ZW_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

struct zw_env_s;
typedef struct zw_output_s zw_output_t;
typedef struct zw_delivery_s zw_delivery_t;

/* The broker acked the record (err 0) or gave up on it. */
typedef void (*zw_delivery_fn)(zw_delivery_t *d, rd_kafka_resp_err_t err);

/* Why an input went to the DLQ, for its zw_* headers. */
typedef struct zw_dlq_info_s {
    const char *reason;  /* zw_error_reason */
    const char *message; /* zw_error_message */
    const char *source_topic;
    int32_t source_partition;
    int64_t source_offset;
} zw_dlq_info_t;

/* Everything is set by the caller and lent until acked runs (or the
 * delivery is cancelled). The value is copied when produced. */
struct zw_delivery_s {
    const char *topic;
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    const rd_kafka_headers_t *input_headers; /* traceparent; the DLQ copies them all */
    const char *ce_type;      /* CloudEvents type; NULL for a DLQ record */
    const char *subject;      /* ce_subject (the event id), may be NULL */
    const zw_dlq_info_t *dlq; /* set for a DLQ record */
    bool retry;               /* produce again until delivered (else report the error) */
    zw_delivery_fn acked;
    void *arg;
    zw_output_t *out;         /* output.c: what produced it */
    uint64_t timer;           /* output.c: a retry waiting */
    size_t truncated_from;    /* output.c: a DLQ value cut to fit, from this length; 0 */
    rd_kafka_resp_err_t err;  /* output.c: the permanent error being reported */
};

/* A producer front for producer (lent, as env is). NULL when out of memory. */
zw_output_t *zw_output_new(struct zw_env_s *env, rd_kafka_t *producer);

/* Accepts NULL. */
void zw_output_destroy(zw_output_t *o);

/* Produces d's record. A record with d->retry is produced again until the
 * broker has it (a local queue error after 200 ms, a failed delivery after
 * 500 ms), so this returns 0; otherwise the producer's error is returned (and
 * a later failed delivery goes to acked). An error that no retry can cure
 * (zw_output_permanent) is not retried: a DLQ record too large for the
 * producer or the topic is produced again with its value cut (header
 * zw_value_truncated: the input's length), then with no value; anything
 * else permanent goes to acked with the error, so the offset moves on. */
rd_kafka_resp_err_t zw_output_produce(zw_output_t *o, zw_delivery_t *d);

/* Whether a producer error is permanent for that record: retrying the same
 * record cannot succeed (too large, not authorised, invalid). */
bool zw_output_permanent(rd_kafka_resp_err_t err);

/* Cancels d's pending retry, if any (its owner goes away). */
void zw_output_cancel(zw_output_t *o, zw_delivery_t *d);

/* The producer's delivery report callback (for zw_kafka_producer_new; each
 * message carries its delivery, opaque is unused). */
void zw_output_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/* Records waiting in the producer's queue. */
int zw_output_queue_len(const zw_output_t *o);

#endif

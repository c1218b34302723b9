/* Consuming: polls the consumer (at most a batch per turn), admits each
 * message (parse, configured tenant; a bad one is rejected to the DLQ) and
 * hands it on: a sync request to its walk, an event to its key queue and
 * from there to its steps. Pauses every partition while too much work is
 * in memory. Private to the core. */
#ifndef ZW_CONSUME_H
#define ZW_CONSUME_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "job.h"
#include "walk.h"

typedef struct zw_consume_s zw_consume_t;

/* A consumer front for consumer (lent, as js and ws are). max_jobs: the
 * jobs in memory at which partitions are paused (resumed at half). NULL
 * when out of memory. */
zw_consume_t *zw_consume_new(zw_jobs_t *js, zw_walks_t *ws, rd_kafka_t *consumer,
                             size_t max_jobs);

/* Accepts NULL. */
void zw_consume_destroy(zw_consume_t *c);

/* Handles what the consumer has, up to one batch; the events reach their
 * lanes together and go out after (their lookups share requests). */
void zw_consume_poll(zw_consume_t *c);

/* Whether the last poll stopped at the batch size with more waiting (the
 * consumer's fd will not fire again until it is drained). */
bool zw_consume_more(const zw_consume_t *c);

/* Pauses or resumes the partitions by the work in memory. */
void zw_consume_backpressure(zw_consume_t *c);

/* Reads deferred events again where their tenant has room: seeks each such
 * partition back to its first deferred offset (at most once a second). */
void zw_consume_rewind(zw_consume_t *c);

/* Shutdown: pauses every partition for good (nothing new is fetched). */
void zw_consume_stop(zw_consume_t *c);

/* Whether partitions are paused now (a new assignment is paused too). */
bool zw_consume_paused(const zw_consume_t *c);

#endif

/* Rebalancing: partitions assigned (tracked, paused if the worker is), and
 * revoked (what is done is committed first; work that has not reached
 * Zendesk is dropped for the new owner to redo, idempotently), and this
 * replica's share of each tenant's budget. Private to the core. */
#ifndef ZW_REBALANCE_H
#define ZW_REBALANCE_H

#include <stdbool.h>

#include <librdkafka/rdkafka.h>

#include "zw/admin.h"

#include "consume.h"
#include "core.h"

typedef struct zw_rebalance_s zw_rebalance_t;

/* For core (lent); admin may be NULL. NULL when out of memory. */
zw_rebalance_t *zw_rebalance_new(zw_core_t *core, zw_admin_t *admin);

/* Accepts NULL. */
void zw_rebalance_destroy(zw_rebalance_t *r);

/* The consumer front whose pause a new assignment follows (lent). */
void zw_rebalance_set_consume(zw_rebalance_t *r, zw_consume_t *consume);

/* Shutting down: the share is no longer updated, readiness stays off. */
void zw_rebalance_set_stopping(zw_rebalance_t *r);

/* Whether anything was ever assigned (librdkafka 2.0.2 may crash closing a
 * cooperative consumer that never was). */
bool zw_rebalance_ever_assigned(const zw_rebalance_t *r);

/* From the tick: counts the share again when the last count failed. */
void zw_rebalance_tick(zw_rebalance_t *r, rd_kafka_t *rk);

/* The rebalance callback for zw_kafka_consumer_new (opaque: the
 * zw_rebalance_t). */
void zw_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                     rd_kafka_topic_partition_list_t *parts, void *opaque);

#endif

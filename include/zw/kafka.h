/* Kafka clients for the worker: a consumer in the group (cooperative-sticky,
 * offsets stored only for finished events) and an idempotent producer for
 * results, snapshots and the DLQ. Both wake the event loop through fds. */
#ifndef ZW_KAFKA_H
#define ZW_KAFKA_H

#include <librdkafka/rdkafka.h>

#include "zw/config.h"

/* A consumer for config's group, with the rebalance callback rebalance_cb
 * and opaque; NULL with errstr on failure. Caller destroys. */
rd_kafka_t *zw_kafka_consumer_new(const zw_config_t *config,
                                  void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                       rd_kafka_topic_partition_list_t *, void *),
                                  void *opaque, char *errstr, size_t errstr_size);

/* An idempotent producer (acks=all) whose delivery reports go to dr_cb. */
rd_kafka_t *zw_kafka_producer_new(const zw_config_t *config,
                                  void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                                  void *opaque, char *errstr, size_t errstr_size);

/* Makes queue write an 8-byte eventfd value when it becomes non-empty.
 * Returns the fd (caller closes) or -1. */
int zw_kafka_queue_fd(rd_kafka_queue_t *queue);

/* Reads and discards an eventfd's counter. */
void zw_kafka_fd_drain(int fd);

#endif

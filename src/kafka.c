/* Kafka client setup: the properties the worker's guarantees depend on are
 * set here and cannot be overridden from the config file; librdkafka's own
 * logs go through the worker's logger. */
#include "zw/kafka.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "zw/log.h"

static void on_rdkafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    zw_log_level_t l = level <= 3 ? ZW_LOG_ERROR : level <= 4 ? ZW_LOG_WARN
                                               : level <= 6 ? ZW_LOG_INFO
                                                            : ZW_LOG_DEBUG;
    ZW_LOG(l, buf, ZW_LF_STR("component", "librdkafka"), ZW_LF_STR("facility", fac),
           ZW_LF_STR("client", rd_kafka_name(rk)));
}

static int set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
               size_t errstr_size)
{
    char why[512];

    if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "kafka property %s: %s", name, why);
        return -1;
    }
    return 0;
}

static rd_kafka_conf_t *base_conf(const zw_config_t *config, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    /* User properties first, so the worker's own settings below win. */
    for (size_t i = 0; i < config->kafka.n_properties; i++) {
        if (set(conf, config->kafka.property_names[i], config->kafka.property_values[i], errstr,
                errstr_size) != 0) {
            /* The value may be a secret: name only the property. */
            snprintf(errstr, errstr_size, "kafka property %s rejected",
                     config->kafka.property_names[i]);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (set(conf, "bootstrap.servers", config->kafka.bootstrap_servers, errstr, errstr_size) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, on_rdkafka_log);
    return conf;
}

rd_kafka_t *zw_kafka_consumer_new(const zw_config_t *config,
                                  void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                       rd_kafka_topic_partition_list_t *, void *),
                                  void *opaque, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = base_conf(config, errstr, errstr_size);
    rd_kafka_t *rk;

    if (!conf)
        return NULL;
    /* At-least-once: only offsets of events whose results the broker has
     * acknowledged are stored; librdkafka commits what is stored. */
    if (set(conf, "group.id", config->kafka.group_id, errstr, errstr_size) != 0 ||
        set(conf, "enable.auto.offset.store", "false", errstr, errstr_size) != 0 ||
        set(conf, "enable.auto.commit", "true", errstr, errstr_size) != 0 ||
        set(conf, "auto.commit.interval.ms", "1000", errstr, errstr_size) != 0 ||
        set(conf, "partition.assignment.strategy", "cooperative-sticky", errstr, errstr_size) != 0 ||
        set(conf, "auto.offset.reset", "earliest", errstr, errstr_size) != 0 ||
        set(conf, "enable.partition.eof", "false", errstr, errstr_size) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, opaque);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    /* On success rd_kafka_new() took conf. */
    return rk;
}

static bool user_set(const zw_config_t *config, const char *name)
{
    for (size_t i = 0; i < config->kafka.n_properties; i++)
        if (strcmp(config->kafka.property_names[i], name) == 0)
            return true;
    return false;
}

rd_kafka_t *zw_kafka_producer_new(const zw_config_t *config,
                                  void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                                  void *opaque, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = base_conf(config, errstr, errstr_size);
    rd_kafka_t *rk;

    if (!conf)
        return NULL;
    if (set(conf, "enable.idempotence", "true", errstr, errstr_size) != 0 ||
        set(conf, "acks", "all", errstr, errstr_size) != 0 ||
        set(conf, "linger.ms", "5", errstr, errstr_size) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* A DLQ record carries a whole input (up to max_event_bytes) plus
     * headers: the producer must take what the consumer admitted. The
     * operator's own message.max.bytes wins. */
    if (!user_set(config, "message.max.bytes")) {
        char v[32];
        long long need = (long long)config->worker.max_event_bytes + 65536;
        snprintf(v, sizeof(v), "%lld", need > 1000000 ? need : 1000000);
        if (set(conf, "message.max.bytes", v, errstr, errstr_size) != 0) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, opaque);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

int zw_kafka_queue_fd(rd_kafka_queue_t *queue)
{
    static const uint64_t one = 1;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    if (fd < 0)
        return -1;
    rd_kafka_queue_io_event_enable(queue, fd, &one, sizeof(one));
    return fd;
}

void zw_kafka_fd_drain(int fd)
{
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof(v));
    (void)n;
}

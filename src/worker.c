/* The daemon's top level. For now: joins the consumer group and reports
 * assignments until a signal arrives; the provisioning pipeline plugs in
 * here. */
#include "zw/worker.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "zw/log.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int zw_worker_run(const zw_config_t *config)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *topics;
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    if (rd_kafka_conf_set(conf, "bootstrap.servers", config->kafka.bootstrap_servers, errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "group.id", config->kafka.group_id, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
        zw_logf(ZW_LOG_ERROR, "kafka configuration: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return ZW_EXIT_SOFTWARE;
    }
    for (size_t i = 0; i < config->kafka.n_properties; i++) {
        if (rd_kafka_conf_set(conf, config->kafka.property_names[i],
                              config->kafka.property_values[i], errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            zw_logf(ZW_LOG_ERROR, "kafka property %s rejected", config->kafka.property_names[i]);
            rd_kafka_conf_destroy(conf);
            return ZW_EXIT_SOFTWARE;
        }
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        zw_logf(ZW_LOG_ERROR, "cannot create the consumer: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return ZW_EXIT_SOFTWARE;
    }
    conf = NULL; /* rd_kafka_new() took it */
    rd_kafka_poll_set_consumer(rk);
    topics = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(topics, config->kafka.topic_provisioning,
                                      RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(topics, config->kafka.topic_sync, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    zw_logf(ZW_LOG_INFO, "worker started, group %s", config->kafka.group_id);

    while (!stop_requested) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m)
            continue;
        if (m->err)
            zw_logf(ZW_LOG_WARN, "consumer: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
    zw_logf(ZW_LOG_INFO, "stopping");
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return ZW_EXIT_OK;
}

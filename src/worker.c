/* The daemon: makes the core (core.c), the admin endpoint, the producer and
 * the consumer, then runs the loop. One turn of it:
 *
 *   1. zw_loop_run_once: socket events (Zendesk answers -> their senders),
 *      timers (retries, wake-ups, the 1 s tick), the Kafka queues' fds
 *      (consumer -> zw_consume_poll, producer -> delivery reports);
 *   2. a fatal Kafka error ends the loop (exit 70, to be restarted), else
 *      the admin heartbeat;
 *   3. another consumer poll if the last one stopped at its batch size;
 *   4. stop once shutting down and the jobs are done (or the deadline passed).
 *
 * The tick polls the consumer and the producer anyway (librdkafka's fds fire
 * only on empty -> non-empty), publishes gauges and logs progress. */
#include "zw/worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "zw/admin.h"
#include "zw/kafka.h"
#include "zw/log.h"
#include "zw/version.h"

#include "consume.h"
#include "core.h"
#include "rebalance.h"

#define TICK_MS 1000
#define STATS_EVERY_MS 10000

typedef struct worker_s {
    zw_core_t core;
    zw_admin_t *admin;
    rd_kafka_t *producer, *consumer;
    int consumer_fd, producer_fd;
    zw_consume_t *consume;
    zw_rebalance_t *rebalance;
    bool stopping;
    bool fatal; /* a fatal Kafka error: exit non-zero to be restarted */
    int64_t stop_deadline;
    int64_t next_stats_ms;
} worker_t;

/* ---- the Kafka queues and signals ---- */

static void on_consumer_fd(int fd, void *arg)
{
    worker_t *w = arg;

    zw_kafka_fd_drain(fd);
    zw_consume_poll(w->consume);
}

static void on_producer_fd(int fd, void *arg)
{
    worker_t *w = arg;

    zw_kafka_fd_drain(fd);
    while (rd_kafka_poll(w->producer, 0) > 0)
        ;
    zw_consume_backpressure(w->consume);
}

/* SIGTERM: stop fetching, finish what is in flight (bounded). */
static void on_signal_fd(int fd, void *arg)
{
    worker_t *w = arg;
    const zw_config_t *cfg = w->core.env.cfg;
    char buf[16];
    ssize_t n = read(fd, buf, sizeof(buf));

    (void)n;
    if (w->stopping)
        return;
    w->stopping = true;
    w->stop_deadline = zw_loop_now_ms() + cfg->worker.shutdown_timeout_ms;
    ZW_LOG(ZW_LOG_INFO, "shutting down: finishing in-flight work",
           ZW_LF_INT("jobs", w->core.jobs.n_jobs),
           ZW_LF_INT("timeout_ms", cfg->worker.shutdown_timeout_ms));
    zw_admin_set_ready(w->admin, false, "draining");
    zw_rebalance_set_stopping(w->rebalance);
    zw_consume_stop(w->consume);
    /* A snapshot walk can outlast any shutdown deadline: stop it without an
     * end marker and leave its request uncommitted, so it is redelivered and
     * walked whole. */
    zw_walks_stop_all(w->core.walks);
}

/* ---- the tick ---- */

typedef struct gauges_s {
    worker_t *w;
    long unread; /* messages past the last one read, over the partitions */
} gauges_t;

/* Where reading the partition goes on from: after the last offset read, or
 * the consumer's position before the first message. -1 when not known. */
static int64_t next_to_read(worker_t *w, zw_part_t *p)
{
    int64_t next = zw_part_next(p);
    rd_kafka_topic_partition_list_t *l;

    if (next >= 0)
        return next;
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, zw_part_topic(p), zw_part_partition(p));
    if (rd_kafka_position(w->consumer, l) == RD_KAFKA_RESP_ERR_NO_ERROR && !l->elems[0].err)
        next = l->elems[0].offset >= 0 ? l->elems[0].offset : -1;
    rd_kafka_topic_partition_list_destroy(l);
    return next;
}

static void partition_gauge(zw_part_t *p, void *arg)
{
    gauges_t *g = arg;
    worker_t *w = g->w;
    int64_t lo = -1, hi = -1, stored = zw_part_stored(p), base = zw_part_committed(p), next;

    /* Cached watermarks: no broker round trip on the loop. */
    if (rd_kafka_get_watermark_offsets(w->consumer, zw_part_topic(p), zw_part_partition(p), &lo,
                                       &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
        hi = -1;
    zw_metrics_set_partition(w->core.env.metrics, zw_part_topic(p), zw_part_partition(p), stored,
                             hi >= 0 && base >= 0 ? hi - base : -1);
    next = next_to_read(w, p);
    if (hi >= 0 && next >= 0 && hi > next)
        g->unread += (long)(hi - next);
}

/* The consumer lag counts what is done but not committed and what waits on
 * a throttled tenant; the backlog gauges split off what replicas can help
 * with: what is not read yet, and the events of tenants with budget. */
static void publish_gauges(worker_t *w)
{
    zw_env_t *env = &w->core.env;
    gauges_t g = {.w = w, .unread = 0};
    int64_t now = zw_loop_now_ms();
    zw_tenants_backlog_t b;

    zw_metrics_set_in_flight(env->metrics, (long)zw_loop_http_in_flight(env->loop));
    zw_metrics_set_pending_events(env->metrics, (long)w->core.jobs.n_jobs);
    zw_tenants_publish(w->core.jobs.tenants, now);
    zw_parts_each(w->core.jobs.parts, partition_gauge, &g);
    zw_tenants_backlog(w->core.jobs.tenants, now, &b);
    zw_metrics_set_backlog(env->metrics, g.unread + b.ready_held + b.ready_deferred,
                           b.throttled_held + b.throttled_deferred);
}

static void log_progress(worker_t *w)
{
    const zw_stats_t *s = &w->core.env.stats;

    ZW_LOG(ZW_LOG_INFO, "progress", ZW_LF_INT("consumed", s->consumed),
           ZW_LF_INT("finished", s->finished), ZW_LF_INT("succeeded", s->succeeded),
           ZW_LF_INT("failed", s->failed), ZW_LF_INT("dlq", s->dlq),
           ZW_LF_INT("retries", s->retries), ZW_LF_INT("rate_limited", s->rate_limited),
           ZW_LF_INT("http_requests", s->http_requests), ZW_LF_INT("jobs", w->core.jobs.n_jobs),
           ZW_LF_INT("in_flight", zw_loop_http_in_flight(w->core.env.loop)));
}

static void tick(void *arg)
{
    worker_t *w = arg;
    int64_t now = zw_loop_now_ms();

    zw_consume_poll(w->consume);
    zw_consume_rewind(w->consume);
    zw_rebalance_tick(w->rebalance, w->consumer);
    publish_gauges(w);
    while (rd_kafka_poll(w->producer, 0) > 0)
        ;
    if (now >= w->next_stats_ms) {
        w->next_stats_ms = now + STATS_EVERY_MS;
        log_progress(w);
    }
    zw_env_timer(&w->core.env, TICK_MS, tick, w);
}

/* ---- setup ---- */

static int start_admin(worker_t *w, const zw_config_t *config)
{
    char errstr[512];

    if (!*config->admin.listen)
        return 0;
    w->admin = zw_admin_start(config->admin.listen, w->core.env.metrics, errstr, sizeof(errstr));
    if (!w->admin) {
        zw_logf(ZW_LOG_ERROR, "admin endpoint on %s: %s", config->admin.listen, errstr);
        return -1;
    }
    ZW_LOG(ZW_LOG_INFO, "admin endpoint listening", ZW_LF_STR("listen", config->admin.listen),
           ZW_LF_INT("port", zw_admin_port(w->admin)));
    zw_admin_set_ready(w->admin, false, "connecting to Kafka");
    return 0;
}

static int start_kafka(worker_t *w, const zw_config_t *config)
{
    char errstr[512];
    size_t max_jobs = (size_t)config->worker.max_in_flight * 8 > 1024
                          ? (size_t)config->worker.max_in_flight * 8
                          : 1024;

    w->producer = zw_kafka_producer_new(config, zw_output_on_delivery, w, errstr, sizeof(errstr));
    if (!w->producer || zw_core_set_producer(&w->core, w->producer) != 0) {
        zw_logf(ZW_LOG_ERROR, "cannot create the producer: %s", errstr);
        return -1;
    }
    w->rebalance = zw_rebalance_new(&w->core, w->admin);
    w->consumer = w->rebalance ? zw_kafka_consumer_new(config, zw_rebalance_cb, w->rebalance,
                                                       errstr, sizeof(errstr))
                               : NULL;
    if (!w->consumer) {
        zw_logf(ZW_LOG_ERROR, "cannot create the consumer: %s", errstr);
        return -1;
    }
    zw_parts_set_consumer(w->core.jobs.parts, w->consumer);
    w->consume = zw_consume_new(&w->core.jobs, w->core.walks, w->consumer, max_jobs);
    if (!w->consume)
        return -1;
    zw_rebalance_set_consume(w->rebalance, w->consume);
    return 0;
}

static int queue_fd(rd_kafka_queue_t *q)
{
    int fd = zw_kafka_queue_fd(q);

    rd_kafka_queue_destroy(q);
    return fd;
}

static int watch_queues(worker_t *w)
{
    zw_loop_t *loop = w->core.env.loop;

    rd_kafka_poll_set_consumer(w->consumer);
    w->consumer_fd = queue_fd(rd_kafka_queue_get_consumer(w->consumer));
    w->producer_fd = queue_fd(rd_kafka_queue_get_main(w->producer));
    if (w->consumer_fd < 0 || w->producer_fd < 0 ||
        zw_loop_watch_fd(loop, w->consumer_fd, on_consumer_fd, w) != 0 ||
        zw_loop_watch_fd(loop, w->producer_fd, on_producer_fd, w) != 0 ||
        zw_loop_watch_fd(loop, w->core.signal_fd, on_signal_fd, w) != 0) {
        zw_logf(ZW_LOG_ERROR, "cannot watch the Kafka queues: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int subscribe(worker_t *w, const zw_config_t *config)
{
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(2);
    rd_kafka_resp_err_t err;

    rd_kafka_topic_partition_list_add(topics, config->kafka.topic_provisioning,
                                      RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(topics, config->kafka.topic_sync, RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(w->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        zw_logf(ZW_LOG_ERROR, "cannot subscribe");
        return -1;
    }
    return 0;
}

/* Ready once a broker answers; partitions may still be on their way. */
static void check_broker(worker_t *w)
{
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

static void fetch_tokens(worker_t *w)
{
    zw_tenants_t *ts = w->core.jobs.tenants;

    for (size_t i = 0; i < zw_tenants_count(ts); i++)
        zw_auth_fetch(zw_tenant_auth(zw_tenants_at(ts, i)));
}

static int setup(worker_t *w, const zw_config_t *config)
{
    memset(w, 0, sizeof(*w));
    w->consumer_fd = w->producer_fd = -1;
    if (zw_core_init(&w->core, config) != 0)
        return ZW_EXIT_SOFTWARE;
    if (start_admin(w, config) != 0)
        return ZW_EXIT_UNAVAILABLE;
    if (start_kafka(w, config) != 0 || watch_queues(w) != 0)
        return ZW_EXIT_SOFTWARE;
    if (subscribe(w, config) != 0)
        return ZW_EXIT_UNAVAILABLE;
    check_broker(w);
    fetch_tokens(w);
    return ZW_EXIT_OK;
}

/* ---- the loop, shutdown ---- */

/* A fatal error of the idempotent producer (or of the consumer's group
 * membership) cannot be recovered in the process: no further result can be
 * produced in order. Stop now, commit only what was acknowledged, and exit
 * non-zero so the supervisor (Kubernetes) restarts a fresh process. */
static bool kafka_fatal(worker_t *w)
{
    char why[512];
    rd_kafka_resp_err_t err = rd_kafka_fatal_error(w->producer, why, sizeof(why));
    const char *client = "producer";

    if (!err) {
        err = rd_kafka_fatal_error(w->consumer, why, sizeof(why));
        client = "consumer";
    }
    if (!err)
        return false;
    if (!w->fatal) {
        w->fatal = true;
        ZW_LOG(ZW_LOG_ERROR, "fatal Kafka error; exiting to be restarted",
               ZW_LF_STR("client", client), ZW_LF_STR("error", rd_kafka_err2name(err)),
               ZW_LF_STR("reason", why), ZW_LF_INT("jobs", w->core.jobs.n_jobs));
        zw_admin_set_ready(w->admin, false, "fatal Kafka error");
    }
    return true;
}

/* Test hook: ZW_TEST_KAFKA_FATAL_MS=N raises a fatal producer error N ms
 * after start through librdkafka's rd_kafka_test_fatal_error(), the only
 * way to reach this path against a healthy broker. Unset in production. */
static void raise_test_fatal(void *arg)
{
    worker_t *w = arg;

    rd_kafka_test_fatal_error(w->producer, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                              "raised by ZW_TEST_KAFKA_FATAL_MS");
}

static void arm_test_fatal(worker_t *w)
{
    const char *v = getenv("ZW_TEST_KAFKA_FATAL_MS");
    char *end;
    long ms = v ? strtol(v, &end, 10) : -1;

    if (v && *v && !*end && ms >= 0) {
        ZW_LOG(ZW_LOG_WARN, "test hook armed: a fatal Kafka error will be raised",
               ZW_LF_INT("after_ms", ms));
        zw_env_timer(&w->core.env, ms, raise_test_fatal, w);
    }
}

static int run(worker_t *w)
{
    zw_loop_t *loop = w->core.env.loop;
    const zw_jobs_t *js = &w->core.jobs;

    for (;;) {
        if (zw_loop_run_once(loop, zw_consume_more(w->consume) ? 0 : TICK_MS) != 0) {
            zw_logf(ZW_LOG_ERROR, "event loop failed: %s", strerror(errno));
            return ZW_EXIT_SOFTWARE;
        }
        if (kafka_fatal(w))
            return ZW_EXIT_SOFTWARE;
        zw_admin_heartbeat(w->admin, zw_loop_now_ms());
        if (zw_consume_more(w->consume))
            zw_consume_poll(w->consume);
        if (w->stopping && (js->n_jobs == 0 || zw_loop_now_ms() >= w->stop_deadline))
            return ZW_EXIT_OK;
    }
}

static void finish(worker_t *w)
{
    const zw_stats_t *s = &w->core.env.stats;

    if (w->core.jobs.n_jobs > 0)
        ZW_LOG(ZW_LOG_WARN, "shutdown deadline passed; unfinished events stay uncommitted",
               ZW_LF_INT("jobs", w->core.jobs.n_jobs));
    /* Deliver what is finished (bounded), then commit what is stored. */
    rd_kafka_flush(w->producer, 5000);
    rd_kafka_commit(w->consumer, NULL, 0);
    ZW_LOG(ZW_LOG_INFO, "stopped", ZW_LF_INT("consumed", s->consumed),
           ZW_LF_INT("finished", s->finished), ZW_LF_INT("dlq", s->dlq));
}

static void teardown(worker_t *w)
{
    if (w->consumer) {
        bool assigned = w->rebalance && zw_rebalance_ever_assigned(w->rebalance);
        /* librdkafka 2.0.2 may crash closing a cooperative consumer that was
         * never assigned anything: skip the close then. */
        if (assigned)
            rd_kafka_consumer_close(w->consumer);
        rd_kafka_destroy_flags(w->consumer, assigned ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    if (w->producer) {
        rd_kafka_flush(w->producer, 1000);
        rd_kafka_destroy(w->producer);
    }
    zw_admin_stop(w->admin);
    zw_consume_destroy(w->consume);
    zw_rebalance_destroy(w->rebalance);
    zw_core_cleanup(&w->core);
    if (w->consumer_fd >= 0)
        close(w->consumer_fd);
    if (w->producer_fd >= 0)
        close(w->producer_fd);
}

int zw_worker_run(const zw_config_t *config)
{
    worker_t w;
    int rc = setup(&w, config);

    if (rc == ZW_EXIT_OK) {
        w.next_stats_ms = zw_loop_now_ms() + STATS_EVERY_MS;
        tick(&w);
        arm_test_fatal(&w);
        ZW_LOG(ZW_LOG_INFO, "worker started", ZW_LF_STR("worker_id", w.core.env.worker_id),
               ZW_LF_STR("version", ZW_VERSION), ZW_LF_STR("group", config->kafka.group_id),
               ZW_LF_STR("topic", config->kafka.topic_provisioning),
               ZW_LF_INT("tenants", zw_tenants_count(w.core.jobs.tenants)),
               ZW_LF_INT("dry_run", config->worker.dry_run));
        rc = run(&w);
        finish(&w);
    }
    teardown(&w);
    return rc;
}

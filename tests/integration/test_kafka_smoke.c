/* Smoke test of the local Kafka broker (scripts/kafka-local) through librdkafka: create a
 * topic with the Admin API, produce keyed messages with checked delivery reports, consume
 * them back in a consumer group, compare, delete the topic. It proves the broker, the
 * client library and the test fixture work together before any real scenario runs.
 *
 * The broker address comes from the file named by $ZW_TEST_BOOTSTRAP_FILE (written by
 * `scripts/kafka-local start`), or from $ZW_TEST_BOOTSTRAP. */

#include <librdkafka/rdkafka.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PARTITIONS 3
#define MESSAGES 10
#define ADMIN_TIMEOUT_MS 30000
#define FLUSH_TIMEOUT_MS 30000
#define CONSUME_TIMEOUT_MS 60000

/* Delivery report tally; the producer's opaque. */
struct delivery {
    int ok;
    int failed;
};

#if defined(__GNUC__)
#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define PRINTF_LIKE(fmt, args)
#endif

static void fail(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Prints one failed check to stderr; the caller returns -1. */
static void fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "test_kafka_smoke: FAIL: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads the bootstrap address into buf. Returns 0, or -1 after saying why. */
static int read_bootstrap(char *buf, size_t size)
{
    const char *path = getenv("ZW_TEST_BOOTSTRAP_FILE");
    const char *direct = getenv("ZW_TEST_BOOTSTRAP");
    FILE *fp;
    size_t len;

    if (direct && *direct) {
        if (strlen(direct) >= size) {
            fail("ZW_TEST_BOOTSTRAP is too long");
            return -1;
        }
        strcpy(buf, direct);
        return 0;
    }
    if (!path || !*path) {
        fail("set ZW_TEST_BOOTSTRAP_FILE (a file holding host:port, written by "
             "scripts/kafka-local start) or ZW_TEST_BOOTSTRAP");
        return -1;
    }
    fp = fopen(path, "r");
    if (!fp) {
        fail("cannot open bootstrap file %s (is the broker running? "
             "scripts/kafka-local start)", path);
        return -1;
    }
    if (!fgets(buf, (int)size, fp)) {
        fail("bootstrap file %s is empty", path);
        fclose(fp);
        return -1;
    }
    fclose(fp);
    len = strcspn(buf, "\r\n");
    buf[len] = '\0';
    if (len == 0) {
        fail("bootstrap file %s holds no address", path);
        return -1;
    }
    return 0;
}

/* Returns a new conf with bootstrap.servers set, or NULL after saying why. */
static rd_kafka_conf_t *conf_new(const char *bootstrap)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];

    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        fail("bootstrap.servers: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fail("%s=%s: %s", name, value, errstr);
        return -1;
    }
    return 0;
}

/* Waits for the admin result event of type want on queue. Returns the event (caller
 * destroys it), or NULL after saying why. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *queue, rd_kafka_event_type_t want,
                                    const char *what)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(queue, ADMIN_TIMEOUT_MS + 5000);

    if (!ev) {
        fail("%s: no result within %d ms", what, ADMIN_TIMEOUT_MS + 5000);
        return NULL;
    }
    if (rd_kafka_event_type(ev) != want) {
        fail("%s: unexpected event %s", what, rd_kafka_event_name(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    if (rd_kafka_event_error(ev)) {
        fail("%s: %s", what, rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

/* Checks the per-topic results of a CreateTopics or DeleteTopics call. */
static int topic_results_ok(const rd_kafka_topic_result_t **results, size_t count,
                            const char *topic, const char *what)
{
    if (count != 1) {
        fail("%s: expected 1 topic result, got %zu", what, count);
        return -1;
    }
    if (strcmp(rd_kafka_topic_result_name(results[0]), topic) != 0) {
        fail("%s: result for topic %s, expected %s", what,
             rd_kafka_topic_result_name(results[0]), topic);
        return -1;
    }
    if (rd_kafka_topic_result_error(results[0])) {
        fail("%s %s: %s", what, topic, rd_kafka_topic_result_error_string(results[0]));
        return -1;
    }
    return 0;
}

static int topic_create(rd_kafka_t *rk, const char *topic)
{
    char errstr[512];
    rd_kafka_NewTopic_t *newt;
    rd_kafka_AdminOptions_t *options;
    rd_kafka_queue_t *queue;
    rd_kafka_event_t *ev;
    const rd_kafka_topic_result_t **results;
    size_t count;
    int rc;

    newt = rd_kafka_NewTopic_new(topic, PARTITIONS, 1, errstr, sizeof(errstr));
    if (!newt) {
        fail("NewTopic %s: %s", topic, errstr);
        return -1;
    }
    options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    /* The request timeout makes an unreachable broker come back as an error result
     * rather than as a silent queue poll timeout. */
    if (rd_kafka_AdminOptions_set_request_timeout(options, ADMIN_TIMEOUT_MS, errstr,
                                                  sizeof(errstr)) ||
        rd_kafka_AdminOptions_set_operation_timeout(options, ADMIN_TIMEOUT_MS, errstr,
                                                    sizeof(errstr))) {
        fail("CreateTopics options: %s", errstr);
        rd_kafka_AdminOptions_destroy(options);
        rd_kafka_NewTopic_destroy(newt);
        return -1;
    }
    queue = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &newt, 1, options, queue);
    rd_kafka_AdminOptions_destroy(options);
    rd_kafka_NewTopic_destroy(newt);

    ev = admin_wait(queue, RD_KAFKA_EVENT_CREATETOPICS_RESULT, "CreateTopics");
    rc = -1;
    if (ev) {
        results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev),
                                                      &count);
        rc = topic_results_ok(results, count, topic, "CreateTopics");
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(queue);
    return rc;
}

static int topic_delete(rd_kafka_t *rk, const char *topic)
{
    char errstr[512];
    rd_kafka_DeleteTopic_t *delt;
    rd_kafka_AdminOptions_t *options;
    rd_kafka_queue_t *queue;
    rd_kafka_event_t *ev;
    const rd_kafka_topic_result_t **results;
    size_t count;
    int rc;

    delt = rd_kafka_DeleteTopic_new(topic);
    options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    /* The request timeout makes an unreachable broker come back as an error result
     * rather than as a silent queue poll timeout. */
    if (rd_kafka_AdminOptions_set_request_timeout(options, ADMIN_TIMEOUT_MS, errstr,
                                                  sizeof(errstr)) ||
        rd_kafka_AdminOptions_set_operation_timeout(options, ADMIN_TIMEOUT_MS, errstr,
                                                    sizeof(errstr))) {
        fail("DeleteTopics options: %s", errstr);
        rd_kafka_AdminOptions_destroy(options);
        rd_kafka_DeleteTopic_destroy(delt);
        return -1;
    }
    queue = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, &delt, 1, options, queue);
    rd_kafka_AdminOptions_destroy(options);
    rd_kafka_DeleteTopic_destroy(delt);

    ev = admin_wait(queue, RD_KAFKA_EVENT_DELETETOPICS_RESULT, "DeleteTopics");
    rc = -1;
    if (ev) {
        results = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev),
                                                      &count);
        rc = topic_results_ok(results, count, topic, "DeleteTopics");
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(queue);
    return rc;
}

/* Waits until the broker's metadata shows topic with every partition led, so the
 * producer does not race the topic's creation. */
static int topic_wait_ready(rd_kafka_t *rk, const char *topic)
{
    int64_t deadline = now_ms() + ADMIN_TIMEOUT_MS;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    int partitions = -1;
    int led;
    int i;

    if (!rkt) {
        fail("topic_new %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    while (now_ms() < deadline) {
        err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
        if (!err) {
            led = 0;
            partitions = -1;
            if (md->topic_cnt == 1 && !md->topics[0].err) {
                partitions = md->topics[0].partition_cnt;
                for (i = 0; i < partitions; i++)
                    if (!md->topics[0].partitions[i].err &&
                        md->topics[0].partitions[i].leader >= 0)
                        led++;
            }
            rd_kafka_metadata_destroy(md);
            if (partitions == PARTITIONS && led == PARTITIONS) {
                rd_kafka_topic_destroy(rkt);
                return 0;
            }
        }
        rd_kafka_poll(rk, 100);
    }
    rd_kafka_topic_destroy(rkt);
    fail("topic %s not ready within %d ms (last error: %s, partitions seen: %d, want %d)",
         topic, ADMIN_TIMEOUT_MS, rd_kafka_err2str(err), partitions, PARTITIONS);
    return -1;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    struct delivery *dr = opaque;

    (void)rk;
    if (msg->err) {
        fprintf(stderr, "test_kafka_smoke: delivery failed: %s\n",
                rd_kafka_err2str(msg->err));
        dr->failed++;
    } else {
        dr->ok++;
    }
}

static int produce_all(const char *bootstrap, const char *topic)
{
    char errstr[512];
    char key[32];
    char value[64];
    struct delivery dr = {0, 0};
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_resp_err_t err;
    int i;
    int rc = -1;

    conf = conf_new(bootstrap);
    if (!conf)
        return -1;
    if (conf_set(conf, "acks", "all") || conf_set(conf, "enable.idempotence", "true")) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, &dr);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fail("producer: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    conf = NULL; /* rd_kafka_new() took it */

    for (i = 0; i < MESSAGES; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        snprintf(value, sizeof(value), "value-%d", i);
        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                RD_KAFKA_V_KEY(key, strlen(key)),
                                RD_KAFKA_V_VALUE(value, strlen(value)),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err) {
            fail("produce %s: %s", key, rd_kafka_err2str(err));
            goto out;
        }
        rd_kafka_poll(rk, 0);
    }
    err = rd_kafka_flush(rk, FLUSH_TIMEOUT_MS);
    if (err) {
        fail("flush: %s (%d messages still queued)", rd_kafka_err2str(err),
             rd_kafka_outq_len(rk));
        goto out;
    }
    if (dr.ok != MESSAGES || dr.failed != 0) {
        fail("delivery reports: %d ok, %d failed, want %d ok", dr.ok, dr.failed, MESSAGES);
        goto out;
    }
    printf("produced %d messages to %s, all acknowledged\n", MESSAGES, topic);
    rc = 0;
out:
    rd_kafka_destroy(rk);
    return rc;
}

/* Checks one consumed message against what produce_all sent; marks it seen. */
static int check_message(const rd_kafka_message_t *msg, int seen[MESSAGES])
{
    char key[32];
    char value[64];
    char want[64];
    int n;

    if (!msg->key || msg->key_len == 0 || msg->key_len >= sizeof(key)) {
        fail("message at %s [%" PRId32 "] offset %" PRId64 " has a bad key (length %zu)",
             rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset, msg->key_len);
        return -1;
    }
    memcpy(key, msg->key, msg->key_len);
    key[msg->key_len] = '\0';
    if (sscanf(key, "key-%d", &n) != 1 || n < 0 || n >= MESSAGES) {
        fail("unexpected key '%s' at partition %" PRId32 " offset %" PRId64, key,
             msg->partition, msg->offset);
        return -1;
    }
    snprintf(want, sizeof(want), "key-%d", n);
    if (strcmp(key, want) != 0) {
        fail("unexpected key '%s'", key);
        return -1;
    }
    if (!msg->payload || msg->len >= sizeof(value)) {
        fail("key %s: bad value (length %zu)", key, msg->len);
        return -1;
    }
    memcpy(value, msg->payload, msg->len);
    value[msg->len] = '\0';
    snprintf(want, sizeof(want), "value-%d", n);
    if (strcmp(value, want) != 0) {
        fail("key %s: value '%s', want '%s'", key, value, want);
        return -1;
    }
    if (seen[n]) {
        fail("key %s consumed twice (partition %" PRId32 " offset %" PRId64 ")", key,
             msg->partition, msg->offset);
        return -1;
    }
    seen[n] = 1;
    return 0;
}

static int consume_all(const char *bootstrap, const char *topic, const char *group)
{
    char errstr[512];
    int seen[MESSAGES] = {0};
    int got = 0;
    int rc = -1;
    int i;
    int64_t deadline;
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *topics;
    rd_kafka_message_t *msg;
    rd_kafka_resp_err_t err;

    conf = conf_new(bootstrap);
    if (!conf)
        return -1;
    if (conf_set(conf, "group.id", group) || conf_set(conf, "auto.offset.reset", "earliest") ||
        conf_set(conf, "enable.auto.commit", "false")) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fail("consumer: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    conf = NULL; /* rd_kafka_new() took it */
    rd_kafka_poll_set_consumer(rk);

    topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        fail("subscribe %s: %s", topic, rd_kafka_err2str(err));
        goto out;
    }

    deadline = now_ms() + CONSUME_TIMEOUT_MS;
    while (got < MESSAGES && now_ms() < deadline) {
        msg = rd_kafka_consumer_poll(rk, 500);
        if (!msg)
            continue;
        if (msg->err) {
            /* Reaching a partition's end is normal while others still deliver. */
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                fail("consume: %s", rd_kafka_message_errstr(msg));
                rd_kafka_message_destroy(msg);
                goto out;
            }
            rd_kafka_message_destroy(msg);
            continue;
        }
        if (check_message(msg, seen)) {
            rd_kafka_message_destroy(msg);
            goto out;
        }
        got++;
        rd_kafka_message_destroy(msg);
    }
    if (got != MESSAGES) {
        fail("consumed %d of %d messages within %d ms", got, MESSAGES, CONSUME_TIMEOUT_MS);
        for (i = 0; i < MESSAGES; i++)
            if (!seen[i])
                fprintf(stderr, "test_kafka_smoke:   missing key-%d\n", i);
        goto out;
    }

    /* A few more polls: nothing beyond what was produced may arrive. */
    for (i = 0; i < 3; i++) {
        msg = rd_kafka_consumer_poll(rk, 200);
        if (!msg)
            continue;
        if (!msg->err) {
            fail("an extra message arrived at partition %" PRId32 " offset %" PRId64,
                 msg->partition, msg->offset);
            rd_kafka_message_destroy(msg);
            goto out;
        }
        rd_kafka_message_destroy(msg);
    }

    err = rd_kafka_commit(rk, NULL, 0);
    if (err) {
        fail("commit for group %s: %s", group, rd_kafka_err2str(err));
        goto out;
    }
    printf("consumed %d messages in group %s, all keys and values as sent\n", got, group);
    rc = 0;
out:
    err = rd_kafka_consumer_close(rk);
    if (err) {
        fail("consumer close: %s", rd_kafka_err2str(err));
        rc = -1;
    }
    rd_kafka_destroy(rk);
    return rc;
}

int main(void)
{
    char bootstrap[256];
    char topic[128];
    char group[160];
    char errstr[512];
    struct timespec ts;
    rd_kafka_conf_t *conf;
    rd_kafka_t *admin;
    int rc = 1;

    if (read_bootstrap(bootstrap, sizeof(bootstrap)))
        return 1;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(topic, sizeof(topic), "zw-smoke-%ld-%lld-%ld", (long)getpid(),
             (long long)ts.tv_sec, (long)ts.tv_nsec);
    snprintf(group, sizeof(group), "%s-group", topic);
    printf("broker %s, topic %s\n", bootstrap, topic);

    conf = conf_new(bootstrap);
    if (!conf)
        return 1;
    admin = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!admin) {
        fail("admin client: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    conf = NULL; /* rd_kafka_new() took it */

    if (topic_create(admin, topic))
        goto out;
    printf("created topic %s with %d partitions\n", topic, PARTITIONS);

    if (topic_wait_ready(admin, topic) == 0 && produce_all(bootstrap, topic) == 0 &&
        consume_all(bootstrap, topic, group) == 0)
        rc = 0;

    /* Delete even after a failure, so a failed run leaves no topic behind. */
    if (topic_delete(admin, topic))
        rc = 1;
    else
        printf("deleted topic %s\n", topic);
out:
    rd_kafka_destroy(admin);
    if (rc == 0)
        printf("test_kafka_smoke: PASS\n");
    return rc;
}

/* Metrics: updates then a render, checked line by line: exact samples for
 * each kind of series, label values bounded (an unconfigured tenant is
 * "unknown", unknown names fall back), histograms cumulative with _count and
 * _sum agreeing, label values escaped, every family with HELP and TYPE.
 * With ZW_METRICS_SAMPLE=path the full sample is written there, for
 * prom_parse.py to read with a real Prometheus parser. */
#include <check.h>
#include <json-c/json.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zw/metrics.h"

static const char *const TENANTS[] = {"acme", "globex"};

/* Whether text holds exactly this line. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = strstr(text, line); p; p = strstr(p + 1, line)) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    }
    return false;
}

#define ASSERT_LINE(text, line) \
    ck_assert_msg(has_line(text, line), "missing line: %s\n%s", line, text)
#define ASSERT_NO(text, s) ck_assert_msg(strstr(text, s) == NULL, "unexpected: %s\n%s", s, text)

/* The value of the sample whose name and labels are exactly series; NAN when
 * there is none. */
static double sample_value(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = strstr(text, series); p; p = strstr(p + 1, series)) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return NAN;
}

/* Every histogram in text: buckets never decrease, le ascends to +Inf, and
 * the +Inf bucket equals _count. Returns how many histograms were seen. */
static int check_histograms(const char *text)
{
    char key[512] = "", prev_key[512] = "";
    double prev = -1, prev_le = -INFINITY;
    int n = 0;

    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        const char *b = strstr(line, "_bucket{"), *eol = strchr(line, '\n'), *le;
        double v, le_v;

        ck_assert_ptr_nonnull(eol);
        if (line[0] == '#' || !b || b > eol)
            continue;
        le = strstr(line, "le=\"");
        ck_assert_msg(le && le < eol, "bucket without le: %.*s", (int)(eol - line), line);
        snprintf(key, sizeof(key), "%.*s", (int)(le - line), line);
        v = strtod(strchr(le, ' ') + 1, NULL);
        le_v = strncmp(le + 4, "+Inf", 4) == 0 ? INFINITY : strtod(le + 4, NULL);
        if (strcmp(key, prev_key) == 0) {
            ck_assert_msg(v >= prev, "bucket decreased: %.*s", (int)(eol - line), line);
            ck_assert_msg(le_v > prev_le, "le not ascending: %.*s", (int)(eol - line), line);
        }
        if (isinf(le_v)) {
            /* name_bucket{a="b",le="+Inf"} -> name_count{a="b"} */
            char count[600];
            size_t base = (size_t)(b - line), labels = (size_t)(le - (b + 8));

            if (labels > 0 && b[8 + labels - 1] == ',')
                labels--;
            if (labels > 0)
                snprintf(count, sizeof(count), "%.*s_count{%.*s}", (int)base, line, (int)labels,
                         b + 8);
            else
                snprintf(count, sizeof(count), "%.*s_count", (int)base, line);
            ck_assert_msg(sample_value(text, count) == v, "%s != +Inf bucket %g", count, v);
            n++;
        }
        memcpy(prev_key, key, sizeof(key));
        prev = v;
        prev_le = le_v;
    }
    return n;
}

static const struct family_case {
    const char *name;
    const char *type;
} families[] = {
    {"zendesk_worker_up", "gauge"},
    {"zendesk_worker_build_info", "gauge"},
    {"zendesk_worker_events_consumed_total", "counter"},
    {"zendesk_worker_events_finished_total", "counter"},
    {"zendesk_worker_event_duration_seconds", "histogram"},
    {"zendesk_worker_zendesk_requests_total", "counter"},
    {"zendesk_worker_zendesk_request_duration_seconds", "histogram"},
    {"zendesk_worker_rate_limited_total", "counter"},
    {"zendesk_worker_retry_after_seconds_total", "counter"},
    {"zendesk_worker_bulk_jobs_total", "counter"},
    {"zendesk_worker_bulk_items_total", "counter"},
    {"zendesk_worker_bulk_fallbacks_total", "counter"},
    {"zendesk_worker_retries_total", "counter"},
    {"zendesk_worker_dlq_records_total", "counter"},
    {"zendesk_worker_in_flight_requests", "gauge"},
    {"zendesk_worker_pending_events", "gauge"},
    {"zendesk_worker_backlog_scalable", "gauge"},
    {"zendesk_worker_backlog_throttled", "gauge"},
    {"zendesk_worker_tenant_budget_remaining", "gauge"},
    {"zendesk_worker_tenant_budget_per_minute", "gauge"},
    {"zendesk_worker_tenant_events_held", "gauge"},
    {"zendesk_worker_tenant_events_deferred", "gauge"},
    {"zendesk_worker_consumer_lag", "gauge"},
    {"zendesk_worker_committed_offset", "gauge"},
    {"zendesk_worker_snapshot_users_total", "counter"},
    {"zendesk_worker_snapshot_running", "gauge"},
    {"zendesk_worker_partitions_paused", "gauge"},
};

START_TEST(test_families_have_help_and_type)
{
    zw_metrics_t *m = zw_metrics_new(TENANTS, 2, "1.2.3");
    char *text, line[256];
    int n_help = 0;

    ck_assert_ptr_nonnull(m);
    text = zw_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        snprintf(line, sizeof(line), "# TYPE %s %s", families[i].name, families[i].type);
        ASSERT_LINE(text, line);
        snprintf(line, sizeof(line), "# HELP %s ", families[i].name);
        ck_assert_msg(strstr(text, line), "no HELP for %s", families[i].name);
    }
    for (const char *p = strstr(text, "# HELP "); p; p = strstr(p + 1, "# HELP "))
        n_help++;
    ck_assert_int_eq(n_help, (int)(sizeof(families) / sizeof(families[0])));
    /* Fresh: the constants, zero gauges and empty histograms, no counters. */
    ASSERT_LINE(text, "zendesk_worker_up 1");
    ASSERT_LINE(text, "zendesk_worker_build_info{version=\"1.2.3\"} 1");
    ASSERT_LINE(text, "zendesk_worker_in_flight_requests 0");
    ASSERT_LINE(text, "zendesk_worker_partitions_paused 0");
    ASSERT_LINE(text, "zendesk_worker_event_duration_seconds_count{type=\"sync\"} 0");
    ASSERT_LINE(text,
                "zendesk_worker_zendesk_request_duration_seconds_bucket{endpoint=\"oauth\","
                "le=\"+Inf\"} 0");
    ASSERT_NO(text, "endpoint=\"other\"");
    ASSERT_NO(text, "zendesk_worker_events_consumed_total{");
    ASSERT_NO(text, "tenant=");
    ck_assert_int_eq(check_histograms(text), 6 + 6);
    ck_assert(text[strlen(text) - 1] == '\n');
    free(text);
    zw_metrics_destroy(m);
}
END_TEST

START_TEST(test_events_by_type_tenant_status_outcome)
{
    zw_metrics_t *m = zw_metrics_new(TENANTS, 2, "1.2.3");
    char *text;

    ck_assert_ptr_nonnull(m);
    zw_metrics_event_consumed(m, "joiner", "acme");
    zw_metrics_event_consumed(m, "joiner", "ACME"); /* tenants match ignoring case */
    zw_metrics_event_consumed(m, "leaver", "globex");
    zw_metrics_event_consumed(m, "mover", "evil"); /* event data cannot make a label */
    zw_metrics_event_consumed(m, "invalid", NULL);
    zw_metrics_event_consumed(m, "bogus", "acme"); /* an unknown type is "invalid" */
    zw_metrics_event_finished(m, "joiner", "acme", "succeeded", "created", 0.2);
    zw_metrics_event_finished(m, "joiner", "acme", "succeeded", "created", 0.3);
    zw_metrics_event_finished(m, "leaver", "globex", "dry_run", "would_suspend", 0.1);
    zw_metrics_event_finished(m, "mover", "evil", "failed", "exploded", 1);
    zw_metrics_event_finished(m, "sync", "globex", "weird", "snapshot_complete", 2);
    text = zw_metrics_render(m);
    ck_assert_ptr_nonnull(text);

    ASSERT_LINE(text, "zendesk_worker_events_consumed_total{type=\"joiner\",tenant=\"acme\"} 2");
    ASSERT_LINE(text, "zendesk_worker_events_consumed_total{type=\"leaver\",tenant=\"globex\"} 1");
    ASSERT_LINE(text, "zendesk_worker_events_consumed_total{type=\"mover\",tenant=\"unknown\"} 1");
    ASSERT_LINE(text,
                "zendesk_worker_events_consumed_total{type=\"invalid\",tenant=\"unknown\"} 1");
    ASSERT_LINE(text, "zendesk_worker_events_consumed_total{type=\"invalid\",tenant=\"acme\"} 1");
    ASSERT_LINE(text,
                "zendesk_worker_events_finished_total{type=\"joiner\",tenant=\"acme\","
                "status=\"succeeded\",outcome=\"created\"} 2");
    ASSERT_LINE(text,
                "zendesk_worker_events_finished_total{type=\"leaver\",tenant=\"globex\","
                "status=\"dry_run\",outcome=\"would_suspend\"} 1");
    ASSERT_LINE(text,
                "zendesk_worker_events_finished_total{type=\"mover\",tenant=\"unknown\","
                "status=\"failed\",outcome=\"other\"} 1");
    ASSERT_LINE(text,
                "zendesk_worker_events_finished_total{type=\"sync\",tenant=\"globex\","
                "status=\"other\",outcome=\"snapshot_complete\"} 1");
    ASSERT_LINE(text, "zendesk_worker_event_duration_seconds_count{type=\"joiner\"} 2");
    ASSERT_LINE(text, "zendesk_worker_event_duration_seconds_sum{type=\"joiner\"} 0.5");
    ASSERT_NO(text, "evil");
    ASSERT_NO(text, "bogus");
    ASSERT_NO(text, "exploded");
    ASSERT_NO(text, "ACME");
    check_histograms(text);
    free(text);
    zw_metrics_destroy(m);
}
END_TEST

START_TEST(test_histogram_buckets_cumulative)
{
    zw_metrics_t *m = zw_metrics_new(TENANTS, 2, "v");
    static const double seconds[] = {
        0.005, 0.01 /* on a bound: le is inclusive */, 0.3, 1000, -1 /* a broken clock: 0 */, NAN};
    static const struct {
        const char *le;
        int count;
    } expect[] = {{"0.01", 4}, {"0.025", 4}, {"0.25", 4}, {"0.5", 5},
                  {"1", 5},    {"300", 5},   {"+Inf", 6}};
    char *text, line[256];

    ck_assert_ptr_nonnull(m);
    for (size_t i = 0; i < sizeof(seconds) / sizeof(seconds[0]); i++)
        zw_metrics_event_finished(m, "joiner", "acme", "succeeded", "created", seconds[i]);
    zw_metrics_http_request(m, "acme", "read", 200, 0.004);
    zw_metrics_http_request(m, "acme", "read", 200, 31);
    zw_metrics_http_request(m, "acme", "read", 200, INFINITY);
    text = zw_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        snprintf(line, sizeof(line),
                 "zendesk_worker_event_duration_seconds_bucket{type=\"joiner\",le=\"%s\"} %d",
                 expect[i].le, expect[i].count);
        ASSERT_LINE(text, line);
    }
    ASSERT_LINE(text, "zendesk_worker_event_duration_seconds_count{type=\"joiner\"} 6");
    ASSERT_LINE(text, "zendesk_worker_event_duration_seconds_sum{type=\"joiner\"} 1000.315");
    ASSERT_LINE(text, "zendesk_worker_event_duration_seconds_bucket{type=\"mover\",le=\"300\"} 0");
    ASSERT_LINE(text,
                "zendesk_worker_zendesk_request_duration_seconds_bucket{endpoint=\"read\","
                "le=\"0.005\"} 2");
    ASSERT_LINE(text,
                "zendesk_worker_zendesk_request_duration_seconds_bucket{endpoint=\"read\","
                "le=\"30\"} 2");
    ASSERT_LINE(text,
                "zendesk_worker_zendesk_request_duration_seconds_bucket{endpoint=\"read\","
                "le=\"+Inf\"} 3");
    ASSERT_LINE(text,
                "zendesk_worker_zendesk_request_duration_seconds_sum{endpoint=\"read\"} 31.004");
    ck_assert_int_eq(check_histograms(text), 6 + 6);
    free(text);
    zw_metrics_destroy(m);
}
END_TEST

/* HTTP status -> the code label. */
static const struct code_case {
    long status;
    const char *code;
} code_cases[] = {
    {200, "2xx"},  {201, "2xx"},  {204, "2xx"},   {301, "3xx"}, {400, "4xx"},
    {404, "4xx"},  {429, "429"},  {401, "401"},   {403, "403"},  {500, "5xx"},   {503, "5xx"}, {0, "error"},
    {-1, "error"}, {99, "error"}, {600, "error"}, {101, "1xx"},
};

START_TEST(test_request_code_classes)
{
    const struct code_case *c = &code_cases[_i];
    zw_metrics_t *m = zw_metrics_new(TENANTS, 2, "v");
    char *text, line[256];

    ck_assert_ptr_nonnull(m);
    zw_metrics_http_request(m, "globex", "write", c->status, 0.1);
    text = zw_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    snprintf(line, sizeof(line),
             "zendesk_worker_zendesk_requests_total{tenant=\"globex\",endpoint=\"write\","
             "code=\"%s\"} 1",
             c->code);
    ASSERT_LINE(text, line);
    free(text);
    zw_metrics_destroy(m);
}
END_TEST

START_TEST(test_rate_limits_retries_dlq)
{
    zw_metrics_t *m = zw_metrics_new(TENANTS, 2, "v");
    char *text;

    ck_assert_ptr_nonnull(m);
    zw_metrics_http_request(m, "acme", "frobnicate", 200, 0.1);
    zw_metrics_rate_limited(m, "acme", 30);
    zw_metrics_rate_limited(m, "acme", 1.5);
    zw_metrics_rate_limited(m, "globex", -5); /* a nonsense Retry-After adds nothing */
    zw_metrics_retry(m, "acme", "transient");
    zw_metrics_retry(m, "acme", "transient");
    zw_metrics_retry(m, "globex", "rate_limited");
    zw_metrics_retry(m, "nobody", "auth");
    zw_metrics_retry(m, "acme", "cosmic_rays");
    zw_metrics_dlq(m, "not_json");
    zw_metrics_dlq(m, "unknown_tenant");
    zw_metrics_dlq(m, "unknown_tenant");
    zw_metrics_dlq(m, NULL);
    text = zw_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    ASSERT_LINE(text,
                "zendesk_worker_zendesk_requests_total{tenant=\"acme\",endpoint=\"other\","
                "code=\"2xx\"} 1");
    ASSERT_LINE(text,
                "zendesk_worker_zendesk_request_duration_seconds_count{endpoint=\"other\"} 1");
    ASSERT_LINE(text, "zendesk_worker_rate_limited_total{tenant=\"acme\"} 2");
    ASSERT_LINE(text, "zendesk_worker_rate_limited_total{tenant=\"globex\"} 1");
    ASSERT_LINE(text, "zendesk_worker_retry_after_seconds_total{tenant=\"acme\"} 31.5");
    ASSERT_LINE(text, "zendesk_worker_retry_after_seconds_total{tenant=\"globex\"} 0");
    ASSERT_LINE(text, "zendesk_worker_retries_total{tenant=\"acme\",class=\"transient\"} 2");
    ASSERT_LINE(text, "zendesk_worker_retries_total{tenant=\"globex\",class=\"rate_limited\"} 1");
    ASSERT_LINE(text, "zendesk_worker_retries_total{tenant=\"unknown\",class=\"auth\"} 1");
    ASSERT_LINE(text, "zendesk_worker_retries_total{tenant=\"acme\",class=\"other\"} 1");
    ASSERT_LINE(text, "zendesk_worker_dlq_records_total{reason=\"not_json\"} 1");
    ASSERT_LINE(text, "zendesk_worker_dlq_records_total{reason=\"unknown_tenant\"} 2");
    ASSERT_LINE(text, "zendesk_worker_dlq_records_total{reason=\"other\"} 1");
    ASSERT_NO(text, "frobnicate");
    ASSERT_NO(text, "cosmic_rays");
    free(text);
    zw_metrics_destroy(m);
}
END_TEST

START_TEST(test_gauges_budget_partitions)
{
    zw_metrics_t *m = zw_metrics_new(TENANTS, 2, "v");
    char *text;

    ck_assert_ptr_nonnull(m);
    zw_metrics_set_in_flight(m, 17);
    zw_metrics_set_pending_events(m, 230);
    zw_metrics_set_paused(m, true);
    zw_metrics_set_budget(m, "acme", 3.25, 350);
    zw_metrics_set_budget(m, "evil", 1, 1); /* no budget for an unconfigured tenant */
    zw_metrics_set_tenant_events(m, "acme", 768, 5232);
    zw_metrics_set_backlog(m, 41, 6000);
    zw_metrics_set_tenant_events(m, "evil", 1, 1);
    zw_metrics_set_partition(m, "zendesk.sync.requests", 0, 7, 0);
    zw_metrics_set_partition(m, "zendesk.provisioning.requests", 11, 1000, 5);
    zw_metrics_set_partition(m, "zendesk.provisioning.requests", 2, 40, 1);
    zw_metrics_set_partition(m, "zendesk.provisioning.requests", 2, 42, 3);     /* an update */
    zw_metrics_set_partition(m, "zendesk.provisioning.requests", 3, -1001, -1); /* unknown yet */
    zw_metrics_set_partition(m, "zendesk.provisioning.requests", 4, 9, 0);
    zw_metrics_remove_partition(m, "zendesk.provisioning.requests", 4);
    zw_metrics_remove_partition(m, "zendesk.provisioning.requests", 99); /* never set */
    text = zw_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    ASSERT_LINE(text, "zendesk_worker_in_flight_requests 17");
    ASSERT_LINE(text, "zendesk_worker_pending_events 230");
    ASSERT_LINE(text, "zendesk_worker_partitions_paused 1");
    ASSERT_LINE(text, "zendesk_worker_tenant_budget_remaining{tenant=\"acme\"} 3.25");
    ASSERT_LINE(text, "zendesk_worker_tenant_budget_per_minute{tenant=\"acme\"} 350");
    ASSERT_LINE(text, "zendesk_worker_tenant_events_held{tenant=\"acme\"} 768");
    ASSERT_LINE(text, "zendesk_worker_backlog_scalable 41");
    ASSERT_LINE(text, "zendesk_worker_backlog_throttled 6000");
    ASSERT_LINE(text, "zendesk_worker_tenant_events_deferred{tenant=\"acme\"} 5232");
    ASSERT_NO(text, "tenant=\"globex\"");
    ASSERT_NO(text, "tenant=\"unknown\"");
    ASSERT_LINE(text,
                "zendesk_worker_consumer_lag{topic=\"zendesk.provisioning.requests\","
                "partition=\"2\"} 3");
    ASSERT_LINE(text,
                "zendesk_worker_committed_offset{topic=\"zendesk.provisioning.requests\","
                "partition=\"2\"} 42");
    ASSERT_LINE(text,
                "zendesk_worker_committed_offset{topic=\"zendesk.provisioning.requests\","
                "partition=\"11\"} 1000");
    ASSERT_LINE(text,
                "zendesk_worker_consumer_lag{topic=\"zendesk.sync.requests\","
                "partition=\"0\"} 0");
    ASSERT_NO(text, "partition=\"3\"");
    ASSERT_NO(text, "partition=\"4\"");
    /* Sorted by topic, then partition number (2 before 11). */
    {
        const char *p2 = strstr(text, "partition=\"2\"} 3"),
                   *p11 = strstr(text, "partition=\"11\"} 5"),
                   *sync = strstr(text, "sync.requests");

        ck_assert(p2 && p11 && sync);
        ck_assert(p2 < p11 && p11 < sync);
    }
    free(text);
    zw_metrics_destroy(m);
}
END_TEST

START_TEST(test_partition_cap)
{
    zw_metrics_t *m = zw_metrics_new(TENANTS, 2, "v");
    char *text, topic[300];

    ck_assert_ptr_nonnull(m);
    for (int i = 0; i < ZW_METRICS_MAX_PARTITIONS + 10; i++)
        zw_metrics_set_partition(m, "t", i, i, 1);
    memset(topic, 'x', 260);
    topic[260] = '\0';
    zw_metrics_set_partition(m, topic, 0, 1, 1); /* longer than Kafka allows: ignored */
    text = zw_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    ASSERT_LINE(text, "zendesk_worker_committed_offset{topic=\"t\",partition=\"4095\"} 4095");
    ASSERT_NO(text, "partition=\"4096\"");
    ASSERT_NO(text, "xxxxxxxx");
    free(text);
    zw_metrics_destroy(m);
}
END_TEST

START_TEST(test_snapshot_progress)
{
    zw_metrics_t *m = zw_metrics_new(TENANTS, 2, "v");
    char *text;

    ck_assert_ptr_nonnull(m);
    zw_metrics_snapshot_progress(m, "acme", 100, true);
    zw_metrics_snapshot_progress(m, "acme", 250, true);
    zw_metrics_snapshot_progress(m, "acme", 300, false); /* done: 300 */
    zw_metrics_snapshot_progress(m, "acme", 300, false); /* the final report again */
    zw_metrics_snapshot_progress(m, "acme", 400, true);  /* a new one, past the last count */
    zw_metrics_snapshot_progress(m, "acme", 500, true);
    zw_metrics_snapshot_progress(m, "acme", 20, true);   /* restarted without a final report */
    zw_metrics_snapshot_progress(m, "globex", 5, false); /* done at once */
    zw_metrics_snapshot_progress(m, "evil", 5, true);
    text = zw_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    ASSERT_LINE(text, "zendesk_worker_snapshot_users_total{tenant=\"acme\"} 820");
    ASSERT_LINE(text, "zendesk_worker_snapshot_running{tenant=\"acme\"} 1");
    ASSERT_LINE(text, "zendesk_worker_snapshot_users_total{tenant=\"globex\"} 5");
    ASSERT_LINE(text, "zendesk_worker_snapshot_running{tenant=\"globex\"} 0");
    ASSERT_NO(text, "tenant=\"unknown\"");
    free(text);
    zw_metrics_destroy(m);
}
END_TEST

/* The fixed label sets must know every value the schemas allow, or a real
 * outcome or DLQ reason would show as "other". */
static json_object *schema_enum(json_object **doc, const char *file, const char *property)
{
    char path[1024];
    const char *src = getenv("ZW_SOURCE_DIR");
    json_object *props, *prop, *values;

    ck_assert_ptr_nonnull(src);
    snprintf(path, sizeof(path), "%s/schemas/%s", src, file);
    *doc = json_object_from_file(path);
    ck_assert_msg(*doc != NULL, "cannot read %s", path);
    ck_assert(json_object_object_get_ex(*doc, "properties", &props));
    ck_assert(json_object_object_get_ex(props, property, &prop));
    ck_assert(json_object_object_get_ex(prop, "enum", &values));
    return values;
}

START_TEST(test_label_sets_match_schemas)
{
    zw_metrics_t *m = zw_metrics_new(TENANTS, 2, "v");
    json_object *doc_result, *doc_dlq, *outcomes, *reasons;
    char *text, line[256];

    ck_assert_ptr_nonnull(m);
    outcomes = schema_enum(&doc_result, "result.schema.json", "outcome");
    reasons = schema_enum(&doc_dlq, "dlq-headers.schema.json", "zw_error_reason");
    for (size_t i = 0; i < json_object_array_length(outcomes); i++) {
        zw_metrics_event_finished(m, "joiner", "acme", "succeeded",
                                  json_object_get_string(json_object_array_get_idx(outcomes, i)),
                                  1);
    }
    for (size_t i = 0; i < json_object_array_length(reasons); i++)
        zw_metrics_dlq(m, json_object_get_string(json_object_array_get_idx(reasons, i)));
    text = zw_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    for (size_t i = 0; i < json_object_array_length(outcomes); i++) {
        snprintf(line, sizeof(line),
                 "zendesk_worker_events_finished_total{type=\"joiner\",tenant=\"acme\","
                 "status=\"succeeded\",outcome=\"%s\"} 1",
                 json_object_get_string(json_object_array_get_idx(outcomes, i)));
        ASSERT_LINE(text, line);
    }
    for (size_t i = 0; i < json_object_array_length(reasons); i++) {
        snprintf(line, sizeof(line), "zendesk_worker_dlq_records_total{reason=\"%s\"} 1",
                 json_object_get_string(json_object_array_get_idx(reasons, i)));
        ASSERT_LINE(text, line);
    }
    ASSERT_NO(text, "\"other\"");
    free(text);
    json_object_put(doc_result);
    json_object_put(doc_dlq);
    zw_metrics_destroy(m);
}
END_TEST

START_TEST(test_label_values_escaped)
{
    /* Configured names and topics are not event data, but the format must
     * hold whatever they are. */
    static const char *const odd[] = {"we\"ird\\ten\nant"};
    zw_metrics_t *m = zw_metrics_new(odd, 1, "1.0\"\\\n-dirty");
    char *text;

    ck_assert_ptr_nonnull(m);
    zw_metrics_event_consumed(m, "joiner", "we\"ird\\ten\nant");
    zw_metrics_set_partition(m, "a\"b", 1, 5, 0);
    text = zw_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    ASSERT_LINE(text, "zendesk_worker_build_info{version=\"1.0\\\"\\\\\\n-dirty\"} 1");
    ASSERT_LINE(text,
                "zendesk_worker_events_consumed_total{type=\"joiner\","
                "tenant=\"we\\\"ird\\\\ten\\nant\"} 1");
    ASSERT_LINE(text, "zendesk_worker_committed_offset{topic=\"a\\\"b\",partition=\"1\"} 5");
    free(text);
    zw_metrics_destroy(m);
}
END_TEST

START_TEST(test_tenant_named_unknown)
{
    /* A real tenant called "unknown" absorbs the unconfigured ones rather
     * than render two series with the same labels. */
    static const char *const tenants[] = {"acme", "unknown"};
    zw_metrics_t *m = zw_metrics_new(tenants, 2, "v");
    char *text;

    ck_assert_ptr_nonnull(m);
    zw_metrics_event_consumed(m, "joiner", "unknown");
    zw_metrics_event_consumed(m, "joiner", "evil");
    zw_metrics_event_consumed(m, "joiner", NULL);
    text = zw_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    ASSERT_LINE(text, "zendesk_worker_events_consumed_total{type=\"joiner\",tenant=\"unknown\"} 3");
    {
        const char *first = strstr(text, "tenant=\"unknown\"");
        ck_assert_ptr_null(strstr(first + 1, "tenant=\"unknown\""));
    }
    free(text);
    zw_metrics_destroy(m);
}
END_TEST

START_TEST(test_null_and_bad_arguments)
{
    static const char *const with_null[] = {"acme", NULL};
    zw_metrics_t *m;
    char *text;

    zw_metrics_destroy(NULL);
    ck_assert_ptr_null(zw_metrics_render(NULL));
    zw_metrics_event_consumed(NULL, "joiner", "acme");
    zw_metrics_event_finished(NULL, "joiner", "acme", "succeeded", "created", 1);
    zw_metrics_http_request(NULL, "acme", "read", 200, 1);
    zw_metrics_rate_limited(NULL, "acme", 1);
    zw_metrics_retry(NULL, "acme", "auth");
    zw_metrics_dlq(NULL, "schema");
    zw_metrics_set_in_flight(NULL, 1);
    zw_metrics_set_pending_events(NULL, 1);
    zw_metrics_set_budget(NULL, "acme", 1, 1);
    zw_metrics_set_partition(NULL, "t", 0, 1, 1);
    zw_metrics_remove_partition(NULL, "t", 0);
    zw_metrics_snapshot_progress(NULL, "acme", 1, true);
    zw_metrics_set_paused(NULL, true);
    ck_assert_ptr_null(zw_metrics_new(with_null, 2, "v"));
    ck_assert_ptr_null(zw_metrics_new(NULL, 1, "v"));
    ck_assert_ptr_null(zw_metrics_new(TENANTS, ZW_METRICS_MAX_TENANTS + 1, "v"));

    m = zw_metrics_new(NULL, 0, NULL); /* no tenants: everything is "unknown" */
    ck_assert_ptr_nonnull(m);
    zw_metrics_event_consumed(m, NULL, "acme");
    zw_metrics_set_partition(m, NULL, 0, 1, 1);
    text = zw_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    ASSERT_LINE(text, "zendesk_worker_build_info{version=\"unknown\"} 1");
    ASSERT_LINE(text,
                "zendesk_worker_events_consumed_total{type=\"invalid\",tenant=\"unknown\"} 1");
    free(text);
    zw_metrics_destroy(m);
}
END_TEST

/* The loop updates while the admin thread renders: counts stay exact and the
 * sanitizers see no race. */
#define UPDATER_ROUNDS 20000

static void *updater(void *arg)
{
    zw_metrics_t *m = arg;

    for (int i = 0; i < UPDATER_ROUNDS; i++) {
        zw_metrics_event_consumed(m, "joiner", "acme");
        zw_metrics_http_request(m, "globex", "read", 200, 0.01);
        zw_metrics_set_partition(m, "t", i % 8, i, 1);
        if (i % 3 == 0)
            zw_metrics_remove_partition(m, "t", (i + 1) % 8);
    }
    return NULL;
}

START_TEST(test_concurrent_update_and_render)
{
    zw_metrics_t *m = zw_metrics_new(TENANTS, 2, "v");
    pthread_t thread;
    char *text;

    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(pthread_create(&thread, NULL, updater, m), 0);
    for (int i = 0; i < 50; i++) {
        text = zw_metrics_render(m);
        ck_assert_ptr_nonnull(text);
        check_histograms(text);
        free(text);
    }
    ck_assert_int_eq(pthread_join(thread, NULL), 0);
    text = zw_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    ASSERT_LINE(text,
                "zendesk_worker_events_consumed_total{type=\"joiner\",tenant=\"acme\"} 20000");
    ASSERT_LINE(text,
                "zendesk_worker_zendesk_request_duration_seconds_count{endpoint=\"read\"} "
                "20000");
    free(text);
    zw_metrics_destroy(m);
}
END_TEST

/* Every series kind at least once, odd label values included; written to
 * $ZW_METRICS_SAMPLE when set, for prom_parse.py. */
START_TEST(test_full_sample)
{
    static const char *const tenants[] = {"acme", "globex", "odd\"ten\\ant"};
    zw_metrics_t *m = zw_metrics_new(tenants, 3, "0.1.0-test");
    const char *path = getenv("ZW_METRICS_SAMPLE");
    char *text;

    ck_assert_ptr_nonnull(m);
    zw_metrics_event_consumed(m, "joiner", "acme");
    zw_metrics_event_consumed(m, "sync", "globex");
    zw_metrics_event_consumed(m, "leaver", "odd\"ten\\ant");
    zw_metrics_event_consumed(m, "invalid", NULL);
    zw_metrics_event_finished(m, "joiner", "acme", "succeeded", "created", 0.42);
    zw_metrics_event_finished(m, "sync", "globex", "succeeded", "snapshot_complete", 12);
    zw_metrics_event_finished(m, "invalid", NULL, "failed", "failed", 0.001);
    zw_metrics_http_request(m, "acme", "write", 201, 0.12);
    zw_metrics_http_request(m, "acme", "read", 429, 0.05);
    zw_metrics_http_request(m, "globex", "oauth", 0, 30);
    zw_metrics_rate_limited(m, "acme", 7);
    zw_metrics_retry(m, "acme", "rate_limited");
    zw_metrics_dlq(m, "not_json");
    zw_metrics_set_in_flight(m, 3);
    zw_metrics_set_pending_events(m, 9);
    zw_metrics_set_budget(m, "acme", 0.5, 350);
    zw_metrics_set_budget(m, "globex", 200, 200);
    zw_metrics_set_partition(m, "zendesk.provisioning.requests", 0, 120, 4);
    zw_metrics_snapshot_progress(m, "globex", 1000, true);
    zw_metrics_http_request(m, "acme", "bulk", 403, 0.02);
    zw_metrics_bulk_job(m, "acme", "create_or_update", "completed");
    zw_metrics_bulk_job(m, "acme", "create_or_update", "completed");
    zw_metrics_bulk_job(m, "globex", "destroy", "lost");
    zw_metrics_bulk_job(m, "acme", "update", "no-such-status");
    zw_metrics_bulk_items(m, "acme", "create_or_update", "submitted", 200);
    zw_metrics_bulk_items(m, "acme", "create_or_update", "failed", 3);
    zw_metrics_bulk_items(m, "acme", "update", "failed", 0);
    zw_metrics_bulk_fallback(m, "globex");
    zw_metrics_set_paused(m, true);
    text = zw_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(check_histograms(text), 6 + 6);
    ASSERT_LINE(text, "zendesk_worker_bulk_jobs_total{tenant=\"acme\",op=\"create_or_update\","
                      "status=\"completed\"} 2");
    ASSERT_LINE(text, "zendesk_worker_bulk_jobs_total{tenant=\"globex\",op=\"destroy\","
                      "status=\"lost\"} 1");
    ASSERT_LINE(text, "zendesk_worker_bulk_jobs_total{tenant=\"acme\",op=\"update\","
                      "status=\"other\"} 1");
    ASSERT_LINE(text, "zendesk_worker_bulk_items_total{tenant=\"acme\",op=\"create_or_update\","
                      "kind=\"submitted\"} 200");
    ASSERT_LINE(text, "zendesk_worker_bulk_items_total{tenant=\"acme\",op=\"create_or_update\","
                      "kind=\"failed\"} 3");
    ASSERT_NO(text, "op=\"update\",kind=");
    ASSERT_LINE(text, "zendesk_worker_bulk_fallbacks_total{tenant=\"globex\"} 1");
    ASSERT_LINE(text, "zendesk_worker_zendesk_requests_total{tenant=\"acme\",endpoint=\"bulk\","
                      "code=\"403\"} 1");
    if (path && path[0]) {
        FILE *f = fopen(path, "w");

        ck_assert_msg(f != NULL, "cannot write %s", path);
        ck_assert_int_eq(fputs(text, f) >= 0, 1);
        ck_assert_int_eq(fclose(f), 0);
    }
    free(text);
    zw_metrics_destroy(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("render");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_families_have_help_and_type);
    tcase_add_test(tc, test_events_by_type_tenant_status_outcome);
    tcase_add_test(tc, test_histogram_buckets_cumulative);
    tcase_add_loop_test(tc, test_request_code_classes, 0,
                        (int)(sizeof(code_cases) / sizeof(code_cases[0])));
    tcase_add_test(tc, test_rate_limits_retries_dlq);
    tcase_add_test(tc, test_gauges_budget_partitions);
    tcase_add_test(tc, test_partition_cap);
    tcase_add_test(tc, test_snapshot_progress);
    tcase_add_test(tc, test_label_sets_match_schemas);
    tcase_add_test(tc, test_label_values_escaped);
    tcase_add_test(tc, test_tenant_named_unknown);
    tcase_add_test(tc, test_null_and_bad_arguments);
    tcase_add_test(tc, test_concurrent_update_and_render);
    tcase_add_test(tc, test_full_sample);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

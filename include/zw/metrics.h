/* The worker's metrics: a fixed registry rendered in the Prometheus text
 * exposition format 0.0.4. Updates come from the loop thread and rendering
 * from the admin thread, so a mutex guards the state; the loop holds it only
 * for the update itself, and rendering holds it only to copy the numbers.
 * Every label value is bounded: tenants only from the configured list
 * (anything else is "unknown"), the other labels from fixed sets (anything
 * else is named below), so event data can never create a series. */
#ifndef ZW_METRICS_H
#define ZW_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct zw_metrics_s zw_metrics_t;

/* A new registry. tenants (n_tenants names, e.g. the configured subdomains)
 * and version are copied; tenants may be NULL when n_tenants is 0, version
 * may be NULL ("unknown"). Free with zw_metrics_destroy. Returns NULL when
 * out of memory, when a tenant name is NULL or when there are more than
 * ZW_METRICS_MAX_TENANTS tenants. */
zw_metrics_t *zw_metrics_new(const char *const *tenants, size_t n_tenants, const char *version);

#define ZW_METRICS_MAX_TENANTS 10000

/* Accepts NULL. Nothing may use the registry any more (stop the admin
 * endpoint first). */
void zw_metrics_destroy(zw_metrics_t *m);

/* Every update below accepts m == NULL (does nothing), so a worker may run
 * without metrics, and is thread-safe (the loop is the one caller). String
 * arguments are lent for the call only. A tenant is matched against the
 * configured names ignoring case and rendered as configured; NULL or an
 * unconfigured tenant counts as "unknown". A labelled series appears once it
 * is first counted or set (histograms: always, for every named label). */

/* One event taken from Kafka. type: "joiner" | "mover" | "leaver" |
 * "rehire" | "sync" | "invalid" (anything else, NULL included, counts as
 * "invalid"). */
void zw_metrics_event_consumed(zw_metrics_t *m, const char *type, const char *tenant);

/* One event finished with its result acked. status: "succeeded" | "failed"
 * | "dry_run" (else "other"); outcome: the result's outcome
 * (shared/DESIGN.md, schemas/result.schema.json; else "other"); seconds: end
 * to end, consume -> result acked. Seconds that are negative, NaN or infinite
 * count as 0 here and below. */
void zw_metrics_event_finished(zw_metrics_t *m, const char *type, const char *tenant,
                               const char *status, const char *outcome, double seconds);

/* One Zendesk HTTP request finished. endpoint: "read" | "write" | "delete" |
 * "oauth" | "list" (else "other"); http_status 0 means no response (a
 * transport error); the code label is the class: "2xx", "4xx", "429", "5xx",
 * "error" (and "1xx", "3xx" should they ever happen). */
void zw_metrics_http_request(zw_metrics_t *m, const char *tenant, const char *endpoint,
                             long http_status, double seconds);

/* A 429 that stops the tenant for retry_after_seconds. */
void zw_metrics_rate_limited(zw_metrics_t *m, const char *tenant, double retry_after_seconds);

/* One retry scheduled. cls: "transient" | "rate_limited" | "auth" (else
 * "other"). */
void zw_metrics_retry(zw_metrics_t *m, const char *tenant, const char *cls);

/* One record sent to the dead-letter topic. reason: the zw_error_reason
 * header (schemas/dlq-headers.schema.json; else "other"). */
/* The bulk path: a job ended (status: completed, failed, lost, rejected);
 * items submitted or failed; a tenant's bulk create refused (403). op is
 * create_or_update, update or destroy. */
void zw_metrics_bulk_job(zw_metrics_t *m, const char *tenant, const char *op, const char *status);
void zw_metrics_bulk_items(zw_metrics_t *m, const char *tenant, const char *op, const char *kind,
                           long n);
void zw_metrics_bulk_fallback(zw_metrics_t *m, const char *tenant);

void zw_metrics_dlq(zw_metrics_t *m, const char *reason);

/* Gauges: Zendesk requests in flight; events consumed but not finished. */
void zw_metrics_set_in_flight(zw_metrics_t *m, long requests);
void zw_metrics_set_pending_events(zw_metrics_t *m, long events);

/* The backlog split by whether more replicas would help: ready is messages
 * not read yet plus events of tenants that are not throttled; throttled is
 * the events of throttled tenants (zw_tenant_throttled). */
void zw_metrics_set_backlog(zw_metrics_t *m, long ready, long throttled);

/* A tenant's rate budget now: tokens available and the refill rate of this
 * replica's bucket. An "unknown" tenant is ignored (it has no budget). */
void zw_metrics_set_budget(zw_metrics_t *m, const char *tenant, double tokens_available,
                           double per_minute);

/* A tenant's provisioning events in memory, and its events deferred (read,
 * left in Kafka uncommitted, read again when it has room). */
void zw_metrics_set_tenant_events(zw_metrics_t *m, const char *tenant, long held, long deferred);

/* An assigned partition's committed offset and lag (messages). A negative
 * value means not known yet and leaves that series out. At most
 * ZW_METRICS_MAX_PARTITIONS partitions are tracked; later ones are ignored.
 * topic is copied (names longer than Kafka's 249 bytes are ignored). */
void zw_metrics_set_partition(zw_metrics_t *m, const char *topic, int32_t partition,
                              int64_t committed_offset, int64_t lag);

#define ZW_METRICS_MAX_PARTITIONS 4096

/* Drops a revoked partition's series (no-op when it has none). */
void zw_metrics_remove_partition(zw_metrics_t *m, const char *topic, int32_t partition);

/* A tenant's snapshot (sync request) progress: users_published is the count
 * published so far by the current snapshot, which restarts from 0 for each
 * snapshot; running says whether it is still going. The exported
 * zendesk_worker_snapshot_users_total counts every user published since
 * start (the increases of users_published), so it only grows. An "unknown"
 * tenant is ignored (no snapshot runs for it). */
void zw_metrics_snapshot_progress(zw_metrics_t *m, const char *tenant, long users_published,
                                  bool running);

/* Whether the consumer's partitions are paused for back-pressure. */
void zw_metrics_set_paused(zw_metrics_t *m, bool paused);

/* The whole registry in the Prometheus text format 0.0.4: a HELP and a TYPE
 * line for every family, label values escaped. Returns a new string, free()
 * it; NULL when m is NULL or out of memory. Safe from any thread. */
char *zw_metrics_render(zw_metrics_t *m);

#endif

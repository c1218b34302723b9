/* Snapshot walks (sync requests): one walk at a time per tenant lists the
 * account's users page by page, publishes a begin marker, one record per
 * user and an end marker, and ends the request when every record is acked.
 * Private to the core. */
#ifndef ZW_WALK_H
#define ZW_WALK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "job.h"

typedef struct zw_walks_s zw_walks_t;

/* The ops of a sync job. */
extern const zw_job_ops_t zw_walk_ops;

/* The running walk of each of js's tenants (js lent). NULL when out of
 * memory. */
zw_walks_t *zw_walks_new(zw_jobs_t *js);

/* Accepts NULL. The jobs are freed elsewhere. */
void zw_walks_destroy(zw_walks_t *ws);

/* Parses the message value into job->walk.req; as zw_sync_request_parse. */
zw_event_error_t zw_walk_parse(zw_job_t *job, const void *data, size_t len, char **request_id,
                               char *errstr, size_t errstr_size);

/* Starts the walk of an admitted sync job: its records go to Kafka, or to
 * out (the sync command) when out is set. A tenant already walking makes
 * the request fail as a duplicate. */
void zw_walk_start(zw_walks_t *ws, zw_job_t *job, FILE *out);

/* Stops a walk that has not ended (its partition was handed back, or the
 * worker shuts down): no end marker, no result, its offset stays
 * uncommitted, so the request is walked whole again. The job goes once
 * nothing refers to it. why is logged. */
void zw_walk_stop(zw_job_t *job, const char *why);

/* Stops every running walk (shutdown). */
void zw_walks_stop_all(zw_walks_t *ws);

/* Whether the job is a walk that has not ended yet. */
bool zw_walk_running(const zw_job_t *job);

/* What the sync command reports. */
const char *zw_walk_id(const zw_job_t *job);
int64_t zw_walk_count(const zw_job_t *job);
int zw_walk_pages(const zw_job_t *job);
bool zw_walk_failed(const zw_job_t *job);
const char *zw_walk_next_cursor(const zw_job_t *job);

#endif

/* One provisioning event's steps: look the person up, plan, write (alone or
 * in a bulk job), converge group memberships, end. The same rules apply to
 * a write's answer whether it came from a single call or a bulk job item.
 * Private to the core; lookup.c and bulk.c call in, never the reverse. */
#ifndef ZW_PROVISION_H
#define ZW_PROVISION_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "job.h"

/* The ops of a provisioning job. */
extern const zw_job_ops_t zw_provision_ops;

/* Parses the message value into job->prov.ev; as zw_event_parse. */
zw_event_error_t zw_provision_parse(zw_job_t *job, const void *data, size_t len, char **event_id,
                                    char *errstr, size_t errstr_size);

/* The event's key-queue name: per partition, by the message key (or
 * tenant/external_id without one). A new string, NULL when out of memory. */
char *zw_provision_queue_name(const zw_job_t *job);

/* How a write ended, wherever it was sent. */
typedef enum {
    ZW_WRITTEN_OK = 0,
    ZW_WRITTEN_NOT_FOUND, /* the user is gone (404, RecordNotFound) */
    ZW_WRITTEN_FAILED,    /* refused for good (a bulk item's error) */
} zw_written_t;

typedef struct zw_write_result_s {
    zw_written_t how;
    int64_t user_id;       /* > 0 when the answer names the user */
    bool matched_existing; /* create_or_update updated a user it found (by e-mail) */
    const char *code;      /* ZW_WRITTEN_FAILED */
    const char *msg;
} zw_write_result_t;

/* The event's write is done: the same rules for single calls and bulk items
 * (a leaver's user already gone is met; a user gone under a mover is looked
 * up again; group memberships follow). */
void zw_provision_written(zw_job_t *job, const zw_write_result_t *wr);

/* An answer to one of the event's requests. For a lookup batch, answer is
 * the body parsed once for all its events (else NULL) and seen_429 is
 * shared by them (else NULL). A job stopped meanwhile is freed here. */
void zw_provision_answer(zw_job_t *job, const zw_http_t *req, json_object *answer,
                         bool *seen_429);

/* The write must start from a fresh lookup (what happened is unknown). */
void zw_provision_relookup(zw_job_t *job);

/* Whether the event runs as a dry run (its own flag or the worker's). */
bool zw_provision_is_dry(const zw_job_t *job);

#endif

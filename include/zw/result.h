/* The result record: one per input event on the results topic
 * (schemas/result.schema.json). A value type filled by whoever ended the
 * event and turned into JSON here; nothing is kept between calls. */
#ifndef ZW_RESULT_H
#define ZW_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZW_RESULT_SCHEMA "zendesk-worker/result/v1"

/* Every pointer is lent for the call. NULL strings become JSON null where
 * the schema allows it (tenant, type, error's code); error is written only
 * when err_class is set; snapshot_id and count only when snapshot_id is. */
typedef struct zw_result_s {
    const char *event_id;
    const char *tenant;
    const char *type;
    const char *status;  /* succeeded | failed | dry_run */
    const char *outcome;
    int64_t user_id;     /* <= 0: null */
    int attempts;
    bool dry_run;
    const char *err_class;
    long err_http;       /* <= 0: null */
    const char *err_code; /* NULL or "": null */
    const char *err_msg;
    char *const *request_ids;
    size_t n_request_ids;
    const char *started_at;
    const char *finished_at;
    int64_t duration_ms;
    const char *worker_id;
    const char *worker_version;
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *snapshot_id;
    int64_t count;
} zw_result_t;

/* The result as one line of JSON (no slashes escaped). Returns a new string
 * (free()), or NULL when out of memory. */
char *zw_result_json(const zw_result_t *r);

#endif

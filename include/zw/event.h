/* Provisioning requests: parsing and validation of the input events of
 * shared/DESIGN.md section 3 into a typed form. Validation here must agree
 * with schemas/provisioning-request.schema.json on every example. */
#ifndef ZW_EVENT_H
#define ZW_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define ZW_EVENT_SCHEMA "zendesk-worker/provisioning-request/v1"

typedef enum {
    ZW_EVENT_JOINER = 0,
    ZW_EVENT_MOVER = 1,
    ZW_EVENT_LEAVER = 2,
    ZW_EVENT_REHIRE = 3,
} zw_event_type_t;

/* Leaver action: NONE means "use the tenant's policy". */
typedef enum {
    ZW_LEAVER_ACTION_NONE = 0,
    ZW_LEAVER_ACTION_SUSPEND = 1,
    ZW_LEAVER_ACTION_DOWNGRADE_SUSPEND = 2,
    ZW_LEAVER_ACTION_DELETE = 3,
} zw_leaver_action_t;

/* Why an event was refused; the name goes into the DLQ header
 * "zw_error_reason" and the result's error.code. */
typedef enum {
    ZW_EVENT_OK = 0,
    ZW_EVENT_ERR_TOO_LARGE,     /* "too_large" */
    ZW_EVENT_ERR_NOT_JSON,      /* "not_json" */
    ZW_EVENT_ERR_NOT_OBJECT,    /* "not_object" */
    ZW_EVENT_ERR_SCHEMA,        /* "schema": wrong schema id */
    ZW_EVENT_ERR_MISSING_FIELD, /* "missing_field" */
    ZW_EVENT_ERR_WRONG_TYPE,    /* "wrong_type" */
    ZW_EVENT_ERR_INVALID_VALUE, /* "invalid_value" */
    ZW_EVENT_ERR_UNKNOWN_FIELD, /* "unknown_field" */
} zw_event_error_t;

/* Optional attributes: a field is applied only when its has_ flag is set;
 * a JSON null clears it in Zendesk (is_null). */
typedef struct zw_person_s {
    char *external_id; /* required */
    char *email;
    char *name;
    char *role;        /* "end-user" | "agent" | "admin" */
    bool has_custom_role_id, custom_role_id_null;
    int64_t custom_role_id;
    bool has_organization_id, organization_id_null;
    int64_t organization_id;
    bool has_default_group_id, default_group_id_null;
    int64_t default_group_id;
    int64_t *group_ids;
    size_t n_group_ids;
    bool has_group_ids;
    char *locale;
    char *time_zone;
    char *phone;
    bool phone_null;           /* "phone": null clears it */
    char **tags;
    size_t n_tags;
    bool has_tags;
    json_object *user_fields; /* owned; an object or NULL */
} zw_person_t;

typedef struct zw_event_s {
    char *event_id;
    zw_event_type_t type;
    char *tenant;
    char *occurred_at;
    bool dry_run;
    zw_person_t person;
    zw_leaver_action_t leaver_action;
} zw_event_t;

/* Parses and validates one message value. On success returns ZW_EVENT_OK and
 * fills *out (free with zw_event_cleanup). On failure returns the reason,
 * writes a human message naming the field into errstr, and, when the event id
 * could be read, a copy of it into *event_id_out (caller frees; else NULL).
 * max_bytes bounds the input size. Never crashes on any input. */
zw_event_error_t zw_event_parse(const char *data, size_t len, size_t max_bytes, zw_event_t *out,
                                char **event_id_out, char *errstr, size_t errstr_size);

/* Frees what an event owns (not the struct). Accepts a zeroed struct. */
void zw_event_cleanup(zw_event_t *event);

const char *zw_event_type_name(zw_event_type_t type);
const char *zw_event_error_name(zw_event_error_t err);
const char *zw_leaver_action_name(zw_leaver_action_t action);


/* ---- sync requests (schemas/sync-request.schema.json) ---- */

#define ZW_SYNC_SCHEMA "zendesk-worker/sync-request/v1"

typedef struct zw_sync_request_s {
    char *request_id;
    char *tenant;
    bool incremental;     /* mode "incremental"; else "full" */
    char *cursor;         /* NULL when absent */
    bool has_start_time;
    int64_t start_time;   /* Unix seconds */
    bool has_roles;       /* filter.roles given */
    bool role_end_user, role_agent, role_admin;
} zw_sync_request_t;

/* As zw_event_parse, for a sync request; *request_id_out gets a copy of the
 * request id when it can be read. Free with zw_sync_request_cleanup. */
zw_event_error_t zw_sync_request_parse(const char *data, size_t len, size_t max_bytes,
                                       zw_sync_request_t *out, char **request_id_out,
                                       char *errstr, size_t errstr_size);

void zw_sync_request_cleanup(zw_sync_request_t *req);

#endif

/* The result record as JSON: the one place that knows the fields and their
 * order in schemas/result.schema.json, so every way an event ends (done,
 * failed, rejected, a snapshot) reports the same shape. */
#include "zw/result.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

static json_object *str_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static json_object *error_object(const zw_result_t *r)
{
    json_object *o;

    if (!r->err_class)
        return NULL;
    o = json_object_new_object();
    json_object_object_add(o, "class", json_object_new_string(r->err_class));
    json_object_object_add(o, "http_status",
                           r->err_http > 0 ? json_object_new_int((int)r->err_http) : NULL);
    json_object_object_add(o, "code",
                           r->err_code && r->err_code[0] ? json_object_new_string(r->err_code)
                                                         : NULL);
    json_object_object_add(o, "message", json_object_new_string(r->err_msg ? r->err_msg : ""));
    return o;
}

char *zw_result_json(const zw_result_t *r)
{
    json_object *o = json_object_new_object(), *sub, *ids;
    char *json;

    if (!o)
        return NULL;
    json_object_object_add(o, "schema", json_object_new_string(ZW_RESULT_SCHEMA));
    json_object_object_add(o, "event_id", json_object_new_string(r->event_id));
    json_object_object_add(o, "tenant", str_or_null(r->tenant));
    json_object_object_add(o, "type", str_or_null(r->type));
    json_object_object_add(o, "status", json_object_new_string(r->status));
    json_object_object_add(o, "outcome", json_object_new_string(r->outcome));
    json_object_object_add(o, "zendesk_user_id",
                           r->user_id > 0 ? json_object_new_int64(r->user_id) : NULL);
    json_object_object_add(o, "attempts", json_object_new_int(r->attempts));
    json_object_object_add(o, "dry_run", json_object_new_boolean(r->dry_run));
    json_object_object_add(o, "error", error_object(r));
    ids = json_object_new_array();
    for (size_t i = 0; i < r->n_request_ids; i++)
        json_object_array_add(ids, json_object_new_string(r->request_ids[i]));
    json_object_object_add(o, "zendesk_request_ids", ids);
    json_object_object_add(o, "started_at", json_object_new_string(r->started_at));
    json_object_object_add(o, "finished_at", json_object_new_string(r->finished_at));
    json_object_object_add(o, "duration_ms", json_object_new_int64(r->duration_ms));
    sub = json_object_new_object();
    json_object_object_add(sub, "id", json_object_new_string(r->worker_id));
    json_object_object_add(sub, "version", json_object_new_string(r->worker_version));
    json_object_object_add(o, "worker", sub);
    sub = json_object_new_object();
    json_object_object_add(sub, "topic", json_object_new_string(r->topic));
    json_object_object_add(sub, "partition", json_object_new_int(r->partition));
    json_object_object_add(sub, "offset", json_object_new_int64(r->offset));
    json_object_object_add(o, "source", sub);
    if (r->snapshot_id) {
        json_object_object_add(o, "snapshot_id", json_object_new_string(r->snapshot_id));
        json_object_object_add(o, "count", json_object_new_int64(r->count));
    }
    json = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return json;
}

/* The pure parts of a snapshot walk (schemas/user-snapshot.schema.json): the
 * path of the next page, what a page says (its users, whether more follow and
 * from which cursor), the record each user becomes, the end marker and the
 * checksum. No I/O and no clock: the walk (walk.c) supplies both. */
#ifndef ZW_SNAPSHOT_H
#define ZW_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "zw/event.h"

#define ZW_SNAPSHOT_SCHEMA "zendesk-worker/user-snapshot/v1"
#define ZW_SNAPSHOT_PAGE_SIZE 100    /* GET /api/v2/users, cursor pagination */
#define ZW_SNAPSHOT_EXPORT_SIZE 1000 /* the incremental export */

/* The next page's path into path (size bytes): the cursor-paginated user
 * list for a full walk (role filter in the query), the cursor-based
 * incremental export otherwise, from cursor (escaped here; NULL for the
 * first page) or the request's start time. now_unix bounds a start time:
 * Zendesk withholds the newest minute. Returns 0, or -1 when the path does
 * not fit (nothing is ever cut). */
int zw_snapshot_page_path(const zw_sync_request_t *r, const char *cursor, int64_t now_unix,
                          char *path, size_t size);

/* What one page says. users is lent from the parsed answer; after is lent
 * too (NULL when the page gives none). */
typedef struct zw_snapshot_page_s {
    json_object *users; /* an array */
    const char *after;  /* the cursor of the next page */
    bool more;          /* another page follows (from after) */
} zw_snapshot_page_t;

/* Reads a page of a full (incremental false) or incremental walk. Returns
 * 0, or -1 when root is not a user list or says more pages follow without
 * a cursor to them. */
int zw_snapshot_page_parse(json_object *root, bool incremental, zw_snapshot_page_t *out);

/* Whether a user of this role belongs in the snapshot (the filter). */
bool zw_snapshot_role_wanted(const zw_sync_request_t *r, const char *role);

/* The attributes a snapshot keeps of a Zendesk user, the required ones
 * always present. Returns a new object. */
json_object *zw_snapshot_user(json_object *user);

/* A record's common part: {schema, snapshot_id, request_id, tenant, kind,
 * seq}. Returns a new object. */
json_object *zw_snapshot_record(const char *snapshot_id, const char *request_id,
                                const char *tenant, const char *kind, int64_t seq);

/* The end marker's "end" object. next_cursor may be NULL. Returns a new
 * object. */
json_object *zw_snapshot_end(bool complete, int64_t count, uint64_t checksum,
                             const char *next_cursor);

/* FNV-1a 64 of s; a snapshot's checksum is the sum over its users' JSON,
 * so it does not depend on their order. */
uint64_t zw_snapshot_fnv1a64(const char *s);

/* "start_time:N", the cursor a full snapshot hands out: 1 and *start_time
 * when cursor is one, else 0. */
int zw_snapshot_cursor_start_time(const char *cursor, int64_t *start_time);

#endif

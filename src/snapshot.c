/* The pure parts of a snapshot walk: page paths, page answers, user records,
 * the end marker and the checksum. walk.c drives them page by page. */
#include "zw/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zw/zendesk.h"

int zw_snapshot_page_path(const zw_sync_request_t *r, const char *cursor, int64_t now_unix,
                          char *path, size_t size)
{
    char *esc = cursor ? zw_zendesk_escape(cursor) : NULL;
    int n;

    if (cursor && !esc)
        return -1;
    if (!r->incremental) {
        n = snprintf(path, size, "/api/v2/users?page[size]=%d%s%s%s%s%s", ZW_SNAPSHOT_PAGE_SIZE,
                     r->has_roles && r->role_end_user ? "&role[]=end-user" : "",
                     r->has_roles && r->role_agent ? "&role[]=agent" : "",
                     r->has_roles && r->role_admin ? "&role[]=admin" : "",
                     esc ? "&page[after]=" : "", esc ? esc : "");
    } else if (esc) {
        n = snprintf(path, size, "/api/v2/incremental/users/cursor?cursor=%s&per_page=%d", esc,
                     ZW_SNAPSHOT_EXPORT_SIZE);
    } else {
        /* Zendesk refuses a start time within the last minute (it withholds
         * that minute): start earlier; re-listing a user is harmless. */
        int64_t start = r->has_start_time ? r->start_time : 0, latest = now_unix - 61;
        n = snprintf(path, size, "/api/v2/incremental/users/cursor?start_time=%lld&per_page=%d",
                     (long long)(start < latest ? start : latest), ZW_SNAPSHOT_EXPORT_SIZE);
    }
    free(esc);
    return n >= 0 && (size_t)n < size ? 0 : -1;
}

static const char *str_member(json_object *o, const char *key)
{
    json_object *v;

    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static bool bool_member(json_object *o, const char *key)
{
    json_object *v;

    return o && json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

int zw_snapshot_page_parse(json_object *root, bool incremental, zw_snapshot_page_t *out)
{
    json_object *users = NULL, *meta = NULL;
    const char *after;

    memset(out, 0, sizeof(*out));
    if (!root || !json_object_object_get_ex(root, "users", &users) ||
        !json_object_is_type(users, json_type_array))
        return -1;
    out->users = users;
    if (!incremental) {
        /* Cursor pagination: meta.has_more and meta.after_cursor. */
        json_object_object_get_ex(root, "meta", &meta);
        after = str_member(meta, "after_cursor");
        out->after = after && *after ? after : NULL;
        out->more = bool_member(meta, "has_more");
    } else {
        /* The incremental export: stop at end_of_stream, never loop on the
         * last page. */
        after = str_member(root, "after_cursor");
        out->after = after && *after ? after : NULL;
        out->more = !bool_member(root, "end_of_stream");
    }
    /* More pages and no cursor to them: not a page we can go on from, and
     * ending the walk here would call an incomplete snapshot complete. */
    if (out->more && !out->after) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    return 0;
}

bool zw_snapshot_role_wanted(const zw_sync_request_t *r, const char *role)
{
    if (!r->has_roles)
        return true;
    if (!role)
        return false;
    return (r->role_end_user && strcmp(role, "end-user") == 0) ||
           (r->role_agent && strcmp(role, "agent") == 0) ||
           (r->role_admin && strcmp(role, "admin") == 0);
}

static void default_member(json_object *o, const char *key, json_object *value)
{
    if (json_object_object_get_ex(o, key, NULL))
        json_object_put(value);
    else
        json_object_object_add(o, key, value);
}

json_object *zw_snapshot_user(json_object *u)
{
    static const char *const keys[] = {
        "id",          "external_id",      "email",      "name",       "role",
        "custom_role_id", "suspended",     "active",     "organization_id",
        "default_group_id", "tags",        "user_fields", "created_at", "updated_at",
        "last_login_at", NULL};
    json_object *out = json_object_new_object(), *v;

    for (const char *const *k = keys; *k; k++) {
        if (json_object_object_get_ex(u, *k, &v))
            json_object_object_add(out, *k, json_object_get(v));
    }
    if (!json_object_object_get_ex(out, "external_id", NULL))
        json_object_object_add(out, "external_id", NULL);
    if (!json_object_object_get_ex(out, "email", NULL))
        json_object_object_add(out, "email", NULL);
    default_member(out, "name", json_object_new_string(""));
    default_member(out, "role", json_object_new_string("end-user"));
    default_member(out, "suspended", json_object_new_boolean(0));
    default_member(out, "active", json_object_new_boolean(1));
    return out;
}

json_object *zw_snapshot_record(const char *snapshot_id, const char *request_id,
                                const char *tenant, const char *kind, int64_t seq)
{
    json_object *r = json_object_new_object();

    json_object_object_add(r, "schema", json_object_new_string(ZW_SNAPSHOT_SCHEMA));
    json_object_object_add(r, "snapshot_id", json_object_new_string(snapshot_id));
    json_object_object_add(r, "request_id", json_object_new_string(request_id));
    json_object_object_add(r, "tenant", json_object_new_string(tenant));
    json_object_object_add(r, "kind", json_object_new_string(kind));
    json_object_object_add(r, "seq", json_object_new_int64(seq));
    return r;
}

json_object *zw_snapshot_end(bool complete, int64_t count, uint64_t checksum,
                             const char *next_cursor)
{
    json_object *end = json_object_new_object();
    char sum[40];

    snprintf(sum, sizeof(sum), "fnv1a64-sum:%016llx", (unsigned long long)checksum);
    json_object_object_add(end, "status", json_object_new_string(complete ? "complete" : "failed"));
    json_object_object_add(end, "count", json_object_new_int64(count));
    json_object_object_add(end, "checksum", json_object_new_string(sum));
    json_object_object_add(end, "next_cursor",
                           next_cursor ? json_object_new_string(next_cursor) : NULL);
    return end;
}

uint64_t zw_snapshot_fnv1a64(const char *s)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a 64 offset basis */

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

int zw_snapshot_cursor_start_time(const char *cursor, int64_t *start_time)
{
    const char *digits = cursor ? cursor + 11 : NULL;
    int64_t v = 0;

    if (!cursor || strncmp(cursor, "start_time:", 11) != 0 || !*digits)
        return 0;
    /* Digits only, and no more than a time can have: a mangled cursor is
     * not the start of time (an export of every user since 1970). */
    for (const char *p = digits; *p; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (*p - '0');
    }
    *start_time = v;
    return 1;
}

/* The Zendesk calls of one provisioning event, as data: which path, method
 * and body each step sends, and what its answer says. provision.c decides
 * which step comes next; this file only knows the API's shapes. */
#include "zw/users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SHOW_MANY "/api/v2/users/show_many?external_ids="
#define SEARCH "/api/v2/users/search?external_id="

char *zw_users_lookup_path(const char *external_id)
{
    char *esc = zw_zendesk_escape(external_id), *path;
    size_t n;

    if (!esc)
        return NULL;
    /* show_many splits its list on commas, escaped or not: an id with a
     * comma is looked up by the users search, which takes one id whole. */
    n = sizeof(SHOW_MANY) + sizeof(SEARCH) + strlen(esc);
    path = malloc(n);
    if (path)
        snprintf(path, n, "%s%s", strchr(external_id, ',') ? SEARCH : SHOW_MANY, esc);
    free(esc);
    return path;
}

static void set_call(zw_call_t *out, const char *method, zw_endpoint_class_t ep)
{
    out->method = method;
    out->endpoint = ep;
    out->body = NULL;
}

void zw_users_write_call(const zw_plan_t *plan, zw_call_t *out)
{
    if (plan->step == ZW_STEP_CREATE_OR_UPDATE) {
        set_call(out, "POST", ZW_ENDPOINT_WRITE);
        snprintf(out->path, sizeof(out->path), "/api/v2/users/create_or_update");
    } else if (plan->step == ZW_STEP_UPDATE) {
        set_call(out, "PUT", ZW_ENDPOINT_WRITE);
        snprintf(out->path, sizeof(out->path), "/api/v2/users/%lld", (long long)plan->user_id);
    } else {
        set_call(out, "DELETE", ZW_ENDPOINT_DELETE);
        snprintf(out->path, sizeof(out->path), "/api/v2/users/%lld", (long long)plan->user_id);
    }
    out->body = plan->body;
}

char *zw_users_memberships_path(int64_t user_id, const char *after)
{
    char *esc = after ? zw_zendesk_escape(after) : NULL, *path;
    size_t n = 96 + (esc ? strlen(esc) : 0);

    if (after && !esc)
        return NULL;
    path = malloc(n);
    if (path)
        snprintf(path, n, "/api/v2/users/%lld/group_memberships?page[size]=100%s%s",
                 (long long)user_id, esc ? "&page[after]=" : "", esc ? esc : "");
    free(esc);
    return path;
}

int zw_users_memberships_page(json_object *answer, json_object **acc, const char **after)
{
    json_object *list, *meta = NULL, *v, *into;
    bool more = false;

    *after = NULL;
    if (!answer || !json_object_object_get_ex(answer, "group_memberships", &list) ||
        !json_object_is_type(list, json_type_array))
        return -1;
    if (json_object_object_get_ex(answer, "meta", &meta) &&
        json_object_is_type(meta, json_type_object)) {
        more = json_object_object_get_ex(meta, "has_more", &v) && json_object_get_boolean(v);
        if (json_object_object_get_ex(meta, "after_cursor", &v) &&
            json_object_is_type(v, json_type_string) && *json_object_get_string(v))
            *after = json_object_get_string(v);
    }
    if (more && !*after)
        return -1; /* more pages, no way to them: not a list to decide on */
    if (!more)
        *after = NULL;
    if (!*acc) {
        *acc = json_object_new_object();
        if (!*acc || json_object_object_add(*acc, "group_memberships", json_object_new_array()))
            return -1;
    }
    json_object_object_get_ex(*acc, "group_memberships", &into);
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *m = json_object_get(json_object_array_get_idx(list, i));
        if (json_object_array_add(into, m) != 0) {
            json_object_put(m);
            return -1;
        }
    }
    return 0;
}

void zw_users_membership_op_call(int64_t user_id, int64_t op, zw_call_t *out)
{
    if (op > 0) {
        set_call(out, "POST", ZW_ENDPOINT_READ); /* the account budget only */
        snprintf(out->path, sizeof(out->path), "/api/v2/group_memberships");
        snprintf(out->body_buf, sizeof(out->body_buf),
                 "{\"group_membership\":{\"user_id\":%lld,\"group_id\":%lld}}",
                 (long long)user_id, (long long)op);
        out->body = out->body_buf;
    } else {
        set_call(out, "DELETE", ZW_ENDPOINT_DELETE);
        snprintf(out->path, sizeof(out->path), "/api/v2/group_memberships/%lld", (long long)-op);
    }
}

bool zw_users_is_list(json_object *answer)
{
    json_object *users;

    return answer && json_object_object_get_ex(answer, "users", &users) &&
           json_object_is_type(users, json_type_array);
}

json_object *zw_users_pick(json_object *answer, const char *external_id)
{
    json_object *users;
    size_t n;

    if (!answer || !json_object_object_get_ex(answer, "users", &users) ||
        !json_object_is_type(users, json_type_array))
        return NULL;
    n = json_object_array_length(users);
    for (size_t i = 0; i < n; i++) {
        json_object *u = json_object_array_get_idx(users, i), *v;
        const char *ext;
        if (!json_object_object_get_ex(u, "external_id", &v) ||
            !(ext = json_object_get_string(v)) || strcasecmp(ext, external_id) != 0)
            continue;
        if (json_object_object_get_ex(u, "active", &v) && !json_object_get_boolean(v))
            continue;
        return json_object_get(u);
    }
    return NULL;
}

int64_t zw_users_answer_id(json_object *answer)
{
    json_object *user, *id;

    if (answer && json_object_object_get_ex(answer, "user", &user) &&
        json_object_object_get_ex(user, "id", &id))
        return json_object_get_int64(id);
    return 0;
}

static int64_t int_member(json_object *o, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static bool listed_has(json_object *list, size_t n, int64_t group_id)
{
    for (size_t j = 0; j < n; j++) {
        json_object *m = json_object_array_get_idx(list, j);
        if (json_object_object_get_ex(m, "group_id", NULL) && int_member(m, "group_id") == group_id)
            return true;
    }
    return false;
}

int zw_users_group_ops(json_object *listed, const int64_t *wanted, size_t n, int64_t **ops,
                       size_t *n_ops)
{
    json_object *list = NULL;
    size_t n_listed = 0, k = 0;

    if (listed && json_object_object_get_ex(listed, "group_memberships", &list) &&
        json_object_is_type(list, json_type_array))
        n_listed = json_object_array_length(list);
    *ops = calloc(n_listed + n + 1, sizeof(int64_t));
    *n_ops = 0;
    if (!*ops)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!listed_has(list, n_listed, wanted[i]))
            (*ops)[k++] = wanted[i];
    }
    for (size_t j = 0; j < n_listed; j++) {
        json_object *m = json_object_array_get_idx(list, j);
        int64_t gid = int_member(m, "group_id"), mid = int_member(m, "id");
        bool keep = false;
        for (size_t i = 0; i < n && !keep; i++)
            keep = wanted[i] == gid;
        if (!keep && mid > 0)
            (*ops)[k++] = -mid;
    }
    *n_ops = k;
    return 0;
}

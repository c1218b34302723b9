/* The Zendesk calls a provisioning event makes, as data: the path, method,
 * body and endpoint class of each step (lookup, the user write, listing and
 * changing group memberships), and what their answers say. Pure: no I/O, so
 * every call's shape is tested without a server. */
#ifndef ZW_USERS_H
#define ZW_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "zw/plan.h"
#include "zw/zendesk.h"

/* One request to make. body is NULL, lent from the plan, or body_buf. */
typedef struct zw_call_s {
    const char *method;
    char path[96];
    zw_endpoint_class_t endpoint;
    const char *body;
    char body_buf[128];
} zw_call_t;

/* The lookup of one person: "/api/v2/users/show_many?external_ids=" and
 * the escaped id, or, for an id with a comma (which show_many would split),
 * the users search "/api/v2/users/search?external_id=". NULL when out of
 * memory. A new string. */
char *zw_users_lookup_path(const char *external_id);

/* The write the plan needs (plan->step is not ZW_STEP_NONE); the body is
 * lent from plan. */
void zw_users_write_call(const zw_plan_t *plan, zw_call_t *out);

/* Listing a user's group memberships: a page of up to 100 by cursor, the
 * first without after. A new string (NULL when out of memory). */
char *zw_users_memberships_path(int64_t user_id, const char *after);

/* One page of a memberships listing: its memberships are appended to acc (a
 * {"group_memberships": [...]} object, made on the first page: *acc NULL),
 * and *after is the cursor of the next page (lent from answer), NULL on the
 * last. Returns 0, or -1 when the answer is not a page of memberships (or
 * says more follow without a cursor) or when out of memory. */
int zw_users_memberships_page(json_object *answer, json_object **acc, const char **after);

/* One membership change: op > 0 adds the user to group op, op < 0 removes
 * membership -op. */
void zw_users_membership_op_call(int64_t user_id, int64_t op, zw_call_t *out);

/* Whether a lookup answer has the shape of one: {"users": [...]}. Anything
 * else is an error, never "no such user". */
bool zw_users_is_list(json_object *answer);

/* The active user whose external_id matches (case-insensitively, as Zendesk
 * matches it) in a show_many answer, or NULL. Returns a new reference. */
json_object *zw_users_pick(json_object *answer, const char *external_id);

/* The user id in a {"user": {...}} answer, or 0. */
int64_t zw_users_answer_id(json_object *answer);

/* The membership changes that make a user's groups exactly wanted (n ids),
 * given the listed memberships (a {"group_memberships": [...]} answer, NULL
 * when none): group ids to add (> 0) first, then membership ids to remove
 * (< 0). *ops is a new array (free()), *n_ops its length. Returns 0, or -1
 * when out of memory. */
int zw_users_group_ops(json_object *listed, const int64_t *wanted, size_t n, int64_t **ops,
                       size_t *n_ops);

#endif

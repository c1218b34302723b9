/* Planning: from an event and the person's current Zendesk user (or none),
 * the one write that converges Zendesk to what the event asks for, or no
 * write at all when it already matches (a replay reports "unchanged").
 * Pure logic over JSON: no I/O. */
#ifndef ZW_PLAN_H
#define ZW_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "zw/config.h"
#include "zw/event.h"

typedef enum {
    ZW_STEP_NONE = 0,           /* nothing to write */
    ZW_STEP_CREATE_OR_UPDATE,   /* POST /api/v2/users/create_or_update */
    ZW_STEP_UPDATE,             /* PUT /api/v2/users/{id} */
    ZW_STEP_DELETE,             /* DELETE /api/v2/users/{id} */
} zw_step_t;

typedef struct zw_plan_s {
    zw_step_t step;
    char *body;            /* JSON request body for the step, owned; NULL for none */
    int64_t user_id;       /* the existing user's id, 0 when none */
    const char *outcome;   /* static: the outcome once the step succeeds (for
                            * create_or_update, "created" is refined by the status) */
    const char *dry_outcome; /* static: what a dry run reports */
    bool fail_not_found;   /* the event cannot be done: the person is unknown */
} zw_plan_t;

/* Decides for ev given current (a Zendesk user object, lent; NULL when no
 * active user has the event's external_id) and the tenant's leaver policy.
 * Returns 0, or -1 when out of memory. Free with zw_plan_cleanup. */
int zw_plan_decide(const zw_event_t *ev, zw_leaver_policy_t policy, json_object *current,
                   zw_plan_t *out);

void zw_plan_cleanup(zw_plan_t *plan);

#endif

/* Planning the Zendesk write for one event. Desired attributes come from
 * the event's person; only attributes that differ from the current user go
 * into an update, so a replay writes nothing. E-mail is set on create only:
 * on update Zendesk would add it as a secondary identity, never converging. */
#include "zw/plan.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *user_str(json_object *user, const char *key)
{
    json_object *v;

    if (!user || !json_object_object_get_ex(user, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* 0 for null or absent. */
static int64_t user_int(json_object *user, const char *key)
{
    json_object *v;

    if (!user || !json_object_object_get_ex(user, key, &v) ||
        !json_object_is_type(v, json_type_int))
        return 0;
    return json_object_get_int64(v);
}

static bool user_bool(json_object *user, const char *key)
{
    json_object *v;

    return user && json_object_object_get_ex(user, key, &v) && json_object_get_boolean(v);
}

static bool str_differs(const char *want, const char *have)
{
    return want && (!have || strcmp(want, have) != 0);
}

static void set_str(json_object *obj, const char *key, const char *v)
{
    json_object_object_add(obj, key, json_object_new_string(v));
}

static void set_id(json_object *obj, const char *key, bool is_null, int64_t v)
{
    json_object_object_add(obj, key, is_null ? NULL : json_object_new_int64(v));
}

static bool tags_differ(const zw_person_t *p, json_object *user)
{
    json_object *have;
    size_t n;

    if (!json_object_object_get_ex(user, "tags", &have) ||
        !json_object_is_type(have, json_type_array))
        return p->n_tags > 0;
    n = json_object_array_length(have);
    if (n != p->n_tags)
        return true;
    /* Zendesk keeps tags as a set: compare as sets. */
    for (size_t i = 0; i < p->n_tags; i++) {
        bool found = false;
        for (size_t j = 0; j < n && !found; j++) {
            const char *t = json_object_get_string(json_object_array_get_idx(have, j));
            found = t && strcasecmp(t, p->tags[i]) == 0;
        }
        if (!found)
            return true;
    }
    return false;
}

/* JSON equality where numbers compare by value: Zendesk may answer 2 for
 * an event's 2.0, which must not look like a change on every replay. */
static bool same_value(json_object *a, json_object *b)
{
    json_type ta = json_object_get_type(a), tb = json_object_get_type(b);

    if ((ta == json_type_int || ta == json_type_double) &&
        (tb == json_type_int || tb == json_type_double)) {
        if (ta == json_type_int && tb == json_type_int)
            return json_object_get_int64(a) == json_object_get_int64(b);
        return json_object_get_double(a) == json_object_get_double(b);
    }
    return json_object_equal(a, b) != 0;
}

/* Only the user fields the event names; others are left alone. */
static json_object *user_fields_diff(const zw_person_t *p, json_object *user)
{
    json_object *have = NULL, *diff = NULL;

    if (!p->user_fields)
        return NULL;
    if (user)
        json_object_object_get_ex(user, "user_fields", &have);
    json_object_object_foreach(p->user_fields, key, want)
    {
        json_object *cur = NULL;
        if (have && json_object_is_type(have, json_type_object))
            json_object_object_get_ex(have, key, &cur);
        if (user && same_value(want, cur))
            continue;
        if (!diff)
            diff = json_object_new_object();
        json_object_object_add(diff, key, json_object_get(want));
    }
    return diff;
}

/* Adds every attribute the event sets that differs from user (user NULL:
 * every attribute). Returns how many were added. */
static int add_attributes(json_object *out, const zw_person_t *p, json_object *user)
{
    int n = 0;
    json_object *uf;

    if (str_differs(p->name, user_str(user, "name"))) {
        set_str(out, "name", p->name);
        n++;
    }
    if (p->role && str_differs(p->role, user_str(user, "role"))) {
        set_str(out, "role", p->role);
        n++;
    }
    if (p->has_custom_role_id &&
        (!user || (p->custom_role_id_null ? 0 : p->custom_role_id) != user_int(user, "custom_role_id"))) {
        set_id(out, "custom_role_id", p->custom_role_id_null, p->custom_role_id);
        /* Zendesk sets a custom role only together with role "agent". */
        if (!p->custom_role_id_null && !json_object_object_get_ex(out, "role", NULL))
            set_str(out, "role", p->role ? p->role : "agent");
        n++;
    }
    if (p->has_organization_id &&
        (!user || (p->organization_id_null ? 0 : p->organization_id) != user_int(user, "organization_id"))) {
        set_id(out, "organization_id", p->organization_id_null, p->organization_id);
        n++;
    }
    if (p->has_default_group_id &&
        (!user || (p->default_group_id_null ? 0 : p->default_group_id) != user_int(user, "default_group_id"))) {
        set_id(out, "default_group_id", p->default_group_id_null, p->default_group_id);
        n++;
    }
    if (str_differs(p->locale, user_str(user, "locale"))) {
        set_str(out, "locale", p->locale);
        n++;
    }
    if (str_differs(p->time_zone, user_str(user, "time_zone"))) {
        set_str(out, "time_zone", p->time_zone);
        n++;
    }
    if (str_differs(p->phone, user_str(user, "phone"))) {
        set_str(out, "phone", p->phone);
        n++;
    } else if (p->phone_null && (!user || user_str(user, "phone"))) {
        json_object_object_add(out, "phone", NULL);
        n++;
    }
    if (p->has_tags && (!user || tags_differ(p, user))) {
        json_object *tags = json_object_new_array();
        for (size_t i = 0; i < p->n_tags; i++)
            json_object_array_add(tags, json_object_new_string(p->tags[i]));
        json_object_object_add(out, "tags", tags);
        n++;
    }
    uf = user_fields_diff(p, user);
    if (uf) {
        json_object_object_add(out, "user_fields", uf);
        n++;
    }
    return n;
}

static char *wrap_user(json_object *user)
{
    json_object *root = json_object_new_object();
    char *s;

    json_object_object_add(root, "user", user);
    s = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
    return s;
}

/* A create_or_update of every attribute the event has. */
static int plan_create(const zw_event_t *ev, zw_plan_t *out)
{
    json_object *u = json_object_new_object();

    set_str(u, "external_id", ev->person.external_id);
    set_str(u, "email", ev->person.email);
    add_attributes(u, &ev->person, NULL);
    if (ev->person.email)
        json_object_object_add(u, "verified", json_object_new_boolean(1));
    out->step = ZW_STEP_CREATE_OR_UPDATE;
    out->body = wrap_user(u);
    out->outcome = "created";
    out->dry_outcome = "would_create";
    return out->body ? 0 : -1;
}

int zw_plan_decide(const zw_event_t *ev, zw_leaver_policy_t policy, json_object *current,
                   zw_plan_t *out)
{
    const zw_person_t *p = &ev->person;
    json_object *u;
    bool suspended = user_bool(current, "suspended");
    int changes;

    memset(out, 0, sizeof(*out));
    out->user_id = user_int(current, "id");

    if (ev->type == ZW_EVENT_LEAVER) {
        zw_leaver_action_t action = ev->leaver_action;
        const char *role = user_str(current, "role");

        if (!current) {
            out->outcome = out->dry_outcome = "not_found";
            return 0;
        }
        if (action == ZW_LEAVER_ACTION_NONE)
            action = policy == ZW_LEAVER_SUSPEND  ? ZW_LEAVER_ACTION_SUSPEND
                     : policy == ZW_LEAVER_DELETE ? ZW_LEAVER_ACTION_DELETE
                                                  : ZW_LEAVER_ACTION_DOWNGRADE_SUSPEND;
        if (action == ZW_LEAVER_ACTION_DELETE) {
            out->step = ZW_STEP_DELETE;
            out->outcome = "deleted";
            out->dry_outcome = "would_delete";
            return 0;
        }
        u = json_object_new_object();
        /* Downgrading frees the paid seat; suspension alone would not. Both
         * in one update, so the agent is never left active as an end-user. */
        if (action == ZW_LEAVER_ACTION_DOWNGRADE_SUSPEND && role && strcmp(role, "end-user") != 0) {
            set_str(u, "role", "end-user");
            out->outcome = "downgraded";
            out->dry_outcome = "would_downgrade";
        } else {
            out->outcome = "suspended";
            out->dry_outcome = "would_suspend";
        }
        if (!suspended || json_object_object_length(u) > 0) {
            json_object_object_add(u, "suspended", json_object_new_boolean(1));
            out->step = ZW_STEP_UPDATE;
            out->body = wrap_user(u);
            return out->body ? 0 : -1;
        }
        json_object_put(u);
        out->outcome = out->dry_outcome = "unchanged";
        return 0;
    }

    if (!current) {
        /* A mover or rehire for someone Zendesk does not know can still be
         * created when the event says who they are. */
        if (ev->type == ZW_EVENT_JOINER || (p->email && p->name))
            return plan_create(ev, out);
        out->fail_not_found = true;
        out->outcome = out->dry_outcome = "not_found";
        return 0;
    }

    u = json_object_new_object();
    changes = add_attributes(u, p, current);
    /* Joiners and rehires want an active person; movers leave suspension be. */
    if (suspended && ev->type != ZW_EVENT_MOVER) {
        json_object_object_add(u, "suspended", json_object_new_boolean(0));
        out->outcome = "reactivated";
        out->dry_outcome = "would_reactivate";
        changes++;
    } else {
        out->outcome = "updated";
        out->dry_outcome = "would_update";
    }
    if (changes == 0) {
        json_object_put(u);
        out->outcome = out->dry_outcome = "unchanged";
        return 0;
    }
    out->step = ZW_STEP_UPDATE;
    out->body = wrap_user(u);
    return out->body ? 0 : -1;
}

void zw_plan_cleanup(zw_plan_t *plan)
{
    free(plan->body);
    memset(plan, 0, sizeof(*plan));
}

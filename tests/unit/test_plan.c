/* Planning: for an event, the tenant's leaver policy and the person's current
 * Zendesk user (or none), the one write the worker makes, its body, and the
 * outcomes it reports live and in a dry run. Each case is a row: the event's
 * type and person, the current user, and what must be planned. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zw/plan.h"

#define E "\"external_id\":\"E1\""
#define JANE E ",\"email\":\"jane@acme.example\",\"name\":\"Jane\""
#define AGENT "{\"id\":42,\"external_id\":\"E1\",\"email\":\"jane@acme.example\",\"name\":\"Jane\","
#define ACTIVE_AGENT AGENT "\"role\":\"agent\",\"suspended\":false}"
#define ACTIVE_END_USER AGENT "\"role\":\"end-user\",\"suspended\":false}"
#define SUSPENDED_END_USER AGENT "\"role\":\"end-user\",\"suspended\":true}"

static const struct plan_case {
    const char *name;
    const char *type;   /* event type */
    const char *person; /* members of the event's person */
    const char *leaver; /* the event's leaver.action, or NULL */
    zw_leaver_policy_t policy;
    const char *current; /* the Zendesk user, or NULL: not found */
    zw_step_t step;
    const char *body; /* compared as JSON (key order aside); NULL: no body */
    const char *outcome;
    const char *dry_outcome;
    bool fail_not_found;
} cases[] = {
    /* joiners */
    {"joiner_not_found", "joiner", JANE, NULL, ZW_LEAVER_SUSPEND, NULL, ZW_STEP_CREATE_OR_UPDATE,
     "{\"user\":{\"external_id\":\"E1\",\"email\":\"jane@acme.example\",\"name\":\"Jane\","
     "\"verified\":true}}",
     "created", "would_create", false},
    {"joiner_not_found_full", "joiner",
     JANE ",\"role\":\"agent\",\"custom_role_id\":9,\"organization_id\":null,\"locale\":\"en-GB\","
          "\"tags\":[\"a\"],\"user_fields\":{\"cc\":\"9\"}",
     NULL, ZW_LEAVER_SUSPEND, NULL, ZW_STEP_CREATE_OR_UPDATE,
     "{\"user\":{\"external_id\":\"E1\",\"email\":\"jane@acme.example\",\"name\":\"Jane\","
     "\"role\":\"agent\",\"custom_role_id\":9,\"organization_id\":null,\"locale\":\"en-GB\","
     "\"tags\":[\"a\"],\"user_fields\":{\"cc\":\"9\"},\"verified\":true}}",
     "created", "would_create", false},
    {"joiner_found_identical", "joiner", JANE ",\"role\":\"agent\"", NULL, ZW_LEAVER_SUSPEND,
     ACTIVE_AGENT, ZW_STEP_NONE, NULL, "unchanged", "unchanged", false},
    {"joiner_found_other_name", "joiner",
     E ",\"email\":\"jane@acme.example\",\"name\":\"Jane Doe\"", NULL, ZW_LEAVER_SUSPEND,
     ACTIVE_AGENT, ZW_STEP_UPDATE, "{\"user\":{\"name\":\"Jane Doe\"}}", "updated", "would_update",
     false},
    /* E-mail is set on create only: on update Zendesk would add an identity. */
    {"joiner_found_other_email", "joiner", E ",\"email\":\"j.doe@acme.example\",\"name\":\"Jane\"",
     NULL, ZW_LEAVER_SUSPEND, ACTIVE_AGENT, ZW_STEP_NONE, NULL, "unchanged", "unchanged", false},
    {"joiner_found_suspended", "joiner", JANE, NULL, ZW_LEAVER_SUSPEND, SUSPENDED_END_USER,
     ZW_STEP_UPDATE, "{\"user\":{\"suspended\":false}}", "reactivated", "would_reactivate", false},
    /* movers */
    {"mover_not_found", "mover", E ",\"role\":\"agent\"", NULL, ZW_LEAVER_SUSPEND, NULL,
     ZW_STEP_NONE, NULL, "not_found", "not_found", true},
    {"mover_not_found_email_only", "mover", E ",\"email\":\"jane@acme.example\"", NULL,
     ZW_LEAVER_SUSPEND, NULL, ZW_STEP_NONE, NULL, "not_found", "not_found", true},
    {"mover_not_found_who", "mover", JANE ",\"role\":\"agent\"", NULL, ZW_LEAVER_SUSPEND, NULL,
     ZW_STEP_CREATE_OR_UPDATE,
     "{\"user\":{\"external_id\":\"E1\",\"email\":\"jane@acme.example\",\"name\":\"Jane\","
     "\"role\":\"agent\",\"verified\":true}}",
     "created", "would_create", false},
    {"mover_role_org_tags", "mover",
     E ",\"role\":\"agent\",\"organization_id\":4,\"tags\":[\"emea\",\"hr\"]", NULL,
     ZW_LEAVER_SUSPEND,
     AGENT "\"role\":\"end-user\",\"organization_id\":3,\"tags\":[\"hr\"],\"suspended\":false}",
     ZW_STEP_UPDATE,
     "{\"user\":{\"role\":\"agent\",\"organization_id\":4,\"tags\":[\"emea\",\"hr\"]}}", "updated",
     "would_update", false},
    {"mover_tags_other_order", "mover", E ",\"tags\":[\"emea\",\"hr\",\"vip\"]", NULL,
     ZW_LEAVER_SUSPEND, AGENT "\"role\":\"agent\",\"tags\":[\"vip\",\"emea\",\"hr\"]}",
     ZW_STEP_NONE, NULL, "unchanged", "unchanged", false},
    {"mover_tags_one_swapped", "mover", E ",\"tags\":[\"emea\",\"hr\"]", NULL, ZW_LEAVER_SUSPEND,
     AGENT "\"role\":\"agent\",\"tags\":[\"hr\",\"apac\"]}", ZW_STEP_UPDATE,
     "{\"user\":{\"tags\":[\"emea\",\"hr\"]}}", "updated", "would_update", false},
    {"mover_tags_emptied", "mover", E ",\"tags\":[]", NULL, ZW_LEAVER_SUSPEND,
     AGENT "\"role\":\"agent\",\"tags\":[\"hr\"]}", ZW_STEP_UPDATE, "{\"user\":{\"tags\":[]}}",
     "updated", "would_update", false},
    {"mover_tags_none_wanted_none_had", "mover", E ",\"tags\":[]", NULL, ZW_LEAVER_SUSPEND,
     AGENT "\"role\":\"agent\",\"tags\":[]}", ZW_STEP_NONE, NULL, "unchanged", "unchanged", false},
    {"mover_clear_org", "mover", E ",\"organization_id\":null,\"custom_role_id\":null", NULL,
     ZW_LEAVER_SUSPEND, AGENT "\"organization_id\":7,\"custom_role_id\":null}", ZW_STEP_UPDATE,
     "{\"user\":{\"organization_id\":null}}", "updated", "would_update", false},
    {"mover_same_ids", "mover", E ",\"organization_id\":7,\"default_group_id\":11", NULL,
     ZW_LEAVER_SUSPEND, AGENT "\"organization_id\":7,\"default_group_id\":11}", ZW_STEP_NONE, NULL,
     "unchanged", "unchanged", false},
    /* A mover leaves suspension alone: only leavers and rehires change it. */
    {"mover_of_suspended", "mover", E ",\"role\":\"agent\"", NULL, ZW_LEAVER_SUSPEND,
     SUSPENDED_END_USER, ZW_STEP_UPDATE, "{\"user\":{\"role\":\"agent\"}}", "updated",
     "would_update", false},
    {"mover_of_suspended_unchanged", "mover", E ",\"role\":\"end-user\"", NULL, ZW_LEAVER_SUSPEND,
     SUSPENDED_END_USER, ZW_STEP_NONE, NULL, "unchanged", "unchanged", false},
    /* user_fields: only the keys the event names are compared and sent. */
    {"user_fields_named_keys", "mover", E ",\"user_fields\":{\"a\":\"x\",\"b\":1}", NULL,
     ZW_LEAVER_SUSPEND, AGENT "\"user_fields\":{\"a\":\"x\",\"b\":2,\"c\":\"other\"}}",
     ZW_STEP_UPDATE, "{\"user\":{\"user_fields\":{\"b\":1}}}", "updated", "would_update", false},
    {"user_fields_others_ignored", "mover", E ",\"user_fields\":{\"a\":\"x\"}", NULL,
     ZW_LEAVER_SUSPEND, AGENT "\"user_fields\":{\"a\":\"x\",\"c\":\"other\"}}", ZW_STEP_NONE, NULL,
     "unchanged", "unchanged", false},
    {"user_fields_null_is_absent", "mover", E ",\"user_fields\":{\"a\":null}", NULL,
     ZW_LEAVER_SUSPEND, AGENT "\"user_fields\":{\"c\":\"other\"}}", ZW_STEP_NONE, NULL, "unchanged",
     "unchanged", false},
    {"user_fields_cleared", "mover", E ",\"user_fields\":{\"a\":null}", NULL, ZW_LEAVER_SUSPEND,
     AGENT "\"user_fields\":{\"a\":\"x\"}}", ZW_STEP_UPDATE,
     "{\"user\":{\"user_fields\":{\"a\":null}}}", "updated", "would_update", false},
    /* Numbers compare by value: 2.0 wanted, 2 held, is no change. */
    {"user_fields_number_by_value", "mover", E ",\"user_fields\":{\"n\":2.0}", NULL,
     ZW_LEAVER_SUSPEND, AGENT "\"user_fields\":{\"n\":2}}", ZW_STEP_NONE, NULL, "unchanged",
     "unchanged", false},
    /* "phone": null clears a phone Zendesk holds, and is no change when none is held. */
    {"phone_cleared", "mover", E ",\"phone\":null", NULL, ZW_LEAVER_SUSPEND,
     AGENT "\"phone\":\"+441\"}", ZW_STEP_UPDATE, "{\"user\":{\"phone\":null}}", "updated",
     "would_update", false},
    {"phone_null_already", "mover", E ",\"phone\":null", NULL, ZW_LEAVER_SUSPEND,
     AGENT "\"phone\":null}", ZW_STEP_NONE, NULL, "unchanged", "unchanged", false},
    /* A custom role is set together with role agent, as Zendesk requires. */
    {"custom_role_with_agent", "mover", E ",\"custom_role_id\":9", NULL, ZW_LEAVER_SUSPEND,
     ACTIVE_END_USER, ZW_STEP_UPDATE, "{\"user\":{\"custom_role_id\":9,\"role\":\"agent\"}}",
     "updated", "would_update", false},
    /* leavers */
    {"leaver_not_found", "leaver", E, NULL, ZW_LEAVER_DOWNGRADE_SUSPEND, NULL, ZW_STEP_NONE, NULL,
     "not_found", "not_found", false},
    {"leaver_downgrade_agent", "leaver", E, NULL, ZW_LEAVER_DOWNGRADE_SUSPEND, ACTIVE_AGENT,
     ZW_STEP_UPDATE, "{\"user\":{\"role\":\"end-user\",\"suspended\":true}}", "downgraded",
     "would_downgrade", false},
    {"leaver_downgrade_admin", "leaver", E, NULL, ZW_LEAVER_DOWNGRADE_SUSPEND,
     AGENT "\"role\":\"admin\",\"suspended\":false}", ZW_STEP_UPDATE,
     "{\"user\":{\"role\":\"end-user\",\"suspended\":true}}", "downgraded", "would_downgrade",
     false},
    {"leaver_downgrade_suspended_agent", "leaver", E, NULL, ZW_LEAVER_DOWNGRADE_SUSPEND,
     AGENT "\"role\":\"agent\",\"suspended\":true}", ZW_STEP_UPDATE,
     "{\"user\":{\"role\":\"end-user\",\"suspended\":true}}", "downgraded", "would_downgrade",
     false},
    {"leaver_downgrade_end_user", "leaver", E, NULL, ZW_LEAVER_DOWNGRADE_SUSPEND, ACTIVE_END_USER,
     ZW_STEP_UPDATE, "{\"user\":{\"suspended\":true}}", "suspended", "would_suspend", false},
    {"leaver_downgrade_suspended_end_user", "leaver", E, NULL, ZW_LEAVER_DOWNGRADE_SUSPEND,
     SUSPENDED_END_USER, ZW_STEP_NONE, NULL, "unchanged", "unchanged", false},
    {"leaver_policy_suspend_agent", "leaver", E, NULL, ZW_LEAVER_SUSPEND, ACTIVE_AGENT,
     ZW_STEP_UPDATE, "{\"user\":{\"suspended\":true}}", "suspended", "would_suspend", false},
    {"leaver_policy_suspend_suspended", "leaver", E, NULL, ZW_LEAVER_SUSPEND,
     AGENT "\"role\":\"agent\",\"suspended\":true}", ZW_STEP_NONE, NULL, "unchanged", "unchanged",
     false},
    {"leaver_policy_delete", "leaver", E, NULL, ZW_LEAVER_DELETE, ACTIVE_AGENT, ZW_STEP_DELETE,
     NULL, "deleted", "would_delete", false},
    {"leaver_policy_delete_suspended", "leaver", E, NULL, ZW_LEAVER_DELETE, SUSPENDED_END_USER,
     ZW_STEP_DELETE, NULL, "deleted", "would_delete", false},
    {"leaver_policy_delete_not_found", "leaver", E, NULL, ZW_LEAVER_DELETE, NULL, ZW_STEP_NONE,
     NULL, "not_found", "not_found", false},
    /* The event's leaver.action overrides the tenant's policy. */
    {"leaver_override_delete", "leaver", E, "delete", ZW_LEAVER_SUSPEND, ACTIVE_AGENT,
     ZW_STEP_DELETE, NULL, "deleted", "would_delete", false},
    {"leaver_override_suspend", "leaver", E, "suspend", ZW_LEAVER_DELETE, ACTIVE_AGENT,
     ZW_STEP_UPDATE, "{\"user\":{\"suspended\":true}}", "suspended", "would_suspend", false},
    {"leaver_override_downgrade", "leaver", E, "downgrade_suspend", ZW_LEAVER_DELETE, ACTIVE_AGENT,
     ZW_STEP_UPDATE, "{\"user\":{\"role\":\"end-user\",\"suspended\":true}}", "downgraded",
     "would_downgrade", false},
    /* A leaver's person attributes are not applied. */
    {"leaver_ignores_attributes", "leaver", E ",\"name\":\"Someone Else\",\"role\":\"admin\"",
     "suspend", ZW_LEAVER_DELETE, ACTIVE_AGENT, ZW_STEP_UPDATE, "{\"user\":{\"suspended\":true}}",
     "suspended", "would_suspend", false},
    /* rehires */
    {"rehire_suspended", "rehire", E, NULL, ZW_LEAVER_SUSPEND, SUSPENDED_END_USER, ZW_STEP_UPDATE,
     "{\"user\":{\"suspended\":false}}", "reactivated", "would_reactivate", false},
    {"rehire_suspended_restore_role", "rehire", E ",\"role\":\"agent\",\"organization_id\":4", NULL,
     ZW_LEAVER_SUSPEND, SUSPENDED_END_USER, ZW_STEP_UPDATE,
     "{\"user\":{\"role\":\"agent\",\"organization_id\":4,\"suspended\":false}}", "reactivated",
     "would_reactivate", false},
    {"rehire_active_unchanged", "rehire", E ",\"role\":\"agent\"", NULL, ZW_LEAVER_SUSPEND,
     ACTIVE_AGENT, ZW_STEP_NONE, NULL, "unchanged", "unchanged", false},
    {"rehire_not_found", "rehire", E, NULL, ZW_LEAVER_SUSPEND, NULL, ZW_STEP_NONE, NULL,
     "not_found", "not_found", true},
    {"rehire_not_found_who", "rehire", JANE, NULL, ZW_LEAVER_SUSPEND, NULL,
     ZW_STEP_CREATE_OR_UPDATE,
     "{\"user\":{\"external_id\":\"E1\",\"email\":\"jane@acme.example\",\"name\":\"Jane\","
     "\"verified\":true}}",
     "created", "would_create", false},
};

/* Builds and parses the event of a case; the caller cleans it up. */
static void make_event(const struct plan_case *pc, zw_event_t *ev)
{
    char text[2048], leaver[128] = "", err[256] = "", *event_id = NULL;
    zw_event_error_t rc;

    if (pc->leaver)
        snprintf(leaver, sizeof(leaver), ",\"leaver\":{\"action\":\"%s\"}", pc->leaver);
    snprintf(text, sizeof(text),
             "{\"schema\":\"zendesk-worker/provisioning-request/v1\",\"event_id\":\"evt-1\","
             "\"type\":\"%s\",\"tenant\":\"acme\",\"person\":{%s}%s}",
             pc->type, pc->person, leaver);
    rc = zw_event_parse(text, strlen(text), 65536, ev, &event_id, err, sizeof(err));
    ck_assert_msg(rc == ZW_EVENT_OK, "case %s: event refused: %s", pc->name, err);
    free(event_id);
}

START_TEST(test_plan)
{
    const struct plan_case *pc = &cases[_i];
    json_object *current = NULL;
    zw_event_t ev;
    zw_plan_t plan;

    make_event(pc, &ev);
    if (pc->current) {
        current = json_tokener_parse(pc->current);
        ck_assert_msg(current != NULL, "case %s: bad current user", pc->name);
    }
    ck_assert_int_eq(zw_plan_decide(&ev, pc->policy, current, &plan), 0);
    ck_assert_msg(plan.step == pc->step, "case %s: step %d, expected %d (body %s)", pc->name,
                  plan.step, pc->step, plan.body ? plan.body : "none");
    if (pc->body) {
        json_object *want = json_tokener_parse(pc->body), *got;
        ck_assert_msg(want != NULL, "case %s: bad expected body", pc->name);
        ck_assert_msg(plan.body != NULL, "case %s: no body", pc->name);
        got = json_tokener_parse(plan.body);
        ck_assert_msg(got != NULL, "case %s: body is not JSON: %s", pc->name, plan.body);
        ck_assert_msg(json_object_equal(want, got),
                      "case %s:\n  expected body: %s\n  got:           %s", pc->name, pc->body,
                      plan.body);
        json_object_put(want);
        json_object_put(got);
    } else {
        ck_assert_msg(plan.body == NULL, "case %s: unexpected body %s", pc->name, plan.body);
    }
    ck_assert_msg(plan.outcome && strcmp(plan.outcome, pc->outcome) == 0,
                  "case %s: outcome %s, expected %s", pc->name, plan.outcome, pc->outcome);
    ck_assert_msg(plan.dry_outcome && strcmp(plan.dry_outcome, pc->dry_outcome) == 0,
                  "case %s: dry outcome %s, expected %s", pc->name, plan.dry_outcome,
                  pc->dry_outcome);
    ck_assert_msg(plan.fail_not_found == pc->fail_not_found, "case %s: fail_not_found %d", pc->name,
                  plan.fail_not_found);
    /* An update or delete addresses the user found; a create has none yet. */
    ck_assert_int_eq(plan.user_id, current ? 42 : 0);
    zw_plan_cleanup(&plan);
    ck_assert_ptr_null(plan.body);
    json_object_put(current);
    zw_event_cleanup(&ev);
}
END_TEST

/* The plan lends current: it must neither keep nor release it. */
START_TEST(test_current_is_lent)
{
    const struct plan_case *pc = &cases[3]; /* joiner_found_other_name */
    json_object *current = json_tokener_parse(pc->current);
    zw_event_t ev;
    zw_plan_t plan;

    make_event(pc, &ev);
    ck_assert_int_eq(zw_plan_decide(&ev, pc->policy, current, &plan), 0);
    zw_plan_cleanup(&plan);
    zw_event_cleanup(&ev);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(current, "name")), "Jane");
    ck_assert_int_eq(json_object_put(current), 1); /* the last reference */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("decide");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_plan, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_current_is_lent);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

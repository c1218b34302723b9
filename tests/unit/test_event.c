/* Provisioning request parser: each event type parses into the right fields;
 * each kind of bad event is refused with its reason and message, and the
 * event id is still read when it can be; random and truncated input never
 * crashes and never puts a raw control character into a message. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zw/event.h"

#define MAX_BYTES 65536

#define HEAD(type)                                                                   \
    "{\"schema\":\"zendesk-worker/provisioning-request/v1\",\"event_id\":\"evt-1\"," \
    "\"type\":\"" type "\",\"tenant\":\"acme\","
/* A mover whose person holds the given members after external_id. */
#define MOVER(person) HEAD("mover") "\"person\":{\"external_id\":\"E1\"" person "}}"
#define JOINER_PERSON \
    "\"person\":{\"external_id\":\"E1\",\"email\":\"jane@acme.example\",\"name\":\"Jane\"}"

/* Parses a NUL-terminated text. The message is checked to be one line of
 * printable text whatever the outcome. */
static zw_event_error_t parse_len(const char *text, size_t len, size_t max, zw_event_t *ev,
                                  char **event_id, char *err, size_t err_size)
{
    zw_event_error_t rc = zw_event_parse(text, len, max, ev, event_id, err, err_size);

    ck_assert_msg(memchr(err, '\0', err_size) != NULL, "message not terminated");
    for (const char *p = err; *p; p++) {
        ck_assert_msg((unsigned char)*p >= 0x20 && *p != 0x7F,
                      "raw control character 0x%02x in message: %s", (unsigned char)*p, err);
    }
    ck_assert_msg(rc == ZW_EVENT_OK || err[0] != '\0', "refused (%s) without a message",
                  zw_event_error_name(rc));
    return rc;
}

static zw_event_error_t parse(const char *text, zw_event_t *ev, char **event_id, char *err,
                              size_t err_size)
{
    return parse_len(text, strlen(text), MAX_BYTES, ev, event_id, err, err_size);
}

/* Parses text that must be valid; the caller cleans ev up. */
static void parse_ok(const char *text, zw_event_t *ev)
{
    char err[512] = "", *event_id = NULL;
    zw_event_error_t rc = parse(text, ev, &event_id, err, sizeof(err));

    ck_assert_msg(rc == ZW_EVENT_OK, "refused: %s: %s\n  input: %s", zw_event_error_name(rc), err,
                  text);
    ck_assert_str_eq(event_id, ev->event_id);
    free(event_id);
}

/* ------------------------------------------------------------------ event types */

START_TEST(test_joiner_full)
{
    zw_event_t ev;
    const zw_person_t *p = &ev.person;
    json_object *v;

    parse_ok(
        "{\"schema\":\"zendesk-worker/provisioning-request/v1\",\"event_id\":\"evt-42\","
        "\"type\":\"joiner\",\"tenant\":\"acme-eu\",\"occurred_at\":\"2026-11-28T10:00:00Z\","
        "\"dry_run\":false,\"person\":{\"external_id\":\"E1001\",\"email\":\"jane@acme.example\","
        "\"name\":\"Jane Doe\",\"role\":\"agent\",\"custom_role_id\":360001,"
        "\"organization_id\":7,\"default_group_id\":11,\"group_ids\":[11,12],"
        "\"locale\":\"en-GB\",\"time_zone\":\"Europe/London\",\"phone\":\"+44 20 7946 0000\","
        "\"tags\":[\"hr-managed\",\"emea\"],"
        "\"user_fields\":{\"cost_centre\":\"CC-9\",\"fte\":0.8,\"remote\":true,\"badge\":null}}}",
        &ev);
    ck_assert_str_eq(ev.event_id, "evt-42");
    ck_assert_int_eq(ev.type, ZW_EVENT_JOINER);
    ck_assert_str_eq(ev.tenant, "acme-eu");
    ck_assert_str_eq(ev.occurred_at, "2026-11-28T10:00:00Z");
    ck_assert(!ev.dry_run);
    ck_assert_int_eq(ev.leaver_action, ZW_LEAVER_ACTION_NONE);
    ck_assert_str_eq(p->external_id, "E1001");
    ck_assert_str_eq(p->email, "jane@acme.example");
    ck_assert_str_eq(p->name, "Jane Doe");
    ck_assert_str_eq(p->role, "agent");
    ck_assert(p->has_custom_role_id && !p->custom_role_id_null);
    ck_assert_int_eq(p->custom_role_id, 360001);
    ck_assert(p->has_organization_id && !p->organization_id_null);
    ck_assert_int_eq(p->organization_id, 7);
    ck_assert(p->has_default_group_id && !p->default_group_id_null);
    ck_assert_int_eq(p->default_group_id, 11);
    ck_assert(p->has_group_ids);
    ck_assert_uint_eq(p->n_group_ids, 2);
    ck_assert_int_eq(p->group_ids[0], 11);
    ck_assert_int_eq(p->group_ids[1], 12);
    ck_assert_str_eq(p->locale, "en-GB");
    ck_assert_str_eq(p->time_zone, "Europe/London");
    ck_assert_str_eq(p->phone, "+44 20 7946 0000");
    ck_assert(p->has_tags);
    ck_assert_uint_eq(p->n_tags, 2);
    ck_assert_str_eq(p->tags[0], "hr-managed");
    ck_assert_str_eq(p->tags[1], "emea");
    /* user_fields is kept whole, values and types as sent. */
    ck_assert_ptr_nonnull(p->user_fields);
    ck_assert_int_eq(json_object_object_length(p->user_fields), 4);
    ck_assert(json_object_object_get_ex(p->user_fields, "cost_centre", &v));
    ck_assert_str_eq(json_object_get_string(v), "CC-9");
    ck_assert(json_object_object_get_ex(p->user_fields, "fte", &v));
    ck_assert(json_object_is_type(v, json_type_double));
    ck_assert(json_object_object_get_ex(p->user_fields, "remote", &v));
    ck_assert(json_object_get_boolean(v));
    ck_assert(json_object_object_get_ex(p->user_fields, "badge", &v));
    ck_assert_ptr_null(v);
    zw_event_cleanup(&ev);
}
END_TEST

START_TEST(test_joiner_minimal)
{
    zw_event_t ev;
    const zw_person_t *p = &ev.person;

    parse_ok(HEAD("joiner") JOINER_PERSON "}", &ev);
    ck_assert_int_eq(ev.type, ZW_EVENT_JOINER);
    ck_assert_ptr_null(ev.occurred_at);
    ck_assert(!ev.dry_run);
    /* Absent fields stay unset: the plan must not touch them. */
    ck_assert_ptr_null(p->role);
    ck_assert(!p->has_custom_role_id && !p->has_organization_id && !p->has_default_group_id);
    ck_assert(!p->has_group_ids && !p->has_tags);
    ck_assert_ptr_null(p->group_ids);
    ck_assert_ptr_null(p->tags);
    ck_assert_ptr_null(p->locale);
    ck_assert_ptr_null(p->time_zone);
    ck_assert_ptr_null(p->phone);
    ck_assert_ptr_null(p->user_fields);
    zw_event_cleanup(&ev);
}
END_TEST

START_TEST(test_mover_nulls_and_empty_sets)
{
    zw_event_t ev;
    const zw_person_t *p = &ev.person;

    parse_ok(MOVER(",\"role\":\"end-user\",\"custom_role_id\":null,\"organization_id\":null,"
                   "\"default_group_id\":null,\"phone\":null,\"group_ids\":[],\"tags\":[],"
                   "\"user_fields\":{}"),
             &ev);
    ck_assert_int_eq(ev.type, ZW_EVENT_MOVER);
    ck_assert_ptr_null(p->email);
    ck_assert_ptr_null(p->name);
    ck_assert_str_eq(p->role, "end-user");
    ck_assert(p->has_custom_role_id && p->custom_role_id_null);
    ck_assert(p->has_organization_id && p->organization_id_null);
    ck_assert(p->has_default_group_id && p->default_group_id_null);
    ck_assert_ptr_null(p->phone);
    /* An empty set is "remove all", not "leave alone". */
    ck_assert(p->has_group_ids);
    ck_assert_uint_eq(p->n_group_ids, 0);
    ck_assert(p->has_tags);
    ck_assert_uint_eq(p->n_tags, 0);
    ck_assert_ptr_nonnull(p->user_fields);
    ck_assert_int_eq(json_object_object_length(p->user_fields), 0);
    zw_event_cleanup(&ev);
}
END_TEST

static const struct leaver_case {
    const char *leaver;
    zw_leaver_action_t action;
} leaver_cases[] = {
    {"", ZW_LEAVER_ACTION_NONE},
    {",\"leaver\":{\"action\":\"suspend\"}", ZW_LEAVER_ACTION_SUSPEND},
    {",\"leaver\":{\"action\":\"downgrade_suspend\"}", ZW_LEAVER_ACTION_DOWNGRADE_SUSPEND},
    {",\"leaver\":{\"action\":\"delete\"}", ZW_LEAVER_ACTION_DELETE},
};

START_TEST(test_leaver_actions)
{
    const struct leaver_case *lc = &leaver_cases[_i];
    char text[512];
    zw_event_t ev;

    snprintf(text, sizeof(text),
             HEAD("leaver") "\"dry_run\":true,\"person\":{\"external_id\":\"E1\"}%s}", lc->leaver);
    parse_ok(text, &ev);
    ck_assert_int_eq(ev.type, ZW_EVENT_LEAVER);
    ck_assert(ev.dry_run);
    ck_assert_int_eq(ev.leaver_action, lc->action);
    ck_assert_str_eq(ev.person.external_id, "E1");
    zw_event_cleanup(&ev);
}
END_TEST

START_TEST(test_rehire_and_mover_with_leaver)
{
    zw_event_t ev;

    parse_ok(HEAD("rehire") "\"person\":{\"external_id\":\"E1\",\"role\":\"admin\"}}", &ev);
    ck_assert_int_eq(ev.type, ZW_EVENT_REHIRE);
    ck_assert_str_eq(ev.person.role, "admin");
    zw_event_cleanup(&ev);
    /* The leaver object is allowed on any type (only leavers use it). */
    parse_ok(
        HEAD("mover") "\"person\":{\"external_id\":\"E1\"},\"leaver\":{\"action\":\"delete\"}}",
        &ev);
    ck_assert_int_eq(ev.type, ZW_EVENT_MOVER);
    ck_assert_int_eq(ev.leaver_action, ZW_LEAVER_ACTION_DELETE);
    zw_event_cleanup(&ev);
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(zw_event_type_name(ZW_EVENT_JOINER), "joiner");
    ck_assert_str_eq(zw_event_type_name(ZW_EVENT_REHIRE), "rehire");
    ck_assert_str_eq(zw_event_error_name(ZW_EVENT_ERR_UNKNOWN_FIELD), "unknown_field");
    ck_assert_str_eq(zw_event_error_name(ZW_EVENT_ERR_NOT_JSON), "not_json");
    ck_assert_str_eq(zw_leaver_action_name(ZW_LEAVER_ACTION_NONE), "policy");
    ck_assert_str_eq(zw_leaver_action_name(ZW_LEAVER_ACTION_DOWNGRADE_SUSPEND),
                     "downgrade_suspend");
}
END_TEST

/* ------------------------------------------------------------------ integers */

/* JSON Schema's "integer" is any number with a zero fractional part, however
 * written; the id must come out exact, not rounded through a double. */
static const struct int_case {
    const char *text;
    int64_t want;
} int_cases[] = {
    {"7", 7},
    {"7.0", 7},
    {"7.000", 7},
    {"1e2", 100},
    {"1E+2", 100},
    {"1.5e1", 15},
    {"100e-2", 1},
    {"0.07e2", 7},
    {"9007199254740993", 9007199254740993},
    {"9007199254740993.0", 9007199254740993},
    {"9223372036854775807", INT64_MAX},
    {"9223372036854775807.0", INT64_MAX},
    {"922337203685477580.7e1", INT64_MAX},
};

START_TEST(test_integral_numbers_are_ids)
{
    const struct int_case *ic = &int_cases[_i];
    char text[512];
    zw_event_t ev;

    snprintf(text, sizeof(text),
             MOVER(",\"organization_id\":%s,\"custom_role_id\":%s,\"default_group_id\":%s,"
                   "\"group_ids\":[%s]"),
             ic->text, ic->text, ic->text, ic->text);
    parse_ok(text, &ev);
    ck_assert_msg(ev.person.organization_id == ic->want, "%s read as %" PRId64, ic->text,
                  ev.person.organization_id);
    ck_assert_int_eq(ev.person.custom_role_id, ic->want);
    ck_assert_int_eq(ev.person.default_group_id, ic->want);
    ck_assert_uint_eq(ev.person.n_group_ids, 1);
    ck_assert_int_eq(ev.person.group_ids[0], ic->want);
    zw_event_cleanup(&ev);
}
END_TEST

/* ------------------------------------------------------------------ refusals */

static const struct bad_case {
    const char *name;
    const char *text;
    zw_event_error_t err;
    const char *message;  /* exact; NULL: not checked */
    const char *event_id; /* what must be read back; NULL: nothing */
} bad_cases[] = {
    /* not_json */
    {"empty", "", ZW_EVENT_ERR_NOT_JSON, "empty message", NULL},
    {"truncated", "{\"event_id\":\"evt-1\"", ZW_EVENT_ERR_NOT_JSON,
     "not valid JSON: unexpected end of data", NULL},
    {"trailing_garbage", "{} x", ZW_EVENT_ERR_NOT_JSON, NULL, NULL},
    {"trailing_form_feed", "{}\f", ZW_EVENT_ERR_NOT_JSON, NULL, NULL},
    {"trailing_value", "{} {}", ZW_EVENT_ERR_NOT_JSON, NULL, NULL},
    {"trailing_vertical_tab", "{}\v", ZW_EVENT_ERR_NOT_JSON, NULL, NULL},
    {"nan", MOVER(",\"user_fields\":{\"score\":NaN}"), ZW_EVENT_ERR_NOT_JSON,
     "not valid JSON: NaN is not a JSON number", NULL},
    {"infinity", MOVER(",\"user_fields\":{\"score\":Infinity}"), ZW_EVENT_ERR_NOT_JSON,
     "not valid JSON: Infinity is not a JSON number", NULL},
    {"minus_infinity_in_array", "[1,[2,-Infinity]]", ZW_EVENT_ERR_NOT_JSON,
     "not valid JSON: Infinity is not a JSON number", NULL},
    {"nan_as_id", MOVER(",\"organization_id\":NaN"), ZW_EVENT_ERR_NOT_JSON, NULL, NULL},
    {"no_fraction_digits", MOVER(",\"organization_id\":1."), ZW_EVENT_ERR_NOT_JSON,
     "not valid JSON: a number must have digits after its decimal point", NULL},
    {"raw_newline_in_string", HEAD("joiner") "\"x\":\"a\nb\"}", ZW_EVENT_ERR_NOT_JSON,
     "not valid JSON: a control character in a string must be escaped", NULL},
    {"raw_tab_in_key", "{\"a\tb\":1}", ZW_EVENT_ERR_NOT_JSON, NULL, NULL},
    {"utf8_bom", "\xEF\xBB\xBF{}", ZW_EVENT_ERR_NOT_JSON, NULL, NULL},
    {"bad_utf8", "{\"a\":\"\xC3\x28\"}", ZW_EVENT_ERR_NOT_JSON, NULL, NULL},
    /* not_object */
    {"array", "[]", ZW_EVENT_ERR_NOT_OBJECT, "expected a JSON object, got an array", NULL},
    {"bare_number", "7", ZW_EVENT_ERR_NOT_OBJECT, "expected a JSON object, got an integer", NULL},
    {"bare_number_space", "7.5 ", ZW_EVENT_ERR_NOT_OBJECT, "expected a JSON object, got a number",
     NULL},
    {"null", "null", ZW_EVENT_ERR_NOT_OBJECT, "expected a JSON object, got null", NULL},
    /* schema */
    {"schema_v2",
     "{\"schema\":\"zendesk-worker/provisioning-request/"
     "v2\",\"event_id\":\"evt-9\",\"type\":\"mover\","
     "\"tenant\":\"acme\",\"person\":{\"external_id\":\"E1\"}}",
     ZW_EVENT_ERR_SCHEMA,
     "schema: expected 'zendesk-worker/provisioning-request/v1', got "
     "'zendesk-worker/provisioning-request/v2'",
     "evt-9"},
    /* missing_field */
    {"no_schema", "{\"event_id\":\"evt-1\"}", ZW_EVENT_ERR_MISSING_FIELD,
     "schema: missing required field", "evt-1"},
    {"no_event_id",
     "{\"schema\":\"zendesk-worker/provisioning-request/"
     "v1\",\"type\":\"mover\",\"tenant\":\"acme\","
     "\"person\":{\"external_id\":\"E1\"}}",
     ZW_EVENT_ERR_MISSING_FIELD, "event_id: missing required field", NULL},
    {"no_person", HEAD("mover") "\"dry_run\":true}", ZW_EVENT_ERR_MISSING_FIELD,
     "person: missing required field", "evt-1"},
    {"no_external_id", HEAD("mover") "\"person\":{\"name\":\"Jane\"}}", ZW_EVENT_ERR_MISSING_FIELD,
     "person.external_id: missing required field", "evt-1"},
    {"joiner_no_email", HEAD("joiner") "\"person\":{\"external_id\":\"E1\",\"name\":\"J\"}}",
     ZW_EVENT_ERR_MISSING_FIELD, "person.email: required for a joiner", "evt-1"},
    {"joiner_no_name", HEAD("joiner") "\"person\":{\"external_id\":\"E1\",\"email\":\"j@a.b\"}}",
     ZW_EVENT_ERR_MISSING_FIELD, "person.name: required for a joiner", "evt-1"},
    {"leaver_no_action", HEAD("leaver") "\"person\":{\"external_id\":\"E1\"},\"leaver\":{}}",
     ZW_EVENT_ERR_MISSING_FIELD, "leaver.action: missing required field", "evt-1"},
    /* wrong_type */
    {"event_id_number", "{\"schema\":\"zendesk-worker/provisioning-request/v1\",\"event_id\":5}",
     ZW_EVENT_ERR_WRONG_TYPE, "event_id: expected a string, got an integer", NULL},
    {"dry_run_string", HEAD("mover") "\"dry_run\":\"yes\",\"person\":{\"external_id\":\"E1\"}}",
     ZW_EVENT_ERR_WRONG_TYPE, "dry_run: expected a boolean, got a string", "evt-1"},
    {"id_fraction", MOVER(",\"default_group_id\":9.5"), ZW_EVENT_ERR_WRONG_TYPE,
     "person.default_group_id: expected an integer or null, got a number", "evt-1"},
    {"id_small_fraction", MOVER(",\"organization_id\":1e-1"), ZW_EVENT_ERR_WRONG_TYPE, NULL,
     "evt-1"},
    {"id_long_fraction", MOVER(",\"organization_id\":1.000000000000000000001"),
     ZW_EVENT_ERR_WRONG_TYPE, NULL, "evt-1"},
    {"id_string", MOVER(",\"organization_id\":\"7\""), ZW_EVENT_ERR_WRONG_TYPE,
     "person.organization_id: expected an integer or null, got a string", "evt-1"},
    {"group_id_fraction", MOVER(",\"group_ids\":[1,2.5]"), ZW_EVENT_ERR_WRONG_TYPE,
     "person.group_ids[1]: expected an integer, got a number", "evt-1"},
    {"group_id_null", MOVER(",\"group_ids\":[null]"), ZW_EVENT_ERR_WRONG_TYPE,
     "person.group_ids[0]: expected an integer, got null", "evt-1"},
    {"email_null", MOVER(",\"email\":null"), ZW_EVENT_ERR_WRONG_TYPE,
     "person.email: expected a string, got null", "evt-1"},
    {"tags_string", MOVER(",\"tags\":\"a,b\""), ZW_EVENT_ERR_WRONG_TYPE,
     "person.tags: expected an array, got a string", "evt-1"},
    {"user_field_nested", MOVER(",\"user_fields\":{\"a\":{}}"), ZW_EVENT_ERR_WRONG_TYPE,
     "person.user_fields.a: expected a string, number, boolean or null, got an object", "evt-1"},
    {"person_array", HEAD("mover") "\"person\":[]}", ZW_EVENT_ERR_WRONG_TYPE,
     "person: expected an object, got an array", "evt-1"},
    /* invalid_value */
    {"type_not_in_enum", HEAD("transfer") "\"person\":{\"external_id\":\"E1\"}}",
     ZW_EVENT_ERR_INVALID_VALUE, "type: 'transfer' is not one of: joiner, mover, leaver, rehire",
     "evt-1"},
    {"tenant_uppercase",
     "{\"schema\":\"zendesk-worker/provisioning-request/"
     "v1\",\"event_id\":\"evt-1\",\"type\":\"mover\","
     "\"tenant\":\"Acme\",\"person\":{\"external_id\":\"E1\"}}",
     ZW_EVENT_ERR_INVALID_VALUE,
     "tenant: 'Acme' is not a Zendesk subdomain (lowercase letters, digits, '-')", "evt-1"},
    {"tenant_newline_escaped",
     "{\"schema\":\"zendesk-worker/provisioning-request/"
     "v1\",\"event_id\":\"evt-1\",\"type\":\"mover\","
     "\"tenant\":\"acme\\n\",\"person\":{\"external_id\":\"E1\"}}",
     ZW_EVENT_ERR_INVALID_VALUE,
     "tenant: 'acme\\n' is not a Zendesk subdomain (lowercase letters, digits, '-')", "evt-1"},
    {"role_controls_escaped", MOVER(",\"role\":\"a\\u0001\\r\\t'\\\\\\u2028\""),
     ZW_EVENT_ERR_INVALID_VALUE,
     "person.role: 'a\\u0001\\r\\t\\'\\\\\\u2028' is not one of: end-user, agent, admin", "evt-1"},
    {"id_zero", MOVER(",\"custom_role_id\":0"), ZW_EVENT_ERR_INVALID_VALUE,
     "person.custom_role_id: must be an integer >= 1", "evt-1"},
    {"id_zero_float", MOVER(",\"custom_role_id\":0.0"), ZW_EVENT_ERR_INVALID_VALUE,
     "person.custom_role_id: must be an integer >= 1", "evt-1"},
    {"id_negative", MOVER(",\"organization_id\":-5"), ZW_EVENT_ERR_INVALID_VALUE,
     "person.organization_id: must be an integer >= 1", "evt-1"},
    {"id_very_negative", MOVER(",\"organization_id\":-99999999999999999999"),
     ZW_EVENT_ERR_INVALID_VALUE, "person.organization_id: must be an integer >= 1", "evt-1"},
    {"id_2_63", MOVER(",\"organization_id\":9223372036854775808"), ZW_EVENT_ERR_INVALID_VALUE,
     "person.organization_id: larger than 9223372036854775807, the largest id the worker can "
     "handle",
     "evt-1"},
    {"id_past_uint64", MOVER(",\"organization_id\":99999999999999999999"),
     ZW_EVENT_ERR_INVALID_VALUE,
     "person.organization_id: larger than 9223372036854775807, the largest id the worker can "
     "handle",
     "evt-1"},
    {"id_2_63_float", MOVER(",\"default_group_id\":9223372036854775808.0"),
     ZW_EVENT_ERR_INVALID_VALUE, NULL, "evt-1"},
    {"id_1e19", MOVER(",\"default_group_id\":1e19"), ZW_EVENT_ERR_INVALID_VALUE, NULL, "evt-1"},
    {"id_1e400", MOVER(",\"default_group_id\":1e400"), ZW_EVENT_ERR_INVALID_VALUE, NULL, "evt-1"},
    {"group_id_huge", MOVER(",\"group_ids\":[1,18446744073709551615]"), ZW_EVENT_ERR_INVALID_VALUE,
     "person.group_ids[1]: larger than 9223372036854775807, the largest id the worker can handle",
     "evt-1"},
    {"group_ids_duplicate_spellings", MOVER(",\"group_ids\":[7,7.0]"), ZW_EVENT_ERR_INVALID_VALUE,
     "person.group_ids[1]: duplicate 7", "evt-1"},
    {"user_field_int_past_uint64", MOVER(",\"user_fields\":{\"n\":99999999999999999999}"),
     ZW_EVENT_ERR_INVALID_VALUE,
     "person.user_fields.n: integer outside the range the worker can pass on exactly "
     "(-9223372036854775807 to 9223372036854775807)",
     "evt-1"},
    {"user_field_int_below_int64", MOVER(",\"user_fields\":{\"n\":-99999999999999999999}"),
     ZW_EVENT_ERR_INVALID_VALUE, NULL, "evt-1"},
    /* Integral numbers by value, as JSON Schema counts them: 2^63 as an
     * integer literal (json-c keeps it unsigned) and 1e300 as a double. */
    {"user_field_int_2_63", MOVER(",\"user_fields\":{\"n\":9223372036854775808}"),
     ZW_EVENT_ERR_INVALID_VALUE, NULL, "evt-1"},
    {"user_field_1e300", MOVER(",\"user_fields\":{\"n\":1e300}"), ZW_EVENT_ERR_INVALID_VALUE,
     NULL, "evt-1"},
    {"user_field_minus_2_63", MOVER(",\"user_fields\":{\"n\":-9223372036854775808}"),
     ZW_EVENT_ERR_INVALID_VALUE, NULL, "evt-1"},
    {"email_two_ats", MOVER(",\"email\":\"a@b@c\""), ZW_EVENT_ERR_INVALID_VALUE,
     "person.email: not an e-mail address", "evt-1"},
    {"email_nbsp",
     MOVER(",\"email\":\"jane\xC2\xA0"
           "doe@acme.example\""),
     ZW_EVENT_ERR_INVALID_VALUE, "person.email: not an e-mail address", "evt-1"},
    {"tag_ideographic_space",
     MOVER(",\"tags\":[\"a\xE3\x80\x80"
           "b\"]"),
     ZW_EVENT_ERR_INVALID_VALUE,
     "person.tags[0]: must be 1..80 characters without spaces or commas", "evt-1"},
    {"tag_duplicate", MOVER(",\"tags\":[\"a\",\"a\"]"), ZW_EVENT_ERR_INVALID_VALUE,
     "person.tags[1]: duplicate 'a'", "evt-1"},
    {"name_with_nul", MOVER(",\"name\":\"a\\u0000b\""), ZW_EVENT_ERR_INVALID_VALUE,
     "person.name: contains a NUL character", "evt-1"},
    {"leaver_action",
     HEAD("leaver") "\"person\":{\"external_id\":\"E1\"},\"leaver\":{\"action\":\"fire\"}}",
     ZW_EVENT_ERR_INVALID_VALUE,
     "leaver.action: 'fire' is not one of: suspend, downgrade_suspend, delete", "evt-1"},
    {"leap_second_wrong_minute",
     HEAD("mover") "\"occurred_at\":\"1998-12-31T23:58:60Z\","
                   "\"person\":{\"external_id\":\"E1\"}}",
     ZW_EVENT_ERR_INVALID_VALUE, "occurred_at: not an RFC 3339 date-time", "evt-1"},
    /* unknown_field */
    {"unknown_top", HEAD("mover") "\"dryrun\":true,\"person\":{\"external_id\":\"E1\"}}",
     ZW_EVENT_ERR_UNKNOWN_FIELD, "dryrun: unknown field", "evt-1"},
    {"unknown_person", MOVER(",\"emial\":\"x\""), ZW_EVENT_ERR_UNKNOWN_FIELD,
     "person.emial: unknown field", "evt-1"},
    {"unknown_key_escaped", MOVER(",\"a\\nb\":1"), ZW_EVENT_ERR_UNKNOWN_FIELD,
     "person.a\\nb: unknown field", "evt-1"},
    {"unknown_leaver",
     HEAD("leaver") "\"person\":{\"external_id\":\"E1\"},"
                    "\"leaver\":{\"action\":\"delete\",\"notify\":true}}",
     ZW_EVENT_ERR_UNKNOWN_FIELD, "leaver.notify: unknown field", "evt-1"},
};

START_TEST(test_bad_event)
{
    const struct bad_case *bc = &bad_cases[_i];
    char err[512] = "", *event_id = NULL;
    zw_event_t ev;
    zw_event_error_t rc = parse(bc->text, &ev, &event_id, err, sizeof(err));

    ck_assert_msg(rc == bc->err, "case %s: expected %s, got %s: %s", bc->name,
                  zw_event_error_name(bc->err), zw_event_error_name(rc), err);
    if (bc->message)
        ck_assert_msg(strcmp(err, bc->message) == 0, "case %s:\n  expected: %s\n  got:      %s",
                      bc->name, bc->message, err);
    if (bc->event_id) {
        ck_assert_msg(event_id != NULL, "case %s: event id not read", bc->name);
        ck_assert_str_eq(event_id, bc->event_id);
    } else {
        ck_assert_msg(event_id == NULL, "case %s: event id '%s' read", bc->name, event_id);
    }
    /* A refused event owns nothing. */
    ck_assert_ptr_null(ev.event_id);
    ck_assert_ptr_null(ev.person.user_fields);
    free(event_id);
}
END_TEST

START_TEST(test_too_large)
{
    const char *text = HEAD("joiner") JOINER_PERSON "}";
    char err[512] = "", want[128], *event_id = NULL;
    zw_event_t ev;
    size_t len = strlen(text);

    ck_assert_int_eq(parse_len(text, len, len - 1, &ev, &event_id, err, sizeof(err)),
                     ZW_EVENT_ERR_TOO_LARGE);
    snprintf(want, sizeof(want), "event of %zu bytes exceeds the limit of %zu", len, len - 1);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(event_id);
    /* Exactly at the limit is fine. */
    ck_assert_int_eq(parse_len(text, len, len, &ev, &event_id, err, sizeof(err)), ZW_EVENT_OK);
    free(event_id);
    zw_event_cleanup(&ev);
}
END_TEST

START_TEST(test_event_id_of_invalid_event)
{
    /* 150 two-byte characters: 300 bytes but within maxLength 200 (code points). */
    char text[1024], id[400] = "", err[512] = "", *event_id = NULL;
    zw_event_t ev;

    for (int i = 0; i < 150; i++)
        strcat(id, "\xC3\xA9");
    snprintf(text, sizeof(text),
             "{\"schema\":\"zendesk-worker/provisioning-request/v1\",\"event_id\":\"%s\","
             "\"type\":\"mover\",\"tenant\":\"ACME\",\"person\":{\"external_id\":\"E1\"}}",
             id);
    ck_assert_int_eq(parse(text, &ev, &event_id, err, sizeof(err)), ZW_EVENT_ERR_INVALID_VALUE);
    ck_assert_ptr_nonnull(event_id);
    ck_assert_str_eq(event_id, id);
    free(event_id);
}
END_TEST

START_TEST(test_long_value_is_capped)
{
    char text[4096], value[2001], err[512] = "", *event_id = NULL, want[200];
    zw_event_t ev;

    memset(value, 'x', 2000);
    value[2000] = '\0';
    /* A duplicate tag of 70 characters is shown by its first 64. */
    snprintf(text, sizeof(text), MOVER(",\"tags\":[\"%.70s\",\"%.70s\"]"), value, value);
    ck_assert_int_eq(parse(text, &ev, &event_id, err, sizeof(err)), ZW_EVENT_ERR_INVALID_VALUE);
    snprintf(want, sizeof(want), "person.tags[1]: duplicate '%.64s...'", value);
    ck_assert_str_eq(err, want);
    free(event_id);
    event_id = NULL;
    /* An unknown key of 2000 characters is shown by its first 64. */
    snprintf(text, sizeof(text), MOVER(",\"%s\":1"), value);
    ck_assert_int_eq(parse(text, &ev, &event_id, err, sizeof(err)), ZW_EVENT_ERR_UNKNOWN_FIELD);
    snprintf(want, sizeof(want), "person.%.64s...: unknown field", value);
    ck_assert_str_eq(err, want);
    free(event_id);
}
END_TEST

START_TEST(test_cap_keeps_utf8_whole)
{
    /* 70 three-byte characters: the cut falls between characters, never inside one. */
    char text[1024], tag[256] = "", err[512] = "", *event_id = NULL, want[512];
    zw_event_t ev;

    for (int i = 0; i < 70; i++)
        strcat(tag, "\xE2\x82\xAC");
    snprintf(text, sizeof(text), MOVER(",\"tags\":[\"%s\",\"%s\"]"), tag, tag);
    ck_assert_int_eq(parse(text, &ev, &event_id, err, sizeof(err)), ZW_EVENT_ERR_INVALID_VALUE);
    snprintf(want, sizeof(want), "person.tags[1]: duplicate '%.192s...'", tag);
    ck_assert_str_eq(err, want);
    free(event_id);
}
END_TEST

/* Every ECMA-262 \s code point, in the e-mail and in a tag; and some that
 * look like space but are not \s (U+001C, U+0085, U+180E, U+200B). */
START_TEST(test_ecma_whitespace)
{
    static const char *const spaces[] = {
        "\\t",          "\\n",          "\\u000b",
        "\\f",          "\\r",          " ",
        "\xC2\xA0",     "\xE1\x9A\x80", "\xE2\x80\x80",
        "\xE2\x80\x85", "\xE2\x80\x8A", "\xE2\x80\xA8",
        "\xE2\x80\xA9", "\xE2\x80\xAF", "\xE2\x81\x9F",
        "\xE3\x80\x80", "\xEF\xBB\xBF",
    };
    static const char *const not_spaces[] = {"\\u001c", "\xC2\x85", "\xE1\xA0\x8E", "\xE2\x80\x8B"};
    char text[512], err[512], *event_id;
    zw_event_t ev;

    for (size_t i = 0; i < sizeof(spaces) / sizeof(spaces[0]); i++) {
        snprintf(text, sizeof(text), MOVER(",\"email\":\"jane%sdoe@acme.example\""), spaces[i]);
        event_id = NULL;
        ck_assert_msg(parse(text, &ev, &event_id, err, sizeof(err)) == ZW_EVENT_ERR_INVALID_VALUE,
                      "email with space #%zu accepted", i);
        free(event_id);
        snprintf(text, sizeof(text), MOVER(",\"tags\":[\"a%sb\"]"), spaces[i]);
        event_id = NULL;
        ck_assert_msg(parse(text, &ev, &event_id, err, sizeof(err)) == ZW_EVENT_ERR_INVALID_VALUE,
                      "tag with space #%zu accepted", i);
        free(event_id);
    }
    for (size_t i = 0; i < sizeof(not_spaces) / sizeof(not_spaces[0]); i++) {
        snprintf(text, sizeof(text),
                 MOVER(",\"email\":\"jane%sdoe@acme.example\",\"tags\":[\"a%sb\"]"), not_spaces[i],
                 not_spaces[i]);
        parse_ok(text, &ev);
        zw_event_cleanup(&ev);
    }
}
END_TEST

/* occurred_at: the cases of tests/schemas' RFC 3339 checker. */
static const struct date_case {
    const char *text;
    bool valid;
} date_cases[] = {
    {"2026-11-28T10:00:00Z", true},
    {"2026-11-28t10:00:00.5z", true},
    {"1996-12-19T16:39:57-08:00", true},
    {"2028-02-29T00:00:00Z", true},
    {"1998-12-31T23:59:60Z", true},
    {"1998-12-31T15:59:60.1-08:00", true},
    {"1999-01-01T00:59:60+01:00", true},
    {"1998-12-31T23:29:60-00:30", true},
    {"1999-01-01T05:29:60+05:30", true},
    {"0000-01-01T00:00:00Z", true},
    {"2026-11-28T10:00:00", false},
    {"2026-11-28 10:00:00Z", false},
    {"2026-11-28T10:00:00Z\\n", false},
    {"2027-02-29T10:00:00Z", false},
    {"2026-04-31T10:00:00Z", false},
    {"2026-13-01T10:00:00Z", false},
    {"2026-11-28T24:00:00Z", false},
    {"2026-11-28T10:00:00+24:00", false},
    {"1998-12-31T23:58:60Z", false},
    {"1998-12-31T23:59:60+01:00", false},
    {"1998-12-31T22:59:60-01:00", true},
    {"2026-11-28T10:00:61Z", false},
    {"2026-11-28T10:00:00.Z", false},
    {"2026-11-28T10:00Z", false},
    {"+2026-11-28T10:00:00Z", false},
    {"2026-11-28T10:00:00+0100", false},
    {"\xEF\xBC\x92"
     "026-11-28T10:00:00Z",
     false},
};

START_TEST(test_occurred_at)
{
    const struct date_case *dc = &date_cases[_i];
    char text[512], err[512] = "", *event_id = NULL;
    zw_event_t ev;
    zw_event_error_t rc;

    snprintf(text, sizeof(text),
             HEAD("mover") "\"occurred_at\":\"%s\",\"person\":{\"external_id\":\"E1\"}}", dc->text);
    rc = parse(text, &ev, &event_id, err, sizeof(err));
    ck_assert_msg(rc == (dc->valid ? ZW_EVENT_OK : ZW_EVENT_ERR_INVALID_VALUE), "%s: %s: %s",
                  dc->text, zw_event_error_name(rc), err);
    if (rc == ZW_EVENT_OK)
        zw_event_cleanup(&ev);
    free(event_id);
}
END_TEST

START_TEST(test_json_edges_accepted)
{
    zw_event_t ev;
    const char *huge = MOVER(",\"user_fields\":{\"big\":1e400,\"neg\":-0,\"exp\":2E-3}") " \t\r\n";
    json_object *v;

    /* A number past double range is still JSON (RFC 8259 allows it); it is
     * passed on as written. Trailing JSON whitespace is fine. */
    parse_ok(huge, &ev);
    ck_assert(json_object_object_get_ex(ev.person.user_fields, "big", &v));
    ck_assert_str_eq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), "1e400");
    zw_event_cleanup(&ev);
    /* Escaped control characters are fine where a string may hold them. */
    parse_ok(MOVER(",\"name\":\"a\\nb\\u0001\""), &ev);
    ck_assert_str_eq(ev.person.name, "a\nb\x01");
    zw_event_cleanup(&ev);
}
END_TEST

/* ------------------------------------------------------------------ robustness */

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* xorshift64*: fixed seed, so a failure replays. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

/* Parses len bytes (a heap copy, so ASan sees any read past the end) and
 * cleans up whatever the parser returned. */
static void parse_anything(const char *data, size_t len)
{
    char *copy = malloc(len ? len : 1), err[256] = "", *event_id = NULL;
    zw_event_t ev;
    zw_event_error_t rc;

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, data, len);
    rc = parse_len(copy, len, MAX_BYTES, &ev, &event_id, err, sizeof(err));
    ck_assert_int_ge(rc, ZW_EVENT_OK);
    ck_assert_int_le(rc, ZW_EVENT_ERR_UNKNOWN_FIELD);
    if (rc == ZW_EVENT_OK)
        zw_event_cleanup(&ev);
    free(event_id);
    free(copy);
}

static const char full_event[] =
    "{\"schema\":\"zendesk-worker/provisioning-request/v1\",\"event_id\":\"evt-42\","
    "\"type\":\"joiner\",\"tenant\":\"acme\",\"occurred_at\":\"1998-12-31T23:59:60Z\","
    "\"dry_run\":true,\"person\":{\"external_id\":\"E1001\",\"email\":\"jane@acme.example\","
    "\"name\":\"Jane \\u00e9 Doe\",\"role\":\"agent\",\"custom_role_id\":3.6e5,"
    "\"organization_id\":null,\"default_group_id\":11,\"group_ids\":[11,1.2e1],"
    "\"locale\":\"en-GB\",\"time_zone\":\"Europe/London\",\"phone\":null,"
    "\"tags\":[\"hr\",\"\xE2\x82\xAC\"],\"user_fields\":{\"a\":1,\"b\":-2.5e3,\"c\":null}},"
    "\"leaver\":{\"action\":\"downgrade_suspend\"}}";

START_TEST(test_truncations)
{
    size_t len = strlen(full_event);

    for (size_t n = 0; n <= len; n++)
        parse_anything(full_event, n);
}
END_TEST

START_TEST(test_random_bytes)
{
    static const char alphabet[] =
        "{}[]\":,0123456789.eE+-\\ntrufalsNI \t\r\n\x01\xC3\xA9\xE2\x80\xA8";
    char buf[600];

    rng_state = 0x5EEDCAFEF00DULL;
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = (size_t)(rng() % sizeof(buf));
        bool structured = iter % 2 == 0;
        for (size_t i = 0; i < len; i++)
            buf[i] = structured ? alphabet[rng() % (sizeof(alphabet) - 1)] : (char)(rng() & 0xFF);
        parse_anything(buf, len);
    }
}
END_TEST

START_TEST(test_mutations)
{
    char buf[sizeof(full_event)];
    size_t len = strlen(full_event);

    rng_state = 0xD1CEB00CULL;
    for (int iter = 0; iter < 4000; iter++) {
        int edits = 1 + (int)(rng() % 4);
        memcpy(buf, full_event, len);
        for (int e = 0; e < edits; e++)
            buf[rng() % len] = (char)(rng() & 0xFF);
        parse_anything(buf, len);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("event");
    TCase *tc = tcase_create("parse");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_joiner_full);
    tcase_add_test(tc, test_joiner_minimal);
    tcase_add_test(tc, test_mover_nulls_and_empty_sets);
    tcase_add_loop_test(tc, test_leaver_actions, 0,
                        (int)(sizeof(leaver_cases) / sizeof(leaver_cases[0])));
    tcase_add_test(tc, test_rehire_and_mover_with_leaver);
    tcase_add_test(tc, test_names);
    tcase_add_loop_test(tc, test_integral_numbers_are_ids, 0,
                        (int)(sizeof(int_cases) / sizeof(int_cases[0])));
    tcase_add_loop_test(tc, test_bad_event, 0, (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, test_too_large);
    tcase_add_test(tc, test_event_id_of_invalid_event);
    tcase_add_test(tc, test_long_value_is_capped);
    tcase_add_test(tc, test_cap_keeps_utf8_whole);
    tcase_add_test(tc, test_ecma_whitespace);
    tcase_add_loop_test(tc, test_occurred_at, 0, (int)(sizeof(date_cases) / sizeof(date_cases[0])));
    tcase_add_test(tc, test_json_edges_accepted);
    tcase_add_test(tc, test_truncations);
    tcase_add_test(tc, test_random_bytes);
    tcase_add_test(tc, test_mutations);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

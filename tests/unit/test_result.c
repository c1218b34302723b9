/* Result records: the JSON a finished event becomes on the results topic,
 * read back with json-c and checked field by field: the required fields,
 * which ones turn into null and which are left out, the error object, the
 * request ids, the top-level key order of schemas/result.schema.json, and
 * that the text is one line with slashes left alone. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "zw/result.h"

/* A succeeded single-user event with every optional field filled. */
static zw_result_t full_result(void)
{
    static char *const ids[] = {"req-1", "req-2"};
    zw_result_t r = {
        .event_id = "0b9a3c4e-1f2d-4c5b-8a7e-6d5c4b3a2f10",
        .tenant = "acme",
        .type = "user.upsert",
        .status = "succeeded",
        .outcome = "created",
        .user_id = 361234567890,
        .attempts = 2,
        .dry_run = false,
        .request_ids = ids,
        .n_request_ids = 2,
        .started_at = "2026-11-28T10:00:00.123Z",
        .finished_at = "2026-11-28T10:00:01.456Z",
        .duration_ms = 1333,
        .worker_id = "zendesk-worker-7d9f-abcde",
        .worker_version = "0.1.0",
        .topic = "zendesk.provisioning",
        .partition = 7,
        .offset = 9007199254740993LL, /* beyond a double's integers */
    };
    return r;
}

/* Builds the JSON and parses it back; the caller puts the object. */
static json_object *to_json(const zw_result_t *r, char **text_out)
{
    char *text = zw_result_json(r);
    json_object *o;

    ck_assert_ptr_nonnull(text);
    o = json_tokener_parse(text);
    ck_assert_msg(o != NULL, "not JSON: %s", text);
    ck_assert(json_object_is_type(o, json_type_object));
    if (text_out)
        *text_out = text;
    else
        free(text);
    return o;
}

static json_object *member(json_object *o, const char *key)
{
    json_object *v = NULL;

    ck_assert_msg(json_object_object_get_ex(o, key, &v), "missing %s", key);
    return v;
}

static void assert_str(json_object *o, const char *key, const char *want)
{
    json_object *v = member(o, key);

    ck_assert_msg(json_object_is_type(v, json_type_string), "%s is not a string", key);
    ck_assert_str_eq(json_object_get_string(v), want);
}

static void assert_null(json_object *o, const char *key)
{
    ck_assert_msg(member(o, key) == NULL, "%s is not null", key);
}

static void assert_int(json_object *o, const char *key, int64_t want)
{
    json_object *v = member(o, key);

    ck_assert_msg(json_object_is_type(v, json_type_int), "%s is not an integer", key);
    ck_assert_int_eq(json_object_get_int64(v), want);
}

/* Every field of a full record comes out under its schema name with its
 * value and JSON type, the nested worker and source objects included. */
START_TEST(test_full_record_fields)
{
    zw_result_t r = full_result();
    json_object *o = to_json(&r, NULL), *ids, *worker, *source;

    assert_str(o, "schema", "zendesk-worker/result/v1");
    assert_str(o, "event_id", r.event_id);
    assert_str(o, "tenant", "acme");
    assert_str(o, "type", "user.upsert");
    assert_str(o, "status", "succeeded");
    assert_str(o, "outcome", "created");
    assert_int(o, "zendesk_user_id", 361234567890);
    assert_int(o, "attempts", 2);
    ck_assert(json_object_is_type(member(o, "dry_run"), json_type_boolean));
    ck_assert(!json_object_get_boolean(member(o, "dry_run")));
    assert_null(o, "error");
    ids = member(o, "zendesk_request_ids");
    ck_assert(json_object_is_type(ids, json_type_array));
    ck_assert_uint_eq(json_object_array_length(ids), 2);
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(ids, 0)), "req-1");
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(ids, 1)), "req-2");
    assert_str(o, "started_at", r.started_at);
    assert_str(o, "finished_at", r.finished_at);
    assert_int(o, "duration_ms", 1333);
    worker = member(o, "worker");
    ck_assert_uint_eq(json_object_object_length(worker), 2);
    assert_str(worker, "id", r.worker_id);
    assert_str(worker, "version", "0.1.0");
    source = member(o, "source");
    ck_assert_uint_eq(json_object_object_length(source), 3);
    assert_str(source, "topic", "zendesk.provisioning");
    assert_int(source, "partition", 7);
    assert_int(source, "offset", 9007199254740993LL);
    /* Not a snapshot: neither snapshot_id nor count. */
    ck_assert(!json_object_object_get_ex(o, "snapshot_id", NULL));
    ck_assert(!json_object_object_get_ex(o, "count", NULL));
    ck_assert_uint_eq(json_object_object_length(o), 16);
    json_object_put(o);
}
END_TEST

/* The top-level keys come out in the schema's order, so records read the
 * same whoever ended the event. */
START_TEST(test_key_order_follows_schema)
{
    static const char *const order[] = {
        "schema",      "event_id",    "tenant",       "type",    "status",
        "outcome",     "zendesk_user_id", "attempts", "dry_run", "error",
        "zendesk_request_ids", "started_at", "finished_at", "duration_ms", "worker",
        "source",      "snapshot_id", "count",        NULL};
    zw_result_t r = full_result();
    json_object *o;
    size_t i = 0;

    r.snapshot_id = "snap-1";
    r.count = 3;
    o = to_json(&r, NULL);
    json_object_object_foreach(o, key, val) {
        (void)val;
        ck_assert_msg(order[i] != NULL, "extra key %s", key);
        ck_assert_msg(strcmp(key, order[i]) == 0, "key %zu is %s, want %s", i, key, order[i]);
        i++;
    }
    ck_assert_ptr_null(order[i]);
    json_object_put(o);
}
END_TEST

/* Optional values the schema lets be null: no tenant or type (an event too
 * broken to name them), no user id (0 or negative), no request ids (an
 * empty array, never null). */
START_TEST(test_missing_values_become_null)
{
    zw_result_t r = full_result();
    json_object *o;

    r.tenant = NULL;
    r.type = NULL;
    r.user_id = 0;
    r.request_ids = NULL;
    r.n_request_ids = 0;
    o = to_json(&r, NULL);
    assert_null(o, "tenant");
    assert_null(o, "type");
    assert_null(o, "zendesk_user_id");
    ck_assert(json_object_is_type(member(o, "zendesk_request_ids"), json_type_array));
    ck_assert_uint_eq(json_object_array_length(member(o, "zendesk_request_ids")), 0);
    json_object_put(o);

    r.user_id = -5;
    o = to_json(&r, NULL);
    assert_null(o, "zendesk_user_id");
    json_object_put(o);
}
END_TEST

/* A failure's error object: class, HTTP status, code and message; no
 * status (<= 0) and no code (NULL or "") become null; no message becomes
 * "" (the schema requires one). */
START_TEST(test_error_object)
{
    zw_result_t r = full_result();
    json_object *o, *err;

    r.status = "failed";
    r.outcome = "failed";
    r.err_class = "permanent";
    r.err_http = 422;
    r.err_code = "RecordInvalid";
    r.err_msg = "Email: is already being used by another user";
    o = to_json(&r, NULL);
    assert_str(o, "status", "failed");
    err = member(o, "error");
    ck_assert(json_object_is_type(err, json_type_object));
    ck_assert_uint_eq(json_object_object_length(err), 4);
    assert_str(err, "class", "permanent");
    assert_int(err, "http_status", 422);
    assert_str(err, "code", "RecordInvalid");
    assert_str(err, "message", r.err_msg);
    json_object_put(o);

    for (int variant = 0; variant < 3; variant++) {
        r.err_class = "invalid_event";
        r.err_http = variant == 0 ? 0 : -1;
        r.err_code = variant == 1 ? "" : NULL;
        r.err_msg = variant == 2 ? NULL : "missing field: email";
        o = to_json(&r, NULL);
        err = member(o, "error");
        assert_str(err, "class", "invalid_event");
        assert_null(err, "http_status");
        assert_null(err, "code");
        assert_str(err, "message", variant == 2 ? "" : "missing field: email");
        json_object_put(o);
    }
}
END_TEST

/* Without an error class the error is null, even when stale HTTP details
 * are left in the struct. */
START_TEST(test_no_error_without_class)
{
    zw_result_t r = full_result();
    json_object *o;

    r.err_class = NULL;
    r.err_http = 500;
    r.err_code = "InternalError";
    r.err_msg = "boom";
    o = to_json(&r, NULL);
    assert_null(o, "error");
    json_object_put(o);
}
END_TEST

/* A snapshot's result carries snapshot_id and count (a count of 0 too);
 * a dry run says so. */
START_TEST(test_snapshot_and_dry_run)
{
    zw_result_t r = full_result();
    json_object *o;

    r.snapshot_id = "5f0c6a1e-aaaa-4bbb-8ccc-123456789abc";
    r.count = 0;
    r.dry_run = true;
    r.status = "dry_run";
    o = to_json(&r, NULL);
    assert_str(o, "snapshot_id", r.snapshot_id);
    assert_int(o, "count", 0);
    ck_assert(json_object_get_boolean(member(o, "dry_run")));
    assert_str(o, "status", "dry_run");
    ck_assert_uint_eq(json_object_object_length(o), 18);
    json_object_put(o);

    r.count = 123456;
    o = to_json(&r, NULL);
    assert_int(o, "count", 123456);
    json_object_put(o);
}
END_TEST

/* The record is exactly one line (the results topic carries one per
 * message), slashes are not escaped, and quotes, backslashes, control
 * characters and UTF-8 in a message survive the round trip. */
START_TEST(test_one_line_and_escaping)
{
    zw_result_t r = full_result();
    const char *msg = "line 1\nline \"2\"\t\\ path/to/x \xc3\xa9\x01";
    char *text;
    json_object *o;

    r.err_class = "transient_exhausted";
    r.err_msg = msg;
    r.topic = "team/provisioning";
    o = to_json(&r, &text);
    ck_assert_ptr_null(strchr(text, '\n'));
    ck_assert_ptr_nonnull(strstr(text, "\"team/provisioning\""));
    ck_assert_ptr_null(strstr(text, "\\/"));
    assert_str(member(o, "error"), "message", msg);
    assert_str(member(o, "source"), "topic", "team/provisioning");
    json_object_put(o);
    free(text);
}
END_TEST

/* Nothing is kept between calls: the same input gives the same text, and a
 * second record is not affected by the first. */
START_TEST(test_stateless)
{
    zw_result_t a = full_result(), b = full_result();
    char *t1, *t2, *t3;

    b.snapshot_id = "snap";
    b.count = 9;
    t1 = zw_result_json(&a);
    t2 = zw_result_json(&b);
    t3 = zw_result_json(&a);
    ck_assert_ptr_nonnull(t1);
    ck_assert_ptr_nonnull(t2);
    ck_assert_ptr_nonnull(t3);
    ck_assert_str_eq(t1, t3);
    ck_assert_str_ne(t1, t2);
    free(t1);
    free(t2);
    free(t3);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("result");
    TCase *tc = tcase_create("result");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_full_record_fields);
    tcase_add_test(tc, test_key_order_follows_schema);
    tcase_add_test(tc, test_missing_values_become_null);
    tcase_add_test(tc, test_error_object);
    tcase_add_test(tc, test_no_error_without_class);
    tcase_add_test(tc, test_snapshot_and_dry_run);
    tcase_add_test(tc, test_one_line_and_escaping);
    tcase_add_test(tc, test_stateless);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

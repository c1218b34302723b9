/* Snapshots: the pure parts of a walk. The next page's path (full walks
 * with role filters and cursors, incremental exports from a cursor or a
 * start time held back from the newest minute, paths that do not fit),
 * what a page says (users, whether more follow and from which cursor, and
 * the answers that are not user lists), the role filter, the record a user
 * becomes, the record header, the end marker and its checksum, and the
 * "start_time:N" cursor. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "zw/snapshot.h"

/* ---- page paths ---- */

static const struct {
    const char *name;
    zw_sync_request_t req;
    const char *cursor;
    int64_t now;
    const char *want;
} paths[] = {
    {"full, first page", {.incremental = false}, NULL, 1700000000,
     "/api/v2/users?page[size]=100"},
    {"full, role filter", {.has_roles = true, .role_end_user = true, .role_admin = true}, NULL,
     1700000000, "/api/v2/users?page[size]=100&role[]=end-user&role[]=admin"},
    {"full, every role", {.has_roles = true, .role_end_user = true, .role_agent = true,
                          .role_admin = true}, NULL, 0,
     "/api/v2/users?page[size]=100&role[]=end-user&role[]=agent&role[]=admin"},
    {"full, role flags without a filter are ignored", {.role_agent = true}, NULL, 0,
     "/api/v2/users?page[size]=100"},
    {"full, next page: the cursor is escaped", {.has_roles = true, .role_agent = true},
     "eyJv/+= &x", 0, "/api/v2/users?page[size]=100&role[]=agent&page[after]=eyJv%2F%2B%3D%20%26x"},
    {"incremental, from a cursor (the start time is not used)",
     {.incremental = true, .has_start_time = true, .start_time = 5}, "MTU3/NjE=", 1700000000,
     "/api/v2/incremental/users/cursor?cursor=MTU3%2FNjE%3D&per_page=1000"},
    {"incremental, from an old start time",
     {.incremental = true, .has_start_time = true, .start_time = 1600000000}, NULL, 1700000000,
     "/api/v2/incremental/users/cursor?start_time=1600000000&per_page=1000"},
    {"incremental, a start time in the withheld minute starts earlier",
     {.incremental = true, .has_start_time = true, .start_time = 1699999990}, NULL, 1700000000,
     "/api/v2/incremental/users/cursor?start_time=1699999939&per_page=1000"},
    {"incremental, a start time in the future starts a minute back",
     {.incremental = true, .has_start_time = true, .start_time = 1800000000}, NULL, 1700000000,
     "/api/v2/incremental/users/cursor?start_time=1699999939&per_page=1000"},
    {"incremental, one second before the bound is kept",
     {.incremental = true, .has_start_time = true, .start_time = 1699999938}, NULL, 1700000000,
     "/api/v2/incremental/users/cursor?start_time=1699999938&per_page=1000"},
    {"incremental, no start time: from the beginning", {.incremental = true}, NULL, 1700000000,
     "/api/v2/incremental/users/cursor?start_time=0&per_page=1000"},
};

/* Each request shape gives exactly its path. */
START_TEST(test_page_path)
{
    char path[512];

    memset(path, 'x', sizeof(path));
    ck_assert_msg(zw_snapshot_page_path(&paths[_i].req, paths[_i].cursor, paths[_i].now, path,
                                        sizeof(path)) == 0,
                  "%s: failed", paths[_i].name);
    ck_assert_msg(strcmp(path, paths[_i].want) == 0, "%s: got %s", paths[_i].name, path);
}
END_TEST

/* A path that does not fit is refused, never cut: exactly its length plus
 * the terminator fits, one byte less does not (nor does no room at all). */
START_TEST(test_page_path_does_not_fit)
{
    zw_sync_request_t full = {.has_roles = true, .role_agent = true};
    zw_sync_request_t inc = {.incremental = true};
    char path[256];
    size_t n;

    ck_assert_int_eq(zw_snapshot_page_path(&full, "abc", 0, path, sizeof(path)), 0);
    n = strlen(path);
    ck_assert_int_eq(zw_snapshot_page_path(&full, "abc", 0, path, n + 1), 0);
    ck_assert_uint_eq(strlen(path), n);
    ck_assert_int_eq(zw_snapshot_page_path(&full, "abc", 0, path, n), -1);
    ck_assert_int_eq(zw_snapshot_page_path(&full, "abc", 0, path, 0), -1);

    ck_assert_int_eq(zw_snapshot_page_path(&inc, NULL, 1700000000, path, sizeof(path)), 0);
    n = strlen(path);
    ck_assert_int_eq(zw_snapshot_page_path(&inc, NULL, 1700000000, path, n + 1), 0);
    ck_assert_int_eq(zw_snapshot_page_path(&inc, NULL, 1700000000, path, n), -1);
}
END_TEST

/* A cursor as long as Zendesk may hand out, every byte of it needing an
 * escape, still comes out whole when there is room. */
START_TEST(test_page_path_long_cursor)
{
    char cursor[2001], path[8192], *p;

    memset(cursor, '/', 2000);
    cursor[2000] = '\0';
    ck_assert_int_eq(zw_snapshot_page_path(&(zw_sync_request_t){.incremental = true}, cursor, 0,
                                           path, sizeof(path)),
                     0);
    p = strstr(path, "cursor=");
    ck_assert_ptr_nonnull(p);
    p += strlen("cursor=");
    for (int i = 0; i < 2000; i++, p += 3)
        ck_assert_msg(strncmp(p, "%2F", 3) == 0, "byte %d", i);
    ck_assert_str_eq(p, "&per_page=1000");
    ck_assert_int_eq(zw_snapshot_page_path(&(zw_sync_request_t){.incremental = true}, cursor, 0,
                                           path, 6000),
                     -1);
}
END_TEST

/* ---- pages ---- */

static const struct {
    const char *name;
    const char *json;
    bool incremental;
    int rc;
    int n_users;
    const char *after; /* NULL: none */
    bool more;
} pages[] = {
    {"full: more follow from after_cursor",
     "{\"users\":[{\"id\":1},{\"id\":2}],\"meta\":{\"has_more\":true,\"after_cursor\":\"xyz\","
     "\"before_cursor\":\"abc\"},\"links\":{}}",
     false, 0, 2, "xyz", true},
    {"full: the last page keeps its cursor but says no more",
     "{\"users\":[{\"id\":1}],\"meta\":{\"has_more\":false,\"after_cursor\":\"xyz\"}}", false, 0,
     1, "xyz", false},
    /* More pages and no way to them: refused (InvalidResponse, retried),
     * never a walk that ends early and calls itself complete. */
    {"full: has_more without a cursor is refused",
     "{\"users\":[],\"meta\":{\"has_more\":true,\"after_cursor\":null}}", false, -1, 0, NULL,
     false},
    {"full: an empty cursor is no cursor (refused with has_more)",
     "{\"users\":[],\"meta\":{\"has_more\":true,\"after_cursor\":\"\"}}", false, -1, 0, NULL, false},
    {"full: a cursor that is not a string is no cursor (refused with has_more)",
     "{\"users\":[],\"meta\":{\"has_more\":true,\"after_cursor\":42}}", false, -1, 0, NULL, false},
    {"full: an empty cursor on the last page is fine",
     "{\"users\":[],\"meta\":{\"has_more\":false,\"after_cursor\":\"\"}}", false, 0, 0, NULL, false},
    {"full: no meta at all: one page", "{\"users\":[{\"id\":1}]}", false, 0, 1, NULL, false},
    {"full: meta that is not an object: one page",
     "{\"users\":[{\"id\":1}],\"meta\":\"has_more\"}", false, 0, 1, NULL, false},
    {"full: the export's fields mean nothing here",
     "{\"users\":[],\"after_cursor\":\"c\",\"end_of_stream\":false}", false, 0, 0, NULL, false},
    {"incremental: more follow until end_of_stream",
     "{\"users\":[{\"id\":1},{\"id\":2},{\"id\":3}],\"after_cursor\":\"MTU3\",\"before_cursor\":"
     "\"MTU2\",\"end_of_stream\":false,\"after_url\":\"https://x/y\"}",
     true, 0, 3, "MTU3", true},
    {"incremental: end_of_stream stops, the cursor is kept to resume from",
     "{\"users\":[{\"id\":1}],\"after_cursor\":\"MTU4\",\"end_of_stream\":true}", true, 0, 1,
     "MTU4", false},
    {"incremental: end_of_stream absent means more when there is a cursor",
     "{\"users\":[],\"after_cursor\":\"MTU5\"}", true, 0, 0, "MTU5", true},
    {"incremental: not at the end and no cursor is refused",
     "{\"users\":[],\"after_cursor\":null,\"end_of_stream\":false}", true, -1, 0, NULL, false},
    {"incremental: the full walk's meta means nothing here (no end, no cursor: refused)",
     "{\"users\":[],\"meta\":{\"has_more\":true,\"after_cursor\":\"c\"}}", true, -1, 0, NULL, false},
    {"incremental: the end without a cursor is fine",
     "{\"users\":[{\"id\":1}],\"after_cursor\":null,\"end_of_stream\":true}", true, 0, 1, NULL,
     false},
    {"no users member", "{\"meta\":{\"has_more\":false}}", false, -1, 0, NULL, false},
    {"no users member (incremental)", "{\"after_cursor\":\"c\"}", true, -1, 0, NULL, false},
    {"users is an object", "{\"users\":{\"id\":1}}", false, -1, 0, NULL, false},
    {"users is null", "{\"users\":null}", true, -1, 0, NULL, false},
    {"users is a string", "{\"users\":\"[]\"}", false, -1, 0, NULL, false},
    {"a single user, not a list", "{\"user\":{\"id\":1}}", false, -1, 0, NULL, false},
    {"the root is an array", "[{\"id\":1}]", false, -1, 0, NULL, false},
    {"the root is an error", "{\"error\":\"RecordNotFound\",\"description\":\"Not found\"}", true,
     -1, 0, NULL, false},
};

/* Each page gives its users (the very array of the answer), its cursor and
 * whether to go on; what is not a user list is refused and leaves out
 * zeroed. */
START_TEST(test_page_parse)
{
    json_object *root = json_tokener_parse(pages[_i].json);
    zw_snapshot_page_t page;
    int rc;

    ck_assert_msg(root != NULL, "%s: bad test JSON", pages[_i].name);
    memset(&page, 0xa5, sizeof(page));
    rc = zw_snapshot_page_parse(root, pages[_i].incremental, &page);
    ck_assert_msg(rc == pages[_i].rc, "%s: rc %d", pages[_i].name, rc);
    if (rc == 0) {
        json_object *users = NULL;

        json_object_object_get_ex(root, "users", &users);
        ck_assert_msg(page.users == users, "%s: users not lent from the answer", pages[_i].name);
        ck_assert_int_eq((int)json_object_array_length(page.users), pages[_i].n_users);
    } else {
        ck_assert_msg(page.users == NULL, "%s: users set on failure", pages[_i].name);
    }
    if (pages[_i].after)
        ck_assert_msg(page.after && strcmp(page.after, pages[_i].after) == 0, "%s: after %s",
                      pages[_i].name, page.after ? page.after : "(null)");
    else
        ck_assert_msg(page.after == NULL, "%s: after %s", pages[_i].name, page.after);
    ck_assert_msg(page.more == pages[_i].more, "%s: more %d", pages[_i].name, page.more);
    json_object_put(root);
}
END_TEST

/* No answer at all (a body that did not parse) is not a user list. */
START_TEST(test_page_parse_null)
{
    zw_snapshot_page_t page;

    ck_assert_int_eq(zw_snapshot_page_parse(NULL, false, &page), -1);
    ck_assert_ptr_null(page.users);
    ck_assert_int_eq(zw_snapshot_page_parse(NULL, true, &page), -1);
    ck_assert(!page.more);
}
END_TEST

/* ---- users and records ---- */

/* Without a filter every role is wanted, even none; with one, exactly the
 * roles it names, compared exactly. */
START_TEST(test_role_filter)
{
    zw_sync_request_t all = {0};
    zw_sync_request_t agents = {.has_roles = true, .role_agent = true};
    zw_sync_request_t staff = {.has_roles = true, .role_agent = true, .role_admin = true};
    zw_sync_request_t none = {.has_roles = true};

    ck_assert(zw_snapshot_role_wanted(&all, "end-user"));
    ck_assert(zw_snapshot_role_wanted(&all, "anything"));
    ck_assert(zw_snapshot_role_wanted(&all, NULL));
    ck_assert(zw_snapshot_role_wanted(&agents, "agent"));
    ck_assert(!zw_snapshot_role_wanted(&agents, "admin"));
    ck_assert(!zw_snapshot_role_wanted(&agents, "end-user"));
    ck_assert(!zw_snapshot_role_wanted(&agents, "Agent"));
    ck_assert(!zw_snapshot_role_wanted(&agents, "agents"));
    ck_assert(!zw_snapshot_role_wanted(&agents, NULL));
    ck_assert(zw_snapshot_role_wanted(&staff, "admin"));
    ck_assert(zw_snapshot_role_wanted(&staff, "agent"));
    ck_assert(!zw_snapshot_role_wanted(&staff, "end-user"));
    ck_assert(!zw_snapshot_role_wanted(&none, "end-user"));
    ck_assert(!zw_snapshot_role_wanted(&none, "admin"));
}
END_TEST

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;

    ck_assert_msg(json_object_object_get_ex(o, key, &v), "missing %s", key);
    return v;
}

/* A full user keeps exactly the snapshot's attributes with their values
 * (nested ones deep-equal), and drops everything else. */
START_TEST(test_user_keeps_listed_attributes)
{
    json_object *u = json_tokener_parse(
        "{\"id\":361234567890,\"url\":\"https://acme.zendesk.com/api/v2/users/1.json\","
        "\"external_id\":\"emp-7\",\"email\":\"a@example.com\",\"name\":\"Ada\","
        "\"role\":\"agent\",\"custom_role_id\":12,\"suspended\":true,\"active\":false,"
        "\"organization_id\":null,\"default_group_id\":5,\"tags\":[\"x\",\"y\"],"
        "\"user_fields\":{\"dept\":\"eng\"},\"created_at\":\"2020-01-01T00:00:00Z\","
        "\"updated_at\":\"2021-01-01T00:00:00Z\",\"last_login_at\":null,"
        "\"photo\":{\"id\":1},\"phone\":\"+1 555\",\"time_zone\":\"UTC\",\"verified\":true}");
    json_object *out, *want;

    ck_assert_ptr_nonnull(u);
    out = zw_snapshot_user(u);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(json_object_object_length(out), 15);
    ck_assert_int_eq(json_object_get_int64(get(out, "id")), 361234567890);
    ck_assert_str_eq(json_object_get_string(get(out, "external_id")), "emp-7");
    ck_assert_str_eq(json_object_get_string(get(out, "role")), "agent");
    ck_assert(json_object_get_boolean(get(out, "suspended")));  /* not the default */
    ck_assert(!json_object_get_boolean(get(out, "active")));    /* not the default */
    ck_assert_ptr_null(get(out, "organization_id"));
    ck_assert_ptr_null(get(out, "last_login_at"));
    want = json_tokener_parse("{\"dept\":\"eng\"}");
    ck_assert(json_object_equal(get(out, "user_fields"), want));
    json_object_put(want);
    ck_assert_uint_eq(json_object_array_length(get(out, "tags")), 2);
    ck_assert(!json_object_object_get_ex(out, "url", NULL));
    ck_assert(!json_object_object_get_ex(out, "photo", NULL));
    ck_assert(!json_object_object_get_ex(out, "phone", NULL));
    ck_assert(!json_object_object_get_ex(out, "verified", NULL));
    /* The record owns its values: the user can go first. */
    json_object_put(u);
    ck_assert_str_eq(json_object_get_string(get(out, "email")), "a@example.com");
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(get(out, "tags"), 1)), "y");
    json_object_put(out);
}
END_TEST

/* A sparse user gets the required attributes anyway: external_id and
 * email null, name "", role end-user, suspended false, active true. */
START_TEST(test_user_required_defaults)
{
    json_object *u = json_tokener_parse("{\"id\":7}");
    json_object *out = zw_snapshot_user(u);

    ck_assert_uint_eq(json_object_object_length(out), 7);
    ck_assert_int_eq(json_object_get_int64(get(out, "id")), 7);
    ck_assert_ptr_null(get(out, "external_id"));
    ck_assert_ptr_null(get(out, "email"));
    ck_assert_str_eq(json_object_get_string(get(out, "name")), "");
    ck_assert_str_eq(json_object_get_string(get(out, "role")), "end-user");
    ck_assert(json_object_is_type(get(out, "suspended"), json_type_boolean));
    ck_assert(!json_object_get_boolean(get(out, "suspended")));
    ck_assert(json_object_is_type(get(out, "active"), json_type_boolean));
    ck_assert(json_object_get_boolean(get(out, "active")));
    json_object_put(out);
    json_object_put(u);
}
END_TEST

/* An attribute present as null is kept as null, not replaced by its
 * default. */
START_TEST(test_user_explicit_null_kept)
{
    json_object *u = json_tokener_parse("{\"id\":8,\"name\":null,\"role\":null,\"email\":null}");
    json_object *out = zw_snapshot_user(u);

    ck_assert_ptr_null(get(out, "name"));
    ck_assert_ptr_null(get(out, "role"));
    ck_assert_ptr_null(get(out, "email"));
    json_object_put(out);
    json_object_put(u);
}
END_TEST

/* The common part of every record: exactly schema, snapshot_id,
 * request_id, tenant, kind and seq. */
START_TEST(test_record_header)
{
    json_object *r = zw_snapshot_record("snap-1", "req-9", "acme", "user", 41);

    ck_assert_uint_eq(json_object_object_length(r), 6);
    ck_assert_str_eq(json_object_get_string(get(r, "schema")), "zendesk-worker/user-snapshot/v1");
    ck_assert_str_eq(json_object_get_string(get(r, "snapshot_id")), "snap-1");
    ck_assert_str_eq(json_object_get_string(get(r, "request_id")), "req-9");
    ck_assert_str_eq(json_object_get_string(get(r, "tenant")), "acme");
    ck_assert_str_eq(json_object_get_string(get(r, "kind")), "user");
    ck_assert(json_object_is_type(get(r, "seq"), json_type_int));
    ck_assert_int_eq(json_object_get_int64(get(r, "seq")), 41);
    json_object_put(r);
}
END_TEST

/* ---- end marker and checksum ---- */

/* The end marker: complete or failed, the count, the checksum as 16
 * zero-padded lowercase hex digits, and the cursor to resume from or
 * null. */
START_TEST(test_end_marker)
{
    json_object *end = zw_snapshot_end(true, 1234, 0xabcULL, "start_time:1700000000");

    ck_assert_uint_eq(json_object_object_length(end), 4);
    ck_assert_str_eq(json_object_get_string(get(end, "status")), "complete");
    ck_assert_int_eq(json_object_get_int64(get(end, "count")), 1234);
    ck_assert_str_eq(json_object_get_string(get(end, "checksum")),
                     "fnv1a64-sum:0000000000000abc");
    ck_assert_str_eq(json_object_get_string(get(end, "next_cursor")), "start_time:1700000000");
    json_object_put(end);

    end = zw_snapshot_end(false, 0, UINT64_MAX, NULL);
    ck_assert_str_eq(json_object_get_string(get(end, "status")), "failed");
    ck_assert_int_eq(json_object_get_int64(get(end, "count")), 0);
    ck_assert_str_eq(json_object_get_string(get(end, "checksum")),
                     "fnv1a64-sum:ffffffffffffffff");
    ck_assert_ptr_null(get(end, "next_cursor"));
    json_object_put(end);
}
END_TEST

/* FNV-1a 64 against the published test vectors, and a sum over users that
 * does not depend on their order. */
START_TEST(test_fnv1a64)
{
    static const char *const users[] = {"{\"id\":1}", "{\"id\":2}", "{\"id\":3}"};
    uint64_t fwd = 0, rev = 0;

    ck_assert_uint_eq(zw_snapshot_fnv1a64(""), 0xcbf29ce484222325ULL);
    ck_assert_uint_eq(zw_snapshot_fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
    ck_assert_uint_eq(zw_snapshot_fnv1a64("foobar"), 0x85944171f73967e8ULL);
    /* High bytes are taken unsigned. */
    ck_assert_uint_ne(zw_snapshot_fnv1a64("\xff"), zw_snapshot_fnv1a64("\x7f"));
    ck_assert_uint_eq(zw_snapshot_fnv1a64("\xff"), (0xcbf29ce484222325ULL ^ 0xff) *
                                                       1099511628211ULL);
    for (int i = 0; i < 3; i++) {
        fwd += zw_snapshot_fnv1a64(users[i]);
        rev += zw_snapshot_fnv1a64(users[2 - i]);
    }
    ck_assert_uint_eq(fwd, rev);
    ck_assert_uint_ne(zw_snapshot_fnv1a64(users[0]), zw_snapshot_fnv1a64(users[1]));
}
END_TEST

/* The cursor a full snapshot hands out is recognised and read; Zendesk's
 * own cursors (and near misses of the prefix) are not. */
START_TEST(test_cursor_start_time)
{
    int64_t st = -1;

    ck_assert_int_eq(zw_snapshot_cursor_start_time("start_time:1700000000", &st), 1);
    ck_assert_int_eq(st, 1700000000);
    ck_assert_int_eq(zw_snapshot_cursor_start_time("start_time:0", &st), 1);
    ck_assert_int_eq(st, 0);

    st = 99;
    ck_assert_int_eq(zw_snapshot_cursor_start_time(NULL, &st), 0);
    ck_assert_int_eq(zw_snapshot_cursor_start_time("MTU3NjE=", &st), 0);
    ck_assert_int_eq(zw_snapshot_cursor_start_time("start_time=5", &st), 0);
    ck_assert_int_eq(zw_snapshot_cursor_start_time("start_time", &st), 0);
    ck_assert_int_eq(zw_snapshot_cursor_start_time("START_TIME:5", &st), 0);
    ck_assert_int_eq(zw_snapshot_cursor_start_time(" start_time:5", &st), 0);
    ck_assert_int_eq(st, 99); /* untouched when not one */
}
END_TEST

/* A cursor with the "start_time:" prefix but no number after it was
 * accepted as start time 0 (strtoll's result for no digits), so a resume
 * from a mangled cursor silently became an export of every user since
 * 1970. A start_time cursor needs digits and nothing after them. */
START_TEST(test_cursor_start_time_rejects_garbage)
{
    int64_t st = -1;

    ck_assert_int_eq(zw_snapshot_cursor_start_time("start_time:", &st), 0);
    ck_assert_int_eq(zw_snapshot_cursor_start_time("start_time:abc", &st), 0);
    ck_assert_int_eq(zw_snapshot_cursor_start_time("start_time:12abc", &st), 0);
    ck_assert_int_eq(zw_snapshot_cursor_start_time("start_time:-5", &st), 0);
    ck_assert_int_eq(zw_snapshot_cursor_start_time("start_time:99999999999999999999", &st), 0);
    ck_assert_int_eq(st, -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("snapshot");
    TCase *tc = tcase_create("snapshot");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_page_path, 0, (int)(sizeof(paths) / sizeof(paths[0])));
    tcase_add_test(tc, test_page_path_does_not_fit);
    tcase_add_test(tc, test_page_path_long_cursor);
    tcase_add_loop_test(tc, test_page_parse, 0, (int)(sizeof(pages) / sizeof(pages[0])));
    tcase_add_test(tc, test_page_parse_null);
    tcase_add_test(tc, test_role_filter);
    tcase_add_test(tc, test_user_keeps_listed_attributes);
    tcase_add_test(tc, test_user_required_defaults);
    tcase_add_test(tc, test_user_explicit_null_kept);
    tcase_add_test(tc, test_record_header);
    tcase_add_test(tc, test_end_marker);
    tcase_add_test(tc, test_fnv1a64);
    tcase_add_test(tc, test_cursor_start_time);
    tcase_add_test(tc, test_cursor_start_time_rejects_garbage);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

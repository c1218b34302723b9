/* Unit tests for users.c: the paths of lookups and membership listings are
 * sized to what they carry (never cut), a memberships listing is read page
 * by page and refused when it is not one, and the membership changes make a
 * user's groups exactly what the event names. */
#include <check.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "zw/users.h"

#define SHOW_MANY "/api/v2/users/show_many?external_ids="

static json_object *parse(const char *s)
{
    json_object *o = json_tokener_parse(s);

    ck_assert_msg(o != NULL, "bad test JSON: %s", s);
    return o;
}

/* A long external id is escaped whole: show_many for a plain one, the users
 * search for one with a comma (show_many splits on commas). */
START_TEST(test_lookup_path_never_cut)
{
    char id[1601];
    char *path;

    memset(id, 'a', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    id[700] = '/';
    path = zw_users_lookup_path(id);
    ck_assert_ptr_nonnull(path);
    ck_assert_int_eq(strncmp(path, SHOW_MANY, strlen(SHOW_MANY)), 0);
    ck_assert_uint_eq(strlen(path), strlen(SHOW_MANY) + 1600 + 2); /* '/' is %2F */
    ck_assert_ptr_nonnull(strstr(path, "aaaa%2Faaaa"));
    ck_assert_int_eq(path[strlen(path) - 1], 'a');
    free(path);

    path = zw_users_lookup_path("AB,12");
    ck_assert_ptr_nonnull(path);
    ck_assert_str_eq(path, "/api/v2/users/search?external_id=AB%2C12");
    free(path);
}
END_TEST

/* Memberships are listed by cursor, 100 a page; the cursor is escaped and
 * carried whole however long. */
START_TEST(test_memberships_path)
{
    char cursor[2001], *path;

    path = zw_users_memberships_path(42, NULL);
    ck_assert_str_eq(path, "/api/v2/users/42/group_memberships?page[size]=100");
    free(path);
    path = zw_users_memberships_path(42, "eyJv/+=");
    ck_assert_str_eq(path, "/api/v2/users/42/group_memberships?page[size]=100&page[after]=eyJv%2F%2B%3D");
    free(path);
    memset(cursor, 'c', sizeof(cursor) - 1);
    cursor[sizeof(cursor) - 1] = '\0';
    path = zw_users_memberships_path(7, cursor);
    ck_assert_ptr_nonnull(path);
    ck_assert_uint_eq(strlen(path), strlen("/api/v2/users/7/group_memberships?page[size]=100&page[after]=") + 2000);
    free(path);
}
END_TEST

/* Pages accumulate into one listing; the last page has no cursor to go on
 * from; a page that says more follow but gives no cursor, or that is not a
 * listing at all, is refused. */
START_TEST(test_memberships_pages)
{
    json_object *acc = NULL, *p1, *p2, *list;
    const char *after = "unset";

    p1 = parse("{\"group_memberships\":[{\"id\":1,\"group_id\":10},{\"id\":2,\"group_id\":11}],"
               "\"meta\":{\"has_more\":true,\"after_cursor\":\"c1\"},\"links\":{}}");
    ck_assert_int_eq(zw_users_memberships_page(p1, &acc, &after), 0);
    ck_assert_str_eq(after, "c1");
    p2 = parse("{\"group_memberships\":[{\"id\":3,\"group_id\":12}],"
               "\"meta\":{\"has_more\":false,\"after_cursor\":\"c2\"}}");
    ck_assert_int_eq(zw_users_memberships_page(p2, &acc, &after), 0);
    ck_assert_ptr_null(after);
    json_object_put(p1);
    json_object_put(p2); /* acc holds its own references */
    ck_assert(json_object_object_get_ex(acc, "group_memberships", &list));
    ck_assert_int_eq((int)json_object_array_length(list), 3);
    ck_assert_int_eq(json_object_get_int(json_object_object_get(json_object_array_get_idx(list, 2),
                                                                "group_id")),
                     12);
    json_object_put(acc);

    /* An offset-style answer without meta is one page. */
    acc = NULL;
    p1 = parse("{\"group_memberships\":[],\"next_page\":null,\"count\":0}");
    ck_assert_int_eq(zw_users_memberships_page(p1, &acc, &after), 0);
    ck_assert_ptr_null(after);
    json_object_put(p1);
    json_object_put(acc);

    static const char *const bad[] = {
        "{\"group_memberships\":[],\"meta\":{\"has_more\":true,\"after_cursor\":null}}",
        "{\"group_memberships\":[],\"meta\":{\"has_more\":true,\"after_cursor\":\"\"}}",
        "{\"group_memberships\":{}}",
        "{\"users\":[]}",
        "{\"error\":\"RecordNotFound\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        acc = NULL;
        p1 = parse(bad[i]);
        ck_assert_msg(zw_users_memberships_page(p1, &acc, &after) == -1, "accepted %s", bad[i]);
        json_object_put(p1);
        json_object_put(acc);
    }
    acc = NULL;
    ck_assert_int_eq(zw_users_memberships_page(NULL, &acc, &after), -1);
}
END_TEST

/* Adds first (the groups missing), then removals (memberships of groups not
 * wanted); nothing when the groups are already exactly those wanted. */
START_TEST(test_group_ops)
{
    json_object *listed = parse("{\"group_memberships\":[{\"id\":1,\"group_id\":10},"
                                "{\"id\":2,\"group_id\":11},{\"id\":3,\"group_id\":12}]}");
    int64_t want[] = {11, 20, 12}, same[] = {12, 10, 11}, *ops;
    size_t n;

    ck_assert_int_eq(zw_users_group_ops(listed, want, 3, &ops, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ops[0], 20);
    ck_assert_int_eq(ops[1], -1);
    free(ops);
    ck_assert_int_eq(zw_users_group_ops(listed, same, 3, &ops, &n), 0);
    ck_assert_uint_eq(n, 0);
    free(ops);
    ck_assert_int_eq(zw_users_group_ops(NULL, want, 2, &ops, &n), 0);
    ck_assert_uint_eq(n, 2);
    free(ops);
    json_object_put(listed);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("users");
    TCase *tc = tcase_create("users");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_lookup_path_never_cut);
    tcase_add_test(tc, test_memberships_path);
    tcase_add_test(tc, test_memberships_pages);
    tcase_add_test(tc, test_group_ops);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

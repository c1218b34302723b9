/* Map: put/get/replace/remove, removal in the middle of a probe chain,
 * churn that must reuse tombstones rather than grow forever, 100k keys
 * through several grows, and each() visiting every entry exactly once. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zw/map.h"

/* For assertions inside big loops: Check's ck_assert_* records a mark point
 * per call (a pipe write when forking), which makes 100k-iteration loops slow. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);                                  \
    } while (0)

/* Distinct non-NULL values to store: the map never dereferences them. */
static char values[8];

START_TEST(test_put_get_replace_remove)
{
    zw_map_t *m = zw_map_new();
    static const struct {
        const char *key;
        void *value;
    } cases[] = {
        {"acme", &values[0]},
        {"globex", &values[1]},
        {"", &values[2]}, /* the empty string is a key like any other */
        {"initech/42", &values[3]},
    };
    const size_t n = sizeof(cases) / sizeof(cases[0]);

    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(zw_map_size(m), 0);
    ck_assert_ptr_null(zw_map_get(m, "acme"));
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(zw_map_put(m, cases[i].key, cases[i].value), 0);
    ck_assert_uint_eq(zw_map_size(m), n);
    for (size_t i = 0; i < n; i++)
        ck_assert_ptr_eq(zw_map_get(m, cases[i].key), cases[i].value);
    ck_assert_ptr_null(zw_map_get(m, "acm"));
    ck_assert_ptr_null(zw_map_get(m, "acme "));

    /* Replacing keeps the size. */
    ck_assert_int_eq(zw_map_put(m, "acme", &values[5]), 0);
    ck_assert_uint_eq(zw_map_size(m), n);
    ck_assert_ptr_eq(zw_map_get(m, "acme"), &values[5]);

    ck_assert_ptr_eq(zw_map_remove(m, "globex"), &values[1]);
    ck_assert_ptr_null(zw_map_remove(m, "globex"));
    ck_assert_ptr_null(zw_map_get(m, "globex"));
    ck_assert_uint_eq(zw_map_size(m), n - 1);
    ck_assert_ptr_eq(zw_map_get(m, ""), &values[2]);

    /* Refused: NULL value, NULL key. */
    ck_assert_int_eq(zw_map_put(m, "x", NULL), -1);
    ck_assert_int_eq(zw_map_put(m, NULL, &values[0]), -1);
    ck_assert_ptr_null(zw_map_get(m, "x"));
    ck_assert_uint_eq(zw_map_size(m), n - 1);
    zw_map_destroy(m);
    zw_map_destroy(NULL);
}
END_TEST

START_TEST(test_key_is_copied)
{
    zw_map_t *m = zw_map_new();
    char key[16];

    snprintf(key, sizeof(key), "tenant");
    ck_assert_int_eq(zw_map_put(m, key, &values[0]), 0);
    key[0] = 'X';
    ck_assert_ptr_eq(zw_map_get(m, "tenant"), &values[0]);
    ck_assert_ptr_null(zw_map_get(m, key));
    zw_map_destroy(m);
}
END_TEST

/* Removing keys in the middle of probe chains must not hide the keys after
 * them; and a churn of put/remove (size never above 8) must reuse tombstones
 * so lookups keep terminating and memory stays bounded (ASan/valgrind). */
START_TEST(test_tombstones)
{
    zw_map_t *m = zw_map_new();
    char key[32];

    /* 11 keys in a 16-slot table: chains are guaranteed to collide. */
    for (int i = 0; i < 11; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(zw_map_put(m, key, &values[i % 8]), 0);
    }
    for (int i = 0; i < 11; i += 2) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_ptr_eq(zw_map_remove(m, key), &values[i % 8]);
    }
    for (int i = 0; i < 11; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        if (i % 2)
            ck_assert_ptr_eq(zw_map_get(m, key), &values[i % 8]);
        else
            ck_assert_ptr_null(zw_map_get(m, key));
    }
    /* Put back a removed key: found again, counted once. */
    ck_assert_int_eq(zw_map_put(m, "k4", &values[7]), 0);
    ck_assert_int_eq(zw_map_put(m, "k4", &values[6]), 0);
    ck_assert_ptr_eq(zw_map_get(m, "k4"), &values[6]);
    ck_assert_uint_eq(zw_map_size(m), 6);

    for (int i = 0; i < 200000; i++) {
        snprintf(key, sizeof(key), "churn-%d", i);
        REQUIRE(zw_map_put(m, key, &values[i % 8]) == 0);
        if (i >= 2) {
            snprintf(key, sizeof(key), "churn-%d", i - 2);
            REQUIRE(zw_map_remove(m, key) == &values[(i - 2) % 8]);
        }
    }
    ck_assert_uint_eq(zw_map_size(m), 8);
    ck_assert_ptr_eq(zw_map_get(m, "churn-199999"), &values[199999 % 8]);
    ck_assert_ptr_eq(zw_map_get(m, "churn-199998"), &values[199998 % 8]);
    ck_assert_ptr_null(zw_map_get(m, "churn-199997"));
    ck_assert_ptr_eq(zw_map_get(m, "k9"), &values[1]);
    zw_map_destroy(m);
}
END_TEST

#define MANY 100000

static void count_visit(const char *key, void *value, void *arg)
{
    unsigned char *seen = arg;
    long i;

    REQUIRE(sscanf(key, "user-%ld", &i) == 1);
    REQUIRE(i >= 0 && i < MANY);
    REQUIRE(value == &values[i % 8]);
    REQUIRE(seen[i] == 0);
    seen[i] = 1;
}

START_TEST(test_grow_100k_and_each)
{
    zw_map_t *m = zw_map_new();
    unsigned char *seen = calloc(MANY, 1);
    char key[32];
    size_t visited = 0;

    ck_assert_ptr_nonnull(seen);
    for (long i = 0; i < MANY; i++) {
        snprintf(key, sizeof(key), "user-%ld", i);
        REQUIRE(zw_map_put(m, key, &values[i % 8]) == 0);
        REQUIRE(zw_map_size(m) == (size_t)i + 1);
    }
    for (long i = 0; i < MANY; i++) {
        snprintf(key, sizeof(key), "user-%ld", i);
        REQUIRE(zw_map_get(m, key) == &values[i % 8]);
    }
    ck_assert_ptr_null(zw_map_get(m, "user-100000"));

    /* Remove every third, then each() must see exactly the rest. */
    for (long i = 0; i < MANY; i += 3) {
        snprintf(key, sizeof(key), "user-%ld", i);
        REQUIRE(zw_map_remove(m, key) == &values[i % 8]);
    }
    zw_map_each(m, count_visit, seen);
    for (long i = 0; i < MANY; i++) {
        REQUIRE(seen[i] == (i % 3 ? 1 : 0));
        visited += seen[i];
    }
    ck_assert_uint_eq(visited, zw_map_size(m));
    ck_assert_uint_eq(zw_map_size(m), MANY - (MANY + 2) / 3);
    free(seen);
    zw_map_destroy(m);
}
END_TEST

static void never_called(const char *key, void *value, void *arg)
{
    (void)key;
    (void)value;
    (void)arg;
    ck_abort_msg("each() visited an empty map");
}

START_TEST(test_each_empty)
{
    zw_map_t *m = zw_map_new();

    zw_map_each(m, never_called, NULL);
    ck_assert_int_eq(zw_map_put(m, "a", &values[0]), 0);
    ck_assert_ptr_eq(zw_map_remove(m, "a"), &values[0]);
    zw_map_each(m, never_called, NULL);
    zw_map_destroy(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("map");
    TCase *tc = tcase_create("map");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_put_get_replace_remove);
    tcase_add_test(tc, test_key_is_copied);
    tcase_add_test(tc, test_tombstones);
    tcase_add_test(tc, test_grow_100k_and_each);
    tcase_add_test(tc, test_each_empty);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

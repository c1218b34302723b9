/* Timers: run order by deadline and, for equal deadlines, by insertion;
 * cancel before and during a run; callbacks that add timers; next_due and
 * count; and a randomized run against a sorted reference list. Time is
 * whatever the test passes in: nothing sleeps. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zw/timers.h"

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);                                  \
    } while (0)

/* What the callbacks saw, in order. */
static int fired[64];
static size_t nfired;

static void record(void *arg)
{
    ck_assert_uint_lt(nfired, sizeof(fired) / sizeof(fired[0]));
    fired[nfired++] = (int)(intptr_t)arg;
}

static void setup(void)
{
    nfired = 0;
}

static void assert_fired(const int *want, size_t n)
{
    ck_assert_uint_eq(nfired, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fired[i] == want[i], "fired[%zu] = %d, want %d", i, fired[i], want[i]);
}

START_TEST(test_order_and_ties)
{
    zw_timers_t *t = zw_timers_new();
    /* {due, tag}: tags 3, 4 and 5 share a deadline and must run as added. */
    static const int64_t plan[][2] = {{50, 1}, {10, 2}, {30, 3}, {30, 4}, {-5, 0},
                                      {30, 5}, {70, 6}, {20, 7}, {30, 8}};
    static const int want_at_30[] = {0, 2, 7, 3, 4, 5, 8};
    static const int want_rest[] = {1, 6};

    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(zw_timers_next_due(t), -1);
    ck_assert_uint_eq(zw_timers_run(t, 1000), 0);
    for (size_t i = 0; i < sizeof(plan) / sizeof(plan[0]); i++)
        ck_assert_uint_ne(zw_timers_add(t, plan[i][0], record, (void *)(intptr_t)plan[i][1]), 0);
    ck_assert_uint_eq(zw_timers_count(t), 9);
    ck_assert_int_eq(zw_timers_next_due(t), -5);

    ck_assert_uint_eq(zw_timers_run(t, -6), 0); /* nothing due yet */
    ck_assert_uint_eq(zw_timers_run(t, 30), 7); /* "at or before" */
    assert_fired(want_at_30, 7);
    ck_assert_uint_eq(zw_timers_count(t), 2);
    ck_assert_int_eq(zw_timers_next_due(t), 50);

    nfired = 0;
    ck_assert_uint_eq(zw_timers_run(t, INT64_MAX), 2);
    assert_fired(want_rest, 2);
    ck_assert_uint_eq(zw_timers_count(t), 0);
    ck_assert_int_eq(zw_timers_next_due(t), -1);
    zw_timers_destroy(t);
}
END_TEST

START_TEST(test_cancel)
{
    zw_timers_t *t = zw_timers_new();
    uint64_t a = zw_timers_add(t, 10, record, (void *)1);
    uint64_t b = zw_timers_add(t, 20, record, (void *)2);
    uint64_t c = zw_timers_add(t, 5, record, (void *)3);
    uint64_t d;
    static const int want[] = {2};

    ck_assert(a != b && b != c && a != c);
    ck_assert_int_eq(zw_timers_cancel(t, c), 0); /* the heap's root */
    ck_assert_int_eq(zw_timers_cancel(t, c), -1);
    ck_assert_int_eq(zw_timers_next_due(t), 10);
    ck_assert_int_eq(zw_timers_cancel(t, a), 0);
    ck_assert_int_eq(zw_timers_next_due(t), 20);
    ck_assert_uint_eq(zw_timers_count(t), 1);
    ck_assert_int_eq(zw_timers_cancel(t, 0), -1);
    ck_assert_int_eq(zw_timers_cancel(t, 12345), -1);
    ck_assert_int_eq(zw_timers_cancel(t, UINT64_MAX), -1);

    /* A slot reused after a cancel gets a new id; the old one stays dead. */
    d = zw_timers_add(t, 30, record, (void *)4);
    ck_assert_uint_ne(d, a);
    ck_assert_uint_ne(d, c);
    ck_assert_int_eq(zw_timers_cancel(t, a), -1);
    ck_assert_int_eq(zw_timers_cancel(t, c), -1);
    ck_assert_int_eq(zw_timers_cancel(t, d), 0);

    ck_assert_uint_eq(zw_timers_run(t, 100), 1);
    assert_fired(want, 1);
    ck_assert_int_eq(zw_timers_cancel(t, b), -1); /* already ran */
    ck_assert_uint_eq(zw_timers_count(t), 0);
    zw_timers_destroy(t);
}
END_TEST

/* Callback context for the tests below. */
static zw_timers_t *cb_timers;
static uint64_t cb_ids[8];
static int cb_cancel_ret[8];

/* Tag 1 cancels cb_ids[2] (due in the same run) and cb_ids[3] (due later)
 * and tries to cancel itself. */
static void cancel_others(void *arg)
{
    record(arg);
    cb_cancel_ret[2] = zw_timers_cancel(cb_timers, cb_ids[2]);
    cb_cancel_ret[3] = zw_timers_cancel(cb_timers, cb_ids[3]);
    cb_cancel_ret[1] = zw_timers_cancel(cb_timers, cb_ids[1]);
}

START_TEST(test_cancel_from_callback)
{
    zw_timers_t *t = zw_timers_new();
    static const int want[] = {1, 4};

    cb_timers = t;
    cb_ids[1] = zw_timers_add(t, 10, cancel_others, (void *)1);
    cb_ids[2] = zw_timers_add(t, 10, record, (void *)2);
    cb_ids[3] = zw_timers_add(t, 500, record, (void *)3);
    cb_ids[4] = zw_timers_add(t, 20, record, (void *)4);
    ck_assert_uint_eq(zw_timers_run(t, 20), 2);
    assert_fired(want, 2);
    ck_assert_int_eq(cb_cancel_ret[2], 0);
    ck_assert_int_eq(cb_cancel_ret[3], 0);
    ck_assert_int_eq(cb_cancel_ret[1], -1); /* a running timer is no longer pending */
    ck_assert_uint_eq(zw_timers_count(t), 0);
    ck_assert_int_eq(zw_timers_next_due(t), -1);
    ck_assert_uint_eq(zw_timers_run(t, 1000), 0);
    zw_timers_destroy(t);
}
END_TEST

/* Re-arms itself 10 ms later, three times, and once adds an already-due
 * timer. */
static int64_t cb_now;

static void rearm(void *arg)
{
    int n = (int)(intptr_t)arg;

    record(arg);
    if (n < 3)
        ck_assert_uint_ne(zw_timers_add(cb_timers, cb_now + 10, rearm, (void *)(intptr_t)(n + 1)), 0);
    if (n == 1)
        ck_assert_uint_ne(zw_timers_add(cb_timers, cb_now, record, (void *)100), 0);
}

START_TEST(test_add_from_callback)
{
    zw_timers_t *t = zw_timers_new();
    static const int want1[] = {1, 50};
    static const int want2[] = {1, 50, 100};
    static const int want3[] = {1, 50, 100, 2, 3};

    cb_timers = t;
    cb_now = 0;
    zw_timers_add(t, 0, rearm, (void *)1);
    zw_timers_add(t, 0, record, (void *)50);
    /* The timer added (already due) during the run waits for the next run:
     * one run never loops on a callback that re-arms at "now". */
    ck_assert_uint_eq(zw_timers_run(t, cb_now), 2);
    assert_fired(want1, 2);
    ck_assert_uint_eq(zw_timers_count(t), 2);
    ck_assert_int_eq(zw_timers_next_due(t), 0);
    ck_assert_uint_eq(zw_timers_run(t, cb_now), 1);
    assert_fired(want2, 3);
    ck_assert_int_eq(zw_timers_next_due(t), 10);

    cb_now = 10;
    ck_assert_uint_eq(zw_timers_run(t, cb_now), 1);
    cb_now = 20;
    ck_assert_uint_eq(zw_timers_run(t, cb_now), 1);
    assert_fired(want3, 5);
    ck_assert_uint_eq(zw_timers_count(t), 0);
    zw_timers_destroy(t);
}
END_TEST

/* Timers pending at destroy are dropped without running (valgrind/ASan
 * check nothing leaks). */
START_TEST(test_destroy_pending)
{
    zw_timers_t *t = zw_timers_new();

    for (int i = 0; i < 100; i++)
        ck_assert_uint_ne(zw_timers_add(t, i, record, NULL), 0);
    zw_timers_destroy(t);
    zw_timers_destroy(NULL);
    ck_assert_uint_eq(nfired, 0);
    ck_assert_uint_eq(zw_timers_add(NULL, 0, record, NULL), 0);
    ck_assert_uint_eq(zw_timers_count(NULL), 0);
}
END_TEST

/* Randomized: adds, cancels and runs against a reference array; each run
 * must fire exactly the live timers with due <= now, by (due, seq). */
#define RAND_N 20000

typedef struct {
    int64_t due;
    uint64_t seq;
    uint64_t id;
    int live;
} ref_t;

static ref_t *refs;
static size_t nrefs;
static size_t *rand_fired;
static size_t n_rand_fired;

static void record_ref(void *arg)
{
    rand_fired[n_rand_fired++] = (size_t)(uintptr_t)arg;
}

static int cmp_ref(const void *a, const void *b)
{
    const ref_t *x = &refs[*(const size_t *)a], *y = &refs[*(const size_t *)b];

    if (x->due != y->due)
        return x->due < y->due ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

START_TEST(test_random_against_model)
{
    zw_timers_t *t = zw_timers_new();
    size_t *expect = malloc(RAND_N * sizeof(*expect));
    uint64_t rng = 88172645463325252ULL;
    int64_t now = 0;
    size_t live = 0;

    refs = calloc(RAND_N, sizeof(*refs));
    rand_fired = malloc(RAND_N * sizeof(*rand_fired));
    nrefs = 0;
    REQUIRE(t && expect && refs && rand_fired);
    while (nrefs < RAND_N) {
        uint64_t r = rng_next(&rng) % 100;

        if (r < 60) {
            ref_t *x = &refs[nrefs];

            x->due = now + (int64_t)(rng_next(&rng) % 1000) - 100; /* some already due */
            x->seq = nrefs;
            x->id = zw_timers_add(t, x->due, record_ref, (void *)(uintptr_t)nrefs);
            REQUIRE(x->id != 0);
            x->live = 1;
            nrefs++;
            live++;
        } else if (r < 85) {
            size_t i = (size_t)(rng_next(&rng) % (nrefs + 1));

            if (i < nrefs) {
                REQUIRE(zw_timers_cancel(t, refs[i].id) == (refs[i].live ? 0 : -1));
                if (refs[i].live)
                    live--;
                refs[i].live = 0;
            }
        } else {
            size_t n = 0;
            int64_t min_due = -1;

            now += (int64_t)(rng_next(&rng) % 200);
            for (size_t i = 0; i < nrefs; i++) {
                if (refs[i].live && refs[i].due <= now)
                    expect[n++] = i;
                if (refs[i].live && (min_due == -1 || refs[i].due < min_due))
                    min_due = refs[i].due;
            }
            REQUIRE(zw_timers_next_due(t) == min_due);
            qsort(expect, n, sizeof(*expect), cmp_ref);
            n_rand_fired = 0;
            REQUIRE(zw_timers_run(t, now) == n);
            REQUIRE(n_rand_fired == n);
            REQUIRE(memcmp(expect, rand_fired, n * sizeof(*expect)) == 0);
            for (size_t i = 0; i < n; i++)
                refs[expect[i]].live = 0;
            live -= n;
        }
        REQUIRE(zw_timers_count(t) == live);
    }
    free(expect);
    free(refs);
    free(rand_fired);
    zw_timers_destroy(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("timers");
    TCase *tc = tcase_create("timers");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_order_and_ties);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_cancel_from_callback);
    tcase_add_test(tc, test_add_from_callback);
    tcase_add_test(tc, test_destroy_pending);
    tcase_add_test(tc, test_random_against_model);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

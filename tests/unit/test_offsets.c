/* Offsets: scripted sequences (out-of-order done, gaps, refusals) with the
 * committable value expected after each step, and a long randomized run
 * against a plain-array reference model. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "zw/offsets.h"

/* Assertion for big loops: ck_assert_* writes a mark point per call. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);                                  \
    } while (0)

enum { TRACK, DONE, END };

typedef struct {
    int op;
    int64_t offset;
    int ret;            /* what track/done returns */
    int64_t committable; /* committable() right after the step */
    size_t pending;
} step_t;

#define MAX_STEPS 16

static const struct {
    const char *name;
    step_t steps[MAX_STEPS];
} scripts[] = {
    {"in order",
     {{TRACK, 10, 0, -1, 1},
      {TRACK, 11, 0, -1, 2},
      {DONE, 10, 0, 11, 1},
      {DONE, 11, 0, 12, 0},
      {END, 0, 0, 0, 0}}},
    {"out of order: nothing until the front is done",
     {{TRACK, 0, 0, -1, 1},
      {TRACK, 1, 0, -1, 2},
      {TRACK, 2, 0, -1, 3},
      {DONE, 2, 0, -1, 2},
      {DONE, 1, 0, -1, 1},
      {DONE, 0, 0, 3, 0},
      {END, 0, 0, 0, 0}}},
    {"prefix advances only as far as it is contiguous",
     {{TRACK, 5, 0, -1, 1},
      {TRACK, 6, 0, -1, 2},
      {TRACK, 7, 0, -1, 3},
      {TRACK, 8, 0, -1, 4},
      {DONE, 5, 0, 6, 3},
      {DONE, 7, 0, -1, 2},
      {DONE, 6, 0, 8, 1},
      {TRACK, 9, 0, -1, 2},
      {DONE, 9, 0, -1, 1},
      {DONE, 8, 0, 10, 0},
      {END, 0, 0, 0, 0}}},
    {"gaps: compaction and transaction markers skip offsets",
     {{TRACK, 100, 0, -1, 1},
      {TRACK, 103, 0, -1, 2},
      {TRACK, 110, 0, -1, 3},
      {DONE, 103, 0, -1, 2},
      {DONE, 100, 0, 104, 1},
      {DONE, 110, 0, 111, 0},
      {END, 0, 0, 0, 0}}},
    {"refusals change nothing",
     {{TRACK, 3, 0, -1, 1},
      {TRACK, 3, -1, -1, 1},  /* not increasing */
      {TRACK, 2, -1, -1, 1},  /* going back */
      {TRACK, -7, -1, -1, 1}, /* negative */
      {DONE, 4, -1, -1, 1},   /* never tracked */
      {DONE, 2, -1, -1, 1},
      {DONE, 3, 0, 4, 0},
      {DONE, 3, -1, -1, 0}, /* already done (and popped) */
      {TRACK, 5, 0, -1, 1},
      {DONE, 4, -1, -1, 1}, /* in a gap */
      {DONE, 6, -1, -1, 1},
      {DONE, 5, 0, 6, 0},
      {END, 0, 0, 0, 0}}},
    {"done twice in the middle",
     {{TRACK, 1, 0, -1, 1},
      {TRACK, 2, 0, -1, 2},
      {DONE, 2, 0, -1, 1},
      {DONE, 2, -1, -1, 1},
      {DONE, 1, 0, 3, 0},
      {END, 0, 0, 0, 0}}},
    {"nothing tracked",
     {{DONE, 0, -1, -1, 0}, {END, 0, 0, 0, 0}}},
};

START_TEST(test_scripts)
{
    zw_offsets_t *o = zw_offsets_new();

    ck_assert_ptr_nonnull(o);
    for (int i = 0; scripts[_i].steps[i].op != END; i++) {
        const step_t *st = &scripts[_i].steps[i];
        int ret = st->op == TRACK ? zw_offsets_track(o, st->offset) : zw_offsets_done(o, st->offset);

        ck_assert_msg(ret == st->ret, "%s: step %d returned %d", scripts[_i].name, i, ret);
        ck_assert_msg(zw_offsets_committable(o) == st->committable, "%s: step %d committable",
                      scripts[_i].name, i);
        /* Asking again without progress gives -1. */
        ck_assert_int_eq(zw_offsets_committable(o), -1);
        ck_assert_msg(zw_offsets_pending(o) == st->pending, "%s: step %d pending %zu",
                      scripts[_i].name, i, zw_offsets_pending(o));
    }
    zw_offsets_destroy(o);
}
END_TEST

/* committable() reports the latest position once, however many steps
 * advanced it in between. */
START_TEST(test_committable_coalesces)
{
    zw_offsets_t *o = zw_offsets_new();

    for (int64_t off = 0; off < 10; off++)
        ck_assert_int_eq(zw_offsets_track(o, off), 0);
    for (int64_t off = 0; off < 7; off++)
        ck_assert_int_eq(zw_offsets_done(o, off), 0);
    ck_assert_int_eq(zw_offsets_committable(o), 7);
    ck_assert_int_eq(zw_offsets_committable(o), -1);
    ck_assert_uint_eq(zw_offsets_pending(o), 3);
    zw_offsets_destroy(o);
    zw_offsets_destroy(NULL);
}
END_TEST

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

#define MODEL_MAX 200000

/* Random tracks (with gaps) and dones (front, middle, repeats, untracked)
 * against a model that keeps every tracked offset and its state in arrays
 * and recomputes the done prefix by scanning. The ring grows and wraps many
 * times on the way. */
START_TEST(test_random_against_model)
{
    zw_offsets_t *o = zw_offsets_new();
    int64_t *offs = malloc(MODEL_MAX * sizeof(*offs));
    bool *done = calloc(MODEL_MAX, sizeof(*done));
    size_t n = 0, prefix = 0, pending = 0;
    int64_t next = 0, given = -1;
    uint64_t rng = 0x9e3779b97f4a7c15ULL;

    REQUIRE(o && offs && done);
    for (int step = 0; step < 400000; step++) {
        uint64_t r = rng_next(&rng);
        int64_t want;

        /* Bias towards tracking while the window is small and towards
         * finishing while it is big, so it swings between 0 and ~3000. */
        if (n < MODEL_MAX && (pending < 50 || r % 100 < (pending > 3000 ? 20u : 52u))) {
            int64_t off = next + (int64_t)(rng_next(&rng) % 3); /* gaps of 0..2 */

            REQUIRE(zw_offsets_track(o, off) == 0);
            REQUIRE(zw_offsets_track(o, off) == -1);
            offs[n++] = off;
            next = off + 1;
            pending++;
        } else if (r % 7 == 0) {
            /* An offset that is not pending: done, in a gap, or beyond. */
            int64_t off = (int64_t)(rng_next(&rng) % (uint64_t)(next + 5));
            bool is_pending = false;

            for (size_t i = prefix; i < n; i++) {
                if (offs[i] == off) {
                    is_pending = !done[i];
                    break;
                }
            }
            if (!is_pending)
                REQUIRE(zw_offsets_done(o, off) == -1);
        } else if (pending > 0) {
            /* A pending one: mostly near the front, sometimes anywhere. */
            size_t span = n - prefix;
            size_t i = prefix + (size_t)(rng_next(&rng) % (r % 4 ? (span < 8 ? span : 8) : span));

            while (done[i])
                i = i + 1 < n ? i + 1 : prefix;
            REQUIRE(zw_offsets_done(o, offs[i]) == 0);
            done[i] = true;
            pending--;
        }

        while (prefix < n && done[prefix])
            prefix++;
        want = prefix > 0 && offs[prefix - 1] + 1 > given ? offs[prefix - 1] + 1 : -1;
        if (r % 3 == 0) { /* the loop does not ask every turn */
            REQUIRE(zw_offsets_committable(o) == want);
            if (want != -1)
                given = want;
        }
        REQUIRE(zw_offsets_pending(o) == pending);
    }
    /* Finish everything: the last position must come out. */
    for (size_t i = prefix; i < n; i++) {
        if (!done[i])
            REQUIRE(zw_offsets_done(o, offs[i]) == 0);
    }
    ck_assert_uint_eq(zw_offsets_pending(o), 0);
    ck_assert_int_eq(zw_offsets_committable(o), offs[n - 1] + 1);
    ck_assert_int_eq(zw_offsets_committable(o), -1);
    free(offs);
    free(done);
    zw_offsets_destroy(o);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("offsets");
    TCase *tc = tcase_create("offsets");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_scripts, 0, (int)(sizeof(scripts) / sizeof(scripts[0])));
    tcase_add_test(tc, test_committable_coalesces);
    tcase_add_test(tc, test_random_against_model);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Rate limit: scripted scenarios, each a bucket and a list of calls at
 * hand-picked times with the value each must return: refill and waits,
 * bursts, 429 blocks, header corrections with shares, rate changes and
 * refunds. The test owns the clock; nothing sleeps. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "zw/ratelimit.h"

enum { END, TAKE, AVAIL, BLOCK, BLOCKED, OBSERVE, SET_RATE, REFUND };

typedef struct {
    int op;
    int64_t t;      /* now_ms; BLOCK: until_ms */
    double want;    /* TAKE: wait ms; AVAIL: tokens; BLOCKED: deadline */
    long remaining, limit, reset_s; /* OBSERVE */
    double share;                   /* OBSERVE */
    double per_minute, burst;       /* SET_RATE */
} step_t;

#define MAX_STEPS 24

#define S_TAKE(t, w) {TAKE, t, w, 0, 0, 0, 0, 0, 0}
#define S_AVAIL(t, w) {AVAIL, t, w, 0, 0, 0, 0, 0, 0}
#define S_BLOCK(until) {BLOCK, until, 0, 0, 0, 0, 0, 0, 0}
#define S_BLOCKED(w) {BLOCKED, 0, w, 0, 0, 0, 0, 0, 0}
#define S_OBSERVE(t, rem, lim, reset, share) {OBSERVE, t, 0, rem, lim, reset, share, 0, 0}
#define S_SET_RATE(t, pm, burst) {SET_RATE, t, 0, 0, 0, 0, 0, pm, burst}
#define S_REFUND {REFUND, 0, 0, 0, 0, 0, 0, 0, 0}

static const struct {
    const char *name;
    double per_minute, burst;
    int64_t t0;
    step_t steps[MAX_STEPS];
} scenarios[] = {
    {"60/min, burst 1: one a second",
     60, 1, 0,
     {S_TAKE(0, 0),
      S_TAKE(1, 999),      /* 0.001 of a token back after 1 ms */
      S_TAKE(500, 500),
      S_AVAIL(500, 0.5),
      S_TAKE(1000, 0),     /* exactly on time: not refused by rounding */
      S_TAKE(1000, 1000),
      S_TAKE(2999, 0),     /* idle time does not pile up beyond the burst */
      S_AVAIL(2999, 0),
      S_TAKE(3000, 999),
      {END}}},
    {"burst: 600/min holding 5",
     600, 5, 1000,
     {S_AVAIL(1000, 5),
      S_TAKE(1000, 0), S_TAKE(1000, 0), S_TAKE(1000, 0), S_TAKE(1000, 0), S_TAKE(1000, 0),
      S_TAKE(1000, 100),   /* 10 a second */
      S_TAKE(1050, 50),
      S_TAKE(1100, 0),
      S_AVAIL(100000, 5),
      {END}}},
    {"a fractional burst holds at least one token",
     60, 0.2, 0,
     {S_AVAIL(0, 1), S_TAKE(0, 0), S_TAKE(0, 1000), {END}}},
    {"429: blocked until Retry-After; later deadlines extend, earlier ones do not",
     6000, 10, 0,
     {S_TAKE(0, 0),
      S_BLOCK(5000),
      S_BLOCKED(5000),
      S_TAKE(10, 4990),
      S_AVAIL(10, 0),
      S_BLOCK(3000),
      S_BLOCKED(5000),
      S_BLOCK(7000),
      S_TAKE(4999, 2001),
      S_TAKE(6999, 1),
      S_TAKE(7000, 0),     /* refilled meanwhile */
      S_BLOCKED(0),        /* cleared once passed */
      S_AVAIL(7000, 9),
      {END}}},
    {"remaining 0 blocks until the reset",
     6000, 10, 0,
     {S_OBSERVE(100, 0, 700, 30, 1.0),
      S_BLOCKED(30100),
      S_TAKE(100, 30000),
      S_TAKE(30099, 1),
      S_TAKE(30100, 0),
      {END}}},
    {"remaining 0 with the reset unknown: empty, not blocked",
     60, 10, 0,
     {S_OBSERVE(0, 0, 700, -1, 1.0),
      S_BLOCKED(0),
      S_AVAIL(0, 0),
      S_TAKE(0, 1000),
      S_TAKE(1000, 0),
      {END}}},
    {"a reset far beyond reason is capped at an hour",
     60, 1, 0,
     {S_OBSERVE(0, 0, 700, 86400 * 365L, 1.0), S_BLOCKED(3600000), {END}}},
    {"share scaling: a third of the account's 30 left is 10 for us",
     6000, 50, 0,
     {S_AVAIL(0, 50),
      S_OBSERVE(0, 30, 700, 60, 1.0 / 3),
      S_AVAIL(0, 10),
      S_OBSERVE(0, 100, 700, 60, 0.5), /* never raised by a report */
      S_AVAIL(0, 10),
      S_OBSERVE(0, 3, 700, 60, 0.5),
      S_AVAIL(0, 1.5),
      S_TAKE(0, 0),
      S_TAKE(0, 5),        /* 0.5 left, 100 a second */
      {END}}},
    {"bad observations change nothing",
     6000, 50, 0,
     {S_OBSERVE(0, -1, 700, 60, 1.0),  /* remaining unknown */
      S_OBSERVE(0, 800, 700, 60, 1.0), /* more left than the limit */
      S_AVAIL(0, 50),
      S_OBSERVE(0, 10, -1, -1, 0.0),   /* share 0 read as 1 */
      S_AVAIL(0, 10),
      S_OBSERVE(0, 5, -1, -1, 7.0),    /* share > 1 read as 1 */
      S_AVAIL(0, 5),
      S_BLOCKED(0),
      {END}}},
    {"set_rate: tokens earned at the old rate, capped to the new burst",
     60, 10, 0,
     {S_TAKE(0, 0), S_TAKE(0, 0), S_TAKE(0, 0),
      S_AVAIL(0, 7),
      S_SET_RATE(1000, 600, 4), /* 8 earned by now, the new burst is 4 */
      S_AVAIL(1000, 4),
      S_TAKE(1000, 0), S_TAKE(1000, 0), S_TAKE(1000, 0), S_TAKE(1000, 0),
      S_TAKE(1000, 100),
      S_SET_RATE(1000, 6, 4),   /* one every 10 s */
      S_TAKE(1000, 10000),
      S_SET_RATE(2000, 6000, 4),
      S_AVAIL(2000, 0.1),       /* 1000 ms at the slow rate */
      S_TAKE(2000, 9),
      {END}}},
    {"set_rate to zero: refused with a finite wait, resumes when raised",
     60, 1, 0,
     {S_TAKE(0, 0),
      S_SET_RATE(0, 0, 1),
      S_TAKE(100000, 60000),
      S_SET_RATE(100000, 60, 1),
      S_TAKE(101000, 0),
      {END}}},
    {"refund: a token back, never above the burst",
     60, 2, 0,
     {S_TAKE(0, 0), S_TAKE(0, 0), S_TAKE(0, 1000),
      S_REFUND,
      S_TAKE(0, 0),
      S_REFUND, S_REFUND, S_REFUND,
      S_AVAIL(0, 2),
      {END}}},
    {"the clock going back takes nothing away",
     60, 5, 10000,
     {S_TAKE(10000, 0), S_AVAIL(5000, 4), S_TAKE(5000, 0), S_AVAIL(11000, 4), {END}}},
};

START_TEST(test_scenarios)
{
    zw_ratelimit_t *rl = zw_ratelimit_new(scenarios[_i].per_minute, scenarios[_i].burst,
                                          scenarios[_i].t0);

    ck_assert_ptr_nonnull(rl);
    for (int i = 0; scenarios[_i].steps[i].op != END; i++) {
        const step_t *st = &scenarios[_i].steps[i];
        double got = 0;

        switch (st->op) {
        case TAKE:
            got = (double)zw_ratelimit_take(rl, st->t);
            break;
        case AVAIL:
            got = zw_ratelimit_available(rl, st->t);
            break;
        case BLOCKED:
            got = (double)zw_ratelimit_blocked_until(rl);
            break;
        case BLOCK:
            zw_ratelimit_block_until(rl, st->t);
            continue;
        case OBSERVE:
            zw_ratelimit_observe(rl, st->t, st->remaining, st->limit, st->reset_s, st->share);
            continue;
        case SET_RATE:
            zw_ratelimit_set_rate(rl, st->per_minute, st->burst, st->t);
            continue;
        case REFUND:
            zw_ratelimit_refund(rl);
            continue;
        default:
            ck_abort_msg("bad op");
        }
        ck_assert_msg(fabs(got - st->want) < 1e-6, "%s: step %d: got %f, want %f",
                      scenarios[_i].name, i, got, st->want);
    }
    zw_ratelimit_destroy(rl);
}
END_TEST

/* Taking as fast as allowed for an hour of simulated time at 400/min gives
 * 400 a minute (plus the initial burst), and every refusal's wait is exactly
 * when the next take succeeds. */
START_TEST(test_sustained_rate)
{
    zw_ratelimit_t *rl = zw_ratelimit_new(400, 10, 0);
    int64_t now = 0, taken = 0;

    while (now < 3600000) {
        int64_t wait = zw_ratelimit_take(rl, now);

        if (wait == 0) {
            taken++;
            continue;
        }
        if (wait < 0 || wait > 150)
            ck_abort_msg("wait %lld at %lld", (long long)wait, (long long)now);
        now += wait;
        if (zw_ratelimit_take(rl, now) != 0)
            ck_abort_msg("refused at %lld after waiting as told", (long long)now);
        taken++;
    }
    ck_assert_int_ge(taken, 400 * 60 + 10 - 1);
    ck_assert_int_le(taken, 400 * 60 + 10 + 1);
    zw_ratelimit_destroy(rl);
    zw_ratelimit_destroy(NULL);
}
END_TEST

/* Refilling in many small steps adds up to 0.99999999999 where 1 was meant
 * (200/min polled every ms: 300 steps of 1/300). The take due at 300 ms must
 * still succeed, not be told to wait a rounding error. */
START_TEST(test_polling_rounding)
{
    static const struct {
        double per_minute;
        int64_t due_ms;
    } cases[] = {{200, 300}, {2500, 24}, {60, 1000}, {400, 150}};

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        zw_ratelimit_t *rl = zw_ratelimit_new(cases[c].per_minute, 1, 0);

        ck_assert_int_eq(zw_ratelimit_take(rl, 0), 0);
        for (int64_t t = 1; t < cases[c].due_ms; t++) {
            (void)zw_ratelimit_available(rl, t);
            if (zw_ratelimit_take(rl, t) != cases[c].due_ms - t)
                ck_abort_msg("%.0f/min at %lld: wait %lld", cases[c].per_minute, (long long)t,
                             (long long)zw_ratelimit_take(rl, t));
        }
        ck_assert_int_eq(zw_ratelimit_take(rl, cases[c].due_ms), 0);
        zw_ratelimit_destroy(rl);
    }
}
END_TEST

START_TEST(test_bad_construction)
{
    /* NaN and negative rates make a bucket that holds one token and never
     * refills, rather than one that hands out NaN tokens. */
    zw_ratelimit_t *rl = zw_ratelimit_new(NAN, -3, 0);

    ck_assert_ptr_nonnull(rl);
    ck_assert(fabs(zw_ratelimit_available(rl, 0) - 1) < 1e-9);
    ck_assert_int_eq(zw_ratelimit_take(rl, 0), 0);
    ck_assert_int_eq(zw_ratelimit_take(rl, 1000000), 60000);
    zw_ratelimit_observe(rl, 0, 0, 700, 30, NAN);
    ck_assert_int_eq(zw_ratelimit_blocked_until(rl), 30000);
    zw_ratelimit_destroy(rl);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("ratelimit");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_scenarios, 0, (int)(sizeof(scenarios) / sizeof(scenarios[0])));
    tcase_add_test(tc, test_sustained_rate);
    tcase_add_test(tc, test_polling_rounding);
    tcase_add_test(tc, test_bad_construction);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

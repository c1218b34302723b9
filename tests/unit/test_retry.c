/* Retry: the classification table (HTTP status x CURLcode -> class), class
 * names, backoff bounds and spread over many draws for attempts 1..20 and
 * absurd attempt numbers, and Retry-After in every form Zendesk or a proxy
 * might send, good and bad. */
#include <check.h>
#include <curl/curl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zw/retry.h"

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);                                  \
    } while (0)

static const struct {
    long status;
    int curl;
    zw_class_t want;
} classify_cases[] = {
    {200, CURLE_OK, ZW_CLASS_OK},
    {201, CURLE_OK, ZW_CLASS_OK},
    {204, CURLE_OK, ZW_CLASS_OK},
    {299, CURLE_OK, ZW_CLASS_OK},
    {404, CURLE_OK, ZW_CLASS_NOT_FOUND},
    {408, CURLE_OK, ZW_CLASS_TRANSIENT},
    {409, CURLE_OK, ZW_CLASS_TRANSIENT},
    {500, CURLE_OK, ZW_CLASS_TRANSIENT},
    {502, CURLE_OK, ZW_CLASS_TRANSIENT},
    {503, CURLE_OK, ZW_CLASS_TRANSIENT},
    {504, CURLE_OK, ZW_CLASS_TRANSIENT},
    {599, CURLE_OK, ZW_CLASS_TRANSIENT},
    {429, CURLE_OK, ZW_CLASS_RATE_LIMITED},
    {401, CURLE_OK, ZW_CLASS_AUTH},
    {403, CURLE_OK, ZW_CLASS_AUTH},
    {400, CURLE_OK, ZW_CLASS_PERMANENT},
    {405, CURLE_OK, ZW_CLASS_PERMANENT},
    {410, CURLE_OK, ZW_CLASS_PERMANENT},
    {413, CURLE_OK, ZW_CLASS_PERMANENT},
    {422, CURLE_OK, ZW_CLASS_PERMANENT},
    {499, CURLE_OK, ZW_CLASS_PERMANENT},
    /* Not final or not HTTP: do not loop on them. */
    {100, CURLE_OK, ZW_CLASS_PERMANENT},
    {301, CURLE_OK, ZW_CLASS_PERMANENT},
    {600, CURLE_OK, ZW_CLASS_PERMANENT},
    {-1, CURLE_OK, ZW_CLASS_PERMANENT},
    /* No response: the network's fault, retry. */
    {0, CURLE_OPERATION_TIMEDOUT, ZW_CLASS_TRANSIENT},
    {0, CURLE_COULDNT_CONNECT, ZW_CLASS_TRANSIENT},
    {0, CURLE_COULDNT_RESOLVE_HOST, ZW_CLASS_TRANSIENT},
    {0, CURLE_RECV_ERROR, ZW_CLASS_TRANSIENT},
    {0, CURLE_SEND_ERROR, ZW_CLASS_TRANSIENT},
    {0, CURLE_PARTIAL_FILE, ZW_CLASS_TRANSIENT},
    {0, CURLE_GOT_NOTHING, ZW_CLASS_TRANSIENT},
    {0, CURLE_SSL_CONNECT_ERROR, ZW_CLASS_TRANSIENT},
    {0, CURLE_HTTP2, ZW_CLASS_TRANSIENT},
    {0, CURLE_HTTP2_STREAM, ZW_CLASS_TRANSIENT},
    {0, CURLE_OUT_OF_MEMORY, ZW_CLASS_TRANSIENT},
    {0, CURLE_OK, ZW_CLASS_TRANSIENT}, /* completed yet no status: treat as broken */
    /* No response because the setup is wrong: retrying cannot help. */
    {0, CURLE_URL_MALFORMAT, ZW_CLASS_PERMANENT},
    {0, CURLE_UNSUPPORTED_PROTOCOL, ZW_CLASS_PERMANENT},
    {0, CURLE_PEER_FAILED_VERIFICATION, ZW_CLASS_PERMANENT},
    {0, CURLE_SSL_CACERT_BADFILE, ZW_CLASS_PERMANENT},
    {0, CURLE_SSL_CERTPROBLEM, ZW_CLASS_PERMANENT},
    {0, CURLE_SSL_PINNEDPUBKEYNOTMATCH, ZW_CLASS_PERMANENT},
    {0, CURLE_NOT_BUILT_IN, ZW_CLASS_PERMANENT},
    {0, CURLE_FILESIZE_EXCEEDED, ZW_CLASS_PERMANENT},
    {0, CURLE_WRITE_ERROR, ZW_CLASS_PERMANENT},
    /* A status arrived but the transfer broke: the status decides, except
     * that a broken 2xx is not a success. */
    {503, CURLE_RECV_ERROR, ZW_CLASS_TRANSIENT},
    {429, CURLE_PARTIAL_FILE, ZW_CLASS_RATE_LIMITED},
    {422, CURLE_OPERATION_TIMEDOUT, ZW_CLASS_PERMANENT},
    {200, CURLE_PARTIAL_FILE, ZW_CLASS_TRANSIENT},
    {200, CURLE_OPERATION_TIMEDOUT, ZW_CLASS_TRANSIENT},
    {200, CURLE_WRITE_ERROR, ZW_CLASS_PERMANENT},
};

START_TEST(test_classify)
{
    zw_class_t got = zw_retry_classify(classify_cases[_i].status, classify_cases[_i].curl);

    ck_assert_msg(got == classify_cases[_i].want, "status %ld curl %d: got %s, want %s",
                  classify_cases[_i].status, classify_cases[_i].curl, zw_class_name(got),
                  zw_class_name(classify_cases[_i].want));
}
END_TEST

START_TEST(test_class_names)
{
    ck_assert_str_eq(zw_class_name(ZW_CLASS_OK), "ok");
    ck_assert_str_eq(zw_class_name(ZW_CLASS_NOT_FOUND), "not_found");
    ck_assert_str_eq(zw_class_name(ZW_CLASS_TRANSIENT), "transient");
    ck_assert_str_eq(zw_class_name(ZW_CLASS_RATE_LIMITED), "rate_limited");
    ck_assert_str_eq(zw_class_name(ZW_CLASS_AUTH), "auth");
    ck_assert_str_eq(zw_class_name(ZW_CLASS_PERMANENT), "permanent");
    ck_assert_str_eq(zw_class_name((zw_class_t)99), "unknown");
}
END_TEST

#define DRAWS 4000

/* For each attempt: every draw within [0, min(max, base * 2^(attempt-1))],
 * and the draws spread over the range (the top and bottom tenths are both
 * hit and the mean is near the middle), so it is really full jitter. */
START_TEST(test_backoff_bounds)
{
    const int base = 100, max = 30000;
    uint64_t rng = 12345;

    for (int attempt = 1; attempt <= 20; attempt++) {
        int64_t cap = (int64_t)base << (attempt - 1);
        int64_t lo_seen = INT64_MAX, hi_seen = -1;
        double sum = 0;

        if (cap > max)
            cap = max;
        for (int i = 0; i < DRAWS; i++) {
            int64_t d = zw_backoff_delay_ms(attempt, base, max, &rng);

            REQUIRE(d >= 0 && d <= cap);
            lo_seen = d < lo_seen ? d : lo_seen;
            hi_seen = d > hi_seen ? d : hi_seen;
            sum += (double)d;
        }
        ck_assert_msg(lo_seen <= cap / 10, "attempt %d: lowest %lld", attempt, (long long)lo_seen);
        ck_assert_msg(hi_seen >= cap - cap / 10, "attempt %d: highest %lld of %lld", attempt,
                      (long long)hi_seen, (long long)cap);
        ck_assert_msg(sum / DRAWS > cap * 0.4 && sum / DRAWS < cap * 0.6,
                      "attempt %d: mean %.1f of cap %lld", attempt, sum / DRAWS, (long long)cap);
    }
}
END_TEST

START_TEST(test_backoff_edges)
{
    static const struct {
        int attempt, base, max;
        int64_t cap;
    } cases[] = {
        {1, 100, 30000, 100},
        {0, 100, 30000, 100},        /* attempt < 1 is read as the first */
        {-5, 100, 30000, 100},
        {31, 100, 30000, 30000},
        {32, 1, INT_MAX, INT_MAX},   /* 2^31 would overflow an int */
        {64, 100, 30000, 30000},     /* a shift by 64 would be undefined */
        {1000, 100, 30000, 30000},
        {INT_MAX, 100, 30000, 30000},
        {INT_MAX, INT_MAX, INT_MAX, INT_MAX},
        {3, 500, 100, 100},          /* max below base: max wins */
        {5, 0, 30000, 0},            /* nonsense config: no wait rather than a crash */
        {5, 100, 0, 0},
        {5, -100, 30000, 0},
    };
    uint64_t rng = 1;

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        int64_t hi = -1;

        for (int i = 0; i < 2000; i++) {
            int64_t d = zw_backoff_delay_ms(cases[c].attempt, cases[c].base, cases[c].max, &rng);

            ck_assert_msg(d >= 0 && d <= cases[c].cap, "case %zu: %lld", c, (long long)d);
            hi = d > hi ? d : hi;
        }
        ck_assert_msg(hi >= cases[c].cap - cases[c].cap / 10, "case %zu: highest %lld", c,
                      (long long)hi);
    }
    /* A zero state must not get stuck returning 0. */
    rng = 0;
    {
        int nonzero = 0;

        for (int i = 0; i < 10; i++)
            nonzero += zw_backoff_delay_ms(10, 100, 30000, &rng) > 0;
        ck_assert_int_ge(nonzero, 5);
    }
    /* Same seed, same sequence: callers can make tests deterministic. */
    {
        uint64_t a = 42, b = 42;

        for (int i = 0; i < 100; i++)
            ck_assert_int_eq(zw_backoff_delay_ms(8, 100, 30000, &a),
                             zw_backoff_delay_ms(8, 100, 30000, &b));
    }
}
END_TEST

/* 2015-10-21 07:26:00 UTC: two minutes before the dates below. */
#define NOW ((time_t)1445412480 - 120)
#define DAY_MS ((int64_t)86400 * 1000)

static const struct {
    const char *value;
    int64_t want;
} retry_after_cases[] = {
    /* delta-seconds */
    {"0", 0},
    {"1", 1000},
    {"120", 120000},
    {" 30 ", 30000},
    {"\t7", 7000},
    {"007", 7000},
    {"86400", DAY_MS},
    {"86401", DAY_MS},                /* capped at a day */
    {"9999999999", DAY_MS},
    {"99999999999999999999999999999999999999", DAY_MS}, /* no overflow */
    /* IMF-fixdate */
    {"Wed, 21 Oct 2015 07:28:00 GMT", 120000},
    {"Wed, 21 Oct 2015 07:26:01 GMT", 1000},
    {"Wed, 21 Oct 2015 07:26:00 GMT", 0},
    {"Wed, 21 Oct 2015 07:00:00 GMT", 0},       /* in the past */
    {"Sun, 06 Nov 1994 08:49:37 GMT", 0},
    {"Thu, 22 Oct 2015 07:26:00 GMT", DAY_MS},
    {"Fri, 23 Oct 2015 07:26:00 GMT", DAY_MS}, /* capped */
    {"Fri, 31 Dec 9999 23:59:59 GMT", DAY_MS},
    {"wed, 21 oct 2015 07:28:00 gmt", 120000}, /* lenient about case */
    {"Wed, 21 Oct 2015 07:27:60 GMT", 119000}, /* leap second */
    /* RFC 850 */
    {"Wednesday, 21-Oct-15 07:28:00 GMT", 120000},
    {"Sunday, 06-Nov-94 08:49:37 GMT", 0},
    {"Thursday, 22-Oct-65 07:26:00 GMT", DAY_MS}, /* 2065: not over 50 years ahead */
    {"Friday, 22-Oct-66 07:26:00 GMT", 0},        /* 1966 */
    /* asctime */
    {"Wed Oct 21 07:28:00 2015", 120000},
    {"Wed Oct  1 07:28:00 2015", 0},
    {"Sun Nov  6 08:49:37 1994", 0},
    /* unreadable */
    {"", -1},
    {"   ", -1},
    {"-1", -1},
    {"-120", -1},
    {"+5", -1},
    {"1.5", -1},
    {"12abc", -1},
    {"0x10", -1},
    {"soon", -1},
    {"Wed, 21 Oct 2015 07:28:00", -1},         /* no zone */
    {"Wed, 21 Oct 2015 07:28:00 UTC", -1},
    {"Wed, 21 Oct 2015 07:28:00 GMT junk", -1},
    {"Wed, 32 Oct 2015 07:28:00 GMT", -1},
    {"Wed, 29 Feb 2015 07:28:00 GMT", -1},     /* 2015 is not a leap year */
    {"Wed, 21 Foo 2015 07:28:00 GMT", -1},
    {"Wed, 21 Oct 2015 24:00:00 GMT", -1},
    {"Wed, 21 Oct 2015 07:60:00 GMT", -1},
    {"Wed, 21 Oct 2015 07:28:61 GMT", -1},
    {"Wed, 21 Oct 15 07:28:00 GMT", -1},
    {"Wed, 1 Oct 2015 07:28:00 GMT", -1},
    {"Wed, 21 Oct 20155 07:28:00 GMT", -1},
    {"Wed, 21 Oct 2015 7:28:00 GMT", -1},
    {"Xyz, 21 Oct 2015 07:28:00 GMT", -1},
    {"Wed,21 Oct 2015 07:28:00 GMT", -1},
    {"Wednesday, 21-Oct-2015 07:28:00 GMT", -1},
    {"Wed Oct 21 07:28:00", -1},
    {"Wed", -1},
    {"W", -1},
    {"Wed, ", -1},
    {"Wed, 21 Oct 2015 07:28:0", -1},
    {"Wed, 21 Oct 2015 07:28:00 GMT Wed, 21 Oct 2015 07:28:00 GMT Wed, 21 Oct", -1}, /* too long */
};

START_TEST(test_retry_after)
{
    int64_t got = zw_retry_after_ms(retry_after_cases[_i].value, NOW);

    ck_assert_msg(got == retry_after_cases[_i].want, "\"%s\": got %lld, want %lld",
                  retry_after_cases[_i].value, (long long)got,
                  (long long)retry_after_cases[_i].want);
}
END_TEST

/* A 429's wait: Retry-After first, then ratelimit-reset, then the fallback;
 * a huge reset is capped at a day instead of overflowing seconds * 1000. */
START_TEST(test_429_wait)
{
    ck_assert_int_eq(zw_retry_429_wait_ms("7", 30, NOW, 10000), 7000);
    ck_assert_int_eq(zw_retry_429_wait_ms(NULL, 30, NOW, 10000), 30000);
    ck_assert_int_eq(zw_retry_429_wait_ms("soon", 30, NOW, 10000), 30000);
    ck_assert_int_eq(zw_retry_429_wait_ms(NULL, -1, NOW, 10000), 10000);
    ck_assert_int_eq(zw_retry_429_wait_ms(NULL, 0, NOW, 10000), 10000);
    ck_assert_int_eq(zw_retry_429_wait_ms(NULL, LONG_MAX, NOW, 10000), DAY_MS);
    ck_assert_int_eq(zw_retry_429_wait_ms(NULL, 86401, NOW, 10000), DAY_MS);
    ck_assert_int_eq(zw_retry_429_wait_ms(NULL, 86400, NOW, 10000), DAY_MS);
}
END_TEST

START_TEST(test_retry_after_edges)
{
    char big[4096];

    ck_assert_int_eq(zw_retry_after_ms(NULL, NOW), -1);
    /* A date read against a "now" far in the past or future. */
    ck_assert_int_eq(zw_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 0), DAY_MS);
    ck_assert_int_eq(zw_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", (time_t)4102444800), 0);
    ck_assert_int_eq(zw_retry_after_ms("Thu, 01 Jan 1970 00:00:01 GMT", 0), 1000);
    ck_assert_int_eq(zw_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", (time_t)-1), DAY_MS);
    /* Out-of-range clocks must not overflow the arithmetic. */
    if (sizeof(time_t) >= 8) {
        ck_assert_int_eq(zw_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", (time_t)INT64_MAX), -1);
        ck_assert_int_eq(zw_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", (time_t)INT64_MIN), -1);
        ck_assert_int_eq(zw_retry_after_ms("5", (time_t)INT64_MAX), 5000);
    }
    /* RFC 850 years follow "now": 94 is 1994 in 2015 and 2094 in 2080. */
    ck_assert_int_eq(zw_retry_after_ms("Sunday, 06-Nov-94 08:49:37 GMT", (time_t)3471292800),
                     DAY_MS);
    /* Long runs of digits or junk. */
    memset(big, '9', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(zw_retry_after_ms(big, NOW), -1);
    memset(big, 'x', sizeof(big) - 1);
    ck_assert_int_eq(zw_retry_after_ms(big, NOW), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("retry");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_classify, 0,
                        (int)(sizeof(classify_cases) / sizeof(classify_cases[0])));
    tcase_add_test(tc, test_class_names);
    tcase_add_test(tc, test_backoff_bounds);
    tcase_add_test(tc, test_backoff_edges);
    tcase_add_loop_test(tc, test_retry_after, 0,
                        (int)(sizeof(retry_after_cases) / sizeof(retry_after_cases[0])));
    tcase_add_test(tc, test_retry_after_edges);
    tcase_add_test(tc, test_429_wait);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

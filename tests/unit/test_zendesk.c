/* Zendesk request helpers: the auth header, escaping, URL building from the
 * configured base only, and reading Zendesk's error codes. No network: the
 * requests are prepared, never sent. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "zw/zendesk.h"

static const struct {
    const char *value;
    long total, remaining, resets;
} limit_cases[] = {
    {"total=30; remaining=29; resets=60", 30, 29, 60},
    {"total=30;remaining=0;resets=12", 30, 0, 12},
    {"remaining=5", -1, 5, -1},
    {"resets=60; total=30; remaining=1", 30, 1, 60},
    {"total=30; xremaining=9; remaining=2", 30, 2, -1},
    {"total=abc; remaining=-3", -1, -1, -1},
    {"", -1, -1, -1},
};

START_TEST(test_endpoint_limit)
{
    long t = 7, r = 7, s = 7;

    zw_zendesk_parse_endpoint_limit(limit_cases[_i].value, &t, &r, &s);
    ck_assert_msg(t == limit_cases[_i].total && r == limit_cases[_i].remaining &&
                      s == limit_cases[_i].resets,
                  "'%s': got %ld/%ld/%ld", limit_cases[_i].value, t, r, s);
}
END_TEST

START_TEST(test_basic_auth)
{
    /* base64("admin@acme.test/token:T1") */
    char *h = zw_zendesk_basic_auth("admin@acme.test", "T1");
    ck_assert_str_eq(h, "Basic YWRtaW5AYWNtZS50ZXN0L3Rva2VuOlQx");
    free(h);
    /* Lengths that need one and two padding characters. */
    h = zw_zendesk_basic_auth("a@b", "x");
    ck_assert_str_eq(h, "Basic YUBiL3Rva2VuOng=");
    free(h);
    h = zw_zendesk_basic_auth("a@b", "xy");
    ck_assert_str_eq(h, "Basic YUBiL3Rva2VuOnh5");
    free(h);
}
END_TEST

START_TEST(test_escape)
{
    char *e = zw_zendesk_escape("E 1/&x=y");
    ck_assert_str_eq(e, "E%201%2F%26x%3Dy");
    free(e);
}
END_TEST

START_TEST(test_url_from_config_only)
{
    zw_http_settings_t s = {.base_url = "https://{subdomain}.zendesk.com", .connect_to = "",
                            .ca_file = "", .timeout_ms = 1000, .user_agent = "t"};
    char err[128];
    zw_http_t *req = zw_http_new(&s, "acme", "GET", "/api/v2/users/me", NULL, "Basic x",
                                 ZW_ENDPOINT_READ, err, sizeof(err));

    ck_assert_ptr_nonnull(req);
    ck_assert_str_eq(req->url, "https://acme.zendesk.com/api/v2/users/me");
    ck_assert_str_eq(req->method, "GET");
    ck_assert_int_eq(req->rl_remaining, -1);
    zw_http_destroy(req);
    zw_http_destroy(NULL);
}
END_TEST

static zw_http_t *with_body(const char *body)
{
    zw_http_t *req = calloc(1, sizeof(*req));
    req->response = strdup(body);
    req->response_len = strlen(body);
    return req;
}

static const struct {
    const char *body;
    const char *code;
} error_cases[] = {
    {"{\"error\":\"RecordInvalid\",\"description\":\"Record validation errors\",\"details\":"
     "{\"email\":[{\"description\":\"Email: x is already being used\",\"error\":\"DuplicateValue\"}]}}",
     "DuplicateValue"},
    {"{\"error\":\"RecordNotFound\",\"description\":\"Not found\"}", "RecordNotFound"},
    {"{\"error\":{\"title\":\"Forbidden\",\"message\":\"no\"}}", "Forbidden"},
    {"Rate limit exceeded", ""},
    {"<html>oops</html>", ""},
    {"{\"details\":{\"email\":[]}}", ""},
    {"[]", ""},
};

START_TEST(test_error_codes)
{
    char code[64];
    zw_http_t *req = with_body(error_cases[_i].body);

    zw_http_error_code(req, code, sizeof(code));
    ck_assert_str_eq(code, error_cases[_i].code);
    free(req->response);
    free(req);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("zendesk");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_endpoint_limit, 0,
                        (int)(sizeof(limit_cases) / sizeof(limit_cases[0])));
    tcase_add_test(tc, test_basic_auth);
    tcase_add_test(tc, test_escape);
    tcase_add_test(tc, test_url_from_config_only);
    tcase_add_loop_test(tc, test_error_codes, 0, (int)(sizeof(error_cases) / sizeof(error_cases[0])));
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

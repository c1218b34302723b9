/* Admin endpoint over loopback: /healthz fresh and stalled, /readyz in both
 * states, /metrics with its content type, an unknown path, a wrong method,
 * bad listen strings, a taken port, and slow clients: a half-sent request
 * neither blocks another client nor the stop, and the per-address cap holds.
 * Nothing sleeps: staleness is a heartbeat in the past. */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zw/admin.h"
#include "zw/loop.h"

static const char *const TENANTS[] = {"acme"};

static zw_metrics_t *metrics;
static zw_admin_t *admin;

typedef struct resp_s {
    CURLcode rc;
    long code;
    char body[65536];
    size_t len;
    char content_type[128];
    char allow[64];
} resp_t;

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    resp_t *r = userp;
    size_t len = size * n;

    if (r->len + len >= sizeof(r->body))
        return 0; /* more than any answer here should be */
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
    resp_t *r = userp;
    size_t len = size * n;

    if (len > 7 && strncasecmp(data, "Allow: ", 7) == 0)
        snprintf(r->allow, sizeof(r->allow), "%.*s", (int)(len - 7 - 2), data + 7);
    return len;
}

/* One request to the admin on loopback; method is "GET", "HEAD" or "POST". */
static void request(int port, const char *method, const char *path, resp_t *r)
{
    CURL *c = curl_easy_init();
    char url[256];
    char *ct = NULL;

    ck_assert_ptr_nonnull(c);
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*"); /* an http_proxy in the environment */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "ready=1");
    r->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
    if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
        snprintf(r->content_type, sizeof(r->content_type), "%s", ct);
    curl_easy_cleanup(c);
}

static void get(const char *path, resp_t *r)
{
    request(zw_admin_port(admin), "GET", path, r);
    ck_assert_msg(r->rc == CURLE_OK, "GET %s: %s", path, curl_easy_strerror(r->rc));
}

/* A client that connects and then sends only `partial` (may be ""). */
static int slow_client(int port, const char *partial)
{
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    if (partial[0])
        ck_assert_int_eq(send(fd, partial, strlen(partial), 0), (ssize_t)strlen(partial));
    return fd;
}

static void setup(void)
{
    char err[256] = "";

    metrics = zw_metrics_new(TENANTS, 1, "9.9.9");
    ck_assert_ptr_nonnull(metrics);
    admin = zw_admin_start("127.0.0.1:0", metrics, err, sizeof(err));
    ck_assert_msg(admin != NULL, "start failed: %s", err);
    ck_assert_int_gt(zw_admin_port(admin), 0);
}

static void teardown(void)
{
    zw_admin_stop(admin);
    admin = NULL;
    zw_metrics_destroy(metrics);
    metrics = NULL;
}

START_TEST(test_healthz_fresh_and_stalled)
{
    resp_t r;

    /* Before the loop's first heartbeat, the start counts as one. */
    get("/healthz", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.body, "ok");
    ck_assert_str_eq(r.content_type, "text/plain; charset=utf-8");

    zw_admin_heartbeat(admin, zw_loop_now_ms() - ZW_ADMIN_STALL_MS - 1);
    get("/healthz", &r);
    ck_assert_int_eq(r.code, 503);
    ck_assert_str_eq(r.body, "stalled");

    /* Just inside the limit (with a second of slack for a slow machine). */
    zw_admin_heartbeat(admin, zw_loop_now_ms() - ZW_ADMIN_STALL_MS + 1000);
    get("/healthz", &r);
    ck_assert_int_eq(r.code, 200);

    zw_admin_heartbeat(admin, zw_loop_now_ms());
    get("/healthz", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.body, "ok");
}
END_TEST

START_TEST(test_readyz_states)
{
    char long_why[300];
    resp_t r;

    get("/readyz", &r);
    ck_assert_int_eq(r.code, 503);
    ck_assert_str_eq(r.body, "starting");

    zw_admin_set_ready(admin, false, "waiting for broker");
    get("/readyz", &r);
    ck_assert_int_eq(r.code, 503);
    ck_assert_str_eq(r.body, "waiting for broker");

    zw_admin_set_ready(admin, true, NULL);
    get("/readyz", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.body, "ready");

    zw_admin_set_ready(admin, false, "draining");
    get("/readyz", &r);
    ck_assert_int_eq(r.code, 503);
    ck_assert_str_eq(r.body, "draining");

    zw_admin_set_ready(admin, false, NULL);
    get("/readyz", &r);
    ck_assert_int_eq(r.code, 503);
    ck_assert_str_eq(r.body, "not ready");

    /* The reason is copied and capped. */
    memset(long_why, 'w', sizeof(long_why) - 1);
    long_why[sizeof(long_why) - 1] = '\0';
    zw_admin_set_ready(admin, false, long_why);
    memset(long_why, 'x', sizeof(long_why) - 1);
    get("/readyz", &r);
    ck_assert_int_eq(r.code, 503);
    ck_assert_uint_eq(r.len, 127);
    ck_assert(r.body[0] == 'w' && r.body[126] == 'w');
}
END_TEST

START_TEST(test_metrics_endpoint)
{
    resp_t r;

    zw_metrics_event_consumed(metrics, "joiner", "acme");
    zw_metrics_event_consumed(metrics, "joiner", "evil");
    get("/metrics", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    ck_assert_ptr_nonnull(strstr(r.body, "\nzendesk_worker_up 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "zendesk_worker_build_info{version=\"9.9.9\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(
        r.body, "zendesk_worker_events_consumed_total{type=\"joiner\",tenant=\"acme\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(
        r.body, "zendesk_worker_events_consumed_total{type=\"joiner\",tenant=\"unknown\"} 1\n"));
    /* A query string does not change the path. */
    get("/metrics?name[]=up", &r);
    ck_assert_int_eq(r.code, 200);
}
END_TEST

START_TEST(test_unknown_path_and_methods)
{
    resp_t r;

    get("/nope", &r);
    ck_assert_int_eq(r.code, 404);
    get("/", &r);
    ck_assert_int_eq(r.code, 404);
    get("/metrics/", &r);
    ck_assert_int_eq(r.code, 404);

    request(zw_admin_port(admin), "POST", "/readyz", &r);
    ck_assert_int_eq(r.rc, CURLE_OK);
    ck_assert_int_eq(r.code, 405);
    ck_assert_str_eq(r.allow, "GET, HEAD");
    ck_assert_str_eq(r.body, "method not allowed");

    /* HEAD is GET without a body. */
    request(zw_admin_port(admin), "HEAD", "/healthz", &r);
    ck_assert_int_eq(r.rc, CURLE_OK);
    ck_assert_int_eq(r.code, 200);
    ck_assert_uint_eq(r.len, 0);

    /* Still serving after all that. */
    get("/healthz", &r);
    ck_assert_int_eq(r.code, 200);
}
END_TEST

START_TEST(test_slow_client_blocks_nobody)
{
    int fd = slow_client(zw_admin_port(admin), "GET /metr");
    resp_t r;

    get("/healthz", &r);
    ck_assert_int_eq(r.code, 200);
    get("/metrics", &r);
    ck_assert_int_eq(r.code, 200);
    /* teardown stops the admin with this request still half-sent: the stop
     * must not wait for the client or its timeout. */
    close(fd);
    fd = slow_client(zw_admin_port(admin), "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    zw_admin_stop(admin);
    admin = NULL;
    close(fd);
}
END_TEST

START_TEST(test_per_address_cap)
{
    int fds[ZW_ADMIN_MAX_PER_IP];
    int port = zw_admin_port(admin);
    resp_t r;
    int tries;

    for (int i = 0; i < ZW_ADMIN_MAX_PER_IP; i++)
        fds[i] = slow_client(port, "");
    /* One address over its cap is turned away at once, not queued. */
    request(port, "GET", "/healthz", &r);
    ck_assert_msg(r.rc != CURLE_OK, "over the cap but got %ld", r.code);
    ck_assert_msg(r.rc != CURLE_OPERATION_TIMEDOUT, "over the cap and left waiting");
    for (int i = 0; i < ZW_ADMIN_MAX_PER_IP; i++)
        close(fds[i]);
    /* MHD frees the slots as it sees the closes; a few loopback calls at
     * most. */
    for (tries = 0; tries < 100; tries++) {
        request(port, "GET", "/healthz", &r);
        if (r.rc == CURLE_OK)
            break;
    }
    ck_assert_int_eq(r.rc, CURLE_OK);
    ck_assert_int_eq(r.code, 200);
}
END_TEST

/* listen strings refused before binding, and the message expected. */
static const struct bad_listen {
    const char *listen;
    const char *expect;
} bad_listens[] = {
    {"", "admin.listen is empty"},
    {"9464", "admin.listen \"9464\": expected host:port"},
    {"127.0.0.1:", "the port must be 0 to 65535"},
    {"127.0.0.1:65536", "the port must be 0 to 65535"},
    {"127.0.0.1:94x4", "the port must be 0 to 65535"},
    {"127.0.0.1:-1", "the port must be 0 to 65535"},
    {"::1:9464", "an IPv6 address goes in brackets"},
    {"[::1", "expected [address]:port"},
    {"[::1]9464", "expected [address]:port"},
};

START_TEST(test_bad_listen)
{
    const struct bad_listen *c = &bad_listens[_i];
    char err[256] = "";
    zw_metrics_t *m = zw_metrics_new(NULL, 0, "v");

    ck_assert_ptr_nonnull(m);
    /* Numeric hosts only, so no case waits on a resolver. */
    ck_assert_ptr_null(zw_admin_start(c->listen, m, err, sizeof(err)));
    ck_assert_msg(strstr(err, c->expect) != NULL, "%s: got \"%s\"", c->listen, err);
    zw_metrics_destroy(m);
}
END_TEST

START_TEST(test_port_taken_and_misc)
{
    char listen[64], err[256] = "";
    zw_admin_t *other;

    snprintf(listen, sizeof(listen), "127.0.0.1:%d", zw_admin_port(admin));
    other = zw_admin_start(listen, metrics, err, sizeof(err));
    ck_assert_ptr_null(other);
    ck_assert_msg(strstr(err, "cannot start the HTTP server") != NULL, "got \"%s\"", err);
    ck_assert_msg(strstr(err, "in use") != NULL, "MHD's reason lost: \"%s\"", err);
    ck_assert_ptr_null(zw_admin_start("127.0.0.1:0", NULL, err, sizeof(err)));
    ck_assert_str_eq(err, "admin endpoint: no metrics registry");

    /* Any address: an empty host or "*". */
    other = zw_admin_start(":0", metrics, err, sizeof(err));
    ck_assert_msg(other != NULL, "%s", err);
    ck_assert_int_gt(zw_admin_port(other), 0);
    zw_admin_stop(other);

    zw_admin_stop(NULL);
    zw_admin_heartbeat(NULL, 1);
    zw_admin_set_ready(NULL, true, "x");
    ck_assert_int_eq(zw_admin_port(NULL), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("http");
    SRunner *sr;
    int failed;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "curl_global_init failed\n");
        return EXIT_FAILURE;
    }
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_healthz_fresh_and_stalled);
    tcase_add_test(tc, test_readyz_states);
    tcase_add_test(tc, test_metrics_endpoint);
    tcase_add_test(tc, test_unknown_path_and_methods);
    tcase_add_test(tc, test_slow_client_blocks_nobody);
    tcase_add_test(tc, test_per_address_cap);
    tcase_add_loop_test(tc, test_bad_listen, 0,
                        (int)(sizeof(bad_listens) / sizeof(bad_listens[0])));
    tcase_add_test(tc, test_port_taken_and_misc);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

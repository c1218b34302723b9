/*
 * Unit tests for zendesk-sim's pure helpers (util.c, config parsing): no network, no sleeping.
 * Table-driven; prints "N passed, N failed" and exits non-zero on any failure.
 */
#include "sim.h"

#include <stdio.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (cond) {                                                        \
            passed++;                                                      \
        } else {                                                           \
            failed++;                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                  \
    } while (0)

static void test_glob(void)
{
    static const struct {
        const char *pattern, *text;
        bool match;
    } cases[] = {
        {"*", "/api/v2/users/1", true},
        {"/api/v2/users/*", "/api/v2/users/1", true},
        {"/api/v2/users/*", "/api/v2/users", false},
        {"/api/v2/users/?", "/api/v2/users/12", false},
        {"/api/*/me", "/api/v2/users/me", true},
        {"/api/v2/users", "/api/v2/users", true},
        {"", "", true},
        {"", "x", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK(sim_glob(cases[i].pattern, cases[i].text) == cases[i].match);
}

static void test_base64(void)
{
    static const struct {
        const char *plain, *encoded;
    } cases[] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
        {"admin@acme.test/token:T0KEN", "YWRtaW5AYWNtZS50ZXN0L3Rva2VuOlQwS0VO"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char enc[128];
        unsigned char dec[128];
        CHECK(sim_b64_encode((const unsigned char *)cases[i].plain, strlen(cases[i].plain), enc, sizeof(enc)) >= 0);
        CHECK(strcmp(enc, cases[i].encoded) == 0);
        CHECK(sim_b64_decode(cases[i].encoded, dec, sizeof(dec)) == (int)strlen(cases[i].plain));
        CHECK(strcmp((char *)dec, cases[i].plain) == 0);
    }
    unsigned char small[4];
    CHECK(sim_b64_decode("!!!", small, sizeof(small)) == -1);
    CHECK(sim_b64_decode("Zm9vYmFy", small, sizeof(small)) == -1); /* does not fit */
    char tiny[4];
    CHECK(sim_b64_encode((const unsigned char *)"foo", 3, tiny, sizeof(tiny)) == -1);
}

static void test_cursor(void)
{
    char cur[64];
    int64_t v = 0;
    sim_cursor_encode('u', 360000000123LL, cur, sizeof(cur));
    CHECK(sim_cursor_decode(cur, 'u', &v) == 0 && v == 360000000123LL);
    CHECK(sim_cursor_decode(cur, 'i', &v) == -1);   /* another endpoint's cursor */
    CHECK(sim_cursor_decode("garbage", 'u', &v) == -1);
    CHECK(sim_cursor_decode("", 'u', &v) == -1);
}

static void test_email(void)
{
    static const struct {
        const char *email;
        bool ok;
    } cases[] = {
        {"a@b.co", true}, {"first.last+tag@acme.test", true}, {"bad", false}, {"@b.co", false},
        {"a@b", false}, {"a@b.", false}, {"a b@c.de", false}, {"a@@b.co", false}, {"a@.co", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK(sim_email_valid(cases[i].email) == cases[i].ok);
}

static void test_map(void)
{
    sim_map_t map;
    static int vals[1000];
    char key[32];
    sim_map_init(&map);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK(sim_map_put(&map, key, &vals[i]) == 0);
    }
    CHECK(map.count == 1000);
    CHECK(sim_map_get(&map, "k999") == &vals[999]);
    sim_map_del(&map, "k999");
    CHECK(sim_map_get(&map, "k999") == NULL && map.count == 999);
    CHECK(sim_map_put(&map, "k1", &vals[5]) == 0 && sim_map_get(&map, "k1") == &vals[5] && map.count == 999);
    sim_map_cleanup(&map);
    CHECK(sim_map_get(&map, "k1") == NULL);
}

static void test_config(void)
{
    sim_config_t cfg;
    char err[256];
    sim_config_defaults(&cfg);
    CHECK(cfg.rpm == 700 && !cfg.bulk_import && cfg.limits_enabled);
    CHECK(sim_config_parse(&cfg, "subdomain=Acme,email=a@acme.test,token=T,rpm=2500,bulk_import=true,"
                                 "error_statuses=500|503,error_rate=0.25", err, sizeof(err)) == 0);
    CHECK(strcmp(cfg.subdomain, "acme") == 0 && cfg.rpm == 2500 && cfg.bulk_import);
    CHECK(cfg.n_error_statuses == 2 && cfg.error_statuses[1] == 503 && cfg.error_rate == 0.25);
    CHECK(sim_config_parse(&cfg, "rpm=-1", err, sizeof(err)) == -1 && strstr(err, "rpm"));
    CHECK(sim_config_parse(&cfg, "error_rate=1.5", err, sizeof(err)) == -1);
    CHECK(sim_config_parse(&cfg, "nokey", err, sizeof(err)) == -1);
    CHECK(sim_config_parse(&cfg, "colour=blue", err, sizeof(err)) == -1 && strstr(err, "colour"));
    CHECK(sim_config_parse(&cfg, "subdomain=a.b", err, sizeof(err)) == -1);
}

static void test_iso8601(void)
{
    char out[32];
    sim_iso8601(0, out, sizeof(out));
    CHECK(strcmp(out, "1970-01-01T00:00:00Z") == 0);
    sim_iso8601(1798113600, out, sizeof(out));
    CHECK(strcmp(out, "2026-12-24T12:00:00Z") == 0);
}

int main(void)
{
    test_glob();
    test_base64();
    test_cursor();
    test_email();
    test_map();
    test_config();
    test_iso8601();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

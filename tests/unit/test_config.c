/* Config loader: good files load with the right values and defaults; each
 * kind of bad file is refused with the file, the line and the key. Cases are
 * a table: the file's text and the message expected. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zw/config.h"

static char tmpdir[256];

static void setup(void)
{
    FILE *f;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/zw-test-config.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    {
        char p[512];
        snprintf(p, sizeof(p), "%s/acme-token", tmpdir);
        f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fputs("s3cr3t-token\n", f);
        fclose(f);
        snprintf(p, sizeof(p), "%s/empty-token", tmpdir);
        f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fclose(f);
    }
    setenv("ZW_TEST_GLOBEX_SECRET", "globex-secret", 1);
    unsetenv("ZW_TEST_UNSET_SECRET");
}

static void teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Writes text to tmpdir/name and returns the path (static buffer). */
static const char *write_config(const char *name, const char *text)
{
    static char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

#define GOOD_TENANTS                                                                               \
    "zendesk: {\n"                                                                                 \
    "  tenants = ( { subdomain = \"acme\";\n"                                                      \
    "                auth: { type = \"api_token\"; email = \"admin@acme.example\";\n"              \
    "                        token_file = \"acme-token\"; }; } );\n"                               \
    "};\n"

START_TEST(test_minimal_defaults)
{
    char err[1024] = "";
    const char *path = write_config("min.cfg", "kafka: { bootstrap_servers = \"127.0.0.1:9092\"; };\n" GOOD_TENANTS);
    zw_config_t *c = zw_config_load(path, err, sizeof(err));

    ck_assert_msg(c != NULL, "load failed: %s", err);
    ck_assert_str_eq(c->kafka.bootstrap_servers, "127.0.0.1:9092");
    ck_assert_str_eq(c->kafka.group_id, "zendesk-worker");
    ck_assert_str_eq(c->kafka.topic_provisioning, "zendesk.provisioning.requests");
    ck_assert_str_eq(c->kafka.topic_sync, "zendesk.sync.requests");
    ck_assert_str_eq(c->kafka.topic_results, "zendesk.provisioning.results");
    ck_assert_str_eq(c->kafka.topic_snapshots, "zendesk.user.snapshots");
    ck_assert_str_eq(c->kafka.topic_dead_letter, "zendesk.worker.dlq");
    ck_assert_str_eq(c->zendesk.base_url, "https://{subdomain}.zendesk.com");
    ck_assert_str_eq(c->zendesk.connect_to, "");
    ck_assert_int_eq(c->zendesk.timeout_ms, 30000);
    ck_assert_uint_eq(c->zendesk.n_tenants, 1);
    ck_assert_str_eq(c->zendesk.tenants[0].subdomain, "acme");
    ck_assert_int_eq(c->zendesk.tenants[0].plan_rpm, 700);
    ck_assert_int_eq(c->zendesk.tenants[0].leaver_policy, ZW_LEAVER_DOWNGRADE_SUSPEND);
    ck_assert_int_eq(c->zendesk.tenants[0].auth_type, ZW_AUTH_API_TOKEN);
    ck_assert_str_eq(c->zendesk.tenants[0].email, "admin@acme.example");
    /* The file's trailing newline is not part of the token. */
    ck_assert_str_eq(c->zendesk.tenants[0].token, "s3cr3t-token");
    ck_assert_int_eq(c->worker.max_in_flight, 512);
    ck_assert_int_eq(c->worker.max_attempts, 8);
    ck_assert_int_eq(c->worker.backoff_base_ms, 500);
    ck_assert_int_eq(c->worker.backoff_max_ms, 60000);
    ck_assert_int_eq(c->worker.shutdown_timeout_ms, 25000);
    ck_assert(!c->worker.dry_run);
    /* The bulk path is on by default, with Zendesk's 30-job cap. */
    ck_assert_int_eq(c->worker.bulk_min_items, 10);
    ck_assert_int_eq(c->worker.bulk_linger_ms, 200);
    ck_assert_int_eq(c->worker.bulk_poll_ms, 1000);
    ck_assert_int_eq(c->worker.bulk_refused_retry_ms, 3600000);
    ck_assert_int_eq(c->zendesk.tenants[0].max_jobs, 30);
    ck_assert_str_eq(c->admin.listen, "0.0.0.0:9464");
    ck_assert_int_eq(c->log.level, ZW_LOG_INFO);
    ck_assert_int_eq(c->log.format, ZW_LOG_FORMAT_JSON);
    ck_assert(c->log.format_auto); /* text on a terminal, decided at startup */
    ck_assert_ptr_eq(zw_config_tenant(c, "ACME"), &c->zendesk.tenants[0]);
    ck_assert_ptr_null(zw_config_tenant(c, "globex"));
    zw_config_destroy(c);
}
END_TEST

START_TEST(test_full_file)
{
    char err[1024] = "";
    const char *path = write_config(
        "full.cfg",
        "kafka: { bootstrap_servers = \"k1:9092,k2:9092\"; group_id = \"zw-prod\";\n"
        "         topics: { provisioning = \"in.prov\"; sync = \"in.sync\"; results = \"out.res\";\n"
        "                   snapshots = \"out.snap\"; dead_letter = \"out.dlq\"; };\n"
        "         properties = [ \"security.protocol=SASL_SSL\", \"sasl.mechanism=SCRAM-SHA-512\",\n"
        "                        \"sasl.username=zw\", \"sasl.password=${env:ZW_TEST_GLOBEX_SECRET}\" ];\n"
        "};\n"
        "zendesk: { base_url = \"http://{subdomain}.zendesk.test\"; connect_to = \"127.0.0.1:8080\";\n"
        "  timeout_ms = 5000;\n"
        "  tenants = ( { subdomain = \"acme\"; plan_rpm = 2500; leaver_policy = \"delete\";\n"
        "                auth: { type = \"api_token\"; email = \"a@acme.example\"; token_file = \"acme-token\"; }; },\n"
        "              { subdomain = \"globex\"; plan_rpm = 400;\n"
        "                auth: { type = \"oauth_client_credentials\"; client_id = \"zw\";\n"
        "                        client_secret_env = \"ZW_TEST_GLOBEX_SECRET\"; }; } );\n"
        "};\n"
        "worker: { max_in_flight = 64; max_attempts = 3; backoff_base_ms = 10; backoff_max_ms = 100;\n"
        "          shutdown_timeout_ms = 1000; dry_run = true; };\n"
        "admin: { listen = \"\"; };\n"
        "log: { level = \"debug\"; format = \"text\"; };\n");
    zw_config_t *c = zw_config_load(path, err, sizeof(err));

    ck_assert_msg(c != NULL, "load failed: %s", err);
    ck_assert_str_eq(c->kafka.group_id, "zw-prod");
    ck_assert_str_eq(c->kafka.topic_dead_letter, "out.dlq");
    ck_assert_uint_eq(c->kafka.n_properties, 4);
    ck_assert_str_eq(c->kafka.property_names[3], "sasl.password");
    ck_assert_str_eq(c->kafka.property_values[3], "globex-secret");
    ck_assert(zw_config_property_is_secret("sasl.password"));
    ck_assert(!zw_config_property_is_secret("security.protocol"));
    ck_assert_str_eq(c->zendesk.connect_to, "127.0.0.1:8080");
    ck_assert_uint_eq(c->zendesk.n_tenants, 2);
    ck_assert_int_eq(c->zendesk.tenants[0].plan_rpm, 2500);
    ck_assert_int_eq(c->zendesk.tenants[0].leaver_policy, ZW_LEAVER_DELETE);
    ck_assert_int_eq(c->zendesk.tenants[1].auth_type, ZW_AUTH_OAUTH_CLIENT_CREDENTIALS);
    ck_assert_str_eq(c->zendesk.tenants[1].client_secret, "globex-secret");
    ck_assert_str_eq(c->zendesk.tenants[1].scope, "users:read users:write");
    ck_assert(c->worker.dry_run);
    ck_assert_str_eq(c->admin.listen, "");
    ck_assert_int_eq(c->log.level, ZW_LOG_DEBUG);
    ck_assert_int_eq(c->log.format, ZW_LOG_FORMAT_TEXT);
    ck_assert(!c->log.format_auto);
    zw_config_destroy(c);
}
END_TEST

/* Each bad file and the exact "file:line: key: problem" tail expected. */
static const struct bad_case {
    const char *name;
    const char *text;
    const char *expect; /* appended to the path in the message */
} bad_cases[] = {
    {"syntax", "kafka: { bootstrap_servers = \"x\";\n  = 3; };\n", ":2: syntax error"},
    {"unknown_top", "kafka: { bootstrap_servers = \"x\"; };\n" GOOD_TENANTS "loggin: { };\n",
     ":7: loggin: unknown key (did you mean 'log'?)"},
    {"unknown_nested", "kafka: { bootstrap_servers = \"x\"; group = \"g\"; };\n" GOOD_TENANTS,
     ":1: kafka.group: unknown key"},
    {"typo_suggestion", "kafka: { bootstrap_server = \"x\"; };\n" GOOD_TENANTS,
     ":1: kafka.bootstrap_server: unknown key (did you mean 'bootstrap_servers'?)"},
    {"missing_kafka", GOOD_TENANTS, ": kafka: missing required key"},
    {"missing_bootstrap", "kafka: {\n group_id = \"g\"; };\n" GOOD_TENANTS,
     ":1: kafka.bootstrap_servers: missing required key"},
    {"wrong_type_string", "kafka: { bootstrap_servers = 9092; };\n" GOOD_TENANTS,
     ":1: kafka.bootstrap_servers: expected a string, got an integer"},
    {"wrong_type_int", "kafka: { bootstrap_servers = \"x\"; };\n" GOOD_TENANTS
                       "worker: {\n max_in_flight = \"lots\"; };\n",
     ":8: worker.max_in_flight: expected an integer, got a string"},
    {"wrong_type_bool", "kafka: { bootstrap_servers = \"x\"; };\n" GOOD_TENANTS
                        "worker: { dry_run = \"yes\"; };\n",
     ":7: worker.dry_run: expected a boolean (true or false), got a string"},
    {"out_of_range", "kafka: { bootstrap_servers = \"x\"; };\n" GOOD_TENANTS
                     "worker: { max_attempts = 0; };\n",
     ":7: worker.max_attempts: 0 is out of range [1, 100]"},
    {"bulk_min_items_range", "kafka: { bootstrap_servers = \"x\"; };\n" GOOD_TENANTS
                             "worker: { bulk_min_items = 101; };\n",
     ":7: worker.bulk_min_items: 101 is out of range [0, 100]"},
    {"bulk_poll_ms_range", "kafka: { bootstrap_servers = \"x\"; };\n" GOOD_TENANTS
                           "worker: { bulk_poll_ms = 10; };\n",
     ":7: worker.bulk_poll_ms: 10 is out of range [100, 600000]"},
    {"backoff_order", "kafka: { bootstrap_servers = \"x\"; };\n" GOOD_TENANTS
                      "worker: { backoff_base_ms = 5000; backoff_max_ms = 100; };\n",
     ":7: worker.backoff_base_ms: 5000 is larger than worker.backoff_max_ms (100)"},
    {"uppercase_subdomain",
     "kafka: { bootstrap_servers = \"x\"; };\n"
     "zendesk: { tenants = (\n"
     "  { subdomain = \"acme\"; auth: { type = \"api_token\"; email = \"a@b.c\"; token_file = \"acme-token\"; }; },\n"
     "  { subdomain = \"ACME\"; auth: { type = \"api_token\"; email = \"a@b.c\"; token_file = \"acme-token\"; }; }\n"
     "); };\n",
     ":4: zendesk.tenants[1].subdomain: must be a Zendesk subdomain: lowercase letters, digits and '-'"},
    {"duplicate_tenant_same_case",
     "kafka: { bootstrap_servers = \"x\"; };\n"
     "zendesk: { tenants = (\n"
     "  { subdomain = \"acme\"; auth: { type = \"api_token\"; email = \"a@b.c\"; token_file = \"acme-token\"; }; },\n"
     "  { subdomain = \"acme\"; auth: { type = \"api_token\"; email = \"a@b.c\"; token_file = \"acme-token\"; }; }\n"
     "); };\n",
     ":4: zendesk.tenants[1].subdomain: duplicate tenant 'acme' (first defined at line 3)"},
    {"no_tenants", "kafka: { bootstrap_servers = \"x\"; };\nzendesk: { tenants = ( ); };\n",
     ":2: zendesk.tenants: at least one tenant is required"},
    {"unreadable_secret",
     "kafka: { bootstrap_servers = \"x\"; };\n"
     "zendesk: { tenants = ( { subdomain = \"acme\";\n"
     "   auth: { type = \"api_token\"; email = \"a@b.c\";\n"
     "           token_file = \"/nonexistent/zw-token\"; }; } ); };\n",
     ":4: zendesk.tenants[0].auth.token_file: cannot read secret file '/nonexistent/zw-token': "
     "No such file or directory"},
    {"empty_secret",
     "kafka: { bootstrap_servers = \"x\"; };\n"
     "zendesk: { tenants = ( { subdomain = \"acme\";\n"
     "   auth: { type = \"api_token\"; email = \"a@b.c\"; token_file = \"empty-token\"; }; } ); };\n",
     "empty-token' is empty"},
    {"unset_env_secret",
     "kafka: { bootstrap_servers = \"x\"; };\n"
     "zendesk: { tenants = ( { subdomain = \"g\";\n"
     "   auth: { type = \"oauth_client_credentials\"; client_id = \"zw\";\n"
     "           client_secret_env = \"ZW_TEST_UNSET_SECRET\"; }; } ); };\n",
     ":4: zendesk.tenants[0].auth.client_secret_env: environment variable "
     "'ZW_TEST_UNSET_SECRET' is not set or empty"},
    {"inline_secret_refused",
     "kafka: { bootstrap_servers = \"x\"; };\n"
     "zendesk: { tenants = ( { subdomain = \"acme\";\n"
     "   auth: { type = \"api_token\"; email = \"a@b.c\"; token = \"inline\"; }; } ); };\n",
     ":3: zendesk.tenants[0].auth.token: unknown key"},
    {"missing_secret",
     "kafka: { bootstrap_servers = \"x\"; };\n"
     "zendesk: { tenants = ( { subdomain = \"acme\";\n"
     "   auth: { type = \"api_token\"; email = \"a@b.c\"; }; } ); };\n",
     ":3: zendesk.tenants[0].auth.token_file: missing required key (or 'token_env')"},
    {"both_secret_sources",
     "kafka: { bootstrap_servers = \"x\"; };\n"
     "zendesk: { tenants = ( { subdomain = \"acme\";\n"
     "   auth: { type = \"api_token\"; email = \"a@b.c\"; token_file = \"acme-token\";\n"
     "           token_env = \"X\"; }; } ); };\n",
     ":4: zendesk.tenants[0].auth.token_env: set only one of 'token_file' and 'token_env'"},
    {"bad_auth_type",
     "kafka: { bootstrap_servers = \"x\"; };\n"
     "zendesk: { tenants = ( { subdomain = \"acme\";\n"
     "   auth: { type = \"password\"; }; } ); };\n",
     ":3: zendesk.tenants[0].auth.type: 'password' is not one of: api_token, "
     "oauth_client_credentials"},
    {"oauth_key_on_token_auth",
     "kafka: { bootstrap_servers = \"x\"; };\n"
     "zendesk: { tenants = ( { subdomain = \"acme\";\n"
     "   auth: { type = \"api_token\"; email = \"a@b.c\"; token_file = \"acme-token\";\n"
     "           client_id = \"zw\"; }; } ); };\n",
     ":4: zendesk.tenants[0].auth.client_id: unknown key"},
    {"bad_policy",
     "kafka: { bootstrap_servers = \"x\"; };\n"
     "zendesk: { tenants = ( { subdomain = \"acme\"; leaver_policy = \"fire\";\n"
     "   auth: { type = \"api_token\"; email = \"a@b.c\"; token_file = \"acme-token\"; }; } ); };\n",
     ":2: zendesk.tenants[0].leaver_policy: 'fire' is not one of: downgrade_suspend, suspend, "
     "delete"},
    {"base_url_without_subdomain",
     "kafka: { bootstrap_servers = \"x\"; };\n"
     "zendesk: { base_url = \"https://evil.example/{subdomain}\";\n"
     " tenants = ( { subdomain = \"acme\";\n"
     "   auth: { type = \"api_token\"; email = \"a@b.c\"; token_file = \"acme-token\"; }; } ); };\n",
     ":2: zendesk.base_url: must be http(s)://... with '{subdomain}' once, in the host"},
    {"bad_connect_to",
     "kafka: { bootstrap_servers = \"x\"; };\n"
     "zendesk: { connect_to = \"localhost\";\n"
     " tenants = ( { subdomain = \"acme\";\n"
     "   auth: { type = \"api_token\"; email = \"a@b.c\"; token_file = \"acme-token\"; }; } ); };\n",
     ":2: zendesk.connect_to: must be empty or \"host:port\""},
    {"tenants_not_list", "kafka: { bootstrap_servers = \"x\"; };\nzendesk: { tenants = \"acme\"; };\n",
     ":2: zendesk.tenants: expected a list ( { ... }, ... ), got a string"},
    {"bad_property_syntax",
     "kafka: { bootstrap_servers = \"x\";\n  properties = [ \"no-equals\" ]; };\n" GOOD_TENANTS,
     ":2: kafka.properties[0]: expected \"key=value\", got \"no-equals\""},
    {"unknown_property",
     "kafka: { bootstrap_servers = \"x\";\n  properties = [ \"fetch.wait.max.ms=10\", \"no.such.property=1\" ]; };\n" GOOD_TENANTS,
     ":2: kafka.properties[1]: librdkafka rejects 'no.such.property': No such configuration "
     "property"},
    {"managed_property",
     "kafka: { bootstrap_servers = \"x\";\n  properties = [ \"enable.auto.commit=true\" ]; };\n" GOOD_TENANTS,
     ":2: kafka.properties[0]: 'enable.auto.commit' cannot be set here: the worker commits only "
     "what has a delivered result"},
    {"same_topic_in_and_out",
     "kafka: { bootstrap_servers = \"x\";\n  topics: { results = \"zendesk.provisioning.requests\"; }; };\n" GOOD_TENANTS,
     ":2: kafka.topics.results: topic 'zendesk.provisioning.requests' is also used as "
     "kafka.topics.provisioning"},
    {"bad_topic", "kafka: { bootstrap_servers = \"x\";\n  topics: { sync = \"a topic\"; }; };\n" GOOD_TENANTS,
     ":2: kafka.topics.sync: 'a topic' is not a valid topic name"},
    {"bad_log_level", "kafka: { bootstrap_servers = \"x\"; };\n" GOOD_TENANTS "log: { level = \"loud\"; };\n",
     ":7: log.level: 'loud' is not one of: debug, info, warn, error"},
    {"bad_log_format", "kafka: { bootstrap_servers = \"x\"; };\n" GOOD_TENANTS "log: { format = \"xml\"; };\n",
     ":7: log.format: 'xml' is not one of: auto, json, text"},
    {"bad_listen", "kafka: { bootstrap_servers = \"x\"; };\n" GOOD_TENANTS "admin: { listen = \"9464\"; };\n",
     ":7: admin.listen: must be empty (disabled) or \"host:port\""},
    {"group_expected", "kafka = \"x\";\n" GOOD_TENANTS,
     ":1: kafka: expected a group { ... }, got a string"},
};

START_TEST(test_bad_config)
{
    const struct bad_case *bc = &bad_cases[_i];
    char err[1024] = "", expected[1024];
    const char *path = write_config("bad.cfg", bc->text);
    zw_config_t *c = zw_config_load(path, err, sizeof(err));

    ck_assert_msg(c == NULL, "case %s: a bad file was accepted", bc->name);
    /* The message starts with the file's path, then names line and key. */
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "case %s: message lacks the path: %s",
                  bc->name, err);
    snprintf(expected, sizeof(expected), "%s", bc->expect);
    ck_assert_msg(strstr(err, expected) != NULL, "case %s:\n  expected: ...%s\n  got:      %s",
                  bc->name, expected, err);
    /* No secret ever reaches an error message. */
    ck_assert_msg(strstr(err, "s3cr3t") == NULL && strstr(err, "globex-secret") == NULL,
                  "case %s: secret in message: %s", bc->name, err);
}
END_TEST

START_TEST(test_missing_file)
{
    char err[1024] = "";
    zw_config_t *c = zw_config_load("/nonexistent/zw.cfg", err, sizeof(err));

    ck_assert_ptr_null(c);
    ck_assert_str_eq(err, "/nonexistent/zw.cfg: cannot read the file: No such file or directory");
}
END_TEST

START_TEST(test_example_config_is_valid)
{
    /* deploy/config/zendesk-worker.cfg is what users copy: it must load. */
    char err[1024] = "", path[1024];
    const char *src = getenv("ZW_SOURCE_DIR");
    zw_config_t *c;

    ck_assert_ptr_nonnull(src);
    snprintf(path, sizeof(path), "%s/deploy/config/zendesk-worker.cfg", src);
    c = zw_config_load(path, err, sizeof(err));
    ck_assert_msg(c != NULL, "example config refused: %s", err);
    ck_assert_uint_eq(c->zendesk.n_tenants, 2);
    ck_assert_int_eq(c->zendesk.tenants[1].auth_type, ZW_AUTH_OAUTH_CLIENT_CREDENTIALS);
    zw_config_destroy(c);
}
END_TEST

START_TEST(test_policy_names_round_trip)
{
    zw_leaver_policy_t p;
    const zw_leaver_policy_t all[] = {ZW_LEAVER_DOWNGRADE_SUSPEND, ZW_LEAVER_SUSPEND,
                                      ZW_LEAVER_DELETE};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        ck_assert_int_eq(zw_leaver_policy_parse(zw_leaver_policy_name(all[i]), &p), 0);
        ck_assert_int_eq(p, all[i]);
    }
    ck_assert_int_eq(zw_leaver_policy_parse("Suspend", &p), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_minimal_defaults);
    tcase_add_test(tc, test_full_file);
    tcase_add_loop_test(tc, test_bad_config, 0, (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_example_config_is_valid);
    tcase_add_test(tc, test_policy_names_round_trip);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

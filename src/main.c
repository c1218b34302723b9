/* zendesk-worker's command line: parses arguments and wires the modules
 * together. The only place that exits the process, but for core.c's signal
 * handler on a second SIGTERM/SIGINT (_exit(130)). */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json_c_version.h>
#include <librdkafka/rdkafka.h>

#include "zw/config.h"
#include "zw/event.h"
#include "zw/log.h"
#include "zw/version.h"
#include "zw/worker.h"

#define EXIT_USAGE 64   /* sysexits.h EX_USAGE */
#define EXIT_DATAERR 65 /* sysexits.h EX_DATAERR */
#define EVENT_FILE_MAX (16 * 1024 * 1024)

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: zendesk-worker COMMAND [OPTIONS]\n"
            "\n"
            "Keeps Zendesk accounts in step with HR events published to Kafka.\n"
            "\n"
            "Commands:\n"
            "  run -c FILE            join the consumer group and process events until\n"
            "                         SIGTERM or SIGINT (a second signal exits at once)\n"
            "  check-config -c FILE   validate FILE (and read its secrets) without starting;\n"
            "                         exit 0 if it is valid, 78 if not\n"
            "  sync -c FILE --tenant SUBDOMAIN [--out FILE.ndjson] [--mode full|incremental]\n"
            "       [--cursor CURSOR]\n"
            "                         one user snapshot of a tenant without Kafka, as NDJSON\n"
            "                         (stdout without --out), with progress on a terminal\n"
            "  validate-event [--sync] FILE...\n"
            "                         check provisioning requests (or, with --sync, sync\n"
            "                         requests) as the worker would; exit 0 if all are\n"
            "                         valid, 65 if not\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE      the configuration file (libconfig syntax)\n"
            "  -h, --help             show this help\n"
            "  -V, --version          show the version and library versions\n"
            "\n"
            "Exit codes: 0 success, 64 usage error, 69 a dependency is unavailable,\n"
            "            70 internal error, 78 configuration error.\n"
            "Documentation: README.md and docs/ in the source tree.\n");
}

static void version(void)
{
    curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);

    printf("%s %s\n", ZW_NAME, ZW_VERSION);
    printf("librdkafka %s, libcurl %s, json-c %s\n", rd_kafka_version_str(), cv->version,
           json_c_version());
}

/* Prints what the file configures, without any secret. */
static void print_summary(const zw_config_t *c)
{
    printf("%s: OK\n", c->path);
    printf("  kafka: %s, group %s, %zu extra properties\n", c->kafka.bootstrap_servers,
           c->kafka.group_id, c->kafka.n_properties);
    printf("  topics: in %s, %s; out %s, %s, %s\n", c->kafka.topic_provisioning,
           c->kafka.topic_sync, c->kafka.topic_results, c->kafka.topic_snapshots,
           c->kafka.topic_dead_letter);
    printf("  zendesk: %s%s%s, timeout %d ms\n", c->zendesk.base_url,
           *c->zendesk.connect_to ? " via " : "", c->zendesk.connect_to, c->zendesk.timeout_ms);
    for (size_t i = 0; i < c->zendesk.n_tenants; i++) {
        const zw_tenant_config_t *t = &c->zendesk.tenants[i];
        printf("  tenant %s: %s, %d requests/min, leavers %s\n", t->subdomain,
               zw_auth_type_name(t->auth_type), t->plan_rpm,
               zw_leaver_policy_name(t->leaver_policy));
    }
    printf("  worker: max_in_flight %d, max_attempts %d%s\n", c->worker.max_in_flight,
           c->worker.max_attempts, c->worker.dry_run ? ", DRY RUN" : "");
    if (c->worker.bulk_min_items > 0)
        printf("  bulk: from %d waiting writes per tenant, linger %d ms, poll %d ms\n",
               c->worker.bulk_min_items, c->worker.bulk_linger_ms, c->worker.bulk_poll_ms);
    else
        printf("  bulk: off (single calls only)\n");
}

/* Validates each file as a provisioning request, one line per file. */
static int validate_events(int argc, char **argv, bool sync)
{
    int invalid = 0;

    for (int i = 0; i < argc; i++) {
        char errstr[512], *event_id = NULL, *buf;
        zw_event_t event;
        zw_event_error_t err;
        size_t len;
        FILE *f = fopen(argv[i], "rb");

        if (!f) {
            printf("%s: unreadable\n", argv[i]);
            invalid++;
            continue;
        }
        buf = malloc(EVENT_FILE_MAX + 1);
        len = buf ? fread(buf, 1, EVENT_FILE_MAX + 1, f) : 0;
        fclose(f);
        if (!buf) {
            fprintf(stderr, "zendesk-worker: out of memory\n");
            return ZW_EXIT_SOFTWARE;
        }
        if (sync) {
            zw_sync_request_t req;
            err = zw_sync_request_parse(buf, len, EVENT_FILE_MAX, &req, &event_id, errstr,
                                        sizeof(errstr));
            if (err == ZW_EVENT_OK)
                zw_sync_request_cleanup(&req);
        } else {
            err = zw_event_parse(buf, len, EVENT_FILE_MAX, &event, &event_id, errstr,
                                 sizeof(errstr));
            if (err == ZW_EVENT_OK)
                zw_event_cleanup(&event);
        }
        if (err == ZW_EVENT_OK) {
            printf("%s: valid\n", argv[i]);
        } else {
            printf("%s: invalid: %s: %s\n", argv[i], zw_event_error_name(err), errstr);
            invalid++;
        }
        free(event_id);
        free(buf);
    }
    return invalid ? EXIT_DATAERR : 0;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"sync", no_argument, NULL, 's'},
        {"tenant", required_argument, NULL, 't'},
        {"out", required_argument, NULL, 'o'},
        {"mode", required_argument, NULL, 'm'},
        {"cursor", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    const char *command = NULL, *config_path = NULL;
    bool sync = false;
    const char *tenant = NULL, *out = NULL, *mode = "full", *cursor = NULL;
    char errstr[1024];
    zw_config_t *config;
    int opt, rc;

    /* Options may come before or after the command. */
    while ((opt = getopt_long(argc, argv, "+c:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': version(); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        command = argv[optind];
        optind++;
        while ((opt = getopt_long(argc, argv, "+c:hV", options, NULL)) != -1) {
            switch (opt) {
            case 'c': config_path = optarg; break;
            case 's': sync = true; break;
            case 't': tenant = optarg; break;
            case 'o': out = optarg; break;
            case 'm': mode = optarg; break;
            case 'k': cursor = optarg; break;
            case 'h': usage(stdout); return 0;
            case 'V': version(); return 0;
            default: usage(stderr); return EXIT_USAGE;
            }
        }
    }
    if (!command) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(command, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(command, "version") == 0) {
        version();
        return 0;
    }
    if (strcmp(command, "validate-event") == 0) {
        if (optind >= argc) {
            fprintf(stderr, "zendesk-worker: validate-event needs one or more files\n");
            return EXIT_USAGE;
        }
        return validate_events(argc - optind, argv + optind, sync);
    }
    if (strcmp(command, "run") != 0 && strcmp(command, "check-config") != 0 &&
        strcmp(command, "sync") != 0) {
        fprintf(stderr, "zendesk-worker: unknown command '%s'\n\n", command);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "zendesk-worker: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (!config_path) {
        fprintf(stderr, "zendesk-worker: %s needs a configuration file: -c FILE\n", command);
        return EXIT_USAGE;
    }

    config = zw_config_load(config_path, errstr, sizeof(errstr));
    if (!config) {
        fprintf(stderr, "zendesk-worker: invalid configuration: %s\n", errstr);
        return ZW_EXIT_CONFIG;
    }
    if (strcmp(command, "check-config") == 0) {
        print_summary(config);
        zw_config_destroy(config);
        return 0;
    }
    if (strcmp(command, "sync") == 0) {
        if (!tenant || (strcmp(mode, "full") != 0 && strcmp(mode, "incremental") != 0)) {
            fprintf(stderr, "zendesk-worker: sync needs --tenant SUBDOMAIN and --mode full|incremental\n");
            zw_config_destroy(config);
            return EXIT_USAGE;
        }
        /* Logs go to stderr in text form; the NDJSON goes to --out or stdout. */
        zw_log_setup(config->log.level > ZW_LOG_WARN ? config->log.level : ZW_LOG_WARN,
                     ZW_LOG_FORMAT_TEXT, NULL);
        rc = zw_worker_sync_oneshot(config, tenant, strcmp(mode, "incremental") == 0, cursor, out);
        zw_config_destroy(config);
        return rc;
    }

    /* "auto": people at a terminal read text, log collectors read JSON. */
    zw_log_setup(config->log.level,
                 config->log.format_auto && isatty(2) ? ZW_LOG_FORMAT_TEXT : config->log.format,
                 NULL);
    rc = zw_worker_run(config);
    zw_config_destroy(config);
    return rc;
}

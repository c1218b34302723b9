/*
 * zendesk-sim: command line. Reads the accounts, starts the server, prints LISTENING=host:port
 * once it accepts connections, and stops cleanly on SIGTERM or SIGINT.
 */
#include "sim.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define SIM_VERSION "0.1.0"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: zendesk-sim [--listen 127.0.0.1:PORT] [--account SPEC]... [--config FILE]\n"
            "                   [--seed N] [--threads N] [--max-body BYTES] [--no-limits]\n"
            "  SPEC: subdomain=acme,email=admin@acme.test,token=T[,rpm=700][,bulk_import=true]\n"
            "        [,client_id=ID,client_secret=S,token_ttl=1800] and any key from README.md\n"
            "  PORT 0 picks a free port; the chosen one is printed as LISTENING=host:port.\n");
}

static char *read_file(const char *path, char *errstr, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errlen, "cannot open %s", path);
        return NULL;
    }
    sim_buf_t buf = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (sim_buf_append(&buf, chunk, n, 64 * 1024 * 1024) != 0) {
            snprintf(errstr, errlen, "%s is too large", path);
            sim_buf_cleanup(&buf);
            fclose(f);
            return NULL;
        }
    }
    fclose(f);
    if (!buf.data)
        return strdup("");
    return buf.data;
}

/* --config FILE: {"seed":N, "max_body":N, "accounts":[{"subdomain":..., ...}]} */
static int load_config(const char *path, bool no_limits, char *errstr, size_t errlen)
{
    char *text = read_file(path, errstr, errlen);
    if (!text)
        return -1;
    json_object *doc = json_tokener_parse(text);
    free(text);
    int rc = -1;
    json_object *v, *accounts;
    if (!doc || !json_object_is_type(doc, json_type_object)) {
        snprintf(errstr, errlen, "%s: not a JSON object", path);
        goto out;
    }
    if (json_object_object_get_ex(doc, "seed", &v))
        g_sim.seed = (uint64_t)json_object_get_int64(v);
    if (json_object_object_get_ex(doc, "max_body", &v) && json_object_get_int64(v) > 0)
        g_sim.max_body = (size_t)json_object_get_int64(v);
    if (json_object_object_get_ex(doc, "accounts", &accounts)) {
        for (size_t i = 0; i < json_object_array_length(accounts); i++) {
            sim_config_t cfg;
            char err[256];
            sim_config_defaults(&cfg);
            cfg.limits_enabled = !no_limits;
            if (sim_config_apply_json(&cfg, json_object_array_get_idx(accounts, i), err, sizeof(err)) != 0 ||
                !sim_account_add(&cfg, err, sizeof(err))) {
                snprintf(errstr, errlen, "%s: account %zu: %s", path, i, err);
                goto out;
            }
        }
    }
    rc = 0;
out:
    json_object_put(doc);
    return rc;
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0";
    const char *config = NULL;
    int threads = 2;
    bool no_limits = false;
    char err[512];
    const char **specs = calloc((size_t)argc, sizeof(*specs));
    int nspecs = 0;
    if (!specs)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            free(specs);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("zendesk-sim %s\n", SIM_VERSION);
            free(specs);
            return 0;
        } else if (!strcmp(a, "--no-limits")) {
            no_limits = true;
            continue;
        }
        if (!val) {
            fprintf(stderr, "zendesk-sim: %s needs a value\n", a);
            usage(stderr);
            free(specs);
            return 2;
        }
        i++;
        int64_t n;
        if (!strcmp(a, "--listen")) {
            listen = val;
        } else if (!strcmp(a, "--account")) {
            specs[nspecs++] = val;
        } else if (!strcmp(a, "--config")) {
            config = val;
        } else if (!strcmp(a, "--seed") && sim_parse_i64(val, &n) == 0) {
            g_sim.seed = (uint64_t)n;
        } else if (!strcmp(a, "--threads") && sim_parse_i64(val, &n) == 0 && n >= 1 && n <= 64) {
            threads = (int)n;
        } else if (!strcmp(a, "--max-body") && sim_parse_i64(val, &n) == 0 && n >= 1024) {
            g_sim.max_body = (size_t)n;
        } else {
            fprintf(stderr, "zendesk-sim: bad option %s %s\n", a, val);
            usage(stderr);
            free(specs);
            return 2;
        }
    }
    if (config && load_config(config, no_limits, err, sizeof(err)) != 0) {
        fprintf(stderr, "zendesk-sim: %s\n", err);
        free(specs);
        sim_accounts_destroy();
        return 2;
    }
    for (int i = 0; i < nspecs; i++) {
        sim_config_t cfg;
        sim_config_defaults(&cfg);
        cfg.limits_enabled = !no_limits;
        if (sim_config_parse(&cfg, specs[i], err, sizeof(err)) != 0 ||
            !sim_account_add(&cfg, err, sizeof(err))) {
            fprintf(stderr, "zendesk-sim: --account '%s': %s\n", specs[i], err);
            free(specs);
            sim_accounts_destroy();
            return 2;
        }
    }
    free(specs);

    char host[64];
    const char *colon = strrchr(listen, ':');
    int64_t port;
    if (!colon || (size_t)(colon - listen) >= sizeof(host) || sim_parse_i64(colon + 1, &port) != 0 ||
        port < 0 || port > 65535) {
        fprintf(stderr, "zendesk-sim: --listen wants HOST:PORT, got '%s'\n", listen);
        sim_accounts_destroy();
        return 2;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof(host), "127.0.0.1");

    /* Many concurrent connections need descriptors. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Signals are taken by sigwait() below; every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (sim_server_start(host, (int)port, threads, err, sizeof(err)) != 0) {
        fprintf(stderr, "zendesk-sim: %s\n", err);
        sim_accounts_destroy();
        return 1;
    }
    printf("LISTENING=%s:%d\n", host, sim_server_port());
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);
    sim_server_stop();
    pthread_mutex_lock(&g_sim.lock);
    sim_accounts_destroy();
    pthread_mutex_unlock(&g_sim.lock);
    return 0;
}

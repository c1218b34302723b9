/* Making and wiring the core: which module answers each of the tenants'
 * policy hooks (seam 4) and the credentials' hooks, and the order things are
 * freed in (the tenants cancel timers on the loop, so the loop goes last). */
#include "core.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "zw/log.h"
#include "zw/version.h"

#define MAX_METRIC_TENANTS 1024

static volatile sig_atomic_t signals_seen;
static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    (void)sig;
    if (signals_seen++ > 0)
        _exit(130); /* second signal: at once, committing nothing more */
    if (signal_pipe[1] >= 0) {
        ssize_t n = write(signal_pipe[1], "x", 1);
        (void)n;
    }
}

int zw_core_signals(void)
{
    return (int)signals_seen;
}

/* The head of a lane goes out: plain lookups together, anything else alone. */
static void policy_send(zw_tenant_t *t, int lane, void *arg)
{
    zw_core_t *c = arg;
    zw_lane_item_t *head = zw_tenant_lane_head(t, lane);
    zw_job_t *job;

    if (lane == ZW_LANE_READ && zw_lookup_is_plain(ZW_JOB_OF(head, lane))) {
        zw_lookup_send(c->lookups, t);
        return;
    }
    job = ZW_JOB_OF(zw_tenant_pop(t, lane), lane);
    job->ops->send(job);
}

/* Until the next grant attempt, events fail now rather than wait: the
 * credentials were refused, not delayed. */
static void policy_refused(zw_tenant_t *t, zw_lane_item_t *item, long http, const char *code,
                           void *arg)
{
    (void)t;
    (void)arg;
    zw_job_fail(ZW_JOB_OF(item, lane), "auth", http, code,
                "the OAuth client credentials grant was refused");
}

static int init_signals(zw_core_t *c)
{
    struct sigaction sa;

    if (pipe(signal_pipe) != 0) {
        zw_logf(ZW_LOG_ERROR, "pipe: %s", strerror(errno));
        return -1;
    }
    c->signal_fd = signal_pipe[0];
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static zw_metrics_t *new_metrics(const zw_config_t *config)
{
    const char *names[MAX_METRIC_TENANTS];
    size_t n = config->zendesk.n_tenants < MAX_METRIC_TENANTS ? config->zendesk.n_tenants
                                                              : MAX_METRIC_TENANTS;

    for (size_t i = 0; i < n; i++)
        names[i] = config->zendesk.tenants[i].subdomain;
    return zw_metrics_new(names, n, ZW_VERSION);
}

static void wire(zw_core_t *c)
{
    zw_tenant_policy_t p = {0};

    p.before_lanes = zw_bulk_before_lanes;
    p.holds = zw_bulk_holds;
    p.classify = zw_bulk_classify;
    p.bulk_arg = c->bulks;
    p.send = policy_send;
    p.refused = policy_refused;
    p.work_arg = c;
    zw_tenants_set_policy(c->jobs.tenants, &p);
}

int zw_core_init(zw_core_t *c, const zw_config_t *config)
{
    zw_jobs_t *js = &c->jobs;
    char errstr[512] = "out of memory";
    zw_loop_t *loop;

    memset(c, 0, sizeof(*c));
    c->signal_fd = -1;
    zw_env_init(&c->env, config, NULL);
    js->env = &c->env;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        zw_logf(ZW_LOG_ERROR, "cannot initialise libcurl");
        return -1;
    }
    if (init_signals(c) != 0)
        return -1;
    loop = zw_loop_new(0, errstr, sizeof(errstr));
    c->env.loop = loop;
    c->env.metrics = new_metrics(config);
    if (!loop || !c->env.metrics ||
        !(js->tenants = zw_tenants_new(&c->env, errstr, sizeof(errstr))) ||
        !(js->parts = zw_parts_new(NULL)) || !(js->keyqs = zw_keyqs_new()) ||
        !(c->walks = zw_walks_new(js)) || !(c->bulks = zw_bulks_new(js)) ||
        !(c->lookups = zw_lookups_new(&c->env))) {
        zw_logf(ZW_LOG_ERROR, "setup: %s", errstr);
        return -1;
    }
    wire(c);
    return 0;
}

int zw_core_set_producer(zw_core_t *c, rd_kafka_t *producer)
{
    c->jobs.output = zw_output_new(&c->env, producer);
    return c->jobs.output ? 0 : -1;
}

static void release_link(zw_part_link_t *link, void *arg)
{
    (void)arg;
    zw_job_release(ZW_JOB_OF(link, plink));
}

void zw_core_cleanup(zw_core_t *c)
{
    zw_jobs_t *js = &c->jobs;

    zw_bulks_destroy(c->bulks); /* touches the jobs it carries */
    zw_parts_destroy(js->parts, release_link, NULL);
    zw_lookups_destroy(c->lookups);
    zw_walks_destroy(c->walks);
    zw_keyqs_destroy(js->keyqs);
    zw_tenants_destroy(js->tenants);
    zw_output_destroy(js->output);
    zw_loop_destroy(c->env.loop);
    zw_metrics_destroy(c->env.metrics);
    if (signal_pipe[0] >= 0) {
        close(signal_pipe[0]);
        close(signal_pipe[1]);
        signal_pipe[0] = signal_pipe[1] = -1;
    }
    c->signal_fd = -1;
    zw_http_pool_drain();
    curl_global_cleanup();
    memset(js, 0, sizeof(*js));
}

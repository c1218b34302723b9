/* The sync command: one snapshot walk of one tenant, written to a file (or
 * stdout) with no Kafka at all, a progress line on a terminal, and an exit
 * code that says whether the snapshot is complete. */
#include "zw/worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zw/log.h"

#include "core.h"

#define PROGRESS_EVERY_MS 250

typedef struct oneshot_s {
    zw_core_t core;
    zw_job_t *job;
    bool interrupted;
} oneshot_t;

static void on_signal_fd(int fd, void *arg)
{
    oneshot_t *o = arg;
    char buf[16];
    ssize_t n = read(fd, buf, sizeof(buf));

    (void)n;
    o->interrupted = true; /* the sync command stops where it is */
}

/* One line, redrawn: users so far, pages, rate, and the budget that paces
 * the walk (Zendesk gives no total, so no time left is guessed beyond what
 * the budget allows per minute). */
static void progress_tick(void *arg)
{
    oneshot_t *o = arg;
    zw_job_t *job = o->job;
    zw_tenant_t *t = job->tenant;
    int64_t now = zw_loop_now_ms();
    double secs = (double)(now - job->start_ms) / 1000.0;

    if (job->state == ZW_JOB_PRODUCING)
        return;
    fprintf(stderr,
            "\r\033[K%s: %lld users, %d pages, %.0f users/s, %.0f s, budget %.0f of %d req/min left",
            zw_tenant_name(t), (long long)zw_walk_count(job), zw_walk_pages(job),
            secs > 0 ? (double)zw_walk_count(job) / secs : 0.0, secs,
            zw_ratelimit_available(zw_tenant_budget(t), now), zw_tenant_config(t)->plan_rpm);
    zw_env_timer(&o->core.env, PROGRESS_EVERY_MS, progress_tick, o);
}

/* The job of the walk, as if its request had been consumed. */
static zw_job_t *new_job(oneshot_t *o, zw_tenant_t *t, bool incremental, const char *cursor)
{
    zw_jobs_t *js = &o->core.jobs;
    zw_part_t *part = zw_parts_get(js->parts, "(sync command)", 0);
    zw_job_t *job = part ? zw_job_new(js, part, 0, &zw_walk_ops) : NULL;
    char request_id[64];

    if (!job)
        return NULL;
    snprintf(request_id, sizeof(request_id), "cli-%lld-%ld", (long long)time(NULL),
             (long)getpid());
    job->tenant = t;
    job->walk.req.request_id = strdup(request_id);
    job->walk.req.tenant = strdup(zw_tenant_name(t));
    job->walk.req.incremental = incremental;
    job->walk.req.cursor = cursor ? strdup(cursor) : NULL;
    job->event_id = strdup(request_id);
    if (!job->walk.req.request_id || !job->walk.req.tenant || !job->event_id ||
        (cursor && !job->walk.req.cursor)) {
        zw_job_free(job);
        return NULL;
    }
    return job;
}

/* Says how the walk ended; returns the exit code. */
static int report(const oneshot_t *o, const char *tenant)
{
    const zw_job_t *job = o->job;
    int64_t ms = zw_loop_now_ms() - job->start_ms;
    bool failed = zw_walk_failed(job);

    if (job->state != ZW_JOB_PRODUCING) {
        fprintf(stderr, "interrupted: the output has no end marker\n");
        return ZW_EXIT_INTERRUPTED;
    }
    fprintf(stderr, "snapshot %s of %s: %s, %lld users, %d pages, %.1f s%s%s\n",
            zw_walk_id(job), tenant, failed ? "FAILED" : "complete",
            (long long)zw_walk_count(job), zw_walk_pages(job), (double)ms / 1000.0,
            failed ? ": " : "", failed ? job->err_msg : "");
    if (zw_walk_next_cursor(job) && !failed)
        fprintf(stderr, "continue later with: --mode incremental --cursor '%s'\n",
                zw_walk_next_cursor(job));
    return failed ? ZW_EXIT_UNAVAILABLE : ZW_EXIT_OK;
}

static int walk(oneshot_t *o, zw_tenant_t *t, FILE *out, bool incremental, const char *cursor)
{
    bool tty = isatty(2) != 0;

    if (!(o->job = new_job(o, t, incremental, cursor)))
        return ZW_EXIT_SOFTWARE;
    zw_auth_fetch(zw_tenant_auth(t));
    zw_walk_start(o->core.walks, o->job, out);
    if (tty)
        progress_tick(o);
    while (o->job->state != ZW_JOB_PRODUCING && !o->interrupted) {
        if (zw_loop_run_once(o->core.env.loop, 1000) != 0)
            break;
    }
    if (tty)
        fputs("\r\033[K", stderr);
    return report(o, zw_tenant_name(t));
}

int zw_worker_sync_oneshot(const zw_config_t *config, const char *tenant, bool incremental,
                           const char *cursor, const char *out_path)
{
    oneshot_t o;
    zw_tenant_t *t;
    FILE *out = NULL;
    int rc = ZW_EXIT_SOFTWARE;

    memset(&o, 0, sizeof(o));
    if (zw_core_init(&o.core, config) != 0 ||
        zw_loop_watch_fd(o.core.env.loop, o.core.signal_fd, on_signal_fd, &o) != 0)
        goto out;
    o.core.env.oneshot = true;
    if (!(t = zw_tenants_find(o.core.jobs.tenants, tenant))) {
        zw_logf(ZW_LOG_ERROR, "tenant '%s' is not configured in %s", tenant, config->path);
        rc = ZW_EXIT_CONFIG;
        goto out;
    }
    out = out_path ? fopen(out_path, "w") : stdout;
    if (!out) {
        zw_logf(ZW_LOG_ERROR, "cannot write %s: %s", out_path, strerror(errno));
        rc = ZW_EXIT_CANTCREAT;
        goto out;
    }
    rc = walk(&o, t, out, incremental, cursor);
out:
    if (o.job)
        zw_job_free(o.job);
    if (out && out != stdout)
        fclose(out);
    else if (out)
        fflush(out);
    zw_core_cleanup(&o.core);
    return rc;
}

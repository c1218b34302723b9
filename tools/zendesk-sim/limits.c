/*
 * zendesk-sim: rate limits. Fixed windows on the simulator clock, aligned to the
 * minute (or second) as Zendesk's ratelimit-reset suggests: a window's budget is refilled
 * whole when the wall-clock minute turns. Every limit is an account config key; 0 = off.
 */
#include "sim.h"

#include <stdio.h>
#include <string.h>

void sim_limit_429(const sim_account_t *acct, sim_resp_t *resp, int64_t retry_after_s)
{
    char ra[32];
    if (retry_after_s < 1)
        retry_after_s = 1;
    snprintf(ra, sizeof(ra), "%lld", (long long)retry_after_s);
    sim_resp_header(resp, "Retry-After", ra);
    /* The real body varies; clients must decide on status and headers alone. */
    if (!strcmp(acct->cfg.limit_body, "json")) {
        char desc[128];
        snprintf(desc, sizeof(desc), "Number of allowed API requests per minute exceeded");
        sim_resp_error(resp, 429, "APIRateLimitExceeded", desc);
    } else if (!strcmp(acct->cfg.limit_body, "html")) {
        sim_resp_text(resp, 429, "text/html; charset=utf-8",
                      "<html><head><title>429 Too Many Requests</title></head><body>"
                      "<h1>Too Many Requests</h1><p>Rate limit exceeded</p></body></html>\n");
    } else {
        sim_resp_text(resp, 429, "text/plain; charset=utf-8", "Rate limit exceeded\n");
    }
}

static void set_int_header(sim_resp_t *resp, const char *name, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    sim_resp_header(resp, name, buf);
}

int sim_limit_account(sim_account_t *acct, sim_resp_t *resp, int64_t now_ms)
{
    const sim_config_t *cfg = &acct->cfg;
    if (!cfg->limits_enabled || cfg->rpm <= 0)
        return 0;
    int64_t minute = now_ms / 60000;
    if (minute != acct->win_minute) {
        acct->win_minute = minute;
        acct->win_count = 0;
    }
    int64_t reset = ((minute + 1) * 60000 - now_ms + 999) / 1000;
    bool over = acct->win_count >= cfg->rpm;
    if (!over)
        acct->win_count++;
    int64_t remaining = cfg->rpm - acct->win_count;
    set_int_header(resp, "X-Rate-Limit", cfg->rpm);
    set_int_header(resp, "X-Rate-Limit-Remaining", remaining);
    set_int_header(resp, "ratelimit-limit", cfg->rpm);
    set_int_header(resp, "ratelimit-remaining", remaining);
    set_int_header(resp, "ratelimit-reset", reset);
    if (over) {
        sim_limit_429(acct, resp, reset);
        return 429;
    }
    return 0;
}

static void endpoint_header(sim_resp_t *resp, const char *name, int64_t total, int64_t remaining,
                            int64_t resets)
{
    char buf[96];
    snprintf(buf, sizeof(buf), "total=%lld; remaining=%lld; resets=%lld", (long long)total,
             (long long)(remaining < 0 ? 0 : remaining), (long long)resets);
    sim_resp_header(resp, name, buf);
}

int sim_limit_endpoint(sim_account_t *acct, sim_ep_class_t cls, sim_user_t *target,
                       sim_resp_t *resp, int64_t now_ms)
{
    const sim_config_t *cfg = &acct->cfg;
    if (!cfg->limits_enabled)
        return 0;
    int64_t minute = now_ms / 60000;
    int64_t reset_min = ((minute + 1) * 60000 - now_ms + 999) / 1000;
    switch (cls) {
    case SIM_EP_USER_WRITE: {
        if (cfg->user_write_per_sec > 0) {
            int64_t sec = now_ms / 1000;
            if (sec != acct->uw_second) {
                acct->uw_second = sec;
                acct->uw_count = 0;
            }
            if (acct->uw_count >= cfg->user_write_per_sec) {
                sim_limit_429(acct, resp, 1);
                return 429;
            }
        }
        if (target && cfg->user_write_per_user_min > 0) {
            if (target->write_window != minute) {
                target->write_window = minute;
                target->write_count = 0;
            }
            bool over = target->write_count >= cfg->user_write_per_user_min;
            if (!over)
                target->write_count++;
            endpoint_header(resp, "zendesk-ratelimit-create-update-user", cfg->user_write_per_user_min,
                            cfg->user_write_per_user_min - target->write_count, reset_min);
            if (over) {
                sim_limit_429(acct, resp, reset_min);
                return 429;
            }
        }
        acct->uw_count++;
        return 0;
    }
    case SIM_EP_INCREMENTAL: {
        if (cfg->incremental_per_min <= 0)
            return 0;
        if (acct->inc_minute != minute) {
            acct->inc_minute = minute;
            acct->inc_count = 0;
        }
        bool over = acct->inc_count >= cfg->incremental_per_min;
        if (!over)
            acct->inc_count++;
        endpoint_header(resp, "zendesk-ratelimit-incremental-exports", cfg->incremental_per_min,
                        cfg->incremental_per_min - acct->inc_count, reset_min);
        if (over) {
            sim_limit_429(acct, resp, reset_min);
            return 429;
        }
        return 0;
    }
    case SIM_EP_JOB:
    case SIM_EP_OTHER:
        return 0;
    }
    return 0;
}

/* A tenant's request budget: a token bucket refilled continuously at this
 * replica's share of the plan's rate, trimmed by what Zendesk says is left
 * and shut by a 429 until its Retry-After. The caller passes the time, so the
 * loop can turn a refusal straight into a timer and tests need no clock. */
#include "zw/ratelimit.h"

#include <math.h>
#include <stdlib.h>

/* Floating refill leaves 0.99999... where 1 was meant; a token this close to
 * whole counts as whole, or a caller woken exactly on time is refused by a
 * rounding error and told to wait 1 ms more. */
#define TOKEN_EPSILON 1e-9
/* With no rate at all (a zero or broken share) a refused caller still needs a
 * finite time to look again. */
#define NO_RATE_WAIT_MS 60000
/* A reset Zendesk reports is seconds to a minute; beyond an hour the header
 * is wrong and blocking on it would stall the tenant for nothing. */
#define MAX_RESET_S 3600

struct zw_ratelimit_s {
    double tokens;
    double burst;
    double per_ms;        /* refill rate */
    int64_t refilled_ms;  /* time tokens was last brought up to date */
    int64_t blocked_until;
};

/* Accepts only finite, positive numbers; anything else becomes fallback. */
static double sane(double v, double fallback)
{
    return isfinite(v) && v > 0 ? v : fallback;
}

static void set_rate(zw_ratelimit_t *rl, double per_minute, double burst)
{
    rl->per_ms = sane(per_minute, 0) / 60000.0;
    rl->burst = sane(burst, 1);
    if (rl->burst < 1)
        rl->burst = 1;
    if (rl->tokens > rl->burst)
        rl->tokens = rl->burst;
}

static void refill(zw_ratelimit_t *rl, int64_t now_ms)
{
    /* A monotonic clock does not go back, but if a caller's does, hold the
     * tokens rather than take them away. */
    if (now_ms <= rl->refilled_ms)
        return;
    rl->tokens += (double)(now_ms - rl->refilled_ms) * rl->per_ms;
    if (rl->tokens > rl->burst)
        rl->tokens = rl->burst;
    rl->refilled_ms = now_ms;
}

zw_ratelimit_t *zw_ratelimit_new(double per_minute, double burst, int64_t now_ms)
{
    zw_ratelimit_t *rl = calloc(1, sizeof(*rl));

    if (!rl)
        return NULL;
    set_rate(rl, per_minute, burst);
    rl->tokens = rl->burst;
    rl->refilled_ms = now_ms;
    return rl;
}

void zw_ratelimit_destroy(zw_ratelimit_t *rl)
{
    free(rl);
}

void zw_ratelimit_set_rate(zw_ratelimit_t *rl, double per_minute, double burst, int64_t now_ms)
{
    if (!rl)
        return;
    /* Tokens earned so far were earned at the old rate. */
    refill(rl, now_ms);
    set_rate(rl, per_minute, burst);
}

int64_t zw_ratelimit_take(zw_ratelimit_t *rl, int64_t now_ms)
{
    double wait;

    if (!rl)
        return NO_RATE_WAIT_MS;
    if (rl->blocked_until > now_ms)
        return rl->blocked_until - now_ms;
    rl->blocked_until = 0;
    refill(rl, now_ms);
    if (rl->tokens >= 1 - TOKEN_EPSILON) {
        rl->tokens -= 1;
        if (rl->tokens < 0)
            rl->tokens = 0;
        return 0;
    }
    if (rl->per_ms <= 0)
        return NO_RATE_WAIT_MS;
    wait = ceil((1 - TOKEN_EPSILON - rl->tokens) / rl->per_ms);
    /* Rates small enough to make this absurd are configuration errors; a
     * minute is as long as anyone should sleep before looking again. */
    if (!(wait < NO_RATE_WAIT_MS))
        return NO_RATE_WAIT_MS;
    return wait < 1 ? 1 : (int64_t)wait;
}

void zw_ratelimit_refund(zw_ratelimit_t *rl)
{
    if (!rl)
        return;
    rl->tokens += 1;
    if (rl->tokens > rl->burst)
        rl->tokens = rl->burst;
}

void zw_ratelimit_block_until(zw_ratelimit_t *rl, int64_t until_ms)
{
    if (rl && until_ms > rl->blocked_until)
        rl->blocked_until = until_ms;
}

void zw_ratelimit_observe(zw_ratelimit_t *rl, int64_t now_ms, long remaining, long limit,
                          long reset_s, double share)
{
    double cap;

    if (!rl || remaining < 0)
        return;
    /* Headers that contradict themselves say nothing reliable. */
    if (limit >= 0 && remaining > limit)
        return;
    if (!(share > 0 && share <= 1)) /* also refuses NaN */
        share = 1;
    refill(rl, now_ms);
    /* The account has `remaining` left for every replica; ours is a share of
     * it. Only ever lower the bucket: Zendesk's count lags our own requests
     * in flight, so raising it would spend the same requests twice. */
    cap = share * (double)remaining;
    if (rl->tokens > cap)
        rl->tokens = cap;
    if (remaining == 0 && reset_s > 0 && now_ms <= INT64_MAX - (int64_t)MAX_RESET_S * 1000) {
        if (reset_s > MAX_RESET_S)
            reset_s = MAX_RESET_S;
        zw_ratelimit_block_until(rl, now_ms + (int64_t)reset_s * 1000);
    }
}

double zw_ratelimit_available(zw_ratelimit_t *rl, int64_t now_ms)
{
    if (!rl)
        return 0;
    if (rl->blocked_until > now_ms)
        return 0;
    refill(rl, now_ms);
    return rl->tokens;
}

int64_t zw_ratelimit_blocked_until(const zw_ratelimit_t *rl)
{
    return rl ? rl->blocked_until : 0;
}

/* Per-tenant request budgets: a token bucket refilled at the tenant's share
 * of its plan's requests per minute, corrected from what Zendesk reports
 * (X-Rate-Limit-Remaining, ratelimit-reset) and stopped by a 429 until its
 * Retry-After has passed. Times are monotonic milliseconds. Pure logic: no
 * clock reads, no I/O, so tests drive the time. */
#ifndef ZW_RATELIMIT_H
#define ZW_RATELIMIT_H

#include <stdint.h>

typedef struct zw_ratelimit_s zw_ratelimit_t;

/* A new bucket allowing per_minute requests per minute, holding at most
 * burst tokens (at least 1), full at now_ms. Free with zw_ratelimit_destroy.
 * Returns NULL when out of memory. */
zw_ratelimit_t *zw_ratelimit_new(double per_minute, double burst, int64_t now_ms);

/* Accepts NULL. */
void zw_ratelimit_destroy(zw_ratelimit_t *rl);

/* Changes the refill rate (e.g. when this replica's share of the group
 * changes); tokens already held are capped to the new burst. */
void zw_ratelimit_set_rate(zw_ratelimit_t *rl, double per_minute, double burst, int64_t now_ms);

/* Takes one token if one is available at now_ms and returns 0; otherwise
 * takes nothing and returns how many ms until one will be (> 0). */
int64_t zw_ratelimit_take(zw_ratelimit_t *rl, int64_t now_ms);

/* Gives back a token taken for a request that was never sent. */
void zw_ratelimit_refund(zw_ratelimit_t *rl);

/* Refuses every take until until_ms (a 429's Retry-After). A later deadline
 * extends the block; an earlier one does not shorten it. */
void zw_ratelimit_block_until(zw_ratelimit_t *rl, int64_t until_ms);

/* Correction from a response's headers: the account has `remaining` of
 * `limit` requests left in a window resetting in reset_s seconds (any value
 * < 0 means unknown). `share` (0..1] is this replica's share of the account.
 * Never lets the local bucket hold more than share * remaining; at remaining
 * 0 it blocks until the reset. */
void zw_ratelimit_observe(zw_ratelimit_t *rl, int64_t now_ms, long remaining, long limit,
                          long reset_s, double share);

/* Tokens available at now_ms (for metrics and tests). */
double zw_ratelimit_available(zw_ratelimit_t *rl, int64_t now_ms);

/* The blocked-until time, or 0 when not blocked. */
int64_t zw_ratelimit_blocked_until(const zw_ratelimit_t *rl);

#endif

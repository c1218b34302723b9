/* The environment every part of the worker runs in: the configuration, the
 * loop, the metrics registry, the HTTP settings, the random state and the
 * progress counters. worker.c (or the sync command) owns it; every module is
 * lent it for its lifetime. Private to the core. */
#ifndef ZW_ENV_H
#define ZW_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zw/config.h"
#include "zw/loop.h"
#include "zw/metrics.h"
#include "zw/zendesk.h"

/* Counters for the periodic progress line (metrics has the full story). */
typedef struct zw_stats_s {
    uint64_t consumed, finished, succeeded, failed, dry_run, dlq, retries, rate_limited,
        http_requests;
} zw_stats_t;

typedef struct zw_env_s {
    const zw_config_t *cfg;
    zw_loop_t *loop;
    zw_metrics_t *metrics; /* may be NULL */
    zw_http_settings_t http;
    uint64_t rng;          /* xorshift state, never 0 */
    zw_stats_t stats;
    char worker_id[128];   /* the pod name, or host:pid */
    char user_agent[64];
    bool oneshot;          /* the sync command: no Kafka, one snapshot to a file */
} zw_env_t;

/* Fills env for config and loop (both lent): HTTP settings, worker id, a
 * seeded random state. */
void zw_env_init(zw_env_t *env, const zw_config_t *config, zw_loop_t *loop);

/* A random (version 4) UUID. */
void zw_env_uuid4(zw_env_t *env, char out[37]);

/* The wall-clock time as "2026-11-28T10:00:00.123Z". */
void zw_env_iso_now(char *buf, size_t size);

/* The backoff before retry number `failures` (>= 1), from the worker's
 * backoff settings, with full jitter. */
int64_t zw_env_backoff_ms(zw_env_t *env, int failures);

/* Schedules fn(arg) in delay_ms on the loop's timers; returns the timer id. */
uint64_t zw_env_timer(zw_env_t *env, int64_t delay_ms, void (*fn)(void *), void *arg);

/* Cancels *timer if set and clears it. */
void zw_env_cancel(zw_env_t *env, uint64_t *timer);

#endif

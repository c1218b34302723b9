/* Timers for the event loop: a min-heap of deadlines in monotonic ms. Retry
 * waits, Retry-After waits and rate-budget waits are timers, never sleeps. */
#ifndef ZW_TIMERS_H
#define ZW_TIMERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct zw_timers_s zw_timers_t;
typedef void (*zw_timer_fn)(void *arg);

/* A new, empty set; NULL when out of memory. */
zw_timers_t *zw_timers_new(void);

/* Accepts NULL; pending timers are dropped without running. */
void zw_timers_destroy(zw_timers_t *t);

/* Schedules fn(arg) at due_ms. Returns a non-zero id, or 0 when out of memory. */
uint64_t zw_timers_add(zw_timers_t *t, int64_t due_ms, zw_timer_fn fn, void *arg);

/* Cancels a pending timer. Returns 0, or -1 when it is not pending. */
int zw_timers_cancel(zw_timers_t *t, uint64_t id);

/* The earliest deadline, or -1 when none is pending. */
int64_t zw_timers_next_due(const zw_timers_t *t);

/* Runs every timer due at or before now_ms, earliest first; a callback may add
 * or cancel timers. Returns how many ran. */
size_t zw_timers_run(zw_timers_t *t, int64_t now_ms);

size_t zw_timers_count(const zw_timers_t *t);

#endif

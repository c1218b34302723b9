/* The bulk path: planned writes of one kind that wait together for a tenant
 * go to Zendesk as one background job (*_many), are polled through
 * job_statuses and mapped back to their events, which then end through
 * provision.c as after a single call. It plugs into each tenant's scheduler
 * through the policy hooks below (seam 4). Private to the core. */
#ifndef ZW_BULK_H
#define ZW_BULK_H

#include <stdbool.h>
#include <stdint.h>

#include "job.h"

typedef struct zw_bulks_s zw_bulks_t;

/* The bulk state of every tenant of js (lent); turns bulk off, saying so
 * once, for an OAuth tenant whose scope cannot read job statuses. NULL when
 * out of memory. */
zw_bulks_t *zw_bulks_new(zw_jobs_t *js);

/* Frees the bulk jobs still open (their events are freed elsewhere).
 * Accepts NULL. */
void zw_bulks_destroy(zw_bulks_t *bs);

/* Policy hooks (arg: the zw_bulks_t). before_lanes sends a due poll or a
 * bulk job; holds says a waiting write goes in a bulk job soon; classify
 * gives a waiting item the kind of bulk job it could go in (0: none). */
int zw_bulk_before_lanes(zw_tenant_t *t, int64_t now, void *arg);
bool zw_bulk_holds(zw_tenant_t *t, const zw_lane_item_t *item, void *arg);
int zw_bulk_classify(zw_tenant_t *t, const zw_lane_item_t *item, void *arg);

/* Takes a job out of the bulk job carrying its write (its partition was
 * handed back); the bulk job's answer then skips it. */
void zw_bulk_forget(zw_job_t *job);

#endif

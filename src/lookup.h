/* Batched lookups: the lookups waiting in a tenant's read lane go to Zendesk
 * together, up to 100 external ids in one show_many request, and the answer,
 * parsed once, is handed to each of their events. Private to the core. */
#ifndef ZW_LOOKUP_H
#define ZW_LOOKUP_H

#include <stdbool.h>

#include "job.h"

typedef struct zw_lookups_s zw_lookups_t;

/* NULL when out of memory. */
zw_lookups_t *zw_lookups_new(zw_env_t *env);

/* Frees the batches still in flight (at exit; the loop drops their
 * requests). Accepts NULL. */
void zw_lookups_destroy(zw_lookups_t *ls);

/* Whether job is a lookup that can share a show_many request (an id with a
 * comma cannot share a comma-separated list). */
bool zw_lookup_is_plain(const zw_job_t *job);

/* Sends the head of t's read lane, a plain lookup, with the other plain
 * lookups waiting there; alone when it is the only one. */
void zw_lookup_send(zw_lookups_t *ls, zw_tenant_t *t);

#endif

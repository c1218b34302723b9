/* Per-key queues: events with the same key run one at a time in offset
 * order, events with different keys concurrently. Work waits as an embedded
 * zw_keyq_link_t; a queue exists while its key has work and is freed with
 * its last item. */
#ifndef ZW_KEYQ_H
#define ZW_KEYQ_H

#include <stddef.h>

typedef struct zw_keyq_s zw_keyq_t;
typedef struct zw_keyqs_s zw_keyqs_t;

/* Embedded in a piece of work; keyq.c writes both fields. */
typedef struct zw_keyq_link_s {
    struct zw_keyq_link_s *next;
    zw_keyq_t *q; /* NULL when in no queue */
} zw_keyq_link_t;

/* NULL when out of memory. */
zw_keyqs_t *zw_keyqs_new(void);

/* Frees the table and every queue (not the items). Accepts NULL. */
void zw_keyqs_destroy(zw_keyqs_t *qs);

/* Queues item under key (copied). Returns 1 when item is at the head (it
 * may start now), 0 when it waits behind earlier ones, -1 when out of
 * memory (item is in no queue). */
int zw_keyq_add(zw_keyqs_t *qs, const char *key, zw_keyq_link_t *item);

/* The head item is finished and leaves its queue: returns the new head (to
 * start now), or NULL when the queue is empty (and freed). No-op, NULL, for
 * an item in no queue. */
zw_keyq_link_t *zw_keyq_next(zw_keyqs_t *qs, zw_keyq_link_t *head);

/* Drops the whole queue item is in (its partition was revoked): every item
 * of it is left in no queue. No-op for an item in no queue. */
void zw_keyq_drop(zw_keyqs_t *qs, zw_keyq_link_t *item);

/* Queues alive (for tests and metrics). */
size_t zw_keyqs_count(const zw_keyqs_t *qs);

#endif

/* The assigned partitions: for each, the offsets in flight, the work still
 * alive (as embedded links, so this module never sees what the work is),
 * and the contiguous done prefix stored for librdkafka to commit. A revoked
 * partition lives on as a zombie until its last piece of work is gone. */
#ifndef ZW_PARTITION_H
#define ZW_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

typedef struct zw_part_s zw_part_t;
typedef struct zw_parts_s zw_parts_t;

/* Work alive in a partition, embedded in it. */
typedef struct zw_part_link_s {
    struct zw_part_link_s *prev, *next;
} zw_part_link_t;

/* The partitions of consumer (lent; NULL for the sync command, which stores
 * nothing). NULL when out of memory. */
zw_parts_t *zw_parts_new(rd_kafka_t *consumer);

/* The consumer offsets are stored with (lent), once it exists. */
void zw_parts_set_consumer(zw_parts_t *ps, rd_kafka_t *consumer);

/* Frees every partition, zombies too, calling release(link, arg) for each
 * link still in one first (at exit). Accepts NULL. */
void zw_parts_destroy(zw_parts_t *ps, void (*release)(zw_part_link_t *link, void *arg),
                      void *arg);

/* The partition, made on first use; NULL when out of memory. */
zw_part_t *zw_parts_get(zw_parts_t *ps, const char *topic, int32_t partition);

/* The partition when assigned, else NULL. */
zw_part_t *zw_parts_find(zw_parts_t *ps, const char *topic, int32_t partition);

/* Hands a partition back: it leaves the table and is marked revoked; it is
 * freed now if no work is left, else with its last link (zw_part_unlink). */
void zw_parts_revoke(zw_parts_t *ps, zw_part_t *part);

/* Calls fn for every assigned partition. */
void zw_parts_each(zw_parts_t *ps, void (*fn)(zw_part_t *part, void *arg), void *arg);

const char *zw_part_topic(const zw_part_t *part);
int32_t zw_part_partition(const zw_part_t *part);
bool zw_part_revoked(const zw_part_t *part);
/* The last offset stored for commit, -1 before any. */
int64_t zw_part_stored(const zw_part_t *part);
/* Where the group's commit is: the last offset stored, or before any the
 * first offset read (the committed offset it was read from); -1 when
 * neither is known. */
int64_t zw_part_committed(const zw_part_t *part);
/* The offset after the highest one read, -1 before any. */
int64_t zw_part_next(const zw_part_t *part);
/* The first link alive in the partition (newest first); NULL when none. */
zw_part_link_t *zw_part_links(zw_part_t *part);

/* Tracks a consumed offset and links its work in; a deferred offset read
 * again is linked without tracking it twice. Returns 0, or -1 (out of
 * memory, or an offset that does not increase). */
int zw_part_track(zw_part_t *part, int64_t offset, zw_part_link_t *link);

/* Deferring: a tracked offset whose work leaves memory (its tenant has as
 * many events in memory as it may hold). The offset stays not done, so
 * nothing after it is committed, and it is read again after a rewind. */
typedef struct zw_part_deferred_s {
    int64_t offset;
    char *tenant;
    char *key; /* the message key, NULL without one */
} zw_part_deferred_t;

/* Defers offset (tracked, its work unlinked by the caller). 0, or -1 when
 * out of memory (the caller keeps the work then). */
int zw_part_defer(zw_part_t *part, int64_t offset, const char *tenant, const char *key);

/* Records that offset was read; whether it was read before and is not
 * deferred (a rewind reads it again: skip it). */
bool zw_part_seen(zw_part_t *part, int64_t offset);

/* Whether the partition has work of this tenant or this key (key may be
 * NULL) deferred before offset: an event after it is deferred too, so
 * per-key order holds. */
bool zw_part_defers(const zw_part_t *part, int64_t offset, const char *tenant, const char *key);

/* The tenant of a deferred offset, NULL when it is not deferred. */
const char *zw_part_deferred_tenant(const zw_part_t *part, int64_t offset);

/* Calls fn with the tenant of every deferred offset (a revoke forgets them). */
void zw_part_deferred_each(const zw_part_t *part, void (*fn)(const char *tenant, void *arg),
                           void *arg);

/* Deferred offsets of the partition. */
size_t zw_part_deferred(const zw_part_t *part);

/* Where to seek to read the deferred offsets again: the first of them; -1
 * when there are none or the last rewind has not been read through yet
 * (calling it starts a new rewind). */
int64_t zw_part_rewind_offset(zw_part_t *part);

/* The work of offset is done: unless the partition was revoked, the
 * contiguous done prefix is stored for the next commit. */
void zw_part_done(zw_parts_t *ps, zw_part_t *part, int64_t offset);

/* Unlinks work from its partition; a revoked partition goes with its last
 * link. */
void zw_part_unlink(zw_parts_t *ps, zw_part_t *part, zw_part_link_t *link);

#endif

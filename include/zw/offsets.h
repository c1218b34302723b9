/* One partition's offsets in flight. Offsets are tracked in consume order;
 * an offset is committable only when it and every earlier tracked offset of
 * the partition are done (their results acknowledged by the broker). */
#ifndef ZW_OFFSETS_H
#define ZW_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

typedef struct zw_offsets_s zw_offsets_t;

/* A new, empty tracker; NULL when out of memory. Free with zw_offsets_destroy. */
zw_offsets_t *zw_offsets_new(void);

/* Accepts NULL. */
void zw_offsets_destroy(zw_offsets_t *o);

/* Records a consumed offset. Offsets must strictly increase (gaps are fine:
 * compaction and transaction markers leave them). Returns 0, or -1 when the
 * offset does not increase or memory runs out. */
int zw_offsets_track(zw_offsets_t *o, int64_t offset);

/* Marks a tracked offset done. Returns 0, or -1 when it is not tracked
 * (or already done). */
int zw_offsets_done(zw_offsets_t *o, int64_t offset);

/* The offset to commit (one past the end of the contiguous done prefix) when
 * it has advanced since the last call, else -1. */
int64_t zw_offsets_committable(zw_offsets_t *o);

/* Tracked offsets not yet done. */
size_t zw_offsets_pending(const zw_offsets_t *o);

#endif

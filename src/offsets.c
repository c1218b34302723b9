/* One partition's in-flight offsets, as a ring buffer in consume order. Work
 * finishes out of order, but Kafka commits a single position, so only the
 * contiguous done prefix may be committed: the ring's front is popped while
 * it is done, and done() finds any other offset by binary search (tracked
 * offsets strictly increase, so the ring is always sorted). */
#include "zw/offsets.h"

#include <stdbool.h>
#include <stdlib.h>

#define MIN_CAPACITY 64
/* A partition never has this many messages in flight (back-pressure pauses
 * it far earlier); the cap keeps the doubling arithmetic safe. */
#define MAX_CAPACITY ((size_t)1 << 28)

typedef struct {
    int64_t offset;
    bool done;
} slot_t;

struct zw_offsets_s {
    slot_t *ring;
    size_t capacity;   /* a power of two */
    size_t head;       /* index of the oldest tracked offset */
    size_t count;      /* tracked offsets in the ring, done or not */
    size_t pending;    /* of those, not yet done */
    bool any_tracked;
    int64_t last_tracked;
    int64_t commit_at;   /* one past the done prefix, -1 before the first */
    int64_t last_given;  /* what committable() last returned, -1 before */
};

static slot_t *at(const zw_offsets_t *o, size_t i)
{
    return &o->ring[(o->head + i) & (o->capacity - 1)];
}

zw_offsets_t *zw_offsets_new(void)
{
    zw_offsets_t *o = calloc(1, sizeof(*o));

    if (!o)
        return NULL;
    o->ring = malloc(MIN_CAPACITY * sizeof(*o->ring));
    if (!o->ring) {
        free(o);
        return NULL;
    }
    o->capacity = MIN_CAPACITY;
    o->commit_at = -1;
    o->last_given = -1;
    return o;
}

void zw_offsets_destroy(zw_offsets_t *o)
{
    if (!o)
        return;
    free(o->ring);
    free(o);
}

/* Doubles the ring, unwrapping it so the front is at index 0. */
static int grow(zw_offsets_t *o)
{
    size_t capacity = o->capacity * 2;
    slot_t *ring;

    if (capacity > MAX_CAPACITY)
        return -1;
    ring = malloc(capacity * sizeof(*ring));
    if (!ring)
        return -1;
    for (size_t i = 0; i < o->count; i++)
        ring[i] = *at(o, i);
    free(o->ring);
    o->ring = ring;
    o->capacity = capacity;
    o->head = 0;
    return 0;
}

int zw_offsets_track(zw_offsets_t *o, int64_t offset)
{
    /* Kafka offsets are >= 0; refusing INT64_MAX keeps offset + 1 defined. */
    if (!o || offset < 0 || offset == INT64_MAX || (o->any_tracked && offset <= o->last_tracked))
        return -1;
    if (o->count == o->capacity && grow(o) != 0)
        return -1;
    *at(o, o->count) = (slot_t){.offset = offset, .done = false};
    o->count++;
    o->pending++;
    o->any_tracked = true;
    o->last_tracked = offset;
    return 0;
}

int zw_offsets_done(zw_offsets_t *o, int64_t offset)
{
    size_t lo = 0, hi;
    slot_t *s;

    if (!o || o->count == 0)
        return -1;
    hi = o->count;
    /* The first slot whose offset is >= the one sought. Usually the front:
     * work mostly finishes in order. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (at(o, mid)->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == o->count)
        return -1;
    s = at(o, lo);
    if (s->offset != offset || s->done)
        return -1;
    s->done = true;
    o->pending--;

    /* Pop the done prefix: those offsets are settled and only the position
     * after the last of them matters now. */
    while (o->count > 0 && at(o, 0)->done) {
        o->commit_at = at(o, 0)->offset + 1;
        o->head = (o->head + 1) & (o->capacity - 1);
        o->count--;
    }
    return 0;
}

int64_t zw_offsets_committable(zw_offsets_t *o)
{
    if (!o || o->commit_at <= o->last_given)
        return -1;
    o->last_given = o->commit_at;
    return o->commit_at;
}

size_t zw_offsets_pending(const zw_offsets_t *o)
{
    return o ? o->pending : 0;
}

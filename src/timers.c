/* Timers: a binary min-heap ordered by (deadline, insertion sequence), so
 * equal deadlines run in the order they were added. Each timer lives in a
 * slot of a growable array that records its heap position; an id encodes the
 * slot and a generation, so cancel finds its timer in O(1), removes it in
 * O(log n), and a stale id (a timer that already ran) is simply not found. */
#include "zw/timers.h"

#include <stdbool.h>
#include <stdlib.h>

#define MIN_SLOTS 16
/* Far beyond any real number of pending waits; keeps slot numbers within the
 * 32 bits of an id that hold them. */
#define MAX_SLOTS ((size_t)1 << 24)
#define NO_POS SIZE_MAX

typedef enum {
    SLOT_FREE,
    SLOT_HEAP,  /* pending, in the heap at slot->pos */
    SLOT_BATCH, /* due, taken out of the heap by a zw_timers_run in progress */
} slot_state_t;

typedef struct {
    zw_timer_fn fn;
    void *arg;
    uint32_t gen;    /* bumped each time the slot is freed: old ids go stale */
    uint32_t next_free;
    size_t pos;      /* heap index while SLOT_HEAP */
    slot_state_t state;
} slot_t;

typedef struct {
    int64_t due;
    uint64_t seq;
    uint32_t slot;
} heap_entry_t;

struct zw_timers_s {
    heap_entry_t *heap;
    size_t heap_len, heap_cap;
    slot_t *slots;
    size_t slots_len, slots_cap;
    uint32_t free_head;   /* first free slot, or UINT32_MAX */
    uint64_t seq;         /* next insertion number */
    size_t count;         /* pending: in the heap or in a running batch */
    uint64_t *batch;      /* ids due in the run in progress */
    size_t batch_cap;
    bool running;
};

static uint64_t make_id(uint32_t slot, uint32_t gen)
{
    /* slot + 1 keeps every id non-zero. */
    return (uint64_t)gen << 32 | (uint64_t)(slot + 1);
}

/* The slot an id names while that timer is still pending, else NULL. */
static slot_t *lookup(const zw_timers_t *t, uint64_t id)
{
    uint64_t low = id & 0xffffffffu;
    slot_t *s;

    if (low == 0 || low > t->slots_len)
        return NULL;
    s = &t->slots[low - 1];
    if (s->state == SLOT_FREE || s->gen != (uint32_t)(id >> 32))
        return NULL;
    return s;
}

static void free_slot(zw_timers_t *t, uint32_t i)
{
    slot_t *s = &t->slots[i];

    s->state = SLOT_FREE;
    s->gen++;
    s->fn = NULL;
    s->arg = NULL;
    s->next_free = t->free_head;
    t->free_head = i;
}

static bool before(const heap_entry_t *a, const heap_entry_t *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void place(zw_timers_t *t, size_t pos, heap_entry_t e)
{
    t->heap[pos] = e;
    t->slots[e.slot].pos = pos;
}

static void sift_up(zw_timers_t *t, size_t pos)
{
    heap_entry_t e = t->heap[pos];

    while (pos > 0) {
        size_t parent = (pos - 1) / 2;

        if (!before(&e, &t->heap[parent]))
            break;
        place(t, pos, t->heap[parent]);
        pos = parent;
    }
    place(t, pos, e);
}

static void sift_down(zw_timers_t *t, size_t pos)
{
    heap_entry_t e = t->heap[pos];

    for (;;) {
        size_t child = 2 * pos + 1;

        if (child >= t->heap_len)
            break;
        if (child + 1 < t->heap_len && before(&t->heap[child + 1], &t->heap[child]))
            child++;
        if (!before(&t->heap[child], &e))
            break;
        place(t, pos, t->heap[child]);
        pos = child;
    }
    place(t, pos, e);
}

/* Takes the entry at pos out of the heap (its slot is left to the caller). */
static void heap_remove(zw_timers_t *t, size_t pos)
{
    t->heap_len--;
    if (pos == t->heap_len)
        return;
    /* The last entry fills the hole and moves whichever way it must. */
    t->heap[pos] = t->heap[t->heap_len];
    t->slots[t->heap[pos].slot].pos = pos;
    if (pos > 0 && before(&t->heap[pos], &t->heap[(pos - 1) / 2]))
        sift_up(t, pos);
    else
        sift_down(t, pos);
}

zw_timers_t *zw_timers_new(void)
{
    zw_timers_t *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    t->heap = malloc(MIN_SLOTS * sizeof(*t->heap));
    t->slots = malloc(MIN_SLOTS * sizeof(*t->slots));
    if (!t->heap || !t->slots) {
        zw_timers_destroy(t);
        return NULL;
    }
    t->heap_cap = MIN_SLOTS;
    t->slots_cap = MIN_SLOTS;
    t->free_head = UINT32_MAX;
    return t;
}

void zw_timers_destroy(zw_timers_t *t)
{
    if (!t)
        return;
    free(t->heap);
    free(t->slots);
    free(t->batch);
    free(t);
}

/* Makes room for one more element in an array of len elements: returns the
 * array (moved if it grew, *cap updated), or NULL when it cannot grow. */
static void *reserve(void *arr, size_t *cap, size_t len, size_t elem_size)
{
    size_t ncap;
    void *p;

    if (arr && len < *cap)
        return arr;
    if (*cap >= MAX_SLOTS)
        return NULL;
    ncap = *cap ? *cap * 2 : MIN_SLOTS;
    p = realloc(arr, ncap * elem_size);
    if (p)
        *cap = ncap;
    return p;
}

uint64_t zw_timers_add(zw_timers_t *t, int64_t due_ms, zw_timer_fn fn, void *arg)
{
    heap_entry_t *heap;
    uint32_t i;
    slot_t *s;

    if (!t || !fn)
        return 0;
    /* Reserve both arrays before touching either, so a failure leaves no trace. */
    heap = reserve(t->heap, &t->heap_cap, t->heap_len, sizeof(*t->heap));
    if (!heap)
        return 0;
    t->heap = heap;
    if (t->free_head == UINT32_MAX) {
        slot_t *slots = reserve(t->slots, &t->slots_cap, t->slots_len, sizeof(*t->slots));

        if (!slots)
            return 0;
        t->slots = slots;
        i = (uint32_t)t->slots_len++;
        t->slots[i].gen = 0;
    } else {
        i = t->free_head;
        t->free_head = t->slots[i].next_free;
    }
    s = &t->slots[i];
    s->fn = fn;
    s->arg = arg;
    s->state = SLOT_HEAP;
    t->heap[t->heap_len] = (heap_entry_t){.due = due_ms, .seq = t->seq++, .slot = i};
    t->heap_len++;
    sift_up(t, t->heap_len - 1);
    t->count++;
    return make_id(i, s->gen);
}

int zw_timers_cancel(zw_timers_t *t, uint64_t id)
{
    slot_t *s;

    if (!t || !(s = lookup(t, id)))
        return -1;
    /* A batch timer is only marked: zw_timers_run sees its id go stale and
     * skips it. */
    if (s->state == SLOT_HEAP)
        heap_remove(t, s->pos);
    free_slot(t, (uint32_t)(s - t->slots));
    t->count--;
    return 0;
}

int64_t zw_timers_next_due(const zw_timers_t *t)
{
    if (!t || t->heap_len == 0)
        return -1;
    return t->heap[0].due;
}

size_t zw_timers_run(zw_timers_t *t, int64_t now_ms)
{
    size_t nbatch = 0, ran = 0;

    /* Not re-entrant: a callback calling run would reuse the batch. */
    if (!t || t->running)
        return 0;
    /* Take every due timer out first, then run them. Timers that callbacks
     * add wait for the next call even when already due, so a callback that
     * re-arms itself at "now" cannot keep this loop going forever, and the
     * ones due before it are not held up behind it. */
    while (t->heap_len > 0 && t->heap[0].due <= now_ms) {
        uint32_t i = t->heap[0].slot;
        uint64_t *batch = reserve(t->batch, &t->batch_cap, nbatch, sizeof(*t->batch));

        if (!batch)
            break; /* out of memory: the rest stay due for the next call */
        t->batch = batch;
        heap_remove(t, 0);
        t->slots[i].state = SLOT_BATCH;
        t->batch[nbatch++] = make_id(i, t->slots[i].gen);
    }

    t->running = true;
    for (size_t b = 0; b < nbatch; b++) {
        slot_t *s = lookup(t, t->batch[b]);
        zw_timer_fn fn;
        void *arg;

        if (!s)
            continue; /* cancelled by an earlier callback */
        fn = s->fn;
        arg = s->arg;
        /* Free before calling: the callback may add timers (and reuse the
         * slot), and cancelling its own id must say "not pending". */
        free_slot(t, (uint32_t)(s - t->slots));
        t->count--;
        fn(arg);
        ran++;
    }
    t->running = false;
    return ran;
}

size_t zw_timers_count(const zw_timers_t *t)
{
    return t ? t->count : 0;
}

/* String-keyed hash map: open addressing with linear probing, FNV-1a hashes
 * and tombstones for removal. Small enough to read in one sitting; used for
 * tenants, in-flight keys and anything else looked up by name. */
#include "zw/map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIN_CAPACITY 16
/* Grow (or rebuild) when live entries plus tombstones pass 70% of the slots:
 * beyond that linear probing's chains get long. */
#define LOAD_NUM 7
#define LOAD_DEN 10
/* The largest table we will allocate; keeps the size arithmetic far from
 * overflow. */
#define MAX_CAPACITY ((size_t)1 << 30)

typedef struct {
    char *key;     /* NULL: never used; tombstone: removed; else an owned copy */
    void *value;
    uint64_t hash;
} entry_t;

struct zw_map_s {
    entry_t *entries;
    size_t capacity;   /* a power of two */
    size_t size;       /* live entries */
    size_t tombstones; /* removed slots a probe must still walk over */
};

/* Marks a removed slot. Only its address matters. */
static char tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

static uint64_t hash_key(const char *key)
{
    uint64_t h = 14695981039346656037ULL;

    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

static int is_live(const entry_t *e)
{
    return e->key != NULL && e->key != TOMBSTONE;
}

zw_map_t *zw_map_new(void)
{
    zw_map_t *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->entries = calloc(MIN_CAPACITY, sizeof(*m->entries));
    if (!m->entries) {
        free(m);
        return NULL;
    }
    m->capacity = MIN_CAPACITY;
    return m;
}

void zw_map_destroy(zw_map_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->capacity; i++) {
        if (is_live(&m->entries[i]))
            free(m->entries[i].key);
    }
    free(m->entries);
    free(m);
}

/* The slot holding key, or SIZE_MAX. */
static size_t find(const zw_map_t *m, const char *key, uint64_t hash)
{
    size_t mask = m->capacity - 1;

    /* Terminates: the load cap guarantees at least one never-used slot. */
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        const entry_t *e = &m->entries[i];

        if (e->key == NULL)
            return SIZE_MAX;
        if (e->key != TOMBSTONE && e->hash == hash && strcmp(e->key, key) == 0)
            return i;
    }
}

/* Moves every live entry into a new table sized so that it is at most about
 * a third full. Also the way tombstones are cleared: after many removals the
 * new table may be the same size or smaller. */
static int rehash(zw_map_t *m, size_t need)
{
    size_t capacity = MIN_CAPACITY;
    entry_t *entries;

    while (capacity < MAX_CAPACITY && capacity * LOAD_NUM < need * LOAD_DEN * 2)
        capacity *= 2;
    if (capacity * LOAD_NUM < need * LOAD_DEN)
        return -1;
    entries = calloc(capacity, sizeof(*entries));
    if (!entries)
        return -1;
    for (size_t i = 0; i < m->capacity; i++) {
        entry_t *e = &m->entries[i];
        size_t j;

        if (!is_live(e))
            continue;
        for (j = (size_t)e->hash & (capacity - 1); entries[j].key; j = (j + 1) & (capacity - 1))
            ;
        entries[j] = *e;
    }
    free(m->entries);
    m->entries = entries;
    m->capacity = capacity;
    m->tombstones = 0;
    return 0;
}

void *zw_map_get(const zw_map_t *m, const char *key)
{
    size_t i;

    if (!m || !key)
        return NULL;
    i = find(m, key, hash_key(key));
    return i == SIZE_MAX ? NULL : m->entries[i].value;
}

int zw_map_put(zw_map_t *m, const char *key, void *value)
{
    uint64_t hash;
    size_t mask, i, slot = SIZE_MAX;
    size_t keylen;
    char *copy;

    if (!m || !key || !value)
        return -1;
    hash = hash_key(key);
    i = find(m, key, hash);
    if (i != SIZE_MAX) {
        m->entries[i].value = value;
        return 0;
    }
    /* A new key: make room first so the probe below sees the final table. */
    if ((m->size + m->tombstones + 1) * LOAD_DEN > m->capacity * LOAD_NUM &&
        rehash(m, m->size + 1) != 0)
        return -1;
    keylen = strlen(key);
    copy = malloc(keylen + 1);
    if (!copy)
        return -1;
    memcpy(copy, key, keylen + 1);

    /* The key is absent, so the first reusable slot on its chain will do. */
    mask = m->capacity - 1;
    for (i = (size_t)hash & mask;; i = (i + 1) & mask) {
        if (m->entries[i].key == TOMBSTONE) {
            slot = i;
            m->tombstones--;
            break;
        }
        if (m->entries[i].key == NULL) {
            slot = i;
            break;
        }
    }
    m->entries[slot].key = copy;
    m->entries[slot].value = value;
    m->entries[slot].hash = hash;
    m->size++;
    return 0;
}

void *zw_map_remove(zw_map_t *m, const char *key)
{
    size_t i;
    void *value;

    if (!m || !key)
        return NULL;
    i = find(m, key, hash_key(key));
    if (i == SIZE_MAX)
        return NULL;
    value = m->entries[i].value;
    free(m->entries[i].key);
    /* A tombstone, not an empty slot: later keys of the same chain may sit
     * beyond this one and a probe must keep walking to reach them. */
    m->entries[i].key = TOMBSTONE;
    m->entries[i].value = NULL;
    m->size--;
    m->tombstones++;
    return value;
}

size_t zw_map_size(const zw_map_t *m)
{
    return m ? m->size : 0;
}

void zw_map_each(const zw_map_t *m, void (*fn)(const char *key, void *value, void *arg),
                 void *arg)
{
    if (!m || !fn)
        return;
    for (size_t i = 0; i < m->capacity; i++) {
        if (is_live(&m->entries[i]))
            fn(m->entries[i].key, m->entries[i].value, arg);
    }
}

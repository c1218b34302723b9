/* The assigned partitions and their offsets: an offset is stored for commit
 * only when it and every earlier offset of its partition are done, which is
 * the worker's "nothing lost" promise. */
#include "zw/partition.h"

#include <stdio.h>
#include <sys/types.h>
#include <stdlib.h>
#include <string.h>

#include "zw/log.h"
#include "zw/map.h"
#include "zw/offsets.h"

struct zw_part_s {
    char *topic;
    int32_t partition;
    zw_offsets_t *offsets;
    zw_part_link_t *links; /* every live piece of work */
    bool revoked;          /* handed back: its work ends without storing offsets */
    int64_t stored;
    int64_t last;          /* the highest offset tracked, -1 before any */
    int64_t first;         /* the first offset tracked since assigned, -1 before any */
    zw_part_t *zombie_next;
    /* Deferred offsets (ascending): tracked, not done, their work not in
     * memory; consumed again after a rewind. */
    zw_part_deferred_t *deferred;
    size_t n_deferred, cap_deferred;
    zw_map_t *deferred_by; /* tenant name or "k\x1f" key -> count (as a pointer) */
    int64_t read;          /* the last offset read (tracked or skipped) */
    int64_t rewind_until;  /* a rewind is under way until this offset is read again */
};

struct zw_parts_s {
    rd_kafka_t *consumer;
    zw_map_t *map;     /* "topic\x1fpartition" -> zw_part_t */
    zw_part_t *zombies; /* revoked, waiting for their last work */
};

static char *part_name(const char *topic, int32_t partition)
{
    size_t n = strlen(topic) + 16;
    char *s = malloc(n);

    if (s)
        snprintf(s, n, "%s\x1f%d", topic, (int)partition);
    return s;
}

static void part_free(zw_part_t *p)
{
    for (size_t i = 0; i < p->n_deferred; i++) {
        free(p->deferred[i].tenant);
        free(p->deferred[i].key);
    }
    free(p->deferred);
    zw_map_destroy(p->deferred_by);
    zw_offsets_destroy(p->offsets);
    free(p->topic);
    free(p);
}

void zw_parts_set_consumer(zw_parts_t *ps, rd_kafka_t *consumer)
{
    ps->consumer = consumer;
}

zw_parts_t *zw_parts_new(rd_kafka_t *consumer)
{
    zw_parts_t *ps = calloc(1, sizeof(*ps));

    if (!ps)
        return NULL;
    ps->consumer = consumer;
    ps->map = zw_map_new();
    if (!ps->map) {
        free(ps);
        return NULL;
    }
    return ps;
}

typedef struct {
    void (*release)(zw_part_link_t *link, void *arg);
    void *arg;
} release_ctx_t;

static void free_with_links(zw_part_t *p, const release_ctx_t *rc)
{
    while (p->links) {
        zw_part_link_t *link = p->links;
        p->links = link->next;
        link->prev = link->next = NULL;
        if (rc->release)
            rc->release(link, rc->arg);
    }
    part_free(p);
}

static void free_entry(const char *key, void *value, void *arg)
{
    (void)key;
    free_with_links(value, arg);
}

void zw_parts_destroy(zw_parts_t *ps, void (*release)(zw_part_link_t *link, void *arg),
                      void *arg)
{
    release_ctx_t rc = {release, arg};

    if (!ps)
        return;
    zw_map_each(ps->map, free_entry, &rc);
    zw_map_destroy(ps->map);
    while (ps->zombies) {
        zw_part_t *p = ps->zombies;
        ps->zombies = p->zombie_next;
        free_with_links(p, &rc);
    }
    free(ps);
}

zw_part_t *zw_parts_find(zw_parts_t *ps, const char *topic, int32_t partition)
{
    char *name = part_name(topic, partition);
    zw_part_t *p = name ? zw_map_get(ps->map, name) : NULL;

    free(name);
    return p;
}

zw_part_t *zw_parts_get(zw_parts_t *ps, const char *topic, int32_t partition)
{
    char *name = part_name(topic, partition);
    zw_part_t *p = name ? zw_map_get(ps->map, name) : NULL;

    if (!p && name) {
        p = calloc(1, sizeof(*p));
        if (p) {
            p->topic = strdup(topic);
            p->partition = partition;
            p->stored = -1;
            p->last = p->first = p->read = p->rewind_until = -1;
            p->offsets = zw_offsets_new();
            if (!p->topic || !p->offsets || zw_map_put(ps->map, name, p) != 0) {
                part_free(p);
                p = NULL;
            }
        }
    }
    free(name);
    return p;
}

void zw_parts_revoke(zw_parts_t *ps, zw_part_t *part)
{
    char *name = part_name(part->topic, part->partition);

    if (name && zw_map_get(ps->map, name) == part)
        zw_map_remove(ps->map, name);
    free(name);
    part->revoked = true;
    if (!part->links) {
        part_free(part);
    } else {
        part->zombie_next = ps->zombies;
        ps->zombies = part;
    }
}

typedef struct {
    void (*fn)(zw_part_t *part, void *arg);
    void *arg;
} each_ctx_t;

static void each_entry(const char *key, void *value, void *arg)
{
    each_ctx_t *c = arg;

    (void)key;
    c->fn(value, c->arg);
}

void zw_parts_each(zw_parts_t *ps, void (*fn)(zw_part_t *part, void *arg), void *arg)
{
    each_ctx_t c = {fn, arg};

    zw_map_each(ps->map, each_entry, &c);
}

const char *zw_part_topic(const zw_part_t *part)
{
    return part->topic;
}

int32_t zw_part_partition(const zw_part_t *part)
{
    return part->partition;
}

bool zw_part_revoked(const zw_part_t *part)
{
    return part->revoked;
}

int64_t zw_part_stored(const zw_part_t *part)
{
    return part->stored;
}

int64_t zw_part_committed(const zw_part_t *part)
{
    return part->stored >= 0 ? part->stored : part->first;
}

int64_t zw_part_next(const zw_part_t *part)
{
    return part->last >= 0 ? part->last + 1 : -1;
}

zw_part_link_t *zw_part_links(zw_part_t *part)
{
    return part->links;
}

/* ---- deferred offsets ---- */

static ssize_t deferred_find(const zw_part_t *part, int64_t offset)
{
    size_t lo = 0, hi = part->n_deferred;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (part->deferred[mid].offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < part->n_deferred && part->deferred[lo].offset == offset ? (ssize_t)lo : -1;
}

static int count_add(zw_part_t *part, const char *prefix, const char *name, int delta)
{
    size_t n = strlen(prefix) + strlen(name) + 1;
    char *k = malloc(n);
    intptr_t c;
    int rc = 0;

    if (!k)
        return -1;
    snprintf(k, n, "%s%s", prefix, name);
    c = (intptr_t)zw_map_get(part->deferred_by, k) + delta;
    if (c <= 0)
        zw_map_remove(part->deferred_by, k);
    else
        rc = zw_map_put(part->deferred_by, k, (void *)c);
    free(k);
    return rc;
}

static void count_entry(zw_part_t *part, const zw_part_deferred_t *d, int delta)
{
    count_add(part, "t\x1f", d->tenant, delta);
    if (d->key)
        count_add(part, "k\x1f", d->key, delta);
}

int zw_part_defer(zw_part_t *part, int64_t offset, const char *tenant, const char *key)
{
    zw_part_deferred_t d;
    size_t at;

    if (!part->deferred_by && !(part->deferred_by = zw_map_new()))
        return -1;
    if (part->n_deferred == part->cap_deferred) {
        size_t cap = part->cap_deferred ? part->cap_deferred * 2 : 64;
        zw_part_deferred_t *n = realloc(part->deferred, cap * sizeof(*n));
        if (!n)
            return -1;
        part->deferred = n;
        part->cap_deferred = cap;
    }
    d.offset = offset;
    d.tenant = strdup(tenant);
    d.key = key ? strdup(key) : NULL;
    if (!d.tenant || (key && !d.key)) {
        free(d.tenant);
        free(d.key);
        return -1;
    }
    /* Offsets are deferred in the order they are read: nearly always last. */
    for (at = part->n_deferred; at > 0 && part->deferred[at - 1].offset > offset; at--)
        ;
    memmove(part->deferred + at + 1, part->deferred + at,
            (part->n_deferred - at) * sizeof(*part->deferred));
    part->deferred[at] = d;
    part->n_deferred++;
    count_entry(part, &d, 1);
    return 0;
}

bool zw_part_seen(zw_part_t *part, int64_t offset)
{
    part->read = offset;
    return offset <= part->last && deferred_find(part, offset) < 0;
}

static bool counted(const zw_part_t *part, const char *prefix, const char *name)
{
    size_t n = strlen(prefix) + strlen(name) + 1;
    char *k = malloc(n);
    bool found;

    if (!k)
        return true; /* when in doubt, keep the order */
    snprintf(k, n, "%s%s", prefix, name);
    found = zw_map_get(part->deferred_by, k) != NULL;
    free(k);
    return found;
}

bool zw_part_defers(const zw_part_t *part, int64_t offset, const char *tenant, const char *key)
{
    if (part->n_deferred == 0)
        return false;
    /* A new offset, after every deferred one: the counts answer. */
    if (offset > part->deferred[part->n_deferred - 1].offset)
        return counted(part, "t\x1f", tenant) || (key && counted(part, "k\x1f", key));
    /* Read again by a rewind: only what was deferred before it counts. */
    for (size_t i = 0; i < part->n_deferred && part->deferred[i].offset < offset; i++) {
        const zw_part_deferred_t *d = &part->deferred[i];
        if (strcmp(d->tenant, tenant) == 0 || (key && d->key && strcmp(d->key, key) == 0))
            return true;
    }
    return false;
}

const char *zw_part_deferred_tenant(const zw_part_t *part, int64_t offset)
{
    ssize_t i = deferred_find(part, offset);

    return i < 0 ? NULL : part->deferred[i].tenant;
}

void zw_part_deferred_each(const zw_part_t *part, void (*fn)(const char *tenant, void *arg),
                           void *arg)
{
    for (size_t i = 0; i < part->n_deferred; i++)
        fn(part->deferred[i].tenant, arg);
}

size_t zw_part_deferred(const zw_part_t *part)
{
    return part->n_deferred;
}

int64_t zw_part_rewind_offset(zw_part_t *part)
{
    if (part->n_deferred == 0 || part->read < part->rewind_until)
        return -1;
    part->rewind_until = part->last;
    return part->deferred[0].offset;
}

/* An offset read again: a deferred one is no longer deferred. */
static bool undefer(zw_part_t *part, int64_t offset)
{
    ssize_t i = deferred_find(part, offset);

    if (i < 0)
        return false;
    count_entry(part, &part->deferred[i], -1);
    free(part->deferred[i].tenant);
    free(part->deferred[i].key);
    memmove(part->deferred + i, part->deferred + i + 1,
            (part->n_deferred - (size_t)i - 1) * sizeof(*part->deferred));
    part->n_deferred--;
    return true;
}

int zw_part_track(zw_part_t *part, int64_t offset, zw_part_link_t *link)
{
    if (!undefer(part, offset) && zw_offsets_track(part->offsets, offset) != 0)
        return -1;
    if (offset > part->last)
        part->last = offset;
    if (part->first < 0)
        part->first = offset;
    link->prev = NULL;
    link->next = part->links;
    if (part->links)
        part->links->prev = link;
    part->links = link;
    return 0;
}

void zw_part_done(zw_parts_t *ps, zw_part_t *part, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t err;
    int64_t commit;

    if (part->revoked || zw_offsets_done(part->offsets, offset) != 0)
        return;
    commit = zw_offsets_committable(part->offsets);
    if (commit < 0 || !ps->consumer)
        return;
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, part->topic, part->partition)->offset = commit;
    err = rd_kafka_offsets_store(ps->consumer, l);
    if (!err)
        part->stored = commit;
    else
        ZW_LOG(ZW_LOG_WARN, "cannot store offset", ZW_LF_STR("topic", part->topic),
               ZW_LF_INT("partition", part->partition), ZW_LF_INT("offset", commit),
               ZW_LF_STR("error", rd_kafka_err2str(err)));
    rd_kafka_topic_partition_list_destroy(l);
}

void zw_part_unlink(zw_parts_t *ps, zw_part_t *part, zw_part_link_t *link)
{
    if (link->prev)
        link->prev->next = link->next;
    else if (part->links == link)
        part->links = link->next;
    if (link->next)
        link->next->prev = link->prev;
    link->prev = link->next = NULL;
    if (part->revoked && !part->links) {
        zw_part_t **pp = &ps->zombies;
        while (*pp && *pp != part)
            pp = &(*pp)->zombie_next;
        if (*pp)
            *pp = part->zombie_next;
        part_free(part);
    }
}

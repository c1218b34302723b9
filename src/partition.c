/* The assigned partitions and their offsets: an offset is stored for commit
 * only when it and every earlier offset of its partition are done, which is
 * the worker's "nothing lost" promise. */
#include "zw/partition.h"

#include <stdio.h>
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
    zw_part_t *zombie_next;
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

zw_part_link_t *zw_part_links(zw_part_t *part)
{
    return part->links;
}

int zw_part_track(zw_part_t *part, int64_t offset, zw_part_link_t *link)
{
    if (zw_offsets_track(part->offsets, offset) != 0)
        return -1;
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

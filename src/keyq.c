/* Per-key queues on a string map: the head of a queue is the key's active
 * event, the rest wait in offset order behind it. */
#include "zw/keyq.h"

#include <stdlib.h>
#include <string.h>

#include "zw/map.h"

struct zw_keyq_s {
    char *key;
    zw_keyq_link_t *head, *tail; /* head is the active item */
};

struct zw_keyqs_s {
    zw_map_t *map; /* key -> zw_keyq_t */
};

zw_keyqs_t *zw_keyqs_new(void)
{
    zw_keyqs_t *qs = calloc(1, sizeof(*qs));

    if (qs && !(qs->map = zw_map_new())) {
        free(qs);
        qs = NULL;
    }
    return qs;
}

static void free_queue(zw_keyq_t *q)
{
    free(q->key);
    free(q);
}

static void free_entry(const char *key, void *value, void *arg)
{
    (void)key;
    (void)arg;
    free_queue(value);
}

void zw_keyqs_destroy(zw_keyqs_t *qs)
{
    if (!qs)
        return;
    zw_map_each(qs->map, free_entry, NULL);
    zw_map_destroy(qs->map);
    free(qs);
}

int zw_keyq_add(zw_keyqs_t *qs, const char *key, zw_keyq_link_t *item)
{
    zw_keyq_t *q = zw_map_get(qs->map, key);

    item->next = NULL;
    item->q = NULL;
    if (q) {
        q->tail->next = item;
        q->tail = item;
        item->q = q;
        return 0;
    }
    q = calloc(1, sizeof(*q));
    if (!q || !(q->key = strdup(key)) || zw_map_put(qs->map, key, q) != 0) {
        if (q)
            free(q->key);
        free(q);
        return -1;
    }
    q->head = q->tail = item;
    item->q = q;
    return 1;
}

zw_keyq_link_t *zw_keyq_next(zw_keyqs_t *qs, zw_keyq_link_t *head)
{
    zw_keyq_t *q = head->q;
    zw_keyq_link_t *next = head->next;

    if (!q)
        return NULL;
    head->q = NULL;
    head->next = NULL;
    q->head = next;
    if (!next) {
        zw_map_remove(qs->map, q->key);
        free_queue(q);
        return NULL;
    }
    return next;
}

void zw_keyq_drop(zw_keyqs_t *qs, zw_keyq_link_t *item)
{
    zw_keyq_t *q = item->q;

    if (!q)
        return;
    if (zw_map_get(qs->map, q->key) == q)
        zw_map_remove(qs->map, q->key);
    for (zw_keyq_link_t *k = q->head, *next; k; k = next) {
        next = k->next;
        k->q = NULL;
    }
    free_queue(q);
}

size_t zw_keyqs_count(const zw_keyqs_t *qs)
{
    return zw_map_size(qs->map);
}

/* A string-keyed hash map (open addressing). Keys are copied; values are
 * lent pointers the map never frees. */
#ifndef ZW_MAP_H
#define ZW_MAP_H

#include <stddef.h>

typedef struct zw_map_s zw_map_t;

/* A new, empty map; NULL when out of memory. */
zw_map_t *zw_map_new(void);

/* Frees the map and its key copies, not the values. Accepts NULL. */
void zw_map_destroy(zw_map_t *m);

/* The value for key, or NULL. */
void *zw_map_get(const zw_map_t *m, const char *key);

/* Sets key to value (value must not be NULL), replacing any earlier one.
 * Returns 0, or -1 when out of memory. */
int zw_map_put(zw_map_t *m, const char *key, void *value);

/* Removes key and returns its value, or NULL when absent. */
void *zw_map_remove(zw_map_t *m, const char *key);

size_t zw_map_size(const zw_map_t *m);

/* Calls fn(key, value, arg) for every entry; fn must not change the map. */
void zw_map_each(const zw_map_t *m, void (*fn)(const char *key, void *value, void *arg),
                 void *arg);

#endif

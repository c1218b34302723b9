/* The parts of the worker that the daemon (worker.c) and the sync command
 * (sync_cmd.c) both run on, made and wired in one place: the environment,
 * the loop, the tenants and their policy, the partitions, the key queues,
 * the jobs, and the ways of sending (lookups, bulk jobs, walks). Private to
 * the core. */
#ifndef ZW_CORE_H
#define ZW_CORE_H

#include "bulk.h"
#include "env.h"
#include "job.h"
#include "lookup.h"
#include "walk.h"

typedef struct zw_core_s {
    zw_env_t env;
    zw_jobs_t jobs; /* the tables below, lent to every job */
    zw_walks_t *walks;
    zw_bulks_t *bulks;
    zw_lookups_t *lookups;
    int signal_fd;  /* readable after SIGTERM / SIGINT; -1 before init */
} zw_core_t;

/* Makes everything for config (lent): libcurl, the signal handlers, the
 * loop, the metrics, the tenants with their policy wired to the senders.
 * Returns 0, or -1 after logging why (zw_core_cleanup is still needed). */
int zw_core_init(zw_core_t *c, const zw_config_t *config);

/* Sets the producer results go to (lent); NULL until then. Returns 0 or -1
 * when out of memory. */
int zw_core_set_producer(zw_core_t *c, rd_kafka_t *producer);

/* Frees everything, and whatever work is left, in the order they need. */
void zw_core_cleanup(zw_core_t *c);

/* How many signals have arrived (the second one _exit()s). */
int zw_core_signals(void);

#endif

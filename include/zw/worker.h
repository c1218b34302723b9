/* The daemon: joins the consumer group and runs the event loop until a
 * signal asks it to stop (shared/DESIGN.md section 5). */
#ifndef ZW_WORKER_H
#define ZW_WORKER_H

#include <stdbool.h>

#include "zw/config.h"

/* Exit codes, as sysexits.h. */
#define ZW_EXIT_OK 0
#define ZW_EXIT_UNAVAILABLE 69
#define ZW_EXIT_SOFTWARE 70
#define ZW_EXIT_CANTCREAT 73
#define ZW_EXIT_INTERRUPTED 130

/* Runs until SIGTERM/SIGINT, then drains and leaves the group. The config
 * is lent for the whole call. Returns a process exit code. */
int zw_worker_run(const zw_config_t *config);

/* The `sync` command: one snapshot of tenant without Kafka, written as NDJSON
 * (begin, user..., end records as on the snapshots topic) to out_path, or
 * stdout when NULL; a progress line on stderr when it is a terminal.
 * Returns an exit code: 0 complete, 69 failed, 130 interrupted. */
int zw_worker_sync_oneshot(const zw_config_t *config, const char *tenant, bool incremental,
                           const char *cursor, const char *out_path);

#endif

/* The daemon: joins the consumer group and runs the event loop until a
 * signal asks it to stop (shared/DESIGN.md section 5). */
#ifndef ZW_WORKER_H
#define ZW_WORKER_H

#include "zw/config.h"

/* Exit codes, as sysexits.h. */
#define ZW_EXIT_OK 0
#define ZW_EXIT_UNAVAILABLE 69
#define ZW_EXIT_SOFTWARE 70

/* Runs until SIGTERM/SIGINT, then drains and leaves the group. The config
 * is lent for the whole call. Returns a process exit code. */
int zw_worker_run(const zw_config_t *config);

#endif

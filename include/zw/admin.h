/* The admin HTTP endpoint (admin.listen): /healthz, /readyz and /metrics,
 * served by libmicrohttpd on its own thread, so a slow client or a scrape
 * during shutdown never blocks the worker's loop. The loop only stores a few
 * atomics (heartbeat, ready) and the metrics registry has its own mutex. */
#ifndef ZW_ADMIN_H
#define ZW_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zw/metrics.h"

typedef struct zw_admin_s zw_admin_t;

/* /healthz answers 503 "stalled" once the last heartbeat is this old. */
#define ZW_ADMIN_STALL_MS 10000
/* A client that sends or reads nothing for this long is dropped; at most
 * ZW_ADMIN_MAX_CONNECTIONS are open at once (more wait in the kernel's
 * backlog) and at most ZW_ADMIN_MAX_PER_IP from one address (more are closed
 * at once), so slow clients cannot pile up and one misbehaving scraper
 * cannot starve the kubelet's probes. */
#define ZW_ADMIN_TIMEOUT_S 10
#define ZW_ADMIN_MAX_CONNECTIONS 64
#define ZW_ADMIN_MAX_PER_IP 16

/* Binds listen ("host:port", "[v6-host]:port"; an empty host or "*" means
 * every address; port 0 picks a free one) and starts serving on a new
 * thread. metrics is lent for the admin's life (stop the admin before
 * destroying it). The admin starts not ready ("starting") and with a
 * heartbeat at the time of the call. Returns a new admin, free with
 * zw_admin_stop; NULL with a message in errstr when listen is malformed, the
 * address cannot be bound or the server cannot start. */
zw_admin_t *zw_admin_start(const char *listen, zw_metrics_t *metrics, char *errstr,
                           size_t errstr_size);

/* The bound port (useful with port 0). */
int zw_admin_port(const zw_admin_t *a);

/* The loop is alive at now_ms (monotonic ms, zw_loop_now_ms()); call it
 * every turn or timer tick, at least every few seconds. Accepts NULL. */
void zw_admin_heartbeat(zw_admin_t *a, int64_t now_ms);

/* What /readyz reports: ready, or not with why (e.g. "draining", "waiting
 * for broker"; copied, truncated to 127 bytes; NULL: "not ready"). Accepts
 * NULL. */
void zw_admin_set_ready(zw_admin_t *a, bool ready, const char *why);

/* Stops serving (open connections are closed), joins the thread, closes the
 * socket and frees a. Accepts NULL. */
void zw_admin_stop(zw_admin_t *a);

#endif

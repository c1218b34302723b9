/* The event loop: one thread waits on epoll for curl's sockets, the fds that
 * librdkafka's queues signal, and the earliest timer. Nothing in it blocks;
 * every wait is a timer. */
#ifndef ZW_LOOP_H
#define ZW_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "zw/timers.h"
#include "zw/zendesk.h"

typedef struct zw_loop_s zw_loop_t;

typedef void (*zw_loop_fd_fn)(int fd, void *arg);

/* A new loop; NULL with errstr on failure. max_host_connections bounds the
 * connections to one host (0: no bound). Free with zw_loop_destroy. */
zw_loop_t *zw_loop_new(long max_host_connections, char *errstr, size_t errstr_size);

/* Aborts transfers still in flight (their requests are destroyed without a
 * callback) and frees the loop. Accepts NULL. */
void zw_loop_destroy(zw_loop_t *loop);

/* Calls fn(fd, arg) whenever fd is readable. Returns 0 / -1. */
int zw_loop_watch_fd(zw_loop_t *loop, int fd, zw_loop_fd_fn fn, void *arg);

/* Starts a transfer; the loop holds req until it finishes, then calls
 * req->frame (which owns req), or req->on_done and destroys req. 0 / -1. */
int zw_loop_http_start(zw_loop_t *loop, zw_http_t *req);

size_t zw_loop_http_in_flight(const zw_loop_t *loop);

/* The loop's timers (lent for the loop's lifetime). */
zw_timers_t *zw_loop_timers(zw_loop_t *loop);

/* Monotonic milliseconds. */
int64_t zw_loop_now_ms(void);

/* One turn: wait at most max_wait_ms for anything, then serve fds, curl and
 * due timers. Returns 0, or -1 on an unrecoverable epoll error. */
int zw_loop_run_once(zw_loop_t *loop, int max_wait_ms);

#endif

/* The event loop. The order of one turn:
 *   1. wait on epoll until a socket or fd is ready, or the earliest of
 *      curl's timeout, the next timer and the caller's bound;
 *   2. serve ready fds: curl sockets go to curl_multi_socket_action, the
 *      others (librdkafka's queue fds) to their callbacks;
 *   3. let curl handle its timeout if due;
 *   4. hand each finished transfer to its own done callback;
 *   5. run due timers (retries, rate-budget waits, periodic work).
 * Curl's socket callback keeps epoll in step with the sockets curl uses. */
#include "zw/loop.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256

/* An epoll entry is either an fd watch (data.ptr: it lives as long as the
 * loop) or one of curl's sockets (data.u64: the socket with this tag bit,
 * which no user-space pointer has). A curl socket carries no pointer, since
 * curl may close one socket while another's event of the same epoll batch
 * is still to be handled: an event for a socket gone is only spurious. */
#define CURL_SOCKET_TAG (UINT64_C(1) << 63)

typedef struct watch_s {
    int fd;
    zw_loop_fd_fn fn;
    void *arg;
    struct watch_s *next; /* fd watches, for destroy */
} watch_t;

struct zw_loop_s {
    int epfd;
    CURLM *multi;
    zw_timers_t *timers;
    int64_t curl_due_ms; /* -1: curl wants no timeout */
    size_t in_flight;
    watch_t *fd_watches;
    zw_http_t *requests; /* in flight, for destroy */
};

int64_t zw_loop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* socketp is the loop itself once the socket is in epoll, NULL before. */
static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    zw_loop_t *loop = userp;
    struct epoll_event ev;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (socketp) {
            epoll_ctl(loop->epfd, EPOLL_CTL_DEL, s, NULL);
            curl_multi_assign(loop->multi, s, NULL);
        }
        return 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    ev.data.u64 = CURL_SOCKET_TAG | (uint32_t)s;
    if (!socketp) {
        if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, s, &ev) != 0)
            return -1;
        curl_multi_assign(loop->multi, s, loop);
    } else if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, s, &ev) != 0) {
        return -1;
    }
    return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    zw_loop_t *loop = userp;

    (void)multi;
    loop->curl_due_ms = timeout_ms < 0 ? -1 : zw_loop_now_ms() + timeout_ms;
    return 0;
}

zw_loop_t *zw_loop_new(long max_host_connections, char *errstr, size_t errstr_size)
{
    zw_loop_t *loop = calloc(1, sizeof(*loop));

    if (!loop) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    loop->epfd = -1;
    loop->curl_due_ms = -1;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->multi = curl_multi_init();
    loop->timers = zw_timers_new();
    if (loop->epfd < 0 || !loop->multi || !loop->timers) {
        snprintf(errstr, errstr_size, "cannot create the event loop: %s", strerror(errno));
        zw_loop_destroy(loop);
        return NULL;
    }
    curl_multi_setopt(loop->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(loop->multi, CURLMOPT_SOCKETDATA, loop);
    curl_multi_setopt(loop->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(loop->multi, CURLMOPT_TIMERDATA, loop);
    if (max_host_connections > 0)
        curl_multi_setopt(loop->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host_connections);
    /* Idle keep-alive connections are cheap; reconnecting is not. */
    curl_multi_setopt(loop->multi, CURLMOPT_MAXCONNECTS, 1024L);
    return loop;
}

void zw_loop_destroy(zw_loop_t *loop)
{
    if (!loop)
        return;
    if (loop->multi) {
        while (loop->requests) {
            zw_http_t *req = loop->requests;
            loop->requests = req->loop_next;
            curl_multi_remove_handle(loop->multi, req->easy);
            zw_http_destroy(req);
        }
        curl_multi_cleanup(loop->multi);
    }
    while (loop->fd_watches) {
        watch_t *w = loop->fd_watches;
        loop->fd_watches = w->next;
        free(w);
    }
    zw_timers_destroy(loop->timers);
    if (loop->epfd >= 0)
        close(loop->epfd);
    free(loop);
}

int zw_loop_watch_fd(zw_loop_t *loop, int fd, zw_loop_fd_fn fn, void *arg)
{
    watch_t *w = calloc(1, sizeof(*w));
    struct epoll_event ev;

    if (!w)
        return -1;
    w->fd = fd;
    w->fn = fn;
    w->arg = arg;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = w;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        free(w);
        return -1;
    }
    w->next = loop->fd_watches;
    loop->fd_watches = w;
    return 0;
}

int zw_loop_http_start(zw_loop_t *loop, zw_http_t *req)
{
    if (curl_multi_add_handle(loop->multi, req->easy) != CURLM_OK)
        return -1;
    loop->in_flight++;
    req->loop_prev = NULL;
    req->loop_next = loop->requests;
    if (loop->requests)
        loop->requests->loop_prev = req;
    loop->requests = req;
    return 0;
}

size_t zw_loop_http_in_flight(const zw_loop_t *loop)
{
    return loop->in_flight;
}

zw_timers_t *zw_loop_timers(zw_loop_t *loop)
{
    return loop->timers;
}

static void collect_finished(zw_loop_t *loop)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(loop->multi, &left))) {
        zw_http_t *req = NULL;
        CURL *easy;
        CURLcode result;

        if (msg->msg != CURLMSG_DONE)
            continue;
        /* Copy what we need before the remove invalidates msg. */
        easy = msg->easy_handle;
        result = msg->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&req);
        curl_multi_remove_handle(loop->multi, easy);
        loop->in_flight--;
        if (req->loop_prev)
            req->loop_prev->loop_next = req->loop_next;
        else
            loop->requests = req->loop_next;
        if (req->loop_next)
            req->loop_next->loop_prev = req->loop_prev;
        req->loop_prev = req->loop_next = NULL;
        req->curl_code = (int)result;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &req->status);
        if (result != CURLE_OK)
            req->status = 0; /* a partial response is no answer */
        /* The request routes itself to whoever waits for it. */
        if (req->frame) {
            req->frame(req, req->frame_arg);
        } else {
            if (req->on_done)
                req->on_done(req, req->done_arg);
            zw_http_destroy(req);
        }
    }
}

int zw_loop_run_once(zw_loop_t *loop, int max_wait_ms)
{
    struct epoll_event events[MAX_EVENTS];
    int64_t now = zw_loop_now_ms(), due = now + max_wait_ms, timer_due;
    int n, running;

    timer_due = zw_timers_next_due(loop->timers);
    if (timer_due >= 0 && timer_due < due)
        due = timer_due;
    if (loop->curl_due_ms >= 0 && loop->curl_due_ms < due)
        due = loop->curl_due_ms;
    n = epoll_wait(loop->epfd, events, MAX_EVENTS, due > now ? (int)(due - now) : 0);
    if (n < 0) {
        if (errno == EINTR)
            n = 0;
        else
            return -1;
    }
    for (int i = 0; i < n; i++) {
        uint64_t tagged = events[i].data.u64;
        if (!(tagged & CURL_SOCKET_TAG)) {
            watch_t *w = events[i].data.ptr;
            w->fn(w->fd, w->arg);
        } else {
            int mask = 0;
            if (events[i].events & EPOLLIN)
                mask |= CURL_CSELECT_IN;
            if (events[i].events & EPOLLOUT)
                mask |= CURL_CSELECT_OUT;
            if (events[i].events & (EPOLLERR | EPOLLHUP))
                mask |= CURL_CSELECT_ERR;
            curl_multi_socket_action(loop->multi, (curl_socket_t)(uint32_t)tagged, mask,
                                     &running);
        }
    }
    now = zw_loop_now_ms();
    if (loop->curl_due_ms >= 0 && loop->curl_due_ms <= now) {
        loop->curl_due_ms = -1;
        curl_multi_socket_action(loop->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    collect_finished(loop);
    zw_timers_run(loop->timers, zw_loop_now_ms());
    return 0;
}

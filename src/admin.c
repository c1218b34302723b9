/* The admin HTTP endpoint: libmicrohttpd serves /healthz, /readyz and
 * /metrics from its own polling thread. The loop's side is a heartbeat and a
 * ready flag (atomics) plus a short "why" string (a mutex), so nothing a
 * client does (a slow read, a flood of connections, a scrape during
 * shutdown) can make the loop wait. Slow clients are timed out and capped. */
#include "zw/admin.h"

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "zw/log.h"
#include "zw/loop.h"

#define WHY_SIZE 128
#define ERR_SIZE 256

#define CONTENT_TEXT "text/plain; charset=utf-8"
#define CONTENT_METRICS "text/plain; version=0.0.4; charset=utf-8"

struct zw_admin_s {
    struct MHD_Daemon *daemon;
    zw_metrics_t *metrics; /* lent */
    int port;

    /* Written by the loop, read by the admin thread. */
    atomic_int_least64_t heartbeat_ms;
    atomic_bool ready;

    pthread_mutex_t lock; /* guards the three below */
    char why[WHY_SIZE];
    bool starting;            /* MHD's messages go to start_err, not the log */
    char start_err[ERR_SIZE]; /* MHD's first message while starting */
};

/* libmicrohttpd's diagnostics: while starting they become the caller's
 * errstr (e.g. "Failed to bind to port 9464: Address already in use"); later
 * they go through the logger, as every diagnostic does, at debug: once
 * serving they are about single clients ("closed by remote side", "reached
 * connection limit"), which a scanner could otherwise turn into a log flood. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 0)))
#endif
    ;

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    zw_admin_t *a = cls;
    char msg[ERR_SIZE];
    size_t len;
    bool starting;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
        msg[--len] = '\0';
    pthread_mutex_lock(&a->lock);
    starting = a->starting;
    if (starting && a->start_err[0] == '\0')
        snprintf(a->start_err, sizeof(a->start_err), "%s", msg);
    pthread_mutex_unlock(&a->lock);
    if (!starting)
        ZW_LOG(ZW_LOG_DEBUG, "admin endpoint: libmicrohttpd", ZW_LF_STR("error", msg));
}

/* Queues one response. body is static unless mode says otherwise; with
 * MHD_RESPMEM_MUST_FREE it is taken (freed even on failure). */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int code, const char *body,
                             enum MHD_ResponseMemoryMode mode, const char *content_type)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    /* MHD only reads a PERSISTENT or MUST_COPY buffer; its API is not
     * const-correct. */
    resp = MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free((void *)(uintptr_t)body);
        return MHD_NO;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
        (code == MHD_HTTP_METHOD_NOT_ALLOWED &&
         MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES)) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    ret = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result healthz(zw_admin_t *a, struct MHD_Connection *conn)
{
    int64_t age = zw_loop_now_ms() - atomic_load(&a->heartbeat_ms);

    if (age < ZW_ADMIN_STALL_MS)
        return reply(conn, MHD_HTTP_OK, "ok", MHD_RESPMEM_PERSISTENT, CONTENT_TEXT);
    return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "stalled", MHD_RESPMEM_PERSISTENT,
                 CONTENT_TEXT);
}

static enum MHD_Result readyz(zw_admin_t *a, struct MHD_Connection *conn)
{
    char why[WHY_SIZE];

    if (atomic_load(&a->ready))
        return reply(conn, MHD_HTTP_OK, "ready", MHD_RESPMEM_PERSISTENT, CONTENT_TEXT);
    pthread_mutex_lock(&a->lock);
    memcpy(why, a->why, sizeof(why));
    pthread_mutex_unlock(&a->lock);
    return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, why, MHD_RESPMEM_MUST_COPY, CONTENT_TEXT);
}

static enum MHD_Result metrics(zw_admin_t *a, struct MHD_Connection *conn)
{
    char *text = zw_metrics_render(a->metrics);

    if (!text)
        return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render the metrics",
                     MHD_RESPMEM_PERSISTENT, CONTENT_TEXT);
    return reply(conn, MHD_HTTP_OK, text, MHD_RESPMEM_MUST_FREE, CONTENT_METRICS);
}

/* Every request is answered on its first call, before any body is read: no
 * endpoint takes one, and MHD closes a connection whose body went unread. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    zw_admin_t *a = cls;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    /* HEAD is GET without the body (MHD drops it), as HTTP requires. */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed",
                     MHD_RESPMEM_PERSISTENT, CONTENT_TEXT);
    if (strcmp(url, "/healthz") == 0)
        return healthz(a, conn);
    if (strcmp(url, "/readyz") == 0)
        return readyz(a, conn);
    if (strcmp(url, "/metrics") == 0)
        return metrics(a, conn);
    return reply(conn, MHD_HTTP_NOT_FOUND, "not found", MHD_RESPMEM_PERSISTENT, CONTENT_TEXT);
}

/* Splits "host:port" or "[host]:port" into its parts; an empty host or "*"
 * becomes 0.0.0.0. Returns 0 / -1 with errstr. */
static int split_listen(const char *listen, char *host, size_t host_size, char *port,
                        size_t port_size, char *errstr, size_t errstr_size)
{
    const char *colon, *host_start = listen, *host_end;
    size_t n;

    if (listen[0] == '[') {
        host_start = listen + 1;
        host_end = strchr(host_start, ']');
        if (!host_end || host_end[1] != ':') {
            snprintf(errstr, errstr_size, "admin.listen \"%s\": expected [address]:port", listen);
            return -1;
        }
        colon = host_end + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) {
            snprintf(errstr, errstr_size, "admin.listen \"%s\": expected host:port", listen);
            return -1;
        }
        if (memchr(listen, ':', (size_t)(colon - listen))) {
            snprintf(errstr, errstr_size,
                     "admin.listen \"%s\": an IPv6 address goes in brackets: [address]:port",
                     listen);
            return -1;
        }
        host_end = colon;
    }
    n = strlen(colon + 1);
    if (n == 0 || n > 5 || strspn(colon + 1, "0123456789") != n || atol(colon + 1) > 65535) {
        snprintf(errstr, errstr_size, "admin.listen \"%s\": the port must be 0 to 65535", listen);
        return -1;
    }
    snprintf(port, port_size, "%s", colon + 1);
    n = (size_t)(host_end - host_start);
    if (n >= host_size) {
        snprintf(errstr, errstr_size, "admin.listen \"%s\": the host is too long", listen);
        return -1;
    }
    memcpy(host, host_start, n);
    host[n] = '\0';
    if (n == 0 || strcmp(host, "*") == 0)
        snprintf(host, host_size, "0.0.0.0");
    return 0;
}

/* Resolves listen into addr. Returns 0 / -1 with errstr. */
static int resolve_listen(const char *listen, struct sockaddr_storage *addr, char *errstr,
                          size_t errstr_size)
{
    char host[256], port[8];
    struct addrinfo hints, *res = NULL;
    int rc;

    if (split_listen(listen, host, sizeof(host), port, sizeof(port), errstr, errstr_size) != 0)
        return -1;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(errstr, errstr_size, "admin.listen \"%s\": cannot resolve \"%s\": %s", listen,
                 host, rc != 0 ? gai_strerror(rc) : "no address");
        if (res)
            freeaddrinfo(res);
        return -1;
    }
    if ((res->ai_family != AF_INET && res->ai_family != AF_INET6) ||
        res->ai_addrlen > sizeof(*addr)) {
        snprintf(errstr, errstr_size, "admin.listen \"%s\": not an IP address", listen);
        freeaddrinfo(res);
        return -1;
    }
    memset(addr, 0, sizeof(*addr));
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

zw_admin_t *zw_admin_start(const char *listen, zw_metrics_t *metrics, char *errstr,
                           size_t errstr_size)
{
    struct sockaddr_storage addr;
    const union MHD_DaemonInfo *info;
    unsigned int flags;
    zw_admin_t *a;

    if (!listen || !listen[0] || !metrics) {
        snprintf(errstr, errstr_size, "admin endpoint: %s",
                 !metrics ? "no metrics registry" : "admin.listen is empty");
        return NULL;
    }
    if (resolve_listen(listen, &addr, errstr, errstr_size) != 0)
        return NULL;
    a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(errstr, errstr_size, "admin endpoint: out of memory");
        return NULL;
    }
    if (pthread_mutex_init(&a->lock, NULL) != 0) {
        free(a);
        snprintf(errstr, errstr_size, "admin endpoint: cannot create a mutex");
        return NULL;
    }
    a->metrics = metrics;
    /* A probe before the loop's first turn sees a fresh start, not a stall. */
    atomic_init(&a->heartbeat_ms, zw_loop_now_ms());
    atomic_init(&a->ready, false);
    snprintf(a->why, sizeof(a->why), "starting");
    a->starting = true;

    /* epoll where there is one: poll's cost grows with the connections. */
    flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
            (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_POLL);
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_DUAL_STACK;
    a->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)ZW_ADMIN_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)ZW_ADMIN_MAX_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned int)ZW_ADMIN_MAX_PER_IP, MHD_OPTION_END);
    pthread_mutex_lock(&a->lock);
    a->starting = false;
    pthread_mutex_unlock(&a->lock);
    if (!a->daemon) {
        snprintf(errstr, errstr_size, "admin.listen \"%s\": cannot start the HTTP server%s%s",
                 listen, a->start_err[0] ? ": " : "", a->start_err);
        zw_admin_stop(a);
        return NULL;
    }
    info = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || info->port == 0) {
        snprintf(errstr, errstr_size, "admin.listen \"%s\": cannot tell the bound port", listen);
        zw_admin_stop(a);
        return NULL;
    }
    a->port = info->port;
    return a;
}

int zw_admin_port(const zw_admin_t *a)
{
    return a ? a->port : 0;
}

void zw_admin_heartbeat(zw_admin_t *a, int64_t now_ms)
{
    if (a)
        atomic_store(&a->heartbeat_ms, now_ms);
}

void zw_admin_set_ready(zw_admin_t *a, bool ready, const char *why)
{
    if (!a)
        return;
    /* The reason first: a reader that sees "not ready" finds this why or a
     * later one, never an empty buffer. */
    pthread_mutex_lock(&a->lock);
    snprintf(a->why, sizeof(a->why), "%s", why && why[0] ? why : "not ready");
    pthread_mutex_unlock(&a->lock);
    atomic_store(&a->ready, ready);
}

void zw_admin_stop(zw_admin_t *a)
{
    if (!a)
        return;
    if (a->daemon)
        MHD_stop_daemon(a->daemon);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

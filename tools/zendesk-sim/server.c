/*
 * zendesk-sim: the HTTP glue on libmicrohttpd. MHD runs a small epoll thread pool; a request
 * is parsed, handled under g_sim.lock, and answered at once, or its connection is suspended
 * and a timer thread resumes it when its latency is over, so slow answers never hold a thread.
 */
#include "sim.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef enum { CONN_NEW = 0, CONN_READING, CONN_SUSPENDED, CONN_RESUMED } conn_state_t;

typedef struct conn_s {
    sim_req_t req;
    sim_resp_t resp;
    conn_state_t state;
    bool close_on_resume;   /* a hung answer, or shutting down */
} conn_t;

/* ---------- the latency timer: a min-heap of suspended connections ---------- */

typedef struct wake_s {
    int64_t due_ms;    /* monotonic */
    conn_t *conn;
} wake_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    wake_t *heap;
    size_t n, cap;
    bool stop;
    pthread_t thread;
    bool started;
} timer = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct MHD_Daemon *daemon_handle;
static _Atomic bool shutting_down;

static void heap_swap(size_t a, size_t b)
{
    wake_t t = timer.heap[a];
    timer.heap[a] = timer.heap[b];
    timer.heap[b] = t;
}

static int timer_add(conn_t *c, int64_t delay_ms)
{
    pthread_mutex_lock(&timer.lock);
    if (timer.n == timer.cap) {
        size_t cap = timer.cap ? timer.cap * 2 : 256;
        wake_t *h = realloc(timer.heap, cap * sizeof(*h));
        if (!h) {
            pthread_mutex_unlock(&timer.lock);
            return -1;
        }
        timer.heap = h;
        timer.cap = cap;
    }
    size_t i = timer.n++;
    timer.heap[i].due_ms = sim_mono_ms() + delay_ms;
    timer.heap[i].conn = c;
    while (i > 0 && timer.heap[(i - 1) / 2].due_ms > timer.heap[i].due_ms) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    pthread_cond_signal(&timer.cond);
    pthread_mutex_unlock(&timer.lock);
    return 0;
}

static conn_t *heap_pop(void)
{
    conn_t *c = timer.heap[0].conn;
    timer.heap[0] = timer.heap[--timer.n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < timer.n && timer.heap[l].due_ms < timer.heap[m].due_ms)
            m = l;
        if (r < timer.n && timer.heap[r].due_ms < timer.heap[m].due_ms)
            m = r;
        if (m == i)
            break;
        heap_swap(i, m);
        i = m;
    }
    return c;
}

static void resume(conn_t *c)
{
    c->state = CONN_RESUMED;
    MHD_resume_connection((struct MHD_Connection *)c->req.conn);
}

static void *timer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&timer.lock);
    while (!timer.stop) {
        if (!timer.n) {
            pthread_cond_wait(&timer.cond, &timer.lock);
            continue;
        }
        int64_t now = sim_mono_ms(), due = timer.heap[0].due_ms;
        if (due <= now) {
            resume(heap_pop());
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait = due - now;
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&timer.cond, &timer.lock, &ts);
    }
    /* Shutting down: answer nothing more, let MHD close every waiting connection. */
    while (timer.n) {
        conn_t *c = heap_pop();
        c->close_on_resume = true;
        resume(c);
    }
    pthread_mutex_unlock(&timer.lock);
    return NULL;
}

static int timer_start(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&timer.cond, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&timer.thread, NULL, timer_main, NULL) != 0)
        return -1;
    timer.started = true;
    return 0;
}

static void timer_stop(void)
{
    if (!timer.started)
        return;
    pthread_mutex_lock(&timer.lock);
    timer.stop = true;
    pthread_cond_signal(&timer.cond);
    pthread_mutex_unlock(&timer.lock);
    pthread_join(timer.thread, NULL);
    timer.started = false;
    free(timer.heap);
    timer.heap = NULL;
    timer.n = timer.cap = 0;
    pthread_cond_destroy(&timer.cond);
}

/* ---------- requests ---------- */

static const char *query_get(const sim_req_t *req, const char *key)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)req->conn, MHD_GET_ARGUMENT_KIND, key);
}

typedef struct each_s {
    const char *key;
    void (*fn)(void *arg, const char *val);
    void *arg;
} each_t;

static enum MHD_Result each_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    each_t *e = cls;
    (void)kind;
    if (key && value && !strcmp(key, e->key))
        e->fn(e->arg, value);
    return MHD_YES;
}

static void query_each(const sim_req_t *req, const char *key, void (*fn)(void *arg, const char *val), void *arg)
{
    each_t e = {.key = key, .fn = fn, .arg = arg};
    MHD_get_connection_values((struct MHD_Connection *)req->conn, MHD_GET_ARGUMENT_KIND, each_cb, &e);
}

static conn_t *conn_new(struct MHD_Connection *mc, const char *url, const char *method)
{
    conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    sim_req_t *r = &c->req;
    r->conn = mc;
    r->query = query_get;
    r->query_each = query_each;
    sim_strlcpy(r->method, method, sizeof(r->method));
    const char *host = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    /* An absolute-form request line (a client using us as its HTTP proxy) names the host. */
    if (!strncmp(url, "http://", 7)) {
        const char *auth = url + 7, *slash = strchr(auth, '/');
        size_t len = slash ? (size_t)(slash - auth) : strlen(auth);
        if (!host && len < sizeof(r->host))
            snprintf(r->host, sizeof(r->host), "%.*s", (int)len, auth);
        url = slash ? slash : "/";
    }
    if (host)
        sim_strlcpy(r->host, host, sizeof(r->host));
    size_t i = 0;
    for (; r->host[i] && r->host[i] != '.' && r->host[i] != ':' && i + 1 < sizeof(r->sub); i++)
        r->sub[i] = r->host[i];
    r->sub[i] = '\0';
    sim_lower(r->sub, r->sub, sizeof(r->sub));
    r->raw_path = strdup(url);
    r->path = strdup(url);
    if (!r->raw_path || !r->path) {
        free(r->raw_path);
        free(r->path);
        free(c);
        return NULL;
    }
    char *q = strchr(r->path, '?');
    if (q)
        *q = '\0';
    size_t l = strlen(r->path);
    if (l > 5 && !strcmp(r->path + l - 5, ".json"))
        r->path[l -= 5] = '\0';
    while (l > 1 && r->path[l - 1] == '/')
        r->path[--l] = '\0';
    r->content_type = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    r->authorization = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t clen;
    if (cl && sim_parse_i64(cl, &clen) == 0 && clen > (int64_t)g_sim.max_body)
        r->too_large = true;
    static _Atomic uint64_t counter;
    uint64_t n = atomic_fetch_add(&counter, 1) + 1;
    uint64_t mix = (n * 0x9E3779B97F4A7C15ULL) ^ (uint64_t)sim_mono_ms();
    snprintf(r->request_id, sizeof(r->request_id), "%016llx-%llu", (unsigned long long)mix, (unsigned long long)n);
    return c;
}

static void conn_free(conn_t *c)
{
    if (!c)
        return;
    free(c->req.path);
    free(c->req.raw_path);
    sim_buf_cleanup(&c->req.body);
    sim_resp_cleanup(&c->resp);
    free(c);
}

static void unknown_account(conn_t *c)
{
    /* Zendesk answers an unknown subdomain with an HTML page, not JSON. */
    sim_resp_text(&c->resp, 404, "text/html; charset=utf-8",
                  "<!DOCTYPE html><html><head><title>Zendesk - Help Center Closed</title></head>"
                  "<body><h1>Oops! This help center no longer exists</h1>"
                  "<p>The page you were looking for doesn't exist.</p></body></html>\n");
}

static void process(conn_t *c)
{
    sim_req_t *r = &c->req;
    pthread_mutex_lock(&g_sim.lock);
    if (!strncmp(r->path, "/__sim/", 7) || !strcmp(r->path, "/__sim")) {
        if (r->too_large)
            sim_resp_error(&c->resp, 413, "RequestTooLarge", "the body is larger than --max-body");
        else
            sim_control_handle(r, &c->resp);
    } else {
        sim_account_t *acct = r->sub[0] ? sim_account_find(r->sub) : NULL;
        if (!acct) {
            unknown_account(c);
        } else {
            const char *label = sim_api_handle(acct, r, &c->resp, sim_now_ms());
            sim_log_request(acct, r, label, c->resp.action == SIM_ACT_RESPOND ? c->resp.status : 0);
        }
    }
    pthread_mutex_unlock(&g_sim.lock);
}

static enum MHD_Result send_response(conn_t *c, struct MHD_Connection *mc)
{
    sim_resp_t *s = &c->resp;
    struct MHD_Response *resp;
    if (s->body && s->body_len) {
        resp = MHD_create_response_from_buffer(s->body_len, s->body, MHD_RESPMEM_MUST_FREE);
        if (resp)
            s->body = NULL;   /* MHD owns it now */
    } else {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return MHD_NO;
    if (s->ctype[0] && s->status != 204)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, s->ctype);
    MHD_add_response_header(resp, "X-Zendesk-Request-Id", c->req.request_id);
    for (int i = 0; i < s->nhdr; i++)
        MHD_add_response_header(resp, s->hdr_name[i], s->hdr_val[i]);
    enum MHD_Result rc = MHD_queue_response(mc, (unsigned)(s->status ? s->status : 500), resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)cls;
    (void)version;
    conn_t *c = *con_cls;
    if (!c) {
        c = conn_new(mc, url, method);
        if (!c)
            return MHD_NO;
        c->state = CONN_READING;
        *con_cls = c;
        return MHD_YES;
    }
    if (c->state == CONN_RESUMED) {
        if (c->close_on_resume || c->resp.action != SIM_ACT_RESPOND || atomic_load(&shutting_down))
            return MHD_NO;
        return send_response(c, mc);
    }
    if (*upload_data_size) {
        /* Past the cap the rest is read and thrown away; the answer is 413. */
        if (!c->req.too_large &&
            sim_buf_append(&c->req.body, upload_data, *upload_data_size, g_sim.max_body) != 0) {
            c->req.too_large = true;
            sim_buf_cleanup(&c->req.body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->state == CONN_SUSPENDED)
        return MHD_YES;
    process(c);
    if (c->resp.lose_answer)
        c->resp.action = SIM_ACT_DROP;
    if (c->resp.action == SIM_ACT_DROP)
        return MHD_NO;
    int64_t delay = c->resp.action == SIM_ACT_HANG ? c->resp.hang_ms : c->resp.delay_ms;
    if (delay > 0 && !atomic_load(&shutting_down)) {
        c->state = CONN_SUSPENDED;
        c->close_on_resume = c->resp.action == SIM_ACT_HANG;
        MHD_suspend_connection(mc);
        if (timer_add(c, delay) != 0) {
            resume(c);
        }
        return MHD_YES;
    }
    if (c->resp.action == SIM_ACT_HANG)
        return MHD_NO;
    return send_response(c, mc);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)mc;
    (void)toe;
    conn_free(*con_cls);
    *con_cls = NULL;
}

int sim_server_start(const char *host, int port, int threads, char *errstr, size_t errlen)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        snprintf(errstr, errlen, "--listen: '%s' is not an IPv4 address", host);
        return -1;
    }
    if (timer_start() != 0) {
        snprintf(errstr, errlen, "cannot start the timer thread");
        return -1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
#ifdef MHD_USE_TURBO
    flags |= MHD_USE_TURBO;
#endif
    daemon_handle = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, NULL,
                                     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                     MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned)20000,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
                                     MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                                     MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                                     MHD_OPTION_END);
    if (!daemon_handle) {
        timer_stop();
        snprintf(errstr, errlen, "cannot listen on %s:%d", host, port);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon_handle, MHD_DAEMON_INFO_BIND_PORT);
    g_sim.port = info ? info->port : port;
    return 0;
}

int sim_server_port(void)
{
    return g_sim.port;
}

void sim_server_stop(void)
{
    atomic_store(&shutting_down, true);
    timer_stop();
    if (daemon_handle) {
        MHD_stop_daemon(daemon_handle);
        daemon_handle = NULL;
    }
}

/* The metrics registry: every series lives at a fixed index in one of two
 * arrays (counters, doubles) laid out at creation from the label sets, so an
 * update is a lookup in a short table plus an add under the mutex, and a
 * scrape copies the arrays under the mutex and formats the copy without it:
 * the loop never waits for a slow render. */
#include "zw/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A scrape of a sane worker is tens of kilobytes; this cap only stops a bug
 * from eating the memory. */
#define MAX_RENDER_BYTES (64u * 1024 * 1024)
/* Kafka refuses topic names longer than 249 bytes. */
#define MAX_TOPIC 249

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Label value sets. The last entry of each is where anything else goes. */
static const char *const TYPES[] = {"joiner", "mover", "leaver", "rehire", "sync", "invalid"};
static const char *const STATUSES[] = {"succeeded", "failed", "dry_run", "other"};
/* schemas/result.schema.json's outcome enum. */
static const char *const OUTCOMES[] = {"created",
                                       "updated",
                                       "unchanged",
                                       "suspended",
                                       "downgraded",
                                       "deleted",
                                       "reactivated",
                                       "not_found",
                                       "failed",
                                       "snapshot_complete",
                                       "snapshot_failed",
                                       "would_create",
                                       "would_update",
                                       "would_suspend",
                                       "would_downgrade",
                                       "would_delete",
                                       "would_reactivate",
                                       "duplicate_request",
                                       "other"};
static const char *const ENDPOINTS[] = {"read", "write", "delete", "oauth", "list", "bulk", "other"};
static const char *const BULK_OPS[] = {"create_or_update", "update", "destroy", "other"};
static const char *const BULK_STATUSES[] = {"completed", "failed", "lost", "rejected", "other"};
static const char *const BULK_ITEMS[] = {"submitted", "failed", "other"};
static const char *const CLASSES[] = {"transient", "rate_limited", "auth", "other"};
/* schemas/dlq-headers.schema.json's zw_error_reason enum. */
static const char *const REASONS[] = {
    "too_large",  "not_json",      "not_object",    "schema",         "missing_field",
    "wrong_type", "invalid_value", "unknown_field", "unknown_tenant", "other"};
/* 401, 403 and 429 stand alone: they mean credentials and budget, which an operator alerts on
 * separately from refused changes (the rest of 4xx). */
enum { CODE_1XX, CODE_2XX, CODE_3XX, CODE_401, CODE_403, CODE_4XX, CODE_429, CODE_5XX, CODE_ERROR, N_CODES };
static const char *const CODES[N_CODES] = {"1xx", "2xx", "3xx", "401", "403", "4xx", "429", "5xx", "error"};

#define N_TYPES N_OF(TYPES)
#define N_STATUSES N_OF(STATUSES)
#define N_OUTCOMES N_OF(OUTCOMES)
#define N_ENDPOINTS N_OF(ENDPOINTS)
#define N_CLASSES N_OF(CLASSES)
#define N_REASONS N_OF(REASONS)
#define N_BULK_OPS N_OF(BULK_OPS)
#define N_BULK_STATUSES N_OF(BULK_STATUSES)
#define N_BULK_ITEMS N_OF(BULK_ITEMS)

/* Histogram bounds, with the text of the le label written out so the
 * exposition shows "0.01", not a float's rounding. */
typedef struct bucket_s {
    double le;
    const char *text;
} bucket_t;

/* An event takes milliseconds when Zendesk answers at once and minutes when
 * it waits out 429s and backoffs. */
static const bucket_t EVENT_BUCKETS[] = {
    {0.01, "0.01"}, {0.025, "0.025"}, {0.05, "0.05"}, {0.1, "0.1"}, {0.25, "0.25"},
    {0.5, "0.5"},   {1, "1"},         {2.5, "2.5"},   {5, "5"},     {10, "10"},
    {30, "30"},     {60, "60"},       {120, "120"},   {300, "300"}};
/* One request: up to the default 30 s timeout. */
static const bucket_t REQUEST_BUCKETS[] = {{0.005, "0.005"}, {0.01, "0.01"}, {0.025, "0.025"},
                                           {0.05, "0.05"},   {0.1, "0.1"},   {0.25, "0.25"},
                                           {0.5, "0.5"},     {1, "1"},       {2.5, "2.5"},
                                           {5, "5"},         {10, "10"},     {30, "30"}};
/* Each histogram keeps one non-cumulative count per bound plus one for
 * beyond the last; rendering sums them up. */
#define N_EVENT_SLOTS (N_OF(EVENT_BUCKETS) + 1)
#define N_REQUEST_SLOTS (N_OF(REQUEST_BUCKETS) + 1)

typedef struct partition_s {
    char topic[MAX_TOPIC + 1];
    int32_t partition;
    int64_t committed; /* < 0: not known */
    int64_t lag;       /* < 0: not known */
} partition_t;

/* Everything that changes; what a scrape copies. */
typedef struct state_s {
    uint64_t *u; /* counters, laid out by the offsets in zw_metrics_s */
    double *d;   /* sums and gauges; NaN: never set */
    long in_flight;
    long pending;
    long backlog_ready, backlog_throttled;
    bool paused;
    partition_t *parts; /* sorted by topic, partition */
    size_t n_parts;
    size_t cap_parts;
} state_t;

struct zw_metrics_s {
    pthread_mutex_t lock; /* guards st */
    state_t st;

    /* Immutable after zw_metrics_new: read without the lock. */
    char **tenants;      /* n_slots names; the last is "unknown" */
    size_t n_tenants;    /* configured */
    size_t n_slots;      /* n_tenants + 1 */
    size_t unknown_slot; /* where unconfigured tenants count */
    char *version;

    /* Offsets into st.u. */
    size_t u_consumed;   /* [type][tenant] */
    size_t u_finished;   /* [type][tenant][status][outcome] */
    size_t u_event_hist; /* [type][slot] */
    size_t u_requests;   /* [tenant][endpoint][code] */
    size_t u_req_hist;   /* [endpoint][slot] */
    size_t u_limited;    /* [tenant] */
    size_t u_retries;    /* [tenant][class] */
    size_t u_dlq;        /* [reason] */
    size_t u_snap_users; /* [tenant] */
    size_t u_snap_last;  /* [tenant]: the current snapshot's last count (not exported) */
    size_t u_bulk_jobs;  /* [tenant][op][status] */
    size_t u_bulk_items; /* [tenant][op][kind] */
    size_t u_bulk_fallback; /* [tenant] */
    size_t n_u;
    /* Offsets into st.d. */
    size_t d_event_sum;    /* [type] */
    size_t d_req_sum;      /* [endpoint] */
    size_t d_retry_after;  /* [tenant] */
    size_t d_budget;       /* [tenant] */
    size_t d_budget_rate;  /* [tenant] */
    size_t d_events;       /* [tenant] */
    size_t d_deferred;     /* [tenant] */
    size_t d_snap_running; /* [tenant]: NaN, 0 or 1 */
    size_t n_d;
};

/* The index of s in names, or the last index (the fallback). */
static size_t pick(const char *const *names, size_t n, const char *s)
{
    if (s) {
        for (size_t i = 0; i + 1 < n; i++) {
            if (strcmp(names[i], s) == 0)
                return i;
        }
    }
    return n - 1;
}

/* The configured tenant's index, or n_tenants when it is not configured. */
static size_t find_tenant(const zw_metrics_t *m, const char *tenant)
{
    size_t i = 0;

    if (tenant) {
        while (i < m->n_tenants && strcasecmp(m->tenants[i], tenant) != 0)
            i++;
        return i;
    }
    return m->n_tenants;
}

static size_t tenant_slot(const zw_metrics_t *m, const char *tenant)
{
    size_t i = find_tenant(m, tenant);

    return i < m->n_tenants ? i : m->unknown_slot;
}

static size_t code_index(long http_status)
{
    if (http_status == 429)
        return CODE_429;
    if (http_status == 401)
        return CODE_401;
    if (http_status == 403)
        return CODE_403;
    switch (http_status / 100) {
    case 1: return CODE_1XX;
    case 2: return CODE_2XX;
    case 3: return CODE_3XX;
    case 4: return CODE_4XX;
    case 5: return CODE_5XX;
    default: return CODE_ERROR; /* 0: no response; anything else is not HTTP */
    }
}

/* Seconds fit for a sum: a broken clock or header must not poison it. */
static double sane_seconds(double s)
{
    return isfinite(s) && s > 0 ? s : 0;
}

static size_t bucket_slot(const bucket_t *b, size_t n, double v)
{
    size_t i = 0;

    while (i < n && v > b[i].le)
        i++;
    return i;
}

zw_metrics_t *zw_metrics_new(const char *const *tenants, size_t n_tenants, const char *version)
{
    zw_metrics_t *m;
    size_t t, off;

    if (n_tenants > ZW_METRICS_MAX_TENANTS || (n_tenants > 0 && !tenants))
        return NULL;
    m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    m->n_tenants = n_tenants;
    m->n_slots = n_tenants + 1;
    m->unknown_slot = n_tenants;
    m->tenants = calloc(m->n_slots, sizeof(*m->tenants));
    m->version = strdup(version ? version : "unknown");
    if (!m->tenants || !m->version)
        goto fail;
    for (size_t i = 0; i < n_tenants; i++) {
        if (!tenants[i] || !(m->tenants[i] = strdup(tenants[i])))
            goto fail;
        /* A tenant really named "unknown" takes the unconfigured ones too:
         * two series with the same labels would make the scrape invalid. */
        if (m->unknown_slot == n_tenants && strcasecmp(tenants[i], "unknown") == 0)
            m->unknown_slot = i;
    }
    if (!(m->tenants[n_tenants] = strdup("unknown")))
        goto fail;

    t = m->n_slots;
    off = 0;
    m->u_consumed = off, off += N_TYPES * t;
    m->u_finished = off, off += N_TYPES * t * N_STATUSES * N_OUTCOMES;
    m->u_event_hist = off, off += N_TYPES * N_EVENT_SLOTS;
    m->u_requests = off, off += t * N_ENDPOINTS * N_CODES;
    m->u_req_hist = off, off += N_ENDPOINTS * N_REQUEST_SLOTS;
    m->u_limited = off, off += t;
    m->u_retries = off, off += t * N_CLASSES;
    m->u_dlq = off, off += N_REASONS;
    m->u_snap_users = off, off += t;
    m->u_snap_last = off, off += t;
    m->u_bulk_jobs = off, off += t * N_BULK_OPS * N_BULK_STATUSES;
    m->u_bulk_items = off, off += t * N_BULK_OPS * N_BULK_ITEMS;
    m->u_bulk_fallback = off, off += t;
    m->n_u = off;
    off = 0;
    m->d_event_sum = off, off += N_TYPES;
    m->d_req_sum = off, off += N_ENDPOINTS;
    m->d_retry_after = off, off += t;
    m->d_budget = off, off += t;
    m->d_budget_rate = off, off += t;
    m->d_events = off, off += t;
    m->d_deferred = off, off += t;
    m->d_snap_running = off, off += t;
    m->n_d = off;

    m->st.u = calloc(m->n_u, sizeof(*m->st.u));
    m->st.d = malloc(m->n_d * sizeof(*m->st.d));
    if (!m->st.u || !m->st.d)
        goto fail;
    for (size_t i = 0; i < m->n_d; i++)
        m->st.d[i] = NAN;
    for (size_t i = 0; i < N_TYPES; i++)
        m->st.d[m->d_event_sum + i] = 0;
    for (size_t i = 0; i < N_ENDPOINTS; i++)
        m->st.d[m->d_req_sum + i] = 0;
    for (size_t i = 0; i < t; i++)
        m->st.d[m->d_retry_after + i] = 0;
    return m;

fail:
    zw_metrics_destroy(m);
    return NULL;
}

void zw_metrics_destroy(zw_metrics_t *m)
{
    if (!m)
        return;
    if (m->tenants) {
        for (size_t i = 0; i < m->n_slots; i++)
            free(m->tenants[i]);
    }
    free(m->tenants);
    free(m->version);
    free(m->st.u);
    free(m->st.d);
    free(m->st.parts);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Adds to one counter, under the lock. */
static void add(zw_metrics_t *m, size_t index, uint64_t n)
{
    pthread_mutex_lock(&m->lock);
    m->st.u[index] += n;
    pthread_mutex_unlock(&m->lock);
}

void zw_metrics_event_consumed(zw_metrics_t *m, const char *type, const char *tenant)
{
    size_t ty, te;

    if (!m)
        return;
    ty = pick(TYPES, N_TYPES, type);
    te = tenant_slot(m, tenant);
    add(m, m->u_consumed + ty * m->n_slots + te, 1);
}

void zw_metrics_event_finished(zw_metrics_t *m, const char *type, const char *tenant,
                               const char *status, const char *outcome, double seconds)
{
    size_t ty, te, st, oc, slot;

    if (!m)
        return;
    ty = pick(TYPES, N_TYPES, type);
    te = tenant_slot(m, tenant);
    st = pick(STATUSES, N_STATUSES, status);
    oc = pick(OUTCOMES, N_OUTCOMES, outcome);
    seconds = sane_seconds(seconds);
    slot = bucket_slot(EVENT_BUCKETS, N_OF(EVENT_BUCKETS), seconds);
    pthread_mutex_lock(&m->lock);
    m->st.u[m->u_finished + ((ty * m->n_slots + te) * N_STATUSES + st) * N_OUTCOMES + oc]++;
    m->st.u[m->u_event_hist + ty * N_EVENT_SLOTS + slot]++;
    m->st.d[m->d_event_sum + ty] += seconds;
    pthread_mutex_unlock(&m->lock);
}

void zw_metrics_http_request(zw_metrics_t *m, const char *tenant, const char *endpoint,
                             long http_status, double seconds)
{
    size_t te, ep, code, slot;

    if (!m)
        return;
    te = tenant_slot(m, tenant);
    ep = pick(ENDPOINTS, N_ENDPOINTS, endpoint);
    code = code_index(http_status);
    seconds = sane_seconds(seconds);
    slot = bucket_slot(REQUEST_BUCKETS, N_OF(REQUEST_BUCKETS), seconds);
    pthread_mutex_lock(&m->lock);
    m->st.u[m->u_requests + (te * N_ENDPOINTS + ep) * N_CODES + code]++;
    m->st.u[m->u_req_hist + ep * N_REQUEST_SLOTS + slot]++;
    m->st.d[m->d_req_sum + ep] += seconds;
    pthread_mutex_unlock(&m->lock);
}

void zw_metrics_rate_limited(zw_metrics_t *m, const char *tenant, double retry_after_seconds)
{
    size_t te;

    if (!m)
        return;
    te = tenant_slot(m, tenant);
    retry_after_seconds = sane_seconds(retry_after_seconds);
    pthread_mutex_lock(&m->lock);
    m->st.u[m->u_limited + te]++;
    m->st.d[m->d_retry_after + te] += retry_after_seconds;
    pthread_mutex_unlock(&m->lock);
}

void zw_metrics_retry(zw_metrics_t *m, const char *tenant, const char *cls)
{
    size_t te, c;

    if (!m)
        return;
    te = tenant_slot(m, tenant);
    c = pick(CLASSES, N_CLASSES, cls);
    add(m, m->u_retries + te * N_CLASSES + c, 1);
}

void zw_metrics_bulk_job(zw_metrics_t *m, const char *tenant, const char *op, const char *status)
{
    size_t te, o, st;

    if (!m)
        return;
    te = tenant_slot(m, tenant);
    o = pick(BULK_OPS, N_BULK_OPS, op);
    st = pick(BULK_STATUSES, N_BULK_STATUSES, status);
    add(m, m->u_bulk_jobs + (te * N_BULK_OPS + o) * N_BULK_STATUSES + st, 1);
}

void zw_metrics_bulk_items(zw_metrics_t *m, const char *tenant, const char *op, const char *kind,
                           long n)
{
    size_t te, o, k;

    if (!m || n <= 0)
        return;
    te = tenant_slot(m, tenant);
    o = pick(BULK_OPS, N_BULK_OPS, op);
    k = pick(BULK_ITEMS, N_BULK_ITEMS, kind);
    add(m, m->u_bulk_items + (te * N_BULK_OPS + o) * N_BULK_ITEMS + k, (uint64_t)n);
}

void zw_metrics_bulk_fallback(zw_metrics_t *m, const char *tenant)
{
    size_t te;

    if (!m)
        return;
    te = tenant_slot(m, tenant);
    add(m, m->u_bulk_fallback + te, 1);
}

void zw_metrics_dlq(zw_metrics_t *m, const char *reason)
{
    size_t r;

    if (!m)
        return;
    r = pick(REASONS, N_REASONS, reason);
    add(m, m->u_dlq + r, 1);
}

void zw_metrics_set_in_flight(zw_metrics_t *m, long requests)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->st.in_flight = requests;
    pthread_mutex_unlock(&m->lock);
}

void zw_metrics_set_pending_events(zw_metrics_t *m, long events)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->st.pending = events;
    pthread_mutex_unlock(&m->lock);
}

void zw_metrics_set_backlog(zw_metrics_t *m, long ready, long throttled)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->st.backlog_ready = ready;
    m->st.backlog_throttled = throttled;
    pthread_mutex_unlock(&m->lock);
}

/* Two per-tenant gauges at once; a tenant not configured is ignored. */
static void set_tenant_pair(zw_metrics_t *m, const char *tenant, size_t off_a, double a,
                            size_t off_b, double b)
{
    size_t te;

    if (!m)
        return;
    te = find_tenant(m, tenant);
    if (te == m->n_tenants)
        return;
    pthread_mutex_lock(&m->lock);
    m->st.d[off_a + te] = a;
    m->st.d[off_b + te] = b;
    pthread_mutex_unlock(&m->lock);
}

void zw_metrics_set_budget(zw_metrics_t *m, const char *tenant, double tokens_available,
                           double per_minute)
{
    if (m)
        set_tenant_pair(m, tenant, m->d_budget, tokens_available, m->d_budget_rate, per_minute);
}

void zw_metrics_set_tenant_events(zw_metrics_t *m, const char *tenant, long held, long deferred)
{
    if (m)
        set_tenant_pair(m, tenant, m->d_events, (double)held, m->d_deferred, (double)deferred);
}

/* Where (topic, partition) is or would go in the sorted array; *found says
 * which. Called with the lock held. */
static size_t find_partition(const state_t *st, const char *topic, int32_t partition, bool *found)
{
    size_t lo = 0, hi = st->n_parts;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->parts[mid].topic, topic);

        if (c == 0)
            c = st->parts[mid].partition < partition ? -1 : st->parts[mid].partition > partition;
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

void zw_metrics_set_partition(zw_metrics_t *m, const char *topic, int32_t partition,
                              int64_t committed_offset, int64_t lag)
{
    state_t *st;
    partition_t *p;
    bool found;
    size_t i;

    if (!m || !topic || strlen(topic) > MAX_TOPIC)
        return;
    pthread_mutex_lock(&m->lock);
    st = &m->st;
    i = find_partition(st, topic, partition, &found);
    if (!found) {
        if (st->n_parts == ZW_METRICS_MAX_PARTITIONS)
            goto out;
        if (st->n_parts == st->cap_parts) {
            size_t cap = st->cap_parts ? st->cap_parts * 2 : 16;
            partition_t *parts;

            if (cap > ZW_METRICS_MAX_PARTITIONS)
                cap = ZW_METRICS_MAX_PARTITIONS;
            /* Assignments change rarely: allocating under the lock is fine. */
            parts = realloc(st->parts, cap * sizeof(*parts));
            if (!parts)
                goto out;
            st->parts = parts;
            st->cap_parts = cap;
        }
        memmove(&st->parts[i + 1], &st->parts[i], (st->n_parts - i) * sizeof(*st->parts));
        st->n_parts++;
        p = &st->parts[i];
        memset(p, 0, sizeof(*p));
        strcpy(p->topic, topic);
        p->partition = partition;
    }
    p = &st->parts[i];
    p->committed = committed_offset;
    p->lag = lag;
out:
    pthread_mutex_unlock(&m->lock);
}

void zw_metrics_remove_partition(zw_metrics_t *m, const char *topic, int32_t partition)
{
    state_t *st;
    bool found;
    size_t i;

    if (!m || !topic)
        return;
    pthread_mutex_lock(&m->lock);
    st = &m->st;
    i = find_partition(st, topic, partition, &found);
    if (found) {
        memmove(&st->parts[i], &st->parts[i + 1], (st->n_parts - i - 1) * sizeof(*st->parts));
        st->n_parts--;
    }
    pthread_mutex_unlock(&m->lock);
}

void zw_metrics_snapshot_progress(zw_metrics_t *m, const char *tenant, long users_published,
                                  bool running)
{
    uint64_t n = users_published > 0 ? (uint64_t)users_published : 0, last, delta;
    size_t te;
    double *was;

    if (!m)
        return;
    te = find_tenant(m, tenant);
    if (te == m->n_tenants)
        return;
    pthread_mutex_lock(&m->lock);
    last = m->st.u[m->u_snap_last + te];
    was = &m->st.d[m->d_snap_running + te];
    if (*was == 1)
        delta = n >= last ? n - last : n; /* a smaller count: a new snapshot began */
    else if (running)
        delta = n; /* a new snapshot, counting from 0 */
    else
        /* Finished without a running report: a snapshot done at once, or the
         * final report repeated (same count), which must not count twice. */
        delta = n == last ? 0 : n;
    m->st.u[m->u_snap_users + te] += delta;
    m->st.u[m->u_snap_last + te] = n;
    *was = running ? 1 : 0;
    pthread_mutex_unlock(&m->lock);
}

void zw_metrics_set_paused(zw_metrics_t *m, bool paused)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->st.paused = paused;
    pthread_mutex_unlock(&m->lock);
}

/* ---- rendering ---- */

/* The exposition under construction; on any failure `failed` sticks and the
 * rest is skipped. */
typedef struct out_s {
    char *p;
    size_t len;
    size_t cap;
    bool failed;
} out_t;

static bool out_reserve(out_t *o, size_t more)
{
    size_t cap;
    char *p;

    if (o->failed)
        return false;
    if (o->len + more + 1 <= o->cap)
        return true;
    if (o->len + more + 1 > MAX_RENDER_BYTES) {
        o->failed = true;
        return false;
    }
    cap = o->cap ? o->cap : 16384;
    while (cap < o->len + more + 1)
        cap *= 2;
    if (cap > MAX_RENDER_BYTES)
        cap = MAX_RENDER_BYTES;
    p = realloc(o->p, cap);
    if (!p) {
        o->failed = true;
        return false;
    }
    o->p = p;
    o->cap = cap;
    return true;
}

static void out_put(out_t *o, const char *s, size_t n)
{
    if (!out_reserve(o, n))
        return;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void out_puts(out_t *o, const char *s)
{
    out_put(o, s, strlen(s));
}

static void out_printf(out_t *o, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void out_printf(out_t *o, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(small)) {
        o->failed = true; /* every number this file prints is short */
        return;
    }
    out_put(o, small, (size_t)n);
}

/* A label value per the format: backslash, double quote and newline
 * escaped. */
static void out_label_value(out_t *o, const char *v)
{
    for (; *v; v++) {
        switch (*v) {
        case '\\': out_put(o, "\\\\", 2); break;
        case '"': out_put(o, "\\\"", 2); break;
        case '\n': out_put(o, "\\n", 2); break;
        default: out_put(o, v, 1); break;
        }
    }
}

static void family(out_t *o, const char *name, const char *type, const char *help)
{
    out_puts(o, "# HELP ");
    out_puts(o, name);
    out_puts(o, " ");
    out_puts(o, help);
    out_puts(o, "\n# TYPE ");
    out_puts(o, name);
    out_puts(o, " ");
    out_puts(o, type);
    out_puts(o, "\n");
}

/* A sample is built as: sample(name) label(...)* then one value_*() call. */
typedef struct sample_s {
    out_t *o;
    int n_labels;
} sample_t;

static sample_t sample(out_t *o, const char *name, const char *suffix)
{
    out_puts(o, name);
    out_puts(o, suffix);
    return (sample_t){.o = o, .n_labels = 0};
}

static void label(sample_t *s, const char *key, const char *value)
{
    out_puts(s->o, s->n_labels++ ? "," : "{");
    out_puts(s->o, key);
    out_puts(s->o, "=\"");
    out_label_value(s->o, value);
    out_puts(s->o, "\"");
}

static void close_labels(sample_t *s)
{
    if (s->n_labels)
        out_puts(s->o, "}");
}

static void value_u64(sample_t *s, uint64_t v)
{
    close_labels(s);
    out_printf(s->o, " %" PRIu64 "\n", v);
}

static void value_i64(sample_t *s, int64_t v)
{
    close_labels(s);
    out_printf(s->o, " %" PRId64 "\n", v);
}

/* The shortest text that reads back as the same double, in the format's
 * spelling of the special values. */
static void value_double(sample_t *s, double v)
{
    char text[64];

    close_labels(s);
    if (isnan(v)) {
        strcpy(text, "NaN");
    } else if (isinf(v)) {
        strcpy(text, v > 0 ? "+Inf" : "-Inf");
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(text, sizeof(text), "%.*g", prec, v);
            if (strtod(text, NULL) == v)
                break;
        }
        /* The process never calls setlocale, but should a library do so, a
         * decimal comma would make the line unreadable. */
        for (char *c = text; *c; c++) {
            if (*c == ',')
                *c = '.';
        }
    }
    out_printf(s->o, " %s\n", text);
}

static void histogram(out_t *o, const char *name, const char *key, const char *value,
                      const bucket_t *b, size_t n_b, const uint64_t *counts, double sum)
{
    uint64_t cumulative = 0;
    sample_t s;

    for (size_t i = 0; i <= n_b; i++) {
        cumulative += counts[i];
        s = sample(o, name, "_bucket");
        label(&s, key, value);
        label(&s, "le", i < n_b ? b[i].text : "+Inf");
        value_u64(&s, cumulative);
    }
    s = sample(o, name, "_sum");
    label(&s, key, value);
    value_double(&s, sum);
    s = sample(o, name, "_count");
    label(&s, key, value);
    value_u64(&s, cumulative);
}

/* A gauge family with one tenant label; NaN means never set. */
static void per_tenant_gauge(out_t *o, const zw_metrics_t *m, const state_t *st, const char *name,
                             const char *help, size_t d_off)
{
    family(o, name, "gauge", help);
    for (size_t te = 0; te < m->n_slots; te++) {
        sample_t s;

        if (isnan(st->d[d_off + te]))
            continue;
        s = sample(o, name, "");
        label(&s, "tenant", m->tenants[te]);
        value_double(&s, st->d[d_off + te]);
    }
}

/* A gauge family with topic and partition labels: the lag, or the committed
 * offset; a value < 0 (not known yet) leaves its series out. */
static void per_partition_gauge(out_t *o, const state_t *st, const char *name, const char *help,
                                bool lag)
{
    family(o, name, "gauge", help);
    for (size_t i = 0; i < st->n_parts; i++) {
        int64_t v = lag ? st->parts[i].lag : st->parts[i].committed;
        char part[16];
        sample_t s;

        if (v < 0)
            continue;
        snprintf(part, sizeof(part), "%" PRId32, st->parts[i].partition);
        s = sample(o, name, "");
        label(&s, "topic", st->parts[i].topic);
        label(&s, "partition", part);
        value_i64(&s, v);
    }
}

static void render_events(out_t *o, const zw_metrics_t *m, const state_t *st)
{
    const char *name;
    sample_t s;

    name = "zendesk_worker_events_consumed_total";
    family(o, name, "counter", "Events taken from Kafka, by event type and tenant.");
    for (size_t ty = 0; ty < N_TYPES; ty++) {
        for (size_t te = 0; te < m->n_slots; te++) {
            uint64_t v = st->u[m->u_consumed + ty * m->n_slots + te];

            if (!v)
                continue;
            s = sample(o, name, "");
            label(&s, "type", TYPES[ty]);
            label(&s, "tenant", m->tenants[te]);
            value_u64(&s, v);
        }
    }

    name = "zendesk_worker_events_finished_total";
    family(o, name, "counter",
           "Events finished with their result acked, by type, tenant, status and outcome.");
    for (size_t ty = 0; ty < N_TYPES; ty++) {
        for (size_t te = 0; te < m->n_slots; te++) {
            for (size_t stt = 0; stt < N_STATUSES; stt++) {
                for (size_t oc = 0; oc < N_OUTCOMES; oc++) {
                    uint64_t v =
                        st->u[m->u_finished +
                              ((ty * m->n_slots + te) * N_STATUSES + stt) * N_OUTCOMES + oc];

                    if (!v)
                        continue;
                    s = sample(o, name, "");
                    label(&s, "type", TYPES[ty]);
                    label(&s, "tenant", m->tenants[te]);
                    label(&s, "status", STATUSES[stt]);
                    label(&s, "outcome", OUTCOMES[oc]);
                    value_u64(&s, v);
                }
            }
        }
    }

    name = "zendesk_worker_event_duration_seconds";
    family(o, name, "histogram",
           "Event latency end to end, from consume to the result acked, by event type.");
    for (size_t ty = 0; ty < N_TYPES; ty++) {
        histogram(o, name, "type", TYPES[ty], EVENT_BUCKETS, N_OF(EVENT_BUCKETS),
                  &st->u[m->u_event_hist + ty * N_EVENT_SLOTS], st->d[m->d_event_sum + ty]);
    }
}

/* A label and its fixed values, for a counter laid out [tenant][a][b]. */
typedef struct dim_s {
    const char *label;         /* NULL: no such dimension (one value) */
    const char *const *values;
    size_t n;
} dim_t;

/* A counter family laid out [tenant][a][b] at off, labelled tenant and,
 * where given, a and b; only the series that counted are shown. */
static void tenant_counter(out_t *o, const zw_metrics_t *m, const state_t *st, const char *name,
                           const char *help, size_t off, dim_t a, dim_t b)
{
    size_t na = a.label ? a.n : 1, nb = b.label ? b.n : 1;

    family(o, name, "counter", help);
    for (size_t te = 0; te < m->n_slots; te++) {
        for (size_t i = 0; i < na; i++) {
            for (size_t j = 0; j < nb; j++) {
                uint64_t v = st->u[off + (te * na + i) * nb + j];
                sample_t s;

                if (!v)
                    continue;
                s = sample(o, name, "");
                label(&s, "tenant", m->tenants[te]);
                if (a.label)
                    label(&s, a.label, a.values[i]);
                if (b.label)
                    label(&s, b.label, b.values[j]);
                value_u64(&s, v);
            }
        }
    }
}

static const dim_t NO_DIM = {NULL, NULL, 0};

static void render_bulk(out_t *o, const zw_metrics_t *m, const state_t *st)
{
    const dim_t ops = {"op", BULK_OPS, N_BULK_OPS};

    tenant_counter(o, m, st, "zendesk_worker_bulk_jobs_total",
                   "Bulk jobs (*_many) that ended, by tenant, operation and how: "
                   "completed, failed, lost, or rejected (the request was refused).",
                   m->u_bulk_jobs, ops, (dim_t){"status", BULK_STATUSES, N_BULK_STATUSES});
    tenant_counter(o, m, st, "zendesk_worker_bulk_items_total",
                   "Items sent in accepted bulk jobs, and items Zendesk failed, by tenant "
                   "and operation.",
                   m->u_bulk_items, ops, (dim_t){"kind", BULK_ITEMS, N_BULK_ITEMS});
    tenant_counter(o, m, st, "zendesk_worker_bulk_fallbacks_total",
                   "Times a tenant's account refused bulk import (403) and its creates fell "
                   "back to single calls.",
                   m->u_bulk_fallback, NO_DIM, NO_DIM);
}

static void render_zendesk(out_t *o, const zw_metrics_t *m, const state_t *st)
{
    const char *name;
    sample_t s;

    tenant_counter(o, m, st, "zendesk_worker_zendesk_requests_total",
                   "Zendesk HTTP requests by tenant, endpoint class and status class "
                   "(error: no response).",
                   m->u_requests, (dim_t){"endpoint", ENDPOINTS, N_ENDPOINTS},
                   (dim_t){"code", CODES, N_CODES});

    name = "zendesk_worker_zendesk_request_duration_seconds";
    family(o, name, "histogram", "Zendesk HTTP request latency by endpoint class.");
    for (size_t ep = 0; ep < N_ENDPOINTS; ep++) {
        const uint64_t *counts = &st->u[m->u_req_hist + ep * N_REQUEST_SLOTS];
        uint64_t total = 0;

        for (size_t i = 0; i < N_REQUEST_SLOTS; i++)
            total += counts[i];
        /* "other" means a caller's mistake: shown only when it happened. */
        if (ep == N_ENDPOINTS - 1 && total == 0)
            continue;
        histogram(o, name, "endpoint", ENDPOINTS[ep], REQUEST_BUCKETS, N_OF(REQUEST_BUCKETS),
                  counts, st->d[m->d_req_sum + ep]);
    }

    tenant_counter(o, m, st, "zendesk_worker_rate_limited_total",
                   "429 responses from Zendesk, by tenant.", m->u_limited,
                   NO_DIM, NO_DIM);

    name = "zendesk_worker_retry_after_seconds_total";
    family(o, name, "counter", "Seconds of Retry-After waits ordered by 429 responses, by tenant.");
    for (size_t te = 0; te < m->n_slots; te++) {
        if (!st->u[m->u_limited + te])
            continue;
        s = sample(o, name, "");
        label(&s, "tenant", m->tenants[te]);
        value_double(&s, st->d[m->d_retry_after + te]);
    }

    render_bulk(o, m, st);

    tenant_counter(o, m, st, "zendesk_worker_retries_total",
                   "Retries scheduled, by tenant and error class.", m->u_retries,
                   (dim_t){"class", CLASSES, N_CLASSES}, NO_DIM);
}

static void render_worker(out_t *o, const zw_metrics_t *m, const state_t *st)
{
    const char *name;
    sample_t s;

    name = "zendesk_worker_dlq_records_total";
    family(o, name, "counter", "Records sent to the dead-letter topic, by reason.");
    for (size_t r = 0; r < N_REASONS; r++) {
        if (!st->u[m->u_dlq + r])
            continue;
        s = sample(o, name, "");
        label(&s, "reason", REASONS[r]);
        value_u64(&s, st->u[m->u_dlq + r]);
    }

    name = "zendesk_worker_in_flight_requests";
    family(o, name, "gauge", "Zendesk HTTP requests in flight.");
    s = sample(o, name, "");
    value_i64(&s, st->in_flight);

    name = "zendesk_worker_pending_events";
    family(o, name, "gauge", "Events consumed and not finished yet.");
    s = sample(o, name, "");
    value_i64(&s, st->pending);

    name = "zendesk_worker_backlog_scalable";
    family(o, name, "gauge",
           "Backlog more replicas would work through: messages not read yet on the assigned "
           "partitions, and events of tenants that are not throttled (the autoscaling signal).");
    s = sample(o, name, "");
    value_i64(&s, st->backlog_ready);

    name = "zendesk_worker_backlog_throttled";
    family(o, name, "gauge",
           "Events of throttled tenants (blocked by a 429, or more than 30 s of their budget's "
           "work in memory): backlog more replicas would not shorten.");
    s = sample(o, name, "");
    value_i64(&s, st->backlog_throttled);

    per_tenant_gauge(o, m, st, "zendesk_worker_tenant_budget_remaining",
                     "Requests this replica may send to the tenant now (token bucket).",
                     m->d_budget);
    per_tenant_gauge(o, m, st, "zendesk_worker_tenant_budget_per_minute",
                     "This replica's request budget per minute for the tenant.", m->d_budget_rate);
    per_tenant_gauge(o, m, st, "zendesk_worker_tenant_events_held",
                     "The tenant's provisioning events in this replica's memory.", m->d_events);
    per_tenant_gauge(o, m, st, "zendesk_worker_tenant_events_deferred",
                     "The tenant's events read and left in Kafka because it holds as many as it "
                     "may; they are read again when it has room (lag that more replicas would "
                     "not help with).",
                     m->d_deferred);

    per_partition_gauge(o, st, "zendesk_worker_consumer_lag",
                        "Messages behind the partition's end, by assigned partition.", true);
    per_partition_gauge(o, st, "zendesk_worker_committed_offset",
                        "Offset committed for the consumer group, by assigned partition.", false);

    name = "zendesk_worker_snapshot_users_total";
    family(o, name, "counter", "Users published by snapshots (sync requests), by tenant.");
    for (size_t te = 0; te < m->n_slots; te++) {
        if (isnan(st->d[m->d_snap_running + te]))
            continue;
        s = sample(o, name, "");
        label(&s, "tenant", m->tenants[te]);
        value_u64(&s, st->u[m->u_snap_users + te]);
    }
    per_tenant_gauge(o, m, st, "zendesk_worker_snapshot_running",
                     "1 while a snapshot of the tenant's users is running.", m->d_snap_running);

    name = "zendesk_worker_partitions_paused";
    family(o, name, "gauge", "1 while the consumer's partitions are paused for back-pressure.");
    s = sample(o, name, "");
    value_i64(&s, st->paused ? 1 : 0);
}

/* A copy of the state taken under the lock, so formatting runs without it. */
static int copy_state(zw_metrics_t *m, state_t *copy)
{
    memset(copy, 0, sizeof(*copy));
    copy->u = malloc(m->n_u * sizeof(*copy->u));
    copy->d = malloc(m->n_d * sizeof(*copy->d));
    if (!copy->u || !copy->d)
        goto fail;
    pthread_mutex_lock(&m->lock);
    if (m->st.n_parts) {
        copy->parts = malloc(m->st.n_parts * sizeof(*copy->parts));
        if (!copy->parts) {
            pthread_mutex_unlock(&m->lock);
            goto fail;
        }
        memcpy(copy->parts, m->st.parts, m->st.n_parts * sizeof(*copy->parts));
    }
    copy->n_parts = copy->cap_parts = m->st.n_parts;
    memcpy(copy->u, m->st.u, m->n_u * sizeof(*copy->u));
    memcpy(copy->d, m->st.d, m->n_d * sizeof(*copy->d));
    copy->in_flight = m->st.in_flight;
    copy->pending = m->st.pending;
    copy->backlog_ready = m->st.backlog_ready;
    copy->backlog_throttled = m->st.backlog_throttled;
    copy->paused = m->st.paused;
    pthread_mutex_unlock(&m->lock);
    return 0;

fail:
    free(copy->u);
    free(copy->d);
    return -1;
}

char *zw_metrics_render(zw_metrics_t *m)
{
    out_t o = {0};
    state_t st;
    sample_t s;

    if (!m || copy_state(m, &st) != 0)
        return NULL;

    family(&o, "zendesk_worker_up", "gauge", "1 while the worker is running.");
    s = sample(&o, "zendesk_worker_up", "");
    value_i64(&s, 1);
    family(&o, "zendesk_worker_build_info", "gauge", "The worker's version; the value is 1.");
    s = sample(&o, "zendesk_worker_build_info", "");
    label(&s, "version", m->version);
    value_i64(&s, 1);
    render_events(&o, m, &st);
    render_zendesk(&o, m, &st);
    render_worker(&o, m, &st);

    free(st.u);
    free(st.d);
    free(st.parts);
    if (o.failed) {
        free(o.p);
        return NULL;
    }
    return o.p;
}

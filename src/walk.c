/* Snapshot walks: begin marker, the pages (WALK_PAGING), waiting for every
 * record's ack (WALK_DRAINING), the end marker ("complete" only if nothing
 * was lost), then the request's result. A stopped walk (STOPPED) writes
 * nothing more and is freed once no request or record refers to it. */
#include "walk.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zw/log.h"
#include "zw/metrics.h"
#include "zw/snapshot.h"

#define PRODUCER_QUEUE_HIGH 20000 /* records queued before the walk lets them drain */
#define DRAIN_WAIT_MS 50

typedef struct zw_walk_s {
    zw_walks_t *ws;
    char id[37];
    FILE *out;              /* the sync command's file; NULL: Kafka */
    char *cursor;           /* of the next page; NULL for the first */
    char *next_cursor;      /* handed out in the end marker */
    int64_t start_unix;
    int64_t seq, count;
    int pages;
    uint64_t checksum;
    int pending;            /* records produced, not acked */
    bool broken;            /* a record was lost: the end says failed */
    bool failed;
    char *end_json;
    zw_delivery_t dr_record; /* shared by begin and user records (no retry) */
    zw_delivery_t dr_end;
} zw_walk_t;

struct zw_walks_s {
    zw_jobs_t *js;
    zw_job_t **running; /* by zw_tenant_index */
    size_t n;
};

static void start(zw_job_t *job);
static void submit(zw_job_t *job);
static void send_next(zw_job_t *job);
static bool fail(zw_job_t *job, const char *cls, long http, const char *code, const char *msg);
static void describe(const zw_job_t *job, zw_result_t *r);
static const char *type_label(const zw_job_t *job);
static void release(zw_job_t *job);

const zw_job_ops_t zw_walk_ops = {start, submit, send_next, fail, describe, type_label, release};

zw_walks_t *zw_walks_new(zw_jobs_t *js)
{
    zw_walks_t *ws = calloc(1, sizeof(*ws));
    size_t n = zw_tenants_count(js->tenants);

    if (!ws || !(ws->running = calloc(n ? n : 1, sizeof(*ws->running)))) {
        free(ws);
        return NULL;
    }
    ws->js = js;
    ws->n = n;
    return ws;
}

void zw_walks_destroy(zw_walks_t *ws)
{
    if (!ws)
        return;
    free(ws->running);
    free(ws);
}

zw_event_error_t zw_walk_parse(zw_job_t *job, const void *data, size_t len, char **request_id,
                               char *errstr, size_t errstr_size)
{
    return zw_sync_request_parse(data, len, (size_t)job->js->env->cfg->worker.max_event_bytes,
                                 &job->walk.req, request_id, errstr, errstr_size);
}

static void set_cursor(char **slot, const char *value)
{
    free(*slot);
    *slot = value ? strdup(value) : NULL;
}

static void leave_slot(zw_job_t *job)
{
    zw_walk_t *w = job->walk.snap;

    if (w && job->tenant && w->ws->running[zw_tenant_index(job->tenant)] == job)
        w->ws->running[zw_tenant_index(job->tenant)] = NULL;
}

static void release(zw_job_t *job)
{
    zw_walk_t *w = job->walk.snap;

    leave_slot(job);
    if (w) {
        free(w->cursor);
        free(w->next_cursor);
        free(w->end_json);
        free(w);
    }
    zw_sync_request_cleanup(&job->walk.req);
}

static void describe(const zw_job_t *job, zw_result_t *r)
{
    r->tenant = job->walk.req.tenant;
    r->type = "sync";
    r->dry_run = job->js->env->cfg->worker.dry_run;
    if (job->walk.snap) {
        r->snapshot_id = job->walk.snap->id;
        r->count = job->walk.snap->count;
    }
}

static const char *type_label(const zw_job_t *job)
{
    (void)job;
    return "sync";
}

/* ---- records ---- */

static json_object *record(zw_job_t *job, const char *kind)
{
    zw_walk_t *w = job->walk.snap;

    return zw_snapshot_record(w->id, job->walk.req.request_id, job->walk.req.tenant, kind,
                              w->seq++);
}

static const char *to_json(json_object *o)
{
    return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* A begin or user record: to Kafka (acked later), or to the sync command's
 * file (done at once). */
static void emit(zw_job_t *job, json_object *rec, const char *key)
{
    zw_walk_t *w = job->walk.snap;
    const char *json = to_json(rec);
    zw_delivery_t *d = &w->dr_record;
    rd_kafka_resp_err_t err;

    if (w->out) {
        fputs(json, w->out);
        fputc('\n', w->out);
        return;
    }
    d->key = key;
    d->key_len = strlen(key);
    d->value = json;
    d->value_len = strlen(json);
    err = zw_output_produce(job->js->output, d);
    if (err) {
        /* A record that cannot be queued makes the snapshot incomplete: its
         * end marker will say failed. */
        w->broken = true;
        ZW_LOG(ZW_LOG_ERROR, "cannot produce a snapshot record",
               ZW_LF_STR("error", rd_kafka_err2str(err)), ZW_LF_STR("snapshot_id", w->id));
        return;
    }
    w->pending++;
}

/* Frees a stopped walk once nothing refers to it any more. */
static void release_if_idle(zw_job_t *job)
{
    if (job->state == ZW_JOB_STOPPED && !job->http && job->walk.snap->pending == 0 &&
        job->pending == 0)
        zw_job_free(job);
}

static void try_end(zw_job_t *job);

static void record_acked(zw_delivery_t *d, rd_kafka_resp_err_t err)
{
    zw_job_t *job = d->arg;
    zw_walk_t *w = job->walk.snap;

    w->pending--;
    if (err) {
        w->broken = true;
        ZW_LOG(ZW_LOG_ERROR, "snapshot record not delivered; the snapshot will end failed",
               ZW_LF_STR("snapshot_id", w->id), ZW_LF_STR("error", rd_kafka_err2str(err)));
    }
    if (job->state == ZW_JOB_STOPPED)
        release_if_idle(job);
    else
        try_end(job);
}

/* The end marker, once the walk is over and every record is acked. */
static void produce_end(zw_job_t *job)
{
    zw_walk_t *w = job->walk.snap;
    json_object *rec = record(job, "end");
    const char *json;

    json_object_object_add(rec, "end", zw_snapshot_end(!w->failed, w->count, w->checksum,
                                                       w->next_cursor));
    json = to_json(rec);
    w->end_json = strdup(json);
    json_object_put(rec);
    if (!w->end_json)
        return;
    if (w->out) {
        fputs(w->end_json, w->out);
        fputc('\n', w->out);
        return;
    }
    w->dr_end.key = job->walk.req.tenant;
    w->dr_end.key_len = strlen(job->walk.req.tenant);
    w->dr_end.value = w->end_json;
    w->dr_end.value_len = strlen(w->end_json);
    job->pending++;
    zw_output_produce(job->js->output, &w->dr_end);
}

static void try_end(zw_job_t *job)
{
    zw_walk_t *w = job->walk.snap;

    if (job->state != ZW_JOB_WALK_DRAINING || w->pending > 0)
        return;
    if (w->broken && !w->failed) {
        w->failed = true;
        zw_job_set_error(job, "transient_exhausted", 0, "DeliveryFailed",
                         "a snapshot record could not be delivered to Kafka");
    }
    leave_slot(job);
    ZW_LOG(ZW_LOG_INFO, "snapshot ended", ZW_LF_STR("tenant", job->walk.req.tenant),
           ZW_LF_STR("snapshot_id", w->id), ZW_LF_STR("request_id", job->walk.req.request_id),
           ZW_LF_STR("status", w->failed ? "failed" : "complete"), ZW_LF_INT("count", w->count),
           ZW_LF_INT("pages", w->pages));
    /* The result follows the end marker (job.c produces it). */
    zw_job_set_state(job, ZW_JOB_PRODUCING);
    produce_end(job);
    job->status = w->failed ? "failed" : "succeeded";
    job->outcome = w->failed ? "snapshot_failed" : "snapshot_complete";
    zw_job_finish(job);
}

/* A walk that cannot go on ends with a failed marker, once the records
 * already produced are acked. */
static bool fail(zw_job_t *job, const char *cls, long http, const char *code, const char *msg)
{
    zw_walk_t *w = job->walk.snap;

    if (!w || job->state == ZW_JOB_PRODUCING)
        return false; /* not started (invalid, duplicate), or ended */
    w->failed = true;
    zw_job_set_error(job, cls, http, code, msg);
    zw_job_detach(job);
    zw_job_set_state(job, ZW_JOB_WALK_DRAINING);
    try_end(job);
    return true;
}

/* ---- pages ---- */

static void submit(zw_job_t *job)
{
    zw_tenant_push(job->tenant, &job->lane, ZW_LANE_SYNC);
}

static void page_answer(zw_http_t *req, void *arg);

static void send_next(zw_job_t *job)
{
    zw_env_t *env = job->js->env;
    zw_walk_t *w = job->walk.snap;
    zw_auth_t *auth = zw_tenant_auth(job->tenant);
    size_t size = 256 + (w->cursor ? 3 * strlen(w->cursor) : 0);
    char *path = malloc(size), errstr[256];
    zw_http_t *req = NULL;

    if (!path) {
        zw_job_fail(job, "transient_exhausted", 0, "LocalError", "out of memory");
        return;
    }
    if (zw_snapshot_page_path(&job->walk.req, w->cursor, (int64_t)time(NULL), path, size) != 0) {
        free(path);
        zw_job_fail(job, "permanent", 0, "InvalidCursor", "the page cursor is too long");
        return;
    }
    req = zw_http_new(&env->http, zw_tenant_name(job->tenant), "GET", path, NULL,
                      zw_auth_header(auth), ZW_ENDPOINT_READ, errstr, sizeof(errstr));
    free(path);
    if (req)
        req->metric_endpoint = "list";
    zw_job_send(job, req, page_answer);
}

static void drain_timer(void *arg)
{
    zw_job_t *job = arg;

    job->timer = 0;
    if (job->state == ZW_JOB_STOPPED)
        release_if_idle(job);
    else
        submit(job);
}

static void emit_users(zw_job_t *job, json_object *users)
{
    zw_walk_t *w = job->walk.snap;
    size_t n = json_object_array_length(users);
    char key[160];

    for (size_t i = 0; i < n; i++) {
        json_object *u = json_object_array_get_idx(users, i), *v, *rec, *user;
        const char *role = NULL;
        int64_t id = 0;

        if (json_object_object_get_ex(u, "role", &v))
            role = json_object_get_string(v);
        if (!zw_snapshot_role_wanted(&job->walk.req, role))
            continue;
        if (json_object_object_get_ex(u, "id", &v))
            id = json_object_get_int64(v);
        user = zw_snapshot_user(u);
        w->checksum += zw_snapshot_fnv1a64(to_json(user));
        rec = record(job, "user");
        json_object_object_add(rec, "user", user);
        snprintf(key, sizeof(key), "%s/%lld", job->walk.req.tenant, (long long)id);
        emit(job, rec, key);
        json_object_put(rec);
        w->count++;
    }
}

/* One page: publish its users, then ask for the next page from the cursor
 * the page gave (a failed page is retried from the same cursor). */
static void page_done(zw_job_t *job, const zw_http_t *req)
{
    zw_walk_t *w = job->walk.snap;
    json_object *root = zw_http_json(req);
    zw_snapshot_page_t page;

    if (zw_snapshot_page_parse(root, job->walk.req.incremental, &page) != 0) {
        json_object_put(root);
        zw_job_backoff_or_fail(job, req->status, "InvalidResponse",
                               "Zendesk answered a page with a body that is not a user list");
        return;
    }
    job->failures = 0;
    job->retry_base_ms = zw_loop_now_ms();
    w->pages++;
    emit_users(job, page.users);
    if (job->walk.req.incremental) {
        if (page.after && *page.after)
            set_cursor(&w->next_cursor, page.after);
    } else if (!page.more) {
        /* A full snapshot continues incrementally from its start time. */
        char next[48];
        snprintf(next, sizeof(next), "start_time:%lld", (long long)w->start_unix);
        set_cursor(&w->next_cursor, next);
    }
    if (page.more)
        set_cursor(&w->cursor, page.after);
    json_object_put(root);
    zw_metrics_snapshot_progress(job->js->env->metrics, job->walk.req.tenant, (long)w->count,
                                 page.more);
    if (!page.more) {
        zw_job_set_state(job, ZW_JOB_WALK_DRAINING);
        try_end(job);
        return;
    }
    /* Let the producer drain before listing more: memory stays flat. */
    if (!w->out && zw_output_queue_len(job->js->output) > PRODUCER_QUEUE_HIGH)
        job->timer = zw_env_timer(job->js->env, DRAIN_WAIT_MS, drain_timer, job);
    else
        submit(job);
}

static void page_answer(zw_http_t *req, void *arg)
{
    zw_job_t *job = arg;
    zw_class_t cls = zw_retry_classify(req->status, req->curl_code);
    zw_answer_ctx_t ctx = {"lookup", job->walk.req.incremental, NULL};

    job->http = NULL;
    if (job->state == ZW_JOB_STOPPED) {
        release_if_idle(job);
        return;
    }
    if (cls == ZW_CLASS_OK)
        page_done(job, req);
    else
        zw_job_answer_failed(job, req, cls, &ctx);
}

/* ---- starting and stopping ---- */

static void init_deliveries(zw_job_t *job, zw_walk_t *w)
{
    const zw_config_t *c = job->js->env->cfg;
    zw_delivery_t *ds[2] = {&w->dr_record, &w->dr_end};

    for (int i = 0; i < 2; i++) {
        ds[i]->topic = c->kafka.topic_snapshots;
        ds[i]->input_headers = job->headers;
        ds[i]->ce_type = "dev.zendesk-worker.user-snapshot.v1";
        ds[i]->subject = job->event_id;
        ds[i]->arg = job;
    }
    w->dr_record.acked = record_acked;
    w->dr_end.acked = zw_job_acked;
    w->dr_end.retry = true;
}

void zw_walk_start(zw_walks_t *ws, zw_job_t *job, FILE *out)
{
    size_t slot = zw_tenant_index(job->tenant);
    zw_walk_t *w;
    json_object *rec;
    int64_t start_time;

    if (ws->running[slot]) {
        char msg[200];
        snprintf(msg, sizeof(msg), "snapshot %s of this tenant is still running",
                 ws->running[slot]->walk.snap->id);
        job->outcome = "duplicate_request";
        zw_job_fail(job, "permanent", 0, "DuplicateRequest", msg);
        return;
    }
    if (!(w = calloc(1, sizeof(*w)))) {
        zw_job_fail(job, "permanent", 0, "LocalError", "out of memory");
        return;
    }
    w->ws = ws;
    w->out = out;
    job->walk.snap = w;
    ws->running[slot] = job;
    init_deliveries(job, w);
    zw_env_uuid4(job->js->env, w->id);
    w->start_unix = (int64_t)time(NULL);
    job->lane.export_page = job->walk.req.incremental;
    if (job->walk.req.cursor) {
        if (zw_snapshot_cursor_start_time(job->walk.req.cursor, &start_time)) {
            job->walk.req.has_start_time = true;
            job->walk.req.start_time = start_time;
        } else {
            set_cursor(&w->cursor, job->walk.req.cursor);
        }
    }
    ZW_LOG(ZW_LOG_INFO, "snapshot started", ZW_LF_STR("tenant", job->walk.req.tenant),
           ZW_LF_STR("snapshot_id", w->id), ZW_LF_STR("request_id", job->walk.req.request_id),
           ZW_LF_STR("mode", job->walk.req.incremental ? "incremental" : "full"));
    zw_job_set_state(job, ZW_JOB_WALK_PAGING);
    rec = record(job, "begin");
    emit(job, rec, job->walk.req.tenant);
    json_object_put(rec);
    job->retry_base_ms = zw_loop_now_ms();
    submit(job);
}

static void start(zw_job_t *job)
{
    (void)job; /* sync requests have no key queue; zw_walk_start starts them */
}

bool zw_walk_running(const zw_job_t *job)
{
    return job->ops == &zw_walk_ops && job->walk.snap &&
           (job->state == ZW_JOB_WALK_PAGING || job->state == ZW_JOB_WALK_DRAINING);
}

void zw_walk_stop(zw_job_t *job, const char *why)
{
    if (!zw_walk_running(job))
        return;
    zw_job_detach(job);
    leave_slot(job);
    zw_job_set_state(job, ZW_JOB_STOPPED);
    if (why)
        ZW_LOG(ZW_LOG_INFO, why, ZW_LF_STR("tenant", job->walk.req.tenant),
               ZW_LF_STR("snapshot_id", job->walk.snap->id));
    release_if_idle(job);
}

void zw_walks_stop_all(zw_walks_t *ws)
{
    for (size_t i = 0; i < ws->n; i++) {
        if (ws->running[i])
            zw_walk_stop(ws->running[i],
                         "snapshot stopped by shutdown; its request stays uncommitted");
    }
}

const char *zw_walk_id(const zw_job_t *job)
{
    return job->walk.snap ? job->walk.snap->id : "";
}

int64_t zw_walk_count(const zw_job_t *job)
{
    return job->walk.snap ? job->walk.snap->count : 0;
}

int zw_walk_pages(const zw_job_t *job)
{
    return job->walk.snap ? job->walk.snap->pages : 0;
}

bool zw_walk_failed(const zw_job_t *job)
{
    return !job->walk.snap || job->walk.snap->failed;
}

const char *zw_walk_next_cursor(const zw_job_t *job)
{
    return job->walk.snap ? job->walk.snap->next_cursor : NULL;
}

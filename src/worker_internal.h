/* The provisioning worker's internal types, shared by worker.c (the
 * pipeline, partitions, tenants) and bulk.c (the bulk path). Not a public
 * interface: everything here runs on the loop's one thread. */
#ifndef ZW_WORKER_INTERNAL_H
#define ZW_WORKER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>
#include <librdkafka/rdkafka.h>

#include "zw/admin.h"
#include "zw/config.h"
#include "zw/event.h"
#include "zw/loop.h"
#include "zw/map.h"
#include "zw/metrics.h"
#include "zw/offsets.h"
#include "zw/plan.h"
#include "zw/ratelimit.h"
#include "zw/zendesk.h"

#define RESULT_SCHEMA "zendesk-worker/result/v1"
#define MAX_REQUEST_IDS 16
#define CONSUME_BATCH 500
#define OAUTH_RETRY_MS 30000
#define TICK_MS 1000
#define STATS_EVERY_MS 10000

typedef struct worker_s worker_t;
typedef struct tenant_s tenant_t;
typedef struct job_s job_t;
typedef struct part_s part_t;
typedef struct keyq_s keyq_t;

/* The owner of an HTTP request: a job (one event or sync request), a
 * tenant's token grant, a lookup batch, a bulk job's submission or a
 * tenant's job-status poll. Each struct starts with this tag. */
typedef enum {
    OWNER_JOB = 1,
    OWNER_TENANT = 2,
    OWNER_BATCH = 3,
    OWNER_BULK = 4,
    OWNER_POLL = 5
} owner_kind_t;

/* The bulk path (bulk.c): what kind of *_many job an event's write can go in. */
typedef enum {
    BULK_NONE = 0,
    BULK_CREATE_OR_UPDATE = 1, /* POST /api/v2/users/create_or_update_many */
    BULK_UPDATE = 2,           /* PUT /api/v2/users/update_many */
    BULK_DESTROY = 3,          /* DELETE /api/v2/users/destroy_many */
    N_BULK_OPS = 4
} bulk_op_t;

#define BULK_MAX_ITEMS 100

typedef struct bulk_s bulk_t;

typedef struct bulk_poll_s {
    owner_kind_t kind; /* OWNER_POLL */
    tenant_t *tenant;
} bulk_poll_t;

/* Lookups of many events in one show_many request (at most 100 ids). */
#define LOOKUP_BATCH_MAX 100
#define LOOKUP_URL_MAX 6000

typedef enum { TOKEN_NONE = 0, TOKEN_FETCHING, TOKEN_READY, TOKEN_FAILED } token_state_t;

/* Lanes take turns for a tenant's budget: lookups, single-user writes, and
 * snapshot pages, so neither provisioning nor a snapshot starves the other. */
enum { LANE_READ = 0, LANE_WRITE = 1, LANE_SYNC = 2, N_LANES = 3 };

#define SNAPSHOT_SCHEMA "zendesk-worker/user-snapshot/v1"
#define SNAPSHOT_PAGE_SIZE 100
#define EXPORT_PAGE_SIZE 1000
#define PRODUCER_QUEUE_HIGH 20000

struct tenant_s {
    owner_kind_t kind;
    worker_t *w;
    const zw_tenant_config_t *cfg;
    zw_ratelimit_t *budget; /* every API request */
    zw_ratelimit_t *writes; /* single-user writes */
    zw_ratelimit_t *exports; /* incremental export pages */
    job_t *sync_job;        /* the snapshot being walked, if any */
    char *authorization;    /* "Basic ..." or "Bearer ..."; a secret */
    token_state_t token_state;
    bool token_renewing;    /* a grant in flight while the old token works */
    unsigned token_gen;
    uint64_t token_timer;
    int token_failures;
    bool token_refused;     /* the last grant was refused: fail events at once */
    job_t *lane_head[N_LANES], *lane_tail[N_LANES];
    int next_lane;
    uint64_t wake_timer;
    int64_t wake_due;
    /* The bulk path (bulk.c). */
    int bulk_waiting[N_BULK_OPS]; /* events in lanes a bulk job could take, by op */
    int64_t bulk_ready_at[N_BULK_OPS]; /* the op's waiting events go no sooner (linger) */
    int n_looking;                /* events between consume and plan: writes to come */
    bulk_t *bulk_head;            /* jobs being submitted or open at Zendesk */
    int n_bulk;
    int bulk_next_op;             /* ops take turns */
    bool bulk_create_proven;      /* a create_or_update_many was accepted */
    bool bulk_create_refused;     /* 403 on create_or_update_many: single calls */
    int64_t bulk_create_retry_at; /* when to try bulk create again; 0 = never */
    bool bulk_off;                /* 403 on job_statuses: no bulk at all */
    int64_t bulk_off_retry_at;    /* when to try bulk again; 0 = never */
    int64_t bulk_blocked_until;   /* no submission before (TooManyJobs, no slot left) */
    bool bulk_wait_completion;    /* ... or until one of our jobs completes */
    bulk_poll_t poll;
    unsigned poll_token_gen;      /* the token the poll in flight carries */
    bool poll_in_flight;
    int poll_failures;
    int64_t poll_due;
};

struct part_s {
    char *topic;
    int32_t partition;
    zw_offsets_t *offsets;
    job_t *jobs;     /* every live job of the partition */
    bool revoked;    /* handed back: its jobs end without storing offsets */
    int64_t stored;  /* the last offset stored for commit, -1 before any */
    part_t *zombie_next; /* revoked, waiting for its last jobs */
};

struct keyq_s {
    char *name;
    job_t *head, *tail; /* head is the active job */
};

/* A produced record waiting for its delivery report. */
typedef enum { DR_RESULT = 0, DR_DLQ = 1, DR_SNAPSHOT = 2, DR_END = 3 } dr_kind_t;

typedef struct delivery_s {
    job_t *job;
    dr_kind_t kind;
} delivery_t;

typedef struct batch_s {
    owner_kind_t kind; /* OWNER_BATCH */
    struct tenant_s *tenant;
    size_t n;
    struct job_s *jobs[LOOKUP_BATCH_MAX];
    struct batch_s *prev, *next; /* the worker's batches in flight, freed at exit */
} batch_t;

/* A snapshot walk (sync request). Pages are listed one at a time and their
 * users published at once, so memory stays flat whatever the account's
 * size; the end marker goes out only once every user record is acked. */
typedef struct snapshot_s {
    char id[37];
    int64_t seq;
    int64_t count;
    uint64_t checksum;     /* sum of FNV-1a 64 over each record's "user" JSON */
    char *cursor;          /* where the next page starts */
    char *next_cursor;     /* for the end marker */
    int pages;
    int pending;           /* begin/user records not yet acked */
    bool walk_done;
    bool failed;           /* the walk stopped early */
    bool broken;           /* a record was not delivered */
    bool stop;             /* shutdown or revoke: end without a marker */
    bool ended;
    int64_t start_unix;
    FILE *out;             /* one-shot mode: NDJSON here instead of Kafka */
} snapshot_t;

struct job_s {
    owner_kind_t kind;
    worker_t *w;
    part_t *part;
    job_t *part_prev, *part_next;
    int64_t offset;
    char *key;
    size_t key_len;
    rd_kafka_headers_t *headers; /* the input's headers, copied */
    char *raw;                   /* the input bytes, kept only for the DLQ */
    size_t raw_len;
    zw_event_t ev;
    char *event_id;              /* for results; may exist for invalid events */
    tenant_t *tenant;
    keyq_t *keyq;
    job_t *key_next;
    bool started;
    bool lookup_done;
    json_object *current;        /* the person's Zendesk user after lookup */
    zw_plan_t plan;
    int lane;
    job_t *lane_next;
    bool in_lane;
    bulk_op_t bulk_op;           /* counted in tenant bulk_waiting while in a lane */
    bulk_t *bulk;                /* the bulk job carrying its write */
    int bulk_idx;
    bool no_bulk;                /* single calls only (the bulk request was refused) */
    bool looking;                /* counted in its tenant's n_looking */
    uint64_t timer;
    zw_http_t *http;             /* in flight */
    unsigned token_gen;
    bool abandoned;
    int attempts;                /* tries: 1 + retries of any kind */
    int failures;                /* transient failures of the current call */
    bool auth_retried;
    int64_t start_ms;
    char started_at[32];
    /* The result. */
    bool finished;
    const char *status;
    const char *outcome;
    int64_t user_id;
    const char *err_class;
    long err_http;
    char err_code[64];
    char err_msg[300];
    char *request_ids[MAX_REQUEST_IDS];
    size_t n_request_ids;
    char *result_json;
    const char *dlq_reason;
    char dlq_message[300];
    int pending;                 /* deliveries not yet acked */
    delivery_t dr_result, dr_dlq, dr_snapshot, dr_end;
    /* Group memberships (agents only): after the user write, list them,
     * then add and remove one request at a time. */
    int64_t page_start_ms;       /* snapshots: when the current page was first asked for */
    int group_phase;             /* 0 none, 1 listing, 2 applying */
    int64_t *group_ops;          /* > 0: add group id; < 0: remove membership -id */
    size_t n_group_ops, group_op;
    bool is_sync;
    zw_sync_request_t sync;
    snapshot_t *snap;
    char *end_json;
};

typedef struct stats_s {
    uint64_t consumed, finished, succeeded, failed, dry_run, dlq, retries, rate_limited,
        http_requests;
} stats_t;

struct worker_s {
    const zw_config_t *cfg;
    zw_loop_t *loop;
    rd_kafka_t *consumer, *producer;
    int consumer_fd, producer_fd, signal_fd;
    zw_http_settings_t http;
    char user_agent[64];
    char worker_id[128];
    tenant_t *tenants;
    size_t n_tenants;
    zw_map_t *parts;   /* "topic\x1fpartition" -> part_t */
    zw_map_t *keyqs;   /* "topic\x1fpartition\x1fkey" -> keyq_t */
    part_t *zombies;   /* revoked partitions with jobs still finishing */
    size_t n_jobs;
    size_t max_jobs;
    bool paused;
    bool ever_assigned;
    size_t n_assigned;
    double share;
    bool stopping;
    int64_t stop_deadline;
    uint64_t rng;
    stats_t stats;
    int64_t next_stats_ms;
    bool consumer_more;
    json_object *batch_root; /* lent while a lookup batch's answer is handed out */
    bool batch_root_pending; /* a lookup batch's answer is being handed out */
    bool batch_429_seen;     /* ... and its 429 was already counted */
    int defer_pump;          /* handling a response: pump once, after it */
    batch_t *batches;        /* lookup batches in flight */
    zw_metrics_t *metrics;
    zw_admin_t *admin;     /* NULL when admin.listen is "" */
    bool oneshot;          /* `sync` command: no Kafka, one snapshot to a file */
    job_t *oneshot_job;
};

/* A bulk job: up to 100 events' writes in one *_many request, then polled
 * through job_statuses until Zendesk reports each item's result. */
struct bulk_s {
    owner_kind_t kind; /* OWNER_BULK */
    tenant_t *tenant;
    bulk_op_t op;
    size_t n;
    job_t *jobs[BULK_MAX_ITEMS]; /* NULL where the event went away (revoked) */
    char zid[64];                /* Zendesk's job id once accepted; "" while submitting */
    int missing;                 /* polls that did not list it */
    bool polled;                 /* asked for in the poll in flight */
    unsigned token_gen;          /* the token its request carried */
    int64_t opened_ms;
    bulk_t *prev, *next;         /* the tenant's bulk jobs */
};

/* worker.c, for bulk.c */
void wk_job_submit(job_t *job);
void wk_job_fail(job_t *job, const char *cls, long http, const char *code, const char *msg);
void wk_job_person_done(job_t *job);
void wk_job_retry_later(job_t *job, int64_t delay_ms);
bool wk_past_deadline(const job_t *job, int64_t extra_ms);
void wk_record_request_id(job_t *job, const zw_http_t *req);
void wk_tenant_wake_in(tenant_t *t, int64_t wait_ms);
void wk_lane_unlink(tenant_t *t, job_t *job, job_t *prev);

/* bulk.c */
bulk_op_t zw_bulk_op_of(const job_t *job);
/* Sends a job-status poll or a bulk job if one is due and the budget allows:
 * 1 when a request went out, 0 when nothing did, -1 when the budget is spent
 * (a wake-up is set). */
int zw_bulk_pump(tenant_t *t, int64_t now);
/* Whether the job waits for a bulk job rather than a single call now. */
bool zw_bulk_holds(const tenant_t *t, const job_t *job);
/* Counts a job into or out of its tenant's waiting writes (lanes). */
void zw_bulk_count(tenant_t *t, job_t *job, int delta);
void zw_bulk_http_done(zw_http_t *req);
void zw_bulk_poll_done(tenant_t *t, zw_http_t *req);
/* Takes a job out of its bulk job (its partition was revoked). */
void zw_bulk_forget(job_t *job);
/* At startup: bulk off for a tenant whose OAuth scope cannot read job statuses. */
void zw_bulk_setup(tenant_t *t);
void zw_bulk_cleanup(tenant_t *t);

#endif

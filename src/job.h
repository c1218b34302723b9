/* A job: one input event (a provisioning request or a sync request) from
 * consume to the ack of its result. job.c owns the lifecycle (its state, its
 * end, the retry timer, the shared answer policy); what the work is belongs
 * to the kind's ops (provision.c, walk.c), and each module writes only its
 * own sub-struct (job->prov: provision.c, lookup.c reads; job->bulk: bulk.c;
 * job->walk: walk.c; job->lane: tenant.c). Private to the core. */
#ifndef ZW_JOB_H
#define ZW_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <librdkafka/rdkafka.h>

#include "zw/event.h"
#include "zw/keyq.h"
#include "zw/output.h"
#include "zw/partition.h"
#include "zw/plan.h"
#include "zw/result.h"
#include "zw/retry.h"
#include "zw/tenant.h"
#include "zw/zendesk.h"

#include "env.h"

#define ZW_JOB_MAX_REQUEST_IDS 16

typedef struct zw_job_s zw_job_t;

/* Where a job is; zw_job_set_state() is the only writer. */
typedef enum {
    ZW_JOB_NEW = 0,       /* consumed, not admitted yet */
    ZW_JOB_QUEUED,        /* behind its key's active event */
    ZW_JOB_LOOKUP,        /* person lookup waiting (read lane) or in flight */
    ZW_JOB_WRITE,         /* planned write waiting (lane or bulk job) or in flight */
    ZW_JOB_GROUPS_LIST,   /* listing the user's group memberships */
    ZW_JOB_GROUPS_APPLY,  /* adding / removing one membership at a time */
    ZW_JOB_WALK_PAGING,   /* snapshot: listing pages */
    ZW_JOB_WALK_DRAINING, /* snapshot: walk over, records not all acked */
    ZW_JOB_PRODUCING,     /* finished: result / DLQ / end marker not yet acked */
    ZW_JOB_STOPPED,       /* revoked or shut down: ends without storing its offset */
} zw_job_state_t;

/* What a kind of job does (seam 3). start: its key's turn came; submit:
 * queue its next request on its tenant's lane (after a retry wait too);
 * send: send that request now (it is out of its lane); fail: end it as
 * failed, returning false to let zw_job_fail() do the usual; describe: the
 * kind's part of the result; type_label: the metrics' type; release: free
 * the kind's sub-struct. fail, start may be NULL. */
typedef struct zw_job_ops_s {
    void (*start)(zw_job_t *job);
    void (*submit)(zw_job_t *job);
    void (*send)(zw_job_t *job);
    bool (*fail)(zw_job_t *job, const char *cls, long http, const char *code, const char *msg);
    void (*describe)(const zw_job_t *job, zw_result_t *r);
    const char *(*type_label)(const zw_job_t *job);
    void (*release)(zw_job_t *job);
} zw_job_ops_t;

/* What every job runs with (all lent). output is NULL in the sync command. */
typedef struct zw_jobs_s {
    zw_env_t *env;
    zw_tenants_t *tenants;
    zw_parts_t *parts;
    zw_keyqs_t *keyqs;
    zw_output_t *output;
    size_t n_jobs;
} zw_jobs_t;

struct zw_provision_s;
struct zw_walk_s;
struct zw_bulk_job_s;

struct zw_job_s {
    /* job.c */
    zw_jobs_t *js;
    const zw_job_ops_t *ops;
    zw_job_state_t state;
    zw_part_t *part;
    zw_part_link_t plink;
    int64_t offset;
    char *key;
    size_t key_len;
    rd_kafka_headers_t *headers; /* the input's, copied */
    char *raw;                   /* the input bytes, kept only for the DLQ */
    size_t raw_len;
    char *event_id;              /* for results; may exist for invalid events */
    zw_tenant_t *tenant;
    zw_keyq_link_t klink;
    uint64_t timer;
    zw_http_t *http;             /* in flight, set by whoever sent it */
    unsigned token_gen;          /* of the credentials the request carried */
    int attempts;                /* tries: 1 + retries of any kind */
    int failures;                /* transient failures of the current call */
    bool auth_retried;
    bool looking;                /* counted in its tenant's looking events */
    bool held;                   /* counted in its tenant's events in memory */
    int64_t start_ms;
    int64_t retry_base_ms;       /* retrying stops retry_deadline_ms after this */
    char started_at[32];
    /* The result. */
    const char *status;
    const char *outcome;
    int64_t user_id;
    const char *err_class;
    long err_http;
    char err_code[64];
    char err_msg[300];
    char *request_ids[ZW_JOB_MAX_REQUEST_IDS];
    size_t n_request_ids;
    char *result_json;
    const char *dlq_reason;
    char dlq_message[300];
    zw_dlq_info_t dlq;
    int pending;                 /* records produced, not acked yet */
    zw_delivery_t dr_result, dr_dlq;
    /* tenant.c */
    zw_lane_item_t lane;
    /* provision.c (lookup.c and bulk.c read it) */
    struct {
        zw_event_t ev;
        json_object *current;    /* the person's Zendesk user after lookup */
        zw_plan_t plan;
        int64_t *group_ops;      /* > 0: add group id; < 0: remove membership -id */
        size_t n_group_ops, group_op;
        json_object *memberships; /* the pages listed so far */
        char *groups_after;      /* the next page's cursor, NULL for the first */
        bool groups_relisted;    /* listed again after an add was refused */
        int64_t refused_group;   /* that add's group */
        int relookups;           /* writes answered 404 after a lookup found the user */
    } prov;
    /* bulk.c */
    struct {
        struct zw_bulk_job_s *job; /* the bulk job carrying the write */
        int idx;
        bool no_bulk;            /* single calls only (the bulk request was refused) */
    } bulk;
    /* walk.c */
    struct {
        zw_sync_request_t req;
        struct zw_walk_s *snap;
    } walk;
};

/* The job a lane item, key-queue link or partition link is embedded in. */
#define ZW_JOB_OF(ptr, member) ((zw_job_t *)(void *)((char *)(ptr) - offsetof(zw_job_t, member)))

/* A new job at offset of part, tracked there and counted; NULL (nothing
 * tracked) when out of memory or the offset does not increase. */
zw_job_t *zw_job_new(zw_jobs_t *js, zw_part_t *part, int64_t offset, const zw_job_ops_t *ops);

/* Copies what the job keeps of its message: key, headers, value. */
void zw_job_copy_message(zw_job_t *job, const rd_kafka_message_t *m);

void zw_job_set_state(zw_job_t *job, zw_job_state_t state);

/* Ends the job: its result (and DLQ record) go out, its key's next event
 * starts; the job lives on until the broker acks what it produced. */
void zw_job_finish(zw_job_t *job);

/* Ends the job as failed (a walk first writes its failed end marker). */
void zw_job_fail(zw_job_t *job, const char *cls, long http, const char *code, const char *msg);

/* The error the result reports (the job goes on; zw_job_fail() ends it). */
void zw_job_set_error(zw_job_t *job, const char *cls, long http, const char *code,
                      const char *msg);

/* A record the job produced (its result, DLQ record, end marker) is acked:
 * the job is done with the last one (a zw_delivery_fn, arg the job). */
void zw_job_acked(zw_delivery_t *d, rd_kafka_resp_err_t err);

/* The input is bad: a failed result and a DLQ record. */
void zw_job_reject(zw_job_t *job, const char *reason, const char *cls, const char *msg);

/* Retries after delay_ms (counted as a retry), or just waits (not counted). */
void zw_job_retry_later(zw_job_t *job, int64_t delay_ms);

/* Submits the job again in delay_ms without counting a try or a retry: it
 * waits on something of the worker's own, not on a Zendesk answer. */
void zw_job_hold_for(zw_job_t *job, int64_t delay_ms);

/* Sends the job's one request (req from zw_http_new, NULL when that failed)
 * through its tenant, fn getting the answer; records it as the job's
 * request in flight. false when it could not start: the job has failed. */
bool zw_job_send(zw_job_t *job, zw_http_t *req, zw_http_done_fn fn);
void zw_job_wait(zw_job_t *job, int64_t delay_ms);

/* Whether retrying delay_ms from now would pass the retry deadline. */
bool zw_job_past_deadline(const zw_job_t *job, int64_t delay_ms);

/* Keeps the answer's X-Zendesk-Request-Id for the result. */
void zw_job_record_request_id(zw_job_t *job, const zw_http_t *req);

/* Takes the job out of whatever it waits in: its timer and its lane. */
void zw_job_detach(zw_job_t *job);

/* Unlinks the job from its partition and frees it; nothing else. */
void zw_job_free(zw_job_t *job);

/* Frees what a job owns and the job, without unlinking (at exit). */
void zw_job_release(zw_job_t *job);

/* Counts the job in or out of its tenant's events still being looked up. */
void zw_job_set_looking(zw_job_t *job, bool looking);

/* How an answer that is not a success is handled for a job, whatever the
 * request: what names it in a permanent failure ("lookup", "change");
 * export_page: an incremental export page; seen_429: shared by the events of
 * one lookup batch, so its one 429 is counted and blocks once. */
typedef struct zw_answer_ctx_s {
    const char *what;
    bool export_page;
    bool *seen_429;
} zw_answer_ctx_t;

/* The one retry policy (seam for every sender): 429 waits the Retry-After
 * (the person's, the writes', the exports' or the account's), 401 renews an
 * OAuth token once, 4xx fails, 5xx and transport errors back off. */
void zw_job_answer_failed(zw_job_t *job, const zw_http_t *req, zw_class_t cls,
                          const zw_answer_ctx_t *ctx);

/* Retries after a backoff, or fails as transient_exhausted once the
 * attempts or the deadline run out (for answers Zendesk should not give). */
void zw_job_backoff_or_fail(zw_job_t *job, long http, const char *code, const char *msg);

#endif

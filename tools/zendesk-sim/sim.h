/*
 * zendesk-sim: shared types and the contracts between its files.
 * One global lock (g_sim.lock) guards every account; handlers run with it held.
 * Reading order: main.c (CLI), server.c (HTTP glue, latency timer), api.c (Zendesk
 * endpoints), store.c (accounts, users, jobs, tokens), limits.c, control.c, util.c.
 */
#ifndef ZENDESK_SIM_H
#define ZENDESK_SIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define SIM_MAX_HEADERS 16
#define SIM_LOG_CAP 10000   /* request log entries kept per account (a ring) */
#define SIM_MAX_ACCOUNTS 256

/* ---------- util.c ---------- */

typedef struct sim_map_entry_s {
    char *key;
    void *val;
    uint64_t hash;
    struct sim_map_entry_s *next;
} sim_map_entry_t;

/* A string -> pointer hash map. Keys are copied; values are lent (never freed). */
typedef struct sim_map_s {
    sim_map_entry_t **buckets;
    size_t nbuckets;
    size_t count;
} sim_map_t;

void sim_map_init(sim_map_t *map);
void sim_map_cleanup(sim_map_t *map);
void *sim_map_get(const sim_map_t *map, const char *key);
/* Returns 0, or -1 on allocation failure. Replaces an existing value. */
int sim_map_put(sim_map_t *map, const char *key, void *val);
void sim_map_del(sim_map_t *map, const char *key);

/* A growable byte buffer with a hard cap. */
typedef struct sim_buf_s {
    char *data;
    size_t len;
    size_t cap;
} sim_buf_t;

/* Appends; returns 0, or -1 when the result would exceed max (the buffer is unchanged). */
int sim_buf_append(sim_buf_t *buf, const void *data, size_t len, size_t max);
void sim_buf_cleanup(sim_buf_t *buf);

/* Copies src into dst, truncating; dst is always terminated. */
void sim_strlcpy(char *dst, const char *src, size_t dstsz);
uint64_t sim_hash(const char *s);
/* ASCII case-insensitive compare (strcasecmp is not in C11/POSIX-only headers we use). */
int sim_strcasecmp(const char *a, const char *b);
/* Lower-cases src into dst (size dstsz, always terminated). */
void sim_lower(char *dst, const char *src, size_t dstsz);
/* Milliseconds on the real monotonic clock. */
int64_t sim_mono_ms(void);
/* Milliseconds since the epoch on the simulator's clock (real time + control-API offset). */
int64_t sim_now_ms(void);
void sim_clock_advance(int64_t ms);
int64_t sim_clock_offset(void);
/* Formats epoch seconds as ISO-8601 UTC ("2026-11-28T20:08:00Z") into out (>= 21 bytes). */
void sim_iso8601(int64_t secs, char *out, size_t outsz);
/* xorshift64* step; state must not be 0. */
uint64_t sim_rand(uint64_t *state);
/* A uniform double in [0, 1). */
double sim_rand01(uint64_t *state);
/* Glob match: '*' matches any run of characters (including '/'), '?' one character. */
bool sim_glob(const char *pattern, const char *text);
/* base64 (standard alphabet, padded). Returns the output length, or -1 when it does not fit. */
int sim_b64_encode(const unsigned char *in, size_t inlen, char *out, size_t outsz);
/* Decodes standard or URL-safe base64, padding optional. Returns the length, or -1. */
int sim_b64_decode(const char *in, unsigned char *out, size_t outsz);
/* Opaque cursors: "prefix" + number. Returns 0, or -1 on a malformed cursor. */
void sim_cursor_encode(char kind, int64_t value, char *out, size_t outsz);
int sim_cursor_decode(const char *cursor, char kind, int64_t *value);
/* Parses a whole decimal int64; returns 0 or -1. */
int sim_parse_i64(const char *s, int64_t *out);
/* Checks the shape of an e-mail address the way Zendesk's validation roughly does. */
bool sim_email_valid(const char *email);
/* Percent-encodes s into out for use in a query string. */
void sim_url_encode(const char *s, char *out, size_t outsz);
/* Returns a JSON body string for {"error":code,"description":desc}; the caller frees it. */
char *sim_error_body(const char *code, const char *desc);

/* ---------- responses ---------- */

typedef enum {
    SIM_ACT_RESPOND = 0,
    SIM_ACT_DROP,   /* close the connection without an answer */
    SIM_ACT_HANG,   /* never answer; close after hang_ms */
    SIM_ACT_LOSE    /* (a rule) handle the request as usual, then close without
                     * sending the answer: the change is made, its answer lost */
} sim_action_t;

typedef struct sim_resp_s {
    int status;
    char *body;          /* owned, malloc'd; may be NULL for an empty body */
    size_t body_len;
    char ctype[64];
    int nhdr;
    char hdr_name[SIM_MAX_HEADERS][48];
    char hdr_val[SIM_MAX_HEADERS][160];
    sim_action_t action;
    int64_t delay_ms;    /* answer after this long (latency faults) */
    int64_t hang_ms;
    bool lose_answer;    /* SIM_ACT_LOSE: drop the connection after handling */
} sim_resp_t;

void sim_resp_header(sim_resp_t *resp, const char *name, const char *val);
/* Sets status and a JSON body; takes obj (puts it). */
void sim_resp_json(sim_resp_t *resp, int status, json_object *obj);
/* Sets status and a copy of the given body text. */
void sim_resp_text(sim_resp_t *resp, int status, const char *ctype, const char *body);
void sim_resp_error(sim_resp_t *resp, int status, const char *code, const char *desc);
void sim_resp_cleanup(sim_resp_t *resp);

/* ---------- requests ---------- */

typedef struct sim_req_s {
    void *conn;                /* struct MHD_Connection *, lent by MHD */
    char method[16];
    char *path;                /* owned: decoded path, no query, no ".json" suffix */
    char *raw_path;            /* owned: the path as requested (for the log) */
    char host[256];
    char sub[64];              /* first label of Host, lower-cased */
    const char *content_type;  /* lent by MHD */
    const char *authorization; /* lent by MHD */
    sim_buf_t body;
    bool too_large;
    char request_id[40];
    /* Query access; lent by server.c, valid during the handler. */
    const char *(*query)(const struct sim_req_s *req, const char *key);
    /* Calls fn for each value of a repeated query key. */
    void (*query_each)(const struct sim_req_s *req, const char *key,
                       void (*fn)(void *arg, const char *val), void *arg);
} sim_req_t;

/* ---------- store.c ---------- */

typedef struct sim_user_s {
    int64_t id;
    char *name;
    char *email;           /* primary; NULL when none */
    char *external_id;     /* NULL when none */
    char role[16];         /* end-user | agent | admin */
    int64_t custom_role_id;   /* 0 = null */
    int64_t default_group_id;
    int64_t organization_id;
    bool active;
    bool suspended;
    bool verified;
    char *phone;
    char *locale;
    char *time_zone;
    json_object *tags;         /* owned array of strings, or NULL (= []) */
    json_object *user_fields;  /* owned object, or NULL (= {}) */
    json_object *identities;   /* owned array of secondary e-mails, or NULL */
    int64_t created_at;        /* seconds, sim clock */
    int64_t updated_at;
    int64_t last_login_at;     /* 0 = null */
    int64_t deleted_at;        /* 0 = not deleted */
    uint64_t seq;              /* change sequence: orders the incremental export */
    int64_t write_window;      /* per-user write limit: window start (minute) */
    int write_count;
} sim_user_t;

typedef struct sim_membership_s {
    int64_t id;
    int64_t user_id;
    int64_t group_id;
    bool is_default;
    int64_t created_at;
} sim_membership_t;

typedef struct sim_group_s {
    int64_t id;
    char name[128];
    int64_t created_at;
} sim_group_t;

typedef enum {
    SIM_JOB_CREATE = 0,
    SIM_JOB_CREATE_OR_UPDATE,
    SIM_JOB_UPDATE,
    SIM_JOB_DESTROY
} sim_job_kind_t;

typedef struct sim_job_s {
    char id[33];
    sim_job_kind_t kind;
    int64_t created_ms;     /* sim clock */
    int64_t completed_ms;   /* 0 while running */
    int total;
    int progress;
    json_object *items;     /* owned: one entry per item, in request order */
    json_object *change;    /* owned: update_many's single change, or NULL */
    json_object *results;   /* owned array */
    bool fail;              /* drawn at creation: stops half way, "failed" */
} sim_job_t;

typedef struct sim_token_s {
    char access[65];
    char refresh[65];
    char scope[128];
    int64_t access_exp_ms;
    int64_t refresh_exp_ms;
    bool revoked;
} sim_token_t;

typedef struct sim_log_entry_s {
    int64_t time_ms;
    char method[8];
    char path[200];
    char endpoint[64];
    int status;
    char request_id[40];
} sim_log_entry_t;

typedef struct sim_count_s {
    char endpoint[64];
    int status;
    uint64_t count;
} sim_count_t;

typedef struct sim_rule_s {
    char method[16];        /* "*" for any */
    char path[200];         /* glob against the path (no query, ".json" kept off) */
    int remaining;
    int status;
    sim_action_t action;
    int64_t latency_ms;
    int nhdr;
    char hdr_name[8][48];
    char hdr_val[8][160];
    char *body;             /* owned */
    char ctype[64];
} sim_rule_t;

/* Everything configurable about an account: the CLI keys, faults and limits. */
typedef struct sim_config_s {
    char subdomain[64];
    char email[256];
    char token[128];
    char client_id[128];
    char client_secret[128];
    int64_t token_ttl;          /* s */
    int64_t refresh_ttl;        /* s */
    bool bulk_import;
    /* limits */
    bool limits_enabled;
    int64_t rpm;                /* 0 = no account budget */
    int64_t user_write_per_sec; /* account-wide single-user writes per second; 0 = off */
    int64_t user_write_per_user_min;
    int64_t incremental_per_min;
    int64_t max_jobs;
    char limit_body[8];         /* text | html | json */
    /* behaviour */
    int64_t job_queue_ms;
    int64_t job_item_ms;
    int64_t incremental_withhold_s;
    /* faults */
    int64_t latency_ms;
    int64_t latency_jitter_ms;
    double error_rate;
    int error_statuses[8];
    int n_error_statuses;
    int64_t error_retry_after;  /* s; 0 = no Retry-After on injected 5xx */
    double conflict_rate;
    double job_fail_rate;   /* share of bulk jobs that stop half way with status "failed" */
    double drop_rate;
    double hang_rate;
    int64_t hang_ms;
    char fault_path[200];       /* glob; faults apply to matching paths only */
} sim_config_t;

typedef struct sim_account_s {
    sim_config_t cfg;
    sim_config_t initial;       /* what a reset returns to */
    uint64_t rng;
    /* users, ordered by id */
    sim_user_t **users;
    size_t nusers;
    size_t users_cap;
    sim_map_t by_email;         /* lower-case e-mail (primary and secondary) -> user */
    sim_map_t by_external_id;   /* lower-case external_id -> user */
    int64_t next_id;
    uint64_t seq;
    sim_user_t *owner;          /* the admin the API token belongs to */
    /* groups and memberships */
    sim_group_t *groups;
    size_t ngroups;
    sim_membership_t *memberships;
    size_t nmemberships;
    int64_t next_aux_id;
    /* jobs */
    sim_job_t **jobs;
    size_t njobs;
    /* OAuth */
    sim_token_t **tokens;
    size_t ntokens;
    sim_map_t by_access;
    sim_map_t by_refresh;
    /* rate limits */
    int64_t win_minute;
    int64_t win_count;
    int64_t uw_second;
    int64_t uw_count;
    int64_t inc_minute;
    int64_t inc_count;
    /* scripts */
    sim_rule_t *rules;
    size_t nrules;
    /* request log */
    sim_log_entry_t *log;       /* ring of SIM_LOG_CAP */
    uint64_t log_total;
    sim_count_t *counts;
    size_t ncounts;
} sim_account_t;

typedef struct sim_s {
    pthread_mutex_t lock;
    sim_account_t *accounts[SIM_MAX_ACCOUNTS];
    int naccounts;
    uint64_t seed;
    size_t max_body;
    int port;
    uint64_t request_seq;
} sim_t;

extern sim_t g_sim;

/* Error details filled by user operations. */
typedef struct sim_err_s {
    int status;            /* 422, 404, 400 */
    char code[40];         /* RecordInvalid, RecordNotFound, ... */
    char field[40];        /* details key, e.g. "email" */
    char field_code[40];   /* DuplicateValue, InvalidFormat, ... */
    char desc[300];
} sim_err_t;

void sim_config_defaults(sim_config_t *cfg);
/* Sets one account key from text ("rpm", "700"). Returns 0, or -1 with errstr. */
int sim_config_set(sim_config_t *cfg, const char *key, const char *val, char *errstr, size_t errlen);
/* Parses "k=v,k=v" into cfg. */
int sim_config_parse(sim_config_t *cfg, const char *spec, char *errstr, size_t errlen);
/* Applies every key of a JSON object. */
int sim_config_apply_json(sim_config_t *cfg, json_object *obj, char *errstr, size_t errlen);
json_object *sim_config_to_json(const sim_config_t *cfg);

/* Creates an account from cfg (copied) and registers it. Returns it, or NULL (errstr). */
sim_account_t *sim_account_add(const sim_config_t *cfg, char *errstr, size_t errlen);
sim_account_t *sim_account_find(const char *sub);
void sim_account_remove(sim_account_t *acct);
/* Clears users, jobs, tokens, logs, scripts; restores the initial config when restore_cfg. */
void sim_account_reset(sim_account_t *acct, bool restore_cfg);
void sim_accounts_destroy(void);

sim_user_t *sim_user_by_id(sim_account_t *acct, int64_t id);
sim_user_t *sim_user_by_email(sim_account_t *acct, const char *email);
sim_user_t *sim_user_by_external_id(sim_account_t *acct, const char *ext);
/* Creates a user from a Zendesk user object; NULL with err filled on failure. */
sim_user_t *sim_user_create(sim_account_t *acct, json_object *in, sim_err_t *err);
/* Applies a Zendesk user object to u; returns 0, or -1 with err. */
int sim_user_update(sim_account_t *acct, sim_user_t *u, json_object *in, sim_err_t *err);
void sim_user_soft_delete(sim_account_t *acct, sim_user_t *u);
void sim_user_purge(sim_account_t *acct, sim_user_t *u);
/* Builds the API user object; host is used for the url field. */
json_object *sim_user_json(const sim_user_t *u, const char *host, bool full);
/* Seeds count users; returns the number created. */
int sim_seed_users(sim_account_t *acct, int count, const char *role, const char *prefix, int start);

/* Advances background jobs to the sim clock. */
void sim_jobs_tick(sim_account_t *acct, int64_t now_ms);
int sim_jobs_active(const sim_account_t *acct);
sim_job_t *sim_job_find(sim_account_t *acct, const char *id);
sim_job_t *sim_job_add(sim_account_t *acct, sim_job_kind_t kind, json_object *items, json_object *change);
json_object *sim_job_json(const sim_job_t *job, const sim_account_t *acct, const char *host, int64_t now_ms);

sim_token_t *sim_token_issue(sim_account_t *acct, const char *scope, int64_t ttl_s);
sim_token_t *sim_token_by_access(sim_account_t *acct, const char *access);
sim_token_t *sim_token_by_refresh(sim_account_t *acct, const char *refresh);

void sim_log_request(sim_account_t *acct, const sim_req_t *req, const char *endpoint, int status);

/* ---------- limits.c ---------- */

typedef enum {
    SIM_EP_OTHER = 0,
    SIM_EP_USER_WRITE,      /* PUT /users/{id}, POST /users/create_or_update */
    SIM_EP_INCREMENTAL,
    SIM_EP_JOB              /* a bulk endpoint that queues a job */
} sim_ep_class_t;

/* Account budget: returns 0 when allowed, or 429 (resp filled). Adds the rate headers. */
int sim_limit_account(sim_account_t *acct, sim_resp_t *resp, int64_t now_ms);
/* Per-endpoint limits; target may be NULL. Returns 0 or 429 (resp filled). */
int sim_limit_endpoint(sim_account_t *acct, sim_ep_class_t cls, sim_user_t *target,
                       sim_resp_t *resp, int64_t now_ms);
void sim_limit_429(const sim_account_t *acct, sim_resp_t *resp, int64_t retry_after_s);

/* ---------- api.c ---------- */

/* Handles a request to the Zendesk API (lock held). Returns the endpoint label. */
const char *sim_api_handle(sim_account_t *acct, sim_req_t *req, sim_resp_t *resp, int64_t now_ms);
/* Fault decision before the API runs (lock held). Returns true when resp is final. */
bool sim_faults_apply(sim_account_t *acct, sim_req_t *req, sim_resp_t *resp);

/* ---------- control.c ---------- */

void sim_control_handle(sim_req_t *req, sim_resp_t *resp);

/* ---------- server.c ---------- */

/* Starts serving on host:port (port 0 = any). Returns 0, or -1 with errstr. */
int sim_server_start(const char *host, int port, int threads, char *errstr, size_t errlen);
int sim_server_port(void);
void sim_server_stop(void);

#endif

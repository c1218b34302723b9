/* One HTTP request to a tenant's Zendesk account, prepared for curl's multi
 * interface: the URL comes only from the configured base URL and subdomain
 * plus a path the worker builds itself, never from event data beyond
 * escaped identifiers. The response body (capped) and the headers the
 * worker acts on are captured as they arrive. */
#ifndef ZW_ZENDESK_H
#define ZW_ZENDESK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "zw/config.h"

#define ZW_HTTP_BODY_MAX (8 * 1024 * 1024)

typedef enum {
    ZW_ENDPOINT_READ = 0,   /* lookups */
    ZW_ENDPOINT_WRITE = 1,  /* single-user writes: create, create_or_update, update */
    ZW_ENDPOINT_DELETE = 2, /* deletes */
    ZW_ENDPOINT_OAUTH = 3,  /* token grants (not counted against the API budget) */
    ZW_ENDPOINT_BULK = 4,   /* bulk jobs (*_many) and their job statuses */
} zw_endpoint_class_t;

typedef struct zw_http_s zw_http_t;

/* Called once the transfer has finished, with status and curl_code set and
 * the easy handle out of the multi handle. req is lent for the call: the
 * loop (or the frame around the call) destroys it afterwards. */
typedef void (*zw_http_done_fn)(zw_http_t *req, void *arg);

struct zw_http_s {
    CURL *easy;
    struct curl_slist *headers;
    struct curl_slist *connect_to; /* CURLOPT_CONNECT_TO keeps a pointer to it */
    char *url;
    char *body;          /* request body, owned; NULL for none */
    char method[8];
    zw_endpoint_class_t endpoint;
    /* Response. */
    char *response;      /* NUL-terminated, owned */
    size_t response_len;
    bool response_truncated;
    long status;         /* 0 until a status line arrives */
    int curl_code;       /* CURLcode of the finished transfer */
    char request_id[80]; /* X-Zendesk-Request-Id */
    char retry_after[80];
    long rl_limit, rl_remaining, rl_reset; /* -1 when absent */
    /* zendesk-ratelimit-inflight-jobs: total=N; remaining=N; resets=S (-1 when absent) */
    long jobs_total, jobs_remaining, jobs_reset;
    /* zendesk-ratelimit-create-update-user: the target person's writes left this minute */
    long user_writes_remaining;
    char errbuf[CURL_ERROR_SIZE];
    /* Who waits for the response (curl's CURLOPT_PRIVATE pattern): the
     * request routes itself, so the loop knows no kind of work. */
    zw_http_done_fn on_done;
    void *done_arg;      /* lent */
    /* A frame around on_done (tenant.c's: hold pumping, count the answer,
     * observe its rate-limit headers). When set, the loop calls it instead;
     * it calls on_done and owns req. */
    zw_http_done_fn frame;
    void *frame_arg;     /* lent */
    const char *metric_endpoint; /* static; the metrics' endpoint label, NULL: by method */
    struct zw_http_s *loop_prev, *loop_next; /* the loop's in-flight list */
};

/* Shared per-process settings for every request. */
typedef struct zw_http_settings_s {
    const char *base_url;   /* with {subdomain} */
    const char *connect_to; /* "" or host:port */
    const char *ca_file;    /* "" or a path */
    long timeout_ms;
    const char *user_agent;
} zw_http_settings_t;

/* Prepares a request: method ("GET", "POST", "PUT", "DELETE"), a path
 * beginning with '/', an optional JSON body (copied), and an Authorization
 * header value (copied; NULL for none). Returns a new request (free with
 * zw_http_destroy) or NULL with a reason in errstr. */
zw_http_t *zw_http_new(const zw_http_settings_t *settings, const char *subdomain,
                       const char *method, const char *path, const char *json_body,
                       const char *authorization, zw_endpoint_class_t endpoint, char *errstr,
                       size_t errstr_size);

/* Sets who gets req when it finishes (the loop calls fn(req, arg)). */
void zw_http_on_done(zw_http_t *req, zw_http_done_fn fn, void *arg);

/* The metrics' endpoint label of req: metric_endpoint when set, else by
 * endpoint class and method ("oauth", "bulk", "write", "delete", "read"). */
const char *zw_http_metric_endpoint(const zw_http_t *req);

/* How long the transfer took, in seconds. */
double zw_http_seconds(const zw_http_t *req);

/* Frees a request; the easy handle must already be out of any multi handle.
 * Accepts NULL. */
void zw_http_destroy(zw_http_t *req);

/* Frees the easy handles kept for reuse (at exit, before
 * curl_global_cleanup). */
void zw_http_pool_drain(void);

/* Parses the response body as JSON. Returns a new reference or NULL. */
json_object *zw_http_json(const zw_http_t *req);

/* Takes one response header line of len bytes (as curl hands it, CRLF
 * included or not) into req: request id, Retry-After, the rate-limit
 * headers; a status line resets them. Returns len. (Curl's header callback;
 * public so the fuzz targets reach it without a transfer.) */
size_t zw_http_header_line(zw_http_t *req, const char *line, size_t len);

/* The Zendesk error code of an error body ("RecordInvalid", "DuplicateValue"
 * from details when present, ...), copied into out; "" when none. */
void zw_http_error_code(const zw_http_t *req, char *out, size_t out_size);

/* "Basic base64(email/token:TOKEN)" for an API token; returns a new string. */
char *zw_zendesk_basic_auth(const char *email, const char *token);

/* An endpoint limit header's value ("total=30; remaining=29; resets=60", as in
 * zendesk-ratelimit-inflight-jobs): the three numbers, -1 where absent or invalid. */
void zw_zendesk_parse_endpoint_limit(const char *value, long *total, long *remaining,
                                     long *resets);

/* curl_easy_escape without a handle; returns a new string. */
char *zw_zendesk_escape(const char *s);

#endif

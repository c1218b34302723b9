/* Zendesk HTTP requests: URL building from configuration only, auth header,
 * capped response capture and the rate-limit headers Zendesk sends. */
#include "zw/zendesk.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Finished easy handles kept for reuse: curl_easy_init() and the first
 * setopt calls cost more than a reset. Only the loop's thread makes and
 * frees requests, so the pool needs no lock. */
#define EASY_POOL_MAX 1024
static CURL *easy_pool[EASY_POOL_MAX];
static size_t easy_pool_len;

static CURL *easy_get(void)
{
    if (easy_pool_len > 0)
        return easy_pool[--easy_pool_len];
    return curl_easy_init();
}

static void easy_put(CURL *easy)
{
    if (easy_pool_len < EASY_POOL_MAX) {
        curl_easy_reset(easy);
        easy_pool[easy_pool_len++] = easy;
    } else {
        curl_easy_cleanup(easy);
    }
}

void zw_http_pool_drain(void)
{
    while (easy_pool_len > 0)
        curl_easy_cleanup(easy_pool[--easy_pool_len]);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    zw_http_t *req = userp;
    size_t n = size * nmemb, room;
    char *grown;

    if (req->response_len >= ZW_HTTP_BODY_MAX) {
        req->response_truncated = true;
        return n; /* keep reading, drop the rest: the status still counts */
    }
    room = ZW_HTTP_BODY_MAX - req->response_len;
    if (n > room) {
        req->response_truncated = true;
        n = room;
    }
    grown = realloc(req->response, req->response_len + n + 1);
    if (!grown)
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    req->response = grown;
    memcpy(req->response + req->response_len, data, n);
    req->response_len += n;
    req->response[req->response_len] = '\0';
    return size * nmemb;
}

/* Copies a header's value (trimmed) into out if name matches. */
static bool header_value(const char *line, size_t len, const char *name, char *out,
                         size_t out_size)
{
    size_t nlen = strlen(name), vlen;
    const char *v, *end = line + len;

    if (len <= nlen || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
        return false;
    v = line + nlen + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    vlen = (size_t)(end - v);
    if (vlen >= out_size)
        vlen = out_size - 1;
    memcpy(out, v, vlen);
    out[vlen] = '\0';
    return true;
}

static long parse_long(const char *s)
{
    char *end;
    long v;

    if (!*s)
        return -1;
    v = strtol(s, &end, 10);
    if (end == s || v < 0)
        return -1;
    return v;
}

void zw_zendesk_parse_endpoint_limit(const char *v, long *total, long *remaining, long *resets)
{
    static const char *const names[] = {"total=", "remaining=", "resets="};
    long *slots[] = {total, remaining, resets};

    for (size_t i = 0; i < 3; i++) {
        const char *at = strstr(v, names[i]);
        /* "remaining=" must not be found inside another name. */
        while (at && at != v && at[-1] != ' ' && at[-1] != ';')
            at = strstr(at + 1, names[i]);
        *slots[i] = at ? parse_long(at + strlen(names[i])) : -1;
    }
}

static size_t on_header(char *line, size_t size, size_t nitems, void *userp)
{
    return zw_http_header_line(userp, line, size * nitems);
}

size_t zw_http_header_line(zw_http_t *req, const char *line, size_t len)
{
    char value[80];

    /* A new status line (after a 100 Continue or a redirect) resets what an
     * earlier response said. */
    if (len > 5 && strncmp(line, "HTTP/", 5) == 0) {
        req->rl_limit = req->rl_remaining = req->rl_reset = -1;
        req->jobs_total = req->jobs_remaining = req->jobs_reset = -1;
        req->user_writes_remaining = -1;
        req->retry_after[0] = '\0';
        return len;
    }
    if (header_value(line, len, "x-zendesk-request-id", req->request_id,
                     sizeof(req->request_id)))
        return len;
    if (header_value(line, len, "retry-after", req->retry_after, sizeof(req->retry_after)))
        return len;
    if (header_value(line, len, "x-rate-limit-remaining", value, sizeof(value)) ||
        header_value(line, len, "ratelimit-remaining", value, sizeof(value))) {
        long v = parse_long(value);
        if (v >= 0 && (req->rl_remaining < 0 || v < req->rl_remaining))
            req->rl_remaining = v;
        return len;
    }
    if (header_value(line, len, "x-rate-limit", value, sizeof(value)) ||
        header_value(line, len, "ratelimit-limit", value, sizeof(value))) {
        long v = parse_long(value);
        if (v >= 0)
            req->rl_limit = v;
        return len;
    }
    if (header_value(line, len, "ratelimit-reset", value, sizeof(value))) {
        req->rl_reset = parse_long(value);
        return len;
    }
    if (header_value(line, len, "zendesk-ratelimit-inflight-jobs", value, sizeof(value))) {
        zw_zendesk_parse_endpoint_limit(value, &req->jobs_total, &req->jobs_remaining,
                                        &req->jobs_reset);
        return len;
    }
    if (header_value(line, len, "zendesk-ratelimit-create-update-user", value, sizeof(value))) {
        long total, resets;
        zw_zendesk_parse_endpoint_limit(value, &total, &req->user_writes_remaining, &resets);
    }
    return len;
}

void zw_http_on_done(zw_http_t *req, zw_http_done_fn fn, void *arg)
{
    req->on_done = fn;
    req->done_arg = arg;
}

const char *zw_http_metric_endpoint(const zw_http_t *req)
{
    /* As operators read a request log: by method, not by the rate bucket
     * the request was under. */
    if (req->metric_endpoint)
        return req->metric_endpoint;
    if (req->endpoint == ZW_ENDPOINT_OAUTH)
        return "oauth";
    if (req->endpoint == ZW_ENDPOINT_BULK)
        return "bulk";
    if (strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0)
        return "write";
    if (strcmp(req->method, "DELETE") == 0)
        return "delete";
    return "read";
}

double zw_http_seconds(const zw_http_t *req)
{
    curl_off_t us = 0;

    if (req->easy)
        curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME_T, &us);
    return (double)us / 1e6;
}

/* base_url with {subdomain} replaced, then path. */
static char *build_url(const char *base, const char *subdomain, const char *path)
{
    const char *mark = strstr(base, "{subdomain}");
    size_t n;
    char *url;

    if (!mark)
        return NULL;
    n = strlen(base) - strlen("{subdomain}") + strlen(subdomain) + strlen(path) + 1;
    url = malloc(n);
    if (!url)
        return NULL;
    snprintf(url, n, "%.*s%s%s%s", (int)(mark - base), base, subdomain,
             mark + strlen("{subdomain}"), path);
    return url;
}

zw_http_t *zw_http_new(const zw_http_settings_t *s, const char *subdomain, const char *method,
                       const char *path, const char *json_body, const char *authorization,
                       zw_endpoint_class_t endpoint, char *errstr, size_t errstr_size)
{
    zw_http_t *req = calloc(1, sizeof(*req));
    struct curl_slist *connect_to = NULL;

    if (!req)
        goto oom;
    req->rl_limit = req->rl_remaining = req->rl_reset = -1;
    req->jobs_total = req->jobs_remaining = req->jobs_reset = -1;
    req->user_writes_remaining = -1;
    req->endpoint = endpoint;
    snprintf(req->method, sizeof(req->method), "%s", method);
    req->url = build_url(s->base_url, subdomain, path);
    req->easy = easy_get();
    if (!req->url || !req->easy)
        goto oom;
    if (json_body) {
        req->body = strdup(json_body);
        if (!req->body)
            goto oom;
    }
    req->headers = curl_slist_append(req->headers, "Accept: application/json");
    if (json_body)
        req->headers = curl_slist_append(req->headers, "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip for small JSON bodies. */
    req->headers = curl_slist_append(req->headers, "Expect:");
    if (authorization) {
        size_t n = strlen(authorization) + 32;
        char *h = malloc(n);
        if (!h)
            goto oom;
        snprintf(h, n, "Authorization: %s", authorization);
        req->headers = curl_slist_append(req->headers, h);
        /* The header holds a secret: wipe our copy (curl keeps its own). */
        memset(h, 0, n);
        free(h);
    }
    if (!req->headers)
        goto oom;

    curl_easy_setopt(req->easy, CURLOPT_URL, req->url);
    curl_easy_setopt(req->easy, CURLOPT_HTTPHEADER, req->headers);
    curl_easy_setopt(req->easy, CURLOPT_PRIVATE, req);
    curl_easy_setopt(req->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(req->easy, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(req->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(req->easy, CURLOPT_HEADERDATA, req);
    curl_easy_setopt(req->easy, CURLOPT_ERRORBUFFER, req->errbuf);
    curl_easy_setopt(req->easy, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(req->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     s->timeout_ms < 10000 ? s->timeout_ms : 10000L);
    curl_easy_setopt(req->easy, CURLOPT_NOSIGNAL, 1L);
    /* Never follow redirects: a redirect could carry credentials elsewhere. */
    curl_easy_setopt(req->easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(req->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(req->easy, CURLOPT_USERAGENT, s->user_agent);
    curl_easy_setopt(req->easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(req->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    if (s->ca_file && *s->ca_file)
        curl_easy_setopt(req->easy, CURLOPT_CAINFO, s->ca_file);
    if (s->connect_to && *s->connect_to) {
        char entry[600];
        /* "::host:port": every host and port of this request goes there;
         * Host header and TLS name stay those of the URL. */
        snprintf(entry, sizeof(entry), "::%s", s->connect_to);
        connect_to = curl_slist_append(NULL, entry);
        if (!connect_to)
            goto oom;
        curl_easy_setopt(req->easy, CURLOPT_CONNECT_TO, connect_to);
    }
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(req->easy, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(req->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(req->easy, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    } else {
        curl_easy_setopt(req->easy, CURLOPT_CUSTOMREQUEST, method);
        if (req->body)
            curl_easy_setopt(req->easy, CURLOPT_POSTFIELDS, req->body);
    }
    req->connect_to = connect_to;
    return req;

oom:
    snprintf(errstr, errstr_size, "out of memory preparing a Zendesk request");
    curl_slist_free_all(connect_to);
    zw_http_destroy(req);
    return NULL;
}

void zw_http_destroy(zw_http_t *req)
{
    if (!req)
        return;
    if (req->easy)
        easy_put(req->easy);
    curl_slist_free_all(req->headers);
    curl_slist_free_all(req->connect_to);
    free(req->url);
    free(req->body);
    free(req->response);
    free(req);
}

json_object *zw_http_json(const zw_http_t *req)
{
    if (!req->response || req->response_truncated)
        return NULL;
    return json_tokener_parse(req->response);
}

void zw_http_error_code(const zw_http_t *req, char *out, size_t out_size)
{
    json_object *root = zw_http_json(req), *err, *details;

    out[0] = '\0';
    if (!root || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return;
    }
    /* details: { field: [ { "error": "DuplicateValue", ... } ] } names the
     * precise cause; the top-level error is the general one. */
    if (json_object_object_get_ex(root, "details", &details) &&
        json_object_is_type(details, json_type_object)) {
        json_object_object_foreach(details, field, list)
        {
            (void)field;
            if (json_object_is_type(list, json_type_array) &&
                json_object_array_length(list) > 0) {
                json_object *first = json_object_array_get_idx(list, 0), *code;
                if (json_object_object_get_ex(first, "error", &code) &&
                    json_object_is_type(code, json_type_string)) {
                    snprintf(out, out_size, "%s", json_object_get_string(code));
                    json_object_put(root);
                    return;
                }
            }
        }
    }
    if (json_object_object_get_ex(root, "error", &err)) {
        if (json_object_is_type(err, json_type_string))
            snprintf(out, out_size, "%s", json_object_get_string(err));
        else if (json_object_is_type(err, json_type_object)) {
            json_object *title;
            if (json_object_object_get_ex(err, "title", &title))
                snprintf(out, out_size, "%s", json_object_get_string(title));
        }
    }
    json_object_put(root);
}

char *zw_zendesk_basic_auth(const char *email, const char *token)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(email) + strlen("/token:") + strlen(token);
    char *plain = malloc(n + 1), *out;
    size_t o = 0;

    if (!plain)
        return NULL;
    snprintf(plain, n + 1, "%s/token:%s", email, token);
    out = malloc(6 + (n + 2) / 3 * 4 + 1);
    if (!out) {
        free(plain);
        return NULL;
    }
    memcpy(out, "Basic ", 6);
    o = 6;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)(unsigned char)plain[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)(unsigned char)plain[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)plain[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    memset(plain, 0, n);
    free(plain);
    return out;
}

char *zw_zendesk_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0), *copy;

    if (!e)
        return NULL;
    copy = strdup(e);
    curl_free(e);
    return copy;
}

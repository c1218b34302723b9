/* A tenant's credentials and the OAuth token lifecycle: one grant at a time,
 * renewed at 80% of the token's life while the old token still works,
 * retried with backoff when Zendesk is unavailable, refused credentials
 * failing what waits (through the owner's hook) and tried again later. */
#include "zw/auth.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "zw/log.h"
#include "zw/retry.h"
#include "zw/zendesk.h"

#include "env.h"

#define RETRY_REFUSED_MS 30000 /* a refused grant is tried again after this */
#define RETRY_START_MS 1000    /* a grant that could not even start */
#define RETRY_RENEW_MS 5000    /* a renewal that failed while the token works */
#define MIN_RENEW_MS 5000

typedef enum { TOKEN_NONE = 0, TOKEN_FETCHING, TOKEN_READY, TOKEN_FAILED } token_state_t;

struct zw_auth_s {
    zw_env_t *env;
    const zw_tenant_config_t *cfg;
    zw_auth_hooks_t hooks;
    char *authorization; /* a secret */
    token_state_t state;
    bool renewing;       /* a grant in flight while the old token works */
    bool refused;        /* the last grant was refused */
    unsigned gen;
    uint64_t timer;
    int failures;
};

static void set_authorization(zw_auth_t *a, char *value)
{
    if (a->authorization) {
        memset(a->authorization, 0, strlen(a->authorization));
        free(a->authorization);
    }
    a->authorization = value;
}

zw_auth_t *zw_auth_new(zw_env_t *env, const zw_tenant_config_t *cfg,
                       const zw_auth_hooks_t *hooks)
{
    zw_auth_t *a = calloc(1, sizeof(*a));

    if (!a)
        return NULL;
    a->env = env;
    a->cfg = cfg;
    a->hooks = *hooks;
    if (cfg->auth_type == ZW_AUTH_API_TOKEN) {
        a->authorization = zw_zendesk_basic_auth(cfg->email, cfg->token);
        if (!a->authorization) {
            free(a);
            return NULL;
        }
        a->state = TOKEN_READY;
    }
    return a;
}

void zw_auth_destroy(zw_auth_t *a)
{
    if (!a)
        return;
    if (a->env->loop)
        zw_env_cancel(a->env, &a->timer);
    set_authorization(a, NULL);
    free(a);
}

const char *zw_auth_header(const zw_auth_t *a)
{
    return a->authorization;
}

unsigned zw_auth_gen(const zw_auth_t *a)
{
    return a->gen;
}

bool zw_auth_is_oauth(const zw_auth_t *a)
{
    return a->cfg->auth_type == ZW_AUTH_OAUTH_CLIENT_CREDENTIALS;
}

static void on_timer(void *arg)
{
    zw_auth_t *a = arg;

    a->timer = 0;
    if (a->state == TOKEN_FAILED)
        a->state = TOKEN_NONE;
    if (a->state == TOKEN_READY)
        a->renewing = true;
    zw_auth_fetch(a);
}

static void retry_in(zw_auth_t *a, int64_t delay_ms)
{
    zw_env_cancel(a->env, &a->timer);
    a->timer = zw_env_timer(a->env, delay_ms, on_timer, a);
}

zw_cred_t zw_auth_check(zw_auth_t *a)
{
    if (a->state == TOKEN_READY)
        return ZW_CRED_READY;
    if (a->state == TOKEN_NONE)
        zw_auth_fetch(a);
    else if (a->state == TOKEN_FAILED && a->refused)
        return ZW_CRED_REFUSED; /* refused, not delayed: fail until the next grant */
    return ZW_CRED_WAIT;
}

bool zw_auth_rejected(zw_auth_t *a, unsigned gen)
{
    if (!zw_auth_is_oauth(a) || gen != a->gen || a->state != TOKEN_READY)
        return false;
    a->state = TOKEN_NONE; /* expired or revoked: get a new one */
    ZW_LOG(ZW_LOG_INFO, "access token refused, renewing", ZW_LF_STR("tenant", a->cfg->subdomain));
    return true;
}

/* The grant answered with a token: it replaces the old one. */
static void token_obtained(zw_auth_t *a, const char *token, int64_t expires_in)
{
    size_t n = strlen(token) + 8;
    char *value = malloc(n);
    int64_t renew_ms;

    if (!value)
        return;
    snprintf(value, n, "Bearer %s", token);
    set_authorization(a, value);
    a->state = TOKEN_READY;
    a->refused = false;
    a->renewing = false;
    a->gen++;
    a->failures = 0;
    /* Renew at 80% of the lifetime: never use a token about to expire. */
    if (expires_in <= 0)
        expires_in = 3600;
    renew_ms = expires_in * 800 > MIN_RENEW_MS ? expires_in * 800 : MIN_RENEW_MS;
    retry_in(a, renew_ms);
    ZW_LOG(ZW_LOG_INFO, "OAuth access token obtained", ZW_LF_STR("tenant", a->cfg->subdomain),
           ZW_LF_INT("expires_in_s", expires_in));
}

/* The grant failed: retry, or (refused credentials) fail what waits. */
static void token_failed(zw_auth_t *a, const zw_http_t *req, zw_class_t cls)
{
    char code[64];

    a->failures++;
    if (a->renewing) {
        /* The current token still works: try again later. */
        a->renewing = false;
        retry_in(a, RETRY_RENEW_MS);
        return;
    }
    if (cls == ZW_CLASS_TRANSIENT || cls == ZW_CLASS_RATE_LIMITED) {
        a->state = TOKEN_FAILED;
        retry_in(a, zw_env_backoff_ms(a->env, a->failures));
        ZW_LOG(ZW_LOG_WARN, "OAuth token request failed, retrying",
               ZW_LF_STR("tenant", a->cfg->subdomain), ZW_LF_INT("http_status", req->status));
        return;
    }
    zw_http_error_code(req, code, sizeof(code));
    ZW_LOG(ZW_LOG_ERROR, "OAuth token refused", ZW_LF_STR("tenant", a->cfg->subdomain),
           ZW_LF_INT("http_status", req->status), ZW_LF_STR("code", code));
    a->state = TOKEN_FAILED;
    a->refused = true;
    retry_in(a, RETRY_REFUSED_MS);
    a->hooks.refused(a->hooks.arg, req->status, code[0] ? code : "invalid_grant");
}

static void grant_done(zw_http_t *req, void *arg)
{
    zw_auth_t *a = arg;
    zw_class_t cls = zw_retry_classify(req->status, req->curl_code);
    json_object *root = NULL, *v;
    const char *token = NULL;
    int64_t expires_in = 0;

    a->hooks.hold(a->hooks.arg);
    zw_metrics_http_request(a->env->metrics, a->cfg->subdomain, "oauth", req->status,
                            zw_http_seconds(req));
    if (cls == ZW_CLASS_OK && (root = zw_http_json(req)) &&
        json_object_object_get_ex(root, "access_token", &v) &&
        json_object_is_type(v, json_type_string)) {
        token = json_object_get_string(v);
        if (json_object_object_get_ex(root, "expires_in", &v))
            expires_in = json_object_get_int64(v);
    }
    if (token && *token)
        token_obtained(a, token, expires_in);
    else
        token_failed(a, req, cls);
    json_object_put(root);
    a->hooks.release(a->hooks.arg);
}

void zw_auth_fetch(zw_auth_t *a)
{
    json_object *body;
    char errstr[256];
    zw_http_t *req;

    if (!zw_auth_is_oauth(a) || a->state == TOKEN_FETCHING)
        return;
    if (a->state != TOKEN_READY)
        a->state = TOKEN_FETCHING;
    body = json_object_new_object();
    json_object_object_add(body, "grant_type", json_object_new_string("client_credentials"));
    json_object_object_add(body, "client_id", json_object_new_string(a->cfg->client_id));
    json_object_object_add(body, "client_secret", json_object_new_string(a->cfg->client_secret));
    json_object_object_add(body, "scope", json_object_new_string(a->cfg->scope));
    req = zw_http_new(&a->env->http, a->cfg->subdomain, "POST", "/oauth/tokens",
                      json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE),
                      NULL, ZW_ENDPOINT_OAUTH, errstr, sizeof(errstr));
    /* The serialised body held the secret; json-c frees it with the object. */
    json_object_put(body);
    if (req)
        zw_http_on_done(req, grant_done, a);
    if (!req || zw_loop_http_start(a->env->loop, req) != 0) {
        zw_http_destroy(req);
        if (a->state == TOKEN_FETCHING)
            a->state = TOKEN_FAILED;
        retry_in(a, RETRY_START_MS);
        return;
    }
    ZW_LOG(ZW_LOG_DEBUG, "requesting an OAuth access token",
           ZW_LF_STR("tenant", a->cfg->subdomain));
}

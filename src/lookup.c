/* Lookups of many events in one show_many request: one request instead of
 * one per event, which matters most when the account budget is what limits
 * throughput. Each event then takes the answer as if it were its own. */
#include "lookup.h"

#include <stdlib.h>
#include <string.h>

#include "zw/users.h"

#include "provision.h"

#define LOOKUP_BATCH_MAX 100
#define LOOKUP_URL_MAX 6000

typedef struct batch_s {
    zw_lookups_t *ls;
    size_t n;
    zw_job_t *jobs[LOOKUP_BATCH_MAX];
    struct batch_s *prev, *next;
} batch_t;

struct zw_lookups_s {
    zw_env_t *env;
    batch_t *batches; /* in flight */
};

zw_lookups_t *zw_lookups_new(zw_env_t *env)
{
    zw_lookups_t *ls = calloc(1, sizeof(*ls));

    if (ls)
        ls->env = env;
    return ls;
}

void zw_lookups_destroy(zw_lookups_t *ls)
{
    if (!ls)
        return;
    while (ls->batches) {
        batch_t *b = ls->batches;
        ls->batches = b->next;
        free(b);
    }
    free(ls);
}

bool zw_lookup_is_plain(const zw_job_t *job)
{
    return job->ops == &zw_provision_ops && job->state == ZW_JOB_LOOKUP &&
           !strchr(job->prov.ev.person.external_id, ',');
}

static void batch_done(zw_http_t *req, void *arg)
{
    batch_t *b = arg;
    zw_lookups_t *ls = b->ls;
    json_object *root = NULL;
    bool seen_429 = false;

    /* Each event takes the answer as if the request were its own; a
     * failure is classified and retried per event. */
    if (zw_retry_classify(req->status, req->curl_code) == ZW_CLASS_OK)
        root = zw_http_json(req);
    for (size_t i = 0; i < b->n; i++)
        zw_provision_answer(b->jobs[i], req, root, &seen_429);
    json_object_put(root);
    if (b->prev)
        b->prev->next = b->next;
    else
        ls->batches = b->next;
    if (b->next)
        b->next->prev = b->prev;
    free(b);
}

/* Appends ",id" to the growing URL; false when out of memory. */
static bool append_id(char **url, size_t *len, size_t *cap, const char *esc, bool first)
{
    size_t need = *len + strlen(esc) + 2;

    if (need > *cap) {
        size_t ncap = need * 2;
        char *n = realloc(*url, ncap);
        if (!n)
            return false;
        *url = n;
        *cap = ncap;
    }
    *len += (size_t)snprintf(*url + *len, *cap - *len, "%s%s", first ? "" : ",", esc);
    return true;
}

/* Takes the plain lookups of t's read lane (up to 100, the URL within its
 * cap) into b and builds their show_many path. NULL when out of memory. */
static char *take_lookups(zw_tenant_t *t, batch_t *b)
{
    static const char prefix[] = "/api/v2/users/show_many?external_ids=";
    size_t cap = LOOKUP_URL_MAX + 300, len = sizeof(prefix) - 1;
    char *url = malloc(cap);
    zw_lane_item_t *item, *prev = NULL, *next;

    if (!url)
        return NULL;
    memcpy(url, prefix, len + 1);
    for (item = zw_tenant_lane_head(t, ZW_LANE_READ); item && b->n < LOOKUP_BATCH_MAX;
         item = next) {
        zw_job_t *job = ZW_JOB_OF(item, lane);
        char *esc;

        next = item->next;
        if (!zw_lookup_is_plain(job)) {
            prev = item;
            continue;
        }
        esc = zw_zendesk_escape(job->prov.ev.person.external_id);
        if (!esc || (b->n > 0 && len + strlen(esc) + 1 > LOOKUP_URL_MAX) ||
            !append_id(&url, &len, &cap, esc, b->n == 0)) {
            free(esc);
            break;
        }
        free(esc);
        zw_tenant_unlink(t, item, prev);
        b->jobs[b->n++] = job;
    }
    return url;
}

void zw_lookup_send(zw_lookups_t *ls, zw_tenant_t *t)
{
    zw_lane_item_t *head = zw_tenant_lane_head(t, ZW_LANE_READ), *next;
    zw_auth_t *auth = zw_tenant_auth(t);
    char *url, errstr[256];
    zw_http_t *req;
    batch_t *b;

    /* Only one lookup waiting: the single path. */
    for (next = head->next; next && !zw_lookup_is_plain(ZW_JOB_OF(next, lane)); next = next->next)
        ;
    if (!next || !(b = calloc(1, sizeof(*b)))) {
        zw_job_t *job = ZW_JOB_OF(zw_tenant_pop(t, ZW_LANE_READ), lane);
        job->ops->send(job);
        return;
    }
    b->ls = ls;
    url = take_lookups(t, b);
    req = url ? zw_http_new(&ls->env->http, zw_tenant_name(t), "GET", url, NULL,
                            zw_auth_header(auth), ZW_ENDPOINT_READ, errstr, sizeof(errstr))
              : NULL;
    free(url);
    req = zw_tenant_send(t, req, batch_done, b);
    if (!req) {
        for (size_t i = 0; i < b->n; i++)
            zw_job_fail(b->jobs[i], "transient_exhausted", 0, "LocalError",
                        "cannot start a Zendesk request");
        free(b);
        return;
    }
    b->next = ls->batches;
    if (ls->batches)
        ls->batches->prev = b;
    ls->batches = b;
    for (size_t i = 0; i < b->n; i++) {
        b->jobs[i]->http = req;
        b->jobs[i]->token_gen = zw_auth_gen(auth);
        if (b->jobs[i]->attempts == 0)
            b->jobs[i]->attempts = 1;
    }
}

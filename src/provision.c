/* One provisioning event, step by step: LOOKUP (the person's user, alone or
 * in a batch, lookup.c) -> plan (plan.c) -> WRITE (a single call here, or a
 * bulk job, bulk.c) -> GROUPS_LIST -> GROUPS_APPLY -> the result (job.c).
 * users.c knows each call's shape; this file only decides what comes next. */
#include "provision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zw/log.h"
#include "zw/users.h"

static void start(zw_job_t *job);
static void submit(zw_job_t *job);
static void send_next(zw_job_t *job);
static void describe(const zw_job_t *job, zw_result_t *r);
static const char *type_label(const zw_job_t *job);
static void release(zw_job_t *job);

const zw_job_ops_t zw_provision_ops = {start, submit, send_next, NULL, describe, type_label, release};

zw_event_error_t zw_provision_parse(zw_job_t *job, const void *data, size_t len, char **event_id,
                                    char *errstr, size_t errstr_size)
{
    return zw_event_parse(data, len, (size_t)job->js->env->cfg->worker.max_event_bytes,
                          &job->prov.ev, event_id, errstr, errstr_size);
}

char *zw_provision_queue_name(const zw_job_t *job)
{
    const char *topic = zw_part_topic(job->part);
    const zw_event_t *ev = &job->prov.ev;
    size_t n = strlen(topic) + (job->key ? job->key_len : 0) + strlen(ev->tenant) +
               strlen(ev->person.external_id) + 32;
    char *name = malloc(n);

    if (!name)
        return NULL;
    /* Per partition, as Kafka's ordering is. */
    if (job->key)
        snprintf(name, n, "%s\x1f%d\x1f%s", topic, (int)zw_part_partition(job->part), job->key);
    else
        snprintf(name, n, "%s\x1f%d\x1f%s/%s", topic, (int)zw_part_partition(job->part),
                 ev->tenant, ev->person.external_id);
    return name;
}

bool zw_provision_is_dry(const zw_job_t *job)
{
    return job->prov.ev.dry_run || job->js->env->cfg->worker.dry_run;
}

static void describe(const zw_job_t *job, zw_result_t *r)
{
    const zw_event_t *ev = &job->prov.ev;

    r->tenant = ev->tenant;
    r->type = ev->tenant ? zw_event_type_name(ev->type) : NULL;
    r->dry_run = zw_provision_is_dry(job);
}

static const char *type_label(const zw_job_t *job)
{
    return job->prov.ev.tenant ? zw_event_type_name(job->prov.ev.type) : "invalid";
}

/* Forgets a memberships listing, to start one from its first page. */
static void groups_reset(zw_job_t *job)
{
    json_object_put(job->prov.memberships);
    job->prov.memberships = NULL;
    free(job->prov.groups_after);
    job->prov.groups_after = NULL;
}

static void release(zw_job_t *job)
{
    groups_reset(job);
    free(job->prov.group_ops);
    zw_event_cleanup(&job->prov.ev);
    zw_plan_cleanup(&job->prov.plan);
    json_object_put(job->prov.current);
}

/* ---- sending ---- */

static void start(zw_job_t *job)
{
    zw_job_set_state(job, ZW_JOB_LOOKUP);
    submit(job);
}

static void submit(zw_job_t *job)
{
    int lane = ZW_LANE_READ; /* lookups; membership calls count against the account budget only */

    zw_job_set_looking(job, job->state == ZW_JOB_LOOKUP);
    if (job->state == ZW_JOB_WRITE)
        lane = job->prov.plan.step == ZW_STEP_DELETE ? ZW_LANE_READ : ZW_LANE_WRITE;
    zw_tenant_push(job->tenant, &job->lane, lane);
}

static void answer_single(zw_http_t *req, void *arg)
{
    zw_provision_answer(arg, req, NULL, NULL);
}

static void send_next(zw_job_t *job)
{
    zw_env_t *env = job->js->env;
    zw_auth_t *auth = zw_tenant_auth(job->tenant);
    zw_call_t call;
    char *path = NULL, errstr[256];
    zw_http_t *req;

    if (job->state == ZW_JOB_LOOKUP) {
        call.method = "GET";
        call.endpoint = ZW_ENDPOINT_READ;
        call.body = NULL;
        path = zw_users_lookup_path(job->prov.ev.person.external_id);
    } else if (job->state == ZW_JOB_GROUPS_LIST) {
        call.method = "GET";
        call.endpoint = ZW_ENDPOINT_READ;
        call.body = NULL;
        path = zw_users_memberships_path(job->user_id, job->prov.groups_after);
    } else if (job->state == ZW_JOB_GROUPS_APPLY) {
        zw_users_membership_op_call(job->user_id, job->prov.group_ops[job->prov.group_op], &call);
    } else {
        zw_users_write_call(&job->prov.plan, &call);
    }
    req = zw_http_new(&env->http, zw_tenant_name(job->tenant), call.method,
                      path ? path : call.path, call.body, zw_auth_header(auth), call.endpoint,
                      errstr, sizeof(errstr));
    free(path);
    zw_job_send(job, req, answer_single);
}

/* ---- what comes next ---- */

/* The role the person has once the user write is done. */
static const char *person_role(const zw_job_t *job)
{
    json_object *v;

    if (job->prov.ev.person.role)
        return job->prov.ev.person.role;
    if (job->prov.current && json_object_object_get_ex(job->prov.current, "role", &v))
        return json_object_get_string(v);
    return "end-user";
}

/* The user is as the event asks; group memberships follow when the event
 * names them and the person is an agent or admin (Zendesk refuses groups
 * for end-users). */
static void person_done(zw_job_t *job)
{
    const zw_event_t *ev = &job->prov.ev;

    if (!ev->person.has_group_ids || job->user_id <= 0 || ev->type == ZW_EVENT_LEAVER ||
        strcmp(person_role(job), "end-user") == 0 ||
        (zw_provision_is_dry(job) && !job->prov.current)) {
        zw_job_finish(job);
        return;
    }
    zw_job_set_state(job, ZW_JOB_GROUPS_LIST);
    job->failures = 0;
    groups_reset(job);
    submit(job);
}

/* Whether the plan takes a user's agent access away: a leaver (downgrade,
 * suspend or delete), or a mover to end-user or to suspended. */
static bool plan_removes_access(const zw_job_t *job)
{
    const zw_plan_t *plan = &job->prov.plan;
    json_object *body, *user, *v;
    bool removes = false;

    if (plan->step == ZW_STEP_NONE)
        return false;
    if (job->prov.ev.type == ZW_EVENT_LEAVER || plan->step == ZW_STEP_DELETE)
        return true;
    if (plan->step != ZW_STEP_UPDATE || !plan->body || !(body = json_tokener_parse(plan->body)))
        return false;
    if (json_object_object_get_ex(body, "user", &user)) {
        if (json_object_object_get_ex(user, "role", &v) &&
            strcmp(json_object_get_string(v), "end-user") == 0)
            removes = true;
        if (json_object_object_get_ex(user, "suspended", &v) && json_object_get_boolean(v))
            removes = true;
    }
    json_object_put(body);
    return removes;
}

/* A change that would take away the access of the very user the worker
 * acts as locks the worker out of the tenant: refused. Returns whether the
 * job went on (false: failed, or waiting for the identity). */
static bool guard_self(zw_job_t *job)
{
    int self;

    if (!job->prov.current || !plan_removes_access(job))
        return true;
    self = zw_tenant_is_self(job->tenant, job->prov.current);
    if (self == 0)
        return true;
    if (self > 0) {
        zw_job_fail(job, "permanent", 0, "WorkerIdentity",
                    "the event would take away the access of the Zendesk user the worker "
                    "acts as (its API token's e-mail or its OAuth client's user); it would "
                    "lock the worker out of the tenant");
        return false;
    }
    /* Not known yet (GET /users/me under way): look up again a moment
     * later, within the retry deadline. */
    if (zw_job_past_deadline(job, 500)) {
        zw_job_fail(job, "transient_exhausted", 0, "WorkerIdentityUnknown",
                    "the Zendesk user the worker acts as could not be learned "
                    "(GET /api/v2/users/me)");
        return false;
    }
    zw_job_hold_for(job, 500);
    return false;
}

/* The answer of a lookup: plan the write, or end when none is needed. */
static void looked_up(zw_job_t *job, const zw_http_t *req, json_object *answer)
{
    json_object *root = answer ? json_object_get(answer) : zw_http_json(req);
    zw_plan_t *plan = &job->prov.plan;

    if (!zw_users_is_list(root)) {
        /* A 200 that is not a user list: Zendesk misbehaved; taking it for
         * "no such user" would make a leaver a no-op or a joiner a
         * duplicate. Retry as transient. */
        json_object_put(root);
        zw_job_backoff_or_fail(job, req->status, "InvalidResponse",
                               "Zendesk answered the lookup with a body that is not a user list");
        return;
    }
    json_object_put(job->prov.current);
    job->prov.current = zw_users_pick(root, job->prov.ev.person.external_id);
    json_object_put(root);
    zw_plan_cleanup(plan);
    if (zw_plan_decide(&job->prov.ev, zw_tenant_config(job->tenant)->leaver_policy,
                       job->prov.current, plan) != 0) {
        zw_job_fail(job, "permanent", 0, "LocalError", "out of memory planning the change");
        return;
    }
    if (!guard_self(job))
        return;
    zw_job_set_state(job, ZW_JOB_WRITE);
    zw_job_set_looking(job, false);
    job->failures = 0; /* max_attempts counts per Zendesk call */
    job->user_id = plan->user_id;
    if (plan->fail_not_found) {
        job->outcome = "not_found";
        zw_job_fail(job, "permanent", 0, "UserNotFound",
                    "no Zendesk user has this external_id, and the event lacks email and name "
                    "to create one");
        return;
    }
    if (plan->step == ZW_STEP_NONE || zw_provision_is_dry(job)) {
        job->status = zw_provision_is_dry(job) ? "dry_run" : "succeeded";
        job->outcome = plan->step == ZW_STEP_NONE ? plan->outcome : plan->dry_outcome;
        person_done(job);
        return;
    }
    submit(job);
}

void zw_provision_relookup(zw_job_t *job)
{
    zw_job_set_state(job, ZW_JOB_LOOKUP);
}

void zw_provision_written(zw_job_t *job, const zw_write_result_t *wr)
{
    const zw_plan_t *plan = &job->prov.plan;

    if (wr->how == ZW_WRITTEN_FAILED) {
        zw_job_fail(job, "permanent", 0, wr->code, wr->msg);
        return;
    }
    if (wr->how == ZW_WRITTEN_NOT_FOUND) {
        if (plan->step == ZW_STEP_DELETE) {
            /* Gone already: a leaver's goal is met. */
            job->status = "succeeded";
            job->outcome = "not_found";
            zw_job_finish(job);
            return;
        }
        /* The user vanished between lookup and write: look again, after a
         * backoff and only so often (a Zendesk that keeps answering 404 to
         * a user its lookup shows must not loop for ever). */
        if (++job->prov.relookups >= job->js->env->cfg->worker.max_attempts ||
            zw_job_past_deadline(job, 0)) {
            zw_job_fail(job, "transient_exhausted", 404, "RecordNotFound",
                        "the user was found by its lookup but its write kept answering 404");
            return;
        }
        zw_provision_relookup(job);
        zw_job_retry_later(job, zw_env_backoff_ms(job->js->env, job->prov.relookups));
        return;
    }
    job->status = "succeeded";
    job->outcome = plan->outcome;
    if (plan->step == ZW_STEP_CREATE_OR_UPDATE && wr->matched_existing)
        job->outcome = "updated"; /* matched an existing user by e-mail */
    if (plan->step != ZW_STEP_DELETE && wr->user_id > 0)
        job->user_id = wr->user_id;
    person_done(job);
}

static void written_single(zw_job_t *job, const zw_http_t *req, zw_class_t cls)
{
    zw_write_result_t wr = {0};
    json_object *root;

    wr.how = cls == ZW_CLASS_NOT_FOUND ? ZW_WRITTEN_NOT_FOUND : ZW_WRITTEN_OK;
    wr.matched_existing = req->status == 200;
    if (wr.how == ZW_WRITTEN_OK && job->prov.plan.step != ZW_STEP_DELETE) {
        root = zw_http_json(req);
        wr.user_id = zw_users_answer_id(root);
        json_object_put(root);
    }
    zw_provision_written(job, &wr);
}

/* A page of the user's memberships: the next page, or, after the last,
 * the listed memberships compared with the event's group_ids. */
static void groups_listed(zw_job_t *job, const zw_http_t *req)
{
    const zw_person_t *p = &job->prov.ev.person;
    json_object *root = zw_http_json(req);
    const char *after = NULL;
    int rc = zw_users_memberships_page(root, &job->prov.memberships, &after);

    if (rc == 0 && after) {
        char *next = strdup(after);
        json_object_put(root);
        if (!next) {
            zw_job_fail(job, "permanent", 0, "LocalError", "out of memory");
            return;
        }
        free(job->prov.groups_after);
        job->prov.groups_after = next;
        job->failures = 0;
        submit(job); /* the next page */
        return;
    }
    json_object_put(root);
    if (rc != 0) {
        groups_reset(job);
        zw_job_backoff_or_fail(job, req->status, "InvalidResponse",
                               "Zendesk answered a memberships listing that is not one");
        return;
    }
    free(job->prov.group_ops);
    rc = zw_users_group_ops(job->prov.memberships, p->group_ids, p->n_group_ids,
                            &job->prov.group_ops, &job->prov.n_group_ops);
    groups_reset(job);
    if (rc != 0) {
        zw_job_fail(job, "permanent", 0, "LocalError", "out of memory");
        return;
    }
    /* Listed again after an add was refused, and still not a member: the
     * refusal was real (an unknown group, a user who cannot join it). */
    for (size_t i = 0; job->prov.refused_group > 0 && i < job->prov.n_group_ops; i++) {
        if (job->prov.group_ops[i] == job->prov.refused_group) {
            zw_job_fail(job, "permanent", 422, "RecordInvalid",
                        "Zendesk refused to add the user to a group the event names");
            return;
        }
    }
    job->prov.group_op = 0;
    if (job->prov.n_group_ops == 0) {
        zw_job_finish(job);
        return;
    }
    if (strcmp(job->outcome, "unchanged") == 0)
        job->outcome = zw_provision_is_dry(job) ? "would_update" : "updated";
    if (zw_provision_is_dry(job)) {
        zw_job_finish(job);
        return;
    }
    zw_job_set_state(job, ZW_JOB_GROUPS_APPLY);
    submit(job);
}

static void group_op_done(zw_job_t *job)
{
    job->failures = 0;
    if (++job->prov.group_op >= job->prov.n_group_ops) {
        zw_job_finish(job);
        return;
    }
    submit(job);
}

/* A membership call's answer; false when it is for the shared policy. An
 * add refused as invalid is most often one already made (a POST whose
 * answer was lost and that was sent again: "already a member"): list the
 * memberships again, once, and decide from what is there. */
static bool groups_answer(zw_job_t *job, const zw_http_t *req, zw_class_t cls)
{
    if (job->state == ZW_JOB_GROUPS_APPLY && req->status == 422 &&
        job->prov.group_ops[job->prov.group_op] > 0 && !job->prov.groups_relisted) {
        ZW_LOG(ZW_LOG_INFO, "group membership add refused; listing memberships again",
               ZW_LF_STR("tenant", zw_tenant_name(job->tenant)),
               ZW_LF_STR("event_id", job->event_id),
               ZW_LF_INT("group_id", job->prov.group_ops[job->prov.group_op]));
        job->prov.groups_relisted = true;
        job->prov.refused_group = job->prov.group_ops[job->prov.group_op];
        job->failures = 0;
        zw_job_set_state(job, ZW_JOB_GROUPS_LIST);
        groups_reset(job);
        submit(job);
        return true;
    }
    if (cls != ZW_CLASS_OK && cls != ZW_CLASS_NOT_FOUND)
        return false;
    if (job->state == ZW_JOB_GROUPS_LIST && cls == ZW_CLASS_OK)
        groups_listed(job, req);
    else if (job->state == ZW_JOB_GROUPS_LIST)
        zw_job_fail(job, "permanent", req->status, "RecordNotFound",
                    "the user's group memberships could not be listed");
    else if (cls == ZW_CLASS_OK || job->prov.group_ops[job->prov.group_op] < 0)
        group_op_done(job); /* a 404 on removal: already gone */
    else
        zw_job_fail(job, "permanent", req->status, "RecordNotFound",
                    "a group the event names does not exist");
    return true;
}

void zw_provision_answer(zw_job_t *job, const zw_http_t *req, json_object *answer,
                         bool *seen_429)
{
    zw_class_t cls = zw_retry_classify(req->status, req->curl_code);
    zw_answer_ctx_t ctx = {job->state == ZW_JOB_LOOKUP ? "lookup" : "change", false, seen_429};

    job->http = NULL;
    if (job->state == ZW_JOB_STOPPED) {
        zw_job_free(job); /* its partition was handed back while this was in flight */
        return;
    }
    zw_job_record_request_id(job, req);
    if (job->state == ZW_JOB_GROUPS_LIST || job->state == ZW_JOB_GROUPS_APPLY) {
        if (!groups_answer(job, req, cls))
            zw_job_answer_failed(job, req, cls, &ctx);
    } else if (job->state == ZW_JOB_LOOKUP && cls == ZW_CLASS_OK) {
        looked_up(job, req, answer);
    } else if (job->state == ZW_JOB_WRITE && (cls == ZW_CLASS_OK || cls == ZW_CLASS_NOT_FOUND)) {
        written_single(job, req, cls);
    } else {
        zw_job_answer_failed(job, req, cls, &ctx);
    }
}

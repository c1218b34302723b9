/*
 * zendesk-sim: background jobs (the bulk user endpoints). A job's items are applied
 * lazily: each request to the account first calls sim_jobs_tick(), which runs every item
 * whose time has come (queue delay, then job_item_ms per item), so no thread is needed.
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOBS_KEPT 2000          /* finished jobs kept at most (Zendesk keeps them a day) */
#define JOB_TTL_MS (86400LL * 1000)

static const char *job_type(sim_job_kind_t kind)
{
    switch (kind) {
    case SIM_JOB_CREATE: return "bulk_create_users";
    case SIM_JOB_CREATE_OR_UPDATE: return "bulk_create_or_update_users";
    case SIM_JOB_UPDATE: return "bulk_update_users";
    case SIM_JOB_DESTROY: return "bulk_delete_users";
    }
    return "bulk_job";
}

static void add_str(json_object *o, const char *key, const char *val)
{
    if (val)
        json_object_object_add(o, key, json_object_new_string(val));
}

static json_object *failed(int index, const char *error, const char *details)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "index", json_object_new_int(index));
    json_object_object_add(r, "status", json_object_new_string("Failed"));
    json_object_object_add(r, "error", json_object_new_string(error));
    json_object_object_add(r, "details", json_object_new_string(details));
    return r;
}

static json_object *done(int index, const sim_user_t *u, const char *status)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "index", json_object_new_int(index));
    json_object_object_add(r, "id", json_object_new_int64(u->id));
    json_object_object_add(r, "status", json_object_new_string(status));
    add_str(r, "email", u->email);
    add_str(r, "external_id", u->external_id);
    return r;
}

/* Finds the user an item names by "id" or "external_id". */
static sim_user_t *item_target(sim_account_t *acct, json_object *item)
{
    json_object *v;
    if (json_object_object_get_ex(item, "id", &v) && json_object_is_type(v, json_type_int))
        return sim_user_by_id(acct, json_object_get_int64(v));
    if (json_object_object_get_ex(item, "external_id", &v) && !json_object_is_type(v, json_type_null))
        return sim_user_by_external_id(acct, json_object_get_string(v));
    return NULL;
}

static void item_ident(json_object *r, json_object *item)
{
    json_object *v;
    if (json_object_object_get_ex(item, "id", &v))
        json_object_object_add(r, "id", json_object_get(v));
    if (json_object_object_get_ex(item, "external_id", &v))
        json_object_object_add(r, "external_id", json_object_get(v));
}

/* The changes of an update_many item: the item without the keys that located the user. */
static json_object *item_changes(json_object *item)
{
    json_object *c = json_object_new_object();
    json_object_object_foreach(item, key, val)
    {
        if (strcmp(key, "id") != 0)
            json_object_object_add(c, key, json_object_get(val));
    }
    return c;
}

static json_object *run_item(sim_account_t *acct, sim_job_t *job, int i)
{
    json_object *item = json_object_array_get_idx(job->items, (size_t)i);
    sim_err_t err = {0};
    json_object *v;
    switch (job->kind) {
    case SIM_JOB_CREATE: {
        sim_user_t *u = sim_user_create(acct, item, &err);
        if (!u) {
            json_object *r = failed(i, "UserCreateError", err.desc);
            if (json_object_is_type(item, json_type_object)) {
                if (json_object_object_get_ex(item, "email", &v))
                    json_object_object_add(r, "email", json_object_get(v));
                if (json_object_object_get_ex(item, "external_id", &v))
                    json_object_object_add(r, "external_id", json_object_get(v));
            }
            return r;
        }
        return done(i, u, "Created");
    }
    case SIM_JOB_CREATE_OR_UPDATE: {
        sim_user_t *u = NULL;
        if (json_object_is_type(item, json_type_object)) {
            if (json_object_object_get_ex(item, "external_id", &v) && !json_object_is_type(v, json_type_null))
                u = sim_user_by_external_id(acct, json_object_get_string(v));
            if (!u && json_object_object_get_ex(item, "email", &v) && json_object_is_type(v, json_type_string))
                u = sim_user_by_email(acct, json_object_get_string(v));
        }
        if (u) {
            if (sim_user_update(acct, u, item, &err) != 0)
                return failed(i, "UserUpdateError", err.desc);
            return done(i, u, "Updated");
        }
        u = sim_user_create(acct, item, &err);
        if (!u)
            return failed(i, "UserCreateError", err.desc);
        return done(i, u, "Created");
    }
    case SIM_JOB_UPDATE: {
        sim_user_t *u = item_target(acct, item);
        if (!u || !u->active) {
            json_object *r = failed(i, "RecordNotFound", "User not found");
            item_ident(r, item);
            return r;
        }
        json_object *changes = job->change ? json_object_get(job->change) : item_changes(item);
        if (!job->change) {
            /* external_id located the user: it is not a change */
            json_object *ext;
            if (!json_object_object_get_ex(item, "id", &ext))
                json_object_object_del(changes, "external_id");
        }
        int rc = sim_user_update(acct, u, changes, &err);
        json_object_put(changes);
        if (rc != 0) {
            json_object *r = failed(i, "UserUpdateError", err.desc);
            json_object_object_add(r, "id", json_object_new_int64(u->id));
            return r;
        }
        return done(i, u, "Updated");
    }
    case SIM_JOB_DESTROY: {
        sim_user_t *u = item_target(acct, item);
        if (!u || !u->active) {
            json_object *r = failed(i, "RecordNotFound", "User not found");
            item_ident(r, item);
            return r;
        }
        sim_user_soft_delete(acct, u);
        json_object *r = done(i, u, "Deleted");
        json_object_object_add(r, "action", json_object_new_string("delete"));
        json_object_object_add(r, "success", json_object_new_boolean(1));
        return r;
    }
    }
    return failed(i, "InternalError", "unknown job kind");
}

void sim_jobs_tick(sim_account_t *acct, int64_t now_ms)
{
    for (size_t j = 0; j < acct->njobs; j++) {
        sim_job_t *job = acct->jobs[j];
        if (job->completed_ms)
            continue;
        int64_t start = job->created_ms + acct->cfg.job_queue_ms;
        if (now_ms < start)
            continue;
        /* A failing job stops after half of its items. */
        int last = job->fail ? job->total / 2 : job->total;
        int64_t due = acct->cfg.job_item_ms ? (now_ms - start) / acct->cfg.job_item_ms + 1 : last;
        if (due > last)
            due = last;
        for (; job->progress < due; job->progress++)
            json_object_array_add(job->results, run_item(acct, job, job->progress));
        if (job->progress >= last) {
            /* The job finished when its last item was due, not when someone looked. */
            int64_t at = start + (int64_t)last * acct->cfg.job_item_ms;
            job->completed_ms = at < now_ms && at > 0 ? at : now_ms;
        }
    }
    /* Forget finished jobs after a day, and the oldest ones past JOBS_KEPT. */
    size_t o = 0;
    size_t excess = acct->njobs > JOBS_KEPT ? acct->njobs - JOBS_KEPT : 0;
    for (size_t j = 0; j < acct->njobs; j++) {
        sim_job_t *job = acct->jobs[j];
        if (job->completed_ms && (now_ms - job->completed_ms > JOB_TTL_MS || excess)) {
            if (excess)
                excess--;
            json_object_put(job->items);
            json_object_put(job->change);
            json_object_put(job->results);
            free(job);
            continue;
        }
        acct->jobs[o++] = job;
    }
    acct->njobs = o;
}

int sim_jobs_active(const sim_account_t *acct)
{
    int n = 0;
    for (size_t j = 0; j < acct->njobs; j++)
        if (!acct->jobs[j]->completed_ms)
            n++;
    return n;
}

sim_job_t *sim_job_find(sim_account_t *acct, const char *id)
{
    for (size_t j = 0; j < acct->njobs; j++)
        if (!strcmp(acct->jobs[j]->id, id))
            return acct->jobs[j];
    return NULL;
}

sim_job_t *sim_job_add(sim_account_t *acct, sim_job_kind_t kind, json_object *items, json_object *change)
{
    sim_job_t **n = realloc(acct->jobs, (acct->njobs + 1) * sizeof(*n));
    if (!n)
        return NULL;
    acct->jobs = n;
    sim_job_t *job = calloc(1, sizeof(*job));
    if (!job)
        return NULL;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++)
        job->id[i] = hex[sim_rand(&acct->rng) & 15];
    job->kind = kind;
    job->created_ms = sim_now_ms();
    job->items = items;
    job->change = change;
    job->total = (int)json_object_array_length(items);
    job->results = json_object_new_array();
    job->fail = acct->cfg.job_fail_rate > 0 && sim_rand01(&acct->rng) < acct->cfg.job_fail_rate;
    acct->jobs[acct->njobs++] = job;
    return job;
}

json_object *sim_job_json(const sim_job_t *job, const sim_account_t *acct, const char *host, int64_t now_ms)
{
    json_object *o = json_object_new_object();
    char url[400];
    snprintf(url, sizeof(url), "http://%s/api/v2/job_statuses/%s.json", host, job->id);
    const char *status = job->completed_ms ? (job->fail ? "failed" : "completed")
                         : now_ms < job->created_ms + acct->cfg.job_queue_ms ? "queued"
                                                                              : "working";
    json_object_object_add(o, "id", json_object_new_string(job->id));
    json_object_object_add(o, "url", json_object_new_string(url));
    json_object_object_add(o, "job_type", json_object_new_string(job_type(job->kind)));
    json_object_object_add(o, "total", json_object_new_int(job->total));
    json_object_object_add(o, "progress", job->progress || job->completed_ms ? json_object_new_int(job->progress) : NULL);
    json_object_object_add(o, "status", json_object_new_string(status));
    if (job->completed_ms) {
        char iso[32], msg[64];
        sim_iso8601(job->completed_ms / 1000, iso, sizeof(iso));
        if (job->fail)
            snprintf(msg, sizeof(msg), "Failed: the job stopped at item %d of %d", job->progress,
                     job->total);
        else
            snprintf(msg, sizeof(msg), "Completed at %s", iso);
        json_object_object_add(o, "message", json_object_new_string(msg));
    } else {
        json_object_object_add(o, "message", NULL);
    }
    json_object_object_add(o, "results", json_object_array_length(job->results) ? json_object_get(job->results) : NULL);
    return o;
}

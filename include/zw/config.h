/* The worker's configuration (shared/DESIGN.md section 6): loaded from a
 * libconfig file, validated completely before anything starts, secrets
 * resolved from files or the environment. */
#ifndef ZW_CONFIG_H
#define ZW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "zw/log.h"

/* sysexits.h EX_CONFIG: what main() returns for a configuration error. */
#define ZW_EXIT_CONFIG 78

typedef enum {
    ZW_AUTH_API_TOKEN = 0,
    ZW_AUTH_OAUTH_CLIENT_CREDENTIALS = 1,
} zw_auth_type_t;

typedef enum {
    ZW_LEAVER_DOWNGRADE_SUSPEND = 0, /* agent -> end-user (frees the seat), then suspend */
    ZW_LEAVER_SUSPEND = 1,
    ZW_LEAVER_DELETE = 2,
} zw_leaver_policy_t;

typedef struct zw_tenant_config_s {
    char *subdomain;
    int plan_rpm;                     /* the account's plan budget, requests per minute */
    int single_write_per_minute;      /* account-wide single-user write limit */
    int max_jobs;                     /* the account's cap on queued or running bulk jobs */
    zw_leaver_policy_t leaver_policy;
    zw_auth_type_t auth_type;
    char *email;                      /* api_token */
    char *token;                      /* api_token: a secret */
    char *client_id;                  /* oauth_client_credentials */
    char *client_secret;              /* oauth_client_credentials: a secret */
    char *scope;                      /* oauth_client_credentials */
} zw_tenant_config_t;

typedef struct zw_config_s {
    char *path;
    struct {
        char *bootstrap_servers;
        char *group_id;
        char *topic_provisioning;
        char *topic_sync;
        char *topic_results;
        char *topic_snapshots;
        char *topic_dead_letter;
        char **property_names; /* librdkafka properties, pass-through */
        char **property_values; /* may hold secrets (${env:..}/${file:..} resolved) */
        size_t n_properties;
    } kafka;
    struct {
        char *base_url;   /* contains "{subdomain}" */
        char *connect_to; /* "" or "host:port" */
        char *ca_file;    /* "" or a path */
        int timeout_ms;
        zw_tenant_config_t *tenants;
        size_t n_tenants;
    } zendesk;
    struct {
        int max_in_flight;
        int max_attempts;
        int backoff_base_ms;
        int backoff_max_ms;
        int retry_deadline_ms; /* an event stops retrying after this long */
        int shutdown_timeout_ms;
        int max_event_bytes;
        /* Events one tenant may hold in memory; beyond, its events are
         * deferred (read again later) so other tenants' events still run.
         * 0: three quarters of the worker's event cap (which is at least
         * 1,024). */
        int max_tenant_events;
        bool dry_run;
        /* The bulk path: when at least bulk_min_items writes of one kind wait
         * for a tenant, they go as one job (*_many); 0 turns bulk off. */
        int bulk_min_items;
        int bulk_linger_ms;        /* how long the first waiting write waits for more */
        int bulk_poll_ms;          /* how often open jobs are polled */
        int bulk_refused_retry_ms; /* after a 403 on bulk create: 0 = until restart */
    } worker;
    struct {
        char *listen; /* "" disables the admin endpoint */
    } admin;
    struct {
        zw_log_level_t level;
        zw_log_format_t format;
        bool format_auto; /* "auto": text on a terminal, JSON otherwise */
    } log;
} zw_config_t;

/* Loads and validates the file at path. Returns a new config (free with
 * zw_config_destroy) or NULL with one message in errstr that names the file,
 * the line and the key ("FILE:LINE: key: problem"). */
zw_config_t *zw_config_load(const char *path, char *errstr, size_t errstr_size);

/* Frees a config, wiping secrets first. Accepts NULL. */
void zw_config_destroy(zw_config_t *config);

/* The tenant with this subdomain (case-insensitive), lent for the config's
 * lifetime, or NULL. */
const zw_tenant_config_t *zw_config_tenant(const zw_config_t *config, const char *subdomain);

/* Whether a librdkafka property name holds a secret (to redact it). */
bool zw_config_property_is_secret(const char *name);

const char *zw_auth_type_name(zw_auth_type_t type);
const char *zw_leaver_policy_name(zw_leaver_policy_t policy);
int zw_leaver_policy_parse(const char *name, zw_leaver_policy_t *policy);

#endif

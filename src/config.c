/* Configuration loading and validation. Every key of the file is checked
 * against a table of known keys, types and ranges before anything starts;
 * the first problem found is reported as "FILE:LINE: key.path: problem".
 * Secrets are read from files or environment variables here, once. */
#include "zw/config.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SECRET_MAX_BYTES 65536
#define KEY_PATH_MAX 256

/* Validation context: the first failure wins and later checks are no-ops. */
typedef struct ctx_s {
    const char *path;
    char *dir; /* the config file's directory, for relative secret paths */
    char *errstr;
    size_t errstr_size;
    bool failed;
} ctx_t;

static void fail(ctx_t *ctx, const config_setting_t *at, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static void fail(ctx_t *ctx, const config_setting_t *at, const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    const char *file = NULL;
    int line = 0;

    if (ctx->failed)
        return;
    ctx->failed = true;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (at) {
        file = config_setting_source_file(at);
        line = (int)config_setting_source_line(at);
    }
    if (!file)
        file = ctx->path;
    if (line > 0)
        snprintf(ctx->errstr, ctx->errstr_size, "%s:%d: %s: %s", file, line, key, msg);
    else
        snprintf(ctx->errstr, ctx->errstr_size, "%s: %s: %s", file, key, msg);
}

static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP: return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64: return "an integer";
    case CONFIG_TYPE_FLOAT: return "a float";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL: return "a boolean";
    case CONFIG_TYPE_ARRAY: return "an array";
    case CONFIG_TYPE_LIST: return "a list";
    default: return "an unknown type";
    }
}

/* out = parent.name (or name at the top), cut to size. Key paths are short;
 * a cut only shortens a message. */
static void key_join(char *out, size_t size, const char *parent, const char *name)
{
    size_t len = 0;

    out[0] = '\0';
    if (parent && *parent) {
        for (const char *p = parent; *p && len + 1 < size; p++)
            out[len++] = *p;
        if (len + 1 < size)
            out[len++] = '.';
    }
    for (const char *p = name; *p && len + 1 < size; p++)
        out[len++] = *p;
    out[len] = '\0';
}

/* Levenshtein distance, capped, to suggest the key a typo meant. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t prev[64], cur[64];

    if (la >= 63 || lb >= 63)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (prev[j - 1] + cost < best)
                best = prev[j - 1] + cost;
            cur[j] = best;
        }
        memcpy(prev, cur, (lb + 1) * sizeof(size_t));
    }
    return prev[lb];
}

/* Rejects any member of group whose name is not in known (NULL-terminated). */
static void check_known_keys(ctx_t *ctx, const config_setting_t *group, const char *path,
                             const char *const *known)
{
    int n = config_setting_length(group);
    char key[KEY_PATH_MAX];

    for (int i = 0; i < n && !ctx->failed; i++) {
        const config_setting_t *member = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(member);
        const char *suggestion = NULL;
        bool found = false;

        if (!name)
            continue;
        for (const char *const *k = known; *k; k++) {
            if (strcmp(*k, name) == 0) {
                found = true;
                break;
            }
            if (edit_distance(*k, name) <= 2 || strncmp(*k, name, strlen(*k)) == 0 ||
                strncmp(*k, name, strlen(name)) == 0)
                suggestion = *k;
        }
        if (found)
            continue;
        key_join(key, sizeof(key), path, name);
        if (suggestion)
            fail(ctx, member, key, "unknown key (did you mean '%s'?)", suggestion);
        else
            fail(ctx, member, key, "unknown key");
    }
}

/* Returns the member, NULL when absent (after failing if required). */
static config_setting_t *member(ctx_t *ctx, config_setting_t *group, const char *path,
                                const char *name, bool required)
{
    config_setting_t *s = group ? config_setting_get_member(group, name) : NULL;
    char key[KEY_PATH_MAX];

    if (!s && required) {
        key_join(key, sizeof(key), path, name);
        fail(ctx, group, key, "missing required key");
    }
    return s;
}

static char *dup_or_die(ctx_t *ctx, const char *s)
{
    char *copy = strdup(s);
    if (!copy && !ctx->failed) {
        ctx->failed = true;
        snprintf(ctx->errstr, ctx->errstr_size, "%s: out of memory", ctx->path);
    }
    return copy;
}

static void get_string(ctx_t *ctx, config_setting_t *group, const char *path, const char *name,
                       bool required, const char *def, char **out)
{
    config_setting_t *s;
    char key[KEY_PATH_MAX];

    if (ctx->failed)
        return;
    s = member(ctx, group, path, name, required);
    if (!s) {
        if (def)
            *out = dup_or_die(ctx, def);
        return;
    }
    key_join(key, sizeof(key), path, name);
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        fail(ctx, s, key, "expected a string, got %s", type_name(config_setting_type(s)));
        return;
    }
    *out = dup_or_die(ctx, config_setting_get_string(s));
    if (*out && required && **out == '\0')
        fail(ctx, s, key, "must not be empty");
}

static void get_int(ctx_t *ctx, config_setting_t *group, const char *path, const char *name,
                    bool required, int def, long long min, long long max, int *out)
{
    config_setting_t *s;
    char key[KEY_PATH_MAX];
    long long v;

    if (ctx->failed)
        return;
    *out = def;
    s = member(ctx, group, path, name, required);
    if (!s)
        return;
    key_join(key, sizeof(key), path, name);
    if (config_setting_type(s) == CONFIG_TYPE_INT)
        v = config_setting_get_int(s);
    else if (config_setting_type(s) == CONFIG_TYPE_INT64)
        v = config_setting_get_int64(s);
    else {
        fail(ctx, s, key, "expected an integer, got %s", type_name(config_setting_type(s)));
        return;
    }
    if (v < min || v > max) {
        fail(ctx, s, key, "%lld is out of range [%lld, %lld]", v, min, max);
        return;
    }
    *out = (int)v;
}

static void get_bool(ctx_t *ctx, config_setting_t *group, const char *path, const char *name,
                     bool def, bool *out)
{
    config_setting_t *s;
    char key[KEY_PATH_MAX];

    if (ctx->failed)
        return;
    *out = def;
    s = member(ctx, group, path, name, false);
    if (!s)
        return;
    key_join(key, sizeof(key), path, name);
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        fail(ctx, s, key, "expected a boolean (true or false), got %s",
             type_name(config_setting_type(s)));
        return;
    }
    *out = config_setting_get_bool(s) != 0;
}

/* A group member that must be a group when present. */
static config_setting_t *get_group(ctx_t *ctx, config_setting_t *parent, const char *path,
                                   const char *name, bool required)
{
    config_setting_t *s;
    char key[KEY_PATH_MAX];

    if (ctx->failed)
        return NULL;
    s = member(ctx, parent, path, name, required);
    if (!s)
        return NULL;
    if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
        key_join(key, sizeof(key), path, name);
        fail(ctx, s, key, "expected a group { ... }, got %s", type_name(config_setting_type(s)));
        return NULL;
    }
    return s;
}

static char *resolve_path(ctx_t *ctx, const char *p)
{
    char *full;
    size_t n;

    if (p[0] == '/' || !ctx->dir)
        return dup_or_die(ctx, p);
    n = strlen(ctx->dir) + strlen(p) + 2;
    full = malloc(n);
    if (!full)
        return dup_or_die(ctx, p);
    snprintf(full, n, "%s/%s", ctx->dir, p);
    return full;
}

/* Reads a secret file whole, without trailing whitespace. Returns a new
 * string or NULL with a reason in why. */
static char *read_secret_file(const char *path, char *why, size_t why_size)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (!f) {
        snprintf(why, why_size, "cannot read secret file '%s': %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(SECRET_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    n = fread(buf, 1, SECRET_MAX_BYTES + 1, f);
    if (ferror(f)) {
        snprintf(why, why_size, "cannot read secret file '%s': %s", path, strerror(errno));
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    if (n > SECRET_MAX_BYTES) {
        snprintf(why, why_size, "secret file '%s' is larger than %d bytes", path,
                 SECRET_MAX_BYTES);
        free(buf);
        return NULL;
    }
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        n--;
    buf[n] = '\0';
    if (n == 0) {
        snprintf(why, why_size, "secret file '%s' is empty", path);
        free(buf);
        return NULL;
    }
    return buf;
}

static char *read_secret_env(const char *name, char *why, size_t why_size)
{
    const char *v = getenv(name);
    char *copy;

    if (!v || !*v) {
        snprintf(why, why_size, "environment variable '%s' is not set or empty", name);
        return NULL;
    }
    copy = strdup(v);
    if (!copy)
        snprintf(why, why_size, "out of memory");
    return copy;
}

/* A secret given as NAME_file = "path" or NAME_env = "VAR", exactly one. */
static void get_secret(ctx_t *ctx, config_setting_t *group, const char *path, const char *name,
                       char **out)
{
    char file_key[64], env_key[64], key[KEY_PATH_MAX], why[512];
    config_setting_t *fs, *es;
    char *ref = NULL;

    if (ctx->failed)
        return;
    snprintf(file_key, sizeof(file_key), "%s_file", name);
    snprintf(env_key, sizeof(env_key), "%s_env", name);
    fs = config_setting_get_member(group, file_key);
    es = config_setting_get_member(group, env_key);
    if (fs && es) {
        key_join(key, sizeof(key), path, env_key);
        fail(ctx, es, key, "set only one of '%s' and '%s'", file_key, env_key);
        return;
    }
    if (!fs && !es) {
        key_join(key, sizeof(key), path, file_key);
        fail(ctx, group, key, "missing required key (or '%s'); secrets are never inline",
             env_key);
        return;
    }
    get_string(ctx, group, path, fs ? file_key : env_key, true, NULL, &ref);
    if (ctx->failed) {
        free(ref);
        return;
    }
    key_join(key, sizeof(key), path, fs ? file_key : env_key);
    if (fs) {
        char *full = resolve_path(ctx, ref);
        if (full)
            *out = read_secret_file(full, why, sizeof(why));
        free(full);
    } else {
        *out = read_secret_env(ref, why, sizeof(why));
    }
    if (!*out)
        fail(ctx, fs ? fs : es, key, "%s", why);
    free(ref);
}

static bool valid_subdomain(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
            return false;
    }
    return true;
}

static bool valid_topic(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 249 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!(isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return false;
    }
    return true;
}

/* "host:port" with a non-empty host and a port in 1..65535 (or 0 if allowed). */
static bool valid_host_port(const char *s, bool allow_port_zero)
{
    const char *colon = strrchr(s, ':');
    char *end;
    long port;

    if (!colon || colon == s || colon[1] == '\0')
        return false;
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || *end != '\0')
        return false;
    return port >= (allow_port_zero ? 0 : 1) && port <= 65535;
}

/* config_setting_get_member() that accepts an absent group. */
static config_setting_t *find(const config_setting_t *group, const char *name)
{
    return group ? config_setting_get_member(group, name) : NULL;
}

static void validate_string(ctx_t *ctx, config_setting_t *group, const char *path,
                            const char *name, bool ok, const char *why)
{
    char key[KEY_PATH_MAX];

    if (ctx->failed || ok)
        return;
    key_join(key, sizeof(key), path, name);
    fail(ctx, find(group, name) ? find(group, name) : group, key, "%s", why);
}

bool zw_config_property_is_secret(const char *name)
{
    static const char *const markers[] = {"password", "secret", "key", "token", "jaas"};

    for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
        if (strstr(name, markers[i]))
            return true;
    }
    return false;
}

/* Properties the worker sets itself because its delivery guarantee depends
 * on them, or that have their own key in this file. */
static const char *managed_property(const char *name)
{
    static const struct {
        const char *name;
        const char *why;
    } managed[] = {
        {"bootstrap.servers", "use kafka.bootstrap_servers"},
        {"metadata.broker.list", "use kafka.bootstrap_servers"},
        {"group.id", "use kafka.group_id"},
        {"enable.auto.commit", "the worker commits only what has a delivered result"},
        {"enable.auto.offset.store", "the worker stores only what has a delivered result"},
        {"partition.assignment.strategy", "the worker needs cooperative-sticky"},
        {"enable.partition.eof", "the worker manages it"},
    };

    for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++) {
        if (strcmp(name, managed[i].name) == 0)
            return managed[i].why;
    }
    return NULL;
}

static void load_kafka_properties(ctx_t *ctx, zw_config_t *c, config_setting_t *kafka)
{
    config_setting_t *props = config_setting_get_member(kafka, "properties");
    rd_kafka_conf_t *probe;
    char key[KEY_PATH_MAX], why[512];
    int n;

    if (ctx->failed || !props)
        return;
    if (config_setting_type(props) != CONFIG_TYPE_ARRAY &&
        config_setting_type(props) != CONFIG_TYPE_LIST) {
        fail(ctx, props, "kafka.properties", "expected an array of \"key=value\" strings, got %s",
             type_name(config_setting_type(props)));
        return;
    }
    n = config_setting_length(props);
    c->kafka.property_names = calloc((size_t)n + 1, sizeof(char *));
    c->kafka.property_values = calloc((size_t)n + 1, sizeof(char *));
    if (!c->kafka.property_names || !c->kafka.property_values) {
        fail(ctx, props, "kafka.properties", "out of memory");
        return;
    }
    /* librdkafka itself judges names and values, on a scratch conf, so a
     * typo is refused here with its line instead of at connect time. */
    probe = rd_kafka_conf_new();
    for (int i = 0; i < n && !ctx->failed; i++) {
        config_setting_t *e = config_setting_get_elem(props, (unsigned)i);
        const char *kv, *eq;
        char *name, *value;

        snprintf(key, sizeof(key), "kafka.properties[%d]", i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            fail(ctx, e, key, "expected a \"key=value\" string, got %s",
                 type_name(config_setting_type(e)));
            break;
        }
        kv = config_setting_get_string(e);
        eq = strchr(kv, '=');
        if (!eq || eq == kv) {
            fail(ctx, e, key, "expected \"key=value\", got \"%s\"", kv);
            break;
        }
        name = strndup(kv, (size_t)(eq - kv));
        if (!name) {
            fail(ctx, e, key, "out of memory");
            break;
        }
        c->kafka.property_names[c->kafka.n_properties] = name;
        if (managed_property(name)) {
            fail(ctx, e, key, "'%s' cannot be set here: %s", name, managed_property(name));
            break;
        }
        value = NULL;
        if (strncmp(eq + 1, "${env:", 6) == 0 && eq[strlen(eq) - 1] == '}') {
            char *var = strndup(eq + 7, strlen(eq + 7) - 1);
            value = var ? read_secret_env(var, why, sizeof(why)) : NULL;
            free(var);
        } else if (strncmp(eq + 1, "${file:", 7) == 0 && eq[strlen(eq) - 1] == '}') {
            char *p = strndup(eq + 8, strlen(eq + 8) - 1);
            char *full = p ? resolve_path(ctx, p) : NULL;
            value = full ? read_secret_file(full, why, sizeof(why)) : NULL;
            free(p);
            free(full);
        } else {
            value = strdup(eq + 1);
            snprintf(why, sizeof(why), "out of memory");
        }
        if (!value) {
            fail(ctx, e, key, "%s: %s", name, why);
            break;
        }
        c->kafka.property_values[c->kafka.n_properties++] = value;
        if (rd_kafka_conf_set(probe, name, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
            /* librdkafka's message may quote the value: keep secrets out. */
            if (zw_config_property_is_secret(name))
                fail(ctx, e, key, "librdkafka rejects property '%s'", name);
            else
                fail(ctx, e, key, "librdkafka rejects '%s': %s", name, why);
        }
    }
    rd_kafka_conf_destroy(probe);
}

static void load_kafka(ctx_t *ctx, zw_config_t *c, config_setting_t *root)
{
    static const char *const kafka_keys[] = {"bootstrap_servers", "group_id", "topics",
                                             "properties", NULL};
    static const char *const topic_keys[] = {"provisioning", "sync", "results", "snapshots",
                                             "dead_letter", NULL};
    config_setting_t *kafka = get_group(ctx, root, "", "kafka", true);
    config_setting_t *topics;
    struct {
        const char *name;
        const char *def;
        char **out;
    } t[] = {
        {"provisioning", "zendesk.provisioning.requests", &c->kafka.topic_provisioning},
        {"sync", "zendesk.sync.requests", &c->kafka.topic_sync},
        {"results", "zendesk.provisioning.results", &c->kafka.topic_results},
        {"snapshots", "zendesk.user.snapshots", &c->kafka.topic_snapshots},
        {"dead_letter", "zendesk.worker.dlq", &c->kafka.topic_dead_letter},
    };

    if (!kafka)
        return;
    check_known_keys(ctx, kafka, "kafka", kafka_keys);
    get_string(ctx, kafka, "kafka", "bootstrap_servers", true, NULL, &c->kafka.bootstrap_servers);
    get_string(ctx, kafka, "kafka", "group_id", false, "zendesk-worker", &c->kafka.group_id);
    validate_string(ctx, kafka, "kafka", "group_id", c->kafka.group_id && *c->kafka.group_id,
                    "must not be empty");
    topics = get_group(ctx, kafka, "kafka", "topics", false);
    if (topics)
        check_known_keys(ctx, topics, "kafka.topics", topic_keys);
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        get_string(ctx, topics, "kafka.topics", t[i].name, false, t[i].def, t[i].out);
        if (!ctx->failed && !valid_topic(*t[i].out)) {
            char key[KEY_PATH_MAX];
            key_join(key, sizeof(key), "kafka.topics", t[i].name);
            fail(ctx, topics ? find(topics, t[i].name) : kafka, key,
                 "'%s' is not a valid topic name (letters, digits, '.', '_', '-'; at most 249)",
                 *t[i].out);
        }
    }
    /* An output topic equal to an input topic would feed results back in. */
    for (size_t i = 2; i < sizeof(t) / sizeof(t[0]) && !ctx->failed; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(*t[i].out, *t[j].out) == 0) {
                char key[KEY_PATH_MAX];
                key_join(key, sizeof(key), "kafka.topics", t[i].name);
                fail(ctx, topics ? find(topics, t[i].name) : kafka, key,
                     "topic '%s' is also used as kafka.topics.%s", *t[i].out, t[j].name);
                break;
            }
        }
    }
    load_kafka_properties(ctx, c, kafka);
}

static void load_auth(ctx_t *ctx, zw_tenant_config_t *t, config_setting_t *tenant,
                      const char *tpath)
{
    static const char *const token_keys[] = {"type", "email", "token_file", "token_env", NULL};
    static const char *const oauth_keys[] = {"type", "client_id", "client_secret_file",
                                             "client_secret_env", "scope", NULL};
    char path[KEY_PATH_MAX], *type = NULL;
    config_setting_t *auth;

    key_join(path, sizeof(path), tpath, "auth");
    auth = get_group(ctx, tenant, tpath, "auth", true);
    if (!auth)
        return;
    get_string(ctx, auth, path, "type", true, NULL, &type);
    if (ctx->failed) {
        free(type);
        return;
    }
    if (strcmp(type, "api_token") == 0) {
        t->auth_type = ZW_AUTH_API_TOKEN;
        check_known_keys(ctx, auth, path, token_keys);
        get_string(ctx, auth, path, "email", true, NULL, &t->email);
        validate_string(ctx, auth, path, "email", t->email && strchr(t->email, '@'),
                        "must be an e-mail address (the admin the token belongs to)");
        get_secret(ctx, auth, path, "token", &t->token);
    } else if (strcmp(type, "oauth_client_credentials") == 0) {
        t->auth_type = ZW_AUTH_OAUTH_CLIENT_CREDENTIALS;
        check_known_keys(ctx, auth, path, oauth_keys);
        get_string(ctx, auth, path, "client_id", true, NULL, &t->client_id);
        get_secret(ctx, auth, path, "client_secret", &t->client_secret);
        get_string(ctx, auth, path, "scope", false, "users:read users:write", &t->scope);
    } else {
        char key[KEY_PATH_MAX];
        key_join(key, sizeof(key), path, "type");
        fail(ctx, find(auth, "type"), key,
             "'%s' is not one of: api_token, oauth_client_credentials", type);
    }
    free(type);
}

static void load_tenants(ctx_t *ctx, zw_config_t *c, config_setting_t *zendesk)
{
    static const char *const tenant_keys[] = {"subdomain", "plan_rpm", "single_user_write_rpm",
                                              "max_jobs", "leaver_policy", "auth", NULL};
    config_setting_t *list = member(ctx, zendesk, "zendesk", "tenants", true);
    int n;

    if (ctx->failed)
        return;
    if (config_setting_type(list) != CONFIG_TYPE_LIST) {
        fail(ctx, list, "zendesk.tenants", "expected a list ( { ... }, ... ), got %s",
             type_name(config_setting_type(list)));
        return;
    }
    n = config_setting_length(list);
    if (n == 0) {
        fail(ctx, list, "zendesk.tenants", "at least one tenant is required");
        return;
    }
    c->zendesk.tenants = calloc((size_t)n, sizeof(zw_tenant_config_t));
    if (!c->zendesk.tenants) {
        fail(ctx, list, "zendesk.tenants", "out of memory");
        return;
    }
    for (int i = 0; i < n && !ctx->failed; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        zw_tenant_config_t *t = &c->zendesk.tenants[i];
        char path[KEY_PATH_MAX], *policy = NULL;

        c->zendesk.n_tenants++;
        snprintf(path, sizeof(path), "zendesk.tenants[%d]", i);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
            fail(ctx, g, path, "expected a group { ... }, got %s",
                 type_name(config_setting_type(g)));
            break;
        }
        check_known_keys(ctx, g, path, tenant_keys);
        get_string(ctx, g, path, "subdomain", true, NULL, &t->subdomain);
        validate_string(ctx, g, path, "subdomain", t->subdomain && valid_subdomain(t->subdomain),
                        "must be a Zendesk subdomain: lowercase letters, digits and '-'");
        for (int j = 0; j < i && !ctx->failed; j++) {
            if (strcasecmp(c->zendesk.tenants[j].subdomain, t->subdomain) == 0) {
                char key[KEY_PATH_MAX];
                config_setting_t *first = config_setting_get_elem(list, (unsigned)j);
                key_join(key, sizeof(key), path, "subdomain");
                fail(ctx, find(g, "subdomain"), key,
                     "duplicate tenant '%s' (first defined at line %d)", t->subdomain,
                     (int)config_setting_source_line(first));
            }
        }
        get_int(ctx, g, path, "plan_rpm", false, 700, 1, 1000000, &t->plan_rpm);
        get_int(ctx, g, path, "single_user_write_rpm", false, 60, 1, 1000000,
                &t->single_write_per_minute);
        get_int(ctx, g, path, "max_jobs", false, 30, 1, 100, &t->max_jobs); /* one poll lists 100 */
        get_string(ctx, g, path, "leaver_policy", false, "downgrade_suspend", &policy);
        if (!ctx->failed && zw_leaver_policy_parse(policy, &t->leaver_policy) != 0) {
            char key[KEY_PATH_MAX];
            key_join(key, sizeof(key), path, "leaver_policy");
            fail(ctx, find(g, "leaver_policy"), key,
                 "'%s' is not one of: downgrade_suspend, suspend, delete", policy);
        }
        free(policy);
        load_auth(ctx, t, g, path);
    }
}

static bool valid_base_url(const char *u)
{
    const char *host, *sub;

    if (strncmp(u, "https://", 8) == 0)
        host = u + 8;
    else if (strncmp(u, "http://", 7) == 0)
        host = u + 7;
    else
        return false;
    sub = strstr(u, "{subdomain}");
    /* {subdomain} must be in the host part, once: a tenant can only ever
     * reach its own account. */
    if (!sub || strstr(sub + 1, "{subdomain}"))
        return false;
    return !strchr(host, '/') || sub < strchr(host, '/');
}

static void load_zendesk(ctx_t *ctx, zw_config_t *c, config_setting_t *root)
{
    static const char *const keys[] = {"base_url", "connect_to", "ca_file", "timeout_ms",
                                       "tenants", NULL};
    config_setting_t *z = get_group(ctx, root, "", "zendesk", true);

    if (!z)
        return;
    check_known_keys(ctx, z, "zendesk", keys);
    get_string(ctx, z, "zendesk", "base_url", false, "https://{subdomain}.zendesk.com",
               &c->zendesk.base_url);
    validate_string(ctx, z, "zendesk", "base_url",
                    c->zendesk.base_url && valid_base_url(c->zendesk.base_url),
                    "must be http(s)://... with '{subdomain}' once, in the host");
    get_string(ctx, z, "zendesk", "connect_to", false, "", &c->zendesk.connect_to);
    validate_string(ctx, z, "zendesk", "connect_to",
                    c->zendesk.connect_to &&
                        (!*c->zendesk.connect_to || valid_host_port(c->zendesk.connect_to, false)),
                    "must be empty or \"host:port\"");
    get_string(ctx, z, "zendesk", "ca_file", false, "", &c->zendesk.ca_file);
    if (!ctx->failed && *c->zendesk.ca_file) {
        char *full = resolve_path(ctx, c->zendesk.ca_file);
        FILE *f = full ? fopen(full, "r") : NULL;
        if (!f)
            fail(ctx, find(z, "ca_file"), "zendesk.ca_file",
                 "cannot read '%s': %s", full ? full : c->zendesk.ca_file, strerror(errno));
        else
            fclose(f);
        free(c->zendesk.ca_file);
        c->zendesk.ca_file = full;
    }
    get_int(ctx, z, "zendesk", "timeout_ms", false, 30000, 100, 600000, &c->zendesk.timeout_ms);
    load_tenants(ctx, c, z);
}

static void load_worker(ctx_t *ctx, zw_config_t *c, config_setting_t *root)
{
    static const char *const keys[] = {"max_in_flight",   "max_attempts",        "backoff_base_ms",
                                       "backoff_max_ms",  "retry_deadline_ms",   "shutdown_timeout_ms",
                                       "max_event_bytes", "dry_run",             "bulk_min_items",
                                       "bulk_linger_ms",  "bulk_poll_ms",        "bulk_refused_retry_ms",
                                       "max_tenant_events", NULL};
    config_setting_t *w = get_group(ctx, root, "", "worker", false);

    if (w)
        check_known_keys(ctx, w, "worker", keys);
    get_int(ctx, w, "worker", "max_in_flight", false, 512, 1, 65536, &c->worker.max_in_flight);
    get_int(ctx, w, "worker", "max_attempts", false, 8, 1, 100, &c->worker.max_attempts);
    get_int(ctx, w, "worker", "backoff_base_ms", false, 500, 1, 3600000,
            &c->worker.backoff_base_ms);
    get_int(ctx, w, "worker", "backoff_max_ms", false, 60000, 1, 3600000,
            &c->worker.backoff_max_ms);
    get_int(ctx, w, "worker", "retry_deadline_ms", false, 900000, 1, 86400000,
            &c->worker.retry_deadline_ms);
    get_int(ctx, w, "worker", "shutdown_timeout_ms", false, 25000, 0, 3600000,
            &c->worker.shutdown_timeout_ms);
    get_int(ctx, w, "worker", "max_event_bytes", false, 1048576, 1024, 100 * 1048576,
            &c->worker.max_event_bytes);
    get_int(ctx, w, "worker", "max_tenant_events", false, 0, 0, 10000000,
            &c->worker.max_tenant_events);
    get_bool(ctx, w, "worker", "dry_run", false, &c->worker.dry_run);
    get_int(ctx, w, "worker", "bulk_min_items", false, 10, 0, 100, &c->worker.bulk_min_items);
    get_int(ctx, w, "worker", "bulk_linger_ms", false, 200, 0, 60000, &c->worker.bulk_linger_ms);
    get_int(ctx, w, "worker", "bulk_poll_ms", false, 1000, 100, 600000, &c->worker.bulk_poll_ms);
    get_int(ctx, w, "worker", "bulk_refused_retry_ms", false, 3600000, 0, 86400000 * 7,
            &c->worker.bulk_refused_retry_ms);
    if (!ctx->failed && c->worker.backoff_base_ms > c->worker.backoff_max_ms)
        fail(ctx, find(w, "backoff_base_ms"), "worker.backoff_base_ms",
             "%d is larger than worker.backoff_max_ms (%d)", c->worker.backoff_base_ms,
             c->worker.backoff_max_ms);
}

static void load_admin_and_log(ctx_t *ctx, zw_config_t *c, config_setting_t *root)
{
    static const char *const admin_keys[] = {"listen", NULL};
    static const char *const log_keys[] = {"level", "format", NULL};
    config_setting_t *admin = get_group(ctx, root, "", "admin", false);
    config_setting_t *log = NULL;
    char *level = NULL, *format = NULL;

    if (admin)
        check_known_keys(ctx, admin, "admin", admin_keys);
    get_string(ctx, admin, "admin", "listen", false, "0.0.0.0:9464", &c->admin.listen);
    validate_string(ctx, admin, "admin", "listen",
                    c->admin.listen &&
                        (!*c->admin.listen || valid_host_port(c->admin.listen, true)),
                    "must be empty (disabled) or \"host:port\"");

    log = get_group(ctx, root, "", "log", false);
    if (log)
        check_known_keys(ctx, log, "log", log_keys);
    get_string(ctx, log, "log", "level", false, "info", &level);
    if (!ctx->failed && zw_log_level_parse(level, &c->log.level) != 0)
        fail(ctx, find(log, "level"), "log.level",
             "'%s' is not one of: debug, info, warn, error", level);
    get_string(ctx, log, "log", "format", false, "auto", &format);
    if (!ctx->failed && strcmp(format, "auto") == 0) {
        c->log.format = ZW_LOG_FORMAT_JSON;
        c->log.format_auto = true;
    } else if (!ctx->failed && zw_log_format_parse(format, &c->log.format) != 0) {
        fail(ctx, find(log, "format"), "log.format",
             "'%s' is not one of: auto, json, text", format);
    }
    free(level);
    free(format);
}

zw_config_t *zw_config_load(const char *path, char *errstr, size_t errstr_size)
{
    static const char *const top_keys[] = {"kafka", "zendesk", "worker", "admin", "log", NULL};
    config_t cf;
    zw_config_t *c;
    ctx_t ctx = {.path = path, .errstr = errstr, .errstr_size = errstr_size};
    const char *slash;

    c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errstr, errstr_size, "%s: out of memory", path);
        return NULL;
    }
    c->path = strdup(path);
    slash = strrchr(path, '/');
    ctx.dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path ? 1 : 0))
                    : strdup(".");

    config_init(&cf);
    if (ctx.dir)
        config_set_include_dir(&cf, ctx.dir);
    if (!config_read_file(&cf, path)) {
        if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
            snprintf(errstr, errstr_size, "%s: cannot read the file: %s", path, strerror(errno));
        else
            snprintf(errstr, errstr_size, "%s:%d: syntax error: %s",
                     config_error_file(&cf) ? config_error_file(&cf) : path,
                     config_error_line(&cf), config_error_text(&cf));
        ctx.failed = true;
    } else {
        config_setting_t *root = config_root_setting(&cf);
        check_known_keys(&ctx, root, "", top_keys);
        load_kafka(&ctx, c, root);
        load_zendesk(&ctx, c, root);
        load_worker(&ctx, c, root);
        load_admin_and_log(&ctx, c, root);
    }
    config_destroy(&cf);
    free(ctx.dir);
    if (ctx.failed || !c->path) {
        if (!ctx.failed)
            snprintf(errstr, errstr_size, "%s: out of memory", path);
        zw_config_destroy(c);
        return NULL;
    }
    return c;
}

static void free_secret(char *s)
{
    if (!s)
        return;
    /* volatile keeps the wipe from being optimised away. */
    for (volatile char *p = s; *p; p++)
        *p = '\0';
    free(s);
}

void zw_config_destroy(zw_config_t *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->kafka.bootstrap_servers);
    free(c->kafka.group_id);
    free(c->kafka.topic_provisioning);
    free(c->kafka.topic_sync);
    free(c->kafka.topic_results);
    free(c->kafka.topic_snapshots);
    free(c->kafka.topic_dead_letter);
    for (size_t i = 0; c->kafka.property_names && c->kafka.property_names[i]; i++)
        free(c->kafka.property_names[i]);
    for (size_t i = 0; c->kafka.property_values && c->kafka.property_values[i]; i++)
        free_secret(c->kafka.property_values[i]);
    free(c->kafka.property_names);
    free(c->kafka.property_values);
    free(c->zendesk.base_url);
    free(c->zendesk.connect_to);
    free(c->zendesk.ca_file);
    for (size_t i = 0; i < c->zendesk.n_tenants; i++) {
        zw_tenant_config_t *t = &c->zendesk.tenants[i];
        free(t->subdomain);
        free(t->email);
        free_secret(t->token);
        free(t->client_id);
        free_secret(t->client_secret);
        free(t->scope);
    }
    free(c->zendesk.tenants);
    free(c->admin.listen);
    free(c);
}

const zw_tenant_config_t *zw_config_tenant(const zw_config_t *c, const char *subdomain)
{
    for (size_t i = 0; i < c->zendesk.n_tenants; i++) {
        if (strcasecmp(c->zendesk.tenants[i].subdomain, subdomain) == 0)
            return &c->zendesk.tenants[i];
    }
    return NULL;
}

const char *zw_auth_type_name(zw_auth_type_t type)
{
    return type == ZW_AUTH_API_TOKEN ? "api_token" : "oauth_client_credentials";
}

const char *zw_leaver_policy_name(zw_leaver_policy_t policy)
{
    switch (policy) {
    case ZW_LEAVER_SUSPEND: return "suspend";
    case ZW_LEAVER_DELETE: return "delete";
    case ZW_LEAVER_DOWNGRADE_SUSPEND: break;
    }
    return "downgrade_suspend";
}

int zw_leaver_policy_parse(const char *name, zw_leaver_policy_t *policy)
{
    if (strcmp(name, "downgrade_suspend") == 0)
        *policy = ZW_LEAVER_DOWNGRADE_SUSPEND;
    else if (strcmp(name, "suspend") == 0)
        *policy = ZW_LEAVER_SUSPEND;
    else if (strcmp(name, "delete") == 0)
        *policy = ZW_LEAVER_DELETE;
    else
        return -1;
    return 0;
}

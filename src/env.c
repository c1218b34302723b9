/* The worker's shared environment: ids, wall-clock stamps, jittered backoff
 * and timers, so no module keeps its own copy of them. */
#include "env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zw/retry.h"
#include "zw/version.h"

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void worker_id(char *out, size_t size)
{
    const char *pod = getenv("POD_NAME");
    char host[100] = "localhost";

    if (pod && *pod) {
        snprintf(out, size, "%s", pod);
        return;
    }
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(out, size, "%s:%ld", host, (long)getpid());
}

void zw_env_init(zw_env_t *env, const zw_config_t *config, zw_loop_t *loop)
{
    memset(env, 0, sizeof(*env));
    env->cfg = config;
    env->loop = loop;
    env->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)zw_loop_now_ms();
    if (!env->rng)
        env->rng = 0x9E3779B97F4A7C15ull;
    worker_id(env->worker_id, sizeof(env->worker_id));
    snprintf(env->user_agent, sizeof(env->user_agent), "zendesk-worker/%s", ZW_VERSION);
    env->http.base_url = config->zendesk.base_url;
    env->http.connect_to = config->zendesk.connect_to;
    env->http.ca_file = config->zendesk.ca_file;
    env->http.timeout_ms = config->zendesk.timeout_ms;
    env->http.user_agent = env->user_agent;
}

void zw_env_uuid4(zw_env_t *env, char out[37])
{
    uint64_t a = rng_next(&env->rng), b = rng_next(&env->rng);

    a = (a & 0xFFFFFFFFFFFF0FFFull) | 0x4000ull;
    b = (b & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;
    snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)((a >> 16) & 0xFFFF), (unsigned)(a & 0xFFFF), (unsigned)(b >> 48),
             (unsigned long long)(b & 0xFFFFFFFFFFFFull));
}

void zw_env_iso_now(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

int64_t zw_env_backoff_ms(zw_env_t *env, int failures)
{
    return zw_backoff_delay_ms(failures, env->cfg->worker.backoff_base_ms,
                               env->cfg->worker.backoff_max_ms, &env->rng);
}

uint64_t zw_env_timer(zw_env_t *env, int64_t delay_ms, void (*fn)(void *), void *arg)
{
    return zw_timers_add(zw_loop_timers(env->loop), zw_loop_now_ms() + delay_ms, fn, arg);
}

void zw_env_cancel(zw_env_t *env, uint64_t *timer)
{
    if (*timer) {
        zw_timers_cancel(zw_loop_timers(env->loop), *timer);
        *timer = 0;
    }
}

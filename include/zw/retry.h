/* Error classes and retry timing. One table maps an HTTP status or a curl
 * error to what the worker does next; backoff is capped exponential with
 * full jitter; Retry-After is read as seconds or as an HTTP date. */
#ifndef ZW_RETRY_H
#define ZW_RETRY_H

#include <stdint.h>
#include <time.h>

typedef enum {
    ZW_CLASS_OK = 0,         /* 2xx */
    ZW_CLASS_NOT_FOUND,      /* 404: a definite answer, not an error by itself */
    ZW_CLASS_TRANSIENT,      /* 5xx, 409, timeouts, resets, connection failures: retry */
    ZW_CLASS_RATE_LIMITED,   /* 429: wait Retry-After, stop the tenant */
    ZW_CLASS_AUTH,           /* 401/403: refresh an OAuth token once, then fail */
    ZW_CLASS_PERMANENT,      /* other 4xx (400, 413, 422...): fail, never retry */
} zw_class_t;

/* http_status is 0 when no response arrived; curl_code is a CURLcode (0 when
 * the transfer completed). */
zw_class_t zw_retry_classify(long http_status, int curl_code);

/* "transient", "rate_limited", ... */
const char *zw_class_name(zw_class_t cls);

/* Delay before attempt number `attempt` (1 = the first retry): uniformly
 * random in [0, min(max_ms, base_ms * 2^(attempt-1))]. rng_state is a
 * caller-owned xorshift state (non-zero). */
int64_t zw_backoff_delay_ms(int attempt, int base_ms, int max_ms, uint64_t *rng_state);

/* A Retry-After value: delta-seconds ("120") or an HTTP date
 * ("Wed, 21 Oct 2015 07:28:00 GMT") relative to now. Returns the wait in
 * ms (0 if the date is past), or -1 if the value cannot be read. */
int64_t zw_retry_after_ms(const char *value, time_t now);

/* How long a 429 says to wait: its Retry-After, else its ratelimit-reset
 * seconds (reset_s, < 0 when absent), else fallback_ms; capped like a
 * Retry-After, so a hostile header cannot overflow the wait. */
int64_t zw_retry_429_wait_ms(const char *retry_after, long reset_s, time_t now,
                             int64_t fallback_ms);

#endif

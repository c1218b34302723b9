/* libFuzzer target: Zendesk's response headers as curl hands them, one line
 * at a time (request id, Retry-After, the rate-limit headers, the bulk job
 * and per-user write limits), then what the worker computes from them: the
 * wait of a 429. Any bytes must be read or ignored, and the waits must stay
 * within their caps. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "zw/retry.h"
#include "zw/zendesk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    zw_http_t req;
    long total, remaining, resets;
    char value[256];
    int64_t wait;

    memset(&req, 0, sizeof(req));
    req.rl_limit = req.rl_remaining = req.rl_reset = -1;
    req.jobs_total = req.jobs_remaining = req.jobs_reset = -1;
    req.user_writes_remaining = -1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        zw_http_header_line(&req, p, len);
        p += len;
    }
    if (memchr(req.request_id, '\0', sizeof(req.request_id)) == NULL ||
        memchr(req.retry_after, '\0', sizeof(req.retry_after)) == NULL)
        __builtin_trap(); /* the copies must stay terminated */
    wait = zw_retry_429_wait_ms(req.retry_after, req.rl_reset, (time_t)1764547200, 10000);
    if (wait < 0 || wait > (int64_t)86400 * 1000)
        __builtin_trap();
    /* The whole input as one header value, too. */
    if (size < sizeof(value)) {
        memcpy(value, data, size);
        value[size] = '\0';
        (void)zw_retry_after_ms(value, (time_t)1764547200);
        zw_zendesk_parse_endpoint_limit(value, &total, &remaining, &resets);
    }
    return 0;
}

/* What to do after a request: the one table from HTTP status and CURLcode to
 * an error class, capped exponential backoff with full jitter, and the
 * Retry-After header read as delta-seconds or as any of HTTP's three date
 * formats. No clock reads: callers pass the time and the random state. */
#include "zw/retry.h"

#include <curl/curl.h>
#include <stddef.h>

/* The longest wait any Retry-After may impose. Zendesk asks for seconds to
 * minutes; anything beyond a day is a broken header, and capping it keeps
 * the millisecond arithmetic far from overflow. */
#define RETRY_AFTER_MAX_S 86400

/* Transfer failures that retrying cannot fix: the request, the build or the
 * TLS setup is wrong, or the response broke a cap we set. Every other curl
 * error is the network's (timeouts, resets, refused connections, truncated
 * replies) and is worth another attempt. */
static const int permanent_curl_codes[] = {
    CURLE_UNSUPPORTED_PROTOCOL,
    CURLE_FAILED_INIT,
    CURLE_URL_MALFORMAT,
    CURLE_NOT_BUILT_IN,
    CURLE_WRITE_ERROR,          /* our write callback refused: body over its cap */
    CURLE_READ_ERROR,           /* our read callback failed: request body broken */
    CURLE_BAD_FUNCTION_ARGUMENT,
    CURLE_TOO_MANY_REDIRECTS,
    CURLE_UNKNOWN_OPTION,
    CURLE_SSL_ENGINE_NOTFOUND,
    CURLE_SSL_ENGINE_SETFAILED,
    CURLE_SSL_CERTPROBLEM,      /* client certificate */
    CURLE_SSL_CIPHER,
    CURLE_PEER_FAILED_VERIFICATION, /* server certificate does not verify */
    CURLE_FILESIZE_EXCEEDED,    /* CURLOPT_MAXFILESIZE: the response is too big */
    CURLE_SSL_ENGINE_INITFAILED,
    CURLE_SSL_CACERT_BADFILE,
    CURLE_SSL_CRL_BADFILE,
    CURLE_SSL_ISSUER_ERROR,
    CURLE_SSL_PINNEDPUBKEYNOTMATCH,
    CURLE_SSL_INVALIDCERTSTATUS,
#if LIBCURL_VERSION_NUM >= 0x074d00
    CURLE_SSL_CLIENTCERT,       /* the server wants a client certificate (7.77+) */
#endif
};

static zw_class_t classify_curl(int curl_code)
{
    for (size_t i = 0; i < sizeof(permanent_curl_codes) / sizeof(permanent_curl_codes[0]); i++) {
        if (permanent_curl_codes[i] == curl_code)
            return ZW_CLASS_PERMANENT;
    }
    return ZW_CLASS_TRANSIENT;
}

static zw_class_t classify_status(long s)
{
    if (s >= 200 && s <= 299)
        return ZW_CLASS_OK;
    switch (s) {
    case 401:
    case 403:
        return ZW_CLASS_AUTH;
    case 404:
        return ZW_CLASS_NOT_FOUND;
    case 408: /* request timeout: the server gave up waiting, not a refusal */
    case 409: /* DatabaseConflict: a concurrent write, retry */
        return ZW_CLASS_TRANSIENT;
    case 429:
        return ZW_CLASS_RATE_LIMITED;
    default:
        break;
    }
    if (s >= 500 && s <= 599)
        return ZW_CLASS_TRANSIENT;
    /* Other 4xx are refusals of this request. 1xx/3xx are never final here
     * (no redirects are followed) and anything outside 100..599 is not HTTP:
     * both mean the request or the setup is wrong, so do not loop on them. */
    return ZW_CLASS_PERMANENT;
}

zw_class_t zw_retry_classify(long http_status, int curl_code)
{
    if (curl_code == CURLE_OK)
        return http_status == 0 ? ZW_CLASS_TRANSIENT : classify_status(http_status);
    /* The transfer failed. A non-2xx status that did arrive is the server's
     * answer and says more than the broken transfer (a 429 or 503 whose body
     * was cut off is still a 429 or 503); a 2xx with a failed transfer is
     * not a success. */
    if (http_status >= 300 && http_status <= 599)
        return classify_status(http_status);
    return classify_curl(curl_code);
}

const char *zw_class_name(zw_class_t cls)
{
    switch (cls) {
    case ZW_CLASS_OK:
        return "ok";
    case ZW_CLASS_NOT_FOUND:
        return "not_found";
    case ZW_CLASS_TRANSIENT:
        return "transient";
    case ZW_CLASS_RATE_LIMITED:
        return "rate_limited";
    case ZW_CLASS_AUTH:
        return "auth";
    case ZW_CLASS_PERMANENT:
        return "permanent";
    }
    return "unknown";
}

static uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;

    /* Zero is xorshift's fixed point: nudge it rather than return zeros forever. */
    if (x == 0)
        x = 0x9e3779b97f4a7c15ULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

int64_t zw_backoff_delay_ms(int attempt, int base_ms, int max_ms, uint64_t *rng_state)
{
    int64_t cap;

    if (base_ms <= 0 || max_ms <= 0)
        return 0;
    if (attempt < 1)
        attempt = 1;
    /* base * 2^(attempt-1), stopping at max before it can overflow: base and
     * max fit in an int, so 2^31 * base already exceeds any max. */
    cap = base_ms;
    for (int i = 1; i < attempt && cap < max_ms && i < 32; i++)
        cap *= 2;
    if (cap > max_ms)
        cap = max_ms;
    if (!rng_state)
        return cap;
    /* Full jitter: uniform in [0, cap]. cap + 1 <= 2^31, so the modulo bias is
     * below 2^-32. */
    return (int64_t)(xorshift64(rng_state) % (uint64_t)(cap + 1));
}

/* ---- Retry-After ---- */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* ASCII case-insensitive prefix match; HTTP dates are case-sensitive by the
 * RFC but being lenient costs nothing. */
static int match_word(const char **p, const char *word)
{
    const char *s = *p;

    for (; *word; word++, s++) {
        char a = *s, b = *word;

        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char)(b - 'A' + 'a');
        if (a != b)
            return 0;
    }
    *p = s;
    return 1;
}

static int match_char(const char **p, char c)
{
    if (**p != c)
        return 0;
    (*p)++;
    return 1;
}

/* Exactly n digits (no sign, no more, no fewer). */
static int read_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!is_digit((*p)[i]))
            return 0;
        v = v * 10 + ((*p)[i] - '0');
    }
    if (is_digit((*p)[n]))
        return 0;
    *p += n;
    *out = v;
    return 1;
}

static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const day_names[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const day_names_long[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                             "Friday", "Saturday", "Sunday"};

static int read_month(const char **p, int *month)
{
    for (int i = 0; i < 12; i++) {
        if (match_word(p, month_names[i])) {
            *month = i + 1;
            return 1;
        }
    }
    return 0;
}

static int read_day_name(const char **p, const char *const *names)
{
    for (int i = 0; i < 7; i++) {
        if (match_word(p, names[i]))
            return 1;
    }
    return 0;
}

/* "HH:MM:SS" */
static int read_time(const char **p, int *h, int *m, int *s)
{
    return read_digits(p, 2, h) && match_char(p, ':') && read_digits(p, 2, m) &&
           match_char(p, ':') && read_digits(p, 2, s);
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil): timegm() is not POSIX and mktime() is local time. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Validates the fields and converts them to seconds since the epoch. */
static int to_epoch(int year, int month, int day, int h, int m, int s, int64_t *out)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int dim;

    if (month < 1 || month > 12 || day < 1 || h > 23 || m > 59 || s > 60)
        return 0;
    dim = mdays[month - 1] + (month == 2 && is_leap(year));
    if (day > dim)
        return 0;
    if (s == 60) /* a leap second: the next second is as good */
        s = 59;
    *out = days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + s;
    return 1;
}

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
static int parse_imf(const char *p, int64_t *out)
{
    int d, mo, y, h, mi, s;

    return read_day_name(&p, day_names) && match_char(&p, ',') && match_char(&p, ' ') &&
           read_digits(&p, 2, &d) && match_char(&p, ' ') && read_month(&p, &mo) &&
           match_char(&p, ' ') && read_digits(&p, 4, &y) && match_char(&p, ' ') &&
           read_time(&p, &h, &mi, &s) && match_char(&p, ' ') && match_word(&p, "GMT") &&
           *p == '\0' && to_epoch(y, mo, d, h, mi, s, out);
}

/* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT". The two-digit year is the one
 * closest to now that is not more than 50 years ahead (RFC 9110 5.6.7). */
static int parse_rfc850(const char *p, int64_t *out, int now_year)
{
    int d, mo, yy, h, mi, s, y;

    if (!(read_day_name(&p, day_names_long) && match_char(&p, ',') && match_char(&p, ' ') &&
          read_digits(&p, 2, &d) && match_char(&p, '-') && read_month(&p, &mo) &&
          match_char(&p, '-') && read_digits(&p, 2, &yy) && match_char(&p, ' ') &&
          read_time(&p, &h, &mi, &s) && match_char(&p, ' ') && match_word(&p, "GMT") &&
          *p == '\0'))
        return 0;
    y = now_year - now_year % 100 + yy;
    if (y > now_year + 50)
        y -= 100;
    return to_epoch(y, mo, d, h, mi, s, out);
}

/* asctime: "Sun Nov  6 08:49:37 1994" (the day is space-padded). */
static int parse_asctime(const char *p, int64_t *out)
{
    int d, mo, y, h, mi, s;

    if (!(read_day_name(&p, day_names) && match_char(&p, ' ') && read_month(&p, &mo) &&
          match_char(&p, ' ')))
        return 0;
    if (*p == ' ') {
        p++;
        if (!read_digits(&p, 1, &d))
            return 0;
    } else if (!read_digits(&p, 2, &d)) {
        return 0;
    }
    return match_char(&p, ' ') && read_time(&p, &h, &mi, &s) && match_char(&p, ' ') &&
           read_digits(&p, 4, &y) && *p == '\0' && to_epoch(y, mo, d, h, mi, s, out);
}

/* The UTC year of an epoch time, without gmtime's static buffer. */
static int year_of(int64_t t)
{
    int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t y = 1970 + days / 366; /* an underestimate: walk up from it */

    while (days_from_civil(y + 1, 1, 1) <= days)
        y++;
    while (days_from_civil(y, 1, 1) > days)
        y--;
    return (int)y;
}

int64_t zw_retry_429_wait_ms(const char *retry_after, long reset_s, time_t now,
                             int64_t fallback_ms)
{
    int64_t wait = zw_retry_after_ms(retry_after, now);

    if (wait >= 0)
        return wait;
    if (reset_s > 0)
        return (reset_s > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : (int64_t)reset_s) * 1000;
    return fallback_ms;
}

int64_t zw_retry_after_ms(const char *value, time_t now)
{
    char buf[64];
    size_t len = 0;
    const char *p;
    int64_t when, now_s = (int64_t)now, wait_s;

    if (!value)
        return -1;
    /* Copy without the optional whitespace around a header value; a value
     * too long to be either form is refused here. */
    while (is_space(*value))
        value++;
    while (value[len] && len < sizeof(buf))
        len++;
    if (len == sizeof(buf))
        return -1;
    while (len > 0 && is_space(value[len - 1]))
        len--;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++)
        buf[i] = value[i];
    buf[len] = '\0';

    if (is_digit(buf[0])) {
        /* delta-seconds: 1*DIGIT. Saturate instead of overflowing. */
        wait_s = 0;
        for (p = buf; *p; p++) {
            if (!is_digit(*p))
                return -1;
            if (wait_s <= RETRY_AFTER_MAX_S)
                wait_s = wait_s * 10 + (*p - '0');
        }
        if (wait_s > RETRY_AFTER_MAX_S)
            wait_s = RETRY_AFTER_MAX_S;
        return wait_s * 1000;
    }

    /* now is outside the range the date arithmetic was written for (years
     * 0..9999 are all a date can say): treat it as unreadable. */
    if (now_s < -62135596800LL || now_s > 253402300799LL)
        return -1;
    if (!parse_imf(buf, &when) && !parse_rfc850(buf, &when, year_of(now_s)) &&
        !parse_asctime(buf, &when))
        return -1;
    if (when <= now_s)
        return 0;
    wait_s = when - now_s;
    if (wait_s > RETRY_AFTER_MAX_S)
        wait_s = RETRY_AFTER_MAX_S;
    return wait_s * 1000;
}

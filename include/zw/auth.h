/* A tenant's credentials: the Basic header of an API token, or an OAuth
 * client-credentials token that is fetched, renewed at 80% of its life,
 * retried with backoff and dropped when Zendesk refuses it. Whoever owns the
 * auth (tenant.c) is told through hooks when a grant's answer is handled. */
#ifndef ZW_AUTH_H
#define ZW_AUTH_H

#include <stdbool.h>

#include "zw/config.h"

struct zw_env_s;
typedef struct zw_auth_s zw_auth_t;

/* Upward calls (seam 5), each given arg: hold before a grant's answer is
 * handled and release after it (release pumps the tenants, so events that
 * waited for the token go); refused when the grant was refused, with the
 * answer's HTTP status and error code (what waits for the token fails). */
typedef struct zw_auth_hooks_s {
    void (*hold)(void *arg);
    void (*release)(void *arg);
    void (*refused)(void *arg, long http_status, const char *code);
    void *arg;
} zw_auth_hooks_t;

/* Whether requests may go now. */
typedef enum {
    ZW_CRED_READY = 0, /* zw_auth_header() holds a usable value */
    ZW_CRED_WAIT,      /* a grant is under way or will be retried */
    ZW_CRED_REFUSED,   /* the last grant was refused: fail rather than wait */
} zw_cred_t;

/* New credentials for cfg (lent, as env is, for the auth's lifetime); hooks
 * are copied. An API token is ready at once; an OAuth tenant has no token
 * until zw_auth_check() or zw_auth_fetch() asks for one. NULL when out of
 * memory. */
zw_auth_t *zw_auth_new(struct zw_env_s *env, const zw_tenant_config_t *cfg,
                       const zw_auth_hooks_t *hooks);

/* Wipes the secret and frees; a grant in flight is the loop's to drop.
 * Accepts NULL. */
void zw_auth_destroy(zw_auth_t *a);

/* The Authorization header value ("Basic ..." / "Bearer ..."), lent until
 * the next token; NULL while there is none. A secret: never log it. */
const char *zw_auth_header(const zw_auth_t *a);

/* The current token's generation: requests remember it, so a 401 renews
 * only the token that was refused. */
unsigned zw_auth_gen(const zw_auth_t *a);

/* Whether requests may go; when not, starts a grant if none is under way. */
zw_cred_t zw_auth_check(zw_auth_t *a);

/* Asks for a token now (at start, so the first events need not wait). */
void zw_auth_fetch(zw_auth_t *a);

/* A request carrying token generation gen was answered 401. For an OAuth
 * tenant whose current token that still is, forgets it (the next check
 * fetches a new one) and returns true; otherwise false. */
bool zw_auth_rejected(zw_auth_t *a, unsigned gen);

bool zw_auth_is_oauth(const zw_auth_t *a);

#endif

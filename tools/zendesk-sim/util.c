/*
 * zendesk-sim: small pure helpers (hash map, buffers, clock, base64, cursors, globbing).
 * Nothing here knows about HTTP or accounts, so tests/sim/test_sim_util.c can test it alone.
 */
#include "sim.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sim_strlcpy(char *dst, const char *src, size_t dstsz)
{
    if (!dstsz)
        return;
    size_t n = src ? strlen(src) : 0;
    if (n >= dstsz)
        n = dstsz - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

uint64_t sim_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

void sim_map_init(sim_map_t *map)
{
    map->buckets = NULL;
    map->nbuckets = 0;
    map->count = 0;
}

void sim_map_cleanup(sim_map_t *map)
{
    for (size_t i = 0; i < map->nbuckets; i++) {
        sim_map_entry_t *e = map->buckets[i];
        while (e) {
            sim_map_entry_t *next = e->next;
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(map->buckets);
    sim_map_init(map);
}

void *sim_map_get(const sim_map_t *map, const char *key)
{
    if (!map->nbuckets)
        return NULL;
    uint64_t h = sim_hash(key);
    for (sim_map_entry_t *e = map->buckets[h % map->nbuckets]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e->val;
    return NULL;
}

static int map_grow(sim_map_t *map)
{
    size_t n = map->nbuckets ? map->nbuckets * 2 : 64;
    sim_map_entry_t **b = calloc(n, sizeof(*b));
    if (!b)
        return -1;
    for (size_t i = 0; i < map->nbuckets; i++) {
        sim_map_entry_t *e = map->buckets[i];
        while (e) {
            sim_map_entry_t *next = e->next;
            e->next = b[e->hash % n];
            b[e->hash % n] = e;
            e = next;
        }
    }
    free(map->buckets);
    map->buckets = b;
    map->nbuckets = n;
    return 0;
}

int sim_map_put(sim_map_t *map, const char *key, void *val)
{
    if (map->count >= map->nbuckets && map_grow(map) != 0)
        return -1;
    uint64_t h = sim_hash(key);
    sim_map_entry_t **slot = &map->buckets[h % map->nbuckets];
    for (sim_map_entry_t *e = *slot; e; e = e->next) {
        if (e->hash == h && strcmp(e->key, key) == 0) {
            e->val = val;
            return 0;
        }
    }
    sim_map_entry_t *e = malloc(sizeof(*e));
    if (!e)
        return -1;
    e->key = strdup(key);
    if (!e->key) {
        free(e);
        return -1;
    }
    e->val = val;
    e->hash = h;
    e->next = *slot;
    *slot = e;
    map->count++;
    return 0;
}

void sim_map_del(sim_map_t *map, const char *key)
{
    if (!map->nbuckets)
        return;
    uint64_t h = sim_hash(key);
    sim_map_entry_t **pp = &map->buckets[h % map->nbuckets];
    while (*pp) {
        sim_map_entry_t *e = *pp;
        if (e->hash == h && strcmp(e->key, key) == 0) {
            *pp = e->next;
            free(e->key);
            free(e);
            map->count--;
            return;
        }
        pp = &e->next;
    }
}

int sim_buf_append(sim_buf_t *buf, const void *data, size_t len, size_t max)
{
    if (buf->len + len > max)
        return -1;
    if (buf->len + len + 1 > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 1024;
        while (cap < buf->len + len + 1)
            cap *= 2;
        char *d = realloc(buf->data, cap);
        if (!d)
            return -1;
        buf->data = d;
        buf->cap = cap;
    }
    memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
    return 0;
}

void sim_buf_cleanup(sim_buf_t *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

void sim_lower(char *dst, const char *src, size_t dstsz)
{
    size_t i = 0;
    if (!dstsz)
        return;
    for (; src[i] && i + 1 < dstsz; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = '\0';
}

int64_t sim_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static _Atomic int64_t clock_offset_ms;

int64_t sim_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + atomic_load(&clock_offset_ms);
}

void sim_clock_advance(int64_t ms)
{
    atomic_fetch_add(&clock_offset_ms, ms);
}

int64_t sim_clock_offset(void)
{
    return atomic_load(&clock_offset_ms);
}

void sim_iso8601(int64_t secs, char *out, size_t outsz)
{
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, outsz, "1970-01-01T00:00:00Z");
}

uint64_t sim_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 2685821657736338717ULL;
}

double sim_rand01(uint64_t *state)
{
    return (double)(sim_rand(state) >> 11) / 9007199254740992.0;
}

bool sim_glob(const char *p, const char *t)
{
    const char *star = NULL, *mark = NULL;
    while (*t) {
        if (*p == '*') {
            star = p++;
            mark = t;
        } else if (*p == '?' || *p == *t) {
            p++;
            t++;
        } else if (star) {
            p = star + 1;
            t = ++mark;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int sim_b64_encode(const unsigned char *in, size_t inlen, char *out, size_t outsz)
{
    size_t need = 4 * ((inlen + 2) / 3) + 1;
    if (need > outsz)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < inlen; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < inlen)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < inlen)
            v |= in[i + 2];
        out[o++] = b64chars[(v >> 18) & 63];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < inlen ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < inlen ? b64chars[v & 63] : '=';
    }
    out[o] = '\0';
    return (int)o;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int sim_b64_decode(const char *in, unsigned char *out, size_t outsz)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (; *in && *in != '='; in++) {
        int v = b64val(*in);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= outsz)
                return -1;
            out[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    for (; *in == '='; in++)
        ;
    if (*in)
        return -1;
    out[o] = '\0';
    return (int)o;
}

/* Cursors look like Zendesk's (base64 text) but carry a kind letter so a cursor from
 * one endpoint is refused by another. */
void sim_cursor_encode(char kind, int64_t value, char *out, size_t outsz)
{
    char raw[48];
    int n = snprintf(raw, sizeof(raw), "%c%lld.zs", kind, (long long)value);
    if (sim_b64_encode((const unsigned char *)raw, (size_t)n, out, outsz) < 0 && outsz)
        out[0] = '\0';
}

int sim_cursor_decode(const char *cursor, char kind, int64_t *value)
{
    unsigned char raw[64];
    int n = sim_b64_decode(cursor, raw, sizeof(raw));
    if (n < 5 || raw[0] != (unsigned char)kind || memcmp(raw + n - 3, ".zs", 3) != 0)
        return -1;
    raw[n - 3] = '\0';
    return sim_parse_i64((const char *)raw + 1, value);
}

int sim_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

bool sim_email_valid(const char *email)
{
    const char *at = strchr(email, '@');
    if (!at || at == email || strchr(at + 1, '@'))
        return false;
    const char *dot = strrchr(at + 1, '.');
    if (!dot || dot == at + 1 || dot[1] == '\0')
        return false;
    for (const char *c = email; *c; c++)
        if (isspace((unsigned char)*c) || *c == ',' || *c == ';' || *c == '<' || *c == '>')
            return false;
    return strlen(email) <= 254;
}

void sim_url_encode(const char *s, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < outsz; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (outsz)
        out[o] = '\0';
}

char *sim_error_body(const char *code, const char *desc)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string(code));
    if (desc)
        json_object_object_add(o, "description", json_object_new_string(desc));
    char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return s;
}

/* ---------- responses ---------- */

void sim_resp_header(sim_resp_t *resp, const char *name, const char *val)
{
    for (int i = 0; i < resp->nhdr; i++) {
        if (sim_strcasecmp(resp->hdr_name[i], name) == 0) {
            sim_strlcpy(resp->hdr_val[i], val, sizeof(resp->hdr_val[i]));
            return;
        }
    }
    if (resp->nhdr >= SIM_MAX_HEADERS)
        return;
    sim_strlcpy(resp->hdr_name[resp->nhdr], name, sizeof(resp->hdr_name[0]));
    sim_strlcpy(resp->hdr_val[resp->nhdr], val, sizeof(resp->hdr_val[0]));
    resp->nhdr++;
}

int sim_strcasecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int ca = tolower((unsigned char)*a), cb = tolower((unsigned char)*b);
        if (ca != cb || !ca)
            return ca - cb;
    }
}

void sim_resp_text(sim_resp_t *resp, int status, const char *ctype, const char *body)
{
    free(resp->body);
    resp->status = status;
    resp->body = body ? strdup(body) : NULL;
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    sim_strlcpy(resp->ctype, ctype ? ctype : "text/plain", sizeof(resp->ctype));
}

void sim_resp_json(sim_resp_t *resp, int status, json_object *obj)
{
    const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE);
    sim_resp_text(resp, status, "application/json; charset=utf-8", s);
    json_object_put(obj);
}

void sim_resp_error(sim_resp_t *resp, int status, const char *code, const char *desc)
{
    char *b = sim_error_body(code, desc);
    sim_resp_text(resp, status, "application/json; charset=utf-8", b);
    free(b);
}

void sim_resp_cleanup(sim_resp_t *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

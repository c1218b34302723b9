/* Key queues: same-key work runs one at a time in the order it was added
 * (offset order), different keys never wait for each other, a queue lives
 * exactly as long as its key has work, and a dropped queue (a revoked
 * partition) lets go of every item. Ends with a randomized run against a
 * plain-array model of per-key FIFOs. */
#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zw/keyq.h"

/* Assertion for big loops: ck_assert_* writes a mark point per call. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);                                  \
    } while (0)

/* A piece of work as the worker embeds it: the link is not the first
 * member, so the tests also pin that keyq only ever touches the link. */
typedef struct {
    int64_t offset;
    zw_keyq_link_t link;
    int key;
} work_t;

#define WORK_OF(l) ((work_t *)((char *)(l) - offsetof(work_t, link)))

/* Three events of one key: only the first may start; finishing each hands
 * over to the next in the order they were added, and finishing the last
 * frees the queue. */
START_TEST(test_same_key_runs_in_offset_order)
{
    zw_keyqs_t *qs = zw_keyqs_new();
    work_t w[3] = {{.offset = 10}, {.offset = 11}, {.offset = 12}};

    ck_assert_ptr_nonnull(qs);
    ck_assert_uint_eq(zw_keyqs_count(qs), 0);
    ck_assert_int_eq(zw_keyq_add(qs, "user-1", &w[0].link), 1);
    ck_assert_int_eq(zw_keyq_add(qs, "user-1", &w[1].link), 0);
    ck_assert_int_eq(zw_keyq_add(qs, "user-1", &w[2].link), 0);
    ck_assert_uint_eq(zw_keyqs_count(qs), 1);
    ck_assert_ptr_nonnull(w[2].link.q);
    ck_assert_ptr_eq(w[0].link.q, w[2].link.q);

    ck_assert_ptr_eq(zw_keyq_next(qs, &w[0].link), &w[1].link);
    ck_assert_int_eq(WORK_OF(&w[1].link)->offset, 11);
    ck_assert_ptr_null(w[0].link.q); /* the finished one is in no queue */
    ck_assert_ptr_null(w[0].link.next);
    ck_assert_uint_eq(zw_keyqs_count(qs), 1);

    ck_assert_ptr_eq(zw_keyq_next(qs, &w[1].link), &w[2].link);
    ck_assert_ptr_null(zw_keyq_next(qs, &w[2].link));
    ck_assert_ptr_null(w[2].link.q);
    ck_assert_uint_eq(zw_keyqs_count(qs), 0);
    zw_keyqs_destroy(qs);
}
END_TEST

/* Different keys each get their own head at once, and finishing one key's
 * work neither starts nor disturbs another key's. */
START_TEST(test_distinct_keys_are_independent)
{
    zw_keyqs_t *qs = zw_keyqs_new();
    work_t a1 = {.offset = 1}, b1 = {.offset = 2}, a2 = {.offset = 3}, b2 = {.offset = 4};
    work_t c1 = {.offset = 5};

    ck_assert_int_eq(zw_keyq_add(qs, "a", &a1.link), 1);
    ck_assert_int_eq(zw_keyq_add(qs, "b", &b1.link), 1);
    ck_assert_int_eq(zw_keyq_add(qs, "a", &a2.link), 0);
    ck_assert_int_eq(zw_keyq_add(qs, "b", &b2.link), 0);
    ck_assert_int_eq(zw_keyq_add(qs, "c", &c1.link), 1);
    ck_assert_uint_eq(zw_keyqs_count(qs), 3);
    ck_assert_ptr_ne(a1.link.q, b1.link.q);
    ck_assert_ptr_ne(a1.link.q, c1.link.q);

    /* b finishes first: its successor is b2, never a2. */
    ck_assert_ptr_eq(zw_keyq_next(qs, &b1.link), &b2.link);
    ck_assert_ptr_eq(a2.link.q, a1.link.q);
    ck_assert_ptr_null(zw_keyq_next(qs, &c1.link));
    ck_assert_uint_eq(zw_keyqs_count(qs), 2);
    ck_assert_ptr_null(zw_keyq_next(qs, &b2.link));
    ck_assert_uint_eq(zw_keyqs_count(qs), 1);
    ck_assert_ptr_eq(zw_keyq_next(qs, &a1.link), &a2.link);
    ck_assert_ptr_null(zw_keyq_next(qs, &a2.link));
    ck_assert_uint_eq(zw_keyqs_count(qs), 0);
    zw_keyqs_destroy(qs);
}
END_TEST

/* The key is copied at add: the caller's buffer may change or go away, and
 * keys are compared by content, not by pointer. */
START_TEST(test_key_is_copied)
{
    zw_keyqs_t *qs = zw_keyqs_new();
    work_t w1 = {0}, w2 = {0}, w3 = {0};
    char *key = strdup("tenant/user-42");

    ck_assert_int_eq(zw_keyq_add(qs, key, &w1.link), 1);
    strcpy(key, "tenant/user-43");
    ck_assert_int_eq(zw_keyq_add(qs, "tenant/user-42", &w2.link), 0);
    ck_assert_int_eq(zw_keyq_add(qs, key, &w3.link), 1);
    free(key);
    ck_assert_uint_eq(zw_keyqs_count(qs), 2);
    ck_assert_ptr_eq(zw_keyq_next(qs, &w1.link), &w2.link);
    zw_keyqs_destroy(qs);
}
END_TEST

/* Keys that differ only in case, by a trailing character or by being empty
 * are different keys. */
START_TEST(test_similar_keys_differ)
{
    static const char *const keys[] = {"", "a", "A", "a ", "ab", "a\tb"};
    enum { N = sizeof(keys) / sizeof(keys[0]) };
    zw_keyqs_t *qs = zw_keyqs_new();
    work_t w[N];

    memset(w, 0, sizeof(w));
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(zw_keyq_add(qs, keys[i], &w[i].link), 1);
    ck_assert_uint_eq(zw_keyqs_count(qs), N);
    for (size_t i = 0; i < N; i++)
        ck_assert_ptr_null(zw_keyq_next(qs, &w[i].link));
    ck_assert_uint_eq(zw_keyqs_count(qs), 0);
    zw_keyqs_destroy(qs);
}
END_TEST

/* next() on an item in no queue is a no-op returning NULL: it neither
 * crashes nor touches other queues. */
START_TEST(test_next_on_unqueued_item)
{
    zw_keyqs_t *qs = zw_keyqs_new();
    work_t loose = {0}, a = {0}, b = {0};

    ck_assert_ptr_null(zw_keyq_next(qs, &loose.link));
    ck_assert_int_eq(zw_keyq_add(qs, "k", &a.link), 1);
    ck_assert_int_eq(zw_keyq_add(qs, "k", &b.link), 0);
    ck_assert_ptr_null(zw_keyq_next(qs, &loose.link));
    ck_assert_uint_eq(zw_keyqs_count(qs), 1);
    ck_assert_ptr_eq(zw_keyq_next(qs, &a.link), &b.link);
    /* Finishing a twice: the second time it is in no queue. */
    ck_assert_ptr_null(zw_keyq_next(qs, &a.link));
    ck_assert_ptr_nonnull(b.link.q);
    ck_assert_uint_eq(zw_keyqs_count(qs), 1);
    ck_assert_ptr_null(zw_keyq_next(qs, &b.link));
    zw_keyqs_destroy(qs);
}
END_TEST

/* Dropping through any member (head, middle or tail) lets go of every item
 * of that key, frees the queue, leaves other keys alone, and the key starts
 * afresh on its next add. */
START_TEST(test_drop_releases_whole_queue)
{
    for (int via = 0; via < 3; via++) {
        zw_keyqs_t *qs = zw_keyqs_new();
        work_t w[3], other = {0}, again = {0};

        memset(w, 0, sizeof(w));
        ck_assert_int_eq(zw_keyq_add(qs, "k", &w[0].link), 1);
        ck_assert_int_eq(zw_keyq_add(qs, "other", &other.link), 1);
        ck_assert_int_eq(zw_keyq_add(qs, "k", &w[1].link), 0);
        ck_assert_int_eq(zw_keyq_add(qs, "k", &w[2].link), 0);
        ck_assert_uint_eq(zw_keyqs_count(qs), 2);

        zw_keyq_drop(qs, &w[via].link);
        for (int i = 0; i < 3; i++)
            ck_assert_msg(w[i].link.q == NULL, "via %d: item %d still queued", via, i);
        ck_assert_uint_eq(zw_keyqs_count(qs), 1);
        ck_assert_ptr_nonnull(other.link.q);

        /* Already out: dropping again or finishing is a no-op. */
        zw_keyq_drop(qs, &w[0].link);
        ck_assert_ptr_null(zw_keyq_next(qs, &w[0].link));
        ck_assert_uint_eq(zw_keyqs_count(qs), 1);

        ck_assert_int_eq(zw_keyq_add(qs, "k", &again.link), 1);
        ck_assert_uint_eq(zw_keyqs_count(qs), 2);
        /* A dropped item may be queued again; it waits behind the new head. */
        ck_assert_int_eq(zw_keyq_add(qs, "k", &w[1].link), 0);
        ck_assert_ptr_eq(zw_keyq_next(qs, &again.link), &w[1].link);
        ck_assert_ptr_null(zw_keyq_next(qs, &w[1].link));
        ck_assert_ptr_null(zw_keyq_next(qs, &other.link));
        ck_assert_uint_eq(zw_keyqs_count(qs), 0);
        zw_keyqs_destroy(qs);
    }
}
END_TEST

/* A finished item can be queued again under another key and starts there
 * at once when that key is idle; the key it left keeps its own order. */
START_TEST(test_finished_item_reused)
{
    zw_keyqs_t *qs = zw_keyqs_new();
    work_t a = {0}, b = {0}, c = {0};

    ck_assert_int_eq(zw_keyq_add(qs, "x", &a.link), 1);
    ck_assert_int_eq(zw_keyq_add(qs, "x", &b.link), 0);
    ck_assert_ptr_eq(zw_keyq_next(qs, &a.link), &b.link);
    ck_assert_int_eq(zw_keyq_add(qs, "y", &a.link), 1);
    ck_assert_ptr_ne(a.link.q, b.link.q);
    ck_assert_int_eq(zw_keyq_add(qs, "x", &c.link), 0);
    ck_assert_ptr_eq(zw_keyq_next(qs, &b.link), &c.link);
    ck_assert_uint_eq(zw_keyqs_count(qs), 2);
    zw_keyqs_destroy(qs);
}
END_TEST

/* Destroying the table with queues still alive frees them all (the
 * sanitizer build checks for leaks), leaves the items alone, and NULL is
 * accepted. */
START_TEST(test_destroy_with_live_queues)
{
    zw_keyqs_t *qs = zw_keyqs_new();
    work_t w[50];
    char key[16];

    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "k%d", i % 7);
        ck_assert_int_eq(zw_keyq_add(qs, key, &w[i].link), i < 7 ? 1 : 0);
    }
    ck_assert_uint_eq(zw_keyqs_count(qs), 7);
    zw_keyqs_destroy(qs);
    zw_keyqs_destroy(NULL);
}
END_TEST

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

#define MODEL_KEYS 37
#define MODEL_ITEMS 60000

/* Random adds (in increasing offset), finishes and drops over many keys,
 * against a model holding each key's FIFO of item indices: every add's
 * return value, every successor, the queue count and each item's queued
 * state must agree. */
START_TEST(test_random_against_model)
{
    zw_keyqs_t *qs = zw_keyqs_new();
    work_t *w = calloc(MODEL_ITEMS, sizeof(*w));
    /* fifo[k] holds indices into w; a key's queue is [head[k], tail[k]). */
    int (*fifo)[MODEL_ITEMS] = malloc(sizeof(int[MODEL_KEYS][MODEL_ITEMS]));
    size_t head[MODEL_KEYS] = {0}, tail[MODEL_KEYS] = {0};
    size_t used = 0, alive = 0;
    uint64_t rng = 0xdeadbeefcafef00dULL;
    char key[32];

    REQUIRE(qs && w && fifo);
    while (used < MODEL_ITEMS) {
        uint64_t r = rng_next(&rng);
        int k = (int)(rng_next(&rng) % MODEL_KEYS);

        snprintf(key, sizeof(key), "tenant-%d/user-%d", k % 3, k);
        if (r % 100 < 55) {
            work_t *it = &w[used];
            int ret;

            it->offset = (int64_t)used;
            it->key = k;
            ret = zw_keyq_add(qs, key, &it->link);
            REQUIRE(ret == (head[k] == tail[k] ? 1 : 0));
            if (head[k] == tail[k])
                alive++;
            fifo[k][tail[k]++] = (int)used++;
        } else if (r % 100 < 97) {
            work_t *h, *want;
            zw_keyq_link_t *next;

            if (head[k] == tail[k])
                continue;
            h = &w[fifo[k][head[k]++]];
            next = zw_keyq_next(qs, &h->link);
            REQUIRE(h->link.q == NULL);
            if (head[k] == tail[k]) {
                REQUIRE(next == NULL);
                alive--;
            } else {
                want = &w[fifo[k][head[k]]];
                REQUIRE(next == &want->link);
                REQUIRE(WORK_OF(next)->key == k);
                REQUIRE(WORK_OF(next)->offset > h->offset);
            }
        } else {
            size_t pick;

            if (head[k] == tail[k])
                continue;
            /* Drop through a random member of the queue. */
            pick = head[k] + (size_t)(rng_next(&rng) % (tail[k] - head[k]));
            zw_keyq_drop(qs, &w[fifo[k][pick]].link);
            for (size_t i = head[k]; i < tail[k]; i++)
                REQUIRE(w[fifo[k][i]].link.q == NULL);
            head[k] = tail[k];
            alive--;
        }
        REQUIRE(zw_keyqs_count(qs) == alive);
    }
    /* Drain what is left key by key, in order. */
    for (int k = 0; k < MODEL_KEYS; k++) {
        while (head[k] < tail[k]) {
            zw_keyq_link_t *next = zw_keyq_next(qs, &w[fifo[k][head[k]++]].link);
            REQUIRE(next == (head[k] < tail[k] ? &w[fifo[k][head[k]]].link : NULL));
        }
    }
    ck_assert_uint_eq(zw_keyqs_count(qs), 0);
    free(fifo);
    free(w);
    zw_keyqs_destroy(qs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("keyq");
    TCase *tc = tcase_create("keyq");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_same_key_runs_in_offset_order);
    tcase_add_test(tc, test_distinct_keys_are_independent);
    tcase_add_test(tc, test_key_is_copied);
    tcase_add_test(tc, test_similar_keys_differ);
    tcase_add_test(tc, test_next_on_unqueued_item);
    tcase_add_test(tc, test_drop_releases_whole_queue);
    tcase_add_test(tc, test_finished_item_reused);
    tcase_add_test(tc, test_destroy_with_live_queues);
    tcase_add_test(tc, test_random_against_model);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

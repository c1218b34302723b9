/* Tenants: the lanes and the decisions of a tenant's pump, driven through a
 * recording policy whose send() only logs what would go out (no HTTP, no
 * broker). Lanes are FIFO and take turns; the account budget refuses once
 * spent and lets work go once refilled; a 429 block holds everything until
 * its deadline; a lane waiting on its own limit (writes, export pages) lets
 * the other lanes go; the policy's holds/classify/before_lanes hooks are
 * obeyed; pumping is held and released; budgets follow the replica's share.
 *
 * The pump reads the monotonic clock itself, so no test asserts how long
 * anything took: wake-up deadlines are checked against bounds read around
 * the call, and "time passing" is done by moving a bucket's own clock
 * forward (zw_ratelimit_available at a later time) and firing the wake-up
 * timer by hand. The credentials are API tokens, ready at once: an OAuth
 * tenant would start a token grant over the network. */
#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zw/loop.h"
#include "zw/ratelimit.h"
#include "zw/tenant.h"
#include "zw/timers.h"

#include "env.h"

#define MAX_TENANTS 2
#define MAX_LOG 64
#define LINGER_MS 250

/* A piece of work: the lane item is not the first member on purpose. */
typedef struct {
    int id;
    zw_lane_item_t li;
    int cls;    /* what classify() answers */
    bool held;  /* what holds() answers */
} work_t;

#define WORK_OF(item) ((work_t *)((char *)(item) - offsetof(work_t, li)))

typedef struct {
    size_t tenant;
    int lane;
    int id;
} sent_t;

typedef struct {
    zw_config_t cfg;
    zw_tenant_config_t tc[MAX_TENANTS];
    zw_loop_t *loop;
    zw_env_t env;
    zw_tenants_t *ts;
    sent_t log[MAX_LOG];
    int n_log;
    int before_calls;      /* how often before_lanes() was asked */
    int before_answers[8]; /* what it answers in turn, then 0 */
    int n_before_answers;
} fx_t;

static fx_t fx;

static void fake_send(zw_tenant_t *t, int lane, void *arg)
{
    fx_t *f = arg;
    zw_lane_item_t *item = zw_tenant_pop(t, lane);

    ck_assert_ptr_nonnull(item);
    ck_assert_int_eq(item->lane, lane);
    ck_assert(!item->in_lane);
    ck_assert_int_lt(f->n_log, MAX_LOG);
    f->log[f->n_log++] = (sent_t){zw_tenant_index(t), lane, WORK_OF(item)->id};
}

static void fake_refused(zw_tenant_t *t, zw_lane_item_t *item, long http_status,
                         const char *code, void *arg)
{
    (void)t;
    (void)item;
    (void)http_status;
    (void)code;
    (void)arg;
    ck_abort_msg("credentials refused for an API-token tenant");
}

static bool fake_holds(zw_tenant_t *t, const zw_lane_item_t *item, void *arg)
{
    (void)t;
    (void)arg;
    return WORK_OF(item)->held;
}

static int fake_classify(zw_tenant_t *t, const zw_lane_item_t *item, void *arg)
{
    (void)t;
    (void)arg;
    return WORK_OF(item)->cls;
}

static int fake_before_lanes(zw_tenant_t *t, int64_t now, void *arg)
{
    fx_t *f = arg;

    (void)t;
    (void)now;
    int answer = f->before_calls < f->n_before_answers ? f->before_answers[f->before_calls] : 0;

    f->before_calls++;
    return answer;
}

/* n tenants ("acme", "Globex"), each allowed rpm requests and wpm
 * single-user writes a minute; the policy is set when with_policy. */
static void setup_tenants(size_t n, int rpm, int wpm, bool with_policy)
{
    static const char *const names[MAX_TENANTS] = {"acme", "Globex"};
    char err[256];

    memset(&fx, 0, sizeof(fx));
    for (size_t i = 0; i < n; i++) {
        fx.tc[i].subdomain = (char *)names[i];
        fx.tc[i].plan_rpm = rpm;
        fx.tc[i].single_write_per_minute = wpm;
        fx.tc[i].max_jobs = 30;
        fx.tc[i].auth_type = ZW_AUTH_API_TOKEN;
        fx.tc[i].email = "ops@example.com";
        fx.tc[i].token = "not-a-real-token";
    }
    fx.cfg.zendesk.tenants = fx.tc;
    fx.cfg.zendesk.n_tenants = n;
    fx.cfg.worker.max_in_flight = 16;
    fx.cfg.worker.bulk_linger_ms = LINGER_MS;
    fx.loop = zw_loop_new(0, err, sizeof(err));
    ck_assert_msg(fx.loop != NULL, "%s", err);
    fx.env.cfg = &fx.cfg;
    fx.env.loop = fx.loop;
    fx.env.rng = 1;
    fx.ts = zw_tenants_new(&fx.env, err, sizeof(err));
    ck_assert_msg(fx.ts != NULL, "%s", err);
    if (with_policy) {
        zw_tenant_policy_t p = {
            .before_lanes = fake_before_lanes,
            .holds = fake_holds,
            .classify = fake_classify,
            .bulk_arg = &fx,
            .send = fake_send,
            .refused = fake_refused,
            .work_arg = &fx,
        };
        zw_tenants_set_policy(fx.ts, &p);
    }
}

static void setup(void)
{
    setup_tenants(1, 12000, 60000, true);
}

static void teardown(void)
{
    zw_tenants_destroy(fx.ts);
    zw_loop_destroy(fx.loop);
    memset(&fx, 0, sizeof(fx));
}

static zw_tenant_t *tenant0(void)
{
    return zw_tenants_at(fx.ts, 0);
}

static zw_timers_t *timers(void)
{
    return zw_loop_timers(fx.loop);
}

/* Spins until the monotonic clock has moved on by a millisecond, so that
 * what happens next is provably later (nothing is timed). */
static void next_ms(void)
{
    int64_t t0 = zw_loop_now_ms();

    while (zw_loop_now_ms() == t0)
        ;
}

/* Asserts the ids of lane, head to tail. */
static void assert_lane(zw_tenant_t *t, int lane, const int *ids, int n)
{
    zw_lane_item_t *item = zw_tenant_lane_head(t, lane);

    for (int i = 0; i < n; i++, item = item->next) {
        ck_assert_msg(item != NULL, "lane %d: %d items, want %d", lane, i, n);
        ck_assert_msg(WORK_OF(item)->id == ids[i], "lane %d item %d: id %d, want %d", lane, i,
                      WORK_OF(item)->id, ids[i]);
        ck_assert(item->in_lane);
        ck_assert_int_eq(item->lane, lane);
    }
    ck_assert_msg(item == NULL, "lane %d: more than %d items", lane, n);
}

/* Asserts the sent log: lanes and ids in order. */
static void assert_sent(const int *lanes, const int *ids, int n)
{
    ck_assert_int_eq(fx.n_log, n);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(fx.log[i].lane == lanes[i] && fx.log[i].id == ids[i],
                      "send %d: lane %d id %d, want lane %d id %d", i, fx.log[i].lane,
                      fx.log[i].id, lanes[i], ids[i]);
    }
}

/* ---- lanes ---- */

/* While pumping is held, pushed work waits in its lane in push order, is
 * counted, and pops out head first; an empty lane pops NULL. */
START_TEST(test_lane_is_fifo)
{
    zw_tenant_t *t = tenant0();
    work_t w[4] = {{.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}};

    zw_tenants_hold(fx.ts);
    for (int i = 0; i < 4; i++)
        zw_tenant_push(t, &w[i].li, ZW_LANE_READ);
    assert_lane(t, ZW_LANE_READ, (int[]){1, 2, 3, 4}, 4);
    assert_lane(t, ZW_LANE_WRITE, NULL, 0);
    ck_assert_int_eq(fx.n_log, 0);
    ck_assert_int_eq(zw_tenant_waiting(t, 0), 4);

    ck_assert_ptr_eq(zw_tenant_pop(t, ZW_LANE_READ), &w[0].li);
    ck_assert(!w[0].li.in_lane);
    ck_assert_ptr_null(w[0].li.next);
    ck_assert_ptr_eq(zw_tenant_pop(t, ZW_LANE_READ), &w[1].li);
    ck_assert_int_eq(zw_tenant_waiting(t, 0), 2);
    ck_assert_ptr_null(zw_tenant_pop(t, ZW_LANE_WRITE));
    ck_assert_ptr_eq(zw_tenant_pop(t, ZW_LANE_READ), &w[2].li);
    ck_assert_ptr_eq(zw_tenant_pop(t, ZW_LANE_READ), &w[3].li);
    ck_assert_ptr_null(zw_tenant_pop(t, ZW_LANE_READ));
    ck_assert_ptr_null(zw_tenant_lane_head(t, ZW_LANE_READ));
    ck_assert_int_eq(zw_tenant_waiting(t, 0), 0);
    /* An emptied lane takes work again from the head. */
    zw_tenant_push(t, &w[1].li, ZW_LANE_READ);
    assert_lane(t, ZW_LANE_READ, (int[]){2}, 1);
}
END_TEST

/* Removing from the middle, the tail and the head, and unlinking with the
 * previous item given, keep the lane linked and its tail right (the next
 * push lands at the end); removing an item not in a lane changes nothing. */
START_TEST(test_remove_keeps_lane_consistent)
{
    zw_tenant_t *t = tenant0();
    work_t w[6];

    for (int i = 0; i < 6; i++)
        w[i] = (work_t){.id = i + 1};
    zw_tenants_hold(fx.ts);
    for (int i = 0; i < 4; i++)
        zw_tenant_push(t, &w[i].li, ZW_LANE_WRITE);
    zw_tenant_remove(t, &w[2].li); /* middle */
    ck_assert(!w[2].li.in_lane);
    assert_lane(t, ZW_LANE_WRITE, (int[]){1, 2, 4}, 3);
    zw_tenant_remove(t, &w[3].li); /* tail */
    assert_lane(t, ZW_LANE_WRITE, (int[]){1, 2}, 2);
    zw_tenant_push(t, &w[4].li, ZW_LANE_WRITE);
    assert_lane(t, ZW_LANE_WRITE, (int[]){1, 2, 5}, 3);
    zw_tenant_unlink(t, &w[1].li, &w[0].li);
    assert_lane(t, ZW_LANE_WRITE, (int[]){1, 5}, 2);
    zw_tenant_remove(t, &w[0].li); /* head */
    assert_lane(t, ZW_LANE_WRITE, (int[]){5}, 1);
    ck_assert_int_eq(zw_tenant_waiting(t, 0), 1);
    zw_tenant_remove(t, &w[0].li); /* not in a lane any more */
    zw_tenant_remove(t, &w[2].li);
    ck_assert_int_eq(zw_tenant_waiting(t, 0), 1);
    zw_tenant_remove(t, &w[4].li); /* the only one: head and tail */
    assert_lane(t, ZW_LANE_WRITE, NULL, 0);
    zw_tenant_push(t, &w[5].li, ZW_LANE_WRITE);
    assert_lane(t, ZW_LANE_WRITE, (int[]){6}, 1);
    ck_assert_int_eq(zw_tenant_waiting(t, 0), 1);
}
END_TEST

/* Until a policy is set nothing is sent: pushed work just waits. */
START_TEST(test_nothing_sent_without_policy)
{
    work_t w = {.id = 1};

    teardown();
    setup_tenants(1, 12000, 60000, false);
    zw_tenant_push(tenant0(), &w.li, ZW_LANE_READ);
    zw_tenants_pump_all(fx.ts);
    ck_assert_int_eq(fx.n_log, 0);
    assert_lane(tenant0(), ZW_LANE_READ, (int[]){1}, 1);
}
END_TEST

/* ---- taking turns ---- */

/* With budget to spare, the three lanes take turns (read, write, sync,
 * read, ...), each in its own FIFO order, and an empty lane loses its
 * turn. */
START_TEST(test_lanes_take_turns)
{
    zw_tenant_t *t = tenant0();
    work_t w[7];
    static const int lanes[7] = {ZW_LANE_READ, ZW_LANE_READ, ZW_LANE_READ, ZW_LANE_WRITE,
                                 ZW_LANE_WRITE, ZW_LANE_SYNC, ZW_LANE_SYNC};

    zw_tenants_hold(fx.ts);
    for (int i = 0; i < 7; i++) {
        w[i] = (work_t){.id = i + 1};
        zw_tenant_push(t, &w[i].li, lanes[i]);
    }
    ck_assert_int_eq(fx.n_log, 0);
    zw_tenants_release(fx.ts);
    assert_sent((int[]){ZW_LANE_READ, ZW_LANE_WRITE, ZW_LANE_SYNC, ZW_LANE_READ, ZW_LANE_WRITE,
                        ZW_LANE_SYNC, ZW_LANE_READ},
                (int[]){1, 4, 6, 2, 5, 7, 3}, 7);
    for (int lane = 0; lane < ZW_N_LANES; lane++)
        ck_assert_ptr_null(zw_tenant_lane_head(t, lane));
    ck_assert_uint_eq(zw_timers_count(timers()), 0);
}
END_TEST

/* The turn carries over between pumps: after a read went, the next push to
 * both read and write lanes sends the write first. */
START_TEST(test_turn_carries_over)
{
    zw_tenant_t *t = tenant0();
    work_t r1 = {.id = 1}, r2 = {.id = 2}, w1 = {.id = 3};

    zw_tenant_push(t, &r1.li, ZW_LANE_READ); /* sent at once */
    zw_tenants_hold(fx.ts);
    zw_tenant_push(t, &r2.li, ZW_LANE_READ);
    zw_tenant_push(t, &w1.li, ZW_LANE_WRITE);
    zw_tenants_release(fx.ts);
    assert_sent((int[]){ZW_LANE_READ, ZW_LANE_WRITE, ZW_LANE_READ}, (int[]){1, 3, 2}, 3);
}
END_TEST

/* ---- the account budget ---- */

/* 120 requests a minute hold a burst of 10: of 15 pushed reads 10 go, the
 * rest wait with one wake-up set within the time a token takes (500 ms);
 * more work adds no second wake-up. Once the bucket has refilled and the
 * wake-up fires, the waiting work goes, in order. */
START_TEST(test_budget_refuses_when_spent_then_refills)
{
    zw_tenant_t *t;
    zw_ratelimit_t *budget;
    work_t w[16];
    int64_t before, after, due;

    teardown();
    setup_tenants(1, 120, 60000, true);
    t = tenant0();
    budget = zw_tenant_budget(t);
    before = zw_loop_now_ms();
    for (int i = 0; i < 15; i++) {
        w[i] = (work_t){.id = i + 1};
        zw_tenant_push(t, &w[i].li, ZW_LANE_READ);
    }
    after = zw_loop_now_ms();
    ck_assert_int_eq(fx.n_log, 10);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(fx.log[i].id, i + 1);
    assert_lane(t, ZW_LANE_READ, (int[]){11, 12, 13, 14, 15}, 5);
    ck_assert_uint_eq(zw_timers_count(timers()), 1);
    due = zw_timers_next_due(timers());
    ck_assert_int_ge(due, before + 1);
    ck_assert_int_le(due, after + 500);

    w[15] = (work_t){.id = 16};
    zw_tenant_push(t, &w[15].li, ZW_LANE_WRITE);
    ck_assert_int_eq(fx.n_log, 10);
    ck_assert_uint_eq(zw_timers_count(timers()), 1);

    /* A minute later the bucket is full again (its clock moved on). */
    ck_assert(zw_ratelimit_available(budget, zw_loop_now_ms() + 60000) >= 10 - 1e-9);
    ck_assert_uint_eq(zw_timers_run(timers(), due), 1);
    ck_assert_int_eq(fx.n_log, 16);
    /* Turns resumed: the write got its turn among the reads. */
    assert_sent((int[]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ZW_LANE_WRITE, 0, 0, 0, 0, 0},
                (int[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 11, 12, 13, 14, 15}, 16);
    ck_assert_uint_eq(zw_timers_count(timers()), 0);
}
END_TEST

/* A 429 (block_until) and a response saying nothing is left until the
 * reset (observe) both stop every lane until their deadline: the wake-up is
 * set for the deadline, the bucket still refuses a millisecond before it,
 * and the work goes once it has passed. */
START_TEST(test_429_blocks_until_given_time)
{
    for (int how = 0; how < 2; how++) {
        zw_tenant_t *t = tenant0();
        zw_ratelimit_t *budget = zw_tenant_budget(t);
        work_t r = {.id = 1}, wr = {.id = 2};
        int64_t now = zw_loop_now_ms(), until, due;

        if (how == 0) {
            until = now + 30000;
            zw_ratelimit_block_until(budget, until);
        } else {
            zw_ratelimit_observe(budget, now, 0, 700, 45, 1.0);
            until = now + 45000;
        }
        ck_assert_int_eq(zw_ratelimit_blocked_until(budget), until);
        zw_tenant_push(t, &r.li, ZW_LANE_READ);
        zw_tenant_push(t, &wr.li, ZW_LANE_WRITE);
        ck_assert_msg(fx.n_log == 0, "how %d: sent while blocked", how);
        ck_assert_uint_eq(zw_timers_count(timers()), 1);
        due = zw_timers_next_due(timers());
        ck_assert_int_ge(due, until);
        ck_assert_int_lt(due, until + 1000); /* the clock read twice in between */

        ck_assert_int_eq(zw_ratelimit_take(budget, until - 1), 1);
        /* The deadline passes for the bucket: the take there clears the
         * block; its token is given back for the pump to use. */
        ck_assert_int_eq(zw_ratelimit_take(budget, until), 0);
        zw_ratelimit_refund(budget);
        ck_assert_int_eq(zw_ratelimit_blocked_until(budget), 0);
        ck_assert_uint_eq(zw_timers_run(timers(), due), 1);
        assert_sent((int[]){ZW_LANE_READ, ZW_LANE_WRITE}, (int[]){1, 2}, 2);
        teardown();
        setup();
    }
}
END_TEST

/* ---- lanes under their own limits ---- */

/* Writes have their own limit (600 a minute holds a burst of 1): once it
 * is spent the write lane waits with a wake-up within a write's interval
 * (100 ms) while reads keep going, and the write refused is not charged to
 * the account budget. */
START_TEST(test_write_limit_lets_other_lanes_go)
{
    zw_tenant_t *t;
    work_t w[5];
    static const int lanes[5] = {ZW_LANE_WRITE, ZW_LANE_WRITE, ZW_LANE_WRITE, ZW_LANE_READ,
                                 ZW_LANE_READ};
    int64_t before, after, due;

    teardown();
    setup_tenants(1, 120, 600, true);
    t = tenant0();
    zw_tenants_hold(fx.ts);
    for (int i = 0; i < 5; i++) {
        w[i] = (work_t){.id = i + 1};
        zw_tenant_push(t, &w[i].li, lanes[i]);
    }
    before = zw_loop_now_ms();
    zw_tenants_release(fx.ts);
    after = zw_loop_now_ms();
    assert_sent((int[]){ZW_LANE_READ, ZW_LANE_WRITE, ZW_LANE_READ}, (int[]){4, 1, 5}, 3);
    assert_lane(t, ZW_LANE_WRITE, (int[]){2, 3}, 2);
    ck_assert_uint_eq(zw_timers_count(timers()), 1);
    due = zw_timers_next_due(timers());
    ck_assert_int_ge(due, before + 1);
    ck_assert_int_le(due, after + 100);
    /* Three requests went out of a burst of 10: the refused write's token
     * was refunded (without the refund 6 would be left). */
    ck_assert(zw_ratelimit_available(zw_tenant_budget(t), zw_loop_now_ms()) >= 7 - 1e-6);

    /* When the write limit has a token again the next write goes. */
    ck_assert(zw_ratelimit_available(zw_tenant_writes(t), zw_loop_now_ms() + 100) >= 1 - 1e-9);
    zw_timers_run(timers(), due);
    ck_assert_int_eq(fx.n_log, 4);
    ck_assert_int_eq(fx.log[3].id, 2);
    assert_lane(t, ZW_LANE_WRITE, (int[]){3}, 1);
}
END_TEST

/* Incremental export pages are under Zendesk's 10 a minute (a burst of
 * 1): a second export page waits (wake-up within 6 s) while a read still
 * goes. Snapshot pages not marked export_page are under no such limit. */
START_TEST(test_export_limit_only_for_export_pages)
{
    zw_tenant_t *t = tenant0();
    work_t e1 = {.id = 1}, e2 = {.id = 2}, r1 = {.id = 3}, p[3];
    int64_t before, after, due;

    e1.li.export_page = true;
    e2.li.export_page = true;
    zw_tenants_hold(fx.ts);
    zw_tenant_push(t, &e1.li, ZW_LANE_SYNC);
    zw_tenant_push(t, &e2.li, ZW_LANE_SYNC);
    zw_tenant_push(t, &r1.li, ZW_LANE_READ);
    before = zw_loop_now_ms();
    zw_tenants_release(fx.ts);
    after = zw_loop_now_ms();
    assert_sent((int[]){ZW_LANE_READ, ZW_LANE_SYNC}, (int[]){3, 1}, 2);
    assert_lane(t, ZW_LANE_SYNC, (int[]){2}, 1);
    ck_assert(e2.li.export_page); /* the owner's flag is left alone */
    ck_assert_uint_eq(zw_timers_count(timers()), 1);
    due = zw_timers_next_due(timers());
    ck_assert_int_ge(due, before + 1);
    ck_assert_int_le(due, after + 6000);
    zw_tenant_remove(t, &e2.li);

    /* Full-walk pages: all three go although the export limit is spent. */
    fx.n_log = 0;
    zw_tenants_hold(fx.ts);
    for (int i = 0; i < 3; i++) {
        p[i] = (work_t){.id = 10 + i};
        zw_tenant_push(t, &p[i].li, ZW_LANE_SYNC);
    }
    zw_tenants_release(fx.ts);
    assert_sent((int[]){ZW_LANE_SYNC, ZW_LANE_SYNC, ZW_LANE_SYNC}, (int[]){10, 11, 12}, 3);
}
END_TEST

/* ---- the policy's hooks ---- */

/* An item the policy holds (a bulk job takes it soon) is passed over
 * before the budget is asked: with a budget of one request (12 a minute),
 * a held read at the front of the turn order costs nothing, the write
 * behind it gets the request, and no wake-up is set for the held one. Once
 * no longer held it waits for the budget like any other. */
START_TEST(test_held_item_is_skipped)
{
    zw_tenant_t *t;
    work_t r1 = {.id = 1, .held = true}, w1 = {.id = 2};
    int64_t due;

    teardown();
    setup_tenants(1, 12, 60000, true);
    t = tenant0();
    zw_tenants_hold(fx.ts);
    zw_tenant_push(t, &r1.li, ZW_LANE_READ);
    zw_tenant_push(t, &w1.li, ZW_LANE_WRITE);
    zw_tenants_release(fx.ts);
    assert_sent((int[]){ZW_LANE_WRITE}, (int[]){2}, 1);
    assert_lane(t, ZW_LANE_READ, (int[]){1}, 1);
    ck_assert_uint_eq(zw_timers_count(timers()), 0);

    r1.held = false;
    zw_tenant_pump(t);
    ck_assert_int_eq(fx.n_log, 1); /* the one request is spent */
    ck_assert_uint_eq(zw_timers_count(timers()), 1);
    due = zw_timers_next_due(timers());
    ck_assert(zw_ratelimit_available(zw_tenant_budget(t), zw_loop_now_ms() + 5000) >= 1 - 1e-9);
    zw_timers_run(timers(), due);
    assert_sent((int[]){ZW_LANE_WRITE, ZW_LANE_READ}, (int[]){2, 1}, 2);
}
END_TEST

/* before_lanes goes first on every turn: while it says it sent something
 * (1) it is asked again before any lane, when it says the budget is spent
 * (-1) the lanes are not tried, and at 0 the lanes go. */
START_TEST(test_before_lanes_first)
{
    zw_tenant_t *t = tenant0();
    work_t r = {.id = 1}, r2 = {.id = 2};

    fx.before_answers[0] = 1;
    fx.before_answers[1] = 1;
    fx.before_answers[2] = 0;
    fx.n_before_answers = 3;
    zw_tenant_push(t, &r.li, ZW_LANE_READ);
    /* 1, 1, then 0 and the read went; then 0 again and nothing was left. */
    ck_assert_int_eq(fx.before_calls, 4);
    assert_sent((int[]){ZW_LANE_READ}, (int[]){1}, 1);

    fx.before_calls = 0;
    fx.before_answers[0] = -1;
    fx.n_before_answers = 1;
    zw_tenant_push(t, &r2.li, ZW_LANE_READ);
    ck_assert_int_eq(fx.before_calls, 1);
    ck_assert_int_eq(fx.n_log, 1);
    assert_lane(t, ZW_LANE_READ, (int[]){2}, 1);
    zw_tenant_pump(t);
    ck_assert_int_eq(fx.before_calls, 3);
    assert_sent((int[]){ZW_LANE_READ, ZW_LANE_READ}, (int[]){1, 2}, 2);
}
END_TEST

/* classify() gives each item its class when pushed (out of range: 0);
 * waiting() counts each class across lanes, and ready_at() is when the
 * first of a class began to wait plus the linger, kept while more join. */
START_TEST(test_classes_counted_with_linger)
{
    zw_tenant_t *t = tenant0();
    work_t a = {.id = 1, .cls = 2}, b = {.id = 2, .cls = 2}, c = {.id = 3, .cls = 3};
    work_t odd = {.id = 4, .cls = 7}, neg = {.id = 5, .cls = -1};
    int64_t before, after, ready;

    zw_tenants_hold(fx.ts);
    before = zw_loop_now_ms();
    zw_tenant_push(t, &a.li, ZW_LANE_WRITE);
    after = zw_loop_now_ms();
    ready = zw_tenant_ready_at(t, 2);
    ck_assert_int_ge(ready, before + LINGER_MS);
    ck_assert_int_le(ready, after + LINGER_MS);
    next_ms(); /* b joins later: the class's deadline stays a's */
    zw_tenant_push(t, &b.li, ZW_LANE_READ);
    zw_tenant_push(t, &c.li, ZW_LANE_WRITE);
    zw_tenant_push(t, &odd.li, ZW_LANE_WRITE);
    zw_tenant_push(t, &neg.li, ZW_LANE_SYNC);
    ck_assert_int_eq(a.li.cls, 2);
    ck_assert_int_eq(odd.li.cls, 0);
    ck_assert_int_eq(neg.li.cls, 0);
    ck_assert_int_eq(zw_tenant_waiting(t, 0), 2);
    ck_assert_int_eq(zw_tenant_waiting(t, 1), 0);
    ck_assert_int_eq(zw_tenant_waiting(t, 2), 2);
    ck_assert_int_eq(zw_tenant_waiting(t, 3), 1);
    ck_assert_int_eq(zw_tenant_ready_at(t, 2), ready);
    ck_assert_int_eq(zw_tenant_waiting(t, -1), 0);
    ck_assert_int_eq(zw_tenant_waiting(t, ZW_TENANT_CLASSES), 0);
    ck_assert_int_eq(zw_tenant_ready_at(t, ZW_TENANT_CLASSES), 0);

    zw_tenant_remove(t, &a.li);
    ck_assert_int_eq(zw_tenant_waiting(t, 2), 1);
    /* The policy changes its mind about one item, then about all. */
    b.cls = 3;
    zw_tenant_reclassify(t, &b.li);
    ck_assert_int_eq(b.li.cls, 3);
    ck_assert_int_eq(zw_tenant_waiting(t, 2), 0);
    ck_assert_int_eq(zw_tenant_waiting(t, 3), 2);
    b.cls = 0;
    c.cls = 1;
    odd.cls = 1;
    zw_tenant_recount(t);
    ck_assert_int_eq(zw_tenant_waiting(t, 0), 2);
    ck_assert_int_eq(zw_tenant_waiting(t, 1), 2);
    ck_assert_int_eq(zw_tenant_waiting(t, 3), 0);
    ck_assert_ptr_eq(zw_tenant_pop(t, ZW_LANE_WRITE), &c.li);
    ck_assert_int_eq(zw_tenant_waiting(t, 1), 1);
}
END_TEST

/* ---- holding, rotation, share ---- */

/* Holding nests: work pushed while held twice goes only after the second
 * release; an extra release is harmless. */
START_TEST(test_hold_nests)
{
    zw_tenant_t *t = tenant0();
    work_t r = {.id = 1};

    zw_tenants_hold(fx.ts);
    zw_tenants_hold(fx.ts);
    zw_tenant_push(t, &r.li, ZW_LANE_READ);
    zw_tenant_pump(t);
    zw_tenants_release(fx.ts);
    ck_assert_int_eq(fx.n_log, 0);
    zw_tenants_release(fx.ts);
    ck_assert_int_eq(fx.n_log, 1);
    zw_tenants_release(fx.ts);
    ck_assert_int_eq(fx.n_log, 1);
}
END_TEST

/* pump_all starts at a rotating tenant, so no tenant is always last: two
 * releases in a row serve the two tenants in opposite orders. */
START_TEST(test_pump_all_rotates)
{
    work_t w[4];

    teardown();
    setup_tenants(2, 12000, 60000, true);
    for (int round = 0; round < 2; round++) {
        zw_tenants_hold(fx.ts);
        for (size_t i = 0; i < 2; i++) {
            w[round * 2 + (int)i] = (work_t){.id = round * 2 + (int)i};
            zw_tenant_push(zw_tenants_at(fx.ts, i), &w[round * 2 + (int)i].li, ZW_LANE_READ);
        }
        zw_tenants_release(fx.ts);
    }
    ck_assert_int_eq(fx.n_log, 4);
    ck_assert_uint_ne(fx.log[0].tenant, fx.log[1].tenant);
    ck_assert_uint_ne(fx.log[2].tenant, fx.log[3].tenant);
    ck_assert_uint_ne(fx.log[0].tenant, fx.log[2].tenant);
}
END_TEST

/* The replica's share scales the account budget and the write limit (their
 * bursts follow the rate), not the export limit. */
START_TEST(test_share_scales_budgets)
{
    zw_tenant_t *t;
    int64_t later;

    teardown();
    setup_tenants(1, 1200, 6000, true);
    t = tenant0();
    later = zw_loop_now_ms() + 3600000;
    ck_assert_double_eq_tol(zw_tenants_share(fx.ts), 1.0, 1e-12);
    ck_assert_double_eq_tol(zw_ratelimit_available(zw_tenant_budget(t), later), 100, 1e-9);
    ck_assert_double_eq_tol(zw_ratelimit_available(zw_tenant_writes(t), later), 10, 1e-9);
    zw_tenants_set_share(fx.ts, 0.5);
    ck_assert_double_eq_tol(zw_tenants_share(fx.ts), 0.5, 1e-12);
    later += 3600000;
    ck_assert_double_eq_tol(zw_ratelimit_available(zw_tenant_budget(t), later), 50, 1e-9);
    ck_assert_double_eq_tol(zw_ratelimit_available(zw_tenant_writes(t), later), 5, 1e-9);
    ck_assert_double_eq_tol(zw_ratelimit_available(zw_tenant_exports(t), later), 1, 1e-9);
}
END_TEST

/* Throttled means more than 30 s of the tenant's budget share in memory,
 * or a 429 block of more than a second: a burst at a good rate is not
 * throttled, the same events at 10 requests a minute are, and the share
 * counts (half the budget: twice the time). The backlog split follows. */
START_TEST(test_throttled_by_time_to_drain)
{
    zw_tenant_t *a, *g;
    zw_tenants_backlog_t b;
    int64_t now = zw_loop_now_ms();

    teardown();
    setup_tenants(2, 600, 6000, true); /* 10 requests a second */
    a = zw_tenants_at(fx.ts, 0);
    g = zw_tenants_at(fx.ts, 1);
    ck_assert(!zw_tenant_throttled(a, now));
    zw_tenant_add_events(a, 300); /* 30 s of work: not more than 30 */
    ck_assert(!zw_tenant_throttled(a, now));
    zw_tenant_add_events(a, 1);
    ck_assert(zw_tenant_throttled(a, now));
    zw_tenant_add_events(a, -301);
    zw_tenant_add_events(a, 200);
    ck_assert(!zw_tenant_throttled(a, now));
    zw_tenants_set_share(fx.ts, 0.5); /* 5 a second: 40 s */
    ck_assert(zw_tenant_throttled(a, now));
    zw_tenants_set_share(fx.ts, 1.0);
    /* A 429 block: throttled while it lasts more than a second, events or not. */
    ck_assert(!zw_tenant_throttled(g, now));
    zw_ratelimit_block_until(zw_tenant_budget(g), now + 60000);
    ck_assert(zw_tenant_throttled(g, now));
    ck_assert(!zw_tenant_throttled(g, now + 59500));
    zw_tenant_add_deferred(a, 7);
    zw_tenant_add_events(g, 3);
    zw_tenant_add_deferred(g, 40);
    zw_tenants_backlog(fx.ts, now, &b);
    ck_assert_int_eq(b.ready_held, 200);
    ck_assert_int_eq(b.ready_deferred, 7);
    ck_assert_int_eq(b.throttled_held, 3);
    ck_assert_int_eq(b.throttled_deferred, 40);
    zw_tenant_add_events(a, -200);
    zw_tenant_add_events(g, -3);
    zw_tenant_add_deferred(a, -7);
    zw_tenant_add_deferred(g, -40);
}
END_TEST

/* ---- the table ---- */

/* Tenants are found by subdomain, case-insensitively, and only configured
 * ones; each has its index, name, configuration, credentials and three
 * separate buckets; sending no request is a no-op. */
START_TEST(test_find_and_accessors)
{
    zw_tenant_t *a, *g;

    teardown();
    setup_tenants(2, 12000, 60000, true);
    ck_assert_uint_eq(zw_tenants_count(fx.ts), 2);
    a = zw_tenants_find(fx.ts, "ACME");
    g = zw_tenants_find(fx.ts, "globex");
    ck_assert_ptr_eq(a, zw_tenants_at(fx.ts, 0));
    ck_assert_ptr_eq(g, zw_tenants_at(fx.ts, 1));
    ck_assert_ptr_null(zw_tenants_at(fx.ts, 2));
    ck_assert_ptr_null(zw_tenants_find(fx.ts, "initech"));
    ck_assert_ptr_null(zw_tenants_find(fx.ts, "acme.zendesk.com"));
    ck_assert_ptr_null(zw_tenants_find(fx.ts, ""));
    ck_assert_ptr_null(zw_tenants_find(fx.ts, NULL));
    ck_assert_uint_eq(zw_tenant_index(g), 1);
    ck_assert_str_eq(zw_tenant_name(g), "Globex");
    ck_assert_ptr_eq(zw_tenant_config(g), &fx.tc[1]);
    ck_assert_ptr_nonnull(zw_tenant_auth(a));
    ck_assert_ptr_ne(zw_tenant_auth(a), zw_tenant_auth(g));
    ck_assert_ptr_nonnull(zw_tenant_budget(a));
    ck_assert_ptr_ne(zw_tenant_budget(a), zw_tenant_writes(a));
    ck_assert_ptr_ne(zw_tenant_budget(a), zw_tenant_exports(a));
    ck_assert_ptr_ne(zw_tenant_writes(a), zw_tenant_exports(a));
    ck_assert_ptr_ne(zw_tenant_budget(a), zw_tenant_budget(g));
    ck_assert_ptr_null(zw_tenant_send(a, NULL, NULL, NULL));
}
END_TEST

/* A table with no tenants works: nothing to find, pumping all is a no-op. */
START_TEST(test_no_tenants)
{
    teardown();
    setup_tenants(0, 0, 0, true);
    ck_assert_uint_eq(zw_tenants_count(fx.ts), 0);
    ck_assert_ptr_null(zw_tenants_at(fx.ts, 0));
    ck_assert_ptr_null(zw_tenants_find(fx.ts, "acme"));
    zw_tenants_pump_all(fx.ts);
    zw_tenants_hold(fx.ts);
    zw_tenants_release(fx.ts);
    zw_tenants_destroy(NULL);
}
END_TEST

/* The per-tenant counters add up what they are given. */
START_TEST(test_counters)
{
    zw_tenant_t *t = tenant0();

    ck_assert_int_eq(zw_tenant_looking(t), 0);
    ck_assert_int_eq(zw_tenant_events(t), 0);
    ck_assert_int_eq(zw_tenant_deferred(t), 0);
    zw_tenant_add_looking(t, 3);
    zw_tenant_add_looking(t, -1);
    zw_tenant_add_events(t, 5);
    zw_tenant_add_deferred(t, 2);
    zw_tenant_add_deferred(t, -2);
    ck_assert_int_eq(zw_tenant_looking(t), 2);
    ck_assert_int_eq(zw_tenant_events(t), 5);
    ck_assert_int_eq(zw_tenant_deferred(t), 0);
}
END_TEST

/* The earliest wake-up wins: a later one is ignored, an earlier one
 * replaces it; after it fires a new one may be set. */
START_TEST(test_wake_earliest_wins)
{
    zw_tenant_t *t = tenant0();
    int64_t before, after, due;

    zw_tenant_wake_in(t, 5000);
    before = zw_loop_now_ms();
    zw_tenant_wake_in(t, 1000);
    after = zw_loop_now_ms();
    ck_assert_uint_eq(zw_timers_count(timers()), 1);
    due = zw_timers_next_due(timers());
    ck_assert_int_ge(due, before + 1000);
    ck_assert_int_le(due, after + 1000);
    zw_tenant_wake_in(t, 9000);
    ck_assert_uint_eq(zw_timers_count(timers()), 1);
    ck_assert_int_eq(zw_timers_next_due(timers()), due);
    ck_assert_uint_eq(zw_timers_run(timers(), due), 1);
    ck_assert_uint_eq(zw_timers_count(timers()), 0);
    zw_tenant_wake_in(t, 9000);
    ck_assert_uint_eq(zw_timers_count(timers()), 1);
    /* Destroying the tenants (teardown) cancels it. */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tenant");
    TCase *tc = tcase_create("tenant");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_lane_is_fifo);
    tcase_add_test(tc, test_remove_keeps_lane_consistent);
    tcase_add_test(tc, test_nothing_sent_without_policy);
    tcase_add_test(tc, test_lanes_take_turns);
    tcase_add_test(tc, test_turn_carries_over);
    tcase_add_test(tc, test_budget_refuses_when_spent_then_refills);
    tcase_add_test(tc, test_429_blocks_until_given_time);
    tcase_add_test(tc, test_write_limit_lets_other_lanes_go);
    tcase_add_test(tc, test_export_limit_only_for_export_pages);
    tcase_add_test(tc, test_held_item_is_skipped);
    tcase_add_test(tc, test_before_lanes_first);
    tcase_add_test(tc, test_classes_counted_with_linger);
    tcase_add_test(tc, test_hold_nests);
    tcase_add_test(tc, test_pump_all_rotates);
    tcase_add_test(tc, test_share_scales_budgets);
    tcase_add_test(tc, test_find_and_accessors);
    tcase_add_test(tc, test_no_tenants);
    tcase_add_test(tc, test_counters);
    tcase_add_test(tc, test_wake_earliest_wins);
    tcase_add_test(tc, test_throttled_by_time_to_drain);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

"""Zendesk misbehaving: a 429 storm on one tenant, 5xx / 409 / dropped and hung
connections, an OAuth token that expires mid-run. Nothing may be lost, and one tenant's
trouble must not hold up another."""
import time
from collections import Counter

from conftest import assert_outcome, event, joiner, one_active, only, user_writes, wait_for


def test_429_storm_blocks_only_that_tenant(make_env):
    env = make_env(partitions=3)
    retry_after = 4
    # Every acme API call answers 429 until 6 have been refused (plain-text body, which a
    # client must not parse). globex is healthy. The worker sends one request per wait once
    # blocked (acme's lookups share one show_many), so 6 refusals are about 20 s of waiting.
    env.sim.add_script("acme", [{"method": "*", "path": "/api/v2/*", "count": 6, "status": 429,
                                 "headers": {"Retry-After": str(retry_after)},
                                 "body": "Rate limit exceeded"}])
    acme = [joiner("acme", f"T{i:02d}", "agent") for i in range(30)]
    globex = [joiner("globex", f"U{i:02d}", "agent") for i in range(30)]
    env.start_worker(tenant_over={"acme": {"plan_rpm": 700, "single_user_write_rpm": 600},
                                  "globex": {"plan_rpm": 60000, "single_user_write_rpm": 60000}})
    mixed = [ev for pair in zip(acme, globex) for ev in pair]
    inputs = env.send(mixed)
    results = env.wait_results(inputs, timeout=90)
    for inp in inputs:
        assert_outcome(only(results, inp), "succeeded", "created", inp)

    alog = env.sim.requests("acme")
    refused = [r for r in alog if r["status"] == 429]
    assert len(refused) == 6, Counter(r["status"] for r in alog)
    assert env.sim.ctl("GET", "/accounts/acme")["scripts_pending"] == 0
    t0 = refused[0]["time_ms"]
    # After a 429, acme is left alone until Retry-After has passed (requests already in
    # flight may land just after the first 429; nothing new for the rest of the wait).
    early = [r for r in alog if t0 + 1000 < r["time_ms"] < t0 + retry_after * 1000 - 200]
    assert not early, (f"acme was called during its Retry-After wait ({retry_after}s after "
                       f"the first 429 at {t0}): {[(r['time_ms'] - t0, r['endpoint'], r['status']) for r in early]}")

    ts = {sub: sorted(r.timestamp_ms for r in env.results if r.input.event["tenant"] == sub)
          for sub in ("acme", "globex")}
    assert ts["globex"][-1] < ts["acme"][-1], \
        f"globex's last result ({ts['globex'][-1]}) came after acme's last ({ts['acme'][-1]})"
    # globex went on at full speed while acme waited: all of it was done inside acme's wait.
    assert ts["globex"][-1] < t0 + retry_after * 1000, \
        (f"globex finished {ts['globex'][-1] - t0} ms after acme's first 429; acme's "
         f"Retry-After of {retry_after}s held globex up")
    assert not [r for r in env.sim.requests("globex") if r["status"] == 429]

    users = env.sim.users_by_ext("acme")
    for ev in acme:
        one_active(users, ev["person"]["external_id"])
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_5xx_conflicts_drops_and_hangs_lose_nothing(make_env):
    env = make_env(partitions=3)
    faults = {"error_rate": 0.15, "error_statuses": [500, 502, 503], "conflict_rate": 0.05,
              "drop_rate": 0.08, "hang_rate": 0.02, "hang_ms": 4000}
    for sub in ("acme", "globex"):
        env.sim.set_faults(sub, faults)
    people = [joiner("acme" if i % 2 else "globex", f"F{i:03d}", "agent" if i % 3 else "end-user",
                     tags=[f"t{i}"]) for i in range(60)]
    movers = [event("mover", p["tenant"], p["person"]["external_id"], {"name": f"Moved {i}"})
              for i, p in enumerate(people[:20])]
    # A timeout well under hang_ms so hung requests are retried; generous attempts, as a
    # 30% failure share would otherwise exhaust five attempts for about one event in 200.
    env.start_worker(timeout_ms=1000, worker={"max_attempts": 12})
    inputs = env.send(people + movers)
    results = env.wait_results(inputs, timeout=120)
    for inp in inputs[:len(people)]:
        assert_outcome(only(results, inp), "succeeded", "created", inp)
    for inp in inputs[len(people):]:
        assert_outcome(only(results, inp), "succeeded", "updated", inp)
    attempts = [only(results, inp)["attempts"] for inp in inputs]
    assert max(attempts) > 1, f"no event needed a retry: {attempts}"

    seen = Counter()
    for sub in ("acme", "globex"):
        seen.update(r["status"] for r in env.sim.requests(sub))
    assert seen[0] and seen[409] and (seen[500] + seen[502] + seen[503]), \
        f"the faults did not fire: {seen}"
    for sub in ("acme", "globex"):
        users = env.sim.users_by_ext(sub)
        mine = [p for p in people if p["tenant"] == sub]
        assert len(users) == len(mine), (sub, sorted(users))
        for i, p in enumerate(people):
            if p["tenant"] != sub:
                continue
            u = one_active(users, p["person"]["external_id"])
            assert u["role"] == p["person"]["role"] and u["tags"] == p["person"]["tags"], u
            assert u["name"] == (f"Moved {i}" if i < 20 else p["person"]["name"]), u
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_one_persons_write_limit_does_not_stall_the_others(make_env):
    """Zendesk allows five writes a minute per person. The sixth for one person is refused
    with 429 and zendesk-ratelimit-create-update-user remaining=0: that event waits out the
    Retry-After; the tenant's other writes go on meanwhile."""
    env = make_env(partitions=1)
    env.sim.ctl("PUT", "/accounts/acme/limits", {"limits_enabled": True, "rpm": 0,
                                                 "user_write_per_sec": 0,
                                                 "user_write_per_user_min": 5})
    env.sim.seed_user("acme", "W00")
    env.start_worker(worker={"bulk_min_items": 0})
    env.sim.ctl("POST", "/clock", {"align_minute": True})
    first = env.send([event("mover", "acme", "W00", {"name": f"Name {k}"}) for k in range(5)])
    res1 = env.wait_results(first)
    for inp in first:
        assert_outcome(only(res1, inp), "succeeded", "updated", inp)
    # 55 s into the simulator's minute: the sixth write waits about 5 s, not a minute.
    env.sim.ctl("POST", "/clock", {"advance_s": 55})
    sixth = env.send([event("mover", "acme", "W00", {"name": "Name 5"})])[0]
    others = env.send([joiner("acme", f"W{i:02d}") for i in range(1, 21)])
    results = env.wait_results([sixth] + others, timeout=60)
    res6 = only(results, sixth)
    assert_outcome(res6, "succeeded", "updated", sixth)
    assert res6["attempts"] >= 2, res6
    for inp in others:
        assert_outcome(only(results, inp), "succeeded", "created", inp)
    last_other = max(r.timestamp_ms for inp in others for r in results[inp])
    sixth_at = results[sixth][0].timestamp_ms
    assert last_other < sixth_at - 1000, \
        f"the others finished {sixth_at - last_other} ms before the waiting person: they waited too"
    log = env.sim.requests("acme")
    refused = [r for r in log if r["status"] == 429]
    assert len(refused) == 1, Counter(r["status"] for r in log)
    assert one_active(env.sim.users_by_ext("acme"), "W00")["name"] == "Name 5"
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_oauth_token_expiry_mid_run(make_env):
    env = make_env(partitions=3)
    first = [joiner("globex", f"O{i:02d}", "agent") for i in range(20)]
    env.start_worker()
    res1 = env.wait_results(env.send(first))
    for inp, res in res1.items():
        assert_outcome(only(res1, inp), "succeeded", "created", inp)
    tokens_before = [r for r in env.sim.requests("globex") if r["path"] == "/oauth/tokens"]
    assert len(tokens_before) == 1, f"expected one token grant so far: {tokens_before}"

    # The simulator's clock jumps past the token's 1800 s lifetime: the worker's cached
    # token is now refused with 401 and must be fetched again, once.
    env.sim.ctl("POST", "/clock", {"advance_s": 1801})
    second = [joiner("globex", f"P{i:02d}", "end-user") for i in range(20)]
    second += [event("mover", "globex", f"O{i:02d}", {"tags": ["after-expiry"]}) for i in range(10)]
    inputs = env.send(second)
    res2 = env.wait_results(inputs)
    for inp in inputs[:20]:
        assert_outcome(only(res2, inp), "succeeded", "created", inp)
    for inp in inputs[20:]:
        assert_outcome(only(res2, inp), "succeeded", "updated", inp)

    log = env.sim.requests("globex")
    grants = [r for r in log if r["path"] == "/oauth/tokens"]
    assert len(grants) > 1, "the worker never fetched a new token after expiry"
    assert all(r["status"] in (200, 201) for r in grants), grants
    assert len(grants) <= 3, (f"{len(grants)} token grants for one expiry: concurrent 401s "
                              f"should share one refresh")
    assert any(r["status"] == 401 for r in log), "no request was refused: did the token expire?"
    users = env.sim.users_by_ext("globex")
    assert len(users) == 40 and all(len(v) == 1 for v in users.values())
    assert one_active(users, "O03")["tags"] == ["after-expiry"]
    assert not user_writes(env.sim.requests("acme"))
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_failure_classes(make_env):
    """Each way Zendesk can refuse for good gets a failed result with its class, after the
    retries its class allows and no more; the partition and the other tenants go on."""
    env = make_env(partitions=1, extra_accounts=("perm", "badauth", "flaky", "throttled", "oauthbad"))
    env.sim.add_script("perm", [{"method": "POST", "path": "/api/v2/users/create_or_update",
                                 "count": 100, "status": 422,
                                 "body": {"error": "RecordInvalid", "description": "Record validation errors",
                                          "details": {"email": [{"description": "Email: p1@perm.example is already being used by another user",
                                                                 "error": "DuplicateValue"}]}}}])
    env.sim.add_script("flaky", [{"path": "/api/v2/*", "count": 1000, "status": 503,
                                  "body": {"error": "DatabaseTimeout", "description": "timeout"}}])
    env.sim.add_script("throttled", [{"path": "/api/v2/*", "count": 1000, "status": 429,
                                      "headers": {"Retry-After": "1"}, "body": "Rate limit exceeded"}])
    wrong = env.secrets_dir / "wrong"
    wrong.write_text("not-the-secret")
    env.start_worker(
        worker={"retry_deadline_ms": 6000},
        extra_tenants=[env.token_tenant("perm"), env.token_tenant("badauth", token_file=wrong),
                       env.token_tenant("flaky"), env.token_tenant("throttled"),
                       {"subdomain": "oauthbad", "plan_rpm": 6000, "single_user_write_rpm": 6000,
                        "auth": {"type": "oauth_client_credentials", "client_id": "zw",
                                 "client_secret_file": str(wrong), "scope": "users:read users:write"}}])
    plan = [(joiner("perm", "P1"), "permanent", 422),
            (joiner("badauth", "B1"), "auth", 401),
            (joiner("flaky", "X1"), "transient_exhausted", 503),
            (joiner("throttled", "T1"), "rate_limited", 429),
            (joiner("oauthbad", "O1"), "auth", None),
            (joiner("acme", "GOOD1"), None, None)]
    inputs = env.send([ev for ev, _, _ in plan])
    results = env.wait_results(inputs, timeout=60)
    for inp, (ev, cls, status) in zip(inputs, plan):
        res = only(results, inp)
        if cls is None:
            assert_outcome(res, "succeeded", "created", inp)
            continue
        assert res["status"] == "failed" and res["error"]["class"] == cls, (cls, res)
        if status is not None:
            assert res["error"].get("http_status") == status, (cls, res)
        assert res["error"]["message"], res
    perm = only(results, inputs[0])
    assert perm["error"].get("code") in ("DuplicateValue", "RecordInvalid"), perm
    # A 422 is not retried; a refused API token is not retried; a 503 is retried until
    # max_attempts (5) calls were made.
    assert len(user_writes(env.sim.requests("perm"))) == 1, env.sim.requests("perm")
    assert len(env.sim.requests("badauth")) == 1, env.sim.requests("badauth")
    assert len(env.sim.requests("flaky")) == 5, [(r["endpoint"], r["status"]) for r in env.sim.requests("flaky")]
    assert only(results, inputs[2])["attempts"] == 5
    grants = [r for r in env.sim.requests("oauthbad") if r["path"] == "/oauth/tokens"]
    assert grants and all(r["status"] in (400, 401) for r in grants), grants
    assert len(grants) <= 2, f"a refused client secret was tried {len(grants)} times for one event"
    assert not [r for r in env.sim.requests("oauthbad") if r["path"].startswith("/api/")]
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_oauth_token_renewed_before_expiry(make_env):
    """With short-lived tokens and steady traffic, the worker renews ahead of expiry: more
    than one grant, and no request refused for an expired token."""
    env = make_env(partitions=3)
    env.sim.ctl("PATCH", "/accounts/globex", {"token_ttl": 8})
    env.start_worker()
    inputs = []
    start = time.monotonic()
    for second in range(12):  # one small batch a second for 12 s, past the 8 s lifetime
        inputs += env.send([joiner("globex", f"R{second:02d}{i}") for i in range(3)])
        wait_for(lambda s=second: time.monotonic() - start >= s + 1, 5, "the next second")
        env.poll_outputs(0)
    results = env.wait_results(inputs)
    for inp in inputs:
        assert_outcome(only(results, inp), "succeeded", "created", inp)
    log = env.sim.requests("globex")
    grants = [r for r in log if r["path"] == "/oauth/tokens"]
    assert len(grants) >= 2, f"one token grant in 12 s of 8 s tokens: {grants}"
    refused = [(r["endpoint"], r["time_ms"]) for r in log if r["status"] == 401]
    assert not refused, f"requests refused with 401: the token was not renewed before expiry: {refused}"
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()

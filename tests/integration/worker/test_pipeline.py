"""Every event type and leaver policy, idempotent replay, and dry run, end to end:
broker -> worker -> zendesk-sim -> results topic, asserting the results, the simulator's
request log and its final state."""
from collections import Counter

from conftest import (assert_outcome, event, joiner, one_active, only, user_writes)

CHANGING = {"created", "updated", "downgraded", "suspended", "deleted", "reactivated"}


def seed_and_clear(env, seeds):
    """Creates users in the simulator before the worker starts; returns ext -> user."""
    out = {}
    for sub, ext, kw in seeds:
        out[ext] = env.sim.seed_user(sub, ext, **kw)
    for sub in env.sim.accounts:
        env.sim.clear_requests(sub)
    return out


def test_every_event_type_and_leaver_policy(make_env):
    env = make_env(partitions=3, extra_accounts=("initech",))
    seeded = seed_and_clear(env, [
        ("acme", "A11", {"role": "agent", "tags": ["old"]}),
        ("acme", "A12", {"role": "agent", "tags": ["same"], "name": "Person A12"}),
        ("globex", "G03", {"role": "agent"}),
        ("initech", "I02", {"role": "agent"}),
        ("initech", "I03", {"role": "end-user", "suspended": True}),
    ])
    rich = {"locale": "de", "time_zone": "Europe/Berlin", "phone": "+49301234567",
            "tags": ["hr-managed", "support"], "user_fields": {"department": "Support"},
            "organization_id": 7, "custom_role_id": 42}
    # (event, expected status/outcome), in produce order; same key = same person.
    plan = [
        (joiner("acme", "A01", "agent", **rich), "created"),
        (joiner("acme", "A02", "end-user"), "created"),
        (event("mover", "acme", "A02", {"role": "agent", "name": "Moved A02", "tags": ["moved"],
                                        "user_fields": {"department": "Sales"}}), "updated"),
        (joiner("acme", "A03", "agent"), "created"),
        (event("leaver", "acme", "A03"), "downgraded"),
        (joiner("acme", "A04", "end-user"), "created"),
        (event("leaver", "acme", "A04"), "suspended"),
        (joiner("acme", "A05", "agent"), "created"),
        (event("leaver", "acme", "A05", leaver="suspend"), "suspended"),
        (joiner("acme", "A06", "agent"), "created"),
        (event("leaver", "acme", "A06", leaver="delete"), "deleted"),
        (event("leaver", "acme", "A07"), "not_found"),
        (joiner("acme", "A08", "agent"), "created"),
        (event("leaver", "acme", "A08"), "downgraded"),
        (event("rehire", "acme", "A08", {"role": "agent"}), "reactivated"),
        (joiner("acme", "A09", "end-user"), "created"),
        (event("leaver", "acme", "A09", leaver="suspend"), "suspended"),
        (joiner("acme", "A09", "end-user"), "reactivated"),
        (joiner("acme", "A10", "end-user"), "created"),
        (joiner("acme", "A10", "end-user", name="Renamed A10"), "updated"),
        (joiner("acme", "A10", "end-user", name="Renamed A10"), "unchanged"),
        (event("mover", "acme", "A11", {"tags": ["new"], "user_fields": {"level": 3}}), "updated"),
        (event("mover", "acme", "A12", {"role": "agent", "tags": ["same"], "name": "Person A12"}),
         "unchanged"),
        # globex: OAuth, tenant policy suspend
        (joiner("globex", "G01", "agent"), "created"),
        (event("leaver", "globex", "G01"), "suspended"),
        (joiner("globex", "G02", "end-user", tags=["a"]), "created"),
        (event("mover", "globex", "G02", {"tags": ["b", "c"]}), "updated"),
        (event("leaver", "globex", "G03", leaver="downgrade_suspend"), "downgraded"),
        # initech: tenant policy delete
        (joiner("initech", "I01", "agent"), "created"),
        (event("leaver", "initech", "I01"), "deleted"),
        (event("leaver", "initech", "I02", leaver="suspend"), "suspended"),
        (event("rehire", "initech", "I03", {"role": "agent"}), "reactivated"),
    ]
    env.start_worker(
        tenant_over={"globex": {"leaver_policy": "suspend"}},
        extra_tenants=[{"subdomain": "initech", "plan_rpm": 6000, "single_user_write_rpm": 6000,
                        "leaver_policy": "delete",
                        "auth": {"type": "api_token", "email": "admin@initech.test",
                                 "token_file": str(env.secrets_dir / "initech-token")}}])
    inputs = env.send([ev for ev, _ in plan])
    results = env.wait_results(inputs)
    env.settle(1.0)

    # Results: one each, with the outcome the event asks for.
    ids = {}
    for inp, (ev, outcome) in zip(inputs, plan):
        res = only(results, inp)
        assert_outcome(res, "succeeded", outcome, inp)
        assert res["dry_run"] is False
        assert res.get("error") is None, res
        if outcome == "not_found":
            assert res.get("zendesk_user_id") is None, res
        else:
            assert isinstance(res.get("zendesk_user_id"), int), res
            assert res["attempts"] >= 1, res
            ext = ev["person"]["external_id"]
            ids.setdefault(ext, res["zendesk_user_id"])
            assert res["zendesk_user_id"] == ids[ext], f"{ext}: user id changed: {res}"

    # The simulator's state is exactly what the events ask for.
    acme = env.sim.users_by_ext("acme")
    globex = env.sim.users_by_ext("globex")
    initech = env.sim.users_by_ext("initech")
    a01 = one_active(acme, "A01")
    assert (a01["role"], a01["suspended"], a01["email"], a01["name"]) == \
        ("agent", False, "a01@acme.example", "Person A01"), a01
    for k in ("locale", "time_zone", "phone", "organization_id", "custom_role_id"):
        assert a01[k] == rich[k], (k, a01)
    assert sorted(a01["tags"]) == sorted(rich["tags"]) and a01["user_fields"] == rich["user_fields"], a01
    a02 = one_active(acme, "A02")
    assert (a02["role"], a02["name"], sorted(a02["tags"]), a02["user_fields"].get("department")) == \
        ("agent", "Moved A02", ["moved"], "Sales"), a02
    for ext, role, suspended in [("A03", "end-user", True), ("A04", "end-user", True),
                                 ("A05", "agent", True), ("A08", "agent", False),
                                 ("A09", "end-user", False), ("A10", "end-user", False)]:
        u = one_active(acme, ext)
        assert (u["role"], u["suspended"]) == (role, suspended), (ext, u)
    assert one_active(acme, "A10")["name"] == "Renamed A10"
    a06 = acme.get("a06", [])
    assert len(a06) == 1 and a06[0]["active"] is False and a06[0]["deleted_at"], a06
    assert "a07" not in acme, acme.get("a07")
    a11 = one_active(acme, "A11")
    assert sorted(a11["tags"]) == ["new"] and a11["user_fields"].get("level") == 3, a11
    assert a11["id"] == seeded["A11"]["id"]
    g01 = one_active(globex, "G01")
    assert (g01["role"], g01["suspended"]) == ("agent", True), g01
    assert sorted(one_active(globex, "G02")["tags"]) == ["b", "c"]
    g03 = one_active(globex, "G03")
    assert (g03["role"], g03["suspended"]) == ("end-user", True), g03
    i01 = initech.get("i01", [])
    assert len(i01) == 1 and i01[0]["active"] is False, i01
    i02 = one_active(initech, "I02")
    assert (i02["role"], i02["suspended"]) == ("agent", True), i02
    i03 = one_active(initech, "I03")
    assert (i03["role"], i03["suspended"]) == ("agent", False), i03
    # Nobody else was created.
    expect_ext = {"acme": {"a01", "a02", "a03", "a04", "a05", "a06", "a08", "a09", "a10", "a11", "a12"},
                  "globex": {"g01", "g02", "g03"}, "initech": {"i01", "i02", "i03"}}
    for sub, users in (("acme", acme), ("globex", globex), ("initech", initech)):
        assert set(users) == expect_ext[sub], (sub, sorted(users))
        assert all(len(v) == 1 for v in users.values()), users

    # At most one lookup per event (events waiting together share one show_many) and
    # exactly one write per event that changed something; every Zendesk request id a
    # result names is one the simulator answered.
    for sub in ("acme", "globex", "initech"):
        log = env.sim.requests(sub)
        sub_inputs = [(inp, o) for inp, (ev, o) in zip(inputs, plan) if ev["tenant"] == sub]
        lookups = [r for r in log if r["endpoint"] == "GET /api/v2/users/show_many"]
        writes = user_writes(log)
        assert 1 <= len(lookups) <= len(sub_inputs), (sub, Counter(r["endpoint"] for r in log))
        assert len(writes) == sum(o in CHANGING for _, o in sub_inputs), \
            (sub, [(r["method"], r["path"], r["status"]) for r in writes])
        known = {r["request_id"] for r in log}
        for inp, _ in sub_inputs:
            res = only(results, inp)
            assert res.get("zendesk_request_ids"), f"{inp.key}: no zendesk_request_ids: {res}"
            assert set(res["zendesk_request_ids"]) <= known, (res["zendesk_request_ids"], sub)
    assert env.sim.requests("globex") and any(
        r["path"] == "/oauth/tokens" for r in env.sim.requests("globex")), "globex used no OAuth token"

    w = env.workers[0]
    env.stop_worker(w)
    env.assert_commits_at_end()

    # attempts counts how often the event's Zendesk calls were tried (schema): with no
    # fault injected nothing was retried, so every event that called Zendesk says 1.
    tries = {inp.key + " " + inp.event["type"]: only(results, inp)["attempts"] for inp in inputs}
    assert all(a == 1 for a in tries.values()), \
        f"attempts != 1 though nothing failed (a lookup and a write are one try): {tries}"


def test_idempotent_replay(make_env):
    env = make_env(partitions=3)
    seed_and_clear(env, [
        ("acme", "R02", {"role": "end-user"}),
        ("acme", "R03", {"role": "agent"}),
        ("acme", "R04", {"role": "end-user"}),
        ("acme", "R05", {"role": "agent"}),
        ("acme", "R06", {"role": "end-user", "suspended": True}),
        ("globex", "S02", {"role": "end-user"}),
        ("globex", "S03", {"role": "agent"}),
    ])
    plan = [
        (joiner("acme", "R01", "agent", tags=["x"], user_fields={"team": "blue"}), "created", "unchanged"),
        (event("mover", "acme", "R02", {"name": "Moved R02", "tags": ["m"]}), "updated", "unchanged"),
        (event("leaver", "acme", "R03"), "downgraded", "unchanged"),
        (event("leaver", "acme", "R04", leaver="suspend"), "suspended", "unchanged"),
        (event("leaver", "acme", "R05", leaver="delete"), "deleted", "not_found"),
        (event("rehire", "acme", "R06", {"role": "agent"}), "reactivated", "unchanged"),
        (event("leaver", "acme", "R07"), "not_found", "not_found"),
        (joiner("globex", "S01", "agent"), "created", "unchanged"),
        (event("mover", "globex", "S02", {"role": "agent", "locale": "fr"}), "updated", "unchanged"),
        (event("leaver", "globex", "S03"), "downgraded", "unchanged"),
    ]
    # More people so that the replay runs many keys concurrently.
    for i in range(20):
        sub = "acme" if i % 2 else "globex"
        plan.append((joiner(sub, f"N{i:02d}", "agent" if i % 3 else "end-user"), "created", "unchanged"))
    env.start_worker()
    first = env.send([ev for ev, _, _ in plan])
    res1 = env.wait_results(first)
    for inp, (_, outcome, _) in zip(first, plan):
        assert_outcome(only(res1, inp), "succeeded", outcome, inp)

    before = {sub: {u["id"]: u for u in env.sim.all_users(sub)} for sub in ("acme", "globex")}
    for sub in ("acme", "globex"):
        env.sim.clear_requests(sub)
    # The same bytes and headers again: a replay.
    from conftest import Input
    replay = env.produce([Input(i.key, i.value, i.headers, i.event) for i in first])
    res2 = env.wait_results(replay)
    env.settle(1.0)
    for inp, (_, _, outcome) in zip(replay, plan):
        assert_outcome(only(res2, inp), "succeeded", outcome, inp)
    for inp in first:
        assert len(env.results_for(inp)) == 1, f"{inp.key}: the first run's event got another result"

    for sub in ("acme", "globex"):
        writes = user_writes(env.sim.requests(sub))
        assert not writes, f"{sub}: the replay wrote: {[(r['method'], r['path']) for r in writes]}"
        after = {u["id"]: u for u in env.sim.all_users(sub)}
        assert after == before[sub], f"{sub}: the replay changed the simulator's users"
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_dry_run(make_env):
    env = make_env(partitions=3)
    seed_and_clear(env, [
        ("acme", "D02", {"role": "end-user"}),
        ("acme", "D03", {"role": "agent"}),
        ("acme", "D04", {"role": "end-user"}),
        ("acme", "D05", {"role": "agent"}),
        ("acme", "D06", {"role": "end-user", "suspended": True}),
        ("acme", "D07", {"role": "agent"}),
        ("globex", "E02", {"role": "agent"}),
    ])
    plan = [
        (joiner("acme", "D01", "agent"), "would_create"),
        (joiner("acme", "D02", "end-user", name="Another Name"), "would_update"),
        (event("leaver", "acme", "D03"), "would_downgrade"),
        (event("leaver", "acme", "D04"), "would_suspend"),
        (event("leaver", "acme", "D05", leaver="delete"), "would_delete"),
        (event("rehire", "acme", "D06", {"role": "agent"}), "would_reactivate"),
        (event("mover", "acme", "D07", {"tags": ["t1"]}), "would_update"),
        (event("leaver", "acme", "D07", leaver="suspend"), "would_suspend"),
        (joiner("globex", "E01", "end-user"), "would_create"),
        (event("leaver", "globex", "E02", leaver="suspend"), "would_suspend"),
    ]
    for ev, _ in plan:
        ev["dry_run"] = True
    before = {sub: {u["id"]: u for u in env.sim.all_users(sub)} for sub in ("acme", "globex")}
    env.start_worker()
    inputs = env.send([ev for ev, _ in plan])
    results = env.wait_results(inputs)
    env.settle(0.5)
    for inp, (_, outcome) in zip(inputs, plan):
        res = only(results, inp)
        assert_outcome(res, "dry_run", outcome, inp)
        assert res["dry_run"] is True, res
    for sub in ("acme", "globex"):
        log = env.sim.requests(sub)
        writes = user_writes(log)
        assert not writes, f"{sub}: a dry run wrote: {[(r['method'], r['path']) for r in writes]}"
        assert any(r["endpoint"] == "GET /api/v2/users/show_many" for r in log), \
            f"{sub}: a dry run must read the current state"
        assert {u["id"]: u for u in env.sim.all_users(sub)} == before[sub], f"{sub}: users changed"
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_dry_run_for_the_whole_worker(make_env):
    env = make_env(partitions=1)
    seed_and_clear(env, [("acme", "W02", {"role": "agent"})])
    plan = [(joiner("acme", "W01", "agent"), "would_create"),
            (event("leaver", "acme", "W02"), "would_downgrade"),
            (joiner("globex", "W03", "agent"), "would_create")]
    env.start_worker(worker={"dry_run": True})
    inputs = env.send([ev for ev, _ in plan])
    results = env.wait_results(inputs)
    for inp, (_, outcome) in zip(inputs, plan):
        res = only(results, inp)
        assert_outcome(res, "dry_run", outcome, inp)
        assert res["dry_run"] is True, res
    for sub in ("acme", "globex"):
        assert not user_writes(env.sim.requests(sub)), f"{sub}: worker.dry_run wrote"
    assert "w01" not in env.sim.users_by_ext("acme")
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_slow_key_does_not_stall_its_partition(make_env):
    """Different keys run concurrently within one partition; the same key runs in order."""
    env = make_env(partitions=1)
    slow = seed_and_clear(env, [("acme", "SLOW1", {"role": "agent"})])["SLOW1"]
    # The first write to that one user is answered after 2.5 s, with a 503: the event
    # retries and then succeeds, long after its neighbours are done.
    env.sim.add_script("acme", [{"method": "PUT", "path": f"/api/v2/users/{slow['id']}", "count": 1,
                                 "status": 503, "latency_ms": 2500,
                                 "body": {"error": "DatabaseTimeout", "description": "slow"}}])
    first = event("mover", "acme", "SLOW1", {"name": "First Move", "tags": ["one"]})
    second = event("mover", "acme", "SLOW1", {"name": "Second Move"})
    others = [joiner("acme" if i % 2 else "globex", f"FAST{i:02d}") for i in range(20)]
    env.start_worker()
    inputs = env.send([first] + others + [second])
    results = env.wait_results(inputs)
    r_first, r_second = only(results, inputs[0]), only(results, inputs[-1])
    assert_outcome(r_first, "succeeded", "updated", inputs[0])
    assert_outcome(r_second, "succeeded", "updated", inputs[-1])
    t_first = results[inputs[0]][0].timestamp_ms
    t_second = results[inputs[-1]][0].timestamp_ms
    late = []
    for inp in inputs[1:-1]:
        assert_outcome(only(results, inp), "succeeded", "created", inp)
        if results[inp][0].timestamp_ms >= t_first:
            late.append(inp.key)
    assert not late, f"events behind the slow key in the same partition waited for it: {late}"
    assert t_second >= t_first, "the same key's second event finished before its first"
    assert [r["status"] for r in env.sim.requests("acme")
            if r["method"] == "PUT" and r["path"] == f"/api/v2/users/{slow['id']}"] == [503, 200, 200]
    assert t_first - min(results[i][0].timestamp_ms for i in inputs[1:-1]) >= 2000
    u = one_active(env.sim.users_by_ext("acme"), "SLOW1")
    assert (u["name"], u["tags"]) == ("Second Move", ["one"]), u
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_group_memberships_follow_the_event(make_env):
    """group_ids converge an agent's memberships: added, removed, then unchanged on a
    repeat; a group that does not exist fails the event without touching the others."""
    env = make_env(partitions=1)
    support = env.sim.api("acme", "GET", "/api/v2/groups")["groups"][0]["id"]
    billing = env.sim.api("acme", "POST", "/api/v2/groups", {"group": {"name": "Billing"}})["group"]["id"]
    sales = env.sim.api("acme", "POST", "/api/v2/groups", {"group": {"name": "Sales"}})["group"]["id"]
    plan = [
        (joiner("acme", "GR1", "agent", group_ids=[support, billing]), "succeeded", "created",
         {support, billing}),
        (event("mover", "acme", "GR1", {"group_ids": [billing, sales]}), "succeeded", "updated",
         {billing, sales}),
        (event("mover", "acme", "GR1", {"group_ids": [sales, billing]}), "succeeded", "unchanged",
         {billing, sales}),
        (event("mover", "acme", "GR1", {"group_ids": [987654321]}), "failed", "failed", None),
        # An end-user has no groups in Zendesk: group_ids are not applied.
        (joiner("acme", "GR2", "end-user", group_ids=[support]), "succeeded", "created", set()),
    ]
    env.start_worker()
    inputs = env.send([ev for ev, *_ in plan])
    results = env.wait_results(inputs)
    for inp, (_, status, outcome, _groups) in zip(inputs, plan):
        assert_outcome(only(results, inp), status, outcome, inp)
    users = env.sim.users_by_ext("acme")
    gr1 = one_active(users, "gr1")
    # The failed last mover removed nothing: creations run before removals, and the
    # unknown group is refused first.
    assert set(gr1.get("group_ids") or []) >= {billing, sales}, gr1
    gr2 = one_active(users, "gr2")
    assert not gr2.get("group_ids"), gr2
    log = env.sim.requests("acme")
    adds = [r for r in log if r["method"] == "POST" and r["path"].startswith("/api/v2/group_memberships")]
    removes = [r for r in log if r["method"] == "DELETE" and r["path"].startswith("/api/v2/group_memberships/")]
    assert len(removes) == 1, removes           # Support, once
    assert len(adds) == 2 + 1 + 1, adds         # Support+Billing, Sales, the unknown group
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()

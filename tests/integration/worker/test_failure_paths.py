"""Failure paths that used to stall a partition or skip a leaver (issue 13): an id that
show_many cannot look up, a lookup answer without a user list, and inputs too large for
the dead-letter topic. Each test failed on the code before its fix."""
import json

from confluent_kafka import Producer
from confluent_kafka.admin import ConfigResource

from conftest import Input, assert_outcome, event, joiner, new_traceparent, only


def _user(env, sub, ext):
    users = [u for u in env.sim.users_by_ext(sub).get(ext.lower(), []) if u.get("active", True)]
    assert len(users) == 1, f"{ext}: expected one active user, got {users}"
    return users[0]


def test_leaver_whose_external_id_has_a_comma_is_found(make_env):
    """show_many splits external_ids on commas, escaped or not: the worker must look such
    a person up another way, never report them not_found while they keep access."""
    env = make_env(partitions=1)
    env.sim.seed_user("acme", "AB,12", role="agent", email="ab12@acme.example")
    env.start_worker()
    [inp] = env.send([event("leaver", "acme", "AB,12")])
    res = only(env.wait_results([inp]), inp)
    assert_outcome(res, "succeeded", "downgraded", inp)
    u = _user(env, "acme", "AB,12")
    assert (u["role"], u["suspended"]) == ("end-user", True), u
    # The lookup went through the users search, which takes one id whole.
    paths = [r["path"] for r in env.sim.requests("acme") if r["method"] == "GET"]
    assert any(p.startswith("/api/v2/users/search") for p in paths), paths
    # Replayed, nothing is left to do.
    [again] = env.send([event("leaver", "acme", "AB,12")])
    assert_outcome(only(env.wait_results([again]), again), "succeeded", "unchanged", again)
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_lookup_answer_without_users_is_an_error_not_not_found(make_env):
    """A 200 whose body has no users array is not "no such user": a leaver must not become
    a silent no-op (nor a joiner a duplicate). It is retried like a transient failure."""
    env = make_env(partitions=1)
    env.sim.seed_user("acme", "L200", role="agent")
    env.sim.add_script("acme", [{"method": "GET", "path": "/api/v2/users/show_many*", "count": 2,
                                 "status": 200, "body": {"count": 0}}])
    env.start_worker()
    [inp] = env.send([event("leaver", "acme", "L200")])
    res = only(env.wait_results([inp]), inp)
    assert_outcome(res, "succeeded", "downgraded", inp)
    assert res["attempts"] >= 3, res   # two odd answers, then the real one
    u = _user(env, "acme", "L200")
    assert (u["role"], u["suspended"]) == ("end-user", True), u
    env.stop_worker(env.workers[0])


def test_lookup_answers_without_users_exhaust_to_a_failure(make_env):
    env = make_env(partitions=1)
    env.sim.seed_user("acme", "L201", role="agent")
    env.sim.add_script("acme", [{"method": "GET", "path": "/api/v2/users/show_many*", "count": 50,
                                 "status": 200, "body": {"count": 0}}])
    env.start_worker(worker={"max_attempts": 3})
    [inp] = env.send([event("leaver", "acme", "L201")])
    res = only(env.wait_results([inp]), inp)
    assert res["status"] == "failed" and res["error"]["class"] == "transient_exhausted", res
    assert res["error"]["code"] == "InvalidResponse", res
    assert _user(env, "acme", "L201")["role"] == "agent"   # nothing was written
    env.stop_worker(env.workers[0])


def _big_producer(env):
    return Producer({"bootstrap.servers": env.bootstrap, "message.max.bytes": 4_000_000,
                     "linger.ms": 5, "enable.idempotence": True})


def _invalid_event(n_bytes):
    ev = joiner("acme", "HUGE", "agent")
    ev["colour"] = "x"          # unknown field: invalid whatever its size
    ev["person"]["user_fields"] = {"bio": ""}
    pad = n_bytes - len(json.dumps(ev).encode())
    ev["person"]["user_fields"]["bio"] = "y" * pad
    value = json.dumps(ev).encode()
    assert len(value) == n_bytes
    return ev, value


def test_event_of_one_megabyte_does_not_freeze_its_partition(make_env):
    """An invalid event of 1,010,000 bytes (under max_event_bytes' default) goes to the DLQ
    and the partition's commit moves past it; the event after it is done."""
    env = make_env(partitions=1)
    env.producer = _big_producer(env)
    ev, value = _invalid_event(1_010_000)
    poison = Input("acme/HUGE", value, [("traceparent", new_traceparent().encode())], ev, good=False)
    good = joiner("acme", "AFTER1", "agent")
    env.produce([poison])
    [after] = env.send([good])
    env.start_worker()
    env.wait_results([poison, after])
    env.wait_dlq(1)
    err = only(env.results_for(poison), poison)["error"]
    assert (err["class"], err["code"]) == ("invalid_event", "unknown_field"), err
    assert_outcome(only(env.results_for(after), after), "succeeded", "created", after)
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_dlq_record_too_large_for_its_topic_is_cut_and_says_so(make_env):
    """When the DLQ topic refuses the record (its max.message.bytes is smaller than the
    input), the record goes with its value cut and a zw_value_truncated header, and the
    partition moves on; before, the produce was retried for ever."""
    env = make_env(partitions=1)
    res = ConfigResource("topic", env.topics["dead_letter"], set_config={"max.message.bytes": "300000"})
    for f in env.admin.alter_configs([res]).values():
        f.result(timeout=15)
    env.producer = _big_producer(env)
    ev, value = _invalid_event(400_000)
    poison = Input("acme/HUGE", value, [("traceparent", new_traceparent().encode())], ev, good=False)
    env.produce([poison])
    [after] = env.send([joiner("acme", "AFTER2", "agent")])
    env.start_worker()
    env.wait_results([poison, after])
    env.wait_dlq(1)
    [rec] = env.dlq
    assert rec.headers["zw_value_truncated"] == str(len(value)), rec.headers
    assert rec.headers["zw_error_reason"] == "unknown_field", rec.headers
    assert len(rec.raw or b"") < 300_000
    assert_outcome(only(env.results_for(after), after), "succeeded", "created", after)
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_write_answered_404_again_and_again_ends(make_env):
    """A mover whose user the lookup finds but whose write keeps answering 404 is looked
    up again a bounded number of times with a backoff, then fails; before, it looped for
    ever (lookup, write, 404, lookup...), holding its key."""
    env = make_env(partitions=1)
    u = env.sim.seed_user("acme", "V404", role="agent")
    env.sim.add_script("acme", [{"method": "PUT", "path": f"/api/v2/users/{u['id']}", "count": 1000,
                                 "status": 404, "body": {"error": "RecordNotFound",
                                                         "description": "Not found"}}])
    env.start_worker(worker={"max_attempts": 3, "bulk_min_items": 0})
    [inp] = env.send([event("mover", "acme", "V404", {"name": "Moved V404"})])
    res = only(env.wait_results([inp], timeout=60), inp)
    assert res["status"] == "failed" and res["error"]["class"] == "transient_exhausted", res
    assert res["error"]["code"] == "RecordNotFound", res
    puts = [r for r in env.sim.requests("acme") if r["method"] == "PUT"]
    assert len(puts) == 3, f"{len(puts)} writes for a bounded number of tries"
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_fatal_kafka_error_exits_non_zero_and_loses_nothing(make_env, monkeypatch):
    """A fatal error of the idempotent producer cannot be recovered in the process: the
    worker must stop, commit only what was acknowledged and exit non-zero (70) so that
    Kubernetes restarts it; before, it kept running with a producer that could never
    deliver again. librdkafka's own test hook raises the error (ZW_TEST_KAFKA_FATAL_MS)."""
    env = make_env(partitions=1)
    # Slow answers: 400 writes at 64 in flight outlast the error raised at 3 s.
    env.sim.set_faults("acme", {"latency_ms": 1500})
    monkeypatch.setenv("ZW_TEST_KAFKA_FATAL_MS", "3000")
    w = env.start_worker(worker={"bulk_min_items": 0})
    monkeypatch.delenv("ZW_TEST_KAFKA_FATAL_MS")
    inputs = env.send([joiner("acme", f"FATAL{i:03d}", "end-user") for i in range(400)])
    try:
        rc = w.proc.wait(timeout=60)
    except Exception:
        raise AssertionError("the worker kept running after a fatal Kafka error"
                             + env.diagnostics())
    w.stopped = True
    assert rc == 70, f"exit code {rc} after a fatal Kafka error" + env.diagnostics()
    text = open(w.log_path).read()
    assert '"msg":"fatal Kafka error; exiting to be restarted"' in text, w.tail()
    assert "_OUT_OF_ORDER_SEQUENCE_NUMBER" in text or "OUT_OF_ORDER" in text, w.tail()
    # Nothing committed past an event without a result: a new process finishes the rest.
    committed = env.committed_offsets()
    assert committed.get(0, -1001) < len(inputs), committed
    env.sim.set_faults("acme", {"latency_ms": 0})
    env.start_worker(worker={"bulk_min_items": 0})
    results = env.wait_results(inputs, timeout=120, what="every event after the restart")
    for inp in inputs:   # at least once: an event acked but not committed runs again
        statuses = {r.value["status"] for r in results[inp]}
        assert statuses == {"succeeded"}, (inp.key, [r.value for r in results[inp]])
    users = env.sim.users_by_ext("acme")
    assert all(f"fatal{i:03d}" in users for i in range(400))
    env.stop_worker(env.workers[1])
    env.assert_commits_at_end()


def _memberships(env, sub, user_id):
    """Every group id the user is a member of, read page by page (cursor pagination)."""
    out, path = [], f"/api/v2/users/{user_id}/group_memberships?page[size]=100"
    while path:
        page = env.sim.api(sub, "GET", path)
        out += [m["group_id"] for m in page["group_memberships"]]
        after = page["meta"]["after_cursor"] if page["meta"]["has_more"] else None
        path = (f"/api/v2/users/{user_id}/group_memberships?page[size]=100&page[after]={after}"
                if after else None)
    return out


def test_group_memberships_are_read_past_the_first_page(make_env):
    """Zendesk lists at most 100 memberships a page: a mover keeping two of an agent's 105
    groups must remove all 103 others, not only those on the first page."""
    env = make_env(partitions=1)
    u = env.sim.seed_user("acme", "MANYG", role="agent")
    groups = [env.sim.api("acme", "POST", "/api/v2/groups", {"group": {"name": f"G{i:03d}"}})["group"]["id"]
              for i in range(105)]
    for g in groups:
        env.sim.api("acme", "POST", "/api/v2/group_memberships",
                    {"group_membership": {"user_id": u["id"], "group_id": g}})
    assert len(_memberships(env, "acme", u["id"])) == 105
    env.start_worker()
    [inp] = env.send([event("mover", "acme", "MANYG", {"group_ids": groups[:2]})])
    assert_outcome(only(env.wait_results([inp], timeout=90), inp), "succeeded", "updated", inp)
    assert sorted(_memberships(env, "acme", u["id"])) == sorted(groups[:2])
    lists = [r for r in env.sim.requests("acme")
             if r["method"] == "GET" and r["path"].endswith("/group_memberships")]
    assert len(lists) >= 2, "the second page was never read"
    [again] = env.send([event("mover", "acme", "MANYG", {"group_ids": groups[:2]})])
    assert_outcome(only(env.wait_results([again]), again), "succeeded", "unchanged", again)
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_membership_add_whose_answer_was_lost_is_not_a_failure(make_env):
    """The add is made but its answer lost (the connection closes): the retried POST is
    refused as "already a member" (422), which means the work is done, not failed."""
    env = make_env(partitions=1)
    support = env.sim.api("acme", "GET", "/api/v2/groups")["groups"][0]["id"]
    billing = env.sim.api("acme", "POST", "/api/v2/groups", {"group": {"name": "Billing"}})["group"]["id"]
    u = env.sim.seed_user("acme", "LOSTADD", role="agent")
    env.sim.api("acme", "POST", "/api/v2/group_memberships",
                {"group_membership": {"user_id": u["id"], "group_id": support}})
    env.sim.add_script("acme", [{"method": "POST", "path": "/api/v2/group_memberships",
                                 "count": 1, "action": "lose_answer"}])
    env.start_worker()
    [inp] = env.send([event("mover", "acme", "LOSTADD", {"group_ids": [support, billing]})])
    res = only(env.wait_results([inp], timeout=60), inp)
    assert_outcome(res, "succeeded", "updated", inp)
    assert sorted(_memberships(env, "acme", u["id"])) == sorted([support, billing])
    posts = [r for r in env.sim.requests("acme")
             if r["method"] == "POST" and r["path"].startswith("/api/v2/group_memberships")]
    assert [p["status"] for p in posts][-1] == 422, posts   # the retry met the lost add
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_leaver_for_the_workers_own_user_is_refused(make_env):
    """An API token acts as its admin's e-mail, an OAuth client-credentials token as the
    admin who made the client (GET /users/me): a leaver for that user would lock the worker
    out of the tenant. It fails clearly instead; other leavers go on."""
    env = make_env(partitions=1)
    owners = {a["subdomain"]: a["owner_id"] for a in env.sim.ctl("GET", "/accounts")["accounts"]}
    for sub in ("acme", "globex"):
        env.sim.api(sub, "PUT", f"/api/v2/users/{owners[sub]}", {"user": {"external_id": f"OWN-{sub}"}})
        env.sim.seed_user(sub, f"AG-{sub}", role="agent")
    env.start_worker()
    inputs = env.send([event("leaver", sub, f"{who}-{sub}")
                       for sub in ("acme", "globex") for who in ("OWN", "AG")])
    results = env.wait_results(inputs, timeout=60)
    for inp in inputs:
        res = only(results, inp)
        if inp.event["person"]["external_id"].startswith("OWN-"):
            assert res["status"] == "failed" and res["error"]["code"] == "WorkerIdentity", res
        else:
            assert_outcome(res, "succeeded", "downgraded", inp)
    for sub in ("acme", "globex"):
        owner = env.sim.api(sub, "GET", f"/api/v2/users/{owners[sub]}")["user"]
        assert (owner["role"], owner["suspended"]) == ("admin", False), owner
    me = [r for r in env.sim.requests("globex") if r["path"] == "/api/v2/users/me"]
    assert me, "the OAuth tenant's identity was never asked"
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()

"""The bulk path end to end: bursts for one tenant go to Zendesk as *_many jobs, polled
through job_statuses, and every event still gets its own result. Per-item failures, the
403 fallback, the 30-jobs cap (TooManyJobs), failed jobs, a worker killed while jobs are
open, and ordering for one person with several events in the burst."""
import time
from collections import Counter

from conftest import assert_outcome, event, joiner, one_active, only, wait_for

# A killed member is noticed after session.timeout.ms (librdkafka's default is 45 s).
FAST_GROUP = ["session.timeout.ms=6000", "heartbeat.interval.ms=1000"]

BULK_PATHS = {"/api/v2/users/create_or_update_many", "/api/v2/users/update_many",
              "/api/v2/users/destroy_many"}
SINGLE_WRITES = ("/api/v2/users/create_or_update",)


def enable_bulk(env, sub="acme", **cfg):
    env.sim.ctl("PATCH", f"/accounts/{sub}", {"bulk_import": True, **cfg})


def by_endpoint(log):
    """(method, path without query) -> Counter of statuses."""
    out = {}
    for r in log:
        out.setdefault((r["method"], r["path"].split("?")[0]), Counter())[r["status"]] += 1
    return out


def bulk_requests(log, path=None):
    return [r for r in log if r["path"].split("?")[0] in BULK_PATHS
            and (path is None or r["path"].split("?")[0] == path)]


def single_writes(log):
    """Single-user writes: create_or_update, PUT /users/{id}, DELETE /users/{id}."""
    out = []
    for r in log:
        p = r["path"].split("?")[0]
        if p in SINGLE_WRITES or (r["method"] in ("PUT", "DELETE") and p.startswith("/api/v2/users/")
                                  and p.rsplit("/", 1)[1].isdigit()):
            out.append(r)
    return out


def all_created(env, inputs, timeout=60):
    """Waits for every input's result and asserts each is succeeded/created."""
    results = env.wait_results(inputs, timeout=timeout)
    for inp in inputs:
        assert_outcome(only(results, inp), "succeeded", "created", inp)
    return results


def job_statuses(env, sub="acme"):
    return env.sim.api(sub, "GET", "/api/v2/job_statuses")["job_statuses"]


def test_burst_of_joiners_movers_and_leavers_goes_through_bulk(make_env):
    """Joiners into create_or_update_many, movers (each its own change) into update_many with
    a users array, leavers (downgrade + suspend, one change) into update_many?ids=, leavers
    to delete into destroy_many; each event gets its own result."""
    env = make_env(partitions=3)
    enable_bulk(env)
    seeded = {f"L{i:02d}": env.sim.seed_user("acme", f"L{i:02d}", role="agent") for i in range(40)}
    env.sim.clear_requests("acme")
    joiners = [joiner("acme", f"B{i:03d}", "agent" if i % 4 == 0 else "end-user",
                      tags=[f"t{i}"]) for i in range(150)]
    downgrades = [event("leaver", "acme", f"L{i:02d}") for i in range(15)]
    deletes = [event("leaver", "acme", f"L{i:02d}", leaver="delete") for i in range(15, 30)]
    movers = [event("mover", "acme", f"L{i:02d}", {"name": f"Moved L{i:02d}", "tags": [f"m{i}"]})
              for i in range(30, 40)]
    inputs = env.send(joiners + downgrades + deletes + movers)  # a backlog
    env.start_worker(worker={"bulk_min_items": 10, "bulk_poll_ms": 200})
    results = env.wait_results(inputs, timeout=120)

    users = env.sim.users_by_ext("acme")
    expect = ["created"] * len(joiners) + ["downgraded"] * 15 + ["deleted"] * 15 + ["updated"] * 10
    for inp, outcome in zip(inputs, expect):
        res = only(results, inp)
        assert_outcome(res, "succeeded", outcome, inp)
        assert res["error"] is None and res["zendesk_request_ids"], res
        ext = inp.event["person"]["external_id"]
        if outcome == "deleted":
            assert not [u for u in users.get(ext.lower(), []) if u["active"]], users.get(ext.lower())
            assert res["zendesk_user_id"] == seeded[ext]["id"], res
            continue
        u = one_active(users, ext)
        assert res["zendesk_user_id"] == u["id"], (res, u)
        if outcome == "created":
            assert (u["role"], u["tags"]) == (inp.event["person"]["role"], inp.event["person"]["tags"])
        elif outcome == "downgraded":
            assert u["id"] == seeded[ext]["id"] and (u["role"], u["suspended"]) == ("end-user", True), u
        else:
            assert (u["name"], u["tags"]) == (inp.event["person"]["name"], inp.event["person"]["tags"]), u

    log = env.sim.requests("acme")
    cou = bulk_requests(log, "/api/v2/users/create_or_update_many")
    upd = bulk_requests(log, "/api/v2/users/update_many")
    dst = bulk_requests(log, "/api/v2/users/destroy_many")
    for reqs in (cou, upd, dst):
        assert reqs and all(r["status"] == 200 for r in reqs), by_endpoint(log)
    singles = single_writes(log)
    assert len(singles) <= 2, f"{len(singles)} single writes: {by_endpoint(log)}"
    assert len(cou) + len(upd) + len(dst) <= 12, f"too many bulk requests: {by_endpoint(log)}"
    polls = [r for r in log if r["path"].startswith("/api/v2/job_statuses")]
    assert polls, "the worker never polled job_statuses"
    jobs = job_statuses(env)
    assert all(j["status"] == "completed" for j in jobs), jobs
    types = Counter(j["job_type"] for j in jobs)
    assert set(types) == {"bulk_create_or_update_users", "bulk_update_users", "bulk_delete_users"}, types
    assert sum(j["total"] for j in jobs) + len(singles) == len(inputs), (len(jobs), len(singles))
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_mixed_item_failures_in_one_job(make_env):
    """Zendesk fails some items of a job (an e-mail it does not accept): those events fail
    with the item's error, the others in the same job succeed."""
    env = make_env(partitions=1)
    enable_bulk(env)
    people = []
    bad = set()
    for i in range(40):
        ext = f"M{i:02d}"
        if i % 7 == 3:
            # The worker accepts any address with one @; Zendesk wants a dotted domain.
            people.append(joiner("acme", ext, email=f"{ext.lower()}@localhost"))
            bad.add(ext)
        else:
            people.append(joiner("acme", ext))
    inputs = env.send(people)  # a backlog: the worker finds the burst waiting
    env.start_worker(worker={"bulk_min_items": 5, "bulk_poll_ms": 200})
    results = env.wait_results(inputs)
    users = env.sim.users_by_ext("acme")
    for inp in inputs:
        ext = inp.event["person"]["external_id"]
        res = only(results, inp)
        if ext in bad:
            assert_outcome(res, "failed", "failed", inp)
            assert res["error"]["class"] == "permanent", res
            assert "bulk job" in res["error"]["message"], res
            assert "not properly formatted" in res["error"]["message"], res
            assert res["error"]["code"], res
            assert ext.lower() not in users, users.get(ext.lower())
        else:
            assert_outcome(res, "succeeded", "created", inp)
            one_active(users, ext)
    log = env.sim.requests("acme")
    assert 1 <= len(bulk_requests(log)) <= 3, by_endpoint(log)
    # At most the first event or two, looked up alone before the burst arrived, go single.
    assert len(single_writes(log)) <= 2, by_endpoint(log)
    env.settle(1.0)
    assert not env.dlq, "a refused change is a failed result, not a DLQ record"
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_bulk_import_refused_falls_back_to_single_calls(make_env):
    """An account without bulk import answers 403 on create_or_update_many: the worker
    says so once, creates one at a time, and tries bulk again after the interval."""
    env = make_env(partitions=2)   # the simulator's accounts start with bulk_import=false
    env.start_worker(worker={"bulk_min_items": 5, "bulk_poll_ms": 200,
                             "bulk_refused_retry_ms": 4000})
    first = env.send([joiner("acme", f"R{i:02d}") for i in range(40)])
    all_created(env, first)
    log = env.sim.requests("acme")
    refused = bulk_requests(log, "/api/v2/users/create_or_update_many")
    assert [r["status"] for r in refused] == [403], by_endpoint(log)
    assert len(single_writes(log)) == 40, by_endpoint(log)
    lines = [ln for ln in env.workers[0].tail(100000).splitlines() if "refused bulk import" in ln]
    assert len(lines) == 1, lines

    # After the interval, with bulk import turned on, the next burst goes in bulk.
    enable_bulk(env)
    env.sim.clear_requests("acme")
    time.sleep(4.5)
    second = env.send([joiner("acme", f"S{i:02d}") for i in range(40)])
    all_created(env, second)
    log = env.sim.requests("acme")
    cou = bulk_requests(log, "/api/v2/users/create_or_update_many")
    assert cou and all(r["status"] == 200 for r in cou), by_endpoint(log)
    assert len(single_writes(log)) < 40, by_endpoint(log)
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_jobs_cap_too_many_jobs_is_a_rate_limit(make_env):
    """Another client holds the account's 2 job slots when the burst arrives: Zendesk answers
    TooManyJobs (429 without Retry-After); the worker waits for a slot instead of hammering,
    respects zendesk-ratelimit-inflight-jobs from then on, and every event still succeeds."""
    env = make_env(partitions=1)
    enable_bulk(env, job_queue_ms=2500, job_item_ms=1)
    env.sim.ctl("PUT", "/accounts/acme/limits", {"limits_enabled": True, "rpm": 0,
                                                 "user_write_per_sec": 0,
                                                 "user_write_per_user_min": 0, "max_jobs": 2})
    for k in range(2):  # the other client's jobs
        env.sim.api("acme", "POST", "/api/v2/users/create_or_update_many",
                    {"users": [{"name": f"Other {k}", "email": f"other{k}@acme.example"}]})
    inputs = env.send([joiner("acme", f"C{i:03d}") for i in range(400)])
    env.start_worker(worker={"bulk_min_items": 10, "bulk_poll_ms": 200},
                     tenant_over={"acme": {"single_user_write_rpm": 60}})
    all_created(env, inputs, timeout=180)
    log = env.sim.requests("acme")
    cou = bulk_requests(log, "/api/v2/users/create_or_update_many")[2:]  # the worker's
    statuses = Counter(r["status"] for r in cou)
    assert statuses[429] >= 1, f"the job cap never refused a job: {statuses}"
    assert statuses[200] >= 3, statuses
    # Waiting for a slot, not retrying in a loop: the other jobs took 2.5 s.
    assert statuses[429] <= 4, statuses
    users = env.sim.users_by_ext("acme")
    assert len(users) == 400 and all(len(v) == 1 for v in users.values())
    text = env.workers[0].tail(100000)
    assert "background job cap is full" in text
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_jobs_cap_from_config_avoids_too_many_jobs(make_env):
    env = make_env(partitions=1)
    enable_bulk(env, job_queue_ms=400, job_item_ms=5)
    env.sim.ctl("PUT", "/accounts/acme/limits", {"limits_enabled": True, "rpm": 0,
                                                 "user_write_per_sec": 0,
                                                 "user_write_per_user_min": 0, "max_jobs": 2})
    env.start_worker(worker={"bulk_min_items": 10, "bulk_poll_ms": 200},
                     tenant_over={"acme": {"max_jobs": 2, "single_user_write_rpm": 60}})
    inputs = env.send([joiner("acme", f"K{i:03d}") for i in range(300)])
    all_created(env, inputs, timeout=180)
    cou = bulk_requests(env.sim.requests("acme"), "/api/v2/users/create_or_update_many")
    assert cou and all(r["status"] == 200 for r in cou), Counter(r["status"] for r in cou)
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_failed_jobs_are_retried_without_losing_events(make_env):
    """Jobs that stop half way with status "failed": the items done count, the rest are
    looked up again and retried, and each event ends once, succeeded."""
    env = make_env(partitions=1)
    enable_bulk(env, job_queue_ms=100, job_item_ms=2)
    env.sim.ctl("PATCH", "/accounts/acme/faults", {"job_fail_rate": 0.5})
    env.start_worker(worker={"bulk_min_items": 5, "bulk_poll_ms": 200, "max_attempts": 10})
    inputs = env.send([joiner("acme", f"F{i:03d}") for i in range(300)])
    results = env.wait_results(inputs, timeout=180)
    outcomes = Counter()
    for inp in inputs:
        res = only(results, inp)
        assert res["status"] == "succeeded", res
        outcomes[res["outcome"]] += 1
    # An item done by a failed job and retried is found by its lookup: "unchanged".
    assert set(outcomes) <= {"created", "unchanged"}, outcomes
    failed = [j for j in job_statuses(env) if j["status"] == "failed"]
    assert failed, "no job failed: the fault did not fire"
    assert any(r["attempts"] > 1 for rs in results.values() for r in (x.value for x in rs))
    users = env.sim.users_by_ext("acme")
    assert len(users) == 300 and all(len(v) == 1 for v in users.values())
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_kill_while_jobs_are_open_loses_nothing(make_env):
    """SIGKILL while jobs are queued at Zendesk: their events were never committed, so the
    next worker replays them; the replay is idempotent (one user per person)."""
    env = make_env(partitions=2)
    enable_bulk(env, job_queue_ms=4000, job_item_ms=5)
    first = env.start_worker(worker={"bulk_min_items": 10, "bulk_poll_ms": 200},
                             properties=FAST_GROUP)
    inputs = env.send([joiner("acme", f"X{i:03d}") for i in range(200)])

    def jobs_open():
        return env.sim.ctl("GET", "/accounts/acme")["jobs_active"] >= 1
    wait_for(jobs_open, 60, "an open bulk job", env.diagnostics)
    first.kill()
    env.poll_outputs(0.5)
    done_before = {id(r.input) for r in env.results}
    assert len(done_before) < len(inputs), "every event finished before the kill"

    env.start_worker(worker={"bulk_min_items": 10, "bulk_poll_ms": 200}, properties=FAST_GROUP)
    results = env.wait_results(inputs, timeout=120)
    for inp in inputs:
        assert all(r.value["status"] == "succeeded" for r in results[inp]), results[inp]
        assert {r.value["outcome"] for r in results[inp]} <= {"created", "unchanged"}
    users = env.sim.users_by_ext("acme")
    assert len(users) == 200 and all(len(v) == 1 for v in users.values()), \
        [k for k, v in users.items() if len(v) != 1]
    env.stop_worker(env.workers[1])
    env.assert_commits_at_end()


def test_one_person_several_events_in_a_burst_keep_their_order(make_env):
    """Joiner, mover and leaver of the same person inside a burst: each waits for the one
    before it (never two of them in one job), and the results come in that order."""
    env = make_env(partitions=2)
    enable_bulk(env)
    others = [joiner("acme", f"O{i:03d}") for i in range(100)]
    chains = []
    for i in range(10):
        ext = f"P{i:02d}"
        chains += [joiner("acme", ext, "agent"),
                   event("mover", "acme", ext, {"name": f"Moved {ext}", "tags": ["moved"]}),
                   event("leaver", "acme", ext)]
    # Interleave so each chain is spread through the burst.
    burst = others[:50] + chains[0::3] + others[50:] + chains[1::3] + chains[2::3]
    env.start_worker(worker={"bulk_min_items": 5, "bulk_poll_ms": 200})
    inputs = env.send(burst)
    results = env.wait_results(inputs, timeout=120)
    users = env.sim.users_by_ext("acme")
    for i in range(10):
        ext = f"P{i:02d}"
        mine = sorted((inp for inp in inputs if inp.event["person"]["external_id"] == ext),
                      key=lambda x: x.offset)
        got = [only(results, inp)["outcome"] for inp in mine]
        assert got == ["created", "updated", "downgraded"], (ext, got)
        finished = [only(results, inp)["finished_at"] for inp in mine]
        assert finished == sorted(finished), (ext, finished)
        u = one_active(users, ext)
        assert (u["name"], u["tags"], u["role"], u["suspended"]) == \
            (f"Moved {ext}", ["moved"], "end-user", True), u
    log = env.sim.requests("acme")
    assert bulk_requests(log), by_endpoint(log)
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()


def test_oauth_tenant_needs_read_scope_for_bulk(make_env):
    """An OAuth tenant with the "read" scope goes through bulk (token fetched once, jobs
    polled); with "users:read users:write" (globex in the other tests) bulk is off, said
    once at startup, and its writes are single calls."""
    env = make_env(partitions=2)
    enable_bulk(env, "globex")
    inputs = env.send([joiner("globex", f"Q{i:02d}") for i in range(60)])
    env.start_worker(worker={"bulk_min_items": 10, "bulk_poll_ms": 200},
                     tenant_over={"globex": {"auth": {
                         "type": "oauth_client_credentials", "client_id": "zw",
                         "client_secret_file": str(env.secrets_dir / "globex-secret"),
                         "scope": "read users:write"}}})
    all_created(env, inputs)
    log = env.sim.requests("globex")
    cou = bulk_requests(log, "/api/v2/users/create_or_update_many")
    polls = [r for r in log if r["path"].startswith("/api/v2/job_statuses")]
    assert cou and all(r["status"] == 200 for r in cou), by_endpoint(log)
    assert polls and all(r["status"] == 200 for r in polls), by_endpoint(log)
    assert len(single_writes(log)) <= 2, by_endpoint(log)
    env.stop_worker(env.workers[0])

    # The test harness's usual scope: no bulk, one warning at startup.
    more = env.send([joiner("globex", f"U{i:02d}") for i in range(30)])
    env.sim.clear_requests("globex")
    w = env.start_worker(worker={"bulk_min_items": 10, "bulk_poll_ms": 200})
    all_created(env, more)
    log = env.sim.requests("globex")
    assert not bulk_requests(log) and len(single_writes(log)) == 30, by_endpoint(log)
    warn = [ln for ln in w.tail(100000).splitlines() if "bulk jobs off for this tenant" in ln]
    assert len(warn) == 1 and '"tenant":"globex"' in warn[0], warn
    env.stop_worker(w)
    env.assert_commits_at_end()


def test_bulk_requests_that_fail_are_retried(make_env):
    """A 429 with Retry-After and a 503 on the bulk request, and a failing and a dropped
    job-status poll: the worker waits, retries and polls again; every event succeeds once."""
    env = make_env(partitions=2)
    enable_bulk(env)
    env.sim.add_script("acme", [
        {"method": "POST", "path": "/api/v2/users/create_or_update_many", "count": 1,
         "status": 429, "headers": {"Retry-After": "1"}, "body": "Rate limit exceeded"},
        {"method": "POST", "path": "/api/v2/users/create_or_update_many", "count": 1,
         "status": 503, "body": {"error": "DatabaseTimeout", "description": "timeout"}},
        {"method": "GET", "path": "/api/v2/job_statuses*", "count": 1, "status": 500,
         "body": {"error": "InternalServerError"}},
        {"method": "GET", "path": "/api/v2/job_statuses*", "count": 1, "action": "drop"},
    ])
    inputs = env.send([joiner("acme", f"T{i:02d}") for i in range(50)])
    env.start_worker(worker={"bulk_min_items": 10, "bulk_poll_ms": 200})
    results = all_created(env, inputs, timeout=90)
    log = env.sim.requests("acme")
    cou = Counter(r["status"] for r in bulk_requests(log, "/api/v2/users/create_or_update_many"))
    assert cou[429] == 1 and cou[503] == 1 and cou[200] >= 1, cou
    polls = Counter(r["status"] for r in log if r["path"].startswith("/api/v2/job_statuses"))
    assert polls[500] == 1 and polls[0] == 1 and polls[200] >= 1, polls
    # The 429 is a wait, not a failure: the rest of the burst waited at least its second.
    assert max(only(results, inp)["attempts"] for inp in inputs) > 1
    users = env.sim.users_by_ext("acme")
    assert len(users) == 50 and all(len(v) == 1 for v in users.values())
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()

"""Replicas and stops: three workers in one group with one SIGKILLed mid-run, and a
SIGTERM mid-run. Offsets are committed only for events whose results exist; nothing is
lost; the simulator ends with exactly one user per person."""
import signal
import time

from conftest import event, joiner, one_active, wait_for

# A group member that dies is noticed after session.timeout.ms (librdkafka's default is
# 45 s); 6 s is the broker's minimum.
FAST_GROUP = ["session.timeout.ms=6000", "heartbeat.interval.ms=1000"]


def people_and_movers(n_people, n_movers, prefix):
    people = [joiner("acme" if i % 2 else "globex", f"{prefix}{i:03d}", "agent" if i % 4 else "end-user",
                     tags=[f"p{i}"]) for i in range(n_people)]
    movers = [event("mover", p["tenant"], p["person"]["external_id"], {"name": f"Moved {prefix}{i:03d}"})
              for i, p in enumerate(people[:n_movers])]
    return people, movers


def assert_sim_state(env, people, n_movers, prefix):
    """Exactly one active user per person, none missing, none extra, movers applied."""
    for sub in ("acme", "globex"):
        users = env.sim.users_by_ext(sub)
        mine = {p["person"]["external_id"].lower() for p in people if p["tenant"] == sub}
        assert set(users) == mine, (f"{sub}: missing {sorted(mine - set(users))[:10]}, "
                                    f"extra {sorted(set(users) - mine)[:10]}")
    cache = {sub: env.sim.users_by_ext(sub) for sub in ("acme", "globex")}
    for i, p in enumerate(people):
        u = one_active(cache[p["tenant"]], p["person"]["external_id"])
        want_name = f"Moved {prefix}{i:03d}" if i < n_movers else p["person"]["name"]
        assert (u["name"], u["role"], u["tags"], u["suspended"]) == \
            (want_name, p["person"]["role"], p["person"]["tags"], False), u


def test_three_workers_one_killed_mid_run(make_env):
    env = make_env(partitions=6)
    for sub in ("acme", "globex"):
        env.sim.set_faults(sub, {"latency_ms": 100, "latency_jitter_ms": 50})
    workers = [env.start_worker(worker={"max_in_flight": 8}, properties=FAST_GROUP) for _ in range(3)]
    wait_for(lambda: len(env.group_members()) == 3, 60,
             "three workers holding partitions of the requests topic",
             lambda: f"members: {[m.member_id for m in env.group_members()]}" + env.diagnostics())
    people, movers = people_and_movers(150, 50, "K")
    inputs = env.send(people + movers)

    wait_for(lambda: (env.poll_outputs(), len(env.results) >= 40)[1], 60, "the first 40 results",
             lambda: f"results: {len(env.results)}" + env.diagnostics())
    victim = workers[1]
    env.assert_workers_alive()
    victim.kill()
    killed_at = len(env.results)
    assert killed_at < len(inputs), "every event finished before the kill: the test proves nothing"

    env.wait_results(inputs, timeout=120, final=lambda r: r.value["status"] == "succeeded")
    env.settle(1.0)
    allowed = {"joiner": {"created", "updated", "unchanged"}, "mover": {"updated", "unchanged"}}
    for r in env.results:
        assert r.value["status"] == "succeeded" and r.value["outcome"] in allowed[r.value["type"]], r.value
    assert_sim_state(env, people, len(movers), "K")
    ids = {r.value["worker"]["id"] for r in env.results}
    assert len(ids) >= 2, f"one worker did all the work: {ids}"

    assert victim.proc.returncode == -signal.SIGKILL
    for w in workers:
        if w is not victim:
            env.stop_worker(w)
    env.assert_commits_at_end()


def test_sigterm_mid_run_commits_only_finished_work(make_env):
    env = make_env(partitions=3)
    # A backlog the worker cannot finish inside its shutdown deadline: about 600 ms per
    # event, 8 at a time, 200 events; SIGTERM comes after the first 15 results.
    for sub in ("acme", "globex"):
        env.sim.set_faults(sub, {"latency_ms": 250, "latency_jitter_ms": 100})
    shutdown_s = 2
    w = env.start_worker(worker={"max_in_flight": 8, "shutdown_timeout_ms": shutdown_s * 1000})
    people, movers = people_and_movers(160, 40, "S")
    inputs = env.send(people + movers)
    wait_for(lambda: (env.poll_outputs(), len(env.results) >= 15)[1], 60, "the first 15 results",
             lambda: f"results: {len(env.results)}" + env.diagnostics())
    sigterm_ms = int(time.time() * 1000)
    took = env.stop_worker(w, expect_within=shutdown_s + 3)  # exit 0, in time
    env.settle(2.0)
    done_before = list(env.results)
    assert len(done_before) < len(inputs), "every event finished before SIGTERM: the test proves nothing"
    for r in done_before:
        assert r.value["status"] == "succeeded", f"a result before the restart did not succeed: {r.value}"
    assert any(r.timestamp_ms >= sigterm_ms for r in done_before), \
        f"no result was published after SIGTERM (stopped in {took:.1f}s): in-flight work was not drained"

    # Committed offsets never pass an event without a result.
    committed = env.committed_offsets()
    have = {(r.value["source"]["partition"], r.value["source"]["offset"]) for r in done_before}
    assert any(c >= 0 for c in committed.values()), f"nothing was committed: {committed}"
    for p, c in committed.items():
        unresulted = [i.offset for i in env.inputs if i.partition == p and i.offset < c
                      and (p, i.offset) not in have]
        assert not unresulted, (f"partition {p}: committed {c}, but offsets {unresulted[:10]} "
                                f"have no result")

    # A new worker in the group finishes the rest; nothing is lost.
    env.sim.set_faults("acme", {})
    env.sim.set_faults("globex", {})
    w2 = env.start_worker(worker={"max_in_flight": 64})
    env.wait_results(inputs, timeout=90, final=lambda r: r.value["status"] == "succeeded")
    env.settle(0.5)
    assert_sim_state(env, people, len(movers), "S")
    env.stop_worker(w2)
    env.assert_commits_at_end()


def test_second_signal_exits_at_once(make_env):
    env = make_env(partitions=3)
    for sub in ("acme", "globex"):
        env.sim.set_faults(sub, {"latency_ms": 400})
    # A long shutdown deadline: only the second signal can make the worker stop quickly.
    w = env.start_worker(worker={"max_in_flight": 8, "shutdown_timeout_ms": 30000},
                         properties=FAST_GROUP)
    people, _ = people_and_movers(120, 0, "Q")
    inputs = env.send(people)
    wait_for(lambda: (env.poll_outputs(), len(env.results) >= 10)[1], 60, "the first 10 results",
             lambda: f"results: {len(env.results)}" + env.diagnostics())
    w.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert w.running(), f"the worker exited on the first signal with work left (exit {w.proc.returncode})"
    t0 = time.monotonic()
    w.signal(signal.SIGINT)
    wait_for(lambda: not w.running(), 5, "the worker to exit after a second signal",
             env.diagnostics)
    took = time.monotonic() - t0
    assert took < 3, f"the second signal took {took:.1f}s to stop the worker"
    assert w.proc.returncode >= 0, f"the worker crashed on the second signal: {w.proc.returncode}" + env.diagnostics()
    env.settle(1.0)
    assert len(env.results) < len(inputs), "every event finished: the test proves nothing"
    committed = env.committed_offsets()
    have = {(r.value["source"]["partition"], r.value["source"]["offset"]) for r in env.results}
    for p, c in committed.items():
        unresulted = [i.offset for i in env.inputs if i.partition == p and i.offset < c
                      and (p, i.offset) not in have]
        assert not unresulted, f"partition {p}: committed {c} past offsets without a result {unresulted[:10]}"

    env.sim.set_faults("acme", {})
    env.sim.set_faults("globex", {})
    # The first worker may not have left the group: its partitions come back after its
    # session times out.
    w2 = env.start_worker(properties=FAST_GROUP)
    env.wait_results(inputs, timeout=90, final=lambda r: r.value["status"] == "succeeded")
    assert_sim_state(env, people, 0, "Q")
    env.stop_worker(w2)
    env.assert_commits_at_end()


def test_scale_up_mid_run_hands_work_over(make_env):
    """A second replica joins while the first has a backlog: the rebalance moves partitions
    with queued and in-flight events; both replicas live on and nothing is lost."""
    env = make_env(partitions=6)
    for sub in ("acme", "globex"):
        env.sim.set_faults(sub, {"latency_ms": 150, "latency_jitter_ms": 50})
    w1 = env.start_worker(worker={"max_in_flight": 8}, properties=FAST_GROUP)
    people, movers = people_and_movers(120, 40, "H")
    inputs = env.send(people + movers)
    wait_for(lambda: (env.poll_outputs(), len(env.results) >= 15)[1], 60, "the first 15 results",
             lambda: f"results: {len(env.results)}" + env.diagnostics())
    w2 = env.start_worker(worker={"max_in_flight": 8}, properties=FAST_GROUP)
    wait_for(lambda: len(env.group_members()) == 2, 60, "both workers holding partitions",
             lambda: env.diagnostics())
    assert len(env.results) < len(inputs), "every event finished before the rebalance"
    env.wait_results(inputs, timeout=90, final=lambda r: r.value["status"] == "succeeded")
    env.settle(1.0)
    env.assert_workers_alive()
    for r in env.results:
        assert r.value["status"] == "succeeded", r.value
    assert_sim_state(env, people, len(movers), "H")
    assert len({r.value["worker"]["id"] for r in env.results}) == 2, "the new replica did no work"
    env.stop_worker(w1)
    env.stop_worker(w2)
    env.assert_commits_at_end()

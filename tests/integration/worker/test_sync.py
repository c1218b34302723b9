"""Sync requests (issue 5): a request on the sync topic makes the worker walk one tenant's
users and publish a snapshot (begin marker, one user record per user, end marker) plus one
result. Each test asserts the snapshot topic, the results topic and the simulator's state.

Every snapshot record is checked the moment it is read: against
schemas/user-snapshot.schema.json, for its CloudEvents headers, its key (`<tenant>` for
markers, `<tenant>/<user id>` for users), its request (a sync request this test produced,
same tenant) and the request's traceparent. Sync results are checked like provisioning
results (result.schema.json, headers, key, source coordinates, event_id = request_id).

The end marker's checksum is "fnv1a64-sum:%016x" of the wrapping 64-bit sum of FNV-1a-64
over each user record's `user` object as the worker prints it (json-c plain), which are the
bytes of the record's last member: every snapshot's checksum is recomputed from them
(test_checksum_is_fnv1a64 checks the hash itself).
"""
import json
import math
import re
import signal
import time
import uuid

import jsonschema
import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from conftest import (CE_HEADERS, FORMATS, SCHEMAS_DIR, Env, Record, env_factory, assert_outcome,
                      event, joiner, only, schema_errors, wait_for)

SYNC_SCHEMA = "zendesk-worker/sync-request/v1"
SNAPSHOT_VALIDATOR = jsonschema.Draft202012Validator(
    json.loads((SCHEMAS_DIR / "user-snapshot.schema.json").read_text()), format_checker=FORMATS)
SYNC_REQUEST_VALIDATOR = jsonschema.Draft202012Validator(
    json.loads((SCHEMAS_DIR / "sync-request.schema.json").read_text()), format_checker=FORMATS)
CHECKSUM = re.compile(r"^fnv1a64-sum:[0-9a-f]{16}$")
USERS_PATHS = ("/api/v2/users", "/api/v2/users.json")
EXPORT_PATHS = ("/api/v2/incremental/users/cursor", "/api/v2/incremental/users/cursor.json")
# A group member that dies is noticed after session.timeout.ms; 6 s is the broker's minimum.
FAST_GROUP = ["session.timeout.ms=6000", "heartbeat.interval.ms=1000"]
# The attributes compared between a snapshot's user and the simulator's user.
COMPARED = ("id", "external_id", "email", "name", "role", "suspended", "active",
            "organization_id", "default_group_id", "custom_role_id", "tags", "user_fields",
            "created_at", "updated_at")


def jsonc_plain(value):
    """A canonical compact form (key order kept), to compare users between snapshots."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


FNV_OFFSET = 14695981039346656037  # FNV-1a 64's offset basis, 0xcbf29ce484222325
# What src/worker.c uses (a digit short); matches the checksums it publishes.
WORKER_FNV_OFFSET = 1469598103934665603


def fnv1a64(data, offset=FNV_OFFSET):
    h = offset
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def checksum_of(raw_users, offset=FNV_OFFSET):
    return "fnv1a64-sum:%016x" % (sum(fnv1a64(b, offset) for b in raw_users) & 0xFFFFFFFFFFFFFFFF)


def raw_user(rec):
    """The bytes of a user record's "user" member as the worker printed them (the last member)."""
    i = rec.raw.index(b'"user":')
    return rec.raw[i + 7:-1]


def sync_request(tenant, mode=None, cursor=None, roles=None, start_time=None):
    req = {"schema": SYNC_SCHEMA, "request_id": f"sync-{uuid.uuid4()}", "tenant": tenant}
    if mode:
        req["mode"] = mode
    if cursor is not None:
        req["cursor"] = cursor
    if start_time is not None:
        req["start_time"] = start_time
    if roles:
        req["filter"] = {"roles": roles}
    errs = schema_errors(SYNC_REQUEST_VALIDATOR, req)
    assert not errs, f"the test built a bad sync request: {errs}"
    return req


class Snapshot:
    """The records of one snapshot_id, in the order read (one partition: offset order)."""

    def __init__(self, sid):
        self.id = sid
        self.records = []

    @property
    def begin(self):
        return next((r for r in self.records if r.value["kind"] == "begin"), None)

    @property
    def end(self):
        return next((r for r in self.records if r.value["kind"] == "end"), None)

    @property
    def users(self):
        return [r.value["user"] for r in self.records if r.value["kind"] == "user"]

    @property
    def request_id(self):
        return self.records[0].value["request_id"]


class SyncEnv(Env):
    """Env plus the sync topic's inputs and the snapshot topic's records."""

    def __init__(self, tmp_path, name, partitions, extra_accounts=()):
        super().__init__(tmp_path, name, partitions, extra_accounts)
        self.sync_by_request = {}
        self.snap_records = []
        self.ce_ids = set()
        self._snap_reader = self._reader(self.topics["snapshots"])

    # ---- input

    def send_sync(self, req):
        inp = super().send_sync(req)
        self.sync_by_request[req["request_id"]] = inp
        return inp

    # ---- output

    def poll_outputs(self, budget=0.2):
        super().poll_outputs(budget / 2)
        deadline = time.monotonic() + budget / 2
        while True:
            left = deadline - time.monotonic()
            msgs = self._snap_reader.consume(1000, timeout=max(0.01, min(left, 0.1)))
            for m in msgs:
                if m.error():
                    raise KafkaException(m.error())
                self._check_snapshot(Record(m))
            if not msgs or time.monotonic() >= deadline:
                break

    def _check_sync_headers(self, rec, where, inp):
        for h in CE_HEADERS:
            assert rec.headers.get(h), f"{where}: header {h} missing or empty: {rec.headers}"
        assert rec.headers["ce_specversion"] == "1.0", f"{where}: {rec.headers}"
        assert rec.headers["content-type"] == "application/json", f"{where}: {rec.headers}"
        assert FORMATS.conforms(rec.headers["ce_time"], "date-time"), \
            f"{where}: ce_time {rec.headers['ce_time']!r} is not an RFC 3339 date-time"
        assert rec.headers["ce_id"] not in self.ce_ids, f"{where}: ce_id reused: {rec.headers}"
        self.ce_ids.add(rec.headers["ce_id"])
        tp = inp.header("traceparent")
        assert rec.headers.get("traceparent") == tp, \
            f"{where}: traceparent {rec.headers.get('traceparent')!r}, the request had {tp!r}"

    def _check_snapshot(self, rec):
        where = f"snapshot record {rec.topic}[{rec.partition}]@{rec.offset} key={rec.key!r}"
        self._parse_record(rec, where, SNAPSHOT_VALIDATOR, "user-snapshot.schema.json")
        v = rec.value
        inp = self.sync_by_request.get(v["request_id"])
        assert inp is not None, f"{where}: request_id {v['request_id']} is no request this test produced"
        assert v["tenant"] == inp.event["tenant"], f"{where}: {v}"
        want_key = v["tenant"] if v["kind"] != "user" else f"{v['tenant']}/{v['user']['id']}"
        assert rec.key == want_key, f"{where}: key {rec.key!r}, expected {want_key!r}"
        self._check_sync_headers(rec, where, inp)
        rec.input = inp
        self.snap_records.append(rec)

    # ---- snapshots

    def snapshots(self, request=None):
        """{snapshot_id: Snapshot} in order of first record, optionally of one request."""
        out = {}
        for r in self.snap_records:
            if request is not None and r.value["request_id"] != request.event["request_id"]:
                continue
            out.setdefault(r.value["snapshot_id"], Snapshot(r.value["snapshot_id"])).records.append(r)
        return out

    def wait_users(self, inp, n, timeout=60):
        """Until some snapshot of inp has at least n user records; returns it."""
        def enough():
            self.poll_outputs()
            for s in self.snapshots(inp).values():
                if len(s.users) >= n and s.end is None:
                    return s
            done = [s for s in self.snapshots(inp).values() if s.end is not None]
            assert not done, (f"the walk ended ({len(done[0].users)} users) before {n} user records "
                              f"were read: too fast for this test")
            return None
        return wait_for(enough, timeout, f"{n} user records of request {inp.event_id}",
                        lambda: f"snapshots: {[(s.id, len(s.records)) for s in self.snapshots(inp).values()]}"
                        + self.diagnostics())

    def finish(self, inp, timeout=90):
        """Waits for the request's result and its snapshot's end marker; returns
        (result value, Snapshot) after checking the snapshot's framing."""
        res = self.wait_results([inp], timeout=timeout)
        value = only(res, inp)

        def ended():
            self.poll_outputs()
            s = self.snapshots(inp).get(value.get("snapshot_id"))
            return s if s is not None and s.end is not None else None
        snap = wait_for(ended, 30, f"the end marker of snapshot {value.get('snapshot_id')}",
                        lambda: f"result {value}" + self.diagnostics())
        assert_framed(snap)
        assert value["count"] == snap.end.value["end"]["count"], (value, snap.end.value)
        return value, snap

    def committed_sync(self):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group,
                      "enable.auto.commit": False})
        try:
            tps = c.committed([TopicPartition(self.topics["sync"], 0)], timeout=10)
            return tps[0].offset
        finally:
            c.close()

    def sync_end_offset(self):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.prefix + ".probe"})
        try:
            return c.get_watermark_offsets(TopicPartition(self.topics["sync"], 0), timeout=10)[1]
        finally:
            c.close()

    def close(self):
        try:
            self._snap_reader.close()
        finally:
            super().close()


@pytest.fixture
def make_sync_env(request, tmp_path):
    yield from env_factory(SyncEnv, request, tmp_path)


# ------------------------------------------------------------------------------ assertions

def assert_framed(snap):
    """begin at seq 0, user records at 1..count without a repeated id, end at count+1 with
    a well-formed, recomputed checksum; every record of one request and tenant."""
    kinds = [r.value["kind"] for r in snap.records]
    assert kinds[0] == "begin" and kinds[-1] == "end" and kinds.count("begin") == 1 \
        and kinds.count("end") == 1, f"snapshot {snap.id}: kinds {kinds[:3]}...{kinds[-3:]}"
    seqs = [r.value["seq"] for r in snap.records]
    assert seqs == list(range(len(seqs))), f"snapshot {snap.id}: seq not 0..n: {seqs[:5]}..{seqs[-5:]}"
    assert len({r.value["request_id"] for r in snap.records}) == 1
    assert len({r.value["tenant"] for r in snap.records}) == 1
    users = snap.users
    end = snap.end.value["end"]
    assert end["count"] == len(users), f"snapshot {snap.id}: end.count {end['count']}, {len(users)} records"
    ids = [u["id"] for u in users]
    assert len(ids) == len(set(ids)), f"snapshot {snap.id}: repeated user ids"
    assert CHECKSUM.match(end["checksum"]), end
    # The checksum covers exactly the bytes of the user objects between the markers (as the
    # worker printed them: json-c plain). Whether the hash is FNV-1a 64 proper is
    # test_checksum_is_fnv1a64's question; here either offset basis is taken.
    raw = [raw_user(r) for r in snap.records if r.value["kind"] == "user"]
    sums = {"fnv1a64-sum:%016x" % (sum(fnv1a64(b, basis) for b in raw) & 0xFFFFFFFFFFFFFFFF)
            for basis in (FNV_OFFSET, WORKER_FNV_OFFSET)}
    assert end["checksum"] in sums, \
        f"snapshot {snap.id}: checksum {end['checksum']}, recomputed from the records {sorted(sums)}"


def assert_complete(value, snap):
    assert_outcome(value, "succeeded", "snapshot_complete")
    assert snap.end.value["end"]["status"] == "complete", snap.end.value
    assert value["snapshot_id"] == snap.id and value["count"] == len(snap.users), value
    assert value.get("error") is None, value


def project(u):
    return {k: u.get(k) for k in COMPARED}


def sim_listed(env, sub, roles=None):
    """The simulator's active users (what the users list shows), by id."""
    users = env.sim.ctl("GET", f"/accounts/{sub}/users?active=true")["users"]
    return {u["id"]: project(u) for u in users if roles is None or u["role"] in roles}


def assert_matches_sim(env, snap, sub, roles=None):
    want = sim_listed(env, sub, roles)
    got = {u["id"]: project(u) for u in snap.users}
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, \
        f"snapshot {snap.id} vs simulator: {len(missing)} missing {missing[:5]}, {len(extra)} extra {extra[:5]}"
    diff = [(i, got[i], want[i]) for i in want if got[i] != want[i]]
    assert not diff, f"{len(diff)} users differ from the simulator; first: {diff[0]}"


def page_requests(env, sub, paths=USERS_PATHS):
    return [r for r in env.sim.requests(sub) if r["method"] == "GET" and r["path"] in paths]


def seed(env, sub, count, role="mixed", prefix="SEED"):
    return env.sim.ctl("POST", f"/accounts/{sub}/seed", {"count": count, "role": role, "prefix": prefix})


# ------------------------------------------------------------------------------ tests

def test_full_snapshot_matches_the_simulator(make_sync_env):
    env = make_sync_env()
    seed(env, "acme", 1000)
    sim_users = env.sim.ctl("GET", "/accounts/acme/users")["users"]
    seeded = [u for u in sim_users if (u.get("external_id") or "").startswith("SEED-")]
    for u in seeded[5:10]:
        env.sim.api("acme", "PUT", f"/api/v2/users/{u['id']}", {"user": {"suspended": True}})
    env.sim.api("acme", "PUT", f"/api/v2/users/{seeded[11]['id']}",
                {"user": {"tags": ["a/b", "vip"], "user_fields": {}}})
    for u in seeded[20:22]:
        env.sim.api("acme", "DELETE", f"/api/v2/users/{u['id']}")
    env.sim.clear_requests("acme")
    env.start_worker()

    inp = env.send_sync(sync_request("acme", mode="full"))
    t0 = int(time.time())
    value, snap = env.finish(inp)
    t1 = int(time.time())
    assert_complete(value, snap)
    assert_matches_sim(env, snap, "acme")
    users = snap.users
    assert len(users) == 1000 + 1 - 2, len(users)  # the owner, less the two deleted
    assert {u["role"] for u in users} == {"end-user", "agent", "admin"}
    assert sum(u["suspended"] for u in users) == 5 and all(u["active"] for u in users)
    assert not {u["id"] for u in seeded[20:22]} & {u["id"] for u in users}
    nc = snap.end.value["end"]["next_cursor"]
    m = re.match(r"^start_time:(\d+)$", nc or "")
    assert m and t0 - 5 <= int(m.group(1)) <= t1, f"next_cursor {nc!r} (request sent at {t0})"
    assert snap.begin.value.get("user") is None and snap.begin.value.get("end") is None

    pages = page_requests(env, "acme")
    assert [r["status"] for r in pages] == [200] * math.ceil(len(users) / 100), \
        f"{len(pages)} page requests for {len(users)} users: {[r['status'] for r in pages]}"
    assert not [r for r in env.sim.requests("acme") if r["method"] != "GET"], "a snapshot wrote"

    # The same unchanged data again: a new snapshot with the same records and checksum.
    inp2 = env.send_sync(sync_request("acme"))  # mode defaults to full
    value2, snap2 = env.finish(inp2)
    assert_complete(value2, snap2)
    assert snap2.id != snap.id
    assert snap2.end.value["end"]["checksum"] == snap.end.value["end"]["checksum"]
    assert sorted(map(jsonc_plain, snap2.users)) == sorted(map(jsonc_plain, users))

    wait_for(lambda: env.committed_sync() == env.sync_end_offset(), 30,
             "the sync requests to be committed",
             lambda: f"committed {env.committed_sync()}, end {env.sync_end_offset()}")
    env.stop_worker(env.workers[0])


def test_checksum_is_fnv1a64(make_sync_env):
    """end.checksum = "fnv1a64-sum:%016x" of the wrapping sum of FNV-1a 64 (offset basis
    0xcbf29ce484222325, prime 0x100000001b3) over each user object as printed, so a consumer
    can check it with any FNV-1a 64 implementation."""
    env = make_sync_env()
    seed(env, "acme", 150)
    env.start_worker()
    value, snap = env.finish(env.send_sync(sync_request("acme", mode="full")))
    assert_complete(value, snap)
    users = [raw_user(r) for r in snap.records if r.value["kind"] == "user"]
    want = "fnv1a64-sum:%016x" % (sum(fnv1a64(u) for u in users) & 0xFFFFFFFFFFFFFFFF)
    got = snap.end.value["end"]["checksum"]
    assert got == want, (
        f"checksum {got}, FNV-1a 64 gives {want}"
        + (f"; the worker's matches an offset basis of {WORKER_FNV_OFFSET} instead of "
           f"{FNV_OFFSET} (a digit short)"
           if got == checksum_of(users, WORKER_FNV_OFFSET) else ""))
    env.stop_worker(env.workers[0])


def test_role_filter(make_sync_env):
    env = make_sync_env()
    seed(env, "acme", 600)
    env.start_worker()
    inp = env.send_sync(sync_request("acme", mode="full", roles=["agent", "admin"]))
    value, snap = env.finish(inp)
    assert_complete(value, snap)
    assert_matches_sim(env, snap, "acme", roles={"agent", "admin"})
    assert {u["role"] for u in snap.users} == {"agent", "admin"}
    # The filter goes to Zendesk (role[]), so only pages of those roles are listed.
    pages = page_requests(env, "acme")
    assert len(pages) == math.ceil(len(snap.users) / 100), (len(pages), len(snap.users))

    inp2 = env.send_sync(sync_request("acme", mode="full", roles=["end-user"]))
    value2, snap2 = env.finish(inp2)
    assert_complete(value2, snap2)
    assert_matches_sim(env, snap2, "acme", roles={"end-user"})
    assert len(snap.users) + len(snap2.users) == 601
    env.stop_worker(env.workers[0])


def test_incremental_after_changes(make_sync_env):
    env = make_sync_env()
    env.sim.ctl("PUT", "/accounts/acme", {"incremental_withhold_s": 0})
    seed(env, "acme", 300)
    env.start_worker()
    value, full = env.finish(env.send_sync(sync_request("acme", mode="full")))
    assert_complete(value, full)
    cursor0 = full.end.value["end"]["next_cursor"]
    assert cursor0.startswith("start_time:"), cursor0

    # Incremental from a full snapshot's start time: the worker asks for start_time at most
    # now - 61 s (Zendesk refuses the newest minute), so every user changed within the minute
    # before the full snapshot comes again: here, all of them (seeded seconds ago).
    value, inc1 = env.finish(env.send_sync(sync_request("acme", mode="incremental", cursor=cursor0)))
    assert_complete(value, inc1)
    assert {u["id"] for u in inc1.users} == {u["id"] for u in full.users}, \
        (len(inc1.users), len(full.users))
    cursor1 = inc1.end.value["end"]["next_cursor"]
    assert cursor1 and not cursor1.startswith("start_time:"), cursor1
    exports = page_requests(env, "acme", EXPORT_PATHS)
    assert [r["status"] for r in exports] == [200], exports

    # Changes: through the API and through the worker's own provisioning.
    seeded = {u["external_id"]: u for u in env.sim.all_users("acme") if u.get("external_id")}
    changed_ext = set()
    agent = next(e for e, u in sorted(seeded.items()) if u["role"] == "agent")
    env.sim.api("acme", "PUT", f"/api/v2/users/{seeded[agent]['id']}", {"user": {"suspended": True}})
    env.sim.api("acme", "PUT", f"/api/v2/users/{seeded['SEED-000003']['id']}", {"user": {"name": "Renamed"}})
    env.sim.api("acme", "DELETE", f"/api/v2/users/{seeded['SEED-000004']['id']}")
    changed_ext |= {agent, "SEED-000003", "SEED-000004"}
    events = [joiner("acme", "NEW-1", "agent"), joiner("acme", "NEW-2", "end-user"),
              event("mover", "acme", "SEED-000007", {"name": "Moved Seven"}),
              event("leaver", "acme", "SEED-000008", leaver="suspend")]
    results = env.wait_results(env.send(events))
    for inp in results:
        assert only(results, inp)["status"] == "succeeded", only(results, inp)
    changed_ext |= {"NEW-1", "NEW-2", "SEED-000007", "SEED-000008"}
    now = {u["external_id"]: u for u in env.sim.all_users("acme") if u.get("external_id")}
    changed = {now[e]["id"] for e in changed_ext}

    env.sim.clear_requests("acme")
    value, inc2 = env.finish(env.send_sync(sync_request("acme", mode="incremental", cursor=cursor1)))
    assert_complete(value, inc2)
    got = {u["id"]: u for u in inc2.users}
    assert set(got) == changed, (f"incremental after changes: expected exactly {sorted(changed)}, "
                                 f"got {len(got)}: extra {sorted(set(got) - changed)[:10]}, "
                                 f"missing {sorted(changed - set(got))}")
    for e in changed_ext:
        u = now[e]
        assert project(got[u["id"]]) == project(u), (e, got[u["id"]], u)
    assert got[now["SEED-000004"]["id"]]["active"] is False
    assert got[now[agent]["id"]]["suspended"] and got[now["SEED-000008"]["id"]]["suspended"]
    assert [r["path"] for r in env.sim.requests("acme")] == [EXPORT_PATHS[0]], \
        "an incremental sync listed something besides the export"

    # The same cursor with a role filter, applied by the worker: only the changed agents.
    value, inc2a = env.finish(env.send_sync(
        sync_request("acme", mode="incremental", cursor=cursor1, roles=["agent"])))
    assert_complete(value, inc2a)
    assert {u["id"] for u in inc2a.users} == {i for i in changed if got[i]["role"] == "agent"}
    assert {u["role"] for u in inc2a.users} == {"agent"}

    # Nothing changed since: an empty, complete snapshot.
    cursor2 = inc2.end.value["end"]["next_cursor"]
    value, inc3 = env.finish(env.send_sync(sync_request("acme", mode="incremental", cursor=cursor2)))
    assert_complete(value, inc3)
    assert inc3.users == [] and inc3.end.value["end"]["next_cursor"], inc3.end.value
    env.stop_worker(env.workers[0])


def test_429_storm_and_5xx_mid_walk(make_sync_env):
    env = make_sync_env()
    seed(env, "acme", 1500)
    env.sim.set_faults("acme", {"latency_ms": 150})  # 16 pages: about 2.4 s
    env.start_worker(worker={"max_attempts": 5})
    inp = env.send_sync(sync_request("acme", mode="full"))
    env.wait_users(inp, 100)
    env.sim.add_script("acme", [
        {"method": "GET", "path": "/api/v2/users", "count": 4, "status": 429,
         "headers": {"Retry-After": "1"}, "body": "Rate limit exceeded"},
        {"method": "GET", "path": "/api/v2/users", "count": 1, "status": 503,
         "body": {"error": "DatabaseTimeout"}},
        {"method": "GET", "path": "/api/v2/users", "count": 1, "status": 500,
         "body": {"error": "InternalServerError"}},
        {"method": "GET", "path": "/api/v2/users", "count": 1, "status": 502,
         "body": "<html>502 Bad Gateway</html>", "content_type": "text/html"},
        {"method": "GET", "path": "/api/v2/users", "count": 1, "status": 429,
         "headers": {"Retry-After": "1"}, "body": "Rate limit exceeded"},
    ])
    value, snap = env.finish(inp)
    assert_complete(value, snap)
    assert_matches_sim(env, snap, "acme")
    assert len(snap.users) == 1501
    assert len(env.snapshots(inp)) == 1, "the walk restarted as a new snapshot"

    pages = page_requests(env, "acme")
    statuses = [r["status"] for r in pages]
    assert statuses.count(200) == math.ceil(1501 / 100), f"pages listed: {statuses}"
    assert sorted(s for s in statuses if s != 200) == [429] * 5 + [500, 502, 503], statuses
    assert statuses[0] == 200 and statuses[-1] == 200, f"the faults were not mid-walk: {statuses}"
    assert env.sim.ctl("GET", "/accounts/acme")["scripts_pending"] == 0
    # After a 429 the next page waits out Retry-After.
    for a, b in zip(pages, pages[1:]):
        if a["status"] == 429:
            assert b["time_ms"] - a["time_ms"] >= 900, \
                f"a page 429'd at {a['time_ms']} and the next came {b['time_ms'] - a['time_ms']} ms later"
    env.stop_worker(env.workers[0])


def test_exhausted_retries_end_failed(make_sync_env):
    env = make_sync_env()
    seed(env, "acme", 1500)
    env.sim.set_faults("acme", {"latency_ms": 150})  # 16 pages: about 2.4 s
    env.start_worker(worker={"max_attempts": 3, "backoff_base_ms": 50, "backoff_max_ms": 200})
    inp = env.send_sync(sync_request("acme", mode="full"))
    env.wait_users(inp, 100)
    env.sim.add_script("acme", [{"method": "GET", "path": "/api/v2/users", "count": 1000,
                                 "status": 503, "body": {"error": "DatabaseTimeout"}}])
    value, snap = env.finish(inp)
    assert_outcome(value, "failed", "snapshot_failed")
    end = snap.end.value["end"]
    assert end["status"] == "failed", end
    assert 100 <= end["count"] < 1501 and value["count"] == end["count"], (end, value)
    assert value["error"]["class"] == "transient_exhausted", value
    assert value["error"]["http_status"] == 503, value
    statuses = [r["status"] for r in page_requests(env, "acme")]
    assert statuses.count(503) == 3, f"max_attempts 3, but the pages were {statuses}"
    assert statuses.count(200) * 100 == end["count"], (statuses, end)  # whole pages only

    # The tenant is free again: the next request walks a whole snapshot.
    env.sim.ctl("DELETE", "/accounts/acme/script")
    value2, snap2 = env.finish(env.send_sync(sync_request("acme", mode="full")))
    assert_complete(value2, snap2)
    assert_matches_sim(env, snap2, "acme")
    env.stop_worker(env.workers[0])


@pytest.mark.parametrize("status", [503, 429])
def test_fault_late_in_a_long_walk_is_retried(make_sync_env, status):
    """A walk may run for an hour (1,000 pages at 700 rpm): a 5xx or 429 late in it must be
    retried from the same cursor like one early in it. Here the worker's retry deadline
    (retry_deadline_ms, 900 s by default) is shortened to 2 s and the walk made to last
    longer than that."""
    env = make_sync_env()
    seed(env, "acme", 2500)
    env.sim.set_faults("acme", {"latency_ms": 200})  # 26 pages: about 5.2 s
    env.start_worker(worker={"retry_deadline_ms": 2000})
    inp = env.send_sync(sync_request("acme", mode="full"))
    walk = env.wait_users(inp, 100)
    started = walk.begin.read_at
    wait_for(lambda: time.monotonic() - started > 3, 10, "the walk to run 3 s")
    env.poll_outputs()
    walk = env.snapshots(inp)[walk.id]
    assert walk.end is None and len(walk.users) < 2200, \
        f"the walk was (nearly) over after 3 s ({len(walk.users)} users): the test proves nothing"
    env.sim.add_script("acme", [{"method": "GET", "path": "/api/v2/users", "count": 1,
                                 "status": status, "headers": {"Retry-After": "1"},
                                 "body": "Rate limit exceeded" if status == 429 else {"error": "DatabaseTimeout"}}])
    value, snap = env.finish(inp)
    assert_complete(value, snap)
    assert_matches_sim(env, snap, "acme")
    assert [r["status"] for r in page_requests(env, "acme")].count(status) == 1
    env.stop_worker(env.workers[0])


def test_duplicate_request_is_reported_not_run(make_sync_env):
    env = make_sync_env()
    seed(env, "acme", 1500)
    seed(env, "globex", 300)
    env.sim.set_faults("acme", {"latency_ms": 250})  # 16 pages: about 4 s
    env.start_worker()
    first = env.send_sync(sync_request("acme", mode="full"))
    env.wait_users(first, 100)
    dup = env.send_sync(sync_request("acme", mode="full"))
    other = env.send_sync(sync_request("globex", mode="full"))

    res = env.wait_results([dup, other])
    d = only(res, dup)
    assert_outcome(d, "failed", "duplicate_request")
    assert d["error"]["code"] == "DuplicateRequest", d
    running = env.snapshots(first)
    assert len(running) == 1 and next(iter(running.values())).end is None, \
        "the first walk ended before the duplicate was answered: the test proves nothing"
    value, snap = env.finish(other)  # another tenant's walk runs beside it
    assert_complete(value, snap)
    assert_matches_sim(env, snap, "globex")

    value, snap = env.finish(first)
    assert_complete(value, snap)
    assert_matches_sim(env, snap, "acme")
    env.settle(1.0)
    assert env.snapshots(dup) == {}, "the duplicate request published snapshot records"
    assert len(env.results_for(dup)) == 1 and len(env.results_for(first)) == 1
    assert len(page_requests(env, "acme")) == 16, "more pages than one walk"

    # Once the walk is over the tenant takes requests again.
    value, snap = env.finish(env.send_sync(sync_request("acme", mode="full")))
    assert_complete(value, snap)
    env.stop_worker(env.workers[0])


def test_sigterm_then_sigkill_mid_walk_then_a_new_worker_walks_it_whole(make_sync_env):
    env = make_sync_env()
    seed(env, "acme", 2000)
    env.sim.set_faults("acme", {"latency_ms": 120})
    w1 = env.start_worker(properties=FAST_GROUP)
    inp = env.send_sync(sync_request("acme", mode="full"))
    s1 = env.wait_users(inp, 300)

    # SIGTERM: the walk stops at once, no end marker, no result, the request not committed.
    took = env.stop_worker(w1)
    assert took < 5, f"the worker took {took:.1f}s to stop mid-walk"
    env.settle(1.0)
    assert env.snapshots(inp)[s1.id].end is None, "a stopped walk published an end marker"
    assert env.results_for(inp) == [], [r.value for r in env.results_for(inp)]
    committed = env.committed_sync()
    assert committed < inp.offset + 1, f"the stopped request was committed ({committed})"

    # The next worker of the group gets it again and walks a new snapshot; SIGKILL it.
    w2 = env.start_worker(properties=FAST_GROUP)

    def second():
        env.poll_outputs()
        return [s for s in env.snapshots(inp).values() if s.id != s1.id and len(s.users) >= 300]
    s2 = wait_for(second, 60, "a second snapshot of the redelivered request",
                  env.diagnostics)[0]
    w2.kill()
    assert w2.proc.returncode == -signal.SIGKILL
    assert env.snapshots(inp)[s2.id].end is None

    w3 = env.start_worker(properties=FAST_GROUP)
    value, snap = env.finish(inp, timeout=90)
    assert_complete(value, snap)
    assert_matches_sim(env, snap, "acme")
    snaps = env.snapshots(inp)
    assert len(snaps) == 3 and snap.id not in (s1.id, s2.id), list(snaps)
    for s in (snaps[s1.id], snaps[s2.id]):
        assert s.end is None and 300 <= len(s.users) < 2001, (s.id, len(s.users))
    env.settle(1.0)
    assert len(env.results_for(inp)) == 1, [r.value for r in env.results_for(inp)]
    wait_for(lambda: env.committed_sync() == env.sync_end_offset(), 30,
             "the request to be committed after its complete snapshot",
             lambda: f"committed {env.committed_sync()}, end {env.sync_end_offset()}")
    env.stop_worker(w3)


def test_snapshot_beside_joiners_on_a_small_budget(make_sync_env):
    env = make_sync_env()
    rpm = 120
    # 21 pages + 20 joiners (a write each, lookups batched): at most 61 requests, about 26 s at 2 a
    # second after the worker's burst of rpm/12, and under the simulator's 120 a minute.
    seed(env, "acme", 2000)
    env.sim.ctl("PUT", "/accounts/acme/limits",
                {"limits_enabled": True, "rpm": rpm, "user_write_per_sec": 0,
                 "user_write_per_user_min": 0, "incremental_per_min": 0, "max_jobs": 0})
    env.sim.ctl("POST", "/clock", {"align_minute": True})
    env.start_worker(tenant_over={"acme": {"plan_rpm": rpm}})
    people = [joiner("acme", f"J{i:03d}", "agent" if i % 2 else "end-user") for i in range(20)]
    inp = env.send_sync(sync_request("acme", mode="full"))
    joins = []
    for k in range(0, len(people), 5):  # a stream: 5 joiners a second
        joins += env.send(people[k:k + 5])
        env.poll_outputs(1.0)
    results = env.wait_results(joins, timeout=90)
    for j in joins:
        assert_outcome(only(results, j), "succeeded", "created", j)
    value, snap = env.finish(inp, timeout=90)
    assert_complete(value, snap)

    # The snapshot holds every user that existed before it and none twice; joiners created
    # during the walk may be in it (their ids sort after the cursor) or not.
    before = {u["id"] for u in env.sim.all_users("acme") if not (u.get("external_id") or "").startswith("J")}
    after = set(sim_listed(env, "acme"))
    got = {u["id"] for u in snap.users}
    assert before <= got <= after, (len(before - got), len(got - after))

    # Both progressed: joiner results arrived while the snapshot was still running.
    end_ts = snap.end.timestamp_ms
    during = [r for j in joins for r in results[j] if r.timestamp_ms < end_ts]
    assert len(during) >= 6, (f"only {len(during)} of {len(joins)} joiner results came before the "
                              f"snapshot's end marker: the snapshot starved provisioning")
    log = env.sim.requests("acme")
    assert not [r for r in log if r["status"] == 429], "429s on a budget the worker knows"
    kinds = "".join("P" if r["path"] in USERS_PATHS
                    else "b" if r["path"].endswith("_many") and r["method"] != "GET"
                    else ("w" if r["method"] != "GET" else "r")
                    for r in log)
    # Lookups of joiners waiting together share one show_many request (up to 100 ids), so
    # there are at most 20 of them; every joiner is written once, one at a time: the
    # account has no bulk import, which costs at most the one refused bulk request ("b").
    assert kinds.count("P") == 21 and kinds.count("w") == 20 and 1 <= kinds.count("r") <= 20, kinds
    assert kinds.count("b") <= 1, kinds
    # The worker's bucket starts with a burst of rpm/12 requests that whoever is ready takes
    # (a page is one request at a time). After it, tokens are scarce and the three lanes
    # (lookups, writes, pages) take turns: while the walk runs, no more than two
    # provisioning requests come between two pages, and while joiners wait, no two pages
    # come without provisioning between them.
    burst = rpm // 12
    steady = kinds[burst + 2:kinds.rindex("P") + 1]
    last_prov = max(kinds.rindex("r"), kinds.rindex("w"))
    prov_runs = [len(x) for x in re.split("P+", steady) if x]
    page_runs = [len(x) for x in re.findall("P+", kinds[burst + 2:last_prov + 1])]
    what = f"(P page, r lookup, w write, in arrival order; the first {burst} are the burst): {kinds}"
    assert max(prov_runs, default=0) <= 2, f"the snapshot waited behind provisioning {what}"
    assert max(page_runs, default=0) <= 1, f"provisioning waited behind the snapshot {what}"
    print(f"budget test: {len(during)} of {len(joins)} joiner results before the end marker; {kinds}")
    env.stop_worker(env.workers[0])

"""The admin endpoint and metrics (issue 7), and the `sync` command.

A worker runs with `admin.listen` on a free loopback port the test picks (port 0 cannot be
discovered from outside). The tests scrape /metrics while events run and parse every scrape
with prometheus_client's parser; once every result is read the counters must match what the
test saw: events consumed by type and tenant, events finished by status and outcome (the
results read, plus the DLQ records that have no result), DLQ records by reason, Zendesk
requests by tenant, endpoint class and status class (the simulator's request log, classed by
method and path: a GET lookup or membership listing is a read, a POST or PUT a write, a DELETE a
delete, a GET of the user list or the export a list, the token grant oauth), the
committed offset per partition (the end offsets). Tenant labels come only from the configured
tenants: an event for any other tenant counts under tenant="unknown".

The probes: /healthz and /readyz while running; /readyz 503 "draining" after SIGTERM while
in-flight work drains (simulator latency makes the drain last), then exit 0. Slow clients (a
half-sent request held open, an idle connection, a reader that never reads) block neither the
loop nor other scrapes. Unknown paths answer 404, other methods 405.

The `sync` command runs against the simulator alone (its Kafka address goes nowhere): NDJSON of
a begin marker, one record per user, an end marker that says complete; exit 78 for a tenant
the config does not name.
"""
import json
import re
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import (ADMIN_TIMEOUT, FORMATS, SCHEMAS_DIR, WORKER, Env, Input, Sim,
                      assert_outcome, event, joiner, only, render_config, schema_errors, wait_for)

SYNC_SCHEMA = "zendesk-worker/sync-request/v1"
SNAPSHOT_VALIDATOR = jsonschema.Draft202012Validator(
    json.loads((SCHEMAS_DIR / "user-snapshot.schema.json").read_text()), format_checker=FORMATS)
CONFIGURED = ("acme", "globex")
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"
# include/zw/admin.h: ZW_ADMIN_TIMEOUT_S, the idle time after which a client is dropped.
ADMIN_CLIENT_TIMEOUT_S = 10
EXIT_CONFIG = 78
EXIT_UNAVAILABLE = 69


# ------------------------------------------------------------------------------ helpers

def free_port():
    """A loopback port free right now (the worker binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tenant_label(tenant):
    return tenant if tenant in CONFIGURED else "unknown"


class Metrics:
    """One scrape, parsed with prometheus_client's text-format parser."""

    def __init__(self, text):
        self.text = text
        self.samples = {}  # (sample name, frozenset of label pairs) -> value
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                key = (s.name, frozenset(s.labels.items()))
                assert key not in self.samples, f"duplicate series {s.name}{s.labels} in:\n{text}"
                self.samples[key] = s.value

    def series(self, name):
        return [(dict(labels), v) for (n, labels), v in self.samples.items() if n == name]

    def by(self, name, *labels):
        """{tuple of the label values: value}, summed over the other labels; zeros left out."""
        out = Counter()
        for lab, v in self.series(name):
            out[tuple(lab.get(k) for k in labels)] += v
        return {k: v for k, v in out.items() if v}

    def value(self, name, **labels):
        """The value of the one series with exactly these labels (None when absent)."""
        return self.samples.get((name, frozenset(labels.items())))

    def total(self, name):
        return sum(v for _, v in self.series(name))

    def monotonic_keys(self):
        return {k: v for k, v in self.samples.items()
                if k[0].endswith(("_total", "_count", "_sum", "_bucket"))}


def get(port, path, timeout=5, method="GET"):
    return requests.request(method, f"http://127.0.0.1:{port}{path}", timeout=timeout)


def scrape(port, timeout=5):
    r = get(port, "/metrics", timeout)
    assert r.status_code == 200, f"/metrics answered {r.status_code}: {r.text[:300]}"
    assert r.headers.get("content-type", "").startswith(METRICS_CONTENT_TYPE), r.headers
    return Metrics(r.text)


def assert_grew(prev, cur):
    """Counters (and histogram counts, sums and buckets) never go down between scrapes."""
    if prev is None:
        return
    now = cur.monotonic_keys()
    for key, v in prev.monotonic_keys().items():
        assert key in now, f"series {key[0]}{dict(key[1])} disappeared between scrapes"
        assert now[key] >= v, f"counter {key[0]}{dict(key[1])} went down: {v} -> {now[key]}"


def endpoint_class(req):
    """The worker's endpoint class of one request in the simulator's log."""
    method, path = req["method"], req["path"]
    if path.endswith(".json"):
        path = path[:-5]
    if method == "POST" and path == "/oauth/tokens":
        return "oauth"
    if method == "GET" and (path in ("/api/v2/users/show_many", "/api/v2/users/search",
                                     "/api/v2/users/me")
                            or re.fullmatch(r"/api/v2/users/\d+/group_memberships", path)):
        return "read"
    if method == "GET" and (path == "/api/v2/users" or path.startswith("/api/v2/incremental/users")):
        return "list"
    if (method == "POST" and path in ("/api/v2/users/create_or_update", "/api/v2/group_memberships")
            or method == "PUT" and re.fullmatch(r"/api/v2/users/\d+", path)):
        return "write"
    if method == "DELETE" and re.fullmatch(r"/api/v2/(users|group_memberships)/\d+", path):
        return "delete"
    return f"unexpected {method} {path}"


def code_class(status):
    if status == 0:
        return "error"
    if status in (401, 403, 429):
        return str(status)
    return f"{status // 100}xx"


class AdminEnv(Env):
    """Env plus sync requests (on the sync topic) and the worker's admin port."""

    def __init__(self, tmp_path, name, partitions, extra_accounts=()):
        super().__init__(tmp_path, name, partitions, extra_accounts)
        self.port = None

    def start_admin_worker(self, **over):
        """A worker with admin.listen on a free port; returns once /healthz answers. Retries
        with another port if someone took the first between the probe and the bind."""
        for attempt in range(3):
            port = free_port()
            cfg = self.config(**over)
            cfg["admin"]["listen"] = f"127.0.0.1:{port}"
            w = self.start_worker(cfg)

            def up():
                if not w.running():
                    return "exited"
                try:
                    return get(port, "/healthz", timeout=1).status_code == 200
                except requests.RequestException:
                    return False
            state = wait_for(up, ADMIN_TIMEOUT, f"/healthz on port {port}",
                             lambda: self.diagnostics())
            if state is True:
                self.port = port
                return w
            w.stopped = True
            if w.proc.returncode == EXIT_UNAVAILABLE and "in use" in w.tail():
                continue  # lost the port race
            pytest.fail(f"{w.name} exited {w.proc.returncode} at start" + self.diagnostics(),
                        pytrace=False)
        pytest.fail("could not find a free admin port in 3 tries" + self.diagnostics(),
                    pytrace=False)

    def wait_ready(self):
        def ready():
            self.assert_workers_alive()
            r = get(self.port, "/readyz")
            return r if r.status_code == 200 else None
        r = wait_for(ready, ADMIN_TIMEOUT, "/readyz to answer 200", self.diagnostics)
        assert r.text == "ready", f"/readyz 200 with body {r.text!r}"


@pytest.fixture
def make_admin_env(request, tmp_path):
    made = []

    def make(partitions=3, extra_accounts=()):
        e = AdminEnv(tmp_path, request.node.name, partitions, extra_accounts)
        made.append(e)
        return e
    yield make
    for e in made:
        e.close()


def seed_and_clear(env, users, groups=()):
    """Seeds users and groups through the API (as the account owner), then clears the request
    logs so they hold only the worker's requests. Returns acme's group ids by name."""
    for sub, ext, fields in users:
        env.sim.seed_user(sub, ext, **fields)
    for name in groups:
        env.sim.api("acme", "POST", "/api/v2/groups", {"group": {"name": name}})
    ids = {g["name"]: g["id"] for g in env.sim.api("acme", "GET", "/api/v2/groups")["groups"]}
    for sub in CONFIGURED:
        env.sim.clear_requests(sub)
    return ids


# ------------------------------------------------------------------------------ (a) metrics

def test_metrics_match_the_events_processed(make_admin_env):
    env = make_admin_env(partitions=3)
    groups = seed_and_clear(env, [("acme", "ADM-L01", {"role": "agent"}),
                                  ("acme", "ADM-M01", {"role": "end-user"}),
                                  ("acme", "ADM-M02", {"role": "agent"})], groups=["Billing"])
    # Latency so that the scrapes below see the run in progress, not only its end.
    env.sim.set_faults("acme", {"latency_ms": 300, "latency_jitter_ms": 200})
    w = env.start_admin_worker()
    env.wait_ready()
    first = scrape(env.port)
    assert first.value("zendesk_worker_up") == 1, first.text
    assert first.series("zendesk_worker_build_info"), first.text
    assert first.total("zendesk_worker_events_consumed_total") == 0, first.text

    goods = [joiner("acme", f"ADM-J{i:02d}", "agent" if i % 2 else "end-user") for i in range(8)]
    goods += [joiner("globex", f"ADM-G{i:02d}") for i in range(3)]
    goods += [event("leaver", "acme", "ADM-L01"),
              event("mover", "acme", "ADM-M01", {"name": "Moved M01"}),
              # group memberships: listed (read), added (write)
              joiner("acme", "ADM-J08", "agent", group_ids=[groups["Support"], groups["Billing"]]),
              event("mover", "acme", "ADM-M02", {"group_ids": [groups["Billing"]]}),
              joiner("initech", "ADM-U01")]  # a tenant the worker does not know
    inputs = env.send(goods)
    missing_email = joiner("acme", "ADM-B01")
    del missing_email["person"]["email"]
    poison = [Input("acme/ADM-P01", b'{"event_id": "cut short', [("x-zwit", b"poison")],
                    None, good=False),
              Input("acme/ADM-B01", json.dumps(missing_email).encode(), [("x-zwit", b"bad")],
                    missing_email, good=False)]
    env.produce(poison)
    sync = env.send_sync({"schema": SYNC_SCHEMA, "request_id": f"sync-{uuid.uuid4()}",
                          "tenant": "acme"})

    # Scrape all along: every scrape parses and no counter goes down.
    last = {"m": first, "mid_run": 0}
    with_result = inputs + [poison[1], sync]
    n_events = len(goods) + len(poison) + 1

    def progress():
        env.poll_outputs(0.1)
        m = scrape(env.port)
        assert_grew(last["m"], m)
        last["m"] = m
        if 0 < m.total("zendesk_worker_events_finished_total") < n_events:
            last["mid_run"] += 1
        have = {id(r.input) for r in env.results}
        return all(id(i) in have for i in with_result) and len(env.dlq) >= 3
    wait_for(progress, 90, "every result and DLQ record, scraping /metrics meanwhile",
             lambda: f"results {len(env.results)}, DLQ {len(env.dlq)}" + env.diagnostics(),
             interval=0.1)
    env.settle(1.0)
    assert last["mid_run"] > 0, "no scrape saw the run in progress (some events finished, not all)"

    # What the test saw.
    for inp in inputs:
        want = "failed" if inp.event["tenant"] not in CONFIGURED else "succeeded"
        assert only(env.results_for(inp), inp)["status"] == want, inp.key
    assert len(env.dlq) == 3, [r.headers.get("zw_error_reason") for r in env.dlq]
    sync_result = only(env.results_for(sync), sync)
    assert_outcome(sync_result, "succeeded", "snapshot_complete")

    consumed = Counter()
    for inp in env.inputs:
        if inp.good:
            consumed[(inp.event["type"], tenant_label(inp.event["tenant"]))] += 1
        else:
            consumed[("invalid", "unknown")] += 1
    consumed[("sync", "acme")] += 1

    finished = Counter()
    for r in env.results:
        v = r.value
        finished[(v["type"] or "invalid", tenant_label(v["tenant"]), v["status"], v["outcome"])] += 1
    with_results = {id(r.input) for r in env.results}
    for d in env.dlq:
        if id(d.input) not in with_results:  # no event_id could be read: no result
            finished[("invalid", "unknown", "failed", "failed")] += 1
    dlq = Counter((d.headers["zw_error_reason"],) for d in env.dlq)
    ends = env.end_offsets()
    sync_end = 1
    state = {}

    def mismatches():
        env.assert_workers_alive()
        m = scrape(env.port)
        out = []

        def cmp(what, got, want):
            if got != dict(want):
                out.append(f"{what}: metrics {sorted(got.items())}\n    expected {sorted(dict(want).items())}")
        cmp("events_consumed_total by (type, tenant)",
            m.by("zendesk_worker_events_consumed_total", "type", "tenant"), consumed)
        cmp("events_finished_total by (type, tenant, status, outcome)",
            m.by("zendesk_worker_events_finished_total", "type", "tenant", "status", "outcome"),
            finished)
        cmp("dlq_records_total by reason", m.by("zendesk_worker_dlq_records_total", "reason"), dlq)
        for sub in CONFIGURED:
            log = env.sim.requests(sub)
            want = Counter((endpoint_class(q), code_class(q["status"])) for q in log)
            got = {k[1:]: v for k, v in m.by("zendesk_worker_zendesk_requests_total",
                                               "tenant", "endpoint", "code").items() if k[0] == sub}
            cmp(f"zendesk_requests_total{{tenant={sub}}} by (endpoint, code) vs the simulator's log",
                got, want)
        committed = {int(lab["partition"]): v
                     for lab, v in m.series("zendesk_worker_committed_offset")
                     if lab["topic"] == env.topics["provisioning"]}
        cmp("committed_offset of the requests topic", committed, {p: o for p, o in ends.items() if o})
        cmp("committed_offset of the sync topic",
            {int(lab["partition"]): v for lab, v in m.series("zendesk_worker_committed_offset")
             if lab["topic"] == env.topics["sync"]}, {0: sync_end})
        lag = {(lab["topic"], lab["partition"]): v for lab, v in m.series("zendesk_worker_consumer_lag")}
        if any(lag.values()):
            out.append(f"consumer_lag not 0 at the end: {lag}")
        for gauge in ("zendesk_worker_pending_events", "zendesk_worker_in_flight_requests"):
            if m.value(gauge) != 0:
                out.append(f"{gauge} is {m.value(gauge)} with nothing left to do")
        snap = m.value("zendesk_worker_snapshot_users_total", tenant="acme")
        if snap != sync_result["count"]:
            out.append(f"snapshot_users_total{{tenant=acme}} {snap}, the sync result counted "
                       f"{sync_result['count']}")
        if m.value("zendesk_worker_snapshot_running", tenant="acme") != 0:
            out.append("snapshot_running{tenant=acme} is not 0 after the snapshot ended")
        # Histograms count what the counters count.
        by_type = Counter()
        for (ty, _, _, _), n in finished.items():
            by_type[ty] += n
        cmp("event_duration_seconds_count by type",
            m.by("zendesk_worker_event_duration_seconds_count", "type"),
            {(t,): n for t, n in by_type.items()})
        cmp("zendesk_request_duration_seconds_count by endpoint",
            m.by("zendesk_worker_zendesk_request_duration_seconds_count", "endpoint"),
            m.by("zendesk_worker_zendesk_requests_total", "endpoint"))
        state["last"] = (m, out)
        return out

    # The finished counter moves when the result's ack reaches the worker, which may be just
    # after the test read the result; gauges and offsets move on the worker's 1 s tick.
    wait_for(lambda: not mismatches(), 15, "the metrics to match the events processed",
             lambda: "\n".join(state["last"][1]) + env.diagnostics(), interval=0.25)

    # Tenant labels only from the configured tenants.
    m = state["last"][0]
    tenants = {dict(k[1])["tenant"] for k in m.samples if "tenant" in dict(k[1])}
    assert tenants <= set(CONFIGURED) | {"unknown"}, f"tenant labels {tenants}"
    assert "initech" not in m.text, "a tenant name from event data became a label"
    assert m.value("zendesk_worker_events_consumed_total", type="joiner", tenant="unknown") == 1

    env.stop_worker(w)
    env.assert_commits_at_end()


# ------------------------------------------------------------------------------ (b) probes

def test_probes_and_readyz_draining_on_sigterm(make_admin_env):
    env = make_admin_env(partitions=2)
    w = env.start_admin_worker()
    r = get(env.port, "/healthz")
    assert (r.status_code, r.text) == (200, "ok")
    assert r.headers.get("content-type", "").startswith("text/plain"), r.headers
    env.wait_ready()

    # Each request takes 0.7 s, so the lookup and write still to do take 1-2 s after SIGTERM.
    env.sim.set_faults("acme", {"latency_ms": 700})
    n = 8
    inputs = env.send([joiner("acme", f"ADM-D{i:02d}") for i in range(n)])

    def all_consumed():
        env.assert_workers_alive()
        return scrape(env.port).total("zendesk_worker_events_consumed_total") == n
    wait_for(all_consumed, 30, f"{n} events consumed", env.diagnostics)

    t0 = time.monotonic()
    w.signal(signal.SIGTERM)
    seen = []  # (seconds after SIGTERM, status, body)
    during = {}
    while w.running() and time.monotonic() - t0 < 30:
        try:
            r = get(env.port, "/readyz", timeout=2)
        except requests.RequestException:
            time.sleep(0.02)
            continue
        seen.append((time.monotonic() - t0, r.status_code, r.text))
        if r.status_code == 503 and not during:
            # While draining, the other endpoints still answer.
            try:
                during["healthz"] = get(env.port, "/healthz", timeout=2)
                during["metrics"] = scrape(env.port, timeout=2)
            except requests.RequestException as e:
                during["error"] = repr(e)
        time.sleep(0.02)
    try:
        rc = w.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        w.kill()
        pytest.fail("the worker did not exit within 30 s of SIGTERM" + env.diagnostics(),
                    pytrace=False)
    took = time.monotonic() - t0
    assert rc == 0, f"exit {rc} after SIGTERM ({took:.1f}s)" + env.diagnostics()

    summary = f"/readyz answers after SIGTERM (s, status, body): {seen[:5]} ... {seen[-3:]}"
    first_down = next((i for i, s in enumerate(seen) if s[1] != 200), None)
    assert first_down is not None, f"/readyz never left 200 during a {took:.1f}s drain; {summary}"
    assert all(s[1:] == (503, "draining") for s in seen[first_down:]), summary
    assert all(s[1:] == (200, "ready") for s in seen[:first_down]), summary
    assert "error" not in during, f"an endpoint failed while draining: {during['error']}"
    assert (during["healthz"].status_code, during["healthz"].text) == (200, "ok")
    finished = during["metrics"].total("zendesk_worker_events_finished_total")
    assert finished < n, (f"/readyz said draining only after all {n} events had finished; "
                          f"nothing was in flight ({summary})")
    assert took >= 0.5, f"the drain took {took:.2f}s: the latency did not keep work in flight"

    # The drain finished the in-flight work.
    results = env.wait_results(inputs)
    for inp in inputs:
        assert_outcome(only(results, inp), "succeeded", "created", inp)
    env.assert_commits_at_end()


# ------------------------------------------------------------------------------ (c) slow clients

def test_slow_clients_do_not_block_the_worker(make_admin_env):
    env = make_admin_env(partitions=2)
    env.start_admin_worker()
    env.wait_ready()
    # Slow enough answers that several scrapes fall inside the run.
    env.sim.set_faults("acme", {"latency_ms": 300})

    held = []
    for i in range(4):  # half a request each, held open
        s = socket.create_connection(("127.0.0.1", env.port), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + str(i).encode())
        held.append(s)
    idle = socket.create_connection(("127.0.0.1", env.port), timeout=5)  # sends nothing
    held.append(idle)
    # A reader that never reads: a small receive window and many pipelined scrapes.
    reader = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    reader.settimeout(5)
    reader.connect(("127.0.0.1", env.port))
    reader.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 50)
    held_since = time.monotonic()

    n = 20
    inputs = env.send([joiner("acme", f"ADM-S{i:02d}") for i in range(n)])
    scrapes = []

    def done():
        env.poll_outputs()
        t = time.monotonic()
        m = scrape(env.port, timeout=3)  # another connection answers at once
        scrapes.append((time.monotonic() - t, m.total("zendesk_worker_events_finished_total")))
        r = get(env.port, "/healthz", timeout=3)
        assert (r.status_code, r.text) == (200, "ok")
        have = {id(r.input) for r in env.results}
        return all(id(i) in have for i in inputs)
    wait_for(done, 60, f"results for {n} events while slow clients hold connections",
             env.diagnostics, interval=0.1)
    ran = time.monotonic() - held_since
    for inp in inputs:
        assert_outcome(only(env.results_for(inp), inp), "succeeded", "created", inp)
    assert len(scrapes) >= 2, scrapes
    assert max(t for t, _ in scrapes) < 3, f"a scrape took long beside slow clients: {scrapes}"
    assert scrapes[0][1] < n and len({f for _, f in scrapes}) > 1, \
        f"the finished count did not move while slow clients were held: {scrapes}"

    # The half-sent requests got no answer (they are still incomplete): nothing to read,
    # or, only once the server's idle timeout may have passed, a close with no answer.
    for s in held:
        s.setblocking(False)
        try:
            data = s.recv(4096)
        except BlockingIOError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        assert data == b"" or data.startswith(b"HTTP/1.1 4"), \
            f"a half-sent request got {data[:100]!r}"
        assert ran >= ADMIN_CLIENT_TIMEOUT_S - 1, \
            f"a half-sent request was answered or closed after {ran:.1f}s, before the idle timeout"
    # ... and the server drops them once they have been idle for its timeout.
    deadline = time.monotonic() + ADMIN_CLIENT_TIMEOUT_S + 15
    for s in held:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = s.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        except socket.timeout:
            pytest.fail(f"a slow client was still held {time.monotonic() - held_since:.0f}s "
                        f"after it connected (timeout {ADMIN_CLIENT_TIMEOUT_S}s)")
        assert data == b"" or data.startswith(b"HTTP/1.1 4"), data[:200]
        s.close()
    reader.close()
    env.assert_workers_alive()
    r = get(env.port, "/healthz")
    assert (r.status_code, r.text) == (200, "ok")


# ------------------------------------------------------------------------------ (d) bad requests

def test_unknown_path_and_method(make_admin_env):
    env = make_admin_env(partitions=1)
    env.start_admin_worker()
    env.wait_ready()
    for path in ("/", "/nope", "/metrics/extra", "/healthz/", "/METRICS"):
        r = get(env.port, path)
        assert r.status_code == 404, f"GET {path}: {r.status_code} {r.text!r}"
    for method, path in (("POST", "/metrics"), ("PUT", "/healthz"), ("DELETE", "/readyz"),
                         ("POST", "/nope")):
        r = get(env.port, path, method=method)
        assert r.status_code == 405, f"{method} {path}: {r.status_code} {r.text!r}"
        assert r.headers.get("allow") == "GET, HEAD", f"{method} {path}: {r.headers}"
    r = requests.post(f"http://127.0.0.1:{env.port}/metrics", data=b"x" * 10000, timeout=5)
    assert r.status_code == 405
    r = get(env.port, "/healthz", method="HEAD")
    assert (r.status_code, r.content) == (200, b"")
    env.assert_workers_alive()
    assert scrape(env.port).value("zendesk_worker_up") == 1


# ------------------------------------------------------------------------------ (e) sync command

def sync_config(sim, tmp):
    """A config whose Kafka goes nowhere: the sync command must not need it."""
    secrets = tmp / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "acme-token").write_text(sim.accounts["acme"]["token"])
    (secrets / "globex-secret").write_text(sim.accounts["globex"]["client_secret"])
    cfg = {
        "kafka": {"bootstrap_servers": "127.0.0.1:9", "group_id": "zwit-sync-cmd",
                  "topics": {"provisioning": "p", "sync": "s", "results": "r",
                             "snapshots": "u", "dead_letter": "d"},
                  "properties": []},
        "zendesk": {"base_url": "http://{subdomain}.zendesk.test",
                    "connect_to": f"127.0.0.1:{sim.port}", "timeout_ms": 5000,
                    "tenants": [
                        {"subdomain": "acme", "plan_rpm": 6000,
                         "auth": {"type": "api_token", "email": sim.accounts["acme"]["email"],
                                  "token_file": str(secrets / "acme-token")}},
                        {"subdomain": "globex", "plan_rpm": 6000,
                         "auth": {"type": "oauth_client_credentials", "client_id": "zw",
                                  "client_secret_file": str(secrets / "globex-secret"),
                                  "scope": "users:read users:write"}}]},
        "worker": {"max_attempts": 5, "backoff_base_ms": 50, "backoff_max_ms": 1000},
        "admin": {"listen": ""},
        "log": {"level": "info", "format": "json"},
    }
    path = tmp / "sync.cfg"
    path.write_text(render_config(cfg))
    return path


def check_ndjson(text, tenant, sim_users):
    """The records of one snapshot: begin, users, end complete; returns the users."""
    lines = text.splitlines()
    assert len(lines) >= 2, f"too few lines: {lines}"
    recs = []
    for i, line in enumerate(lines):
        rec = json.loads(line)
        errs = schema_errors(SNAPSHOT_VALIDATOR, rec)
        assert not errs, f"line {i + 1} breaks user-snapshot.schema.json: {errs}\n{line}"
        recs.append(rec)
    assert [r["kind"] for r in recs] == ["begin"] + ["user"] * (len(recs) - 2) + ["end"], \
        Counter(r["kind"] for r in recs)
    assert [r["seq"] for r in recs] == list(range(len(recs))), "seq is not 0, 1, 2, ..."
    assert len({(r["snapshot_id"], r["request_id"], r["tenant"]) for r in recs}) == 1
    assert recs[0]["tenant"] == tenant
    users = [r["user"] for r in recs[1:-1]]
    end = recs[-1]["end"]
    assert end["status"] == "complete", end
    assert end["count"] == len(users), f"end count {end['count']}, {len(users)} user records"
    active = {u["id"]: u for u in sim_users if u["active"]}
    got = [u["id"] for u in users]
    assert len(got) == len(set(got)), "a user listed twice"
    assert set(got) == set(active), (f"{len(got)} users listed, the simulator has {len(active)}; "
                                     f"missing {sorted(set(active) - set(got))[:5]}, "
                                     f"extra {sorted(set(got) - set(active))[:5]}")
    for u in users:
        s = active[u["id"]]
        assert (u["external_id"], u["email"], u["role"]) == \
            (s.get("external_id"), s.get("email"), s.get("role")), (u, s)
    return users


def test_sync_command_without_kafka(tmp_path):
    if not WORKER or not Path(WORKER).exists():
        pytest.skip("ZENDESK_WORKER is not set to the built worker")
    sim = Sim(tmp_path / "sim.log")
    try:
        sim.ctl("POST", "/accounts/acme/seed", {"count": 250, "role": "mixed",
                                                      "prefix": "ADMSYNC"}, expect=(201,))
        sim.seed_user("acme", "ADM-SUSP", suspended=True)
        cfg = sync_config(sim, tmp_path)
        out = tmp_path / "acme.ndjson"

        p = subprocess.run([WORKER, "sync", "-c", str(cfg), "--tenant", "acme", "--out", str(out)],
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, f"exit {p.returncode}\nstderr: {p.stderr[-2000:]}"
        assert p.stdout == "", f"stdout with --out: {p.stdout[:300]!r}"
        sim_users = sim.all_users("acme")
        users = check_ndjson(out.read_text(), "acme", sim_users)
        assert len(users) == 252, len(users)  # owner + 250 seeded + 1 suspended
        assert f"complete, {len(users)} users" in p.stderr, p.stderr[-1000:]
        assert "\r" not in p.stderr, "a progress line on stderr that is not a terminal"
        pages = [q for q in sim.requests("acme") if endpoint_class(q) == "list"]
        assert len(pages) == 3, f"{len(pages)} list requests for 252 users at 100 per page"

        # OAuth tenant, NDJSON on stdout.
        p = subprocess.run([WORKER, "sync", "-c", str(cfg), "--tenant", "globex"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, f"exit {p.returncode}\nstderr: {p.stderr[-2000:]}"
        check_ndjson(p.stdout, "globex", sim.all_users("globex"))

        bad = tmp_path / "bad.ndjson"
        p = subprocess.run([WORKER, "sync", "-c", str(cfg), "--tenant", "umbrella", "--out", str(bad)],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert p.returncode == EXIT_CONFIG, f"exit {p.returncode}\nstderr: {p.stderr[-2000:]}"
        assert "umbrella" in p.stderr, p.stderr
        assert not bad.exists() or bad.read_text() == "", "output written for an unknown tenant"
    finally:
        sim.stop()

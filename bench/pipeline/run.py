#!/usr/bin/env python3
"""Pipeline benchmarks for zendesk-worker against a real broker and zendesk-sim.

    run.py SCENARIO --bootstrap HOST:PORT --sim HOST:PORT --worker PATH [--workdir DIR] [...]

SCENARIO is one of:
  instant     sim answers at once, limits off; N joiners pre-produced to a 6-partition topic,
              then the worker starts. events/s, CPU us/event, peak RSS.
  latency200  sim answers every request after 200 ms, limits off. events/s, requests in flight.
  tenants10   ten tenants, account budget on (rpm 600 each, single-user write limit off in the
              sim). Run A all at full budget; run B with t9's sim account at a tenth; run C,
              the backlog case: t9 at a tenth (sim and worker plan) with 20,000 joiners in
              front of everyone's. Each tenant's sustained rate as % of budget, share of
              429s, slowdown of the other nine, peak RSS.
  writelimit  one tenant, realistic single-user write limit (sim default 1 write/s), worker
              default single_user_write_rpm=60. events/s and 429s.
  bulk10k     one tenant with Enterprise limits (700 rpm, 1 single-user write/s, 30 jobs,
              bulk import on, jobs queued 1 s then 100 ms per user): 10,000 joiners through
              the bulk path, then a sample with bulk off (single calls) whose rate is
              extrapolated to 10,000. Both times and their ratio.

Every run prints a table of figures with the ratio to each target. Nothing asserts a timing:
the exit status is non-zero only when a run could not complete (deadline, worker crash).
bench/pipeline/run.sh starts and stops the broker and the simulator around this script.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CLK_TCK = os.sysconf("SC_CLK_TCK")
PARTITIONS = 6


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- simulator control API

class Sim:
    def __init__(self, addr):
        self.base = f"http://{addr}"
        # Never route loopback control calls through a proxy from the environment.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method, path, body=None, timeout=10):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with self.opener.open(req, timeout=timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raise BenchError(f"sim {method} {path}: HTTP {e.code} {e.read()[:200]!r}") from None
        return json.loads(raw) if raw else None

    def ensure_account(self, sub):
        try:
            self.call("GET", f"/__sim/accounts/{sub}")
        except BenchError:
            self.call("POST", "/__sim/accounts",
                      {"subdomain": sub, "email": f"admin@{sub}.test", "token": token_of(sub),
                       "limits_enabled": False})

    def reset(self):
        self.call("POST", "/__sim/reset", {})

    def limits(self, sub, **kw):
        return self.call("PUT", f"/__sim/accounts/{sub}/limits", kw)

    def faults(self, sub, **kw):
        return self.call("PUT", f"/__sim/accounts/{sub}/faults", kw)

    def stats(self, sub):
        return self.call("GET", f"/__sim/accounts/{sub}/stats")

    def request_log(self, sub):
        return self.call("GET", f"/__sim/accounts/{sub}/requests?limit=10000", timeout=30)["requests"]

    def clear_log(self, sub):
        self.call("DELETE", f"/__sim/accounts/{sub}/requests")


def token_of(sub):
    return f"bench-token-{sub}"   # run.sh starts the simulator with these tokens


# ---------------------------------------------------------------- Kafka helpers

class Topics:
    def __init__(self, bootstrap, scenario, run_id):
        base = f"bench.{scenario}.{run_id}"
        self.bootstrap = bootstrap
        self.requests = base + ".requests"
        self.results = base + ".results"
        self.dlq = base + ".dlq"
        self.sync = base + ".sync"
        self.snapshots = base + ".snapshots"
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    def all(self):
        return [self.requests, self.results, self.dlq, self.sync, self.snapshots]

    def create(self):
        futs = self.admin.create_topics(
            [NewTopic(t, num_partitions=PARTITIONS, replication_factor=1) for t in self.all()],
            request_timeout=30)
        for t, f in futs.items():
            f.result(timeout=30)
        # Wait until metadata shows every partition with a leader (bounded).
        deadline = time.monotonic() + 30
        while True:
            md = self.admin.list_topics(timeout=10)
            ok = all(t in md.topics and md.topics[t].error is None
                     and len(md.topics[t].partitions) == PARTITIONS
                     and all(p.leader >= 0 for p in md.topics[t].partitions.values())
                     for t in self.all())
            if ok:
                return
            if time.monotonic() > deadline:
                raise BenchError("topics not ready after 30 s")
            time.sleep(0.2)

    def delete(self):
        try:
            for f in self.admin.delete_topics(self.all(), request_timeout=15).values():
                f.result(timeout=15)
        except Exception as e:  # best effort: the broker is thrown away by run.sh anyway
            log(f"could not delete topics: {e}")


def produce_joiners(bootstrap, topic, tenants, per_tenant, run_id, backlog=None):
    """Pre-produces per_tenant joiners for each tenant, interleaved, and waits for every ack.
    backlog: (tenant, n) produced first, n joiners of that tenant in front of everyone's
    (that tenant then gets no others)."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all",
                  "enable.idempotence": True, "queue.buffering.max.messages": 200000})
    errors = []

    def dr(err, _msg):
        if err is not None:
            errors.append(err)

    n = 0
    order = []
    if backlog:
        order += [(backlog[0], i) for i in range(1, backlog[1] + 1)]
        tenants = [t for t in tenants if t != backlog[0]]
    order += [(t, i) for i in range(1, per_tenant + 1) for t in tenants]
    for t, i in order:
        ext = f"E{i:06d}"
        ev = {"schema": "zendesk-worker/provisioning-request/v1",
              "event_id": f"{run_id}-{t}-{i:06d}", "type": "joiner", "tenant": t,
              "person": {"external_id": ext, "email": f"e{i:06d}@{t}.example",
                         "name": f"Bench Person {i:06d}"}}
        while True:
            try:
                p.produce(topic, key=f"{t}/{ext}", value=json.dumps(ev), on_delivery=dr)
                break
            except BufferError:
                p.poll(0.1)
        n += 1
        if n % 1000 == 0:
            p.poll(0)
    left = p.flush(60)
    if left or errors:
        raise BenchError(f"produce: {left} unacked, {len(errors)} errors ({errors[:1]})")
    return n


class Results(threading.Thread):
    """Reads the results topic from the beginning (assign, no group join) and records, per
    result, the monotonic arrival time, tenant and status."""

    def __init__(self, bootstrap, topic, run_id):
        super().__init__(daemon=True)
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-reader-{run_id}",
                           "enable.auto.commit": False, "enable.partition.eof": False,
                           "fetch.wait.max.ms": 50})
        self.c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.times = []          # arrival times (monotonic), in arrival order
        self.by_tenant = {}      # tenant -> [arrival times]
        self.statuses = {}       # status/outcome -> count
        self.errors = {}         # error class/code -> count
        self.stop = False

    def run(self):
        try:
            while not self.stop:
                msgs = self.c.consume(1000, 0.1)
                if not msgs:
                    continue
                now = time.monotonic()
                with self.lock:
                    for m in msgs:
                        if m.error():
                            continue
                        r = json.loads(m.value())
                        t = r.get("tenant", "?")
                        self.times.append(now)
                        self.by_tenant.setdefault(t, []).append(now)
                        k = f"{r.get('status')}/{r.get('outcome')}"
                        self.statuses[k] = self.statuses.get(k, 0) + 1
                        if r.get("error"):
                            e = r["error"]
                            ek = f"{e.get('class')}:{e.get('http_status')}:{e.get('code')}"
                            self.errors[ek] = self.errors.get(ek, 0) + 1
                    self.cond.notify_all()
        finally:
            self.c.close()

    def count(self, tenants=None):
        with self.lock:
            if tenants is None:
                return len(self.times)
            return sum(len(self.by_tenant.get(t, ())) for t in tenants)

    def wait_for(self, n, tenants, deadline, worker):
        """Waits until n results of the given tenants (None: any) arrived; bounded."""
        with self.lock:
            while True:
                have = (len(self.times) if tenants is None
                        else sum(len(self.by_tenant.get(t, ())) for t in tenants))
                if have >= n:
                    return True
                if worker.proc.poll() is not None:
                    raise BenchError(f"worker exited with {worker.proc.returncode} after "
                                     f"{have}/{n} results; see {worker.log_path}")
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))


# ---------------------------------------------------------------- the worker process

def write_config(path, topics, sim_addr, workdir, tenants, run_id, max_in_flight=512,
                 log_level="warn", worker_extra=""):
    """tenants: list of (subdomain, plan_rpm, single_user_write_rpm or None)."""
    parts = []
    for sub, rpm, wrpm in tenants:
        tok = os.path.join(workdir, f"token-{sub}")
        with open(tok, "w") as f:
            f.write(token_of(sub) + "\n")
        w = f" single_user_write_rpm = {wrpm};" if wrpm is not None else ""
        parts.append(f'{{ subdomain = "{sub}"; plan_rpm = {rpm};{w} auth: {{ type = "api_token"; '
                     f'email = "admin@{sub}.test"; token_file = "{tok}"; }}; }}')
    cfg = f"""kafka: {{ bootstrap_servers = "{topics.bootstrap}"; group_id = "bench-{run_id}";
  topics: {{ provisioning = "{topics.requests}"; results = "{topics.results}";
            dead_letter = "{topics.dlq}"; sync = "{topics.sync}"; snapshots = "{topics.snapshots}"; }}; }};
zendesk: {{ base_url = "http://{{subdomain}}.zendesk.test"; connect_to = "{sim_addr}"; timeout_ms = 10000;
  tenants = ( {", ".join(parts)} ); }};
worker: {{ max_in_flight = {max_in_flight}; shutdown_timeout_ms = 5000; {worker_extra} }};
admin: {{ listen = ""; }};
log: {{ level = "{log_level}"; format = "json"; }};
"""
    with open(path, "w") as f:
        f.write(cfg)


class Worker:
    def __init__(self, binary, config, log_path):
        self.log_path = log_path
        self.logf = open(log_path, "wb")
        self.start = time.monotonic()
        self.proc = subprocess.Popen([binary, "run", "-c", config], stdout=self.logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def cpu_s(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is state (field 3); utime and stime are fields 14 and 15.
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def status_kb(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return None

    def stop(self, grace=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                log("worker did not stop after SIGTERM; SIGKILL")
                self.proc.kill()
                self.proc.wait(10)
        self.logf.close()
        return self.proc.returncode

    def log_records(self):
        out = []
        with open(self.log_path, "rb") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out


def log_summary(worker):
    """Max in_flight seen in progress lines, and counts of warn/error messages."""
    max_in_flight, msgs = None, {}
    for r in worker.log_records():
        m = r.get("msg") or r.get("message") or ""
        if m == "progress" and "in_flight" in r:
            max_in_flight = max(max_in_flight or 0, int(r["in_flight"]))
        lvl = r.get("level", "")
        if lvl in ("warn", "warning", "error"):
            k = f"{lvl}: {m}"
            msgs[k] = msgs.get(k, 0) + 1
    return max_in_flight, msgs


# ---------------------------------------------------------------- reporting

def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        s = f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
    else:
        s = f"{v:,}"
    return s + (f" {unit}" if unit else "")


def table(title, rows):
    """rows: (figure, value, unit, target text, ratio or None)."""
    print(f"\n== {title}")
    w0 = max(len(r[0]) for r in rows)
    print(f"{'figure':<{w0}}  {'value':>16}  {'target':<14} {'ratio':>7}")
    for name, v, unit, target, ratio in rows:
        rs = f"{ratio:.2f}" if ratio is not None else ""
        print(f"{name:<{w0}}  {fmt(v, unit):>16}  {target or '':<14} {rs:>7}")
    sys.stdout.flush()


def sim_status_counts(sim, subs):
    tot, by = 0, {}
    for s in subs:
        st = sim.stats(s)
        tot += st["total_requests"]
        for k, v in st["by_status"].items():
            by[k] = by.get(k, 0) + v
    return tot, by


def arrival_profile(reqs):
    """From the simulator's request log: (writes, reads, max writes arriving in one ms,
    max reads in one ms, write rate first -> last). A writer paced by a 1-token bucket on a
    millisecond clock never sends two writes in the same ms."""
    from collections import Counter
    w = [q["time_ms"] for q in reqs if q["method"] != "GET"]
    r = [q["time_ms"] for q in reqs if q["method"] == "GET"]
    mw = max(Counter(w).values()) if w else 0
    mr = max(Counter(r).values()) if r else 0
    wr = (len(w) - 1) / ((max(w) - min(w)) / 1000) if len(w) > 1 and max(w) > min(w) else None
    return len(w), len(r), mw, mr, wr


def peak_concurrency(times_ms, window_ms):
    """Largest number of request arrivals within any window_ms: with a fixed latency of
    window_ms, that is the number of requests the simulator held at once."""
    times_ms = sorted(times_ms)
    best, j = 0, 0
    for i, t in enumerate(times_ms):
        while times_ms[j] <= t - window_ms:
            j += 1
        best = max(best, i - j + 1)
    return best


# ---------------------------------------------------------------- scenarios

def run_pipeline(a, sim, scenario, tenants_cfg, per_tenant, deadline_s, wait_tenants=None,
                 max_in_flight=512, label=None, worker_extra="", backlog=None):
    """Creates topics, pre-produces joiners, starts the worker, waits for results.
    Returns a dict of raw measurements. wait_tenants: only wait for these tenants' results."""
    run_id = f"{int(time.time())}-{uuid.uuid4().hex[:6]}"
    label = label or scenario
    subs = [t[0] for t in tenants_cfg]
    topics = Topics(a.bootstrap, scenario, run_id)
    topics.create()
    t0 = time.monotonic()
    n = produce_joiners(a.bootstrap, topics.requests, subs, per_tenant, run_id, backlog)
    log(f"{label}: produced {n} joiners for {len(subs)} tenant(s) in {time.monotonic() - t0:.1f} s")
    results = Results(a.bootstrap, topics.results, run_id)
    results.start()
    cfg = os.path.join(a.workdir, f"worker-{label}.cfg")
    write_config(cfg, topics, a.sim, a.workdir, tenants_cfg, run_id, max_in_flight, a.log_level,
                 worker_extra)
    worker = Worker(a.worker, cfg, os.path.join(a.workdir, f"worker-{label}.log"))
    want_subs = wait_tenants or subs
    want = per_tenant * len(want_subs)
    out = {"n": n, "want": want, "worker": worker, "results": results, "topics": topics}
    try:
        ok = results.wait_for(want, want_subs if wait_tenants else None,
                              worker.start + deadline_s, worker)
        end = time.monotonic()
        # Read the process figures at once, before shutdown work changes them.
        out["cpu_s"] = worker.cpu_s()
        out["hwm_kb"] = worker.status_kb("VmHWM")
        out["rss_kb"] = worker.status_kb("VmRSS")
        out["complete"] = ok
        if not ok:
            log(f"{label}: DEADLINE {deadline_s} s passed with {results.count(want_subs)}/{want} results")
        with results.lock:
            times = [t for s in want_subs for t in results.by_tenant.get(s, [])]
            times.sort()
            out["got"] = len(times)
            out["first"] = times[0] if times else None
            out["last"] = times[-1] if times else None
            out["per_tenant_last"] = {s: max(results.by_tenant[s]) for s in results.by_tenant}
            out["per_tenant_n"] = {s: len(results.by_tenant[s]) for s in results.by_tenant}
            out["statuses"] = dict(results.statuses)
            out["errors"] = dict(results.errors)
        out["start"] = worker.start
        out["end"] = end
    finally:
        rc = worker.stop()
        results.stop = True
        results.join(10)
        out["rc"] = rc
        topics.delete()
    out["max_in_flight_log"], out["log_msgs"] = log_summary(worker)
    return out


def common_rows(r):
    wall = (r["last"] - r["start"]) if r["last"] else None
    steady = ((r["got"] - 1) / (r["last"] - r["first"])
              if r["got"] > 1 and r["last"] > r["first"] else None)
    first = (r["first"] - r["start"]) if r["first"] else None
    return wall, steady, first


def print_outcomes(r, sim_counts=None):
    print(f"results waited for: {r['got']}/{r['want']}; all results by status/outcome: " + ", ".join(f"{k}={v}" for k, v in sorted(r['statuses'].items())))
    if r["errors"]:
        print("result errors: " + ", ".join(f"{k}={v}" for k, v in sorted(r["errors"].items())))
    if sim_counts:
        tot, by = sim_counts
        print(f"sim: {tot} requests, by status " + ", ".join(f"{k}={v}" for k, v in sorted(by.items())))
    if r["log_msgs"]:
        print("worker log warnings/errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(r["log_msgs"].items())))
    rc = r["rc"]
    note = f" (WORKER DIED OF SIGNAL {-rc} during shutdown)" if rc is not None and rc < 0 else ""
    print(f"worker exit status after SIGTERM: {rc}{note}; log: {r['worker'].log_path}")


def scenario_instant(a, sim):
    n = a.events or 20000
    sim.reset()
    r = run_pipeline(a, sim, "instant", [("t0", 1000000, 1000000)], n, a.deadline or 180)
    wall, steady, first = common_rows(r)
    eps = r["got"] / wall if wall else None
    us = r["cpu_s"] * 1e6 / r["got"] if r["got"] else None
    mb = r["hwm_kb"] / 1024 if r["hwm_kb"] else None
    table(f"instant: {n} joiners, 6 partitions, sim limits off, latency 0", [
        ("events/s, worker start -> last result", eps, "ev/s", ">= 5,000", eps / 5000 if eps else None),
        ("events/s, first -> last result (steady)", steady, "ev/s", ">= 5,000", steady / 5000 if steady else None),
        ("worker start -> first result", first, "s", "", None),
        ("worker start -> last result", wall, "s", "", None),
        ("worker CPU (user+sys) per event", us, "us", "<= 100", 100 / us if us else None),
        ("worker CPU total", r["cpu_s"], "s", "", None),
        ("worker peak RSS (VmHWM)", mb, "MB", "< 50", 50 / mb if mb else None),
        ("worker in_flight, max of 10 s samples (info log)", r["max_in_flight_log"], "", "", None),
    ])
    print("(ratio: > 1 means the target is met; for CPU and RSS it is target / measured)")
    nw, nr, mw, mr, wr = arrival_profile(sim.request_log("t0"))
    print(f"sim log (last {nw + nr} requests): {nw} writes at {fmt(wr)}/s, at most {mw} write(s) "
          f"and {mr} read(s) arriving in the same millisecond")
    print_outcomes(r, sim_status_counts(sim, ["t0"]))
    return r["complete"]


def scenario_latency200(a, sim):
    n = a.events or 5000
    sim.reset()
    sim.faults("t0", latency_ms=200)
    r = run_pipeline(a, sim, "latency200", [("t0", 1000000, 1000000)], n, a.deadline or 180,
                     max_in_flight=a.max_in_flight)
    wall, steady, first = common_rows(r)
    eps = r["got"] / wall if wall else None
    reqs = sim.request_log("t0")
    peak = peak_concurrency([q["time_ms"] for q in reqs], 200) if reqs else None
    sim.call("DELETE", "/__sim/accounts/t0/faults")
    us = r["cpu_s"] * 1e6 / r["got"] if r["got"] else None
    table(f"latency200: {n} joiners, every answer after 200 ms, sim limits off, max_in_flight {a.max_in_flight}", [
        ("events/s, worker start -> last result", eps, "ev/s", ">= 1,000", eps / 1000 if eps else None),
        ("events/s, first -> last result (steady)", steady, "ev/s", ">= 1,000", steady / 1000 if steady else None),
        ("worker start -> first result", first, "s", "", None),
        ("worker start -> last result", wall, "s", "", None),
        ("peak requests in flight (sim arrivals/200 ms)", peak, "", "", None),
        ("  log covers requests", len(reqs), "", "", None),
        ("worker in_flight, max of 10 s samples", r["max_in_flight_log"], "", "", None),
        ("worker CPU per event", us, "us", "", None),
    ])
    print("(events/s ceiling from in flight: peak / 0.2 s / 2 requests per event = "
          f"{peak / 0.4:,.0f} ev/s)" if peak else "")
    print_outcomes(r, sim_status_counts(sim, ["t0"]))
    return r["complete"]


def tenant_rates(reqs, skip_s):
    """(requests, whole-span rate, steady rate after skip_s from the first request) in req/s."""
    if len(reqs) < 2:
        return len(reqs), None, None
    ts = sorted(q["time_ms"] for q in reqs)
    span = (ts[-1] - ts[0]) / 1000
    whole = (len(ts) - 1) / span if span > 0 else None
    cut = ts[0] + skip_s * 1000
    later = [t for t in ts if t >= cut]
    steady = ((len(later) - 1) / ((later[-1] - later[0]) / 1000)
              if len(later) > 1 and later[-1] > later[0] else None)
    return len(ts), whole, steady


def scenario_tenants10(a, sim):
    subs = [f"t{i}" for i in range(10)]
    rpm = a.rpm
    budget = rpm / 60.0
    per = a.events or 330  # 660 requests per tenant: ~61 s at 10 req/s after a 50-request burst
    nine = subs[:9]

    def setup(t9_rpm):
        sim.reset()
        for s in subs:
            sim.limits(s, limits_enabled=True, rpm=t9_rpm if s == "t9" else rpm,
                       user_write_per_sec=0, user_write_per_user_min=0)
            sim.clear_log(s)

    tenants_cfg = [(s, rpm, 1000000) for s in subs]
    runs = {}
    for label, t9_rpm in (("A", rpm), ("B", rpm // 10), ("C", rpm // 10)):
        setup(t9_rpm)
        cfg = list(tenants_cfg)
        if label == "B" and a.t9_worker_rpm:
            cfg[9] = ("t9", a.t9_worker_rpm, 1000000)
        if label == "C":  # the budget really is a tenth: the worker knows it
            cfg[9] = ("t9", a.t9_worker_rpm or rpm // 10, 1000000)
        log(f"tenants10 run {label}: t9 sim rpm {t9_rpm}, the others {rpm}"
            + (f", t9 backlog {a.backlog} joiners first" if label == "C" else ""))
        r = run_pipeline(a, sim, "tenants10", cfg, per, a.deadline or 150,
                         wait_tenants=nine if label != "A" else None, label=f"tenants10-{label}",
                         backlog=("t9", a.backlog) if label == "C" else None)
        r["reqs"] = {s: sim.request_log(s) for s in subs}
        r["stats"] = {s: sim.stats(s) for s in subs}
        runs[label] = r

    for label in ("A", "B", "C"):
        r = runs[label]
        rows = []
        for s in subs:
            n, whole, steady = tenant_rates(r["reqs"][s], a.skip)
            if label != "A" and s == "t9":
                steady = None  # spends each minute's 60 at once: only max/sim minute means anything
            st = r["stats"][s]["by_status"]
            n429 = st.get("429", 0)
            b = budget if not (label != "A" and s == "t9") else (rpm // 10) / 60.0
            rows.append((s, n, whole, steady, b, n429, r["stats"][s]["total_requests"], r["per_tenant_n"].get(s, 0)))
        print(f"\n== tenants10 run {label}: {per} joiners per tenant, sim rpm {rpm} each"
              + (f", t9 sim rpm {rpm // 10}" + (f" (worker plan_rpm {a.t9_worker_rpm})" if a.t9_worker_rpm else " (worker still plans 600)") if label == "B" else "")
              + (f", t9 sim and worker rpm {rpm // 10} with {a.backlog} joiners in front" if label == "C" else "")
              + ", single-user write limit off in the sim")
        print(f"{'tenant':<6} {'requests':>8} {'429s':>6} {'results':>7} {'req/s whole':>11} {'req/s steady':>12} "
              f"{'% budget (steady)':>17} {'max/sim minute':>14}  target 95-100%, max/minute <= budget")
        for s, n, whole, steady, b, n429, tot, nres in rows:
            pct = steady / b * 100 if steady else None
            # The simulator's budget is a fixed window aligned to its clock's minute.
            wins = {}
            for q in r["reqs"][s]:
                wins[q["time_ms"] // 60000] = wins.get(q["time_ms"] // 60000, 0) + 1
            mx = f"{max(wins.values()) if wins else 0}/{round(b * 60)}"
            print(f"{s:<6} {n:>8} {n429:>6} {nres:>7} {fmt(whole):>11} {fmt(steady):>12} {fmt(pct):>17} {mx:>14}")
        tot_all = sum(x[6] for x in rows)
        n429_all = sum(x[5] for x in rows)
        tot9 = sum(x[6] for x in rows[:9])
        n429_9 = sum(x[5] for x in rows[:9])
        pcts9 = [x[3] / x[4] * 100 for x in rows[:9] if x[3]]
        r["nine_reqs"] = sum(x[1] for x in rows[:9])
        ts9 = sorted(q["time_ms"] for s in nine for q in r["reqs"][s])
        r["nine_span"] = (ts9[-1] - ts9[0]) / 1000 if len(ts9) > 1 else None
        r["nine_done"] = max(r["per_tenant_last"].get(s, 0) for s in nine) - r["start"]
        share = n429_all / tot_all * 100 if tot_all else None
        share9 = n429_9 / tot9 * 100 if tot9 else None
        table(f"tenants10 run {label} summary", [
            ("nine tenants t0..t8: min % of budget (steady)", min(pcts9) if pcts9 else None, "%", "95-100", (min(pcts9) / 95) if pcts9 else None),
            ("nine tenants t0..t8: max % of budget (steady)", max(pcts9) if pcts9 else None, "%", "95-100", (100 / max(pcts9)) if pcts9 else None),
            ("429 share, all ten", share, "%", "<= 1", (1 / share) if share else None),
            ("429 share, nine tenants t0..t8", share9, "%", "<= 1", (1 / share9) if share9 else None),
            ("nine: requests / span of their requests", r["nine_reqs"] / r["nine_span"] if r["nine_span"] else None, "req/s", "", None),
            ("nine: worker start -> last of their results", r["nine_done"], "s", "", None),
        ])
        print("(429 share ratio: target / measured, inf when none)")
        print_outcomes(r)

    A, B, C = runs["A"], runs["B"], runs["C"]

    def slowdowns(X):
        rate = (A["nine_reqs"] / A["nine_span"]) / (X["nine_reqs"] / X["nine_span"]) - 1
        done = X["nine_done"] / A["nine_done"] - 1
        return rate * 100, done * 100

    rows = []
    for label, X, what in (("B", B, "t9 at a tenth"), ("C", C, f"t9's {a.backlog}-event backlog")):
        rate, done = slowdowns(X)
        rows += [(f"run {label} ({what}): slowdown of the nine, by request rate", rate, "%", "<= 5",
                  (5 / rate) if rate > 0 else None),
                 (f"run {label} ({what}): slowdown of the nine, by completion time", done, "%",
                  "<= 5", (5 / done) if done > 0 else None)]
    for label, X in (("A", A), ("B", B), ("C", C)):
        rows.append((f"run {label}: worker peak RSS", X["hwm_kb"] / 1024 if X.get("hwm_kb") else None,
                     "MB", "", None))
    table("tenants10: effect of t9 on the other nine", rows)
    print("(a negative slowdown means the run was faster than A; ratio: target / measured, blank when <= 0)")
    return A["complete"] and B["complete"] and C["complete"]


def scenario_writelimit(a, sim):
    n = a.events or 40
    sim.reset()
    sim.limits("t0", limits_enabled=True)  # all the account's defaults: rpm 700, 1 write/s, 5/user/min
    lim = sim.call("GET", "/__sim/accounts/t0/limits")
    sim.clear_log("t0")
    r = run_pipeline(a, sim, "writelimit", [("t0", 700, None)], n, a.deadline or 180)
    wall, steady, first = common_rows(r)
    eps = r["got"] / wall if wall else None
    reqs = sim.request_log("t0")
    writes = sorted(q["time_ms"] for q in reqs if q["method"] != "GET")
    wrate = ((len(writes) - 1) / ((writes[-1] - writes[0]) / 1000)
             if len(writes) > 1 and writes[-1] > writes[0] else None)
    tot, by = sim_status_counts(sim, ["t0"])
    n429 = by.get("429", 0)
    table(f"writelimit: {n} joiners, one tenant, sim limits on ({', '.join(f'{k}={lim.get(k)}' for k in ('rpm', 'user_write_per_sec', 'user_write_per_user_min'))}), "
          "worker single_user_write_rpm 60 (default)", [
        ("events/s, worker start -> last result", eps, "ev/s", "~1 (reported)", None),
        ("events/s, first -> last result (steady)", steady, "ev/s", "", None),
        ("writes/s at the sim (first -> last write)", wrate, "w/s", "<= 1", (1 / wrate) if wrate else None),
        ("requests answered 429", n429, "", "no storm", None),
        ("429 share of requests", n429 / tot * 100 if tot else None, "%", "", None),
    ])
    print_outcomes(r, (tot, by))
    return r["complete"]


ENTERPRISE = {"limits_enabled": True, "rpm": 700, "user_write_per_sec": 1,
              "user_write_per_user_min": 5, "max_jobs": 30}
JOB_SPEED = {"bulk_import": True, "job_queue_ms": 1000, "job_item_ms": 100}


def scenario_bulk10k(a, sim):
    n = a.events or 10000
    sample = a.baseline_events

    def setup():
        sim.reset()
        sim.limits("t0", **ENTERPRISE)
        sim.call("PATCH", "/__sim/accounts/t0", JOB_SPEED)
        sim.clear_log("t0")

    setup()
    r = run_pipeline(a, sim, "bulk10k", [("t0", 700, None)], n, a.deadline or 900,
                     label="bulk10k-bulk")
    wall, steady, first = common_rows(r)
    reqs = sim.request_log("t0")
    tot, by = sim_status_counts(sim, ["t0"])
    by_ep = {}
    for q in reqs:
        by_ep[q["endpoint"]] = by_ep.get(q["endpoint"], 0) + 1
    print_outcomes(r, (tot, by))
    print("sim requests by endpoint (last 10,000 kept): " +
          ", ".join(f"{k}={v}" for k, v in sorted(by_ep.items())))

    setup()
    b = run_pipeline(a, sim, "bulk10k", [("t0", 700, None)], sample, a.deadline or 900,
                     label="bulk10k-single", worker_extra="bulk_min_items = 0;")
    bwall, bsteady, _ = common_rows(b)
    single_rate = b["got"] / bwall if bwall else None
    single_10k_s = n / single_rate if single_rate else None
    print_outcomes(b, sim_status_counts(sim, ["t0"]))

    table(f"bulk10k: {n} joiners, one tenant, Enterprise limits "
          f"({', '.join(f'{k}={v}' for k, v in ENTERPRISE.items())}), jobs "
          f"{JOB_SPEED['job_queue_ms']} ms queued + {JOB_SPEED['job_item_ms']} ms/user", [
        ("bulk path: worker start -> last result", wall, "s", "< 120", 120 / wall if wall else None),
        ("bulk path: events/s (start -> last)", n / wall if wall else None, "ev/s", "", None),
        ("bulk path: first result after", first, "s", "", None),
        (f"single calls: events/s over a {sample}-event sample", single_rate, "ev/s", "", None),
        (f"single calls: {n} events, extrapolated", single_10k_s, "s",
         "~10,000 (167 min)", None),
        ("speed-up, single / bulk", single_10k_s / wall if wall and single_10k_s else None,
         "x", "", None),
        ("requests answered 429 (bulk run)", by.get("429", 0), "", "", None),
    ])
    return r["complete"] and b["complete"]


SCENARIOS = {"instant": scenario_instant, "latency200": scenario_latency200,
             "tenants10": scenario_tenants10, "writelimit": scenario_writelimit,
             "bulk10k": scenario_bulk10k}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--sim", required=True, help="simulator HOST:PORT (started with --no-limits)")
    ap.add_argument("--sim-pid", type=int, help="simulator pid, only to print its CPU use")
    ap.add_argument("--worker", required=True, help="zendesk-worker binary")
    ap.add_argument("--workdir", default=None, help="configs, token files, worker logs")
    ap.add_argument("--events", type=int, default=0, help="events (per tenant for tenants10); 0 = scenario default")
    ap.add_argument("--deadline", type=float, default=0, help="seconds to wait for results per run")
    ap.add_argument("--max-in-flight", type=int, default=512, help="latency200: worker.max_in_flight")
    ap.add_argument("--log-level", default="warn", choices=["debug", "info", "warn", "error"],
                    help="worker log level (info logs every event, which costs CPU; it also adds "
                         "10 s progress lines with in_flight)")
    ap.add_argument("--baseline-events", type=int, default=120,
                    help="bulk10k: events in the single-call sample (its rate is extrapolated)")
    ap.add_argument("--rpm", type=int, default=600, help="tenants10: each account's budget")
    ap.add_argument("--skip", type=float, default=10.0, help="tenants10: seconds of a tenant's start burst left out of the steady rate")
    ap.add_argument("--backlog", type=int, default=20000,
                    help="tenants10 run C: t9's joiners produced in front of everyone's")
    ap.add_argument("--t9-worker-rpm", type=int, default=0,
                    help="tenants10 run B: also tell the worker t9's plan_rpm (default: the worker still plans the full budget)")
    a = ap.parse_args()
    if a.workdir is None:
        import tempfile
        a.workdir = tempfile.mkdtemp(prefix="zw-bench.")
    os.makedirs(a.workdir, exist_ok=True)
    sim = Sim(a.sim)
    for i in range(10):
        sim.ensure_account(f"t{i}")
    sim_cpu0 = None
    if a.sim_pid:
        try:
            with open(f"/proc/{a.sim_pid}/stat") as f:
                fl = f.read().rsplit(")", 1)[1].split()
            sim_cpu0 = (int(fl[11]) + int(fl[12])) / CLK_TCK
        except OSError:
            pass
    print(f"\n#### {a.scenario} ({time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} CPUs, "
          f"worker {a.worker})")
    t = time.monotonic()
    try:
        ok = SCENARIOS[a.scenario](a, sim)
    except BenchError as e:
        print(f"{a.scenario}: could not complete: {e}", file=sys.stderr)
        return 1
    if sim_cpu0 is not None:
        try:
            with open(f"/proc/{a.sim_pid}/stat") as f:
                fl = f.read().rsplit(")", 1)[1].split()
            print(f"simulator CPU during the scenario: {(int(fl[11]) + int(fl[12])) / CLK_TCK - sim_cpu0:.2f} s")
        except OSError:
            pass
    print(f"scenario wall time: {time.monotonic() - t:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

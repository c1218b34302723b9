#!/usr/bin/env python3
"""Snapshot benchmarks (issue 5's targets), driven by bench/snapshot/run.sh.

  big         an account of --users (100,000) users, rate limits off: the whole snapshot's
              wall time (target < 20 s) and the worker's peak RSS, VmHWM (target < 50 MB)
  enterprise  the Enterprise budget (--rpm 700, in the worker and the simulator), an account
              of --users (100,000: 1,001 pages of 100 with the owner): wall time against the
              bound pages / rpm (1,001 / 700 a minute = 85.8 s; target within 10%) and the
              429s (target none). The worker's bucket starts full (rpm/12 = 58 tokens), so
              it may beat the bound by up to burst / rate (5 s); --users scales the run.

Per scenario: reset the simulator's account, seed it through the control API, set its limits,
make fresh topics, start one `zendesk-worker run` (log level info, to see it join), wait until
it holds the sync topic's partition, produce one full sync request, and read the snapshot
topic to its end marker and the results topic to the request's result. "wall" is from the
request's production to its result (the worker is already in the group); "walk" is from the
begin marker to the end marker (broker timestamps). VmHWM is read the moment the result is read.
Prints figures and ratios only (ratio > 1: the target is met); no asserts.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TENANT = "snap"
TOKEN = "bench-token-snap"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Sim:
    def __init__(self, addr):
        self.base = f"http://{addr}"
        self.http = requests.Session()

    def call(self, method, path, body=None, timeout=300):
        r = self.http.request(method, f"{self.base}/__sim{path}", json=body, timeout=timeout)
        if r.status_code >= 300:
            raise RuntimeError(f"{method} /__sim{path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None


class Topics:
    def __init__(self, bootstrap, scenario):
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        p = f"zwbench.snap.{scenario}.{uuid.uuid4().hex[:8]}"
        self.group = p + ".group"
        self.names = {"provisioning": p + ".requests", "sync": p + ".sync",
                      "results": p + ".results", "snapshots": p + ".snapshots",
                      "dead_letter": p + ".dlq"}

    def create(self):
        parts = {"provisioning": 1, "sync": 1, "results": 1, "snapshots": 1, "dead_letter": 1}
        fs = self.admin.create_topics([NewTopic(t, parts[k], 1) for k, t in self.names.items()],
                                      operation_timeout=30)
        for f in fs.values():
            f.result(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            md = self.admin.list_topics(timeout=10)
            if all(t in md.topics and not md.topics[t].error for t in self.names.values()):
                return
            time.sleep(0.1)
        raise RuntimeError("topics did not appear")

    def delete(self):
        try:
            for f in self.admin.delete_topics(list(self.names.values()), operation_timeout=30).values():
                f.result(timeout=30)
        except Exception:  # noqa: BLE001 - best effort
            pass


def write_config(path, a, topics, rpm):
    t = topics.names
    tenant = (f'{{ subdomain = "{TENANT}"; plan_rpm = {rpm}; single_user_write_rpm = 60000; '
              f'auth: {{ type = "api_token"; email = "admin@{TENANT}.test"; '
              f'token_file = "{a.workdir}/{TENANT}-token"; }}; }}')
    Path(a.workdir, f"{TENANT}-token").write_text(TOKEN)
    Path(path).write_text(f"""kafka: {{
  bootstrap_servers = "{a.bootstrap}";
  group_id = "{topics.group}";
  topics: {{ provisioning = "{t['provisioning']}"; sync = "{t['sync']}"; results = "{t['results']}";
            snapshots = "{t['snapshots']}"; dead_letter = "{t['dead_letter']}"; }};
  properties = [ "auto.offset.reset=earliest" ];
}};
zendesk: {{ base_url = "http://{{subdomain}}.zendesk.test"; connect_to = "{a.sim}"; timeout_ms = 30000;
           tenants = ( {tenant} ); }};
worker: {{ max_in_flight = 512; }};
admin: {{ listen = ""; }};
log: {{ level = "info"; format = "json"; }};
""")


class Worker:
    def __init__(self, binary, config, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([binary, "run", "-c", str(config)], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def status_kb(self, key):
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def cpu_s(self):
        try:
            f = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return None

    def log_has(self, text):
        try:
            return text in Path(self.log_path).read_text(errors="replace")
        except OSError:
            return False

    def problems(self):
        out = []
        for line in Path(self.log_path).read_text(errors="replace").splitlines():
            if '"level":"warn"' in line or '"level":"error"' in line:
                out.append(line)
        return out

    def stop(self, grace=30):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def reader(bootstrap, topic, group):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "fetch.max.bytes": 52428800})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    return c


def run_snapshot(a, sim, scenario, users, rpm, sim_limits):
    """Seeds the account, runs one full snapshot, returns the figures."""
    log(f"{scenario}: resetting {TENANT} and seeding {users:,} users")
    sim.call("POST", f"/accounts/{TENANT}/reset")
    t = time.monotonic()
    left, made = users, 0
    while left > 0:  # in chunks, so no one control call holds the simulator for long
        n = min(left, 20000)
        sim.call("POST", f"/accounts/{TENANT}/seed", {"count": n, "role": "mixed"})
        left -= n
        made += n
    log(f"{scenario}: seeded in {time.monotonic() - t:.1f}s")
    sim.call("PUT", f"/accounts/{TENANT}/limits", sim_limits)
    sim.call("DELETE", f"/accounts/{TENANT}/requests")
    total_users = sim.call("GET", f"/accounts/{TENANT}")["users"]
    pages = math.ceil(total_users / 100)

    topics = Topics(a.bootstrap, scenario)
    topics.create()
    cfg = Path(a.workdir, f"{scenario}.cfg")
    write_config(cfg, a, topics, rpm)
    snaps = reader(a.bootstrap, topics.names["snapshots"], topics.group + ".snapreader")
    results = reader(a.bootstrap, topics.names["results"], topics.group + ".resreader")
    worker = Worker(a.worker, cfg, Path(a.workdir, f"{scenario}.worker.log"))
    out = {"users": total_users, "pages": pages}
    try:
        deadline = time.monotonic() + 60
        while not worker.log_has(f'"topic":"{topics.names["sync"]}","partition":0'):
            if worker.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not take the sync partition; see {worker.log_path}")
            time.sleep(0.05)
        request_id = f"bench-{uuid.uuid4()}"
        req = {"schema": "zendesk-worker/sync-request/v1", "request_id": request_id,
               "tenant": TENANT, "mode": "full"}
        prod = Producer({"bootstrap.servers": a.bootstrap})
        t0 = time.monotonic()
        prod.produce(topics.names["sync"], key=TENANT, value=json.dumps(req).encode())
        prod.flush(30)
        log(f"{scenario}: sync request sent; {pages} pages to list")

        n_user, ids_dup, seen, begin_ts, end = 0, 0, set(), None, None
        result, hwm_kb, cpu, rss_max = None, None, None, 0
        last_note = time.monotonic()
        deadline = time.monotonic() + a.deadline
        while (result is None or end is None) and time.monotonic() < deadline:
            for m in snaps.consume(5000, timeout=0.1):
                if m.error():
                    continue
                v = json.loads(m.value())
                if v.get("request_id") != request_id:
                    continue
                if v["kind"] == "begin":
                    begin_ts = m.timestamp()[1]
                elif v["kind"] == "user":
                    n_user += 1
                    uid = v["user"]["id"]
                    if uid in seen:
                        ids_dup += 1
                    seen.add(uid)
                else:
                    end = (v, m.timestamp()[1])
            for m in results.consume(100, timeout=0.01):
                if m.error():
                    continue
                v = json.loads(m.value())
                if v.get("event_id") == request_id and result is None:
                    result = (v, time.monotonic())
                    hwm_kb = worker.status_kb("VmHWM")
                    cpu = worker.cpu_s()
            rss = worker.status_kb("VmRSS") or 0
            rss_max = max(rss_max, rss)
            if time.monotonic() - last_note > 10:
                log(f"{scenario}: {n_user:,} user records so far, RSS {rss / 1024:.1f} MB")
                last_note = time.monotonic()
            if worker.proc.poll() is not None:
                raise RuntimeError(f"the worker exited {worker.proc.returncode}; see {worker.log_path}")
        out.update(records=n_user, duplicates=ids_dup, unique=len(seen))
        if result is None or end is None:
            out["timeout"] = True
            return out
        rv, t_res = result
        ev, end_ts = end
        out.update(wall_s=t_res - t0, walk_s=(end_ts - begin_ts) / 1000 if begin_ts else None,
                   status=rv["status"], outcome=rv["outcome"], end_status=ev["end"]["status"],
                   end_count=ev["end"]["count"], hwm_kb=hwm_kb, rss_max_kb=rss_max, cpu_s=cpu)
        stats = sim.call("GET", f"/accounts/{TENANT}/stats")
        out["sim_status"] = stats.get("by_status", {})
        reqs = sim.call("GET", f"/accounts/{TENANT}/requests?limit=10000")["requests"]
        per_min = {}
        for r in reqs:
            per_min[r["time_ms"] // 60000] = per_min.get(r["time_ms"] // 60000, 0) + 1
        out["sim_requests"] = len(reqs)
        out["max_per_sim_minute"] = max(per_min.values()) if per_min else 0
        if len(reqs) > 1:
            span = (reqs[-1]["time_ms"] - reqs[0]["time_ms"]) / 1000
            out["sim_span_s"] = span
        out["worker_problems"] = worker.problems()[:5]
        return out
    finally:
        out["exit"] = worker.stop()
        snaps.close()
        results.close()
        topics.delete()


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}{unit}"
    if isinstance(v, int):
        return f"{v:,}{unit}"
    return f"{v}{unit}"


def table(title, rows):
    print(f"\n## {title}\n")
    print("| figure | measured | target | ratio |")
    print("|---|---|---|---|")
    for name, val, target, ratio in rows:
        print(f"| {name} | {val} | {target} | {'-' if ratio is None else f'{ratio:.2f}'} |")


def common(r):
    return [
        ("users in the account (with the owner) / pages of 100", f"{r['users']:,} / {r['pages']:,}", "", None),
        ("user records read / unique ids / repeated", f"{r.get('records', 0):,} / {r.get('unique', 0):,} / {r.get('duplicates', 0)}",
         "= users / = users / 0", None),
        ("result / end marker", f"{r.get('status')}/{r.get('outcome')} / {r.get('end_status')}, count {fmt(r.get('end_count'))}",
         "succeeded/snapshot_complete / complete", None),
        ("simulator answers by status", json.dumps(r.get("sim_status", {})), "", None),
        ("worker CPU (utime+stime) at the result", fmt(r.get("cpu_s"), " s"), "", None),
        ("worker exit after SIGTERM", fmt(r.get("exit")), "0", None),
        ("worker warn/error log lines (first 5)", str(len(r.get("worker_problems", []))), "", None),
    ]


def scenario_big(a, sim):
    r = run_snapshot(a, sim, "big", a.users, 60000, {"limits_enabled": False})
    if r.get("timeout"):
        print(f"\nbig: no result within {a.deadline}s: {r}")
        return 1
    mb = r["hwm_kb"] / 1024 if r.get("hwm_kb") else None
    rows = [
        ("wall: request produced -> result", fmt(r["wall_s"], " s"), "< 20 s", 20 / r["wall_s"]),
        ("walk: begin marker -> end marker", fmt(r["walk_s"], " s"), "", None),
        ("users/s (wall)", fmt(r["users"] / r["wall_s"]), "", None),
        ("pages/s (wall)", fmt(r["pages"] / r["wall_s"]), "", None),
        ("worker peak RSS (VmHWM)", fmt(mb, " MB"), "< 50 MB", 50 / mb if mb else None),
        ("worker largest VmRSS sampled", fmt(r["rss_max_kb"] / 1024, " MB"), "", None),
    ] + common(r)
    table(f"big: {r['users']:,} users, rate limits off", rows)
    for line in r.get("worker_problems", []):
        print(f"    {line[:300]}")
    return 0


def scenario_enterprise(a, sim):
    rpm = a.rpm
    r = run_snapshot(a, sim, "enterprise", a.users, rpm,
                     {"limits_enabled": True, "rpm": rpm, "user_write_per_sec": 0,
                      "user_write_per_user_min": 0, "incremental_per_min": 0, "max_jobs": 0})
    if r.get("timeout"):
        print(f"\nenterprise: no result within {a.deadline}s: {r}")
        return 1
    bound = r["pages"] / (rpm / 60.0)
    burst = rpm // 12  # the worker's bucket starts full with rpm/12 tokens
    bound_burst = max(r["pages"] - burst, 0) / (rpm / 60.0)
    n429 = int(r["sim_status"].get("429", 0))
    rows = [
        ("wall: request produced -> result", fmt(r["wall_s"], " s"), f"within 10% of {bound:.1f} s",
         None),
        ("wall / bound (pages / rpm)", fmt(r["wall_s"] / bound), "0.90 - 1.10", None),
        ("distance from the bound", f"{(r['wall_s'] / bound - 1) * 100:+.1f}%", "within ±10%",
         0.10 / abs(r["wall_s"] / bound - 1) if r["wall_s"] != bound else None),
        (f"bound less the start burst of {burst} ((pages - {burst}) / rpm)", fmt(bound_burst, " s"), "", None),
        ("walk: begin marker -> end marker", fmt(r["walk_s"], " s"), "", None),
        ("first -> last request at the simulator", fmt(r.get("sim_span_s"), " s"), "", None),
        ("requests at the simulator / pages", f"{r['sim_requests']:,} / {r['pages']:,}", "", None),
        ("most requests in one simulator minute window", fmt(r["max_per_sim_minute"]), f"<= {rpm}",
         rpm / r["max_per_sim_minute"] if r["max_per_sim_minute"] else None),
        ("429 answers", fmt(n429), "0", None),
        ("pages per minute achieved (wall)", fmt(r["pages"] / r["wall_s"] * 60), f"{rpm}", None),
        ("worker peak RSS (VmHWM)", fmt(r["hwm_kb"] / 1024, " MB"), "", None),
    ] + common(r)
    table(f"enterprise: {r['users']:,} users, {rpm} requests per minute in the worker and the simulator", rows)
    for line in r.get("worker_problems", []):
        print(f"    {line[:300]}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=["big", "enterprise"])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--sim", required=True, help="host:port of zendesk-sim")
    p.add_argument("--worker", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--users", type=int, default=100000, help="seeded users (default 100000)")
    p.add_argument("--rpm", type=int, default=700, help="enterprise: the budget (default 700)")
    p.add_argument("--deadline", type=float, default=300, help="seconds to wait for the result")
    a = p.parse_args()
    sim = Sim(a.sim)
    sim.call("GET", "/health")
    try:
        sim.call("POST", "/accounts", {"subdomain": TENANT, "email": f"admin@{TENANT}.test",
                                       "token": TOKEN})
    except RuntimeError as e:
        if " 409 " not in str(e):
            raise
    return {"big": scenario_big, "enterprise": scenario_enterprise}[a.scenario](a, sim)


if __name__ == "__main__":
    sys.exit(main())

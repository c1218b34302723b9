"""Harness for the provisioning pipeline's integration tests.

Each test is one scenario against real processes: a Kafka broker (the ctest fixture
`kafka`; its address is in the file named by ZW_TEST_BOOTSTRAP_FILE), a zendesk-sim on
port 0 (ZENDESK_SIM) and one or more `zendesk-worker run -c FILE` (ZENDESK_WORKER). Topic
and group names are unique per test, so tests are independent and may run in parallel.

Every record read from the results topic is checked the moment it is read: against
schemas/result.schema.json (ZW_SCHEMAS_DIR), for its CloudEvents headers, its key, its
traceparent and its source coordinates, which must name a record this test produced.
Every DLQ record is checked against schemas/dlq-headers.schema.json the same way.

Waits poll a condition until a deadline; a timeout fails with what was missing and the
tail of every worker's log.
"""
import datetime
import json
import os
import re
import secrets
import signal
import subprocess
import time
import uuid
from pathlib import Path

import jsonschema
import pytest
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

WORKER = os.environ.get("ZENDESK_WORKER")
SIM = os.environ.get("ZENDESK_SIM")
BOOTSTRAP_FILE = os.environ.get("ZW_TEST_BOOTSTRAP_FILE")
SCHEMAS_DIR = Path(os.environ.get("ZW_SCHEMAS_DIR")
                   or Path(__file__).resolve().parents[3] / "schemas")

REQUEST_SCHEMA = "zendesk-worker/provisioning-request/v1"
CE_HEADERS = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type")
WRITE_METHODS = ("POST", "PUT", "DELETE", "PATCH")

# Timeouts, in seconds. Sized for an ASan build on 2 cores with other tests beside it.
RESULT_TIMEOUT = int(os.environ.get("ZWIT_RESULT_TIMEOUT", "60"))
ADMIN_TIMEOUT = 30


RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                     r"([Zz]|[+-]\d{2}:\d{2})$")


def is_rfc3339(value):
    """RFC 3339 date-time (jsonschema checks the format only with an optional package)."""
    if not isinstance(value, str):
        return True
    m = RFC3339.match(value)
    if not m:
        return False
    try:
        datetime.datetime(*(int(g) for g in m.groups()[:5]), min(int(m.group(6)), 59))
    except ValueError:
        return False
    return int(m.group(6)) <= 60


FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks("date-time")(is_rfc3339)


def _validator(name):
    schema = json.loads((SCHEMAS_DIR / name).read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=FORMATS)


RESULT_VALIDATOR = _validator("result.schema.json")
DLQ_VALIDATOR = _validator("dlq-headers.schema.json")


def schema_errors(validator, doc):
    return ["/".join(map(str, e.absolute_path)) + ": " + e.message
            for e in validator.iter_errors(doc)]


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_traceparent():
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def wait_for(cond, timeout, what, on_timeout=None, interval=0.05):
    """Polls cond() until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            extra = on_timeout() if on_timeout else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{extra}", pytrace=False)
        time.sleep(interval)


# ------------------------------------------------------------------------------ events

def event(type_, tenant, external_id, person=None, leaver=None, dry_run=None, event_id=None):
    """A provisioning request (DESIGN.md section 3) as a dict."""
    ev = {"schema": REQUEST_SCHEMA,
          "event_id": event_id or f"ev-{uuid.uuid4()}",
          "type": type_,
          "tenant": tenant,
          "occurred_at": now_rfc3339(),
          "person": {"external_id": external_id, **(person or {})}}
    if leaver is not None:
        ev["leaver"] = {"action": leaver}
    if dry_run is not None:
        ev["dry_run"] = dry_run
    return ev


def joiner(tenant, ext, role="end-user", **fields):
    person = {"email": f"{ext.lower()}@{tenant}.example", "name": f"Person {ext}", "role": role}
    person.update(fields)
    return event("joiner", tenant, ext, person)


def key_of(ev):
    return f"{ev['tenant']}/{ev['person']['external_id']}"


class Input:
    """One record this test produced to the requests topic."""

    def __init__(self, key, value, headers, event=None, good=None):
        self.key = key
        self.value = value
        self.headers = headers
        self.event = event  # the parsed dict when it has a string event_id, else None
        self.good = event is not None if good is None else good  # a valid event
        self.partition = None
        self.offset = None

    @property
    def event_id(self):
        return self.event.get("event_id") if isinstance(self.event, dict) else None

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v.decode() if isinstance(v, bytes) else v
        return None


class SyncInput(Input):
    """A sync request this test produced; its event_id is the request_id."""

    @property
    def event_id(self):
        return self.event.get("request_id") if isinstance(self.event, dict) else None


class Record:
    """One record read from an output topic."""

    def __init__(self, msg):
        self.topic = msg.topic()
        self.partition = msg.partition()
        self.offset = msg.offset()
        self.key = msg.key().decode() if msg.key() is not None else None
        self.raw = msg.value()
        self.timestamp_ms = msg.timestamp()[1]
        self.read_at = time.monotonic()
        self.header_list = [(k, v.decode("utf-8", "replace") if v is not None else None)
                            for k, v in (msg.headers() or [])]
        self.headers = dict(self.header_list)
        self.value = None


# ------------------------------------------------------------------------------ simulator

class Sim:
    """One zendesk-sim process on a free port, with accounts acme (API token) and globex
    (OAuth client credentials; it also has an API token, used only to seed it)."""

    def __init__(self, log_path, extra_accounts=()):
        if not SIM or not os.path.exists(SIM):
            pytest.skip("ZENDESK_SIM is not set to the built simulator")
        self.accounts = {
            "acme": {"email": "admin@acme.test", "token": "acme-" + secrets.token_hex(8)},
            "globex": {"email": "admin@globex.test", "token": "globex-" + secrets.token_hex(8),
                       "client_id": "zw", "client_secret": "gs-" + secrets.token_hex(8)},
        }
        for sub in extra_accounts:
            self.accounts[sub] = {"email": f"admin@{sub}.test", "token": f"{sub}-" + secrets.token_hex(8)}
            if sub.startswith("oauth"):
                self.accounts[sub].update(client_id="zw", client_secret=f"{sub}-" + secrets.token_hex(8))
        args = [SIM, "--listen", "127.0.0.1:0", "--seed", "11"]
        for sub, a in self.accounts.items():
            spec = f"subdomain={sub},email={a['email']},token={a['token']},limits=false"
            if "client_id" in a:
                spec += f",client_id={a['client_id']},client_secret={a['client_secret']},token_ttl=1800"
            args += ["--account", spec]
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline().strip()
        assert line.startswith("LISTENING=127.0.0.1:"), f"zendesk-sim did not start: {line!r}"
        self.port = int(line.rsplit(":", 1)[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()

    def ctl(self, method, path, body=None, expect=(200, 201, 204)):
        r = self.http.request(method, f"{self.base}/__sim{path}", json=body, timeout=30)
        assert r.status_code in expect, f"{method} /__sim{path}: {r.status_code} {r.text}"
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None

    def api(self, sub, method, path, body=None):
        """A Zendesk API call as the account owner (for seeding, not for asserting)."""
        a = self.accounts[sub]
        r = self.http.request(method, self.base + path, json=body, timeout=30,
                              auth=(f"{a['email']}/token", a["token"]),
                              headers={"Host": f"{sub}.zendesk.test:{self.port}"})
        assert r.status_code < 300, f"{method} {path} on {sub}: {r.status_code} {r.text}"
        return r.json()

    def seed_user(self, sub, ext, role="end-user", suspended=False, **fields):
        user = {"external_id": ext, "email": f"{ext.lower()}@{sub}.example",
                "name": f"Seeded {ext}", "role": role, **fields}
        u = self.api(sub, "POST", "/api/v2/users", {"user": user})["user"]
        if suspended:
            u = self.api(sub, "PUT", f"/api/v2/users/{u['id']}", {"user": {"suspended": True}})["user"]
        return u

    def all_users(self, sub):
        return self.ctl("GET", f"/accounts/{sub}/users")["users"]

    def users_by_ext(self, sub):
        """external_id (lower case) -> every user, active or deleted, that holds it."""
        out = {}
        for u in self.all_users(sub):
            if u.get("external_id"):
                out.setdefault(u["external_id"].lower(), []).append(u)
        return out

    def requests(self, sub):
        return self.ctl("GET", f"/accounts/{sub}/requests?limit=10000")["requests"]

    def clear_requests(self, sub):
        self.ctl("DELETE", f"/accounts/{sub}/requests")

    def set_faults(self, sub, faults):
        self.ctl("PUT", f"/accounts/{sub}/faults", faults)

    def add_script(self, sub, rules):
        self.ctl("POST", f"/accounts/{sub}/script", {"rules": rules})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()


# ------------------------------------------------------------------------------ worker

class Worker:
    """One `zendesk-worker run -c FILE`, its stdout and stderr in a log file."""

    def __init__(self, name, config_path, log_path):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([WORKER, "run", "-c", str(config_path)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.stopped = False  # the test stopped it on purpose (signal)

    def running(self):
        return self.proc.poll() is None

    def tail(self, lines=40):
        try:
            text = Path(self.log_path).read_text(errors="replace").splitlines()
        except OSError as e:
            return f"(no log: {e})"
        return "\n".join(text[-lines:])

    def terminate(self, timeout):
        """SIGTERM, then waits up to timeout seconds. Returns (exit code, seconds taken);
        the exit code is None when the worker was still running at the deadline (it is
        then killed)."""
        t0 = time.monotonic()
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        return rc, time.monotonic() - t0

    def signal(self, sig):
        self.stopped = True
        self.proc.send_signal(sig)

    def kill(self):
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def close(self):
        self.kill()
        self.log.close()


# ------------------------------------------------------------------------------ config

def _q(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return _q(v)


def render_config(c):
    """libconfig text for a dict of the shape of DESIGN.md section 6."""
    k = c["kafka"]
    out = ["kafka: {",
           f"  bootstrap_servers = {_q(k['bootstrap_servers'])};",
           f"  group_id = {_q(k['group_id'])};",
           "  topics: {"]
    out += [f"    {name} = {_q(t)};" for name, t in k["topics"].items()]
    out += ["  };",
            "  properties = [ " + ", ".join(_q(p) for p in k["properties"]) + " ];",
            "};"]
    z = c["zendesk"]
    out += ["zendesk: {",
            f"  base_url = {_q(z['base_url'])};",
            f"  connect_to = {_q(z['connect_to'])};",
            f"  timeout_ms = {z['timeout_ms']};",
            "  tenants = ("]
    tenants = []
    for t in z["tenants"]:
        fields = [f"subdomain = {_q(t['subdomain'])};"]
        fields += [f"{key} = {_value(v)};" for key, v in t.items() if key not in ("subdomain", "auth")]
        auth = " ".join(f"{key} = {_value(v)};" for key, v in t["auth"].items())
        fields.append(f"auth: {{ {auth} }};")
        tenants.append("    { " + " ".join(fields) + " }")
    out.append(",\n".join(tenants))
    out += ["  );", "};"]
    out.append("worker: { " + " ".join(f"{key} = {_value(v)};" for key, v in c["worker"].items()) + " };")
    out.append(f"admin: {{ listen = {_q(c['admin']['listen'])}; }};")
    out.append("log: { " + " ".join(f"{key} = {_value(v)};" for key, v in c["log"].items()) + " };")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------ scenario

class Env:
    """One test's world: unique topics and group, a simulator, workers, and the records
    produced and read. Results and DLQ records are read incrementally and checked as read."""

    def __init__(self, tmp_path, name, partitions, extra_accounts=(), sync_partitions=1):
        if not WORKER or not os.path.exists(WORKER):
            pytest.skip("ZENDESK_WORKER is not set to the built worker")
        if not BOOTSTRAP_FILE:
            pytest.skip("ZW_TEST_BOOTSTRAP_FILE is not set (run under ctest with the kafka fixture)")
        self.bootstrap = Path(BOOTSTRAP_FILE).read_text().strip()
        assert self.bootstrap, f"{BOOTSTRAP_FILE} is empty"
        self.tmp = tmp_path
        slug = re.sub(r"[^a-zA-Z0-9]+", "-", name)[:40]
        self.prefix = f"zwit.{slug}.{uuid.uuid4().hex[:8]}"
        self.group = self.prefix + ".group"
        self.topics = {"provisioning": self.prefix + ".requests",
                       "sync": self.prefix + ".sync",
                       "results": self.prefix + ".results",
                       "snapshots": self.prefix + ".snapshots",
                       "dead_letter": self.prefix + ".dlq"}
        self.partitions = partitions
        self.sync_partitions = sync_partitions
        self.workers = []
        self.sim = Sim(tmp_path / "sim.log", extra_accounts)
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})
        self._create_topics()
        self.producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5,
                                  "enable.idempotence": True})
        self.inputs = []
        self.by_coord = {}
        self.sync_by_coord = {}
        self.results = []          # every result record, in the order read
        self.dlq = []              # every DLQ record, in the order read
        self._readers = {"results": self._reader(self.topics["results"]),
                         "dead_letter": self._reader(self.topics["dead_letter"])}
        self.secrets_dir = tmp_path / "secrets"
        self.secrets_dir.mkdir()
        (self.secrets_dir / "acme-token").write_text(self.sim.accounts["acme"]["token"])
        (self.secrets_dir / "globex-secret").write_text(self.sim.accounts["globex"]["client_secret"])
        for sub in extra_accounts:
            (self.secrets_dir / f"{sub}-token").write_text(self.sim.accounts[sub]["token"])
            if "client_secret" in self.sim.accounts[sub]:
                (self.secrets_dir / f"{sub}-secret").write_text(self.sim.accounts[sub]["client_secret"])

    # ---- kafka

    def _create_topics(self):
        parts = {"provisioning": self.partitions, "sync": self.sync_partitions, "results": 3,
                 "snapshots": 1,
                 "dead_letter": 1}
        new = [NewTopic(t, parts[k], 1) for k, t in self.topics.items()]
        for topic, fut in self.admin.create_topics(new, operation_timeout=ADMIN_TIMEOUT).items():
            fut.result(timeout=ADMIN_TIMEOUT)

        def ready():
            md = self.admin.list_topics(timeout=10)
            return all(t in md.topics and not md.topics[t].error and
                       len(md.topics[t].partitions) == parts[k] for k, t in self.topics.items())
        wait_for(ready, ADMIN_TIMEOUT, "the test's topics to exist")

    def _reader(self, topic):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.prefix + ".reader",
                      "enable.auto.commit": False, "enable.partition.eof": False})
        n = len(self.admin.list_topics(topic, timeout=10).topics[topic].partitions)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(n)])
        return c

    def produce_to(self, topic, records, partition=None):
        """Produces Inputs to one of the env's topics (by role: "provisioning", "sync") in
        order, waits for the broker, and sets each Input's partition and offset."""
        errors = []
        for inp in records:
            def done(err, msg, inp=inp):
                if err:
                    errors.append(str(err))
                else:
                    inp.partition, inp.offset = msg.partition(), msg.offset()
            kw = {"partition": partition} if partition is not None else {}
            self.producer.produce(self.topics[topic], key=inp.key, value=inp.value,
                                  headers=inp.headers, on_delivery=done, **kw)
            self.producer.poll(0)
        left = self.producer.flush(30)
        assert left == 0 and not errors, f"produce failed: {left} undelivered, {errors[:3]}"
        return records

    def produce(self, records, partition=None):
        """Produces Inputs in order and records where each landed."""
        self.produce_to("provisioning", records, partition)
        for inp in records:
            self.inputs.append(inp)
            self.by_coord[(inp.partition, inp.offset)] = inp
        return records

    def send(self, events, partition=None):
        """Produces well-formed events, keyed <tenant>/<external_id>, each with its own
        traceparent and a custom header."""
        recs = [Input(key_of(ev), json.dumps(ev).encode(),
                      [("traceparent", new_traceparent().encode()), ("x-zwit", b"good")], ev)
                for ev in events]
        return self.produce(recs, partition)

    def send_sync(self, req):
        """Produces one sync request, key <tenant>, with its own traceparent."""
        inp = SyncInput(req["tenant"], json.dumps(req).encode(),
                        [("traceparent", new_traceparent().encode()), ("x-zwit", b"sync")], req)
        self.produce_to("sync", [inp])
        self.sync_by_coord[(inp.partition, inp.offset)] = inp
        return inp

    def end_offsets(self):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.prefix + ".probe"})
        try:
            out = {}
            for p in range(self.partitions):
                lo, hi = c.get_watermark_offsets(TopicPartition(self.topics["provisioning"], p),
                                                 timeout=10)
                out[p] = hi
            return out
        finally:
            c.close()

    def committed_offsets(self):
        """The worker group's committed offset per partition (-1001 when none)."""
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group,
                      "enable.auto.commit": False})
        try:
            tps = c.committed([TopicPartition(self.topics["provisioning"], p)
                               for p in range(self.partitions)], timeout=10)
            return {tp.partition: tp.offset for tp in tps}
        finally:
            c.close()

    def group_members(self):
        """Members of the worker group that hold at least one partition of the requests topic."""
        self.assert_workers_alive()
        fut = self.admin.describe_consumer_groups([self.group], request_timeout=10)[self.group]
        try:
            d = fut.result(timeout=15)
        except KafkaException:
            return []
        return [m for m in d.members
                if any(tp.topic == self.topics["provisioning"]
                       for tp in (m.assignment.topic_partitions if m.assignment else []))]

    # ---- reading outputs

    def poll_outputs(self, budget=0.2):
        """Reads whatever is available on the results and DLQ topics for up to budget s."""
        self.assert_workers_alive()
        deadline = time.monotonic() + budget
        for name, c in self._readers.items():
            while True:
                left = deadline - time.monotonic()
                msgs = c.consume(500, timeout=max(0.01, min(left, 0.1)))
                for m in msgs:
                    if m.error():
                        raise KafkaException(m.error())
                    rec = Record(m)
                    (self._check_result if name == "results" else self._check_dlq)(rec)
                if not msgs or time.monotonic() >= deadline:
                    break

    @staticmethod
    def _parse_record(rec, where, validator, schema_name):
        """Sets rec.value from the record's JSON and checks it against its schema."""
        try:
            rec.value = json.loads(rec.raw)
        except ValueError as e:
            pytest.fail(f"{where}: not JSON ({e}): {rec.raw[:300]!r}")
        errs = schema_errors(validator, rec.value)
        assert not errs, f"{where} breaks {schema_name}: {errs}\n{rec.value}"

    def _check_result(self, rec):
        where = f"result {rec.topic}[{rec.partition}]@{rec.offset} key={rec.key!r}"
        self._parse_record(rec, where, RESULT_VALIDATOR, "result.schema.json")
        src = rec.value["source"]
        if src.get("topic") == self.topics["sync"]:
            return self._check_sync_result(rec, src)
        for h in CE_HEADERS:
            assert rec.headers.get(h), f"{where}: header {h} missing or empty: {rec.headers}"
        assert rec.headers["ce_specversion"] == "1.0", f"{where}: {rec.headers}"
        assert rec.headers["content-type"] == "application/json", f"{where}: {rec.headers}"
        assert FORMATS.conforms(rec.headers["ce_time"], "date-time"), \
            f"{where}: ce_time {rec.headers['ce_time']!r} is not an RFC 3339 date-time"
        assert src["topic"] == self.topics["provisioning"], f"{where}: source {src}"
        inp = self.by_coord.get((src["partition"], src["offset"]))
        assert inp is not None, f"{where}: source {src} is no record this test produced"
        assert rec.key == inp.key, f"{where}: key {rec.key!r}, the input's is {inp.key!r}"
        tp = inp.header("traceparent")
        if tp is not None:
            assert rec.headers.get("traceparent") == tp, \
                f"{where}: traceparent {rec.headers.get('traceparent')!r}, input had {tp!r}"
        if inp.event_id is not None:
            assert rec.value["event_id"] == inp.event_id, f"{where}: {rec.value} for {inp.event}"
        if inp.good:
            assert rec.value.get("tenant") == inp.event["tenant"], f"{where}: {rec.value}"
            assert rec.value.get("type") == inp.event["type"], f"{where}: {rec.value}"
        rec.input = inp
        self.results.append(rec)

    def _check_sync_result(self, rec, src):
        """The result of a sync request (its source is the sync topic)."""
        where = f"sync result {rec.topic}[{rec.partition}]@{rec.offset} key={rec.key!r}"
        value = rec.value
        inp = self.sync_by_coord.get((src["partition"], src["offset"]))
        assert inp is not None, f"{where}: source {src} is no sync request this test produced"
        assert rec.key == inp.key, f"{where}: key {rec.key!r}, the request's is {inp.key!r}"
        self._check_sync_headers(rec, where, inp)
        assert value["event_id"] == inp.event["request_id"], f"{where}: {value}"
        assert (value.get("tenant"), value.get("type")) == (inp.event["tenant"], "sync"), \
            f"{where}: {value}"
        rec.input = inp
        self.results.append(rec)

    def _check_sync_headers(self, rec, where, inp):
        """Suites that read snapshots check the sync records' headers here."""

    def _check_dlq(self, rec):
        where = f"DLQ record {rec.topic}[{rec.partition}]@{rec.offset} key={rec.key!r}"
        zw = {k: v for k, v in rec.header_list}
        errs = schema_errors(DLQ_VALIDATOR, zw)
        assert not errs, f"{where}: headers break dlq-headers.schema.json: {errs}\n{zw}"
        assert zw["zw_source_topic"] == self.topics["provisioning"], f"{where}: {zw}"
        inp = self.by_coord.get((int(zw["zw_source_partition"]), int(zw["zw_source_offset"])))
        assert inp is not None, f"{where}: zw_source_* names no record this test produced: {zw}"
        if "zw_value_truncated" in zw:
            # Too large for the DLQ topic: the input's first bytes, and its length.
            assert zw["zw_value_truncated"] == str(len(inp.value)), f"{where}: {zw}"
            assert len(rec.raw or b"") < len(inp.value) and inp.value.startswith(rec.raw or b""), \
                f"{where}: a truncated value must be a prefix of the input's"
        else:
            assert rec.raw == inp.value, f"{where}: value is not the input's bytes: {rec.raw[:200]!r} vs {inp.value[:200]!r}"
        assert rec.key == inp.key, f"{where}: key {rec.key!r}, the input's is {inp.key!r}"
        for k, v in inp.headers:
            v = v.decode() if isinstance(v, bytes) else v
            assert rec.headers.get(k) == v, f"{where}: input header {k}={v!r} not kept: {rec.headers}"
        rec.input = inp
        self.dlq.append(rec)

    def results_for(self, inp):
        return [r for r in self.results if r.input is inp]

    def wait_results(self, inputs, timeout=RESULT_TIMEOUT, what=None, final=None):
        """Until every input in inputs has at least one result (or, with final, one for
        which final(result) holds). Returns {input: [results]}."""
        inputs = list(inputs)
        final = final or (lambda r: True)

        def missing():
            self.poll_outputs()
            have = {id(r.input) for r in self.results if final(r)}
            return [i for i in inputs if id(i) not in have]

        def report():
            m = missing()
            return (f"{len(m)} of {len(inputs)} inputs without a result; first: "
                    + ", ".join(f"{i.key}@{i.partition}:{i.offset} {i.event_id}" for i in m[:5])
                    + f"\nresults read: {len(self.results)}, DLQ records read: {len(self.dlq)}"
                    + self.diagnostics())
        wait_for(lambda: not missing(), timeout, what or f"results for {len(inputs)} inputs",
                 report, interval=0.02)
        return {inp: self.results_for(inp) for inp in inputs}

    def wait_dlq(self, count, timeout=RESULT_TIMEOUT):
        def enough():
            self.poll_outputs()
            return len(self.dlq) >= count
        wait_for(enough, timeout, f"{count} DLQ records",
                 lambda: f"DLQ records read: {len(self.dlq)}" + self.diagnostics())

    def settle(self, seconds=1.0):
        """Reads outputs for a while longer (to catch records that should not exist)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll_outputs(0.2)

    # ---- workers

    def config(self, **over):
        """The test configuration of the brief; keyword arguments override parts of it:
        worker={...} merges into worker, tenants=[...] replaces the tenants,
        tenant_over={"acme": {...}} merges into one tenant, timeout_ms, properties."""
        tenants = [
            {"subdomain": "acme", "plan_rpm": 6000, "single_user_write_rpm": 6000,
             "leaver_policy": "downgrade_suspend",
             "auth": {"type": "api_token", "email": self.sim.accounts["acme"]["email"],
                      "token_file": str(self.secrets_dir / "acme-token")}},
            {"subdomain": "globex", "plan_rpm": 6000, "single_user_write_rpm": 6000,
             "auth": {"type": "oauth_client_credentials", "client_id": "zw",
                      "client_secret_file": str(self.secrets_dir / "globex-secret"),
                      "scope": "users:read users:write"}},
        ]
        for sub, o in over.pop("tenant_over", {}).items():
            for t in tenants:
                if t["subdomain"] == sub:
                    t.update(o)
        tenants += over.pop("extra_tenants", [])
        worker = {"max_in_flight": 64, "max_attempts": 5, "backoff_base_ms": 50,
                  "backoff_max_ms": 1000, "shutdown_timeout_ms": 10000}
        worker.update(over.pop("worker", {}))
        cfg = {
            "kafka": {"bootstrap_servers": self.bootstrap, "group_id": self.group,
                      "topics": dict(self.topics),
                      "properties": ["topic.metadata.refresh.interval.ms=1000",
                                     "auto.offset.reset=earliest"] + over.pop("properties", [])},
            "zendesk": {"base_url": "http://{subdomain}.zendesk.test",
                        "connect_to": f"127.0.0.1:{self.sim.port}",
                        "timeout_ms": over.pop("timeout_ms", 5000), "tenants": tenants},
            "worker": worker,
            "admin": {"listen": ""},
            "log": {"level": "debug", "format": "json"},
        }
        assert not over, f"unknown config overrides {over}"
        return cfg

    def start_worker(self, cfg=None, **over):
        cfg = cfg or self.config(**over)
        n = len(self.workers)
        path = self.tmp / f"worker{n}.cfg"
        path.write_text(render_config(cfg))
        w = Worker(f"worker{n}", path, self.tmp / f"worker{n}.log")
        self.workers.append(w)
        return w

    def stop_worker(self, w, expect_within=None):
        """SIGTERM; asserts exit 0 within shutdown_timeout_ms (+ slack for an ASan build)."""
        limit = expect_within or 10 + 5
        rc, took = w.terminate(limit + 10)
        assert rc == 0, (f"{w.name} exited {rc} after SIGTERM (took {took:.1f}s)"
                         + self.diagnostics())
        assert took <= limit, f"{w.name} took {took:.1f}s to stop (limit {limit}s)" + self.diagnostics()
        return took

    def diagnostics(self, lines=30):
        out = []
        for w in self.workers:
            state = "running" if w.running() else f"exited {w.proc.returncode}"
            out.append(f"\n--- {w.name} (pid {w.pid}, {state}) log tail:\n{w.tail(lines)}")
        return "".join(out)

    def assert_workers_alive(self):
        """Fails at once when a worker the test did not stop has exited."""
        for w in self.workers:
            if not w.stopped and not w.running():
                pytest.fail(f"{w.name} died (exit {w.proc.returncode}) while the test ran"
                            + self.diagnostics(60), pytrace=False)

    def assert_commits_at_end(self):
        ends = self.end_offsets()
        committed = self.committed_offsets()
        assert committed == ends, (f"committed offsets {committed} != end offsets {ends} "
                                   f"after every event finished")

    def token_tenant(self, sub, token_file=None, **kw):
        """A config tenant for an extra API-token account of the simulator."""
        return {"subdomain": sub, "plan_rpm": 6000, "single_user_write_rpm": 6000, **kw,
                "auth": {"type": "api_token", "email": self.sim.accounts[sub]["email"],
                         "token_file": str(token_file or self.secrets_dir / f"{sub}-token")}}

    def close(self):
        for w in self.workers:
            w.close()
        for c in self._readers.values():
            c.close()
        self.sim.stop()
        try:
            fs = self.admin.delete_topics(list(self.topics.values()), operation_timeout=10)
            for f in fs.values():
                try:
                    f.result(timeout=15)
                except Exception:  # noqa: BLE001 - best effort cleanup
                    pass
        except Exception:  # noqa: BLE001
            pass


def env_factory(cls, request, tmp_path):
    """The body of an env fixture: yields make(partitions, extra_accounts) building `cls`
    envs, and closes every env made when the test ends."""
    made = []

    def make(partitions=3, extra_accounts=(), **kw):
        e = cls(tmp_path, request.node.name, partitions, extra_accounts, **kw)
        made.append(e)
        return e
    yield make
    for e in made:
        e.close()


@pytest.fixture
def make_env(request, tmp_path):
    yield from env_factory(Env, request, tmp_path)


# ------------------------------------------------------------------------------ assertions

def only(results, inp):
    """The single result of an input (fails when there are none or several)."""
    rs = results[inp] if isinstance(results, dict) else results
    assert len(rs) == 1, f"{inp.key} {inp.event_id}: expected one result, got {[r.value for r in rs]}"
    return rs[0].value


def assert_outcome(res, status, outcome, inp=None):
    what = f"{inp.key} {inp.event['type']}" if inp is not None and inp.event else ""
    assert (res["status"], res["outcome"]) == (status, outcome), \
        f"{what}: expected {status}/{outcome}, got {res['status']}/{res['outcome']}: {json.dumps(res)}"


def user_writes(requests_log):
    """The requests of a simulator log that change users (OAuth token grants excluded)."""
    return [r for r in requests_log
            if r["method"] in WRITE_METHODS and not r["path"].startswith("/oauth/")]


def one_active(users_by_ext, ext):
    users = [u for u in users_by_ext.get(ext.lower(), []) if u["active"]]
    assert len(users) == 1, f"{ext}: expected exactly one active user, got {users}"
    return users[0]

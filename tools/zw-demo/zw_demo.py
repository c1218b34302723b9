#!/usr/bin/env python3
"""Kafka and simulator helper for scripts/demo (needs confluent-kafka from tests/requirements.txt).

  zw_demo.py topics   -b BOOTSTRAP [--partitions N] TOPIC...   create topics, wait until ready
  zw_demo.py produce  -b BOOTSTRAP -t TOPIC FILE...            one record per file, bytes unchanged,
                                                               key "<tenant>/<person.external_id>"
  zw_demo.py results  -b BOOTSTRAP -t TOPIC [--timeout S] FILE...
                                         print results as a table until each file's event_id has one;
                                         exit 0 when all arrived, 1 on timeout
  zw_demo.py dlq      -b BOOTSTRAP -t TOPIC                    count DLQ records, show why each is there
  zw_demo.py users    --sim URL ACCOUNT...                     the simulator's users of each account
"""

import argparse
import json
import os
import sys
import time
import urllib.request

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ADMIN_TIMEOUT_S = 30


def die(msg):
    print(f"zw-demo: {msg}", file=sys.stderr)
    sys.exit(1)


def cmd_topics(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=args.partitions, replication_factor=1) for t in args.topics],
        operation_timeout=ADMIN_TIMEOUT_S, request_timeout=ADMIN_TIMEOUT_S)
    for topic, fut in futures.items():
        try:
            fut.result()
            print(f"created topic {topic} ({args.partitions} partitions)")
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                die(f"cannot create topic {topic}: {e}")
            print(f"topic {topic} exists")
    # Creation is acknowledged by the controller first; wait until metadata shows leaders.
    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    while True:
        md = admin.list_topics(timeout=10)
        ready = all(t in md.topics and not md.topics[t].error and md.topics[t].partitions
                    and all(p.leader >= 0 for p in md.topics[t].partitions.values())
                    for t in args.topics)
        if ready:
            return 0
        if time.monotonic() > deadline:
            die("topics have no leaders after %d s" % ADMIN_TIMEOUT_S)
        time.sleep(0.2)


def read_event(path):
    """The file's bytes and its parsed JSON (None when it is not JSON)."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    return raw, doc if isinstance(doc, dict) else None


def event_key(doc, path):
    person = doc.get("person") if doc else None
    if doc and isinstance(doc.get("tenant"), str) and isinstance(person, dict) \
            and isinstance(person.get("external_id"), str):
        return f"{doc['tenant']}/{person['external_id']}"
    # No key can be read: still send it, keyed by the file, so the DLQ path is shown.
    return os.path.basename(path)


def cmd_produce(args):
    # log_level 3: only errors; a fresh broker's "coordinator load in progress" is noise here.
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 5, "log_level": 3})
    failures = []
    placed = {}

    def report(err, msg, name):
        if err:
            failures.append(f"{name}: {err}")
        else:
            placed[name] = (msg.key().decode(), msg.partition(), msg.offset())

    for path in args.files:
        raw, doc = read_event(path)
        key = event_key(doc, path)
        # A W3C traceparent, which the worker passes through to the result and the DLQ.
        trace = os.urandom(16).hex()
        span = os.urandom(8).hex()
        producer.produce(args.topic, value=raw, key=key.encode(),
                         headers=[("traceparent", f"00-{trace}-{span}-01"),
                                  ("content-type", "application/json")],
                         on_delivery=lambda err, msg, n=os.path.basename(path): report(err, msg, n))
        producer.poll(0)
    left = producer.flush(30)
    if left or failures:
        die("not delivered: " + "; ".join(failures or [f"{left} records"]))
    for path in args.files:
        name = os.path.basename(path)
        key, partition, offset = placed[name]
        print(f"  {name:<44} key {key:<14} -> partition {partition}, offset {offset}")
    print(f"produced {len(args.files)} events to {args.topic}")
    return 0


def assign_all(consumer, topic):
    md = consumer.list_topics(topic, timeout=10)
    if topic not in md.topics or md.topics[topic].error:
        die(f"topic {topic} not found")
    parts = sorted(md.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, -2) for p in parts])  # -2: OFFSET_BEGINNING
    return parts


def new_consumer(bootstrap, eof=False):
    return Consumer({"bootstrap.servers": bootstrap,
                     "group.id": f"zw-demo-{os.getpid()}-{time.time_ns()}",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "enable.partition.eof": eof})


COLUMNS = [("event_id", 28), ("type", 7), ("tenant", 8), ("status", 9), ("outcome", 12),
           ("user id", 12), ("att", 3), ("duration", 8), ("error", 0)]


def row(values):
    cells = []
    for (_, width), v in zip(COLUMNS, values):
        v = "-" if v is None else str(v)
        if width and len(v) > width:
            v = v[:width - 1] + "~"
        cells.append(v.ljust(width) if width else v)
    return "  ".join(cells).rstrip()


def describe_error(err):
    if not isinstance(err, dict):
        return ""
    parts = [err.get("class") or "?"]
    if err.get("http_status"):
        parts.append(str(err["http_status"]))
    if err.get("code") and err["code"] != err.get("class"):
        parts.append(str(err["code"]))
    text = "/".join(parts)
    if err.get("message"):
        msg = str(err["message"])
        text += ": " + (msg if len(msg) <= 60 else msg[:59] + "~")
    return text


def cmd_results(args):
    expected = []
    for path in args.files:
        _, doc = read_event(path)
        if doc and isinstance(doc.get("event_id"), str) and doc["event_id"]:
            expected.append(doc["event_id"])
        else:
            print(f"note: {os.path.basename(path)} has no readable event_id; "
                  "it gets a DLQ record but no result")
    want = set(expected)
    seen = {}
    consumer = new_consumer(args.bootstrap)
    assign_all(consumer, args.topic)
    print(row([c for c, _ in COLUMNS]))
    print(row(["-" * (w or 5) for _, w in COLUMNS]))
    sys.stdout.flush()
    deadline = time.monotonic() + args.timeout
    try:
        while want - seen.keys() and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    print(f"consumer: {msg.error()}", file=sys.stderr)
                continue
            try:
                r = json.loads(msg.value())
            except (TypeError, ValueError):
                print(f"(a result that is not JSON, offset {msg.offset()})")
                continue
            eid = r.get("event_id")
            dup = " (again)" if eid in seen else ""
            seen[eid] = seen.get(eid, 0) + 1
            dur = r.get("duration_ms")
            print(row([f"{eid}{dup}", r.get("type"), r.get("tenant"), r.get("status"),
                       r.get("outcome"), r.get("zendesk_user_id"), r.get("attempts"),
                       f"{dur} ms" if dur is not None else None,
                       describe_error(r.get("error"))]))
            sys.stdout.flush()
    finally:
        consumer.close()
    missing = [e for e in expected if e not in seen]
    print(f"\n{len(expected) - len(missing)} of {len(expected)} events have a result"
          + (f" ({sum(seen.values())} result records)" if sum(seen.values()) else ""))
    if missing:
        print(f"no result within {args.timeout:g} s for: " + ", ".join(missing))
        return 1
    return 0


def header(msg, name):
    for k, v in msg.headers() or []:
        if k == name:
            return v.decode(errors="replace") if v is not None else ""
    return ""


def cmd_dlq(args):
    consumer = new_consumer(args.bootstrap, eof=True)
    parts = assign_all(consumer, args.topic)
    total = 0
    for p in parts:
        lo, hi = consumer.get_watermark_offsets(TopicPartition(args.topic, p), timeout=10)
        total += hi - lo
    print(f"{args.topic}: {total} record(s)")
    eof = set()
    deadline = time.monotonic() + 15
    shown = 0
    while total and len(eof) < len(parts) and shown < total and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
            continue
        shown += 1
        key = msg.key().decode(errors="replace") if msg.key() else ""
        print(f"  key {key:<16} reason {header(msg, 'zw_error_reason') or '-':<16} "
              f"{header(msg, 'zw_error_message')}")
    consumer.close()
    return 0


def cmd_users(args):
    for account in args.accounts:
        url = f"{args.sim.rstrip('/')}/__sim/accounts/{account}/users"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except OSError as e:
            die(f"GET {url}: {e}")
        users = body.get("users", [])
        print(f"{account}: {body.get('count', len(users))} user(s) (GET {url})")
        fmt = "  {:<12} {:<8} {:<26} {:<16} {:<9} {:<9} {:<7} {}"
        print(fmt.format("id", "ext id", "email", "name", "role", "suspended", "active", "tags"))
        for u in users:
            print(fmt.format(str(u.get("id", "")), str(u.get("external_id") or "-"),
                             str(u.get("email") or "-")[:26], str(u.get("name") or "")[:16],
                             str(u.get("role", "")), str(u.get("suspended", "")).lower(),
                             str(u.get("active", "")).lower(), ",".join(u.get("tags") or [])))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("topics")
    s.add_argument("-b", "--bootstrap", required=True)
    s.add_argument("--partitions", type=int, default=3)
    s.add_argument("topics", nargs="+")
    s = sub.add_parser("produce")
    s.add_argument("-b", "--bootstrap", required=True)
    s.add_argument("-t", "--topic", required=True)
    s.add_argument("files", nargs="+")
    s = sub.add_parser("results")
    s.add_argument("-b", "--bootstrap", required=True)
    s.add_argument("-t", "--topic", required=True)
    s.add_argument("--timeout", type=float, default=60)
    s.add_argument("files", nargs="+")
    s = sub.add_parser("dlq")
    s.add_argument("-b", "--bootstrap", required=True)
    s.add_argument("-t", "--topic", required=True)
    s = sub.add_parser("users")
    s.add_argument("--sim", required=True, help="http://127.0.0.1:PORT")
    s.add_argument("accounts", nargs="+")
    args = p.parse_args()
    return {"topics": cmd_topics, "produce": cmd_produce, "results": cmd_results,
            "dlq": cmd_dlq, "users": cmd_users}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

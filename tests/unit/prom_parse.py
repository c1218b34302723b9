#!/usr/bin/env python3
"""Reads the worker's /metrics output with prometheus_client's own text-format
parser, so a quoting or layout slip that our line-by-line checks miss still
fails a test.

    prom_parse.py FILE            check a saved exposition
    prom_parse.py --run TEST_BIN  run test_metrics with ZW_METRICS_SAMPLE set,
                                  then check the sample it wrote

Every expected family must parse with its type and a HELP text, histograms
must be cumulative with +Inf == _count, and no label may carry event data.
"""
import math
import os
import subprocess
import sys
import tempfile

from prometheus_client.parser import text_string_to_metric_families

# Family names as the parser reports them: it drops a counter's _total.
EXPECTED = {
    "zendesk_worker_up": "gauge",
    "zendesk_worker_build_info": "gauge",
    "zendesk_worker_events_consumed": "counter",
    "zendesk_worker_events_finished": "counter",
    "zendesk_worker_event_duration_seconds": "histogram",
    "zendesk_worker_zendesk_requests": "counter",
    "zendesk_worker_zendesk_request_duration_seconds": "histogram",
    "zendesk_worker_rate_limited": "counter",
    "zendesk_worker_retry_after_seconds": "counter",
    "zendesk_worker_retries": "counter",
    "zendesk_worker_bulk_jobs": "counter",
    "zendesk_worker_bulk_items": "counter",
    "zendesk_worker_bulk_fallbacks": "counter",
    "zendesk_worker_dlq_records": "counter",
    "zendesk_worker_in_flight_requests": "gauge",
    "zendesk_worker_pending_events": "gauge",
    "zendesk_worker_backlog_scalable": "gauge",
    "zendesk_worker_backlog_throttled": "gauge",
    "zendesk_worker_tenant_events_held": "gauge",
    "zendesk_worker_tenant_events_deferred": "gauge",
    "zendesk_worker_tenant_budget_remaining": "gauge",
    "zendesk_worker_tenant_budget_per_minute": "gauge",
    "zendesk_worker_consumer_lag": "gauge",
    "zendesk_worker_committed_offset": "gauge",
    "zendesk_worker_snapshot_users": "counter",
    "zendesk_worker_snapshot_running": "gauge",
    "zendesk_worker_partitions_paused": "gauge",
}

# The bounded label values (tenants aside, which come from the config).
ALLOWED = {
    "type": {"joiner", "mover", "leaver", "rehire", "sync", "invalid"},
    # events (succeeded, failed, dry_run) and bulk jobs (completed, failed, lost, rejected)
    "status": {"succeeded", "failed", "dry_run", "completed", "lost", "rejected", "other"},
    "endpoint": {"read", "write", "delete", "oauth", "list", "bulk", "other"},
    "op": {"create_or_update", "update", "destroy", "other"},
    "kind": {"submitted", "failed", "other"},
    "code": {"1xx", "2xx", "3xx", "401", "403", "4xx", "429", "5xx", "error"},
    "class": {"transient", "rate_limited", "auth", "other"},
}


def check(text):
    """Returns a list of problems (empty when the text is good)."""
    problems = []
    seen = {}
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError and friends
        return ["the parser refused the text: %r" % (e,)]
    for fam in families:
        if fam.name in seen:
            problems.append("family %s appears twice" % fam.name)
        seen[fam.name] = fam
        if not fam.documentation:
            problems.append("family %s has no HELP" % fam.name)
        series = set()
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in series:
                problems.append("duplicate series %s%s" % (s.name, s.labels))
            series.add(key)
            if not s.name.startswith("zendesk_worker_"):
                problems.append("sample %s lacks the zendesk_worker_ prefix" % s.name)
            for label, allowed in ALLOWED.items():
                if label in s.labels and s.labels[label] not in allowed:
                    problems.append("%s: %s=%r is not a bounded value"
                                    % (s.name, label, s.labels[label]))
        if fam.type == "histogram":
            problems += check_histogram(fam)
    for name, typ in EXPECTED.items():
        if name not in seen:
            problems.append("family %s is missing" % name)
        elif seen[name].type != typ:
            problems.append("family %s is a %s, not a %s" % (name, seen[name].type, typ))
    for name in seen:
        if name not in EXPECTED:
            problems.append("unexpected family %s" % name)
    return problems


def check_histogram(fam):
    problems = []
    groups = {}
    for s in fam.samples:
        labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        g = groups.setdefault(labels, {"buckets": [], "count": None, "sum": None})
        if s.name.endswith("_bucket"):
            g["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            g["count"] = s.value
        elif s.name.endswith("_sum"):
            g["sum"] = s.value
    for labels, g in groups.items():
        where = "%s%s" % (fam.name, dict(labels))
        buckets = g["buckets"]
        if not buckets or not math.isinf(buckets[-1][0]):
            problems.append("%s: no +Inf bucket last" % where)
            continue
        for (le_a, a), (le_b, b) in zip(buckets, buckets[1:]):
            if le_b <= le_a or b < a:
                problems.append("%s: buckets not cumulative at le=%s" % (where, le_b))
        if g["count"] != buckets[-1][1]:
            problems.append("%s: _count %s != +Inf bucket %s" % (where, g["count"], buckets[-1][1]))
        if g["sum"] is None or g["sum"] < 0:
            problems.append("%s: bad _sum %s" % (where, g["sum"]))
    return problems


def main(argv):
    if len(argv) == 3 and argv[1] == "--run":
        with tempfile.TemporaryDirectory(prefix="zw-prom-") as tmp:
            path = os.path.join(tmp, "metrics.prom")
            env = dict(os.environ, ZW_METRICS_SAMPLE=path)
            # test_metrics reads schemas/ from the source tree, as ctest's
            # other unit tests are told to.
            env.setdefault("ZW_SOURCE_DIR", os.path.dirname(os.path.dirname(
                os.path.dirname(os.path.abspath(__file__)))))
            rc = subprocess.run([argv[2]], env=env).returncode
            if rc != 0:
                print("prom_parse: %s failed (exit %d)" % (argv[2], rc), file=sys.stderr)
                return 1
            if not os.path.exists(path):
                print("prom_parse: %s wrote no sample to %s" % (argv[2], path), file=sys.stderr)
                return 1
            with open(path, encoding="utf-8") as f:
                text = f.read()
    elif len(argv) == 2:
        with open(argv[1], encoding="utf-8") as f:
            text = f.read()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(text)
    for p in problems:
        print("prom_parse: " + p, file=sys.stderr)
    if not problems:
        print("prom_parse: %d families parsed" % len(EXPECTED))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

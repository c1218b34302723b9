"""Fixtures for the zendesk-sim tests: start the built simulator on port 0 as a subprocess.

ZENDESK_SIM names the binary (CMake passes $<TARGET_FILE:zendesk-sim>).
"""
import base64
import os
import signal
import subprocess
import time

import pytest
import requests

SIM = os.environ.get("ZENDESK_SIM")

ACME = ("subdomain=acme,email=admin@acme.test,token=T0KEN,rpm=700,bulk_import=true,"
        "client_id=worker,client_secret=s3cret,token_ttl=1800,limits=false,"
        "job_queue_ms=20,job_item_ms=2,incremental_withhold_s=0")
BETA = "subdomain=beta,email=admin@beta.test,token=B3TA"


def basic(email, token):
    raw = f"{email}/token:{token}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class Sim:
    """One simulator process; api() talks Zendesk, ctl() talks /__sim/."""

    def __init__(self, *args):
        if not SIM or not os.path.exists(SIM):
            pytest.skip("ZENDESK_SIM is not set to the built simulator")
        self.proc = subprocess.Popen([SIM, "--listen", "127.0.0.1:0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        assert line.startswith("LISTENING=127.0.0.1:"), (line, self.proc.stderr.read())
        self.port = int(line.rsplit(":", 1)[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()

    def host(self, sub="acme"):
        return f"{sub}.zendesk.test:{self.port}"

    def api(self, method, path, sub="acme", auth="default", headers=None, **kw):
        h = {"Host": self.host(sub)}
        if auth == "default":
            auth = basic("admin@acme.test", "T0KEN") if sub == "acme" else basic(f"admin@{sub}.test", "B3TA")
        if auth:
            h["Authorization"] = auth
        h.update(headers or {})
        kw.setdefault("timeout", 10)
        return self.http.request(method, self.base + path, headers=h, **kw)

    def ctl(self, method, path, expect=None, **kw):
        kw.setdefault("timeout", 30)
        r = self.http.request(method, self.base + "/__sim" + path, **kw)
        if expect is not None:
            assert r.status_code == expect, (r.status_code, r.text)
        return r

    def wait_job(self, job_id, sub="acme", timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            js = self.api("GET", f"/api/v2/job_statuses/{job_id}.json", sub=sub).json()["job_status"]
            if js["status"] in ("completed", "failed"):
                return js
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} did not finish")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def sim_proc():
    s = Sim("--seed", "7", "--account", ACME, "--account", BETA)
    yield s
    assert s.stop() == 0


@pytest.fixture
def sim(sim_proc):
    """The shared simulator, reset to its start state before each test."""
    sim_proc.ctl("POST", "/reset", expect=200)
    return sim_proc

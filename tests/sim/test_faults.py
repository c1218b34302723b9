"""Injected faults: latency, 5xx, 409, dropped and hung connections, scripted answers."""
import concurrent.futures
import time

import pytest
import requests

from conftest import Sim, basic


def faults(sim, **kw):
    sim.ctl("PUT", "/accounts/acme/faults", json=kw, expect=200)


def test_latency_does_not_block_other_requests(sim):
    faults(sim, latency_ms=200)
    t0 = time.time()
    assert sim.api("GET", "/api/v2/users/me").status_code == 200
    assert time.time() - t0 >= 0.19
    # 200 concurrent requests at 200 ms each: serial would take 40 s
    headers = {"Host": sim.host(), "Authorization": basic("admin@acme.test", "T0KEN")}

    def one(_):
        return requests.get(sim.base + "/api/v2/users/me", headers=headers, timeout=10).status_code

    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=200) as pool:
        codes = list(pool.map(one, range(200)))
    elapsed = time.time() - t0
    assert codes == [200] * 200
    assert elapsed < 4, elapsed
    # control calls never wait
    t0 = time.time()
    sim.ctl("GET", "/health", expect=200)
    assert time.time() - t0 < 0.15


def test_random_latency_jitter(sim):
    faults(sim, latency_ms=0, latency_jitter_ms=100)
    times = []
    for _ in range(10):
        t0 = time.time()
        sim.api("GET", "/api/v2/users/me")
        times.append(time.time() - t0)
    assert max(times) <= 0.5 and max(times) - min(times) > 0.01


def test_503_with_retry_after(sim):
    faults(sim, error_rate=1, error_statuses=[503], error_retry_after=7)
    r = sim.api("GET", "/api/v2/users/me")
    assert r.status_code == 503 and r.headers["Retry-After"] == "7"
    assert r.json()["error"] == "DatabaseTimeout"
    assert r.headers["X-Zendesk-Request-Id"]


def test_500_and_502_without_retry_after(sim):
    faults(sim, error_rate=1, error_statuses=[502])
    r = sim.api("GET", "/api/v2/users/me")
    assert r.status_code == 502 and "Retry-After" not in r.headers
    assert r.headers["Content-Type"].startswith("text/html")
    faults(sim, error_rate=1, error_statuses=[500])
    r = sim.api("GET", "/api/v2/users/me")
    assert r.status_code == 500 and r.json()["error"]


def test_share_of_errors(sim):
    faults(sim, error_rate=0.5, error_statuses=[500, 502, 503])
    codes = [sim.api("GET", "/api/v2/users/me").status_code for _ in range(200)]
    bad = sum(c != 200 for c in codes)
    assert 60 < bad < 140
    assert set(codes) == {200, 500, 502, 503}


def test_conflict_409(sim):
    faults(sim, conflict_rate=1)
    r = sim.api("PUT", "/api/v2/users/1", json={"user": {"name": "x"}})
    assert r.status_code == 409
    assert r.json() == {"error": "DatabaseConflict", "description": "Database collision"}


def test_dropped_connection(sim):
    faults(sim, drop_rate=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        sim.http.get(sim.base + "/api/v2/users/me", headers={"Host": sim.host()}, timeout=5)
    sim.ctl("DELETE", "/accounts/acme/faults", expect=200)
    assert sim.api("GET", "/api/v2/users/me").status_code == 200


def test_hung_response(sim):
    faults(sim, hang_rate=1)
    t0 = time.time()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(sim.base + "/api/v2/users/me", headers={"Host": sim.host()}, timeout=0.5)
    assert time.time() - t0 >= 0.45
    log = sim.ctl("GET", "/accounts/acme/requests").json()["requests"]
    assert log[-1]["status"] == 0


def test_fault_path_filter(sim):
    faults(sim, error_rate=1, error_statuses=[503], fault_path="/api/v2/users/create_or_update")
    assert sim.api("GET", "/api/v2/users/me").status_code == 200
    r = sim.api("POST", "/api/v2/users/create_or_update", json={"user": {"name": "x"}})
    assert r.status_code == 503


def test_script_next_n_requests(sim):
    uid = sim.api("POST", "/api/v2/users", json={"user": {"name": "S"}}).json()["user"]["id"]
    sim.ctl("POST", "/accounts/acme/script", json={
        "method": "PUT", "path": "/api/v2/users/*", "count": 2, "status": 503,
        "headers": {"Retry-After": "3"}, "body": {"error": "DatabaseTimeout"}}, expect=201)
    assert sim.api("GET", f"/api/v2/users/{uid}").status_code == 200  # GET does not match
    for _ in range(2):
        r = sim.api("PUT", f"/api/v2/users/{uid}.json", json={"user": {"name": "T"}})
        assert r.status_code == 503 and r.headers["Retry-After"] == "3"
        assert r.json() == {"error": "DatabaseTimeout"}
    assert sim.api("PUT", f"/api/v2/users/{uid}", json={"user": {"name": "T"}}).status_code == 200
    assert sim.ctl("GET", "/accounts/acme/script").json()["rules"] == []


def test_script_sequence_drop_and_text(sim):
    sim.ctl("POST", "/accounts/acme/script", json={"rules": [
        {"path": "/api/v2/users/me", "action": "drop"},
        {"path": "/api/v2/users/me", "status": 429, "headers": {"Retry-After": "2"}, "body": "slow down"}]},
        expect=201)
    with pytest.raises(requests.exceptions.ConnectionError):
        sim.api("GET", "/api/v2/users/me")
    r = sim.api("GET", "/api/v2/users/me")
    assert r.status_code == 429 and r.text == "slow down" and r.headers["Content-Type"].startswith("text/plain")
    assert sim.api("GET", "/api/v2/users/me").status_code == 200


def test_faults_from_the_command_line():
    s = Sim("--account", "subdomain=f,email=a@f.test,token=X,error_rate=1,error_statuses=503,error_retry_after=2")
    try:
        r = s.api("GET", "/api/v2/users/me", sub="f", auth=basic("a@f.test", "X"))
        assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    finally:
        assert s.stop() == 0

"""Account and endpoint rate limits, their headers, and the 429 answer."""
import pytest


def limits(sim, **kw):
    sim.ctl("PUT", "/accounts/acme/limits", json={"limits_enabled": True, **kw}, expect=200)
    sim.ctl("POST", "/clock", json={"align_minute": True}, expect=200)


def test_account_budget_headers_and_429(sim):
    limits(sim, rpm=5)
    for i in range(5):
        r = sim.api("GET", "/api/v2/users/me")
        assert r.status_code == 200
        assert r.headers["X-Rate-Limit"] == "5" and r.headers["ratelimit-limit"] == "5"
        assert r.headers["X-Rate-Limit-Remaining"] == str(4 - i) == r.headers["ratelimit-remaining"]
        assert 1 <= int(r.headers["ratelimit-reset"]) <= 60
    r = sim.api("GET", "/api/v2/users/me")
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text.strip() == "Rate limit exceeded"
    with pytest.raises(ValueError):
        r.json()
    assert r.headers["X-Rate-Limit-Remaining"] == "0"
    assert r.headers["X-Zendesk-Request-Id"]
    # the next minute refills the budget
    sim.ctl("POST", "/clock", json={"align_minute": True}, expect=200)
    assert sim.api("GET", "/api/v2/users/me").status_code == 200


@pytest.mark.parametrize("kind,ctype", [("html", "text/html"), ("json", "application/json")])
def test_429_body_kinds(sim, kind, ctype):
    limits(sim, rpm=1, limit_body=kind)
    sim.api("GET", "/api/v2/users/me")
    r = sim.api("GET", "/api/v2/users/me")
    assert r.status_code == 429 and r.headers["Content-Type"].startswith(ctype)
    if kind == "json":
        assert r.json()["error"] == "APIRateLimitExceeded"


def test_limits_are_per_account(sim):
    limits(sim, rpm=1)
    sim.api("GET", "/api/v2/users/me")
    assert sim.api("GET", "/api/v2/users/me").status_code == 429
    assert sim.api("GET", "/api/v2/users/me", sub="beta").status_code == 200


def test_single_user_writes_per_second_and_per_user(sim):
    uid = sim.api("POST", "/api/v2/users", json={"user": {"name": "W"}}).json()["user"]["id"]
    limits(sim, rpm=0, user_write_per_sec=1, user_write_per_user_min=5)
    r = sim.api("PUT", f"/api/v2/users/{uid}", json={"user": {"name": "W1"}})
    assert r.status_code == 200
    assert r.headers["zendesk-ratelimit-create-update-user"].startswith("total=5; remaining=4;")
    r = sim.api("PUT", f"/api/v2/users/{uid}", json={"user": {"name": "W2"}})
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    # per user: five a minute (one a second account-wide)
    for i in range(1, 5):
        sim.ctl("POST", "/clock", json={"advance_ms": 1001}, expect=200)
        r = sim.api("PUT", f"/api/v2/users/{uid}", json={"user": {"name": f"W{i}"}})
        assert r.status_code == 200, (i, r.text)
    sim.ctl("POST", "/clock", json={"advance_ms": 1001}, expect=200)
    r = sim.api("PUT", f"/api/v2/users/{uid}", json={"user": {"name": "W6"}})
    assert r.status_code == 429
    assert r.headers["zendesk-ratelimit-create-update-user"].startswith("total=5; remaining=0;")
    # reads are not single-user writes
    assert sim.api("GET", f"/api/v2/users/{uid}").status_code == 200


def test_limits_off(sim):
    sim.ctl("PUT", "/accounts/acme/limits", json={"limits_enabled": False, "rpm": 1}, expect=200)
    for _ in range(5):
        r = sim.api("GET", "/api/v2/users/me")
        assert r.status_code == 200 and "X-Rate-Limit" not in r.headers
    # rpm=0 turns off the account budget alone
    sim.ctl("PUT", "/accounts/acme/limits", json={"limits_enabled": True, "rpm": 0}, expect=200)
    for _ in range(5):
        assert sim.api("GET", "/api/v2/users/me").status_code == 200

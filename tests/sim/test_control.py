"""The /__sim/ control API."""
from conftest import basic


def test_health_and_any_host(sim):
    r = sim.http.get(sim.base + "/__sim/health", headers={"Host": "whatever.example"})
    assert r.status_code == 200 and r.json()["ok"] is True
    assert r.headers["X-Zendesk-Request-Id"]


def test_accounts_lifecycle(sim):
    r = sim.ctl("POST", "/accounts", json={"subdomain": "gamma", "email": "a@gamma.test", "token": "G",
                                           "rpm": 200, "bulk_import": True})
    assert r.status_code == 201 and r.json()["config"]["rpm"] == 200
    assert sim.ctl("POST", "/accounts", json={"subdomain": "gamma", "email": "b@gamma.test"}).status_code == 409
    me = sim.api("GET", "/api/v2/users/me", sub="gamma", auth=basic("a@gamma.test", "G"))
    assert me.status_code == 200 and me.headers["X-Rate-Limit"] == "200"
    subs = [a["subdomain"] for a in sim.ctl("GET", "/accounts").json()["accounts"]]
    assert {"acme", "beta", "gamma"} <= set(subs)
    r = sim.ctl("POST", "/accounts", json={"spec": "subdomain=delta,email=a@delta.test,token=D,rpm=400"})
    assert r.status_code == 201
    assert sim.ctl("PUT", "/accounts/delta", json={"rpm": 2500}).json()["config"]["rpm"] == 2500
    assert sim.ctl("PUT", "/accounts/delta", json={"bogus": 1}).status_code == 400
    assert sim.ctl("DELETE", "/accounts/gamma").status_code == 204
    assert sim.ctl("DELETE", "/accounts/delta").status_code == 204
    assert sim.api("GET", "/api/v2/users/me", sub="gamma", auth=basic("a@gamma.test", "G")).status_code == 404
    assert sim.ctl("GET", "/accounts/gamma").status_code == 404


def test_seed_and_dump(sim):
    r = sim.ctl("POST", "/accounts/acme/seed", json={"count": 1000, "role": "agent"}, expect=201).json()
    assert r["created"] == 1000 and r["start"] == 1
    r = sim.ctl("POST", "/accounts/acme/seed", json={"count": 10}, expect=201).json()
    assert r["start"] == 1001
    users = sim.ctl("GET", "/accounts/acme/users").json()
    assert users["count"] == 1011
    one = sim.ctl("GET", "/accounts/acme/users", params={"external_id": "seed-000005"}).json()["users"]
    assert len(one) == 1
    u = one[0]
    assert u["external_id"] == "SEED-000005" and u["email"] == "seed-000005@acme.test" and u["role"] == "agent"
    assert {"identities", "deleted_at", "group_ids", "suspended", "custom_role_id"} <= set(u)
    # deleted users are in the dump too
    sim.api("DELETE", f"/api/v2/users/{u['id']}")
    d = sim.ctl("GET", "/accounts/acme/users", params={"active": "false"}).json()["users"]
    assert [x["id"] for x in d] == [u["id"]] and d[0]["deleted_at"]
    assert sim.ctl("POST", "/accounts/acme/seed", json={"count": 0}).status_code == 400


def test_request_log_and_stats(sim):
    sim.api("GET", "/api/v2/users/me")
    sim.api("GET", "/api/v2/users/me.json")
    sim.api("GET", "/api/v2/users/12345")
    sim.api("GET", "/api/v2/users/me", auth=None)
    log = sim.ctl("GET", "/accounts/acme/requests").json()
    assert log["total"] == 4
    first = log["requests"][0]
    assert (first["method"], first["path"], first["status"], first["account"]) == ("GET", "/api/v2/users/me", 200, "acme")
    assert first["endpoint"] == "GET /api/v2/users/me" and first["time"].endswith("Z") and first["request_id"]
    assert sim.ctl("GET", "/accounts/acme/requests", params={"limit": 2}).json()["requests"][0]["path"] == "/api/v2/users/12345"
    st = sim.ctl("GET", "/accounts/acme/stats").json()
    assert st["by_endpoint"]["GET /api/v2/users/me"] == {"200": 2, "401": 1}
    assert st["by_endpoint"]["GET /api/v2/users/{id}"] == {"404": 1}
    assert st["by_status"] == {"200": 2, "401": 1, "404": 1}
    assert st["users"]["active"] == 1 and st["users"]["by_role"]["admin"] == 1
    assert sim.ctl("DELETE", "/accounts/acme/requests").status_code == 204
    assert sim.ctl("GET", "/accounts/acme/stats").json()["total_requests"] == 0


def test_reset_one_account(sim):
    sim.api("POST", "/api/v2/users", json={"user": {"name": "A"}})
    sim.api("POST", "/api/v2/users", sub="beta", json={"user": {"name": "B"}})
    sim.ctl("PUT", "/accounts/acme/faults", json={"latency_ms": 5}, expect=200)
    sim.ctl("POST", "/accounts/acme/reset", expect=200)
    assert sim.ctl("GET", "/accounts/acme/users").json()["count"] == 1
    assert sim.ctl("GET", "/accounts/acme/faults").json()["latency_ms"] == 0
    assert sim.ctl("GET", "/accounts/beta/users").json()["count"] == 2
    sim.ctl("POST", "/reset", json={"account": "beta"}, expect=200)
    assert sim.ctl("GET", "/accounts/beta/users").json()["count"] == 1


def test_control_input_errors(sim):
    assert sim.ctl("POST", "/accounts", data="{nope").status_code == 400
    assert sim.ctl("PUT", "/accounts/acme/faults", json={"error_rate": 2}).status_code == 400
    assert sim.ctl("PUT", "/accounts/acme/faults", json={"rpm": 2}).status_code == 400
    assert sim.ctl("POST", "/accounts/acme/script", json={"status": 42}).status_code == 400
    assert sim.ctl("GET", "/nothing").status_code == 404
    assert sim.ctl("POST", "/clock", json={"advance_s": -5}).status_code == 400


def test_hundred_thousand_users(sim):
    import time
    t0 = time.time()
    r = sim.ctl("POST", "/accounts/acme/seed", json={"count": 100000, "role": "mixed"}, expect=201).json()
    assert r["created"] == 100000
    # indexed lookups stay fast at this size
    u = sim.api("GET", "/api/v2/users/search", params={"external_id": "seed-099999"}).json()["users"]
    assert u[0]["email"] == "seed-099999@acme.test"
    assert sim.api("GET", f"/api/v2/users/{r['last_id']}").json()["user"]["external_id"] == "SEED-100000"
    page = sim.api("GET", "/api/v2/users", params={"page[size]": 100, "role": "admin"}).json()
    assert len(page["users"]) == 100 and page["meta"]["has_more"]
    assert time.time() - t0 < 10

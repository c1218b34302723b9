"""API-token Basic auth, OAuth client-credentials and refresh grants, expiry, rotation, scopes."""
from conftest import basic


def token(sim, **extra):
    body = {"grant_type": "client_credentials", "client_id": "worker", "client_secret": "s3cret",
            "scope": "read write", **extra}
    r = sim.api("POST", "/oauth/tokens", auth=None, json=body)
    assert r.status_code == 201, r.text
    return r


def bearer(t):
    return "Bearer " + t


def test_basic_ok_and_failures(sim):
    assert sim.api("GET", "/api/v2/users/me").status_code == 200
    for auth in (None, basic("admin@acme.test", "wrong"), basic("other@acme.test", "T0KEN"),
                 "Basic !!!notbase64", "Basic " + "YWRtaW5AYWNtZS50ZXN0OlQwS0VO"):  # email:password
        r = sim.api("GET", "/api/v2/users/me", auth=auth)
        assert r.status_code == 401
        assert r.json() == {"error": "Couldn't authenticate you"}
        assert r.headers["WWW-Authenticate"].startswith("Basic")
        assert r.headers["X-Zendesk-Request-Id"]
    # the e-mail part is case-insensitive
    assert sim.api("GET", "/api/v2/users/me", auth=basic("ADMIN@acme.test", "T0KEN")).status_code == 200


def test_client_credentials_and_bearer(sim):
    r = token(sim)
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["scope"] == "read write"
    assert body["expires_in"] == 1800
    assert len(body["access_token"]) == 64 and body["refresh_token"]
    assert r.headers["Cache-Control"] == "no-store"
    me = sim.api("GET", "/api/v2/users/me", auth=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["user"]["role"] == "admin"
    # form encoding is accepted too
    f = sim.api("POST", "/oauth/tokens", auth=None, data={
        "grant_type": "client_credentials", "client_id": "worker", "client_secret": "s3cret"})
    assert f.status_code == 201 and f.json()["scope"] == "read write"


def test_token_expires(sim):
    t = token(sim, expires_in=600).json()
    assert t["expires_in"] == 600
    assert sim.api("GET", "/api/v2/users/me", auth=bearer(t["access_token"])).status_code == 200
    sim.ctl("POST", "/clock", json={"advance_s": 601}, expect=200)
    r = sim.api("GET", "/api/v2/users/me", auth=bearer(t["access_token"]))
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_token"
    assert "invalid_token" in r.headers["WWW-Authenticate"]


def test_account_token_ttl(sim):
    sim.ctl("PUT", "/accounts/acme", json={"token_ttl": 301}, expect=200)
    t = token(sim).json()
    assert t["expires_in"] == 301


def test_refresh_rotates_and_invalidates_old_pair(sim):
    first = token(sim).json()
    r = sim.api("POST", "/oauth/tokens", auth=None, json={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"],
        "client_id": "worker", "client_secret": "s3cret"})
    assert r.status_code == 201
    second = r.json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert sim.api("GET", "/api/v2/users/me", auth=bearer(second["access_token"])).status_code == 200
    assert sim.api("GET", "/api/v2/users/me", auth=bearer(first["access_token"])).status_code == 401
    again = sim.api("POST", "/oauth/tokens", auth=None, json={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"],
        "client_id": "worker", "client_secret": "s3cret"})
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert again.json()["error_description"]


def test_grant_errors(sim):
    r = sim.api("POST", "/oauth/tokens", auth=None, json={
        "grant_type": "client_credentials", "client_id": "worker", "client_secret": "nope"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = sim.api("POST", "/oauth/tokens", auth=None, json={
        "grant_type": "password", "client_id": "worker", "client_secret": "s3cret"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = sim.api("POST", "/oauth/tokens", auth=None, json={
        "grant_type": "authorization_code", "code": "x", "client_id": "worker", "client_secret": "s3cret"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = sim.api("POST", "/oauth/tokens", auth=None, json={
        "grant_type": "client_credentials", "client_id": "worker", "client_secret": "s3cret",
        "scope": "everything"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = sim.api("POST", "/oauth/tokens", auth=None, json={
        "grant_type": "client_credentials", "client_id": "worker", "client_secret": "s3cret",
        "expires_in": 100})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    # beta has no OAuth client at all
    r = sim.api("POST", "/oauth/tokens", sub="beta", auth=None, json={
        "grant_type": "client_credentials", "client_id": "worker", "client_secret": "s3cret"})
    assert r.status_code == 401


def test_scopes_give_403(sim):
    ro = token(sim, scope="users:read").json()["access_token"]
    assert sim.api("GET", "/api/v2/users/me", auth=bearer(ro)).status_code == 200
    r = sim.api("POST", "/api/v2/users", auth=bearer(ro), json={"user": {"name": "X"}})
    assert r.status_code == 403
    assert r.json()["error"] == "Forbidden"

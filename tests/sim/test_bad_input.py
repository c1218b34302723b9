"""Malformed JSON, wrong content type, unknown paths, oversized bodies, raw garbage."""
import socket


def test_malformed_json(sim):
    r = sim.api("POST", "/api/v2/users", data='{"user": {"name": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "InvalidJSON"
    r = sim.api("POST", "/api/v2/users", data='{"user": {}} trailing', headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_wrong_content_type_and_missing_root(sim):
    r = sim.api("POST", "/api/v2/users", data='{"user": {"name": "x"}}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and r.json()["error"] == "ParameterMissing"
    r = sim.api("POST", "/api/v2/users", json={"person": {"name": "x"}})
    assert r.status_code == 400 and r.json()["error"] == "ParameterMissing"
    r = sim.api("POST", "/api/v2/users", json=[1, 2])
    assert r.status_code == 400


def test_unknown_paths_and_methods(sim):
    for method, path in [("GET", "/api/v2/tickets/1/nope"), ("GET", "/api/v2/nothing"), ("PATCH", "/api/v2/users/1"),
                         ("GET", "/"), ("POST", "/api/v2/users/me")]:
        r = sim.api(method, path)
        assert r.status_code == 404, (method, path)
        assert r.json() == {"error": "InvalidEndpoint", "description": "Not found"}
        assert r.headers["X-Zendesk-Request-Id"]


def test_oversized_body(sim):
    big = '{"user": {"name": "' + "x" * (2 * 1024 * 1024) + '"}}'
    r = sim.api("POST", "/api/v2/users", data=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert sim.api("GET", "/api/v2/users/me").status_code == 200


def test_raw_garbage_keeps_serving(sim):
    for junk in (b"\x00\xff\xfe garbage\r\n\r\n", b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n",
                 b"POST /api/v2/users HTTP/1.1\r\nHost: acme.x\r\nContent-Length: 10\r\n\r\nabc"):
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as s:
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                s.recv(65536)
            except OSError:
                pass
    assert sim.api("GET", "/api/v2/users/me").status_code == 200


def test_odd_values_do_not_crash(sim):
    cases = [{"user": {"name": "x", "email": 5}}, {"user": {"name": ["x"]}}, {"user": {"name": "x", "tags": "t"}},
             {"user": {"name": "x", "user_fields": [1]}}, {"user": {"name": "x", "suspended": "yes"}},
             {"user": {"name": "x", "external_id": {"a": 1}}}, {"user": None}, {"user": {"name": "x" * 5000}}]
    for body in cases:
        r = sim.api("POST", "/api/v2/users", json=body)
        assert r.status_code in (201, 400, 422), (body, r.status_code)
    for q in ("ids=a,b", "ids=", "external_ids=" + "x," * 200):
        assert sim.api("GET", "/api/v2/users/show_many?" + q).status_code in (200, 400)
    assert sim.api("GET", "/api/v2/users/99999999999999999999999").status_code == 404
    assert sim.api("GET", "/api/v2/users/search", params={"query": "email:" + "a" * 3000}).status_code == 200

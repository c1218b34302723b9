"""Cursor-based incremental user export."""


def test_pages_and_end_of_stream(sim):
    sim.ctl("POST", "/accounts/acme/seed", json={"count": 25}, expect=201)
    r = sim.api("GET", "/api/v2/incremental/users/cursor.json", params={"start_time": 0, "per_page": 10})
    assert r.status_code == 200
    seen = []
    body = r.json()
    while True:
        assert set(body) >= {"users", "after_cursor", "after_url", "before_cursor", "end_of_stream"}
        seen += [u["id"] for u in body["users"]]
        if body["end_of_stream"]:
            break
        assert body["after_url"].startswith(f"http://{sim.host()}/api/v2/incremental/users/cursor.json?cursor=")
        body = sim.api("GET", "/api/v2/incremental/users/cursor", params={"cursor": body["after_cursor"],
                                                                         "per_page": 10}).json()
    assert len(seen) == 26 and len(set(seen)) == 26
    # later changes show up after the last cursor, deletions included
    last = body["after_cursor"]
    sim.api("DELETE", f"/api/v2/users/{seen[3]}")
    nxt = sim.api("GET", "/api/v2/incremental/users/cursor", params={"cursor": last}).json()
    assert [(u["id"], u["active"]) for u in nxt["users"]] == [(seen[3], False)]
    assert nxt["end_of_stream"] is True


def test_newest_minute_is_withheld(sim):
    sim.ctl("PUT", "/accounts/acme", json={"incremental_withhold_s": 60}, expect=200)
    sim.ctl("POST", "/clock", json={"advance_s": 120}, expect=200)
    sim.api("POST", "/api/v2/users", json={"user": {"name": "Fresh"}})
    body = sim.api("GET", "/api/v2/incremental/users/cursor", params={"start_time": 0}).json()
    assert [u["name"] for u in body["users"]] == ["Account Owner"]
    assert body["end_of_stream"] is True
    sim.ctl("POST", "/clock", json={"advance_s": 61}, expect=200)
    body = sim.api("GET", "/api/v2/incremental/users/cursor", params={"cursor": body["after_cursor"]}).json()
    assert [u["name"] for u in body["users"]] == ["Fresh"]


def test_bad_parameters(sim):
    assert sim.api("GET", "/api/v2/incremental/users/cursor").status_code == 400
    assert sim.api("GET", "/api/v2/incremental/users/cursor", params={"cursor": "xyz"}).status_code == 400
    assert sim.api("GET", "/api/v2/incremental/users/cursor", params={"start_time": 0, "per_page": 1001}).status_code == 400
    assert sim.api("GET", "/api/v2/incremental/users/cursor", params={"start_time": 99999999999}).status_code == 400


def test_rate_limit_10_per_minute(sim):
    sim.ctl("PUT", "/accounts/acme/limits", json={"limits_enabled": True, "rpm": 0}, expect=200)
    sim.ctl("POST", "/clock", json={"align_minute": True}, expect=200)
    for i in range(10):
        r = sim.api("GET", "/api/v2/incremental/users/cursor", params={"start_time": 0})
        assert r.status_code == 200
        assert r.headers["zendesk-ratelimit-incremental-exports"].startswith(f"total=10; remaining={9 - i};")
    r = sim.api("GET", "/api/v2/incremental/users/cursor", params={"start_time": 0})
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.headers["Content-Type"].startswith("text/plain")

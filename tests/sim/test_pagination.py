"""Cursor and offset pagination of the users list."""
from urllib.parse import urlsplit


def seed(sim, n, role="end-user"):
    sim.ctl("POST", "/accounts/acme/seed", json={"count": n, "role": role}, expect=201)


def follow(sim, url):
    parts = urlsplit(url)
    return sim.api("GET", parts.path + "?" + parts.query)


def test_cursor_pages_through_everything(sim):
    seed(sim, 250)
    seen, pages = [], 0
    r = sim.api("GET", "/api/v2/users.json", params={"page[size]": 100})
    while True:
        assert r.status_code == 200
        body = r.json()
        pages += 1
        seen += [u["id"] for u in body["users"]]
        assert body["meta"]["after_cursor"] and body["meta"]["before_cursor"]
        if not body["meta"]["has_more"]:
            assert body["links"]["next"] is None
            break
        assert body["links"]["next"].startswith(f"http://{sim.host()}/api/v2/users.json?")
        r = follow(sim, body["links"]["next"])
    assert pages == 3 and len(seen) == 251 and seen == sorted(seen)
    # page[after] by hand, and the way back with page[before]
    first = sim.api("GET", "/api/v2/users", params={"page[size]": 10}).json()
    second = sim.api("GET", "/api/v2/users", params={"page[size]": 10,
                                                     "page[after]": first["meta"]["after_cursor"]}).json()
    assert second["users"][0]["id"] > first["users"][-1]["id"]
    back = sim.api("GET", "/api/v2/users", params={"page[size]": 10,
                                                   "page[before]": second["meta"]["before_cursor"]}).json()
    assert [u["id"] for u in back["users"]] == [u["id"] for u in first["users"]]


def test_role_filters(sim):
    seed(sim, 20, "agent")
    seed(sim, 30, "end-user")
    agents = sim.api("GET", "/api/v2/users", params={"page[size]": 100, "role": "agent"}).json()["users"]
    assert len(agents) == 20 and {u["role"] for u in agents} == {"agent"}
    both = sim.api("GET", "/api/v2/users?page[size]=100&role[]=agent&role[]=admin").json()["users"]
    assert len(both) == 21
    assert sim.api("GET", "/api/v2/users", params={"role": "boss"}).status_code == 400


def test_offset_pagination(sim):
    seed(sim, 120)
    p1 = sim.api("GET", "/api/v2/users", params={"per_page": 50}).json()
    assert p1["count"] == 121 and len(p1["users"]) == 50
    assert "page=2" in p1["next_page"] and p1["previous_page"] is None
    p3 = sim.api("GET", "/api/v2/users", params={"per_page": 50, "page": 3}).json()
    assert len(p3["users"]) == 21 and p3["next_page"] is None
    r = sim.api("GET", "/api/v2/users", params={"per_page": 100, "page": 101})
    assert r.status_code == 400
    assert r.json()["error"] == "InvalidPaginationParameter"


def test_bad_page_parameters(sim):
    assert sim.api("GET", "/api/v2/users", params={"page[size]": 101}).status_code == 400
    r = sim.api("GET", "/api/v2/users", params={"page[after]": "garbage!"})
    assert r.status_code == 400 and r.json()["error"] == "InvalidPaginationParameter"

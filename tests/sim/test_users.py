"""The users API: show, show_many, me, search, create, create_or_update, update, delete."""


def create(sim, status=201, **user):
    r = sim.api("POST", "/api/v2/users.json", json={"user": user})
    assert r.status_code == status, r.text
    return r.json()


def dump(sim, **q):
    return sim.ctl("GET", "/accounts/acme/users", params=q, expect=200).json()["users"]


USER_FIELDS = {"id", "url", "name", "email", "external_id", "role", "custom_role_id", "default_group_id",
               "organization_id", "active", "suspended", "verified", "tags", "user_fields", "phone",
               "locale", "time_zone", "created_at", "updated_at", "last_login_at"}


def test_create_show_and_fields(sim):
    u = create(sim, name="Ada", email="ada@acme.test", external_id="E-1", role="agent", tags=["hr"],
               user_fields={"dept": "ops"}, phone="+441234", locale="en-GB", time_zone="London")["user"]
    assert USER_FIELDS <= set(u)
    assert u["role"] == "agent" and u["active"] is True and u["suspended"] is False
    assert u["tags"] == ["hr"] and u["user_fields"] == {"dept": "ops"}
    assert u["created_at"].endswith("Z") and len(u["created_at"]) == 20
    assert u["url"] == f"http://{sim.host()}/api/v2/users/{u['id']}.json"
    r = sim.api("GET", f"/api/v2/users/{u['id']}")
    assert r.status_code == 200 and r.json()["user"] == u
    assert r.headers["Content-Type"].startswith("application/json")
    # no role means end-user
    assert create(sim, name="Bob")["user"]["role"] == "end-user"


def test_create_location_header(sim):
    r = sim.api("POST", "/api/v2/users", json={"user": {"name": "Loc"}})
    assert r.status_code == 201
    assert r.headers["Location"].endswith(f"/api/v2/users/{r.json()['user']['id']}.json")


def test_show_missing_is_404(sim):
    r = sim.api("GET", "/api/v2/users/999999")
    assert r.status_code == 404
    assert r.json() == {"error": "RecordNotFound", "description": "Not found"}


def test_duplicates_and_invalid_values(sim):
    create(sim, name="A", email="dup@acme.test", external_id="Ext-9")
    e = create(sim, 422, name="B", email="DUP@acme.test")
    assert e["error"] == "RecordInvalid"
    assert e["description"] == "Record validation errors"
    assert e["details"]["email"][0]["error"] == "DuplicateValue"
    assert "already being used" in e["details"]["email"][0]["description"]
    e = create(sim, 422, name="C", external_id="ext-9")  # case-insensitive
    assert e["details"]["external_id"][0]["error"] == "DuplicateValue"
    e = create(sim, 422, name="D", email="not-an-email")
    assert e["details"]["email"][0]["error"] == "InvalidFormat"
    e = create(sim, 422, name="E", role="boss")
    assert e["details"]["role"][0]["error"] == "InvalidValue"
    e = create(sim, 422, email="noname@acme.test")
    assert "name" in e["details"]


def test_me(sim):
    me = sim.api("GET", "/api/v2/users/me.json").json()["user"]
    assert me["email"] == "admin@acme.test" and me["role"] == "admin"


def test_show_many(sim):
    a = create(sim, name="A", external_id="X-A")["user"]
    b = create(sim, name="B", external_id="X-B")["user"]
    r = sim.api("GET", f"/api/v2/users/show_many.json?ids={b['id']},{a['id']},12345").json()
    assert [u["id"] for u in r["users"]] == [b["id"], a["id"]]
    r = sim.api("GET", "/api/v2/users/show_many?external_ids=x-a,X-B").json()
    assert {u["external_id"] for u in r["users"]} == {"X-A", "X-B"}
    ids = ",".join(str(i) for i in range(1, 102))
    assert sim.api("GET", f"/api/v2/users/show_many?ids={ids}").status_code == 400


def test_create_or_update(sim):
    r = sim.api("POST", "/api/v2/users/create_or_update", json={
        "user": {"name": "Cy", "email": "cy@acme.test", "external_id": "HR-7"}})
    assert r.status_code == 201
    uid = r.json()["user"]["id"]
    # matched by external_id, case-insensitively
    r = sim.api("POST", "/api/v2/users/create_or_update", json={"user": {"external_id": "hr-7", "name": "Cy2"}})
    assert r.status_code == 200 and r.json()["user"]["id"] == uid and r.json()["user"]["name"] == "Cy2"
    # matched by email
    r = sim.api("POST", "/api/v2/users/create_or_update", json={"user": {"email": "CY@acme.test", "role": "agent"}})
    assert r.status_code == 200 and r.json()["user"]["role"] == "agent"


def test_update_attributes(sim):
    u = create(sim, name="Di", email="di@acme.test", role="agent")["user"]
    r = sim.api("PUT", f"/api/v2/users/{u['id']}.json", json={"user": {
        "role": "agent", "custom_role_id": 77, "suspended": True, "organization_id": 5, "default_group_id": 6,
        "tags": ["a", "b"], "user_fields": {"cost_centre": "42"}, "locale": "de", "time_zone": "Berlin",
        "phone": "+49", "name": "Diana"}})
    assert r.status_code == 200
    v = r.json()["user"]
    assert (v["custom_role_id"], v["suspended"], v["organization_id"], v["default_group_id"]) == (77, True, 5, 6)
    assert v["tags"] == ["a", "b"] and v["user_fields"] == {"cost_centre": "42"}
    assert (v["locale"], v["time_zone"], v["phone"], v["name"]) == ("de", "Berlin", "+49", "Diana")
    assert v["updated_at"] >= u["updated_at"]
    # downgrade clears the custom role
    v = sim.api("PUT", f"/api/v2/users/{u['id']}", json={"user": {"role": "end-user"}}).json()["user"]
    assert v["role"] == "end-user" and v["custom_role_id"] is None
    r = sim.api("PUT", "/api/v2/users/424242", json={"user": {"name": "x"}})
    assert r.status_code == 404


def test_new_email_becomes_secondary_identity(sim):
    u = create(sim, name="Ed", email="ed@acme.test")["user"]
    v = sim.api("PUT", f"/api/v2/users/{u['id']}", json={"user": {"email": "edward@acme.test"}}).json()["user"]
    assert v["email"] == "ed@acme.test"
    assert dump(sim, id=u["id"])[0]["identities"] == ["edward@acme.test"]
    # the secondary address is taken now
    e = create(sim, 422, name="Other", email="edward@acme.test")
    assert e["details"]["email"][0]["error"] == "DuplicateValue"


def test_soft_delete_deleted_users_and_purge(sim):
    u = create(sim, name="Fi", email="fi@acme.test", external_id="F-1")["user"]
    r = sim.api("DELETE", f"/api/v2/users/{u['id']}")
    assert r.status_code == 200
    assert r.json()["user"]["active"] is False
    assert sim.api("GET", f"/api/v2/users/{u['id']}").json()["user"]["active"] is False
    assert sim.api("DELETE", f"/api/v2/users/{u['id']}").status_code == 404
    d = sim.api("GET", "/api/v2/deleted_users").json()
    assert [x["id"] for x in d["deleted_users"]] == [u["id"]] and d["count"] == 1
    assert sim.api("GET", f"/api/v2/deleted_users/{u['id']}").json()["deleted_user"]["id"] == u["id"]
    # e-mail and external_id are free again: a rehire is a new user
    assert create(sim, name="Fi again", email="fi@acme.test", external_id="F-1")["user"]["id"] != u["id"]
    r = sim.api("DELETE", f"/api/v2/deleted_users/{u['id']}")
    assert r.status_code == 200
    assert sim.api("GET", f"/api/v2/users/{u['id']}").status_code == 404
    assert sim.api("GET", f"/api/v2/deleted_users/{u['id']}").status_code == 404
    # an active user cannot be purged
    assert sim.api("DELETE", f"/api/v2/deleted_users/{sim.api('GET', '/api/v2/users/me').json()['user']['id']}").status_code == 404


def test_search(sim):
    create(sim, name="Gus", email="gus@acme.test", external_id="G-1")
    r = sim.api("GET", "/api/v2/users/search.json", params={"query": "email:gus@acme.test"})
    assert r.status_code == 200
    body = r.json()
    assert [u["external_id"] for u in body["users"]] == ["G-1"] and body["count"] == 1
    assert body["next_page"] is None
    assert sim.api("GET", "/api/v2/users/search", params={"external_id": "g-1"}).json()["count"] == 1
    assert sim.api("GET", "/api/v2/users/search", params={"query": "type:user gus"}).json()["count"] == 1
    assert sim.api("GET", "/api/v2/users/search", params={"query": "email:none@acme.test"}).json()["users"] == []


def test_group_memberships(sim):
    groups = sim.api("GET", "/api/v2/groups").json()["groups"]
    gid = groups[0]["id"]
    g2 = sim.api("POST", "/api/v2/groups", json={"group": {"name": "Tier 2"}}).json()["group"]["id"]
    agent = create(sim, name="Hal", role="agent")["user"]
    enduser = create(sim, name="Ivy")["user"]
    r = sim.api("POST", f"/api/v2/users/{agent['id']}/group_memberships", json={"group_membership": {"group_id": gid}})
    assert r.status_code == 201
    m = r.json()["group_membership"]
    assert (m["user_id"], m["group_id"], m["default"]) == (agent["id"], gid, True)
    r = sim.api("POST", "/api/v2/group_memberships", json={"group_membership": {"user_id": agent["id"], "group_id": g2}})
    assert r.status_code == 201 and r.json()["group_membership"]["default"] is False
    r = sim.api("POST", f"/api/v2/users/{enduser['id']}/group_memberships", json={"group_membership": {"group_id": gid}})
    assert r.status_code == 422
    lst = sim.api("GET", f"/api/v2/users/{agent['id']}/group_memberships").json()
    assert lst["count"] == 2
    assert sim.api("GET", f"/api/v2/users/{agent['id']}").json()["user"]["default_group_id"] == gid
    assert sim.api("DELETE", f"/api/v2/group_memberships/{m['id']}").status_code == 204
    # a downgrade to end-user removes the rest
    sim.api("PUT", f"/api/v2/users/{agent['id']}", json={"user": {"role": "end-user"}})
    assert sim.api("GET", "/api/v2/group_memberships").json()["count"] == 0

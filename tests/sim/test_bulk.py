"""Bulk endpoints and job statuses."""
import time


def post_job(sim, method, path, status=200, sub="acme", **kw):
    r = sim.api(method, path, sub=sub, **kw)
    assert r.status_code == status, r.text
    return r


def test_create_many_needs_bulk_import(sim):
    r = sim.api("POST", "/api/v2/users/create_many", sub="beta", json={"users": [{"name": "A"}]})
    assert r.status_code == 403 and r.json()["error"] == "Forbidden"
    r = sim.api("POST", "/api/v2/users/create_or_update_many", sub="beta", json={"users": [{"name": "A"}]})
    assert r.status_code == 403
    # update_many and destroy_many do not need it
    r = sim.api("DELETE", "/api/v2/users/destroy_many?ids=1", sub="beta")
    assert r.status_code == 200


def test_create_many_job_lifecycle_and_results(sim):
    sim.ctl("PUT", "/accounts/acme", json={"job_queue_ms": 300, "job_item_ms": 50}, expect=200)
    users = [{"name": "A", "email": "a@acme.test", "external_id": "B-1"},
             {"name": "B", "email": "broken"},
             {"name": "C", "email": "a@acme.test"},
             {"name": "D", "external_id": "B-4"}]
    r = post_job(sim, "POST", "/api/v2/users/create_many.json", json={"users": users})
    js = r.json()["job_status"]
    assert js["status"] == "queued" and js["total"] == 4 and js["results"] is None
    assert js["url"].endswith(f"/api/v2/job_statuses/{js['id']}.json")
    time.sleep(0.35)
    mid = sim.api("GET", f"/api/v2/job_statuses/{js['id']}").json()["job_status"]
    assert mid["status"] == "working"
    done = sim.wait_job(js["id"])
    assert done["progress"] == 4 and done["message"].startswith("Completed at")
    res = done["results"]
    assert [x["index"] for x in res] == [0, 1, 2, 3]
    assert [x["status"] for x in res] == ["Created", "Failed", "Failed", "Created"]
    assert res[0]["external_id"] == "B-1" and res[0]["email"] == "a@acme.test" and res[0]["id"]
    assert "not properly formatted" in res[1]["details"] and res[1]["error"]
    assert "already being used" in res[2]["details"]
    assert sim.api("GET", f"/api/v2/users/{res[3]['id']}").json()["user"]["external_id"] == "B-4"


def test_create_or_update_many(sim):
    sim.api("POST", "/api/v2/users", json={"user": {"name": "Old", "external_id": "COU-1"}})
    r = post_job(sim, "POST", "/api/v2/users/create_or_update_many", json={"users": [
        {"name": "New", "external_id": "cou-1", "role": "agent"}, {"name": "Fresh", "external_id": "COU-2"}]})
    done = sim.wait_job(r.json()["job_status"]["id"])
    assert [x["status"] for x in done["results"]] == ["Updated", "Created"]


def test_update_many_both_forms(sim):
    sim.ctl("POST", "/accounts/acme/seed", json={"count": 3}, expect=201)
    users = sim.ctl("GET", "/accounts/acme/users", params={"role": "end-user"}).json()["users"]
    ids = ",".join(str(u["id"]) for u in users)
    r = post_job(sim, "PUT", f"/api/v2/users/update_many.json?ids={ids},999", json={"user": {"suspended": True}})
    done = sim.wait_job(r.json()["job_status"]["id"])
    assert [x["status"] for x in done["results"]] == ["Updated"] * 3 + ["Failed"]
    assert all(u["suspended"] for u in sim.ctl("GET", "/accounts/acme/users", params={"role": "end-user"}).json()["users"])
    r = post_job(sim, "PUT", "/api/v2/users/update_many", json={"users": [
        {"id": users[0]["id"], "role": "agent"}, {"external_id": "SEED-000002", "tags": ["moved"]}]})
    done = sim.wait_job(r.json()["job_status"]["id"])
    assert [x["status"] for x in done["results"]] == ["Updated", "Updated"]
    u2 = sim.ctl("GET", "/accounts/acme/users", params={"external_id": "SEED-000002"}).json()["users"][0]
    assert u2["tags"] == ["moved"]
    r = post_job(sim, "PUT", "/api/v2/users/update_many?external_ids=SEED-000003", json={"user": {"role": "agent"}})
    assert sim.wait_job(r.json()["job_status"]["id"])["results"][0]["status"] == "Updated"


def test_destroy_many_and_show_many(sim):
    sim.ctl("POST", "/accounts/acme/seed", json={"count": 2}, expect=201)
    users = sim.ctl("GET", "/accounts/acme/users", params={"role": "end-user"}).json()["users"]
    r1 = post_job(sim, "DELETE", f"/api/v2/users/destroy_many?ids={users[0]['id']},{users[1]['id']}")
    r2 = post_job(sim, "DELETE", "/api/v2/users/destroy_many?external_ids=NOPE")
    j1, j2 = r1.json()["job_status"]["id"], r2.json()["job_status"]["id"]
    sim.wait_job(j1)
    sim.wait_job(j2)
    many = sim.api("GET", f"/api/v2/job_statuses/show_many.json?ids={j1},{j2}").json()["job_statuses"]
    assert [j["id"] for j in many] == [j1, j2]
    assert [x["status"] for x in many[0]["results"]] == ["Deleted", "Deleted"]
    assert many[1]["results"][0]["status"] == "Failed"
    assert all(not u["active"] for u in sim.ctl("GET", "/accounts/acme/users", params={"role": "end-user"}).json()["users"])
    assert sim.api("GET", "/api/v2/job_statuses/nope").status_code == 404


def test_too_many_jobs(sim):
    sim.ctl("PUT", "/accounts/acme", json={"job_queue_ms": 60000}, expect=200)
    sim.ctl("PUT", "/accounts/acme/limits", json={"limits_enabled": True, "rpm": 0, "max_jobs": 3}, expect=200)
    ids = []
    for i in range(3):
        r = post_job(sim, "DELETE", f"/api/v2/users/destroy_many?ids={i + 1}")
        ids.append(r.json()["job_status"]["id"])
        assert r.headers["zendesk-ratelimit-inflight-jobs"] == f"total=3; remaining={2 - i}; resets=60"
    r = sim.api("DELETE", "/api/v2/users/destroy_many?ids=9")
    assert r.status_code == 429
    body = r.json()
    assert body["error"] == "TooManyJobs" and body["current_job_ids"] == ids


def test_bulk_input_errors(sim):
    r = sim.api("POST", "/api/v2/users/create_many", json={"users": [{"name": str(i)} for i in range(101)]})
    assert r.status_code == 400
    r = sim.api("POST", "/api/v2/users/create_many", json={"people": []})
    assert r.status_code == 400
    assert sim.api("DELETE", "/api/v2/users/destroy_many").status_code == 400

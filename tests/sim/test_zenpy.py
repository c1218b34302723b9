"""Compatibility: zenpy, a widely used Python Zendesk client, drives the simulator unchanged.

zenpy builds https://{subdomain}.{domain}/api/v2/...; ZENPY_FORCE_SCHEME=http switches the scheme,
and the session's HTTP proxy is the simulator, which reads the account from the Host header.
"""
import os

import pytest

zenpy = pytest.importorskip("zenpy")
from zenpy import Zenpy  # noqa: E402
from zenpy.lib.api_objects import User  # noqa: E402
from zenpy.lib.exception import APIException  # noqa: E402


@pytest.fixture
def zen(sim, monkeypatch):
    import requests
    monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
    session = requests.Session()
    session.proxies = {"http": sim.base}
    session.trust_env = False
    return Zenpy(subdomain="acme", domain=f"zendesk.test:{sim.port}", email="admin@acme.test",
                 token="T0KEN", session=session, timeout=10)


def test_zenpy_users_lifecycle(zen, sim):
    created = zen.users.create(User(name="Zen One", email="zen1@acme.test", external_id="Z-1", role="end-user"))
    assert created.id and created.email == "zen1@acme.test"
    found = list(zen.search(type="user", email="zen1@acme.test"))
    assert [u.id for u in found] == [created.id]
    same = zen.users(id=created.id)
    assert same.external_id == "Z-1"
    same.role = "agent"
    same.tags = ["zenpy"]
    updated = zen.users.update(same)
    assert updated.role == "agent" and updated.tags == ["zenpy"]
    updated.suspended = True
    assert zen.users.update(updated).suspended is True
    me = zen.users.me()
    assert me.email == "admin@acme.test"
    cou = zen.users.create_or_update(User(name="Zen One B", external_id="z-1"))
    assert cou.id == created.id
    zen.users.delete(updated)
    assert sim.api("GET", f"/api/v2/users/{created.id}").json()["user"]["active"] is False
    zen.users.permanently_delete(created.id)
    assert sim.api("GET", f"/api/v2/users/{created.id}").status_code == 404
    with pytest.raises(APIException):
        zen.users(id=created.id)


def test_zenpy_pages_through_users(zen, sim):
    sim.ctl("POST", "/accounts/acme/seed", json={"count": 230}, expect=201)
    ids = [u.id for u in zen.users(cursor_pagination=100)]
    assert len(ids) == 231 and len(set(ids)) == 231
    ids = [u.id for u in zen.users()]
    assert len(ids) == 231

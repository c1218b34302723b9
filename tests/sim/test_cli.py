"""The command line, process life cycle, account routing by Host and request ids."""
import subprocess

from conftest import SIM, Sim, basic


def test_listening_line_and_clean_sigterm():
    s = Sim("--account", "subdomain=one,email=a@one.test,token=X")
    r = s.api("GET", "/api/v2/users/me", sub="one", auth=basic("a@one.test", "X"))
    assert r.status_code == 200
    assert r.json()["user"]["email"] == "a@one.test"
    assert s.stop() == 0


def test_help_and_bad_arguments():
    out = subprocess.run([SIM, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and "--listen" in out.stdout
    bad = subprocess.run([SIM, "--account", "subdomain=x,rpm=lots"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "rpm" in bad.stderr
    bad = subprocess.run([SIM, "--account", "subdomain=x,colour=blue,email=a@b.c"], capture_output=True,
                         text=True, timeout=10)
    assert bad.returncode == 2 and "colour" in bad.stderr


def test_config_file(tmp_path):
    cfg = tmp_path / "sim.json"
    cfg.write_text('{"accounts":[{"subdomain":"cfg","email":"a@cfg.test","token":"Z","rpm":3}]}')
    s = Sim("--config", str(cfg))
    try:
        r = s.api("GET", "/api/v2/users/me", sub="cfg", auth=basic("a@cfg.test", "Z"))
        assert r.status_code == 200 and r.headers["X-Rate-Limit"] == "3"
    finally:
        assert s.stop() == 0


def test_accounts_told_apart_by_host(sim):
    a = sim.api("GET", "/api/v2/users/me")
    b = sim.api("GET", "/api/v2/users/me", sub="beta")
    assert a.json()["user"]["email"] == "admin@acme.test"
    assert b.json()["user"]["email"] == "admin@beta.test"
    # acme.localhost works like acme.zendesk.test: the first label decides
    r = sim.http.get(sim.base + "/api/v2/users/me", headers={
        "Host": f"ACME.localhost:{sim.port}", "Authorization": basic("admin@acme.test", "T0KEN")})
    assert r.status_code == 200
    # acme's credentials do not open beta
    assert sim.api("GET", "/api/v2/users/me", sub="beta", auth=basic("admin@acme.test", "T0KEN")).status_code == 401


def test_unknown_account_is_html_404(sim):
    r = sim.api("GET", "/api/v2/users/me", sub="nosuch")
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("text/html")
    assert "no longer exists" in r.text
    assert r.headers["X-Zendesk-Request-Id"]


def test_request_ids_are_unique(sim):
    ids = {sim.api("GET", "/api/v2/users/me").headers["X-Zendesk-Request-Id"] for _ in range(20)}
    assert len(ids) == 20

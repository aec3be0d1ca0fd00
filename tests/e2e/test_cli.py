"""The command line as an operator meets it: `sluice reload` and POST /api/v1/admin/reload
answer with the outcome (applied and what changed, or refused and why), a 401 says how to
pass a token, usage errors are caught before anything is sent, `sluice keys` works through a
running server too, and messages say things once."""
import json
import os
import signal
import subprocess

import pytest
import requests

from conftest import BIN, JUDGMENTS, free_port, wait_for

# No dev_bypass: the server wants a token (conftest adds dev_bypass unless `auth:` is given).
AUTH = "auth: {jwt: {leeway_s: 60}}\n"


def run(*args, env=None, timeout=60):
    e = dict(os.environ)
    for k in ("SLUICE_CONFIG", "SLUICE_URL", "SLUICE_TOKEN"):
        e.pop(k, None)
    e.update(env or {})
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, env=e,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def admin_key(server):
    """The first admin key, made on the store (no key needed for that)."""
    rc, out, err = run("keys", "create", "--config", server.config_path, "--name", "ops",
                       "--role", "admin")
    assert rc == 0, err
    return json.loads(out)["key"]


# ---------------------------------------------------------------- reload

ADDED = JUDGMENTS + """
  - name: added
    schema:
      type: object
      properties:
        k: {type: string}
"""


def test_reload_applied_says_what_changed(server):
    server.write_config(datasets_yaml=ADDED.replace("notes:       {type: string, maxLength: 2000}",
                                                    "notes:       {type: string, maxLength: 3000}"))
    rc, out, err = run("reload", "--url", server.url)
    assert rc == 0, (out, err)
    ans = json.loads(out)
    assert ans["reload"] == "applied"
    assert ans["datasets"] == {"added": ["added"], "removed": [], "changed": ["judgments"]}
    assert ans["restart_required"] == []
    # applied when the answer comes, not some time later
    assert server.get("/api/v1/datasets/added").status_code == 200
    r = server.post_events("added", {"k": "x"}, ctype="application/json")
    assert r.status_code == 200, r.text

    # the same through the API; nothing changed this time, one dataset removed the next
    r = server.post("/api/v1/admin/reload")
    assert r.status_code == 200, r.text
    assert r.json()["datasets"] == {"added": [], "removed": [], "changed": []}
    server.write_config(datasets_yaml=JUDGMENTS)
    r = server.post("/api/v1/admin/reload")
    assert r.status_code == 200, r.text
    assert r.json()["datasets"]["removed"] == ["added"]
    assert server.get("/api/v1/datasets/added").status_code == 404


def test_reload_names_options_that_wait_for_a_restart(server):
    server.write_config(extra_yaml="io_threads: 3\nlimits:\n  max_body_bytes: 2M\n")
    r = server.post("/api/v1/admin/reload")
    assert r.status_code == 200, r.text
    assert sorted(r.json()["restart_required"]) == ["io_threads", "limits.max_body_bytes"]


def test_reload_refused_for_a_bad_file_names_the_line(server):
    # line 6 of the file: an unknown option, and a new dataset that must not appear
    with open(server.config_path) as f:
        good = f.read()
    lines = good.splitlines(keepends=True)
    bad = "".join(lines[:3]) + "limits:\n  max_body_bytes: 1M\n  max_bodyy_bytes: 2M\n" + \
        "".join(lines[3:]) + "  - name: sneaky\n    schema: {type: object}\n"
    with open(server.config_path, "w") as f:
        f.write(bad)
    rc, out, err = run("reload", "--url", server.url)
    assert rc == 1, (rc, out, err)
    assert "refused" in err and "max_bodyy_bytes" in err, err
    assert f"{server.config_path}:6" in err, err

    r = server.post("/api/v1/admin/reload")
    assert r.status_code == 422, r.text
    e = r.json()["error"]
    assert e["code"] == "CONFIG_REFUSED"
    assert f"{server.config_path}:6" in e["message"] and "max_bodyy_bytes" in e["message"], e

    # still serving the old configuration
    assert server.get("/api/v1/datasets/sneaky").status_code == 404
    r = server.post_events("events", {"id": 1}, ctype="application/json")
    assert r.status_code == 200, r.text
    # SIGHUP is refused the same way, and logged
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: len([o for o in server.log_lines()
                          if o.get("msg") == "config reload refused"]) >= 3,
             what="three 'config reload refused' log lines")
    assert server.proc.poll() is None


def test_reload_refused_for_a_change_that_breaks_stored_rows(server):
    server.write_config(datasets_yaml=JUDGMENTS.replace("        id: {type: integer}\n",
                                                        "        id: {type: string}\n", 1))
    r = server.post("/api/v1/admin/reload")
    assert r.status_code == 422, r.text
    msg = r.json()["error"]["message"]
    assert "events" in msg and "id" in msg, msg
    rc, out, err = run("reload", "--url", server.url)
    assert rc == 1 and "events" in err, (rc, out, err)
    r = server.post_events("events", {"id": "x"}, ctype="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "INVALID_TYPE", r.text


def test_reload_needs_an_admin_token(make_server):
    s = make_server(extra_yaml=AUTH)
    rc, out, err = run("reload", "--url", s.url)
    assert rc == 1 and "SLUICE_TOKEN" in err, (rc, out, err)
    rc, out, err = run("reload", "--url", s.url, env={"SLUICE_TOKEN": admin_key(s)})
    assert rc == 0 and json.loads(out)["reload"] == "applied", (out, err)


# ---------------------------------------------------------------- tokens and usage errors

def test_401_says_how_to_pass_a_token(make_server):
    s = make_server(extra_yaml=AUTH)
    rc, out, err = run("dlq", "list", "--url", s.url)
    assert rc == 1, (rc, out, err)
    assert "401" in err and "SLUICE_TOKEN" in err, err
    rc, out, err = run("batch", "list", "--url", s.url, env={"SLUICE_TOKEN": "slk_nonsense"})
    assert rc == 1 and "refused the token in SLUICE_TOKEN" in err, (rc, out, err)
    # and a token that works makes the same command succeed
    rc, out, err = run("batch", "list", "--url", s.url, env={"SLUICE_TOKEN": admin_key(s)})
    assert rc == 0 and json.loads(out)["items"] == [], (out, err)


@pytest.mark.parametrize("pct", ["abc", "12x", "", "101", "1e3", "nan"])
def test_set_threshold_checks_its_argument_first(server, pct):
    r = requests.post(server.url + "/api/v1/datasets/judgments/batches",
                      data=b"case_number,amount,filed_date\nCASE-0000001,1,2024-01-01\n",
                      headers={"Content-Type": "text/csv"}, timeout=30)
    assert r.status_code == 202, r.text
    bid = r.json()["batch_id"]
    before = server.get(f"/api/v1/batches/{bid}").json()["error_threshold_percent"]
    rc, out, err = run("batch", "set-threshold", bid, pct, "--url", server.url)
    assert rc == 2, (rc, out, err)
    assert "PERCENT" in err and f"'{pct}'" in err, err
    assert "MALFORMED_JSON" not in out + err
    assert server.get(f"/api/v1/batches/{bid}").json()["error_threshold_percent"] == before
    rc, out, err = run("batch", "set-threshold", bid, "25.5", "--url", server.url)
    assert rc == 0, (out, err)
    assert server.get(f"/api/v1/batches/{bid}").json()["error_threshold_percent"] == 25.5


def test_sentinel_interval_needs_loop(server):
    rc, out, err = run("sentinel", "--config", server.config_path, "--interval", "5")
    assert rc == 3, (rc, out, err)
    assert "--interval needs --loop" in err, err
    rc, out, err = run("sentinel", "--config", server.config_path, "--loop", "--interval", "5x")
    assert rc == 3 and "'5x'" in err, (rc, out, err)
    rc, out, err = run("sentinel", "--config", server.config_path, "--json")
    assert rc in (0, 1, 2) and json.loads(out)["status"], (rc, out, err)


def test_dev_bypass_on_a_public_address_is_a_configuration_error(make_server):
    s = make_server(start=False)  # conftest's config turns dev_bypass on
    with open(s.config_path) as f:
        text = f.read()
    assert "dev_bypass: true" in text
    with open(s.config_path, "w") as f:
        f.write(text.replace("listen: 127.0.0.1:", "listen: 0.0.0.0:"))
    rc, out, err = run("serve", "--config", s.config_path)
    assert rc == 2, (rc, out, err)
    assert "auth.dev_bypass" in err and "loopback" in err, err
    # --listen on the command line counts too
    with open(s.config_path, "w") as f:
        f.write(text)
    rc, out, err = run("serve", "--config", s.config_path, "--listen", f"0.0.0.0:{free_port()}")
    assert rc == 2 and "auth.dev_bypass" in err, (rc, out, err)


# ---------------------------------------------------------------- keys through the server

def test_keys_through_the_server(make_server):
    s = make_server(extra_yaml=AUTH)
    admin = admin_key(s)
    env = {"SLUICE_TOKEN": admin}
    rc, out, err = run("keys", "create", "--name", "dash", "--role", "viewer", "--expires", "30d",
                       "--url", s.url, env=env)
    assert rc == 0, (out, err)
    k = json.loads(out)
    assert k["role"] == "viewer" and k["key"].startswith("slk_") and k["expires_at"], k
    assert "shown this once" in err
    assert s.get("/api/v1/datasets", headers={"Authorization": "Bearer " + k["key"]}) \
        .status_code == 200
    # the audit log shows it came through the API, by the admin key
    wait_for(lambda: any(a["method"] == "POST" and a["path"] == "/api/v1/keys"
                         for a in s.get("/api/v1/audit", headers={"Authorization": "Bearer " +
                                                                  admin}).json()["items"]),
             what="the key's creation in the audit log")

    # SLUICE_URL picks the server as well
    rc, out, err = run("keys", "list", env=dict(env, SLUICE_URL=s.url))
    assert rc == 0, err
    listed = json.loads(out)
    assert sorted(x["name"] for x in listed["items"]) == ["dash", "ops"]
    assert all("key" not in x for x in listed["items"])
    # the store way prints the same shape
    rc, out2, err = run("keys", "list", "--config", s.config_path)
    assert rc == 0 and json.loads(out2) == listed, (out2, err)

    rc, out, err = run("keys", "revoke", k["id"], "--url", s.url, env=env)
    assert rc == 0, (out, err)
    assert json.loads(out)["id"] == k["id"] and json.loads(out)["revoked_at"]
    assert s.get("/api/v1/datasets", headers={"Authorization": "Bearer " + k["key"]}) \
        .status_code == 401
    rc, out, err = run("keys", "revoke", k["id"] + "0", "--url", s.url, env=env)
    assert rc == 1 and "NOT_FOUND" in out, (rc, out, err)

    # without a token: 401 and the hint; a viewer's token: 403
    rc, out, err = run("keys", "list", "--url", s.url)
    assert rc == 1 and "SLUICE_TOKEN" in err, (rc, out, err)


def test_keys_usage_errors(server):
    for args in (("create", "--name", "x", "--role", "root", "--config", server.config_path),
                 ("create", "--name", "x", "--role", "admin", "--expires", "soon",
                  "--config", server.config_path),
                 ("list", "--url", server.url, "--config", server.config_path),
                 ("revoke", "--config", server.config_path),
                 ("revoke", "a", "b", "--config", server.config_path),
                 ("frobnicate",)):
        rc, out, err = run("keys", *args)
        assert rc == 2, (args, rc, out, err)
    rc, out, err = run("keys", "list", "--url", server.url, "--config", server.config_path)
    assert "two ways in" in err, err


# ---------------------------------------------------------------- messages say things once

def test_ndjson_line_too_large_says_the_line_once(make_server):
    s = make_server(extra_yaml="limits:\n  max_row_bytes: 1K\n")
    big = json.dumps({"id": 1, "name": "x" * 5000})
    r = s.post_events("events", big + "\n" + json.dumps({"id": 2}) + "\n")
    assert r.status_code == 207, r.text
    e = r.json()["errors"][0]
    assert e["code"] == "ROW_TOO_LARGE"
    assert e["message"] == f"line 1: the line is {len(big)} bytes; limits.max_row_bytes is 1024", e

"""`sluice doctor` (a checklist with remedies) and `sluice ready` (a readiness probe),
as an operator sees them: the lines printed and the exit code."""
import json
import os
import socket
import subprocess

import pytest

from conftest import BIN, STORE, Server, free_port


def run(*args, env=None, timeout=30):
    e = dict(os.environ)
    e.pop("SLUICE_CONFIG", None)
    e.pop("SLUICE_URL", None)
    e.update(env or {})
    p = subprocess.run([BIN, *args], capture_output=True, text=True, env=e, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def line(out, name):
    """The checklist line of one check, e.g. '[ok]   database   ...'."""
    for ln in out.splitlines():
        parts = ln.split()
        if len(parts) >= 2 and parts[0].startswith("[") and parts[1] == name:
            return ln
    raise AssertionError(f"no '{name}' line in:\n{out}")


def remedy_after(out, name):
    lines = out.splitlines()
    i = lines.index(line(out, name))
    assert i + 1 < len(lines) and lines[i + 1].strip().startswith("\u2192"), out
    return lines[i + 1].strip()


def offline(tmp_path, extra_yaml=""):
    """A config for a server that is not started (its port is free)."""
    d = tmp_path / "offline"
    d.mkdir(exist_ok=True)
    return Server(str(d), extra_yaml=extra_yaml)


def test_doctor_healthy_with_server_running(server):
    rc, out = run("doctor", "--config", server.config_path)
    assert rc == 0, out
    for name in ("config", "data_dir", "database", "migrations", "listen"):
        assert line(out, name).startswith("[ok]"), out
    assert "already serving" in line(out, "listen")
    assert "migrations current" in line(out, "migrations")
    # the conftest config turns dev_bypass on: a warning with its remedy, not a failure
    assert line(out, "auth").startswith("[warn]")
    assert "dev_bypass" in remedy_after(out, "auth")
    assert line(out, "alerts").startswith("[warn]") and "no receivers" in line(out, "alerts")


def test_doctor_yaml_error_names_file_and_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("listen: 127.0.0.1:1\nlimits:\n  max_body_bytes: lots\n")
    rc, out = run("doctor", "--config", str(cfg))
    assert rc == 1, out
    assert line(out, "config").startswith("[FAIL]")
    assert f"{cfg}:3" in line(out, "config"), out
    assert "max_body_bytes" in out
    assert "\u2192" in out


def test_doctor_data_dir_cannot_be_created(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    s = offline(tmp_path)
    text = open(s.config_path).read()
    text = text.replace(f"data_dir: {s.data_dir}", f"data_dir: {afile}/data")
    if STORE == "sqlite":  # the file follows data_dir (a PostgreSQL URL has no path)
        text = text.replace(f"storage: sqlite:{s.data_dir}/sluice.db",
                            f"storage: sqlite:{afile}/data/sluice.db")
    open(s.config_path, "w").write(text)
    rc, out = run("doctor", "--config", s.config_path)
    assert rc == 1, out
    assert line(out, "data_dir").startswith("[FAIL]")
    assert "cannot be created" in line(out, "data_dir")
    assert f"mkdir -p {afile}/data" in remedy_after(out, "data_dir")


@pytest.mark.sqlite_only("overwrites the pages of the SQLite file")
def test_doctor_corrupt_database(tmp_path):
    s = offline(tmp_path)
    # the CLI makes and migrates the store, then leaves a checkpointed file
    rc, out = run("keys", "create", "--name", "ops", "--role", "admin", "--config", s.config_path)
    assert rc == 0, out
    rc, out = run("doctor", "--config", s.config_path)
    assert line(out, "database").startswith("[ok]"), out
    assert line(out, "credentials").startswith("[ok]"), out
    for side in ("-wal", "-shm"):
        if os.path.exists(s.db_path + side):
            os.remove(s.db_path + side)
    size = os.path.getsize(s.db_path)
    assert size > 8192
    with open(s.db_path, "r+b") as f:
        f.seek(4096)
        f.write(os.urandom(size - 4096))
    rc, out = run("doctor", "--config", s.config_path)
    assert rc == 1, out
    assert line(out, "database").startswith("[FAIL]"), out
    assert "restore" in remedy_after(out, "database")


def test_doctor_port_taken_by_something_else(tmp_path):
    s = offline(tmp_path)
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", s.port))
    squatter.listen(8)
    try:
        rc, out = run("doctor", "--config", s.config_path)
    finally:
        squatter.close()
    assert rc == 1, out
    assert line(out, "listen").startswith("[FAIL]")
    assert "port in use by something else" in line(out, "listen")
    assert str(s.port) in remedy_after(out, "listen")


def test_doctor_json(tmp_path):
    s = offline(tmp_path)
    rc, out = run("doctor", "--json", "--probe", "--config", s.config_path)
    assert rc == 0, out
    doc = json.loads(out)
    assert doc["status"] == "warn"  # dev_bypass, and the database is not created yet
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["config"]["status"] == "ok"
    assert checks["config"]["remedy"] is None
    assert checks["listen"]["status"] == "ok"
    assert checks["database"]["status"] == "warn"
    assert "sluice serve" in checks["database"]["remedy"]
    assert checks["alerts"]["status"] == "warn" and "no receivers" in checks["alerts"]["detail"]
    for c in doc["checks"]:
        assert set(c) == {"name", "status", "detail", "remedy"}
        assert c["status"] in ("ok", "warn", "fail")


def test_doctor_dev_bypass_off_loopback_fails(tmp_path):
    s = offline(tmp_path)
    text = open(s.config_path).read().replace(f"listen: 127.0.0.1:{s.port}",
                                              f"listen: 0.0.0.0:{s.port}")
    open(s.config_path, "w").write(text)
    rc, out = run("doctor", "--json", "--config", s.config_path)
    assert rc == 1, out
    doc = json.loads(out)
    assert doc["status"] == "fail"
    auth = next(c for c in doc["checks"] if c["name"] == "auth")
    assert auth["status"] == "fail"
    assert "not loopback" in auth["detail"]
    assert "dev_bypass" in auth["remedy"]


def test_doctor_usage_error():
    rc, out = run("doctor", "--bogus")
    assert rc == 2
    assert "sluice doctor" in out


def test_ready(server):
    rc, out = run("ready", "--url", server.url)
    assert rc == 0, out
    assert "200" in out
    rc, out = run("ready", env={"SLUICE_URL": server.url})
    assert rc == 0, out

    closed = free_port()
    rc, out = run("ready", "--url", f"http://127.0.0.1:{closed}", "--timeout", "2")
    assert rc == 1
    assert "not ready" in out and str(closed) in out


def test_doctor_probes_alert_receivers(tmp_path):
    import http.server
    import threading
    from conftest import free_port

    class H(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(405)
            self.end_headers()

        def log_message(self, *a):
            pass

    up = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", up), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    dead = free_port()
    try:
        s = offline(tmp_path, extra_yaml=f"""
alerts:
  receivers:
    - {{name: hook, type: webhook, url: "http://127.0.0.1:{up}/hook"}}
    - {{name: am, type: alertmanager, url: "http://127.0.0.1:{dead}"}}
    - {{name: lg, type: log}}
""")
        rc, out = run("doctor", "--config", s.config_path)
        assert rc == 0 and "not probed" in out, out
        rc, out = run("doctor", "--json", "--probe", "--config", s.config_path)
        checks = {c["name"]: c for c in json.loads(out)["checks"]}
        assert rc == 1
        assert checks["alerts: hook"]["status"] == "ok"
        assert checks["alerts: am"]["status"] == "fail"
        assert f"127.0.0.1:{dead}/-/ready" in checks["alerts: am"]["detail"]
        assert checks["alerts: am"]["remedy"]
        assert checks["alerts: lg"]["status"] == "ok"
    finally:
        srv.shutdown()


def test_doctor_credentials_remedy_names_the_configuration(tmp_path):
    """No key anywhere: the remedy is a command that works as written (on this store)."""
    s = offline(tmp_path, extra_yaml="auth: {jwt: {leeway_s: 60}}\n")  # no dev_bypass, no keys
    rc, out = run("doctor", "--config", s.config_path)
    assert line(out, "credentials").startswith("[warn]"), out
    remedy = remedy_after(out, "credentials")
    assert f"sluice keys create --config {s.config_path} --name admin --role admin" in remedy, out
    # and following it makes the warning go
    cmd = remedy.lstrip("\u2192 ").split(" (")[0].split()
    assert cmd[0] == "sluice"
    rc, made = run(*cmd[1:])
    assert rc == 0, made
    rc, out = run("doctor", "--config", s.config_path)
    assert line(out, "credentials").startswith("[ok]"), out

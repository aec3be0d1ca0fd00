"""Fixtures that start the real sluice binary on a free loopback port with a fresh
data directory. SLUICE_BIN names the binary (set by `make e2e` / `make e2e-asan`)."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SLUICE_BIN", os.path.join(ROOT, "build", "sluice"))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
SANITIZED = os.environ.get("SLUICE_SANITIZED") == "1"

JUDGMENTS = """
  - name: judgments
    key: case_number
    on_duplicate: reject
    error_threshold_percent: 10
    schema:
      type: object
      required: [case_number, amount, filed_date]
      additionalProperties: false
      properties:
        case_number: {type: string, pattern: "^CASE-[0-9]{7}$"}
        amount:      {type: number, minimum: 0}
        filed_date:  {type: string, format: date}
        status:      {type: string, enum: [open, closed, pending]}
        notes:       {type: string, maxLength: 2000}
  - name: events
    schema:
      type: object
      properties:
        id: {type: integer}
        name: {type: string}
  - name: anything
    schema: {type: object}
  - name: upserts
    key: id
    on_duplicate: upsert
    schema:
      type: object
      required: [id]
      properties:
        id: {type: integer}
        v: {type: string}
  - name: skips
    key: id
    on_duplicate: skip
    schema:
      type: object
      required: [id]
      properties:
        id: {type: integer}
        v: {type: string}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """One sluice process. `extra_yaml` is appended to the generated config;
    `datasets_yaml` replaces the default datasets block."""

    def __init__(self, tmpdir, extra_yaml="", datasets_yaml=JUDGMENTS, env=None):
        self.dir = tmpdir
        self.data_dir = os.path.join(tmpdir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = os.path.join(tmpdir, "sluice.yaml")
        self.log_path = os.path.join(tmpdir, "sluice.log")
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.write_config(extra_yaml, datasets_yaml)

    def write_config(self, extra_yaml="", datasets_yaml=JUDGMENTS):
        with open(self.config_path, "w") as f:
            f.write(f"listen: 127.0.0.1:{self.port}\n")
            f.write(f"data_dir: {self.data_dir}\n")
            f.write(f"storage: sqlite:{self.data_dir}/sluice.db\n")
            f.write(extra_yaml)
            if "auth:" not in extra_yaml:  # the tests of access control set their own
                f.write("\nauth: {dev_bypass: true}\n")
            f.write("\ndatasets:\n" + datasets_yaml)

    @property
    def db_path(self):
        return os.path.join(self.data_dir, "sluice.db")

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "serve", "--config", self.config_path],
                                     stdout=self.log, stderr=self.log, env=self.env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sluice exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("sluice did not become ready:\n" + self.logs())

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self):
        out = []
        for line in self.logs().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stop and return the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    # small helpers
    def post_events(self, dataset, body, ctype="application/x-ndjson", headers=None, **kw):
        h = {"Content-Type": ctype}
        h.update(headers or {})
        if isinstance(body, (list, dict)):
            body = json.dumps(body)
        return requests.post(f"{self.url}/api/v1/datasets/{dataset}/events", data=body,
                             headers=h, timeout=kw.pop("timeout", 30), **kw)

    def get(self, path, **kw):
        return requests.get(self.url + path, timeout=kw.pop("timeout", 30), **kw)

    def post(self, path, **kw):
        return requests.post(self.url + path, timeout=kw.pop("timeout", 30), **kw)

    def delete(self, path, **kw):
        return requests.delete(self.url + path, timeout=kw.pop("timeout", 30), **kw)


@pytest.fixture
def make_server(tmp_path):
    """Factory: make_server(extra_yaml=..., datasets_yaml=...) -> started Server."""
    servers = []

    def _make(start=True, **kw):
        d = tempfile.mkdtemp(dir=tmp_path)
        s = Server(d, **kw)
        servers.append(s)
        if start:
            s.start()
        return s

    yield _make
    for s in servers:
        s.stop()
        if SANITIZED:
            logs = s.logs()
            for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                if mark in logs:
                    i = logs.index(mark)
                    pytest.fail(f"sanitizer report in the server log:\n{logs[i - 200:i + 4000]}")


@pytest.fixture
def server(make_server):
    return make_server()

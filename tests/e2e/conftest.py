"""Fixtures that start the real sluice binary on a free loopback port with a fresh
data directory. SLUICE_BIN names the binary (set by `make e2e` / `make e2e-asan`).

SLUICE_TEST_STORE picks the storage backend the servers use: "sqlite" (the default; the
database is <data_dir>/sluice.db) or "postgres" (each Server gets a fresh database
sluice_<hex>, created through the PG* environment variables - as `pg_virtualenv` sets
them - and dropped when the test ends). Tests read the stored data only through
`server.db()` (class DB below), never with sqlite3 or psycopg2 directly; a test that can
only hold on SQLite is marked `@pytest.mark.sqlite_only("why")` and skipped otherwise.

The tests run in parallel (pytest-xdist, `-n 2` in the Makefile): every server has its own
port (free_port: claimed, so no two tests of any run on this machine get the same one), its
own data directory (tmp_path) and, on PostgreSQL, its own database. A test that stops the
whole cluster (test_pg_outage.Outage, see STOPS_THE_CLUSTER) runs alone: it holds the
cluster lock exclusively, every other PostgreSQL test holds it shared (_cluster_lock)."""
import decimal
import fcntl
import inspect
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SLUICE_BIN", os.path.join(ROOT, "build", "sluice"))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
SANITIZED = os.environ.get("SLUICE_SANITIZED") == "1"
STORE = os.environ.get("SLUICE_TEST_STORE", "sqlite")
if STORE not in ("sqlite", "postgres"):
    raise pytest.UsageError(f"SLUICE_TEST_STORE={STORE!r}: expected sqlite or postgres")

# The names each store gives the column types of a dataset's fields (as DB.columns()
# reports them, lower-cased) and the types of stored values (as DB.typeof() reports them).
# Booleans are stored as integers 0/1 in both.
COLUMN_TYPES = {
    "sqlite": {"string": "text", "integer": "integer", "boolean": "integer", "number": "real"},
    "postgres": {"string": "text", "integer": "bigint", "boolean": "bigint",
                 "number": "double precision"},
}[STORE]
VALUE_TYPES = {
    "sqlite": {"string": "text", "integer": "integer", "boolean": "integer", "number": "real"},
    "postgres": {"string": "text", "integer": "bigint", "boolean": "bigint",
                 "number": "double precision"},
}[STORE]


def pytest_configure(config):
    _sweep_port_claims()
    config.addinivalue_line(
        "markers", "sqlite_only(reason): the test can only hold on the SQLite store; "
                   "skipped when SLUICE_TEST_STORE is not sqlite")


def pytest_collection_modifyitems(config, items):
    if STORE == "sqlite":
        return
    for item in items:
        m = item.get_closest_marker("sqlite_only")
        if m is not None:
            why = m.args[0] if m.args else "SQLite-specific"
            item.add_marker(pytest.mark.skip(reason=f"sqlite_only ({STORE} store): {why}"))


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


def wait_for(pred, timeout=30, what="condition"):
    """pred()'s first true value, polled every 50 ms; fails the test after timeout s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# Ports handed out, one file each (its name the port), so that two tests running at the
# same time (xdist workers, or another run on this machine) never get the same one: the
# kernel may give a port that was just closed again. A claim older than PORT_HOLD_S is stale.
PORTS_DIR = os.path.join(tempfile.gettempdir(), "sluice-e2e-ports")
PORT_HOLD_S = 600


def _sweep_port_claims():
    """Remove the stale claims (older than PORT_HOLD_S) of earlier runs."""
    try:
        names = os.listdir(PORTS_DIR)
    except OSError:
        return
    now = time.time()
    for n in names:
        try:
            if now - os.stat(os.path.join(PORTS_DIR, n)).st_mtime > PORT_HOLD_S:
                os.unlink(os.path.join(PORTS_DIR, n))
        except OSError:
            pass  # another worker removed it first


def free_port():
    """A loopback port nothing listens on, claimed for this test (see PORTS_DIR)."""
    os.makedirs(PORTS_DIR, exist_ok=True)
    for _ in range(1000):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        claim = os.path.join(PORTS_DIR, str(port))
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return port
        except FileExistsError:
            try:  # another test has it; a stale claim is cleared for later
                if time.time() - os.stat(claim).st_mtime > PORT_HOLD_S:
                    os.unlink(claim)
            except OSError:
                pass
    raise RuntimeError(f"no unclaimed free port (see {PORTS_DIR})")


# ---------------------------------------------------------------- the PostgreSQL cluster lock

# What a test's code calls to stop the cluster the PG* variables point at (every other
# test's database is on it): a test whose code names it runs while no other test runs.
STOPS_THE_CLUSTER = ("Outage(",)


def _stops_the_cluster(item):
    try:
        code = inspect.getsource(item.function)
    except (OSError, TypeError):
        return False
    return any(name in code for name in STOPS_THE_CLUSTER)


@pytest.fixture(autouse=True)
def _cluster_lock(request):
    """PostgreSQL store: held around each test, before its servers create their databases
    and after they are dropped; shared, or exclusive for a test of STOPS_THE_CLUSTER.
    Two flock(2) files per cluster: `gate` makes a waiting exclusive taker go first (a new
    shared taker passes the gate only while no exclusive one waits there)."""
    if STORE != "postgres":
        yield
        return
    tag = f"{os.environ.get('PGHOST', '')}:{os.environ.get('PGPORT', '5432')}"
    tag = re.sub(r"[^A-Za-z0-9]+", "_", tag)
    base = os.path.join(tempfile.gettempdir(), f"sluice-e2e-pg-{tag}")
    exclusive = _stops_the_cluster(request.node)
    with open(base + ".gate", "a") as gate, open(base + ".lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        if not exclusive:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)


# ---------------------------------------------------------------- PostgreSQL databases

def _pg_params():
    """libpq connection parameters from the PG* environment variables (pg_virtualenv
    sets PGHOST, PGPORT, PGUSER and PGPASSWORD); absent ones are left to libpq."""
    out = {}
    for var, key in (("PGHOST", "host"), ("PGPORT", "port"), ("PGUSER", "user"),
                     ("PGPASSWORD", "password")):
        if os.environ.get(var):
            out[key] = os.environ[var]
    return out


def pg_url(dbname):
    """postgresql:///<dbname>?host=...&port=...&user=...&password=... (libpq URL query
    parameters, percent-encoded: a socket directory or a password may hold any byte)."""
    q = "&".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in _pg_params().items())
    return f"postgresql:///{dbname}" + (f"?{q}" if q else "")


def _pg_connect(dbname, readonly=False):
    import psycopg2
    con = psycopg2.connect(dbname=dbname, connect_timeout=10, **_pg_params())
    # autocommit also for reads: no transaction of the test's may hold a lock the
    # server's DDL (CREATE / ALTER / DROP INDEX) would wait for
    con.set_session(readonly=readonly, autocommit=True)
    return con


def pg_create_database():
    """A fresh, empty database sluice_<random hex>; returns its name."""
    name = "sluice_" + secrets.token_hex(8)
    con = _pg_connect("postgres")
    try:
        with con.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        con.close()
    return name


def pg_drop_database(name):
    """Drop database `name` (if it exists) after ending every session still using it."""
    import psycopg2
    con = _pg_connect("postgres")
    try:
        with con.cursor() as cur:
            for attempt in range(50):
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                try:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                    return
                except psycopg2.errors.ObjectInUse:  # a session came back in between
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
    finally:
        con.close()


def pg_database_exists(name):
    con = _pg_connect("postgres")
    try:
        with con.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return cur.fetchone() is not None
    finally:
        con.close()


# ---------------------------------------------------------------- reading the store

_PLACEHOLDER = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|\?|%""")


def _to_pyformat(sql):
    """SQL written with `?` placeholders -> psycopg2's `%s`. A `?` inside a quoted string
    or identifier stays; every literal % is doubled (psycopg2 formats the whole text)."""
    def sub(m):
        t = m.group(0)
        return "%s" if t == "?" else t.replace("%", "%%")
    return _PLACEHOLDER.sub(sub, sql)


def _py(v):
    """Values as sqlite3 gives them: bytes for a blob, int / float for a number."""
    if isinstance(v, memoryview):
        return bytes(v)
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


class DB:
    """The store of one server, for the tests to look at (and, rarely, to change).
    SQL is written with `?` placeholders in the dialect both stores share; what differs
    (catalogs, types) has its own method. Every statement commits on its own.
    Use as `with server.db() as db: ...` or call close()."""

    def __init__(self, store, target, readonly=True):
        self.store = store
        self.readonly = readonly
        if store == "sqlite":
            if readonly:
                self.con = sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=30)
            else:
                self.con = sqlite3.connect(target, timeout=30, isolation_level=None)
        elif store == "postgres":
            self.con = _pg_connect(target, readonly=readonly)
        else:
            raise ValueError(f"unknown store {store!r}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.con is not None:
            self.con.close()
            self.con = None

    def _run(self, sql, args):
        if self.store == "sqlite":
            cur = self.con.execute(sql, tuple(args))
            return cur, cur.fetchall() if cur.description else []
        cur = self.con.cursor()
        cur.execute(_to_pyformat(sql), tuple(args))
        return cur, cur.fetchall() if cur.description else []

    def query(self, sql, args=()):
        """Rows as a list of tuples."""
        _, rows = self._run(sql, args)
        return [tuple(_py(v) for v in r) for r in rows]

    def dicts(self, sql, args=()):
        """Rows as a list of {column: value}."""
        cur, rows = self._run(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, (_py(v) for v in r))) for r in rows]

    def execute(self, sql, args=()):
        """A statement that changes data (committed at once); returns the rows changed. On
        SQLite a dataset's ds_<name> is a view whose INSTEAD OF triggers change its table,
        rows that rowcount (sqlite3_changes) leaves out: counted by total_changes instead."""
        if self.readonly:
            raise RuntimeError("DB opened read-only: server.db(readonly=False) to write")
        before = self.con.total_changes if self.store == "sqlite" else 0
        cur, _ = self._run(sql, args)
        return self.con.total_changes - before if self.store == "sqlite" else cur.rowcount

    def table_exists(self, name):
        """Whether readers can query name: on SQLite a dataset's ds_<name> is a view (of
        dsr_<name>, hiding the batches still being stored: docs/architecture.md)."""
        if self.store == "sqlite":
            q = "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?"
        else:
            q = ("SELECT 1 FROM pg_catalog.pg_tables"
                 " WHERE schemaname = current_schema() AND tablename = ?")
        return bool(self.query(q, (name,)))

    def index_exists(self, name):
        if self.store == "sqlite":
            q = "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?"
        else:
            q = ("SELECT 1 FROM pg_catalog.pg_indexes"
                 " WHERE schemaname = current_schema() AND indexname = ?")
        return bool(self.query(q, (name,)))

    def columns(self, table):
        """{column name: type name as the store reports it} ({} when no such table).
        Compare lower-cased with COLUMN_TYPES."""
        if self.store == "sqlite":
            return {r[1]: r[2] for r in self.query(f'PRAGMA table_info("{table}")')}
        return dict(self.query(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ?"
            " ORDER BY ordinal_position", (table,)))

    def typeof(self, expr):
        """A SQL expression naming the type of the value of expr (see VALUE_TYPES)."""
        return f"typeof({expr})" if self.store == "sqlite" else f"pg_typeof({expr})::text"

    def dataset_rows(self, dataset):
        """Every stored row of ds_<dataset> as dicts, oldest first ([] if no table)."""
        if not self.table_exists(f"ds_{dataset}"):
            return []
        return self.dicts(f'SELECT * FROM "ds_{dataset}" ORDER BY _id')


def sqlite_db(path, readonly=True):
    """DB on a SQLite file named by path (a server whose storage is the default one)."""
    return DB("sqlite", str(path), readonly)


# ---------------------------------------------------------------- the server

class Server:
    """One sluice process. `extra_yaml` is appended to the generated config;
    `datasets_yaml` replaces the default datasets block. With SLUICE_TEST_STORE=postgres
    (or store="postgres") it owns a fresh database (pg_dbname), dropped by destroy_store() -
    which the fixtures call when the test ends."""

    def __init__(self, tmpdir, extra_yaml="", datasets_yaml=JUDGMENTS, env=None, store=None):
        self.dir = tmpdir
        self.data_dir = os.path.join(tmpdir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = os.path.join(tmpdir, "sluice.yaml")
        self.log_path = os.path.join(tmpdir, "sluice.log")
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.store = store or STORE  # a test may pick one, e.g. an SQLite source to migrate
        self.pg_dbname = None
        if self.store == "postgres":
            self.pg_dbname = pg_create_database()
            _PG_SERVERS.append(self)
        self.write_config(extra_yaml, datasets_yaml)

    @property
    def storage_url(self):
        if self.store == "postgres":
            return pg_url(self.pg_dbname)
        return f"sqlite:{self.data_dir}/sluice.db"

    def write_config(self, extra_yaml="", datasets_yaml=JUDGMENTS):
        with open(self.config_path, "w") as f:
            f.write(f"listen: 127.0.0.1:{self.port}\n")
            f.write(f"data_dir: {self.data_dir}\n")
            f.write(f"storage: {self.storage_url}\n")
            f.write(extra_yaml)
            if "auth:" not in extra_yaml:  # the tests of access control set their own
                f.write("\nauth: {dev_bypass: true}\n")
            f.write("\ndatasets:\n" + datasets_yaml)

    @property
    def db_path(self):
        """The SQLite file (SQLite store only)."""
        if self.store != "sqlite":
            raise RuntimeError(f"db_path: the {self.store} store has no file "
                               "(use server.db(), or mark the test sqlite_only)")
        return os.path.join(self.data_dir, "sluice.db")

    def db(self, readonly=True):
        """A DB on this server's store: read-only unless readonly=False."""
        if self.store == "postgres":
            return DB("postgres", self.pg_dbname, readonly)
        return DB("sqlite", self.db_path, readonly)

    def batch_file(self, bid, size_only=False):
        """The file the store keeps for batch bid (bytes; its size with size_only), or
        None when it keeps none. SQLite: <data_dir>/batches/<id>.csv; PostgreSQL: the
        chunks of table batch_files, in order."""
        if self.store == "sqlite":
            path = os.path.join(self.data_dir, "batches", bid + ".csv")
            if not os.path.exists(path):
                return None
            if size_only:
                return os.path.getsize(path)
            with open(path, "rb") as f:
                return f.read()
        with self.db() as db:
            if size_only:
                n, size = db.query("SELECT count(*), sum(length(data)) FROM batch_files"
                                   " WHERE batch_id = ?", (bid,))[0]
                return size if n else None
            chunks = db.query("SELECT data FROM batch_files WHERE batch_id = ? ORDER BY seq",
                              (bid,))
            return b"".join(c[0] for c in chunks) if chunks else None

    def batch_file_ids(self):
        """The ids of the batches whose file the store keeps, sorted."""
        if self.store == "sqlite":
            d = os.path.join(self.data_dir, "batches")
            names = os.listdir(d) if os.path.isdir(d) else []
            return sorted(n[:-4] for n in names if n.endswith(".csv"))
        with self.db() as db:
            return [r[0] for r in db.query(
                "SELECT DISTINCT batch_id FROM batch_files ORDER BY batch_id")]

    def remove_store(self):
        """Make the store disappear (SQLite: the file and its -wal / -shm; PostgreSQL:
        the database, its sessions ended first)."""
        if self.store == "postgres":
            pg_drop_database(self.pg_dbname)
            return
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.db_path + suffix):
                os.remove(self.db_path + suffix)

    def destroy_store(self):
        """At the end of the test: drop this server's PostgreSQL database (no-op for
        SQLite, whose file goes with tmp_path)."""
        if self.store == "postgres" and self.pg_dbname is not None:
            pg_drop_database(self.pg_dbname)
            if self in _PG_SERVERS:
                _PG_SERVERS.remove(self)

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


# Servers owning a PostgreSQL database not dropped yet (also those a test made with
# Server(...) itself, without make_server).
_PG_SERVERS = []


@pytest.fixture(autouse=True)
def _drop_test_databases():
    """Drops the databases of the Servers a test made that are still there."""
    yield
    while _PG_SERVERS:
        s = _PG_SERVERS[-1]
        if s.proc is not None and s.proc.poll() is None:
            s.kill9()
        s.destroy_store()


def pytest_sessionfinish(session, exitstatus):
    """Also after an interrupted run: no database of ours outlives the session."""
    while _PG_SERVERS:
        s = _PG_SERVERS[-1]
        if s.proc is not None and s.proc.poll() is None:
            s.kill9()
        s.destroy_store()


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
        try:
            s.stop()
        finally:
            s.destroy_store()
        if SANITIZED:
            logs = s.logs()
            for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                if mark in logs:
                    i = logs.index(mark)
                    pytest.fail(f"sanitizer report in the server log:\n{logs[i - 200:i + 4000]}")


@pytest.fixture
def server(make_server):
    return make_server()

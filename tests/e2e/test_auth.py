"""Access control (issue 5): API keys and JWTs, roles, 401/403 without side effects,
key rotation under load, dev bypass, CORS and the audit log. Tokens are made here with
PyJWT and cryptography (Debian's python3-jwt)."""
import base64
import json
import os
import signal
import subprocess
import threading
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from conftest import BIN, JUDGMENTS

HS_SECRET = b"0123456789abcdef0123456789abcdef-hs256-test-secret"
NOW = lambda: int(time.time())  # noqa: E731


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    pub = lambda k: k.public_key().public_bytes(  # noqa: E731
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (d / "hs.secret").write_bytes(HS_SECRET + b"\n")
    (d / "rs.pem").write_bytes(pub(rsa_key))
    (d / "ed.pem").write_bytes(pub(ed_key))
    nums = ec_key.public_key().public_numbers()
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "ES256",
                      "x": b64u(nums.x.to_bytes(32, "big")), "y": b64u(nums.y.to_bytes(32, "big"))},
                     {"kty": "oct", "kid": "rfc7515", "alg": "HS256",
                      "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}
    (d / "jwks.json").write_text(json.dumps(jwks))
    return {"dir": d, "rsa": rsa_key, "ec": ec_key, "ed": ed_key, "rs_pem": pub(rsa_key)}


def auth_yaml(keys, extra=""):
    d = keys["dir"]
    return f"""
auth:
  jwt:
    issuer: https://id.example.com
    audience: sluice
    keys:
      - {{kid: hs-2025, algorithms: [HS256], secret_file: {d}/hs.secret}}
      - {{kid: rs-2025, algorithms: [RS256, PS256], public_key_file: {d}/rs.pem}}
      - {{kid: ed-2025, algorithms: [EdDSA], public_key_file: {d}/ed.pem}}
      - {{jwks_file: {d}/jwks.json}}
{extra}"""


def claims(**kw):
    c = {"iss": "https://id.example.com", "aud": "sluice", "sub": "alice", "exp": NOW() + 300,
         "iat": NOW(), "role": "operator"}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def tok(keys, alg="HS256", kid="hs-2025", headers=None, **kw):
    key = {"HS256": HS_SECRET, "RS256": keys["rsa"], "PS256": keys["rsa"], "ES256": keys["ec"],
           "EdDSA": keys["ed"]}[alg]
    h = dict(headers or {})
    if kid:
        h["kid"] = kid
    return jwt.encode(claims(**kw), key, algorithm=alg, headers=h)


def bearer(t):
    return {"Authorization": f"Bearer {t}"}


ROW = {"case_number": "CASE-0000001", "amount": 1, "filed_date": "2024-01-01"}


def rows(server):
    with server.db() as db:
        if not db.table_exists("ds_judgments"):
            return 0
        return db.query("SELECT COUNT(*) FROM ds_judgments")[0][0]


def cli_key(server, name, role, *extra):
    r = subprocess.run([BIN, "keys", "create", "--config", server.config_path, "--name", name,
                        "--role", role, *extra], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def srv(make_server, keys):
    return make_server(extra_yaml=auth_yaml(keys))


# ---------------------------------------------------------------- who may do what

def test_open_routes_and_401_without_credentials(srv):
    for path in ("/healthz", "/health/live", "/health/ready", "/metrics"):
        assert srv.get(path).status_code == 200, path  # /metrics: loopback listener
    for method, path in (("GET", "/api/v1/datasets"), ("GET", "/api/v1/batches"),
                         ("GET", "/api/v1/dlq"), ("GET", "/api/v1/keys"),
                         ("GET", "/health/detailed")):
        r = requests.request(method, srv.url + path, timeout=30)
        assert r.status_code == 401, (path, r.text)
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"], r.headers
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "UNAUTHORIZED"
    # a refused request with a body changes nothing: no row, no idempotency key, no batch
    h = {"Idempotency-Key": "k-1", "Authorization": "Bearer nope"}
    r = srv.post_events("judgments", [ROW], ctype="application/json", headers=h)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    r = requests.post(srv.url + "/api/v1/datasets/judgments/batches", data=b"a,b\n1,2\n" * 1000,
                      headers={"Content-Type": "text/csv"}, timeout=30)
    assert r.status_code == 401
    assert rows(srv) == 0
    bdir = os.path.join(srv.data_dir, "batches")
    assert not os.path.isdir(bdir) or os.listdir(bdir) == [], os.listdir(bdir)


def test_roles_with_api_keys(srv):
    viewer = cli_key(srv, "dash", "viewer")["key"]
    ingest = cli_key(srv, "app", "ingest")["key"]
    operator = cli_key(srv, "ops", "operator")["key"]
    admin = cli_key(srv, "root", "admin")
    assert admin["key"].startswith("slk_") and admin["prefix"] == admin["key"][:12]
    v, i, o, a = (bearer(k) for k in (viewer, ingest, operator, admin["key"]))

    assert srv.get("/api/v1/datasets", headers=v).status_code == 200
    r = srv.post_events("judgments", [ROW], ctype="application/json", headers=v)
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert srv.post_events("judgments", [ROW], ctype="application/json",
                           headers=i).status_code == 200
    assert srv.get("/api/v1/batches", headers=i).status_code == 403  # ingest cannot read
    assert srv.get("/api/v1/batches", headers=o).status_code == 200
    assert srv.post("/api/v1/dlq/retry", json={"dataset": "judgments"},
                    headers=o).status_code == 200
    assert srv.post("/api/v1/dlq/retry", json={}, headers=v).status_code == 403
    assert srv.get("/api/v1/keys", headers=o).status_code == 403
    listed = srv.get("/api/v1/keys", headers=a).json()["items"]
    assert {k["name"] for k in listed} == {"dash", "app", "ops", "root"}
    assert all("key" not in k and k["prefix"].startswith("slk_") for k in listed)
    assert viewer not in json.dumps(listed)
    assert rows(srv) == 1


def test_key_lifecycle_revoke_expire_and_api(srv):
    admin = bearer(cli_key(srv, "root", "admin")["key"])
    r = srv.post("/api/v1/keys", json={"name": "ci", "role": "ingest", "expires_in": "90d"},
                 headers=admin)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["key"].startswith("slk_") and made["expires_at"] and made["role"] == "ingest"
    k = bearer(made["key"])
    assert srv.post_events("judgments", [ROW], ctype="application/json",
                           headers=k).status_code == 200
    assert srv.post("/api/v1/keys", json={"name": "x", "role": "root"},
                    headers=admin).status_code == 400
    assert srv.delete(f"/api/v1/keys/{made['id']}", headers=admin).status_code == 200
    r = srv.post_events("judgments", [ROW], ctype="application/json", headers=k)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert srv.delete("/api/v1/keys/ffffffffffffffff", headers=admin).status_code == 404
    short = cli_key(srv, "short", "viewer", "--expires", "1s")["key"]
    time.sleep(1.5)
    r = srv.get("/api/v1/datasets", headers=bearer(short))
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    # a forged key with a real id and a wrong secret
    forged = made["key"][:21] + ("A" if made["key"][21] != "A" else "B") + made["key"][22:]
    assert srv.get("/api/v1/datasets", headers=bearer(forged)).status_code == 401
    out = subprocess.run([BIN, "keys", "list", "--config", srv.config_path], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and made["key"] not in out.stdout
    assert {x["name"] for x in json.loads(out.stdout)["items"]} >= {"root", "ci", "short"}


# ---------------------------------------------------------------- JWT

def test_valid_jwts_of_each_family(srv, keys):
    for alg, kid in (("HS256", "hs-2025"), ("RS256", "rs-2025"), ("PS256", "rs-2025"),
                     ("ES256", "ec-1"), ("EdDSA", "ed-2025"), ("ES256", None),
                     ("HS256", None)):
        r = srv.get("/api/v1/batches", headers=bearer(tok(keys, alg, kid)))
        assert r.status_code == 200, (alg, kid, r.text)
    # the role claim decides; without it the default role (ingest)
    assert srv.get("/api/v1/batches",
                   headers=bearer(tok(keys, role="viewer"))).status_code == 200
    assert srv.post_events("judgments", [ROW], ctype="application/json",
                           headers=bearer(tok(keys, role="viewer"))).status_code == 403
    t = tok(keys, role=None)
    assert srv.get("/api/v1/batches", headers=bearer(t)).status_code == 403
    assert srv.post_events("judgments", [ROW], ctype="application/json",
                           headers=bearer(t)).status_code == 200
    assert srv.get("/api/v1/batches",
                   headers=bearer(tok(keys, role="superuser"))).status_code == 403
    # aud as an array
    assert srv.get("/api/v1/batches",
                   headers=bearer(tok(keys, aud=["other", "sluice"]))).status_code == 200


def rejected_tokens(keys):
    good = tok(keys)
    h, p, s = good.split(".")
    enc = lambda o: b64u(json.dumps(o).encode())  # noqa: E731
    hs_hdr = {"alg": "HS256", "typ": "JWT", "kid": "hs-2025"}
    import hashlib
    import hmac as hm

    def sign_hs(header, payload, key=HS_SECRET):
        si = enc(header) + "." + enc(payload)
        return si + "." + b64u(hm.new(key, si.encode(), hashlib.sha256).digest())

    yield "alg none", enc({"alg": "none"}) + "." + p + "."
    yield "alg None with signature", enc({"alg": "None", "kid": "hs-2025"}) + "." + p + "." + s
    yield "alg not allowed for the key", tok(keys, "RS256", "hs-2025")
    # HS256 signed with the RSA public key's PEM as the secret (alg confusion)
    yield "hs256 with the rsa pem", sign_hs({"alg": "HS256", "kid": "rs-2025"}, claims(),
                                            keys["rs_pem"])
    yield "hs256 with the rsa pem, no kid", sign_hs({"alg": "HS256"}, claims(), keys["rs_pem"])
    yield "rs token against an ec key", tok(keys, "RS256", "ec-1")
    yield "bad signature", h + "." + p + "." + s[:-4] + ("AAAA" if s[-4:] != "AAAA" else "BBBB")
    yield "stripped signature", h + "." + p + "."
    yield "padding", good + "=="
    yield "characters outside the alphabet", h + "." + p + "." + s.replace(s[0], "+", 1)
    yield "extra segment", good + ".e30"
    yield "missing segment", h + "." + p
    yield "header not an object", enc([1]) + "." + p + "." + s
    yield "payload not an object", sign_hs(hs_hdr, claims()).rsplit(".", 2)[0] + "." + \
        enc("x") + "." + s
    yield "duplicate header member", b64u(
        b'{"alg":"HS256","alg":"HS256","kid":"hs-2025"}') + "." + p + "." + s
    yield "unknown crit", sign_hs(dict(hs_hdr, crit=["exp"]), claims())
    yield "jku header", sign_hs(dict(hs_hdr, jku="https://evil.example/jwks"), claims())
    yield "x5u header", sign_hs(dict(hs_hdr, x5u="https://evil.example/cert"), claims())
    yield "jwk header", sign_hs(dict(hs_hdr, jwk={"kty": "oct", "k": "AA"}), claims())
    yield "unknown kid", tok(keys, kid="nobody")
    yield "exp not a number", sign_hs(hs_hdr, claims(exp=str(NOW() + 300)))
    yield "nbf not a number", sign_hs(hs_hdr, claims(nbf="soon"))
    yield "expired", tok(keys, exp=NOW() - 120)
    yield "not yet valid", tok(keys, nbf=NOW() + 600)
    yield "issued in the future", tok(keys, iat=NOW() + 600)
    yield "no exp", tok(keys, exp=None)
    yield "wrong iss", tok(keys, iss="https://evil.example.com")
    yield "wrong aud", tok(keys, aud="someone-else")
    yield "over 8 KiB", tok(keys, pad="x" * 9000)


REJECTIONS = ["alg none", "alg None with signature", "alg not allowed for the key",
              "hs256 with the rsa pem", "hs256 with the rsa pem, no kid",
              "rs token against an ec key", "bad signature", "stripped signature", "padding",
              "characters outside the alphabet", "extra segment", "missing segment",
              "header not an object", "payload not an object", "duplicate header member",
              "unknown crit", "jku header", "x5u header", "jwk header", "unknown kid",
              "exp not a number", "nbf not a number", "expired", "not yet valid",
              "issued in the future", "no exp", "wrong iss", "wrong aud", "over 8 KiB"]


def test_the_rejection_list_is_complete(keys):
    assert [name for name, _ in rejected_tokens(keys)] == REJECTIONS


@pytest.mark.parametrize("case", REJECTIONS)
def test_bad_jwt_is_401_and_changes_nothing(srv, keys, case):
    t = dict(rejected_tokens(keys))[case]
    h = {"Idempotency-Key": "same-key", "Authorization": f"Bearer {t}"}
    r = srv.post_events("judgments", [ROW], ctype="application/json", headers=h)
    assert r.status_code in (401, 431), (r.status_code, r.text)
    if r.status_code == 401:
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
        assert r.json()["error"]["code"] == "UNAUTHORIZED"
    assert t not in srv.logs(), "the token was logged"
    assert rows(srv) == 0
    # the idempotency key was never used: a good request with it stores the row
    r = srv.post_events("judgments", [ROW], ctype="application/json",
                        headers={"Idempotency-Key": "same-key", **bearer(tok(keys))})
    assert r.status_code == 200 and r.headers.get("Idempotent-Replayed") != "true", r.text
    assert rows(srv) == 1
    assert 'sluice_auth_failures_total{reason="jwt_invalid"} 1\n' in srv.get("/metrics").text


def test_rfc7515_examples(srv):
    a1 = ("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
          "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
          "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    r = srv.get("/api/v1/datasets", headers=bearer(a1))
    # the signature verifies with the published key (in jwks.json): it fails as expired
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"], r.text
    a5 = ("eyJhbGciOiJub25lIn0."
          "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.")
    assert srv.get("/api/v1/datasets", headers=bearer(a5)).status_code == 401


# ---------------------------------------------------------------- rotation under load

def load(server, get_token, stop, failures, count):
    s = requests.Session()
    i = 0
    while not stop.is_set():
        i += 1
        r = s.post(server.url + "/api/v1/datasets/events/events", json={"id": i},
                   headers=bearer(get_token()), timeout=30)
        count.append(1)
        if r.status_code != 200:
            failures.append((r.status_code, r.text))


def test_api_key_rotation_without_a_failed_request(srv):
    old = cli_key(srv, "app-v1", "ingest")
    current = {"t": old["key"]}
    stop, failures, count = threading.Event(), [], []
    th = threading.Thread(target=load, args=(srv, lambda: current["t"], stop, failures, count))
    th.start()
    try:
        time.sleep(0.5)
        new = cli_key(srv, "app-v2", "ingest")   # 1. create the new key
        time.sleep(0.3)
        current["t"] = new["key"]                 # 2. deploy it
        time.sleep(0.3)
        r = subprocess.run([BIN, "keys", "revoke", old["id"], "--config", srv.config_path],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr        # 3. revoke the old one
        time.sleep(0.5)
    finally:
        stop.set()
        th.join()
    assert failures == [] and len(count) > 20, (failures[:3], len(count))
    assert srv.get("/api/v1/datasets", headers=bearer(old["key"])).status_code == 401


def test_jwt_key_rotation_by_reload(make_server, keys, tmp_path):
    k2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "rs2.pem").write_bytes(k2.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    base = f"""
auth:
  jwt:
    keys:
      - {{kid: rs-2025, algorithms: [RS256], public_key_file: {keys['dir']}/rs.pem}}
"""
    added = base + f"      - {{kid: rs-2026, algorithms: [RS256], public_key_file: {tmp_path}/rs2.pem}}\n"
    only_new = f"""
auth:
  jwt:
    keys:
      - {{kid: rs-2026, algorithms: [RS256], public_key_file: {tmp_path}/rs2.pem}}
"""
    server = make_server(extra_yaml=base)
    c = {"role": "admin", "iss": None, "aud": None}
    t_old = jwt.encode(claims(**c), keys["rsa"], algorithm="RS256", headers={"kid": "rs-2025"})
    t_new = jwt.encode(claims(**c), k2, algorithm="RS256", headers={"kid": "rs-2026"})
    current = {"t": t_old}
    stop, failures, count = threading.Event(), [], []
    th = threading.Thread(target=load, args=(server, lambda: current["t"], stop, failures, count))
    th.start()
    try:
        assert server.get("/api/v1/datasets", headers=bearer(t_new)).status_code == 401
        server.write_config(extra_yaml=added)
        r = subprocess.run([BIN, "reload", "--url", server.url], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, SLUICE_TOKEN=t_old))
        assert r.returncode == 0, r.stdout + r.stderr
        deadline = time.time() + 10
        while server.get("/api/v1/datasets", headers=bearer(t_new)).status_code != 200:
            assert time.time() < deadline, "the new kid was not accepted after the reload"
            time.sleep(0.05)
        current["t"] = t_new
        time.sleep(0.3)
        server.write_config(extra_yaml=only_new)
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while server.get("/api/v1/datasets", headers=bearer(t_old)).status_code != 401:
            assert time.time() < deadline, "the old kid is still accepted"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        th.join()
    assert failures == [] and len(count) > 20, (failures[:3], len(count))


# ---------------------------------------------------------------- bypass, metrics, CORS, audit

def test_dev_bypass_only_on_loopback(make_server):
    s = make_server(start=False, extra_yaml="auth: {dev_bypass: true}\n")
    s.write_config(extra_yaml="auth: {dev_bypass: true}\n")
    with open(s.config_path) as f:
        text = f.read().replace("listen: 127.0.0.1:", "listen: 0.0.0.0:")
    with open(s.config_path, "w") as f:
        f.write(text)
    r = subprocess.run([BIN, "serve", "--config", s.config_path], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0 and "dev_bypass" in r.stderr and "loopback" in r.stderr, r.stderr
    # the environment variable turns it on too (on loopback)
    s2 = make_server(extra_yaml="auth: {jwt: {leeway_s: 60}}\n",  # no dev_bypass in the file
                     env={"SLUICE_DEV_AUTH_BYPASS": "true"})
    assert s2.get("/api/v1/datasets").status_code == 200
    d = s2.get("/health/detailed").json()
    assert any(c["name"] == "auth" and c["status"] == "warn" for c in d["checks"]), d
    assert "authentication is OFF" in s2.logs()


def test_metrics_can_require_a_token(make_server, keys):
    s = make_server(extra_yaml=auth_yaml(keys, "  metrics: token\n"))
    assert s.get("/metrics").status_code == 401
    assert s.get("/metrics", headers=bearer(tok(keys, role="viewer"))).status_code == 200


def test_cors(make_server, keys):
    s = make_server(extra_yaml=auth_yaml(keys) + "cors: {allowed_origins: [https://console.example.com]}\n")
    pre = {"Origin": "https://console.example.com", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}
    r = requests.options(s.url + "/api/v1/datasets/judgments/events", headers=pre, timeout=30)
    assert r.status_code == 204, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "https://console.example.com"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    assert "Origin" in r.headers.get("Vary", "")
    r = requests.options(s.url + "/api/v1/datasets/judgments/events",
                         headers=dict(pre, Origin="https://evil.example.com"), timeout=30)
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers
    r = s.get("/api/v1/datasets", headers={"Origin": "https://console.example.com",
                                           **bearer(tok(keys))})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "https://console.example.com"
    r = s.get("/api/v1/datasets", headers={"Origin": "https://evil.example.com",
                                           **bearer(tok(keys))})
    assert "Access-Control-Allow-Origin" not in r.headers
    for r in (s.get("/healthz", headers={"Origin": "https://console.example.com"}),):
        assert r.headers.get("Access-Control-Allow-Origin") != "*"


def test_audit_log(srv, keys):
    admin = cli_key(srv, "root", "admin")
    ingest = cli_key(srv, "app", "ingest")
    r = srv.post_events("judgments", [ROW], ctype="application/json",
                        headers={**bearer(ingest["key"]), "X-Request-Id": "audit-1"})
    assert r.status_code == 200
    srv.post_events("judgments", [ROW], ctype="application/json",
                    headers=bearer(tok(keys, sub="bob")))
    srv.get("/api/v1/datasets", headers=bearer(admin["key"]))  # a read: not audited
    srv.post_events("judgments", [ROW], ctype="application/json")  # 401: not audited
    deadline = time.time() + 10
    while True:
        items = srv.get("/api/v1/audit", params={"order": "asc"},
                        headers=bearer(admin["key"])).json()["items"]
        if len(items) >= 2 or time.time() > deadline:
            break
        time.sleep(0.05)
    assert [(e["actor"], e["method"], e["status"]) for e in items] == \
        [(f"key:{ingest['id']}", "POST", 200), ("jwt:bob", "POST", 422)], items
    first = items[0]
    assert first["path"] == "/api/v1/datasets/judgments/events"
    assert first["remote"] == "127.0.0.1" and first["request_id"] == "audit-1"
    assert first["role"] == "ingest" and first["at"].endswith("Z")
    f = srv.get("/api/v1/audit", params={"actor": "jwt:bob"}, headers=bearer(admin["key"]))
    assert [e["actor"] for e in f.json()["items"]] == ["jwt:bob"]
    page = srv.get("/api/v1/audit", params={"limit": 1, "order": "asc"},
                   headers=bearer(admin["key"])).json()
    assert [e["id"] for e in page["items"]] == [first["id"]] and page["next_cursor"]
    page = srv.get("/api/v1/audit", params={"limit": 1, "order": "asc", "cursor":
                   page["next_cursor"]}, headers=bearer(admin["key"])).json()
    assert [e["id"] for e in page["items"]] == [items[1]["id"]]
    newest = srv.get("/api/v1/audit", headers=bearer(admin["key"])).json()["items"]
    assert [e["id"] for e in newest] == sorted((e["id"] for e in newest), reverse=True)
    assert newest[-1]["id"] == first["id"]  # newest first by default
    assert srv.get("/api/v1/audit", headers=bearer(ingest["key"])).status_code == 403

"""A mesh for the security tests, built from the demo's data: users, a static token, a JWT
issuer (RS256 keys in a JWKS file), the demo's grants and row filter, all three masks, an audit
log, and a seeded canary customer that no restricted principal may ever see. Also the
certificates for the mutual-TLS gateway."""

import datetime
import hashlib
import hmac
import json
import os
import pathlib
import shutil
import signal
import socket
import sqlite3
import subprocess
import time

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from conftest import BIN, ROOT

PASSWORDS = {
    "platform": ("platform-pw", ["admins", "analysts", "pii-readers", "finance"]),
    "analyst": ("analyst-pw", ["analysts"]),
    "pii_reader": ("pii-reader-pw", ["analysts", "pii-readers"]),
    "emea_analyst": ("emea-pw", ["analysts", "emea"]),
    "outsider": ("outsider-pw", ["partners"]),
}
ISSUER = "https://idp.test/"
AUDIENCE = "meshgate"
MASK_KEY = "security-test-mask-key"
CANARY = "CANARY7731"
CANARY_BALANCE = 98765.43
CANARY_KEY = 999999
EMEA = (6, 7, 19, 22, 23)


def cli(*args, stdin=None):
    r = subprocess.run([BIN, *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def mask_key():
    return hashlib.sha256(b"meshgate mask key v1" + MASK_KEY.encode()).digest()


def mask_hash(v):
    """The gateway's `hash` mask of a string."""
    if v is None:
        return None
    return hmac.new(mask_key(), v.encode(), hashlib.sha256).digest()[:16].hex()


def mask_partial(v):
    if v is None:
        return None
    return "*" * len(v) if len(v) <= 4 else "*" * (len(v) - 4) + v[-4:]


def admin_auth_yaml(password="admin-pw"):
    """`auth` and `policies` of a test mesh: user `admin` (in the admin group, so it may
    EXPLAIN) with `password`, and every product readable."""
    pw_hash = cli("hash-password", stdin=password + "\n")
    return f"""auth:
  users:
    - {{ name: admin, password_hash: "{pw_hash}", groups: [admins] }}
  admin_groups: [admins]
policies: {{ default_access: allow }}
"""


def fetchall(addr, sql, user=None, password=None):
    """Rows of `sql` run with ADBC on the gateway at `addr`, as `user` when given."""
    import adbc_driver_flightsql.dbapi as flightsql

    kwargs = {"username": user, "password": password} if user else {}
    with flightsql.connect(f"grpc://{addr}", db_kwargs=kwargs) as c:
        cur = c.cursor()
        cur.execute(sql)
        return cur.fetchall()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Keys:
    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())

    def jwks(self):
        keys = []
        for kid, key, alg in [("rsa1", self.rsa, jwt.algorithms.RSAAlgorithm), ("ec1", self.ec, jwt.algorithms.ECAlgorithm)]:
            k = json.loads(alg.to_jwk(key.public_key()))
            k["kid"] = kid
            keys.append(k)
        return {"keys": keys}

    def token(self, sub="jwt-analyst", groups=("analysts",), aud=AUDIENCE, iss=ISSUER, exp_in=300, nbf_in=None,
              key=None, kid="rsa1", alg="RS256"):
        now = int(time.time())
        claims = {"sub": sub, "groups": list(groups), "aud": aud, "iss": iss, "iat": now, "exp": now + exp_in}
        if nbf_in is not None:
            claims["nbf"] = now + nbf_in
        return jwt.encode(claims, key or self.rsa, algorithm=alg, headers={"kid": kid})


def unsigned_token(sub="jwt-analyst"):
    """An `alg: none` JWT."""
    import base64

    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return b64({"alg": "none", "typ": "JWT"}) + "." + b64(
        {"sub": sub, "groups": ["admins", "analysts"], "aud": AUDIENCE, "iss": ISSUER, "exp": now + 300}) + "."


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject_cn, issuer_cn, key, issuer_key, ca=False, server=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject_cn)).issuer_name(_name(issuer_cn))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        import ipaddress
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
    return b.sign(issuer_key, hashes.SHA256())


def pem_cert(c):
    return c.public_bytes(serialization.Encoding.PEM)


def pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class Pki:
    """A CA, a server certificate, a client certificate of that CA and one of a foreign CA."""

    def __init__(self, d: pathlib.Path):
        mk = lambda: ec.generate_private_key(ec.SECP256R1())
        self.ca_key, self.other_ca_key = mk(), mk()
        self.ca = _cert("meshgate test CA", "meshgate test CA", self.ca_key, self.ca_key, ca=True)
        other_ca = _cert("foreign CA", "foreign CA", self.other_ca_key, self.other_ca_key, ca=True)
        self.server_key, self.client_key, self.foreign_key = mk(), mk(), mk()
        self.server = _cert("localhost", "meshgate test CA", self.server_key, self.ca_key, server=True)
        self.client = _cert("etl-robot", "meshgate test CA", self.client_key, self.ca_key)
        self.foreign = _cert("etl-robot", "foreign CA", self.foreign_key, self.other_ca_key)
        d.mkdir(parents=True, exist_ok=True)
        (d / "ca.pem").write_bytes(pem_cert(self.ca))
        (d / "server.pem").write_bytes(pem_cert(self.server))
        (d / "server.key").write_bytes(pem_key(self.server_key))
        self.ca_pem = pem_cert(self.ca)
        self.client_pem, self.client_key_pem = pem_cert(self.client), pem_key(self.client_key)
        self.foreign_pem, self.foreign_key_pem = pem_cert(self.foreign), pem_key(self.foreign_key)


def build_mesh(demo: pathlib.Path, d: pathlib.Path, keys: Keys, pki: Pki, tls: bool):
    """Writes the security mesh to `d`; returns the static token."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "data").mkdir(exist_ok=True)
    db = d / "data" / "crm.sqlite"
    shutil.copy(demo / "data" / "customers" / "crm.sqlite", db)
    conn = sqlite3.connect(db)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(customer)")]
    row = {"c_custkey": CANARY_KEY, "c_name": CANARY + "-NAME", "c_address": CANARY + "-ADDR",
           "c_nationkey": 1, "c_phone": CANARY + "-PHONE", "c_acctbal": CANARY_BALANCE,
           "c_mktsegment": "BUILDING", "c_comment": "an ordinary comment"}
    conn.execute(f"INSERT INTO customer ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                 [row[c] for c in cols])
    conn.commit()
    conn.close()
    (d / "secrets").mkdir(exist_ok=True)
    (d / "secrets" / "mask.key").write_text(MASK_KEY + "\n")
    (d / "jwks.json").write_text(json.dumps(keys.jwks()))
    token_out = cli("new-token", "--name", "nightly-etl")
    token = token_out.splitlines()[0].split(": ", 1)[1]
    token_hash = token_out.splitlines()[1].split(": ", 1)[1]
    users = "\n".join(
        f'    - {{ name: {u}, password_hash: "{cli("hash-password", stdin=pw)}", groups: [{", ".join(g)}] }}'
        for u, (pw, g) in PASSWORDS.items())
    tls_yaml = ""
    if tls:
        tls_yaml = f"""  tls:
    cert_file: {pki_dir(d)}/server.pem
    key_file: {pki_dir(d)}/server.key
    client_ca_file: {pki_dir(d)}/ca.pem
    require_client_cert: true
    client_groups: {{ etl-robot: [analysts] }}
"""
    (d / "mesh.yaml").write_text(f"""apiVersion: meshgate/v1
kind: Mesh
name: security
sources:
  - {{ name: sales_lake, kind: files, options: {{ url: "file://{demo}/data/sales/" }} }}
  - {{ name: crm_db, kind: sqlite, options: {{ path: data/crm.sqlite }} }}
  - {{ name: supply_exports, kind: files, options: {{ url: "file://{demo}/data/supply/" }} }}
auth:
  users:
{users}
  tokens:
    - {{ name: nightly-etl, token_hash: "{token_hash}", groups: [pipelines] }}
  jwt:
    issuer: {ISSUER}
    audience: {AUDIENCE}
    jwks_file: jwks.json
    groups_claim: groups
  admin_groups: [admins]
  session_ttl_s: 600
{tls_yaml}policies:
  default_access: deny
  hash_key: {{ file: secrets/mask.key }}
  classifications:
    pii: {{ mask: hash, unmask_groups: [pii-readers] }}
    contact: {{ mask: partial, unmask_groups: [pii-readers] }}
    confidential: {{ mask: redact, unmask_groups: [finance] }}
audit:
  file: audit.log
""")
    for rel in ["domains/sales/orders.yaml", "domains/customers/crm.yaml", "domains/supply/catalog.yaml"]:
        text = (demo / rel).read_text()
        if rel.endswith("crm.yaml"):
            # The phone keeps its last 4 digits here, to exercise the `partial` mask.
            text = text.replace("description: Phone number., classification: pii", "description: Phone number., classification: contact")
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return token


def pki_dir(d):
    return d.parent / "pki"


class Server:
    def __init__(self, mesh_dir: pathlib.Path, extra=()):
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.http_port = free_port()
        self.http = f"http://127.0.0.1:{self.http_port}"
        self.log_path = mesh_dir / "meshgate.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--config", str(mesh_dir), "--flight-addr", self.addr,
             "--http-addr", f"127.0.0.1:{self.http_port}", *extra],
            stdout=subprocess.DEVNULL, stderr=self.log, text=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if "serving Flight SQL" in self.log_path.read_text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError("meshgate did not start:\n" + self.log_path.read_text())
            time.sleep(0.1)
        raise RuntimeError("meshgate did not start in time:\n" + self.log_path.read_text())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()

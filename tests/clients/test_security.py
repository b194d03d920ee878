"""Access control with real clients: every way to authenticate and its failures, visibility,
PermissionDenied, masks and row filters over many query shapes checked against a reference
that pre-masks and pre-filters the data (with a canary that must never show), ticket and
handle forgery, the audit log, and no secret in any log line."""

import base64
import json
import time

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from google.protobuf import any_pb2

import flightsql.flightsql_pb2 as pb
import security_mesh as sm
from conftest import read_source, arrow_type
from normalize import assert_same_rows

import yaml


@pytest.fixture(scope="module")
def secure(gateway, tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    keys = sm.Keys()
    pki = sm.Pki(root / "pki")
    token = sm.build_mesh(gateway["data"], root / "mesh", keys, pki, tls=False)
    server = sm.Server(root / "mesh", extra=["--ticket-ttl-s", "4"])
    yield {"addr": server.addr, "uri": f"grpc://{server.addr}", "dir": root / "mesh", "keys": keys,
           "token": token, "server": server, "pki": pki, "root": root, "demo": gateway["data"]}
    server.stop()


@pytest.fixture(scope="module")
def tls_gateway(secure):
    root = secure["root"]
    sm.build_mesh(secure["demo"], root / "tls-mesh", secure["keys"], secure["pki"], tls=True)
    server = sm.Server(root / "tls-mesh")
    yield {"addr": server.addr, "pki": secure["pki"]}
    server.stop()


def connect(secure, user=None, password=None, header=None):
    kw = {}
    if user is not None:
        kw = {"username": user, "password": password}
    if header is not None:
        kw = {adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: header}
    return flightsql.connect(secure["uri"], db_kwargs=kw)


def as_user(secure, user):
    return connect(secure, user, sm.PASSWORDS[user][0])


def query(conn, sql, params=None):
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return cur.fetch_arrow_table()
    finally:
        cur.close()


def raw_client(secure):
    return fl.FlightClient(f"grpc+tcp://{secure['addr']}")


def basic_options(client, user):
    header = client.authenticate_basic_token(user, sm.PASSWORDS[user][0])
    return fl.FlightCallOptions(headers=[header])


def bearer(value):
    return fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {value}".encode())])


def statement_info(client, sql, opts):
    cmd = pb.CommandStatementQuery(query=sql)
    a = any_pb2.Any()
    a.Pack(cmd, type_url_prefix="type.googleapis.com/")
    return client.get_flight_info(fl.FlightDescriptor.for_command(a.SerializeToString()), opts)


def audit(secure):
    return [json.loads(line) for line in (secure["dir"] / "audit.log").read_text().splitlines()]


# ---------------------------------------------------------------------------------------------
# Authentication


def test_basic_users_and_wrong_passwords(secure):
    with as_user(secure, "analyst") as c:
        assert query(c, "SELECT count(*) AS n FROM customers.crm.region").column("n")[0].as_py() == 5
    for user, pw in [("analyst", "wrong"), ("nobody", "x"), ("analyst", "")]:
        with pytest.raises(Exception, match="UNAUTHENTICATED"):
            connect(secure, user, pw).close()


def test_basic_without_padding_and_session_tokens(secure):
    client = raw_client(secure)
    # "platform:platform-pw" is 20 bytes: its base64 ends in `=`; the Go driver sends none.
    creds = base64.b64encode(b"platform:platform-pw").decode().rstrip("=")
    assert len(creds) % 4 != 0
    opts = fl.FlightCallOptions(headers=[(b"authorization", f"Basic {creds}".encode())])
    info = statement_info(client, "SELECT 1 AS x", opts)
    assert client.do_get(info.endpoints[0].ticket, opts).read_all().num_rows == 1
    header = client.authenticate_basic_token("analyst", "analyst-pw")
    assert header[1].startswith(b"Bearer mgs.")
    session = header[1].decode().split(" ", 1)[1]
    info = statement_info(client, "SELECT 1 AS x", bearer(session))
    # A flipped character anywhere in the token is refused.
    for i in (5, len(session) // 2, len(session) - 2):
        flipped = session[:i] + ("A" if session[i] != "A" else "B") + session[i + 1:]
        with pytest.raises(fl.FlightUnauthenticatedError):
            statement_info(client, "SELECT 1 AS x", bearer(flipped))
    with pytest.raises(fl.FlightUnauthenticatedError):
        statement_info(client, "SELECT 1 AS x", fl.FlightCallOptions())
    with pytest.raises(fl.FlightUnauthenticatedError):
        statement_info(client, "SELECT 1 AS x", fl.FlightCallOptions(headers=[(b"authorization", b"Digest abc")]))
    client.close()


def test_static_token(secure):
    with connect(secure, header=f"Bearer {secure['token']}") as c:
        assert query(c, "SELECT count(*) AS n FROM supply.catalog.part").column("n")[0].as_py() > 0
    with pytest.raises(Exception, match="UNAUTHENTICATED"):
        with connect(secure, header="Bearer mgt_not-a-real-token") as c:
            query(c, "SELECT 1 AS x")


def test_jwt_paths(secure):
    keys = secure["keys"]
    good = keys.token()
    with connect(secure, header=f"Bearer {good}") as c:
        # Groups come from the claim: analysts read the customers product (masked).
        t = query(c, f"SELECT c_name FROM customers.crm.customer WHERE c_custkey = {sm.CANARY_KEY}")
        assert t.column("c_name").to_pylist() == [sm.mask_hash(sm.CANARY + "-NAME")]
    with connect(secure, header=f"Bearer {keys.token(key=keys.ec, kid='ec1', alg='ES256')}") as c:
        assert query(c, "SELECT 1 AS x").num_rows == 1
    client = raw_client(secure)
    bad = {
        "expired": keys.token(exp_in=-120),
        "not yet valid": keys.token(nbf_in=600),
        "wrong audience": keys.token(aud="someone-else"),
        "wrong issuer": keys.token(iss="https://evil.test/"),
        "unknown key": keys.token(key=keys.other_rsa),
        "unknown kid": keys.token(kid="nope"),
        "alg none": sm.unsigned_token(),
        "HS256 with the public key": _hs256_confusion(keys),
        "garbage": "a.b.c",
    }
    for what, token in bad.items():
        with pytest.raises(fl.FlightUnauthenticatedError):
            statement_info(client, "SELECT 1 AS x", bearer(token))
            pytest.fail(what)
    client.close()


def _hs256_confusion(keys):
    """An HS256 token keyed with the RSA public key's PEM: the classic algorithm confusion."""
    import hashlib
    import hmac
    from cryptography.hazmat.primitives import serialization

    pem = keys.rsa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa1"}
    now = int(time.time())
    claims = {"sub": "mallory", "groups": ["admins"], "aud": sm.AUDIENCE, "iss": sm.ISSUER, "exp": now + 300}
    b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=")
    signing = b64(header) + b"." + b64(claims)
    sig = base64.urlsafe_b64encode(hmac.new(pem, signing, hashlib.sha256).digest()).rstrip(b"=")
    return (signing + b"." + sig).decode()


def test_mutual_tls(tls_gateway):
    pki = tls_gateway["pki"]
    uri = f"grpc+tls://{tls_gateway['addr']}"
    db = {
        "adbc.flight.sql.client_option.tls_root_certs": pki.ca_pem.decode(),
        "adbc.flight.sql.client_option.mtls_cert_chain": pki.client_pem.decode(),
        "adbc.flight.sql.client_option.mtls_private_key": pki.client_key_pem.decode(),
    }
    with flightsql.connect(uri, db_kwargs=db) as c:
        # The certificate's CN `etl-robot` is the principal, in group analysts (client_groups).
        t = query(c, "SELECT count(*) AS n FROM sales.orders.orders")
        assert t.column("n")[0].as_py() > 0
    # A password over TLS with a valid client certificate: the password's user wins.
    with flightsql.connect(uri, db_kwargs={**db, "username": "platform", "password": "platform-pw"}) as c:
        assert query(c, "SELECT count(*) AS n FROM customers.crm.customer").num_rows == 1
    # No client certificate, or one from a foreign CA: the TLS handshake fails.
    for chain, key in [(None, None), (pki.foreign_pem, pki.foreign_key_pem)]:
        kwargs = {"tls_root_certs": pki.ca_pem}
        if chain:
            kwargs.update(cert_chain=chain, private_key=key)
        client = fl.FlightClient(uri, **kwargs)
        with pytest.raises(fl.FlightError):
            list(client.list_actions(fl.FlightCallOptions(timeout=10)))
            statement_info(client, "SELECT 1", fl.FlightCallOptions(timeout=10))
        client.close()
    # Plain TCP against the TLS port fails too.
    client = fl.FlightClient(f"grpc+tcp://{tls_gateway['addr']}")
    with pytest.raises(fl.FlightError):
        statement_info(client, "SELECT 1", fl.FlightCallOptions(timeout=10))
    client.close()


# ---------------------------------------------------------------------------------------------
# Authorization and visibility


def test_listings_show_only_readable_products(secure):
    with as_user(secure, "analyst") as c:
        cats = {o["catalog_name"] for o in c.adbc_get_objects(depth="catalogs").read_all().to_pylist()}
        assert cats == {"sales", "customers", "supply", "mesh"}
    with connect(secure, header=f"Bearer {secure['token']}") as c:
        objects = c.adbc_get_objects(depth="tables").read_all().to_pylist()
        assert {o["catalog_name"] for o in objects} == {"sales", "supply", "mesh"}
        tables = {t["table_name"] for o in objects for s in o["catalog_db_schemas"] for t in s["db_schema_tables"]}
        assert "customer" not in tables and "orders" in tables
    with as_user(secure, "outsider") as c:
        objects = c.adbc_get_objects(depth="all").read_all().to_pylist()
        # Only the gateway's own `mesh` catalog, whose tables are filtered to nothing.
        assert [o["catalog_name"] for o in objects] == ["mesh"], objects
    # flightsql-dbapi / SQLAlchemy inspector under the token.
    from sqlalchemy import create_engine, inspect
    from flightsql import FlightSQLClient, connect as dbapi_connect

    host, port = secure["addr"].split(":")
    client = FlightSQLClient(host=host, port=int(port), insecure=True, user="outsider", password="outsider-pw")
    conn = dbapi_connect(client)
    cur = conn.cursor()
    with pytest.raises(Exception, match="customers.crm"):
        cur.execute("SELECT count(*) FROM customers.crm.region")
    conn.close()
    import flightsql.sqlalchemy  # noqa: F401  registers the dialect

    engine = create_engine(f"datafusion+flightsql://analyst:analyst-pw@{secure['addr']}?insecure=true")
    assert "crm" in inspect(engine).get_schema_names()
    engine = create_engine(f"datafusion+flightsql://outsider:outsider-pw@{secure['addr']}?insecure=true")
    assert "crm" not in inspect(engine).get_schema_names()


def test_the_mesh_catalog_lists_only_readable_ports(secure):
    with connect(secure, header=f"Bearer {secure['token']}") as c:
        t = query(c, "SELECT domain, product, port, status FROM mesh.catalog.ports")
        assert {r["domain"] for r in t.to_pylist()} == {"sales", "supply"}
        assert {r["status"] for r in t.to_pylist()} == {"ok"}
    with as_user(secure, "analyst") as c:
        t = query(c, "SELECT count(*) AS n FROM mesh.catalog.ports")
        assert t.column("n")[0].as_py() == 8
    with as_user(secure, "outsider") as c:
        for t in ["domains", "products", "ports", "columns"]:
            assert query(c, f"SELECT * FROM mesh.catalog.{t}").num_rows == 0, t


def test_the_mesh_catalog_describes_products_and_masks_per_caller(secure):
    with connect(secure, header=f"Bearer {secure['token']}") as c:
        domains = query(c, "SELECT domain, products FROM mesh.catalog.domains ORDER BY domain").to_pylist()
        assert domains == [{"domain": "sales", "products": 1}, {"domain": "supply", "products": 1}]
        products = query(c, "SELECT domain, product, owner, status, health, ports FROM mesh.catalog.products ORDER BY 1").to_pylist()
        assert products[0] == {"domain": "sales", "product": "orders", "owner": "sales-analytics",
                               "status": "published", "health": "ok", "ports": 2}
        locs = query(c, "SELECT location FROM mesh.catalog.ports").column("location").to_pylist()
        assert "lineitem.parquet (parquet)" in locs and not any("file://" in (x or "") for x in locs)
    masked_sql = ("SELECT column, masked, mask, classification FROM mesh.catalog.columns "
                  "WHERE port = 'customer' AND column IN ('c_name', 'c_phone', 'c_acctbal', 'c_custkey') ORDER BY column")
    with as_user(secure, "analyst") as c:
        got = {r["column"]: (r["masked"], r["mask"]) for r in query(c, masked_sql).to_pylist()}
        assert got == {"c_acctbal": (True, "redact"), "c_custkey": (False, None), "c_name": (True, "hash"),
                       "c_phone": (True, "partial")}
    with as_user(secure, "pii_reader") as c:
        got = {r["column"]: r["masked"] for r in query(c, masked_sql).to_pylist()}
        assert got == {"c_acctbal": True, "c_custkey": False, "c_name": False, "c_phone": False}


def test_reading_another_product_is_denied_with_its_owner(secure):
    with connect(secure, header=f"Bearer {secure['token']}") as c:
        with pytest.raises(Exception) as e:
            query(c, "SELECT * FROM customers.crm.customer")
        msg = str(e.value)
        assert "UNAUTHORIZED" in msg or "PermissionDenied" in msg
        assert "customers.crm" in msg and "customer-platform" in msg
        # Also inside a subquery or a CTE.
        for sql in ["SELECT * FROM supply.catalog.part WHERE p_partkey IN (SELECT c_custkey FROM customers.crm.customer)",
                    "WITH x AS (SELECT * FROM customers.crm.nation) SELECT count(*) FROM x"]:
            with pytest.raises(Exception, match="customers.crm"):
                query(c, sql)


def test_explain_is_for_admins(secure):
    with as_user(secure, "emea_analyst") as c:
        with pytest.raises(Exception, match="EXPLAIN is reserved"):
            query(c, "EXPLAIN SELECT * FROM customers.crm.customer")
        with pytest.raises(Exception, match="EXPLAIN is reserved"):
            query(c, "EXPLAIN ANALYZE SELECT 1")
    with as_user(secure, "platform") as c:
        assert query(c, "EXPLAIN SELECT * FROM customers.crm.customer").num_rows > 0


# ---------------------------------------------------------------------------------------------
# Masks and row filters over many query shapes


SHAPES = [
    "SELECT * FROM {customer}",
    "SELECT c_name, c_phone FROM {customer} WHERE c_custkey < 50",
    "SELECT count(*) AS n FROM {customer}",
    "SELECT c_nationkey, count(*) AS n, sum(c_acctbal) AS s FROM {customer} GROUP BY c_nationkey",
    "WITH x AS (SELECT * FROM {customer}) SELECT count(*) AS n, min(c_phone) AS p FROM x",
    "SELECT * FROM (SELECT c_custkey, c_phone FROM {customer}) s WHERE c_custkey % 7 = 0",
    "SELECT c1.c_custkey, c2.c_phone FROM {customer} c1 JOIN {customer} c2 ON c1.c_custkey = c2.c_custkey + 1",
    "SELECT c_phone AS v FROM {customer} UNION SELECT c_address FROM {customer}",
    "SELECT c_phone AS v FROM {customer} UNION ALL SELECT c_name FROM {customer}",
    "SELECT c_custkey, row_number() OVER (PARTITION BY c_nationkey ORDER BY c_custkey) AS rn FROM {customer}",
    "SELECT c_custkey, sum(c_acctbal) OVER (PARTITION BY c_nationkey) AS s FROM {customer}",
    "SELECT count(DISTINCT c_phone) AS n FROM {customer}",
    "SELECT o_orderkey, c_phone FROM {orders} JOIN {customer} ON o_custkey = c_custkey WHERE o_orderkey < 2000",
    "SELECT n_name, count(*) AS n FROM {customer} JOIN {nation} ON c_nationkey = n_nationkey GROUP BY n_name",
    "SELECT * FROM {customer} WHERE c_custkey IN (SELECT o_custkey FROM {orders} WHERE o_totalprice > 300000)",
    "SELECT c_custkey, c_name FROM {customer} c WHERE EXISTS (SELECT 1 FROM {orders} o WHERE o.o_custkey = c.c_custkey AND o.o_orderstatus = 'F')",
    "SELECT c_custkey, (SELECT count(*) FROM {orders} o WHERE o.o_custkey = c.c_custkey) AS n FROM {customer} c WHERE c_custkey < 40",
    "SELECT max(c_phone) AS a, min(c_name) AS b, max(c_address) AS c FROM {customer}",
    "SELECT c_phone FROM {customer} WHERE c_phone LIKE '%1%'",
    "SELECT * FROM {customer} WHERE c_acctbal > 0",
    "SELECT c_custkey FROM {customer} WHERE c_acctbal IS NULL",
    "SELECT c_custkey FROM {customer} WHERE c_name = 'Customer#000000001'",
    "SELECT c_custkey, c_phone FROM {customer} ORDER BY c_phone, c_custkey LIMIT 10",
    "SELECT c_nationkey, count(*) AS n FROM {customer} GROUP BY c_nationkey HAVING count(*) > 50",
    "SELECT DISTINCT c_nationkey FROM {customer}",
    "SELECT c_mktsegment, avg(c_acctbal) AS a FROM {customer} GROUP BY c_mktsegment",
    "SELECT * FROM {customer} WHERE c_custkey BETWEEN 100 AND 200",
    "WITH a AS (SELECT c_custkey AS k FROM {customer}), b AS (SELECT k FROM a WHERE k < 100) SELECT count(*) AS n FROM b",
    "SELECT c_custkey AS k FROM {customer} INTERSECT SELECT o_custkey FROM {orders}",
    "SELECT c_custkey AS k FROM {customer} EXCEPT SELECT o_custkey FROM {orders}",
    "SELECT upper(c_phone) AS p, length(c_address) AS l FROM {customer} WHERE c_custkey < 20",
    "SELECT c_nationkey, count(DISTINCT c_address) AS n FROM {customer} GROUP BY c_nationkey",
    "SELECT CASE WHEN c_acctbal IS NULL THEN 'hidden' ELSE 'shown' END AS v, count(*) AS n FROM {customer} GROUP BY 1",
    "SELECT c_custkey, coalesce(c_acctbal, -1) AS b FROM {customer} WHERE c_custkey < 10",
    "SELECT * FROM (SELECT c_custkey, c_phone, rank() OVER (ORDER BY c_custkey) AS r FROM {customer}) t WHERE r <= 5",
    "SELECT n.n_name, x.cnt FROM {nation} n LEFT JOIN (SELECT c_nationkey, count(*) AS cnt FROM {customer} GROUP BY c_nationkey) x ON x.c_nationkey = n.n_nationkey",
    "SELECT c_custkey FROM {customer} WHERE c_nationkey NOT IN (1, 2, 3)",
    "SELECT o_orderpriority, count(*) AS n FROM {orders} WHERE o_custkey IN (SELECT c_custkey FROM {customer} WHERE c_mktsegment = 'BUILDING') GROUP BY o_orderpriority",
    "SELECT c_custkey, lag(c_phone) OVER (ORDER BY c_custkey) AS prev FROM {customer} WHERE c_custkey < 40",
    "SELECT count(*) AS n FROM {customer} c CROSS JOIN {nation} n WHERE c.c_nationkey = n.n_nationkey AND n.n_regionkey = 3",
    "SELECT c_address, c_phone, c_acctbal FROM {customer} WHERE c_custkey = 999999",
    "SELECT v.x, c.c_phone FROM (VALUES (1), (2), (999999)) v(x) JOIN {customer} c ON c.c_custkey = v.x",
    "SELECT c_name FROM {customer} WHERE c_nationkey = 1",
    "SELECT c_custkey FROM {customer} WHERE c_nationkey + 0 = 1 OR c_acctbal > 9000",
]

PORTS = {"customer": "customers.crm.customer", "orders": "sales.orders.orders", "nation": "customers.crm.nation"}


def reference_for(secure, user):
    """DuckDB over the same data, pre-filtered and pre-masked as `user` must see it."""
    mesh_dir = secure["dir"]
    mesh = yaml.safe_load((mesh_dir / "mesh.yaml").read_text())
    sources = {s["name"]: s for s in mesh["sources"]}
    groups = set(sm.PASSWORDS[user][1])
    con = duckdb.connect()
    for rel, port_name in [("domains/customers/crm.yaml", "customer"), ("domains/customers/crm.yaml", "nation"),
                           ("domains/sales/orders.yaml", "orders")]:
        product = yaml.safe_load((mesh_dir / rel).read_text())
        port = [p for p in product["ports"] if p["name"] == port_name][0]
        src = dict(sources[port["source"]])
        if src["kind"] == "files":
            # Absolute file:// urls: the path joins over the mesh directory unchanged.
            src["options"] = {"url": src["options"]["url"].replace("file://", "")}
        table = read_source(mesh_dir, src, port)
        cols = port["columns"]
        import decimal

        arrays, fields = [], []
        filtered = port_name == "customer" and "emea" in groups
        keep = None
        if filtered:
            keep = [k in sm.EMEA for k in table.column("c_nationkey").to_pylist()]
        for c in cols:
            t = arrow_type(c["type"])
            values = table.column(c["name"]).to_pylist()
            if pa.types.is_decimal(t):
                values = [None if v is None else decimal.Decimal(repr(round(float(v), t.scale))) for v in values]
            cls = c.get("classification")
            if cls == "pii" and "pii-readers" not in groups:
                values, t = [sm.mask_hash(v) for v in values], pa.string()
            elif cls == "contact" and "pii-readers" not in groups:
                values, t = [sm.mask_partial(v) for v in values], pa.string()
            elif cls == "confidential" and "finance" not in groups:
                values = [None for _ in values]
            if keep is not None:
                values = [v for v, k in zip(values, keep) if k]
            arrays.append(pa.array(values, type=t))
            fields.append(pa.field(c["name"], t))
        con.register(port_name, pa.table(arrays, schema=pa.schema(fields)))
    return con


def canary_free(table, label):
    text = json.dumps(table.to_pylist(), default=str)
    assert sm.CANARY not in text, f"{label}: canary leaked"
    assert str(sm.CANARY_BALANCE) not in text, f"{label}: canary balance leaked"


@pytest.mark.parametrize("user", ["analyst", "emea_analyst"])
def test_masks_and_row_filters_across_query_shapes(secure, user):
    assert len(SHAPES) >= 40
    ref = reference_for(secure, user)
    with as_user(secure, user) as c:
        for i, shape in enumerate(SHAPES):
            got = query(c, shape.format(**PORTS))
            result = ref.execute(shape.format(customer="customer", orders="orders", nation="nation"))
            want = result.to_arrow_table() if hasattr(result, "to_arrow_table") else result.arrow()
            assert_same_rows(got, want, f"{user} shape {i}: {shape}")
            canary_free(got, f"{user} shape {i}")
        # Prepared statements with parameters go through the same views.
        got = query(c, "SELECT c_phone, c_acctbal FROM customers.crm.customer WHERE c_custkey = ?", [sm.CANARY_KEY])
        canary_free(got, "prepared")
        assert got.num_rows == (0 if user == "emea_analyst" else 1)


def test_a_clear_reader_sees_the_canary(secure):
    """The reference is not vacuous: principals allowed to see the canary do."""
    with as_user(secure, "platform") as c:
        t = query(c, "SELECT c_name, c_acctbal FROM customers.crm.customer WHERE c_custkey = 999999")
        assert t.column("c_name").to_pylist() == [sm.CANARY + "-NAME"]
        assert float(t.column("c_acctbal")[0].as_py()) == sm.CANARY_BALANCE
    with as_user(secure, "pii_reader") as c:
        t = query(c, "SELECT c_phone, c_acctbal FROM customers.crm.customer WHERE c_custkey = 999999")
        assert t.to_pylist() == [{"c_phone": sm.CANARY + "-PHONE", "c_acctbal": None}]


def test_errors_do_not_reveal_filtered_rows(secure):
    """The canary (nation 1) is filtered for emea_analyst: a predicate that fails on it must not."""
    with as_user(secure, "emea_analyst") as c:
        for sql in [
            "SELECT count(*) AS n FROM customers.crm.customer WHERE 1 / (c_nationkey - 1) = 1",
            "SELECT c_custkey FROM customers.crm.customer WHERE CAST(CASE WHEN c_custkey = 999999 THEN 'x' ELSE '1' END AS INT) = 1",
            # Across a join. The predicate reads a customer column that is not the join key:
            # DataFusion copies a predicate written only in join keys (`10 / (c.c_nationkey -
            # 1) > 0`) onto the other table, `nation`, whose own row 1 then fails it: an error
            # about a row everyone sees, whatever the customers are (meshgate no longer hides
            # it by sending the division to SQLite, which answers NULL where DataFusion fails).
            "SELECT count(*) AS n FROM customers.crm.customer c JOIN customers.crm.nation n ON c.c_nationkey = n.n_nationkey WHERE 10 / (c.c_nationkey - 1) > -c.c_custkey",
        ]:
            t = query(c, sql)
            canary_free(t, sql)
    with as_user(secure, "platform") as c:
        with pytest.raises(Exception, match="(?i)divide by zero|division by zero"):
            query(c, "SELECT count(*) AS n FROM customers.crm.customer WHERE 1 / (c_nationkey - 1) = 1")


def test_hash_mask_is_stable_so_joins_on_masked_keys_work(secure):
    with as_user(secure, "analyst") as c:
        t = query(c, "SELECT count(*) AS n FROM customers.crm.customer a JOIN customers.crm.customer b ON a.c_name = b.c_name")
        assert t.column("n")[0].as_py() == query(c, "SELECT count(*) AS n FROM customers.crm.customer").column("n")[0].as_py()


# ---------------------------------------------------------------------------------------------
# Tickets and prepared statement handles


def test_tickets_are_bound_signed_and_expire(secure):
    client = raw_client(secure)
    alice = basic_options(client, "analyst")
    emea = basic_options(client, "emea_analyst")
    info = statement_info(client, "SELECT c_custkey FROM customers.crm.customer", alice)
    ticket = info.endpoints[0].ticket
    # Another principal replaying it.
    with pytest.raises(fl.FlightUnauthorizedError):
        client.do_get(ticket, emea).read_all()
    # Bit flips anywhere.
    raw = ticket.ticket
    for i in range(0, len(raw), max(1, len(raw) // 12)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        with pytest.raises((fl.FlightServerError, fl.FlightUnauthorizedError, fl.FlightInternalError, pa.ArrowInvalid)):
            client.do_get(fl.Ticket(bytes(flipped)), alice).read_all()
    # Its owner redeems it; after the TTL (4 s here) nobody does.
    assert client.do_get(ticket, alice).read_all().num_rows > 0
    time.sleep(5)
    with pytest.raises(pa.ArrowInvalid, match="expired"):
        client.do_get(ticket, alice).read_all()
    client.close()


def test_prepared_handles_are_bound_to_their_principal(secure):
    client = raw_client(secure)
    alice = basic_options(client, "analyst")
    emea = basic_options(client, "emea_analyst")
    req = pb.ActionCreatePreparedStatementRequest(query="SELECT c_phone FROM customers.crm.customer WHERE c_custkey = 1")
    results = list(client.do_action(fl.Action("CreatePreparedStatement", _any(req)), alice))
    a = any_pb2.Any()
    a.ParseFromString(results[0].body.to_pybytes())
    res = pb.ActionCreatePreparedStatementResult()
    a.Unpack(res)
    cmd = pb.CommandPreparedStatementQuery(prepared_statement_handle=res.prepared_statement_handle)
    desc = fl.FlightDescriptor.for_command(_any(cmd))
    assert client.get_flight_info(desc, alice).schema.names == ["c_phone"]
    with pytest.raises(fl.FlightUnauthorizedError):
        client.get_flight_info(desc, emea)
    flipped = bytearray(res.prepared_statement_handle)
    flipped[-1] ^= 0x40
    bad = pb.CommandPreparedStatementQuery(prepared_statement_handle=bytes(flipped))
    with pytest.raises(pa.ArrowInvalid):
        client.get_flight_info(fl.FlightDescriptor.for_command(_any(bad)), alice)
    client.close()


def _any(msg):
    a = any_pb2.Any()
    a.Pack(msg, type_url_prefix="type.googleapis.com/")
    return a.SerializeToString()


# ---------------------------------------------------------------------------------------------
# Audit and logs


def test_audit_records_and_no_secrets_anywhere(secure):
    with as_user(secure, "emea_analyst") as c:
        query(c, "SELECT c_custkey, c_phone FROM customers.crm.customer WHERE c_custkey < 1000")
    with connect(secure, header=f"Bearer {secure['token']}") as c:
        with pytest.raises(Exception):
            query(c, "SELECT * FROM customers.crm.customer")
    with pytest.raises(Exception):
        connect(secure, "analyst", "wrong-password-123").close()
    time.sleep(0.5)
    records = audit(secure)
    for r in records:
        assert set(r) >= {"time", "principal", "client", "rpc", "sql", "ports", "decision", "status", "rows",
                          "bytes", "duration_ms"}
    read = [r for r in records if r["principal"] == "emea_analyst" and r["rpc"].startswith("DoGet/")
            and (r["sql"] or "").startswith("SELECT c_custkey, c_phone")]
    assert read, "no audit record of the emea read"
    last = read[-1]
    assert last["decision"] == "allow" and last["status"] == "Ok"
    # c_nationkey is read for the row filter.
    assert last["ports"] == {"customers.crm.customer": ["c_custkey", "c_nationkey", "c_phone"]}
    assert last["rows"] > 0
    assert last["client"].startswith("127.0.0.1:")
    denied = [r for r in records if r["principal"] == "nightly-etl" and r["status"] == "PermissionDenied"]
    assert denied and denied[-1]["decision"] == "deny" and "customers.crm" in denied[-1]["error"]
    unauth = [r for r in records if r["principal"] is None and r["status"] == "Unauthenticated"]
    assert unauth and unauth[-1]["decision"] == "deny"
    jwt_records = [r for r in records if r.get("auth_method") == "jwt"]
    assert jwt_records and jwt_records[-1]["principal"] == "jwt-analyst"
    secrets = [pw for pw, _ in sm.PASSWORDS.values()] + ["wrong-password-123", secure["token"], sm.MASK_KEY,
                                                         sm.CANARY + "-PHONE"]
    texts = {"audit.log": (secure["dir"] / "audit.log").read_text(), "meshgate.log": secure["server"].log_path.read_text()}
    for name, text in texts.items():
        for s in secrets:
            assert s not in text, f"{name} contains a secret"
        assert "Bearer mgs." not in text and "eyJ" not in text, f"{name} contains a bearer token"
    assert "wrong password for user `analyst`" in texts["meshgate.log"]


def test_hash_password_and_new_token_commands():
    h = sm.cli("hash-password", stdin="s3cret\n")
    assert h.startswith("$argon2id$") and "s3cret" not in h
    out = sm.cli("new-token", "--name", "x")
    token, token_hash = [line.split(": ", 1)[1] for line in out.splitlines()[:2]]
    import hashlib
    assert token_hash == "sha256:" + hashlib.sha256(token.encode()).hexdigest()

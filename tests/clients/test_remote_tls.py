"""A `flightsql` source over TLS: the remote meshgate serves TLS with a certificate of a test
CA; the hub trusts that CA by `tls_ca_file`. A hub that does not trust the CA, or speaks plain
gRPC to the TLS port, fails that source's ports with an error naming it; the rest serves."""

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow.parquet as pq
import pytest

import security_mesh as sm


@pytest.fixture(scope="module")
def tls_pair(gateway, tmp_path_factory):
    d = tmp_path_factory.mktemp("remote-tls")
    pki = sm.Pki(d / "pki")
    sales = gateway["data"] / "data" / "sales"
    remote = d / "remote"
    (remote / "domains").mkdir(parents=True)
    (remote / "mesh.yaml").write_text(f"""apiVersion: meshgate/v1
kind: Mesh
name: remote
sources:
  - {{ name: lake, kind: files, options: {{ url: "file://{sales}/" }} }}
auth:
  anonymous: true
  tls:
    cert_file: {d}/pki/server.pem
    key_file: {d}/pki/server.key
policies: {{ default_access: allow }}
""")
    (remote / "domains" / "sales.yaml").write_text("""apiVersion: meshgate/v1
kind: DataProduct
domain: sales
name: orders
owner: { team: sales }
ports:
  - { name: orders, source: lake, location: orders.parquet, format: parquet }
""")
    remote_gw = sm.Server(remote)
    hub = d / "hub"
    (hub / "domains").mkdir(parents=True)
    port = remote_gw.port
    (hub / "mesh.yaml").write_text(f"""apiVersion: meshgate/v1
kind: Mesh
name: hub
sources:
  - name: trusted
    kind: flightsql
    options: {{ url: "grpc+tls://127.0.0.1:{port}", tls_ca_file: {d}/pki/ca.pem, tls_domain: localhost, dialect: datafusion }}
  - name: untrusted
    kind: flightsql
    options: {{ url: "grpc+tls://127.0.0.1:{port}", tls_domain: localhost, connect_timeout_ms: 5000 }}
  - name: plaintext
    kind: flightsql
    options: {{ url: "grpc://127.0.0.1:{port}", connect_timeout_ms: 5000, statement_timeout_ms: 10000 }}
  - {{ name: local, kind: files, options: {{ url: "file://{sales}/" }} }}
auth: {{ anonymous: true }}
policies: {{ default_access: allow }}
""")
    (hub / "domains" / "mirror.yaml").write_text("""apiVersion: meshgate/v1
kind: DataProduct
domain: hub
name: mirror
owner: { team: hub }
ports:
  - { name: orders, source: trusted, table: sales.orders.orders }
  - { name: orders_untrusted, source: untrusted, table: sales.orders.orders }
  - { name: orders_plain, source: plaintext, table: sales.orders.orders }
  - { name: local_orders, source: local, location: orders.parquet, format: parquet }
""")
    hub_gw = sm.Server(hub)
    yield hub_gw, pq.read_table(sales / "orders.parquet")
    hub_gw.stop()
    remote_gw.stop()


def run(gw, sql):
    return sm.fetchall(gw.addr, sql)


def test_a_tls_remote_with_a_trusted_ca_serves(tls_pair):
    hub, orders = tls_pair
    got = run(hub, "SELECT count(*), sum(o_totalprice) FROM hub.mirror.orders WHERE o_custkey < 100")
    small = orders.filter(orders["o_custkey"].to_numpy() < 100)
    assert got[0][0] == small.num_rows > 0
    assert float(got[0][1]) == pytest.approx(float(sum(v.as_py() for v in small["o_totalprice"])))
    # Joined with a local port.
    got = run(hub, """SELECT count(*) FROM hub.mirror.orders r
                      JOIN hub.mirror.local_orders l ON r.o_orderkey = l.o_orderkey""")
    assert got == [(orders.num_rows,)]


@pytest.mark.parametrize("port, source", [("orders_untrusted", "untrusted"), ("orders_plain", "plaintext")])
def test_a_remote_not_trusted_or_not_spoken_to_in_tls_fails_only_its_port(tls_pair, port, source):
    hub, _ = tls_pair
    with pytest.raises(flightsql.Error) as e:
        run(hub, f"SELECT count(*) FROM hub.mirror.{port}")
    msg = str(e.value)
    assert source in msg and "UNAVAILABLE" in msg.upper(), msg
    assert run(hub, "SELECT count(*) FROM hub.mirror.local_orders")[0][0] > 0

"""A Flight SQL server not written here as a `flightsql` source: ROAPI (the `roapi` PyPI wheel,
DataFusion over the demo's Parquet files). The hub meshgate pushes filters and aggregates to it
as SQL in its DataFusion dialect, joins its ports with a local SQLite port, and serves a query
port on it; every answer equals DuckDB's over the same files."""

import sqlite3
import subprocess
import sys
import time
import pathlib

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import pytest

import security_mesh as sm

ROAPI = pathlib.Path(sys.executable).parent / "roapi"


def wait_port(port, proc, log, timeout=60):
    import socket

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("roapi exited:\n" + log.read_text())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("roapi did not listen in time:\n" + log.read_text())


@pytest.fixture(scope="module")
def roapi_hub(gateway, tmp_path_factory):
    d = tmp_path_factory.mktemp("roapi")
    sales = gateway["data"] / "data" / "sales"
    port = sm.free_port()
    log = d / "roapi.log"
    proc = subprocess.Popen(
        [str(ROAPI), "-t", f"lineitem={sales / 'lineitem.parquet'}", "-t", f"orders={sales / 'orders.parquet'}",
         "--addr-flight-sql", f"127.0.0.1:{port}", "--addr-http", f"127.0.0.1:{sm.free_port()}",
         "--addr-postgres", f"127.0.0.1:{sm.free_port()}"],
        stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    hub = d / "hub"
    try:
        wait_port(port, proc, log)
        (hub / "domains").mkdir(parents=True)
        (hub / "mesh.yaml").write_text(f"""apiVersion: meshgate/v1
kind: Mesh
name: roapi_hub
{sm.admin_auth_yaml()}sources:
  - name: roapi_sales
    kind: flightsql
    options: {{ url: "grpc://127.0.0.1:{port}", dialect: datafusion, statement_timeout_ms: 30000 }}
  - name: crm
    kind: sqlite
    options: {{ path: "{gateway['data'] / 'data' / 'customers' / 'crm.sqlite'}" }}
""")
        (hub / "domains" / "sales.yaml").write_text("""apiVersion: meshgate/v1
kind: DataProduct
domain: sales
name: orders
owner: { team: sales }
ports:
  - { name: lineitem, source: roapi_sales, table: lineitem }
  - { name: orders, source: roapi_sales, table: orders }
  - name: big_lines
    source: roapi_sales
    query: "SELECT l_orderkey, l_quantity FROM lineitem WHERE l_quantity > 45"
""")
        (hub / "domains" / "crm.yaml").write_text("""apiVersion: meshgate/v1
kind: DataProduct
domain: customers
name: crm
owner: { team: crm }
ports:
  - { name: customer, source: crm, table: customer }
""")
        server = sm.Server(hub)
    except Exception:
        proc.kill()
        raise
    duck = duckdb.connect()
    duck.execute(f"CREATE VIEW lineitem AS SELECT * FROM read_parquet('{sales / 'lineitem.parquet'}')")
    duck.execute(f"CREATE VIEW orders AS SELECT * FROM read_parquet('{sales / 'orders.parquet'}')")
    with sqlite3.connect(gateway["data"] / "data" / "customers" / "crm.sqlite") as crm:
        customers = crm.execute("SELECT c_custkey, c_mktsegment FROM customer").fetchall()
    duck.execute("CREATE TABLE customer (c_custkey BIGINT, c_mktsegment VARCHAR)")
    duck.executemany("INSERT INTO customer VALUES (?, ?)", customers)
    yield server, duck, proc
    server.stop()
    proc.terminate()
    proc.wait(timeout=20)


def run(gw, sql):
    return sm.fetchall(gw.addr, sql, "admin", "admin-pw")


def norm(rows):
    return [tuple(float(v) if hasattr(v, "as_tuple") else v for v in r) for r in rows]


def test_roapi_ports_answer_like_the_files(roapi_hub):
    gw, duck, _ = roapi_hub
    got = run(gw, "SELECT count(*), sum(l_quantity), min(l_shipdate) FROM sales.orders.lineitem")
    want = duck.execute("SELECT count(*), sum(l_quantity), min(l_shipdate) FROM lineitem").fetchall()
    assert norm(got) == norm(want) and got[0][0] > 50000
    # The query port runs on ROAPI.
    got = run(gw, "SELECT count(*), sum(l_quantity) FROM sales.orders.big_lines")
    want = duck.execute("SELECT count(*), sum(l_quantity) FROM lineitem WHERE l_quantity > 45").fetchall()
    assert norm(got) == norm(want) and got[0][0] > 0


def test_filters_and_aggregates_are_pushed_to_roapi(roapi_hub):
    gw, duck, _ = roapi_hub
    sql = """SELECT l_returnflag, l_linestatus, count(*) AS n, sum(l_extendedprice) AS s
             FROM {li} WHERE l_shipdate < DATE '1995-01-01' GROUP BY l_returnflag, l_linestatus
             ORDER BY 1, 2"""
    got = run(gw, sql.format(li="sales.orders.lineitem"))
    want = duck.execute(sql.format(li="lineitem")).fetchall()
    assert norm(got) == norm(want) and len(got) == 2
    plan = "\n".join(r[1] for r in run(gw, "EXPLAIN " + sql.format(li="sales.orders.lineitem")))
    # The whole aggregate over the remote table is one statement sent to the source.
    sent = [line for line in plan.splitlines() if "name=roapi_sales" in line and "base_sql=" in line]
    assert len(sent) == 1, plan
    assert "GROUP BY" in sent[0] and "WHERE" in sent[0] and "1995-01-01" in sent[0], plan


def test_a_roapi_port_joins_a_local_port(roapi_hub):
    gw, duck, _ = roapi_hub
    got = run(gw, """SELECT c.c_mktsegment, count(*), sum(o.o_totalprice)
                     FROM sales.orders.orders o JOIN customers.crm.customer c ON o.o_custkey = c.c_custkey
                     WHERE o.o_orderdate >= DATE '1996-01-01' GROUP BY 1 ORDER BY 1""")
    want = duck.execute("""SELECT c.c_mktsegment, count(*), sum(o.o_totalprice)
                     FROM orders o JOIN customer c ON o.o_custkey = c.c_custkey
                     WHERE o.o_orderdate >= DATE '1996-01-01' GROUP BY 1 ORDER BY 1""").fetchall()
    assert norm(got) == norm(want) and len(got) == 5


def test_roapi_gone_fails_its_ports_only(roapi_hub):
    gw, _, proc = roapi_hub
    proc.terminate()
    proc.wait(timeout=20)
    with pytest.raises(flightsql.Error) as e:
        run(gw, "SELECT count(*) FROM sales.orders.lineitem")
    assert "roapi_sales" in str(e.value) and "UNAVAILABLE" in str(e.value).upper(), e.value
    assert run(gw, "SELECT count(*) FROM customers.crm.customer")[0][0] > 0

"""The ADBC Flight SQL driver (Go driver inside, what pandas/polars users run) against the
`meshgate demo` binary."""

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pytest
import time

from conftest import tpch_names, tpch_sql
from normalize import assert_same_rows


@pytest.fixture(scope="module")
def conn(gateway):
    c = flightsql.connect(gateway["uri"], db_kwargs={"username": "platform", "password": "platform-pw"})
    yield c
    c.close()


def test_get_info(conn):
    info = conn.adbc_get_info()
    assert info["vendor_name"] == "meshgate"
    assert info["vendor_arrow_version"].startswith("59")


def test_get_objects_lists_domains_products_ports_and_columns(conn):
    objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    catalogs = {c["catalog_name"]: c for c in objects}
    assert set(catalogs) == {"sales", "customers", "supply", "mesh"}
    mesh_tables = {t["table_name"] for s in catalogs["mesh"]["catalog_db_schemas"] for t in s["db_schema_tables"]}
    assert mesh_tables == {"domains", "products", "ports", "columns", "queries", "by_product"}
    crm = [s for s in catalogs["customers"]["catalog_db_schemas"] if s["db_schema_name"] == "crm"][0]
    tables = {t["table_name"]: t for t in crm["db_schema_tables"]}
    assert set(tables) == {"customer", "nation", "region"}
    cols = [c["column_name"] for c in tables["customer"]["table_columns"]]
    assert cols[:3] == ["c_custkey", "c_name", "c_address"]


def test_get_table_schema_carries_contract_and_descriptions(conn):
    schema = conn.adbc_get_table_schema("lineitem", catalog_filter="sales", db_schema_filter="orders")
    assert schema.field("l_extendedprice").type == pa.decimal128(15, 2)
    assert schema.field("l_shipdate").type == pa.date32()
    assert schema.field("l_comment").type == pa.string()
    assert not schema.field("l_orderkey").nullable
    assert schema.field("l_shipdate").metadata[b"ARROW:FLIGHT:SQL:REMARKS"] == b"Ship date."


@pytest.mark.parametrize("name", tpch_names())
def test_tpch_across_three_domains(conn, reference, name):
    cur = conn.cursor()
    cur.execute(tpch_sql(name))
    got = cur.fetch_arrow_table()
    want = reference.sql(tpch_sql(name, mesh_names=False)).to_arrow_table()
    assert got.num_rows > 0
    assert_same_rows(got, want, name)
    cur.close()


def test_parameters_qmark_and_dollar(conn):
    cur = conn.cursor()
    for sql in (
        "SELECT n_name FROM customers.crm.nation WHERE n_nationkey = ? AND n_regionkey = ?",
        "SELECT n_name FROM customers.crm.nation WHERE n_nationkey = $1 AND n_regionkey = $2",
    ):
        cur.execute(sql, parameters=(6, 3))
        assert cur.fetchall() == [("FRANCE",)]
        cur.execute(sql, parameters=(7, 3))
        assert cur.fetchall() == [("GERMANY",)]
    cur.execute("SELECT count(*) FROM sales.orders.orders WHERE o_orderdate >= ?", parameters=("1998-01-01",))
    assert cur.fetchone()[0] > 0
    cur.close()


def test_full_fetch_of_lineitem(conn, reference):
    cur = conn.cursor()
    cur.execute("SELECT * FROM sales.orders.lineitem")
    table = cur.fetch_arrow_table()
    expected = reference.execute("SELECT count(*) FROM lineitem").fetchone()[0]
    assert table.num_rows == expected
    assert table.num_columns == 16
    assert sum(table.column("l_linenumber").to_pylist()) == reference.execute(
        "SELECT sum(l_linenumber) FROM lineitem"
    ).fetchone()[0]
    cur.close()


def test_errors_are_actionable(conn):
    cur = conn.cursor()
    with pytest.raises(adbc_driver_manager.Error) as e:
        cur.execute("SELECT * FROM sales.orders.line_items")
    assert "sales.orders.lineitem" in str(e.value)
    with pytest.raises(adbc_driver_manager.Error) as e:
        cur.execute("DROP TABLE sales.orders.orders")
    assert "read-only" in str(e.value)
    cur.execute("SELECT 1 AS one")
    assert cur.fetchone() == (1,)
    cur.close()


def test_the_log_line_of_a_query_has_rows_and_bytes_per_source(conn, gateway):
    cur = conn.cursor()
    # customers (SQLite, federated: the join runs there) joined with sales (Parquet).
    cur.execute(
        "SELECT n.n_name, count(*) AS orders FROM sales.orders.orders o "
        "JOIN customers.crm.customer c ON o.o_custkey = c.c_custkey "
        "JOIN customers.crm.nation n ON c.c_nationkey = n.n_nationkey "
        "WHERE n.n_name = 'FRANCE' GROUP BY n.n_name"
    )
    assert cur.fetch_arrow_table().num_rows == 1
    cur.close()
    # The line is written when the server's stream ends, just after the client has the data.
    deadline = time.monotonic() + 10
    while True:
        log = (gateway["data"] / "meshgate.log").read_text()
        lines = [
            l for l in log.splitlines()
            if "query finished" in l and "crm_db:rows=" in l and "sales_lake:rows=" in l
        ]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert lines, log[-2000:]

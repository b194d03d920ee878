"""flightsql-dbapi (DB-API and the SQLAlchemy dialect Superset uses) against the `meshgate
demo` binary."""

import flightsql.sqlalchemy  # noqa: F401  registers the datafusion+flightsql dialect
from flightsql import FlightSQLClient, connect
from sqlalchemy import create_engine, inspect, text


def client(gateway):
    host, port = gateway["addr"].rsplit(":", 1)
    return FlightSQLClient(host=host, port=int(port), insecure=True, user="platform", password="platform-pw")


def test_dbapi_query_and_parameters(gateway):
    conn = connect(client(gateway))
    cur = conn.cursor()
    cur.execute("SELECT r_name FROM customers.crm.region ORDER BY r_name")
    assert [r[0] for r in cur.fetchall()] == ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"]
    cur.execute("SELECT n_name FROM customers.crm.nation WHERE n_nationkey = ?", [6])
    assert [tuple(r) for r in cur.fetchall()] == [("FRANCE",)]
    info = conn.flightsql_get_sql_info([3, 504])
    assert info[3] is True and info[504] == '"'
    conn.close()


def test_sqlalchemy_engine_and_inspector(gateway):
    engine = create_engine(f"datafusion+flightsql://platform:platform-pw@{gateway['addr']}?insecure=true")
    with engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT s.s_name, n.n_name FROM supply.catalog.supplier s "
                "JOIN customers.crm.nation n ON s.s_nationkey = n.n_nationkey ORDER BY s.s_suppkey LIMIT 3"
            )
        ).fetchall()
        assert len(rows) == 3
    insp = inspect(engine)
    assert "crm" in insp.get_schema_names()
    assert set(insp.get_table_names(schema="crm")) == {"customer", "nation", "region"}
    cols = [c["name"] for c in insp.get_columns("region", schema="crm")]
    assert cols == ["r_regionkey", "r_name", "r_comment"]

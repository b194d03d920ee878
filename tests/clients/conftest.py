"""Starts the `meshgate` binary serving the demo mesh, and a DuckDB reference over the same
files (read with pyarrow and sqlite3, cast to the ports' contracts)."""

import decimal
import os
import pathlib
import re
import signal
import sqlite3
import subprocess
import time

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("MESHGATE_BIN", str(ROOT / "target" / "debug" / "meshgate"))
SCALE = os.environ.get("MESHGATE_CLIENT_TEST_SCALE", "0.01")
TPCH_DIR = ROOT / "tests" / "tpch"

# {placeholder} in tests/tpch/*.sql -> mesh port
PORTS = {
    "lineitem": "sales.orders.lineitem",
    "orders": "sales.orders.orders",
    "customer": "customers.crm.customer",
    "nation": "customers.crm.nation",
    "region": "customers.crm.region",
    "part": "supply.catalog.part",
    "supplier": "supply.catalog.supplier",
    "partsupp": "supply.catalog.partsupp",
}


# The client tests run these over the demo; the Rust tests run all 22 (tests/tpch) over the
# demo and over the PostgreSQL + MariaDB + Parquet mesh.
CLIENT_QUERIES = ["q01", "q03", "q05", "q06", "q09", "q10", "q11", "q12", "q14", "q19"]


def tpch_names():
    return CLIENT_QUERIES


def tpch_sql(name, mesh_names=True):
    sql = (TPCH_DIR / f"{name}.sql").read_text()
    for placeholder, port in PORTS.items():
        sql = sql.replace("{" + placeholder + "}", port if mesh_names else placeholder)
    return sql


@pytest.fixture(scope="session")
def gateway(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("demo")
    log = open(data_dir / "meshgate.log", "w")
    proc = subprocess.Popen(
        [BIN, "demo", "--data-dir", str(data_dir), "--scale", SCALE, "--flight-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    deadline = time.time() + 300
    addr = None
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        m = re.search(r"serving Flight SQL on (\S+)", line)
        if m:
            addr = m.group(1)
            break
    if addr is None:
        proc.kill()
        log.close()
        raise RuntimeError("meshgate demo did not start:\n" + (data_dir / "meshgate.log").read_text())
    yield {"addr": addr, "uri": f"grpc://{addr}", "data": data_dir, "proc": proc}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == 0, f"meshgate exited with {proc.returncode} after SIGTERM"


ARROW_TYPES = {
    "boolean": pa.bool_(), "tinyint": pa.int8(), "smallint": pa.int16(), "int": pa.int32(),
    "bigint": pa.int64(), "float": pa.float32(), "double": pa.float64(), "string": pa.string(),
    "binary": pa.binary(), "date": pa.date32(), "timestamp": pa.timestamp("us"),
}


def arrow_type(t):
    m = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", t)
    if m:
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    return ARROW_TYPES[t]


def read_source(data, source, port):
    base = data / source["options"].get("url", "")
    if source["kind"] == "files":
        path = base / port["location"]
        if port["format"] == "parquet":
            return pq.read_table(path)
        return pacsv.read_csv(path)
    conn = sqlite3.connect(data / source["options"]["path"])
    cur = conn.execute(f'SELECT * FROM "{port["table"]}"')
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    conn.close()
    return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})


@pytest.fixture(scope="session")
def reference(gateway):
    """DuckDB with every port as a plain table, cast to its contract."""
    data = gateway["data"]
    mesh = yaml.safe_load((data / "mesh.yaml").read_text())
    sources = {s["name"]: s for s in mesh["sources"]}
    con = duckdb.connect()
    for product_file in (data / "domains").rglob("*.yaml"):
        product = yaml.safe_load(product_file.read_text())
        for port in product["ports"]:
            table = read_source(data, sources[port["source"]], port)
            cols = port["columns"]
            table = table.select([c["name"] for c in cols])
            fields = [pa.field(c["name"], arrow_type(c["type"])) for c in cols]
            arrays = []
            for c, f in zip(cols, fields):
                col = table.column(c["name"])
                if pa.types.is_decimal(f.type) and pa.types.is_floating(col.type):
                    # SQLite and CSV keep decimals as binary floats; round as the contract's cast does.
                    col = pa.array(
                        [None if v is None else decimal.Decimal(repr(round(v, f.type.scale))) for v in col.to_pylist()],
                        type=f.type,
                    )
                arrays.append(col.cast(f.type))
            con.register(port["name"], pa.table(arrays, schema=pa.schema(fields)))
    return con

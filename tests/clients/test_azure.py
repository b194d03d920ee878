"""`files` ports on Azure Blob Storage: Azurite (the npm emulator) on loopback holds a
Hive-partitioned Parquet dataset; meshgate reads it with a shared account key from a secret."""

import os
import pathlib
import subprocess
import time

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import requests
from azure.storage.blob import BlobServiceClient

import security_mesh as sm
from conftest import ROOT

AZURITE = pathlib.Path(os.environ.get("MESHGATE_AZURITE", ROOT / ".azurite")) / "node_modules" / ".bin" / "azurite-blob"
# Azurite's well-known development account (public, documented by Microsoft).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def table_for(region, n):
    return pa.table({
        "id": pa.array(range(n), pa.int64()),
        "amount": pa.array([float(i % 100) for i in range(n)]),
        "region": pa.array([region] * n),
    })


def parquet_bytes(t):
    sink = pa.BufferOutputStream()
    pq.write_table(t, sink)
    return sink.getvalue().to_pybytes()


@pytest.fixture(scope="module")
def azure_lake(tmp_path_factory):
    if not AZURITE.exists():
        pytest.fail(f"Azurite is not installed at {AZURITE} (scripts/test.sh installs it with npm)")
    d = tmp_path_factory.mktemp("azure")
    port = sm.free_port()
    log = open(d / "azurite.log", "w")
    debug = d / "azurite-debug.log"
    proc = subprocess.Popen([str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                             "--inMemoryPersistence", "--skipApiVersionCheck", "--silent",
                             "--debug", str(debug)],
                            stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
    deadline = time.time() + 60
    while True:
        try:
            requests.get(endpoint + "?comp=list", timeout=1)
            break
        except requests.RequestException:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("Azurite did not start: " + (d / "azurite.log").read_text())
            time.sleep(0.2)
    blobs = BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={endpoint};")
    container = blobs.create_container("lake")
    tables = {"emea": table_for("emea", 3000), "amer": table_for("amer", 5000)}
    for region, t in tables.items():
        container.upload_blob(f"sales/orders/region={region}/part-0.parquet", parquet_bytes(t.drop(["region"])))
    mesh = d / "mesh"
    (mesh / "domains").mkdir(parents=True)
    (mesh / "secrets").mkdir()
    (mesh / "secrets" / "azure-key").write_text(KEY + "\n")
    (mesh / "secrets" / "wrong-key").write_text("d3JvbmcgYWNjb3VudCBrZXkgZm9yIHRoZSB0ZXN0cw==\n")
    sources = ""
    for name, key in (("az_lake", "azure-key"), ("az_wrong", "wrong-key")):
        sources += f"""  - name: {name}
    kind: files
    options:
      url: az://lake/sales/
      azure: {{ account: {ACCOUNT}, access_key: {{ file: secrets/{key} }}, endpoint: "{endpoint}", allow_http: true }}
      max_retries: 0
"""
    (mesh / "mesh.yaml").write_text(f"""apiVersion: meshgate/v1
kind: Mesh
name: azlake
auth: {{ anonymous: true }}
policies: {{ default_access: allow }}
sources:
{sources}""")
    (mesh / "domains" / "sales.yaml").write_text("""apiVersion: meshgate/v1
kind: DataProduct
domain: sales
name: orders
owner: { team: sales }
ports:
  - { name: orders, source: az_lake, location: orders/, format: parquet }
  - { name: orders_wrong_key, source: az_wrong, location: orders/, format: parquet }
""")
    try:
        gw = sm.Server(mesh)
    except Exception:
        proc.kill()
        raise
    yield gw, tables, debug
    gw.stop()
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # Azurite may not end on SIGTERM while connections linger
        proc.kill()
        proc.wait(timeout=10)
    log.close()


def run(gw, sql):
    return sm.fetchall(gw.addr, sql)


def test_azure_ports_answer(azure_lake):
    gw, tables, _ = azure_lake
    got = run(gw, "SELECT region, count(*), sum(amount) FROM sales.orders.orders GROUP BY region ORDER BY region")
    want = [(r, t.num_rows, pc.sum(t["amount"]).as_py()) for r, t in sorted(tables.items())]
    assert got == want


def test_azure_partition_pruning(azure_lake):
    gw, tables, debug = azure_lake
    mark = debug.stat().st_size
    got = run(gw, "SELECT count(*), sum(amount) FROM sales.orders.orders WHERE region = 'emea' AND id >= 10")
    t = tables["emea"]
    assert got == [(t.num_rows - 10, pc.sum(t["amount"]).as_py() - sum(float(i) for i in range(10)))]
    with open(debug, "rb") as f:
        f.seek(mark)
        seen = f.read().decode("utf-8", "replace")
    reads = [line for line in seen.splitlines() if "part-0.parquet" in line and "GET" in line]
    assert reads and all("region=emea" in line or "region%3Demea" in line for line in reads), reads[:5]


def test_a_wrong_account_key_fails_only_its_port(azure_lake):
    gw, _, _ = azure_lake
    with pytest.raises(flightsql.Error) as e:
        run(gw, "SELECT count(*) FROM sales.orders.orders_wrong_key")
    msg = str(e.value)
    assert "az_wrong" in msg and "403" in msg, msg
    assert run(gw, "SELECT count(*) FROM sales.orders.orders") == [(8000,)]

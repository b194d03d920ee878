"""`files` ports on S3-compatible storage: a moto server on loopback holds a Hive-partitioned
Parquet dataset; meshgate reads it through object_store with the source's endpoint, region,
credentials (from secrets) and path-style requests. moto's request recorder shows what the
gateway asked for: only the objects of the partitions a filter keeps, ranges of objects rather
than whole objects, and far fewer bytes when row-group statistics rule most of a file out.
Listings are reused for the source's TTL; retries against a failing store are bounded."""

import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading
import time
import urllib.parse

import adbc_driver_flightsql.dbapi as flightsql
import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

import security_mesh as sm

MOTO = pathlib.Path(sys.executable).parent / "moto_server"
YEARS = ("2023", "2024", "2025")
ROWS = 400_000  # per partition
ROW_GROUP = 50_000  # 8 row groups per file
LISTING_TTL_S = 3


def table_for(year):
    rng = np.random.default_rng(int(year))
    base = int(year) * 1_000_000
    return pa.table({
        "id": pa.array(np.arange(base, base + ROWS, dtype=np.int64)),
        "amount": pa.array(rng.random(ROWS) * 1000),
        "note": pa.array([f"n{i % 997}" for i in range(ROWS)]),
    })


def parquet_bytes(table):
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=ROW_GROUP, data_page_size=16 * 1024,
                   use_dictionary=["note"], write_page_index=True)
    return sink.getvalue().to_pybytes()


class Moto:
    def __init__(self, d: pathlib.Path):
        self.port = sm.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.recording = d / "moto-recording.jsonl"
        self.log = open(d / "moto.log", "w")
        env = dict(os.environ, MOTO_RECORDER_FILEPATH=str(self.recording))
        self.proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 60
        while True:
            try:
                requests.get(self.url + "/moto-api/", timeout=1)
                break
            except requests.RequestException:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("moto did not start: " + (d / "moto.log").read_text())
                time.sleep(0.2)
        self.s3 = boto3.client("s3", endpoint_url=self.url, region_name="eu-west-1",
                               aws_access_key_id="lake-reader", aws_secret_access_key="lake-secret")
        requests.post(self.url + "/moto-api/recorder/start-recording", timeout=10)

    def reset(self):
        requests.post(self.url + "/moto-api/recorder/reset-recording", timeout=10)

    def requests(self):
        """(method, path, query, range header) of every request since the last reset."""
        out = []
        if not self.recording.exists():
            return out
        for line in self.recording.read_text().splitlines():
            r = json.loads(line)
            url = requests.utils.urlparse(r["url"])
            headers = {k.lower(): v for k, v in r["headers"].items()}
            out.append((r["method"], urllib.parse.unquote(url.path), urllib.parse.unquote(url.query), headers.get("range"), headers.get("authorization", "")))
        return out

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()


class FailingStore(http.server.ThreadingHTTPServer):
    """An endpoint that answers every request 503 and counts them."""

    def __init__(self):
        self.count = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _fail(self):
                outer.count += 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = _fail

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    d = tmp_path_factory.mktemp("s3")
    moto = Moto(d)
    failing = FailingStore()
    moto.s3.create_bucket(Bucket="lake", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    tables = {}
    for year in YEARS:
        tables[year] = table_for(year)
        moto.s3.put_object(Bucket="lake", Key=f"sales/events/year={year}/part-0.parquet",
                           Body=parquet_bytes(tables[year]))
    moto.s3.put_object(Bucket="lake", Key="sales/single/events.parquet", Body=parquet_bytes(tables["2023"]))
    # Not below the source's prefix: never listed or read.
    moto.s3.put_object(Bucket="lake", Key="other/secret.parquet", Body=parquet_bytes(tables["2023"]))
    mesh = d / "mesh"
    (mesh / "domains").mkdir(parents=True)
    (mesh / "secrets").mkdir()
    (mesh / "secrets" / "s3-secret").write_text("lake-secret\n")
    (mesh / "mesh.yaml").write_text(f"""apiVersion: meshgate/v1
kind: Mesh
name: s3lake
{sm.admin_auth_yaml()}sources:
  - name: lake
    kind: files
    options:
      url: s3://lake/sales/
      s3:
        endpoint: {moto.url}
        region: eu-west-1
        access_key_id: {{ env: LAKE_KEY_ID }}
        secret_access_key: {{ file: secrets/s3-secret }}
        path_style: true
        allow_http: true
      listing_cache_ttl_s: {LISTING_TTL_S}
  - name: broken_lake
    kind: files
    options:
      url: s3://lake/sales/
      s3: {{ endpoint: "http://127.0.0.1:{failing.server_address[1]}", allow_http: true, anonymous: true }}
      max_retries: 2
      retry_timeout_ms: 5000
""")
    (mesh / "domains" / "sales.yaml").write_text("""apiVersion: meshgate/v1
kind: DataProduct
domain: sales
name: events
owner: { team: sales }
ports:
  - { name: events, source: lake, location: events/, format: parquet }
  - { name: one_file, source: lake, location: single/events.parquet, format: parquet }
  - { name: mirror, source: broken_lake, location: events/, format: parquet }
""")
    os.environ["LAKE_KEY_ID"] = "lake-reader"
    try:
        gw = sm.Server(mesh)
    except Exception:
        moto.stop()
        raise
    yield gw, moto, failing, tables
    gw.stop()
    moto.stop()
    failing.shutdown()


def run(gw, sql):
    return sm.fetchall(gw.addr, sql, "admin", "admin-pw")


def object_gets(moto):
    """(key, range) of every GET of a Parquet object (not listings) since the last reset."""
    return [(path.removeprefix("/lake/"), rng) for method, path, query, rng, _ in moto.requests()
            if method == "GET" and path.endswith(".parquet")]


def bytes_requested(gets):
    total = 0
    for _, rng in gets:
        start, end = rng.removeprefix("bytes=").split("-")
        total += int(end) - int(start) + 1
    return total


def test_s3_ports_answer_with_signed_path_style_requests(lake):
    gw, moto, _, tables = lake
    moto.reset()
    got = run(gw, "SELECT count(*), sum(amount), min(id), max(id) FROM sales.events.events")
    everything = pa.concat_tables(tables.values())
    assert got[0][0] == 3 * ROWS
    assert abs(got[0][1] - pa.compute.sum(everything["amount"]).as_py()) < 1e-3
    assert (got[0][2], got[0][3]) == (2023_000_000, 2025_000_000 + ROWS - 1)
    seen = moto.requests()
    assert seen, "no request reached the store"
    # Path-style: the bucket is the first path segment; every request is signed with the key id.
    assert all(path.startswith("/lake") for _, path, _, _, _ in seen), seen
    assert all("Credential=lake-reader/" in auth and "/eu-west-1/s3/" in auth for *_, auth in seen), seen
    # Nothing outside the source's prefix is listed or read.
    assert not [r for r in seen if "other" in r[1] or "prefix=other" in r[2]], seen
    # The Hive directory is a column.
    assert run(gw, "SELECT year, count(*) FROM sales.events.events GROUP BY year ORDER BY year") == [
        (y, ROWS) for y in YEARS]
    # A port on one object.
    got = run(gw, "SELECT count(*), sum(amount) FROM sales.events.one_file")
    assert got[0][0] == ROWS and abs(got[0][1] - pa.compute.sum(tables["2023"]["amount"]).as_py()) < 1e-3


def test_partition_pruning_reads_only_the_kept_partitions(lake):
    gw, moto, _, tables = lake
    run(gw, "SELECT sum(amount) FROM sales.events.events WHERE year = '2024'")  # footers cached
    moto.reset()
    got = run(gw, "SELECT count(*), sum(amount) FROM sales.events.events WHERE year = '2024' AND amount > 500")
    t = tables["2024"]
    want = pa.compute.filter(t, pa.compute.greater(t["amount"], 500))
    assert got[0][0] == want.num_rows and abs(got[0][1] - pa.compute.sum(want["amount"]).as_py()) < 1e-3
    gets = object_gets(moto)
    assert gets and all(key.startswith("sales/events/year=2024/") for key, _ in gets), gets


def test_parquet_is_read_in_ranges_and_row_groups_are_pruned(lake):
    gw, moto, _, tables = lake
    base = 2024_000_000
    # Both queries read the id and amount columns of the 2024 file (footers are cached by the
    # previous test); the second one's filter keeps one row group of eight.
    moto.reset()
    whole = run(gw, f"SELECT sum(amount) FROM sales.events.events WHERE year = '2024' AND id >= {base}")
    whole_gets = object_gets(moto)
    moto.reset()
    lo, hi = base + 2 * ROW_GROUP, base + 3 * ROW_GROUP - 1
    one = run(gw, f"SELECT count(*), sum(amount) FROM sales.events.events WHERE year = '2024' "
                  f"AND id BETWEEN {lo} AND {hi}")
    one_gets = object_gets(moto)
    t = tables["2024"]
    assert abs(whole[0][0] - pa.compute.sum(t["amount"]).as_py()) < 1e-3
    assert one[0][0] == ROW_GROUP
    assert abs(one[0][1] - pa.compute.sum(t["amount"][2 * ROW_GROUP:3 * ROW_GROUP]).as_py()) < 1e-3
    # Every read of a Parquet object is a range request; no object is fetched whole.
    assert whole_gets and one_gets
    assert all(rng and rng.startswith("bytes=") for _, rng in whole_gets + one_gets), whole_gets + one_gets
    size = moto.s3.head_object(Bucket="lake", Key="sales/events/year=2024/part-0.parquet")["ContentLength"]
    whole_bytes, one_bytes = bytes_requested(whole_gets), bytes_requested(one_gets)
    assert whole_bytes < size, (whole_bytes, size)  # the note column is never read
    assert one_bytes * 4 < whole_bytes, (one_bytes, whole_bytes)


def test_the_page_index_prunes_pages_of_s3_objects(lake):
    gw, _, _, _ = lake
    base = 2024_000_000
    plan = "\n".join(r[1] for r in run(gw, f"""EXPLAIN ANALYZE SELECT sum(amount) FROM sales.events.events
        WHERE year = '2024' AND id BETWEEN {base + 100_000} AND {base + 100_099}"""))
    scan = [line for line in plan.splitlines() if "DataSourceExec" in line and "parquet" in line]
    assert scan, plan
    line = scan[0]
    # Row groups ruled out by statistics, and pages within the kept one by the page index.
    assert "row_groups_pruned_statistics=" in line and "page_index_rows_pruned=" in line, line
    pages = line.split("page_index_rows_pruned=")[1].split(",")[0]
    assert "matched" in pages, line
    total, matched = pages.split("→") if "→" in pages else pages.split("->")
    assert float(matched.strip().split()[0]) < float(total.strip().split()[0]), line


def test_listings_are_reused_for_the_ttl(lake):
    gw, moto, _, _ = lake

    def lists():
        return [r for r in moto.requests() if r[0] == "GET" and "list-type=2" in r[2]]

    count = "SELECT count(*) FROM sales.events.events"
    time.sleep(LISTING_TTL_S + 0.5)
    moto.reset()
    assert run(gw, count) == [(3 * ROWS,)]
    assert len(lists()) == 1  # the expired listing is fetched again
    moto.s3.put_object(Bucket="lake", Key="sales/events/year=2026/part-0.parquet",
                       Body=parquet_bytes(table_for("2026")))
    try:
        # Within the TTL the listing is reused: the new object is not seen yet.
        assert run(gw, count) == [(3 * ROWS,)]
        assert len(lists()) == 1
        time.sleep(LISTING_TTL_S + 0.5)
        assert run(gw, count) == [(4 * ROWS,)]
        assert len(lists()) == 2
    finally:
        moto.s3.delete_object(Bucket="lake", Key="sales/events/year=2026/part-0.parquet")


def test_retries_against_a_failing_store_are_bounded(lake):
    gw, _, failing, _ = lake
    # Each attempt to open the port (at start-up, then at most once a second on use) is one
    # listing that fails after 1 + max_retries requests.
    before = failing.count
    assert before > 0 and before % 3 == 0, before
    time.sleep(1.2)
    with pytest.raises(flightsql.Error) as e:
        run(gw, "SELECT count(*) FROM sales.events.mirror")
    msg = str(e.value)
    assert "UNAVAILABLE" in msg.upper() and "broken_lake" in msg and "503" in msg, msg
    assert failing.count - before == 3, (before, failing.count)
    # The healthy source keeps serving.
    assert run(gw, "SELECT count(*) FROM sales.events.one_file") == [(ROWS,)]


def test_the_s3_lake_example(lake, gateway, tmp_path):
    """config/examples/s3-lake against the moto server, with the demo's sales files uploaded
    as its README says; answers equal DuckDB's over the same files."""
    import shutil

    import duckdb

    from conftest import ROOT

    _, moto, _, _ = lake
    sales = gateway["data"] / "data" / "sales"
    for f in ("lineitem", "orders"):
        moto.s3.upload_file(str(sales / f"{f}.parquet"), "lake", f"sales/{f}.parquet")
    mesh = tmp_path / "s3-lake"
    shutil.copytree(ROOT / "config" / "examples" / "s3-lake", mesh)
    text = (mesh / "mesh.yaml").read_text()
    assert "http://127.0.0.1:9000" in text
    (mesh / "mesh.yaml").write_text(text.replace("http://127.0.0.1:9000", moto.url))
    os.environ["LAKE_ACCESS_KEY_ID"] = "lake-reader"
    os.environ["LAKE_SECRET_ACCESS_KEY"] = "lake-secret"
    gw = sm.Server(mesh)
    try:
        sql = """SELECT l_returnflag, count(*), sum(l_extendedprice) FROM {t}
                 WHERE l_shipdate < DATE '1995-01-01' GROUP BY l_returnflag ORDER BY 1"""
        got = sm.fetchall(gw.addr, sql.format(t="sales.orders.lineitem"), "analyst", "analyst-pw")
        want = duckdb.execute(sql.format(t=f"read_parquet('{sales / 'lineitem.parquet'}')")).fetchall()
        assert got == want and len(got) == 2, (got, want)
    finally:
        gw.stop()


@pytest.mark.parametrize("sql", [
    "SELECT * FROM 's3://lake/other/secret.parquet'",
    "SELECT * FROM 'meshgate://lake/other/secret.parquet'",
    "SELECT * FROM 'meshgate://lake/../other/secret.parquet'",
    "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'meshgate://lake/other/'",
    "COPY (SELECT 1) TO 'meshgate://lake/sales/events/year=2024/x.parquet'",
])
def test_sources_stores_are_not_reachable_by_url(lake, sql):
    """The stores registered for sources serve their ports only: a statement naming an object
    by url is refused, and no request for it reaches the store."""
    gw, moto, _, _ = lake
    moto.reset()
    with pytest.raises(flightsql.Error) as e:
        run(gw, sql)
    msg = str(e.value).upper()
    assert "INVALID_ARGUMENT" in msg or "INVALIDARGUMENT" in msg or "NOT_FOUND" in msg or "NOTFOUND" in msg \
        or "PERMISSION" in msg, e.value
    assert not [r for r in moto.requests() if "other" in r[1] or r[0] in ("PUT", "POST")], moto.requests()

"""A `flightsql` source whose server misbehaves (a pyarrow.flight server written here): a
truncated stream or batches of another type fail that query only, with an error naming the
source; the gateway keeps serving."""

import pathlib
import threading

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as flight
import pytest

import security_mesh as sm

SCHEMA = pa.schema([("x", pa.int64())])


class Hostile(flight.FlightServerBase):
    def __init__(self):
        super().__init__("grpc://127.0.0.1:0")
        self.mode = "ok"

    def get_flight_info(self, context, descriptor):
        return flight.FlightInfo(SCHEMA, descriptor, [flight.FlightEndpoint(b"t", [])], -1, -1)

    def do_get(self, context, ticket):
        good = pa.record_batch([pa.array([1, 2, 3], pa.int64())], schema=SCHEMA)
        if self.mode == "truncated":
            def batches():
                yield good
                raise flight.FlightServerError("connection lost mid-stream")
            return flight.GeneratorStream(SCHEMA, batches())
        if self.mode == "wrong_type":
            bad = pa.table({"x": pa.array(["abc", "def"])})
            return flight.RecordBatchStream(bad)
        return flight.RecordBatchStream(pa.Table.from_batches([good]))


@pytest.fixture
def hostile(tmp_path):
    server = Hostile()
    threading.Thread(target=server.serve, daemon=True).start()
    mesh = tmp_path / "mesh"
    (mesh / "domains").mkdir(parents=True)
    (mesh / "mesh.yaml").write_text(f"""apiVersion: meshgate/v1
kind: Mesh
name: hostile
auth: {{ anonymous: true }}
policies: {{ default_access: allow }}
sources:
  - name: odd_remote
    kind: flightsql
    options: {{ url: "grpc://127.0.0.1:{server.port}", statement_timeout_ms: 10000 }}
""")
    (mesh / "domains" / "p.yaml").write_text("""apiVersion: meshgate/v1
kind: DataProduct
domain: d
name: p
owner: { team: t }
ports:
  - { name: t, source: odd_remote, table: t }
""")
    gw = sm.Server(mesh)
    yield server, gw
    gw.stop()
    server.shutdown()


def run(gw, sql):
    with flightsql.connect(f"grpc://{gw.addr}") as c:
        cur = c.cursor()
        cur.execute(sql)
        return cur.fetch_arrow_table()


def test_a_misbehaving_remote_fails_only_its_query(hostile):
    server, gw = hostile
    # (The server answers every statement with the same rows: plain scans only here.)
    assert run(gw, "SELECT x FROM d.p.t").column("x").to_pylist() == [1, 2, 3]
    server.mode = "truncated"
    with pytest.raises(Exception) as e:
        run(gw, "SELECT x FROM d.p.t")
    assert "odd_remote" in str(e.value), str(e.value)
    server.mode = "wrong_type"
    with pytest.raises(Exception) as e:
        run(gw, "SELECT x FROM d.p.t")
    assert "odd_remote" in str(e.value) and "x" in str(e.value), str(e.value)
    # The gateway is fine and serves the remote again once it behaves.
    server.mode = "ok"
    assert run(gw, "SELECT x FROM d.p.t").column("x").to_pylist() == [1, 2, 3]
    assert gw.proc.poll() is None

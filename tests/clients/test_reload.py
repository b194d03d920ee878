"""Hot reload of the mesh directory while a long result is streaming; an invalid mesh is
refused and the old one keeps serving; SIGHUP reloads at once."""

import signal
import time

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow.flight as fl
import pytest
from google.protobuf import any_pb2

import flightsql.flightsql_pb2 as pb
import security_mesh as sm
from test_cli import live_copy

CRM = "domains/customers/crm.yaml"
NEW_PORT = """  - name: vip
    description: Customers with a large balance.
    source: crm_db
    query: "SELECT c_custkey, c_name FROM customer WHERE c_acctbal > 9000"
"""


def wait_for(path, text, since, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.read_text()[since:].count(text):
            return
        time.sleep(0.1)
    raise AssertionError(f"`{text}` not logged:\n{path.read_text()[since:]}")


def count(uri, sql):
    with flightsql.connect(uri, db_kwargs={"username": "platform", "password": "platform-pw"}) as c:
        cur = c.cursor()
        cur.execute(sql)
        return cur.fetchone()[0]


@pytest.fixture
def served(gateway, tmp_path):
    mesh = live_copy(gateway["data"], tmp_path / "mesh")
    server = sm.Server(mesh, extra=["--reload-interval-s", "1", "--audit-log", str(tmp_path / "audit.log")])
    yield {"mesh": mesh, "server": server, "uri": f"grpc://{server.addr}", "addr": server.addr}
    server.stop()


def test_reload_while_streaming_and_refuse_invalid(served):
    mesh, server, uri = served["mesh"], served["server"], served["uri"]
    total = count(uri, "SELECT count(*) FROM sales.orders.lineitem")
    client = fl.FlightClient(f"grpc+tcp://{served['addr']}")
    opts = fl.FlightCallOptions(headers=[client.authenticate_basic_token("platform", "platform-pw")])
    a = any_pb2.Any()
    a.Pack(pb.CommandStatementQuery(query="SELECT * FROM sales.orders.lineitem"), type_url_prefix="type.googleapis.com/")
    info = client.get_flight_info(fl.FlightDescriptor.for_command(a.SerializeToString()), opts)
    reader = client.do_get(info.endpoints[0].ticket, opts)
    first = reader.read_chunk().data
    assert first.num_rows > 0

    # A new port appears while the result is still streaming.
    mark = len(server.log_path.read_text())
    crm = mesh / CRM
    crm.write_text(crm.read_text().replace("  - name: nation\n", NEW_PORT + "  - name: nation\n"))
    wait_for(server.log_path, "mesh reloaded", mark)
    assert count(uri, "SELECT count(*) FROM customers.crm.vip") > 0
    rows = first.num_rows
    for chunk in reader:
        rows += chunk.data.num_rows
    assert rows == total, "the stream that started before the reload finished whole"

    # An invalid mesh is refused with its problems listed; the previous one keeps serving.
    mark = len(server.log_path.read_text())
    crm.write_text(crm.read_text().replace("source: crm_db\n    query:", "source: nowhere\n    query:"))
    wait_for(server.log_path, "mesh reload refused", mark)
    log = server.log_path.read_text()[mark:]
    assert "nowhere" in log and "not declared in mesh.yaml" in log, log
    assert count(uri, "SELECT count(*) FROM customers.crm.vip") > 0
    client.close()


def test_sighup_reloads_at_once(gateway, tmp_path):
    mesh = live_copy(gateway["data"], tmp_path / "mesh")
    server = sm.Server(mesh, extra=["--reload-interval-s", "0", "--audit-log", str(tmp_path / "audit.log")])
    try:
        uri = f"grpc://{server.addr}"
        crm = mesh / CRM
        crm.write_text(crm.read_text().replace("  - name: nation\n", NEW_PORT + "  - name: nation\n"))
        time.sleep(1.5)
        with pytest.raises(Exception, match="vip"):
            count(uri, "SELECT count(*) FROM customers.crm.vip")
        mark = len(server.log_path.read_text())
        server.proc.send_signal(signal.SIGHUP)
        wait_for(server.log_path, "mesh reloaded", mark)
        assert count(uri, "SELECT count(*) FROM customers.crm.vip") > 0
    finally:
        server.stop()

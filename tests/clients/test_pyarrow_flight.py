"""Raw protocol checks with pyarrow.flight: what JDBC and ODBC clients (not installable here)
do at connect, replayed call by call, and negative cases."""

import pyarrow as pa
import pyarrow.flight as fl
import pytest
from google.protobuf import any_pb2

import flightsql.flightsql_pb2 as pb


def any_of(msg):
    a = any_pb2.Any()
    a.Pack(msg, type_url_prefix="type.googleapis.com/")
    return a.SerializeToString()


@pytest.fixture(scope="module")
def client(gateway):
    c = fl.FlightClient(f"grpc+tcp://{gateway['addr']}")
    yield c
    c.close()


def bearer_options(client):
    header = client.authenticate_basic_token("platform", "platform-pw")
    assert header[0] == b"authorization"
    assert header[1].startswith(b"Bearer ")
    return fl.FlightCallOptions(headers=[header])


def test_handshake_returns_a_bearer_header(client):
    bearer_options(client)


def test_every_sql_info_id_is_in_the_proto_enum(client):
    """JDBC loads every SqlInfo into an enum map: an id outside the enum breaks it."""
    opts = bearer_options(client)
    info = client.get_flight_info(fl.FlightDescriptor.for_command(any_of(pb.CommandGetSqlInfo())), opts)
    assert len(info.endpoints) == 1 and list(info.endpoints[0].locations) == []
    table = client.do_get(info.endpoints[0].ticket, opts).read_all()
    assert table.schema.equals(info.schema)
    known = {v.number for v in pb.SqlInfo.DESCRIPTOR.values}
    ids = table.column("info_name").to_pylist()
    assert set(ids) <= known, set(ids) - known
    # DBeaver reads keywords and function lists; Tableau the SQL levels.
    for needed in (3, 504, 508, 509, 510, 511, 512, 522, 526, 528):
        assert needed in ids, needed


def test_jdbc_connect_sequence(client):
    """Handshake, all SqlInfo, catalogs, schemas, tables, table types, primary keys, then a
    prepared statement executed twice, as the JDBC driver does."""
    opts = bearer_options(client)
    for cmd in (
        pb.CommandGetCatalogs(),
        pb.CommandGetDbSchemas(),
        pb.CommandGetTables(include_schema=False),
        pb.CommandGetTableTypes(),
        pb.CommandGetPrimaryKeys(catalog="customers", db_schema="crm", table="nation"),
    ):
        info = client.get_flight_info(fl.FlightDescriptor.for_command(any_of(cmd)), opts)
        t = client.do_get(info.endpoints[0].ticket, opts).read_all()
        assert t.schema.equals(info.schema), type(cmd).__name__
        assert t.num_rows > 0, type(cmd).__name__
    req = pb.ActionCreatePreparedStatementRequest(query="SELECT r_name FROM customers.crm.region ORDER BY r_name")
    results = list(client.do_action(fl.Action("CreatePreparedStatement", any_of(req)), opts))
    res_any = any_pb2.Any()
    res_any.ParseFromString(results[0].body.to_pybytes())
    res = pb.ActionCreatePreparedStatementResult()
    res_any.Unpack(res)
    assert len(res.dataset_schema) > 0, "a query has a dataset schema (JDBC treats none as an update)"
    cmd = pb.CommandPreparedStatementQuery(prepared_statement_handle=res.prepared_statement_handle)
    for _ in range(2):
        info = client.get_flight_info(fl.FlightDescriptor.for_command(any_of(cmd)), opts)
        t = client.do_get(info.endpoints[0].ticket, opts).read_all()
        assert t.column(0).to_pylist() == ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"]
    close = pb.ActionClosePreparedStatementRequest(prepared_statement_handle=res.prepared_statement_handle)
    list(client.do_action(fl.Action("ClosePreparedStatement", any_of(close)), opts))
    # Handles are stateless (any replica serves them): one that was altered is refused.
    forged = bytearray(res.prepared_statement_handle)
    forged[-1] ^= 1
    cmd = pb.CommandPreparedStatementQuery(prepared_statement_handle=bytes(forged))
    with pytest.raises(pa.ArrowInvalid, match="not issued by this gateway or was altered"):
        client.get_flight_info(fl.FlightDescriptor.for_command(any_of(cmd)), opts)


def test_unsupported_calls_answer_unimplemented(client):
    opts = bearer_options(client)
    with pytest.raises(pa.ArrowNotImplementedError, match="not supported"):
        list(client.do_action(fl.Action("CloseSession", b""), opts))
    substrait = pb.CommandStatementSubstraitPlan()
    with pytest.raises(pa.ArrowNotImplementedError, match="Substrait"):
        client.get_flight_info(fl.FlightDescriptor.for_command(any_of(substrait)), opts)
    update = pb.CommandStatementUpdate(query="DELETE FROM sales.orders.orders")
    with pytest.raises(pa.ArrowNotImplementedError):
        writer, reader = client.do_put(fl.FlightDescriptor.for_command(any_of(update)), pa.schema([]), opts)
        writer.done_writing()
        reader.read()
        writer.close()


def test_bad_tickets_are_invalid_arguments(client):
    opts = bearer_options(client)
    for raw in (b"", b"garbage", any_of(pb.TicketStatementQuery(statement_handle=b"\x01\x01forged"))):
        with pytest.raises(pa.ArrowInvalid):
            client.do_get(fl.Ticket(raw), opts).read_all()


def test_dropping_a_stream_leaves_the_server_healthy(client):
    opts = bearer_options(client)
    q = pb.CommandStatementQuery(query="SELECT * FROM sales.orders.lineitem")
    for _ in range(20):
        info = client.get_flight_info(fl.FlightDescriptor.for_command(any_of(q)), opts)
        reader = client.do_get(info.endpoints[0].ticket, opts)
        reader.read_chunk()
        reader.cancel()
    info = client.get_flight_info(fl.FlightDescriptor.for_command(any_of(pb.CommandStatementQuery(query="SELECT 1"))), opts)
    assert client.do_get(info.endpoints[0].ticket, opts).read_all().num_rows == 1


def test_cancelling_before_the_first_batch_stops_the_query(client, gateway):
    """A query still working towards its first batch stops when the client resets the stream
    (what every client does to cancel)."""
    import time

    opts = bearer_options(client)
    heavy = pb.CommandStatementQuery(
        query="SELECT count(*) FROM sales.orders.lineitem a, sales.orders.lineitem b "
        "WHERE a.l_orderkey + b.l_orderkey < 0"
    )
    info = client.get_flight_info(fl.FlightDescriptor.for_command(any_of(heavy)), opts)
    log = gateway["data"] / "meshgate.log"
    before = log.read_text().count("client went away")
    reader = client.do_get(info.endpoints[0].ticket, opts)
    time.sleep(0.5)
    reader.cancel()
    deadline = time.time() + 30
    while time.time() < deadline and log.read_text().count("client went away") == before:
        time.sleep(0.1)
    assert log.read_text().count("client went away") > before, "the server kept working after the cancel"


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _cancel_flight_info(client, info, opts):
    """CancelFlightInfo (Flight RPC): body CancelFlightInfoRequest{info}, result status."""
    raw = info.serialize()
    body = b"\x0a" + _varint(len(raw)) + raw
    results = list(client.do_action(fl.Action("CancelFlightInfo", body), opts))
    status = results[0].body.to_pybytes()
    assert status[:1] == b"\x08", status
    return status[1]


BIG = "SELECT l.*, n.* FROM sales.orders.lineitem l, customers.crm.nation n"


def test_cancel_flight_info_stops_a_running_query(client):
    opts = bearer_options(client)
    cmd = pb.CommandStatementQuery(query=BIG)
    info = client.get_flight_info(fl.FlightDescriptor.for_command(any_of(cmd)), opts)
    reader = client.do_get(info.endpoints[0].ticket, opts)
    reader.read_chunk()
    assert _cancel_flight_info(client, info, opts) == 1  # CANCELLED
    with pytest.raises(fl.FlightCancelledError, match="cancelled"):
        while True:
            reader.read_chunk()


def test_a_query_cancelled_before_it_runs_is_refused_and_cancel_query_works(client):
    opts = bearer_options(client)
    cmd = pb.CommandStatementQuery(query="SELECT r_name FROM customers.crm.region")
    info = client.get_flight_info(fl.FlightDescriptor.for_command(any_of(cmd)), opts)
    assert _cancel_flight_info(client, info, opts) == 1
    with pytest.raises(pa.ArrowInvalid, match="cancelled"):
        client.do_get(info.endpoints[0].ticket, opts).read_all()
    # The Flight SQL action (deprecated, still sent by older clients).
    info = client.get_flight_info(fl.FlightDescriptor.for_command(any_of(cmd)), opts)
    req = pb.ActionCancelQueryRequest(info=info.serialize())
    results = list(client.do_action(fl.Action("CancelQuery", any_of(req)), opts))
    res_any = any_pb2.Any()
    res_any.ParseFromString(results[0].body.to_pybytes())
    res = pb.ActionCancelQueryResult()
    res_any.Unpack(res)
    assert res.result == pb.ActionCancelQueryResult.CANCEL_RESULT_CANCELLED
    with pytest.raises(pa.ArrowInvalid, match="cancelled"):
        client.do_get(info.endpoints[0].ticket, opts).read_all()

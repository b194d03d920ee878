"""OpenTelemetry traces exported over OTLP/gRPC to a collector on loopback (a grpcio server
implementing the OTLP TraceService from the opentelemetry-proto package): the spans of a
federated query, their parents, and the client's W3C trace context followed."""

import os
import secrets
import threading
import time
from concurrent import futures

import adbc_driver_flightsql.dbapi as flightsql
import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

import security_mesh as sm
from test_cli import live_copy


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self):
        self.spans = []
        self.lock = threading.Lock()

    def Export(self, request, context):
        with self.lock:
            for rs in request.resource_spans:
                resource = {a.key: a.value.string_value for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.spans.append((resource, span))
        return trace_service_pb2.ExportTraceServiceResponse()

    def trace(self, trace_id):
        with self.lock:
            return [(r, s) for r, s in self.spans if s.trace_id == trace_id]


@pytest.fixture
def traced(gateway, tmp_path):
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    mesh = live_copy(gateway["data"], tmp_path / "mesh")
    gw = sm.Server(mesh, extra=["--otlp-endpoint", f"http://127.0.0.1:{port}",
                                "--otlp-service-name", "meshgate-test"])
    yield {"collector": collector, "gw": gw}
    gw.stop()
    server.stop(0)


def attrs(span):
    out = {}
    for a in span.attributes:
        out[a.key] = getattr(a.value, a.value.WhichOneof("value"))
    return out


def wait_for(collector, trace_id, names, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        spans = collector.trace(trace_id)
        if names <= {s.name for _, s in spans}:
            return spans
        time.sleep(0.3)
    pytest.fail(f"spans {names} not exported; got {[s.name for _, s in collector.trace(trace_id)]}")


JOIN = """SELECT n.n_name, count(*) AS orders
FROM sales.orders.orders o
JOIN customers.crm.customer c ON o.o_custkey = c.c_custkey
JOIN customers.crm.nation n ON c.c_nationkey = n.n_nationkey
GROUP BY n.n_name"""


def test_a_federated_query_is_one_trace_under_the_clients_span(traced):
    collector = traced["collector"]
    trace_id, parent_id = secrets.token_bytes(16), secrets.token_bytes(8)
    traceparent = f"00-{trace_id.hex()}-{parent_id.hex()}-01"
    kwargs = {"username": "analyst", "password": "analyst-pw",
              "adbc.flight.sql.rpc.call_header.traceparent": traceparent}
    with flightsql.connect(f"grpc://{traced['gw'].addr}", db_kwargs=kwargs) as c:
        cur = c.cursor()
        cur.execute(JOIN)
        rows = cur.fetch_arrow_table().num_rows
    assert rows == 25
    spans = wait_for(collector, trace_id, {"query", "plan", "stream", "source_query", "flight_info"})
    by_name = {}
    for resource, s in spans:
        assert resource["service.name"] == "meshgate-test"
        by_name.setdefault(s.name, []).append(s)
    [query] = by_name["query"]
    # The DoGet's span continues the client's trace, under the client's span.
    assert query.parent_span_id == parent_id
    qa = attrs(query)
    assert qa["principal"] == "analyst" and qa["rpc"] == "DoGet/Statement"
    assert int(qa["rows"]) == 25 and qa["status"] == "OK" and "JOIN customers.crm.nation" in qa["sql"]
    # GetFlightInfo planned it first, in the same trace.
    assert by_name["flight_info"][0].parent_span_id == parent_id
    plans = [p for p in by_name["plan"] if p.parent_span_id == query.span_id]
    assert len(plans) == 1
    [stream] = by_name["stream"]
    assert stream.parent_span_id == query.span_id
    # One span per sub-query sent to a source: the lake's orders and the CRM database.
    sources = {}
    for s in by_name["source_query"]:
        assert s.parent_span_id == query.span_id
        a = attrs(s)
        sources[a["source"]] = sources.get(a["source"], 0) + int(a["rows"])
        assert "error" not in a
        assert query.start_time_unix_nano <= s.start_time_unix_nano <= s.end_time_unix_nano
    assert set(sources) == {"sales_lake", "crm_db"}
    assert sources["crm_db"] > 0 and sources["sales_lake"] > 0


def test_a_query_without_traceparent_starts_its_own_trace(traced):
    collector = traced["collector"]
    uri = f"grpc://{traced['gw'].addr}"
    with flightsql.connect(uri, db_kwargs={"username": "platform", "password": "platform-pw"}) as c:
        cur = c.cursor()
        cur.execute("SELECT count(*) FROM customers.crm.region")
        cur.fetchall()
    # Without a traceparent the query span is a root span of a trace of its own.
    deadline = time.time() + 30
    while time.time() < deadline:
        roots = [s for _, s in collector.spans if s.name == "query" and attrs(s).get("principal") == "platform"]
        if roots:
            break
        time.sleep(0.3)
    else:
        pytest.fail("no trace exported for a query without traceparent")
    assert roots[0].parent_span_id == b""
    children = {s.name for _, s in collector.trace(roots[0].trace_id)}
    assert {"plan", "stream"} <= children

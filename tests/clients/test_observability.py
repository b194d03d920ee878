"""The HTTP endpoints: /metrics parsed with the Prometheus client's own text parser, figures
equal to the queries actually run; /health/live and /health/ready."""

import json
import time
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
import pytest
from prometheus_client.parser import text_string_to_metric_families

import security_mesh as sm
from test_cli import live_copy


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read().decode()


def samples(http):
    status, text = get(http + "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def served(gateway, tmp_path):
    mesh = live_copy(gateway["data"], tmp_path / "mesh", [
        # A port whose file is missing: unavailable, listed by /health/ready.
        ("domains/sales/orders.yaml", "location: orders.parquet", "location: orders-missing.parquet"),
    ])
    server = sm.Server(mesh, extra=["--reload-interval-s", "1", "--audit-log", str(tmp_path / "audit.log")])
    yield {"mesh": mesh, "server": server, "uri": f"grpc://{server.addr}"}
    server.stop()


def run(uri, user, pw, sql):
    with flightsql.connect(uri, db_kwargs={"username": user, "password": pw}) as c:
        cur = c.cursor()
        cur.execute(sql)
        return cur.fetch_arrow_table()


def test_metrics_match_the_queries_run(served):
    uri, http = served["uri"], served["server"].http
    before = samples(http)
    rows = 0
    for _ in range(3):
        rows += run(uri, "analyst", "analyst-pw", "SELECT n_name FROM customers.crm.nation").num_rows
    run(uri, "platform", "platform-pw", "SELECT count(*) FROM supply.catalog.part")
    with pytest.raises(Exception):
        run(uri, "outsider-does-not-exist", "x", "SELECT 1")
    with pytest.raises(Exception):
        run(uri, "analyst", "analyst-pw", "SELECT * FROM sales.orders.orders")  # unavailable
    time.sleep(0.3)
    after = samples(http)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("meshgate_queries_total", status="Ok", principal="analyst") == 3
    assert delta("meshgate_queries_total", status="Ok", principal="platform") == 1
    assert delta("meshgate_queries_total", status="Unavailable", principal="analyst") == 1
    assert delta("meshgate_product_rows_returned_total", product="customers.crm") == rows == 75
    assert delta("meshgate_query_duration_seconds_count") == 5
    assert delta("meshgate_source_rows_read_total", source="crm_db") >= 75
    assert after[("meshgate_active_queries", ())] == 0
    assert after[("meshgate_ports", (("status", "unavailable"),))] >= 1
    assert after[("meshgate_memory_pool_reserved_bytes", ())] >= 0

    # A reload is counted.
    crm = served["mesh"] / "domains/customers/crm.yaml"
    crm.write_text(crm.read_text().replace("tags: [customers, tpch]", "tags: [customers, tpch, reloaded]"))
    deadline = time.time() + 20
    while time.time() < deadline:
        if samples(http).get(("meshgate_config_reloads_total", (("result", "applied"),)), 0) >= 1:
            break
        time.sleep(0.3)
    else:
        pytest.fail("reload not counted")


def test_health_endpoints(served):
    http = served["server"].http
    assert get(http + "/health/live") == (200, "ok\n")
    status, body = get(http + "/health/ready")
    assert status == 200
    ready = json.loads(body)
    assert ready["ready"] is True and ready["ports"] == 8
    assert [p["port"] for p in ready["unavailable_ports"]] == ["sales.orders.orders"]
    assert ready["unavailable_sources"] == ["sales_lake"]


def test_usage_per_consumer_and_product_survives_a_restart(gateway, tmp_path):
    mesh = live_copy(gateway["data"], tmp_path / "mesh")
    state = tmp_path / "state"
    extra = ["--state-dir", str(state), "--audit-log", str(tmp_path / "audit.log")]
    server = sm.Server(mesh, extra=extra)
    uri = f"grpc://{server.addr}"
    try:
        rows = sum(run(uri, "analyst", "analyst-pw", "SELECT n_name FROM customers.crm.nation").num_rows
                   for _ in range(3))
        run(uri, "platform", "platform-pw", "SELECT count(*) FROM supply.catalog.part")
        mine = run(uri, "analyst", "analyst-pw",
                   "SELECT principal, status, ports, rows, source_bytes_read FROM mesh.usage.queries").to_pylist()
        assert len(mine) == 3 and {r["principal"] for r in mine} == {"analyst"}, mine
        assert all(r["ports"] == "customers.crm.nation" and r["rows"] == 25 for r in mine), mine
        assert all(r["source_bytes_read"].startswith("crm_db=") for r in mine), mine
    finally:
        server.stop()
    # Restarted on the same state directory: the usage is still there.
    server = sm.Server(mesh, extra=extra)
    uri = f"grpc://{server.addr}"
    try:
        report = run(uri, "platform", "platform-pw",
                     "SELECT principal, product, queries, rows FROM mesh.usage.by_product "
                     "WHERE product IN ('customers.crm', 'supply.catalog') ORDER BY principal, product").to_pylist()
        assert {"principal": "analyst", "product": "customers.crm", "queries": 3, "rows": rows} in report, report
        assert {"principal": "platform", "product": "supply.catalog", "queries": 1, "rows": 1} in report, report
        assert (state / "usage.jsonl").exists()
    finally:
        server.stop()


def test_grpc_health_service(served):
    """The standard grpc.health.v1 service on the Flight SQL port, through grpcio's client."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(served["server"].addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ["", "arrow.flight.protocol.FlightService"]:
            r = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert r.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as e:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND

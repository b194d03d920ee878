"""The `meshgate.v1.Catalog` gRPC service on the Flight SQL port, through a grpcio client
generated from proto/meshgate/v1/catalog.proto at test time."""

import importlib
import sys

import grpc
import pytest
from grpc_tools import protoc

from conftest import ROOT


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    proto_dir = ROOT / "proto" / "proto"
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}",
                      str(proto_dir / "meshgate" / "v1" / "catalog.proto")])
    assert rc == 0
    sys.path.insert(0, str(out))
    pb = importlib.import_module("meshgate.v1.catalog_pb2")
    rpc = importlib.import_module("meshgate.v1.catalog_pb2_grpc")
    return pb, rpc


def basic(user, pw):
    import base64
    return [("authorization", "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode())]


def test_catalog_service_on_the_demo(gateway, stubs):
    pb, rpc = stubs
    with grpc.insecure_channel(gateway["addr"]) as ch:
        stub = rpc.CatalogStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            stub.ListDomains(pb.ListDomainsRequest(), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        md = basic("analyst", "analyst-pw")
        domains = stub.ListDomains(pb.ListDomainsRequest(), metadata=md, timeout=10).domains
        assert sorted(d.name for d in domains) == ["customers", "sales", "supply"]
        found = stub.ListProducts(pb.ListProductsRequest(text="MKTSEGMENT"), metadata=md, timeout=10).products
        assert [(p.domain, p.name) for p in found] == [("customers", "crm")]
        assert found[0].owner == "customer-platform" and found[0].health == "ok" and found[0].ports == 3
        tagged = stub.ListProducts(pb.ListProductsRequest(tag="tpch", domain="sales"), metadata=md, timeout=10).products
        assert [p.name for p in tagged] == ["orders"]
        owned = stub.ListProducts(pb.ListProductsRequest(owner="nobody"), metadata=md, timeout=10).products
        assert list(owned) == []
        product = stub.GetProduct(pb.GetProductRequest(domain="customers", product="crm"), metadata=md, timeout=10)
        customer = [p for p in product.ports if p.name == "customer"][0]
        cols = {c.name: c for c in customer.columns}
        assert cols["c_phone"].classification == "pii" and cols["c_phone"].masked
        assert not cols["c_custkey"].masked and cols["c_custkey"].type == "bigint" and cols["c_custkey"].required
        assert customer.location == "table customer" and customer.status == "ok" and customer.source_kind == "sqlite"
        with pytest.raises(grpc.RpcError) as e:
            stub.GetProduct(pb.GetProductRequest(domain="customers", product="nope"), metadata=md, timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_catalog_service_follows_grants_and_counts_usage(gateway, stubs):
    import adbc_driver_flightsql.dbapi as flightsql
    from security_mesh import Server
    from test_cli import live_copy
    import tempfile
    import pathlib

    pb, rpc = stubs
    tmp = pathlib.Path(tempfile.mkdtemp())
    server = Server(live_copy(gateway["data"], tmp / "mesh"), extra=["--audit-log", str(tmp / "audit.log")])
    try:
        with flightsql.connect(f"grpc://{server.addr}", db_kwargs={"username": "analyst", "password": "analyst-pw"}) as c:
            cur = c.cursor()
            for _ in range(2):
                cur.execute("SELECT count(*) FROM customers.crm.region")
                cur.fetchall()
        token = "mgt_D3HvsyVqY7BbdVSDHQnbFYVjZBnsAB56Ji-JSKtUF2Q"  # the demo's nightly-etl token
        with grpc.insecure_channel(server.addr) as ch:
            stub = rpc.CatalogStub(ch)
            etl = [("authorization", f"Bearer {token}")]
            names = [p.name for p in stub.ListProducts(pb.ListProductsRequest(), metadata=etl, timeout=10).products]
            assert sorted(names) == ["catalog", "orders"]
            with pytest.raises(grpc.RpcError) as e:
                stub.GetProduct(pb.GetProductRequest(domain="customers", product="crm"), metadata=etl, timeout=10)
            assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and "customer-platform" in e.value.details()
            admin = basic("platform", "platform-pw")
            usage = stub.GetProduct(pb.GetProductRequest(domain="customers", product="crm"), metadata=admin, timeout=10).usage
            assert (usage.queries, usage.rows, usage.consumers) == (2, 2, 1)
    finally:
        server.stop()


def test_server_reflection_lists_and_calls_services(gateway):
    """What grpcurl does with reflection: list the services, resolve a method's messages from
    the server's descriptors alone, and call it with messages built from them."""
    from google.protobuf import descriptor_pool, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(gateway["addr"]) as ch:
        db = ProtoReflectionDescriptorDatabase(ch)
        services = set(db.get_services())
        assert {"meshgate.v1.Catalog", "arrow.flight.protocol.FlightService", "grpc.health.v1.Health",
                "grpc.reflection.v1alpha.ServerReflection"} <= services, services
        pool = descriptor_pool.DescriptorPool(db)
        catalog = pool.FindServiceByName("meshgate.v1.Catalog")
        assert {m.name for m in catalog.methods} == {"ListDomains", "ListProducts", "GetProduct"}
        flight = pool.FindServiceByName("arrow.flight.protocol.FlightService")
        assert {m.name for m in flight.methods} >= {"Handshake", "GetFlightInfo", "DoGet", "DoAction", "ListActions"}
        assert pool.FindMessageTypeByName("arrow.flight.protocol.FlightData").fields_by_name["data_body"].number == 1000

        method = catalog.methods_by_name["ListProducts"]
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        call = ch.unary_unary("/meshgate.v1.Catalog/ListProducts",
                              request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=response_cls.FromString)
        request = request_cls(text="MKTSEGMENT")
        found = call(request, metadata=basic("analyst", "analyst-pw"), timeout=10).products
        assert [(p.domain, p.name) for p in found] == [("customers", "crm")]

        # The Flight service through reflection only: ListActions with the analyst's password.
        list_actions = flight.methods_by_name["ListActions"]
        empty = message_factory.GetMessageClass(list_actions.input_type)
        action_type = message_factory.GetMessageClass(list_actions.output_type)
        stream = ch.unary_stream("/arrow.flight.protocol.FlightService/ListActions",
                                 request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=action_type.FromString)
        actions = [a.type for a in stream(empty(), metadata=basic("analyst", "analyst-pw"), timeout=10)]
        assert "CreatePreparedStatement" in actions
        # Reflection tells the API, not the data: the calls still need credentials.
        with pytest.raises(grpc.RpcError) as e:
            call(request, timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED

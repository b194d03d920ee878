"""config/examples/two-gateways: the hub meshgate over the demo gateway as its sales domain,
queried with ADBC; the join of a remote and a local port equals the sales gateway's answer."""

import shutil

import adbc_driver_flightsql.dbapi as flightsql

import security_mesh as sm
from conftest import ROOT


def run(addr, user, pw, sql):
    return sm.fetchall(addr, sql, user, pw)


def test_the_two_gateway_example(gateway, tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    shutil.copytree(ROOT / "config" / "examples" / "two-gateways" / "hub", hub)
    mesh = hub / "mesh.yaml"
    mesh.write_text(mesh.read_text().replace("grpc://127.0.0.1:50061", f"grpc://{gateway['addr']}"))
    monkeypatch.setenv("SALES_GW_PASSWORD", "platform-pw")
    server = sm.Server(hub)
    try:
        got = run(server.addr, "analyst", "analyst-pw", """
            SELECT v.tier, count(*) AS orders, sum(o.o_totalprice) AS revenue
            FROM marketing.vip.orders o JOIN marketing.vip.customers v ON o.o_custkey = v.custkey
            GROUP BY v.tier ORDER BY v.tier""")
        want = run(gateway["addr"], "platform", "platform-pw", """
            SELECT CASE WHEN o_custkey = 2 THEN 'silver' ELSE 'gold' END AS tier, count(*) AS orders,
                   sum(o_totalprice) AS revenue
            FROM sales.orders.orders WHERE o_custkey IN (1, 2, 4, 7) GROUP BY 1 ORDER BY 1""")
        assert got == want and len(got) == 2, (got, want)
        # The hub has its own users: the sales gateway's `platform` is not one of them.
        try:
            run(server.addr, "platform", "platform-pw", "SELECT 1")
            raise AssertionError("unknown user accepted")
        except flightsql.Error as e:
            assert "authentication failed" in str(e).lower() or "unauthenticated" in str(e).lower()
    finally:
        server.stop()

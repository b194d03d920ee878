//! `flightsql` sources: a second meshgate as the remote of another (a mesh of gateways).

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use meshgate_tests::{admin_auth_yaml, demo_dir, query, write_file, TestGateway};

fn text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).expect("format").to_string()
}

/// The single value of a one-row, one-column answer.
fn scalar(batches: &[RecordBatch]) -> String {
    let t = text(batches);
    t.lines()
        .nth(3)
        .and_then(|l| l.split('|').nth(1))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no value in\n{t}"))
}

fn local_mesh(remote: &std::net::SocketAddr, password: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    write_file(d, "secrets/remote", password);
    write_file(
        d,
        "mesh.yaml",
        &format!(
            "apiVersion: meshgate/v1\nkind: Mesh\nname: local\n{}sources:\n  - name: sales_gw\n    kind: flightsql\n    options: {{ url: \"grpc://{remote}\", username: platform, password: {{ file: secrets/remote }}, dialect: datafusion, statement_timeout_ms: 30000 }}\n  - name: lake\n    kind: files\n    options: {{ url: data }}\n",
            admin_auth_yaml()
        ),
    );
    write_file(
        d,
        "data/vip.csv",
        "custkey,tier\n1,gold\n2,silver\n4,gold\n",
    );
    write_file(
        d,
        "domains/mkt/vip.yaml",
        "apiVersion: meshgate/v1\nkind: DataProduct\ndomain: mkt\nname: vip\nowner: { team: marketing }\nports:\n  - { name: customers, source: lake, location: vip.csv, format: csv }\n  - { name: orders, source: sales_gw, table: sales.orders.orders }\n  - name: big_orders\n    source: sales_gw\n    query: \"SELECT o_orderkey, o_totalprice FROM sales.orders.orders WHERE o_totalprice > 300000\"\n",
    );
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_meshgate_serves_ports_pushes_sub_plans_and_joins_with_local_ones() {
    let remote = TestGateway::start(&demo_dir()).await;
    let mut r = remote.client().await;
    let mesh = local_mesh(&remote.addr, "platform-pw");
    let local = TestGateway::start(mesh.path()).await;
    let mut c = local.client().await;

    // A whole port, and an aggregate, equal to the remote's own answers.
    let count = "SELECT count(*) AS n FROM sales.orders.orders";
    let want = scalar(&query(&mut r, count).await.expect("remote count"));
    let got = scalar(
        &query(&mut c, "SELECT count(*) AS n FROM mkt.vip.orders")
            .await
            .expect("count through the remote"),
    );
    assert_eq!(got, want);

    // The aggregate and filter are pushed to the remote as SQL.
    let plan = text(
        &query(
            &mut c,
            "EXPLAIN SELECT o_orderstatus, count(*) FROM mkt.vip.orders WHERE o_totalprice > 1000 GROUP BY o_orderstatus",
        )
        .await
        .expect("explain"),
    );
    assert!(
        plan.contains("VirtualExecutionPlan name=sales_gw")
            && plan.contains("GROUP BY")
            && plan.contains("o_totalprice > 1000"),
        "{plan}"
    );
    let grouped = "SELECT o_orderstatus, count(*) AS n FROM {t} WHERE o_totalprice > 1000 GROUP BY o_orderstatus ORDER BY o_orderstatus";
    assert_eq!(
        text(
            &query(&mut c, &grouped.replace("{t}", "mkt.vip.orders"))
                .await
                .expect("local")
        ),
        text(
            &query(&mut r, &grouped.replace("{t}", "sales.orders.orders"))
                .await
                .expect("remote")
        )
    );

    // A join of a local file port with the remote port: the local side runs here.
    let joined = scalar(
        &query(
            &mut c,
            "SELECT count(*) AS n FROM mkt.vip.orders o JOIN mkt.vip.customers v ON o.o_custkey = v.custkey WHERE v.tier = 'gold'",
        )
        .await
        .expect("join"),
    );
    let want = scalar(
        &query(
            &mut r,
            "SELECT count(*) AS n FROM sales.orders.orders WHERE o_custkey IN (1, 4)",
        )
        .await
        .expect("remote reference"),
    );
    assert_eq!(joined, want);
    assert_ne!(joined, "0", "the reference must not be vacuous");

    // A query port.
    let big = scalar(
        &query(&mut c, "SELECT count(*) AS n FROM mkt.vip.big_orders")
            .await
            .expect("query port"),
    );
    let want = scalar(
        &query(
            &mut r,
            "SELECT count(*) AS n FROM sales.orders.orders WHERE o_totalprice > 300000",
        )
        .await
        .expect("remote"),
    );
    assert_eq!(big, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_errors_name_the_source_and_keep_their_class() {
    let remote = TestGateway::start(&demo_dir()).await;
    // Wrong password: the remote refuses us; the port is unavailable, naming the source.
    let mesh = local_mesh(&remote.addr, "wrong-password");
    let local = TestGateway::start(mesh.path()).await;
    let mut c = local.client().await;
    let e = query(&mut c, "SELECT count(*) FROM mkt.vip.orders")
        .await
        .expect_err("refused by the remote");
    assert!(
        e.message().contains("sales_gw") && e.message().contains("Unauthenticated"),
        "{e}"
    );
    // Local ports still serve.
    let n = scalar(
        &query(&mut c, "SELECT count(*) AS n FROM mkt.vip.customers")
            .await
            .expect("local"),
    );
    assert_eq!(n, "3");

    // A remote that is gone.
    let addr = remote.addr;
    drop(remote);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mesh = local_mesh(&addr, "platform-pw");
    let local = TestGateway::start(mesh.path()).await;
    let mut c = local.client().await;
    let e = query(&mut c, "SELECT count(*) FROM mkt.vip.orders")
        .await
        .expect_err("remote down");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    assert!(e.message().contains(&addr.to_string()), "{e}");
}

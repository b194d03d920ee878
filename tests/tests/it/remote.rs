//! `flightsql` sources: a second meshgate as the remote of another (a mesh of gateways).

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use meshgate_tests::{admin_auth_yaml, demo_dir, query, write_file, TestGateway};
use tonic::transport::Channel;

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
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        remote.shutdown_and_wait(),
    )
    .await
    .expect("the remote stops");
    let mesh = local_mesh(&addr, "platform-pw");
    let local = TestGateway::start(mesh.path()).await;
    let mut c = local.client().await;
    let e = query(&mut c, "SELECT count(*) FROM mkt.vip.orders")
        .await
        .expect_err("remote down");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    assert!(e.message().contains(&addr.to_string()), "{e}");
}

async fn client_as(gw: &TestGateway, user: &str, pw: &str) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", gw.addr))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut c = FlightSqlServiceClient::new(channel);
    c.handshake(user, pw).await.expect("handshake");
    c
}

/// A remote meshgate that trusts gateway `hub` (key in secrets/hub.key) when it logs in as
/// `hub-svc`; its ledger is readable by group `finance` (alice) and by `hub-svc` itself (the
/// hub opens its ports with it; with forwarding, data statements run as the caller).
fn trusting_remote() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let hash = |pw: &str| meshgate::security::authn::hash_password(pw).expect("hash");
    write_file(d, "secrets/hub.key", "0123456789abcdef0123456789abcdef-hub");
    write_file(d, "data/entries.csv", "id,amount\n1,10\n2,20\n3,30\n");
    write_file(
        d,
        "mesh.yaml",
        &format!(
            "apiVersion: meshgate/v1\nkind: Mesh\nname: remote\nauth:\n  users:\n    - {{ name: hub-svc, password_hash: \"{}\", groups: [] }}\n    - {{ name: alice, password_hash: \"{}\", groups: [finance] }}\n  trusted_gateways:\n    - {{ name: hub, key: {{ file: secrets/hub.key }}, principals: [hub-svc] }}\npolicies: {{ default_access: deny }}\nsources:\n  - {{ name: books, kind: files, options: {{ url: data }} }}\n",
            hash("hub-svc-pw"),
            hash("alice-remote-pw")
        ),
    );
    write_file(
        d,
        "domains/fin/ledger.yaml",
        "apiVersion: meshgate/v1\nkind: DataProduct\ndomain: fin\nname: ledger\nowner: { team: finance, email: fin@example.com }\naccess:\n  read: [group:finance, user:hub-svc]\nports:\n  - { name: entries, source: books, location: entries.csv, format: csv }\n",
    );
    dir
}

/// The hub: users alice and mallory; reads the remote's ledger as `hub-svc`, forwarding the
/// caller when `forward` is set, signed with `key`.
fn hub(remote: &std::net::SocketAddr, forward: bool, key: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let hash = |pw: &str| meshgate::security::authn::hash_password(pw).expect("hash");
    write_file(d, "secrets/svc", "hub-svc-pw");
    write_file(d, "secrets/hub.key", key);
    let fwd = if forward {
        ", forward_identity: { issuer: hub, key: { file: secrets/hub.key } }"
    } else {
        ""
    };
    write_file(
        d,
        "mesh.yaml",
        &format!(
            "apiVersion: meshgate/v1\nkind: Mesh\nname: hub\nauth:\n  users:\n    - {{ name: alice, password_hash: \"{}\", groups: [staff] }}\n    - {{ name: mallory, password_hash: \"{}\", groups: [staff] }}\npolicies: {{ default_access: allow }}\nsources:\n  - name: remote_gw\n    kind: flightsql\n    options: {{ url: \"grpc://{remote}\", username: hub-svc, password: {{ file: secrets/svc }}, dialect: datafusion{fwd} }}\n",
            hash("alice-pw"),
            hash("mallory-pw")
        ),
    );
    write_file(
        d,
        "domains/fin/mirror.yaml",
        "apiVersion: meshgate/v1\nkind: DataProduct\ndomain: fin\nname: mirror\nowner: { team: platform }\nports:\n  - { name: entries, source: remote_gw, table: fin.ledger.entries }\n",
    );
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_applies_its_policies_to_the_forwarded_caller() {
    let remote_dir = trusting_remote();
    let remote = TestGateway::start(remote_dir.path()).await;
    let key = "0123456789abcdef0123456789abcdef-hub";
    let sum = "SELECT sum(amount) AS s FROM fin.mirror.entries";

    // Forwarding: alice is in `finance` on the remote and reads; mallory is not and is
    // refused by the remote, naming its product.
    let with_fwd = hub(&remote.addr, true, key);
    let gw = TestGateway::start(with_fwd.path()).await;
    let mut alice = client_as(&gw, "alice", "alice-pw").await;
    assert_eq!(
        scalar(&query(&mut alice, sum).await.expect("alice reads")),
        "60"
    );
    let mut mallory = client_as(&gw, "mallory", "mallory-pw").await;
    let e = query(&mut mallory, sum).await.expect_err("mallory may not");
    // The refusal is the caller's (PERMISSION_DENIED), not the source's being unavailable;
    // the message carries the remote's reason and its product.
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    assert!(
        e.message().contains("remote refused the caller") && e.message().contains("fin.ledger"),
        "{e}"
    );

    // Without forwarding the remote sees only the hub's service account: it cannot tell
    // mallory from alice.
    let plain = hub(&remote.addr, false, key);
    let gw = TestGateway::start(plain.path()).await;
    let mut mallory = client_as(&gw, "mallory", "mallory-pw").await;
    assert_eq!(
        scalar(
            &query(&mut mallory, sum)
                .await
                .expect("as the service account")
        ),
        "60"
    );

    // An assertion signed with another key is refused.
    let forged = hub(&remote.addr, true, "another-key-another-key-another-key!");
    let gw = TestGateway::start(forged.path()).await;
    let mut alice = client_as(&gw, "alice", "alice-pw").await;
    let e = query(&mut alice, sum).await.expect_err("forged assertion");
    assert!(e.message().contains("Unauthenticated"), "{e}");
}

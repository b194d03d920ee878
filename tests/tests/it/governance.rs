//! Resource governance: admission control, time limits, values that cannot grow outside the
//! memory pool.

use futures::StreamExt;
use meshgate_tests::{demo_dir, query, to_status, TestGateway};

/// The demo mesh with `limits` added (data and secrets linked from the demo).
fn demo_with_limits(limits: &str) -> tempfile::TempDir {
    let demo = demo_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in ["data", "secrets", "domains"] {
        std::os::unix::fs::symlink(demo.join(entry), dir.path().join(entry)).expect("link");
    }
    let mesh = std::fs::read_to_string(demo.join("mesh.yaml")).expect("mesh.yaml");
    std::fs::write(
        dir.path().join("mesh.yaml"),
        format!("{mesh}\nlimits:\n{limits}"),
    )
    .expect("write mesh.yaml");
    dir
}

/// A query whose result is far larger than what the transport buffers.
const BIG: &str = "SELECT l.*, n.* FROM sales.orders.lineitem l, customers.crm.nation n";

/// Starts `sql` and reads its first batch; the stream stays open (and the query running).
async fn started(gw: &TestGateway, sql: &str) -> arrow_flight::decode::FlightRecordBatchStream {
    let mut c = gw.client().await;
    let info = c.execute(sql.into(), None).await.expect("plan");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut stream = c.do_get(ticket).await.expect("do_get");
    stream.next().await.expect("a batch").expect("ok");
    stream
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_over_the_limit_are_refused_naming_it_and_cheap_ones_still_answer() {
    let dir = demo_with_limits("  max_running_queries: 1\n  max_queued_queries: 0\n");
    let gw = TestGateway::start(dir.path()).await;
    let running = started(&gw, BIG).await;
    let mut c = gw.client().await;
    let e = query(&mut c, "SELECT count(*) FROM customers.crm.region")
        .await
        .expect_err("no slot, no queue");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
    assert!(e.message().contains("limits.max_queued_queries = 0"), "{e}");
    // Metadata, constants and the mesh catalog take no slot.
    query(&mut c, "SELECT 1").await.expect("constant");
    query(&mut c, "SELECT count(*) FROM mesh.catalog.ports")
        .await
        .expect("mesh catalog");
    c.get_catalogs().await.expect("metadata");
    let metrics = gw.metrics_text();
    assert!(metrics.contains("meshgate_queries_running 1"), "{metrics}");
    assert!(
        metrics.contains("meshgate_queries_rejected_total{principal=\"platform\"} 1"),
        "{metrics}"
    );
    // The slot comes back when the stream ends.
    drop(running);
    wait_until("the slot came back", || {
        gw.metrics_text().contains("meshgate_queries_running 0")
    })
    .await;
    query(&mut c, "SELECT count(*) FROM customers.crm.region")
        .await
        .expect("a slot is free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_query_waits_for_a_slot() {
    let dir = demo_with_limits("  max_running_queries: 1\n  queue_timeout_ms: 20000\n");
    let gw = TestGateway::start(dir.path()).await;
    let running = started(&gw, BIG).await;
    let mut c = gw.client().await;
    let waiting = tokio::spawn(async move {
        query(&mut c, "SELECT count(*) AS n FROM customers.crm.region").await
    });
    wait_until("the second query queues", || {
        gw.metrics_text().contains("meshgate_queries_queued 1")
    })
    .await;
    drop(running);
    let got = waiting.await.expect("join").expect("ran after the first");
    assert_eq!(meshgate_tests::row_count(&got), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_max_query_time_is_stopped_and_frees_its_slot() {
    let dir = demo_with_limits("  max_query_time_s: 1\n");
    let gw = TestGateway::start(dir.path()).await;
    let mut stream = started(&gw, BIG).await;
    // A client that reads slowly: the query may not outlive its budget.
    wait_until("the budget is spent", || {
        gw.metrics_text().contains("meshgate_queries_running 0")
    })
    .await;
    let mut error = None;
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            error = Some(to_status(e));
            break;
        }
    }
    let e = error.expect("the stream ends with an error, not silently");
    assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e}");
    assert!(e.message().contains("limits.max_query_time_s = 1"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_cannot_grow_outside_the_memory_pool() {
    let gw = TestGateway::start(&demo_dir()).await;
    let mut c = gw.client().await;
    for sql in [
        // A column argument: the plan-time check cannot see its size.
        "SELECT length(repeat(s, 127)) FROM (SELECT repeat('x', 16000000) AS s) t",
        // Each value passes the plan-time check; the batch of them does not.
        "SELECT max(length(repeat(c_name, 16000))) FROM customers.crm.customer",
        "SELECT max(length(lpad(c_name, 4000000))) FROM customers.crm.customer",
        // A recursive CTE doubling a string with `||`.
        "WITH RECURSIVE t(s, n) AS (SELECT 'x', 1 UNION ALL SELECT s || s, n + 1 FROM t WHERE n < 60) \
         SELECT max(length(s)) FROM t",
        "SELECT length(concat(s, s, s, s)) FROM (SELECT repeat('y', 15000000) AS s) t",
    ] {
        let e = query(&mut c, sql).await.expect_err(sql);
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{sql}: {e}");
        assert!(e.message().contains("the limit is"), "{sql}: {e}");
    }
    // Ordinary uses still work, `||` keeps its NULL semantics and its column name.
    let got = query(
        &mut c,
        "SELECT r_name || '-' || r_name, NULL || r_name AS n, repeat(r_name, 2) AS r \
         FROM customers.crm.region ORDER BY r_name LIMIT 1",
    )
    .await
    .expect("small values");
    let b = &got[0];
    assert_eq!(
        b.schema().field(0).name(),
        "customers.crm.region.r_name || Utf8(\"-\") || customers.crm.region.r_name"
    );
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&got)
        .expect("format")
        .to_string();
    assert!(
        text.contains("AFRICA-AFRICA") && text.contains("AFRICAAFRICA"),
        "{text}"
    );
    assert_eq!(b.column(1).null_count(), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_queries_end() {
    let dir = demo_with_limits("  max_recursion_depth: 50\n  max_recursive_rows: 100000\n");
    let gw = TestGateway::start(dir.path()).await;
    let mut c = gw.client().await;
    let endless =
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t";
    let e = query(&mut c, endless).await.expect_err("endless");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
    assert!(e.message().contains("limits.max_recursion_depth"), "{e}");
    let wide = "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t, customers.crm.nation WHERE n < 10) \
                SELECT count(*) FROM t";
    let e = query(&mut c, wide).await.expect_err("too many rows");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
    assert!(e.message().contains("limits.max_recursive_rows"), "{e}");
    // Within the bounds, the answer is right.
    let got = query(
        &mut c,
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 40) SELECT sum(n) AS s FROM t",
    )
    .await
    .expect("bounded");
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&got)
        .expect("format")
        .to_string();
    assert!(text.contains("| 820 |"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_running_queries_then_cancels_them() {
    let opts = meshgate::server::GatewayOptions {
        drain_timeout: std::time::Duration::from_millis(500),
        ..Default::default()
    };
    let gw = TestGateway::start_with(&demo_dir(), opts).await;
    let state = std::sync::Arc::clone(&gw.state);
    let mut held = started(&gw, BIG).await;
    let mut c = gw.client().await;
    assert!(meshgate::http::ready_json(&state).contains("\"ready\":true"));
    let stopping = tokio::spawn(gw.shutdown_and_wait());
    wait_until("readiness turns false", || {
        meshgate::http::ready_json(&state).contains("\"ready\":false")
    })
    .await;
    // No new query is taken while draining.
    let refused = query(&mut c, "SELECT count(*) FROM customers.crm.region").await;
    assert!(refused.is_err(), "a new query during the drain");
    // The running one is cancelled once the drain time is over, with an error.
    let mut error = None;
    while let Some(item) = held.next().await {
        if let Err(e) = item {
            error = Some(to_status(e));
            break;
        }
    }
    let e = error.expect("the held stream ends with an error");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    assert!(e.message().contains("shut down"), "{e}");
    tokio::time::timeout(std::time::Duration::from_secs(30), stopping)
        .await
        .expect("the server stops after the drain")
        .expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_past_its_query_rate_is_refused() {
    let dir = demo_with_limits("  principal_queries_per_minute: 2\n");
    let gw = TestGateway::start(dir.path()).await;
    let mut c = gw.client().await;
    let sql = "SELECT count(*) FROM customers.crm.region";
    query(&mut c, sql).await.expect("first");
    query(&mut c, sql).await.expect("second");
    let e = query(&mut c, sql).await.expect_err("past the rate");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
    assert!(
        e.message()
            .contains("limits.principal_queries_per_minute = 2"),
        "{e}"
    );
    query(&mut c, "SELECT 1")
        .await
        .expect("constants do not count");
}

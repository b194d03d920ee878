//! Queries across domains, checked against DataFusion over the data as generated; prepared
//! statements with parameters; message sizes; errors a user can act on.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use futures::StreamExt;
use meshgate_tests::{
    check_tpch, demo_dir, fetch, query, reference_context, row_count, TestGateway,
};

#[tokio::test]
async fn tpch_queries_match_the_generated_data() {
    // The demo: Parquet (sales), SQLite (customers, federated) and CSV (supply).
    let gw = TestGateway::start(&demo_dir()).await;
    let mut c = gw.client().await;
    let failures = check_tpch(&mut c, &reference_context().await).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn flight_info_schema_equals_streamed_schema() {
    let gw = TestGateway::start(&demo_dir()).await;
    let mut c = gw.client().await;
    let sql = "SELECT c.c_name, n.n_name, sum(o.o_totalprice) AS total, min(o.o_orderdate) AS first \
               FROM sales.orders.orders o JOIN customers.crm.customer c ON o.o_custkey = c.c_custkey \
               JOIN customers.crm.nation n ON c.c_nationkey = n.n_nationkey GROUP BY 1, 2";
    let info = c.execute(sql.into(), None).await.expect("info");
    let advertised = info.clone().try_decode_schema().expect("schema");
    let batches = fetch(&mut c, info).await.expect("fetch");
    assert_eq!(batches[0].schema().as_ref(), &advertised);
    assert_eq!(
        advertised.field(0).data_type(),
        &DataType::Utf8,
        "no view types on the wire"
    );
    assert_eq!(
        advertised.field(2).data_type(),
        &DataType::Decimal128(25, 2)
    );
    assert_eq!(
        advertised
            .field(0)
            .metadata()
            .get("ARROW:FLIGHT:SQL:REMARKS")
            .map(String::as_str),
        Some("Customer name.")
    );
}

#[tokio::test]
async fn full_fetch_in_messages_of_at_most_2_mib() {
    let gw = TestGateway::start(&demo_dir()).await;
    let mut c = gw.client().await;
    let info = c
        .execute("SELECT * FROM sales.orders.lineitem".into(), None)
        .await
        .expect("info");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut raw = gw.raw_client().await;
    let mut stream = raw.do_get(ticket).await.expect("do_get").into_inner();
    let (mut messages, mut largest) = (0, 0);
    while let Some(m) = stream.next().await {
        let m = m.expect("message");
        largest = largest.max(m.data_body.len() + m.data_header.len());
        messages += 1;
    }
    assert!(messages > 2);
    assert!(largest <= 2 << 20, "largest message {largest} bytes");
    let all = query(&mut c, "SELECT count(*) FROM sales.orders.lineitem")
        .await
        .expect("count");
    let n = all[0].column(0).as_primitive::<Int64Type>().value(0);
    let rows = query(&mut c, "SELECT * FROM sales.orders.lineitem")
        .await
        .expect("all rows");
    assert_eq!(row_count(&rows) as i64, n);
}

#[tokio::test]
async fn prepared_statements_with_parameters() {
    let gw = TestGateway::start(&demo_dir()).await;
    let mut c = gw.client().await;
    for sql in [
        "SELECT c_name FROM customers.crm.customer WHERE c_custkey = $1 AND c_nationkey = $2",
        "SELECT c_name FROM customers.crm.customer WHERE c_custkey = ? AND c_nationkey = ?",
    ] {
        let mut stmt = c.prepare(sql.into(), None).await.expect("prepare");
        assert_eq!(
            stmt.dataset_schema().expect("dataset").field(0).name(),
            "c_name"
        );
        let params = stmt.parameter_schema().expect("params").clone();
        assert_eq!(params.fields().len(), 2, "{params:?}");
        let truth = query(&mut c, "SELECT c_custkey, c_nationkey, c_name FROM customers.crm.customer ORDER BY c_custkey LIMIT 5")
            .await
            .expect("truth");
        let keys = truth[0].column(0).as_primitive::<Int64Type>().clone();
        let nations = truth[0].column(1).as_primitive::<Int64Type>().clone();
        let names = truth[0].column(2).as_string::<i32>().clone();
        // Many executions per handle, with new values each time.
        for i in 0..keys.len() {
            let schema = Arc::new(Schema::new(vec![
                Field::new("0", DataType::Int64, false),
                Field::new("1", DataType::Int64, false),
            ]));
            let batch = RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(Int64Array::from(vec![keys.value(i)])),
                    Arc::new(Int64Array::from(vec![nations.value(i)])),
                ],
            )
            .expect("batch");
            stmt.set_parameters(batch).expect("bind");
            let info = stmt.execute().await.expect("execute");
            let got = fetch(&mut c, info).await.expect("fetch");
            assert_eq!(row_count(&got), 1);
            assert_eq!(got[0].column(0).as_string::<i32>().value(0), names.value(i));
        }
        stmt.close().await.expect("close");
    }
}

#[tokio::test]
async fn prepared_statement_with_string_parameter_and_no_parameters() {
    let gw = TestGateway::start(&demo_dir()).await;
    let mut c = gw.client().await;
    let mut stmt = c
        .prepare(
            "SELECT count(*) AS n FROM customers.crm.nation WHERE n_name = $1".into(),
            None,
        )
        .await
        .expect("prepare");
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("$1", DataType::Utf8, false)])),
        vec![Arc::new(StringArray::from(vec!["FRANCE"]))],
    )
    .expect("batch");
    stmt.set_parameters(batch).expect("bind");
    let got = fetch(&mut c, stmt.execute().await.expect("execute"))
        .await
        .expect("fetch");
    assert_eq!(got[0].column(0).as_primitive::<Int64Type>().value(0), 1);

    let mut stmt = c
        .prepare(
            "SELECT r_name FROM customers.crm.region ORDER BY r_name".into(),
            None,
        )
        .await
        .expect("prepare");
    for _ in 0..3 {
        let got = fetch(&mut c, stmt.execute().await.expect("execute"))
            .await
            .expect("fetch");
        assert_eq!(row_count(&got), 5);
    }
}

#[tokio::test]
async fn unknown_tables_name_the_closest_ports() {
    let gw = TestGateway::start(&demo_dir()).await;
    let mut c = gw.client().await;
    let e = query(&mut c, "SELECT * FROM sales.orders.lineitems")
        .await
        .expect_err("unknown");
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(
        e.message().contains("sales.orders.lineitem"),
        "{}",
        e.message()
    );
    let e = query(&mut c, "SELECT * FROM customer")
        .await
        .expect_err("unqualified");
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(
        e.message().contains("customers.crm.customer"),
        "{}",
        e.message()
    );
    let e = query(&mut c, "SELECT no_such_column FROM customers.crm.region")
        .await
        .expect_err("column");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn ctes_subqueries_unions_windows_and_explain() {
    let gw = TestGateway::start(&demo_dir()).await;
    let mut c = gw.client().await;
    let sql = "WITH r AS (SELECT r_regionkey, r_name FROM customers.crm.region) \
               SELECT r_name, n_name, rank() OVER (PARTITION BY r_name ORDER BY n_name) AS k \
               FROM r JOIN customers.crm.nation ON n_regionkey = r_regionkey \
               WHERE n_nationkey IN (SELECT s_nationkey FROM supply.catalog.supplier) \
               UNION ALL SELECT 'none', 'none', 0";
    let got = query(&mut c, sql).await.expect("query");
    assert!(row_count(&got) > 1);
    let plan = query(&mut c, "EXPLAIN SELECT count(*) FROM sales.orders.orders")
        .await
        .expect("explain");
    assert!(row_count(&plan) > 0);
    let e = query(&mut c, "SELECT 1/0")
        .await
        .expect_err("division by zero");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
}

/// Two replicas sharing the ticket key, as behind a load balancer: a statement prepared and
/// bound on one executes on the other (the parameters travel in the handle DoPut returns);
/// a replica with another key refuses the handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_move_between_replicas_sharing_the_ticket_key() {
    use arrow_flight::sql::{
        ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
        CommandPreparedStatementQuery, DoPutPreparedStatementResult, ProstMessageExt,
    };
    use prost::Message;

    let shared = |secret: &[u8]| {
        let mut opts = meshgate::server::GatewayOptions::default();
        opts.flight.ticket_secret = Some(secret.to_vec());
        opts
    };
    let key = b"a secret every replica of this mesh shares, 32+ bytes";
    let a = TestGateway::start_with(&demo_dir(), shared(key)).await;
    let b = TestGateway::start_with(&demo_dir(), shared(key)).await;
    let other = TestGateway::start_with(
        &demo_dir(),
        shared(b"another mesh's secret, 32 bytes or more"),
    )
    .await;
    let (mut ca, mut cb, mut co) = (a.client().await, b.client().await, other.client().await);

    let create = ActionCreatePreparedStatementRequest {
        query: "SELECT count(*) AS n FROM customers.crm.nation WHERE n_regionkey = $1".into(),
        transaction_id: None,
    };
    let action =
        arrow_flight::Action::new("CreatePreparedStatement", create.as_any().encode_to_vec());
    let mut results = ca.do_action(action).await.expect("create on A");
    let body = results
        .message()
        .await
        .expect("result")
        .expect("a result")
        .body;
    let created: ActionCreatePreparedStatementResult = Any::decode(body)
        .expect("any")
        .unpack()
        .expect("unpack")
        .expect("result");

    // Bind $1 = 3 on A; A answers with a new handle carrying the parameters.
    let params = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![3]))],
    )
    .expect("params");
    let cmd = CommandPreparedStatementQuery {
        prepared_statement_handle: created.prepared_statement_handle.clone(),
    };
    let descriptor = arrow_flight::FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec());
    let data: Vec<_> = arrow_flight::encode::FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(descriptor))
        .build(futures::stream::iter(vec![Ok(params)]))
        .map(|d| d.expect("encode"))
        .collect()
        .await;
    let put = ca
        .do_put(futures::stream::iter(data))
        .await
        .expect("bind on A")
        .message()
        .await
        .expect("put result")
        .expect("a put result");
    let bound = DoPutPreparedStatementResult::decode(put.app_metadata)
        .expect("decode")
        .prepared_statement_handle
        .expect("a new handle");
    assert_ne!(bound, created.prepared_statement_handle);

    // Execute on B: same answer as A would give (5 nations in region 3, EUROPE).
    let cmd = CommandPreparedStatementQuery {
        prepared_statement_handle: bound.clone(),
    };
    let info = plan_command(&mut cb, &cmd).await.expect("plan on B");
    let got = fetch(&mut cb, info).await.expect("fetch on B");
    assert_eq!(got[0].column(0).as_primitive::<Int64Type>().value(0), 5);

    // A replica of another mesh (another key) refuses the handle, saying why.
    let e = plan_command(&mut co, &cmd).await.expect_err("another key");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    assert!(
        e.message()
            .contains("not issued by this gateway or was altered"),
        "{e}"
    );
}

/// GetFlightInfo for a Flight SQL command, with the client's session token.
async fn plan_command(
    c: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    cmd: &arrow_flight::sql::CommandPreparedStatementQuery,
) -> Result<arrow_flight::FlightInfo, tonic::Status> {
    use arrow_flight::sql::ProstMessageExt;
    use prost::Message;
    let descriptor = arrow_flight::FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec());
    let mut req = tonic::Request::new(descriptor);
    if let Some(t) = c.token() {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    c.inner_mut()
        .get_flight_info(req)
        .await
        .map(tonic::Response::into_inner)
}

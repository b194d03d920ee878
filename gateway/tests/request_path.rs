//! The request path (authenticate, authorize, plan, execute, record) and the engine over the
//! in-memory fake connector: no database, no network, no Flight client.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use meshgate::request::{CallMeta, Command, Rpc};
use meshgate::security::authn::Credentials;
use meshgate::state::{GatewayOptions, GatewayState};
use meshgate_connector::memory::MemoryFactory;
use meshgate_connector::Registry;

/// Hashes of `analyst-pw` and `platform-pw` (from the demo mesh).
const ANALYST_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$vO0W0jLvSZuViT250q2wwQ$8Afo9QeXQroCSV4EfR0/09ay6AlB2ySCKDDG7s0tvuM";
const PLATFORM_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$805DNqGv+2wfklqwKWYfsg$iGErO1zUe//Cu+ulXKx2PYxgdupfG6joi03H+FaKYxo";

fn people() -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("region", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec!["Ada", "Bo", "Cy"])),
            Arc::new(StringArray::from(vec!["EU", "US", "EU"])),
        ],
    )
    .expect("batch")
}

fn secrets() -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["launch code"]))],
    )
    .expect("batch")
}

fn write_mesh(dir: &Path) {
    let mesh = format!(
        r#"apiVersion: meshgate/v1
kind: Mesh
name: unit
sources:
  - {{ name: mem, kind: memory, options: {{ tables: [people, secrets] }} }}
auth:
  users:
    - {{ name: analyst, password_hash: "{ANALYST_HASH}", groups: [analysts, emea] }}
    - {{ name: platform, password_hash: "{PLATFORM_HASH}", groups: [admins, analysts] }}
  admin_groups: [admins]
policies:
  default_access: deny
  hash_key: {{ file: mask.key }}
  classifications:
    pii: {{ mask: redact, unmask_groups: [admins] }}
audit:
  file: audit.log
"#
    );
    std::fs::write(dir.join("mesh.yaml"), mesh).expect("mesh.yaml");
    std::fs::write(dir.join("mask.key"), "0123456789abcdef0123456789abcdef").expect("key");
    std::fs::create_dir_all(dir.join("domains/hr")).expect("domains");
    std::fs::write(
        dir.join("domains/hr/staff.yaml"),
        r#"apiVersion: meshgate/v1
kind: DataProduct
domain: hr
name: staff
owner: { team: hr, email: hr@example.com }
access:
  read: [group:analysts]
  row_filters:
    - { groups: [emea], ports: [people], where: "region = 'EU'" }
ports:
  - name: people
    source: mem
    table: people
    columns:
      - { name: id, type: bigint, required: true }
      - { name: name, type: string, classification: pii }
      - { name: region, type: string }
"#,
    )
    .expect("staff");
    std::fs::write(
        dir.join("domains/hr/vault.yaml"),
        r#"apiVersion: meshgate/v1
kind: DataProduct
domain: hr
name: vault
owner: { team: hr, email: hr@example.com }
access:
  read: [group:admins]
ports:
  - name: secrets
    source: mem
    table: secrets
    columns:
      - { name: k, type: string }
"#,
    )
    .expect("vault");
}

struct Fixture {
    state: Arc<GatewayState>,
    dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    write_mesh(dir.path());
    let mut registry = Registry::default();
    registry.register(Arc::new(
        MemoryFactory::default()
            .with_table("people", vec![people()])
            .with_table("secrets", vec![secrets()]),
    ));
    let state = GatewayState::for_dir(
        dir.path(),
        &registry,
        GatewayOptions::default(),
        tokio::runtime::Handle::current(),
    )
    .await
    .expect("state");
    Fixture { state, dir }
}

fn basic(user: &str, pw: &str) -> CallMeta {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
    CallMeta {
        credentials: Credentials {
            authorization: Some(format!("Basic {token}")),
            ..Credentials::default()
        },
        client: Some("127.0.0.1:9".into()),
        ..CallMeta::default()
    }
}

impl Fixture {
    /// Runs `sql` as `user` through the request path; the rows, or the status.
    async fn run(
        &self,
        user: &str,
        pw: &str,
        sql: &str,
    ) -> Result<Vec<RecordBatch>, tonic::Status> {
        let call = self
            .state
            .authenticate(Rpc::DoGet(Command::Statement), basic(user, pw))
            .await?;
        let (_, mut rx) = self.state.execute(call, sql, None).await?;
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            out.push(b?);
        }
        Ok(out)
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit json"))
            .collect()
    }

    /// Waits (at most 10 s) until the audit log has `n` records.
    async fn audit_records(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let records = self.audit();
            if records.len() >= n {
                return records;
            }
            assert!(std::time::Instant::now() < deadline, "audit: {records:?}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

fn strings(batches: &[RecordBatch], col: usize) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = datafusion::arrow::compute::cast(b.column(col), &DataType::Utf8).expect("cast");
            let a = a
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("utf8")
                .clone();
            (0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_is_filtered_masked_audited_counted_and_metered() {
    let f = fixture().await;
    let rows = f
        .run(
            "analyst",
            "analyst-pw",
            "SELECT id, name FROM hr.staff.people ORDER BY id",
        )
        .await
        .expect("query");
    // The row filter of `emea` keeps EU rows; `name` is PII, redacted for analysts.
    assert_eq!(strings(&rows, 0), vec![Some("1".into()), Some("3".into())]);
    assert!(
        strings(&rows, 1)
            .iter()
            .all(|n| n.as_deref() != Some("Ada") && n.as_deref() != Some("Cy")),
        "{:?}",
        strings(&rows, 1)
    );
    let admin = f
        .run(
            "platform",
            "platform-pw",
            "SELECT name FROM hr.staff.people ORDER BY id",
        )
        .await
        .expect("admin query");
    assert_eq!(
        strings(&admin, 0),
        vec![Some("Ada".into()), Some("Bo".into()), Some("Cy".into())]
    );

    let audit = f.audit_records(2).await;
    let first = &audit[0];
    assert_eq!(first["principal"], "analyst", "{first}");
    assert_eq!(first["rpc"], "DoGet/Statement", "{first}");
    assert_eq!(first["decision"], "allow", "{first}");
    assert!(
        first["ports"].to_string().contains("hr.staff.people"),
        "{first}"
    );
    assert_eq!(first["client"], "127.0.0.1:9", "{first}");

    let recent = f.state.usage().recent(|_| true);
    assert_eq!(recent.len(), 2, "{recent:?}");
    assert_eq!(recent[0].principal, "analyst");
    assert_eq!(recent[0].rows, 2);
    assert_eq!(recent[0].ports[0].to_string(), "hr.staff.people");

    let metrics = meshgate::http::metrics_text(&f.state);
    for line in [
        "meshgate_queries_total{status=\"Ok\",principal=\"analyst\"} 1",
        "meshgate_queries_total{status=\"Ok\",principal=\"platform\"} 1",
        "meshgate_product_rows_returned_total{product=\"hr.staff\"} 5",
        "meshgate_source_rows_read_total{source=\"mem\"} 6",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_ports_and_bad_credentials_are_refused_and_audited() {
    let f = fixture().await;
    let e = f
        .run("analyst", "analyst-pw", "SELECT k FROM hr.vault.secrets")
        .await
        .expect_err("not readable");
    assert!(
        matches!(
            e.code(),
            tonic::Code::PermissionDenied | tonic::Code::NotFound
        ),
        "{e}"
    );
    assert!(!e.message().contains("launch code"), "{e}");
    let e = f
        .run("analyst", "wrong", "SELECT 1")
        .await
        .expect_err("bad password");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
    assert!(!e.message().contains("wrong"), "{e}");

    let audit = f.audit_records(2).await;
    assert_eq!(audit[0]["decision"], "deny", "{audit:?}");
    assert_eq!(audit[0]["principal"], "analyst", "{audit:?}");
    assert_eq!(audit[1]["status"], "Unauthenticated", "{audit:?}");
    assert_eq!(audit[1]["principal"], serde_json::Value::Null, "{audit:?}");
    assert!(f.state.usage().recent(|_| true).iter().all(|r| r.rows == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_view_lists_only_readable_products() {
    let f = fixture().await;
    let analyst = f
        .state
        .authenticate(
            Rpc::FlightInfo(Command::Tables),
            basic("analyst", "analyst-pw"),
        )
        .await
        .expect("analyst");
    let admin = f
        .state
        .authenticate(
            Rpc::FlightInfo(Command::Tables),
            basic("platform", "platform-pw"),
        )
        .await
        .expect("admin");
    assert_eq!(f.state.view(&analyst).product_names("hr"), vec!["staff"]);
    assert_eq!(
        f.state.view(&admin).product_names("hr"),
        vec!["staff", "vault"]
    );
    let ports = |call| {
        f.state
            .view(call)
            .served()
            .into_iter()
            .map(|(p, _)| p.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ports(&analyst), vec!["hr.staff.people"]);
    assert_eq!(ports(&admin), vec!["hr.staff.people", "hr.vault.secrets"]);
    // The mesh system tables read the same view.
    let rows = f
        .run(
            "analyst",
            "analyst-pw",
            "SELECT product FROM mesh.catalog.ports ORDER BY product",
        )
        .await
        .expect("mesh.catalog.ports");
    assert_eq!(strings(&rows, 0), vec![Some("staff".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_password_storm_is_refused_without_checks_and_others_still_get_in() {
    let f = fixture().await;
    let from = |client: &str, pw: &str| {
        let mut m = basic("analyst", pw);
        m.client = Some(client.into());
        m
    };
    for _ in 0..meshgate::security::throttle::MAX_FAILURES {
        let e = f
            .state
            .authenticate(Rpc::Handshake, from("10.9.9.9:1000", "wrong"))
            .await
            .expect_err("wrong password");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }
    // Past the failures, even the right password from that address waits out the window,
    // and no check is spent on it.
    assert!(f.state.password_checks().backoff("10.9.9.9").is_some());
    let e = f
        .state
        .authenticate(Rpc::Handshake, from("10.9.9.9:1001", "analyst-pw"))
        .await
        .expect_err("backing off");
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    // Another client is not affected.
    f.state
        .authenticate(Rpc::Handshake, from("10.1.1.1:1000", "analyst-pw"))
        .await
        .expect("another address");
}

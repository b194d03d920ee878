//! The gateway binary under an address-space cap (`prlimit --as`) survives the queries that
//! used to build huge values outside the memory pool: each is refused with
//! RESOURCE_EXHAUSTED (or INVALID_ARGUMENT when the plan-time check sees it) and the process
//! goes on serving.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use tonic::transport::Channel;

/// 3 GiB of address space: the runtimes' thread stacks and a 256 MiB memory pool fit, a
/// 2 GiB string does not.
const ADDRESS_SPACE: u64 = 3 << 30;

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn connect(port: u16, child: &mut Child) -> FlightSqlServiceClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            child.try_wait().expect("status").is_none(),
            "the gateway exited at start-up"
        );
        if let Ok(ch) = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("url")
            .connect()
            .await
        {
            let mut c = FlightSqlServiceClient::new(ch);
            if c.handshake("platform", "platform-pw").await.is_ok() {
                return c;
            }
        }
        assert!(Instant::now() < deadline, "the gateway did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run(c: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Result<usize, tonic::Status> {
    let status = |e: arrow_flight::error::FlightError| match e {
        arrow_flight::error::FlightError::Tonic(s) => *s,
        other => tonic::Status::unknown(other.to_string()),
    };
    let info = c.execute(sql.into(), None).await.map_err(status)?;
    let mut rows = 0;
    for ep in info.endpoint {
        let ticket = ep.ticket.expect("ticket");
        let batches: Vec<_> = c
            .do_get(ticket)
            .await
            .map_err(status)?
            .try_collect()
            .await
            .map_err(status)?;
        rows += batches.iter().map(|b| b.num_rows()).sum::<usize>();
    }
    Ok(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_amplifiers_under_an_address_space_cap_leave_the_gateway_alive() {
    let dir = tempfile::tempdir().expect("tempdir");
    meshgate::demo::ensure_demo(dir.path(), 0.01, false).expect("demo");
    let port = free_port();
    let child = Command::new("prlimit")
        .arg(format!("--as={ADDRESS_SPACE}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_meshgate"))
        .args(["serve", "--config"])
        .arg(dir.path())
        .args(["--flight-addr", &format!("127.0.0.1:{port}")])
        .args(["--http-addr", "127.0.0.1:0", "--memory-limit-mb", "256"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prlimit runs the gateway");
    let mut gw = Gateway(child);
    let mut c = connect(port, &mut gw.0).await;
    for sql in [
        "SELECT length(repeat(s, 127)) FROM (SELECT repeat('x', 16000000) AS s) t",
        "WITH RECURSIVE t(s, n) AS (SELECT 'x', 1 UNION ALL SELECT s || s, n + 1 FROM t WHERE n < 40) \
         SELECT max(length(s)) FROM t",
        "SELECT max(length(repeat(c_name, 16000))) FROM customers.crm.customer",
        "SELECT max(length(s || s || s || s)) FROM (SELECT repeat(c_comment, 2000) AS s FROM customers.crm.customer) t",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
    ] {
        let e = run(&mut c, sql).await.expect_err(sql);
        assert!(
            matches!(
                e.code(),
                tonic::Code::ResourceExhausted | tonic::Code::InvalidArgument
            ),
            "{sql}: {e}"
        );
        assert!(gw.0.try_wait().expect("status").is_none(), "the gateway died on {sql}");
    }
    assert_eq!(run(&mut c, "SELECT 1").await.expect("still serving"), 1);
}

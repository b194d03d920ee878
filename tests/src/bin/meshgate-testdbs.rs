//! `meshgate-testdbs ENV_FILE [PG_PORT MYSQL_PORT]`: starts the test PostgreSQL and MariaDB
//! (on free ports unless given) once for a whole test run, loads TPC-H into them,
//! writes `NAME=value` lines (`MESHGATE_TEST_PG_URL`, `MESHGATE_TEST_MYSQL_URL` and their
//! statement logs) to the file given as the only argument, and stops both servers when its
//! standard input closes. `scripts/test.sh` runs it around `cargo nextest`.

use std::io::Read;

use meshgate_tests::dbs;

fn url(scheme: &str, a: &dbs::DbAddress) -> String {
    format!(
        "{scheme}://{}:{}@{}:{}/{}",
        a.user, a.password, a.host, a.port, a.database
    )
}

fn main() {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!("usage: meshgate-testdbs ENV_FILE  (stops when stdin closes)");
        std::process::exit(2);
    };
    let port = |i: usize| {
        std::env::args()
            .nth(i)
            .map(|p| p.parse::<u16>().expect("port"))
    };
    let pg = dbs::postgres_on(port(2));
    let my = dbs::mariadb_on(port(3));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        dbs::load_postgres(&pg.addr).await;
        dbs::load_mariadb(&my.addr).await;
    });
    let mut lines = vec![
        format!("MESHGATE_TEST_PG_URL={}", url("postgres", &pg.addr)),
        format!("MESHGATE_TEST_MYSQL_URL={}", url("mysql", &my.addr)),
    ];
    if let Some(l) = &pg.log {
        lines.push(format!("MESHGATE_TEST_PG_LOG={}", l.display()));
    }
    if let Some(l) = &my.log {
        lines.push(format!("MESHGATE_TEST_MYSQL_LOG={}", l.display()));
    }
    let tmp = format!("{out}.tmp");
    std::fs::write(&tmp, lines.join("\n") + "\n").expect("write env file");
    std::fs::rename(&tmp, &out).expect("rename env file");
    eprintln!(
        "test databases ready: PostgreSQL on {}, MariaDB on {}",
        pg.addr.port, my.addr.port
    );
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(pg);
    drop(my);
}

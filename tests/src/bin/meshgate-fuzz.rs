//! `meshgate-fuzz [--queries N] [--seed S] [--scale SF] [--no-shrink] [--max-failures N]
//! [--minutes M] [--verbose] [--from N] [--sql QUERY]`: differential testing of pushdown. Generated SELECTs run
//! through a gateway over PostgreSQL, MariaDB, SQLite, Parquet and a remote Flight SQL
//! server, and through DataFusion over the same data; failures are shrunk and printed with
//! the SQL each source received. Exits 1 when any query fails. `--sql` checks one query and
//! prints both answers' comparison, what each source received and the plan; `--from N`
//! replays a seed from its query N (queries before it are generated, not run).
//!
//! Databases: `MESHGATE_TEST_PG_URL` / `MESHGATE_TEST_MYSQL_URL` (as `scripts/test.sh` sets
//! them), or PostgreSQL and MariaDB started here from the Debian binaries.

use std::time::Duration;

use meshgate_tests::dbs;
use meshgate_tests::fuzz::{run, Env, FuzzConfig};

fn main() {
    let mut cfg = FuzzConfig::default();
    let mut one: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match a.as_str() {
            "--queries" => cfg.queries = value("--queries").parse().expect("a number"),
            "--seed" => cfg.seed = value("--seed").parse().expect("a number"),
            "--scale" => cfg.scale = value("--scale").parse().expect("a number"),
            "--max-failures" => {
                cfg.max_failures = value("--max-failures").parse().expect("a number")
            }
            "--minutes" => {
                cfg.time_limit =
                    Duration::from_secs(60 * value("--minutes").parse::<u64>().expect("a number"))
            }
            "--no-shrink" => cfg.shrink = false,
            "--from" => cfg.from = value("--from").parse().expect("a number"),
            "--sql" => one = Some(value("--sql")),
            "--verbose" => cfg.verbose = true,
            "--help" | "-h" => {
                println!("usage: meshgate-fuzz [--queries N] [--seed S] [--scale SF] [--no-shrink] [--max-failures N] [--minutes M] [--verbose] [--from N] [--sql QUERY]");
                return;
            }
            other => {
                eprintln!("unknown argument `{other}` (see --help)");
                std::process::exit(2);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pg = dbs::postgres();
    let my = dbs::mariadb();
    let report = rt.block_on(async {
        let mut env = Env::start(&pg.addr, &my.addr, cfg.scale).await;
        if let Some(sql) = &one {
            println!("{:?}", env.check(sql, false).await);
            println!("{}", env.answers(sql).await);
            for p in env.pushed(sql).await {
                println!("sent: {p}");
            }
            println!("{}", env.explain(sql).await);
            std::process::exit(0);
        }
        run(&mut env, &cfg).await
    });
    println!("{report}");
    if !report.failures.is_empty() {
        std::process::exit(1);
    }
}

//! Differential testing of pushdown (see `meshgate_tests::fuzz`): a fixed seed, every
//! source kind, no mismatch and no unexpected error allowed.

use meshgate_tests::dbs;
use meshgate_tests::fuzz::{run, Env, FuzzConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushdown_matches_datafusion() {
    let (pg, my) = tokio::task::spawn_blocking(|| (dbs::postgres(), dbs::mariadb()))
        .await
        .expect("start databases");
    let mut env = Env::start(&pg.addr, &my.addr, 0.001).await;
    let cfg = FuzzConfig {
        queries: 1_000,
        ..FuzzConfig::default()
    };
    let report = run(&mut env, &cfg).await;
    println!("{report}");
    assert!(report.failures.is_empty(), "{report}");
    assert_eq!(report.queries, cfg.queries, "{report}");
    // The fuzzer proves something only if pushdown happens: every SQL source gets whole
    // statements with joins and aggregates.
    for source in ["pg_src", "my_src", "lite_src", "remote_src"] {
        assert!(
            report.statements.get(source).copied().unwrap_or(0) > 100,
            "{source} received few statements: {report}"
        );
    }
    for construct in [" JOIN ", "GROUP BY", " OVER (", "EXISTS (", "LIMIT", "LIKE"] {
        assert!(
            report.constructs.get(construct).copied().unwrap_or(0) > 10,
            "few pushed statements with `{construct}`: {report}"
        );
    }
}

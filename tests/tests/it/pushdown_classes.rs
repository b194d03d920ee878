//! One regression test per class of pushdown bug (found by users, by the survey and
//! by `meshgate-fuzz`), each a minimal query over every SQL source kind of the fuzz mesh
//! (PostgreSQL, MariaDB in a case-insensitive collation, SQLite with `COLLATE NOCASE`
//! strings, a remote meshgate) and Parquet, checked against DataFusion over the same data.
//! Where a class is about what is pushed, the test also checks the statement the source
//! received, so that it cannot pass by running everything in the gateway.

use meshgate_tests::dbs::{self, TestDb};
use meshgate_tests::fuzz::{Env, Outcome};

const SQL_SOURCES: &[&str] = &["pg", "my", "lite", "remote"];
const ALL_SOURCES: &[&str] = &["pg", "my", "lite", "remote", "lake"];

struct Fixture {
    env: Env,
    _pg: TestDb,
    _my: TestDb,
}

async fn fixture() -> Fixture {
    let (pg, my) = tokio::task::spawn_blocking(|| (dbs::postgres(), dbs::mariadb()))
        .await
        .expect("start databases");
    let env = Env::start(&pg.addr, &my.addr, 0.001).await;
    Fixture {
        env,
        _pg: pg,
        _my: my,
    }
}

impl Fixture {
    /// Every query `template` makes for each of `sources` (`{s}` is the source domain)
    /// answers as DataFusion does; returns what each source received.
    async fn same_answers(
        &mut self,
        sources: &[&str],
        template: &str,
        ordered: bool,
    ) -> Vec<String> {
        let mut sent = Vec::new();
        for s in sources {
            let sql = template.replace("{s}", s);
            let outcome = self.env.check(&sql, ordered).await;
            assert_eq!(outcome, Outcome::Pass, "{sql}");
            sent.extend(self.env.pushed(&sql).await);
        }
        sent
    }
}

/// Some statement sent to `source` (`pg_src`, ...) contains every one of `needles`.
fn pushed_to(sent: &[String], source: &str, needles: &[&str]) -> bool {
    sent.iter().any(|p| {
        (p.starts_with(&format!("{source}:")) || p.starts_with(&format!("{source} (scan):")))
            && needles.iter().all(|n| p.contains(n))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_empty_select_list_for_unused_tables() {
    let mut f = fixture().await;
    let sent = f
        .same_answers(
            SQL_SOURCES,
            "SELECT extract(year FROM o.o_orderdate) AS y FROM {s}.tpch.orders o, {s}.tpch.nation n1 ORDER BY y LIMIT 1",
            true,
        )
        .await;
    assert!(pushed_to(&sent, "lite_src", &["CROSS JOIN"]), "{sent:#?}");
    f.same_answers(
        ALL_SOURCES,
        "SELECT count(*) FROM {s}.tpch.nation, {s}.tpch.region",
        false,
    )
    .await;
    f.same_answers(ALL_SOURCES, "SELECT 1 AS one FROM {s}.tpch.region", false)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_schema_qualified_table_names() {
    let mut f = fixture().await;
    // The PostgreSQL ports are declared `table: fuzz.<name>`.
    let sent = f
        .same_answers(
            &["pg"],
            "SELECT c_acctbal, c_name FROM {s}.tpch.customer ORDER BY c_custkey LIMIT 1",
            false,
        )
        .await;
    assert!(
        pushed_to(&sent, "pg_src", &["\"fuzz\".\"customer\" AS"]),
        "{sent:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_unaliased_aggregates_and_constants() {
    let mut f = fixture().await;
    let sent = f
        .same_answers(
            SQL_SOURCES,
            "SELECT ps_suppkey, sum(ps_availqty), count(*), 1, 'x' FROM {s}.tpch.partsupp GROUP BY ps_suppkey",
            false,
        )
        .await;
    assert!(
        pushed_to(&sent, "my_src", &["sum(", "GROUP BY"]),
        "{sent:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_decorrelated_subquery_aliases() {
    let mut f = fixture().await;
    for q in [
        "SELECT n_name FROM {s}.tpch.nation WHERE n_regionkey IN (SELECT r_regionkey FROM {s}.tpch.region WHERE r_name LIKE 'A%')",
        "SELECT n_name FROM {s}.tpch.nation n WHERE EXISTS (SELECT 1 FROM {s}.tpch.supplier s WHERE s.s_nationkey = n.n_nationkey)",
        "SELECT n_name FROM {s}.tpch.nation n WHERE NOT EXISTS (SELECT 1 FROM {s}.tpch.customer c WHERE c.c_nationkey = n.n_nationkey AND c.c_acctbal > 9000)",
    ] {
        let sent = f.same_answers(SQL_SOURCES, q, false).await;
        assert!(pushed_to(&sent, "pg_src", &["EXISTS ("]), "{q}: {sent:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_ranking_window_without_frame() {
    let mut f = fixture().await;
    let sent = f
        .same_answers(
            SQL_SOURCES,
            "SELECT n_name, rank() OVER (PARTITION BY n_regionkey ORDER BY n_name) AS r, \
             row_number() OVER (ORDER BY n_nationkey) AS rn, \
             sum(n_nationkey) OVER (PARTITION BY n_regionkey) AS s FROM {s}.tpch.nation",
            false,
        )
        .await;
    assert!(pushed_to(&sent, "my_src", &["rank() OVER ("]), "{sent:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_self_join_same_named_columns() {
    let mut f = fixture().await;
    let sent = f
        .same_answers(
            SQL_SOURCES,
            "SELECT n1.n_name AS a, n2.n_name AS b FROM {s}.tpch.nation n1 JOIN {s}.tpch.nation n2 \
             ON n1.n_regionkey = n2.n_regionkey WHERE n1.n_nationkey < n2.n_nationkey",
            false,
        )
        .await;
    assert!(pushed_to(&sent, "pg_src", &["JOIN"]), "{sent:#?}");
    f.same_answers(
        SQL_SOURCES,
        "SELECT d.a, d.b FROM (SELECT n1.n_name AS a, n2.n_name AS b, n1.n_nationkey AS k \
         FROM {s}.tpch.nation n1 JOIN {s}.tpch.nation n2 ON n1.n_nationkey = n2.n_regionkey) d WHERE d.k > 1",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_internal_expression_names() {
    let mut f = fixture().await;
    f.same_answers(
        SQL_SOURCES,
        "SELECT n_nationkey + 6, count(*) FROM {s}.tpch.nation GROUP BY n_nationkey + 6",
        false,
    )
    .await;
    f.same_answers(
        SQL_SOURCES,
        "SELECT s.a + 6 FROM (SELECT n_nationkey AS a FROM {s}.tpch.nation) s WHERE s.a + 6 > 10",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_aggregate_and_group_key_order() {
    let mut f = fixture().await;
    for q in [
        "SELECT max(n_name), min(n_nationkey), count(*), n_regionkey FROM {s}.tpch.nation GROUP BY n_regionkey ORDER BY n_regionkey",
        "SELECT count(*), n_regionkey FROM {s}.tpch.nation GROUP BY n_regionkey ORDER BY n_regionkey",
    ] {
        f.same_answers(SQL_SOURCES, q, true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_column_and_star_projection() {
    let mut f = fixture().await;
    f.same_answers(
        SQL_SOURCES,
        "SELECT r_name AS name, * FROM {s}.tpch.region",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_alias_outside_its_subquery() {
    let mut f = fixture().await;
    f.same_answers(
        SQL_SOURCES,
        "SELECT x.a FROM (SELECT y.b AS a FROM (SELECT n_name AS b, n_regionkey AS r FROM {s}.tpch.nation) y \
         WHERE y.r > 1) x JOIN {s}.tpch.nation z ON x.a = z.n_name",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_qualified_names_across_sources() {
    let mut f = fixture().await;
    for (a, b) in [("pg", "my"), ("lite", "remote"), ("my", "lake")] {
        let q = format!(
            "SELECT n1.n_name, n2.n_regionkey FROM {a}.tpch.nation n1 JOIN {b}.tpch.nation n2 ON n1.n_nationkey = n2.n_nationkey"
        );
        assert_eq!(f.env.check(&q, false).await, Outcome::Pass, "{q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_limit_offset() {
    let mut f = fixture().await;
    let sent = f
        .same_answers(
            SQL_SOURCES,
            "SELECT n_name FROM {s}.tpch.nation ORDER BY n_nationkey LIMIT 3 OFFSET 2",
            true,
        )
        .await;
    assert!(
        pushed_to(&sent, "my_src", &["LIMIT 3 OFFSET 2"]),
        "{sent:#?}"
    );
    let sent = f
        .same_answers(
            SQL_SOURCES,
            "SELECT n_name FROM {s}.tpch.nation ORDER BY n_nationkey OFFSET 20",
            true,
        )
        .await;
    assert!(
        pushed_to(&sent, "lite_src", &["LIMIT -1 OFFSET 20"]),
        "{sent:#?}"
    );
    assert!(pushed_to(&sent, "my_src", &["OFFSET 20"]), "{sent:#?}");
    f.same_answers(
        SQL_SOURCES,
        "SELECT t.k FROM (SELECT n_nationkey AS k FROM {s}.tpch.nation ORDER BY n_nationkey LIMIT 10) t \
         ORDER BY t.k LIMIT 3 OFFSET 4",
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_left_join_filters_stay_where_they_are() {
    let mut f = fixture().await;
    for q in [
        "SELECT n_name, r_name FROM {s}.tpch.nation LEFT JOIN {s}.tpch.region ON n_regionkey = r_regionkey \
         AND r_name = 'ASIA' WHERE n_nationkey < 10",
        "SELECT n_name FROM {s}.tpch.nation LEFT JOIN {s}.tpch.region ON n_regionkey = r_regionkey \
         AND r_name = 'ASIA' WHERE r_name IS NULL",
        "SELECT e1.id, e2.id FROM {s}.tpch.edge e1 LEFT JOIN {s}.tpch.edge e2 ON e1.n = e2.n AND e2.id > 5 WHERE e1.id < 12",
    ] {
        let sent = f.same_answers(SQL_SOURCES, q, false).await;
        assert!(pushed_to(&sent, "pg_src", &["LEFT JOIN"]), "{q}: {sent:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_string_comparison_under_source_collations() {
    let mut f = fixture().await;
    for q in [
        "SELECT id FROM {s}.tpch.edge WHERE s = 'a'",
        "SELECT id FROM {s}.tpch.edge WHERE s = 'a '",
        "SELECT id FROM {s}.tpch.edge WHERE s < 'b'",
        "SELECT id FROM {s}.tpch.edge WHERE s BETWEEN 'a' AND 'b'",
        "SELECT id FROM {s}.tpch.edge WHERE s IN ('A', 'é')",
        "SELECT id FROM {s}.tpch.edge WHERE s LIKE 'a%'",
        "SELECT id FROM {s}.tpch.edge WHERE s NOT LIKE '%B%'",
        "SELECT id FROM {s}.tpch.edge WHERE s LIKE 'a_b'",
        "SELECT s, count(*) FROM {s}.tpch.edge GROUP BY s",
        "SELECT DISTINCT t FROM {s}.tpch.edge",
        "SELECT min(s), max(s), count(DISTINCT s) FROM {s}.tpch.edge",
        "SELECT e1.id, e2.id FROM {s}.tpch.edge e1 JOIN {s}.tpch.edge e2 ON e1.s = e2.t",
    ] {
        f.same_answers(SQL_SOURCES, q, false).await;
    }
    let sent = f
        .same_answers(
            SQL_SOURCES,
            "SELECT s FROM {s}.tpch.edge WHERE s IS NOT NULL ORDER BY s, id LIMIT 8",
            true,
        )
        .await;
    assert!(
        pushed_to(&sent, "my_src", &["COLLATE utf8mb4_nopad_bin", "LIMIT 8"]),
        "{sent:#?}"
    );
    assert!(
        pushed_to(&sent, "pg_src", &["COLLATE \"C\"", "LIMIT 8"]),
        "{sent:#?}"
    );
    let sent = f
        .same_answers(
            &["lite"],
            "SELECT id FROM {s}.tpch.edge WHERE s LIKE 'A%'",
            false,
        )
        .await;
    assert!(pushed_to(&sent, "lite_src", &["glob('A*'"]), "{sent:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_filters_and_groups_above_semi_joins() {
    let mut f = fixture().await;
    let sent = f
        .same_answers(
            SQL_SOURCES,
            "SELECT n_regionkey, count(*) FROM {s}.tpch.nation WHERE n_nationkey IN \
             (SELECT c_nationkey FROM {s}.tpch.customer) AND n_name <> 'CHINA' GROUP BY n_regionkey",
            false,
        )
        .await;
    assert!(
        pushed_to(&sent, "pg_src", &["EXISTS (", "GROUP BY", "<> 'CHINA'"]),
        "{sent:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_scalar_subquery_filter_binding() {
    let mut f = fixture().await;
    f.same_answers(
        SQL_SOURCES,
        "SELECT c.c_custkey FROM {s}.tpch.customer c WHERE c.c_acctbal > \
         (SELECT avg(c2.c_acctbal) FROM {s}.tpch.customer c2 WHERE c2.c_nationkey = c.c_nationkey \
          AND c2.c_mktsegment = 'BUILDING')",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_nulls_first_and_last() {
    let mut f = fixture().await;
    for q in [
        "SELECT id, n FROM {s}.tpch.edge ORDER BY n ASC NULLS FIRST, id LIMIT 6",
        "SELECT id, n FROM {s}.tpch.edge ORDER BY n ASC NULLS LAST, id LIMIT 6",
        "SELECT id, s FROM {s}.tpch.edge ORDER BY s DESC NULLS LAST, id LIMIT 6",
        "SELECT id, d FROM {s}.tpch.edge ORDER BY d DESC NULLS FIRST, id LIMIT 6",
        "SELECT id, row_number() OVER (ORDER BY n NULLS FIRST, id) AS r FROM {s}.tpch.edge ORDER BY id",
    ] {
        let sent = f.same_answers(SQL_SOURCES, q, true).await;
        assert!(!sent.is_empty(), "{q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_date_literals_on_sqlite() {
    let mut f = fixture().await;
    f.same_answers(
        ALL_SOURCES,
        "SELECT DATE '1998-11-26' AS d, r_name FROM {s}.tpch.region",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_dates_before_year_one() {
    // `extract(year ...) IN (-4)` becomes a date range from -0004-01-01, which PostgreSQL
    // cannot read and SQLite orders as text: such dates stay in the gateway.
    let mut f = fixture().await;
    f.same_answers(
        ALL_SOURCES,
        "SELECT e.dt AS x0 FROM {s}.tpch.edge e WHERE CAST(extract(year FROM e.dt) AS BIGINT) IN (7, -4, 2024) ORDER BY x0",
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_union_result_type_after_coercion() {
    let mut f = fixture().await;
    f.same_answers(
        ALL_SOURCES,
        "SELECT (n_nationkey / 3) AS x FROM {s}.tpch.nation UNION ALL SELECT 1.5 AS x FROM {s}.tpch.region",
        false,
    )
    .await;
    f.same_answers(
        ALL_SOURCES,
        "SELECT r_regionkey AS x FROM {s}.tpch.region UNION ALL SELECT c_acctbal AS x FROM {s}.tpch.customer WHERE c_custkey < 5",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_average_scale_and_rounding() {
    let mut f = fixture().await;
    for q in [
        "SELECT avg(c_acctbal) FROM {s}.tpch.customer",
        "SELECT c_nationkey, avg(c_acctbal), avg(c_custkey) FROM {s}.tpch.customer GROUP BY c_nationkey",
        "SELECT avg(d), avg(n), avg(f) FROM {s}.tpch.edge",
    ] {
        f.same_answers(SQL_SOURCES, q, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_division_that_may_hit_zero() {
    let mut f = fixture().await;
    for s in ALL_SOURCES {
        // SQLite and MySQL answer NULL, PostgreSQL and DataFusion fail: stays in the gateway.
        let q = format!("SELECT n / (n - n) FROM {s}.tpch.edge");
        let outcome = f.env.check(&q, false).await;
        assert!(matches!(outcome, Outcome::BothError(_)), "{q}: {outcome:?}");
        let sent = f.env.pushed(&q).await;
        assert!(
            sent.iter()
                .all(|p| !p.contains(" / ") || p.starts_with("remote_src")),
            "{sent:#?}"
        );
    }
    let sent = f
        .same_answers(
            &["pg", "lite"],
            "SELECT n / 2, n % 7 FROM {s}.tpch.edge",
            false,
        )
        .await;
    assert!(pushed_to(&sent, "pg_src", &["/ 2"]), "{sent:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_derived_table_columns_named_like_results() {
    let mut f = fixture().await;
    // DataFusion (a remote meshgate) calls `t3.c0` and a result `c0` ambiguous in ORDER BY.
    f.same_answers(
        SQL_SOURCES,
        "SELECT 1 AS x0, 'k' AS x1 FROM (SELECT abs(id) AS x0, s AS x2 FROM {s}.tpch.edge \
         ORDER BY x0 DESC, x2 LIMIT 5) d ORDER BY x0, x1 LIMIT 4",
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_case_nullability_under_aggregate() {
    let mut f = fixture().await;
    // DataFusion 55 refused to plan this with an internal error (logical and physical
    // nullability of the CASE differ).
    f.same_answers(
        ALL_SOURCES,
        "SELECT DISTINCT CASE WHEN (d.m = -2) THEN d.m ELSE 12 END AS x FROM \
         (SELECT -2 AS k, max(n_nationkey) AS m FROM {s}.tpch.nation GROUP BY n_regionkey) d",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_not_in_with_nulls() {
    let mut f = fixture().await;
    for q in [
        // The subquery returns a NULL: no row qualifies.
        "SELECT id FROM {s}.tpch.edge WHERE n NOT IN (SELECT n FROM {s}.tpch.edge WHERE id > 20)",
        // No NULL in the subquery; rows with a NULL `n` still do not qualify.
        "SELECT id FROM {s}.tpch.edge WHERE n NOT IN (SELECT n FROM {s}.tpch.edge WHERE id BETWEEN 2 AND 9)",
    ] {
        let sent = f.same_answers(SQL_SOURCES, q, false).await;
        assert!(pushed_to(&sent, "my_src", &["NOT IN ("]), "{q}: {sent:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_filter_through_projection_with_duplicate_names() {
    let mut f = fixture().await;
    // `e6.s` and `e7.s` are both `s` after the join: DataFusion 55 pushed the filter on one
    // onto the other (a wrong answer, also from plain DataFusion).
    let from = "FROM (SELECT 18 AS k FROM {s}.tpch.nation) d CROSS JOIN {s}.tpch.edge e6 \
                RIGHT JOIN {s}.tpch.edge e7 ON e6.n = e7.n WHERE e6.s ILIKE '%'";
    let q = format!("SELECT e7.s {from}");
    f.same_answers(ALL_SOURCES, &q, false).await;
    for s in ALL_SOURCES {
        // The same rows counted without projecting both `s` columns.
        let rows = f.env.gateway_rows(&q.replace("{s}", s)).await;
        let count = format!("SELECT count(*) AS n {}", from.replace("{s}", s));
        let equal = f
            .env
            .gateway_rows(&format!("SELECT * FROM ({count}) y WHERE n = {rows}"))
            .await;
        assert_eq!(equal, 1, "{s}: {rows} rows where count(*) says otherwise");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_sort_keys_repeated_for_datafusion() {
    let mut f = fixture().await;
    // A remote DataFusion failed to plan a sort on a CASE repeated from the select list.
    let sent = f
        .same_answers(
            &["remote"],
            "SELECT (s1.s_suppkey % 7) * 3 AS x0, CASE WHEN s1.s_address = s1.s_name OR \
             CAST(s1.s_suppkey AS VARCHAR) ILIKE '[br]' THEN 19 - 31 ELSE 13 END AS x2, s1.s_name AS x3 \
             FROM {s}.tpch.supplier AS s1 ORDER BY x0 ASC NULLS LAST, x2 ASC NULLS FIRST, x3 DESC LIMIT 1",
            true,
        )
        .await;
    assert!(
        pushed_to(&sent, "remote_src", &["ORDER BY \"c0\" ASC", "LIMIT 1"]),
        "{sent:#?}"
    );
}

/// A source that rejects the SQL the gateway wrote for it (here a DataFusion server declared
/// `dialect: postgres`, so it is sent PostgreSQL's `COLLATE "C"`) fails the query with
/// FAILED_PRECONDITION naming the source and the way around it, never INTERNAL; the same
/// source with `pushdown: off` serves the query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushdown_rejected_by_a_source_is_failed_precondition_and_pushdown_off_serves() {
    use meshgate_tests::fuzz::data;
    use meshgate_tests::{query, row_count, write_file, TestGateway};
    let dir = tempfile::tempdir().expect("tmp");
    let lake = dir.path().join("lake");
    data::write_parquet(&lake, 0.001);
    data::remote_mesh(&dir.path().join("remote"), &lake);
    let remote = TestGateway::start(&dir.path().join("remote")).await;
    let hub = dir.path().join("hub");
    std::fs::create_dir_all(hub.join("secrets")).expect("mkdir");
    std::fs::write(hub.join("secrets/remote"), "platform-pw").expect("secret");
    let source = |name: &str, pushdown: &str| {
        format!(
            "  - name: {name}\n    kind: flightsql\n    pushdown: {pushdown}\n    options: {{ url: \"grpc://{}\", username: platform, password: {{ file: secrets/remote }}, dialect: postgres }}\n",
            remote.addr
        )
    };
    write_file(
        &hub,
        "mesh.yaml",
        &format!(
            "apiVersion: meshgate/v1\nkind: Mesh\nname: rejected\n{}sources:\n{}{}",
            meshgate_tests::admin_auth_yaml(),
            source("wrong_dialect", "on"),
            source("wrong_dialect_off", "off")
        ),
    );
    for (domain, src) in [("on", "wrong_dialect"), ("off", "wrong_dialect_off")] {
        write_file(
            &hub,
            &format!("domains/{domain}/p.yaml"),
            &format!(
                "apiVersion: meshgate/v1\nkind: DataProduct\ndomain: {domain}\nname: p\nowner: {{ team: t }}\nports:\n  - {{ name: nation, source: {src}, table: lake.tpch.nation }}\n"
            ),
        );
    }
    let gw = TestGateway::start(&hub).await;
    let mut c = gw.client().await;
    let e = query(
        &mut c,
        "SELECT n_name FROM on.p.nation ORDER BY n_name LIMIT 3",
    )
    .await
    .expect_err("the remote cannot plan COLLATE");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
    for needle in [
        "wrong_dialect",
        "rejected the SQL",
        "pushdown: off",
        "correlation id",
    ] {
        assert!(
            e.message().contains(needle),
            "`{needle}` in: {}",
            e.message()
        );
    }
    let got = query(
        &mut c,
        "SELECT n_name FROM off.p.nation ORDER BY n_name LIMIT 3",
    )
    .await
    .expect("pushdown: off serves the query");
    assert_eq!(row_count(&got), 3);
    let metrics = gw.metrics_text();
    assert!(
        metrics.contains(
            "meshgate_source_errors_total{source=\"wrong_dialect\",class=\"pushdown_rejected\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_correlated_exists_on_forced_collation() {
    let mut f = fixture().await;
    // MariaDB's subquery cache keyed the correlated EXISTS on the outer column's own
    // (case-insensitive) collation: 'a ' and 'É' reused the answers cached for 'a' and 'é'.
    let sent = f
        .same_answers(
            SQL_SOURCES,
            "SELECT e5.id FROM {s}.tpch.edge e5 WHERE EXISTS (SELECT 1 FROM {s}.tpch.edge sq6 WHERE sq6.t = e5.s)",
            false,
        )
        .await;
    assert!(pushed_to(&sent, "my_src", &["EXISTS ("]), "{sent:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_cast_group_keys_on_datafusion() {
    let mut f = fixture().await;
    // DataFusion names CAST(x AS t) after x: two such group keys collided on a remote meshgate.
    let sent = f
        .same_answers(
            &["remote"],
            "SELECT DISTINCT CAST(o.o_shippriority AS VARCHAR) AS a, CAST(o.o_shippriority AS DOUBLE) AS b \
             FROM {s}.tpch.orders o",
            false,
        )
        .await;
    assert!(pushed_to(&sent, "remote_src", &["GROUP BY"]), "{sent:#?}");
}

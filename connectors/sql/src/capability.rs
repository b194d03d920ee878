//! What a source's SQL dialect runs with DataFusion's meaning, per construct.
//!
//! The planner ([`crate::federate`]) pushes a sub-plan to a source only when every node and
//! expression in it is allowed by the source's [`Capabilities`]; what is not allowed runs in
//! the gateway while the sub-trees below it are still pushed. "Allowed" means *same answer*,
//! not just "the source parses it": string comparisons must follow DataFusion's byte order
//! (the SQL forces a binary collation where the source's default is not, see
//! [`StringSemantics`]), NULLs must sort where DataFusion sorts them, divisions that may hit
//! zero, casts that round where DataFusion truncates and functions whose edge cases differ
//! stay in the gateway.
//!
//! [`construct_table`] lists every construct for every dialect from these same tables: it is
//! what `meshgate explain-pushdown` prints.

use std::fmt;

/// A SQL dialect family with its own semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// PostgreSQL.
    Postgres,
    /// MySQL 8.
    MySql,
    /// MariaDB.
    MariaDb,
    /// SQLite 3.39 or later.
    Sqlite,
    /// A DataFusion-based server (another meshgate, ROAPI): DataFusion's own semantics.
    DataFusion,
    /// An unknown SQL server: only what every SQL database agrees on.
    Generic,
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::Postgres => "postgres",
            Flavor::MySql => "mysql",
            Flavor::MariaDb => "mariadb",
            Flavor::Sqlite => "sqlite",
            Flavor::DataFusion => "datafusion",
            Flavor::Generic => "generic",
        })
    }
}

/// How string comparison, grouping and ordering get DataFusion's meaning (byte order of
/// UTF-8, case-sensitive, trailing spaces significant) on the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringSemantics {
    /// The source compares strings as DataFusion does.
    Binary,
    /// Equality is binary (deterministic collations), ordering follows the column's
    /// collation: ordering contexts (`<`, `BETWEEN`, `ORDER BY`, `min`/`max`) force this
    /// collation (PostgreSQL: `COLLATE "C"`).
    OrderingCollation,
    /// Every string a pushed statement reads from a table is forced to a binary collation
    /// where it is read (MySQL/MariaDB: `CONVERT(x USING utf8mb4) COLLATE
    /// utf8mb4_nopad_bin`; SQLite: `COLLATE BINARY`), so comparisons, `LIKE`, grouping,
    /// `DISTINCT`, joins and sorts downstream all compare bytes.
    ForcedAtSource,
    /// Unknown: string comparisons, `LIKE`, grouping and sorting on strings stay in the
    /// gateway.
    Unknown,
}

/// How `LIKE` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LikeSupport {
    /// `x LIKE 'pattern'` (case-sensitive on the source, given [`StringSemantics`]).
    Native,
    /// `x GLOB 'translated'`: SQLite's `LIKE` ignores ASCII case.
    Glob,
    /// Not pushed.
    No,
}

/// How `NULLS FIRST`/`NULLS LAST` are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullsOrdering {
    /// `ORDER BY x ASC NULLS LAST`.
    Explicit,
    /// No syntax (MySQL/MariaDB): `ORDER BY (x IS NULL) ASC, x ASC`.
    Emulated,
}

/// How `OFFSET m` without a `LIMIT` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetForm {
    /// `OFFSET m`.
    Alone,
    /// `LIMIT -1 OFFSET m` (SQLite).
    LimitMinusOne,
    /// `LIMIT 18446744073709551615 OFFSET m` (MySQL/MariaDB).
    LimitMax,
}

/// What a source's dialect runs with DataFusion's meaning.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// The dialect family.
    pub flavor: Flavor,
    /// Scalar functions (DataFusion names) pushed; argument rules in [`crate::semantics`].
    pub scalar_functions: &'static [&'static str],
    /// Aggregate functions pushed (also as window functions).
    pub aggregate_functions: &'static [&'static str],
    /// Ranking window functions pushed.
    pub ranking_functions: &'static [&'static str],
    /// `int / int` and `int % int` truncate toward zero as in DataFusion.
    pub integer_division_truncates: bool,
    /// `a || b` concatenates strings (NULL if either is NULL).
    pub concat_operator: bool,
    /// String comparison semantics.
    pub strings: StringSemantics,
    /// `LIKE`.
    pub like: LikeSupport,
    /// `NULLS FIRST`/`LAST`.
    pub nulls: NullsOrdering,
    /// `OFFSET` without `LIMIT`.
    pub offset: OffsetForm,
    /// `RIGHT JOIN`.
    pub right_join: bool,
    /// `FULL JOIN`.
    pub full_join: bool,
    /// Window functions (`OVER (...)`), with `ROWS` frames.
    pub windows: bool,
    /// `IS [NOT] DISTINCT FROM` (or its dialect spelling).
    pub distinct_from: bool,
    /// Arithmetic, casts and functions mean exactly what they mean in DataFusion (a
    /// DataFusion server): the rules that keep risky expressions in the gateway are lifted.
    pub datafusion_semantics: bool,
}

const AGGREGATES: &[&str] = &["count", "sum", "min", "max", "avg"];
const RANKING: &[&str] = &["row_number", "rank", "dense_rank"];

/// A DataFusion-based Flight SQL server (another meshgate, ROAPI, Spice, ...).
pub const DATAFUSION: Capabilities = Capabilities {
    flavor: Flavor::DataFusion,
    scalar_functions: &[
        "abs",
        "ceil",
        "floor",
        "round",
        "trunc",
        "sqrt",
        "power",
        "ln",
        "exp",
        "coalesce",
        "nullif",
        "lower",
        "upper",
        "substr",
        "btrim",
        "ltrim",
        "rtrim",
        "concat",
        "replace",
        "lpad",
        "rpad",
        "strpos",
        "character_length",
        "date_part",
        "date_trunc",
        "md5",
        "starts_with",
    ],
    aggregate_functions: AGGREGATES,
    ranking_functions: RANKING,
    integer_division_truncates: true,
    concat_operator: true,
    strings: StringSemantics::Binary,
    like: LikeSupport::Native,
    nulls: NullsOrdering::Explicit,
    offset: OffsetForm::Alone,
    right_join: true,
    full_join: true,
    windows: true,
    distinct_from: true,
    datafusion_semantics: true,
};

/// A SQL server of unknown dialect: only what every SQL database agrees on.
pub const GENERIC: Capabilities = Capabilities {
    flavor: Flavor::Generic,
    scalar_functions: &["abs", "coalesce", "nullif"],
    aggregate_functions: &["count", "sum", "min", "max"],
    ranking_functions: &[],
    integer_division_truncates: false,
    concat_operator: false,
    strings: StringSemantics::Unknown,
    like: LikeSupport::No,
    nulls: NullsOrdering::Explicit,
    offset: OffsetForm::Alone,
    right_join: true,
    full_join: false,
    windows: false,
    distinct_from: false,
    datafusion_semantics: false,
};

/// PostgreSQL (deterministic collations assumed; ordering forced to `"C"`).
pub const POSTGRES: Capabilities = Capabilities {
    flavor: Flavor::Postgres,
    scalar_functions: &[
        "abs",
        "ceil",
        "floor",
        "coalesce",
        "nullif",
        "substr",
        "btrim",
        "ltrim",
        "rtrim",
        "concat",
        "replace",
        "strpos",
        "character_length",
        "date_part",
        "md5",
        "starts_with",
    ],
    aggregate_functions: AGGREGATES,
    ranking_functions: RANKING,
    integer_division_truncates: true,
    concat_operator: true,
    strings: StringSemantics::OrderingCollation,
    like: LikeSupport::Native,
    nulls: NullsOrdering::Explicit,
    offset: OffsetForm::Alone,
    right_join: true,
    full_join: true,
    windows: true,
    distinct_from: true,
    datafusion_semantics: false,
};

const MYSQL_FUNCTIONS: &[&str] = &[
    "abs",
    "ceil",
    "floor",
    "coalesce",
    "nullif",
    "substr",
    "btrim",
    "ltrim",
    "rtrim",
    "replace",
    "character_length",
    "date_part",
];

/// MariaDB (10.4 or later).
pub const MARIADB: Capabilities = Capabilities {
    flavor: Flavor::MariaDb,
    scalar_functions: MYSQL_FUNCTIONS,
    aggregate_functions: AGGREGATES,
    ranking_functions: RANKING,
    integer_division_truncates: false,
    concat_operator: false,
    strings: StringSemantics::ForcedAtSource,
    like: LikeSupport::Native,
    nulls: NullsOrdering::Emulated,
    offset: OffsetForm::LimitMax,
    right_join: true,
    full_join: false,
    windows: true,
    distinct_from: true,
    datafusion_semantics: false,
};

/// MySQL 8.
pub const MYSQL: Capabilities = Capabilities {
    flavor: Flavor::MySql,
    ..MARIADB
};

/// SQLite (3.39 or later: `RIGHT` and `FULL` joins, `NULLS FIRST`).
pub const SQLITE: Capabilities = Capabilities {
    flavor: Flavor::Sqlite,
    scalar_functions: &[
        "abs",
        "coalesce",
        "nullif",
        "substr",
        "btrim",
        "ltrim",
        "rtrim",
        "replace",
        "character_length",
    ],
    aggregate_functions: AGGREGATES,
    ranking_functions: RANKING,
    integer_division_truncates: true,
    concat_operator: true,
    strings: StringSemantics::ForcedAtSource,
    like: LikeSupport::Glob,
    nulls: NullsOrdering::Explicit,
    offset: OffsetForm::LimitMinusOne,
    right_join: true,
    full_join: true,
    windows: true,
    distinct_from: true,
    datafusion_semantics: false,
};

/// Every dialect, in the order `explain-pushdown` lists them.
pub const ALL: &[Capabilities] = &[POSTGRES, MARIADB, MYSQL, SQLITE, DATAFUSION, GENERIC];

/// How a construct is handled on a dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Sent to the source, with DataFusion's meaning.
    Pushed,
    /// Sent to the source in a rewritten form that keeps DataFusion's meaning.
    Rewritten(&'static str),
    /// Computed in the gateway; the sub-plans below it are still pushed.
    Local(&'static str),
}

impl fmt::Display for Handling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Handling::Pushed => f.write_str("pushed"),
            Handling::Rewritten(how) => write!(f, "pushed as {how}"),
            Handling::Local(why) => write!(f, "gateway ({why})"),
        }
    }
}

/// One construct of SQL and how each dialect handles it.
#[derive(Debug, Clone)]
pub struct ConstructRow {
    /// The construct, e.g. `ORDER BY ... NULLS LAST`.
    pub construct: &'static str,
    /// Per dialect, in [`ALL`]'s order.
    pub handling: Vec<(Flavor, Handling)>,
}

fn by<F: Fn(&Capabilities) -> Handling>(construct: &'static str, f: F) -> ConstructRow {
    ConstructRow {
        construct,
        handling: ALL.iter().map(|c| (c.flavor, f(c))).collect(),
    }
}

fn yes_no(ok: bool, why: &'static str) -> Handling {
    if ok {
        Handling::Pushed
    } else {
        Handling::Local(why)
    }
}

/// Every construct the planner decides on, for every dialect: generated from the same
/// [`Capabilities`] the planner uses.
pub fn construct_table() -> Vec<ConstructRow> {
    let mut rows = vec![
        by(
            "projection, filter (AND/OR/NOT, IS NULL, IN, BETWEEN, CASE)",
            |_| Handling::Pushed,
        ),
        by("numeric comparison and +, -, *", |_| Handling::Pushed),
        by(
            "string =, <>, IN, GROUP BY, DISTINCT, join keys",
            |c| match c.strings {
                StringSemantics::Binary | StringSemantics::OrderingCollation => Handling::Pushed,
                StringSemantics::ForcedAtSource => Handling::Rewritten(match c.flavor {
                    Flavor::Sqlite => "x COLLATE BINARY",
                    Flavor::MySql => "CONVERT(x USING utf8mb4) COLLATE utf8mb4_0900_bin",
                    _ => "CONVERT(x USING utf8mb4) COLLATE utf8mb4_nopad_bin",
                }),
                StringSemantics::Unknown => Handling::Local("collation unknown"),
            },
        ),
        by(
            "string <, <=, >, >=, BETWEEN, ORDER BY, min/max",
            |c| match c.strings {
                StringSemantics::Binary => Handling::Pushed,
                StringSemantics::OrderingCollation => Handling::Rewritten("x COLLATE \"C\""),
                StringSemantics::ForcedAtSource => Handling::Rewritten("binary collation"),
                StringSemantics::Unknown => Handling::Local("collation unknown"),
            },
        ),
        by("LIKE / NOT LIKE with a literal pattern", |c| match c.like {
            LikeSupport::Native if c.strings == StringSemantics::ForcedAtSource => {
                Handling::Rewritten("LIKE under the binary collation")
            }
            LikeSupport::Native => Handling::Pushed,
            LikeSupport::Glob => Handling::Rewritten("GLOB (LIKE ignores ASCII case)"),
            LikeSupport::No => Handling::Local("LIKE semantics unknown"),
        }),
        by("ILIKE", |c| {
            yes_no(c.datafusion_semantics, "case folding differs")
        }),
        by(
            "LIKE pattern with a backslash, ESCAPE, or a non-literal pattern",
            |c| yes_no(c.datafusion_semantics, "escape rules differ"),
        ),
        by("a || b", |c| {
            yes_no(c.concat_operator, "no string || operator")
        }),
        by("x / y, x % y with y a non-zero literal (integers)", |c| {
            yes_no(c.integer_division_truncates, "integer division differs")
        }),
        by(
            "x / y, x % y with y a non-zero literal (floats)",
            |c| match c.flavor {
                Flavor::Postgres | Flavor::Sqlite => Handling::Local("float % differs"),
                _ => Handling::Pushed,
            },
        ),
        by("x / y on decimals", |c| {
            yes_no(c.datafusion_semantics, "result scale differs")
        }),
        by("x / y, x % y with y a column or expression", |c| {
            yes_no(c.datafusion_semantics, "division by zero differs")
        }),
        by(
            "CAST widening (int to int/decimal/float, decimal to wider decimal/float)",
            |_| Handling::Pushed,
        ),
        by("CAST float/decimal to integer, to a smaller scale", |c| {
            if c.datafusion_semantics || c.flavor == Flavor::Sqlite {
                Handling::Pushed
            } else {
                Handling::Local("rounds where DataFusion truncates")
            }
        }),
        by("CAST from string, float to string, TRY_CAST", |c| {
            yes_no(c.datafusion_semantics, "parsing and formatting differ")
        }),
        by("count, sum, min, max (also DISTINCT)", |c| {
            yes_no(!c.aggregate_functions.is_empty(), "")
        }),
        by("avg of integers and floats", |c| match c.flavor {
            Flavor::MySql | Flavor::MariaDb => Handling::Rewritten("avg(CAST(x AS DOUBLE))"),
            Flavor::Generic => Handling::Local("result type differs"),
            _ => Handling::Pushed,
        }),
        by("avg of decimals", |c| match c.flavor {
            Flavor::DataFusion => Handling::Pushed,
            Flavor::Postgres => Handling::Rewritten("trunc(avg(x), scale + 4)"),
            _ => Handling::Local("rounding differs"),
        }),
        by("aggregate FILTER / ORDER BY, GROUPING SETS", |_| {
            Handling::Local("not written for sources")
        }),
        by("ORDER BY ... NULLS FIRST/LAST", |c| match c.nulls {
            NullsOrdering::Explicit => Handling::Pushed,
            NullsOrdering::Emulated => Handling::Rewritten("ORDER BY (x IS NULL), x"),
        }),
        by("LIMIT n OFFSET m", |_| Handling::Pushed),
        by("OFFSET m without LIMIT", |c| match c.offset {
            OffsetForm::Alone => Handling::Pushed,
            OffsetForm::LimitMinusOne => Handling::Rewritten("LIMIT -1 OFFSET m"),
            OffsetForm::LimitMax => Handling::Rewritten("LIMIT 18446744073709551615 OFFSET m"),
        }),
        by("INNER, LEFT, CROSS JOIN", |_| Handling::Pushed),
        by("RIGHT JOIN", |c| yes_no(c.right_join, "not supported")),
        by("FULL JOIN", |c| yes_no(c.full_join, "not supported")),
        by("semi/anti join (IN, EXISTS, NOT EXISTS)", |_| {
            Handling::Rewritten("WHERE [NOT] EXISTS (SELECT 1 ...)")
        }),
        by("x NOT IN (SELECT ...), uncorrelated", |_| {
            Handling::Rewritten("x NOT IN (SELECT y ...): SQL's NULL rules are DataFusion's")
        }),
        by(
            "NOT IN (SELECT ...) correlated with the outer query",
            |_| Handling::Local("NULL handling"),
        ),
        by("IS [NOT] DISTINCT FROM, null-safe join keys", |c| {
            yes_no(c.distinct_from, "not supported")
        }),
        by("UNION ALL, DISTINCT, derived tables, self-joins", |_| {
            Handling::Pushed
        }),
        by("row_number, rank, dense_rank", |c| {
            yes_no(
                c.windows && !c.ranking_functions.is_empty(),
                "no window functions",
            )
        }),
        by("window aggregates with default or ROWS frames", |c| {
            yes_no(c.windows, "no window functions")
        }),
        by("RANGE/GROUPS frames with offsets", |_| {
            Handling::Local("frame semantics differ")
        }),
        by("correlated subqueries left after decorrelation", |_| {
            Handling::Local("not written for sources")
        }),
    ];
    for f in DATAFUSION.scalar_functions {
        let name: &'static str = f;
        rows.push(ConstructRow {
            construct: name,
            handling: ALL
                .iter()
                .map(|c| {
                    let h = if c.scalar_functions.contains(f) {
                        match *f {
                            "substr" | "lpad" | "rpad" if !c.datafusion_semantics => {
                                Handling::Rewritten("literal positions >= 1 only")
                            }
                            "date_part" if !c.datafusion_semantics => {
                                Handling::Rewritten("year, quarter, month, day only")
                            }
                            "btrim" | "ltrim" | "rtrim"
                                if matches!(c.flavor, Flavor::MySql | Flavor::MariaDb) =>
                            {
                                Handling::Rewritten("one argument only (TRIM for btrim)")
                            }
                            "btrim" | "ltrim" | "rtrim" if !c.datafusion_semantics => {
                                Handling::Rewritten("characters to trim as a literal")
                            }
                            _ => Handling::Pushed,
                        }
                    } else {
                        Handling::Local("function semantics differ or missing")
                    };
                    (c.flavor, h)
                })
                .collect(),
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_names_every_dialect() {
        for row in construct_table() {
            assert_eq!(row.handling.len(), ALL.len(), "{}", row.construct);
        }
    }

    #[test]
    fn mysql_differs_from_mariadb_only_in_its_name() {
        assert_eq!(MYSQL.strings, MARIADB.strings);
        assert_eq!(MYSQL.nulls, NullsOrdering::Emulated);
    }
}

//! Writing expressions in a source's dialect: DataFusion's unparser with the source's own
//! rules for what it must write differently (collations, `GLOB`, string literals).
//!
//! Rewrites that have no DataFusion expression of their own are carried by marker
//! functions ([`collate`], [`glob`]): they only exist between the semantic checks
//! ([`crate::semantics`]) and the unparser, which writes them through
//! [`SourceDialect::scalar_function_to_sql_overrides`]. They are never executed.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName, Value, WindowFrameBound,
};
use datafusion::sql::unparser::dialect::{
    CharacterLengthStyle, DateFieldExtractStyle, Dialect, DistinctFromStyle, IntervalStyle,
};
use datafusion::sql::unparser::Unparser;

use crate::capability::Flavor;

const COLLATE: &str = "__meshgate_collate";
const GLOB: &str = "__meshgate_glob";
const TRUNC: &str = "__meshgate_trunc";

/// Whether `name` is one of the marker functions.
pub fn is_marker(name: &str) -> bool {
    name == COLLATE || name == GLOB || name == TRUNC
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Marker {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for Marker {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.name == GLOB {
            DataType::Boolean
        } else {
            arg_types.first().cloned().unwrap_or(DataType::Utf8)
        })
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(DataFusionError::Internal(format!(
            "{} is only written into SQL for a source",
            self.name
        )))
    }
}

fn marker(name: &'static str) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(Marker {
        name,
        signature: Signature::variadic_any(Volatility::Immutable),
    }))
}

static COLLATE_UDF: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| marker(COLLATE));
static GLOB_UDF: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| marker(GLOB));
static TRUNC_UDF: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| marker(TRUNC));

/// `e` truncated toward zero to `scale` decimals (PostgreSQL's `trunc(numeric, int)`).
pub fn trunc(e: Expr, scale: i8) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::clone(&TRUNC_UDF),
        vec![
            e,
            Expr::Literal(
                datafusion::common::ScalarValue::Int64(Some(i64::from(scale))),
                None,
            ),
        ],
    ))
}

/// `e` compared under the source's binary collation.
pub fn collate(e: Expr) -> Expr {
    if matches!(&e, Expr::ScalarFunction(f) if f.func.name() == COLLATE) {
        return e;
    }
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(&COLLATE_UDF), vec![e]))
}

/// `e GLOB pattern` (SQLite), `pattern` already a GLOB pattern.
pub fn glob(e: Expr, pattern: String) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::clone(&GLOB_UDF),
        vec![
            e,
            Expr::Literal(datafusion::common::ScalarValue::Utf8(Some(pattern)), None),
        ],
    ))
}

/// A source's unparser dialect: DataFusion's dialect for the kind, plus meshgate's rules.
pub struct SourceDialect {
    inner: Arc<dyn Dialect>,
    flavor: Flavor,
}

impl std::fmt::Debug for SourceDialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceDialect")
            .field("flavor", &self.flavor)
            .finish_non_exhaustive()
    }
}

impl SourceDialect {
    /// `inner` with the rules of `flavor`.
    pub fn new(inner: Arc<dyn Dialect>, flavor: Flavor) -> Self {
        Self { inner, flavor }
    }

    /// The flavor.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// `e` as SQL text.
    pub fn expr_sql(&self, e: &Expr) -> Result<String> {
        Ok(Unparser::new(self).expr_to_sql(e)?.to_string())
    }

    /// An identifier, quoted.
    pub fn ident(&self, name: &str) -> String {
        let q = self.inner.identifier_quote_style(name).unwrap_or('"');
        format!("{q}{}{q}", name.replace(q, &format!("{q}{q}")))
    }

    fn collation(&self, expr: ast::Expr) -> ast::Expr {
        let nested = match expr {
            ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) | ast::Expr::Nested(_) => {
                expr
            }
            other => ast::Expr::Nested(Box::new(other)),
        };
        let (expr, name) = match self.flavor {
            Flavor::Postgres => (nested, Ident::with_quote('"', "C")),
            Flavor::Sqlite => (nested, Ident::new("BINARY")),
            Flavor::MariaDb | Flavor::MySql => (
                ast::Expr::Convert {
                    is_try: false,
                    expr: Box::new(nested),
                    data_type: None,
                    charset: Some(ObjectName::from(vec![Ident::new("utf8mb4")])),
                    target_before_value: false,
                    styles: vec![],
                },
                Ident::new(if self.flavor == Flavor::MySql {
                    "utf8mb4_0900_bin"
                } else {
                    "utf8mb4_nopad_bin"
                }),
            ),
            Flavor::DataFusion | Flavor::Generic => return nested,
        };
        ast::Expr::Nested(Box::new(ast::Expr::Collate {
            expr: Box::new(expr),
            collation: ObjectName::from(vec![name]),
        }))
    }
}

fn function(name: &str, args: Vec<ast::Expr>) -> ast::Expr {
    ast::Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

impl Dialect for SourceDialect {
    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.inner.identifier_quote_style(identifier)
    }
    fn use_array_keyword_for_array_literals(&self) -> bool {
        self.inner.use_array_keyword_for_array_literals()
    }
    fn supports_nulls_first_in_sort(&self) -> bool {
        self.inner.supports_nulls_first_in_sort()
    }
    fn use_timestamp_for_date64(&self) -> bool {
        self.inner.use_timestamp_for_date64()
    }
    fn interval_style(&self) -> IntervalStyle {
        self.inner.interval_style()
    }
    fn float64_ast_dtype(&self) -> ast::DataType {
        self.inner.float64_ast_dtype()
    }
    fn utf8_cast_dtype(&self) -> ast::DataType {
        self.inner.utf8_cast_dtype()
    }
    fn large_utf8_cast_dtype(&self) -> ast::DataType {
        self.inner.large_utf8_cast_dtype()
    }
    fn date_field_extract_style(&self) -> DateFieldExtractStyle {
        self.inner.date_field_extract_style()
    }
    fn distinct_from_style(&self) -> DistinctFromStyle {
        self.inner.distinct_from_style()
    }
    fn character_length_style(&self) -> CharacterLengthStyle {
        self.inner.character_length_style()
    }
    fn int64_cast_dtype(&self) -> ast::DataType {
        self.inner.int64_cast_dtype()
    }
    fn int8_cast_dtype(&self) -> ast::DataType {
        self.inner.int8_cast_dtype()
    }
    fn int32_cast_dtype(&self) -> ast::DataType {
        self.inner.int32_cast_dtype()
    }
    fn timestamp_cast_dtype(&self, time_unit: &TimeUnit, tz: &Option<Arc<str>>) -> ast::DataType {
        self.inner.timestamp_cast_dtype(time_unit, tz)
    }
    fn date32_cast_dtype(&self) -> ast::DataType {
        self.inner.date32_cast_dtype()
    }
    fn supports_column_alias_in_table_alias(&self) -> bool {
        self.inner.supports_column_alias_in_table_alias()
    }
    fn requires_derived_table_alias(&self) -> bool {
        self.inner.requires_derived_table_alias()
    }
    fn division_operator(&self) -> BinaryOperator {
        self.inner.division_operator()
    }
    fn scalar_function_to_sql_overrides(
        &self,
        unparser: &Unparser,
        func_name: &str,
        args: &[Expr],
    ) -> Result<Option<ast::Expr>> {
        match (func_name, args) {
            (COLLATE, [e]) => Ok(Some(self.collation(unparser.expr_to_sql(e)?))),
            (TRUNC, [e, scale]) => Ok(Some(function(
                "trunc",
                vec![unparser.expr_to_sql(e)?, unparser.expr_to_sql(scale)?],
            ))),
            (GLOB, [e, pattern]) => Ok(Some(function(
                "glob",
                vec![unparser.expr_to_sql(pattern)?, unparser.expr_to_sql(e)?],
            ))),
            ("btrim", [e])
                if matches!(
                    self.flavor,
                    Flavor::Sqlite | Flavor::MySql | Flavor::MariaDb
                ) =>
            {
                Ok(Some(function("trim", vec![unparser.expr_to_sql(e)?])))
            }
            ("btrim", [e, chars]) if self.flavor == Flavor::Sqlite => Ok(Some(function(
                "trim",
                vec![unparser.expr_to_sql(e)?, unparser.expr_to_sql(chars)?],
            ))),
            _ => self
                .inner
                .scalar_function_to_sql_overrides(unparser, func_name, args),
        }
    }
    fn higher_order_function_to_sql_overrides(
        &self,
        unparser: &Unparser,
        func_name: &str,
        args: &[Expr],
    ) -> Result<Option<ast::Expr>> {
        self.inner
            .higher_order_function_to_sql_overrides(unparser, func_name, args)
    }
    fn window_func_support_window_frame(
        &self,
        func_name: &str,
        start_bound: &WindowFrameBound,
        end_bound: &WindowFrameBound,
    ) -> bool {
        self.inner
            .window_func_support_window_frame(func_name, start_bound, end_bound)
    }
    fn full_qualified_col(&self) -> bool {
        false
    }
    fn unnest_as_table_factor(&self) -> bool {
        self.inner.unnest_as_table_factor()
    }
    fn unnest_as_lateral_flatten(&self) -> bool {
        self.inner.unnest_as_lateral_flatten()
    }
    fn col_alias_overrides(&self, alias: &str) -> Result<Option<String>> {
        self.inner.col_alias_overrides(alias)
    }
    fn supports_qualify(&self) -> bool {
        self.inner.supports_qualify()
    }
    fn timestamp_with_tz_to_string(
        &self,
        dt: chrono::DateTime<datafusion::arrow::array::timezone::Tz>,
        unit: TimeUnit,
    ) -> String {
        self.inner.timestamp_with_tz_to_string(dt, unit)
    }
    fn supports_empty_select_list(&self) -> bool {
        false
    }
    fn string_literal_to_sql(&self, s: &str) -> Option<ast::Expr> {
        match self.flavor {
            // MySQL reads a backslash in a literal as an escape.
            Flavor::MySql | Flavor::MariaDb if s.contains('\\') => Some(ast::Expr::value(
                Value::SingleQuotedString(s.replace('\\', "\\\\")),
            )),
            _ => self.inner.string_literal_to_sql(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};
    use datafusion::sql::unparser::dialect::{MySqlDialect, PostgreSqlDialect, SqliteDialect};

    #[test]
    fn markers_are_written_per_dialect() {
        let pg = SourceDialect::new(Arc::new(PostgreSqlDialect {}), Flavor::Postgres);
        assert_eq!(
            pg.expr_sql(&collate(col("s")).lt(lit("b"))).expect("sql"),
            "((\"s\" COLLATE \"C\") < 'b')"
        );
        let my = SourceDialect::new(Arc::new(MySqlDialect {}), Flavor::MariaDb);
        assert_eq!(
            my.expr_sql(&collate(col("s"))).expect("sql"),
            "(CONVERT(`s` USING utf8mb4) COLLATE utf8mb4_nopad_bin)"
        );
        assert_eq!(my.expr_sql(&lit("a\\b")).expect("sql"), "'a\\\\b'");
        let lite = SourceDialect::new(Arc::new(SqliteDialect {}), Flavor::Sqlite);
        assert_eq!(
            lite.expr_sql(&glob(col("s"), "a*".into())).expect("sql"),
            "glob('a*', `s`)"
        );
    }
}

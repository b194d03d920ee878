//! GetSqlInfo and GetXdbcTypeInfo: built once, spec-typed, ids from the proto enum only.

use std::collections::HashMap;

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlOuterJoinsSupportLevel,
    SqlSupportedCaseSensitivity, SqlSupportedTransaction, SupportedSqlGrammar, XdbcDataType,
    XdbcDatetimeSubcode,
};
use datafusion::execution::context::SessionState;
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;

const NUMERIC: &[&str] = &[
    "abs", "acos", "asin", "atan", "atan2", "cbrt", "ceil", "cos", "cot", "degrees", "exp",
    "floor", "gcd", "lcm", "ln", "log", "log10", "log2", "pi", "power", "radians", "random",
    "round", "signum", "sin", "sqrt", "tan", "trunc",
];
const STRING: &[&str] = &[
    "ascii",
    "btrim",
    "char_length",
    "character_length",
    "chr",
    "concat",
    "concat_ws",
    "initcap",
    "left",
    "length",
    "lower",
    "lpad",
    "ltrim",
    "md5",
    "octet_length",
    "regexp_like",
    "regexp_replace",
    "repeat",
    "replace",
    "reverse",
    "right",
    "rpad",
    "rtrim",
    "split_part",
    "starts_with",
    "strpos",
    "substr",
    "substring",
    "to_hex",
    "translate",
    "trim",
    "upper",
];
const SYSTEM: &[&str] = &["arrow_typeof", "coalesce", "nullif", "nvl", "version"];
const DATETIME: &[&str] = &[
    "current_date",
    "current_time",
    "date_bin",
    "date_part",
    "date_trunc",
    "from_unixtime",
    "make_date",
    "now",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_timestamp_micros",
    "to_timestamp_millis",
    "to_timestamp_seconds",
    "to_unixtime",
];

fn present(state: &SessionState, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|n| state.scalar_functions().contains_key(**n))
        .map(|n| n.to_uppercase())
        .collect()
}

/// Every SqlInfo the gateway answers. Clients read these at connect (ADBC: 0-8; JDBC: all;
/// flightsql-dbapi: 3 and 504).
pub fn sql_info_data(state: &SessionState) -> SqlInfoData {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "meshgate");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerSubstraitMinVersion, "");
    b.append(SqlInfo::FlightSqlServerSubstraitMaxVersion, "");
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    b.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityUnknown as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    b.append(
        SqlInfo::SqlKeywords,
        ALL_KEYWORDS
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>(),
    );
    b.append(SqlInfo::SqlNumericFunctions, present(state, NUMERIC));
    b.append(SqlInfo::SqlStringFunctions, present(state, STRING));
    b.append(SqlInfo::SqlSystemFunctions, present(state, SYSTEM));
    b.append(SqlInfo::SqlDatetimeFunctions, present(state, DATETIME));
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsConvert, HashMap::<i32, Vec<i32>>::new());
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    // Bitmask of SqlSupportedGroupBy: UNRELATED (0) | BEYOND_SELECT (1).
    b.append(SqlInfo::SqlSupportedGroupBy, 0b11i32);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(
        SqlInfo::SqlSupportedGrammar,
        (1 << SupportedSqlGrammar::SqlMinimumGrammar as i32)
            | (1 << SupportedSqlGrammar::SqlCoreGrammar as i32),
    );
    // Bitmask of SupportedAnsi92SqlGrammarLevel (not re-exported by arrow-flight):
    // ANSI92_ENTRY_SQL (0) | ANSI92_INTERMEDIATE_SQL (1).
    b.append(SqlInfo::SqlAnsi92SupportedLevel, 0b11i32);
    b.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    b.append(
        SqlInfo::SqlOuterJoinsSupportLevel,
        SqlOuterJoinsSupportLevel::SqlFullOuterJoins as i32,
    );
    b.append(SqlInfo::SqlSchemaTerm, "product");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogTerm, "domain");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSchemasSupportedActions, 0i32);
    b.append(SqlInfo::SqlCatalogsSupportedActions, 0i32);
    b.append(SqlInfo::SqlSupportedPositionedCommands, 0i32);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    // Bitmask of SqlSupportedSubqueries: comparisons, EXISTS, IN, quantified.
    b.append(SqlInfo::SqlSupportedSubqueries, 0b1111i32);
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    // Bitmask of SqlSupportedUnions: UNION, UNION ALL.
    b.append(SqlInfo::SqlSupportedUnions, 0b11i32);
    for id in [
        SqlInfo::SqlMaxBinaryLiteralLength,
        SqlInfo::SqlMaxCharLiteralLength,
        SqlInfo::SqlMaxColumnNameLength,
        SqlInfo::SqlMaxColumnsInGroupBy,
        SqlInfo::SqlMaxColumnsInIndex,
        SqlInfo::SqlMaxColumnsInOrderBy,
        SqlInfo::SqlMaxColumnsInSelect,
        SqlInfo::SqlMaxColumnsInTable,
        SqlInfo::SqlMaxConnections,
        SqlInfo::SqlMaxCursorNameLength,
        SqlInfo::SqlMaxIndexLength,
        SqlInfo::SqlDbSchemaNameLength,
        SqlInfo::SqlMaxProcedureNameLength,
        SqlInfo::SqlMaxCatalogNameLength,
        SqlInfo::SqlMaxRowSize,
        SqlInfo::SqlMaxStatements,
        SqlInfo::SqlMaxTableNameLength,
        SqlInfo::SqlMaxTablesInSelect,
        SqlInfo::SqlMaxUsernameLength,
    ] {
        // 0: no limit known.
        b.append(id, 0i64);
    }
    b.append(SqlInfo::SqlMaxStatementLength, 1i64 << 20);
    b.append(SqlInfo::SqlMaxRowSizeIncludesBlobs, true);
    b.append(SqlInfo::SqlDefaultTransactionIsolation, 0i32);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlSupportedTransactionsIsolationLevels, 0i32);
    b.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    b.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, false);
    // Bitmask of SqlSupportedResultSetType: FORWARD_ONLY (1).
    b.append(SqlInfo::SqlSupportedResultSetTypes, 1i32 << 1);
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetUnspecified,
        0i32,
    );
    // Bitmask of SqlSupportedResultSetConcurrency: READ_ONLY (1).
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetForwardOnly,
        1i32 << 1,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollSensitive,
        0i32,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollInsensitive,
        0i32,
    );
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    b.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    b.build().expect("static SqlInfo data is well-formed")
}

fn xdbc(
    name: &str,
    data_type: XdbcDataType,
    column_size: Option<i32>,
    subcode: Option<XdbcDatetimeSubcode>,
    text: bool,
    numeric: bool,
) -> XdbcTypeInfo {
    XdbcTypeInfo {
        type_name: name.into(),
        data_type,
        column_size,
        literal_prefix: text.then(|| "'".into()),
        literal_suffix: text.then(|| "'".into()),
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: text,
        searchable: Searchable::Full,
        unsigned_attribute: numeric.then_some(false),
        fixed_prec_scale: false,
        auto_increment: numeric.then_some(false),
        local_type_name: Some(name.into()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: data_type,
        datetime_subcode: subcode,
        num_prec_radix: numeric.then_some(10),
        interval_precision: None,
    }
}

/// The SQL types the gateway serves (the contract types).
pub fn xdbc_type_info_data() -> XdbcTypeInfoData {
    let mut b = XdbcTypeInfoDataBuilder::new();
    use XdbcDataType as T;
    b.append(xdbc("BOOLEAN", T::XdbcBit, Some(1), None, false, false));
    b.append(xdbc("TINYINT", T::XdbcTinyint, Some(3), None, false, true));
    b.append(xdbc(
        "SMALLINT",
        T::XdbcSmallint,
        Some(5),
        None,
        false,
        true,
    ));
    b.append(xdbc("INTEGER", T::XdbcInteger, Some(10), None, false, true));
    b.append(xdbc("BIGINT", T::XdbcBigint, Some(19), None, false, true));
    b.append(xdbc("FLOAT", T::XdbcFloat, Some(7), None, false, true));
    b.append(xdbc("DOUBLE", T::XdbcDouble, Some(15), None, false, true));
    let mut dec = xdbc("DECIMAL", T::XdbcDecimal, Some(38), None, false, true);
    dec.create_params = Some(vec!["precision".into(), "scale".into()]);
    dec.minimum_scale = Some(0);
    dec.maximum_scale = Some(38);
    dec.fixed_prec_scale = true;
    b.append(dec);
    b.append(xdbc(
        "VARCHAR",
        T::XdbcVarchar,
        Some(i32::MAX),
        None,
        true,
        false,
    ));
    b.append(xdbc(
        "VARBINARY",
        T::XdbcVarbinary,
        Some(i32::MAX),
        None,
        false,
        false,
    ));
    b.append(xdbc(
        "DATE",
        T::XdbcDate,
        Some(10),
        Some(XdbcDatetimeSubcode::XdbcSubcodeYear),
        false,
        false,
    ));
    b.append(xdbc(
        "TIME",
        T::XdbcTime,
        Some(15),
        Some(XdbcDatetimeSubcode::XdbcSubcodeTime),
        false,
        false,
    ));
    b.append(xdbc(
        "TIMESTAMP",
        T::XdbcTimestamp,
        Some(26),
        Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
        false,
        false,
    ));
    b.build().expect("static XDBC data is well-formed")
}

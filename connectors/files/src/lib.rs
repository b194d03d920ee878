//! The `files` connector: Parquet, CSV, newline-delimited JSON and Arrow IPC files through
//! object_store, as DataFusion listing tables.
//!
//! # Source options (`kind: files`)
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `url` | `file:///abs/dir/`, an absolute path, or a path relative to `mesh.yaml` | required |
//!
//! # Port keys
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `location` | a file, a directory (Hive-style `key=value/` subdirectories become columns) or a glob (`*.parquet`), under `url` | required |
//! | `format` | `parquet`, `csv`, `json` (newline-delimited), `arrow` (IPC file) | required |
//! | `options.extension` | only files ending so are read from a directory | `.parquet`, `.csv`, `.json`, `.arrow` |
//! | `options.has_header` | CSV: first line names the columns | `true` |
//! | `options.delimiter` | CSV: one ASCII character | `,` |
//!
//! # What is pushed down
//!
//! Projection always; filters on partition columns prune directories; Parquet uses row-group
//! statistics, page index and bloom filters for filters (DataFusion's Parquet reader); limits
//! stop reading early.
//!
//! # Type mapping
//!
//! Types come from the files: Parquet and Arrow carry Arrow types; CSV and JSON types are
//! inferred from the first 1,000 records (integers → Int64, decimals → Float64, text → Utf8).
//! Partition columns are Utf8. A port contract casts any of these to its declared types.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::file_format::arrow::ArrowFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use meshgate_connector::{
    Connector, ConnectorError, ConnectorFactory, ErrorClass, OpenedPort, PortRequest, SourceContext,
};
use serde::Deserialize;

/// Typed source options of `kind: files`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesOptions {
    /// Base url or path.
    pub url: String,
}

/// Typed per-port options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesPortOptions {
    /// File name suffix read from directories.
    #[serde(default)]
    pub extension: Option<String>,
    /// CSV header line.
    #[serde(default)]
    pub has_header: Option<bool>,
    /// CSV delimiter.
    #[serde(default)]
    pub delimiter: Option<String>,
}

/// One supported format: its name in product files, default extension and constructor.
struct FormatEntry {
    name: &'static str,
    extension: &'static str,
    build: fn(&FilesPortOptions) -> Result<Arc<dyn FileFormat>, String>,
}

/// The registration list of formats.
const FORMATS: &[FormatEntry] = &[
    FormatEntry {
        name: "parquet",
        extension: ".parquet",
        build: |_| Ok(Arc::new(ParquetFormat::default())),
    },
    FormatEntry {
        name: "csv",
        extension: ".csv",
        build: build_csv,
    },
    FormatEntry {
        name: "json",
        extension: ".json",
        build: |_| Ok(Arc::new(JsonFormat::default())),
    },
    FormatEntry {
        name: "arrow",
        extension: ".arrow",
        build: |_| Ok(Arc::new(ArrowFormat)),
    },
];

fn build_csv(o: &FilesPortOptions) -> Result<Arc<dyn FileFormat>, String> {
    let mut f = CsvFormat::default().with_has_header(o.has_header.unwrap_or(true));
    if let Some(d) = &o.delimiter {
        match d.as_bytes() {
            [b] if b.is_ascii() => f = f.with_delimiter(*b),
            _ => {
                return Err(format!(
                    "CSV delimiter must be one ASCII character, got `{d}`"
                ))
            }
        }
    }
    Ok(Arc::new(f))
}

fn format_names() -> String {
    FORMATS
        .iter()
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Factory for `kind: files`.
#[derive(Debug, Default)]
pub struct FilesFactory;

impl FilesFactory {
    fn parse_options(options: &serde_json::Value) -> Result<FilesOptions, String> {
        serde_json::from_value(options.clone()).map_err(|e| format!("invalid files options: {e}"))
    }
}

/// Resolves the source url to a base url ending in `/`. With `probe`, a local directory
/// must exist; without, only the url's form is checked (static validation has no data).
fn base_url(ctx: &SourceContext, url: &str, probe: bool) -> Result<String, String> {
    if url.contains("://") {
        if !url.starts_with("file://") {
            return Err(format!(
                "url `{url}`: only local paths and file:// urls are supported by this build"
            ));
        }
        return Ok(if url.ends_with('/') {
            url.to_string()
        } else {
            format!("{url}/")
        });
    }
    let path = if Path::new(url).is_absolute() {
        PathBuf::from(url)
    } else {
        ctx.base_dir.join(url)
    };
    if !probe {
        let abs = std::path::absolute(&path)
            .map_err(|e| format!("invalid path `{}`: {e}", path.display()))?;
        return url::Url::from_directory_path(&abs)
            .map(String::from)
            .map_err(|()| format!("`{}` cannot be written as a file:// url", abs.display()));
    }
    let path = std::fs::canonicalize(&path).map_err(|e| {
        format!(
            "directory `{}` does not exist or cannot be read: {e}",
            path.display()
        )
    })?;
    if !path.is_dir() {
        return Err(format!("`{}` is not a directory", path.display()));
    }
    url::Url::from_directory_path(&path)
        .map(String::from)
        .map_err(|()| format!("`{}` cannot be written as a file:// url", path.display()))
}

/// The parts of a port binding that do not depend on the source options.
struct PortShape<'a> {
    location: &'a str,
    entry: &'static FormatEntry,
    port_opts: FilesPortOptions,
    format: Arc<dyn FileFormat>,
}

/// Checks and splits the parts of a port binding that do not depend on the source options.
fn port_shape(port: &PortRequest) -> Result<PortShape<'_>, String> {
    let location = port
        .location
        .as_deref()
        .ok_or("files ports need `location`")?;
    if location.contains("..") {
        return Err(format!(
            "location `{location}` must stay below the source url (no `..`)"
        ));
    }
    let format_name = port
        .format
        .as_deref()
        .ok_or_else(|| format!("files ports need `format` ({})", format_names()))?;
    let entry = FORMATS
        .iter()
        .find(|f| f.name == format_name)
        .ok_or_else(|| {
            format!(
                "unknown format `{format_name}`; expected one of {}",
                format_names()
            )
        })?;
    let port_opts: FilesPortOptions = if port.options.is_null() {
        FilesPortOptions::default()
    } else {
        serde_json::from_value(port.options.clone())
            .map_err(|e| format!("invalid port options: {e}"))?
    };
    let format = (entry.build)(&port_opts)?;
    Ok(PortShape {
        location,
        entry,
        port_opts,
        format,
    })
}

fn port_plan(
    ctx: &SourceContext,
    opts: &FilesOptions,
    port: &PortRequest,
    probe: bool,
) -> Result<(ListingTableUrl, ListingOptions), String> {
    let PortShape {
        location,
        entry,
        port_opts,
        format,
    } = port_shape(port)?;
    let base = base_url(ctx, &opts.url, probe)?;
    let location = location.trim_start_matches('/');
    let is_glob = location.contains(['*', '?', '[']);
    let local = url::Url::parse(&base)
        .ok()
        .and_then(|u| u.to_file_path().ok())
        .map(|p| p.join(location));
    let mut full = format!("{base}{location}");
    let mut extension = port_opts
        .extension
        .clone()
        .unwrap_or_else(|| entry.extension.to_string());
    if let Some(path) = local.as_ref().filter(|_| probe) {
        if !is_glob {
            if path.is_dir() {
                if !full.ends_with('/') {
                    full.push('/');
                }
            } else if path.is_file() {
                // A single named file is read whatever its extension.
                extension = String::new();
            } else {
                return Err(format!("location `{}` does not exist", path.display()));
            }
        }
    }
    let url = if is_glob {
        // DataFusion expands globs only in local paths; split `dir/prefix/*.ext` ourselves so
        // that globs work the same for every object store.
        let split = location
            .find(['*', '?', '['])
            .map(|i| location[..i].rfind('/').map_or(0, |j| j + 1))
            .unwrap_or(0);
        let (dir, pattern) = location.split_at(split);
        let dir_url = url::Url::parse(&format!("{base}{dir}"))
            .map_err(|e| format!("invalid location `{location}`: {e}"))?;
        let glob =
            glob::Pattern::new(pattern).map_err(|e| format!("invalid glob `{pattern}`: {e}"))?;
        ListingTableUrl::try_new(dir_url, Some(glob))
            .map_err(|e| format!("invalid location `{location}`: {e}"))?
    } else {
        ListingTableUrl::parse(&full).map_err(|e| format!("invalid location `{full}`: {e}"))?
    };
    let listing = ListingOptions::new(format).with_file_extension(extension);
    Ok((url, listing))
}

#[async_trait]
impl ConnectorFactory for FilesFactory {
    fn kind(&self) -> &'static str {
        "files"
    }

    fn check(
        &self,
        ctx: &SourceContext,
        options: &serde_json::Value,
        ports: &[PortRequest],
    ) -> Vec<(Option<usize>, String)> {
        let opts = match Self::parse_options(options) {
            Ok(o) => o,
            Err(e) => {
                // Ports can still be checked for what does not depend on the options.
                let mut problems = vec![(None, e)];
                problems.extend(
                    ports
                        .iter()
                        .enumerate()
                        .filter_map(|(i, p)| port_shape(p).err().map(|e| (Some(i), e))),
                );
                return problems;
            }
        };
        if let Err(e) = base_url(ctx, &opts.url, false) {
            return vec![(None, e)];
        }
        ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| port_plan(ctx, &opts, p, false).err().map(|e| (Some(i), e)))
            .collect()
    }

    async fn create(
        &self,
        ctx: SourceContext,
        options: serde_json::Value,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let opts = Self::parse_options(&options).map_err(|e| {
            ConnectorError::new(
                ErrorClass::InvalidConfig,
                format!("source `{}`: {e}", ctx.name),
            )
        })?;
        Ok(Arc::new(FilesConnector { ctx, opts }))
    }
}

#[derive(Debug)]
struct FilesConnector {
    ctx: SourceContext,
    opts: FilesOptions,
}

#[async_trait]
impl Connector for FilesConnector {
    async fn open_port(
        &self,
        session: &dyn Session,
        port: &PortRequest,
    ) -> Result<OpenedPort, ConnectorError> {
        let err = |class, msg: String| {
            ConnectorError::new(
                class,
                format!(
                    "port {} (source `{}`): {msg}",
                    port.display_name, self.ctx.name
                ),
            )
        };
        let (url, listing) = port_plan(&self.ctx, &self.opts, port, true).map_err(|e| {
            let class = if e.contains("does not exist") {
                ErrorClass::NotFound
            } else {
                ErrorClass::InvalidConfig
            };
            err(class, e)
        })?;
        let partitions = listing
            .infer_partitions(session, &url)
            .await
            .map_err(|e| err(ErrorClass::Unavailable, format!("cannot list files: {e}")))?;
        let listing = listing.with_table_partition_cols(
            partitions
                .into_iter()
                .map(|p| (p, DataType::Utf8))
                .collect(),
        );
        let schema = listing.infer_schema(session, &url).await.map_err(|e| {
            err(
                ErrorClass::Data,
                format!("cannot read the schema of the files: {e}"),
            )
        })?;
        if schema.fields().is_empty() {
            return Err(err(ErrorClass::NotFound, "no files found".to_string()));
        }
        let is_glob = port
            .location
            .as_deref()
            .is_some_and(|l| l.contains(['*', '?', '[']));
        let single_file = (!url.is_collection() && !is_glob).then(|| url.clone());
        let config = ListingTableConfig::new(url)
            .with_listing_options(listing)
            .with_schema(schema);
        let table = ListingTable::try_new(config)
            .map_err(|e| err(ErrorClass::InvalidConfig, e.to_string()))?;
        let provider: Arc<dyn TableProvider> = match single_file {
            // A listing of a file that is gone is empty; a port naming one file must fail instead.
            Some(file) => Arc::new(SingleFileTable {
                inner: Arc::new(table),
                file,
                display_name: port.display_name.clone(),
            }),
            None => Arc::new(table),
        };
        Ok(provider.into())
    }
}

/// A port bound to one named file: each scan first checks that the file still exists.
#[derive(Debug)]
struct SingleFileTable {
    inner: Arc<dyn TableProvider>,
    file: ListingTableUrl,
    display_name: String,
}

#[async_trait]
impl TableProvider for SingleFileTable {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::logical_expr::Expr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        use datafusion::object_store::ObjectStoreExt;
        let store = state.runtime_env().object_store(&self.file)?;
        if let Err(e) = store.head(self.file.prefix()).await {
            let class = match e {
                datafusion::object_store::Error::NotFound { .. } => ErrorClass::NotFound,
                _ => ErrorClass::Unavailable,
            };
            return Err(ConnectorError::new(
                class,
                format!("port {}: cannot read {}: {e}", self.display_name, self.file),
            )
            .into_datafusion());
        }
        self.inner.scan(state, projection, filters, limit).await
    }
}

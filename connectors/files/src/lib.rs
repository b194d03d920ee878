//! The `files` connector: Parquet, CSV, newline-delimited JSON and Arrow IPC files through
//! object_store, as DataFusion listing tables.
//!
//! # Source options (`kind: files`)
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `url` | `file:///abs/dir/`, an absolute path, a path relative to `mesh.yaml`, `s3://bucket/prefix/`, `gs://bucket/prefix/` or `az://container/prefix/` | required |
//! | `s3` | `endpoint`, `region`, `access_key_id`, `secret_access_key`, `session_token`, `path_style` (true), `allow_http` (false), `anonymous` (false) | AWS environment |
//! | `gcs` | `service_account_key`, `endpoint`, `allow_http`, `anonymous` | Google environment |
//! | `azure` | `account`, `access_key` / `sas_token` / `bearer_token`, `endpoint`, `use_emulator`, `allow_http`, `anonymous` | Azure environment |
//! | `listing_cache_ttl_s` | seconds a port's listing is reused | 30 (object storage), 0 (local) |
//! | `max_retries` | retries of one object storage request | 3 |
//! | `retry_timeout_ms` | no retry starts later than this after the first attempt | 15000 |
//! | `connect_timeout_ms` | connect phase of one attempt | 5000 |
//! | `request_timeout_ms` | one attempt, to the end of its response body | 30000 |
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
//! stop reading early. On object storage, Parquet objects are read with range requests (the
//! footer, then the column chunks and pages that survive pruning); footers and page indexes
//! are cached in the runtime (checked against the object's size and modification time).
//!
//! # Type mapping
//!
//! Types come from the files: Parquet and Arrow carry Arrow types; CSV and JSON types are
//! inferred from the first 1,000 records (integers → Int64, decimals → Float64, text → Utf8).
//! Partition columns are Utf8. A port contract casts any of these to its declared types.

mod store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::file_format::arrow::ArrowFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::cache::TableScopedPath;
use datafusion::object_store::{ObjectStore, ObjectStoreExt};
use meshgate_connector::{
    Connector, ConnectorError, ConnectorFactory, ErrorClass, OpenedPort, PortRequest, SchemaTraits,
    SourceContext,
};
use serde::Deserialize;
pub use store::{AzureOptions, GcsOptions, S3Options};
use store::{Location, StoreLimits, StoreOptions};

/// Typed source options of `kind: files`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesOptions {
    /// Base url or path.
    pub url: String,
    /// S3 settings (`s3://` urls).
    #[serde(default)]
    pub s3: Option<S3Options>,
    /// Google Cloud Storage settings (`gs://` urls).
    #[serde(default)]
    pub gcs: Option<GcsOptions>,
    /// Azure Blob Storage settings (`az://` urls).
    #[serde(default)]
    pub azure: Option<AzureOptions>,
    /// How long a directory listing is reused, in seconds.
    #[serde(default)]
    pub listing_cache_ttl_s: Option<u64>,
    /// Retries of one object store request.
    #[serde(default)]
    pub max_retries: Option<usize>,
    /// No retry starts later than this after a request's first attempt.
    #[serde(default)]
    pub retry_timeout_ms: Option<u64>,
    /// Connect timeout of one attempt.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Timeout of one attempt, to the end of its response.
    #[serde(default)]
    pub request_timeout_ms: Option<u64>,
}

/// Default listing cache TTL of cloud sources, in seconds (local directories: 0, listed on
/// every scan).
pub const DEFAULT_CLOUD_LISTING_TTL_S: u64 = 30;

impl FilesOptions {
    fn store_options(&self) -> StoreOptions {
        StoreOptions {
            s3: self.s3.clone(),
            gcs: self.gcs.clone(),
            azure: self.azure.clone(),
        }
    }

    fn limits(&self) -> StoreLimits {
        let ms = |v: Option<u64>, d: u64| Duration::from_millis(v.unwrap_or(d));
        StoreLimits {
            max_retries: self.max_retries.unwrap_or(store::DEFAULT_MAX_RETRIES),
            retry_timeout: ms(self.retry_timeout_ms, store::DEFAULT_RETRY_TIMEOUT_MS),
            connect_timeout: ms(self.connect_timeout_ms, store::DEFAULT_CONNECT_TIMEOUT_MS),
            request_timeout: ms(self.request_timeout_ms, store::DEFAULT_REQUEST_TIMEOUT_MS),
        }
    }

    /// Where the data lives, and the store options checked against it.
    fn location(&self) -> Result<Option<Location>, String> {
        let cloud = store::cloud_location(&self.url).transpose()?;
        let scheme = cloud.as_ref().map(|l| l.scheme);
        let misplaced = self.store_options().misplaced(scheme);
        if !misplaced.is_empty() {
            return Err(format!(
                "`{}` settings do not apply to url `{}`",
                misplaced.join("`, `"),
                self.url
            ));
        }
        for (name, v) in [
            ("retry_timeout_ms", self.retry_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
        ] {
            if v == Some(0) {
                return Err(format!("`{name}` must be above 0"));
            }
        }
        if cloud.is_none()
            && (self.max_retries.is_some()
                || self.retry_timeout_ms.is_some()
                || self.connect_timeout_ms.is_some()
                || self.request_timeout_ms.is_some())
        {
            return Err(format!(
                "retries and timeouts apply to object storage urls (s3://, gs://, az://), not \
                 `{}`",
                self.url
            ));
        }
        Ok(cloud)
    }

    fn listing_ttl(&self, cloud: bool) -> Duration {
        Duration::from_secs(self.listing_cache_ttl_s.unwrap_or(if cloud {
            DEFAULT_CLOUD_LISTING_TTL_S
        } else {
            0
        }))
    }
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
        // Strings as Utf8, the type ports serve (DESIGN: clients cannot read view types), so
        // that a contract's `string` is the source's type and filters on it reach the scan.
        build: |_| {
            Ok(Arc::new(
                ParquetFormat::default().with_force_view_types(false),
            ))
        },
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

/// Scheme under which each cloud source's store is registered: `meshgate://<source>/`.
const STORE_SCHEME: &str = "meshgate";

/// Resolves the source url to the base url of its ports, ending in `/`: a `file://` url for a
/// local directory, `meshgate://<source>/<prefix>` for object storage (see [`store`]). With
/// `probe`, a local directory must exist; without, only the url's form is checked (static
/// validation has no data).
fn base_url(ctx: &SourceContext, opts: &FilesOptions, probe: bool) -> Result<String, String> {
    let url = opts.url.as_str();
    if let Some(Location { prefix, .. }) = opts.location()? {
        return Ok(format!("{STORE_SCHEME}://{}/{prefix}", ctx.name));
    }
    if url.contains("://") {
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

/// What is known of a port's location when its listing url is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Static validation: nothing is read.
    Static,
    /// A local directory: the filesystem tells files from directories.
    Local,
    /// Object storage: whether the location names one object (looked up by the caller).
    Object { is_file: bool },
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
    probe: Probe,
) -> Result<(ListingTableUrl, ListingOptions), ConnectorError> {
    let config = |m: String| ConnectorError::new(ErrorClass::InvalidConfig, m);
    let PortShape {
        location,
        entry,
        port_opts,
        format,
    } = port_shape(port).map_err(config)?;
    let base = base_url(ctx, opts, probe == Probe::Local).map_err(config)?;
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
    if let (Probe::Object { is_file }, false) = (probe, is_glob) {
        if is_file {
            // A single named object is read whatever its extension.
            extension = String::new();
        } else if !full.ends_with('/') {
            full.push('/');
        }
    }
    if let Some(path) = local.as_ref().filter(|_| probe == Probe::Local) {
        if !is_glob {
            if path.is_dir() {
                if !full.ends_with('/') {
                    full.push('/');
                }
            } else if path.is_file() {
                // A single named file is read whatever its extension.
                extension = String::new();
            } else {
                return Err(ConnectorError::new(
                    ErrorClass::NotFound,
                    format!("location `{}` does not exist", path.display()),
                ));
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
            .map_err(|e| config(format!("invalid location `{location}`: {e}")))?;
        let glob = glob::Pattern::new(pattern)
            .map_err(|e| config(format!("invalid glob `{pattern}`: {e}")))?;
        ListingTableUrl::try_new(dir_url, Some(glob))
            .map_err(|e| config(format!("invalid location `{location}`: {e}")))?
    } else {
        ListingTableUrl::parse(&full)
            .map_err(|e| config(format!("invalid location `{full}`: {e}")))?
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
        let checked = opts.location().and_then(|location| match location {
            Some(cloud) => {
                store::build_store(&cloud, &opts.store_options(), &opts.limits()).map(|_| ())
            }
            None => base_url(ctx, &opts, false).map(|_| ()),
        });
        if let Err(e) = checked {
            return vec![(None, e)];
        }
        ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                port_plan(ctx, &opts, p, Probe::Static)
                    .err()
                    .map(|e| (Some(i), e.message))
            })
            .collect()
    }

    async fn create(
        &self,
        ctx: SourceContext,
        options: serde_json::Value,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let invalid = |e: String| {
            ConnectorError::new(
                ErrorClass::InvalidConfig,
                format!("source `{}`: {e}", ctx.name),
            )
        };
        let opts = Self::parse_options(&options).map_err(invalid)?;
        let location = opts.location().map_err(invalid)?;
        let store = match &location {
            Some(cloud) => {
                let store = store::build_store(cloud, &opts.store_options(), &opts.limits())
                    .map_err(invalid)?;
                let key = url::Url::parse(&format!("{STORE_SCHEME}://{}", ctx.name))
                    .map_err(|e| invalid(format!("source name cannot name a store: {e}")))?;
                Some((key, store))
            }
            None => None,
        };
        let listing_ttl = opts.listing_ttl(store.is_some());
        Ok(Arc::new(FilesConnector {
            ctx,
            opts,
            store,
            listing_ttl,
        }))
    }
}

#[derive(Debug)]
struct FilesConnector {
    ctx: SourceContext,
    opts: FilesOptions,
    /// A cloud source's store and the url it is registered under.
    store: Option<(url::Url, Arc<dyn ObjectStore>)>,
    listing_ttl: Duration,
}

impl FilesConnector {
    /// The source's url as its owner wrote it, with the port's location: for messages.
    fn shown(&self, location: &str) -> String {
        format!(
            "{}{}{}",
            self.opts.url,
            if self.opts.url.ends_with('/') {
                ""
            } else {
                "/"
            },
            location.trim_start_matches('/')
        )
    }

    /// Whether a cloud port's location names one object (else a directory or glob).
    async fn probe_object(
        &self,
        store: &Arc<dyn ObjectStore>,
        location: &str,
    ) -> Result<Probe, ConnectorError> {
        if location.ends_with('/') || location.contains(['*', '?', '[']) {
            return Ok(Probe::Object { is_file: false });
        }
        let base = base_url(&self.ctx, &self.opts, false)
            .map_err(|e| ConnectorError::new(ErrorClass::InvalidConfig, e))?;
        let url = ListingTableUrl::parse(format!("{base}{}", location.trim_start_matches('/')))
            .map_err(|e| {
                ConnectorError::new(
                    ErrorClass::InvalidConfig,
                    format!("invalid location `{location}`: {e}"),
                )
            })?;
        match store.head(url.prefix()).await {
            Ok(_) => Ok(Probe::Object { is_file: true }),
            Err(datafusion::object_store::Error::NotFound { .. }) => {
                Ok(Probe::Object { is_file: false })
            }
            Err(e) => Err(store_error(&e, &self.shown(location))),
        }
    }
}

/// A connector error for a failed object store request on `what`.
fn store_error(e: &datafusion::object_store::Error, what: &str) -> ConnectorError {
    use datafusion::object_store::Error as E;
    let class = match e {
        E::NotFound { .. } => ErrorClass::NotFound,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => ErrorClass::PermissionDenied,
        _ => ErrorClass::Unavailable,
    };
    ConnectorError::new(class, format!("cannot read {what}: {e}"))
}

#[async_trait]
impl Connector for FilesConnector {
    /// Parquet and Arrow files carry a schema with nullability; CSV and JSON types are
    /// inferred from the data and every column reads as nullable.
    fn schema_traits(&self, port: &PortRequest) -> SchemaTraits {
        let declared = matches!(port.format.as_deref(), Some("parquet" | "arrow"));
        SchemaTraits {
            declares_nullability: declared,
            inferred_types: !declared,
        }
    }

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
        let probe = match &self.store {
            Some((key, store)) => {
                // Registered on every open: a reload's new store replaces the old one.
                session
                    .runtime_env()
                    .register_object_store(key, Arc::clone(store));
                self.probe_object(store, port.location.as_deref().unwrap_or_default())
                    .await
                    .map_err(|e| err(e.class, e.message))?
            }
            None => Probe::Local,
        };
        let (url, listing) =
            port_plan(&self.ctx, &self.opts, port, probe).map_err(|e| err(e.class, e.message))?;
        // Listings are cached per port (the key names the port), reused for `listing_ttl`.
        let url = url.with_table_ref(TableReference::bare(port.display_name.as_str()));
        let listed_at = Instant::now();
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
        let cache_key = TableScopedPath {
            table: url.get_table_ref().clone(),
            path: url.prefix().clone(),
        };
        let config = ListingTableConfig::new(url)
            .with_listing_options(listing)
            .with_schema(schema);
        let table = ListingTable::try_new(config)
            .map_err(|e| err(ErrorClass::InvalidConfig, e.to_string()))?;
        let provider: Arc<dyn TableProvider> = Arc::new(FilesTable {
            inner: Arc::new(table),
            single_file,
            display_name: port.display_name.clone(),
            shown: self.shown(port.location.as_deref().unwrap_or_default()),
            cache_key,
            listing_ttl: self.listing_ttl,
            listed_at: Mutex::new(listed_at),
        });
        Ok(provider.into())
    }
}

/// A files port: DataFusion's listing table, with a listing reused at most `listing_ttl`
/// (DataFusion's own cache keeps listings forever), and for a port bound to one named file, a
/// check on each scan that the file still exists (a listing of a file that is gone is empty).
#[derive(Debug)]
struct FilesTable {
    inner: Arc<dyn TableProvider>,
    single_file: Option<ListingTableUrl>,
    display_name: String,
    /// The location as the mesh names it, for messages.
    shown: String,
    cache_key: TableScopedPath,
    listing_ttl: Duration,
    listed_at: Mutex<Instant>,
}

impl FilesTable {
    /// Drops this port's cached listing when it is older than the TTL, so the scan lists again.
    fn expire_listing(&self, state: &dyn Session) {
        let Some(cache) = state.runtime_env().cache_manager.get_list_files_cache() else {
            return;
        };
        let now = Instant::now();
        let mut listed_at = self
            .listed_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.listing_ttl.is_zero() || now.duration_since(*listed_at) >= self.listing_ttl {
            cache.remove(&self.cache_key);
            *listed_at = now;
        }
    }
}

#[async_trait]
impl TableProvider for FilesTable {
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
        self.expire_listing(state);
        if let Some(file) = &self.single_file {
            let store = state.runtime_env().object_store(file)?;
            if let Err(e) = store.head(file.prefix()).await {
                let e = store_error(&e, &self.shown);
                return Err(ConnectorError::new(
                    e.class,
                    format!("port {}: {}", self.display_name, e.message),
                )
                .into_datafusion());
            }
        }
        self.inner
            .scan(state, projection, filters, limit)
            .await
            .map_err(|e| match e {
                datafusion::error::DataFusionError::ObjectStore(e) => {
                    let e = store_error(&e, &self.shown);
                    ConnectorError::new(
                        e.class,
                        format!("port {}: {}", self.display_name, e.message),
                    )
                    .into_datafusion()
                }
                other => other,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(options: serde_json::Value) -> Vec<String> {
        let ctx = SourceContext {
            name: "lake".into(),
            base_dir: std::env::temp_dir(),
            pushdown: true,
        };
        let port = PortRequest {
            display_name: "d.p.t".into(),
            location: Some("events/".into()),
            format: Some("parquet".into()),
            ..Default::default()
        };
        FilesFactory
            .check(&ctx, &options, &[port])
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    }

    #[test]
    fn object_storage_options_are_checked() {
        let s3 = serde_json::json!({ "url": "s3://lake/sales/", "s3": {
            "endpoint": "http://127.0.0.1:9000", "allow_http": true,
            "access_key_id": "k", "secret_access_key": "s" }, "max_retries": 1 });
        assert!(problems(s3).is_empty());
        let p = problems(serde_json::json!({ "url": "s3://lake/", "gcs": {} }));
        assert!(p[0].contains("`gcs` settings do not apply"), "{p:?}");
        let p = problems(serde_json::json!({ "url": "data", "s3": {} }));
        assert!(p[0].contains("`s3` settings do not apply"), "{p:?}");
        let p = problems(serde_json::json!({ "url": "data", "max_retries": 2 }));
        assert!(p[0].contains("apply to object storage urls"), "{p:?}");
        let p = problems(serde_json::json!({ "url": "s3://lake/", "request_timeout_ms": 0 }));
        assert!(p[0].contains("must be above 0"), "{p:?}");
        let p = problems(serde_json::json!({ "url": "s3://lake/", "s3": { "colour": 1 } }));
        assert!(p[0].contains("unknown field `colour`"), "{p:?}");
        let p = problems(serde_json::json!({ "url": "hdfs://lake/" }));
        assert!(p[0].contains("unsupported scheme"), "{p:?}");
    }

    #[test]
    fn cloud_ports_resolve_below_the_source_store() {
        let ctx = SourceContext {
            name: "sales_lake".into(),
            base_dir: std::env::temp_dir(),
            pushdown: true,
        };
        let opts: FilesOptions =
            serde_json::from_value(serde_json::json!({ "url": "s3://lake/sales" })).expect("opts");
        let port = PortRequest {
            display_name: "d.p.t".into(),
            location: Some("events/year=2024/x.parquet".into()),
            format: Some("parquet".into()),
            ..Default::default()
        };
        let (url, _) =
            port_plan(&ctx, &opts, &port, Probe::Object { is_file: true }).expect("plan");
        assert_eq!(
            url.as_str(),
            "meshgate://sales_lake/sales/events/year=2024/x.parquet"
        );
        assert_eq!(url.prefix().as_ref(), "sales/events/year=2024/x.parquet");
        let port = PortRequest {
            location: Some("events".into()),
            ..port
        };
        let (url, _) =
            port_plan(&ctx, &opts, &port, Probe::Object { is_file: false }).expect("plan");
        assert_eq!(url.as_str(), "meshgate://sales_lake/sales/events/");
        assert_eq!(opts.listing_ttl(true), Duration::from_secs(30));
        assert_eq!(opts.listing_ttl(false), Duration::ZERO);
    }
}

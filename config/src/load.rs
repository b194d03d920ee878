//! Loading a mesh directory: parse every file, then check references, reporting every
//! problem at once.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use crate::doc::{MeshDoc, PortDoc, ProductDoc};
use crate::error::{ConfigError, ConfigErrors, Origin};
use crate::model::*;
use crate::secrets::resolve_secrets;
use crate::security;
use crate::types::ColumnType;

/// Name of the root file of a mesh directory.
pub const MESH_FILE: &str = "mesh.yaml";
/// Folder below the root holding product files.
pub const DOMAINS_DIR: &str = "domains";
/// Largest config file read, to keep a stray data file from being parsed as YAML.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// Loads and validates the mesh directory `dir`.
///
/// Reads `dir/mesh.yaml` and every `*.yaml`/`*.yml` file below `dir/domains/`. Returns every
/// problem found (syntax, unknown keys, duplicate names, dangling references, reserved names,
/// bad column types, unset secrets, missing files), each with file, line and column.
/// Connector-specific option checks are the gateway's job: see `meshgate validate`.
pub fn load_mesh(dir: &Path) -> Result<Mesh, ConfigErrors> {
    let (mesh, errors) = load_mesh_lenient(dir);
    if errors.is_empty() {
        Ok(mesh)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Like [`load_mesh`], but returns the valid part of the mesh together with every problem,
/// so that further checks (connector options) can run on what is valid and report at once.
pub fn load_mesh_lenient(dir: &Path) -> (Mesh, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let root = dir.to_path_buf();
    let mesh_path = dir.join(MESH_FILE);
    let mesh_doc: Option<MeshDoc> = parse_file(&mesh_path, &mut errors);

    let mut product_files = Vec::new();
    let domains_dir = dir.join(DOMAINS_DIR);
    if domains_dir.is_dir() {
        collect_yaml_files(&domains_dir, &mut product_files, &mut errors);
        product_files.sort();
    }

    let mut sources = BTreeMap::new();
    let mut mesh_name = String::new();
    let mut description = None;
    let mut auth = Auth::default();
    let mut policies = Policies::default();
    let mut audit = None;
    let mut state_dir = None;
    let mut limits = Limits::default();
    if let Some(doc) = mesh_doc {
        state_dir = doc.state_dir.as_ref().map(|d| dir.join(d));
        limits = build_limits(doc.limits, &mesh_path, &mut errors);
        auth = security::build_auth(doc.auth, dir, &mesh_path, &mut errors);
        policies = security::build_policies(doc.policies, dir, &mesh_path, &mut errors);
        audit = security::build_audit(doc.audit, dir);
        mesh_name = doc.name;
        description = doc.description;
        for s in doc.sources {
            let origin = Origin::at(&mesh_path, s.name.referenced);
            if let Err(e) = check_identifier(&s.name.value) {
                errors.push(ConfigError::new(
                    origin.clone(),
                    format!("source name: {e}"),
                ));
                continue;
            }
            let name = SourceName::new_unchecked(s.name.value.clone());
            if sources.contains_key(&name) {
                errors.push(ConfigError::new(
                    origin,
                    format!("duplicate source name `{name}`; source names must be unique"),
                ));
                continue;
            }
            let options_origin = Origin::at(&mesh_path, s.options.referenced);
            for key in literal_credentials(&s.options.value) {
                errors.push(ConfigError::new(
                    options_origin.clone(),
                    format!(
                        "source `{name}`: `{key}` holds a credential and must be a secret reference, \
                         `{{ env: NAME }}` or `{{ file: path }}`, not a literal value"
                    ),
                ));
            }
            let options = match resolve_secrets(&s.options.value, dir) {
                Ok(v) => v,
                Err(problems) => {
                    for p in problems {
                        errors.push(ConfigError::new(
                            options_origin.clone(),
                            format!("source `{name}`: {p}"),
                        ));
                    }
                    serde_json::Value::Null
                }
            };
            if !options.is_null() && !options.is_object() {
                errors.push(ConfigError::new(
                    options_origin.clone(),
                    format!("source `{name}`: options must be a mapping"),
                ));
            }
            sources.insert(
                name.clone(),
                Source {
                    name,
                    kind: s.kind.value,
                    options,
                    base_dir: root.clone(),
                    origin,
                    options_origin,
                    description: s.description,
                    federation: s.federation,
                    pushdown: s.pushdown == crate::doc::Pushdown::On,
                },
            );
        }
    }

    let mut domains: BTreeMap<DomainName, Domain> = BTreeMap::new();
    let mut pending_fks = Vec::new();
    for file in &product_files {
        let Some(doc) = parse_file::<ProductDoc>(file, &mut errors) else {
            continue;
        };
        if let Some(product) = build_product(file, doc, &sources, &mut errors, &mut pending_fks) {
            let domain = domains
                .entry(product.domain.clone())
                .or_insert_with(|| Domain {
                    name: product.domain.clone(),
                    products: BTreeMap::new(),
                });
            if let Some(other) = domain.products.get(&product.name) {
                errors.push(ConfigError::new(
                    Origin::file(file),
                    format!(
                        "duplicate product `{}.{}`: also defined in {}",
                        product.domain,
                        product.name,
                        other.file.display()
                    ),
                ));
                continue;
            }
            domain.products.insert(product.name.clone(), product);
        }
    }

    // Foreign keys name other ports, so they are checked once every product is known.
    for (origin, domain, product, port, fk) in pending_fks {
        let target = fk.references.value.split('.').collect::<Vec<_>>();
        let Some(target_port) = (match target.as_slice() {
            [d, p, t] => domains
                .get(*d)
                .and_then(|dm| dm.products.get(*p))
                .and_then(|pr| pr.ports.iter().find(|x| x.name.as_str() == *t)),
            _ => None,
        }) else {
            errors.push(ConfigError::new(
                Origin::at(&origin, fk.references.referenced),
                format!(
                    "foreign key references `{}`, which is not a port (write domain.product.port)",
                    fk.references.value
                ),
            ));
            continue;
        };
        if fk.columns.len() != fk.referenced_columns.len() || fk.columns.is_empty() {
            errors.push(ConfigError::new(
                Origin::at(&origin, fk.references.referenced),
                "foreign key: `columns` and `referenced_columns` must be non-empty and of equal length",
            ));
            continue;
        }
        let fk_model = ForeignKey {
            columns: fk.columns.clone(),
            references: (
                DomainName::new_unchecked(target[0]),
                ProductName::new_unchecked(target[1]),
                target_port.name.clone(),
            ),
            referenced_columns: fk.referenced_columns.clone(),
        };
        if let Some(p) = domains
            .get_mut(&domain)
            .and_then(|d| d.products.get_mut(&product))
            .and_then(|pr| pr.ports.iter_mut().find(|p| p.name == port))
        {
            p.foreign_keys.push(fk_model);
        }
    }

    (
        Mesh {
            name: mesh_name,
            description,
            root,
            sources,
            domains,
            auth,
            policies,
            audit,
            state_dir,
            limits,
        },
        errors,
    )
}

fn build_limits(
    doc: Option<crate::doc::LimitsDoc>,
    mesh_path: &Path,
    errors: &mut Vec<ConfigError>,
) -> Limits {
    let Some(doc) = doc else {
        return Limits::default();
    };
    let mut zero = |key: &str| {
        errors.push(ConfigError::new(
            Origin::file(mesh_path),
            format!("limits.{key} must be at least 1"),
        ));
    };
    for (key, v) in [
        (
            "max_running_queries",
            doc.max_running_queries.map(u64::from),
        ),
        (
            "principal_max_running_queries",
            doc.principal_max_running_queries.map(u64::from),
        ),
        (
            "principal_queries_per_minute",
            doc.principal_queries_per_minute.map(u64::from),
        ),
        ("queue_timeout_ms", doc.queue_timeout_ms),
        ("max_query_time_s", doc.max_query_time_s),
        ("max_recursion_depth", doc.max_recursion_depth),
        ("max_recursive_rows", doc.max_recursive_rows),
    ] {
        if v == Some(0) {
            zero(key);
        }
    }
    for g in &doc.groups {
        if g.max_running_queries == 0 {
            zero(&format!("groups[{}].max_running_queries", g.group));
        }
    }
    Limits {
        max_running_queries: doc.max_running_queries,
        max_queued_queries: doc.max_queued_queries,
        queue_timeout_ms: doc.queue_timeout_ms,
        principal_max_running_queries: doc.principal_max_running_queries,
        principal_queries_per_minute: doc.principal_queries_per_minute,
        max_query_time_s: doc.max_query_time_s,
        max_recursion_depth: doc.max_recursion_depth,
        max_recursive_rows: doc.max_recursive_rows,
        groups: doc
            .groups
            .into_iter()
            .map(|g| (g.group, g.max_running_queries))
            .collect(),
    }
}

type PendingFk = (
    PathBuf,
    DomainName,
    ProductName,
    PortName,
    crate::doc::ForeignKeyDoc,
);

fn build_product(
    file: &Path,
    doc: ProductDoc,
    sources: &BTreeMap<SourceName, Source>,
    errors: &mut Vec<ConfigError>,
    pending_fks: &mut Vec<PendingFk>,
) -> Option<Product> {
    let at = |loc| Origin::at(file, loc);
    let domain =
        checked_name(file, &doc.domain, "domain name", errors).map(DomainName::new_unchecked);
    if doc.domain.value == RESERVED_CATALOG {
        errors.push(ConfigError::new(
            at(doc.domain.referenced),
            "the domain name `mesh` is reserved for the gateway's own catalog; choose another",
        ));
    }
    let name =
        checked_name(file, &doc.name, "product name", errors).map(ProductName::new_unchecked);
    if doc.ports.is_empty() {
        errors.push(ConfigError::new(
            at(doc.name.referenced),
            "a product needs at least one port",
        ));
    }
    let mut ports = Vec::new();
    let mut seen = HashSet::new();
    for p in doc.ports {
        if !seen.insert(p.name.value.clone()) {
            errors.push(ConfigError::new(
                Origin::at(file, p.name.referenced),
                format!("duplicate port name `{}` in this product", p.name.value),
            ));
            continue;
        }
        if let Some(port) = build_port(file, p, sources, errors, pending_fks, &domain, &name) {
            ports.push(port);
        }
    }
    let access = doc
        .access
        .map(|a| crate::security::build_access(a, file, errors));
    if let Some(a) = &access {
        for f in &a.row_filters {
            for p in f.ports.iter().flatten() {
                if !ports.iter().any(|x: &Port| x.name.as_str() == p) {
                    errors.push(ConfigError::new(
                        f.origin.clone(),
                        format!("access.row_filters: `{p}` is not a port of this product"),
                    ));
                }
            }
        }
    }
    Some(Product {
        access,
        domain: domain?,
        name: name?,
        description: doc.description,
        owner: doc.owner,
        tags: doc.tags,
        status: doc.status,
        ports,
        file: file.to_path_buf(),
    })
}

fn build_port(
    file: &Path,
    p: PortDoc,
    sources: &BTreeMap<SourceName, Source>,
    errors: &mut Vec<ConfigError>,
    pending_fks: &mut Vec<PendingFk>,
    domain: &Option<DomainName>,
    product: &Option<ProductName>,
) -> Option<Port> {
    let origin = Origin::at(file, p.name.referenced);
    let before = errors.len();
    let name = checked_name(file, &p.name, "port name", errors).map(PortName::new_unchecked);
    if !sources.contains_key(p.source.value.as_str()) {
        let known: Vec<&str> = sources.keys().map(SourceName::as_str).collect();
        errors.push(ConfigError::new(
            Origin::at(file, p.source.referenced),
            format!(
                "port `{}` names source `{}`, which is not declared in mesh.yaml (declared: {})",
                p.name.value,
                p.source.value,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    let mut columns = None;
    if let Some(cols) = p.columns {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        if cols.is_empty() {
            errors.push(ConfigError::new(
                origin.clone(),
                "`columns` must list at least one column",
            ));
        }
        for c in cols {
            if c.name.value.is_empty() {
                errors.push(ConfigError::new(
                    Origin::at(file, c.name.referenced),
                    "empty column name",
                ));
                continue;
            }
            if !seen.insert(c.name.value.clone()) {
                errors.push(ConfigError::new(
                    Origin::at(file, c.name.referenced),
                    format!(
                        "duplicate column `{}` in the contract of port `{}`",
                        c.name.value, p.name.value
                    ),
                ));
            }
            match c.data_type.value.parse::<ColumnType>() {
                Ok(data_type) => out.push(Column {
                    name: c.name.value,
                    data_type,
                    required: c.required,
                    description: c.description,
                    classification: c.classification,
                }),
                Err(e) => errors.push(ConfigError::new(
                    Origin::at(file, c.data_type.referenced),
                    e,
                )),
            }
        }
        for k in &p.primary_key {
            if !seen.contains(k) {
                errors.push(ConfigError::new(
                    origin.clone(),
                    format!(
                        "primary key column `{k}` is not in the contract of port `{}`",
                        p.name.value
                    ),
                ));
            }
        }
        columns = Some(out);
    }
    let mut contract_file = None;
    let mut freshness = None;
    if let Some(c) = &p.contract {
        let at = Origin::at(file, c.referenced);
        if columns.is_some() {
            errors.push(ConfigError::new(
                at,
                format!(
                    "port `{}`: give either `columns` or `contract`, not both",
                    p.name.value
                ),
            ));
        } else {
            let path = file.parent().unwrap_or(Path::new(".")).join(&c.value);
            match crate::odcs::import(&path, &p.name.value, p.table.as_deref()) {
                Ok(imported) => {
                    for k in &p.primary_key {
                        if !imported.columns.iter().any(|x| &x.name == k) {
                            errors.push(ConfigError::new(
                                at.clone(),
                                format!(
                                    "primary key column `{k}` is not in the contract of port `{}`",
                                    p.name.value
                                ),
                            ));
                        }
                    }
                    columns = Some(imported.columns);
                    freshness = imported.freshness;
                    contract_file = Some(path);
                }
                Err(e) => errors.push(ConfigError::new(at, e)),
            }
        }
    }
    let options = match p.options {
        Some(Spanned {
            value: v @ serde_json::Value::Object(_),
            ..
        }) => v,
        Some(s) => {
            errors.push(ConfigError::new(
                Origin::at(file, s.referenced),
                "port options must be a mapping",
            ));
            serde_json::Value::Null
        }
        None => serde_json::Value::Object(serde_json::Map::new()),
    };
    if errors.len() != before {
        return None;
    }
    let name = name?;
    if let (Some(d), Some(pr)) = (domain, product) {
        for fk in p.foreign_keys {
            pending_fks.push((file.to_path_buf(), d.clone(), pr.clone(), name.clone(), fk));
        }
    }
    Some(Port {
        name,
        description: p.description,
        source: SourceName::new_unchecked(p.source.value),
        binding: PortBinding {
            location: p.location,
            format: p.format,
            table: p.table,
            query: p.query,
            options,
        },
        columns,
        primary_key: p.primary_key,
        version: p.version,
        contract_file,
        freshness,
        foreign_keys: Vec::new(),
        origin,
    })
}

fn checked_name(
    file: &Path,
    s: &Spanned<String>,
    what: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<String> {
    match check_identifier(&s.value) {
        Ok(()) => Some(s.value.clone()),
        Err(e) => {
            errors.push(ConfigError::new(
                Origin::at(file, s.referenced),
                format!("{what}: {e}"),
            ));
            None
        }
    }
}

fn parse_file<T: serde::de::DeserializeOwned>(
    path: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    let text = match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            errors.push(ConfigError::new(
                Origin::file(path),
                format!(
                    "file is larger than {} MiB; is it really a mesh file?",
                    MAX_FILE_BYTES >> 20
                ),
            ));
            return None;
        }
        Ok(_) => match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(ConfigError::new(
                    Origin::file(path),
                    format!("cannot read file: {e}"),
                ));
                return None;
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            errors.push(ConfigError::new(Origin::file(path), "file not found"));
            return None;
        }
        Err(e) => {
            errors.push(ConfigError::new(
                Origin::file(path),
                format!("cannot read file: {e}"),
            ));
            return None;
        }
    };
    match serde_saphyr::from_str::<T>(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            let origin = match e.location() {
                Some(loc) => Origin::at(path, loc),
                None => Origin::file(path),
            };
            errors.push(ConfigError::new(origin, yaml_message(&e)));
            None
        }
    }
}

/// The first line of a serde-saphyr error, without its rendered snippet or position.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let rendered = e.without_snippet().to_string();
    let first = rendered.lines().next().unwrap_or("invalid YAML").trim();
    // serde-saphyr appends " at line X column Y"; the origin already says where.
    match first.find(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

/// ODCS documents (`*.odcs.yaml`) may sit next to product files: they are contracts, not
/// product files.
fn is_odcs_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".odcs.yaml") || n.ends_with(".odcs.yml"))
}

fn collect_yaml_files(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<ConfigError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(ConfigError::new(
                Origin::file(dir),
                format!("cannot list directory: {e}"),
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_yaml_files(&path, out, errors);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) && !is_odcs_file(&path)
        {
            out.push(path);
        }
    }
}

/// Option keys that hold credentials: their values must come from `{env}`/`{file}` secrets.
const CREDENTIAL_KEYS: &[&str] = &[
    "password",
    "token",
    "secret_access_key",
    "session_token",
    "client_secret",
    "private_key",
    "access_key",
    "sas_token",
    "bearer_token",
    "service_account_key",
];

/// Paths of credential keys (at any depth) whose value is written literally.
fn literal_credentials(v: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        if let serde_json::Value::Object(m) = v {
            for (k, child) in m {
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let is_secret_ref = matches!(child, serde_json::Value::Object(o)
                    if o.len() == 1 && (o.contains_key("env") || o.contains_key("file")));
                if CREDENTIAL_KEYS.contains(&k.as_str()) && !is_secret_ref && !child.is_null() {
                    out.push(here);
                } else {
                    walk(child, &here, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

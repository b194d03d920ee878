//! Validation of `auth`, `policies` and `audit` in `mesh.yaml` and `access` in product files.
//! Hash formats are checked here; the gateway parses them again when it builds its verifier.

use std::collections::BTreeSet;
use std::path::Path;

use crate::doc::{AccessDoc, AuditDoc, AuthDoc, PoliciesDoc};
use crate::error::{ConfigError, Origin};
use crate::model::{
    Access, AuditTarget, Auth, Classification, Grantee, Jwt, Policies, RowFilter, StaticToken, Tls,
    TrustedGateway, User,
};
use crate::secrets::resolve_secrets;

/// Default lifetime of handshake session tokens.
pub const DEFAULT_SESSION_TTL_S: u64 = 3600;

fn is_secret_ref(v: &serde_json::Value) -> bool {
    matches!(v, serde_json::Value::Object(o)
        if o.len() == 1 && (o.get("env").is_some_and(|x| x.is_string())
            || o.get("file").is_some_and(|x| x.is_string())))
}

/// Resolves a `{env}`/`{file}` secret that must not be written literally.
fn secret(
    v: &serde_json::Value,
    what: &str,
    dir: &Path,
    origin: &Origin,
    errors: &mut Vec<ConfigError>,
) -> Option<String> {
    if !is_secret_ref(v) {
        errors.push(ConfigError::new(
            origin.clone(),
            format!("{what} must be a secret reference, `{{ env: NAME }}` or `{{ file: path }}`, not a literal value"),
        ));
        return None;
    }
    match resolve_secrets(v, dir) {
        Ok(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
        Ok(_) => {
            errors.push(ConfigError::new(origin.clone(), format!("{what} is empty")));
            None
        }
        Err(problems) => {
            for p in problems {
                errors.push(ConfigError::new(origin.clone(), format!("{what}: {p}")));
            }
            None
        }
    }
}

fn check_principal_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 128
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        Err(format!(
            "`{name}` is not a valid principal name: 1 to 128 characters, no spaces, controls or `:`"
        ))
    } else {
        Ok(())
    }
}

/// Parses `sha256:<64 hex>`.
pub fn parse_token_hash(s: &str) -> Option<[u8; 32]> {
    let hex = s.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

pub(crate) fn build_auth(
    doc: Option<AuthDoc>,
    dir: &Path,
    mesh_path: &Path,
    errors: &mut Vec<ConfigError>,
) -> Auth {
    let at = Origin::file(mesh_path);
    let doc = doc.unwrap_or_default();
    let mut names = BTreeSet::new();
    let mut users = Vec::new();
    for u in doc.users {
        let origin = Origin::at(mesh_path, u.name.referenced);
        if let Err(e) = check_principal_name(&u.name.value) {
            errors.push(ConfigError::new(origin.clone(), format!("auth.users: {e}")));
        }
        if !names.insert(u.name.value.clone()) {
            errors.push(ConfigError::new(
                origin.clone(),
                format!(
                    "auth: principal `{}` is declared twice (users and tokens share names)",
                    u.name.value
                ),
            ));
        }
        if !u.password_hash.starts_with("$argon2") {
            errors.push(ConfigError::new(
                origin,
                format!(
                    "auth.users `{}`: password_hash must be an argon2 PHC string (`$argon2id$...`) \
                     as printed by `meshgate hash-password`, never a password",
                    u.name.value
                ),
            ));
            continue;
        }
        users.push(User {
            name: u.name.value,
            password_hash: u.password_hash,
            groups: u.groups,
        });
    }
    let mut tokens = Vec::new();
    for t in doc.tokens {
        let origin = Origin::at(mesh_path, t.name.referenced);
        if let Err(e) = check_principal_name(&t.name.value) {
            errors.push(ConfigError::new(
                origin.clone(),
                format!("auth.tokens: {e}"),
            ));
        }
        if !names.insert(t.name.value.clone()) {
            errors.push(ConfigError::new(
                origin.clone(),
                format!(
                    "auth: principal `{}` is declared twice (users and tokens share names)",
                    t.name.value
                ),
            ));
        }
        let Some(sha256) = parse_token_hash(&t.token_hash) else {
            errors.push(ConfigError::new(
                origin,
                format!(
                    "auth.tokens `{}`: token_hash must be `sha256:<64 hex digits>` as printed by \
                     `meshgate new-token`, never the token",
                    t.name.value
                ),
            ));
            continue;
        };
        tokens.push(StaticToken {
            name: t.name.value,
            sha256,
            groups: t.groups,
        });
    }
    let jwt = doc.jwt.and_then(|j| {
        let before = errors.len();
        if j.issuer.is_empty() || j.audience.is_empty() {
            errors.push(ConfigError::new(at.clone(), "auth.jwt: issuer and audience must not be empty"));
        }
        let jwks_json = match &j.jwks_file {
            Some(f) => match std::fs::read_to_string(dir.join(f)) {
                Ok(t) => Some(t),
                Err(e) => {
                    errors.push(ConfigError::new(
                        at.clone(),
                        format!("auth.jwt: cannot read jwks_file {}: {e}", dir.join(f).display()),
                    ));
                    None
                }
            },
            None => None,
        };
        let hs256_secret = j
            .hs256_secret
            .as_ref()
            .and_then(|v| secret(v, "auth.jwt.hs256_secret", dir, &at, errors));
        if j.jwks_file.is_some() == j.hs256_secret.is_some() {
            errors.push(ConfigError::new(
                at.clone(),
                "auth.jwt: give exactly one of jwks_file and hs256_secret",
            ));
        }
        let default_algs: Vec<String> = if j.hs256_secret.is_some() {
            vec!["HS256".into()]
        } else {
            vec!["RS256".into(), "ES256".into()]
        };
        let algorithms: Vec<String> = j
            .algorithms
            .unwrap_or(default_algs)
            .into_iter()
            .map(|a| a.to_ascii_uppercase())
            .collect();
        const KNOWN: &[&str] = &[
            "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
            "ES256", "ES384", "EDDSA",
        ];
        for a in &algorithms {
            if !KNOWN.contains(&a.as_str()) {
                errors.push(ConfigError::new(
                    at.clone(),
                    format!("auth.jwt: algorithm `{a}` is not supported (supported: {}; `none` never is)", KNOWN.join(", ")),
                ));
            }
            let symmetric = a.starts_with("HS");
            if symmetric && j.hs256_secret.is_none() || !symmetric && j.jwks_file.is_none() {
                errors.push(ConfigError::new(
                    at.clone(),
                    format!("auth.jwt: algorithm `{a}` needs {}", if symmetric { "hs256_secret" } else { "jwks_file" }),
                ));
            }
        }
        if algorithms.is_empty() {
            errors.push(ConfigError::new(at.clone(), "auth.jwt: algorithms must not be empty"));
        }
        if errors.len() != before {
            return None;
        }
        Some(Jwt {
            issuer: j.issuer,
            audience: j.audience,
            jwks_json,
            hs256_secret,
            groups_claim: j.groups_claim.unwrap_or_else(|| "groups".into()),
            principal_claim: j.principal_claim.unwrap_or_else(|| "sub".into()),
            algorithms,
            leeway_s: j.leeway_s.unwrap_or(30),
        })
    });
    let tls = doc.tls.and_then(|t| {
        let mut ok = true;
        let mut file = |f: &str, what: &str| {
            let p = dir.join(f);
            if !p.is_file() {
                errors.push(ConfigError::new(
                    at.clone(),
                    format!("auth.tls: {what} {} does not exist", p.display()),
                ));
                ok = false;
            }
            p
        };
        let cert_file = file(&t.cert_file, "cert_file");
        let key_file = file(&t.key_file, "key_file");
        let client_ca_file = t
            .client_ca_file
            .as_deref()
            .map(|f| file(f, "client_ca_file"));
        ok.then(|| Tls {
            require_client_cert: client_ca_file.is_some() && t.require_client_cert.unwrap_or(true),
            cert_file,
            key_file,
            client_ca_file,
            client_groups: t.client_groups,
        })
    });
    if doc.session_ttl_s == Some(0) {
        errors.push(ConfigError::new(
            at.clone(),
            "auth.session_ttl_s must be positive",
        ));
    }
    let mut trusted_gateways = Vec::new();
    for g in doc.trusted_gateways {
        let what = format!("auth.trusted_gateways `{}`", g.name);
        if let Err(e) = check_principal_name(&g.name) {
            errors.push(ConfigError::new(
                at.clone(),
                format!("auth.trusted_gateways: {e}"),
            ));
        }
        let key = secret(&g.key, &format!("{what}: key"), dir, &at, errors);
        if key.as_ref().is_some_and(|k| k.len() < 32) {
            errors.push(ConfigError::new(
                at.clone(),
                format!("{what}: key must be at least 32 bytes"),
            ));
        }
        if g.principals.is_empty() {
            errors.push(ConfigError::new(
                at.clone(),
                format!("{what}: list the principals it authenticates as in `principals`"),
            ));
        }
        for p in &g.principals {
            if !names.contains(p) {
                errors.push(ConfigError::new(
                    at.clone(),
                    format!("{what}: principal `{p}` is not a user or token of auth"),
                ));
            }
        }
        if let Some(key) = key {
            trusted_gateways.push(TrustedGateway {
                name: g.name,
                key,
                principals: g.principals,
            });
        }
    }
    Auth {
        trusted_gateways,
        users,
        tokens,
        jwt,
        anonymous: doc.anonymous,
        admin_groups: doc.admin_groups.unwrap_or_else(|| vec!["admins".into()]),
        session_ttl_s: doc.session_ttl_s.unwrap_or(DEFAULT_SESSION_TTL_S).max(1),
        tls,
    }
}

pub(crate) fn build_policies(
    doc: Option<PoliciesDoc>,
    dir: &Path,
    mesh_path: &Path,
    errors: &mut Vec<ConfigError>,
) -> Policies {
    let at = Origin::file(mesh_path);
    let doc = doc.unwrap_or_default();
    let hash_key = doc
        .hash_key
        .as_ref()
        .and_then(|v| secret(v, "policies.hash_key", dir, &at, errors));
    Policies {
        default_access: doc.default_access,
        classifications: doc
            .classifications
            .into_iter()
            .map(|(k, c)| {
                (
                    k,
                    Classification {
                        mask: c.mask,
                        unmask_groups: c.unmask_groups,
                    },
                )
            })
            .collect(),
        hash_key,
    }
}

pub(crate) fn build_audit(doc: Option<AuditDoc>, dir: &Path) -> Option<AuditTarget> {
    doc.map(|a| {
        if a.file == "-" {
            AuditTarget::Stdout
        } else {
            AuditTarget::File(dir.join(a.file))
        }
    })
}

pub(crate) fn build_access(doc: AccessDoc, file: &Path, errors: &mut Vec<ConfigError>) -> Access {
    let at = Origin::file(file);
    let mut read = Vec::new();
    for r in doc.read {
        let g = if r == "*" {
            Some(Grantee::Everyone)
        } else if let Some(g) = r.strip_prefix("group:") {
            (!g.is_empty()).then(|| Grantee::Group(g.to_string()))
        } else if let Some(u) = r.strip_prefix("user:") {
            (!u.is_empty()).then(|| Grantee::User(u.to_string()))
        } else {
            None
        };
        match g {
            Some(g) => read.push(g),
            None => errors.push(ConfigError::new(
                at.clone(),
                format!(
                    "access.read: `{r}` is not a grantee; write `group:NAME`, `user:NAME` or `*`"
                ),
            )),
        }
    }
    let mut row_filters = Vec::new();
    for f in doc.row_filters {
        let origin = Origin::at(file, f.where_sql.referenced);
        if f.groups.is_empty() && f.users.is_empty() {
            errors.push(ConfigError::new(
                origin.clone(),
                "access.row_filters: name the `groups` or `users` the filter applies to",
            ));
        }
        if f.where_sql.value.trim().is_empty() {
            errors.push(ConfigError::new(
                origin.clone(),
                "access.row_filters: `where` is empty",
            ));
            continue;
        }
        row_filters.push(RowFilter {
            groups: f.groups,
            users: f.users,
            ports: f.ports,
            where_sql: f.where_sql.value,
            origin,
        });
    }
    Access { read, row_filters }
}

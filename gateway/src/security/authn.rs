//! Authentication: Basic credentials of configured users (argon2), static bearer tokens
//! (SHA-256), JWTs of one issuer (pinned algorithms, JWKS by `kid`), verified TLS client
//! certificates, anonymous access when allowed, and the opaque session tokens Handshake
//! returns. Every failure is one [`AuthFailure`]: clients get `Unauthenticated` without
//! detail, the reason (never a secret) goes to the log.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use meshgate_config::{Auth, Jwt};
use meshgate_connector::identity;
use meshgate_proto::v1::SessionToken;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthMethod, Principal};
use crate::security::signing::{now_ms, BlobKind, TicketSigner};

/// Prefix of session tokens, so they are told apart from JWTs and static tokens.
const SESSION_PREFIX: &str = "mgs.";
/// How long a verified Basic credential is remembered (argon2 is slow on purpose, and some
/// clients send Basic on every call).
const BASIC_CACHE_TTL: Duration = Duration::from_secs(300);
const BASIC_CACHE_MAX: usize = 10_000;

/// Why authentication failed: for the log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure(pub String);

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail<T>(reason: impl Into<String>) -> Result<T, AuthFailure> {
    Err(AuthFailure(reason.into()))
}

/// Why `auth` settings cannot be used (reported by `meshgate validate` and at load).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// A `password_hash` that is not an argon2 PHC string with salt and hash.
    #[error("auth.users `{user}`: password_hash is not a valid PHC string: {reason}")]
    PasswordHash {
        /// The user.
        user: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An algorithm name in `auth.jwt.algorithms` that is not supported.
    #[error("unsupported JWT algorithm {0}")]
    JwtAlgorithm(String),
    /// The JWKS file does not parse.
    #[error("auth.jwt: the JWKS file is not a JWK set: {0}")]
    Jwks(String),
    /// A key of the JWKS file cannot verify signatures.
    #[error("auth.jwt: unusable key in the JWKS file: {0}")]
    JwksKey(String),
    /// Several keys, one without `kid`.
    #[error("auth.jwt: with several keys, each needs a `kid`")]
    JwksKid,
    /// Several of the above.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<AuthConfigError>),
}

/// What a call brings to prove who it is.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The `authorization` header.
    pub authorization: Option<String>,
    /// Subject CN of a client certificate verified by the TLS layer.
    pub client_cn: Option<String>,
    /// The `x-meshgate-assertion` header: a caller asserted by a trusted gateway.
    pub assertion: Option<String>,
}

struct JwtVerifier {
    cfg: Jwt,
    algorithms: Vec<Algorithm>,
    keys: HashMap<String, DecodingKey>,
    only_key: Option<DecodingKey>,
    hs: Option<DecodingKey>,
}

fn parse_alg(a: &str) -> Option<Algorithm> {
    Some(match a {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EDDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

impl JwtVerifier {
    fn new(cfg: &Jwt) -> Result<Self, AuthConfigError> {
        let algorithms = cfg
            .algorithms
            .iter()
            .map(|a| parse_alg(a).ok_or_else(|| AuthConfigError::JwtAlgorithm(a.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let mut keys = HashMap::new();
        let mut only_key = None;
        if let Some(text) = &cfg.jwks_json {
            let set: JwkSet =
                serde_json::from_str(text).map_err(|e| AuthConfigError::Jwks(e.to_string()))?;
            for jwk in &set.keys {
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| AuthConfigError::JwksKey(e.to_string()))?;
                match &jwk.common.key_id {
                    Some(kid) => {
                        keys.insert(kid.clone(), key);
                    }
                    None if set.keys.len() == 1 => only_key = Some(key),
                    None => return Err(AuthConfigError::JwksKid),
                }
            }
            if set.keys.len() == 1 && only_key.is_none() {
                only_key = keys.values().next().cloned();
            }
        }
        let hs = cfg
            .hs256_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.as_bytes()));
        Ok(Self {
            cfg: cfg.clone(),
            algorithms,
            keys,
            only_key,
            hs,
        })
    }

    fn verify(&self, token: &str) -> Result<(String, BTreeSet<String>), AuthFailure> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthFailure(format!("JWT header rejected: {e}")))?;
        if !self.algorithms.contains(&header.alg) {
            return fail(format!("JWT algorithm {:?} is not accepted", header.alg));
        }
        let key = match header.alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => self.hs.as_ref(),
            _ => match &header.kid {
                Some(kid) => self.keys.get(kid),
                None => self.only_key.as_ref(),
            },
        };
        let Some(key) = key else {
            return fail(format!("no key for JWT kid {:?}", header.kid));
        };
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&[&self.cfg.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.validate_nbf = true;
        v.leeway = self.cfg.leeway_s;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, key, &v)
            .map_err(|e| AuthFailure(format!("JWT rejected: {e}")))?;
        let claims = data.claims;
        let Some(name) = claims
            .get(&self.cfg.principal_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
        else {
            return fail(format!("JWT has no `{}` claim", self.cfg.principal_claim));
        };
        let groups = match claims.get(&self.cfg.groups_claim) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect(),
            Some(serde_json::Value::String(s)) => {
                s.split_whitespace().map(str::to_string).collect()
            }
            _ => BTreeSet::new(),
        };
        Ok((name.to_string(), groups))
    }
}

/// Verifies credentials against one mesh's `auth` section.
pub struct Authenticator {
    auth: Auth,
    jwt: Option<JwtVerifier>,
    sessions: TicketSigner,
    basic_cache: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.auth.users.len())
            .field("tokens", &self.auth.tokens.len())
            .field("jwt", &self.auth.jwt.is_some())
            .field("anonymous", &self.auth.anonymous)
            .finish_non_exhaustive()
    }
}

/// Checks the hashes and keys of `auth` the way [`Authenticator::new`] uses them.
pub fn check_auth(auth: &Auth) -> Vec<AuthConfigError> {
    let mut problems = Vec::new();
    for u in &auth.users {
        match PasswordHash::new(&u.password_hash) {
            Err(e) => problems.push(AuthConfigError::PasswordHash {
                user: u.name.clone(),
                reason: e.to_string(),
            }),
            Ok(h) if h.hash.is_none() || h.salt.is_none() => {
                problems.push(AuthConfigError::PasswordHash {
                    user: u.name.clone(),
                    reason: "it has no salt or hash (use `meshgate hash-password`)".into(),
                })
            }
            Ok(_) => {}
        }
    }
    if let Some(j) = &auth.jwt {
        if let Err(e) = JwtVerifier::new(j) {
            problems.push(e);
        }
    }
    problems
}

impl Authenticator {
    /// An authenticator for `auth`; session tokens are signed with `sessions`.
    pub fn new(auth: &Auth, sessions: TicketSigner) -> Result<Self, AuthConfigError> {
        let mut problems = check_auth(auth);
        if problems.len() == 1 {
            return Err(problems.remove(0));
        }
        if !problems.is_empty() {
            return Err(AuthConfigError::Several(problems));
        }
        let jwt = auth.jwt.as_ref().map(JwtVerifier::new).transpose()?;
        Ok(Self {
            auth: auth.clone(),
            jwt,
            sessions,
            basic_cache: Mutex::new(HashMap::new()),
        })
    }

    /// Whether any way to authenticate is configured.
    pub fn accepts_anyone(&self) -> bool {
        !self.auth.users.is_empty()
            || !self.auth.tokens.is_empty()
            || self.auth.jwt.is_some()
            || self.auth.anonymous
            || self
                .auth
                .tls
                .as_ref()
                .is_some_and(|t| t.client_ca_file.is_some())
    }

    fn principal(&self, name: &str, groups: BTreeSet<String>, method: AuthMethod) -> Principal {
        let admin = self.auth.admin_groups.iter().any(|g| groups.contains(g));
        Principal {
            name: name.to_string(),
            groups,
            method,
            admin,
        }
    }

    fn user_groups(&self, name: &str) -> Option<BTreeSet<String>> {
        self.auth
            .users
            .iter()
            .find(|u| u.name == name)
            .map(|u| u.groups.iter().cloned().collect())
    }

    fn token_groups(&self, name: &str) -> Option<BTreeSet<String>> {
        self.auth
            .tokens
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.groups.iter().cloned().collect())
    }

    /// Who is calling. Session tokens, static tokens and JWTs come as `Bearer`; users as
    /// `Basic` (with or without `=` padding); with neither, a verified client certificate, or
    /// `anonymous` when allowed.
    pub fn authenticate(&self, creds: &Credentials) -> Result<Principal, AuthFailure> {
        let principal = self.authenticate_direct(creds)?;
        match &creds.assertion {
            Some(a) => self.forwarded(&principal, a),
            None => Ok(principal),
        }
    }

    /// The caller a trusted gateway asserts. `via` must be one of the principals that
    /// gateway authenticates as; the assertion must be signed with its key, name it as
    /// issuer and be current. The caller's groups are the ones of this mesh's config.
    fn forwarded(&self, via: &Principal, assertion: &str) -> Result<Principal, AuthFailure> {
        let Some(gw) = self
            .auth
            .trusted_gateways
            .iter()
            .find(|g| g.principals.contains(&via.name))
        else {
            return fail(format!(
                "identity assertion sent by `{}`, which is not a trusted gateway's principal",
                via.name
            ));
        };
        let claims = identity::verify_assertion(assertion, &gw.name, gw.key.as_bytes())
            .map_err(|e| AuthFailure(format!("gateway `{}`: {e}", gw.name)))?;
        let name = claims.sub;
        let groups = self
            .user_groups(&name)
            .or_else(|| self.token_groups(&name))
            .unwrap_or_default();
        Ok(self.principal(&name, groups, AuthMethod::Forwarded))
    }

    fn authenticate_direct(&self, creds: &Credentials) -> Result<Principal, AuthFailure> {
        match creds.authorization.as_deref() {
            Some(h) => {
                let (scheme, value) = h.split_once(' ').unwrap_or((h, ""));
                let value = value.trim();
                if scheme.eq_ignore_ascii_case("basic") {
                    self.basic(value)
                } else if scheme.eq_ignore_ascii_case("bearer") {
                    self.bearer(value)
                } else {
                    fail("unsupported authorization scheme")
                }
            }
            None => {
                if let Some(cn) = &creds.client_cn {
                    return self.certificate(cn);
                }
                if self.auth.anonymous {
                    return Ok(self.principal("anonymous", BTreeSet::new(), AuthMethod::Anonymous));
                }
                fail("no credentials")
            }
        }
    }

    fn certificate(&self, cn: &str) -> Result<Principal, AuthFailure> {
        let Some(tls) = &self.auth.tls else {
            return fail("client certificate without TLS config");
        };
        let groups = tls
            .client_groups
            .get(cn)
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default();
        Ok(self.principal(cn, groups, AuthMethod::Certificate))
    }

    fn basic(&self, value: &str) -> Result<Principal, AuthFailure> {
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let Ok(raw) = engine.decode(value) else {
            return fail("Basic credentials are not base64");
        };
        let Ok(text) = String::from_utf8(raw) else {
            return fail("Basic credentials are not UTF-8");
        };
        let Some((user, password)) = text.split_once(':') else {
            return fail("Basic credentials have no `:`");
        };
        let key: [u8; 32] = {
            let mut h = Sha256::new();
            h.update(user.as_bytes());
            h.update([0]);
            h.update(password.as_bytes());
            h.finalize().into()
        };
        {
            let cache = self.basic_cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((name, at)) = cache.get(&key) {
                if at.elapsed() < BASIC_CACHE_TTL && name == user {
                    if let Some(groups) = self.user_groups(user) {
                        return Ok(self.principal(user, groups, AuthMethod::Password));
                    }
                }
            }
        }
        let Some(u) = self.auth.users.iter().find(|u| u.name == user) else {
            // Spend the same time as a real check, so that timing does not reveal user names.
            if let Some(any) = self.auth.users.first() {
                if let Ok(h) = PasswordHash::new(&any.password_hash) {
                    let _ = Argon2::default().verify_password(password.as_bytes(), &h);
                }
            }
            return fail(format!("unknown user `{user}`"));
        };
        let Ok(hash) = PasswordHash::new(&u.password_hash) else {
            return fail(format!("user `{user}` has an invalid password hash"));
        };
        if Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_err()
        {
            return fail(format!("wrong password for user `{user}`"));
        }
        let mut cache = self.basic_cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= BASIC_CACHE_MAX {
            cache.retain(|_, (_, at)| at.elapsed() < BASIC_CACHE_TTL);
            if cache.len() >= BASIC_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (user.to_string(), Instant::now()));
        Ok(self.principal(
            user,
            u.groups.iter().cloned().collect(),
            AuthMethod::Password,
        ))
    }

    fn bearer(&self, token: &str) -> Result<Principal, AuthFailure> {
        if token.is_empty() {
            return fail("empty bearer token");
        }
        if let Some(rest) = token.strip_prefix(SESSION_PREFIX) {
            return self.session(rest);
        }
        if token.matches('.').count() == 2 {
            let Some(jwt) = &self.jwt else {
                return fail("a JWT was sent but no JWT issuer is configured");
            };
            let (name, groups) = jwt.verify(token)?;
            return Ok(self.principal(&name, groups, AuthMethod::Jwt));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for t in &self.auth.tokens {
            if bool::from(t.sha256.ct_eq(&digest)) {
                found = Some(t);
            }
        }
        match found {
            Some(t) => Ok(self.principal(
                &t.name,
                t.groups.iter().cloned().collect(),
                AuthMethod::Token,
            )),
            None => fail("unknown bearer token"),
        }
    }

    fn session(&self, encoded: &str) -> Result<Principal, AuthFailure> {
        let Ok(blob) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded) else {
            return fail("malformed session token");
        };
        let s: SessionToken = self
            .sessions
            .verify(BlobKind::Session, &blob)
            .map_err(|_| {
                AuthFailure("session token not issued by this gateway or altered".into())
            })?;
        if now_ms() > s.expires_at_ms {
            return fail(format!("session token of `{}` expired", s.principal));
        }
        let method = AuthMethod::parse(&s.method)
            .ok_or_else(|| AuthFailure("session token with unknown method".into()))?;
        // Users and tokens take their groups from the config in force, so that a removed
        // user's sessions end with the reload that removes it.
        let groups = match method {
            AuthMethod::Password => self.user_groups(&s.principal),
            AuthMethod::Token => self.token_groups(&s.principal),
            AuthMethod::Anonymous => self.auth.anonymous.then(BTreeSet::new),
            AuthMethod::Jwt => self
                .jwt
                .is_some()
                .then(|| s.groups.iter().cloned().collect()),
            AuthMethod::Certificate => self
                .auth
                .tls
                .is_some()
                .then(|| s.groups.iter().cloned().collect()),
            // A forwarded identity holds only with its assertion, on each call.
            AuthMethod::Forwarded => None,
        };
        let Some(groups) = groups else {
            return fail(format!(
                "session of `{}` no longer valid: the principal was removed",
                s.principal
            ));
        };
        Ok(self.principal(&s.principal, groups, method))
    }

    /// A session token for `p`, valid for `auth.session_ttl_s`.
    pub fn issue_session(&self, p: &Principal) -> String {
        let token = SessionToken {
            principal: p.name.clone(),
            method: p.method.as_str().to_string(),
            groups: match p.method {
                AuthMethod::Jwt | AuthMethod::Certificate => p.groups.iter().cloned().collect(),
                _ => vec![],
            },
            expires_at_ms: now_ms() + self.auth.session_ttl_s * 1000,
        };
        let blob = self.sessions.sign(BlobKind::Session, &token);
        format!(
            "{SESSION_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(blob)
        )
    }
}

/// `meshgate hash-password`: an argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
}

/// `meshgate new-token`: a random token and its `sha256:<hex>` hash for `auth.tokens`.
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = format!(
        "mgt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    (token.clone(), token_hash(&token))
}

/// `sha256:<hex>` of a token.
pub fn token_hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshgate_config::{StaticToken, User};

    fn auth() -> Auth {
        let (_, h) = new_token();
        Auth {
            trusted_gateways: vec![],
            users: vec![User {
                name: "alice".into(),
                password_hash: hash_password("s3cret").expect("hash"),
                groups: vec!["analysts".into()],
            }],
            tokens: vec![StaticToken {
                name: "etl".into(),
                sha256: meshgate_config::parse_token_hash(&h).expect("hash"),
                groups: vec!["pipelines".into()],
            }],
            admin_groups: vec!["admins".into()],
            session_ttl_s: 60,
            ..Auth::default()
        }
    }

    fn creds(h: &str) -> Credentials {
        Credentials {
            authorization: Some(h.into()),
            client_cn: None,
            assertion: None,
        }
    }

    #[test]
    fn basic_with_and_without_padding_and_sessions() {
        let a = Authenticator::new(&auth(), TicketSigner::random(Duration::from_secs(60)))
            .expect("auth");
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let p = a.authenticate(&creds(&format!("Basic {b64}"))).expect("ok");
        assert_eq!(p.name, "alice");
        assert!(p.in_group("analysts"));
        let unpadded = b64.trim_end_matches('=');
        assert!(a.authenticate(&creds(&format!("Basic {unpadded}"))).is_ok());
        let wrong = base64::engine::general_purpose::STANDARD.encode("alice:nope");
        assert!(a.authenticate(&creds(&format!("Basic {wrong}"))).is_err());
        let session = a.issue_session(&p);
        let again = a
            .authenticate(&creds(&format!("Bearer {session}")))
            .expect("session");
        assert_eq!(again, p);
        // A flipped character anywhere is rejected.
        let mut bad = session.clone().into_bytes();
        let i = bad.len() - 3;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).expect("utf8");
        assert!(a.authenticate(&creds(&format!("Bearer {bad}"))).is_err());
        assert!(a.authenticate(&Credentials::default()).is_err());
    }

    #[test]
    fn forwarded_identities() {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let key = "k".repeat(40);
        let mut cfg = auth();
        cfg.trusted_gateways = vec![meshgate_config::TrustedGateway {
            name: "hub".into(),
            key: key.clone(),
            principals: vec!["alice".into()],
        }];
        let a =
            Authenticator::new(&cfg, TicketSigner::random(Duration::from_secs(60))).expect("auth");
        let now = now_ms() / 1000;
        let sign = |iss: &str, sub: &str, exp: u64, k: &str| {
            encode(
                &Header::new(Algorithm::HS256),
                &serde_json::json!({"iss": iss, "sub": sub, "exp": exp, "iat": now}),
                &EncodingKey::from_secret(k.as_bytes()),
            )
            .expect("sign")
        };
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
        );
        let with = |assertion: String, authorization: Option<String>| Credentials {
            authorization,
            client_cn: None,
            assertion: Some(assertion),
        };
        // The trusted principal asserting `etl` becomes `etl`, with etl's groups here.
        let p = a
            .authenticate(&with(
                sign("hub", "etl", now + 60, &key),
                Some(basic.clone()),
            ))
            .expect("forwarded");
        assert_eq!(p.name, "etl");
        assert_eq!(p.method, AuthMethod::Forwarded);
        assert!(p.groups.contains("pipelines"));
        // Unknown here: no groups.
        let p = a
            .authenticate(&with(
                sign("hub", "zed", now + 60, &key),
                Some(basic.clone()),
            ))
            .expect("forwarded");
        assert!(p.groups.is_empty());
        // Refused: another key, another issuer, expired, no credentials, and sessions of a
        // forwarded principal.
        for bad in [
            with(
                sign("hub", "etl", now + 60, &"x".repeat(40)),
                Some(basic.clone()),
            ),
            with(sign("other", "etl", now + 60, &key), Some(basic.clone())),
            with(sign("hub", "etl", now - 120, &key), Some(basic.clone())),
            with(sign("hub", "etl", now + 60, &key), None),
        ] {
            assert!(a.authenticate(&bad).is_err());
        }
        let session = a.issue_session(&p);
        assert!(a
            .authenticate(&creds(&format!("Bearer {session}")))
            .is_err());
    }

    #[test]
    fn static_tokens() {
        let (token, hash) = new_token();
        let mut cfg = auth();
        cfg.tokens[0].sha256 = meshgate_config::parse_token_hash(&hash).expect("hash");
        let a =
            Authenticator::new(&cfg, TicketSigner::random(Duration::from_secs(60))).expect("auth");
        let p = a
            .authenticate(&creds(&format!("Bearer {token}")))
            .expect("ok");
        assert_eq!(p.name, "etl");
        assert!(a.authenticate(&creds("Bearer mgt_wrong")).is_err());
    }

    #[test]
    fn hs256_jwts_are_checked() {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let mut cfg = auth();
        cfg.jwt = Some(Jwt {
            issuer: "https://idp/".into(),
            audience: "mg".into(),
            jwks_json: None,
            hs256_secret: Some("shared-secret".into()),
            groups_claim: "groups".into(),
            principal_claim: "sub".into(),
            algorithms: vec!["HS256".into()],
            leeway_s: 0,
        });
        let a =
            Authenticator::new(&cfg, TicketSigner::random(Duration::from_secs(60))).expect("auth");
        let now = now_ms() / 1000;
        let token = |claims: serde_json::Value, secret: &str| {
            encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .expect("encode")
        };
        let good = serde_json::json!({"sub": "bob", "groups": "analysts emea", "iss": "https://idp/", "aud": "mg", "exp": now + 60});
        let p = a
            .authenticate(&creds(&format!(
                "Bearer {}",
                token(good.clone(), "shared-secret")
            )))
            .expect("valid");
        assert_eq!(p.name, "bob");
        assert!(p.in_group("emea") && p.method == AuthMethod::Jwt);
        let mut expired = good.clone();
        expired["exp"] = serde_json::json!(now - 10);
        let mut foreign = good.clone();
        foreign["aud"] = serde_json::json!("other");
        for (claims, secret) in [
            (expired, "shared-secret"),
            (foreign, "shared-secret"),
            (good, "wrong-secret"),
        ] {
            assert!(a
                .authenticate(&creds(&format!("Bearer {}", token(claims, secret))))
                .is_err());
        }
    }
}

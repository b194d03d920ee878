//! The principal a query runs for, and how one gateway asserts it to another.
//!
//! The gateway puts the [`Caller`] into the session config of each query
//! ([`set_caller`]); a connector that forwards it (a `flightsql` source asserting the caller
//! to another meshgate) reads it from the `TaskContext` its plan executes with
//! ([`caller_of`]). It travels with the plan, so it reaches whatever thread or process
//! executes it.
//!
//! The assertion is the wire contract between gateways, defined here once for both sides:
//! an HS256 JWT with the claims of [`AssertionClaims`], sent in the header
//! [`ASSERTION_HEADER`], signed with the key both sides share (`forward_identity.key` on the
//! calling gateway, `auth.trusted_gateways[].key` on the called one).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::execution::TaskContext;
use datafusion::prelude::SessionConfig;
use serde::{Deserialize, Serialize};

/// Who a query runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Principal name.
    pub name: String,
    /// Its groups in the calling gateway.
    pub groups: Vec<String>,
}

/// Makes `caller` the caller of every plan executed with `config`.
pub fn set_caller(config: &mut SessionConfig, caller: Caller) {
    config.set_extension(Arc::new(caller));
}

/// The caller a plan executes for, if the gateway set one.
pub fn caller_of(ctx: &TaskContext) -> Option<Arc<Caller>> {
    ctx.session_config().get_extension::<Caller>()
}

/// The gRPC header carrying an identity assertion.
pub const ASSERTION_HEADER: &str = "x-meshgate-assertion";

/// Lifetime of an assertion when the source does not set `forward_identity.ttl_s`.
pub const DEFAULT_ASSERTION_TTL_S: u64 = 60;

/// Clock skew tolerated when verifying an assertion, in seconds.
pub const ASSERTION_LEEWAY_S: u64 = 30;

/// The claims of an identity assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    /// The asserting gateway (its name in the called gateway's `auth.trusted_gateways`).
    pub iss: String,
    /// The caller's principal name.
    pub sub: String,
    /// The caller's groups in the asserting gateway (informative: the called gateway uses
    /// its own groups for the name).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// Why an assertion could not be made or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Signing failed (an unusable key).
    #[error("cannot sign the identity assertion: {0}")]
    Sign(String),
    /// The signature, issuer or lifetime is wrong, or the token is malformed.
    #[error("identity assertion refused: {0}")]
    Invalid(String),
    /// The subject is empty, too long or holds control characters.
    #[error("identity assertion with an invalid principal name")]
    BadSubject,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The signed assertion of `caller` by gateway `issuer`, valid for `ttl_s` seconds.
pub fn sign_assertion(
    issuer: &str,
    key: &[u8],
    caller: &Caller,
    ttl_s: u64,
) -> Result<String, AssertionError> {
    let now = now_s();
    let claims = AssertionClaims {
        iss: issuer.to_string(),
        sub: caller.name.clone(),
        groups: caller.groups.clone(),
        iat: now,
        exp: now + ttl_s.max(1),
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .map_err(|e| AssertionError::Sign(e.to_string()))
}

/// Verifies an assertion of gateway `issuer` signed with `key`; returns its claims.
pub fn verify_assertion(
    token: &str,
    issuer: &str,
    key: &[u8],
) -> Result<AssertionClaims, AssertionError> {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    v.leeway = ASSERTION_LEEWAY_S;
    let data = jsonwebtoken::decode::<AssertionClaims>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(key),
        &v,
    )
    .map_err(|e| AssertionError::Invalid(e.to_string()))?;
    let name = &data.claims.sub;
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(AssertionError::BadSubject);
    }
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Caller {
        Caller {
            name: "alice".into(),
            groups: vec!["analysts".into()],
        }
    }

    #[test]
    fn travels_in_the_task_context() {
        let mut config = SessionConfig::new();
        let ctx = TaskContext::default();
        assert!(caller_of(&ctx).is_none());
        set_caller(&mut config, alice());
        let ctx = TaskContext::default().with_session_config(config);
        assert_eq!(caller_of(&ctx).as_deref(), Some(&alice()));
    }

    #[test]
    fn assertions_verify_with_the_same_issuer_and_key() {
        let token = sign_assertion("edge", b"shared-key", &alice(), 60).expect("signs");
        let claims = verify_assertion(&token, "edge", b"shared-key").expect("verifies");
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.groups, vec!["analysts".to_string()]);
        assert!(verify_assertion(&token, "other", b"shared-key").is_err());
        assert!(verify_assertion(&token, "edge", b"wrong-key").is_err());
        let nobody = Caller {
            name: String::new(),
            groups: vec![],
        };
        let token = sign_assertion("edge", b"shared-key", &nobody, 60).expect("signs");
        assert_eq!(
            verify_assertion(&token, "edge", b"shared-key"),
            Err(AssertionError::BadSubject)
        );
    }
}

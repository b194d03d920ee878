//! Security: who is calling ([`authn`]), what they may read and how it is rewritten
//! ([`policy`]), and the record of it ([`audit`]).

pub mod audit;
pub mod authn;
pub mod cert;
pub mod policy;
pub mod signing;
pub mod throttle;

use std::collections::BTreeSet;

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Basic credentials of a configured user.
    Password,
    /// A static bearer token.
    Token,
    /// A JWT from the configured issuer.
    Jwt,
    /// A verified TLS client certificate.
    Certificate,
    /// No credentials (`auth.anonymous: true`).
    Anonymous,
    /// An identity asserted by a trusted gateway (`auth.trusted_gateways`).
    Forwarded,
}

impl AuthMethod {
    /// Lowercase name, as in session tokens and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Token => "token",
            Self::Jwt => "jwt",
            Self::Certificate => "certificate",
            Self::Anonymous => "anonymous",
            Self::Forwarded => "forwarded",
        }
    }

    /// Parses [`AuthMethod::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "password" => Self::Password,
            "token" => Self::Token,
            "jwt" => Self::Jwt,
            "certificate" => Self::Certificate,
            "anonymous" => Self::Anonymous,
            "forwarded" => Self::Forwarded,
            _ => return None,
        })
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Name: a user, a token name, a JWT subject, a certificate CN, or `anonymous`.
    pub name: String,
    /// Groups.
    pub groups: BTreeSet<String>,
    /// How it authenticated.
    pub method: AuthMethod,
    /// Member of an admin group (may run EXPLAIN).
    pub admin: bool,
}

impl Principal {
    /// Whether the principal is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.contains(group)
    }

    /// Whether the principal is in any of `groups`.
    pub fn in_any(&self, groups: &[String]) -> bool {
        groups.iter().any(|g| self.in_group(g))
    }
}

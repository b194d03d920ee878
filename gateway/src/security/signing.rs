//! Signed, expiring tickets and prepared-statement handles.
//!
//! Layout: `[version=1][kind][16-byte truncated HMAC-SHA256 over kind||payload][payload]`,
//! payload a `meshgate.v1` protobuf message. Tickets are stateless (they carry the SQL);
//! the signature stops clients from forging or altering them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use prost::Message;
use sha2::Sha256;

use crate::error::GatewayError;

const VERSION: u8 = 1;
const MAC_LEN: usize = 16;

/// What a signed blob is, so that one kind cannot be replayed as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BlobKind {
    /// A statement ticket.
    Ticket = 1,
    /// A prepared statement handle.
    PreparedHandle = 2,
    /// A session token returned by Handshake.
    Session = 3,
}

/// Signs and verifies tickets and handles.
#[derive(Clone)]
pub struct TicketSigner {
    key: [u8; 32],
    ticket_ttl: Duration,
}

impl std::fmt::Debug for TicketSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketSigner")
            .field("ticket_ttl", &self.ticket_ttl)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl TicketSigner {
    /// A signer whose key is derived from `secret` (SHA-256), so that every replica given the
    /// same secret accepts the others' tickets and handles.
    pub fn from_secret(secret: &[u8], ticket_ttl: Duration) -> Self {
        use sha2::Digest;
        let mut h = Sha256::new();
        h.update(b"meshgate ticket key v1");
        h.update(secret);
        Self {
            key: h.finalize().into(),
            ticket_ttl,
        }
    }

    /// A signer with a random key (tickets do not survive a restart).
    pub fn random(ticket_ttl: Duration) -> Self {
        Self {
            key: rand::random(),
            ticket_ttl,
        }
    }

    fn mac(&self, kind: BlobKind, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(&[kind as u8]);
        mac.update(payload);
        mac
    }

    /// Encodes and signs `msg`.
    pub fn sign<M: Message>(&self, kind: BlobKind, msg: &M) -> Vec<u8> {
        let payload = msg.encode_to_vec();
        let tag = self.mac(kind, &payload).finalize().into_bytes();
        let mut out = Vec::with_capacity(2 + MAC_LEN + payload.len());
        out.push(VERSION);
        out.push(kind as u8);
        out.extend_from_slice(&tag[..MAC_LEN]);
        out.extend_from_slice(&payload);
        out
    }

    /// Verifies and decodes a blob of `kind`.
    pub fn verify<M: Message + Default>(
        &self,
        kind: BlobKind,
        blob: &[u8],
    ) -> Result<M, GatewayError> {
        let what = match kind {
            BlobKind::Ticket => "ticket",
            BlobKind::PreparedHandle => "prepared statement handle",
            BlobKind::Session => "session token",
        };
        let bad = || {
            GatewayError::BadRequest(format!(
                "invalid {what}: it was not issued by this gateway or was altered"
            ))
        };
        if blob.len() < 2 + MAC_LEN || blob[0] != VERSION || blob[1] != kind as u8 {
            return Err(bad());
        }
        let (tag, payload) = blob[2..].split_at(MAC_LEN);
        self.mac(kind, payload)
            .verify_truncated_left(tag)
            .map_err(|_| bad())?;
        M::decode(payload).map_err(|_| bad())
    }

    /// Checks a ticket's age.
    pub fn check_fresh(&self, issued_at_ms: u64) -> Result<(), GatewayError> {
        let age = now_ms().saturating_sub(issued_at_ms);
        if age > self.ticket_ttl.as_millis() as u64 {
            return Err(GatewayError::BadRequest(format!(
                "the ticket expired ({} s old, tickets live {} s); run the query again",
                age / 1000,
                self.ticket_ttl.as_secs()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshgate_proto::v1::StatementTicket;

    fn ticket() -> StatementTicket {
        StatementTicket {
            sql: "SELECT 1".into(),
            parameters: vec![],
            issued_at_ms: now_ms(),
            principal: "alice".into(),
        }
    }

    #[test]
    fn round_trip() {
        let s = TicketSigner::random(Duration::from_secs(60));
        let blob = s.sign(BlobKind::Ticket, &ticket());
        let back: StatementTicket = s.verify(BlobKind::Ticket, &blob).expect("valid");
        assert_eq!(back.sql, "SELECT 1");
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        let s = TicketSigner::random(Duration::from_secs(60));
        let blob = s.sign(BlobKind::Ticket, &ticket());
        for i in 0..blob.len() * 8 {
            let mut b = blob.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(
                s.verify::<StatementTicket>(BlobKind::Ticket, &b).is_err(),
                "bit {i}"
            );
        }
    }

    #[test]
    fn kinds_and_keys_do_not_mix() {
        let s = TicketSigner::random(Duration::from_secs(60));
        let other = TicketSigner::random(Duration::from_secs(60));
        let blob = s.sign(BlobKind::Ticket, &ticket());
        assert!(s
            .verify::<StatementTicket>(BlobKind::PreparedHandle, &blob)
            .is_err());
        assert!(other
            .verify::<StatementTicket>(BlobKind::Ticket, &blob)
            .is_err());
    }

    #[test]
    fn replicas_with_the_same_secret_agree() {
        let a = TicketSigner::from_secret(b"shared secret", Duration::from_secs(60));
        let b = TicketSigner::from_secret(b"shared secret", Duration::from_secs(60));
        let c = TicketSigner::from_secret(b"other secret", Duration::from_secs(60));
        let blob = a.sign(BlobKind::Ticket, &ticket());
        assert!(b.verify::<StatementTicket>(BlobKind::Ticket, &blob).is_ok());
        assert!(c
            .verify::<StatementTicket>(BlobKind::Ticket, &blob)
            .is_err());
    }

    #[test]
    fn old_tickets_expire() {
        let s = TicketSigner::random(Duration::from_secs(60));
        assert!(s.check_fresh(now_ms()).is_ok());
        assert!(s.check_fresh(now_ms() - 120_000).is_err());
    }
}

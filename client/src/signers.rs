//! How a registered signer key is described to people and to tools.

use evident_core::registry::{AuthError, SignerKey};
use serde_json::json;

use crate::time_text;

/// A key's status at `now` (nanoseconds): `valid`, `revoked from T: REASON`, `expired at T`
/// or `valid from T`.
pub fn key_status(k: &SignerKey, now: i64) -> String {
    match k.check(evident_core::registry::ANY_PREDICATE, now) {
        Ok(()) => "valid".into(),
        Err(AuthError::PredicateType { .. }) => "valid".into(),
        Err(AuthError::Revoked { at, reason, .. }) => format!("revoked from {at}: {reason}"),
        Err(AuthError::Expired { at, .. }) => format!("expired at {at}"),
        Err(AuthError::NotYetValid { at, .. }) => format!("valid from {at}"),
        Err(other) => other.to_string(),
    }
}

/// A signer key as JSON (identity, key, roles, predicate types, validity, revocation, the
/// entry that added it, and its [`key_status`] at `now`).
pub fn signer_json(k: &SignerKey, now: i64) -> serde_json::Value {
    json!({
        "identity": k.identity, "publicKey": k.key.to_hex(), "keyId": k.key.key_id(),
        "roles": k.roles, "predicateTypes": k.predicate_types,
        "notBefore": k.not_before.map(time_text), "notAfter": k.not_after.map(time_text),
        "revokedFrom": k.revoked.as_ref().map(|(t, _)| time_text(*t)),
        "revokedReason": k.revoked.as_ref().map(|(_, r)| r.clone()),
        "addedAtIndex": k.added_at, "status": key_status(k, now),
    })
}

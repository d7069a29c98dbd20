//! How a registered signer key's status is described to people (tools read
//! [`crate::output::SignerKeyOutput`]).

use evident_core::registry::{AuthError, SignerKey};

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

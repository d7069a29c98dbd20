//! Attestations: in-toto Statements v1 signed by pipelines' registered keys.

use super::{Checked, Kind, LogState, Refusal};
use crate::audit::{Facts, check_release};
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::keys::PublicKey;
use crate::record::EntryKind;
use crate::registry::{AuthError, Registry};
use crate::statement::Statement;

/// An attestation: a Statement whose signatures verify under registered keys that are
/// valid, not revoked and allowed for its predicate type at the entry's time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attestation;

/// The Statement of an attestation envelope, with the release it declares checked.
fn statement(envelope: &Envelope) -> Result<Statement, Refusal> {
    let statement = Statement::from_envelope(envelope).map_err(Refusal::Statement)?;
    check_release(&statement).map_err(Refusal::Release)?;
    Ok(statement)
}

/// [`Kind::check`] of an attestation whose signatures were already verified against
/// `registry` (the keys [`Registry::verifying_keys`] or its batch form found).
pub fn check_verified(
    registry: &Registry,
    envelope: &Envelope,
    keys: Result<Vec<PublicKey>, AuthError>,
    now: i64,
) -> Result<Checked, Refusal> {
    let statement = statement(envelope)?;
    let keys = keys.map_err(Refusal::Unauthorized)?;
    checked(registry, &statement, keys, now)
}

fn checked(
    registry: &Registry,
    statement: &Statement,
    keys: Vec<PublicKey>,
    now: i64,
) -> Result<Checked, Refusal> {
    let authorized = registry
        .authorize(&keys, &statement.predicate_type, now)
        .map_err(Refusal::Unauthorized)?;
    Ok(Checked {
        kind: EntryKind::Attestation,
        facts: Facts::of_attestation(statement, &authorized),
        keys,
        registry_changes: registry.events().len(),
        what: statement.predicate_type.clone(),
    })
}

impl Kind for Attestation {
    fn kind(&self) -> EntryKind {
        EntryKind::Attestation
    }

    fn payload_type(&self) -> &'static str {
        IN_TOTO_PAYLOAD_TYPE
    }

    fn administrative(&self) -> bool {
        false
    }

    fn check(
        &self,
        registry: &Registry,
        envelope: &Envelope,
        now: i64,
    ) -> Result<Checked, Refusal> {
        let statement = statement(envelope)?;
        let keys = registry
            .verifying_keys(envelope, &statement.predicate_type)
            .map_err(Refusal::Unauthorized)?;
        checked(registry, &statement, keys, now)
    }

    fn authorize(
        &self,
        state: &LogState,
        envelope: &Envelope,
        checked: Option<&Checked>,
        time: i64,
    ) -> Result<Facts, Refusal> {
        let registry = &state.registry;
        let (mut facts, keys) = match checked {
            // The keys the check found, unless registry changes were applied since (a key
            // added in between counts, so the facts are those a replay finds).
            Some(c) if c.registry_changes == registry.events().len() => {
                (c.facts.clone(), c.keys.clone())
            }
            Some(c) => {
                let predicate_type = c.facts.predicate_type.as_deref().unwrap_or_default();
                let keys = registry
                    .verifying_keys(envelope, predicate_type)
                    .map_err(Refusal::Unauthorized)?;
                (c.facts.clone(), keys)
            }
            None => {
                let statement = statement(envelope)?;
                let keys = registry
                    .verifying_keys(envelope, &statement.predicate_type)
                    .map_err(Refusal::Unauthorized)?;
                (Facts::of_attestation(&statement, &[]), keys)
            }
        };
        let predicate_type = facts.predicate_type.clone().unwrap_or_default();
        let signers = registry
            .authorize(&keys, &predicate_type, time)
            .map_err(Refusal::Unauthorized)?;
        facts.set_signers(&signers);
        Ok(facts)
    }
}

//! Attestations: in-toto Statements v1 signed by pipelines' registered keys.

use super::{Checked, Kind, LogState, Refusal};
use crate::audit::{Facts, check_release};
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::record::EntryKind;
use crate::registry::{AuthError, Registry, SignedBy};
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
    keys: Result<Vec<SignedBy>, AuthError>,
    now: i64,
) -> Result<Checked, Refusal> {
    let statement = statement(envelope)?;
    let keys = keys.map_err(Refusal::Unauthorized)?;
    checked(registry, envelope, &statement, keys, now)
}

/// Refuses, on submission, a subject digest whose algorithm is a known one written in
/// another case (`SHA256`): the log would keep it as an algorithm of its own, which the
/// subject's index list, queries and completeness proofs for `sha256` never reach. Entries
/// already logged are read as they are.
fn check_digest_names(statement: &Statement) -> Result<(), Refusal> {
    for (i, subject) in statement.subjects.iter().enumerate() {
        for alg in subject.digests.keys() {
            let canonical = crate::statement::DigestAlgorithm::parse_any_case(alg.as_str());
            if !alg.is_known() && canonical.is_known() {
                return Err(Refusal::Statement(crate::statement::field_error(
                    format!("subject[{i}].digest.{}", alg.as_str()),
                    format!(
                        "write the algorithm as {:?}, as the in-toto digest set names it",
                        canonical.as_str()
                    ),
                )));
            }
        }
    }
    Ok(())
}

fn checked(
    registry: &Registry,
    envelope: &Envelope,
    statement: &Statement,
    keys: Vec<SignedBy>,
    now: i64,
) -> Result<Checked, Refusal> {
    check_digest_names(statement)?;
    let authorized = registry
        .authorize(&keys, &statement.predicate_type, now)
        .map_err(Refusal::Unauthorized)?;
    Ok(Checked::new(
        EntryKind::Attestation,
        envelope,
        Facts::of_attestation(statement, &authorized),
        keys,
        registry,
        statement.predicate_type.clone(),
    ))
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
        checked(registry, envelope, &statement, keys, now)
    }

    fn authorize(
        &self,
        state: &LogState,
        envelope: &Envelope,
        checked: Option<&Checked>,
        time: i64,
    ) -> Result<Facts, Refusal> {
        let registry = &state.registry;
        // The keys the check of this envelope found, unless registry changes were applied
        // since (a key added in between counts, so the facts are those a replay finds);
        // either way they are authorized again below, at the integrated time.
        let reuse = checked
            .and_then(|c| c.of(EntryKind::Attestation, envelope))
            .filter(|c| c.registry_changes == registry.events().len());
        let (mut facts, keys, predicate_type) = match reuse {
            // An attestation's check names its predicate type as what it is.
            Some(c) => (c.facts.clone(), c.keys.clone(), c.what.clone()),
            None => {
                let statement = statement(envelope)?;
                let keys = registry
                    .verifying_keys(envelope, &statement.predicate_type)
                    .map_err(Refusal::Unauthorized)?;
                let facts = Facts::of_attestation(&statement, &[]);
                (facts, keys, statement.predicate_type)
            }
        };
        let signers = registry
            .authorize(&keys, &predicate_type, time)
            .map_err(Refusal::Unauthorized)?;
        facts.set_signers(&signers);
        Ok(facts)
    }
}

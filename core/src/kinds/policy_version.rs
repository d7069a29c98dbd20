//! Policy versions: release policies as documents in the log, signed by administrators
//! (docs/POLICY.md).

use super::{Checked, Digests, Kind, LogState, Refusal};
use crate::audit::Facts;
use crate::dsse::Envelope;
use crate::hash::Hash;
use crate::policy::{POLICY_PAYLOAD_TYPE, Policy};
use crate::record::EntryKind;
use crate::registry::Registry;

/// A policy version: enough administrators' signatures, a document that parses (every CEL
/// condition compiles), and a version above the policy's latest.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyVersion;

fn parse(envelope: &Envelope) -> Result<Policy, Refusal> {
    let text = std::str::from_utf8(&envelope.payload).map_err(|_| Refusal::PolicyText)?;
    Policy::parse(text).map_err(Refusal::Policy)
}

impl Kind for PolicyVersion {
    fn kind(&self) -> EntryKind {
        EntryKind::Policy
    }

    fn payload_type(&self) -> &'static str {
        POLICY_PAYLOAD_TYPE
    }

    fn administrative(&self) -> bool {
        true
    }

    /// Also that every role the policy names is held by a registered signer now: a
    /// courtesy to its author (a typo in a role would fail every release), not a rule of
    /// the log, which a replay does not apply.
    fn check(
        &self,
        registry: &Registry,
        envelope: &Envelope,
        _now: i64,
    ) -> Result<Checked, Refusal> {
        if envelope.signatures.is_empty() {
            return Err(Refusal::NoAdminSignatures("policies"));
        }
        super::bare("policies", envelope)?;
        let admins = registry
            .admin_signers(envelope)
            .map_err(Refusal::Registry)?;
        let policy = parse(envelope)?;
        policy.check_roles(registry).map_err(Refusal::Policy)?;
        let what = format!("policy {}@{}", policy.name, policy.version);
        Ok(Checked::new(
            EntryKind::Policy,
            envelope,
            Facts::of_admin_entry(&admins, Some((policy.name, policy.version))),
            Vec::new(),
            registry,
            what,
        ))
    }

    fn authorize(
        &self,
        state: &LogState,
        envelope: &Envelope,
        checked: Option<&Checked>,
        _time: i64,
    ) -> Result<Facts, Refusal> {
        super::bare("policies", envelope)?;
        let admins = state
            .registry
            .admin_signers(envelope)
            .map_err(Refusal::Registry)?;
        let policy = match checked
            .and_then(|c| c.of(EntryKind::Policy, envelope))
            .and_then(|c| c.facts.policy.clone())
        {
            Some(policy) => policy,
            None => {
                let policy = parse(envelope)?;
                (policy.name, policy.version)
            }
        };
        Ok(Facts::of_admin_entry(&admins, Some(policy)))
    }

    fn apply(
        &self,
        state: &mut LogState,
        _index: u64,
        _time: i64,
        _envelope: &Envelope,
        facts: Facts,
    ) -> Result<Facts, Refusal> {
        // `authorize` always names the policy.
        let Some((name, version)) = facts.policy.clone() else {
            return Ok(facts);
        };
        if let Some(&latest) = state.policies.get(&name).filter(|&&l| l >= version) {
            return Err(Refusal::PolicyVersion {
                name,
                latest,
                version,
            });
        }
        state.policies.insert(name, version);
        Ok(facts)
    }

    fn record(&self, digests: &mut Digests, leaf_hash: &Hash) {
        digests.policy.add(leaf_hash);
    }
}

//! Registry changes: the trust registry's entries, signed by its administrators
//! (docs/REGISTRY.md).

use super::{Checked, Digests, Kind, LogState, Refusal};
use crate::audit::Facts;
use crate::dsse::Envelope;
use crate::hash::Hash;
use crate::record::EntryKind;
use crate::registry::{REGISTRY_PAYLOAD_TYPE, Registry};

/// A registry change: enough administrators' signatures, and a change that fits the
/// registry as the entries before it left it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryChange;

/// The index a trial application gives a change: only whether it fits matters, and the
/// registry it leads to is thrown away.
const TRIAL_INDEX: u64 = u64::MAX;

impl Kind for RegistryChange {
    fn kind(&self) -> EntryKind {
        EntryKind::Registry
    }

    fn payload_type(&self) -> &'static str {
        REGISTRY_PAYLOAD_TYPE
    }

    fn administrative(&self) -> bool {
        true
    }

    /// The checks a retry passes too: administrator signatures and the payload. Whether
    /// the change fits comes after the dedupe lookup ([`Kind::trial`]): a retry of an
    /// applied change would not fit.
    fn check(
        &self,
        registry: &Registry,
        envelope: &Envelope,
        _now: i64,
    ) -> Result<Checked, Refusal> {
        if envelope.signatures.is_empty() {
            return Err(Refusal::NoAdminSignatures("registry changes"));
        }
        super::bare("registry changes", envelope)?;
        let (_, admins) = registry
            .check_envelope(envelope)
            .map_err(Refusal::Registry)?;
        Ok(Checked::new(
            EntryKind::Registry,
            envelope,
            Facts::of_admin_entry(&admins, None),
            Vec::new(),
            registry,
            "registry change".to_owned(),
        ))
    }

    fn trial(&self, registry: &Registry, envelope: &Envelope, now: i64) -> Result<(), Refusal> {
        let mut trial = registry.clone();
        trial
            .apply(TRIAL_INDEX, now, envelope)
            .map(|_| ())
            .map_err(Refusal::Registry)
    }

    fn authorize(
        &self,
        state: &LogState,
        envelope: &Envelope,
        _checked: Option<&Checked>,
        _time: i64,
    ) -> Result<Facts, Refusal> {
        super::bare("registry changes", envelope)?;
        let admins = state
            .registry
            .admin_signers(envelope)
            .map_err(Refusal::Registry)?;
        Ok(Facts::of_admin_entry(&admins, None))
    }

    fn apply(
        &self,
        state: &mut LogState,
        index: u64,
        time: i64,
        envelope: &Envelope,
        _facts: Facts,
    ) -> Result<Facts, Refusal> {
        let applied = state
            .registry
            .apply(index, time, envelope)
            .map_err(Refusal::Registry)?;
        Ok(Facts::of_admin_entry(&applied.signed_by, None))
    }

    fn record(&self, digests: &mut Digests, leaf_hash: &Hash) {
        digests.registry.add(leaf_hash);
    }
}

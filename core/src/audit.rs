//! Replaying a whole log from its genesis: what `evident audit`, `evident monitor`,
//! `evidentd verify-store` and `evidentd reindex` share.
//!
//! [`Replay`] takes the leaf records in log order and, for each one, checks what the
//! sequencer checked when it appended it: the record decodes, its index and hash-chain link
//! follow the previous entry, integrated times never go backwards, an attestation is an
//! in-toto Statement signed by a key the registry (as of that entry) allows for its
//! predicate type at its time, a registry change is signed by enough administrators and fits
//! the registry, and a policy version parses, is signed by enough administrators and is
//! higher than the previous version. It also rebuilds the Merkle tree, and the running
//! registry and policy digests that checkpoints sign, so that [`Replay::check_checkpoint`]
//! can hold the replayed log against a signed checkpoint.
//!
//! Each accepted entry yields its [`Facts`]: who signed it, what it is about. The server
//! indexes entries by them.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;

use crate::hash::Hash;
use crate::kinds::{LogState, Refusal};
use crate::merkle::Frontier;
use crate::note::Checkpoint;
use crate::predicates;
use crate::record::{EntryKind, LeafRecord};
use crate::registry::{Registry, RegistryDigest};
use crate::statement::Statement;
use crate::vindex::IndexBuilder;

/// What a replayed entry is, and who signed it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Facts {
    /// The signers whose signatures counted: signer identities for an attestation (as the
    /// registry knew them at the entry's time), administrator identities for a registry or
    /// policy entry. Sorted, without repeats.
    pub signers: Vec<String>,
    /// The roles of the attestation's signers at the entry's time. Sorted, without repeats.
    pub roles: Vec<String>,
    /// The Statement's predicate type (attestations only).
    pub predicate_type: Option<String>,
    /// `(algorithm, value)` of every subject digest (attestations only), without repeats.
    pub subjects: Vec<(String, String)>,
    /// Every non-empty subject name (attestations only), without repeats.
    pub subject_names: Vec<String>,
    /// `(name, version)` a release v0.1 attestation declares.
    pub release: Option<(String, String)>,
    /// `(name, version)` of a policy entry.
    pub policy: Option<(String, u64)>,
    /// The credentials whose signatures counted ([`crate::registry::Credential::fingerprint`]
    /// of the signers', or the administrators' keys):
    /// with the signed content, the entry's dedupe key ([`Facts::dedupe_key`]).
    #[serde(skip)]
    pub signer_keys: Vec<[u8; 32]>,
}

impl Facts {
    /// The facts of an attestation that `signers` signed (read from its Statement).
    pub fn of_attestation(statement: &Statement, signers: &[crate::registry::Authorized]) -> Facts {
        let mut digests = BTreeSet::new();
        let mut names = BTreeSet::new();
        for subject in &statement.subjects {
            if !subject.name.is_empty() {
                names.insert(subject.name.clone());
            }
            for (alg, value) in &subject.digests {
                digests.insert((alg.as_str().to_owned(), value.clone()));
            }
        }
        let mut facts = Facts {
            predicate_type: Some(statement.predicate_type.clone()),
            subjects: digests.into_iter().collect(),
            subject_names: names.into_iter().collect(),
            release: release_of(statement),
            ..Facts::default()
        };
        facts.set_signers(signers);
        facts
    }

    /// Sets the signer identities and roles from the signatures that counted.
    pub fn set_signers(&mut self, signers: &[crate::registry::Authorized]) {
        let identities: BTreeSet<String> = signers.iter().map(|s| s.identity.clone()).collect();
        let roles: BTreeSet<String> = signers.iter().flat_map(|s| s.roles.clone()).collect();
        self.signers = identities.into_iter().collect();
        self.roles = roles.into_iter().collect();
        self.signer_keys = signers.iter().map(|s| s.key).collect();
    }

    /// The facts of a registry or policy entry signed by these administrators.
    pub fn of_admin_entry(
        admins: &[crate::registry::Admin],
        policy: Option<(String, u64)>,
    ) -> Facts {
        let identities: BTreeSet<String> = admins.iter().map(|a| a.identity.clone()).collect();
        Facts {
            signers: identities.into_iter().collect(),
            policy,
            signer_keys: admins.iter().map(|a| a.key.to_bytes()).collect(),
            ..Facts::default()
        }
    }

    /// The entry's dedupe key: its signed content and the keys whose signatures counted
    /// ([`crate::record::dedupe_key`]).
    pub fn dedupe_key(&self, envelope: &crate::dsse::Envelope) -> Hash {
        crate::record::dedupe_key(envelope, &self.signer_keys)
    }
}

/// The `(name, version)` a release v0.1 attestation declares.
pub fn release_of(statement: &Statement) -> Option<(String, String)> {
    (statement.predicate_type == predicates::RELEASE_V0_1)
        .then(|| predicates::release_name_version(&statement.predicate))
        .flatten()
}

/// Checks the release name and version a release attestation declares with
/// [`crate::names`]: they are indexed and printed, so the server refuses a release whose
/// name or version it could not carry, and a replay refuses such an entry.
pub fn check_release(statement: &Statement) -> Result<(), crate::names::NameError> {
    if let Some((name, version)) = release_of(statement) {
        crate::names::check_name("release name", &name)?;
        crate::names::check_name("release version", &version)?;
    }
    Ok(())
}

/// The first problem a replay found, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {index}: {problem}")]
pub struct AuditError {
    /// The index of the first entry that is wrong (for a checkpoint mismatch: the last
    /// entry the checkpoint covers).
    pub index: u64,
    /// What is wrong, in words.
    pub problem: String,
}

fn fail(index: u64, problem: impl Into<String>) -> AuditError {
    AuditError {
        index,
        problem: problem.into(),
    }
}

/// A refused entry's problem, as a replay reports it.
fn problem(refusal: &Refusal) -> String {
    match refusal {
        Refusal::Unauthorized(e) => {
            format!("no signature the registry allowed at the entry's time: {e}")
        }
        other => other.to_string(),
    }
}

/// What a replayed log holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Entries replayed.
    pub entries: u64,
    /// Entries by kind (`attestation`, `registry`, `policy`).
    pub kinds: BTreeMap<String, u64>,
    /// Attestations by signer identity.
    pub signers: BTreeMap<String, u64>,
    /// Attestations by predicate type.
    pub predicate_types: BTreeMap<String, u64>,
    /// Integrated time of the first entry (Unix nanoseconds).
    pub first_time: Option<i64>,
    /// Integrated time of the last entry.
    pub last_time: Option<i64>,
}

/// A log being replayed from its genesis, one leaf record at a time.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The registry, policies and digests after the entries so far.
    state: LogState,
    frontier: Frontier,
    previous: Option<(u64, Hash)>,
    last_time: i64,
    /// Dedupe keys of every entry so far: the sequencer never appends one twice.
    seen: HashSet<Hash>,
    summary: Summary,
    /// The verifiable index over the entries so far (a replay from the genesis only).
    index: Option<IndexBuilder>,
}

impl Replay {
    /// A replay of an empty log whose registry starts at `genesis`.
    pub fn new(genesis: Registry) -> Replay {
        Replay {
            state: LogState::new(genesis),
            frontier: Frontier::new(),
            previous: None,
            last_time: i64::MIN,
            seen: HashSet::new(),
            summary: Summary::default(),
            index: Some(IndexBuilder::new()),
        }
    }

    /// A replay that continues a log of `frontier.size()` entries whose registry, after
    /// those entries, is `registry`; `previous` is the last entry's leaf hash and
    /// `last_time` its integrated time. It checks each further entry as [`Replay::push`]
    /// does, except what needs the entries before it: repeats of their dedupe keys, the
    /// order of their policy versions, and the running digests.
    pub fn resume(
        registry: Registry,
        frontier: Frontier,
        previous: Option<Hash>,
        last_time: i64,
    ) -> Replay {
        let size = frontier.size();
        Replay {
            previous: previous.map(|hash| (size.saturating_sub(1), hash)),
            frontier,
            last_time,
            index: None,
            ..Replay::new(registry)
        }
    }

    /// The verifiable index root over the entries so far: `None` for a replay that
    /// resumed in the middle of a log.
    pub fn index_root(&mut self) -> Option<Hash> {
        self.index.as_mut().map(IndexBuilder::root)
    }

    /// Entries replayed so far: the index the next record must have.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The Merkle root of the entries replayed so far.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The registry after the entries replayed so far.
    pub fn registry(&self) -> &Registry {
        &self.state.registry
    }

    /// What the replayed entries hold.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Checks and appends the next leaf record; returns its decoded record, leaf hash and
    /// facts. On error nothing changes.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(LeafRecord, Hash, Facts), AuditError> {
        let index = self.size();
        let record =
            LeafRecord::decode(bytes).map_err(|e| fail(index, format!("does not decode: {e}")))?;
        if record.index() != index {
            return Err(fail(
                index,
                format!(
                    "the record says it is entry {}: entries are missing, repeated or reordered",
                    record.index()
                ),
            ));
        }
        record
            .check_follows(self.previous)
            .map_err(|e| fail(index, format!("breaks the hash chain: {e}")))?;
        let time = record.integrated_time_nanos();
        if time < self.last_time {
            return Err(fail(
                index,
                format!(
                    "integrated time {} is before the previous entry's {}",
                    crate::registry::time_text(time),
                    crate::registry::time_text(self.last_time)
                ),
            ));
        }
        let kind = crate::kinds::of(record.kind());
        let envelope = record.envelope();
        if envelope.payload_type != kind.payload_type() {
            return Err(fail(
                index,
                format!(
                    "a {} entry with payloadType {:?}",
                    record.kind().as_str(),
                    envelope.payload_type
                ),
            ));
        }
        // What the sequencer did, in its order: authorize at the entry's time, dedupe,
        // apply. Nothing changes before the entry is accepted.
        let facts = kind
            .authorize(&self.state, envelope, None, time)
            .map_err(|e| fail(index, problem(&e)))?;
        let digest = facts.dedupe_key(envelope);
        if self.seen.contains(&digest) {
            return Err(fail(
                index,
                "repeats the signed content and signers of an earlier entry: the ledger never \
                 appends the same statement by the same keys twice (a replayed entry)",
            ));
        }
        let facts = kind
            .apply(&mut self.state, index, time, envelope, facts)
            .map_err(|e| fail(index, problem(&e)))?;
        // Accepted.
        let leaf_hash = record.leaf_hash();
        kind.record(&mut self.state.digests, &leaf_hash);
        if let Some(builder) = &mut self.index {
            builder.add_entry(index, leaf_hash, record.kind(), &facts);
        }
        self.frontier.append(leaf_hash);
        self.previous = Some((index, leaf_hash));
        self.last_time = time;
        self.seen.insert(digest);
        let s = &mut self.summary;
        s.entries += 1;
        *s.kinds
            .entry(record.kind().as_str().to_owned())
            .or_default() += 1;
        if record.kind() == EntryKind::Attestation {
            for signer in &facts.signers {
                *s.signers.entry(signer.clone()).or_default() += 1;
            }
            if let Some(p) = &facts.predicate_type {
                *s.predicate_types.entry(p.clone()).or_default() += 1;
            }
        }
        s.first_time.get_or_insert(time);
        s.last_time = Some(time);
        Ok((record, leaf_hash, facts))
    }

    /// Holds the replayed log against a signed checkpoint of the same size: the root, the
    /// running registry and policy digests it signs, and (for a replay from the genesis) the
    /// verifiable index root.
    pub fn check_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), AuditError> {
        let last = checkpoint.size.saturating_sub(1);
        if checkpoint.size != self.size() {
            return Err(fail(
                last,
                format!(
                    "the checkpoint covers {} entries, the replay {}",
                    checkpoint.size,
                    self.size()
                ),
            ));
        }
        if checkpoint.root != self.root() {
            return Err(fail(
                last,
                format!(
                    "the entries hash to root {}, the signed checkpoint of {} entries says {}",
                    self.root(),
                    checkpoint.size,
                    checkpoint.root
                ),
            ));
        }
        if let Some(signed) = RegistryDigest::from_extensions(&checkpoint.extensions) {
            if signed != self.state.digests.registry {
                return Err(fail(
                    last,
                    format!(
                        "the checkpoint signs {} registry entries, the log holds {}",
                        signed.count, self.state.digests.registry.count
                    ),
                ));
            }
        }
        if let Some(signed) = RegistryDigest::from_policy_extensions(&checkpoint.extensions) {
            if signed != self.state.digests.policy {
                return Err(fail(
                    last,
                    format!(
                        "the checkpoint signs {} policy versions, the log holds {}",
                        signed.count, self.state.digests.policy.count
                    ),
                ));
            }
        }
        let signed = crate::vindex::root_from_extensions(&checkpoint.extensions)
            .map_err(|e| fail(last, e.to_string()))?;
        if let (Some(signed), Some(rebuilt)) = (signed, self.index_root()) {
            if signed != rebuilt {
                return Err(fail(
                    last,
                    format!(
                        "the checkpoint signs index root {signed}, but the entries' posting \
                         lists give {rebuilt}: the server's verifiable index does not match \
                         its log, so its completeness proofs cannot be trusted"
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsse::Envelope;
    use crate::keys::SigningKey;
    use crate::registry::{Admin, Change, sign_change};

    const CI: &str = "https://in-toto.io/attestation/test-result/v0.1";

    fn admin() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn ci() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    fn genesis() -> Registry {
        Registry::genesis(
            vec![Admin {
                identity: "root".into(),
                key: crate::PublicKey::from_signing_key(&admin()),
            }],
            1,
        )
        .unwrap()
    }

    fn add_ci() -> Envelope {
        let change: Change = serde_json::from_value(serde_json::json!({
            "op": "add_signer",
            "identity": "ci@payments",
            "public_key": crate::PublicKey::from_signing_key(&ci()).to_hex(),
            "roles": ["ci"],
            "predicate_types": [CI],
        }))
        .unwrap();
        sign_change(&change, &[&admin()])
    }

    fn attestation(n: u8) -> Envelope {
        let payload = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "app.tar", "digest": {"sha256": hex::encode([n; 32])}}],
            "predicateType": CI,
            "predicate": {"result": "PASSED"},
        });
        Envelope::sign(
            crate::dsse::IN_TOTO_PAYLOAD_TYPE,
            serde_json::to_vec(&payload).unwrap(),
            &[&ci()],
        )
    }

    fn log(envelopes: Vec<(EntryKind, Envelope)>) -> Vec<Vec<u8>> {
        let mut previous = Hash::ZERO;
        envelopes
            .into_iter()
            .enumerate()
            .map(|(i, (kind, env))| {
                let r = LeafRecord::new(i as u64, 1_000 + i as i64, previous, kind, env).unwrap();
                previous = r.leaf_hash();
                r.encode()
            })
            .collect()
    }

    fn good_log() -> Vec<Vec<u8>> {
        log(vec![
            (EntryKind::Registry, add_ci()),
            (EntryKind::Attestation, attestation(1)),
            (EntryKind::Attestation, attestation(2)),
        ])
    }

    #[test]
    fn a_good_log_replays_with_facts_and_a_summary() {
        let mut replay = Replay::new(genesis());
        let mut facts = Vec::new();
        for bytes in good_log() {
            facts.push(replay.push(&bytes).unwrap().2);
        }
        assert_eq!(facts[0].signers, vec!["root".to_owned()]);
        assert_eq!(facts[1].signers, vec!["ci@payments".to_owned()]);
        assert_eq!(facts[1].roles, vec!["ci".to_owned()]);
        assert_eq!(facts[1].subject_names, vec!["app.tar".to_owned()]);
        assert_eq!(facts[1].predicate_type.as_deref(), Some(CI));
        let s = replay.summary();
        assert_eq!(s.entries, 3);
        assert_eq!(s.kinds["attestation"], 2);
        assert_eq!(s.signers["ci@payments"], 2);
        assert_eq!(s.first_time, Some(1_000));
    }

    #[test]
    fn a_reordered_entry_is_named() {
        let mut entries = good_log();
        entries.swap(1, 2);
        let mut replay = Replay::new(genesis());
        replay.push(&entries[0]).unwrap();
        let err = replay.push(&entries[1]).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(err.problem.contains("says it is entry 2"), "{err}");
        assert_eq!(replay.size(), 1, "a refused entry changes nothing");
    }

    #[test]
    fn a_flipped_byte_is_named() {
        let mut entries = good_log();
        let last = entries[2].len() - 3;
        entries[2][last] ^= 1;
        let mut replay = Replay::new(genesis());
        replay.push(&entries[0]).unwrap();
        replay.push(&entries[1]).unwrap();
        let err = replay.push(&entries[2]).unwrap_err();
        assert_eq!(err.index, 2, "{err}");
    }

    #[test]
    fn a_replayed_statement_is_named() {
        let entries = log(vec![
            (EntryKind::Registry, add_ci()),
            (EntryKind::Attestation, attestation(1)),
            (EntryKind::Attestation, attestation(1)),
        ]);
        let mut replay = Replay::new(genesis());
        replay.push(&entries[0]).unwrap();
        replay.push(&entries[1]).unwrap();
        let err = replay.push(&entries[2]).unwrap_err();
        assert_eq!(err.index, 2);
        assert!(err.problem.contains("repeats the signed content"), "{err}");
    }

    #[test]
    fn an_attestation_before_its_signer_was_registered_is_refused() {
        let entries = log(vec![(EntryKind::Attestation, attestation(1))]);
        let err = Replay::new(genesis()).push(&entries[0]).unwrap_err();
        assert_eq!(err.index, 0);
        assert!(
            err.problem.contains("no signature the registry allowed"),
            "{err}"
        );
    }

    #[test]
    fn the_checkpoint_must_match_root_and_size() {
        let mut replay = Replay::new(genesis());
        for bytes in good_log() {
            replay.push(&bytes).unwrap();
        }
        let good = Checkpoint {
            origin: "o".into(),
            size: 3,
            root: replay.root(),
            extensions: vec![],
        };
        replay.check_checkpoint(&good).unwrap();
        let forked = Checkpoint {
            root: Hash::ZERO,
            ..good.clone()
        };
        let err = replay.check_checkpoint(&forked).unwrap_err();
        assert_eq!(err.index, 2);
        assert!(err.problem.contains("hash to root"), "{err}");
    }
}

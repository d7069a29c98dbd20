//! The trust registry: who may attest what, and when. Its state at any index of the log is
//! a pure function of the registry entries before that index and the genesis
//! administrators, so a verifier with only those keys and the log rebuilds it exactly.
//!
//! A registry entry is a DSSE envelope with payload type [`REGISTRY_PAYLOAD_TYPE`] whose
//! payload is one [`Change`] (documented in `docs/REGISTRY.md`), signed by at least the
//! threshold of distinct administrators.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dsse::{DsseError, Envelope};
use crate::keys::{KeyError, PublicKey};
use crate::names::NameError;

/// The payload type of registry entries.
pub const REGISTRY_PAYLOAD_TYPE: &str = "application/vnd.evident.registry+json";
/// The `_type` of a registry change document.
pub const CHANGE_TYPE: &str = "https://evident.dev/registry/change/v1";
/// Allows every predicate type.
pub const ANY_PREDICATE: &str = "*";

/// One change to the registry, as an administrator writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// Registers a new signer: a key and the identity it stands for.
    AddSigner {
        /// Who holds the key, e.g. `ci@payments-pipeline`.
        identity: String,
        /// Raw Ed25519 key, 64 hex digits.
        public_key: String,
        /// Roles, e.g. `ci`, `scanner`, `reviewer`, `release`.
        #[serde(default)]
        roles: Vec<String>,
        /// Predicate types the key may attest, or `["*"]` for any.
        predicate_types: Vec<String>,
        /// RFC 3339: the key is not valid before this time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before: Option<String>,
        /// RFC 3339: the key is not valid from this time on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_after: Option<String>,
    },
    /// Gives a signer a new key; the old key ends at `old_key_not_after` (default: the
    /// change's integrated time). Roles, predicate types and the end of validity carry over.
    RotateSigner {
        /// The signer.
        identity: String,
        /// The new raw Ed25519 key, 64 hex digits.
        new_public_key: String,
        /// RFC 3339: when the old key stops being valid; a time after the change's own
        /// gives a grace period.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        old_key_not_after: Option<String>,
    },
    /// Revokes a signer key from a time on.
    RevokeKey {
        /// The key, 64 hex digits.
        public_key: String,
        /// RFC 3339: revoked from this time (default: the change's integrated time).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// Why, for auditors.
        reason: String,
    },
    /// Adds an administrator, optionally setting a new threshold.
    AddAdmin {
        /// Who holds the key.
        identity: String,
        /// Raw Ed25519 key, 64 hex digits.
        public_key: String,
        /// The new administrator threshold.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threshold: Option<usize>,
    },
    /// Removes an administrator, optionally setting a new threshold (else it is lowered to
    /// the number of administrators left, if it was higher).
    RemoveAdmin {
        /// The administrator's key, 64 hex digits.
        public_key: String,
        /// The new administrator threshold.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threshold: Option<usize>,
    },
}

impl Change {
    /// The payload of a registry entry: the change with `_type` added.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut value = serde_json::to_value(self).expect("a change serializes");
        value
            .as_object_mut()
            .expect("a change serializes to an object")
            .insert("_type".into(), CHANGE_TYPE.into());
        serde_json::to_vec(&value).expect("a JSON value serializes")
    }

    /// Parses the payload of a registry entry.
    pub fn from_payload(payload: &[u8]) -> Result<Change, RegistryError> {
        let mut value: Value = serde_json::from_slice(payload)
            .map_err(|e| RegistryError::Malformed(format!("payload is not JSON: {e}")))?;
        let object = value
            .as_object_mut()
            .ok_or_else(|| RegistryError::Malformed("payload is not a JSON object".into()))?;
        match object.remove("_type") {
            Some(Value::String(t)) if t == CHANGE_TYPE => {}
            Some(other) => {
                return Err(RegistryError::Malformed(format!(
                    "`_type` is {other}, expected {CHANGE_TYPE:?}"
                )));
            }
            None => return Err(RegistryError::Malformed("`_type` is missing".into())),
        }
        let change: Change =
            serde_json::from_value(value).map_err(|e| RegistryError::Malformed(e.to_string()))?;
        change.check_names()?;
        Ok(change)
    }

    /// Every name the change would put in the registry, its indexes and its history passes
    /// [`crate::names`].
    fn check_names(&self) -> Result<(), NameError> {
        use crate::names::{check_name, check_optional_name};
        match self {
            Change::AddSigner {
                identity,
                roles,
                predicate_types,
                ..
            } => {
                check_name("identity", identity)?;
                for (i, role) in roles.iter().enumerate() {
                    check_name(&format!("roles[{i}]"), role)?;
                }
                for (i, p) in predicate_types.iter().enumerate() {
                    check_name(&format!("predicate_types[{i}]"), p)?;
                }
                Ok(())
            }
            Change::RotateSigner { identity, .. } | Change::AddAdmin { identity, .. } => {
                check_name("identity", identity)
            }
            Change::RevokeKey { reason, .. } => check_optional_name("reason", reason),
            Change::RemoveAdmin { .. } => Ok(()),
        }
    }
}

/// Why a registry change is refused, or a signature is not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The payload is not a registry change.
    #[error("registry change is malformed: {0}")]
    Malformed(String),
    /// A name in the change that the indexes, logs or outputs cannot carry.
    #[error("registry change field {0}")]
    Name(#[from] NameError),
    /// The envelope's payload type is not the registry's.
    #[error("payloadType is {0:?}, registry changes use {REGISTRY_PAYLOAD_TYPE:?}")]
    PayloadType(String),
    /// Not signed by enough distinct administrators.
    #[error("registry change needs {threshold} administrator signature(s): {reason}")]
    NotEnoughAdmins {
        /// The administrator threshold.
        threshold: usize,
        /// What the signature check found.
        reason: String,
    },
    /// A field has a bad value.
    #[error("registry change field `{field}`: {problem}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The change does not fit the current state (unknown key, duplicate, last admin…).
    #[error("registry change refused: {0}")]
    Conflict(String),
}

/// Why an attestation's signatures do not authorize it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The envelope has no signatures.
    #[error("envelope has no signatures")]
    NoSignatures,
    /// No signature verifies under any registered key.
    #[error(
        "no signature verifies under a registered signer key (keyid hints: {hints}): register the key with `evident signer add`"
    )]
    UnknownKey {
        /// The envelope's keyid hints.
        hints: String,
    },
    /// The key was revoked at or before the integrated time.
    #[error("key {key} of {identity} was revoked at {at} ({reason})")]
    Revoked {
        /// The key id (hex of SHA-256 of the key).
        key: String,
        /// Its signer.
        identity: String,
        /// When the revocation took effect (RFC 3339).
        at: String,
        /// Why.
        reason: String,
    },
    /// The key's validity ended at or before the integrated time.
    #[error("key {key} of {identity} expired at {at}")]
    Expired {
        /// The key id.
        key: String,
        /// Its signer.
        identity: String,
        /// When it expired (RFC 3339).
        at: String,
    },
    /// The key is not valid yet.
    #[error("key {key} of {identity} is not valid before {at}")]
    NotYetValid {
        /// The key id.
        key: String,
        /// Its signer.
        identity: String,
        /// When it becomes valid (RFC 3339).
        at: String,
    },
    /// The key may not attest this predicate type.
    #[error("key {key} of {identity} is not allowed for predicate type {predicate_type}")]
    PredicateType {
        /// The key id.
        key: String,
        /// Its signer.
        identity: String,
        /// The Statement's predicate type.
        predicate_type: String,
    },
}

/// RFC 3339 text of a time in nanoseconds since the Unix epoch.
pub fn time_text(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Parses an RFC 3339 time into nanoseconds since the Unix epoch.
pub fn parse_time(field: &'static str, text: &str) -> Result<i64, RegistryError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| RegistryError::Field {
            field,
            problem: format!("{text:?} is not an RFC 3339 time such as 2026-01-31T12:00:00Z"),
        })
}

fn parse_key(field: &'static str, hex_key: &str) -> Result<PublicKey, RegistryError> {
    PublicKey::from_hex(hex_key).map_err(|e: KeyError| RegistryError::Field {
        field,
        problem: e.to_string(),
    })
}

/// A signer key and everything the registry says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignerKey {
    /// The signer.
    pub identity: String,
    /// The key.
    #[serde(serialize_with = "key_hex")]
    pub key: PublicKey,
    /// Its roles.
    pub roles: BTreeSet<String>,
    /// Predicate types it may attest (`*` for any).
    pub predicate_types: BTreeSet<String>,
    /// Not valid before (nanoseconds).
    pub not_before: Option<i64>,
    /// Not valid from (nanoseconds).
    pub not_after: Option<i64>,
    /// Revoked from, and why.
    pub revoked: Option<(i64, String)>,
    /// The log index of the entry that registered it.
    pub added_at: u64,
}

fn key_hex<S: serde::Serializer>(key: &PublicKey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&key.to_hex())
}

impl SignerKey {
    /// Whether the key is neither revoked nor expired at `time` (it may still be waiting for
    /// its `not_before`, or have a revocation scheduled later).
    pub fn live(&self, time: i64) -> bool {
        let revoked = self.revoked.as_ref().is_some_and(|(from, _)| *from <= time);
        let expired = self.not_after.is_some_and(|end| end <= time);
        !revoked && !expired
    }

    /// Checks the key is valid at `time` and allowed for `predicate_type`.
    pub fn check(&self, predicate_type: &str, time: i64) -> Result<(), AuthError> {
        let key = self.key.key_id();
        let identity = self.identity.clone();
        if let Some((from, reason)) = &self.revoked {
            if *from <= time {
                return Err(AuthError::Revoked {
                    key,
                    identity,
                    at: time_text(*from),
                    reason: reason.clone(),
                });
            }
        }
        if let Some(end) = self.not_after {
            if end <= time {
                return Err(AuthError::Expired {
                    key,
                    identity,
                    at: time_text(end),
                });
            }
        }
        if let Some(start) = self.not_before {
            if time < start {
                return Err(AuthError::NotYetValid {
                    key,
                    identity,
                    at: time_text(start),
                });
            }
        }
        if !self.predicate_types.contains(ANY_PREDICATE)
            && !self.predicate_types.contains(predicate_type)
        {
            return Err(AuthError::PredicateType {
                key,
                identity,
                predicate_type: predicate_type.to_owned(),
            });
        }
        Ok(())
    }
}

/// An administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Admin {
    /// Who holds the key.
    pub identity: String,
    /// The key.
    #[serde(serialize_with = "key_hex")]
    pub key: PublicKey,
}

/// One registry entry that touched an identity, for its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The log index of the registry entry.
    pub index: u64,
    /// Its integrated time (nanoseconds).
    pub time: i64,
    /// The identity it touched.
    pub identity: String,
    /// What happened, in words.
    pub summary: String,
}

/// The registry's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// Invariant: not empty.
    admins: Vec<Admin>,
    /// Invariant: `1 <= threshold <= admins.len()`.
    threshold: usize,
    /// Every signer key ever registered, in the order registered.
    keys: Vec<SignerKey>,
    /// The key of each entry of `keys`, in the same order: what signatures are verified
    /// against, without a copy per envelope.
    trusted: Vec<PublicKey>,
    /// Key bytes → position in `keys`.
    by_key: HashMap<[u8; 32], usize>,
    /// Key id ([`PublicKey::key_id`]) → position in `keys`: where a signature's keyid hint
    /// points.
    by_key_id: HashMap<String, usize>,
    events: Vec<Event>,
}

/// What applying a registry entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The administrators whose signatures counted.
    pub signed_by: Vec<Admin>,
    /// The event recorded.
    pub event: Event,
}

/// A signature that the registry authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// The signer.
    pub identity: String,
    /// The key.
    pub key: PublicKey,
    /// Its roles.
    pub roles: BTreeSet<String>,
}

impl Registry {
    /// The genesis state: the administrators the log starts with.
    pub fn genesis(admins: Vec<Admin>, threshold: usize) -> Result<Registry, RegistryError> {
        if admins.is_empty() {
            return Err(RegistryError::Conflict(
                "the genesis needs at least one administrator".into(),
            ));
        }
        for admin in &admins {
            crate::names::check_name("genesis administrator identity", &admin.identity)?;
        }
        let distinct: BTreeSet<[u8; 32]> = admins.iter().map(|a| a.key.to_bytes()).collect();
        if distinct.len() != admins.len() {
            return Err(RegistryError::Conflict(
                "the genesis names the same administrator key twice".into(),
            ));
        }
        if threshold == 0 || threshold > admins.len() {
            return Err(RegistryError::Field {
                field: "threshold",
                problem: format!(
                    "must be between 1 and the number of administrators ({})",
                    admins.len()
                ),
            });
        }
        Ok(Registry {
            admins,
            threshold,
            keys: Vec::new(),
            trusted: Vec::new(),
            by_key: HashMap::new(),
            by_key_id: HashMap::new(),
            events: Vec::new(),
        })
    }

    /// The administrators.
    pub fn admins(&self) -> &[Admin] {
        &self.admins
    }

    /// The administrator threshold.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Every signer key ever registered, in order.
    pub fn signer_keys(&self) -> &[SignerKey] {
        &self.keys
    }

    /// Every registry event, in log order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The events that touched `identity`.
    pub fn history(&self, identity: &str) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| e.identity == identity)
            .collect()
    }

    /// Applies the registry entry at `index`, integrated at `time`: checks the
    /// administrators' signatures and the change against the current state. On error the
    /// state is unchanged.
    pub fn apply(
        &mut self,
        index: u64,
        time: i64,
        envelope: &Envelope,
    ) -> Result<Applied, RegistryError> {
        let (change, signed_by) = self.check_envelope(envelope)?;
        let event = self.apply_change(index, time, change)?;
        Ok(Applied { signed_by, event })
    }

    /// Checks the payload type and the administrator signatures; returns the parsed change
    /// and the administrators who signed.
    pub fn check_envelope(
        &self,
        envelope: &Envelope,
    ) -> Result<(Change, Vec<Admin>), RegistryError> {
        if envelope.payload_type != REGISTRY_PAYLOAD_TYPE {
            return Err(RegistryError::PayloadType(envelope.payload_type.clone()));
        }
        let change = Change::from_payload(&envelope.payload)?;
        let signed_by = self.admin_signers(envelope)?;
        Ok((change, signed_by))
    }

    /// Checks that at least `threshold` distinct current administrators signed the envelope
    /// (registry changes, policy versions); returns their identities.
    pub fn check_admin_signatures(
        &self,
        envelope: &Envelope,
    ) -> Result<Vec<String>, RegistryError> {
        Ok(self
            .admin_signers(envelope)?
            .into_iter()
            .map(|a| a.identity)
            .collect())
    }

    /// Like [`Registry::check_admin_signatures`], returning the administrators themselves
    /// (identity and key).
    pub fn admin_signers(&self, envelope: &Envelope) -> Result<Vec<Admin>, RegistryError> {
        let keys: Vec<PublicKey> = self.admins.iter().map(|a| a.key).collect();
        let signed = envelope
            .verify_threshold(&keys, self.threshold)
            .map_err(|e| RegistryError::NotEnoughAdmins {
                threshold: self.threshold,
                reason: match e {
                    DsseError::NoTrustedSignature { .. } => {
                        "no signature is by an administrator".to_owned()
                    }
                    other => other.to_string(),
                },
            })?;
        Ok(signed.into_iter().map(|i| self.admins[i].clone()).collect())
    }

    fn apply_change(
        &mut self,
        index: u64,
        time: i64,
        change: Change,
    ) -> Result<Event, RegistryError> {
        let event = |identity: &str, summary: String| Event {
            index,
            time,
            identity: identity.to_owned(),
            summary,
        };
        let recorded = match change {
            Change::AddSigner {
                identity,
                public_key,
                roles,
                predicate_types,
                not_before,
                not_after,
            } => {
                let identity = non_empty("identity", identity)?;
                let key = parse_key("public_key", &public_key)?;
                self.ensure_new_key(&key)?;
                if self
                    .keys
                    .iter()
                    .any(|k| k.identity == identity && k.live(time))
                {
                    return Err(RegistryError::Conflict(format!(
                        "signer {identity} already has a live key: give it a new key with rotate_signer"
                    )));
                }
                if predicate_types.is_empty() {
                    return Err(RegistryError::Field {
                        field: "predicate_types",
                        problem: "is empty: list the predicate types the key may attest, or \"*\""
                            .into(),
                    });
                }
                let not_before = not_before
                    .map(|t| parse_time("not_before", &t))
                    .transpose()?;
                let not_after = not_after.map(|t| parse_time("not_after", &t)).transpose()?;
                if let (Some(a), Some(b)) = (not_before, not_after) {
                    if a >= b {
                        return Err(RegistryError::Field {
                            field: "not_after",
                            problem: "must be later than not_before".into(),
                        });
                    }
                }
                let roles: BTreeSet<String> = roles.into_iter().collect();
                let summary = format!(
                    "added key {} with roles [{}] for predicate types [{}]",
                    key.key_id(),
                    roles.iter().cloned().collect::<Vec<_>>().join(", "),
                    predicate_types.join(", ")
                );
                self.push_key(SignerKey {
                    identity: identity.clone(),
                    key,
                    roles,
                    predicate_types: predicate_types.into_iter().collect(),
                    not_before,
                    not_after,
                    revoked: None,
                    added_at: index,
                });
                event(&identity, summary)
            }
            Change::RotateSigner {
                identity,
                new_public_key,
                old_key_not_after,
            } => {
                let key = parse_key("new_public_key", &new_public_key)?;
                self.ensure_new_key(&key)?;
                // The identity's newest key, whatever its state: rotating away from a revoked
                // or expired key is how a signer gets back to work.
                let current = self
                    .keys
                    .iter()
                    .rposition(|k| k.identity == identity)
                    .ok_or_else(|| {
                        RegistryError::Conflict(format!(
                            "signer {identity:?} is not registered: add it with add_signer"
                        ))
                    })?;
                let end = match old_key_not_after {
                    Some(t) => parse_time("old_key_not_after", &t)?,
                    None => time,
                };
                let old = &self.keys[current];
                if let Some(limit) = old.not_after {
                    if limit <= time {
                        return Err(RegistryError::Conflict(format!(
                            "signer {identity}'s validity ended at {}: a rotated key would never \
                             be valid; register the identity again with add_signer",
                            time_text(limit)
                        )));
                    }
                }
                let new = SignerKey {
                    identity: identity.clone(),
                    key,
                    roles: old.roles.clone(),
                    predicate_types: old.predicate_types.clone(),
                    not_before: old.not_before,
                    not_after: old.not_after,
                    revoked: None,
                    added_at: index,
                };
                let old = &mut self.keys[current];
                let old_id = old.key.key_id();
                old.not_after = Some(old.not_after.map_or(end, |e| e.min(end)));
                let summary = format!(
                    "rotated key {old_id} (valid until {}) to {}",
                    time_text(old.not_after.unwrap_or(end)),
                    new.key.key_id()
                );
                self.push_key(new);
                event(&identity, summary)
            }
            Change::RevokeKey {
                public_key,
                from,
                reason,
            } => {
                let key = parse_key("public_key", &public_key)?;
                let reason = non_empty("reason", reason)?;
                let from = match from {
                    Some(t) => parse_time("from", &t)?,
                    None => time,
                };
                let position = *self.by_key.get(&key.to_bytes()).ok_or_else(|| {
                    RegistryError::Conflict(format!(
                        "revokes an unknown key {}: it was never registered as a signer",
                        key.key_id()
                    ))
                })?;
                let record = &mut self.keys[position];
                // A revocation can be moved earlier (a compromise found to have started
                // sooner, or a mistyped date), never later.
                let summary = match &record.revoked {
                    Some((at, _)) if *at <= from => {
                        return Err(RegistryError::Conflict(format!(
                            "key {} is already revoked from {}; a revocation can only be moved earlier",
                            key.key_id(),
                            time_text(*at)
                        )));
                    }
                    Some((at, _)) => format!(
                        "moved the revocation of key {} from {} to {}: {reason}",
                        key.key_id(),
                        time_text(*at),
                        time_text(from)
                    ),
                    None => format!(
                        "revoked key {} from {}: {reason}",
                        key.key_id(),
                        time_text(from)
                    ),
                };
                record.revoked = Some((from, reason));
                let identity = record.identity.clone();
                event(&identity, summary)
            }
            Change::AddAdmin {
                identity,
                public_key,
                threshold,
            } => {
                let identity = non_empty("identity", identity)?;
                let key = parse_key("public_key", &public_key)?;
                if self.admins.iter().any(|a| a.key == key) {
                    return Err(RegistryError::Conflict(format!(
                        "key {} is already an administrator",
                        key.key_id()
                    )));
                }
                let count = self.admins.len() + 1;
                let threshold = check_threshold(threshold.unwrap_or(self.threshold), count)?;
                self.admins.push(Admin {
                    identity: identity.clone(),
                    key,
                });
                self.threshold = threshold;
                event(
                    &identity,
                    format!(
                        "became an administrator with key {}; threshold {threshold} of {count}",
                        key.key_id()
                    ),
                )
            }
            Change::RemoveAdmin {
                public_key,
                threshold,
            } => {
                let key = parse_key("public_key", &public_key)?;
                let position = self
                    .admins
                    .iter()
                    .position(|a| a.key == key)
                    .ok_or_else(|| {
                        RegistryError::Conflict(format!(
                            "key {} is not an administrator",
                            key.key_id()
                        ))
                    })?;
                let count = self.admins.len() - 1;
                if count == 0 {
                    return Err(RegistryError::Conflict(
                        "removing the last administrator would leave no one to change the registry"
                            .into(),
                    ));
                }
                let threshold =
                    check_threshold(threshold.unwrap_or(self.threshold.min(count)), count)?;
                let removed = self.admins.remove(position);
                self.threshold = threshold;
                event(
                    &removed.identity,
                    format!(
                        "stopped being an administrator (key {}); threshold {threshold} of {count}",
                        key.key_id()
                    ),
                )
            }
        };
        self.events.push(recorded.clone());
        Ok(recorded)
    }

    fn ensure_new_key(&self, key: &PublicKey) -> Result<(), RegistryError> {
        if let Some(&i) = self.by_key.get(&key.to_bytes()) {
            return Err(RegistryError::Conflict(format!(
                "key {} is already registered to {}: a key belongs to one signer, once",
                key.key_id(),
                self.keys[i].identity
            )));
        }
        Ok(())
    }

    fn push_key(&mut self, key: SignerKey) {
        self.by_key.insert(key.key.to_bytes(), self.keys.len());
        self.by_key_id.insert(key.key.key_id(), self.keys.len());
        self.trusted.push(key.key);
        self.keys.push(key);
    }

    /// The registered signer keys (of any status) under which some signature of the
    /// envelope verifies, bounded as [`Envelope::verify_bounded`] says: a signature whose
    /// keyid names a registered key is tried against that key only; the others against the
    /// keys registered for `predicate_type` (or `"*"`), newest first, within
    /// [`crate::dsse::MAX_UNHINTED_VERIFICATIONS`] trials per envelope. A key not registered
    /// for the predicate type could not authorize it anyway.
    pub fn verifying_keys(
        &self,
        envelope: &Envelope,
        predicate_type: &str,
    ) -> Result<Vec<PublicKey>, AuthError> {
        if envelope.signatures.is_empty() {
            return Err(AuthError::NoSignatures);
        }
        let candidates = self.candidates(envelope, predicate_type);
        let hinted = |keyid: &str| self.by_key_id.get(keyid).copied();
        self.keys_found(envelope.verify_bounded(&self.trusted, hinted, &candidates))
    }

    /// [`Registry::verifying_keys`] of many attestations (envelope, predicate type) at
    /// once, with exactly its results, their signatures checked in one Ed25519 batch
    /// ([`Envelope::verify_bounded_batch`]).
    pub fn verifying_keys_batch(
        &self,
        items: &[(&Envelope, &str)],
    ) -> Vec<Result<Vec<PublicKey>, AuthError>> {
        let trusted = &self.trusted;
        let hinted = |keyid: &str| self.by_key_id.get(keyid).copied();
        let candidates: Vec<Vec<usize>> = items
            .iter()
            .map(|(envelope, predicate_type)| self.candidates(envelope, predicate_type))
            .collect();
        let batch: Vec<crate::dsse::BatchItem<'_>> = items
            .iter()
            .zip(&candidates)
            .map(|((envelope, _), candidates)| crate::dsse::BatchItem {
                envelope,
                trusted,
                hinted: &hinted,
                candidates,
            })
            .collect();
        Envelope::verify_bounded_batch(&batch)
            .into_iter()
            .map(|found| self.keys_found(found))
            .collect()
    }

    /// The keys a signature without a usable hint is tried against: those allowed for
    /// `predicate_type`, the newest first (none when every signature has a usable hint).
    fn candidates(&self, envelope: &Envelope, predicate_type: &str) -> Vec<usize> {
        let unhinted = envelope
            .signatures
            .iter()
            .any(|s| !self.by_key_id.contains_key(&s.keyid));
        if !unhinted {
            return Vec::new();
        }
        (0..self.keys.len())
            .rev()
            .filter(|&i| {
                let allowed = &self.keys[i].predicate_types;
                allowed.contains(predicate_type) || allowed.contains(ANY_PREDICATE)
            })
            .collect()
    }

    /// The keys of a bounded verification's result, or the authorization error it means.
    fn keys_found(
        &self,
        found: Result<Vec<usize>, DsseError>,
    ) -> Result<Vec<PublicKey>, AuthError> {
        match found {
            Ok(found) => Ok(found.into_iter().map(|i| self.trusted[i]).collect()),
            Err(DsseError::NoTrustedSignature { hints, .. }) => {
                Err(AuthError::UnknownKey { hints })
            }
            Err(DsseError::NoSignatures) => Err(AuthError::NoSignatures),
            Err(other) => Err(AuthError::UnknownKey {
                hints: other.to_string(),
            }),
        }
    }

    /// Authorizes an attestation whose signatures verify under `keys` (from
    /// [`Registry::verifying_keys`]): at least one key must be registered, valid at `time`,
    /// not revoked, and allowed for `predicate_type`. Returns every key that passes; when
    /// none does, the reason of the first key.
    pub fn authorize(
        &self,
        keys: &[PublicKey],
        predicate_type: &str,
        time: i64,
    ) -> Result<Vec<Authorized>, AuthError> {
        let mut first_error = None;
        let mut passed = Vec::new();
        for key in keys {
            let Some(&i) = self.by_key.get(&key.to_bytes()) else {
                continue;
            };
            let record = &self.keys[i];
            match record.check(predicate_type, time) {
                Ok(()) => passed.push(Authorized {
                    identity: record.identity.clone(),
                    key: record.key,
                    roles: record.roles.clone(),
                }),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if passed.is_empty() {
            return Err(first_error.unwrap_or(AuthError::UnknownKey {
                hints: "none".into(),
            }));
        }
        Ok(passed)
    }

    /// Verifies and authorizes an attestation envelope in one step (what an offline
    /// verifier does).
    pub fn authorize_envelope(
        &self,
        envelope: &Envelope,
        predicate_type: &str,
        time: i64,
    ) -> Result<Vec<Authorized>, AuthError> {
        let keys = self.verifying_keys(envelope, predicate_type)?;
        self.authorize(&keys, predicate_type, time)
    }
}

fn non_empty(field: &'static str, value: String) -> Result<String, RegistryError> {
    if value.trim().is_empty() {
        return Err(RegistryError::Field {
            field,
            problem: "is empty".into(),
        });
    }
    Ok(value)
}

fn check_threshold(threshold: usize, admins: usize) -> Result<usize, RegistryError> {
    if threshold == 0 || threshold > admins {
        return Err(RegistryError::Field {
            field: "threshold",
            problem: format!("{threshold} is not between 1 and the {admins} administrator(s)"),
        });
    }
    Ok(threshold)
}

/// Builds a signed registry entry envelope.
pub fn sign_change(change: &Change, admins: &[&crate::keys::SigningKey]) -> Envelope {
    Envelope::sign(REGISTRY_PAYLOAD_TYPE, change.to_payload(), admins)
}

/// The genesis of a log as a document: the administrators and threshold the registry
/// starts from. `evidentd` records it at first start and writes it to `genesis.json`;
/// verifiers pin it next to the log's public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisDocument {
    /// How many distinct administrators must sign.
    pub threshold: usize,
    /// The administrators.
    pub admins: Vec<GenesisAdmin>,
}

/// An administrator in a [`GenesisDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAdmin {
    /// Who holds the key.
    pub identity: String,
    /// Raw Ed25519 key, 64 hex digits.
    pub public_key: String,
}

impl GenesisDocument {
    /// The genesis of these administrators.
    pub fn of(admins: &[Admin], threshold: usize) -> GenesisDocument {
        GenesisDocument {
            threshold,
            admins: admins
                .iter()
                .map(|a| GenesisAdmin {
                    identity: a.identity.clone(),
                    public_key: a.key.to_hex(),
                })
                .collect(),
        }
    }

    /// The registry state it defines.
    pub fn to_registry(&self) -> Result<Registry, RegistryError> {
        let admins = self
            .admins
            .iter()
            .map(|a| {
                Ok(Admin {
                    identity: a.identity.clone(),
                    key: parse_key("public_key", &a.public_key)?,
                })
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        Registry::genesis(admins, self.threshold)
    }

    /// `threshold of [identity key-prefix, …]`, for messages.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self
            .admins
            .iter()
            .map(|a| {
                format!(
                    "{} {}",
                    a.identity,
                    a.public_key.get(..16).unwrap_or(&a.public_key)
                )
            })
            .collect();
        format!("{} of [{}]", self.threshold, names.join(", "))
    }
}

/// The running hash of every registry entry of a log, carried in each checkpoint as the
/// extension line `evident-registry <count> <base64 hash>`. It lets a verifier prove that a
/// set of registry entries is all of them up to that checkpoint: start from 32 zero bytes,
/// and for each registry entry in log order take `SHA-256(previous ‖ leaf hash)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegistryDigest {
    /// How many registry entries it covers.
    pub count: u64,
    /// The running hash.
    pub hash: crate::hash::Hash,
}

const REGISTRY_EXTENSION: &str = "evident-registry";
const POLICY_EXTENSION: &str = "evident-policies";

impl RegistryDigest {
    /// Adds the next registry entry, by its leaf hash.
    pub fn add(&mut self, leaf_hash: &crate::hash::Hash) {
        let mut data = Vec::with_capacity(64);
        data.extend_from_slice(self.hash.as_bytes());
        data.extend_from_slice(leaf_hash.as_bytes());
        self.hash = crate::hash::Hash::sha256(&data);
        self.count += 1;
    }

    /// The checkpoint extension line.
    pub fn extension(&self) -> String {
        self.extension_named(REGISTRY_EXTENSION)
    }

    /// Reads the extension line from a checkpoint's extensions.
    pub fn from_extensions(lines: &[String]) -> Option<RegistryDigest> {
        RegistryDigest::from_extensions_named(lines, REGISTRY_EXTENSION)
    }

    /// The same running hash over policy entries, as the `evident-policies` line: a bundle
    /// must hold every policy version, so none can be left out to fall back to a laxer one.
    pub fn policy_extension(&self) -> String {
        self.extension_named(POLICY_EXTENSION)
    }

    /// Reads the `evident-policies` line.
    pub fn from_policy_extensions(lines: &[String]) -> Option<RegistryDigest> {
        RegistryDigest::from_extensions_named(lines, POLICY_EXTENSION)
    }

    fn extension_named(&self, label: &str) -> String {
        format!("{label} {} {}", self.count, self.hash.to_base64())
    }

    fn from_extensions_named(lines: &[String], label: &str) -> Option<RegistryDigest> {
        lines.iter().find_map(|line| {
            let mut parts = line.split(' ');
            if parts.next()? != label {
                return None;
            }
            let count = parts.next()?.parse().ok()?;
            let hash = crate::hash::Hash::from_base64(parts.next()?).ok()?;
            parts
                .next()
                .is_none()
                .then_some(RegistryDigest { count, hash })
        })
    }
}

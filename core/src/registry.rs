//! The trust registry: who may attest what, and when. Its state at any index of the log is
//! a pure function of the registry entries before that index and the genesis
//! administrators, so a verifier with only those keys and the log rebuilds it exactly.
//!
//! A registry entry is a DSSE envelope with payload type [`REGISTRY_PAYLOAD_TYPE`] whose
//! payload is one [`Change`] (documented in `docs/REGISTRY.md`), signed by at least the
//! threshold of distinct administrators.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dsse::{DsseError, Envelope};
use crate::ecdsa::EcKey;
use crate::keys::{KeyError, PublicKey};
use crate::names::NameError;
use crate::sigstore::{self, CertIdentity, SigstoreError, TrustedRoot};

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
    /// Registers a new signer: the identity and what it signs with, either a key
    /// (`public_key`) or, keyless, the Sigstore certificates issued to a workload
    /// (`certificate`). Exactly one of the two.
    AddSigner {
        /// Who holds the key, e.g. `ci@payments-pipeline`.
        identity: String,
        /// The key: raw Ed25519 as 64 hex digits, or a PEM `PUBLIC KEY` (ECDSA P-256 or
        /// P-384 as cosign writes them, or Ed25519).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_key: Option<String>,
        /// The certificates that stand for the signer: OIDC issuer, subject and Fulcio
        /// extensions (docs/REGISTRY.md).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate: Option<CertificateRule>,
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
        /// The new key, in either form `public_key` takes.
        new_public_key: String,
        /// RFC 3339: when the old key stops being valid; a time after the change's own
        /// gives a grace period.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        old_key_not_after: Option<String>,
    },
    /// Revokes a signer key from a time on.
    RevokeKey {
        /// The key, in either form `public_key` takes.
        public_key: String,
        /// RFC 3339: revoked from this time (default: the change's integrated time).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// Why, for auditors.
        reason: String,
    },
    /// Revokes everything a signer signs with (its keys, its certificate rule) from a
    /// time on: how a keyless signer is revoked.
    RevokeSigner {
        /// The signer.
        identity: String,
        /// RFC 3339: revoked from this time (default: the change's integrated time).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// Why, for auditors.
        reason: String,
    },
    /// Trusts a Sigstore instance for keyless signers: its `trusted_root.json` (Fulcio
    /// certificate authorities, transparency logs, CT logs, timestamp authorities) under a
    /// name. A root of the same name is replaced.
    TrustSigstore {
        /// The name certificate rules refer to, e.g. `public-good` or `github`.
        name: String,
        /// The trusted root document, as Sigstore's TUF repositories publish it.
        trusted_root: Value,
        /// Why, for auditors. An identical change is the same entry: trusting a root again
        /// after replacing it takes a new reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Stops trusting a Sigstore instance: certificates that chain only to it no longer
    /// authorize anything integrated from then on.
    DistrustSigstore {
        /// Its name.
        name: String,
        /// Why, for auditors (and, as for `trust_sigstore`, what makes a repeated
        /// distrust a new entry).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
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
                certificate,
                roles,
                predicate_types,
                ..
            } => {
                check_name("identity", identity)?;
                if let Some(rule) = certificate {
                    rule.check_names()?;
                }
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
            Change::RevokeSigner {
                identity, reason, ..
            } => {
                check_name("identity", identity)?;
                check_optional_name("reason", reason)
            }
            Change::TrustSigstore { name, reason, .. }
            | Change::DistrustSigstore { name, reason } => {
                check_name("name", name)?;
                check_optional_name("reason", reason.as_deref().unwrap_or_default())
            }
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
    /// A certificate that chains to a trusted root, but no signer's rule matches it.
    #[error(
        "no registered signer matches the certificate for {subject} from {issuer} (trusted \
         root {root}): register the identity with `evident signer add --certificate-issuer \
         … --certificate-subject …`"
    )]
    UnknownCertificate {
        /// The certificate's OIDC issuer.
        issuer: String,
        /// The certificate's subject.
        subject: String,
        /// The trusted root it chains to.
        root: String,
    },
    /// The Sigstore bundle the envelope came in does not verify.
    #[error("the Sigstore bundle does not verify ({code}): {0}", code = .0.reason())]
    Sigstore(SigstoreError),
    /// A Sigstore bundle, and the registry trusts no Sigstore instance.
    #[error(
        "the envelope came in a Sigstore bundle, and the registry trusts no Sigstore root: an \
         administrator adds one with `evident sigstore trust NAME trusted_root.json`"
    )]
    NoSigstoreRoot,
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

/// A signer key in either form a registry change takes it: 64 hex digits (raw Ed25519) or a
/// PEM `PUBLIC KEY` (ECDSA P-256 or P-384, or Ed25519).
pub fn parse_signer_key(field: &'static str, text: &str) -> Result<Credential, RegistryError> {
    let bad = |problem: String| RegistryError::Field { field, problem };
    let text = text.trim();
    if !text.starts_with("-----BEGIN") {
        return PublicKey::from_hex(text)
            .map(Credential::Ed25519)
            .map_err(|e: KeyError| bad(e.to_string()));
    }
    match EcKey::from_pem(text) {
        Ok(key) => Ok(Credential::Ecdsa(key)),
        Err(ec_error) => ed25519_from_pem(text)
            .map(Credential::Ed25519)
            .map_err(|_| bad(ec_error.to_string())),
    }
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// An Ed25519 key from a PEM `PUBLIC KEY` (as cosign writes Ed25519 keys).
fn ed25519_from_pem(text: &str) -> Result<PublicKey, KeyError> {
    use base64::Engine as _;
    let body: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| KeyError::Hex(e.to_string()))?;
    let raw = der
        .strip_prefix(&ED25519_SPKI_PREFIX[..])
        .ok_or(KeyError::InvalidPoint)?;
    PublicKey::from_bytes(raw)
}

/// The Fulcio certificate extensions a [`CertificateRule`] can name, by the names
/// [`CertIdentity::extensions`] uses (Fulcio's `docs/oid-info.md`).
pub const CERTIFICATE_EXTENSIONS: [&str; 19] = [
    "build_signer_uri",
    "build_signer_digest",
    "runner_environment",
    "source_repository_uri",
    "source_repository_digest",
    "source_repository_ref",
    "source_repository_identifier",
    "source_repository_owner_uri",
    "source_repository_owner_identifier",
    "build_config_uri",
    "build_config_digest",
    "build_trigger",
    "run_invocation_uri",
    "source_repository_visibility_at_signing",
    "github_workflow_trigger",
    "github_workflow_sha",
    "github_workflow_name",
    "github_workflow_repository",
    "github_workflow_ref",
];

/// The most patterns a rule may hold: matching stays cheap and a rule stays readable.
const MAX_RULE_EXTENSIONS: usize = CERTIFICATE_EXTENSIONS.len();

/// Which Sigstore certificates stand for a keyless signer: a certificate matches when it
/// chains to a trusted root (the one named, if `trusted_root` is set), its OIDC issuer is
/// `issuer` exactly, its subject matches `subject` and every listed extension matches.
///
/// `subject` and extension values are exact strings, or patterns where `*` stands for any
/// run of characters other than `/` and `@` (so `…/workflows/*.yml@refs/tags/v*` matches
/// any workflow file of that folder on any `v` tag, and never another repository, folder or
/// ref kind). The whole value must match; there is no other special character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateRule {
    /// The OIDC issuer, exactly, e.g. `https://token.actions.githubusercontent.com`.
    pub issuer: String,
    /// The certificate's subject (its SAN: a URI, an email), exact or a pattern. For GitHub
    /// Actions, the workflow that signed:
    /// `https://github.com/ORG/REPO/.github/workflows/FILE@REF`.
    pub subject: String,
    /// Fulcio extensions that must match, by name ([`CERTIFICATE_EXTENSIONS`]), e.g.
    /// `source_repository_ref = "refs/heads/main"`, `runner_environment = "github-hosted"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, String>,
    /// The trusted root (a `trust_sigstore` name) the certificate must chain to; any
    /// trusted root when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
}

impl CertificateRule {
    /// Whether a certificate that chains to the root `root` and names `identity` matches.
    pub fn matches(&self, identity: &CertIdentity, root: &str) -> bool {
        self.trusted_root.as_deref().is_none_or(|r| r == root)
            && identity.issuer == self.issuer
            && pattern_matches(&self.subject, &identity.subject)
            && self.extensions.iter().all(|(name, pattern)| {
                identity
                    .extensions
                    .get(name)
                    .is_some_and(|value| pattern_matches(pattern, value))
            })
    }

    /// A short description for messages and history: `SUBJECT from ISSUER`.
    pub fn describe(&self) -> String {
        let mut out = format!("certificates for {} from {}", self.subject, self.issuer);
        for (name, value) in &self.extensions {
            out.push_str(&format!(", {name}={value}"));
        }
        if let Some(root) = &self.trusted_root {
            out.push_str(&format!(" (trusted root {root})"));
        }
        out
    }

    fn check_names(&self) -> Result<(), NameError> {
        use crate::names::check_name;
        check_name("certificate.issuer", &self.issuer)?;
        check_name("certificate.subject", &self.subject)?;
        for (name, value) in &self.extensions {
            check_name("certificate.extensions", name)?;
            check_name("certificate.extensions value", value)?;
        }
        if let Some(root) = &self.trusted_root {
            check_name("certificate.trusted_root", root)?;
        }
        Ok(())
    }

    /// The rule's problems a registry change is refused for.
    fn check(&self) -> Result<(), RegistryError> {
        let bad = |field: &'static str, problem: String| RegistryError::Field { field, problem };
        if self.issuer.trim().is_empty() || self.issuer.contains('*') {
            return Err(bad(
                "certificate.issuer",
                "must name one OIDC issuer exactly, e.g. \
                 https://token.actions.githubusercontent.com"
                    .into(),
            ));
        }
        if self.subject.trim().is_empty() || self.subject.chars().all(|c| c == '*') {
            return Err(bad(
                "certificate.subject",
                "must name the certificate subject (a pattern may use `*` inside it, but not \
                 be only `*`)"
                    .into(),
            ));
        }
        if self.extensions.len() > MAX_RULE_EXTENSIONS {
            return Err(bad(
                "certificate.extensions",
                format!("lists more than {MAX_RULE_EXTENSIONS} extensions"),
            ));
        }
        for (name, value) in &self.extensions {
            if !CERTIFICATE_EXTENSIONS.contains(&name.as_str()) {
                return Err(bad(
                    "certificate.extensions",
                    format!(
                        "{name:?} is not a Fulcio extension Evident knows (known: {})",
                        CERTIFICATE_EXTENSIONS.join(", ")
                    ),
                ));
            }
            if value.is_empty() {
                return Err(bad("certificate.extensions", format!("{name} is empty")));
            }
        }
        Ok(())
    }

    /// The rule's fingerprint: SHA-256 over a domain tag and its canonical JSON.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut bytes = b"evident certificate rule v1\n".to_vec();
        bytes.extend_from_slice(&serde_json::to_vec(self).expect("a certificate rule serializes"));
        crate::hash::Hash::sha256(&bytes).0
    }
}

/// Whether `value` matches `pattern`: equal, where each `*` of the pattern stands for any
/// run (maybe empty) of characters other than `/` and `@`.
///
/// In O(pattern × value) steps whatever the stars, by dynamic programming over bytes (`*`,
/// `/` and `@` are ASCII, so no byte of another character is mistaken for them): a value
/// chosen by whoever names a tag or a branch cannot make matching slow.
pub fn pattern_matches(pattern: &str, value: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == value;
    }
    let (p, v) = (pattern.as_bytes(), value.as_bytes());
    // `next[j]`: whether `p[i + 1..]` matches `v[j..]`; `row[j]` the same for `p[i..]`.
    let mut next = vec![false; v.len() + 1];
    next[v.len()] = true;
    let mut row = vec![false; v.len() + 1];
    for i in (0..p.len()).rev() {
        for j in (0..=v.len()).rev() {
            row[j] = if p[i] == b'*' {
                next[j] || (j < v.len() && v[j] != b'/' && v[j] != b'@' && row[j + 1])
            } else {
                j < v.len() && p[i] == v[j] && next[j + 1]
            };
        }
        std::mem::swap(&mut row, &mut next);
    }
    next[0]
}

/// What a signer signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An Ed25519 key.
    Ed25519(PublicKey),
    /// An ECDSA P-256 or P-384 key (cosign's key types).
    Ecdsa(EcKey),
    /// Keyless: the Sigstore certificates this rule matches.
    Certificate(CertificateRule),
}

impl Credential {
    /// What identifies the credential in dedupe keys and revocations: the raw 32 bytes of
    /// an Ed25519 key, SHA-256 of an ECDSA key's SubjectPublicKeyInfo DER, the
    /// [`CertificateRule::fingerprint`] of a rule.
    pub fn fingerprint(&self) -> [u8; 32] {
        match self {
            Credential::Ed25519(key) => key.to_bytes(),
            Credential::Ecdsa(key) => key.fingerprint(),
            Credential::Certificate(rule) => rule.fingerprint(),
        }
    }

    /// Its id in messages and DSSE keyid hints: [`PublicKey::key_id`],
    /// [`EcKey::key_id`], or hex of the rule's fingerprint.
    pub fn key_id(&self) -> String {
        match self {
            Credential::Ed25519(key) => key.key_id(),
            Credential::Ecdsa(key) => key.key_id(),
            Credential::Certificate(rule) => hex::encode(rule.fingerprint()),
        }
    }

    /// In words: `Ed25519 key ID`, `ECDSA P-256 key ID`, `certificates for … from …`.
    pub fn describe(&self) -> String {
        match self {
            Credential::Ed25519(key) => format!("Ed25519 key {}", key.key_id()),
            Credential::Ecdsa(key) => format!("ECDSA {} key {}", key.curve().name(), key.key_id()),
            Credential::Certificate(rule) => rule.describe(),
        }
    }

    /// The key as registry changes write it (hex or PEM); `None` for a certificate rule.
    pub fn key_text(&self) -> Option<String> {
        match self {
            Credential::Ed25519(key) => Some(key.to_hex()),
            Credential::Ecdsa(key) => Some(key.to_pem()),
            Credential::Certificate(_) => None,
        }
    }
}

impl Serialize for Credential {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = s.serialize_map(Some(1))?;
        match self {
            Credential::Ed25519(key) => map.serialize_entry("ed25519", &key.to_hex())?,
            Credential::Ecdsa(key) => map.serialize_entry("ecdsa", &key.to_pem())?,
            Credential::Certificate(rule) => map.serialize_entry("certificate", rule)?,
        }
        map.end()
    }
}

/// A signer credential and everything the registry says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignerKey {
    /// The signer.
    pub identity: String,
    /// What it signs with.
    pub credential: Credential,
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
        let key = self.credential.key_id();
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
    /// Every signer credential ever registered, in the order registered.
    keys: Vec<SignerKey>,
    /// The Ed25519 keys of `keys`, in the same order: what DSSE signatures are verified
    /// against (in one batch), without a copy per envelope.
    trusted: Vec<PublicKey>,
    /// The position in `keys` of each entry of `trusted`.
    trusted_at: Vec<usize>,
    /// Key fingerprint ([`Credential::fingerprint`]) → position in `keys`, for keys.
    by_key: HashMap<[u8; 32], usize>,
    /// Key id of an Ed25519 key ([`PublicKey::key_id`]) → position in `trusted`: where a
    /// signature's keyid hint points.
    by_key_id: HashMap<String, usize>,
    /// Key id of an ECDSA key ([`EcKey::key_id`]) → position in `keys`.
    ecdsa_by_key_id: HashMap<String, usize>,
    /// The Sigstore instances keyless signers' certificates may chain to, by name.
    sigstore: Vec<(String, TrustedRoot)>,
    events: Vec<Event>,
}

/// The most Sigstore trusted roots a registry holds: a bundle is tried against each.
pub const MAX_SIGSTORE_ROOTS: usize = 8;

/// The most bytes of a trusted root document in a registry change.
pub const MAX_TRUSTED_ROOT_BYTES: usize = 256 * 1024;

/// Who a signature of an envelope proved signed it, before the registry authorizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedBy {
    /// A registered key, by [`Credential::fingerprint`].
    Key([u8; 32]),
    /// A Sigstore certificate that chains to the trusted root `root`, made at `signed_at`
    /// (the earliest verified timestamp).
    Certificate {
        /// Who the certificate names.
        identity: CertIdentity,
        /// The name of the trusted root it chains to.
        root: String,
        /// When it signed (nanoseconds), as the bundle's timestamps prove.
        signed_at: i64,
    },
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
    /// The [`Credential::fingerprint`] of the registered credential that authorized it.
    pub key: [u8; 32],
    /// Its [`Credential::key_id`].
    pub key_id: String,
    /// Its roles.
    pub roles: BTreeSet<String>,
    /// For a keyless signer: who the certificate that signed names (the policy's
    /// `workflow:` rules read it).
    pub certificate: Option<CertIdentity>,
    /// For a keyless signer: when the signature was made, as the bundle's timestamps prove
    /// it (nanoseconds). Evidence is as old as its signature, however late it was logged.
    pub signed_at: Option<i64>,
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
            trusted_at: Vec::new(),
            by_key: HashMap::new(),
            by_key_id: HashMap::new(),
            ecdsa_by_key_id: HashMap::new(),
            sigstore: Vec::new(),
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

    /// Every signer credential ever registered, in order.
    pub fn signer_keys(&self) -> &[SignerKey] {
        &self.keys
    }

    /// The Sigstore trusted roots keyless signers' certificates may chain to, by name.
    pub fn sigstore_roots(&self) -> &[(String, TrustedRoot)] {
        &self.sigstore
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
                certificate,
                roles,
                predicate_types,
                not_before,
                not_after,
            } => {
                let identity = non_empty("identity", identity)?;
                let credential = match (public_key, certificate) {
                    (Some(key), None) => {
                        let key = parse_signer_key("public_key", &key)?;
                        self.ensure_new_key(&key)?;
                        key
                    }
                    (None, Some(rule)) => {
                        rule.check()?;
                        if let Some(root) = &rule.trusted_root {
                            self.ensure_root(root)?;
                        }
                        Credential::Certificate(rule)
                    }
                    (Some(_), Some(_)) => {
                        return Err(RegistryError::Field {
                            field: "public_key",
                            problem: "and certificate are both set: a signer signs with a key \
                                      or keyless, register one of the two"
                                .into(),
                        });
                    }
                    (None, None) => {
                        return Err(RegistryError::Field {
                            field: "public_key",
                            problem: "is missing: give the signer's key (public_key) or the \
                                      certificates that stand for it (certificate)"
                                .into(),
                        });
                    }
                };
                if self
                    .keys
                    .iter()
                    .any(|k| k.identity == identity && k.live(time))
                {
                    return Err(RegistryError::Conflict(format!(
                        "signer {identity} already has a live credential: give it a new key with \
                         rotate_signer, or revoke it with revoke_signer first"
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
                    "added {} with roles [{}] for predicate types [{}]",
                    credential.describe(),
                    roles.iter().cloned().collect::<Vec<_>>().join(", "),
                    predicate_types.join(", ")
                );
                self.push_key(SignerKey {
                    identity: identity.clone(),
                    credential,
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
                let key = parse_signer_key("new_public_key", &new_public_key)?;
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
                if let Credential::Certificate(_) = old.credential {
                    return Err(RegistryError::Conflict(format!(
                        "signer {identity} is keyless: it has no key to rotate; to change which \
                         certificates stand for it, revoke it with revoke_signer and add it again"
                    )));
                }
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
                    credential: key,
                    roles: old.roles.clone(),
                    predicate_types: old.predicate_types.clone(),
                    not_before: old.not_before,
                    not_after: old.not_after,
                    revoked: None,
                    added_at: index,
                };
                let old = &mut self.keys[current];
                let old_id = old.credential.key_id();
                old.not_after = Some(old.not_after.map_or(end, |e| e.min(end)));
                let summary = format!(
                    "rotated key {old_id} (valid until {}) to {}",
                    time_text(old.not_after.unwrap_or(end)),
                    new.credential.key_id()
                );
                self.push_key(new);
                event(&identity, summary)
            }
            Change::RevokeKey {
                public_key,
                from,
                reason,
            } => {
                let key = parse_signer_key("public_key", &public_key)?;
                let reason = non_empty("reason", reason)?;
                let from = match from {
                    Some(t) => parse_time("from", &t)?,
                    None => time,
                };
                let position = *self.by_key.get(&key.fingerprint()).ok_or_else(|| {
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
            Change::RevokeSigner {
                identity,
                from,
                reason,
            } => {
                let reason = non_empty("reason", reason)?;
                let from = match from {
                    Some(t) => parse_time("from", &t)?,
                    None => time,
                };
                let mut revoked = Vec::new();
                for record in self.keys.iter_mut().filter(|k| k.identity == identity) {
                    // As for keys: a revocation moves earlier, never later.
                    if record.revoked.as_ref().is_some_and(|(at, _)| *at <= from) {
                        continue;
                    }
                    record.revoked = Some((from, reason.clone()));
                    revoked.push(record.credential.describe());
                }
                if revoked.is_empty() {
                    return Err(RegistryError::Conflict(
                        if self.keys.iter().any(|k| k.identity == identity) {
                            format!(
                                "signer {identity} is already revoked from an earlier time; a \
                                 revocation can only be moved earlier"
                            )
                        } else {
                            format!("signer {identity:?} is not registered")
                        },
                    ));
                }
                event(
                    &identity,
                    format!(
                        "revoked {} from {}: {reason}",
                        revoked.join("; "),
                        time_text(from)
                    ),
                )
            }
            Change::TrustSigstore {
                name,
                trusted_root,
                reason,
            } => {
                let name = non_empty("name", name)?;
                let bytes = serde_json::to_vec(&trusted_root).expect("a JSON value serializes");
                if bytes.len() > MAX_TRUSTED_ROOT_BYTES {
                    return Err(RegistryError::Field {
                        field: "trusted_root",
                        problem: format!(
                            "is {} bytes, at most {MAX_TRUSTED_ROOT_BYTES} are accepted",
                            bytes.len()
                        ),
                    });
                }
                let root = TrustedRoot::from_json(&bytes).map_err(|e| RegistryError::Field {
                    field: "trusted_root",
                    problem: e.to_string(),
                })?;
                let digest = root.digest().to_hex();
                let count = self.sigstore.len();
                let summary = match self.sigstore.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, old)) => {
                        *old = root;
                        format!("replaced Sigstore trusted root {name} (SHA-256 {digest})")
                            + &because(&reason)
                    }
                    None if count >= MAX_SIGSTORE_ROOTS => {
                        return Err(RegistryError::Conflict(format!(
                            "the registry already trusts {MAX_SIGSTORE_ROOTS} Sigstore roots: \
                             distrust one first"
                        )));
                    }
                    None => {
                        self.sigstore.push((name.clone(), root));
                        format!("trusted Sigstore root {name} (SHA-256 {digest})")
                            + &because(&reason)
                    }
                };
                event(&format!("sigstore:{name}"), summary)
            }
            Change::DistrustSigstore { name, reason } => {
                let position = self
                    .sigstore
                    .iter()
                    .position(|(n, _)| *n == name)
                    .ok_or_else(|| {
                        RegistryError::Conflict(format!(
                            "no Sigstore trusted root is named {name:?}"
                        ))
                    })?;
                self.sigstore.remove(position);
                event(
                    &format!("sigstore:{name}"),
                    format!("stopped trusting Sigstore root {name}") + &because(&reason),
                )
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

    fn ensure_new_key(&self, key: &Credential) -> Result<(), RegistryError> {
        if let Some(&i) = self.by_key.get(&key.fingerprint()) {
            return Err(RegistryError::Conflict(format!(
                "key {} is already registered to {}: a key belongs to one signer, once",
                key.key_id(),
                self.keys[i].identity
            )));
        }
        Ok(())
    }

    fn ensure_root(&self, name: &str) -> Result<(), RegistryError> {
        if self.sigstore.iter().any(|(n, _)| n == name) {
            return Ok(());
        }
        Err(RegistryError::Field {
            field: "certificate.trusted_root",
            problem: format!(
                "names {name:?}, which the registry does not trust: add it with trust_sigstore \
                 first"
            ),
        })
    }

    fn push_key(&mut self, key: SignerKey) {
        let position = self.keys.len();
        match &key.credential {
            Credential::Ed25519(public) => {
                self.by_key.insert(public.to_bytes(), position);
                self.by_key_id.insert(public.key_id(), self.trusted.len());
                self.trusted.push(*public);
                self.trusted_at.push(position);
            }
            Credential::Ecdsa(public) => {
                self.by_key.insert(public.fingerprint(), position);
                self.ecdsa_by_key_id.insert(public.key_id(), position);
            }
            Credential::Certificate(_) => {}
        }
        self.keys.push(key);
    }

    /// Who signed the envelope, as far as the signatures prove it, bounded as
    /// [`Envelope::verify_bounded`] says.
    ///
    /// A bare DSSE envelope: the registered keys (of any status) under which some signature
    /// verifies. A signature whose keyid names a registered key is tried against that key
    /// only; the others against the keys registered for `predicate_type` (or `"*"`), newest
    /// first, within [`crate::dsse::MAX_UNHINTED_VERIFICATIONS`] trials per envelope for
    /// Ed25519 and as many for ECDSA. A key not registered for the predicate type could not
    /// authorize it anyway.
    ///
    /// An envelope that came in a Sigstore bundle ([`Envelope::sigstore`]): the bundle is
    /// verified against each trusted root ([`sigstore::verify`]): a certificate bundle
    /// proves a [`SignedBy::Certificate`], a key bundle a registered ECDSA key.
    pub fn verifying_keys(
        &self,
        envelope: &Envelope,
        predicate_type: &str,
    ) -> Result<Vec<SignedBy>, AuthError> {
        if envelope.signatures.is_empty() {
            return Err(AuthError::NoSignatures);
        }
        if envelope.sigstore.is_some() {
            return self.verify_bundle(envelope, predicate_type);
        }
        let candidates = self.candidates(envelope, predicate_type);
        let hinted = |keyid: &str| self.by_key_id.get(keyid).copied();
        let found = envelope.verify_bounded(&self.trusted, hinted, &candidates);
        self.with_ecdsa(envelope, predicate_type, found)
    }

    /// [`Registry::verifying_keys`] of many attestations (envelope, predicate type) at
    /// once, with exactly its results, the Ed25519 signatures of bare envelopes checked in
    /// one batch ([`Envelope::verify_bounded_batch`]).
    pub fn verifying_keys_batch(
        &self,
        items: &[(&Envelope, &str)],
    ) -> Vec<Result<Vec<SignedBy>, AuthError>> {
        let trusted = &self.trusted;
        let hinted = |keyid: &str| self.by_key_id.get(keyid).copied();
        let bare: Vec<usize> = (0..items.len())
            .filter(|&i| items[i].0.sigstore.is_none() && !items[i].0.signatures.is_empty())
            .collect();
        let candidates: Vec<Vec<usize>> = bare
            .iter()
            .map(|&i| self.candidates(items[i].0, items[i].1))
            .collect();
        let batch: Vec<crate::dsse::BatchItem<'_>> = bare
            .iter()
            .zip(&candidates)
            .map(|(&i, candidates)| crate::dsse::BatchItem {
                envelope: items[i].0,
                trusted,
                hinted: &hinted,
                candidates,
            })
            .collect();
        let mut found = Envelope::verify_bounded_batch(&batch).into_iter();
        items
            .iter()
            .enumerate()
            .map(|(i, (envelope, predicate_type))| {
                if bare.binary_search(&i).is_ok() {
                    let found = found.next().expect("one result per bare envelope");
                    self.with_ecdsa(envelope, predicate_type, found)
                } else {
                    self.verifying_keys(envelope, predicate_type)
                }
            })
            .collect()
    }

    /// The Ed25519 keys (positions in `trusted`) a signature without a usable hint is tried
    /// against: those allowed for `predicate_type`, the newest first (none when every
    /// signature has a usable hint).
    fn candidates(&self, envelope: &Envelope, predicate_type: &str) -> Vec<usize> {
        let unhinted = envelope
            .signatures
            .iter()
            .any(|s| !self.by_key_id.contains_key(&s.keyid));
        if !unhinted {
            return Vec::new();
        }
        (0..self.trusted.len())
            .rev()
            .filter(|&i| self.allowed_for(self.trusted_at[i], predicate_type))
            .collect()
    }

    fn allowed_for(&self, position: usize, predicate_type: &str) -> bool {
        let allowed = &self.keys[position].predicate_types;
        allowed.contains(predicate_type) || allowed.contains(ANY_PREDICATE)
    }

    /// The keys of a bounded Ed25519 verification, with the registered ECDSA keys any other
    /// signature verifies under; or the authorization error it means.
    fn with_ecdsa(
        &self,
        envelope: &Envelope,
        predicate_type: &str,
        found: Result<Vec<usize>, DsseError>,
    ) -> Result<Vec<SignedBy>, AuthError> {
        let mut keys: Vec<SignedBy> = match &found {
            Ok(found) => found
                .iter()
                .map(|&i| SignedBy::Key(self.trusted[i].to_bytes()))
                .collect(),
            Err(_) => Vec::new(),
        };
        if !self.ecdsa_by_key_id.is_empty() {
            let message = envelope.pae();
            let mut budget = crate::dsse::MAX_UNHINTED_VERIFICATIONS;
            let newest_first: Vec<usize> = (0..self.keys.len())
                .rev()
                .filter(|&i| {
                    matches!(self.keys[i].credential, Credential::Ecdsa(_))
                        && self.allowed_for(i, predicate_type)
                })
                .collect();
            for signature in envelope.signatures.iter().take(crate::dsse::MAX_SIGNATURES) {
                // An Ed25519 signature is 64 bytes; DER ECDSA ones start with a SEQUENCE.
                if signature.sig.first() != Some(&0x30) {
                    continue;
                }
                let tried: Vec<usize> = match self.ecdsa_by_key_id.get(&signature.keyid) {
                    Some(&i) => vec![i],
                    None => newest_first.clone(),
                };
                for i in tried {
                    let hinted = self.ecdsa_by_key_id.get(&signature.keyid) == Some(&i);
                    if !hinted {
                        if budget == 0 {
                            break;
                        }
                        budget -= 1;
                    }
                    let Credential::Ecdsa(key) = &self.keys[i].credential else {
                        continue;
                    };
                    if key.verify(&message, &signature.sig) {
                        let signed = SignedBy::Key(key.fingerprint());
                        if !keys.contains(&signed) {
                            keys.push(signed);
                        }
                        break;
                    }
                }
            }
        }
        if !keys.is_empty() {
            return Ok(keys);
        }
        match found {
            Ok(_) => Err(AuthError::UnknownKey {
                hints: "none".into(),
            }),
            Err(DsseError::NoTrustedSignature { hints, .. }) => {
                Err(AuthError::UnknownKey { hints })
            }
            Err(DsseError::NoSignatures) => Err(AuthError::NoSignatures),
            Err(other) => Err(AuthError::UnknownKey {
                hints: other.to_string(),
            }),
        }
    }

    /// The registered ECDSA key a bundle's `publicKey.hint` names: its key id in hex (as
    /// Evident writes it) or in base64 (as cosign writes it).
    fn ecdsa_hinted(&self, hint: &str) -> Option<usize> {
        use base64::Engine as _;
        if let Some(&i) = self.ecdsa_by_key_id.get(hint) {
            return Some(i);
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(hint)
            .ok()?;
        (raw.len() == 32)
            .then(|| self.ecdsa_by_key_id.get(&hex::encode(raw)).copied())
            .flatten()
    }

    /// Verifies the Sigstore bundle an envelope came in against each trusted root.
    fn verify_bundle(
        &self,
        envelope: &Envelope,
        predicate_type: &str,
    ) -> Result<Vec<SignedBy>, AuthError> {
        let material = envelope.sigstore.as_deref().unwrap_or_default();
        let bundle =
            sigstore::Bundle::from_parts(material, envelope).map_err(AuthError::Sigstore)?;
        if self.sigstore.is_empty() {
            return Err(AuthError::NoSigstoreRoot);
        }
        if bundle.has_certificate() {
            // Every trusted root the certificate chains to: a rule pinned to one of them
            // must find it even when another, overlapping root verifies it too.
            let mut first_error = None;
            let mut found = Vec::new();
            for (name, root) in &self.sigstore {
                match sigstore::verify(&bundle, root, &sigstore::VerifyOptions::default()) {
                    Ok(verified) => {
                        if let Some(identity) = verified.identity {
                            found.push(SignedBy::Certificate {
                                identity,
                                root: name.clone(),
                                signed_at: verified.signed_at,
                            });
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if !found.is_empty() {
                return Ok(found);
            }
            return Err(AuthError::Sigstore(
                first_error.expect("at least one trusted root was tried"),
            ));
        }
        // A key bundle: the registered ECDSA key its hint names, else those allowed for
        // the predicate type, newest first, within the unhinted budget.
        let hinted = bundle
            .public_key_hint()
            .and_then(|hint| self.ecdsa_hinted(hint));
        let tried: Vec<usize> = match hinted {
            Some(i) => vec![i],
            None => (0..self.keys.len())
                .rev()
                .filter(|&i| {
                    matches!(self.keys[i].credential, Credential::Ecdsa(_))
                        && self.allowed_for(i, predicate_type)
                })
                .take(crate::dsse::MAX_UNHINTED_VERIFICATIONS)
                .collect(),
        };
        let mut first_error = None;
        for i in tried {
            let Credential::Ecdsa(key) = &self.keys[i].credential else {
                continue;
            };
            let options = sigstore::VerifyOptions {
                key: Some(key),
                ..sigstore::VerifyOptions::default()
            };
            for (_, root) in &self.sigstore {
                match sigstore::verify(&bundle, root, &options) {
                    Ok(_) => return Ok(vec![SignedBy::Key(key.fingerprint())]),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        Err(match first_error {
            Some(e) if hinted.is_some() => AuthError::Sigstore(e),
            _ => AuthError::UnknownKey {
                hints: bundle.public_key_hint().unwrap_or("none").to_owned(),
            },
        })
    }

    /// Authorizes an attestation whose signatures proved `signed` (from
    /// [`Registry::verifying_keys`]): at least one signer must be registered, valid at
    /// `time`, not revoked, and allowed for `predicate_type`. A key counts for the signer
    /// it is registered to; a certificate for every signer whose [`CertificateRule`]
    /// matches it. Returns every signer that passes; when none does, the reason of the
    /// first.
    pub fn authorize(
        &self,
        signed: &[SignedBy],
        predicate_type: &str,
        time: i64,
    ) -> Result<Vec<Authorized>, AuthError> {
        let mut first_error = None;
        let mut passed = Vec::new();
        let mut try_record =
            |record: &SignerKey, certificate: Option<(&CertIdentity, i64)>| match record
                .check(predicate_type, time)
            {
                // A certificate that chains to two trusted roots matches a rule once.
                Ok(())
                    if passed.iter().any(|a: &Authorized| {
                        a.identity == record.identity && a.key == record.credential.fingerprint()
                    }) => {}
                Ok(()) => passed.push(Authorized {
                    identity: record.identity.clone(),
                    key: record.credential.fingerprint(),
                    key_id: record.credential.key_id(),
                    roles: record.roles.clone(),
                    certificate: certificate.map(|(c, _)| c.clone()),
                    signed_at: certificate.map(|(_, t)| t),
                }),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            };
        let mut unmatched = None;
        for proof in signed {
            match proof {
                SignedBy::Key(fingerprint) => {
                    if let Some(&i) = self.by_key.get(fingerprint) {
                        try_record(&self.keys[i], None);
                    }
                }
                SignedBy::Certificate {
                    identity,
                    root,
                    signed_at,
                } => {
                    let mut any = false;
                    for record in &self.keys {
                        if let Credential::Certificate(rule) = &record.credential {
                            if rule.matches(identity, root) {
                                any = true;
                                try_record(record, Some((identity, *signed_at)));
                            }
                        }
                    }
                    if !any {
                        unmatched.get_or_insert_with(|| AuthError::UnknownCertificate {
                            issuer: identity.issuer.clone(),
                            subject: identity.subject.clone(),
                            root: root.clone(),
                        });
                    }
                }
            }
        }
        if passed.is_empty() {
            return Err(first_error.or(unmatched).unwrap_or(AuthError::UnknownKey {
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

/// `: REASON` when there is one, for event summaries.
fn because(reason: &Option<String>) -> String {
    reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
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

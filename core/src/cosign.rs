//! Witness cosignatures (c2sp.org/tlog-cosignature) and the K-of-N witness policies that
//! clients hold checkpoints to.
//!
//! A cosignature is one more signature line on a checkpoint note, by a witness that checked
//! the checkpoint is consistent with every earlier one it saw for that log. Two kinds are
//! understood:
//! - Ed25519 (`cosignature/v1`, key type `0x04`): the witness signs `cosignature/v1\n`,
//!   `time <seconds>\n` and the whole checkpoint body;
//! - ML-DSA-44 (`subtree/v1`, key type `0x06`, feature `ml-dsa`): the witness signs a binary
//!   message of its own name, the time, the origin, the tree size and the root hash.
//!
//! Both carry `timestamp (8 bytes, big-endian) ‖ signature` after the 4-byte key id.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer as _;

use crate::hash::Hash;
use crate::keys::{PublicKey, SigningKey};
use crate::note::{Checkpoint, Note, NoteError};

/// The key type byte of Ed25519 cosigner keys.
pub const ALG_COSIGNATURE_ED25519: u8 = 0x04;
/// The key type byte of ML-DSA-44 cosigner keys.
pub const ALG_COSIGNATURE_ML_DSA_44: u8 = 0x06;
/// Length of an ML-DSA-44 public key.
pub const ML_DSA_44_PUBLIC_KEY_LEN: usize = 1312;
/// Length of an ML-DSA-44 signature.
pub const ML_DSA_44_SIGNATURE_LEN: usize = 2420;

const SIG_PREFIX: &str = "\u{2014} ";
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";
/// The label that starts an ML-DSA-44 cosigned message: `subtree/v1\n\0`.
const SUBTREE_LABEL: &[u8; 12] = b"subtree/v1\n\0";

/// Why a cosigner key, a cosignature or a witness policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignError {
    /// The key text is not `name+<8 hex id>+base64(type ‖ key)` of a cosigner key.
    #[error("malformed witness key: {0}")]
    Key(String),
    /// The key is ML-DSA-44 and this build was made without the `ml-dsa` feature.
    #[error(
        "witness key {0} is an ML-DSA-44 key, and this build has no ML-DSA-44 support \
         (build with the `ml-dsa` feature)"
    )]
    NoMlDsa(String),
    /// A signature line names a trusted witness but does not verify.
    #[error("cosignature by witness {0} does not verify over the checkpoint")]
    BadCosignature(String),
    /// A cosignature's timestamp is above 2^63 − 1.
    #[error("cosignature by witness {0} has a timestamp above 2^63-1")]
    Timestamp(String),
    /// Too few trusted witnesses cosigned the checkpoint.
    #[error(
        "checkpoint of size {size} is cosigned by {have} of the trusted witnesses, {need} \
         required{}",
        missing_text(missing)
    )]
    TooFew {
        /// The checkpoint's tree size.
        size: u64,
        /// Distinct trusted witnesses whose cosignature verified.
        have: usize,
        /// The policy's threshold.
        need: usize,
        /// The trusted witnesses with no cosignature on it.
        missing: Vec<String>,
    },
    /// The policy asks for more witnesses than it names, or names one twice.
    #[error("witness policy: {0}")]
    Policy(String),
    /// The note itself is malformed.
    #[error(transparent)]
    Note(#[from] NoteError),
}

fn missing_text(missing: &[String]) -> String {
    if missing.is_empty() {
        String::new()
    } else {
        format!(" (no cosignature from {})", missing.join(", "))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// A cosigner's public key material.
#[derive(Clone, PartialEq, Eq)]
enum Material {
    Ed25519(PublicKey),
    MlDsa44(Box<[u8]>),
}

impl Material {
    fn alg(&self) -> u8 {
        match self {
            Material::Ed25519(_) => ALG_COSIGNATURE_ED25519,
            Material::MlDsa44(_) => ALG_COSIGNATURE_ML_DSA_44,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Material::Ed25519(key) => key.to_bytes().to_vec(),
            Material::MlDsa44(key) => key.to_vec(),
        }
    }
}

fn cosigner_key_id(name: &str, alg: u8, key: &[u8]) -> u32 {
    let mut data = Vec::with_capacity(name.len() + 2 + key.len());
    data.extend_from_slice(name.as_bytes());
    data.push(b'\n');
    data.push(alg);
    data.extend_from_slice(key);
    let hash = Hash::sha256(&data);
    u32::from_be_bytes([hash.0[0], hash.0[1], hash.0[2], hash.0[3]])
}

/// A witness's public key: its name, key id and key (the verifier key text
/// `name+<8 hex id>+base64(0x04 ‖ Ed25519 key)` or `…(0x06 ‖ ML-DSA-44 key)`).
#[derive(Clone, PartialEq, Eq)]
pub struct CosignerKey {
    name: String,
    id: u32,
    material: Material,
}

/// One verified cosignature: which witness, and when it says it cosigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The witness's key name.
    pub witness: String,
    /// Seconds since the Unix epoch, as the witness signed it.
    pub timestamp: u64,
}

impl CosignerKey {
    /// An Ed25519 cosigner key under `name`.
    pub fn ed25519(name: &str, key: PublicKey) -> Result<CosignerKey, CosignError> {
        if !valid_name(name) {
            return Err(CosignError::Key(format!(
                "invalid key name {name:?}: must be non-empty, without spaces or '+'"
            )));
        }
        let material = Material::Ed25519(key);
        Ok(CosignerKey {
            name: name.to_owned(),
            id: cosigner_key_id(name, material.alg(), &material.bytes()),
            material,
        })
    }

    /// Parses the verifier key text of a witness, checking that the id matches the key.
    pub fn parse(text: &str) -> Result<CosignerKey, CosignError> {
        let text = text.trim();
        let bad = |why: &str| CosignError::Key(format!("{why} in {text:?}"));
        let (name, id, raw) = crate::note::split_key_text(text).map_err(bad)?;
        if !valid_name(name) {
            return Err(bad("the name is empty or holds a space or '+'"));
        }
        let material = match raw.split_first() {
            Some((&ALG_COSIGNATURE_ED25519, key)) => {
                Material::Ed25519(PublicKey::from_bytes(key).map_err(|e| bad(&e.to_string()))?)
            }
            Some((&ALG_COSIGNATURE_ML_DSA_44, key)) => {
                if key.len() != ML_DSA_44_PUBLIC_KEY_LEN {
                    return Err(bad(&format!(
                        "an ML-DSA-44 key is {ML_DSA_44_PUBLIC_KEY_LEN} bytes, got {}",
                        key.len()
                    )));
                }
                if !cfg!(feature = "ml-dsa") {
                    return Err(CosignError::NoMlDsa(name.to_owned()));
                }
                Material::MlDsa44(key.into())
            }
            Some((&crate::note::ALG_ED25519, _)) => {
                return Err(bad(
                    "key type 0x01 is a log (signed-note) key; a witness key has type 0x04 \
                     (Ed25519 cosignature) or 0x06 (ML-DSA-44)",
                ));
            }
            _ => {
                return Err(bad(
                    "key type is neither 0x04 (Ed25519) nor 0x06 (ML-DSA-44)",
                ));
            }
        };
        let key = CosignerKey {
            name: name.to_owned(),
            id: cosigner_key_id(name, material.alg(), &material.bytes()),
            material,
        };
        if key.id != id {
            return Err(bad(&format!(
                "key id {id:08x} does not match the key (expected {:08x})",
                key.id
            )));
        }
        Ok(key)
    }

    /// The witness's key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Whether this is an ML-DSA-44 key.
    pub fn is_ml_dsa(&self) -> bool {
        matches!(self.material, Material::MlDsa44(_))
    }

    /// Checks one signature blob (the bytes after the key id) over `checkpoint`, whose note
    /// body is `body`, and returns the timestamp it carries.
    fn verify_blob(
        &self,
        body: &str,
        checkpoint: &Checkpoint,
        blob: &[u8],
    ) -> Result<u64, CosignError> {
        let bad = || CosignError::BadCosignature(self.to_string());
        let (stamp, signature) = blob.split_at_checked(8).ok_or_else(bad)?;
        let timestamp = u64::from_be_bytes(stamp.try_into().expect("eight bytes"));
        if timestamp > i64::MAX as u64 {
            return Err(CosignError::Timestamp(self.name.clone()));
        }
        let ok = match &self.material {
            Material::Ed25519(key) => {
                key.verify(ed25519_message(body, timestamp).as_bytes(), signature)
            }
            Material::MlDsa44(key) => {
                let message = ml_dsa_message(&self.name, timestamp, checkpoint)?;
                ml_dsa_verify(key, &message, signature)
            }
        };
        if ok { Ok(timestamp) } else { Err(bad()) }
    }

    /// Verifies this witness's cosignature on a note: `Ok(None)` when the note carries no
    /// line from this key, an error when a line from it does not verify.
    pub fn verify_note(
        &self,
        note: &Note,
        checkpoint: &Checkpoint,
    ) -> Result<Option<Cosigned>, CosignError> {
        let mut found = None;
        for sig in &note.signatures {
            if sig.name != self.name || sig.id != self.id {
                continue;
            }
            let timestamp = self.verify_blob(&note.text, checkpoint, &sig.signature)?;
            found = Some(Cosigned {
                witness: self.name.clone(),
                timestamp: found
                    .as_ref()
                    .map_or(timestamp, |c: &Cosigned| c.timestamp.max(timestamp)),
            });
        }
        Ok(found)
    }
}

impl fmt::Display for CosignerKey {
    /// The verifier key text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = vec![self.material.alg()];
        raw.extend_from_slice(&self.material.bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, STANDARD.encode(raw))
    }
}

impl fmt::Debug for CosignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignerKey({}+{:08x})", self.name, self.id)
    }
}

/// The message an Ed25519 witness signs: `cosignature/v1\ntime <t>\n` and the note body.
pub fn ed25519_message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// The message an ML-DSA-44 witness signs for a checkpoint (start 0, end = size).
pub fn ml_dsa_message(
    witness: &str,
    timestamp: u64,
    checkpoint: &Checkpoint,
) -> Result<Vec<u8>, CosignError> {
    let short = |what: &str, len: usize| {
        CosignError::Key(format!(
            "{what} is {len} bytes; an ML-DSA-44 cosignature allows 1 to 255"
        ))
    };
    if witness.is_empty() || witness.len() > 255 {
        return Err(short("the witness name", witness.len()));
    }
    if checkpoint.origin.is_empty() || checkpoint.origin.len() > 255 {
        return Err(short("the log origin", checkpoint.origin.len()));
    }
    let mut message =
        Vec::with_capacity(12 + 1 + witness.len() + 8 + 1 + checkpoint.origin.len() + 48);
    message.extend_from_slice(SUBTREE_LABEL);
    message.push(witness.len() as u8);
    message.extend_from_slice(witness.as_bytes());
    message.extend_from_slice(&timestamp.to_be_bytes());
    message.push(checkpoint.origin.len() as u8);
    message.extend_from_slice(checkpoint.origin.as_bytes());
    message.extend_from_slice(&0u64.to_be_bytes());
    message.extend_from_slice(&checkpoint.size.to_be_bytes());
    message.extend_from_slice(checkpoint.root.as_bytes());
    Ok(message)
}

#[cfg(feature = "ml-dsa")]
fn ml_dsa_verify(key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use ml_dsa::{EncodedVerifyingKey, MlDsa44, Signature, VerifyingKey};
    let Ok(encoded) = EncodedVerifyingKey::<MlDsa44>::try_from(key) else {
        return false;
    };
    let key = VerifyingKey::<MlDsa44>::decode(&encoded);
    let Ok(signature) = Signature::<MlDsa44>::try_from(signature) else {
        return false;
    };
    key.verify_with_context(message, &[], &signature)
}

#[cfg(not(feature = "ml-dsa"))]
fn ml_dsa_verify(_key: &[u8], _message: &[u8], _signature: &[u8]) -> bool {
    // Unreachable: without the feature an ML-DSA-44 key never parses.
    false
}

/// A witness's signing key.
pub struct Cosigner {
    key: CosignerKey,
    secret: Secret,
}

enum Secret {
    Ed25519(SigningKey),
    #[cfg(feature = "ml-dsa")]
    MlDsa44(Box<ml_dsa::ExpandedSigningKey<ml_dsa::MlDsa44>>, [u8; 32]),
}

impl fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret key.
        write!(f, "Cosigner({})", self.key)
    }
}

impl Cosigner {
    /// An Ed25519 cosigner under `name`.
    pub fn ed25519(name: &str, key: SigningKey) -> Result<Cosigner, CosignError> {
        Ok(Cosigner {
            key: CosignerKey::ed25519(name, PublicKey::from_signing_key(&key))?,
            secret: Secret::Ed25519(key),
        })
    }

    /// An ML-DSA-44 cosigner under `name`, from its 32-byte seed (FIPS 204 `ξ`).
    #[cfg(feature = "ml-dsa")]
    pub fn ml_dsa_44(name: &str, seed: [u8; 32]) -> Result<Cosigner, CosignError> {
        use ml_dsa::{Keypair as _, MlDsa44};
        if !valid_name(name) {
            return Err(CosignError::Key(format!(
                "invalid key name {name:?}: must be non-empty, without spaces or '+'"
            )));
        }
        let pair = ml_dsa::SigningKey::<MlDsa44>::from_seed(&seed.into());
        let public = pair.verifying_key().encode();
        let material = Material::MlDsa44(public.as_slice().into());
        let key = CosignerKey {
            name: name.to_owned(),
            id: cosigner_key_id(name, material.alg(), &material.bytes()),
            material,
        };
        Ok(Cosigner {
            key,
            secret: Secret::MlDsa44(Box::new(pair.expanded_key().clone()), seed),
        })
    }

    /// The matching public key.
    pub fn key(&self) -> &CosignerKey {
        &self.key
    }

    /// Cosigns a checkpoint whose note body is `body` at `timestamp` (seconds since the
    /// epoch) and returns the signature line, ending in a newline.
    pub fn cosign(&self, body: &str, timestamp: u64) -> Result<String, CosignError> {
        let checkpoint = Checkpoint::parse_body(body)?;
        if timestamp > i64::MAX as u64 {
            return Err(CosignError::Timestamp(self.key.name.clone()));
        }
        let mut blob = Vec::with_capacity(4 + 8 + ML_DSA_44_SIGNATURE_LEN);
        blob.extend_from_slice(&self.key.id.to_be_bytes());
        blob.extend_from_slice(&timestamp.to_be_bytes());
        match &self.secret {
            Secret::Ed25519(key) => {
                let signature = key.sign(ed25519_message(body, timestamp).as_bytes());
                blob.extend_from_slice(&signature.to_bytes());
            }
            #[cfg(feature = "ml-dsa")]
            Secret::MlDsa44(key, _) => {
                let message = ml_dsa_message(&self.key.name, timestamp, &checkpoint)?;
                let signature = key
                    .sign_deterministic(&message, &[])
                    .map_err(|e| CosignError::Key(format!("ML-DSA-44 signing failed: {e}")))?;
                blob.extend_from_slice(signature.encode().as_slice());
            }
        }
        let _ = checkpoint;
        Ok(format!(
            "{SIG_PREFIX}{} {}\n",
            self.key.name,
            STANDARD.encode(blob)
        ))
    }

    /// The signer key text: `PRIVATE+KEY+<name>+<8 hex id>+base64(type ‖ 32-byte seed)`.
    /// Secret: write it only to a 0600 file.
    pub fn to_private_text(&self) -> String {
        let mut raw = vec![self.key.material.alg()];
        match &self.secret {
            Secret::Ed25519(key) => raw.extend_from_slice(key.as_bytes()),
            #[cfg(feature = "ml-dsa")]
            Secret::MlDsa44(_, seed) => raw.extend_from_slice(seed),
        }
        format!(
            "{PRIVATE_PREFIX}{}+{:08x}+{}",
            self.key.name,
            self.key.id,
            STANDARD.encode(raw)
        )
    }

    /// Parses the text [`Cosigner::to_private_text`] writes, checking the id.
    pub fn parse_private(text: &str) -> Result<Cosigner, CosignError> {
        // Never echo the text: it holds the secret key.
        let bad = |why: &str| CosignError::Key(format!("witness signer key: {why}"));
        let (name, id, raw) = crate::note::split_private_text(text).map_err(bad)?;
        let Some((&alg, seed)) = raw.split_first() else {
            return Err(bad("empty key"));
        };
        let seed: [u8; 32] = seed.try_into().map_err(|_| bad("seed is not 32 bytes"))?;
        let cosigner = match alg {
            ALG_COSIGNATURE_ED25519 => Cosigner::ed25519(name, SigningKey::from_bytes(&seed))?,
            #[cfg(feature = "ml-dsa")]
            ALG_COSIGNATURE_ML_DSA_44 => Cosigner::ml_dsa_44(name, seed)?,
            #[cfg(not(feature = "ml-dsa"))]
            ALG_COSIGNATURE_ML_DSA_44 => return Err(CosignError::NoMlDsa(name.to_owned())),
            _ => {
                return Err(bad(
                    "key type is neither 0x04 (Ed25519) nor 0x06 (ML-DSA-44)",
                ));
            }
        };
        if cosigner.key.id != id {
            return Err(bad("key id does not match the key"));
        }
        Ok(cosigner)
    }
}

/// Which witnesses a client trusts for a log, and how many of them must have cosigned a
/// checkpoint before the client accepts it ("K of N").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WitnessPolicy {
    witnesses: Vec<CosignerKey>,
    threshold: usize,
}

impl WitnessPolicy {
    /// A policy over `witnesses`, requiring `threshold` of them. Refuses a threshold above
    /// the number of witnesses and a witness named twice.
    pub fn new(
        witnesses: Vec<CosignerKey>,
        threshold: usize,
    ) -> Result<WitnessPolicy, CosignError> {
        if threshold > witnesses.len() {
            return Err(CosignError::Policy(format!(
                "requires {threshold} cosignatures but trusts only {} witnesses",
                witnesses.len()
            )));
        }
        for (i, a) in witnesses.iter().enumerate() {
            if witnesses[..i].iter().any(|b| b.name == a.name) {
                return Err(CosignError::Policy(format!(
                    "witness {} is listed twice",
                    a.name
                )));
            }
        }
        Ok(WitnessPolicy {
            witnesses,
            threshold,
        })
    }

    /// The policy that requires nothing.
    pub fn none() -> WitnessPolicy {
        WitnessPolicy::default()
    }

    /// The trusted witnesses.
    pub fn witnesses(&self) -> &[CosignerKey] {
        &self.witnesses
    }

    /// How many must have cosigned.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Every trusted witness's verified cosignature on a checkpoint note, in the policy's
    /// order. A line from a trusted witness that does not verify is an error; lines from
    /// other keys are ignored.
    pub fn cosignatures(
        &self,
        note: &Note,
        checkpoint: &Checkpoint,
    ) -> Result<Vec<Cosigned>, CosignError> {
        let mut found = Vec::new();
        for witness in &self.witnesses {
            if let Some(cosigned) = witness.verify_note(note, checkpoint)? {
                found.push(cosigned);
            }
        }
        Ok(found)
    }

    /// Checks that at least `threshold` trusted witnesses cosigned the checkpoint note
    /// (whose log signature the caller has verified), and returns their cosignatures.
    pub fn check(
        &self,
        note: &Note,
        checkpoint: &Checkpoint,
    ) -> Result<Vec<Cosigned>, CosignError> {
        let found = self.cosignatures(note, checkpoint)?;
        if found.len() < self.threshold {
            let missing = self
                .witnesses
                .iter()
                .filter(|w| !found.iter().any(|c| c.witness == w.name))
                .map(|w| w.name.clone())
                .collect();
            return Err(CosignError::TooFew {
                size: checkpoint.size,
                have: found.len(),
                need: self.threshold,
                missing,
            });
        }
        Ok(found)
    }
}

/// Adds signature lines (each `— name base64\n`) to a note, keeping each line once. The
/// lines are not verified here: a verifier checks the ones from keys it trusts.
pub fn add_signature_lines(note: &str, lines: &str) -> Result<String, CosignError> {
    let parsed = Note::parse(note)?;
    let mut out = note.to_owned();
    let existing: Vec<&str> = note[parsed.text.len() + 1..].lines().collect();
    let mut added = Vec::new();
    for line in lines.lines() {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with(SIG_PREFIX) {
            return Err(CosignError::Note(NoteError::Malformed(format!(
                "cosignature line {line:?} does not start with an em dash and a space"
            ))));
        }
        if existing.contains(&line) || added.contains(&line) {
            continue;
        }
        added.push(line);
        out.push_str(line);
        out.push('\n');
    }
    // The result must still parse (no more than the most signature lines a note may carry).
    Note::parse(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::Signer;

    fn log() -> Signer {
        Signer::new("example.com/log", SigningKey::from_bytes(&[7; 32])).expect("name")
    }

    fn checkpoint(size: u64) -> (String, Checkpoint) {
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size,
            root: Hash::sha256(&size.to_be_bytes()),
            extensions: vec!["evident-registry 0 AAAA".into()],
        };
        (cp.sign(&log()).expect("sign"), cp)
    }

    #[test]
    fn an_ed25519_cosignature_verifies_and_carries_its_time() {
        let witness = Cosigner::ed25519("w1.example", SigningKey::from_bytes(&[1; 32])).unwrap();
        let (note, cp) = checkpoint(10);
        let line = witness.cosign(&cp.to_body(), 1_700_000_000).unwrap();
        let note = add_signature_lines(&note, &line).unwrap();
        let parsed = Note::parse(&note).unwrap();
        let key = CosignerKey::parse(&witness.key().to_string()).unwrap();
        let found = key.verify_note(&parsed, &cp).unwrap().unwrap();
        assert_eq!(found.timestamp, 1_700_000_000);
        // The log's own verifier still accepts the note: it ignores the witness's line.
        parsed.verify(log().verifier()).unwrap();
    }

    #[test]
    fn a_cosignature_over_another_checkpoint_is_refused() {
        let witness = Cosigner::ed25519("w1.example", SigningKey::from_bytes(&[1; 32])).unwrap();
        let (_, other) = checkpoint(11);
        let (note, cp) = checkpoint(10);
        let line = witness.cosign(&other.to_body(), 5).unwrap();
        let note = Note::parse(&add_signature_lines(&note, &line).unwrap()).unwrap();
        assert!(matches!(
            witness.key().verify_note(&note, &cp),
            Err(CosignError::BadCosignature(_))
        ));
    }

    #[test]
    fn a_log_key_is_not_a_witness_key() {
        let text = log().verifier().to_string();
        let err = CosignerKey::parse(&text).unwrap_err().to_string();
        assert!(err.contains("0x04"), "{err}");
    }

    #[test]
    fn the_policy_counts_distinct_trusted_witnesses() {
        let w1 = Cosigner::ed25519("w1", SigningKey::from_bytes(&[1; 32])).unwrap();
        let w2 = Cosigner::ed25519("w2", SigningKey::from_bytes(&[2; 32])).unwrap();
        let stranger = Cosigner::ed25519("w3", SigningKey::from_bytes(&[3; 32])).unwrap();
        let policy = WitnessPolicy::new(vec![w1.key().clone(), w2.key().clone()], 2).unwrap();
        let (note, cp) = checkpoint(3);
        let body = cp.to_body();
        let one = add_signature_lines(&note, &w1.cosign(&body, 1).unwrap()).unwrap();
        // The same witness twice and a stranger do not make two.
        let twice = add_signature_lines(&one, &w1.cosign(&body, 2).unwrap()).unwrap();
        let stranger = add_signature_lines(&twice, &stranger.cosign(&body, 2).unwrap()).unwrap();
        let err = policy
            .check(&Note::parse(&stranger).unwrap(), &cp)
            .unwrap_err();
        assert!(
            matches!(&err, CosignError::TooFew { have: 1, need: 2, missing, .. } if missing == &["w2"]),
            "{err}"
        );
        let both = add_signature_lines(&stranger, &w2.cosign(&body, 3).unwrap()).unwrap();
        let found = policy.check(&Note::parse(&both).unwrap(), &cp).unwrap();
        assert_eq!(found.len(), 2);
    }

    #[test]
    fn private_key_text_round_trips() {
        let w = Cosigner::ed25519("w1", SigningKey::from_bytes(&[9; 32])).unwrap();
        let back = Cosigner::parse_private(&w.to_private_text()).unwrap();
        assert_eq!(back.key(), w.key());
    }

    #[cfg(feature = "ml-dsa")]
    #[test]
    fn an_ml_dsa_44_cosignature_verifies() {
        let w = Cosigner::ml_dsa_44("pq.example", [4; 32]).unwrap();
        let key = CosignerKey::parse(&w.key().to_string()).unwrap();
        assert!(key.is_ml_dsa());
        let (note, cp) = checkpoint(42);
        let line = w.cosign(&cp.to_body(), 1_800_000_000).unwrap();
        let note = Note::parse(&add_signature_lines(&note, &line).unwrap()).unwrap();
        let found = key.verify_note(&note, &cp).unwrap().unwrap();
        assert_eq!(found.timestamp, 1_800_000_000);
        let back = Cosigner::parse_private(&w.to_private_text()).unwrap();
        assert_eq!(back.key(), w.key());
        // A different tree size under the same line fails.
        let (_, other) = checkpoint(43);
        assert!(key.verify_note(&note, &other).is_err());
    }
}

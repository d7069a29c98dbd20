//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, and the log checkpoints
//! (c2sp.org/tlog-checkpoint) they carry.
//!
//! A verifier ignores signature lines from keys it does not know (a witness's cosignature,
//! say) and fails when no line is a valid signature by the key it trusts.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer as _;

use crate::hash::Hash;
use crate::keys::{PublicKey, SigningKey};

/// The signature type byte of Ed25519 keys in the note format.
pub const ALG_ED25519: u8 = 0x01;
/// The most signature lines a note may carry; the format asks verifiers to accept at least 16.
pub const MAX_SIGNATURES: usize = 100;

const SIG_PREFIX: &str = "\u{2014} ";

/// Why a note, key or checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note text breaks the format (no blank line, control characters, bad lines).
    #[error("malformed note: {0}")]
    Malformed(String),
    /// The verifier key text is not `name+hexid+base64key`.
    #[error("malformed verifier key: {0}")]
    VerifierKey(String),
    /// A key name is empty or holds whitespace or a plus sign.
    #[error("invalid key name {0:?}: must be non-empty, without spaces or '+'")]
    KeyName(String),
    /// A signature line names the trusted key but does not verify.
    #[error("signature by {0} does not verify over the note text")]
    BadSignature(String),
    /// No signature line comes from the trusted key.
    #[error("note has no signature from {0}")]
    UnverifiedNote(String),
    /// The note body is not a checkpoint.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(String),
    /// The checkpoint's origin is not the expected log.
    #[error("checkpoint origin is {found:?}, expected {expected:?}")]
    Origin {
        /// The origin line of the checkpoint.
        found: String,
        /// The origin the verifier expects.
        expected: String,
    },
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Key id of an Ed25519 note key: the first four bytes of
/// `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)`, as a big-endian number.
pub fn key_id(name: &str, key: &PublicKey) -> u32 {
    let mut data = Vec::with_capacity(name.len() + 2 + 32);
    data.extend_from_slice(name.as_bytes());
    data.push(b'\n');
    data.push(ALG_ED25519);
    data.extend_from_slice(&key.to_bytes());
    let hash = Hash::sha256(&data);
    u32::from_be_bytes([hash.0[0], hash.0[1], hash.0[2], hash.0[3]])
}

/// A note verifier: a key name and an Ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    id: u32,
    key: PublicKey,
}

impl Verifier {
    /// A verifier for `key` under `name`.
    pub fn new(name: &str, key: PublicKey) -> Result<Verifier, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::KeyName(name.to_owned()));
        }
        Ok(Verifier {
            name: name.to_owned(),
            id: key_id(name, &key),
            key,
        })
    }

    /// Parses the verifier key text `name+<8 hex id>+<base64(0x01 ‖ key)>`, checking that the
    /// id matches the key.
    pub fn parse(text: &str) -> Result<Verifier, NoteError> {
        let text = text.trim();
        let bad = |why: &str| NoteError::VerifierKey(format!("{why} in {text:?}"));
        let (name, id, raw) = split_key_text(text).map_err(bad)?;
        let Some((&ALG_ED25519, key)) = raw.split_first() else {
            return Err(bad("key is not an Ed25519 (0x01) key"));
        };
        let key = PublicKey::from_bytes(key).map_err(|e| bad(&e.to_string()))?;
        let verifier = Verifier::new(name, key)?;
        if verifier.id != id {
            return Err(bad(&format!(
                "key id {id:08x} does not match the key (expected {:08x})",
                verifier.id
            )));
        }
        Ok(verifier)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The public key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }
}

impl fmt::Display for Verifier {
    /// The verifier key text: `name+<8 hex id>+<base64(0x01 ‖ key)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(&self.key.to_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, STANDARD.encode(raw))
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({self})")
    }
}

/// A note signer: a key name and an Ed25519 signing key.
pub struct Signer {
    verifier: Verifier,
    key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret key.
        write!(f, "Signer({})", self.verifier)
    }
}

impl Signer {
    /// A signer for `key` under `name`.
    pub fn new(name: &str, key: SigningKey) -> Result<Signer, NoteError> {
        let verifier = Verifier::new(name, PublicKey::from_signing_key(&key))?;
        Ok(Signer { verifier, key })
    }

    /// The matching verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Signs a note body (which must end in a newline) and returns the whole note text.
    pub fn sign(&self, body: &str) -> Result<String, NoteError> {
        check_body(body)?;
        let signature = self.key.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(4 + 64);
        blob.extend_from_slice(&self.verifier.id.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{body}\n{SIG_PREFIX}{} {}\n",
            self.verifier.name,
            STANDARD.encode(blob)
        ))
    }
}

fn check_body(body: &str) -> Result<(), NoteError> {
    if !body.ends_with('\n') {
        return Err(NoteError::Malformed(
            "text does not end in a newline".into(),
        ));
    }
    if let Some(c) = body.chars().find(|&c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed(format!(
            "text contains control character {:?}",
            c
        )));
    }
    Ok(())
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key id (first four bytes of the signature blob).
    pub id: u32,
    /// The signature proper.
    pub signature: Vec<u8>,
}

/// A note whose text and signature lines parse. Nothing about it is verified yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, ending in a newline.
    pub text: String,
    /// Every signature line, known keys or not.
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note.
    pub fn parse(note: &str) -> Result<Note, NoteError> {
        let malformed = |why: &str| NoteError::Malformed(why.to_owned());
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| malformed("no blank line before the signatures"))?;
        let text = &note[..=split];
        check_body(text)?;
        let block = &note[split + 2..];
        if !block.ends_with('\n') {
            return Err(malformed("signature block does not end in a newline"));
        }
        let lines: Vec<&str> = block[..block.len() - 1].split('\n').collect();
        if lines.len() > MAX_SIGNATURES {
            return Err(malformed(&format!(
                "{} signature lines, at most {MAX_SIGNATURES} accepted",
                lines.len()
            )));
        }
        let mut signatures = Vec::with_capacity(lines.len());
        for line in lines {
            let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(|| {
                malformed(&format!(
                    "signature line {line:?} does not start with an em dash and a space"
                ))
            })?;
            let (name, b64) = rest.split_once(' ').ok_or_else(|| {
                malformed(&format!(
                    "signature line {line:?} has no space between name and signature"
                ))
            })?;
            if !valid_name(name) {
                return Err(NoteError::KeyName(name.to_owned()));
            }
            let blob = STANDARD
                .decode(b64)
                .map_err(|_| malformed(&format!("signature by {name} is not standard base64")))?;
            if blob.len() < 5 {
                return Err(malformed(&format!("signature by {name} is too short")));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                id: u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]),
                signature: blob[4..].to_vec(),
            });
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Verifies that the note carries a valid signature by `verifier`: lines from other keys
    /// are ignored; a line from this key that does not verify is an error.
    pub fn verify(&self, verifier: &Verifier) -> Result<(), NoteError> {
        let mut verified = false;
        for sig in &self.signatures {
            if sig.name != verifier.name || sig.id != verifier.id {
                continue;
            }
            if !verifier.key.verify(self.text.as_bytes(), &sig.signature) {
                return Err(NoteError::BadSignature(verifier.to_string()));
            }
            verified = true;
        }
        if !verified {
            return Err(NoteError::UnverifiedNote(verifier.to_string()));
        }
        Ok(())
    }
}

/// A log checkpoint (c2sp.org/tlog-checkpoint): origin, tree size, root hash, and any
/// extension lines, kept as they were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line, e.g. `evident.example.com/prod`.
    pub origin: String,
    /// The number of entries the root covers.
    pub size: u64,
    /// The RFC 6962 root of the first `size` entries.
    pub root: Hash,
    /// Extension lines after the root, without their newlines.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note body: `origin\nsize\nbase64(root)\n` then each extension line.
    pub fn to_body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        );
        for line in &self.extensions {
            body.push_str(line);
            body.push('\n');
        }
        body
    }

    /// Parses a checkpoint from a note body.
    pub fn parse_body(body: &str) -> Result<Checkpoint, NoteError> {
        let bad = |why: String| NoteError::Checkpoint(why);
        let Some(body) = body.strip_suffix('\n') else {
            return Err(bad("body does not end in a newline".into()));
        };
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(bad("origin line is empty".into()));
        }
        let size_line = lines
            .next()
            .ok_or_else(|| bad("no tree size line".into()))?;
        if size_line.is_empty()
            || !size_line.bytes().all(|b| b.is_ascii_digit())
            || (size_line.len() > 1 && size_line.starts_with('0'))
        {
            return Err(bad(format!(
                "tree size {size_line:?} is not a decimal number"
            )));
        }
        let size = size_line
            .parse::<u64>()
            .map_err(|_| bad(format!("tree size {size_line:?} does not fit in 64 bits")))?;
        let root_line = lines
            .next()
            .ok_or_else(|| bad("no root hash line".into()))?;
        let root = Hash::from_base64(root_line).map_err(|e| bad(format!("root hash: {e}")))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(bad("empty extension line".into()));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// Signs the checkpoint as a note; the signer's name should be the origin.
    pub fn sign(&self, signer: &Signer) -> Result<String, NoteError> {
        signer.sign(&self.to_body())
    }

    /// Parses a signed checkpoint, verifies its signature by `verifier`, and checks that its
    /// origin is the verifier's name (Evident's logs sign under their origin).
    pub fn verify(note: &str, verifier: &Verifier) -> Result<Checkpoint, NoteError> {
        let note = Note::parse(note)?;
        note.verify(verifier)?;
        let checkpoint = Checkpoint::parse_body(&note.text)?;
        if checkpoint.origin != verifier.name {
            return Err(NoteError::Origin {
                found: checkpoint.origin,
                expected: verifier.name.clone(),
            });
        }
        Ok(checkpoint)
    }
}

const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

impl Signer {
    /// The signer key text, `PRIVATE+KEY+<name>+<8 hex id>+<base64(0x01 ‖ seed)>` (the form
    /// Go's `golang.org/x/mod/sumdb/note` uses). Secret: write it only to a 0600 file.
    pub fn to_private_text(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{PRIVATE_PREFIX}{}+{:08x}+{}",
            self.verifier.name,
            self.verifier.id,
            STANDARD.encode(raw)
        )
    }

    /// Parses the signer key text written by [`Signer::to_private_text`], checking the id.
    pub fn parse_private(text: &str) -> Result<Signer, NoteError> {
        // Never echo the text: it holds the secret key.
        let bad = |why: &str| NoteError::VerifierKey(format!("signer key: {why}"));
        let (name, id, raw) = split_private_text(text).map_err(bad)?;
        let Some((&ALG_ED25519, seed)) = raw.split_first() else {
            return Err(bad("not an Ed25519 (0x01) key"));
        };
        let seed: [u8; 32] = seed.try_into().map_err(|_| bad("seed is not 32 bytes"))?;
        let signer = Signer::new(name, SigningKey::from_bytes(&seed))?;
        if signer.verifier.id != id {
            return Err(bad("key id does not match the key"));
        }
        Ok(signer)
    }
}

/// Splits key text `name+<8 hex id>+base64(type ‖ key)` (the form of note and witness
/// verifier keys) into the name, the id and the decoded bytes; the error says what is wrong
/// without quoting the text.
pub(crate) fn split_key_text(text: &str) -> Result<(&str, u32, Vec<u8>), &'static str> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("expected name+id+key");
    };
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("key id is not 8 hex digits");
    }
    let id = u32::from_str_radix(id_hex, 16).map_err(|_| "key id is not hex")?;
    let raw = STANDARD
        .decode(key_b64)
        .map_err(|_| "key is not standard base64")?;
    Ok((name, id, raw))
}

/// Splits private key text `PRIVATE+KEY+<name>+<id>+base64(type ‖ seed)` as
/// [`split_key_text`] does. Never quotes the text: it holds the secret key.
pub(crate) fn split_private_text(text: &str) -> Result<(&str, u32, Vec<u8>), &'static str> {
    let rest = text
        .trim()
        .strip_prefix(PRIVATE_PREFIX)
        .ok_or("does not start with PRIVATE+KEY+")?;
    split_key_text(rest).map_err(|why| match why {
        "expected name+id+key" => "expected PRIVATE+KEY+name+id+key",
        other => other,
    })
}

//! Rekor entries: the canonicalized body must record this bundle's content, signature and
//! signer; the entry must be proven in a trusted log (inclusion proof up to a checkpoint the
//! log signed, or a signed entry timestamp).
//!
//! Supported bodies: `hashedrekord` 0.0.1 and 0.0.2, `dsse` 0.0.1 and 0.0.2, `intoto` 0.0.2.
//! The `envelopeHash` of `dsse` 0.0.1 and `intoto` 0.0.2 is not compared: Rekor computed it
//! over its own re-serialization of the envelope; the payload hash and signature are.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::bundle::{Content, TlogEntry, Version};
use super::trust::{Log, LogKey};
use super::{Bundle, SigningKey, SigstoreError, TimeSource, TrustedRoot, VerifiedTime};
use crate::hash::Hash;

/// The longest checkpoint accepted, in bytes.
const MAX_CHECKPOINT_BYTES: usize = 64 << 10;
/// The most signature lines a checkpoint may carry; more is refused as malformed.
const MAX_CHECKPOINT_SIGNATURES: usize = 16;

/// Verifies one entry; returns its integrated time when a signed entry timestamp proves it.
///
/// `rfc3161_times` are the bundle's verified RFC 3161 times (nanoseconds): an entry without
/// a signed entry timestamp has no time of its own, so its log's key must have been trusted
/// at every one of them, and at least one must exist.
pub(crate) fn verify(
    index: usize,
    entry: &TlogEntry,
    bundle: &Bundle,
    signer: &SigningKey<'_>,
    root: &TrustedRoot,
    rfc3161_times: &[i64],
) -> Result<Option<VerifiedTime>, SigstoreError> {
    let log_id = hex::encode(&entry.log_id);
    let log = root
        .tlogs
        .iter()
        .find(|l| l.log_id == entry.log_id)
        .ok_or_else(|| SigstoreError::TlogUntrusted {
            index,
            log_id: log_id.clone(),
        })?;
    check_body(index, entry, bundle, signer)?;

    match &entry.proof {
        Some(proof) => {
            let leaf = crate::merkle::leaf_hash(&entry.body);
            crate::merkle::verify_inclusion(
                proof.log_index,
                proof.tree_size,
                &leaf,
                &proof.hashes,
                &proof.root_hash,
            )
            .map_err(|e| SigstoreError::InclusionProof {
                index,
                detail: e.to_string(),
            })?;
            let checkpoint = proof
                .checkpoint
                .as_deref()
                .ok_or(SigstoreError::Checkpoint {
                    index,
                    detail: "the inclusion proof has no checkpoint".into(),
                })?;
            verify_checkpoint(index, checkpoint, proof.tree_size, &proof.root_hash, log)?;
        }
        None if bundle.version >= Version::V02 => {
            return Err(SigstoreError::InclusionProofMissing { index });
        }
        None => {}
    }

    let Some(promise) = &entry.promise else {
        if bundle.version == Version::V01 {
            return Err(SigstoreError::InclusionPromiseMissing { index });
        }
        // Proven by the inclusion proof alone: the checkpoint carries no time, so the log's
        // key validity is checked at the bundle's verified RFC 3161 times (as sigstore-go
        // does); a retired log key must not vouch for entries made after its retirement.
        if rfc3161_times.is_empty() {
            return Err(SigstoreError::TlogKeyTimeMissing { index, log_id });
        }
        for &time in rfc3161_times {
            if !log.valid.contains(time) {
                return Err(SigstoreError::TlogKeyValidity {
                    index,
                    log_id,
                    at: "the RFC 3161 timestamp time",
                    time: crate::registry::time_text(time),
                });
            }
        }
        return Ok(None);
    };
    let secs = entry.integrated_time / 1_000_000_000;
    let canonical = format!(
        "{{\"body\":\"{}\",\"integratedTime\":{},\"logID\":\"{}\",\"logIndex\":{}}}",
        STANDARD.encode(&entry.body),
        secs,
        log_id,
        entry.log_index
    );
    let verified = match &log.key {
        LogKey::Ecdsa(key) => key.verify(canonical.as_bytes(), promise),
        LogKey::Ed25519(key) => key.verify(canonical.as_bytes(), promise),
    };
    if !verified {
        return Err(SigstoreError::SetSignature { index, log_id });
    }
    if !log.valid.contains(entry.integrated_time) {
        return Err(SigstoreError::TlogKeyValidity {
            index,
            log_id,
            at: "integrated time",
            time: crate::registry::time_text(entry.integrated_time),
        });
    }
    Ok(Some(VerifiedTime {
        source: TimeSource::TransparencyLog { log_id },
        time: entry.integrated_time,
    }))
}

fn mismatch(index: usize, detail: impl Into<String>) -> SigstoreError {
    SigstoreError::TlogEntryMismatch {
        index,
        detail: detail.into(),
    }
}

fn text<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    let mut v = value;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str()
}

fn b64_field(index: usize, value: &Value, path: &[&str]) -> Result<Vec<u8>, SigstoreError> {
    let t = text(value, path)
        .ok_or_else(|| mismatch(index, format!("body has no {}", path.join("."))))?;
    STANDARD
        .decode(t)
        .map_err(|_| mismatch(index, format!("body {} is not base64", path.join("."))))
}

/// Whether a PEM verifier of a v0.0.1 body names `signer`.
fn pem_names(pem: &[u8], signer: &SigningKey<'_>) -> bool {
    let Ok(text) = std::str::from_utf8(pem) else {
        return false;
    };
    match signer {
        SigningKey::Certificate { der, .. } => {
            crate::ecdsa::pem_block(text, "CERTIFICATE").is_ok_and(|d| d == *der)
        }
        SigningKey::Managed(key) => crate::ecdsa::EcKey::from_pem(text).is_ok_and(|k| k == **key),
    }
}

/// Whether a v0.0.2 verifier (`{x509Certificate|publicKey: {rawBytes}}`) names `signer`.
fn verifier_names(verifier: &Value, signer: &SigningKey<'_>) -> bool {
    let decode = |path: &[&str]| text(verifier, path).and_then(|t| STANDARD.decode(t).ok());
    match signer {
        SigningKey::Certificate { der, .. } => {
            decode(&["x509Certificate", "rawBytes"]).is_some_and(|d| d == *der)
        }
        SigningKey::Managed(key) => {
            decode(&["publicKey", "rawBytes"]).is_some_and(|d| d == key.to_spki_der())
        }
    }
}

fn check_body(
    index: usize,
    entry: &TlogEntry,
    bundle: &Bundle,
    signer: &SigningKey<'_>,
) -> Result<(), SigstoreError> {
    let body: Value = serde_json::from_slice(&entry.body)
        .map_err(|e| mismatch(index, format!("canonicalizedBody is not JSON: {e}")))?;
    if text(&body, &["kind"]) != Some(entry.kind.as_str())
        || text(&body, &["apiVersion"]) != Some(entry.version.as_str())
    {
        return Err(mismatch(
            index,
            "the body's kind and apiVersion differ from the entry's kindVersion",
        ));
    }
    let signature = super::content_signature(bundle)?;
    let spec = body
        .get("spec")
        .ok_or_else(|| mismatch(index, "body has no spec"))?;
    let unsupported = || SigstoreError::TlogKind {
        index,
        kind: entry.kind.clone(),
        version: entry.version.clone(),
    };
    match (&bundle.content, entry.kind.as_str(), entry.version.as_str()) {
        (Content::Message { digest, .. }, "hashedrekord", "0.0.1") => {
            if text(spec, &["data", "hash", "algorithm"]) != Some("sha256")
                || text(spec, &["data", "hash", "value"]) != Some(hex::encode(digest).as_str())
            {
                return Err(mismatch(index, "the logged artifact digest differs"));
            }
            if b64_field(index, spec, &["signature", "content"])? != signature {
                return Err(mismatch(index, "the logged signature differs"));
            }
            let pem = b64_field(index, spec, &["signature", "publicKey", "content"])?;
            if !pem_names(&pem, signer) {
                return Err(mismatch(index, "the logged certificate or key differs"));
            }
        }
        (content, "hashedrekord", "0.0.2") => {
            let spec = spec
                .get("hashedRekordV002")
                .ok_or_else(|| mismatch(index, "body has no hashedRekordV002"))?;
            let want: [u8; 32] = match content {
                Content::Message { digest, .. } => *digest,
                Content::Dsse(env) => Sha256::digest(env.pae()).into(),
            };
            if text(spec, &["data", "algorithm"]) != Some("SHA2_256")
                || b64_field(index, spec, &["data", "digest"])? != want
            {
                return Err(mismatch(index, "the logged digest differs"));
            }
            if b64_field(index, spec, &["signature", "content"])? != signature {
                return Err(mismatch(index, "the logged signature differs"));
            }
            let verifier = spec
                .get("signature")
                .and_then(|s| s.get("verifier"))
                .ok_or_else(|| mismatch(index, "body has no signature.verifier"))?;
            if !verifier_names(verifier, signer) {
                return Err(mismatch(index, "the logged certificate or key differs"));
            }
        }
        (Content::Dsse(env), "dsse", "0.0.1") => {
            let payload_hash = hex::encode(Sha256::digest(&env.payload));
            if text(spec, &["payloadHash", "algorithm"]) != Some("sha256")
                || text(spec, &["payloadHash", "value"]) != Some(payload_hash.as_str())
            {
                return Err(mismatch(index, "the logged payload hash differs"));
            }
            let sigs = spec
                .get("signatures")
                .and_then(Value::as_array)
                .ok_or_else(|| mismatch(index, "body has no signatures"))?;
            let [one] = sigs.as_slice() else {
                return Err(mismatch(index, "the logged envelope has other signatures"));
            };
            if b64_field(index, one, &["signature"])? != signature {
                return Err(mismatch(index, "the logged signature differs"));
            }
            if !pem_names(&b64_field(index, one, &["verifier"])?, signer) {
                return Err(mismatch(index, "the logged certificate or key differs"));
            }
        }
        (Content::Dsse(env), "dsse", "0.0.2") => {
            let spec = spec
                .get("dsseV002")
                .ok_or_else(|| mismatch(index, "body has no dsseV002"))?;
            let payload_hash = Sha256::digest(&env.payload);
            if text(spec, &["payloadHash", "algorithm"]) != Some("SHA2_256")
                || b64_field(index, spec, &["payloadHash", "digest"])? != payload_hash.as_slice()
            {
                return Err(mismatch(index, "the logged payload hash differs"));
            }
            let sigs = spec
                .get("signatures")
                .and_then(Value::as_array)
                .ok_or_else(|| mismatch(index, "body has no signatures"))?;
            let [one] = sigs.as_slice() else {
                return Err(mismatch(index, "the logged envelope has other signatures"));
            };
            if b64_field(index, one, &["content"])? != signature {
                return Err(mismatch(index, "the logged signature differs"));
            }
            let verifier = one
                .get("verifier")
                .ok_or_else(|| mismatch(index, "body signature has no verifier"))?;
            if !verifier_names(verifier, signer) {
                return Err(mismatch(index, "the logged certificate or key differs"));
            }
        }
        (Content::Dsse(env), "intoto", "0.0.2") => {
            let content = spec
                .get("content")
                .ok_or_else(|| mismatch(index, "body has no content"))?;
            let payload_hash = hex::encode(Sha256::digest(&env.payload));
            if text(content, &["payloadHash", "algorithm"]) != Some("sha256")
                || text(content, &["payloadHash", "value"]) != Some(payload_hash.as_str())
            {
                return Err(mismatch(index, "the logged payload hash differs"));
            }
            if text(content, &["envelope", "payloadType"]) != Some(env.payload_type.as_str()) {
                return Err(mismatch(index, "the logged payload type differs"));
            }
            let sigs = content
                .get("envelope")
                .and_then(|e| e.get("signatures"))
                .and_then(Value::as_array)
                .ok_or_else(|| mismatch(index, "body has no envelope signatures"))?;
            let [one] = sigs.as_slice() else {
                return Err(mismatch(index, "the logged envelope has other signatures"));
            };
            // intoto 0.0.2 stores the signature base64-encoded twice.
            let once = b64_field(index, one, &["sig"])?;
            let sig = std::str::from_utf8(&once)
                .ok()
                .and_then(|t| STANDARD.decode(t).ok())
                .ok_or_else(|| mismatch(index, "the logged signature is not base64"))?;
            if sig != signature {
                return Err(mismatch(index, "the logged signature differs"));
            }
            if !pem_names(&b64_field(index, one, &["publicKey"])?, signer) {
                return Err(mismatch(index, "the logged certificate or key differs"));
            }
        }
        (_, "hashedrekord" | "dsse" | "intoto", _) if known_kind(entry) => {
            return Err(mismatch(
                index,
                format!(
                    "a {} {} entry cannot record this bundle's kind of content",
                    entry.kind, entry.version
                ),
            ));
        }
        _ => return Err(unsupported()),
    }
    Ok(())
}

fn known_kind(entry: &TlogEntry) -> bool {
    matches!(
        (entry.kind.as_str(), entry.version.as_str()),
        ("hashedrekord", "0.0.1" | "0.0.2") | ("dsse", "0.0.1" | "0.0.2") | ("intoto", "0.0.2")
    )
}

/// Parses a checkpoint (C2SP signed note), checks it commits to `size` and `root`, and
/// that a signature line from `log` verifies over its body.
pub(crate) fn verify_checkpoint(
    index: usize,
    note: &str,
    size: u64,
    root: &Hash,
    log: &Log,
) -> Result<(), SigstoreError> {
    let bad = |detail: &str| SigstoreError::Checkpoint {
        index,
        detail: detail.to_owned(),
    };
    if note.len() > MAX_CHECKPOINT_BYTES {
        return Err(bad("checkpoint is too long"));
    }
    let split = note
        .find("\n\n")
        .ok_or_else(|| bad("no blank line between the body and the signatures"))?;
    let body = &note[..split + 1];
    let signatures = &note[split + 2..];
    let mut lines = body.lines();
    let origin = lines.next().unwrap_or_default();
    let size_line = lines.next().ok_or_else(|| bad("no tree size line"))?;
    let root_line = lines.next().ok_or_else(|| bad("no root hash line"))?;
    if origin.is_empty() || origin.contains('\u{2014}') {
        return Err(bad("the origin line is missing"));
    }
    if size_line.is_empty()
        || !size_line.bytes().all(|b| b.is_ascii_digit())
        || (size_line.len() > 1 && size_line.starts_with('0'))
    {
        return Err(bad("the tree size line is not a decimal number"));
    }
    let note_size: u64 = size_line
        .parse()
        .map_err(|_| bad("the tree size is out of range"))?;
    let note_root = STANDARD
        .decode(root_line)
        .ok()
        .and_then(|b| Hash::from_slice(&b).ok())
        .ok_or_else(|| bad("the root hash line is not a base64 SHA-256 hash"))?;
    if note_size != size || note_root != *root {
        return Err(bad(
            "the checkpoint's tree size or root hash differs from the inclusion proof's",
        ));
    }
    // Every signature line is read (at most MAX_CHECKPOINT_SIGNATURES) and must be well
    // formed before any signature is verified.
    let mut lines: Vec<(&str, Vec<u8>)> = Vec::new();
    for line in signatures.lines() {
        if line.is_empty() {
            continue;
        }
        if lines.len() == MAX_CHECKPOINT_SIGNATURES {
            return Err(bad(&format!(
                "more than {MAX_CHECKPOINT_SIGNATURES} signature lines"
            )));
        }
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| bad("a signature line does not start with an em dash"))?;
        let (name, sig) = rest
            .split_once(' ')
            .ok_or_else(|| bad("a signature line has no name"))?;
        let Ok(bytes) = STANDARD.decode(sig) else {
            return Err(bad("a signature line is not base64"));
        };
        lines.push((name, bytes));
    }

    // At most one signature is tried per (name, key hint) that could be the log's: for an
    // Ed25519 log the line's full C2SP key hint (over its name and the log's key) must
    // match; for an ECDSA log only the first line with the log's 4-byte hint is tried.
    let log_hint = log.log_id.get(..4).unwrap_or_default();
    let mut tried: Vec<(&str, &[u8])> = Vec::new();
    for (name, bytes) in &lines {
        if bytes.len() < 5 || &bytes[..4] != log_hint {
            continue;
        }
        let (hint, sig) = bytes.split_at(4);
        let verified = match &log.key {
            LogKey::Ecdsa(key) => {
                if !tried.is_empty() {
                    break;
                }
                tried.push((name, hint));
                key.verify(body.as_bytes(), sig)
            }
            LogKey::Ed25519(key) => {
                if c2sp_key_hint(name, key) != hint || tried.contains(&(*name, hint)) {
                    continue;
                }
                tried.push((name, hint));
                key.verify(body.as_bytes(), sig)
            }
        };
        if verified {
            return Ok(());
        }
    }
    Err(SigstoreError::CheckpointSignature {
        index,
        log_id: hex::encode(&log.log_id),
    })
}

/// The C2SP signed-note key hint of an Ed25519 key named `name`:
/// SHA-256(name || "\n" || 0x01 || key)[:4].
fn c2sp_key_hint(name: &str, key: &crate::keys::PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n\x01");
    h.update(key.to_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{PublicKey, SigningKey};
    use crate::sigstore::trust::Validity;
    use ed25519_dalek::Signer as _;

    fn log_and_note(name: &str, root: &Hash, extra_first: bool) -> (Log, String) {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let public = PublicKey::from_signing_key(&key);
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update(b"\n\x01");
        h.update(public.to_bytes());
        let log_id = h.finalize().to_vec();
        let body = format!("{name}\n5\n{}\n", STANDARD.encode(root.0));
        let mut sig = log_id[..4].to_vec();
        sig.extend_from_slice(&key.sign(body.as_bytes()).to_bytes());
        let witness = SigningKey::from_bytes(&[8u8; 32]);
        let mut cosig = vec![1, 2, 3, 4];
        cosig.extend_from_slice(&witness.sign(body.as_bytes()).to_bytes());
        let mut lines = vec![format!("\u{2014} {name} {}\n", STANDARD.encode(sig))];
        let witness_line = format!("\u{2014} witness.example {}\n", STANDARD.encode(cosig));
        if extra_first {
            lines.insert(0, witness_line);
        } else {
            lines.push(witness_line);
        }
        let log = Log {
            base_url: format!("https://{name}"),
            key: LogKey::Ed25519(public),
            log_id,
            valid: Validity {
                start: 0,
                end: None,
            },
        };
        (log, format!("{body}\n{}", lines.concat()))
    }

    fn reason(r: Result<(), SigstoreError>) -> &'static str {
        r.map_or_else(|e| e.reason(), |()| "ok")
    }

    #[test]
    fn a_checkpoint_signed_by_its_log_verifies_among_cosignatures() {
        let root = Hash::sha256(b"root");
        for first in [false, true] {
            let (log, note) = log_and_note("log.example", &root, first);
            assert_eq!(reason(verify_checkpoint(0, &note, 5, &root, &log)), "ok");
        }
    }

    #[test]
    fn a_checkpoint_for_another_tree_or_without_the_log_signature_is_refused() {
        let root = Hash::sha256(b"root");
        let (log, note) = log_and_note("log.example", &root, false);
        let other = Hash::sha256(b"other");
        assert_eq!(
            reason(verify_checkpoint(0, &note, 5, &other, &log)),
            "checkpoint_invalid"
        );
        assert_eq!(
            reason(verify_checkpoint(0, &note, 6, &root, &log)),
            "checkpoint_invalid"
        );
        let unsigned: String = note
            .lines()
            .filter(|l| !l.contains("log.example 7") && !l.starts_with("\u{2014} log.example"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            reason(verify_checkpoint(0, &unsigned, 5, &root, &log)),
            "checkpoint_signature"
        );
        let renamed = note.replace("\u{2014} log.example", "\u{2014} log.other");
        assert_eq!(
            reason(verify_checkpoint(0, &renamed, 5, &root, &log)),
            "checkpoint_signature"
        );
        let no_origin = note.replacen("log.example\n", "", 1);
        assert_eq!(
            reason(verify_checkpoint(0, &no_origin, 5, &root, &log)),
            "checkpoint_invalid"
        );
    }

    fn signature_line(name: &str, bytes: &[u8]) -> String {
        format!("\u{2014} {name} {}\n", STANDARD.encode(bytes))
    }

    #[test]
    fn a_checkpoint_with_more_than_sixteen_signature_lines_is_refused() {
        let root = Hash::sha256(b"root");
        let (log, note) = log_and_note("log.example", &root, false);
        // The note has two lines (the log's and one witness's).
        let mut cosigs = String::new();
        for i in 0..14u8 {
            cosigs.push_str(&signature_line(&format!("w{i}.example"), &[i; 68]));
        }
        let sixteen = format!("{note}{cosigs}");
        assert_eq!(reason(verify_checkpoint(0, &sixteen, 5, &root, &log)), "ok");
        let seventeen = format!("{sixteen}{}", signature_line("w99.example", &[7; 68]));
        assert_eq!(
            reason(verify_checkpoint(0, &seventeen, 5, &root, &log)),
            "checkpoint_invalid"
        );
        // A malformed line is refused even after the log's valid one.
        let malformed = format!("{note}\u{2014} w.example not-base64!\n");
        assert_eq!(
            reason(verify_checkpoint(0, &malformed, 5, &root, &log)),
            "checkpoint_invalid"
        );
    }

    #[test]
    fn an_ed25519_log_is_tried_once_per_name_and_full_key_hint() {
        let root = Hash::sha256(b"root");
        let (log, note) = log_and_note("log.example", &root, false);
        let (body, sigs) = note.split_at(note.find("\n\n").expect("a blank line") + 2);
        let mut forged = log.log_id[..4].to_vec();
        forged.extend_from_slice(&[0u8; 64]);
        // A line under another name with the log's 4-byte hint is not the log's key
        // (its C2SP hint differs), so it is never verified and the log's line still is.
        let other = format!("{body}{}{sigs}", signature_line("other.example", &forged));
        assert_eq!(reason(verify_checkpoint(0, &other, 5, &root, &log)), "ok");
        // A second line with the same name and hint is never tried.
        let first_bad = format!("{body}{}{sigs}", signature_line("log.example", &forged));
        assert_eq!(
            reason(verify_checkpoint(0, &first_bad, 5, &root, &log)),
            "checkpoint_signature"
        );
        let last_bad = format!("{note}{}", signature_line("log.example", &forged));
        assert_eq!(
            reason(verify_checkpoint(0, &last_bad, 5, &root, &log)),
            "ok"
        );
    }

    #[test]
    fn an_ecdsa_log_is_tried_only_on_the_first_line_with_its_hint() {
        use p256::ecdsa::signature::Signer as _;
        let key = crate::sigstore::x509::tests::signing_key(5);
        let spki = crate::sigstore::x509::tests::spki(&key);
        let log_id = Sha256::digest(&spki).to_vec();
        let log = Log {
            base_url: "https://rekor.example".into(),
            key: LogKey::Ecdsa(crate::ecdsa::EcKey::from_spki_der(&spki).expect("a key")),
            log_id: log_id.clone(),
            valid: Validity {
                start: 0,
                end: None,
            },
        };
        let root = Hash::sha256(b"root");
        let body = format!("rekor.example - 1\n5\n{}\n", STANDARD.encode(root.0));
        let sig: p256::ecdsa::Signature = key.sign(body.as_bytes());
        let mut good = log_id[..4].to_vec();
        good.extend_from_slice(sig.to_der().as_bytes());
        let mut forged = log_id[..4].to_vec();
        forged.extend_from_slice(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]);
        let good_line = signature_line("rekor.example", &good);
        let bad_line = signature_line("rekor.example", &forged);
        let witness = signature_line("witness.example", &[1; 68]);
        let note = format!("{body}\n{witness}{good_line}");
        assert_eq!(reason(verify_checkpoint(0, &note, 5, &root, &log)), "ok");
        let good_first = format!("{body}\n{good_line}{bad_line}");
        assert_eq!(
            reason(verify_checkpoint(0, &good_first, 5, &root, &log)),
            "ok"
        );
        let bad_first = format!("{body}\n{bad_line}{good_line}");
        assert_eq!(
            reason(verify_checkpoint(0, &bad_first, 5, &root, &log)),
            "checkpoint_signature"
        );
    }
}

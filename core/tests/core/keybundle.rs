//! Managed-key Sigstore bundles, as `cosign attest --key … --new-bundle-format` writes them:
//! a DSSE envelope signed with an ECDSA P-256 key, `verificationMaterial.publicKey.hint`
//! instead of a certificate, and a Rekor `dsse` 0.0.1 entry. Everything is built here from
//! this file's own keys (signer and log) and split as the server splits a bundle
//! (`Bundle::from_json` → `envelope()` + `material_json()`), then authorized through the
//! trust registry: the registered key's signer is authorized, every failure is refused
//! with its own reason.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE, pae};
use evident_core::ecdsa::EcKey;
use evident_core::merkle::leaf_hash;
use evident_core::registry::{
    Admin, AuthError, Authorized, Change, Registry, RegistryError, SignedBy, parse_time,
    sign_change,
};
use evident_core::sigstore::{self, Bundle, TimeSource, TrustedRoot, VerifyOptions};
use evident_core::{PublicKey, SigningKey};
use p256::ecdsa::signature::Signer as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const PROVENANCE: &str = "https://slsa.dev/provenance/v1";
const V01: &str = "application/vnd.dev.sigstore.bundle+json;version=0.1";
const V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// When the registry is set up.
const SETUP: &str = "2026-11-01T00:00:00Z";
/// The log entry's integrated time, and the time attestations are authorized at.
const ENTRY: &str = "2026-11-02T00:00:00Z";
const SIGNER: &str = "ci@payments";

fn t(text: &str) -> i64 {
    parse_time("test", text).unwrap()
}

fn entry_time() -> i64 {
    t(ENTRY)
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn admin() -> SigningKey {
    SigningKey::from_bytes(&[100; 32])
}

fn apply(reg: &mut Registry, index: u64, time: &str, change: &Change) -> Result<(), RegistryError> {
    reg.apply(index, t(time), &sign_change(change, &[&admin()]))
        .map(|_| ())
}

/// A P-256 key (signer or log) and its SubjectPublicKeyInfo DER, point uncompressed as
/// cosign and Rekor write it.
struct P256 {
    sk: p256::ecdsa::SigningKey,
    spki: Vec<u8>,
}

impl P256 {
    fn new(n: u8) -> P256 {
        let sk = p256::ecdsa::SigningKey::from_bytes(&[n; 32].into()).unwrap();
        let point = sk.verifying_key().to_encoded_point(false);
        let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        spki.extend_from_slice(point.as_bytes());
        P256 { sk, spki }
    }

    fn key(&self) -> EcKey {
        EcKey::from_spki_der(&self.spki).unwrap()
    }

    fn pem(&self) -> String {
        self.key().to_pem()
    }

    /// The registry's key id: lowercase hex of SHA-256 of the SPKI DER.
    fn key_id(&self) -> String {
        self.key().key_id()
    }

    /// The hint cosign writes: standard base64 of SHA-256 of the SPKI DER.
    fn cosign_hint(&self) -> String {
        b64(&Sha256::digest(&self.spki))
    }

    /// Rekor v1's log id: SHA-256 of the log key's SPKI DER.
    fn log_id(&self) -> Vec<u8> {
        Sha256::digest(&self.spki).to_vec()
    }

    /// ASN.1 DER ECDSA over SHA-256 of `message`.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: p256::ecdsa::Signature = self.sk.sign(message);
        signature.to_der().as_bytes().to_vec()
    }
}

fn cosign() -> P256 {
    P256::new(7)
}

fn rekor() -> P256 {
    P256::new(21)
}

/// A trusted root listing one Rekor-like log (`log`), trusted from well before the entry.
fn trusted_root(log: &P256) -> Value {
    json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{
            "baseUrl": "https://rekor.example.test",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": b64(&log.spki),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": "2026-01-01T00:00:00Z"}
            },
            "logId": {"keyId": b64(&log.log_id())}
        }],
        "certificateAuthorities": [],
        "ctlogs": [],
        "timestampAuthorities": []
    })
}

/// A DSSE envelope's content, signed as cosign signs it: an in-toto Statement v1 with an
/// SLSA provenance predicate, ECDSA over SHA-256 of the PAE.
struct Signed {
    payload: Vec<u8>,
    sig: Vec<u8>,
}

fn statement(artifact: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{
            "name": artifact,
            "digest": {"sha256": hex::encode(Sha256::digest(artifact.as_bytes()))}
        }],
        "predicateType": PROVENANCE,
        "predicate": {"buildDefinition": {"buildType": "https://example.test/build/v1"}}
    }))
    .unwrap()
}

fn signed(signer: &P256, artifact: &str) -> Signed {
    let payload = statement(artifact);
    let sig = signer.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload));
    Signed { payload, sig }
}

/// The canonicalized body of a Rekor `dsse` 0.0.1 entry for `content` signed by `signer`
/// (keys sorted, no spaces, as Rekor canonicalizes).
fn dsse_body(content: &Signed, signer: &P256) -> Vec<u8> {
    let envelope = json!({
        "payload": b64(&content.payload),
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "signatures": [{"keyid": "", "sig": b64(&content.sig)}]
    });
    let envelope_hash = Sha256::digest(serde_json::to_vec(&envelope).unwrap());
    serde_json::to_vec(&json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": hex::encode(envelope_hash)},
            "payloadHash": {
                "algorithm": "sha256",
                "value": hex::encode(Sha256::digest(&content.payload))
            },
            "signatures": [{
                "signature": b64(&content.sig),
                "verifier": b64(signer.pem().as_bytes())
            }]
        }
    }))
    .unwrap()
}

/// A transparency log entry for `body`, logged by `log` at [`ENTRY`] as log index 0: a
/// signed entry timestamp (ECDSA over the canonical JSON of body, integrated time, log id
/// and index), and, with `proof`, an inclusion proof in a tree of that one leaf (root =
/// leaf hash) up to a checkpoint `log` signed. The entry names `claimed_log` as its log.
fn tlog_entry(log: &P256, claimed_log: &P256, body: &[u8], proof: bool) -> Value {
    let secs = entry_time() / 1_000_000_000;
    let log_id = claimed_log.log_id();
    let canonical = format!(
        "{{\"body\":\"{}\",\"integratedTime\":{secs},\"logID\":\"{}\",\"logIndex\":0}}",
        b64(body),
        hex::encode(&log_id),
    );
    let mut entry = json!({
        "logIndex": "0",
        "logId": {"keyId": b64(&log_id)},
        "kindVersion": {"kind": "dsse", "version": "0.0.1"},
        "integratedTime": secs.to_string(),
        "inclusionPromise": {"signedEntryTimestamp": b64(&log.sign(canonical.as_bytes()))},
        "canonicalizedBody": b64(body)
    });
    if proof {
        let root = leaf_hash(body);
        let note = format!("rekor.example.test - 1\n1\n{}\n", b64(&root.0));
        let mut signature = log_id[..4].to_vec();
        signature.extend_from_slice(&log.sign(note.as_bytes()));
        let checkpoint = format!("{note}\n\u{2014} rekor.example.test {}\n", b64(&signature));
        entry["inclusionProof"] = json!({
            "logIndex": "0",
            "rootHash": b64(&root.0),
            "treeSize": "1",
            "hashes": [],
            "checkpoint": {"envelope": checkpoint}
        });
    }
    entry
}

/// The bundle JSON cosign writes for a managed key: `publicKey.hint`, the log entry (with
/// an inclusion proof from v0.2 on), the DSSE envelope.
fn bundle_json(media_type: &str, hint: &str, content: &Signed, entry: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "mediaType": media_type,
        "verificationMaterial": {
            "publicKey": {"hint": hint},
            "tlogEntries": [entry]
        },
        "dsseEnvelope": {
            "payload": b64(&content.payload),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": b64(&content.sig), "keyid": ""}]
        }
    }))
    .unwrap()
}

/// Splits a bundle exactly as the server does: the envelope, with the rest of the bundle
/// as its `sigstore` material.
fn split(json: &[u8]) -> Envelope {
    let bundle = Bundle::from_json(json).unwrap();
    let mut envelope = bundle.envelope().cloned().unwrap();
    envelope.sigstore = Some(bundle.material_json());
    envelope
}

/// A well-formed key bundle of `media_type` for `content` signed by `signer`, logged by
/// the trusted log.
fn key_bundle(media_type: &str, hint: &str, signer: &P256, content: &Signed) -> Envelope {
    let entry = tlog_entry(
        &rekor(),
        &rekor(),
        &dsse_body(content, signer),
        media_type == V03,
    );
    split(&bundle_json(media_type, hint, content, entry))
}

fn good_bundle(media_type: &str, hint: &str) -> Envelope {
    let signer = cosign();
    key_bundle(
        media_type,
        hint,
        &signer,
        &signed(&signer, "payments.tar.gz"),
    )
}

fn add_key(identity: &str, pem: String) -> Change {
    Change::AddSigner {
        identity: identity.into(),
        public_key: Some(pem),
        certificate: None,
        roles: vec!["ci".into()],
        predicate_types: vec![PROVENANCE.into()],
        not_before: None,
        not_after: None,
    }
}

/// A registry that trusts `root` (if any) as `private`, and registers `keys` (PEM) to
/// [`SIGNER`], then `other@payments`, ….
fn registry(root: Option<Value>, keys: &[String]) -> Registry {
    let mut reg = Registry::genesis(
        vec![Admin {
            identity: "admin@example.com".into(),
            key: PublicKey::from_signing_key(&admin()),
        }],
        1,
    )
    .unwrap();
    let mut index = 0;
    if let Some(trusted_root) = root {
        let trust = Change::TrustSigstore {
            name: "private".into(),
            trusted_root,
            reason: None,
        };
        apply(&mut reg, index, SETUP, &trust).unwrap();
        index += 1;
    }
    for (i, pem) in keys.iter().enumerate() {
        let identity = if i == 0 {
            SIGNER.to_owned()
        } else {
            format!("other{i}@payments")
        };
        apply(&mut reg, index, SETUP, &add_key(&identity, pem.clone())).unwrap();
        index += 1;
    }
    reg
}

fn trusting_cosign() -> Registry {
    registry(Some(trusted_root(&rekor())), &[cosign().pem()])
}

fn authorize(reg: &Registry, envelope: &Envelope) -> Result<Vec<Authorized>, AuthError> {
    reg.authorize_envelope(envelope, PROVENANCE, entry_time())
}

/// The code of a Sigstore refusal, or what else the registry said.
fn sigstore_code(result: Result<Vec<Authorized>, AuthError>) -> String {
    match result {
        Err(AuthError::Sigstore(e)) => e.reason().to_owned(),
        other => format!("not a Sigstore refusal: {other:?}"),
    }
}

#[test]
fn a_key_bundle_is_authorized_for_the_registered_keys_signer_whatever_its_hint() {
    let reg = trusting_cosign();
    let key = cosign();
    for media_type in [V03, V01] {
        // The registry's key id, cosign's own hint (base64, not a registry key id), none,
        // and a hint naming no key: the signature decides, never the hint.
        for hint in [
            key.key_id(),
            key.cosign_hint(),
            String::new(),
            "unknown".into(),
        ] {
            let envelope = good_bundle(media_type, &hint);
            assert!(envelope.sigstore.is_some());
            let signers = authorize(&reg, &envelope)
                .unwrap_or_else(|e| panic!("{media_type}, hint {hint:?}: {e}"));
            assert_eq!(signers.len(), 1, "{media_type}, hint {hint:?}");
            assert_eq!(signers[0].identity, SIGNER);
            assert_eq!(signers[0].key_id, key.key_id());
            assert_eq!(signers[0].key, key.key().fingerprint());
            assert!(signers[0].certificate.is_none());
            assert_eq!(
                reg.verifying_keys(&envelope, PROVENANCE).unwrap(),
                [SignedBy::Key(key.key().fingerprint())]
            );
        }
    }
}

#[test]
fn a_key_bundle_verifies_offline_under_its_key_with_the_logs_time() {
    let key = cosign();
    let ec = key.key();
    let root =
        TrustedRoot::from_json(&serde_json::to_vec(&trusted_root(&rekor())).unwrap()).unwrap();
    for media_type in [V03, V01] {
        let envelope = good_bundle(media_type, &key.key_id());
        let bundle = Bundle::from_parts(envelope.sigstore.as_deref().unwrap(), &envelope).unwrap();
        assert_eq!(bundle.public_key_hint(), Some(key.key_id().as_str()));
        assert!(!bundle.has_certificate());
        let options = VerifyOptions {
            key: Some(&ec),
            ..VerifyOptions::default()
        };
        let verified = sigstore::verify(&bundle, &root, &options).unwrap();
        assert_eq!(verified.identity, None);
        assert_eq!(verified.signer_fingerprint, ec.fingerprint());
        assert_eq!(verified.signed_at, entry_time());
        assert_eq!(verified.timestamps.len(), 1);
        assert_eq!(
            verified.timestamps[0].source,
            TimeSource::TransparencyLog {
                log_id: hex::encode(rekor().log_id())
            }
        );
        // Without the registered key there is nothing to verify it under.
        let refused = sigstore::verify(&bundle, &root, &VerifyOptions::default()).unwrap_err();
        assert_eq!(refused.reason(), "key_required");
    }
}

#[test]
fn a_key_bundle_is_refused_when_the_registry_trusts_no_sigstore_root() {
    let reg = registry(None, &[cosign().pem()]);
    for media_type in [V03, V01] {
        let result = authorize(&reg, &good_bundle(media_type, &cosign().key_id()));
        assert!(
            matches!(result, Err(AuthError::NoSigstoreRoot)),
            "{result:?}"
        );
    }
}

#[test]
fn a_key_bundle_is_refused_when_its_key_is_not_registered() {
    let unregistered = P256::new(8);
    let content = signed(&unregistered, "payments.tar.gz");
    // No ECDSA key at all, or another one: whatever the hint says, no key verifies it.
    for reg in [
        registry(Some(trusted_root(&rekor())), &[]),
        trusting_cosign(),
    ] {
        for media_type in [V03, V01] {
            for hint in [
                unregistered.key_id(),
                unregistered.cosign_hint(),
                String::new(),
            ] {
                let envelope = key_bundle(media_type, &hint, &unregistered, &content);
                let result = authorize(&reg, &envelope);
                assert!(
                    matches!(result, Err(AuthError::UnknownKey { .. })),
                    "{media_type}, hint {hint:?}: {result:?}"
                );
            }
        }
    }
    // A hint naming the registered key: that key is the one tried, and the bundle's DSSE
    // signature does not verify under it.
    let envelope = key_bundle(V03, &cosign().key_id(), &unregistered, &content);
    assert_eq!(
        sigstore_code(authorize(&trusting_cosign(), &envelope)),
        "dsse_signature"
    );
}

#[test]
fn a_key_bundle_is_refused_when_its_key_is_revoked_at_the_entrys_time() {
    for (from, revoked) in [
        ("2026-11-01T12:00:00Z", true),
        (ENTRY, true),
        ("2026-11-02T00:00:01Z", false),
    ] {
        let mut reg = trusting_cosign();
        let revoke = Change::RevokeKey {
            public_key: cosign().pem(),
            from: Some(from.into()),
            reason: "key leaked".into(),
        };
        apply(&mut reg, 2, "2026-11-01T06:00:00Z", &revoke).unwrap();
        for media_type in [V03, V01] {
            for hint in [cosign().key_id(), String::new()] {
                let result = authorize(&reg, &good_bundle(media_type, &hint));
                if revoked {
                    match &result {
                        Err(AuthError::Revoked { key, identity, .. }) => {
                            assert_eq!(key, &cosign().key_id());
                            assert_eq!(identity, SIGNER);
                        }
                        other => panic!("revoked from {from}, {media_type}: {other:?}"),
                    }
                } else {
                    assert_eq!(result.unwrap()[0].identity, SIGNER, "revoked from {from}");
                }
            }
        }
    }
}

#[test]
fn a_key_bundle_is_refused_when_its_log_entry_is_from_a_log_the_root_does_not_list() {
    let reg = trusting_cosign();
    let signer = cosign();
    let content = signed(&signer, "payments.tar.gz");
    let body = dsse_body(&content, &signer);
    let stranger = P256::new(22);
    for (media_type, proof) in [(V03, true), (V01, false)] {
        // Logged and signed by another log, under its own id.
        let entry = tlog_entry(&stranger, &stranger, &body, proof);
        let envelope = split(&bundle_json(media_type, &signer.key_id(), &content, entry));
        assert_eq!(
            sigstore_code(authorize(&reg, &envelope)),
            "tlog_untrusted",
            "{media_type}"
        );
        // Signed by another log under the trusted log's id: its checkpoint (v0.3) or signed
        // entry timestamp (v0.1) does not verify.
        let entry = tlog_entry(&stranger, &rekor(), &body, proof);
        let envelope = split(&bundle_json(media_type, &signer.key_id(), &content, entry));
        let expected = if proof {
            "checkpoint_signature"
        } else {
            "set_signature"
        };
        assert_eq!(
            sigstore_code(authorize(&reg, &envelope)),
            expected,
            "{media_type}"
        );
    }
}

#[test]
fn a_key_bundle_is_refused_when_its_payload_is_altered_after_signing() {
    let reg = trusting_cosign();
    for media_type in [V03, V01] {
        let mut envelope = good_bundle(media_type, &cosign().key_id());
        let text = String::from_utf8(envelope.payload.clone()).unwrap();
        envelope.payload = text
            .replace("payments.tar.gz", "payments.tar.gz.evil")
            .into();
        assert_ne!(envelope.payload, text.as_bytes());
        assert_eq!(
            sigstore_code(authorize(&reg, &envelope)),
            "dsse_signature",
            "{media_type}"
        );
    }
}

#[test]
fn a_key_bundle_is_refused_when_its_log_entry_belongs_to_another_envelope() {
    let reg = trusting_cosign();
    let signer = cosign();
    let logged = signed(&signer, "payments.tar.gz");
    let other = signed(&signer, "ledger.tar.gz");
    for (media_type, proof) in [(V03, true), (V01, false)] {
        // A valid entry of the trusted log, for another envelope the same key signed.
        let entry = tlog_entry(&rekor(), &rekor(), &dsse_body(&logged, &signer), proof);
        let envelope = split(&bundle_json(media_type, &signer.key_id(), &other, entry));
        assert_eq!(
            sigstore_code(authorize(&reg, &envelope)),
            "tlog_entry_mismatch",
            "{media_type}"
        );
    }
}

#[test]
fn a_key_bundle_replays_to_the_same_answer() {
    let signer = cosign();
    let content = signed(&signer, "payments.tar.gz");
    let stranger = P256::new(22);
    let untrusted = tlog_entry(&stranger, &stranger, &dsse_body(&content, &signer), true);
    let mut altered = good_bundle(V03, &signer.key_id());
    altered.payload.push(b' ');
    let cases = [
        (trusting_cosign(), good_bundle(V03, &signer.key_id())),
        (trusting_cosign(), good_bundle(V01, "")),
        (registry(None, &[signer.pem()]), good_bundle(V03, "")),
        (
            registry(Some(trusted_root(&rekor())), &[]),
            good_bundle(V03, ""),
        ),
        (
            trusting_cosign(),
            split(&bundle_json(V03, &signer.key_id(), &content, untrusted)),
        ),
        (trusting_cosign(), altered),
    ];
    for (reg, envelope) in &cases {
        let first = authorize(reg, envelope);
        // Once more, and again from a fresh split of the same material.
        assert_eq!(authorize(reg, envelope), first);
        let mut again = envelope.clone();
        let bundle = Bundle::from_parts(envelope.sigstore.as_deref().unwrap(), envelope).unwrap();
        again.sigstore = Some(bundle.material_json());
        assert_eq!(again, *envelope);
        assert_eq!(authorize(reg, &again), first);
    }
}

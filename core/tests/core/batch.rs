//! Batch verification gives exactly the answers of verifying one by one: the same keys, or
//! the same error, for every envelope, over random mixes of valid, corrupted, wrong-key,
//! misdirected, repeated and malformed signatures, with and without keyid hints.

use evident_core::dsse::{BatchItem, Envelope, MAX_SIGNATURES, Signature};
use evident_core::keys::{PublicKey, SigningKey, verify_all};
use proptest::prelude::*;

/// Keys 0..TRUSTED are trusted; the rest sign too, but no one trusts them.
const TRUSTED: usize = 12;
const SIGNERS: usize = 14;

fn signing_key(i: usize) -> SigningKey {
    SigningKey::from_bytes(&[u8::try_from(i + 1).unwrap(); 32])
}

/// How one signature of a generated envelope is made.
#[derive(Debug, Clone)]
enum Made {
    /// By signer `.0` over the envelope's PAE.
    Valid(usize),
    /// By signer `.0`, one bit flipped at byte `.1`.
    Corrupted(usize, usize),
    /// By signer `.0` over another payload.
    OtherMessage(usize),
    /// Not 64 bytes.
    WrongLength(usize),
    /// A copy of the envelope's signature `.0` (modulo how many there are before it).
    Repeat(usize),
}

/// The keyid a signature carries.
#[derive(Debug, Clone)]
enum Hint {
    None,
    /// The key id of its own signer.
    Own,
    /// The key id of trusted key `.0`.
    Other(usize),
    /// Something no key is called.
    Junk,
}

fn made() -> impl Strategy<Value = Made> {
    prop_oneof![
        4 => (0..SIGNERS).prop_map(Made::Valid),
        2 => (0..SIGNERS, 0..64usize).prop_map(|(k, b)| Made::Corrupted(k, b)),
        1 => (0..SIGNERS).prop_map(Made::OtherMessage),
        1 => (0..SIGNERS).prop_map(Made::WrongLength),
        2 => (0..MAX_SIGNATURES).prop_map(Made::Repeat),
    ]
}

fn hint() -> impl Strategy<Value = Hint> {
    prop_oneof![
        2 => Just(Hint::None),
        4 => Just(Hint::Own),
        1 => (0..TRUSTED).prop_map(Hint::Other),
        1 => Just(Hint::Junk),
    ]
}

/// An envelope: payload, signatures (0 to MAX_SIGNATURES + 1), and the candidates its
/// unhinted signatures are tried against (some out of range).
fn envelope() -> impl Strategy<Value = (Vec<u8>, Vec<(Made, Hint)>, Vec<usize>)> {
    (
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec((made(), hint()), 0..=MAX_SIGNATURES + 1),
        proptest::collection::vec(0..TRUSTED + 2, 0..TRUSTED + 2),
    )
}

fn build(payload: &[u8], signatures: &[(Made, Hint)], keys: &[SigningKey]) -> Envelope {
    use ed25519_dalek::Signer as _;
    let payload_type = "application/vnd.in-toto+json";
    let message = evident_core::dsse::pae(payload_type, payload);
    let other = evident_core::dsse::pae(payload_type, b"another payload");
    let mut made: Vec<Signature> = Vec::new();
    for (how, hint) in signatures {
        let (signer, sig) = match how {
            Made::Valid(k) => (*k, keys[*k].sign(&message).to_bytes().to_vec()),
            Made::Corrupted(k, byte) => {
                let mut sig = keys[*k].sign(&message).to_bytes().to_vec();
                sig[*byte] ^= 0x10;
                (*k, sig)
            }
            Made::OtherMessage(k) => (*k, keys[*k].sign(&other).to_bytes().to_vec()),
            Made::WrongLength(k) => (*k, keys[*k].sign(&message).to_bytes()[..40].to_vec()),
            Made::Repeat(i) if !made.is_empty() => {
                let copy = made[i % made.len()].clone();
                made.push(copy);
                continue;
            }
            Made::Repeat(_) => (0, keys[0].sign(&message).to_bytes().to_vec()),
        };
        let keyid = match hint {
            Hint::None => String::new(),
            Hint::Own => PublicKey::from_signing_key(&keys[signer]).key_id(),
            Hint::Other(k) => PublicKey::from_signing_key(&keys[*k]).key_id(),
            Hint::Junk => "not-a-key".to_owned(),
        };
        made.push(Signature { sig, keyid });
    }
    Envelope {
        payload: payload.to_vec(),
        payload_type: payload_type.to_owned(),
        signatures: made,
        sigstore: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn batch_verification_answers_exactly_as_one_by_one(
        envelopes in proptest::collection::vec(envelope(), 1..6),
    ) {
        let keys: Vec<SigningKey> = (0..SIGNERS).map(signing_key).collect();
        let trusted: Vec<PublicKey> =
            keys[..TRUSTED].iter().map(PublicKey::from_signing_key).collect();
        let ids: Vec<String> = trusted.iter().map(PublicKey::key_id).collect();
        let hinted = |keyid: &str| ids.iter().position(|id| id == keyid);
        let built: Vec<(Envelope, Vec<usize>)> = envelopes
            .iter()
            .map(|(payload, signatures, candidates)| {
                (build(payload, signatures, &keys), candidates.clone())
            })
            .collect();
        let items: Vec<BatchItem<'_>> = built
            .iter()
            .map(|(envelope, candidates)| BatchItem {
                envelope,
                trusted: &trusted,
                hinted: &hinted,
                candidates,
            })
            .collect();
        let one_by_one: Vec<_> = built
            .iter()
            .map(|(envelope, candidates)| envelope.verify_bounded(&trusted, hinted, candidates))
            .collect();
        prop_assert_eq!(Envelope::verify_bounded_batch(&items), one_by_one);
    }
}

fn valid_only() -> impl Strategy<Value = (Vec<u8>, Vec<(Made, Hint)>, Vec<usize>)> {
    (
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(
            (
                prop_oneof![
                    4 => (0..TRUSTED).prop_map(Made::Valid),
                    1 => (0..MAX_SIGNATURES).prop_map(Made::Repeat),
                ],
                prop_oneof![4 => Just(Hint::Own), 1 => Just(Hint::None)],
            ),
            1..=MAX_SIGNATURES,
        ),
        proptest::collection::vec(0..TRUSTED, 0..TRUSTED),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Mostly signatures that verify, so the batch itself often holds (no fallback).
    #[test]
    fn batches_of_mostly_valid_signatures_answer_exactly_as_one_by_one(
        envelopes in proptest::collection::vec(valid_only(), 1..8),
    ) {
        let keys: Vec<SigningKey> = (0..SIGNERS).map(signing_key).collect();
        let trusted: Vec<PublicKey> =
            keys[..TRUSTED].iter().map(PublicKey::from_signing_key).collect();
        let ids: Vec<String> = trusted.iter().map(PublicKey::key_id).collect();
        let hinted = |keyid: &str| ids.iter().position(|id| id == keyid);
        let built: Vec<(Envelope, Vec<usize>)> = envelopes
            .iter()
            .map(|(payload, signatures, candidates)| {
                (build(payload, signatures, &keys), candidates.clone())
            })
            .collect();
        let items: Vec<BatchItem<'_>> = built
            .iter()
            .map(|(envelope, candidates)| BatchItem {
                envelope,
                trusted: &trusted,
                hinted: &hinted,
                candidates,
            })
            .collect();
        let one_by_one: Vec<_> = built
            .iter()
            .map(|(envelope, candidates)| envelope.verify_bounded(&trusted, hinted, candidates))
            .collect();
        prop_assert_eq!(Envelope::verify_bounded_batch(&items), one_by_one);
    }
}

#[test]
fn an_all_valid_batch_takes_the_batch_path_and_agrees() {
    let keys: Vec<SigningKey> = (0..4).map(signing_key).collect();
    let trusted: Vec<PublicKey> = keys.iter().map(PublicKey::from_signing_key).collect();
    let envelopes: Vec<Envelope> = (0..20u8)
        .map(|n| {
            Envelope::sign(
                "application/vnd.in-toto+json",
                vec![n; 30],
                &[&keys[usize::from(n) % 4], &keys[(usize::from(n) + 1) % 4]],
            )
        })
        .collect();
    let messages: Vec<Vec<u8>> = envelopes.iter().map(Envelope::pae).collect();
    let mut trials: Vec<(&[u8], &[u8], &PublicKey)> = Vec::new();
    for (e, m) in envelopes.iter().zip(&messages) {
        for s in &e.signatures {
            let k = trusted
                .iter()
                .find(|k| k.key_id() == s.keyid)
                .expect("signed by a trusted key");
            trials.push((m.as_slice(), s.sig.as_slice(), k));
        }
    }
    assert!(verify_all(&trials), "every signature verifies");
    let ids: Vec<String> = trusted.iter().map(PublicKey::key_id).collect();
    let hinted = |keyid: &str| ids.iter().position(|id| id == keyid);
    let items: Vec<BatchItem<'_>> = envelopes
        .iter()
        .map(|envelope| BatchItem {
            envelope,
            trusted: &trusted,
            hinted: &hinted,
            candidates: &[],
        })
        .collect();
    for (n, result) in Envelope::verify_bounded_batch(&items)
        .into_iter()
        .enumerate()
    {
        let mut want = vec![n % 4, (n + 1) % 4];
        want.sort_unstable();
        assert_eq!(result.unwrap(), want);
    }
}

#[test]
fn a_signature_with_a_small_order_component_in_r_is_refused_in_a_batch_as_alone() {
    use curve25519_dalek::constants::EIGHT_TORSION;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use ed25519_dalek::Signer as _;
    let key = signing_key(0);
    let public = PublicKey::from_signing_key(&key);
    let message = b"a message".as_slice();
    let good = key.sign(message).to_bytes();
    // R + T for a point T of order 8: strict verification refuses it.
    let r = CompressedEdwardsY(good[..32].try_into().unwrap())
        .decompress()
        .unwrap();
    let mut bad = good;
    bad[..32].copy_from_slice((r + EIGHT_TORSION[1]).compress().as_bytes());
    assert!(!public.verify(message, &bad));
    assert!(!verify_all(&[
        (message, &good, &public),
        (message, &bad, &public)
    ]));
    // A small-order R alone.
    let mut small = good;
    small[..32].copy_from_slice(EIGHT_TORSION[1].compress().as_bytes());
    assert!(!public.verify(message, &small));
    assert!(!verify_all(&[(message, &small, &public)]));
    assert!(verify_all(&[(message, &good, &public)]));
}

//! X.509 for Sigstore: path validation from a Fulcio (or TSA) leaf to a trusted root's
//! authority, the identity a Fulcio certificate carries, and its embedded SCTs.
//!
//! Certificate signatures: ECDSA (P-256/P-384 with SHA-256/384/512) and, for authorities
//! only in practice, RSA PKCS#1 v1.5 with SHA-256/384/512; anything else is refused by name.
//! Signing (leaf) keys must be ECDSA. Name constraints and unknown critical extensions are
//! refused rather than ignored.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256, Sha384, Sha512};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer as _;

use super::der::{self, tag};
use super::trust::{Authority, Log, LogKey};
use super::{CertIdentity, SigstoreError};
use crate::ecdsa::EcKey;

/// The embedded SCT list extension (RFC 6962).
pub(crate) const OID_SCT: &str = "1.3.6.1.4.1.11129.2.4.2";
const OID_FULCIO_PREFIX: &str = "1.3.6.1.4.1.57264.1.";

/// Extensions a certificate may mark critical because this module evaluates them.
const KNOWN_CRITICAL: [&str; 4] = [
    "2.5.29.19", // basicConstraints
    "2.5.29.15", // keyUsage
    "2.5.29.37", // extKeyUsage
    "2.5.29.17", // subjectAltName
];

/// What the leaf certificate must be for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Fulcio signing certificates.
    CodeSigning,
    /// Timestamp authority certificates.
    TimeStamping,
}

fn bad_cert(detail: impl Into<String>) -> SigstoreError {
    SigstoreError::Certificate {
        detail: detail.into(),
    }
}

/// Parses one DER certificate, refusing trailing bytes.
pub(crate) fn parse(der: &[u8]) -> Result<X509Certificate<'_>, SigstoreError> {
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| bad_cert(format!("not a DER X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(bad_cert("trailing bytes after the certificate"));
    }
    Ok(cert)
}

/// The subject of a certificate, for messages.
pub(crate) fn subject(cert: &X509Certificate<'_>) -> String {
    let name = cert.tbs_certificate.subject.to_string();
    if name.is_empty() {
        format!("serial {}", cert.tbs_certificate.raw_serial_as_string())
    } else {
        name
    }
}

/// The ECDSA key a certificate certifies.
pub(crate) fn public_key(cert: &X509Certificate<'_>) -> Result<EcKey, SigstoreError> {
    EcKey::from_spki_der(cert.tbs_certificate.subject_pki.raw).map_err(|e| {
        SigstoreError::UnsupportedAlgorithm {
            what: format!("key of certificate `{}`", subject(cert)),
            algorithm: e.to_string(),
        }
    })
}

/// The digest of `data` for an ECDSA signature algorithm OID.
pub(crate) fn digest_for(alg_oid: &str, data: &[u8]) -> Option<Vec<u8>> {
    match alg_oid {
        "1.2.840.10045.4.3.2" => Some(Sha256::digest(data).to_vec()),
        "1.2.840.10045.4.3.3" => Some(Sha384::digest(data).to_vec()),
        "1.2.840.10045.4.3.4" => Some(Sha512::digest(data).to_vec()),
        _ => None,
    }
}

/// The DigestInfo prefix and digest for an RSA PKCS#1 v1.5 signature algorithm OID.
fn rsa_digest_info(alg_oid: &str, data: &[u8]) -> Option<(&'static [u8], Vec<u8>)> {
    const SHA256: &[u8] = &[
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    const SHA384: &[u8] = &[
        0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
        0x05, 0x00, 0x04, 0x30,
    ];
    const SHA512: &[u8] = &[
        0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
        0x05, 0x00, 0x04, 0x40,
    ];
    match alg_oid {
        "1.2.840.113549.1.1.11" => Some((SHA256, Sha256::digest(data).to_vec())),
        "1.2.840.113549.1.1.12" => Some((SHA384, Sha384::digest(data).to_vec())),
        "1.2.840.113549.1.1.13" => Some((SHA512, Sha512::digest(data).to_vec())),
        _ => None,
    }
}

/// RSASSA-PKCS1-v1_5 verification (RFC 8017 section 8.2.2) with public values only, so
/// plain big-integer arithmetic is fine. `None` when the key is outside what this verifier
/// accepts (2048 to 8192 bits, an odd exponent from 3 to 2^32).
fn rsa_pkcs1_verify(
    modulus: &[u8],
    exponent: &[u8],
    prefix: &[u8],
    digest: &[u8],
    signature: &[u8],
) -> Option<bool> {
    use x509_parser::num_bigint::BigUint;
    let n = BigUint::from_bytes_be(modulus);
    let e = BigUint::from_bytes_be(exponent);
    let bits = n.bits();
    if !(2048..=8192).contains(&bits) || e.bits() > 33 || e < BigUint::from(3u8) || !e.bit(0) {
        return None;
    }
    let k = bits.div_ceil(8) as usize;
    if signature.len() != k {
        return Some(false);
    }
    let s = BigUint::from_bytes_be(signature);
    if s >= n {
        return Some(false);
    }
    let m = s.modpow(&e, &n).to_bytes_be();
    let mut em = vec![0u8; k - m.len().min(k)];
    em.extend_from_slice(&m);
    let t_len = prefix.len() + digest.len();
    if k < t_len + 11 {
        return Some(false);
    }
    let mut expected = vec![0x00, 0x01];
    expected.resize(k - t_len - 1, 0xff);
    expected.push(0x00);
    expected.extend_from_slice(prefix);
    expected.extend_from_slice(digest);
    Some(em == expected)
}

/// Checks that `issuer` signed `child`.
pub(crate) fn check_signature(
    child: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Result<(), SigstoreError> {
    let alg = child.signature_algorithm.algorithm.to_id_string();
    if alg != child.tbs_certificate.signature.algorithm.to_id_string() {
        return Err(bad_cert(format!(
            "certificate `{}` names two different signature algorithms",
            subject(child)
        )));
    }
    let unsupported = || SigstoreError::UnsupportedAlgorithm {
        what: format!("signature of certificate `{}`", subject(child)),
        algorithm: alg.clone(),
    };
    let tbs = child.tbs_certificate.as_ref();
    let signature = &child.signature_value.data;
    let verified = if let Some(digest) = digest_for(&alg, tbs) {
        public_key(issuer)?.verify_prehash(&digest, signature)
    } else if let Some((prefix, digest)) = rsa_digest_info(&alg, tbs) {
        let parsed = issuer.tbs_certificate.subject_pki.parsed();
        let Ok(x509_parser::public_key::PublicKey::RSA(key)) = parsed else {
            return Err(SigstoreError::UnsupportedAlgorithm {
                what: format!("key of certificate `{}`", subject(issuer)),
                algorithm: "a key that does not match its RSA signature".into(),
            });
        };
        rsa_pkcs1_verify(key.modulus, key.exponent, prefix, &digest, signature)
            .ok_or_else(unsupported)?
    } else {
        return Err(unsupported());
    };
    if verified {
        Ok(())
    } else {
        Err(SigstoreError::CertificateSignature {
            subject: subject(child),
            issuer: subject(issuer),
        })
    }
}

/// Whether a certificate names itself as its issuer.
pub(crate) fn is_self_issued(cert: &X509Certificate<'_>) -> bool {
    cert.tbs_certificate.subject.as_raw() == cert.tbs_certificate.issuer.as_raw()
}

/// Checks the extensions of one certificate in a path: `cas_below` is how many CA
/// certificates sit between it and the leaf (`None` for the leaf itself).
fn check_extensions(
    cert: &X509Certificate<'_>,
    cas_below: Option<u32>,
    purpose: Purpose,
) -> Result<(), SigstoreError> {
    let name = subject(cert);
    let rule = |rule: &str| SigstoreError::CertificateConstraint {
        subject: name.clone(),
        rule: rule.to_owned(),
    };
    if cert.tbs_certificate.version.0 != 2 {
        return Err(rule("must be an X.509 v3 certificate"));
    }
    cert.tbs_certificate
        .extensions_map()
        .map_err(|e| bad_cert(format!("`{name}` has duplicate extensions: {e}")))?;
    for ext in cert.tbs_certificate.extensions() {
        let oid = ext.oid.to_id_string();
        if let ParsedExtension::ParseError { error } = ext.parsed_extension() {
            return Err(bad_cert(format!(
                "`{name}` extension {oid} is malformed: {error}"
            )));
        }
        if oid == "2.5.29.30" {
            return Err(SigstoreError::CriticalExtension {
                subject: name.clone(),
                oid: "2.5.29.30 (nameConstraints, not evaluated by this verifier)".into(),
            });
        }
        if ext.critical && !KNOWN_CRITICAL.contains(&oid.as_str()) {
            return Err(SigstoreError::CriticalExtension {
                subject: name.clone(),
                oid,
            });
        }
    }
    let basic = cert
        .tbs_certificate
        .basic_constraints()
        .map_err(|e| bad_cert(format!("`{name}` basicConstraints: {e}")))?;
    let usage = cert
        .tbs_certificate
        .key_usage()
        .map_err(|e| bad_cert(format!("`{name}` keyUsage: {e}")))?
        .ok_or_else(|| rule("has no keyUsage extension"))?;
    match cas_below {
        None => {
            if basic.is_some_and(|b| b.value.ca) {
                return Err(rule(
                    "leaf certificate must not be a CA (basicConstraints CA=true)",
                ));
            }
            if !usage.value.digital_signature() {
                return Err(rule("leaf keyUsage lacks digitalSignature"));
            }
            let eku = cert
                .tbs_certificate
                .extended_key_usage()
                .map_err(|e| bad_cert(format!("`{name}` extKeyUsage: {e}")))?
                .ok_or_else(|| rule("leaf has no extKeyUsage extension"))?;
            match purpose {
                Purpose::CodeSigning if !eku.value.code_signing => {
                    return Err(rule("leaf extKeyUsage lacks codeSigning"));
                }
                Purpose::TimeStamping if !eku.value.time_stamping => {
                    return Err(rule("timestamp authority extKeyUsage lacks timeStamping"));
                }
                _ => {}
            }
        }
        Some(below) => {
            let basic = basic.ok_or_else(|| rule("CA certificate has no basicConstraints"))?;
            if !basic.value.ca {
                return Err(rule(
                    "issuing certificate is not a CA (basicConstraints CA=false)",
                ));
            }
            if basic.value.path_len_constraint.is_some_and(|n| below > n) {
                return Err(rule("basicConstraints pathLenConstraint exceeded"));
            }
            if !usage.value.key_cert_sign() {
                return Err(rule("CA keyUsage lacks keyCertSign"));
            }
        }
    }
    Ok(())
}

/// Checks the rules a leaf certificate must meet for `purpose` on its own (extKeyUsage,
/// keyUsage digitalSignature, not a CA, no unknown critical extension), for a leaf that a
/// trusted root lists as its own anchor.
pub(crate) fn check_leaf(leaf_der: &[u8], purpose: Purpose) -> Result<(), SigstoreError> {
    check_extensions(&parse(leaf_der)?, None, purpose)
}

/// A validated path: the leaf first, then the authority's chain.
#[derive(Debug)]
pub(crate) struct Path<'r> {
    pub authority: &'r Authority,
    /// DER of the certificate that issued the leaf.
    pub issuer: &'r [u8],
}

/// Finds the authority in `authorities` whose chain issues `leaf` under every rule of this
/// module. `extra` are intermediates the bundle carries: each must be part of the chosen
/// authority's chain (the trusted root decides, never the bundle).
pub(crate) fn verify_path<'r>(
    leaf_der: &[u8],
    extra: &[Vec<u8>],
    authorities: &'r [Authority],
    purpose: Purpose,
) -> Result<Path<'r>, SigstoreError> {
    let leaf = parse(leaf_der)?;
    check_extensions(&leaf, None, purpose)?;
    let mut last_error = None;
    'authority: for authority in authorities {
        if extra.iter().any(|e| !authority.chain.contains(e)) {
            continue;
        }
        let Some(first) = authority.chain.first() else {
            continue;
        };
        let first_cert = parse(first)?;
        if first_cert.tbs_certificate.subject.as_raw() != leaf.tbs_certificate.issuer.as_raw() {
            continue;
        }
        let mut child = leaf.clone();
        for (depth, der) in authority.chain.iter().enumerate() {
            let ca = parse(der)?;
            if ca.tbs_certificate.subject.as_raw() != child.tbs_certificate.issuer.as_raw() {
                last_error = Some(SigstoreError::CertificateUntrusted {
                    subject: subject(&leaf),
                    detail: format!(
                        "the chain of authority `{}` does not link by name",
                        authority.name
                    ),
                });
                continue 'authority;
            }
            let checked = if depth == 0 {
                check_signature(&child, &ca)
            } else {
                // A link between two certificates of the trusted root: the same answer for
                // every bundle, so it is computed once per process.
                authority_link(&authority.chain[depth - 1], der, || {
                    check_signature(&child, &ca)
                })
            };
            if let Err(e) = checked {
                // The leaf naming a trusted issuer but not signed by it is a leaf from
                // another instance (or a forgery): untrusted, not a broken root.
                last_error = Some(
                    if depth == 0 && matches!(e, SigstoreError::CertificateSignature { .. }) {
                        SigstoreError::CertificateUntrusted {
                            subject: subject(&leaf),
                            detail: format!(
                                "its signature does not verify under the key of authority `{}`",
                                authority.name
                            ),
                        }
                    } else {
                        e
                    },
                );
                continue 'authority;
            }
            check_extensions(&ca, Some(depth as u32), purpose)?;
            child = ca;
        }
        return Ok(Path {
            authority,
            issuer: first,
        });
    }
    Err(
        last_error.unwrap_or_else(|| SigstoreError::CertificateUntrusted {
            subject: subject(&leaf),
            detail: format!(
                "issuer `{}` is not a certificate authority of the trusted root",
                leaf.tbs_certificate.issuer
            ),
        }),
    )
}

/// The most authority links [`authority_link`] remembers: far more than the certificate
/// authorities of the eight trusted roots a registry may hold.
const MAX_REMEMBERED_LINKS: usize = 1024;

/// Whether `child` (a certificate of a trusted root's chain) is signed by `parent`, the next
/// one: `check` the first time, remembered after. A pure function of the two certificates'
/// bytes, so remembering it changes no answer; it saves a P-384 verification per bundle.
fn authority_link(
    child: &[u8],
    parent: &[u8],
    check: impl FnOnce() -> Result<(), SigstoreError>,
) -> Result<(), SigstoreError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Links = Mutex<HashMap<[u8; 32], Result<(), SigstoreError>>>;
    static LINKS: OnceLock<Links> = OnceLock::new();
    let mut key = sha2::Sha256::new();
    sha2::Digest::update(&mut key, (child.len() as u64).to_be_bytes());
    sha2::Digest::update(&mut key, child);
    sha2::Digest::update(&mut key, parent);
    let key: [u8; 32] = sha2::Digest::finalize(key).into();
    let links = LINKS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(known) = links.lock().ok().and_then(|l| l.get(&key).cloned()) {
        return known;
    }
    let answer = check();
    if let Ok(mut links) = links.lock() {
        if links.len() >= MAX_REMEMBERED_LINKS {
            links.clear();
        }
        links.insert(key, answer.clone());
    }
    answer
}

/// Checks that every certificate of `path` (leaf first) and its authority's `validFor`
/// contain `time` (nanoseconds).
pub(crate) fn check_valid_at(
    leaf_der: &[u8],
    path: &Path<'_>,
    time: i64,
) -> Result<(), SigstoreError> {
    let secs = time.div_euclid(1_000_000_000);
    let leaf = parse(leaf_der)?;
    let mut certs = vec![leaf];
    for der in &path.authority.chain {
        certs.push(parse(der)?);
    }
    if !path.authority.valid.contains(time) {
        return Err(SigstoreError::AuthorityValidity {
            authority: path.authority.name.clone(),
            time: crate::registry::time_text(time),
        });
    }
    for cert in &certs {
        let v = &cert.tbs_certificate.validity;
        if secs < v.not_before.timestamp() || secs > v.not_after.timestamp() {
            return Err(SigstoreError::CertificateExpired {
                subject: subject(cert),
                time: crate::registry::time_text(time),
                not_before: seconds_text(v.not_before.timestamp()),
                not_after: seconds_text(v.not_after.timestamp()),
            });
        }
    }
    Ok(())
}

/// RFC 3339 of a certificate time in seconds; certificates may say 9999-12-31, past what
/// nanoseconds in an i64 reach.
fn seconds_text(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || format!("{secs} seconds since the epoch"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// Names of the Fulcio extensions (`1.3.6.1.4.1.57264.1.N`) by `N`, and whether the value
/// is DER (UTF8String) rather than raw bytes (the legacy `.1`–`.6`).
pub(crate) const FULCIO_EXTENSIONS: [(u32, &str); 20] = [
    (2, "github_workflow_trigger"),
    (3, "github_workflow_sha"),
    (4, "github_workflow_name"),
    (5, "github_workflow_repository"),
    (6, "github_workflow_ref"),
    (9, "build_signer_uri"),
    (10, "build_signer_digest"),
    (11, "runner_environment"),
    (12, "source_repository_uri"),
    (13, "source_repository_digest"),
    (14, "source_repository_ref"),
    (15, "source_repository_identifier"),
    (16, "source_repository_owner_uri"),
    (17, "source_repository_owner_identifier"),
    (18, "build_config_uri"),
    (19, "build_config_digest"),
    (20, "build_trigger"),
    (21, "run_invocation_uri"),
    (22, "source_repository_visibility_at_signing"),
    (23, "deployment_environment"),
];

fn utf8(name: &str, bytes: &[u8]) -> Result<String, SigstoreError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| bad_cert(format!("Fulcio extension {name} is not UTF-8")))
}

/// The identity a Fulcio leaf certificate states.
pub(crate) fn identity(leaf_der: &[u8]) -> Result<CertIdentity, SigstoreError> {
    let leaf = parse(leaf_der)?;
    let mut issuer_v2 = None;
    let mut issuer_v1 = None;
    let mut extensions = BTreeMap::new();
    for ext in leaf.tbs_certificate.extensions() {
        let oid = ext.oid.to_id_string();
        let Some(n) = oid
            .strip_prefix(OID_FULCIO_PREFIX)
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if n == 1 {
            issuer_v1 = Some(utf8("issuer (.1)", ext.value)?);
        } else if n == 8 {
            let s = der::single(ext.value, tag::UTF8_STRING)
                .map_err(|e| bad_cert(format!("Fulcio issuer (.8) is not a UTF8String: {e}")))?;
            issuer_v2 = Some(utf8("issuer (.8)", s.body)?);
        } else if let Some((_, name)) = FULCIO_EXTENSIONS.iter().find(|(k, _)| *k == n) {
            let value = if n <= 6 {
                utf8(name, ext.value)?
            } else {
                let s = der::single(ext.value, tag::UTF8_STRING).map_err(|e| {
                    bad_cert(format!("Fulcio extension {name} is not a UTF8String: {e}"))
                })?;
                utf8(name, s.body)?
            };
            extensions.insert((*name).to_owned(), value);
        }
    }
    let issuer = issuer_v2.or(issuer_v1).ok_or_else(|| {
        bad_cert("Fulcio certificate has no OIDC issuer extension (1.3.6.1.4.1.57264.1.8)")
    })?;
    let san = leaf
        .tbs_certificate
        .subject_alternative_name()
        .map_err(|e| bad_cert(format!("subjectAltName: {e}")))?
        .ok_or_else(|| bad_cert("Fulcio certificate has no subjectAltName"))?;
    let names = &san.value.general_names;
    let subject = names
        .iter()
        .find_map(|n| match n {
            GeneralName::URI(u) => Some((*u).to_owned()),
            _ => None,
        })
        .or_else(|| {
            names.iter().find_map(|n| match n {
                GeneralName::RFC822Name(e) => Some((*e).to_owned()),
                _ => None,
            })
        })
        .or_else(|| {
            names.iter().find_map(|n| match n {
                GeneralName::OtherName(_, value) => other_name_text(value),
                _ => None,
            })
        })
        .ok_or_else(|| bad_cert("subjectAltName has no URI, email or otherName"))?;
    Ok(CertIdentity {
        issuer,
        subject,
        extensions,
    })
}

/// The UTF8String inside an otherName value (`[0] EXPLICIT UTF8String`, or bare).
fn other_name_text(value: &[u8]) -> Option<String> {
    let mut bytes = value;
    if let Ok(t) = der::single(bytes, tag::CONTEXT_0) {
        bytes = t.body;
    }
    let s = der::single(bytes, tag::UTF8_STRING).ok()?;
    String::from_utf8(s.body.to_vec()).ok()
}

/// The leaf's TBSCertificate without the SCT list extension: what a CT log signed as the
/// precertificate (RFC 6962 section 3.2).
pub(crate) fn tbs_without_sct(tbs: &[u8]) -> Result<Vec<u8>, SigstoreError> {
    let bad = |e: der::DerError| bad_cert(format!("TBSCertificate: {e}"));
    let seq = der::single(tbs, tag::SEQUENCE).map_err(bad)?;
    let mut fields = seq.reader();
    let mut body = Vec::with_capacity(tbs.len());
    let sct_oid = der::oid(OID_SCT);
    let mut removed = false;
    while !fields.is_empty() {
        let field = fields.next_tlv().map_err(bad)?;
        if field.tag != tag::CONTEXT_3 {
            body.extend_from_slice(field.raw);
            continue;
        }
        let exts = der::single(field.body, tag::SEQUENCE).map_err(bad)?;
        let mut reader = exts.reader();
        let mut kept = Vec::new();
        while !reader.is_empty() {
            let ext = reader.expect(tag::SEQUENCE).map_err(bad)?;
            let oid = ext.reader().expect(tag::OID).map_err(bad)?;
            if oid.body == sct_oid.as_slice() {
                removed = true;
            } else {
                kept.extend_from_slice(ext.raw);
            }
        }
        body.extend_from_slice(&der::encode(
            tag::CONTEXT_3,
            &der::encode(tag::SEQUENCE, &kept),
        ));
    }
    if !removed {
        return Err(SigstoreError::Sct {
            detail: "the certificate carries no embedded SCT".into(),
        });
    }
    Ok(der::encode(tag::SEQUENCE, &body))
}

/// One SCT of the list, with the bytes it signs.
struct Sct<'a> {
    log_id: &'a [u8],
    timestamp: u64,
    extensions: &'a [u8],
    hash_alg: u8,
    sig_alg: u8,
    signature: &'a [u8],
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if data.len() < n {
        return None;
    }
    let (head, tail) = data.split_at(n);
    *data = tail;
    Some(head)
}

fn take_u16_vec<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = take(data, 2)?;
    let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
    take(data, n)
}

fn parse_sct(mut data: &[u8]) -> Option<Sct<'_>> {
    let version = take(&mut data, 1)?[0];
    if version != 0 {
        return None;
    }
    let log_id = take(&mut data, 32)?;
    let ts = take(&mut data, 8)?;
    let timestamp = u64::from_be_bytes(ts.try_into().ok()?);
    let extensions = take_u16_vec(&mut data)?;
    let algs = take(&mut data, 2)?;
    let signature = take_u16_vec(&mut data)?;
    if !data.is_empty() {
        return None;
    }
    Some(Sct {
        log_id,
        timestamp,
        extensions,
        hash_alg: algs[0],
        sig_alg: algs[1],
        signature,
    })
}

/// Verifies the leaf's embedded SCTs: at least one must be signed by a CT log of the
/// trusted root, over the precertificate the issuer `issuer_der` issued.
pub(crate) fn verify_scts(
    leaf_der: &[u8],
    issuer_der: &[u8],
    ctlogs: &[Log],
) -> Result<(), SigstoreError> {
    let leaf = parse(leaf_der)?;
    let issuer = parse(issuer_der)?;
    let sct_err = |detail: String| SigstoreError::Sct { detail };
    let ext = leaf
        .tbs_certificate
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == OID_SCT)
        .ok_or_else(|| sct_err("the certificate carries no embedded SCT".into()))?;
    let list = der::single(ext.value, tag::OCTET_STRING)
        .map_err(|e| sct_err(format!("SCT list is not an OCTET STRING: {e}")))?;
    let mut data = list.body;
    let mut items = take_u16_vec(&mut data)
        .filter(|_| data.is_empty())
        .ok_or_else(|| sct_err("SCT list is malformed".into()))?;
    let tbs = tbs_without_sct(leaf.tbs_certificate.as_ref())?;
    let tbs_len = u32::try_from(tbs.len())
        .ok()
        .filter(|n| *n < 1 << 24)
        .ok_or_else(|| sct_err("certificate too large for an SCT".into()))?;
    let issuer_key_hash = Sha256::digest(issuer.tbs_certificate.subject_pki.raw);
    let mut seen = 0;
    while !items.is_empty() {
        let raw =
            take_u16_vec(&mut items).ok_or_else(|| sct_err("SCT list is malformed".into()))?;
        seen += 1;
        if seen > 16 {
            return Err(sct_err("more than 16 SCTs".into()));
        }
        let Some(sct) = parse_sct(raw) else {
            continue;
        };
        if sct.hash_alg != 4 || sct.sig_alg != 3 {
            continue;
        }
        let Some(log) = ctlogs.iter().find(|l| l.log_id == sct.log_id) else {
            continue;
        };
        let LogKey::Ecdsa(key) = &log.key else {
            continue;
        };
        let Ok(ms) = i64::try_from(sct.timestamp) else {
            continue;
        };
        if !log.valid.contains(ms.saturating_mul(1_000_000)) {
            continue;
        }
        let mut signed = Vec::with_capacity(tbs.len() + 64);
        signed.push(0); // version v1
        signed.push(0); // certificate_timestamp
        signed.extend_from_slice(&sct.timestamp.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes()); // precert_entry
        signed.extend_from_slice(&issuer_key_hash);
        signed.extend_from_slice(&tbs_len.to_be_bytes()[1..]);
        signed.extend_from_slice(&tbs);
        signed.extend_from_slice(&(sct.extensions.len() as u16).to_be_bytes());
        signed.extend_from_slice(sct.extensions);
        if key.verify_prehash(&Sha256::digest(&signed), sct.signature) {
            return Ok(());
        }
    }
    Err(sct_err(format!(
        "none of the certificate's {seen} SCT(s) verifies under a CT log key of the trusted root"
    )))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sigstore::trust::Validity;
    use p256::ecdsa::signature::Signer as _;

    const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
    pub(crate) const NOW: i64 = 1_700_000_000;

    pub(crate) fn signing_key(seed: u8) -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_slice(&[seed; 32]).expect("a valid scalar")
    }

    pub(crate) fn spki(key: &p256::ecdsa::SigningKey) -> Vec<u8> {
        let point = key.verifying_key().to_encoded_point(false);
        let alg = [
            der::encode(tag::OID, &der::oid("1.2.840.10045.2.1")),
            der::encode(tag::OID, &der::oid("1.2.840.10045.3.1.7")),
        ]
        .concat();
        let mut bits = vec![0u8];
        bits.extend_from_slice(point.as_bytes());
        der::encode(
            tag::SEQUENCE,
            &[
                der::encode(tag::SEQUENCE, &alg),
                der::encode(tag::BIT_STRING, &bits),
            ]
            .concat(),
        )
    }

    fn name(cn: &str) -> Vec<u8> {
        let atv = [
            der::encode(tag::OID, &der::oid("2.5.4.3")),
            der::encode(tag::UTF8_STRING, cn.as_bytes()),
        ]
        .concat();
        der::encode(
            tag::SEQUENCE,
            &der::encode(tag::SET, &der::encode(tag::SEQUENCE, &atv)),
        )
    }

    fn utc_time(secs: i64) -> Vec<u8> {
        let t = chrono::DateTime::from_timestamp(secs, 0).expect("in range");
        der::encode(0x17, t.format("%y%m%d%H%M%SZ").to_string().as_bytes())
    }

    /// One extension: (OID, critical, DER value).
    pub(crate) type Ext = (&'static str, bool, Vec<u8>);

    pub(crate) fn ext_der((oid, critical, value): &Ext) -> Vec<u8> {
        let mut body = der::encode(tag::OID, &der::oid(oid));
        if *critical {
            body.extend_from_slice(&[0x01, 0x01, 0xff]);
        }
        body.extend_from_slice(&der::encode(tag::OCTET_STRING, value));
        der::encode(tag::SEQUENCE, &body)
    }

    pub(crate) fn ca_exts() -> Vec<Ext> {
        vec![
            ("2.5.29.19", true, vec![0x30, 0x03, 0x01, 0x01, 0xff]),
            ("2.5.29.15", true, vec![0x03, 0x02, 0x02, 0x04]),
        ]
    }

    pub(crate) fn leaf_exts() -> Vec<Ext> {
        vec![
            ("2.5.29.15", true, vec![0x03, 0x02, 0x07, 0x80]),
            (
                "2.5.29.37",
                false,
                der::encode(
                    tag::SEQUENCE,
                    &der::encode(tag::OID, &der::oid("1.3.6.1.5.5.7.3.3")),
                ),
            ),
            (
                "2.5.29.17",
                true,
                der::encode(tag::SEQUENCE, &der::encode(0x86, b"https://ci.example/wf")),
            ),
            (
                "1.3.6.1.4.1.57264.1.8",
                false,
                der::encode(tag::UTF8_STRING, b"https://issuer.example"),
            ),
            (
                "1.3.6.1.4.1.57264.1.12",
                false,
                der::encode(tag::UTF8_STRING, b"https://git.example/repo"),
            ),
        ]
    }

    /// The TBSCertificate for `exts`.
    pub(crate) fn tbs(
        issuer: &str,
        subject: &str,
        key: &p256::ecdsa::SigningKey,
        exts: &[Vec<u8>],
    ) -> Vec<u8> {
        let fields = [
            der::encode(tag::CONTEXT_0, &der::encode(tag::INTEGER, &[2])),
            der::encode(tag::INTEGER, &[subject.len() as u8]),
            der::encode(
                tag::SEQUENCE,
                &der::encode(tag::OID, &der::oid(ECDSA_SHA256)),
            ),
            name(issuer),
            der::encode(
                tag::SEQUENCE,
                &[utc_time(NOW - 600), utc_time(NOW + 600)].concat(),
            ),
            name(subject),
            spki(key),
            der::encode(tag::CONTEXT_3, &der::encode(tag::SEQUENCE, &exts.concat())),
        ];
        der::encode(tag::SEQUENCE, &fields.concat())
    }

    /// A certificate with `tbs`, signed by `signer`.
    pub(crate) fn sign_tbs(tbs: &[u8], signer: &p256::ecdsa::SigningKey) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = signer.sign(tbs);
        let mut bits = vec![0u8];
        bits.extend_from_slice(sig.to_der().as_bytes());
        der::encode(
            tag::SEQUENCE,
            &[
                tbs.to_vec(),
                der::encode(
                    tag::SEQUENCE,
                    &der::encode(tag::OID, &der::oid(ECDSA_SHA256)),
                ),
                der::encode(tag::BIT_STRING, &bits),
            ]
            .concat(),
        )
    }

    pub(crate) fn cert(
        issuer: &str,
        subject: &str,
        key: &p256::ecdsa::SigningKey,
        signer: &p256::ecdsa::SigningKey,
        exts: &[Ext],
    ) -> Vec<u8> {
        let exts: Vec<Vec<u8>> = exts.iter().map(ext_der).collect();
        sign_tbs(&tbs(issuer, subject, key, &exts), signer)
    }

    pub(crate) fn authority(root: Vec<u8>) -> Authority {
        Authority {
            name: "test-ca".into(),
            chain: vec![root],
            valid: Validity {
                start: 0,
                end: None,
            },
        }
    }

    fn setup(root_exts: &[Ext], leaf: &[Ext]) -> (Vec<u8>, Vec<Authority>) {
        let (root_key, leaf_key) = (signing_key(1), signing_key(2));
        let root = cert("root", "root", &root_key, &root_key, root_exts);
        let leaf = cert("root", "leaf", &leaf_key, &root_key, leaf);
        (leaf, vec![authority(root)])
    }

    fn reason(leaf: &[u8], cas: &[Authority]) -> &'static str {
        match verify_path(leaf, &[], cas, Purpose::CodeSigning) {
            Ok(_) => "ok",
            Err(e) => e.reason(),
        }
    }

    #[test]
    fn rsa_keys_outside_the_accepted_range_are_refused_and_bad_signatures_fail() {
        let digest = Sha256::digest(b"tbs");
        let (prefix, _) = rsa_digest_info("1.2.840.113549.1.1.11", b"tbs").expect("known");
        let small = [0xffu8; 128];
        assert_eq!(
            rsa_pkcs1_verify(&small, &[1, 0, 1], prefix, &digest, &[0; 128]),
            None
        );
        let mut n = vec![0xffu8; 256];
        n[255] = 0xfd;
        assert_eq!(rsa_pkcs1_verify(&n, &[2], prefix, &digest, &[0; 256]), None);
        assert_eq!(
            rsa_pkcs1_verify(&n, &[1, 0, 1], prefix, &digest, &[1; 255]),
            Some(false)
        );
        assert_eq!(
            rsa_pkcs1_verify(&n, &[1, 0, 1], prefix, &digest, &[1; 256]),
            Some(false)
        );
        assert_eq!(
            rsa_pkcs1_verify(&n, &[1, 0, 1], prefix, &digest, &n),
            Some(false)
        );
    }

    #[test]
    fn a_well_formed_chain_verifies_and_names_its_signer() {
        let (leaf, cas) = setup(&ca_exts(), &leaf_exts());
        let path = verify_path(&leaf, &[], &cas, Purpose::CodeSigning).expect("verifies");
        check_valid_at(&leaf, &path, NOW * 1_000_000_000).expect("valid now");
        let id = identity(&leaf).expect("an identity");
        assert_eq!(id.subject, "https://ci.example/wf");
        assert_eq!(id.issuer, "https://issuer.example");
        assert_eq!(
            id.extensions
                .get("source_repository_uri")
                .map(String::as_str),
            Some("https://git.example/repo")
        );
    }

    #[test]
    fn an_issuer_that_is_not_a_ca_is_refused() {
        let mut root = ca_exts();
        root[0].2 = vec![0x30, 0x00];
        let (leaf, cas) = setup(&root, &leaf_exts());
        assert_eq!(reason(&leaf, &cas), "certificate_constraint");
    }

    #[test]
    fn a_ca_without_key_cert_sign_is_refused() {
        let mut root = ca_exts();
        root[1].2 = vec![0x03, 0x02, 0x07, 0x80];
        let (leaf, cas) = setup(&root, &leaf_exts());
        assert_eq!(reason(&leaf, &cas), "certificate_constraint");
    }

    #[test]
    fn a_leaf_that_is_a_ca_is_refused() {
        let mut leaf = leaf_exts();
        leaf.push(("2.5.29.19", true, vec![0x30, 0x03, 0x01, 0x01, 0xff]));
        let (leaf, cas) = setup(&ca_exts(), &leaf);
        assert_eq!(reason(&leaf, &cas), "certificate_constraint");
    }

    #[test]
    fn a_leaf_without_code_signing_or_digital_signature_is_refused() {
        let mut no_eku = leaf_exts();
        no_eku[1].2 = der::encode(
            tag::SEQUENCE,
            &der::encode(tag::OID, &der::oid("1.3.6.1.5.5.7.3.1")),
        );
        let (leaf, cas) = setup(&ca_exts(), &no_eku);
        assert_eq!(reason(&leaf, &cas), "certificate_constraint");
        let mut no_ds = leaf_exts();
        no_ds[0].2 = vec![0x03, 0x02, 0x02, 0x04];
        let (leaf, cas) = setup(&ca_exts(), &no_ds);
        assert_eq!(reason(&leaf, &cas), "certificate_constraint");
    }

    #[test]
    fn unknown_critical_extensions_and_name_constraints_are_refused() {
        let mut leaf = leaf_exts();
        leaf.push(("1.2.3.4.5", true, vec![0x05, 0x00]));
        let (leaf, cas) = setup(&ca_exts(), &leaf);
        assert_eq!(reason(&leaf, &cas), "certificate_critical_extension");
        let mut root = ca_exts();
        root.push(("2.5.29.30", false, vec![0x30, 0x00]));
        let (leaf, cas) = setup(&root, &leaf_exts());
        assert_eq!(reason(&leaf, &cas), "certificate_critical_extension");
    }

    #[test]
    fn a_leaf_signed_by_another_key_or_issuer_is_untrusted() {
        let (root_key, leaf_key, other) = (signing_key(1), signing_key(2), signing_key(3));
        let root = cert("root", "root", &root_key, &root_key, &ca_exts());
        let cas = vec![authority(root)];
        let forged = cert("root", "leaf", &leaf_key, &other, &leaf_exts());
        assert_eq!(reason(&forged, &cas), "certificate_untrusted");
        let elsewhere = cert("other", "leaf", &leaf_key, &root_key, &leaf_exts());
        assert_eq!(reason(&elsewhere, &cas), "certificate_untrusted");
    }

    #[test]
    fn times_outside_the_certificate_or_authority_are_refused() {
        let (leaf, mut cas) = setup(&ca_exts(), &leaf_exts());
        let at = |t: i64, cas: &[Authority]| {
            let path = verify_path(&leaf, &[], cas, Purpose::CodeSigning).expect("verifies");
            check_valid_at(&leaf, &path, t * 1_000_000_000).map_err(|e| e.reason())
        };
        assert_eq!(at(NOW + 601, &cas), Err("certificate_expired"));
        assert_eq!(at(NOW - 601, &cas), Err("certificate_expired"));
        assert_eq!(at(NOW + 600, &cas), Ok(()));
        cas[0].valid.end = Some((NOW - 1) * 1_000_000_000);
        assert_eq!(at(NOW, &cas), Err("certificate_authority_validity"));
    }

    #[test]
    fn the_precertificate_is_the_tbs_without_its_sct_extension() {
        let key = signing_key(2);
        let exts: Vec<Vec<u8>> = leaf_exts().iter().map(ext_der).collect();
        let pre = tbs("root", "leaf", &key, &exts);
        let mut with = exts.clone();
        with.insert(
            1,
            ext_der(&(OID_SCT, false, der::encode(tag::OCTET_STRING, &[0, 0]))),
        );
        let full = tbs("root", "leaf", &key, &with);
        assert_eq!(tbs_without_sct(&full).expect("has an SCT"), pre);
        assert_eq!(
            tbs_without_sct(&pre).map_err(|e| e.reason()),
            Err("sct_invalid")
        );
    }

    #[test]
    fn an_embedded_sct_verifies_under_its_log_and_nothing_else() {
        let (root_key, leaf_key, log_key) = (signing_key(1), signing_key(2), signing_key(4));
        let root = cert("root", "root", &root_key, &root_key, &ca_exts());
        let exts: Vec<Vec<u8>> = leaf_exts().iter().map(ext_der).collect();
        let pre = tbs("root", "leaf", &leaf_key, &exts);
        let log_spki = spki(&log_key);
        let log_id: [u8; 32] = Sha256::digest(&log_spki).into();
        let timestamp: u64 = NOW as u64 * 1000;
        let issuer_key_hash = Sha256::digest(spki(&root_key));
        let mut signed = vec![0, 0];
        signed.extend_from_slice(&timestamp.to_be_bytes());
        signed.extend_from_slice(&[0, 1]);
        signed.extend_from_slice(&issuer_key_hash);
        signed.extend_from_slice(&(pre.len() as u32).to_be_bytes()[1..]);
        signed.extend_from_slice(&pre);
        signed.extend_from_slice(&[0, 0]);
        let sig: p256::ecdsa::Signature = log_key.sign(&signed);
        let sig = sig.to_der();
        let mut sct = vec![0];
        sct.extend_from_slice(&log_id);
        sct.extend_from_slice(&timestamp.to_be_bytes());
        sct.extend_from_slice(&[0, 0, 4, 3]);
        sct.extend_from_slice(&(sig.as_bytes().len() as u16).to_be_bytes());
        sct.extend_from_slice(sig.as_bytes());
        let mut list = ((sct.len() + 2) as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&(sct.len() as u16).to_be_bytes());
        list.extend_from_slice(&sct);
        let mut with = exts.clone();
        with.push(ext_der(&(
            OID_SCT,
            false,
            der::encode(tag::OCTET_STRING, &list),
        )));
        let leaf = sign_tbs(&tbs("root", "leaf", &leaf_key, &with), &root_key);
        let log = Log {
            base_url: "https://ct.example".into(),
            key: LogKey::Ecdsa(EcKey::from_spki_der(&log_spki).expect("a key")),
            log_id: log_id.to_vec(),
            valid: Validity {
                start: 0,
                end: None,
            },
        };
        verify_scts(&leaf, &root, std::slice::from_ref(&log)).expect("the SCT verifies");
        let other = Log {
            key: LogKey::Ecdsa(EcKey::from_spki_der(&spki(&root_key)).expect("a key")),
            ..log.clone()
        };
        assert_eq!(
            verify_scts(&leaf, &root, &[other]).map_err(|e| e.reason()),
            Err("sct_invalid")
        );
        // The SCT is over the precertificate issued by this issuer, not another.
        let wrong_issuer = cert("root", "root", &leaf_key, &leaf_key, &ca_exts());
        assert_eq!(
            verify_scts(&leaf, &wrong_issuer, &[log]).map_err(|e| e.reason()),
            Err("sct_invalid")
        );
    }
}

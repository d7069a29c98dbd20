//! RFC 3161 timestamps (a `TimeStampResp` or a bare `TimeStampToken`): the CMS SignedData
//! must be signed by a timestamp authority of the trusted root, over a TSTInfo whose
//! messageImprint is the hash of the bundle's signature; the authority's chain must be
//! valid at the token's genTime.
//!
//! Certificates embedded in the token are ignored: the signer is always a trusted root
//! authority's leaf, so an embedded certificate can never make a token trusted.

use sha2::{Digest as _, Sha256, Sha384, Sha512};

use super::der::{self, Reader, Tlv, tag};
use super::trust::Authority;
use super::{SigstoreError, TimeSource, VerifiedTime, x509};

const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";

fn hash_by_digest_oid(oid: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    if oid == der::oid("2.16.840.1.101.3.4.2.1") {
        Some(Sha256::digest(data).to_vec())
    } else if oid == der::oid("2.16.840.1.101.3.4.2.2") {
        Some(Sha384::digest(data).to_vec())
    } else if oid == der::oid("2.16.840.1.101.3.4.2.3") {
        Some(Sha512::digest(data).to_vec())
    } else {
        None
    }
}

/// The parts of a token verification needs.
struct Token<'a> {
    e_content: &'a [u8],
    digest_oid: &'a [u8],
    signed_attrs: Tlv<'a>,
    signature_oid: &'a [u8],
    signature: &'a [u8],
}

fn parse_token(bytes: &[u8]) -> Result<Token<'_>, der::DerError> {
    let err = |s: &str| der::DerError(s.to_owned());
    let outer = der::single(bytes, tag::SEQUENCE)?;
    let mut r = outer.reader();
    // A TimeStampResp starts with PKIStatusInfo (a SEQUENCE); a ContentInfo with an OID.
    let content_info: Tlv<'_> = if r.peek_tag() == Some(tag::SEQUENCE) {
        let status = r.expect(tag::SEQUENCE)?;
        let code = status.reader().expect(tag::INTEGER)?;
        if code.body != [0] && code.body != [1] {
            return Err(err("the timestamp response status is not granted"));
        }
        let ci = r.expect(tag::SEQUENCE)?;
        r.finish()?;
        ci
    } else {
        outer
    };
    let mut ci = content_info.reader();
    if ci.expect(tag::OID)?.body != der::oid(OID_SIGNED_DATA) {
        return Err(err("the token is not CMS SignedData"));
    }
    let explicit = ci.expect(tag::CONTEXT_0)?;
    ci.finish()?;
    let signed_data = der::single(explicit.body, tag::SEQUENCE)?;
    let mut sd = signed_data.reader();
    sd.expect(tag::INTEGER)?;
    sd.expect(tag::SET)?;
    let encap = sd.expect(tag::SEQUENCE)?;
    let mut e = encap.reader();
    if e.expect(tag::OID)?.body != der::oid(OID_TST_INFO) {
        return Err(err("the signed content is not a TSTInfo"));
    }
    let e_explicit = e.expect(tag::CONTEXT_0)?;
    e.finish()?;
    let e_content = der::single(e_explicit.body, tag::OCTET_STRING)?.body;
    sd.optional(tag::CONTEXT_0)?; // certificates, ignored
    sd.optional(tag::CONTEXT_1)?; // crls, ignored
    let infos = sd.expect(tag::SET)?;
    sd.finish()?;
    let mut infos_r = infos.reader();
    let info = infos_r.expect(tag::SEQUENCE)?;
    if !infos_r.is_empty() {
        return Err(err("the token has more than one SignerInfo"));
    }
    let mut si = info.reader();
    si.expect(tag::INTEGER)?;
    let sid = si.next_tlv()?;
    if sid.tag != tag::SEQUENCE && sid.tag != tag::IMPLICIT_0 {
        return Err(err("the SignerInfo sid is malformed"));
    }
    let digest_alg = si.expect(tag::SEQUENCE)?;
    let digest_oid = digest_alg.reader().expect(tag::OID)?.body;
    let signed_attrs = si
        .optional(tag::CONTEXT_0)?
        .ok_or_else(|| err("the SignerInfo has no signed attributes"))?;
    let sig_alg = si.expect(tag::SEQUENCE)?;
    let signature_oid = sig_alg.reader().expect(tag::OID)?.body;
    let signature = si.expect(tag::OCTET_STRING)?.body;
    si.optional(tag::CONTEXT_1)?;
    si.finish()?;
    Ok(Token {
        e_content,
        digest_oid,
        signed_attrs,
        signature_oid,
        signature,
    })
}

/// (messageImprint hash OID, hashed message, genTime nanos) of a TSTInfo.
fn parse_tst_info(bytes: &[u8]) -> Result<(&[u8], &[u8], i64), der::DerError> {
    let info = der::single(bytes, tag::SEQUENCE)?;
    let mut r: Reader<'_> = info.reader();
    r.expect(tag::INTEGER)?;
    r.expect(tag::OID)?;
    let imprint = r.expect(tag::SEQUENCE)?;
    let mut i = imprint.reader();
    let alg = i.expect(tag::SEQUENCE)?;
    let alg_oid = alg.reader().expect(tag::OID)?.body;
    let hashed = i.expect(tag::OCTET_STRING)?.body;
    i.finish()?;
    r.expect(tag::INTEGER)?;
    let gen_time = der::generalized_time(r.expect(tag::GENERALIZED_TIME)?.body)?;
    Ok((alg_oid, hashed, gen_time))
}

/// The values of the signed attribute `oid`: exactly one attribute, one value.
fn attribute<'a>(attrs: &Tlv<'a>, oid: &str) -> Result<Option<Tlv<'a>>, der::DerError> {
    let want = der::oid(oid);
    let mut r = attrs.reader();
    let mut found = None;
    while !r.is_empty() {
        let attr = r.expect(tag::SEQUENCE)?;
        let mut a = attr.reader();
        if a.expect(tag::OID)?.body != want.as_slice() {
            continue;
        }
        if found.is_some() {
            return Err(der::DerError(format!("attribute {oid} appears twice")));
        }
        let values = a.expect(tag::SET)?;
        let mut v = values.reader();
        let value = v.next_tlv()?;
        v.finish()?;
        found = Some(value);
    }
    Ok(found)
}

/// Checks that the timestamp authority `tsa` could issue a token at `gen_time`: its leaf
/// (the first certificate) has the timestamping extKeyUsage and leaf keyUsage, chains
/// through the rest of the authority's certificates, and every certificate and the
/// authority's `validFor` contain `gen_time`. A trusted root may list the leaf alone: it is
/// then the anchor, but its own purpose and validity are checked all the same.
fn check_authority(tsa: &Authority, gen_time: i64) -> Result<(), SigstoreError> {
    let (leaf_der, chain) = tsa
        .chain
        .split_first()
        .ok_or_else(|| SigstoreError::TrustedRoot {
            detail: format!("timestamp authority `{}` has no certificate", tsa.name),
        })?;
    let rest = Authority {
        name: tsa.name.clone(),
        chain: chain.to_vec(),
        valid: tsa.valid,
    };
    let path = if rest.chain.is_empty() {
        x509::check_leaf(leaf_der, x509::Purpose::TimeStamping)?;
        x509::Path {
            authority: &rest,
            issuer: leaf_der,
        }
    } else {
        x509::verify_path(
            leaf_der,
            &[],
            std::slice::from_ref(&rest),
            x509::Purpose::TimeStamping,
        )?
    };
    x509::check_valid_at(leaf_der, &path, gen_time)
}

/// Verifies timestamp `index` over `signature` against the trusted `tsas`.
pub(crate) fn verify(
    index: usize,
    bytes: &[u8],
    signature: &[u8],
    tsas: &[Authority],
) -> Result<VerifiedTime, SigstoreError> {
    let malformed = |detail: String| SigstoreError::TimestampMalformed { index, detail };
    let untrusted = |detail: String| SigstoreError::TimestampUntrusted { index, detail };
    let token = parse_token(bytes).map_err(|e| malformed(e.0))?;
    let (imprint_oid, imprint, gen_time) =
        parse_tst_info(token.e_content).map_err(|e| malformed(format!("TSTInfo: {}", e.0)))?;

    // The signed attributes bind the TSTInfo.
    let content_type = attribute(&token.signed_attrs, OID_CONTENT_TYPE)
        .map_err(|e| malformed(e.0))?
        .ok_or_else(|| malformed("no contentType signed attribute".into()))?;
    if content_type.tag != tag::OID || content_type.body != der::oid(OID_TST_INFO) {
        return Err(malformed("the contentType attribute is not TSTInfo".into()));
    }
    let digest = attribute(&token.signed_attrs, OID_MESSAGE_DIGEST)
        .map_err(|e| malformed(e.0))?
        .ok_or_else(|| malformed("no messageDigest signed attribute".into()))?;
    let e_digest = hash_by_digest_oid(token.digest_oid, token.e_content).ok_or_else(|| {
        SigstoreError::UnsupportedAlgorithm {
            what: format!("RFC 3161 timestamp {index}"),
            algorithm: der::oid_text(token.digest_oid),
        }
    })?;
    if digest.tag != tag::OCTET_STRING || digest.body != e_digest.as_slice() {
        return Err(malformed(
            "the messageDigest attribute is not the hash of the TSTInfo".into(),
        ));
    }

    // The signature over the signed attributes, re-tagged as the SET they are.
    let mut attrs = token.signed_attrs.raw.to_vec();
    attrs[0] = tag::SET;
    let sig_oid = der::oid_text(token.signature_oid);
    let attrs_digest = x509::digest_for(&sig_oid, &attrs)
        .or_else(|| hash_by_digest_oid(token.digest_oid, &attrs))
        .ok_or_else(|| SigstoreError::UnsupportedAlgorithm {
            what: format!("RFC 3161 timestamp {index} signature"),
            algorithm: sig_oid.clone(),
        })?;
    let mut signer = None;
    for tsa in tsas {
        let Some(leaf_der) = tsa.chain.first() else {
            continue;
        };
        // An authority whose key this verifier cannot use can never have signed.
        let Ok(leaf) = x509::parse(leaf_der) else {
            continue;
        };
        let Ok(key) = x509::public_key(&leaf) else {
            continue;
        };
        if key.verify_prehash(&attrs_digest, token.signature) {
            signer = Some(tsa);
            break;
        }
    }
    let tsa = signer.ok_or_else(|| {
        untrusted("it is not signed by any timestamp authority of the trusted root".into())
    })?;

    // The authority's own chain, fit for timestamping and valid at genTime.
    check_authority(tsa, gen_time)
        .map_err(|e| untrusted(format!("authority `{}`: {e}", tsa.name)))?;

    // The timestamp covers this bundle's signature.
    let expected = hash_by_digest_oid(imprint_oid, signature).ok_or_else(|| {
        SigstoreError::UnsupportedAlgorithm {
            what: format!("RFC 3161 timestamp {index} messageImprint"),
            algorithm: der::oid_text(imprint_oid),
        }
    })?;
    if expected != imprint {
        return Err(SigstoreError::TimestampMismatch { index });
    }
    Ok(VerifiedTime {
        source: TimeSource::Rfc3161 {
            authority: tsa.name.clone(),
        },
        time: gen_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigstore::trust::Validity;
    use crate::sigstore::x509::tests::{Ext, NOW, ca_exts, cert, signing_key};

    const OID_TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";

    fn eku(oid: &str, critical: bool) -> Ext {
        (
            "2.5.29.37",
            critical,
            der::encode(tag::SEQUENCE, &der::encode(tag::OID, &der::oid(oid))),
        )
    }

    fn tsa_exts(eku: Ext) -> Vec<Ext> {
        vec![("2.5.29.15", true, vec![0x03, 0x02, 0x07, 0x80]), eku]
    }

    fn authority(chain: Vec<Vec<u8>>) -> Authority {
        Authority {
            name: "test-tsa".into(),
            chain,
            valid: Validity {
                start: 0,
                end: None,
            },
        }
    }

    fn at(tsa: &Authority, secs: i64) -> &'static str {
        check_authority(tsa, secs * 1_000_000_000).map_or_else(|e| e.reason(), |()| "ok")
    }

    #[test]
    fn a_tsa_listed_as_its_leaf_alone_is_checked_for_purpose_and_validity() {
        let (root_key, leaf_key) = (signing_key(1), signing_key(2));
        for critical in [true, false] {
            let leaf = cert(
                "root",
                "tsa",
                &leaf_key,
                &root_key,
                &tsa_exts(eku(OID_TIME_STAMPING, critical)),
            );
            let alone = authority(vec![leaf]);
            assert_eq!(at(&alone, NOW), "ok");
            assert_eq!(at(&alone, NOW + 601), "certificate_expired");
            assert_eq!(at(&alone, NOW - 601), "certificate_expired");
            let mut retired = alone.clone();
            retired.valid.end = Some((NOW - 1) * 1_000_000_000);
            assert_eq!(at(&retired, NOW), "certificate_authority_validity");
        }
        let code_signing = cert(
            "root",
            "tsa",
            &leaf_key,
            &root_key,
            &tsa_exts(eku("1.3.6.1.5.5.7.3.3", true)),
        );
        assert_eq!(
            at(&authority(vec![code_signing]), NOW),
            "certificate_constraint"
        );
        let no_eku = cert(
            "root",
            "tsa",
            &leaf_key,
            &root_key,
            &[("2.5.29.15", true, vec![0x03, 0x02, 0x07, 0x80])],
        );
        assert_eq!(at(&authority(vec![no_eku]), NOW), "certificate_constraint");
    }

    #[test]
    fn a_tsa_with_its_chain_is_checked_the_same_way() {
        let (root_key, leaf_key) = (signing_key(1), signing_key(2));
        let root = cert("root", "root", &root_key, &root_key, &ca_exts());
        let leaf = cert(
            "root",
            "tsa",
            &leaf_key,
            &root_key,
            &tsa_exts(eku(OID_TIME_STAMPING, true)),
        );
        let chained = authority(vec![leaf, root.clone()]);
        assert_eq!(at(&chained, NOW), "ok");
        assert_eq!(at(&chained, NOW + 601), "certificate_expired");
        let code_signing = cert(
            "root",
            "tsa",
            &leaf_key,
            &root_key,
            &tsa_exts(eku("1.3.6.1.5.5.7.3.3", true)),
        );
        assert_eq!(
            at(&authority(vec![code_signing, root]), NOW),
            "certificate_constraint"
        );
    }
}

//! Every bundle of `tests/vectors/sigstore/MANIFEST.toml`: pass cases verify (with the
//! case's identity and issuer, for certificate bundles), fail cases are refused for the
//! reason their upstream README states, mapped in the manifest (`evident_reason`) to a
//! `SigstoreError::reason()` code.

use std::path::{Path, PathBuf};

use evident_core::ecdsa::EcKey;
use evident_core::sigstore::{Bundle, SigstoreError, TrustedRoot, VerifyOptions, verify};

/// DSSE cases whose upstream test verifies the envelope without binding its subject to the
/// file the manifest names: verified here without an artifact, as upstream does.
const UNBOUND_SUBJECTS: &[(&str, &str)] = &[(
    "sigstore-python/a.dsse.staging-rekor-v2.txt",
    "sigstore-python verifies this envelope with verify_dsse; its Statement's subject is \
     a.txt (sha256 a0cfc712...), not the file beside the bundle",
)];

#[derive(serde::Deserialize)]
struct Manifest {
    case: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    dir: String,
    bundle: String,
    expect: String,
    #[serde(default)]
    trusted_root: Option<String>,
    #[serde(default)]
    artifact: Option<String>,
    #[serde(default)]
    subject_artifact: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    identity: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    content: Option<String>,
    /// For a fail case: the `SigstoreError::reason()` code its stated reason maps to.
    #[serde(default)]
    evident_reason: Option<String>,
    /// Where Evident's outcome differs from upstream's on purpose (`evident_note` says why).
    #[serde(default)]
    evident_expect: Option<String>,
    /// A case Evident cannot check here, and why: counted, never silently skipped.
    #[serde(default)]
    evident_gap: Option<String>,
}

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/sigstore")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Runs one case: `Ok(())` if verified (identity checked), `Err` with the refusal.
fn run(case: &Case) -> Result<(), Outcome> {
    let base = vectors();
    let dir = base.join(&case.dir);
    let bundle = Bundle::from_json(&read(&dir.join(&case.bundle))).map_err(Outcome::Refused)?;
    let root_path = case
        .trusted_root
        .as_ref()
        .ok_or_else(|| Outcome::Harness("no trusted root".into()))?;
    let root = TrustedRoot::from_json(&read(&base.join(root_path))).map_err(Outcome::Refused)?;
    let key = match &case.key {
        Some(k) => Some(
            EcKey::from_pem(&String::from_utf8_lossy(&read(&base.join(k))))
                .map_err(|e| Outcome::KeyRefused(e.to_string()))?,
        ),
        None => None,
    };
    let unbound = UNBOUND_SUBJECTS.iter().any(|(name, _)| *name == case.name);
    let artifact_path = match case.content.as_deref() {
        Some("dsse") if unbound => None,
        Some("dsse") => case.subject_artifact.as_ref(),
        _ => case.artifact.as_ref(),
    };
    let artifact = artifact_path.map(|p| read(&base.join(p)));
    let options = VerifyOptions {
        key: key.as_ref(),
        artifact: artifact.as_deref(),
        artifact_digest: None,
    };
    let verified = verify(&bundle, &root, &options).map_err(Outcome::Refused)?;
    if bundle.has_certificate() {
        let identity = verified
            .identity
            .ok_or_else(|| Outcome::Harness("certificate bundle without identity".into()))?;
        if Some(&identity.subject) != case.identity.as_ref()
            || Some(&identity.issuer) != case.issuer.as_ref()
        {
            return Err(Outcome::Identity(format!(
                "{} from {}",
                identity.subject, identity.issuer
            )));
        }
    }
    Ok(())
}

/// Why a case did not verify.
enum Outcome {
    Refused(SigstoreError),
    /// The case's `key.pub` is itself refused (reason code `key_invalid` in the table).
    KeyRefused(String),
    Identity(String),
    Harness(String),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Refused(e) => write!(f, "refused for {}: {e}", e.reason()),
            Outcome::KeyRefused(e) => write!(f, "key refused: {e}"),
            Outcome::Identity(found) => write!(f, "verified, but signed by {found}"),
            Outcome::Harness(why) => write!(f, "harness: {why}"),
        }
    }
}

#[test]
fn every_manifest_case_verifies_or_is_refused_for_its_reason() {
    let text = String::from_utf8(read(&vectors().join("MANIFEST.toml"))).expect("UTF-8 manifest");
    let manifest: Manifest = toml::from_str(&text).expect("MANIFEST.toml parses");
    let (mut passed, mut refused, mut gap_count) = (0, 0, 0);
    let mut failures = Vec::new();
    for case in &manifest.case {
        let outcome = run(case);
        if let Some(why) = &case.evident_gap {
            gap_count += 1;
            eprintln!("known gap {}: {why} (outcome: {outcome:?})", case.name);
            continue;
        }
        match (
            case.evident_expect.as_deref().unwrap_or(&case.expect),
            outcome,
        ) {
            ("pass", Ok(())) => passed += 1,
            ("pass", Err(e)) => {
                failures.push(format!("{}: expected to verify, got {e:?}", case.name))
            }
            ("fail", Ok(())) => {
                failures.push(format!("{}: expected a refusal, verified", case.name))
            }
            ("fail", Err(refusal @ (Outcome::Refused(_) | Outcome::KeyRefused(_)))) => {
                let code = match &refusal {
                    Outcome::Refused(e) => e.reason(),
                    _ => "key_invalid",
                };
                match case.evident_reason.as_deref() {
                    Some(want) if want == code => refused += 1,
                    Some(want) => {
                        failures.push(format!("{}: {refusal:?}, expected {want}", case.name))
                    }
                    None => failures.push(format!(
                        "{}: {refusal:?}, but the manifest gives no evident_reason",
                        case.name
                    )),
                }
            }
            ("fail", Err(other)) => failures.push(format!("{}: {other:?}", case.name)),
            (other, _) => failures.push(format!("{}: unknown expect `{other}`", case.name)),
        }
    }
    eprintln!(
        "{passed} pass cases verified, {refused} fail cases refused for their reason, {gap_count} known gaps, {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn dsse_bundles_round_trip_through_material_and_envelope() {
    let text = String::from_utf8(read(&vectors().join("MANIFEST.toml"))).expect("UTF-8 manifest");
    let manifest: Manifest = toml::from_str(&text).expect("MANIFEST.toml parses");
    let mut checked = 0;
    for case in &manifest.case {
        let Ok(bundle) = Bundle::from_json(&read(&vectors().join(&case.dir).join(&case.bundle)))
        else {
            continue;
        };
        let Some(envelope) = bundle.envelope() else {
            continue;
        };
        let material = bundle.material_json();
        assert_eq!(
            material,
            bundle.material_json(),
            "{}: deterministic",
            case.name
        );
        let again = Bundle::from_parts(&material, envelope)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(again, bundle, "{}: round trip", case.name);
        checked += 1;
    }
    assert!(checked > 10, "only {checked} DSSE bundles");
}

#[test]
fn mutated_bundles_never_panic() {
    let root = TrustedRoot::from_json(&read(
        &vectors().join("conformance/rekor2-happy-path/trusted_root.json"),
    ))
    .expect("the root parses");
    let artifact = read(&vectors().join("conformance/a.txt"));
    for name in [
        "rekor2-happy-path",
        "happy-path-intoto-in-dsse-v3",
        "happy-path-v0.1",
    ] {
        let original = read(
            &vectors()
                .join("conformance")
                .join(name)
                .join("bundle.sigstore.json"),
        );
        for (i, position) in (0..original.len()).step_by(61).enumerate() {
            let mut bytes = original.clone();
            bytes[position] = match bytes[position] {
                b'A'..=b'Y' | b'a'..=b'y' | b'0'..=b'8' => bytes[position] + 1,
                _ => b'A',
            };
            if i % 7 == 0 {
                bytes.truncate(position);
            }
            if let Ok(bundle) = Bundle::from_json(&bytes) {
                let options = VerifyOptions {
                    key: None,
                    artifact: Some(&artifact),
                    artifact_digest: None,
                };
                let _ = verify(&bundle, &root, &options);
            }
        }
    }
}

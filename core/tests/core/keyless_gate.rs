//! A keyless signer from registry to verdict, in the core: a bundle GitHub's attestations
//! produced (tests/vectors/sigstore) logged in a memory log, its evidence bundle verified
//! under the log key and genesis (the Sigstore bundle verified again from the leaf record),
//! and policies deciding on its workflow, its role and its age.

use evident_core::bundle::BundleRequest;
use evident_core::dsse::Envelope;
use evident_core::fixtures::{admin, key};
use evident_core::kinds::{self, LogState, Refusal};
use evident_core::memlog::MemoryLog;
use evident_core::policy::{Policy, Status, github_workflow_matches};
use evident_core::record::EntryKind;
use evident_core::registry::{
    CertificateRule, Change, GenesisDocument, REGISTRY_PAYLOAD_TYPE, Registry, parse_time,
    sign_change,
};
use evident_core::sigstore::{Bundle, CertIdentity};

const WORKFLOW: &str = "sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main";
const SHA512: &str = "90f223f992e4c88dd068cd2a5fc57f9d2b30798343dd6e38f29c240e04ba090ef831f84490847c4e82b9232c78e8a258463b1e55c0f7469f730265008fa6633f";
const GITHUB: &str = "https://token.actions.githubusercontent.com";

fn vectors() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/sigstore")
}

fn t(text: &str) -> i64 {
    parse_time("t", text).unwrap()
}

/// The GitHub bundle's envelope, with its material, as the server logs it.
fn github_envelope() -> Envelope {
    let bytes = std::fs::read(vectors().join("github/sigstore-js-2.1.0-bundle.json")).unwrap();
    let bundle = Bundle::from_json(&bytes).unwrap();
    let mut envelope = bundle.envelope().unwrap().clone();
    envelope.sigstore = Some(bundle.material_json());
    envelope
}

fn log_with_keyless_signer() -> MemoryLog {
    let mut log = MemoryLog::new(
        "evident.test/log",
        key(200),
        GenesisDocument::of(&[admin()], 1),
    )
    .unwrap();
    let root: serde_json::Value = serde_json::from_slice(
        &std::fs::read(vectors().join("trusted_roots/production.trusted_root.json")).unwrap(),
    )
    .unwrap();
    let changes = [
        Change::TrustSigstore {
            name: "public-good".into(),
            trusted_root: root,
            reason: None,
        },
        Change::AddSigner {
            identity: "release@sigstore-js".into(),
            public_key: None,
            certificate: Some(CertificateRule {
                issuer: GITHUB.into(),
                subject: format!("https://github.com/{WORKFLOW}"),
                extensions: [(
                    "source_repository_uri".to_owned(),
                    "https://github.com/sigstore/sigstore-js".to_owned(),
                )]
                .into(),
                trusted_root: Some("public-good".into()),
            }),
            roles: vec!["release".into()],
            predicate_types: vec!["https://slsa.dev/provenance/v1".into()],
            not_before: None,
            not_after: None,
        },
    ];
    for change in &changes {
        log.append(
            EntryKind::Registry,
            t("2026-11-01T00:00:00Z"),
            sign_change(change, &[&key(100)]),
        )
        .unwrap();
    }
    log
}

fn policy(signers: &str, extra: &str) -> Policy {
    Policy::parse(&format!(
        "name = \"npm\"\nversion = 1\n\n[[control]]\nid = \"provenance\"\n\
         predicate_type = \"https://slsa.dev/provenance/v1\"\nsigners = [{signers}]\n{extra}"
    ))
    .unwrap()
}

#[test]
fn a_github_bundle_decides_a_gate_from_an_evidence_bundle_by_workflow_role_and_age() {
    let mut log = log_with_keyless_signer();
    let index = log
        .append(
            EntryKind::Attestation,
            t("2026-11-20T00:00:00Z"),
            github_envelope(),
        )
        .unwrap();
    let request = BundleRequest::artifact(&format!("sha512:{SHA512}"));
    let verified = log
        .bundle(request.clone(), [index])
        .verify(log.verifier(), log.genesis())
        .unwrap();
    let gate = t("2026-11-21T00:00:00Z");
    let decide = |p: &Policy| verified.decide(&request, p, gate).unwrap();

    let by_workflow = decide(&policy(&format!("\"workflow:{WORKFLOW}\""), ""));
    assert!(by_workflow.allowed, "{by_workflow:?}");
    let by_role = decide(&policy("\"role:release\"", ""));
    assert!(by_role.allowed, "{by_role:?}");
    let by_identity = decide(&policy("\"release@sigstore-js\"", ""));
    assert!(by_identity.allowed, "{by_identity:?}");

    // Another ref or another workflow of the same repository: not this evidence.
    for other in [
        "workflow:sigstore/sigstore-js/.github/workflows/release.yml@refs/tags/v*",
        "workflow:sigstore/sigstore-js/.github/workflows/ci.yml@refs/heads/main",
        "workflow:sigstore/other/.github/workflows/release.yml@refs/heads/main",
    ] {
        let report = decide(&policy(&format!("\"{other}\""), ""));
        assert!(!report.allowed, "{other}");
        assert_ne!(report.controls[0].status, Status::Pass, "{other}");
    }

    // Signed in September 2023, logged in November 2026: the evidence is as old as its
    // proven signature, so a 7-day freshness rule refuses it.
    let fresh = decide(&policy(
        &format!("\"workflow:{WORKFLOW}\""),
        "max_age = \"7d\"\n",
    ));
    assert!(!fresh.allowed);
    assert!(
        fresh.controls[0].reason.contains("old"),
        "{}",
        fresh.controls[0].reason
    );
}

#[test]
fn a_rule_pinned_to_another_repository_does_not_admit_the_bundle() {
    let mut registry = Registry::genesis(vec![admin()], 1).unwrap();
    let root: serde_json::Value = serde_json::from_slice(
        &std::fs::read(vectors().join("trusted_roots/production.trusted_root.json")).unwrap(),
    )
    .unwrap();
    let trust = Change::TrustSigstore {
        name: "public-good".into(),
        trusted_root: root,
        reason: None,
    };
    registry
        .apply(
            0,
            t("2026-11-01T00:00:00Z"),
            &sign_change(&trust, &[&key(100)]),
        )
        .unwrap();
    // The workflow's own name, but pinned to another repository as where it must run:
    // how a reusable workflow called from elsewhere is kept out.
    let elsewhere = Change::AddSigner {
        identity: "release@acme".into(),
        public_key: None,
        certificate: Some(CertificateRule {
            issuer: GITHUB.into(),
            subject: format!("https://github.com/{WORKFLOW}"),
            extensions: [(
                "source_repository_uri".to_owned(),
                "https://github.com/acme/payments".to_owned(),
            )]
            .into(),
            trusted_root: None,
        }),
        roles: vec![],
        predicate_types: vec!["*".into()],
        not_before: None,
        not_after: None,
    };
    registry
        .apply(
            1,
            t("2026-11-01T00:00:00Z"),
            &sign_change(&elsewhere, &[&key(100)]),
        )
        .unwrap();
    let err = registry
        .authorize_envelope(
            &github_envelope(),
            "https://slsa.dev/provenance/v1",
            t("2026-11-20T00:00:00Z"),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no registered signer matches the certificate"),
        "{err}"
    );
}

#[test]
fn a_workflow_rule_admits_only_a_run_in_the_workflows_own_repository() {
    let subject = format!("https://github.com/{WORKFLOW}");
    let identity = |extensions: &[(&str, &str)]| CertIdentity {
        issuer: GITHUB.into(),
        subject: subject.clone(),
        extensions: extensions
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let own = "https://github.com/sigstore/sigstore-js";
    assert!(github_workflow_matches(
        WORKFLOW,
        &identity(&[
            ("source_repository_uri", own),
            ("build_config_uri", &subject)
        ])
    ));
    // Certificates from before Fulcio's newer extensions: the legacy repository one.
    assert!(github_workflow_matches(
        WORKFLOW,
        &identity(&[("github_workflow_repository", "sigstore/sigstore-js")])
    ));
    // The same workflow called as a reusable workflow from another repository.
    assert!(!github_workflow_matches(
        WORKFLOW,
        &identity(&[
            ("source_repository_uri", "https://github.com/mallory/fork"),
            (
                "build_config_uri",
                "https://github.com/mallory/fork/.github/workflows/x.yml@refs/heads/main"
            ),
        ])
    ));
    // Called from another workflow of its own repository: not the top-level run.
    assert!(!github_workflow_matches(
        WORKFLOW,
        &identity(&[
            ("source_repository_uri", own),
            (
                "build_config_uri",
                "https://github.com/sigstore/sigstore-js/.github/workflows/other.yml@refs/heads/main"
            ),
        ])
    ));
    // No repository at all, or another issuer.
    assert!(!github_workflow_matches(WORKFLOW, &identity(&[])));
    let mut gitlab = identity(&[("source_repository_uri", own)]);
    gitlab.issuer = "https://gitlab.com".into();
    assert!(!github_workflow_matches(WORKFLOW, &gitlab));
    // A star may not stand for the organization or the repository.
    for pattern in [
        "workflow:*/sigstore-js/.github/workflows/release.yml@refs/heads/main",
        "workflow:sigstore/*/.github/workflows/release.yml@refs/heads/main",
        "workflow:sigstore/sigstore-js",
        "workflow:sigstore/sigstore-js/.github/workflows/release.yml",
    ] {
        let err = Policy::parse(&format!(
            "name = \"x\"\nversion = 1\n[[control]]\nid = \"c\"\npredicate_type = \"p\"\n\
             signers = [\"{pattern}\"]\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("workflow"), "{pattern}: {err}");
    }
}

#[test]
fn administrators_entries_never_come_in_a_sigstore_bundle() {
    let registry = Registry::genesis(vec![admin()], 1).unwrap();
    let change = Change::DistrustSigstore {
        name: "x".into(),
        reason: None,
    };
    let mut envelope = sign_change(&change, &[&key(100)]);
    assert_eq!(envelope.payload_type, REGISTRY_PAYLOAD_TYPE);
    envelope.sigstore = Some(br#"{"mediaType":"x"}"#.to_vec());
    let kind = kinds::for_payload_type(&envelope.payload_type).unwrap();
    assert!(matches!(
        kind.check(&registry, &envelope, 0).unwrap_err(),
        Refusal::SigstoreNotAccepted(_)
    ));
    // And a replay refuses such an entry in a log.
    let state = LogState::new(registry);
    assert!(matches!(
        kind.authorize(&state, &envelope, None, 0).unwrap_err(),
        Refusal::SigstoreNotAccepted(_)
    ));
    let mut policy = Envelope::sign(
        evident_core::policy::POLICY_PAYLOAD_TYPE,
        b"name = \"p\"\nversion = 1\n".to_vec(),
        &[&key(100)],
    );
    policy.sigstore = Some(b"{}".to_vec());
    let kind = kinds::for_payload_type(&policy.payload_type).unwrap();
    assert!(matches!(
        kind.authorize(&state, &policy, None, 0).unwrap_err(),
        Refusal::SigstoreNotAccepted(_)
    ));
}

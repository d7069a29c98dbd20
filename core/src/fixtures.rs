//! The `payments-prod` scenario every test and benchmark of the gate shares (feature
//! `fixtures`): the team's signers, the release policy, and a release's evidence in an
//! in-memory log, complete or with one flaw added by the test.
//!
//! A payments team ships `payments-api`, built from commit [`COMMIT`] of `payments`, as
//! artifact [`ARTIFACT`]. Its release policy ([`PAYMENTS_PROD`], the document
//! docs/POLICY.md describes) asks for provenance and passing tests by CI, a recent clean
//! scan by the scanner, and two approvals by reviewers other than the author, recorded by
//! the code-review system. [`good_release`] holds all of it; a test takes an entry out of
//! [`Scenario::evidence`] or attests more to make the release fall short.

#![allow(
    clippy::unwrap_used,
    missing_docs,
    reason = "fixtures of tests and benchmarks: a setup that fails panics"
)]

use serde_json::{Value, json};

use crate::bundle::BundleRequest;
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::memlog::MemoryLog;
use crate::policy::Policy;
use crate::predicates::{APPROVAL_V1, SLSA_PROVENANCE_V1, TEST_RESULT_V0_1, VULNS_V0_2};
use crate::record::EntryKind;
use crate::registry::{Admin, Change, GenesisDocument, Registry, parse_time, sign_change};
use crate::{PublicKey, SigningKey};

pub const ARTIFACT: &str = "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195";
pub const COMMIT: &str = "4f2a9c1e0d5b7a3c9e8f1a2b3c4d5e6f7a8b9c0d";
pub const OTHER_COMMIT: &str = "0000000000000000000000000000000000000001";
pub const DAY: i64 = 86_400_000_000_000;

pub const PAYMENTS_PROD: &str = r#"
name = "payments-prod"
version = 1
release_signers = ["role:release"]

[[control]]
id = "provenance"
predicate_type = "https://slsa.dev/provenance/v1"
signers = ["role:ci"]

[[control]]
id = "unit-tests"
predicate_type = "https://in-toto.io/attestation/test-result/v0.1"
signers = ["role:ci"]
subject = "source-commit"
require = 'predicate.result == "PASSED"'

[[control]]
id = "vulnerability-scan"
predicate_type = "https://in-toto.io/attestation/vulns/v0.2"
signers = ["role:scanner"]
max_age = "7d"
max_severity = "HIGH"
allow = [{ id = "CVE-2024-0002", reason = "not reachable from the payment path" }]

[[control]]
id = "two-person-review"
predicate_type = "https://evident.dev/attestation/approval/v1"
signers = ["role:reviewer"]
review_systems = ["role:scm"]
subject = "source-commit"
min_distinct_signers = 2
min_approvals = 2
separation_of_duties = true
no_changes_requested = true
reviewed_commit_is_built = true
"#;

pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

pub fn t0() -> i64 {
    parse_time("t", "2026-11-20T00:00:00Z").unwrap()
}

/// The signers: ci (1), scanner (2), reviewers alice (3), bob (4, also ci), carol (5), the
/// author dave (6, also a reviewer), the code-review system (7), the release job (8), and a
/// key allowed for every predicate type with no role the policy names (9).
pub const SIGNERS: [(u8, &str, &str); 9] = [
    (1, "ci@payments", "ci"),
    (2, "scanner@sec", "scanner"),
    (3, "alice@example.com", "reviewer"),
    (4, "bob@example.com", "reviewer,ci"),
    (5, "carol@example.com", "reviewer"),
    (6, "dave@example.com", "reviewer"),
    (7, "scm@git.example.com", "scm"),
    (8, "release@payments", "release"),
    (9, "anyone@example.com", "other"),
];

/// The genesis administrator (seed 100).
pub fn admin() -> Admin {
    Admin {
        identity: "admin".into(),
        key: PublicKey::from_signing_key(&key(100)),
    }
}

/// The registry entries that register [`SIGNERS`].
pub fn registry_changes() -> Vec<Envelope> {
    SIGNERS
        .iter()
        .map(|(n, who, roles)| {
            let change = Change::AddSigner {
                identity: (*who).into(),
                public_key: Some(PublicKey::from_signing_key(&key(*n)).to_hex()),
                roles: roles.split(',').map(String::from).collect(),
                predicate_types: vec!["*".into()],
                not_before: None,
                not_after: None,
                certificate: None,
            };
            sign_change(&change, &[&key(100)])
        })
        .collect()
}

/// The registry after [`registry_changes`].
pub fn registry() -> Registry {
    let mut reg = Registry::genesis(vec![admin()], 1).unwrap();
    for (i, env) in registry_changes().iter().enumerate() {
        reg.apply(i as u64, t0() - DAY * 30, env).unwrap();
    }
    reg
}

/// A log holding the registry, and the attestations a test adds; `evidence` lists the
/// attestations the bundle will hold (a test drops one by removing its index).
#[derive(Debug)]
pub struct Scenario {
    /// The log.
    pub log: MemoryLog,
    /// The attestations the bundle holds, by index.
    pub evidence: Vec<u64>,
}

impl Default for Scenario {
    fn default() -> Scenario {
        Scenario::new()
    }
}

impl Scenario {
    /// A log holding the team's registry entries, and no evidence yet.
    pub fn new() -> Scenario {
        let mut log = MemoryLog::new(
            "evident.test/log",
            key(200),
            GenesisDocument::of(&[admin()], 1),
        )
        .unwrap();
        for env in registry_changes() {
            log.append(EntryKind::Registry, t0() - DAY * 30, env)
                .unwrap();
        }
        Scenario {
            log,
            evidence: Vec::new(),
        }
    }

    /// Signs a Statement with key `signer`, appends it at `time`, and adds it.
    pub fn attest(
        &mut self,
        signer: u8,
        predicate_type: &str,
        subject: Value,
        predicate: Value,
        time: i64,
    ) -> u64 {
        self.attest_by(&[signer], predicate_type, subject, predicate, time)
    }

    /// [`Scenario::attest`], signed by several keys.
    pub fn attest_by(
        &mut self,
        signers: &[u8],
        predicate_type: &str,
        subject: Value,
        predicate: Value,
        time: i64,
    ) -> u64 {
        let payload = serde_json::to_vec(&json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [subject],
            "predicateType": predicate_type,
            "predicate": predicate,
        }))
        .unwrap();
        let keys: Vec<SigningKey> = signers.iter().map(|n| key(*n)).collect();
        let env = Envelope::sign(
            IN_TOTO_PAYLOAD_TYPE,
            payload,
            &keys.iter().collect::<Vec<_>>(),
        );
        let index = self.log.append(EntryKind::Attestation, time, env).unwrap();
        self.evidence.push(index);
        index
    }

    /// Appends a policy version signed by the administrator.
    pub fn add_policy(&mut self, text: &str) {
        let env = Envelope::sign(
            crate::policy::POLICY_PAYLOAD_TYPE,
            text.as_bytes().to_vec(),
            &[&key(100)],
        );
        self.log.append(EntryKind::Policy, t0(), env).unwrap();
    }

    /// The bundle of the artifact, as the server would send it.
    pub fn bundle(&self) -> crate::bundle::Bundle {
        let request = BundleRequest::artifact(&format!("sha256:{ARTIFACT}"));
        self.log.bundle(request, self.evidence.iter().copied())
    }

    /// The gate's report, or `None` when the bundle does not verify or decide.
    pub fn verified_report(&self, policy: &Policy) -> Option<crate::policy::Report> {
        let request = BundleRequest::artifact(&format!("sha256:{ARTIFACT}"));
        self.bundle()
            .verify(self.log.verifier(), self.log.genesis())
            .ok()?
            .decide(&request, policy, t0() + DAY)
            .ok()
    }

    /// The verified bundle of the artifact, as a gate would receive it.
    pub fn verified(&self, request: &BundleRequest) -> crate::bundle::VerifiedBundle {
        self.log
            .bundle(request.clone(), self.evidence.iter().copied())
            .verify(self.log.verifier(), self.log.genesis())
            .unwrap()
    }

    pub fn report(&self, policy: &Policy, gate: i64) -> crate::policy::Report {
        let request = BundleRequest::artifact(&format!("sha256:{ARTIFACT}"));
        self.verified(&request)
            .decide(&request, policy, gate)
            .unwrap()
    }
}

pub fn artifact() -> Value {
    json!({"name": "payments-api", "digest": {"sha256": ARTIFACT}})
}

pub fn commit() -> Value {
    json!({"name": "payments", "digest": {"gitCommit": COMMIT}})
}

pub fn approval(author: &str, reviewers: &[(&str, &str)], reviewed: &str) -> Value {
    json!({
        "author": author,
        "changeRef": "https://git.example.com/payments/pull/812",
        "reviewedCommit": reviewed,
        "reviewers": reviewers.iter().map(|(who, d)| json!({"identity": who, "decision": d, "time": "2026-11-19T10:00:00Z"})).collect::<Vec<_>>(),
    })
}

/// The complete release: provenance, passing tests, a clean scan, the code-review system's
/// record of the change (author dave), and two approvals signed by their reviewers.
pub fn good_release() -> Scenario {
    let mut s = Scenario::new();
    let t = t0();
    s.attest(1, SLSA_PROVENANCE_V1, artifact(), json!({"buildDefinition": {"buildType": "https://example.com/ci", "resolvedDependencies": [{"uri": "git+https://git.example.com/payments", "digest": {"gitCommit": COMMIT}}]}}), t);
    s.attest(
        1,
        TEST_RESULT_V0_1,
        commit(),
        json!({"result": "PASSED", "passedTests": ["unit"]}),
        t,
    );
    s.attest(2, VULNS_V0_2, artifact(), json!({"scanner": {"uri": "pkg:generic/trivy@0.50.0", "result": [{"id": "CVE-2024-0001", "severity": [{"method": "nvd", "score": "MEDIUM"}]}, {"id": "CVE-2024-0002", "severity": [{"method": "nvd", "score": "9.8"}]}]}}), t);
    s.attest(
        7,
        APPROVAL_V1,
        commit(),
        approval("dave@example.com", &[], COMMIT),
        t,
    );
    s.attest(
        3,
        APPROVAL_V1,
        commit(),
        approval(
            "dave@example.com",
            &[("alice@example.com", "APPROVED")],
            COMMIT,
        ),
        t,
    );
    s.attest(
        4,
        APPROVAL_V1,
        commit(),
        approval(
            "dave@example.com",
            &[("bob@example.com", "APPROVED")],
            COMMIT,
        ),
        t,
    );
    s
}

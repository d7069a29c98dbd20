//! Property tests of the gate's trust rule: a verdict depends only on signed, log-proven
//! facts from principals trusted for that fact.
//!
//! - Two-person rule: whatever one principal signs, they move the verdict no further than
//!   their own honest approval would; the change author can never turn a denial into an
//!   allowance.
//! - Bundle integrity: any edit of a bundle — a byte of any field, an entry dropped,
//!   repeated or moved, the request swapped — fails verification or leaves the verdict as
//!   it was.
//! - Monotonic revocation: a revocation recorded later, however far back it is dated,
//!   never turns a denial into an allowance.
//!
//! Every case builds a real log (`MemoryLog`), signs real envelopes and verifies the real
//! bundle, as a gate does.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evident_core::PublicKey;
use evident_core::bundle::{Bundle, BundleRequest};
use evident_core::policy::Policy;
use evident_core::predicates::APPROVAL_V1;
use evident_core::record::EntryKind;
use evident_core::registry::{Change, sign_change, time_text};
use proptest::prelude::*;
use serde_json::{Value, json};

use evident_core::fixtures::{
    ARTIFACT as ARTIFACT_DIGEST, Scenario, approval, artifact, good_release, key, t0,
};

/// A review control over approvals of the artifact: two approvers, no outstanding
/// request for changes, and the author (as the code-review system records it) approves
/// nothing.
const REVIEW_POLICY: &str = r#"
name = "review"
version = 1

[[control]]
id = "two-person-review"
predicate_type = "https://evident.dev/attestation/approval/v1"
signers = ["role:reviewer"]
review_systems = ["role:scm"]
min_approvals = 2
separation_of_duties = true
no_changes_requested = true
"#;

const DAY: i64 = 86_400_000_000_000;

/// The principals of the review cases: reviewers alice (3), bob (4), carol (5), and dave
/// (6), the author, who also holds the reviewer role.
const PEOPLE: [(u8, &str); 4] = [
    (3, "alice@example.com"),
    (4, "bob@example.com"),
    (5, "carol@example.com"),
    (6, "dave@example.com"),
];
const AUTHOR: usize = 3;
const SCM: u8 = 7;

/// One approval attestation: who signs it (an index into [`PEOPLE`], or the review system),
/// the author it claims, and its reviews (an index into [`PEOPLE`] and a decision).
#[derive(Debug, Clone)]
struct Approval {
    signer: Option<usize>,
    author: usize,
    reviews: Vec<(usize, u8)>,
}

fn decision(d: u8) -> &'static str {
    ["APPROVED", "CHANGES_REQUESTED", "COMMENTED"][usize::from(d % 3)]
}

fn approval_strategy(
    signer: impl Strategy<Value = Option<usize>>,
) -> impl Strategy<Value = Approval> {
    (
        signer,
        0..PEOPLE.len(),
        prop::collection::vec((0..PEOPLE.len(), 0u8..3), 0..4),
    )
        .prop_map(|(signer, author, reviews)| Approval {
            signer,
            author,
            reviews,
        })
}

/// What these properties do with a scenario.
trait Reviewed {
    fn approve(&mut self, a: &Approval, time: i64);
    fn allowed(&self, policy: &Policy) -> bool;
}

impl Reviewed for Scenario {
    fn approve(&mut self, a: &Approval, time: i64) {
        let reviews: Vec<(&str, &str)> = a
            .reviews
            .iter()
            .map(|(who, d)| (PEOPLE[*who].1, decision(*d)))
            .collect();
        let (signer, author) = match a.signer {
            // The review system is honest: it records the real author.
            None => (SCM, PEOPLE[AUTHOR].1),
            Some(i) => (PEOPLE[i].0, PEOPLE[a.author].1),
        };
        self.attest(
            signer,
            APPROVAL_V1,
            artifact(),
            approval(author, &reviews, "unused"),
            time,
        );
    }

    fn allowed(&self, policy: &Policy) -> bool {
        self.report(policy, t0() + DAY).allowed
    }
}

fn review_scenario(base: &[Approval]) -> Scenario {
    let mut s = Scenario::new();
    for a in base {
        s.approve(a, t0());
    }
    s
}

fn honest_approval(person: usize) -> Approval {
    Approval {
        signer: Some(person),
        author: AUTHOR,
        reviews: vec![(person, 0)],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Whatever one principal signs, the verdict is no better than with their own honest
    /// approval; for the author, no better than without them.
    #[test]
    fn one_principal_moves_the_verdict_no_further_than_an_honest_approval(
        base in prop::collection::vec(
            approval_strategy(prop::option::weighted(0.8, 0..PEOPLE.len())), 0..6),
        attacker in 0..PEOPLE.len(),
        attack in prop::collection::vec(approval_strategy(Just(None)), 1..5),
    ) {
        let policy = Policy::parse(REVIEW_POLICY).unwrap();
        let before = review_scenario(&base).allowed(&policy);
        let mut attacked = review_scenario(&base);
        for a in &attack {
            // Every attestation of the attack is signed by the attacker.
            attacked.approve(&Approval { signer: Some(attacker), ..a.clone() }, t0());
        }
        let mut honest = review_scenario(&base);
        honest.approve(&honest_approval(attacker), t0());
        let after = attacked.allowed(&policy);
        if after && !before {
            prop_assert!(
                attacker != AUTHOR,
                "the author's own attestations turned a denial into an allowance"
            );
            prop_assert!(
                honest.allowed(&policy),
                "{} achieved more than an honest approval of their own",
                PEOPLE[attacker].1
            );
        }
    }

    /// What a control says it evidences (`evidences`, framework controls) informs reports
    /// only: the same evidence gets the same verdict, control by control and reason by
    /// reason, whatever framework controls the policy names.
    #[test]
    fn what_a_control_says_it_evidences_never_changes_a_verdict(
        base in prop::collection::vec(
            approval_strategy(prop::option::weighted(0.8, 0..PEOPLE.len())), 0..6),
        named in prop::collection::btree_set("[a-z0-9-]{1,12}:[A-Za-z0-9.()-]{1,10}", 0..6),
    ) {
        let plain = Policy::parse(REVIEW_POLICY).unwrap();
        let list: Vec<String> = named.iter().map(|r| format!("{r:?}")).collect();
        let with = REVIEW_POLICY.replace(
            "no_changes_requested = true\n",
            &format!("no_changes_requested = true\nevidences = [{}]\n", list.join(", ")),
        );
        let mapped = Policy::parse(&with).unwrap();
        prop_assert_eq!(mapped.controls[0].evidences.len(), named.len());
        let s = review_scenario(&base);
        prop_assert_eq!(s.report(&plain, t0() + DAY), s.report(&mapped, t0() + DAY));
    }

    /// A denied review stays denied whatever the author adds (the issue's statement of the
    /// two-person rule, for the author, without the comparison).
    #[test]
    fn the_author_alone_never_turns_a_denial_into_an_allowance(
        base in prop::collection::vec(
            approval_strategy(prop::option::weighted(0.8, 0..AUTHOR)), 0..5),
        attack in prop::collection::vec(approval_strategy(Just(None)), 1..6),
    ) {
        let policy = Policy::parse(REVIEW_POLICY).unwrap();
        let mut s = review_scenario(&base);
        prop_assume!(!s.allowed(&policy));
        for a in &attack {
            s.approve(&Approval { signer: Some(AUTHOR), ..a.clone() }, t0());
        }
        prop_assert!(!s.allowed(&policy));
    }
}

/// The verdict a gate reaches on `bundle` for the artifact under the scenario's policy, or
/// `None` when the bundle does not verify (exit 1 or 2 for the gate).
fn gate(f: &Fixture, bundle: &Bundle, policy_name: &str) -> Option<bool> {
    let json = bundle.to_json();
    gate_json(f, json.as_bytes(), policy_name)
}

fn gate_json(f: &Fixture, json: &[u8], policy_name: &str) -> Option<bool> {
    let bundle = Bundle::from_json(json).ok()?;
    let verified = bundle.verify(&f.key, &f.genesis).ok()?;
    let policy = verified.policy(policy_name, None).ok()?;
    let request = BundleRequest::artifact(&format!("sha256:{ARTIFACT_DIGEST}"));
    verified
        .decide(&request, policy, t0() + DAY)
        .ok()
        .map(|r| r.allowed)
}

/// A good release with its policy in the log, plus a request for changes by carol: denied
/// while carol's entry is in the bundle, allowed if it were dropped.
fn denied_release() -> Fixture {
    let mut s = good_release();
    s.add_policy(evident_core::fixtures::PAYMENTS_PROD);
    s.attest(
        5,
        APPROVAL_V1,
        evident_core::fixtures::commit(),
        approval(
            "dave@example.com",
            &[("carol@example.com", "CHANGES_REQUESTED")],
            evident_core::fixtures::COMMIT,
        ),
        t0(),
    );
    Fixture::of(&s)
}

/// What a gate pins (the log key and genesis) and the bundle it is given.
#[derive(Debug, Clone)]
struct Fixture {
    key: evident_core::note::Verifier,
    genesis: evident_core::registry::GenesisDocument,
    bundle: Bundle,
}

impl Fixture {
    fn of(s: &Scenario) -> Fixture {
        Fixture {
            key: s.log.verifier().clone(),
            genesis: s.log.genesis().clone(),
            bundle: s.bundle(),
        }
    }
}

/// One edit of a bundle's JSON.
#[derive(Debug, Clone)]
enum Edit {
    /// Flip one bit of one byte of the decoded leaf record of an entry.
    FlipRecordBit { entry: usize, byte: usize, bit: u8 },
    /// Flip one bit of one byte of an inclusion proof hash.
    FlipProofBit {
        entry: usize,
        hash: usize,
        byte: usize,
        bit: u8,
    },
    /// Drop an entry.
    Drop(usize),
    /// Repeat an entry right after itself.
    Duplicate(usize),
    /// Swap two entries.
    Swap(usize, usize),
    /// Flip one bit of a byte of the checkpoint, the manifest or the genesis text.
    FlipText { field: u8, byte: usize, bit: u8 },
    /// Drop one proof hash of an entry.
    DropProofHash { entry: usize, hash: usize },
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), 0u8..8)
            .prop_map(|(entry, byte, bit)| Edit::FlipRecordBit { entry, byte, bit }),
        (any::<usize>(), any::<usize>(), 0usize..32, 0u8..8).prop_map(
            |(entry, hash, byte, bit)| Edit::FlipProofBit {
                entry,
                hash,
                byte,
                bit
            }
        ),
        any::<usize>().prop_map(Edit::Drop),
        any::<usize>().prop_map(Edit::Duplicate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        (0u8..3, any::<usize>(), 0u8..8).prop_map(|(field, byte, bit)| Edit::FlipText {
            field,
            byte,
            bit
        }),
        (any::<usize>(), any::<usize>())
            .prop_map(|(entry, hash)| Edit::DropProofHash { entry, hash }),
    ]
}

fn flip_char_bit(text: &str, byte: usize, bit: u8) -> String {
    let mut bytes = text.as_bytes().to_vec();
    if bytes.is_empty() {
        return text.to_owned();
    }
    let i = byte % bytes.len();
    bytes[i] ^= 1 << bit;
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn apply(bundle: &Bundle, edit: &Edit) -> Bundle {
    let mut b = bundle.clone();
    let n = b.entries.len();
    match *edit {
        Edit::FlipRecordBit { entry, byte, bit } => {
            let e = &mut b.entries[entry % n];
            let mut bytes = STANDARD.decode(&e.leaf_record).unwrap();
            let i = byte % bytes.len();
            bytes[i] ^= 1 << bit;
            e.leaf_record = STANDARD.encode(bytes);
        }
        Edit::FlipProofBit {
            entry,
            hash,
            byte,
            bit,
        } => {
            let e = &mut b.entries[entry % n];
            if !e.inclusion_proof.is_empty() {
                let h = hash % e.inclusion_proof.len();
                let mut bytes = STANDARD.decode(&e.inclusion_proof[h]).unwrap();
                let i = byte % bytes.len();
                bytes[i] ^= 1 << bit;
                e.inclusion_proof[h] = STANDARD.encode(bytes);
            }
        }
        Edit::Drop(i) => {
            b.entries.remove(i % n);
        }
        Edit::Duplicate(i) => {
            let e = b.entries[i % n].clone();
            b.entries.insert(i % n, e);
        }
        Edit::Swap(i, j) => b.entries.swap(i % n, j % n),
        Edit::FlipText { field, byte, bit } => match field {
            0 => b.checkpoint = flip_char_bit(&b.checkpoint, byte, bit),
            1 => b.manifest = flip_char_bit(&b.manifest, byte, bit),
            _ => {
                let text = serde_json::to_string(&b.genesis).unwrap();
                if let Ok(g) = serde_json::from_str(&flip_char_bit(&text, byte, bit)) {
                    b.genesis = g;
                }
            }
        },
        Edit::DropProofHash { entry, hash } => {
            let e = &mut b.entries[entry % n];
            if !e.inclusion_proof.is_empty() {
                let h = hash % e.inclusion_proof.len();
                e.inclusion_proof.remove(h);
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Any structural or byte edit of a bundle fails verification or keeps its verdict.
    #[test]
    fn an_edited_bundle_fails_or_keeps_its_verdict(edits in prop::collection::vec(edit_strategy(), 1..4)) {
        let f = DENIED.with(Fixture::clone);
        let bundle = f.bundle.clone();
        let original = gate(&f, &bundle, "payments-prod");
        prop_assert_eq!(original, Some(false));
        let mut edited = bundle.clone();
        for e in &edits {
            edited = apply(&edited, e);
        }
        let verdict = gate(&f, &edited, "payments-prod");
        prop_assert!(verdict != Some(true), "{edits:?} turned DENIED into ALLOWED");
    }

    /// The same for a bundle that is allowed: an edit never changes ALLOWED into anything
    /// but ALLOWED or a failed verification.
    #[test]
    fn an_edited_allowed_bundle_fails_or_stays_allowed(edits in prop::collection::vec(edit_strategy(), 1..3)) {
        let f = ALLOWED.with(Fixture::clone);
        let bundle = f.bundle.clone();
        prop_assert_eq!(gate(&f, &bundle, "payments-prod"), Some(true));
        let mut edited = bundle.clone();
        for e in &edits {
            edited = apply(&edited, e);
        }
        let verdict = gate(&f, &edited, "payments-prod");
        prop_assert!(verdict != Some(false), "{edits:?} turned ALLOWED into DENIED");
    }

    /// Byte-level edits of the bundle file itself (JSON text) never turn DENIED into
    /// ALLOWED.
    #[test]
    fn a_byte_edit_of_the_bundle_file_never_allows(byte in any::<usize>(), value in any::<u8>()) {
        let f = DENIED.with(Fixture::clone);
        let bundle = f.bundle.clone();
        let mut json = bundle.to_json().into_bytes();
        let i = byte % json.len();
        json[i] = value;
        prop_assert!(gate_json(&f, &json, "payments-prod") != Some(true));
    }
}

thread_local! {
    static DENIED: Fixture = denied_release();
    static ALLOWED: Fixture = {
        let mut s = good_release();
        s.add_policy(evident_core::fixtures::PAYMENTS_PROD);
        Fixture::of(&s)
    };
}

/// One revocation: which signer's key (an index into the policy's signers), dated how many
/// hours before (or after) the evidence.
#[derive(Debug, Clone)]
struct Revocation {
    signer: u8,
    hours_from_evidence: i64,
}

fn revocation_strategy() -> impl Strategy<Value = Revocation> {
    (1u8..=8, -48i64..48).prop_map(|(signer, hours_from_evidence)| Revocation {
        signer,
        hours_from_evidence,
    })
}

fn revoke(s: &mut Scenario, r: &Revocation, recorded_at: i64) {
    let change = Change::RevokeKey {
        public_key: PublicKey::from_signing_key(&key(r.signer)).to_hex(),
        from: Some(time_text(t0() + r.hours_from_evidence * 3_600_000_000_000)),
        reason: "key compromised".into(),
    };
    // The log refuses nothing; a revocation the registry refuses (moved later) makes the
    // bundle fail, which the property accepts as "not allowed".
    s.log
        .append(
            EntryKind::Registry,
            recorded_at,
            sign_change(&change, &[&key(100)]),
        )
        .unwrap();
}

/// Attestations that can make a release fail or pass: each a signer, a kind and a verdict.
fn evidence_strategy() -> impl Strategy<Value = Vec<(u8, u8, bool)>> {
    prop::collection::vec((1u8..=8, 0u8..4, any::<bool>()), 0..8)
}

fn add_evidence(s: &mut Scenario, items: &[(u8, u8, bool)]) {
    add_evidence_at(s, items, t0());
}

/// [`add_evidence`], integrated at `time`.
fn add_evidence_at(s: &mut Scenario, items: &[(u8, u8, bool)], time: i64) {
    use evident_core::fixtures::{COMMIT, commit};
    use evident_core::predicates::{TEST_RESULT_V0_1, VULNS_V0_2};
    for (signer, kind, good) in items {
        let (predicate_type, subject, predicate): (&str, Value, Value) = match kind {
            0 => (
                TEST_RESULT_V0_1,
                commit(),
                json!({"result": if *good { "PASSED" } else { "FAILED" }}),
            ),
            1 => (
                VULNS_V0_2,
                artifact(),
                json!({"scanner": {"result": [{"id": "CVE-9", "severity": [{"method": "nvd", "score": if *good { "LOW" } else { "CRITICAL" }}]}]}}),
            ),
            2 => {
                // A reviewer's own decision (a signer's decision about someone else
                // counts for nothing, as the two-person properties show).
                let who = evident_core::fixtures::SIGNERS[usize::from(*signer) - 1].1;
                (
                    APPROVAL_V1,
                    commit(),
                    approval(
                        "dave@example.com",
                        &[(
                            who,
                            if *good {
                                "APPROVED"
                            } else {
                                "CHANGES_REQUESTED"
                            },
                        )],
                        COMMIT,
                    ),
                )
            }
            _ => (
                evident_core::predicates::SLSA_PROVENANCE_V1,
                artifact(),
                json!({"buildDefinition": {"resolvedDependencies": [{"uri": "git+https://git.example.com/payments", "digest": {"gitCommit": COMMIT}}]}}),
            ),
        };
        s.attest(*signer, predicate_type, subject, predicate, time);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Revocations recorded after the evidence, dated anywhere around it, never turn a
    /// denied release into an allowed one.
    #[test]
    fn a_backdated_revocation_never_allows_a_denied_release(
        drop in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        extra in evidence_strategy(),
        revocations in prop::collection::vec(revocation_strategy(), 1..4),
    ) {
        let policy = Policy::parse(evident_core::fixtures::PAYMENTS_PROD).unwrap();
        let mut s = good_release();
        for d in &drop {
            if !s.evidence.is_empty() {
                let i = d.index(s.evidence.len());
                s.evidence.remove(i);
            }
        }
        add_evidence(&mut s, &extra);
        let denied = s.verified_report(&policy).is_none_or(|r| !r.allowed);
        prop_assume!(denied);
        for (i, r) in revocations.iter().enumerate() {
            revoke(&mut s, r, t0() + DAY / 2 + i64::try_from(i).unwrap());
        }
        let after = s.verified_report(&policy);
        prop_assert!(after.is_none_or(|r| !r.allowed), "{revocations:?} allowed a denied release");
    }
}

/// What happens to a log after a decision: attestations integrated later (each a signer, a
/// kind and a verdict), backdated revocations recorded later, and a stricter policy version.
#[derive(Debug, Clone)]
struct Afterwards {
    evidence: Vec<(u8, u8, bool)>,
    revocations: Vec<Revocation>,
    stricter_policy: bool,
}

fn afterwards_strategy() -> impl Strategy<Value = Afterwards> {
    (
        evidence_strategy(),
        prop::collection::vec(revocation_strategy(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(evidence, revocations, stricter_policy)| Afterwards {
            evidence,
            revocations,
            stricter_policy,
        })
}

/// The gate's report on the artifact as of `at`, under the latest `payments-prod` of that
/// moment, from the bundle of the whole log verified as of `at`.
fn decided_as_of(s: &Scenario, at: i64) -> Option<evident_core::policy::Report> {
    let request = BundleRequest::artifact(&format!("sha256:{ARTIFACT_DIGEST}"));
    let verified = s
        .bundle()
        .verify_as_of(s.log.verifier(), s.log.genesis(), Some(at))
        .ok()?;
    let policy = verified.policy("payments-prod", None).ok()?.clone();
    verified.decide(&request, &policy, at).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Re-performing a decision as of its time gives the report the gate gave then, whatever
    /// the log recorded afterwards: new evidence, revocations dated back before the
    /// evidence, a new policy version.
    #[test]
    fn a_decision_re_performed_as_of_its_time_gives_the_same_report(
        drop in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        before in evidence_strategy(),
        at_the_gate in evidence_strategy(),
        after in afterwards_strategy(),
    ) {
        let mut s = good_release();
        s.add_policy(evident_core::fixtures::PAYMENTS_PROD);
        for d in &drop {
            if !s.evidence.is_empty() {
                let i = d.index(s.evidence.len());
                s.evidence.remove(i);
            }
        }
        add_evidence(&mut s, &before);
        let gate = t0() + DAY / 4;
        // Integrated at the very time asked about: it counts.
        add_evidence_at(&mut s, &at_the_gate, gate);
        // The decision at the time, from the log as it stood.
        let request = BundleRequest::artifact(&format!("sha256:{ARTIFACT_DIGEST}"));
        let then = s
            .bundle()
            .verify(s.log.verifier(), s.log.genesis())
            .ok()
            .and_then(|v| {
                let policy = v.policy("payments-prod", None).ok()?.clone();
                v.decide(&request, &policy, gate).ok()
            });
        prop_assert_eq!(&decided_as_of(&s, gate), &then);
        let approval_then = s
            .bundle()
            .verify(s.log.verifier(), s.log.genesis())
            .ok()
            .and_then(|v| v.policy_approval("payments-prod", 1).cloned());

        // Then the log goes on.
        let mut time = gate + 1;
        add_evidence_at(&mut s, &after.evidence, time);
        time += 1;
        for r in &after.revocations {
            revoke(&mut s, r, time);
            time += 1;
        }
        if after.stricter_policy {
            let stricter = evident_core::fixtures::PAYMENTS_PROD
                .replace("version = 1", "version = 2")
                .replace("min_approvals = 2", "min_approvals = 3");
            let env = evident_core::dsse::Envelope::sign(
                evident_core::policy::POLICY_PAYLOAD_TYPE,
                stricter.into_bytes(),
                &[&key(100)],
            );
            s.log.append(EntryKind::Policy, time, env).unwrap();
        }
        // A registry change the registry refuses (a key revoked twice) is one the server
        // never logs; such a log verifies at no time.
        prop_assume!(s.bundle().verify(s.log.verifier(), s.log.genesis()).is_ok());
        prop_assert_eq!(decided_as_of(&s, gate), then);
        let again = s
            .bundle()
            .verify_as_of(s.log.verifier(), s.log.genesis(), Some(gate))
            .ok()
            .map(|v| (v.policy_approval("payments-prod", 1).cloned(), v.policy_approval("payments-prod", 2).is_some()));
        prop_assert_eq!(again, approval_then.map(|a| (Some(a), false)));
    }
}

//! The release gate: may this artifact or release ship under this policy?
//!
//! The evidence bundle (fetched from the ledger, or read from a file) is verified under the
//! pinned log key and genesis, its checkpoint is compared with the last one this machine
//! saw, and the policy is evaluated locally. A pipeline calls [`Gate::decide`], then may
//! record the verdict in the ledger with [`record_verdict`]:
//!
//! ```no_run
//! # async fn example(
//! #     client: &mut evident_client::Client,
//! #     log_key: &evident_core::note::Verifier,
//! #     signing_key: &evident_core::SigningKey,
//! #     witnesses: &evident_core::cosign::WitnessPolicy,
//! # ) -> Result<bool, evident_client::ClientError> {
//! use evident_client::gate::{Evidence, Gate, PolicyRef, read_genesis, record_verdict};
//! use evident_client::{CheckpointState, Release};
//!
//! let genesis = read_genesis("genesis.json".as_ref())?;
//! let state_file = CheckpointState::default_path();
//! // `witnesses`: the K of N witnesses whose cosignatures the evidence must carry
//! // (`WitnessPolicy::none()` to require none).
//! let gate = Gate { log_key, genesis: &genesis, state_file: &state_file, witnesses };
//! let release = Release::Named("payments@1.4.2".into());
//! let verdict = gate
//!     .decide(Evidence::Online(client), &release, &PolicyRef::parse("prod")?)
//!     .await?;
//! record_verdict(client, Some(log_key), &state_file, &verdict, signing_key).await?;
//! Ok(verdict.report.allowed)
//! # }
//! ```

use std::path::Path;

use evident_core::Hash;
use evident_core::SigningKey;
use evident_core::bundle::{Bundle, BundleError, BundleRequest, VerifiedBundle};
use evident_core::cosign::WitnessPolicy;
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::note::{Checkpoint, Verifier};
use evident_core::policy::{Policy, Report};
use evident_core::receipt::Receipt;
use evident_core::registry::GenesisDocument;
use serde_json::json;

use crate::{CheckpointState, Client, ClientError, Release, now_nanos, time_text};

/// The release named by an artifact (`ALGORITHM:HEX`) or, failing that, a release
/// (`NAME@VERSION`); neither is an empty release name, which no bundle answers.
pub fn target(artifact: Option<&str>, release: Option<&str>) -> Release {
    match (artifact, release) {
        (Some(a), _) => Release::Artifact(a.to_owned()),
        (None, Some(r)) => Release::Named(r.to_owned()),
        (None, None) => Release::Named(String::new()),
    }
}

/// The request a bundle must answer: the artifact or the release asked about.
pub fn asked(release: &Release) -> Result<BundleRequest, ClientError> {
    match release {
        Release::Artifact(a) => Ok(BundleRequest::artifact(a)),
        Release::Named(n) => BundleRequest::release(n)
            .ok_or_else(|| ClientError::Invalid(format!("release {n:?} is not NAME@VERSION"))),
    }
}

/// A policy as asked for: `NAME` (the latest version) or `NAME@VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRef {
    /// The policy's name.
    pub name: String,
    /// The version, or `None` for the latest in the bundle.
    pub version: Option<u64>,
}

impl PolicyRef {
    /// Parses `NAME` or `NAME@VERSION`.
    pub fn parse(text: &str) -> Result<PolicyRef, ClientError> {
        match text.split_once('@') {
            Some((name, v)) => {
                let version = v.parse::<u64>().map_err(|e| {
                    ClientError::input(format!("policy version {v:?} is not a number"), e)
                })?;
                Ok(PolicyRef {
                    name: name.to_owned(),
                    version: Some(version),
                })
            }
            None => Ok(PolicyRef {
                name: text.to_owned(),
                version: None,
            }),
        }
    }
}

/// Reads a log's genesis document (`genesis.json`, written by `evidentd` beside `log.pub`):
/// the administrators the trust registry starts from.
pub fn read_genesis(path: &Path) -> Result<GenesisDocument, ClientError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ClientError::input(format!("reading {}", path.display()), e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ClientError::input(format!("{} is not a genesis document", path.display()), e))
}

/// Reads an evidence bundle file (from `evident bundle export`).
pub fn read_bundle(path: &Path) -> Result<Bundle, ClientError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ClientError::input(format!("reading {}", path.display()), e))?;
    Ok(Bundle::from_json(&bytes)?)
}

/// The gate's decision over a verified bundle (`VerifiedBundle::decide`): what is evaluated
/// comes from the request and from release attestations by the policy's release signers,
/// never from the bundle's unsigned data. A bundle that answers another request, or a
/// release nobody trusted declared, is a [`ClientError::Verification`]; a policy that cannot
/// be asked about a release by name is [`ClientError::Invalid`].
pub fn decide(
    verified: &VerifiedBundle,
    release: &Release,
    policy: &Policy,
    now: i64,
) -> Result<Report, ClientError> {
    verified
        .decide(&asked(release)?, policy, now)
        .map_err(|e| match e {
            BundleError::Policy(_) => ClientError::Invalid(e.to_string()),
            e => ClientError::Verification(e.to_string()),
        })
}

/// Where the gate's evidence comes from.
#[derive(Debug)]
pub enum Evidence<'a> {
    /// Fetched from the ledger; its checkpoint must extend every checkpoint seen before.
    Online(&'a mut Client),
    /// A bundle read from a file, decided offline.
    Offline(Bundle),
}

/// What the gate trusts: the log's key, its genesis, and the checkpoint state of this
/// machine.
#[derive(Debug, Clone, Copy)]
pub struct Gate<'a> {
    /// The log's verifier key.
    pub log_key: &'a Verifier,
    /// The log's genesis document.
    pub genesis: &'a GenesisDocument,
    /// The checkpoint state file ([`CheckpointState`]).
    pub state_file: &'a Path,
    /// The witnesses whose cosignatures the bundle's checkpoint must carry (none: any
    /// checkpoint the log signed).
    pub witnesses: &'a WitnessPolicy,
}

/// The gate's verdict: the policy's report over verified evidence.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The evaluation: `allowed`, the artifacts and every control's status.
    pub report: Report,
    /// The policy version evaluated.
    pub policy: Policy,
    /// The checkpoint the evidence was verified at.
    pub checkpoint: Checkpoint,
}

impl Gate<'_> {
    /// Verifies the evidence about `release` and evaluates `policy` over it, now.
    ///
    /// A denial is a verdict (`report.allowed` false), not an error. Evidence that does
    /// not verify, a fork, a rollback or an older bundle than seen before is an error for
    /// which [`ClientError::is_verification_failure`] holds.
    pub async fn decide(
        &self,
        evidence: Evidence<'_>,
        release: &Release,
        policy: &PolicyRef,
    ) -> Result<Verdict, ClientError> {
        self.decide_as_of(evidence, release, policy, None).await
    }

    /// [`Gate::decide`], re-performed as of a past time `as_of` (nanoseconds) when given:
    /// the evidence is verified whole, then only what the log held at that time counts —
    /// its registry, the latest policy version of `policy.name` then, the evidence
    /// integrated by then — and the policy is evaluated at that time. An auditor gets the
    /// answer the gate gave then, whatever was logged since. A time in the future is
    /// [`ClientError::Invalid`].
    pub async fn decide_as_of(
        &self,
        evidence: Evidence<'_>,
        release: &Release,
        policy: &PolicyRef,
        as_of: Option<i64>,
    ) -> Result<Verdict, ClientError> {
        let now = now_nanos();
        if let Some(t) = as_of.filter(|t| *t > now) {
            return Err(ClientError::Invalid(format!(
                "--as-of {} is in the future: give a past time, such as the deploy's",
                time_text(t)
            )));
        }
        let mut state = CheckpointState::load(self.state_file)?;
        let mut witnessed = self.witnesses.threshold() > 0;
        let (mut bundle, client) = match evidence {
            Evidence::Offline(bundle) => (bundle, None),
            Evidence::Online(client) => {
                let bundle = self.fetch(client, &mut state, release, witnessed).await?;
                (bundle, Some(client))
            }
        };
        let mut verified = self.verified(&state, &bundle, as_of)?;
        // A policy that requires witnesses is decided on evidence proven at a witnessed
        // checkpoint: fetched again at one when the first answer was not.
        if let Some(client) = client {
            let wants = verified
                .policy(&policy.name, policy.version)
                .is_ok_and(|p| p.witnesses.is_some());
            if wants && !witnessed {
                witnessed = true;
                bundle = self.fetch(client, &mut state, release, witnessed).await?;
                verified = self.verified(&state, &bundle, as_of)?;
            }
        }
        let policy = verified
            .policy(&policy.name, policy.version)
            .map_err(|e| match as_of {
                Some(t) => ClientError::Invalid(format!("as of {}: {e}", time_text(t))),
                None => ClientError::Invalid(e.to_string()),
            })?;
        let report = decide(&verified, release, policy, as_of.unwrap_or(now))?;
        Ok(Verdict {
            report,
            policy: policy.clone(),
            checkpoint: verified.checkpoint().clone(),
        })
    }
}

impl Gate<'_> {
    /// The bundle about `release` from the ledger (proven at the latest witnessed checkpoint
    /// when `witnessed`), its checkpoint proven to extend every one seen before.
    async fn fetch(
        &self,
        client: &mut Client,
        state: &mut CheckpointState,
        release: &Release,
        witnessed: bool,
    ) -> Result<Bundle, ClientError> {
        let bundle = client.release_bundle_at(release, witnessed).await?;
        state
            .advance_witnessed(client, self.log_key, self.witnesses, &bundle.checkpoint)
            .await?;
        state.save(self.state_file)?;
        Ok(bundle)
    }

    /// The bundle verified under the log key and genesis, its checkpoint compared with the
    /// ones seen before and held to the witnesses required.
    fn verified(
        &self,
        state: &CheckpointState,
        bundle: &Bundle,
        as_of: Option<i64>,
    ) -> Result<evident_core::bundle::VerifiedBundle, ClientError> {
        let verified = bundle
            .verify_as_of(self.log_key, self.genesis, as_of)
            .map_err(|e| ClientError::Verification(e.to_string()))?;
        state.check_bundle(self.log_key, verified.checkpoint())?;
        crate::check_witnesses(self.witnesses, &bundle.checkpoint, verified.checkpoint())?;
        Ok(verified)
    }
}

/// The gate's verdict as an SLSA verification summary about the artifacts, signed with
/// `key`: the deploy record auditors find next to the evidence it was based on.
pub fn verdict_envelope(verdict: &Verdict, key: &SigningKey, now: i64) -> Envelope {
    let report = &verdict.report;
    let checkpoint = &verdict.checkpoint;
    let subjects: Vec<serde_json::Value> = report
        .artifacts
        .iter()
        .filter_map(|a| a.split_once(':'))
        .map(|(alg, hex)| json!({"digest": {alg: hex}}))
        .collect();
    let statement = json!({
        "_type": evident_core::statement::STATEMENT_V1_TYPE,
        "subject": subjects,
        "predicateType": evident_core::predicates::VERIFICATION_SUMMARY_V1,
        "predicate": {
            "verifier": {"id": format!("evident/{}", env!("CARGO_PKG_VERSION"))},
            "timeVerified": time_text(now),
            "resourceUri": report.artifacts.first().cloned().unwrap_or_default(),
            "policy": {
                "uri": format!("evident:policy/{}", report.policy),
                "digest": {"sha256": Hash::sha256(verdict.policy.source.as_bytes()).to_hex()},
            },
            "verificationResult": if report.allowed { "PASSED" } else { "FAILED" },
            "verifiedLevels": [],
            "evident": {
                "checkpoint": {"origin": checkpoint.origin, "treeSize": checkpoint.size, "rootHash": checkpoint.root.to_hex()},
                "controls": report.controls,
            },
        },
    });
    let payload = serde_json::to_vec(&statement).expect("a JSON value serializes");
    Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &[key])
}

/// Records the gate's verdict in the ledger ([`verdict_envelope`], signed with the deploy
/// job's key, registered for `https://slsa.dev/verification_summary/v1`) and returns its
/// receipt; with `log_key` the receipt is verified as in [`crate::submit::submit_signed`].
pub async fn record_verdict(
    client: &mut Client,
    log_key: Option<&Verifier>,
    state_file: &Path,
    verdict: &Verdict,
    key: &SigningKey,
) -> Result<Receipt, ClientError> {
    let envelope = verdict_envelope(verdict, key, now_nanos());
    let (receipt, _) = crate::submit::submit_signed(client, log_key, state_file, &envelope).await?;
    Ok(receipt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_refs_parse() {
        assert_eq!(
            PolicyRef::parse("prod@3").ok(),
            Some(PolicyRef {
                name: "prod".into(),
                version: Some(3)
            })
        );
        assert_eq!(
            PolicyRef::parse("prod").ok(),
            Some(PolicyRef {
                name: "prod".into(),
                version: None
            })
        );
        let error = PolicyRef::parse("prod@x").err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("policy version \"x\" is not a number")
        );
    }

    #[test]
    fn the_target_prefers_the_artifact() {
        assert!(matches!(
            target(Some("sha256:ab"), Some("app@1")),
            Release::Artifact(a) if a == "sha256:ab"
        ));
        assert!(matches!(target(None, Some("app@1")), Release::Named(n) if n == "app@1"));
        let error = asked(&Release::Named("app".into())).err();
        assert!(
            matches!(error, Some(ClientError::Invalid(m)) if m == "release \"app\" is not NAME@VERSION")
        );
    }
}

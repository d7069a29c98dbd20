//! The predicates Evident understands out of the box, read from a Statement's predicate:
//! SLSA provenance v1, test result v0.1, vulnerability scan v0.2, release v0.1, SLSA
//! verification summary v1, and Evident's approval v1 (`docs/predicates/approval.md`).
//!
//! Readers are lenient about fields they do not need and never fail: a predicate that lacks
//! a field yields nothing for it, and the policy that needs it says so.

use serde_json::Value;

/// SLSA provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// in-toto test result v0.1.
pub const TEST_RESULT_V0_1: &str = "https://in-toto.io/attestation/test-result/v0.1";
/// in-toto vulnerability scan v0.2.
pub const VULNS_V0_2: &str = "https://in-toto.io/attestation/vulns/v0.2";
/// in-toto release v0.1.
pub const RELEASE_V0_1: &str = "https://in-toto.io/attestation/release/v0.1";
/// SLSA verification summary v1.
pub const VERIFICATION_SUMMARY_V1: &str = "https://slsa.dev/verification_summary/v1";
/// Evident's approval predicate v1.
pub const APPROVAL_V1: &str = "https://evident.dev/attestation/approval/v1";

/// Source commits an artifact was built from: the `gitCommit` (or, for `git+` URIs,
/// `sha1`) digests of a provenance's `buildDefinition.resolvedDependencies`.
pub fn provenance_source_commits(predicate: &Value) -> Vec<String> {
    let deps = predicate
        .pointer("/buildDefinition/resolvedDependencies")
        .and_then(Value::as_array);
    let mut out = Vec::new();
    for dep in deps.into_iter().flatten() {
        let digest = dep.get("digest");
        let git_uri = dep
            .get("uri")
            .and_then(Value::as_str)
            .is_some_and(|u| u.starts_with("git+"));
        if let Some(commit) = digest
            .and_then(|d| d.get("gitCommit"))
            .and_then(Value::as_str)
        {
            out.push(commit.to_ascii_lowercase());
        } else if git_uri {
            if let Some(sha1) = digest.and_then(|d| d.get("sha1")).and_then(Value::as_str) {
                out.push(sha1.to_ascii_lowercase());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A severity Evident cannot read (a CVSS vector, an unknown word): a policy with a
/// severity threshold treats it as failing, never as harmless.
pub const UNREADABLE: &str = "UNREADABLE";

/// Vulnerability severities, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// No or unknown severity.
    None,
    /// LOW, or CVSS below 4.0.
    Low,
    /// MEDIUM, or CVSS 4.0 to 6.9.
    Medium,
    /// HIGH, or CVSS 7.0 to 8.9.
    High,
    /// CRITICAL, or CVSS 9.0 and above.
    Critical,
}

impl Severity {
    /// Parses `LOW`/`MEDIUM`/`HIGH`/`CRITICAL` (any case) or a CVSS base score.
    pub fn parse(text: &str) -> Option<Severity> {
        match text.trim().to_ascii_uppercase().as_str() {
            "NONE" => Some(Severity::None),
            "LOW" => Some(Severity::Low),
            "MEDIUM" | "MODERATE" => Some(Severity::Medium),
            "HIGH" => Some(Severity::High),
            "CRITICAL" => Some(Severity::Critical),
            other => other
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|score| match score {
                    s if s >= 9.0 => Severity::Critical,
                    s if s >= 7.0 => Severity::High,
                    s if s >= 4.0 => Severity::Medium,
                    s if s > 0.0 => Severity::Low,
                    _ => Severity::None,
                }),
        }
    }

    /// The upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "NONE",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// One finding of a vulnerability scan: its id and the highest severity any method gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// e.g. `CVE-2024-0001`.
    pub id: String,
    /// The highest severity reported for it, or the text of a score Evident cannot read
    /// (a policy with a severity threshold fails such a finding, never ignores it).
    pub severity: Result<Severity, String>,
}

/// The findings of a vulns v0.2 predicate (`scanner.result[]`), or `None` when the
/// predicate has no result list at all (a scan that says nothing proves nothing).
///
/// A finding's severity is readable only when it is a non-empty list of `{method, score}`
/// objects whose every score Evident can read; anything else — a bare string, an object, a
/// missing or empty list, a score that is a vector or an unknown word — is unreadable, and a
/// policy with a severity threshold fails it. A finding that is not an object, or has no
/// string `id`, is unreadable too, with no id an allowlist could name.
pub fn scan_findings(predicate: &Value) -> Option<Vec<Finding>> {
    let results = predicate.pointer("/scanner/result")?.as_array()?;
    Some(results.iter().map(finding).collect())
}

fn finding(result: &Value) -> Finding {
    let id = result.get("id").and_then(Value::as_str);
    let severity = match (id, result.get("severity")) {
        (None, _) => Err("a finding with no id".to_owned()),
        (Some(_), None) => Err("no severity".to_owned()),
        (Some(_), Some(Value::Array(list))) if list.is_empty() => {
            Err("an empty severity list".to_owned())
        }
        (Some(_), Some(Value::Array(list))) => list.iter().try_fold(Severity::None, |best, s| {
            let score = s.get("score");
            let parsed = match score {
                Some(Value::String(text)) => Severity::parse(text),
                Some(Value::Number(n)) => n.as_f64().and_then(|f| Severity::parse(&f.to_string())),
                _ => None,
            };
            parsed
                .map(|severity| best.max(severity))
                .ok_or_else(|| match score {
                    None => "a severity with no score".to_owned(),
                    Some(score) => format!(
                        "score {score} is not LOW, MEDIUM, HIGH, CRITICAL or a CVSS base score"
                    ),
                })
        }),
        (Some(_), Some(other)) => Err(format!(
            "{other} is not a list of {{method, score}} objects"
        )),
    };
    Finding {
        id: id.unwrap_or(NO_ID).to_owned(),
        severity,
    }
}

/// The id shown for a finding that has none; no allowlist entry matches it.
pub const NO_ID: &str = "(no id)";

/// A reviewer's decision in an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// `APPROVED`.
    Approved,
    /// `CHANGES_REQUESTED`.
    ChangesRequested,
    /// Anything else (e.g. `COMMENTED`).
    Other,
}

impl Decision {
    /// `APPROVED`, `CHANGES_REQUESTED`, or `OTHER` for anything else.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "APPROVED",
            Decision::ChangesRequested => "CHANGES_REQUESTED",
            Decision::Other => "OTHER",
        }
    }
}

/// One reviewer of an approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The reviewer's identity, as in the trust registry.
    pub identity: String,
    /// The decision.
    pub decision: Decision,
    /// When (RFC 3339), as the review system recorded it.
    pub time: String,
}

/// An approval v1 predicate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Approval {
    /// The change's author.
    pub author: String,
    /// The change (pull request, merge request) it approves.
    pub change_ref: String,
    /// The commit the reviewers saw.
    pub reviewed_commit: String,
    /// The reviews, in order.
    pub reviewers: Vec<Review>,
}

/// Reads an approval v1 predicate.
pub fn approval(predicate: &Value) -> Approval {
    let text = |key: &str| {
        predicate
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Approval {
        author: text("author"),
        change_ref: text("changeRef"),
        reviewed_commit: text("reviewedCommit"),
        reviewers: predicate
            .get("reviewers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| Review {
                identity: r
                    .get("identity")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                decision: match r.get("decision").and_then(Value::as_str) {
                    Some("APPROVED") => Decision::Approved,
                    Some("CHANGES_REQUESTED") => Decision::ChangesRequested,
                    _ => Decision::Other,
                },
                time: r
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect(),
    }
}

impl Approval {
    /// Each reviewer's latest decision (by position: reviews are listed in order).
    pub fn latest_decisions(&self) -> Vec<(&str, Decision)> {
        let mut out: Vec<(&str, Decision)> = Vec::new();
        for review in &self.reviewers {
            match out.iter_mut().find(|(who, _)| *who == review.identity) {
                Some(slot) => slot.1 = review.decision,
                None => out.push((&review.identity, review.decision)),
            }
        }
        out
    }
}

/// What a test-result v0.1 predicate says: its result, the configurations (suites) it ran,
/// and the tests that passed, warned and failed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestResult {
    /// `result` (`PASSED`, `WARNED`, `FAILED`), or empty when missing.
    pub result: String,
    /// The names (or URIs) of `configuration`'s resource descriptors.
    pub configuration: Vec<String>,
    /// `url`, where the run is published, when given.
    pub url: Option<String>,
    /// `passedTests`.
    pub passed: Vec<String>,
    /// `warnedTests`.
    pub warned: Vec<String>,
    /// `failedTests`.
    pub failed: Vec<String>,
}

/// Reads a test-result v0.1 predicate, leniently: a field that is missing or of another
/// JSON type reads as empty.
pub fn test_result(predicate: &Value) -> TestResult {
    let names = |key: &str| -> Vec<String> {
        predicate
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    TestResult {
        result: predicate
            .get("result")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        configuration: predicate
            .get("configuration")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                c.get("name")
                    .or_else(|| c.get("uri"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect(),
        url: predicate
            .get("url")
            .and_then(Value::as_str)
            .map(str::to_owned),
        passed: names("passedTests"),
        warned: names("warnedTests"),
        failed: names("failedTests"),
    }
}

/// A release v0.1 predicate's name and version, from its `purl` (`pkg:type/ns/name@version`)
/// or its `releaseId` (`name@version`).
pub fn release_name_version(predicate: &Value) -> Option<(String, String)> {
    let text = predicate
        .get("purl")
        .and_then(Value::as_str)
        .or_else(|| predicate.get("releaseId").and_then(Value::as_str))?;
    let without_qualifiers = text.split(['?', '#']).next().unwrap_or(text);
    let (path, version) = without_qualifiers.rsplit_once('@')?;
    let name = path.rsplit('/').next().unwrap_or(path);
    let name = name.strip_prefix("pkg:").unwrap_or(name);
    Some((name.to_owned(), version.to_owned()))
}

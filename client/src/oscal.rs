//! A report as an OSCAL 1.1.2 assessment-results document (NIST's Open Security Controls
//! Assessment Language): what an auditor's GRC tool imports (`docs/REPORT.md`).
//!
//! - One result for the report's releases (a period, or one release).
//! - One observation per release and policy control (per artifact when a release has
//!   several): its status and reason, and as relevant evidence each log entry it used (index
//!   and leaf hash), linked to the checkpoint they were proven against.
//! - One finding per framework control the policy's controls evidence
//!   ([`crate::report::FrameworkLink`]): satisfied when every observation behind it passed,
//!   with those observations related.
//! - The checkpoint and the log key in the back matter.
//!
//! Every UUID is a version-5 UUID of the subject it names (the log, the report's scope, the
//! release, the control, the framework control), so a report made again over the same log
//! keeps its UUIDs, and the same report gives the same document, byte for byte. Nothing here decides anything: the observations carry the
//! verdicts the report already holds, and a finding only says whether the Evident controls
//! linked to a framework control passed.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::report::{ControlRow, Document, ReleaseReport, status_label};

/// The OSCAL version of the documents written.
pub const OSCAL_VERSION: &str = "1.1.2";

/// The namespace of Evident's OSCAL properties.
pub const NS: &str = "https://evident.dev/ns/oscal";

/// The namespace of every UUID in the documents: the version-5 UUID of [`NS`] as a URL.
fn namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, NS.as_bytes())
}

/// The UUID of `parts`, joined: the same parts always give the same UUID.
fn uuid_of(parts: &[&str]) -> String {
    Uuid::new_v5(&namespace(), parts.join("\u{1f}").as_bytes()).to_string()
}

/// An OSCAL property in Evident's namespace. OSCAL refuses a value that is empty or
/// starts or ends with white space, so such a value is written `(none)` or trimmed.
fn prop(name: &str, value: &str) -> Value {
    let value = value.trim();
    json!({"name": name, "ns": NS, "value": if value.is_empty() { "(none)" } else { value }})
}

/// A framework control as an OSCAL token (`^(\p{L}|_)(\p{L}|\p{N}|[.\-_])*$`):
/// `FRAMEWORK_CONTROL`, lower case, `CM-3(2)` written `cm-3.2`, anything else `-`.
pub fn control_token(framework: &str, control: &str) -> String {
    let clean = |text: &str| -> String {
        text.to_lowercase()
            .chars()
            .filter(|c| *c != ')')
            .map(|c| match c {
                '(' => '.',
                c if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') => c,
                _ => '-',
            })
            .collect()
    };
    let token = format!("{}_{}", clean(framework), clean(control));
    match token.chars().next() {
        Some(c) if c.is_alphabetic() || c == '_' => token,
        _ => format!("_{token}"),
    }
}

/// A framework control and the observations of the Evident controls linked to it.
struct Linked<'a> {
    title: Option<String>,
    known: bool,
    rows: Vec<&'a Observed<'a>>,
}

/// One observation: a control's outcome for one release.
struct Observed<'a> {
    uuid: String,
    release: &'a ReleaseReport,
    row: &'a ControlRow,
}

/// The document of `doc`, as JSON.
pub fn assessment_results(doc: &Document) -> Value {
    let root = doc.checkpoint.root_hex.as_str();
    let size = doc.checkpoint.size.to_string();
    // Per subject, as OSCAL asks: the same log and scope (the title names the release or the
    // period) give the same UUIDs in every revision of the report.
    let base = [doc.log_origin.as_str(), doc.title.as_str()];
    let id = |kind: &str, rest: &[&str]| {
        let mut parts: Vec<&str> = vec![kind];
        parts.extend(base);
        parts.extend(rest);
        uuid_of(&parts)
    };
    let checkpoint_resource = id("checkpoint", &[]);
    let key_resource = id("log-key", &[]);
    let policies_resource = id("policies", &[]);

    let mut observed = Vec::new();
    for release in &doc.releases {
        for row in &release.controls {
            let artifact = row.artifact.as_deref().unwrap_or("");
            observed.push(Observed {
                uuid: id("observation", &[&release.label, &row.id, artifact]),
                release,
                row,
            });
        }
    }
    let observations: Vec<Value> = observed
        .iter()
        .map(|o| observation(o, &checkpoint_resource, doc))
        .collect();

    // Each framework control, with the observations of the Evident controls linked to it.
    let mut by_control: BTreeMap<(String, String), Linked> = BTreeMap::new();
    for o in &observed {
        for link in &o.row.frameworks {
            by_control
                .entry((link.framework.clone(), link.control.clone()))
                .or_insert_with(|| Linked {
                    title: link.title.clone(),
                    known: link.known,
                    rows: Vec::new(),
                })
                .rows
                .push(o);
        }
    }
    let findings: Vec<Value> = by_control
        .iter()
        .map(|((framework, control), Linked { title, known, rows })| {
            let token = control_token(framework, control);
            let passed = rows
                .iter()
                .filter(|o| o.row.status == evident_core::policy::Status::Pass)
                .count();
            let satisfied = passed == rows.len();
            let mut releases: Vec<&str> = rows.iter().map(|o| o.release.label.as_str()).collect();
            releases.dedup();
            let controls: Vec<String> = {
                let mut ids: Vec<String> = rows.iter().map(|o| o.row.id.clone()).collect();
                ids.sort();
                ids.dedup();
                ids
            };
            let title_text = match title {
                Some(t) => format!("{framework}:{control} {t}"),
                None => format!("{framework}:{control}"),
            };
            let mut props = vec![
                prop("framework", framework),
                prop("framework-control", control),
                prop("evident-controls", &controls.join(" ")),
            ];
            if !known {
                props.push(prop("in-catalogue", "false"));
            }
            json!({
                "uuid": id("finding", &[framework, control]),
                "title": title_text,
                "description": format!(
                    "{passed} of {} outcomes of the Evident controls that evidence \
                     {framework}:{control} ({}) passed, over {} release(s): {}. Whether the \
                     framework control is met is the assessor's judgement over these observations.",
                    rows.len(),
                    controls.join(", "),
                    releases.len(),
                    releases.join(", ")
                ),
                "props": props,
                "target": {
                    "type": "objective-id",
                    "target-id": token,
                    "status": {"state": if satisfied { "satisfied" } else { "not-satisfied" }},
                },
                "related-observations": rows
                    .iter()
                    .map(|o| json!({"observation-uuid": o.uuid}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();

    let control_selection = if by_control.is_empty() {
        json!({
            "description": "No framework control is linked to the policy's controls: the \
                            observations stand alone (docs/FRAMEWORKS.md)."
        })
    } else {
        json!({
            "description": "The framework controls the policy's controls evidence, by the \
                            policy's own links and the framework catalogue's mappings.",
            "include-controls": by_control
                .keys()
                .map(|(f, c)| json!({"control-id": control_token(f, c)}))
                .collect::<Vec<_>>(),
        })
    };
    // The period: from the earliest evidence the report shows to the time it was made.
    let start = doc
        .releases
        .iter()
        .flat_map(|r| r.attestations.iter().map(|a| a.integrated_time.as_str()))
        .min()
        .unwrap_or(doc.generated_at.as_str());

    let when = match &doc.as_of {
        Some(t) => format!(
            "at {}, re-performing the decisions as of {t} with the trust registry, policy \
             versions and evidence the log held then,",
            doc.generated_at
        ),
        None => format!("at {}", doc.generated_at),
    };
    let mut result_props = vec![
        prop("log-origin", &doc.log_origin),
        prop("tree-size", &size),
        prop("root-hash", root),
    ];
    if let Some(t) = &doc.as_of {
        result_props.push(prop("as-of", t));
    }
    let mut result = json!({
        "uuid": id("result", &[]),
        "title": doc.title,
        "description": format!(
            "{} release(s) evaluated by Evident {when} against the checkpoint of {size} \
             entries of {}, every piece of evidence verified under the pinned log key and \
             proven included in that checkpoint.",
            doc.releases.len(),
            doc.log_origin
        ),
        "start": start,
        "end": doc.generated_at,
        "props": result_props,
        "reviewed-controls": {"control-selections": [control_selection]},
    });
    if !observations.is_empty() {
        result["observations"] = Value::Array(observations);
    }
    if !findings.is_empty() {
        result["findings"] = Value::Array(findings);
    }

    let policies: Vec<String> = {
        let mut p: Vec<String> = doc
            .releases
            .iter()
            .map(|r| {
                format!(
                    "{}@{} (sha256 {})",
                    r.policy.name, r.policy.version, r.policy.sha256
                )
            })
            .collect();
        p.sort();
        p.dedup();
        p
    };
    json!({
        "assessment-results": {
            "uuid": id("assessment-results", &[]),
            "metadata": {
                "title": doc.title,
                "last-modified": doc.generated_at,
                "version": size,
                "oscal-version": OSCAL_VERSION,
                "props": [prop("generator", concat!("evident ", env!("CARGO_PKG_VERSION")))],
            },
            "import-ap": {
                "href": format!("#{policies_resource}"),
                "remarks": "Evident has no assessment plan of its own: the plan is the release \
                            policies in the back matter, applied by the deploy gate.",
            },
            "results": [result],
            "back-matter": {
                "resources": [
                    {
                        "uuid": policies_resource,
                        "title": "Release policies applied",
                        "description": if policies.is_empty() { "(none)".to_owned() } else { policies.join("; ") },
                    },
                    {
                        "uuid": checkpoint_resource,
                        "title": format!("Signed checkpoint of {size} entries of {}", doc.log_origin),
                        "description": format!(
                            "Root hash {root} (base64 {}). Every log entry cited was proven \
                             included in this tree.",
                            doc.checkpoint.root_base64
                        ),
                        "props": [prop("tree-size", &size), prop("root-hash", root)],
                    },
                    {
                        "uuid": key_resource,
                        "title": "Log verifier key",
                        "description": format!("The checkpoint's signature was verified under {}.", doc.log_key),
                    },
                ],
            },
        }
    })
}

/// An observation: one control's outcome for one release.
fn observation(o: &Observed, checkpoint: &str, doc: &Document) -> Value {
    let row = o.row;
    let mut props = vec![
        prop("release", &o.release.label),
        prop("control", &row.id),
        prop("status", status_label(row.status)),
        prop("verdict", o.release.verdict.as_str()),
        prop(
            "policy",
            &format!("{}@{}", o.release.policy.name, o.release.policy.version),
        ),
    ];
    if let Some(artifact) = &row.artifact {
        props.push(prop("artifact", artifact));
    }
    if let Some(predicate_type) = &row.predicate_type {
        props.push(prop("predicate-type", predicate_type));
    }
    // The findings the policy's allowlist let through for this row, with its reasons.
    let exceptions: Vec<String> = o
        .release
        .exceptions
        .iter()
        .filter(|e| e.control == row.id && e.artifact == row.artifact)
        .map(|e| {
            props.push(prop("exception", &e.finding));
            format!("{} ({}): {}", e.finding, e.severity, e.reason)
        })
        .collect();
    let reason = if row.reason.trim().is_empty() {
        "(no reason given)"
    } else {
        row.reason.trim()
    };
    let description = if exceptions.is_empty() {
        reason.to_owned()
    } else {
        format!(
            "{reason}. Accepted by the policy's allowlist: {}.",
            exceptions.join("; ")
        )
    };
    let mut value = json!({
        "uuid": o.uuid,
        "title": format!("{}: {} {}", o.release.label, row.id, status_label(row.status)),
        "description": description,
        "props": props,
        "methods": ["TEST"],
        "types": ["control-objective"],
        "collected": doc.generated_at,
    });
    if !row.entries.is_empty() {
        value["relevant-evidence"] = Value::Array(
            row.entries
                .iter()
                .map(|e| {
                    json!({
                        "description": format!(
                            "Log entry {} (leaf hash {}), proven included in the checkpoint of \
                             {} entries.",
                            e.index, e.leaf_hash, doc.checkpoint.size
                        ),
                        "props": [
                            prop("log-index", &e.index.to_string()),
                            prop("leaf-hash", &e.leaf_hash),
                        ],
                        "links": [{"href": format!("#{checkpoint}"), "rel": "reference"}],
                    })
                })
                .collect(),
        );
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framework_controls_become_oscal_tokens() {
        assert_eq!(control_token("soc2", "CC8.1"), "soc2_cc8.1");
        assert_eq!(
            control_token("nist-800-53r5", "CM-3(2)"),
            "nist-800-53r5_cm-3.2"
        );
        assert_eq!(control_token("pci-dss-4.0", "6.5.1"), "pci-dss-4.0_6.5.1");
        assert_eq!(
            control_token("iso-27001-2022", "A.8.32"),
            "iso-27001-2022_a.8.32"
        );
        assert_eq!(control_token("9fw", "X 1"), "_9fw_x-1");
    }

    #[test]
    fn the_same_parts_give_the_same_version_5_uuid() {
        let a = uuid_of(&["finding", "x"]);
        assert_eq!(a, uuid_of(&["finding", "x"]));
        assert_ne!(a, uuid_of(&["finding", "y"]));
        // Parts are not merely concatenated.
        assert_ne!(uuid_of(&["ab", "c"]), uuid_of(&["a", "bc"]));
        assert_eq!(Uuid::parse_str(&a).unwrap().get_version_num(), 5);
    }
}

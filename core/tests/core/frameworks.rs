//! The framework catalogue: the built-in one is complete for the frameworks it promises,
//! quotes titles only where their licence allows, and every mapping names controls it
//! lists; a user's file extends it or is refused, changing nothing; and what a policy
//! control evidences is the union of what it names and what the catalogue maps, each with
//! where it comes from.

use evident_core::frameworks::{Catalogue, ControlRef, Source};
use evident_core::policy::Policy;
use evident_core::predicates;

fn reference(text: &str) -> ControlRef {
    ControlRef::parse(text).unwrap()
}

#[test]
fn the_builtin_catalogue_lists_the_promised_controls_with_their_sources() {
    let catalogue = Catalogue::builtin();
    for wanted in [
        "soc2:CC8.1",
        "pci-dss-4.0:6.2.3",
        "pci-dss-4.0:6.2.3.1",
        "pci-dss-4.0:6.5.1",
        "nist-800-53r5:CM-3",
        "nist-800-53r5:CM-5",
        "nist-800-53r5:SA-10",
        "nist-800-53r5:SA-11",
        "nist-800-53r5:SI-7",
        "ssdf-1.1:PO.3",
        "ssdf-1.1:PS.2",
        "ssdf-1.1:PW.7",
        "ssdf-1.1:RV.1",
        "iso-27001-2022:A.8.25",
        "iso-27001-2022:A.8.28",
        "iso-27001-2022:A.8.29",
        "iso-27001-2022:A.8.32",
    ] {
        let (framework, control) = catalogue
            .control(&reference(wanted))
            .unwrap_or_else(|| panic!("{wanted} is not in the catalogue"));
        assert!(!framework.source.is_empty() && !framework.licence.is_empty());
        assert!(!control.section.is_empty(), "{wanted} names no section");
    }
    for framework in catalogue.frameworks() {
        for control in &framework.controls {
            assert_eq!(
                control.title.is_some(),
                framework.quote_titles,
                "{}:{}: a title exactly where the licence allows one",
                framework.id,
                control.id
            );
        }
    }
    // NIST's works may be quoted; the AICPA's, the PCI SSC's and ISO's may not.
    let quotes = |id: &str| catalogue.framework(id).unwrap().quote_titles;
    assert!(quotes("nist-800-53r5") && quotes("ssdf-1.1"));
    assert!(!quotes("soc2") && !quotes("pci-dss-4.0") && !quotes("iso-27001-2022"));
}

#[test]
fn every_mapping_is_of_a_predicate_type_evident_reads_and_names_listed_controls() {
    let catalogue = Catalogue::builtin();
    let known = [
        predicates::SLSA_PROVENANCE_V1,
        predicates::TEST_RESULT_V0_1,
        predicates::VULNS_V0_2,
        predicates::RELEASE_V0_1,
        predicates::VERIFICATION_SUMMARY_V1,
        predicates::APPROVAL_V1,
        "https://evident.dev/attestation/sbom/v1",
    ];
    assert!(!catalogue.mappings().is_empty());
    for mapping in catalogue.mappings() {
        assert!(
            known.contains(&mapping.predicate_type.as_str()),
            "{}",
            mapping.predicate_type
        );
        assert!(!mapping.rationale.is_empty());
        for r in &mapping.evidences {
            assert!(catalogue.control(r).is_some(), "{r}");
        }
    }
}

const EXTENSION: &str = r#"
version = 1

[[framework]]
id = "acme-sdlc"
name = "ACME secure development standard"
source = "ACME Corp., Secure Development Standard v3 (internal), section 4"
licence = "internal; quoted with permission"
quote_titles = true

[[framework.control]]
id = "SDLC-4.2"
title = "Every production change is reviewed by a second engineer"
section = "4 Change control"

[[framework]]
id = "soc2"

[[framework.control]]
id = "CC6.8"
section = "Common Criteria, CC6.0 Logical and Physical Access Controls"

[[mapping]]
predicate_type = "https://evident.dev/attestation/approval/v1"
evidences = ["acme-sdlc:SDLC-4.2"]
rationale = "a second engineer approved the change"
"#;

#[test]
fn a_users_file_adds_frameworks_controls_and_mappings() {
    let mut catalogue = Catalogue::builtin();
    let before = catalogue.mappings().len();
    catalogue.extend(EXTENSION).unwrap();
    assert_eq!(catalogue.mappings().len(), before + 1);
    let (_, control) = catalogue.control(&reference("acme-sdlc:SDLC-4.2")).unwrap();
    assert_eq!(
        control.title.as_deref(),
        Some("Every production change is reviewed by a second engineer")
    );
    assert!(catalogue.control(&reference("soc2:CC6.8")).is_some());
    assert!(catalogue.control(&reference("soc2:CC8.1")).is_some());
}

#[test]
fn a_bad_users_file_is_refused_and_changes_nothing() {
    let builtin = Catalogue::builtin();
    let cases = [
        (
            EXTENSION.replace("acme-sdlc:SDLC-4.2\"]", "acme-sdlc:SDLC-9\"]"),
            "names acme-sdlc:SDLC-9, which the catalogue does not list",
        ),
        (
            EXTENSION.replace("id = \"CC6.8\"\n", "id = \"CC6.8\"\ntitle = \"quoted\"\n"),
            "does not allow quoting its titles",
        ),
        (
            EXTENSION.replace(
                "id = \"soc2\"\n",
                "id = \"soc2\"\nname = \"SOC 2, renamed\"\n",
            ),
            "already listed",
        ),
        (
            EXTENSION.replace("CC6.8", "CC8.1"),
            "soc2:CC8.1 is listed twice",
        ),
        (
            EXTENSION.replace("licence = \"internal; quoted with permission\"\n", ""),
            "needs `licence`",
        ),
        (EXTENSION.replace("version = 1", "version = 2"), "version 2"),
        (
            EXTENSION.replace(
                "rationale = \"a second engineer approved the change\"",
                "rationale = \"\"",
            ),
            "rationale",
        ),
        (
            EXTENSION.replace("\"acme-sdlc:SDLC-4.2\"", "\"SDLC-4.2\""),
            "FRAMEWORK:CONTROL",
        ),
        (
            EXTENSION.replace(
                "quote_titles = true",
                "quote_titles = true\nwebsite = \"x\"",
            ),
            "unknown field",
        ),
    ];
    for (text, why) in cases {
        let mut catalogue = builtin.clone();
        let err = catalogue.extend(&text).unwrap_err().to_string();
        assert!(err.contains(why), "{why}: {err}");
        assert_eq!(
            catalogue, builtin,
            "{why}: a refused file changed the catalogue"
        );
    }
}

const REVIEW: &str = r#"
name = "review"
version = 1

[[control]]
id = "two-person-review"
predicate_type = "https://evident.dev/attestation/approval/v1"
signers = ["role:reviewer"]
review_systems = ["role:scm"]
min_approvals = 2
separation_of_duties = true
evidences = ["soc2:CC8.1", "acme:CHG-1"]

[[control]]
id = "any-review"
predicate_type = "https://evident.dev/attestation/approval/v1"

[[control]]
id = "custom"
predicate_type = "https://example.com/custom/v1"
"#;

#[test]
fn a_control_evidences_what_it_names_and_what_the_catalogue_maps_with_the_source_of_each() {
    let catalogue = Catalogue::builtin();
    let policy = Policy::parse(REVIEW).unwrap();
    let strict = catalogue.evidenced_by(&policy.controls[0]);
    let named = strict
        .iter()
        .find(|e| e.reference == reference("soc2:CC8.1"))
        .unwrap();
    // Named by the policy and mapped by the catalogue: both sources.
    assert_eq!(named.sources[0], Source::Policy);
    assert!(matches!(named.sources[1], Source::Mapping(_)));
    assert!(named.known);
    // Named by the policy only, and not in the catalogue: shown as such.
    let unknown = strict
        .iter()
        .find(|e| e.reference == reference("acme:CHG-1"))
        .unwrap();
    assert_eq!(unknown.sources, vec![Source::Policy]);
    assert!(!unknown.known);
    // Separation of duties brings the mappings that need it; a plain review does not.
    let sod = reference("pci-dss-4.0:6.2.3.1");
    assert!(strict.iter().any(|e| e.reference == sod));
    let plain = catalogue.evidenced_by(&policy.controls[1]);
    assert!(!plain.iter().any(|e| e.reference == sod));
    assert!(
        plain
            .iter()
            .any(|e| e.reference == reference("nist-800-53r5:CM-3"))
    );
    // Each framework control once.
    let mut seen = std::collections::BTreeSet::new();
    assert!(strict.iter().all(|e| seen.insert(e.reference.clone())));
    // A predicate type nothing maps evidences nothing.
    assert!(catalogue.evidenced_by(&policy.controls[2]).is_empty());
}

#[test]
fn a_policy_naming_framework_controls_badly_is_refused_with_the_line() {
    for (text, why) in [
        (
            REVIEW.replace("\"acme:CHG-1\"", "\"CHG-1\""),
            "is not FRAMEWORK:CONTROL",
        ),
        (
            REVIEW.replace("\"acme:CHG-1\"", "\"soc2:CC8.1\""),
            "names soc2:CC8.1 twice",
        ),
        (
            REVIEW.replace("\"acme:CHG-1\"", "\"acme: CHG-1\""),
            "without spaces",
        ),
    ] {
        let err = Policy::parse(&text).unwrap_err().to_string();
        assert!(err.contains(why), "{why}: {err}");
        assert!(err.contains("line 5"), "{err}");
    }
}

//! What the CLI prints is read by people, terminals and spreadsheets: verdicts count only
//! when the right signer recorded them, and strings from attestations reach no terminal as
//! escape sequences and no spreadsheet as formulas.

use evident_core::Hash;
use evident_tests::{Server, cli, stderr, stdout, write_config};
use serde_json::json;

use crate::gate::{Flaw, attest, release, team_log};

const TEST: &str = "https://in-toto.io/attestation/test-result/v0.1";
const RELEASE: &str = "https://in-toto.io/attestation/release/v0.1";
const VSA: &str = "https://slsa.dev/verification_summary/v1";

/// A subject name that retitles a terminal (OSC 0 … BEL) and erases its line (EL 2).
const ESCAPES: &str = "app\u{1b}]0;pwned\u{7}\u{1b}[2K-a";
/// A subject name that a spreadsheet would run as a formula.
const FORMULA: &str = "=HYPERLINK(\"http://x\",\"y\")";

fn digest(name: &str) -> String {
    Hash::sha256(name.as_bytes()).to_hex()
}

/// Signers 3 (release), 4 (deploy), 5 (qa: also allowed to record verification summaries)
/// and 6 (intern: also allowed to declare releases).
async fn log(dir: &std::path::Path) -> Server {
    let data = dir.join("data");
    let server = Server::start(&write_config(dir, &data, &[], ""), &data).unwrap();
    tokio::task::block_in_place(|| {
        server.register(1, &["ci"], &[TEST]);
        server.register(3, &["release"], &[RELEASE]);
        server.register(4, &["deploy"], &[VSA]);
        server.register(5, &["qa"], &[VSA]);
        server.register(6, &["intern"], &[RELEASE]);
    });
    server
}

fn verdict(result: &str) -> serde_json::Value {
    json!({"verificationResult": result, "policy": {"uri": "evident:policy/payments-prod@1"}})
}

/// The newest verdict is the verdict, whatever it states: a later summary that says
/// neither PASSED nor FAILED shows as UNKNOWN, never letting an older PASSED through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_unreadable_verdict_hides_an_older_pass() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = log(d).await;
    let a = json!({"name": "app-a", "digest": {"sha256": digest("a")}});
    attest(
        &server,
        3,
        a.clone(),
        RELEASE,
        json!({"purl": "pkg:generic/payments@2.0.0"}),
    )
    .await;
    attest(&server, 4, a.clone(), VSA, verdict("PASSED")).await;
    attest(&server, 4, a, VSA, verdict("failed")).await;
    let out = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &["releases", "--since", "2000-01-01", "--format", "json"],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    let listing: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let row = &listing["releases"][0];
    assert_eq!(row["version"], "2.0.0", "{listing}");
    assert_eq!(row["verdict"], "UNKNOWN", "{listing}");
    assert_eq!(row["verdict_signer"], json!(["signer-4@test"]), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_show_the_deploy_roles_verdict_and_who_signed_it_not_a_later_forged_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = log(d).await;
    let a = json!({"name": "app-a", "digest": {"sha256": digest("a")}});
    attest(
        &server,
        3,
        a.clone(),
        RELEASE,
        json!({"purl": "pkg:generic/payments@1.4.0"}),
    )
    .await;
    // The deploy job's gate failed the release; later another key allowed for verification
    // summaries says it passed.
    attest(&server, 4, a.clone(), VSA, verdict("FAILED")).await;
    attest(&server, 5, a.clone(), VSA, verdict("PASSED")).await;
    // A key allowed for release attestations, but not of the release role, declares one.
    attest(
        &server,
        6,
        a,
        RELEASE,
        json!({"purl": "pkg:generic/payments@9.9.9"}),
    )
    .await;
    let size = server.size().await;
    let run = |args: &[&str]| tokio::task::block_in_place(|| cli(d, Some(&server), args));

    let out = run(&["releases", "--since", "2000-01-01"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("payments@1.4.0"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("by signer-3@test")
            && line.contains(
                "verdict: FAILED (entry 6, evident:policy/payments-prod@1, signed by signer-4@test)"
            ),
        "{text}"
    );
    let (declared, apart) = text
        .split_once("not by a release signer (role:release):")
        .unwrap();
    assert!(!declared.contains("payments@9.9.9"), "{text}");
    assert!(
        apart.contains("payments@9.9.9  entry 8") && apart.contains("by signer-6@test"),
        "{text}"
    );
    assert!(!text.contains("PASSED"), "{text}");

    let out = run(&["releases", "--since", "2000-01-01", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listing: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = listing["releases"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listing}");
    assert_eq!(rows[0]["version"], "1.4.0");
    assert_eq!(rows[0]["trusted"], true);
    assert_eq!(rows[0]["signers"], json!(["signer-3@test"]));
    assert_eq!(rows[0]["verdict"], "FAILED");
    assert_eq!(rows[0]["verdict_index"], 6);
    assert_eq!(rows[0]["verdict_signer"], json!(["signer-4@test"]));
    assert_eq!(rows[1]["version"], "9.9.9");
    assert_eq!(rows[1]["trusted"], false);
    assert_eq!(rows[1]["verdict"], serde_json::Value::Null);

    let out = run(&["releases", "--since", "2000-01-01", "--format", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "name,version,index,integrated_time,signers,trusted,artifacts,verdict,verdict_index,verdict_policy,verdict_signer"
    );
    assert!(
        lines[1].starts_with("payments,1.4.0,5,")
            && lines[1].contains(",signer-3@test,true,")
            && lines[1].ends_with(",FAILED,6,evident:policy/payments-prod@1,signer-4@test"),
        "{text}"
    );
    assert!(lines[2].contains(",signer-6@test,false,"), "{text}");

    // The auditor decides whose verdicts count.
    let out = run(&[
        "releases",
        "--since",
        "2000-01-01",
        "--verdict-signer",
        "signer-5@test",
        "--release-signer",
        "role:release",
        "--release-signer",
        "signer-6@test",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listing: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listing["releases"][0]["verdict"], "PASSED");
    assert_eq!(
        listing["releases"][0]["verdict_signer"],
        json!(["signer-5@test"])
    );
    assert_eq!(listing["releases"][1]["trusted"], true);
    let out = run(&["releases", "--verdict-signer", "role:"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--verdict-signer \"role:\" names nobody"),
        "{}",
        stderr(&out)
    );
    // Listing changes nothing.
    assert_eq!(server.size().await, size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_subject_names_reach_no_terminal_as_escapes_and_no_spreadsheet_as_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = log(d).await;
    // Names the log indexes cannot carry escapes at all: refused at submit, log unchanged.
    let size = server.size().await;
    let refused = evident_core::dsse::Envelope::sign(
        evident_core::dsse::IN_TOTO_PAYLOAD_TYPE,
        serde_json::to_vec(&json!({"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": ESCAPES, "digest": {"sha256": digest("a")}}],
            "predicateType": TEST, "predicate": {"result": "PASSED"}}))
        .unwrap(),
        &[&evident_tests::key(1)],
    );
    let err = server.client().await.submit(&refused).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("subject[0].name holds a control character"),
        "{err}"
    );
    assert_eq!(server.size().await, size);
    // Evidence fields that are not names can hold them; every output shows them inert.
    let subjects = json!([
        {"name": FORMULA, "digest": {"sha256": digest("b")}},
        {"name": "app-a", "digest": {"sha256": digest("a")}},
    ]);
    let statement = |subject: &serde_json::Value, predicate_type: &str, predicate| {
        json!({"_type": "https://in-toto.io/Statement/v1", "subject": subject,
               "predicateType": predicate_type, "predicate": predicate})
    };
    for (signer, predicate_type, predicate) in [
        (1, TEST, json!({"result": "PASSED"})),
        (3, RELEASE, json!({"purl": "pkg:generic/payments@1.4.0"})),
        (
            4,
            VSA,
            json!({"verificationResult": "PASSED",
                   "policy": {"uri": "evident:policy/payments-prod@1\u{1b}[2K"}}),
        ),
    ] {
        let envelope = evident_core::dsse::Envelope::sign(
            evident_core::dsse::IN_TOTO_PAYLOAD_TYPE,
            serde_json::to_vec(&statement(&subjects, predicate_type, predicate)).unwrap(),
            &[&evident_tests::key(signer)],
        );
        server.client().await.submit(&envelope).await.unwrap();
    }
    let size = server.size().await;
    let run = |args: &[&str]| tokio::task::block_in_place(|| cli(d, Some(&server), args));

    for args in [
        &["query", "--subject-name", FORMULA][..],
        &["entry", "--index", "5"],
        &["releases", "--since", "2000-01-01"],
    ] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(!out.stdout.contains(&0x1b), "{args:?}: {:?}", stdout(&out));
        assert!(!out.stderr.contains(&0x1b), "{args:?}: {:?}", stderr(&out));
        assert!(!out.stdout.contains(&0x07), "{args:?}: {:?}", stdout(&out));
    }
    // The verdict's policy, a predicate field, is shown with its escape made visible.
    let out = run(&["releases", "--since", "2000-01-01"]);
    assert!(
        stdout(&out).contains("PASSED (entry 7, evident:policy/payments-prod@1[U+001B][2K"),
        "the escape is shown: {}",
        stdout(&out)
    );

    // CSV: quoted by RFC 4180, and no cell starts a formula.
    let out = run(&["query", "--subject-name", FORMULA, "--format", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "{}", stdout(&out));
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} in {}",
                stdout(&out)
            );
        }
        // The subjects cell starts with the formula's name: it reads as text.
        assert!(
            row[6].starts_with("'=HYPERLINK(\"http://x\",\"y\")@sha256:"),
            "{row:?}"
        );
    }
    let out = run(&["releases", "--since", "2000-01-01", "--format", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    for row in reader.records().map(Result::unwrap) {
        assert!(
            row.iter()
                .all(|c| !c.starts_with(['=', '+', '-', '@', '\t', '\r'])),
            "{row:?}"
        );
    }
    assert_eq!(server.size().await, size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_shows_line_breaks_in_evidence_and_an_undeclared_release_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = team_log(d).await;
    let failed = release(&server, "failed-test", Flaw::FailedTest).await;
    // A line break or a tab in evidence would render as a space in HTML: it is shown.
    let digest = failed.artifact.strip_prefix("sha256:").unwrap();
    // (Names cannot hold them — the server refuses those — but predicate fields can: a
    // second build's builder id.)
    attest(
        &server,
        1,
        json!({"name": "payments-api", "digest": {"sha256": digest}}),
        "https://slsa.dev/provenance/v1",
        json!({"buildDefinition": {"resolvedDependencies": []},
               "runDetails": {"builder": {"id": "line-one\nline-two\ttab"}}}),
    )
    .await;
    let genesis = server.data_dir.join("genesis.json").display().to_string();
    let report = |what: &[&str]| {
        let mut args = vec!["report"];
        args.extend_from_slice(what);
        args.extend([
            "--policy",
            "payments-prod",
            "--genesis",
            &genesis,
            "--out",
            "out",
        ]);
        tokio::task::block_in_place(|| cli(d, Some(&server), &args))
    };
    let out = report(&["--artifact", &failed.artifact]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let html = std::fs::read_to_string(d.join("out/evident-report.html")).unwrap();
    let markdown = std::fs::read_to_string(d.join("out/evident-report.md")).unwrap();
    for text in [&html, &markdown] {
        assert!(
            text.contains("line-one[U+000A]line-two[U+0009]tab"),
            "{text}"
        );
        assert!(!text.contains("line-one\n"), "{text}");
    }

    // A period's report holds the releases a release signer declared, not one declared by
    // another key allowed for release attestations (signer 1 may sign any type).
    for (signer, version) in [(8, "1.4.3"), (1, "6.6.6")] {
        attest(
            &server,
            signer,
            json!({"name": "payments-api", "digest": {"sha256": digest}}),
            RELEASE,
            json!({"purl": format!("pkg:oci/payments-api@{version}")}),
        )
        .await;
    }
    let out = report(&["--since", "2000-01-01", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let releases: Vec<&str> = summary["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["release"].as_str().unwrap())
        .collect();
    assert_eq!(releases, ["payments-api@1.4.3"], "{summary}");

    // A release nobody declared is a finding (exit 1) that says what to do, not an error;
    // no report is written, and asking changes nothing.
    std::fs::remove_dir_all(d.join("out")).unwrap();
    let size = server.size().await;
    let out = report(&["--release", "nobody@9.9.9"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("release nobody@9.9.9: ")
            && stderr(&out).contains("no release attestation declares nobody@9.9.9")
            && stderr(&out).contains("evident releases"),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("out/evident-report.html").exists());
    assert_eq!(server.size().await, size);
}

/// The JSON Schema `docs/schemas/STEM.schema.json`, checked against the JSON Schema
/// meta-schema, as a validator.
fn schema(stem: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/schemas")
        .join(format!("{stem}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        jsonschema::meta::is_valid(&schema),
        "{stem}: not a JSON Schema"
    );
    jsonschema::validator_for(&schema).unwrap()
}

/// Holds `json` against `docs/schemas/STEM.schema.json`.
pub(crate) fn conforms(stem: &str, json: &serde_json::Value) {
    let errors: Vec<String> = schema(stem)
        .iter_errors(json)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{stem}: {errors:?}\n{json:#}");
}

/// Every object key in `json` is snake_case (the maps keyed by data excepted).
fn snake_case_keys(stem: &str, json: &serde_json::Value) {
    match json {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                assert!(
                    k.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                    "{stem}: key {k:?}"
                );
                // The envelope is the DSSE document as logged; these maps are keyed by
                // kinds, identities and predicate types.
                if !["envelope", "kinds", "signers", "predicate_types"].contains(&k.as_str())
                    || v.is_array()
                {
                    snake_case_keys(stem, v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| snake_case_keys(stem, v)),
        _ => {}
    }
}

/// Runs a command with `--format json` (or the format given), checks its exit code, and
/// returns what it printed, checked against its schema and read back with its type.
fn json_of<T: serde::de::DeserializeOwned>(
    out: std::process::Output,
    code: i32,
    stem: &str,
) -> (serde_json::Value, T) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{stem}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{stem}: {e}: {}", stdout(&out)));
    conforms(stem, &json);
    snake_case_keys(stem, &json);
    let typed = serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{stem}: {e}"));
    (json, typed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_commands_json_follows_its_published_schema() {
    use evident_client::output::*;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = team_log(d).await;
    let good = release(&server, "schemas", Flaw::None).await;
    let artifact_hex = good.artifact.strip_prefix("sha256:").unwrap().to_owned();
    attest(
        &server,
        8,
        json!({"name": "payments-api", "digest": {"sha256": artifact_hex}}),
        RELEASE,
        json!({"purl": "pkg:generic/payments@2.0.0"}),
    )
    .await;
    tokio::task::block_in_place(|| server.register(7, &["deploy"], &[VSA]));
    evident_tests::write_private(
        &d.join("deploy.key"),
        &format!("{}\n", hex::encode([7u8; 32])),
    );
    evident_tests::write_private(&d.join("ci.key"), &format!("{}\n", hex::encode([1u8; 32])));
    let genesis = server.data_dir.join("genesis.json").display().to_string();
    let run = |args: &[&str]| tokio::task::block_in_place(|| cli(d, Some(&server), args));
    let json = |args: &[&str]| run(&[args, &["--format", "json"]].concat());

    // Keys, attestations, submission, receipts, entries, checkpoints.
    let (_, key): (_, KeygenOutput) = json_of(json(&["keygen", "--out", "new.key"]), 0, "keygen");
    assert_eq!(key.public_key_file, std::path::Path::new("new.key.pub"));
    let (_, other): (_, KeygenOutput) =
        json_of(json(&["keygen", "--out", "other.key"]), 0, "keygen");
    for (key_file, out) in [("ci.key", "ok.json"), ("new.key", "unknown.json")] {
        let subject = format!("app=sha256:{}", digest(out));
        let out = run(&[
            "attest",
            "--subject",
            &subject,
            "--predicate-type",
            TEST,
            "--key",
            key_file,
            "--out",
            out,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let (_, submitted): (_, SubmitOutput) =
        json_of(json(&["submit", "ok.json", "unknown.json"]), 2, "submit");
    assert!(matches!(
        submitted[0],
        SubmittedFile::Logged { verified: true, .. }
    ));
    assert!(
        matches!(&submitted[1], SubmittedFile::Failed { reason: Some(r), verification_failed: false, .. } if r == "UNKNOWN_KEY"),
        "{submitted:?}"
    );
    let SubmittedFile::Logged { index, .. } = submitted[0] else {
        unreachable!()
    };
    let (_, receipt): (_, ReceiptOutput) = json_of(
        json(&["receipt", "verify", "ok.json.receipt.json"]),
        0,
        "receipt-verify",
    );
    assert_eq!((receipt.index, receipt.kind), (index, Kind::Attestation));
    // The old name still works, and writes the same document.
    json_of::<ReceiptOutput>(
        json(&["verify-receipt", "ok.json.receipt.json"]),
        0,
        "receipt-verify",
    );
    let (_, entry): (_, EntryOutput) = json_of(
        json(&["entry", "--index", &index.to_string(), "--proof"]),
        0,
        "entry",
    );
    assert_eq!(entry.subjects[0].name, "app");
    assert!(entry.inclusion_proven_at_tree_size.is_some());
    json_of::<CheckpointOutput>(json(&["checkpoint"]), 0, "checkpoint");

    // The trust registry.
    let admin = ["--admin-key", "admin.key"];
    let (_, added): (_, RegistryChangeOutput) = json_of(
        json(
            &[
                &[
                    "signer",
                    "add",
                    "--identity",
                    "temp@test",
                    "--public-key",
                    "new.key.pub",
                    "--predicate-type",
                    TEST,
                ][..],
                &admin,
            ]
            .concat(),
        ),
        0,
        "signer-add",
    );
    assert_eq!(added.op, RegistryOp::AddSigner);
    json_of::<RegistryChangeOutput>(
        json(
            &[
                &[
                    "signer",
                    "rotate",
                    "--identity",
                    "temp@test",
                    "--new-public-key",
                    "other.key.pub",
                ][..],
                &admin,
            ]
            .concat(),
        ),
        0,
        "signer-rotate",
    );
    json_of::<RegistryChangeOutput>(
        json(
            &[
                &[
                    "signer",
                    "revoke",
                    "--public-key",
                    &other.public_key,
                    "--reason",
                    "left the team",
                ][..],
                &admin,
            ]
            .concat(),
        ),
        0,
        "signer-revoke",
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vectors/sigstore/trusted_roots/production.trusted_root.json");
    json_of::<RegistryChangeOutput>(
        json(
            &[
                &["sigstore", "trust", "public-good", root.to_str().unwrap()][..],
                &admin,
            ]
            .concat(),
        ),
        0,
        "sigstore-trust",
    );
    json_of::<RegistryChangeOutput>(
        json(
            &[
                &["sigstore", "trust", "staging", root.to_str().unwrap()][..],
                &admin,
            ]
            .concat(),
        ),
        0,
        "sigstore-trust",
    );
    json_of::<RegistryChangeOutput>(
        json(&[&["sigstore", "distrust", "staging"][..], &admin].concat()),
        0,
        "sigstore-distrust",
    );
    let (_, listing): (_, SignerListOutput) = json_of(json(&["signer", "list"]), 0, "signer-list");
    assert_eq!(
        listing
            .sigstore_roots
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["public-good"]
    );
    let statuses: Vec<KeyStatus> = listing
        .signers
        .iter()
        .filter(|k| k.identity == "temp@test")
        .map(|k| k.status)
        .collect();
    assert_eq!(statuses, [KeyStatus::Expired, KeyStatus::Revoked]);
    let (_, shown): (_, SignerShowOutput) =
        json_of(json(&["signer", "show", "temp@test"]), 0, "signer-show");
    assert_eq!(shown.history.len(), 3);
    json_of::<RegistryChangeOutput>(
        json(
            &[
                &[
                    "admin",
                    "add",
                    "--identity",
                    "second@test",
                    "--public-key",
                    "new.key.pub",
                ][..],
                &admin,
            ]
            .concat(),
        ),
        0,
        "admin-add",
    );
    json_of::<RegistryChangeOutput>(
        json(
            &[
                &["admin", "remove", "--public-key", "new.key.pub"][..],
                &admin,
            ]
            .concat(),
        ),
        0,
        "admin-remove",
    );

    // Policies.
    let (_, submitted): (_, PolicySubmitOutput) = json_of(
        json(&[&["policy", "submit", "policy.toml"][..], &admin].concat()),
        0,
        "policy-submit",
    );
    assert!(submitted.duplicate);
    json_of::<PolicyShowOutput>(
        json(&["policy", "show", "payments-prod@1"]),
        0,
        "policy-show",
    );
    let (_, list): (_, PolicyListOutput) = json_of(json(&["policy", "list"]), 0, "policy-list");
    assert_eq!(list.policies.len(), 1);

    // The gate, its recorded verdict, and the old name of the command.
    let gate = [
        "--artifact",
        &good.artifact,
        "--policy",
        "payments-prod",
        "--genesis",
        &genesis,
    ];
    let (document, verdict): (_, GateOutput) = json_of(
        json(&[&["gate"][..], &gate, &["--record", "--key", "deploy.key"]].concat()),
        0,
        "gate",
    );
    // The schema holds the fixed values and every key: words or a missing key fail it.
    for edit in [
        |d: &mut serde_json::Value| d["decision"] = json!("ALLOWED"),
        |d: &mut serde_json::Value| d["controls"][0]["status"] = json!("PASS"),
        |d: &mut serde_json::Value| {
            d.as_object_mut().unwrap().remove("recorded_index");
        },
    ] {
        let mut wrong = document.clone();
        edit(&mut wrong);
        assert!(!schema("gate").is_valid(&wrong), "{wrong:#}");
    }
    assert_eq!(verdict.decision, Decision::Allowed);
    let recorded = verdict.recorded_index.expect("the recorded entry");
    let (_, again): (_, GateOutput) = json_of(json(&[&["verify"][..], &gate].concat()), 0, "gate");
    assert_eq!(again.recorded_index, None);
    assert_eq!(again.record_error, None);
    // Recording with a key the registry does not know: the allowed verdict is printed with
    // why it was not recorded, and the command fails (exit 2), so a pipeline that reads
    // only the JSON sees it too.
    evident_tests::write_private(
        &d.join("stranger.key"),
        &format!("{}\n", hex::encode([99u8; 32])),
    );
    let (_, unrecorded): (_, GateOutput) = json_of(
        json(&[&["gate"][..], &gate, &["--record", "--key", "stranger.key"]].concat()),
        2,
        "gate",
    );
    assert_eq!(unrecorded.decision, Decision::Allowed);
    assert_eq!(unrecorded.recorded_index, None);
    assert!(
        unrecorded
            .record_error
            .as_deref()
            .is_some_and(|e| e.contains("recording the verdict")),
        "{:?}",
        unrecorded.record_error
    );
    let out = run(&[
        "bundle",
        "export",
        "--artifact",
        &good.artifact,
        "--out",
        "b.json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    json_of::<GateOutput>(
        json(&[
            "bundle",
            "verify",
            "b.json",
            "--artifact",
            &good.artifact,
            "--policy",
            "payments-prod",
            "--genesis",
            &genesis,
        ]),
        0,
        "bundle-verify",
    );

    // The auditor's commands.
    let (_, query): (_, QueryOutput) = json_of(
        json(&["query", "--predicate-type", TEST, "--verify"]),
        0,
        "query",
    );
    assert!(query.verified && !query.results.is_empty());
    let out = run(&["query", "--kind", "registry", "--format", "jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for line in stdout(&out).lines() {
        let hit: serde_json::Value = serde_json::from_str(line).unwrap();
        conforms("query-line", &hit);
        assert_eq!(hit["predicate_type"], serde_json::Value::Null, "{hit}");
    }
    let (_, releases): (_, ReleasesOutput) =
        json_of(json(&["releases", "--since", "2000-01-01"]), 0, "releases");
    assert_eq!(
        releases.releases[0].verdict,
        Some(VerificationResult::Passed)
    );
    assert_eq!(releases.releases[0].verdict_index, Some(recorded));
    let out = run(&["releases", "--format", "jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for line in stdout(&out).lines() {
        conforms("releases-line", &serde_json::from_str(line).unwrap());
    }
    let (_, audit): (_, AuditOutput) = json_of(json(&["audit", "--genesis", &genesis]), 0, "audit");
    assert_eq!(audit.summary.entries, audit.checkpoint.tree_size);
    let (_, report): (_, ReportOutput) = json_of(
        json(&[
            "report",
            "--release",
            "payments@2.0.0",
            "--policy",
            "payments-prod",
            "--genesis",
            &genesis,
            "--out",
            "out",
        ]),
        0,
        "report",
    );
    assert_eq!(report.releases[0].decision, Decision::Allowed);
}

#[test]
fn frameworks_shows_the_catalogue_and_what_a_policys_controls_evidence() {
    use evident_client::output::FrameworksOutput;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("acme.toml"),
        "version = 1\n\n[[framework]]\nid = \"acme\"\nname = \"ACME SDLC\"\n\
         source = \"ACME standard v3, section 4\"\nlicence = \"internal\"\nquote_titles = true\n\n\
         [[framework.control]]\nid = \"CHG-1\"\ntitle = \"Second-engineer review\"\n\
         section = \"4 Change control\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("policy.toml"),
        "name = \"payments-prod\"\nversion = 2\n\n[[control]]\nid = \"review\"\n\
         predicate_type = \"https://evident.dev/attestation/approval/v1\"\n\
         evidences = [\"acme:CHG-1\", \"soc2:CC8.1\", \"other:X-1\"]\n",
    )
    .unwrap();
    let run = |args: &[&str]| cli(d, None, args);
    let (_, out): (_, FrameworksOutput) = json_of(
        run(&[
            "frameworks",
            "--catalogue",
            "acme.toml",
            "--policy-file",
            "policy.toml",
            "--format",
            "json",
        ]),
        0,
        "frameworks",
    );
    assert!(out.frameworks.iter().any(|f| f.id == "soc2"));
    assert!(out.frameworks.iter().any(|f| f.id == "acme"));
    let review = &out.policy.unwrap().controls[0];
    let find = |r: &str| review.evidences.iter().find(|e| e.reference == r).unwrap();
    let soc2 = find("soc2:CC8.1");
    assert!(soc2.named_by_policy && !soc2.mapped_because.is_empty() && soc2.known);
    assert_eq!(
        find("acme:CHG-1").title.as_deref(),
        Some("Second-engineer review")
    );
    assert!(!find("other:X-1").known);
    assert!(find("nist-800-53r5:CM-3").mapped_because[0].contains("approved"));

    // For people: one line per framework control, saying where each link comes from.
    let human = run(&[
        "frameworks",
        "--catalogue",
        "acme.toml",
        "--policy-file",
        "policy.toml",
    ]);
    assert!(human.status.success(), "{}", stderr(&human));
    let text = stdout(&human);
    assert!(
        text.contains("  soc2:CC8.1: named by the policy, mapped by the catalogue"),
        "{text}"
    );
    assert!(
        text.contains("  other:X-1 [not in the catalogue]: named by the policy"),
        "{text}"
    );
    let listing = run(&["frameworks"]);
    assert!(stdout(&listing).contains("nist-800-53r5 — NIST SP 800-53 Rev. 5"));
    assert!(stdout(&listing).contains("  CM-3  Configuration Change Control ("));

    // A catalogue that quotes what its licence does not allow is refused, naming it.
    std::fs::write(
        d.join("bad.toml"),
        "version = 1\n[[framework]]\nid = \"soc2\"\n[[framework.control]]\nid = \"CC9.9\"\n\
         title = \"quoted\"\nsection = \"x\"\n",
    )
    .unwrap();
    let bad = run(&["frameworks", "--catalogue", "bad.toml"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("--catalogue bad.toml") && stderr(&bad).contains("quote_titles"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn the_vendored_oscal_schema_is_nists_release_and_compiles() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vectors/oscal/oscal_assessment-results_schema.json");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        evident_core::Hash::sha256(&bytes).to_hex(),
        "d033da70154cf6625ae46a746199e88e58f2928b1387dfac051d381b92f41b0d",
        "{path:?} is not NIST's OSCAL 1.1.2 release asset (tests/vectors/oscal/README.md)"
    );
    let schema: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert!(jsonschema::meta::is_valid(&schema));
    let validator = jsonschema::validator_for(&schema).unwrap();
    // A document without the required parts is refused: the validator reads the schema.
    assert!(!validator.is_valid(&json!({"assessment-results": {"uuid": "not-a-uuid"}})));
}

//! `evident report` end to end: a team's release goes through the ledger, the real CLI
//! writes the auditor's report, and headless Chromium shows what an auditor would read —
//! checked on the PDF it prints, not on the HTML source.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use evident_tests::{Server, cli, stderr, stdout};
use serde_json::json;

use crate::gate::{Flaw, attest, release, team_log};

const CHROMIUM: &str = "/usr/bin/chromium";
const HOSTILE_TYPE: &str = "<script>alert(1)</script>";
const HOSTILE_NAME: &str = "<img src=x onerror=alert(2)>";

/// Runs `evident report` for `what` (`--release …` or `--artifact …`) into `DIR/out`.
fn report(dir: &Path, server: &Server, what: &[&str], genesis: &Path) -> std::process::Output {
    let genesis = genesis.display().to_string();
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
    tokio::task::block_in_place(|| cli(dir, Some(server), &args))
}

/// Runs `command` to completion within two minutes and returns its standard output; panics
/// with its stderr if it fails.
fn run(command: &mut Command, what: &str, work: &Path) -> String {
    let log = work.join(format!("{what}.stderr.log"));
    let out = work.join(format!("{what}.stdout"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "{what} did not finish within 2 minutes: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "{what} failed ({status}): {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned()
}

/// Headless Chromium on `html`, with a fresh profile, no network services, and `output`
/// (e.g. `--print-to-pdf=…`); returns what it prints. Fails clearly when Chromium is not
/// installed.
fn chromium(html: &Path, work: &Path, output: &[&str]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the report tests check what the page shows in headless \
         Chromium; install it with `apt-get install -y chromium poppler-utils`"
    );
    let profile = tempfile::tempdir_in(work).unwrap();
    run(
        Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(output)
            .arg(format!("file://{}", html.display())),
        "chromium",
        work,
    )
}

/// The text of the page as Chromium prints it (PDF, then `pdftotext -layout`).
fn shown_text(html: &Path, work: &Path) -> String {
    let pdf = work.join("r.pdf");
    chromium(
        html,
        work,
        &[
            "--no-pdf-header-footer",
            &format!("--print-to-pdf={}", pdf.display()),
        ],
    );
    chromium_output_exists(&pdf);
    let out = Command::new("pdftotext")
        .args(["-layout"])
        .arg(&pdf)
        .arg("-")
        .output()
        .unwrap_or_else(|e| {
            panic!("running pdftotext ({e}): install it with `apt-get install -y poppler-utils`")
        });
    assert!(out.status.success(), "pdftotext: {}", stderr(&out));
    stdout(&out)
}

fn chromium_output_exists(path: &Path) {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    assert!(size > 0, "chromium wrote no {}", path.display());
}

/// The printed line that contains `needle`.
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("the page shows no {needle:?}:\n{text}"))
}

/// The words of `text`, one space apart: what reads the same however the lines wrap.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The printed text from the heading `from` to the heading `to`.
fn section<'a>(text: &'a str, from: &str, to: &str) -> &'a str {
    let start = text
        .find(from)
        .unwrap_or_else(|| panic!("the page shows no {from:?}:\n{text}"));
    let rest = &text[start..];
    &rest[..rest.find(to).unwrap_or(rest.len())]
}

/// The printed row (first line) whose first cell is `first`.
fn row<'a>(text: &'a str, first: &str) -> &'a str {
    text.lines()
        .find(|l| {
            l.trim_start()
                .strip_prefix(first)
                .is_some_and(|rest| rest.starts_with("  "))
        })
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{text}"))
}

/// The report files the CLI wrote, checked for what a self-contained page must not have.
fn written(dir: &Path, out: &std::process::Output) -> (PathBuf, String) {
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(out), stderr(out));
    let html_path = dir.join("out/evident-report.html");
    let md_path = dir.join("out/evident-report.md");
    // It prints where it wrote them.
    assert!(
        stdout(out).contains(&html_path.display().to_string())
            || stdout(out).contains("out/evident-report.html"),
        "{}",
        stdout(out)
    );
    assert!(
        stdout(out).contains("out/evident-report.md"),
        "{}",
        stdout(out)
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    for external in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "url(",
        "@import",
    ] {
        assert!(
            !html.contains(external),
            "the page loads an external asset ({external})"
        );
    }
    assert!(!html.contains("<script"), "the page has a script");
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains("<meta name=\"viewport\""));
    assert!(html.contains("<title>"));
    (html_path, std::fs::read_to_string(md_path).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_an_allowed_release_shows_the_verdict_controls_signers_chain_and_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = team_log(d).await;
    let good = release(&server, "good", Flaw::None).await;
    // The release job declares the release; the deploy job records the gate's verdict.
    deploy_job(d, &server);
    let digest = good.artifact.strip_prefix("sha256:").unwrap();
    declare(&server, digest, "1.4.2").await;
    let genesis = server.data_dir.join("genesis.json");
    let out = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &[
                "verify",
                "--release",
                "payments-api@1.4.2",
                "--policy",
                "payments-prod",
                "--genesis",
                &genesis.display().to_string(),
                "--record",
                "--key",
                "deploy.key",
            ],
        )
    });
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let out = report(d, &server, &["--release", "payments-api@1.4.2"], &genesis);
    let (html, markdown) = written(d, &out);
    let size = server.size().await;
    let text = tokio::task::block_in_place(|| shown_text(&html, d));

    // 1. The verdict.
    assert!(
        line_with(&text, "under policy").contains("ALLOWED under policy payments-prod version 1"),
        "{text}"
    );
    // 2. Each control with its status, on its row of the matrix.
    let controls = section(&text, "2. Controls", "3. Exceptions");
    for control in [
        "provenance",
        "unit-tests",
        "vulnerability-scan",
        "two-person-review",
    ] {
        let line = row(controls, control);
        assert!(line.contains("PASS"), "{control}: {line:?}");
    }
    assert!(
        !text.contains("FAIL") && !text.contains("MISSING"),
        "{text}"
    );
    // 3. Who signed: the builder, the scanner, both reviewers, the release and deploy jobs.
    let attestations = section(&text, "7. Attestations", "8. Traceability");
    for signer in [1, 2, 3, 4, 7, 8] {
        assert!(
            attestations.contains(&format!("signer-{signer}@test")),
            "signer-{signer}@test is not shown:\n{text}"
        );
    }
    // 4. The chain: commit → build → artifact → release → recorded verdict.
    let chain = section(&text, "8. Traceability", "9. Proofs");
    assert!(
        row(chain, "Source commit").contains(&good.commit),
        "{chain}"
    );
    assert!(
        row(chain, "Build").contains("SLSA provenance, entry")
            && row(chain, "Build").contains("builder https://ci.example.com"),
        "{chain}"
    );
    assert!(row(chain, "Artifact").contains(&good.artifact), "{chain}");
    assert!(
        row(chain, "Release").contains("payments-api@1.4.2, entry"),
        "{chain}"
    );
    assert!(
        row(chain, "Deploy").contains("gate verdict PASSED under evident:policy/payments-prod@1"),
        "{chain}"
    );
    assert!(!chain.contains("not recorded"), "{chain}");
    // 5. The proofs and the checkpoint.
    let proofs = section(&text, "9. Proofs", "\u{c}");
    assert!(
        row(proofs, "Tree size").contains(&format!("{size} entries")),
        "{proofs}"
    );
    assert!(
        row(proofs, "Log origin").contains("evident.test/log"),
        "{proofs}"
    );
    assert!(
        proofs.contains("have inclusion proofs verified"),
        "{proofs}"
    );

    // The same page as an image.
    let png = d.join("r.png");
    tokio::task::block_in_place(|| {
        chromium(
            &html,
            d,
            &[
                "--window-size=1280,2000",
                &format!("--screenshot={}", png.display()),
            ],
        )
    });
    let image = std::fs::read(&png).unwrap();
    assert!(
        image.len() > 1000 && image.starts_with(b"\x89PNG"),
        "the screenshot is not a PNG"
    );

    // The Markdown: the same content, as GitHub tables.
    for row in [
        "| payments-api@1.4.2 | ALLOWED | payments-prod@1 | 4 of 4 | 0 | PASSED, entry ",
        "| provenance | PASS | https://slsa.dev/provenance/v1 | satisfied by 1 entry signed by signer-1@test |",
        &format!("| Source commit | {} |", good.commit),
        &format!("| Artifact | {} |", good.artifact),
        &format!("| Tree size | {size} entries |"),
    ] {
        assert!(markdown.contains(row), "no {row:?} in:\n{markdown}");
    }
    assert!(
        markdown
            .lines()
            .any(|l| l.starts_with("| Release | payments-api@1.4.2, entry ")
                && l.ends_with(", signed by signer-8@test |")),
        "{markdown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_denied_release_shows_the_failed_control_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = team_log(d).await;
    let failed = release(&server, "failed-test", Flaw::FailedTest).await;
    // Evidence is attacker-influenced: markup in it must be shown, never obeyed.
    let digest = failed.artifact.strip_prefix("sha256:").unwrap();
    attest(
        &server,
        1,
        json!({"name": HOSTILE_NAME, "digest": {"sha256": digest}}),
        HOSTILE_TYPE,
        json!({}),
    )
    .await;
    let genesis = server.data_dir.join("genesis.json");

    // A denied release is still reported: exit 0.
    let out = report(d, &server, &["--artifact", &failed.artifact], &genesis);
    let (html, markdown) = written(d, &out);
    assert!(stdout(&out).contains("DENIED"), "{}", stdout(&out));
    let text = tokio::task::block_in_place(|| shown_text(&html, d));
    assert!(
        line_with(&text, "under policy").contains("DENIED under policy payments-prod version 1"),
        "{text}"
    );
    // Listed under the verdict with its whole reason, and on its row of the matrix.
    let flat_text = flat(&text);
    assert!(
        flat_text.contains(r#"FAIL unit-tests: entry "#)
            && flat_text.contains(r#"`predicate.result == "PASSED"` is false"#),
        "{text}"
    );
    let controls = section(&text, "2. Controls", "3. Exceptions");
    let line = row(controls, "unit-tests");
    assert!(line.contains("FAIL"), "{line:?}");
    // The reason wraps inside its cell of the PDF table; its start and end are on the row.
    assert!(
        flat(controls).contains("the latest by signer-1@test: `predicate.result ==")
            && flat(controls).contains(r#""PASSED"` is false"#),
        "{controls}"
    );
    // The hostile attestation is listed as text; the page Chromium built has no script or
    // image element.
    let attestations = flat(section(&text, "7. Attestations", "8. Traceability"));
    assert!(
        attestations.contains(HOSTILE_TYPE) && attestations.contains(HOSTILE_NAME),
        "{text}"
    );
    let dom = tokio::task::block_in_place(|| chromium(&html, d, &["--dump-dom"]));
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{dom}"
    );
    assert!(!dom.contains("<script") && !dom.contains("<img"), "{dom}");
    // Nothing declared or deployed this artifact.
    let chain = section(&text, "8. Traceability", "9. Proofs");
    assert!(row(chain, "Release").contains("not recorded"), "{chain}");
    assert!(row(chain, "Deploy").contains("not recorded"), "{chain}");
    assert!(
        markdown
            .lines()
            .any(|l| l.starts_with("| unit-tests | FAIL | ")
                && l.contains(r#"\`predicate.result == "PASSED"\` is false"#)),
        "{markdown}"
    );
    assert!(markdown.contains("| Deploy | not recorded |"), "{markdown}");
    // For scripts: one JSON object naming the files and the verdict.
    let out = report(
        d,
        &server,
        &["--artifact", &failed.artifact, "--format", "json"],
        &genesis,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["releases"][0]["decision"], "denied");
    assert_eq!(summary["releases"][0]["policy"], "payments-prod@1");
    assert!(
        summary["html"]
            .as_str()
            .unwrap()
            .ends_with("out/evident-report.html")
    );

    // Evidence that does not verify (here: under another genesis) is never reported: exit 1.
    std::fs::remove_dir_all(d.join("out")).unwrap();
    let foreign = d.join("foreign-genesis.json");
    std::fs::write(
        &foreign,
        json!({"threshold": 1, "admins": [{"identity": "mallory", "public_key": evident_tests::public(99).to_hex()}]})
            .to_string(),
    )
    .unwrap();
    let out = report(d, &server, &["--artifact", &failed.artifact], &foreign);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("verification failed"),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("out/evident-report.html").exists());
}

/// Registers the deploy job (key 7, role `deploy`, SLSA verification summaries) and writes
/// its key to `DIR/deploy.key`, for `evident gate --record --key deploy.key`.
fn deploy_job(d: &Path, server: &Server) {
    tokio::task::block_in_place(|| {
        server.register(
            7,
            &["deploy"],
            &["https://slsa.dev/verification_summary/v1"],
        );
    });
    evident_tests::write_private(
        &d.join("deploy.key"),
        &format!("{}\n", hex::encode([7u8; 32])),
    );
}

/// The release job (key 8) declares the artifact `digest` (sha256 hex) as
/// payments-api@`version`.
async fn declare(server: &Server, digest: &str, version: &str) {
    attest(
        server,
        8,
        json!({"name": "payments-api", "digest": {"sha256": digest}}),
        "https://in-toto.io/attestation/release/v0.1",
        json!({"purl": format!("pkg:oci/payments-api@{version}")}),
    )
    .await;
}

/// A team's log with two releases declared by the release role: payments-api@1.4.2, which
/// passes, and payments-api@1.4.3, whose tests failed.
async fn two_declared_releases(d: &Path) -> Server {
    let server = team_log(d).await;
    for (name, flaw, version) in [
        ("good", Flaw::None, "1.4.2"),
        ("failed-test", Flaw::FailedTest, "1.4.3"),
    ] {
        let r = release(&server, name, flaw).await;
        let digest = r.artifact.strip_prefix("sha256:").unwrap();
        declare(&server, digest, version).await;
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_period_report_holds_every_release_of_the_period_with_its_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = two_declared_releases(d).await;
    let genesis = server.data_dir.join("genesis.json");
    let out = report(
        d,
        &server,
        &["--since", "2000-01-01", "--until", "2100-12-31"],
        &genesis,
    );
    let (html, markdown) = written(d, &out);
    let printed = stdout(&out);
    assert!(
        printed.contains("payments-api@1.4.2: ALLOWED")
            && printed.contains("payments-api@1.4.3: DENIED"),
        "{printed}"
    );
    let text = flat(&tokio::task::block_in_place(|| shown_text(&html, d)));
    assert!(
        text.contains("2 release(s), 2000-01-01 to 2100-12-31"),
        "{text}"
    );
    // The population it rests on, proven complete by the log's verifiable index.
    assert!(
        text.contains("Population: 2 release attestations integrated in the period, complete: proven against the verifiable index of the checkpoint of"),
        "{text}"
    );
    assert!(
        text.contains("payments-api@1.4.2") && text.contains("payments-api@1.4.3"),
        "{text}"
    );
    assert!(
        text.contains("ALLOWED under policy payments-prod version 1")
            && text.contains("DENIED under policy payments-prod version 1"),
        "{text}"
    );
    assert!(markdown.contains("payments-api@1.4.3"), "{markdown}");
    // The framework view: tests evidence NIST SA-11; 1.4.2 passed them, 1.4.3 did not.
    let view = section(&text, "Frameworks", "Release payments-api@1.4.2");
    assert!(
        view.contains("nist-800-53r5:SA-11") && view.contains("Developer Testing and Evaluation"),
        "{view}"
    );
    let sa11 = markdown
        .lines()
        .find(|l| l.contains("nist-800-53r5:SA-11") && !l.contains("SA-11("))
        .unwrap_or_else(|| panic!("no SA-11 row:\n{markdown}"));
    let cells: Vec<&str> = sa11.split(" | ").collect();
    assert!(
        cells[1].contains("unit-tests")
            && cells[2].contains("payments-api@1.4.2")
            && !cells[2].contains("payments-api@1.4.3")
            && cells[3].contains("payments-api@1.4.3"),
        "{sa11}"
    );
    // A period with no release is reported as empty, not as an error.
    std::fs::remove_dir_all(d.join("out")).unwrap();
    let out = report(d, &server, &["--until", "2001-01-01"], &genesis);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("no release in the period"),
        "{}",
        stdout(&out)
    );
}

/// Holds `doc` against NIST's OSCAL 1.1.2 assessment-results schema (tests/vectors/oscal),
/// formats checked.
fn nist_oscal_schema_accepts(doc: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("vectors/oscal/oscal_assessment-results_schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

/// The OSCAL document of a report, with the fields that say when it was made set aside, so
/// that two reports of the same log and scope can be compared.
fn oscal_without_times(path: &Path) -> serde_json::Value {
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ar = &mut doc["assessment-results"];
    ar["metadata"]["last-modified"] = json!(null);
    let result = &mut ar["results"][0];
    result["end"] = json!(null);
    result["description"] = json!(null);
    for o in result["observations"].as_array_mut().unwrap() {
        o["collected"] = json!(null);
    }
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_period_report_is_an_oscal_assessment_result_that_nists_schema_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = two_declared_releases(d).await;
    let genesis = server.data_dir.join("genesis.json");
    let period = ["--since", "2000-01-01", "--until", "2100-12-31"];
    let out = report(d, &server, &period, &genesis);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let path = d.join("out/evident-report.oscal.json");
    assert!(
        stdout(&out).contains("out/evident-report.oscal.json"),
        "{}",
        stdout(&out)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();

    nist_oscal_schema_accepts(&doc);

    // One result; an observation per release and control; the failed test shows.
    let ar = &doc["assessment-results"];
    assert_eq!(ar["metadata"]["oscal-version"], "1.1.2");
    let result = &ar["results"][0];
    let observations = result["observations"].as_array().unwrap();
    let titles: Vec<&str> = observations
        .iter()
        .map(|o| o["title"].as_str().unwrap())
        .collect();
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("payments-api@1.4.3: unit-tests FAIL")),
        "{titles:?}"
    );
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("payments-api@1.4.2: unit-tests PASS")),
        "{titles:?}"
    );
    // Each passing observation cites its log entries, linked to the checkpoint.
    let passed = observations
        .iter()
        .find(|o| {
            o["title"]
                .as_str()
                .unwrap()
                .starts_with("payments-api@1.4.2: unit-tests")
        })
        .unwrap();
    assert!(
        passed["relevant-evidence"][0]["description"]
            .as_str()
            .unwrap()
            .contains("proven included in the checkpoint of")
    );
    // Findings per framework control: tests evidence SOC 2 CC8.1 and SA-11, and one of the
    // two releases failed its tests, so they are not satisfied.
    let findings = result["findings"].as_array().unwrap();
    let finding = |target: &str| {
        findings
            .iter()
            .find(|f| f["target"]["target-id"] == target)
            .unwrap_or_else(|| panic!("no finding on {target}"))
    };
    assert_eq!(
        finding("soc2_cc8.1")["target"]["status"]["state"],
        "not-satisfied"
    );
    assert_eq!(
        finding("nist-800-53r5_sa-11")["target"]["status"]["state"],
        "not-satisfied"
    );
    assert_eq!(
        finding("nist-800-53r5_sa-11")["title"],
        "nist-800-53r5:SA-11 Developer Testing and Evaluation"
    );
    // Provenance held for both releases: what only it evidences is satisfied.
    assert_eq!(
        finding("nist-800-53r5_sa-10")["target"]["status"]["state"],
        "satisfied"
    );
    let every_uuid: Vec<&str> = observations
        .iter()
        .chain(findings)
        .map(|v| v["uuid"].as_str().unwrap())
        .collect();
    let distinct: std::collections::BTreeSet<&&str> = every_uuid.iter().collect();
    assert_eq!(distinct.len(), every_uuid.len(), "a UUID repeats");

    // The same log and scope again: the same document, but for when it was made; and
    // `--format oscal` prints it.
    let first = oscal_without_times(&path);
    let again = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &[
                "report",
                "--since",
                "2000-01-01",
                "--until",
                "2100-12-31",
                "--policy",
                "payments-prod",
                "--genesis",
                &genesis.display().to_string(),
                "--out",
                "out",
                "--format",
                "oscal",
            ],
        )
    });
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let printed: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        printed,
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&path).unwrap())
            .unwrap()
    );
    assert_eq!(oscal_without_times(&path), first);
}

/// compliance-trestle, the OSCAL SDK of the oscal-compass project (IBM), from PyPI, pinned,
/// in a virtual environment of its own under the target folder: an independent OSCAL
/// implementation that reads and writes assessment results with its own models.
const TRESTLE: &str = "compliance-trestle==3.12.0";

fn trestle_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("trestle-3.12.0");
    let python = venv.join("bin/python");
    let ready = venv.join("installed");
    if !ready.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 (scripts/test installs it)");
        assert!(status.success(), "python3 -m venv failed");
        let out = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                TRESTLE,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pip install {TRESTLE}: {}",
            stderr(&out)
        );
        std::fs::write(&ready, TRESTLE).unwrap();
    }
    python
}

/// Reads `path` with trestle's assessment-results model and writes it back to `out`;
/// returns what trestle counted.
fn trestle_round_trip(path: &Path, out: &Path) -> String {
    let script = "import sys, pathlib\n\
                  from trestle.oscal.assessment_results import AssessmentResults\n\
                  ar = AssessmentResults.oscal_read(pathlib.Path(sys.argv[1]))\n\
                  r = ar.results[0]\n\
                  print(len(ar.results), len(r.observations), len(r.findings))\n\
                  ar.oscal_write(pathlib.Path(sys.argv[2]))\n";
    let run = Command::new(trestle_python())
        .args(["-c", script])
        .arg(path)
        .arg(out)
        .output()
        .unwrap();
    assert!(run.status.success(), "trestle: {}", stderr(&run));
    stdout(&run).trim().to_owned()
}

/// `a` and `b` are the same document, times compared as instants to the microsecond
/// (trestle keeps Python's precision and writes UTC as `+00:00`).
fn same_document(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => same_document(p, q, &format!("{at}/{k}")),
                    _ => panic!("{at}/{k} is in one document only"),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                same_document(p, q, &format!("{at}[{i}]"));
            }
        }
        (Value::String(p), Value::String(q)) if p != q => {
            let instant = |t: &str| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .unwrap_or_else(|_| panic!("{at}: {p:?} and {q:?} differ"))
                    .timestamp_micros()
            };
            assert_eq!(instant(p), instant(q), "{at}: {p:?} and {q:?}");
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_oscal_implementation_reads_the_report_and_writes_it_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = team_log(d).await;
    let good = release(&server, "good", Flaw::None).await;
    let genesis = server.data_dir.join("genesis.json");
    let out = report(d, &server, &["--artifact", &good.artifact], &genesis);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let path = d.join("out/evident-report.oscal.json");
    let written = d.join("trestle.json");
    let counted = tokio::task::block_in_place(|| trestle_round_trip(&path, &written));
    let ours: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let observations = ours["assessment-results"]["results"][0]["observations"]
        .as_array()
        .unwrap()
        .len();
    let findings = ours["assessment-results"]["results"][0]["findings"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(counted, format!("1 {observations} {findings}"));
    let theirs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&written).unwrap()).unwrap();
    same_document(&ours, &theirs, "");
}

/// Runs `evident` with `args` in `dir` against `server`.
fn evident(dir: &Path, server: &Server, args: &[&str]) -> std::process::Output {
    tokio::task::block_in_place(|| cli(dir, Some(server), args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_shows_why_and_re_performs_past_decisions_as_of_the_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = team_log(d).await;
    let genesis = server.data_dir.join("genesis.json");
    let genesis_arg = genesis.display().to_string();
    // 1.4.2 passes with an allowlisted HIGH finding and is deployed; 1.4.3's tests failed.
    deploy_job(d, &server);
    for (name, flaw, version) in [
        ("excepted", Flaw::AllowlistedFinding, "1.4.2"),
        ("failed-test", Flaw::FailedTest, "1.4.3"),
    ] {
        let r = release(&server, name, flaw).await;
        let digest = r.artifact.strip_prefix("sha256:").unwrap();
        // First, the CI key (allowed any predicate type, not a release signer) declares the
        // artifact under a name of its own, and records a verdict of its own: neither is
        // the release's.
        attest(
            &server,
            1,
            json!({"name": "payments-api-squatted", "digest": {"sha256": digest}}),
            "https://in-toto.io/attestation/release/v0.1",
            json!({"purl": format!("pkg:oci/payments-api@{version}")}),
        )
        .await;
        attest(
            &server,
            1,
            json!({"digest": {"sha256": digest}}),
            "https://slsa.dev/verification_summary/v1",
            json!({"verificationResult": "PASSED", "policy": {"uri": "evident:policy/made-up"}}),
        )
        .await;
        declare(&server, digest, version).await;
    }
    let gate = |extra: &[&str]| {
        let mut args = vec![
            "gate",
            "--release",
            "payments-api@1.4.2",
            "--policy",
            "payments-prod",
            "--genesis",
            &genesis_arg,
        ];
        args.extend_from_slice(extra);
        evident(d, &server, &args)
    };
    let out = gate(&["--record", "--key", "deploy.key"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // The deploy's time: everything below is logged after it.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let deployed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Afterwards: reviewer signer-4's key is revoked from now (its approval stands), and
    // the scanner's key from 2020 (its scans are withdrawn, so 1.4.2 fails now).
    for (signer, from) in [(4, None), (2, Some("2020-01-01T00:00:00Z"))] {
        let key = evident_tests::public(signer).to_hex();
        let mut args = vec![
            "signer",
            "revoke",
            "--public-key",
            &key,
            "--reason",
            "key compromised",
            "--admin-key",
            "admin.key",
        ];
        if let Some(from) = from {
            args.extend(["--from", from]);
        }
        let out = evident(d, &server, &args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = gate(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    // Re-performed as of the deploy, the gate gives the answer it gave then.
    let out = gate(&["--as-of", &deployed_at, "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["decision"], "allowed");
    assert!(
        verdict["as_of"]
            .as_str()
            .unwrap()
            .starts_with(&deployed_at[..19])
    );
    // A time to come, or recording a re-performed verdict, is refused.
    let out = gate(&["--as-of", "2100-01-01T00:00:00Z"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("is in the future"),
        "{}",
        stderr(&out)
    );
    // Today's date means now: allowed, and decided as the log stands (denied).
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let out = gate(&["--as-of", &today]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = gate(&["--as-of", &deployed_at, "--record", "--key", "deploy.key"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );

    // The period report as of the deploy: the population, denials first, then exceptions.
    let out = report(
        d,
        &server,
        &[
            "--since",
            "2000-01-01",
            "--until",
            "2100-12-31",
            "--as-of",
            &deployed_at,
        ],
        &genesis,
    );
    let (html, markdown) = written(d, &out);
    let text = tokio::task::block_in_place(|| shown_text(&html, d));
    let flat_text = flat(&text);
    assert!(
        flat_text.contains("2 releases: 1 allowed, 1 denied; 1 with exceptions"),
        "{text}"
    );
    assert!(
        flat_text.contains("Decisions were re-performed as of"),
        "{text}"
    );
    let summary = flat(section(&text, "Summary", "Frameworks"));
    let denied_at = summary.find("api@1.4.3").unwrap();
    let allowed_at = summary.find("api@1.4.2").unwrap();
    assert!(denied_at < allowed_at, "denials come first:\n{summary}");
    assert!(
        markdown.lines().any(|l| l.starts_with(
            "| payments-api@1.4.2 | ALLOWED | payments-prod@1 | 4 of 4 | 1 | PASSED, entry "
        ) && l.ends_with(", signed by signer-7@test |")),
        "the recorded deploy verdict and its signer:\n{markdown}"
    );
    // 1.4.2's section: the exception with the policy's reason and approver.
    let r142 = &text[text.find("Release payments-api@1.4.2").unwrap()..];
    let exceptions = flat(section(r142, "3. Exceptions", "4. Reviews"));
    assert!(
        exceptions.contains("vulnerability-scan")
            && exceptions.contains("CVE-2024-")
            && exceptions.contains("HIGH")
            && exceptions.contains("not reachable from the")
            && exceptions.contains("payments-prod@1, signed by")
            && exceptions.contains("admin@test"),
        "{exceptions}"
    );
    // Separation of duties: the change, its author as the review system recorded it, and
    // each reviewer's decision with its time, counted.
    let reviews = flat(section(r142, "4. Reviews", "5. Tests"));
    assert!(
        reviews.contains("https://git.example.com/payments/pull/excepted")
            && reviews.contains("by signer-6@test")
            && reviews.contains("as recorded by signer-9@test"),
        "{reviews}"
    );
    assert_eq!(reviews.matches("COUNTED").count(), 2, "{reviews}");
    for reviewer in ["signer-3@test", "signer-4@test"] {
        assert!(
            markdown.contains(&format!(
                "| 2026-11-20T10:00:00Z | {reviewer} | APPROVED | {reviewer} | "
            )),
            "{reviewer}: {markdown}"
        );
    }
    // The test runs, with their suites and counts; 1.4.3's names the failed test.
    assert!(
        markdown.contains("| PASSED | unit integration | 2 passed, 0 warned, 0 failed | signer-1@test |")
            && markdown.contains("| FAILED | unit integration | 2 passed, 0 warned, 1 failed failed: ledger::refunds | signer-1@test |"),
        "{markdown}"
    );
    // As of the deploy, nothing had happened to the signers yet.
    let events = flat(section(r142, "6. Key events", "7. Attestations"));
    assert!(events.contains("None"), "{events}");
    // The controls: one row per control, the artifact named in the verdict.
    let verdict = flat(section(r142, "1. Verdict", "2. Controls"));
    assert!(
        verdict.contains("payments-api sha256:") && !verdict.contains("not in the bundle"),
        "{verdict}"
    );
    assert!(
        markdown.contains(
            "| vulnerability-scan | CVE-2024-0002 | HIGH | not reachable from the payment path | payments-prod@1, signed by admin@test | "
        ),
        "{markdown}"
    );
    // The population files auditors sample from.
    let csv = std::fs::read_to_string(d.join("out/evident-report.population.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("release,decision,policy,"), "{csv}");
    assert!(
        lines[1].starts_with("payments-api@1.4.3,denied,payments-prod@1,3,4,unit-tests,")
            && lines[1].contains(",signer-8@test,,,,,"),
        "only the deploy role's verdict is the release's, and 1.4.3 has none: {csv}"
    );
    assert!(
        lines[2].starts_with(
            "payments-api@1.4.2,allowed,payments-prod@1,4,4,,vulnerability-scan:CVE-2024-0002,"
        ) && lines[2].contains(",PASSED,")
            && lines[2].contains("signer-7@test"),
        "{csv}"
    );
    let population: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("out/evident-report.population.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(population["releases"][1]["recorded_verdict"], "PASSED");
    assert_eq!(
        population["releases"][1]["recorded_verdict_signer"],
        json!(["signer-7@test"])
    );
    assert_eq!(
        population["releases"][1]["declared_by"],
        json!(["signer-8@test"])
    );
    assert!(population["as_of"].is_string());
    assert_eq!(population["complete"], true, "{population}");
    crate::outputs::conforms("report-population", &population);
    // The name the release signer gave the artifact, never the squatter's.
    assert!(
        !markdown.contains("| Artifacts | payments-api-squatted")
            && markdown.contains("| Artifacts | payments-api sha256:"),
        "{markdown}"
    );
    // The OSCAL document says it re-performs, and carries the exception.
    let oscal: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("out/evident-report.oscal.json")).unwrap(),
    )
    .unwrap();
    nist_oscal_schema_accepts(&oscal);
    let result = &oscal["assessment-results"]["results"][0];
    assert!(
        result["props"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "as-of" && p["value"] == population["as_of"]),
        "{result:#}"
    );
    assert!(
        result["description"]
            .as_str()
            .unwrap()
            .contains("re-performing the decisions as of"),
        "{result:#}"
    );
    let scan = result["observations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["title"] == "payments-api@1.4.2: vulnerability-scan PASS")
        .unwrap();
    assert!(
        scan["description"]
            .as_str()
            .unwrap()
            .contains("Accepted by the policy's allowlist: CVE-2024-0002 (HIGH): not reachable"),
        "{scan:#}"
    );
    let out = report(
        d,
        &server,
        &["--release", "payments-api@1.4.2", "--as-of", "2100-01-01"],
        &genesis,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("is in the future"),
        "{}",
        stderr(&out)
    );
    // The same page, printed, as an image.
    let png = d.join("why.png");
    tokio::task::block_in_place(|| {
        chromium(
            &html,
            d,
            &[
                "--window-size=1280,3000",
                &format!("--screenshot={}", png.display()),
            ],
        )
    });
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

    // Now: the scanner's withdrawn signature denies 1.4.2, and the key events say why.
    std::fs::remove_dir_all(d.join("out")).unwrap();
    let out = report(d, &server, &["--release", "payments-api@1.4.2"], &genesis);
    let (html, markdown) = written(d, &out);
    let text = tokio::task::block_in_place(|| shown_text(&html, d));
    assert!(
        line_with(&text, "under policy").contains("DENIED under policy payments-prod version 1"),
        "{text}"
    );
    assert!(
        flat(&text).contains("6. Key events after the fact Registry changes recorded after"),
        "{text}"
    );
    let events: Vec<&str> = markdown
        .lines()
        .skip_while(|l| !l.starts_with("### 6. Key events"))
        .take_while(|l| !l.starts_with("### 7."))
        .filter(|l| l.starts_with("| 20"))
        .collect();
    assert_eq!(events.len(), 2, "{markdown}");
    // signer-4's key was revoked from the time of revocation: its approval stands.
    assert!(
        events[0].contains("| signer-4@test | revoked key ") && events[0].ends_with("| stand |"),
        "{events:?}"
    );
    // The scanner's, from 2020: its scan no longer counts.
    assert!(
        events[1].contains("| signer-2@test | revoked key ")
            && events[1].contains("from 2020-01-01T00:00:00Z: key compromised")
            && events[1].contains("| WITHDRAWN the signature on "),
        "{events:?}"
    );
}

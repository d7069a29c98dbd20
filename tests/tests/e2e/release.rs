//! Evident's own releases, gated by Evident: `scripts/release-evidence` writes the SBOM
//! and SLSA provenance of a build, signs and submits them with the release declaration,
//! and the gate holds the build to `packaging/evident-release.policy.toml` — denied until
//! the CI attests that the source commit's tests passed, allowed after.

use std::path::{Path, PathBuf};
use std::process::Command;

use evident_tests::{
    Server, cli, evident_bin, evident_release_bin, evidentd_bin, stderr, stdout, write_config,
};

const PROVENANCE: &str = "https://slsa.dev/provenance/v1";
const SBOM: &str = "https://evident.dev/attestation/sbom/v1";
const RELEASE: &str = "https://in-toto.io/attestation/release/v0.1";
const TESTS: &str = "https://in-toto.io/attestation/test-result/v0.1";

const BUILDER: u8 = 41;
const RELEASER: u8 = 42;
const CI: u8 = 43;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_owned()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running git");
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    stdout(&out).trim().to_owned()
}

fn write_key(dir: &Path, n: u8) -> PathBuf {
    let path = dir.join(format!("key-{n}"));
    evident_tests::write_private(&path, &format!("{}\n", hex::encode([n; 32])));
    path
}

#[test]
fn an_evident_build_ships_only_with_its_sbom_provenance_and_passing_tests_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&write_config(dir.path(), &data, &[], ""), &data).unwrap();
    server.register(BUILDER, &["builder"], &[PROVENANCE, SBOM]);
    server.register(RELEASER, &["release"], &[RELEASE]);
    server.register(CI, &["ci"], &[TESTS]);
    let policy = workspace().join("packaging/evident-release.policy.toml");
    let out = cli(
        dir.path(),
        Some(&server),
        &[
            "policy",
            "submit",
            policy.to_str().unwrap(),
            "--admin-key",
            "admin.key",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // The release is built from a commit: a clean clone of this one.
    let source = dir.path().join("source");
    let clone = Command::new("git")
        .args(["clone", "--quiet", "--local"])
        .arg(workspace())
        .arg(&source)
        .status()
        .unwrap();
    assert!(clone.success());
    let commit = git(&source, &["rev-parse", "HEAD"]);
    // The built artifacts: this build's binaries stand in for a release build's.
    let artifacts = format!("{} {}", evidentd_bin().display(), evident_bin().display());
    let release = |version: &str| {
        Command::new(workspace().join("scripts/release-evidence"))
            .arg(version)
            .env("SOURCE", &source)
            .current_dir(dir.path())
            .env("EVIDENT", evident_bin())
            .env("EVIDENT_RELEASE", evident_release_bin())
            .env("RELEASE_ARTIFACTS", &artifacts)
            .env("BUILDER_KEY", write_key(dir.path(), BUILDER))
            .env("RELEASE_KEY", write_key(dir.path(), RELEASER))
            .env("BUILDER_ID", "https://ci.evident.test/release")
            .env("GENESIS", data.join("genesis.json"))
            .env("OUT", dir.path().join(format!("evidence-{version}")))
            .env("EVIDENT_SERVER", &server.url)
            .env("EVIDENT_LOG_KEY", server.log_key.to_string())
            .env("EVIDENT_STATE", dir.path().join("state.json"))
            .output()
            .unwrap()
    };

    // No test result for the commit yet: the evidence goes in, the gate denies.
    let out = release("0.1.0");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    // Denied for want of the test result alone: provenance and SBOM pass.
    let line = |status: &str, control: &str| {
        text.lines()
            .any(|l| l.starts_with(status) && l.contains(&format!(" {control} [")))
    };
    assert!(
        line("MISSING", "tests"),
        "the missing control is named: {text}"
    );
    assert!(line("PASS", "provenance") && line("PASS", "sbom"), "{text}");
    assert!(!line("PASS", "tests") && text.contains("DENIED"), "{text}");
    let evidence = dir.path().join("evidence-0.1.0");
    let sbom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(evidence.join("sbom.cdx.json")).unwrap()).unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    // The log holds the SBOM's digest; the document itself is published with the build.
    let predicate: serde_json::Value =
        serde_json::from_slice(&std::fs::read(evidence.join("sbom.predicate.json")).unwrap())
            .unwrap();
    let bytes = std::fs::read(evidence.join("sbom.cdx.json")).unwrap();
    assert_eq!(
        predicate["document"]["digest"]["sha256"],
        evident_core::Hash::sha256(&bytes).to_hex()
    );
    let provenance: serde_json::Value =
        serde_json::from_slice(&std::fs::read(evidence.join("provenance.json")).unwrap()).unwrap();
    assert_eq!(
        provenance["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"],
        commit.as_str()
    );

    // The CI attests that the commit's tests passed; the same build is now allowed.
    std::fs::write(dir.path().join("passed.json"), r#"{"result": "PASSED"}"#).unwrap();
    let subject = format!("evident=gitCommit:{commit}");
    let ci_key = write_key(dir.path(), CI);
    let out = cli(
        dir.path(),
        Some(&server),
        &[
            "attest",
            "--subject",
            &subject,
            "--predicate-type",
            TESTS,
            "--predicate",
            "passed.json",
            "--key",
            ci_key.to_str().unwrap(),
            "--out",
            "tests.dsse.json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(dir.path(), Some(&server), &["submit", "tests.dsse.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = release("0.1.0");
    assert!(
        out.status.success(),
        "the release is allowed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("ALLOWED"), "{}", stdout(&out));

    // A build whose SBOM the builder did not sign (its key may not attest SBOMs) never
    // reaches the gate: the submission is refused and the script fails.
    let out = Command::new(workspace().join("scripts/release-evidence"))
        .arg("0.1.1")
        .env("SOURCE", &source)
        .current_dir(dir.path())
        .env("EVIDENT", evident_bin())
        .env("EVIDENT_RELEASE", evident_release_bin())
        .env("RELEASE_ARTIFACTS", &artifacts)
        .env("BUILDER_KEY", write_key(dir.path(), RELEASER))
        .env("RELEASE_KEY", write_key(dir.path(), RELEASER))
        .env("BUILDER_ID", "https://ci.evident.test/release")
        .env("GENESIS", data.join("genesis.json"))
        .env("OUT", dir.path().join("evidence-0.1.1"))
        .env("EVIDENT_SERVER", &server.url)
        .env("EVIDENT_LOG_KEY", server.log_key.to_string())
        .env("EVIDENT_STATE", dir.path().join("state.json"))
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("not allowed for predicate type https://evident.dev/attestation/sbom/v1"),
        "{text}"
    );
    assert!(
        !text.contains("ALLOWED"),
        "the gate is never reached: {text}"
    );
}

//! Pipelines as they sign today: a Sigstore bundle that GitHub's artifact attestations
//! produced (public material, tests/vectors/sigstore) is refused until the registry trusts
//! the Sigstore instance and registers the workflow, then accepted, authorized through the
//! registry, used by a release policy's `workflow:` rule, and the gate's verdict verifies
//! offline from the evidence bundle. Every DSSE conformance bundle is accepted or refused
//! through the real server for its stated reason.

use std::path::{Path, PathBuf};

use evident_client::ClientError;
use evident_tests::{Server, cli, stderr, stdout, write_config};

const PROVENANCE: &str = "https://slsa.dev/provenance/v1";
const WORKFLOW: &str = "sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main";
const ARTIFACT: &str = "sha512:90f223f992e4c88dd068cd2a5fc57f9d2b30798343dd6e38f29c240e04ba090ef831f84490847c4e82b9232c78e8a258463b1e55c0f7469f730265008fa6633f";

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/sigstore")
}

fn run(dir: &Path, server: &Server, args: &[&str]) -> std::process::Output {
    tokio::task::block_in_place(|| cli(dir, Some(server), args))
}

fn ok(out: &std::process::Output) {
    assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_attestation_bundle_is_authorized_by_its_workflow_and_gates_a_release_offline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let server = Server::start(&write_config(d, &data, &[], ""), &data).unwrap();
    // Copied beside the test's files: `submit` writes the receipt next to its input.
    let bundle = d.join("sigstore-2.1.0.sigstore.json");
    std::fs::copy(
        vectors().join("github/sigstore-js-2.1.0-bundle.json"),
        &bundle,
    )
    .unwrap();
    let bundle = bundle.to_str().unwrap();
    let root = vectors().join("trusted_roots/production.trusted_root.json");

    // No trusted root yet: refused, and the message says what to do.
    let before = server.size().await;
    let out = run(d, &server, &["submit", bundle]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("evident sigstore trust"),
        "{}",
        stderr(&out)
    );
    ok(&run(
        d,
        &server,
        &[
            "sigstore",
            "trust",
            "public-good",
            root.to_str().unwrap(),
            "--admin-key",
            "admin.key",
        ],
    ));
    // Trusted, but no signer stands for this workflow's certificates.
    let out = run(d, &server, &["submit", bundle]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("no registered signer matches the certificate")
            && said.contains(&format!("https://github.com/{WORKFLOW}")),
        "{said}"
    );
    assert_eq!(
        server.size().await,
        before + 1,
        "only the trust entry was logged"
    );

    // The workflow as a keyless signer, then the bundle is accepted.
    ok(&run(
        d,
        &server,
        &[
            "signer",
            "add",
            "--identity",
            "release@sigstore-js",
            "--github-workflow",
            WORKFLOW,
            "--role",
            "release",
            "--predicate-type",
            PROVENANCE,
            "--admin-key",
            "admin.key",
        ],
    ));
    let out = run(d, &server, &["submit", bundle, "--format", "json"]);
    ok(&out);
    let results: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let index = results[0]["index"]
        .as_u64()
        .unwrap_or_else(|| panic!("an index in {results}"));

    // The entry carries the bundle's material: the signer is the registered identity, and
    // the entry read back holds the certificate for anyone to verify again.
    let entry = server
        .client()
        .await
        .entry(evident_client::Selector::Index(index), None)
        .await
        .unwrap();
    let material = entry
        .record
        .envelope()
        .sigstore
        .clone()
        .expect("Sigstore material kept");
    let material: serde_json::Value = serde_json::from_slice(&material).unwrap();
    assert!(material["verificationMaterial"]["certificate"].is_object());
    // `evident entry` gives the bundle back whole, and it verifies again, offline, with
    // the trusted root alone: what an auditor hands to any Sigstore client.
    let out = run(
        d,
        &server,
        &["entry", "--index", &index.to_string(), "--format", "json"],
    );
    ok(&out);
    let shown: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let again = evident_core::sigstore::Bundle::from_json(
        &serde_json::to_vec(&shown["sigstore_bundle"]).unwrap(),
    )
    .unwrap();
    let trusted =
        evident_core::sigstore::TrustedRoot::from_json(&std::fs::read(&root).unwrap()).unwrap();
    let verified = evident_core::sigstore::verify(
        &again,
        &trusted,
        &evident_core::sigstore::VerifyOptions::default(),
    )
    .unwrap();
    assert_eq!(
        verified.identity.map(|i| i.subject),
        Some(format!("https://github.com/{WORKFLOW}"))
    );
    let out = run(
        d,
        &server,
        &[
            "query",
            "--signer",
            "release@sigstore-js",
            "--format",
            "json",
        ],
    );
    ok(&out);
    let found: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        found["results"]
            .as_array()
            .is_some_and(|r| r.iter().any(|e| e["index"] == index)),
        "{found}"
    );

    // A policy that requires the release workflow allows the package; one that requires
    // another workflow denies it.
    let policy = |name: &str, workflow: &str| {
        let path = d.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "name = \"{name}\"\nversion = 1\n\n[[control]]\nid = \"provenance\"\n\
                 predicate_type = \"{PROVENANCE}\"\nsigners = [\"workflow:{workflow}\"]\n"
            ),
        )
        .unwrap();
        ok(&run(
            d,
            &server,
            &[
                "policy",
                "submit",
                path.to_str().unwrap(),
                "--admin-key",
                "admin.key",
            ],
        ));
    };
    policy("npm-release", WORKFLOW);
    policy(
        "npm-release-tags",
        "sigstore/sigstore-js/.github/workflows/release.yml@refs/tags/v*",
    );
    let genesis = server.data_dir.join("genesis.json").display().to_string();
    let gate = |policy: &str| {
        run(
            d,
            &server,
            &[
                "gate",
                "--artifact",
                ARTIFACT,
                "--policy",
                policy,
                "--genesis",
                &genesis,
            ],
        )
    };
    let out = gate("npm-release");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = gate("npm-release-tags");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // Offline: the exported bundle, the log key and the genesis are all it trusts; the
    // Sigstore bundle is verified again from the leaf record.
    ok(&run(
        d,
        &server,
        &[
            "bundle",
            "export",
            "--artifact",
            ARTIFACT,
            "--out",
            "evidence.json",
        ],
    ));
    let log_key = server.log_key.to_string();
    let offline = |policy: &str| {
        tokio::task::block_in_place(|| {
            cli(
                d,
                None,
                &[
                    "bundle",
                    "verify",
                    "evidence.json",
                    "--artifact",
                    ARTIFACT,
                    "--policy",
                    policy,
                    "--genesis",
                    &genesis,
                    "--log-key",
                    &log_key,
                ],
            )
        })
    };
    let out = offline("npm-release");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = offline("npm-release-tags");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // The whole log replays from the genesis, Sigstore bundle included.
    let out = run(d, &server, &["audit", "--genesis", &genesis]);
    ok(&out);

    // Revoking the keyless signer: the same workflow's next bundle is refused.
    ok(&run(
        d,
        &server,
        &[
            "signer",
            "revoke",
            "--identity",
            "release@sigstore-js",
            "--reason",
            "workflow compromised",
            "--admin-key",
            "admin.key",
        ],
    ));
    let other = d.join("other.sigstore.json");
    std::fs::copy(
        vectors().join("github/sigstore-js-2.1.0_with_2_bundles.2.json"),
        &other,
    )
    .unwrap();
    let before = server.size().await;
    let out = run(d, &server, &["submit", other.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));
    assert_eq!(server.size().await, before);
}

#[derive(serde::Deserialize)]
struct Manifest {
    case: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    dir: String,
    bundle: String,
    expect: String,
    content: Option<String>,
    trusted_root: Option<String>,
    identity: Option<String>,
    issuer: Option<String>,
    evident_reason: Option<String>,
    evident_expect: Option<String>,
    evident_gap: Option<String>,
    payload_type: Option<String>,
}

/// Every DSSE bundle of the vectors, through `Submit` on a real server: its trusted root
/// trusted, its identity registered, then accepted when valid, refused with
/// `SIGSTORE_BUNDLE_INVALID` and its stated reason when not, and the log unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dsse_vector_bundle_is_accepted_or_refused_for_its_reason_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    // The vectors' bundles are larger than the default envelope limit allows for some.
    let server = Server::start(
        &write_config(d, &data, &[], "max_envelope_bytes = 262144\n"),
        &data,
    )
    .unwrap();
    let manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(vectors().join("MANIFEST.toml")).unwrap()).unwrap();
    let mut registered = std::collections::BTreeSet::new();
    let mut tried = 0;
    for case in manifest
        .case
        .iter()
        .filter(|c| c.content.as_deref() == Some("dsse"))
    {
        let (Some(root), Some(identity), Some(issuer), None) = (
            &case.trusted_root,
            &case.identity,
            &case.issuer,
            &case.evident_gap,
        ) else {
            continue;
        };
        tried += 1;
        // Only this case's root is trusted while it is tried (another could make a
        // refused case pass); the reason makes each trust a new entry.
        ok(&run(
            d,
            &server,
            &[
                "sigstore",
                "trust",
                "case",
                vectors().join(root).to_str().unwrap(),
                "--reason",
                &case.name,
                "--admin-key",
                "admin.key",
            ],
        ));
        if registered.insert((issuer.clone(), identity.clone())) {
            let name = format!("keyless-{}@test", registered.len());
            ok(&run(
                d,
                &server,
                &[
                    "signer",
                    "add",
                    "--identity",
                    &name,
                    "--certificate-issuer",
                    issuer,
                    "--certificate-subject",
                    identity,
                    "--predicate-type",
                    "*",
                    "--admin-key",
                    "admin.key",
                ],
            ));
        }
        let bytes = std::fs::read(vectors().join(&case.dir).join(&case.bundle)).unwrap();
        let before = server.size().await;
        let answer = server.client().await.submit_sigstore_bundle(&bytes).await;
        // A bundle of something other than an in-toto Statement is not an attestation:
        // refused for that first, whatever else is wrong with it.
        if case.payload_type.as_deref() != Some("application/vnd.in-toto+json") {
            match answer {
                Err(ClientError::Status { reason, .. }) => {
                    assert_eq!(
                        reason.as_deref(),
                        Some("PAYLOAD_TYPE_NOT_ACCEPTED"),
                        "{}",
                        case.name
                    )
                }
                other => panic!("{}: {other:?}", case.name),
            }
            assert_eq!(server.size().await, before, "{}: log changed", case.name);
            continue;
        }
        match (
            case.evident_expect.as_deref().unwrap_or(&case.expect),
            answer,
        ) {
            // The same envelope by the same signer (another bundle of it) is a retry.
            ("pass", Ok((_, duplicate))) => assert_eq!(
                server.size().await,
                before + u64::from(!duplicate),
                "{}",
                case.name
            ),
            ("pass", Err(e)) => panic!("{}: refused: {e}", case.name),
            ("fail", Ok(_)) => panic!("{}: accepted", case.name),
            ("fail", Err(e)) => {
                assert_eq!(server.size().await, before, "{}: log changed", case.name);
                let ClientError::Status {
                    message, reason, ..
                } = &e
                else {
                    panic!("{}: {e}", case.name);
                };
                let want = case
                    .evident_reason
                    .as_deref()
                    .unwrap_or_else(|| panic!("{}: no evident_reason", case.name));
                assert!(
                    message.contains(&format!("({want})")),
                    "{}: {message} should be for {want}",
                    case.name
                );
                assert!(
                    matches!(
                        reason.as_deref(),
                        Some("SIGSTORE_BUNDLE_INVALID") | Some("STATEMENT_INVALID")
                    ) || message.contains("sigstore_bundle"),
                    "{}: {reason:?} {message}",
                    case.name
                );
            }
            (other, _) => panic!("{}: unknown expectation {other}", case.name),
        }
    }
    assert!(tried >= 20, "only {tried} DSSE cases");
}

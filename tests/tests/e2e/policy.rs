//! Policy versions in the log: admin-signed, checked on submission (the line of a broken
//! CEL condition, unknown roles, versions that do not increase), listed and shown.

use evident_client::ClientError;
use evident_core::dsse::Envelope;
use evident_core::policy::POLICY_PAYLOAD_TYPE;
use evident_core::record::EntryKind;
use evident_tests::{ADMIN, Server, cli, key, stderr, stdout, write_config};
use tonic::Code;

fn policy(version: u64, role: &str, require: &str) -> String {
    format!(
        "name = \"payments-prod\"\nversion = {version}\n\n[[control]]\nid = \"unit-tests\"\n\
         predicate_type = \"https://in-toto.io/attestation/test-result/v0.1\"\n\
         signers = [\"role:{role}\"]\nrequire = '{require}'\n"
    )
}

fn signed(text: &str, by: u8) -> Envelope {
    Envelope::sign(POLICY_PAYLOAD_TYPE, text.as_bytes().to_vec(), &[&key(by)])
}

async fn refused(server: &Server, env: Envelope, code: Code, says: &str) {
    let before = server.size().await;
    match server.client().await.submit(&env).await.unwrap_err() {
        ClientError::Status {
            code: got, message, ..
        } => {
            assert_eq!(got, code, "{message}");
            assert!(message.contains(says), "{message:?} should say {says:?}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        server.size().await,
        before,
        "a refused policy changed the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_versions_are_checked_stored_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let server = Server::start(&write_config(d, &data, &[1], ""), &data).unwrap();
    let good = policy(1, "ci", r#"predicate.result == "PASSED""#);

    refused(
        &server,
        signed(&good, 1),
        Code::PermissionDenied,
        "administrator",
    )
    .await;
    refused(
        &server,
        signed(&policy(1, "ci", "predicate.result =="), ADMIN),
        Code::InvalidArgument,
        "line 8",
    )
    .await;
    refused(
        &server,
        signed(&policy(1, "auditor", "true"), ADMIN),
        Code::InvalidArgument,
        "role \"auditor\" is held by no registered signer",
    )
    .await;
    refused(
        &server,
        signed("name = \"x\"\nversion = 1\nextra = 1\n", ADMIN),
        Code::InvalidArgument,
        "extra",
    )
    .await;

    let (receipt, _) = server
        .client()
        .await
        .submit(&signed(&good, ADMIN))
        .await
        .unwrap();
    assert_eq!(receipt.kind, EntryKind::Policy);
    receipt.verify(&server.log_key).unwrap();
    refused(
        &server,
        signed(&policy(1, "ci", "true"), ADMIN),
        Code::FailedPrecondition,
        "must be higher than 1",
    )
    .await;

    // The CLI checks locally, signs and submits; a new version keeps the old one.
    std::fs::write(d.join("policy.toml"), policy(2, "ci", "true")).unwrap();
    let out = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &[
                "policy",
                "submit",
                "policy.toml",
                "--admin-key",
                "admin.key",
            ],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("policy payments-prod@2 is entry"),
        "{}",
        stdout(&out)
    );
    std::fs::write(
        d.join("broken.toml"),
        policy(3, "ci", "predicate.result =="),
    )
    .unwrap();
    let out = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &[
                "policy",
                "submit",
                "broken.toml",
                "--admin-key",
                "admin.key",
            ],
        )
    });
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("line 8"), "{}", stderr(&out));

    let out = tokio::task::block_in_place(|| cli(d, Some(&server), &["policy", "list"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("payments-prod@1") && stdout(&out).contains("payments-prod@2"),
        "{}",
        stdout(&out)
    );
    let out = tokio::task::block_in_place(|| {
        cli(d, Some(&server), &["policy", "show", "payments-prod@1"])
    });
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(r#"require = 'predicate.result == "PASSED"'"#),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("signed by admin@test"),
        "{}",
        stdout(&out)
    );
    let latest = server
        .client()
        .await
        .get_policy("payments-prod", None)
        .await
        .unwrap();
    assert_eq!(latest.version, 2);
}

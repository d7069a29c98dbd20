//! Transport security and client roles: TLS by default, mutual TLS, bearer tokens, each
//! role boundary, and the refusals — certificates made in the test with rcgen.

use std::path::{Path, PathBuf};

use evident_client::{ClientError, Credentials, Query};
use evident_tests::{
    Server, TestCa, cli, envelope, evidentd_bin, issue_cert, key, stderr, stdout, test_ca,
    write_config, write_private,
};

fn https(server: &Server) -> String {
    let port = server.url.rsplit(':').next().unwrap();
    format!("https://127.0.0.1:{port}")
}

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> tonic::Code {
    match result {
        Err(ClientError::Status { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_server_serves_tls_with_a_certificate_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No [tls] at all: the default.
    let config = write_config(dir.path(), &data, &[], "[tls]");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[tls]", "");
    std::fs::write(&config, text).unwrap();
    let mut server = Server::start(&config, &data).unwrap();
    server.url = https(&server);
    let ca_file = data.join("tls/ca.pem");
    assert!(
        ca_file.exists(),
        "the CA of the made certificate is published"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("tls/server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let ca_arg = ca_file.display().to_string();
    let run = |args: &[&str]| tokio::task::block_in_place(|| cli(dir.path(), Some(&server), args));
    let out = run(&["checkpoint", "--ca", &ca_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Without the CA the client says what to give it.
    let out = run(&["checkpoint"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--ca"), "{}", stderr(&out));
    // A CA that did not sign the server's certificate: the handshake fails.
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, test_ca("someone else").pem).unwrap();
    let out = run(&["checkpoint", "--ca", &other.display().to_string()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    // A plaintext client cannot talk to it.
    let plain = server.url.replace("https://", "http://");
    let refused = match evident_client::Client::connect(&plain).await {
        Err(_) => true,
        Ok(mut c) => c.checkpoint().await.is_err(),
    };
    assert!(refused, "a plaintext client must not get an answer");
}

/// A server with mutual TLS and tokens: client certificates from `clients` CA, identities
/// `ci.payments` (submitter), `audit.example` (auditor); tokens for an admin and a
/// submitter. Returns the server (https URL), the client CA, and the tokens.
struct Secured {
    server: Server,
    clients: TestCa,
    server_ca: PathBuf,
    admin_token: String,
    submitter_token: String,
}

fn new_token(name: &str, role: &str) -> (String, String) {
    let out = std::process::Command::new(evidentd_bin())
        .args(["token", "--name", name, "--role", role])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let token = text
        .lines()
        .find_map(|l| l.split(": ").nth(1).filter(|t| t.starts_with("evt_")))
        .expect("the token is printed")
        .to_owned();
    let entry = text[text.find("[[token]]").unwrap()..].to_owned();
    (token, entry)
}

async fn secured(dir: &Path) -> Secured {
    let server_ca = test_ca("server CA");
    let clients = test_ca("clients CA");
    let (cert, key_pem) = issue_cert(&server_ca, "evidentd", &["127.0.0.1", "localhost"]);
    std::fs::write(dir.join("server.pem"), cert).unwrap();
    write_private(&dir.join("server.key"), &key_pem);
    std::fs::write(dir.join("server-ca.pem"), &server_ca.pem).unwrap();
    std::fs::write(dir.join("clients-ca.pem"), &clients.pem).unwrap();
    let (admin_token, admin_entry) = new_token("release-admin", "admin");
    let (submitter_token, submitter_entry) = new_token("ci-job", "submitter");
    let extra = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n\n\
         [[client]]\nidentity = \"ci.payments\"\nroles = [\"submitter\"]\n\n\
         [[client]]\nidentity = \"audit.example\"\nroles = [\"auditor\"]\n\n{admin_entry}\n{submitter_entry}\n",
        dir.join("server.pem").display().to_string(),
        dir.join("server.key").display().to_string(),
        dir.join("clients-ca.pem").display().to_string(),
    );
    let data = dir.join("data");
    // No signers listed: the harness registers them through the CLI, which here needs the
    // admin token, so the test registers them itself.
    let config = write_config(dir, &data, &[], &extra);
    // The [genesis] tables follow `extra`: keep the token entries before them valid TOML.
    let mut server = Server::start(&config, &data).unwrap();
    server.url = https(&server);
    let out = tokio::task::block_in_place(|| {
        cli(
            dir,
            Some(&server),
            &[
                "signer",
                "add",
                "--identity",
                "signer-1@test",
                "--public-key",
                &evident_tests::public(1).to_hex(),
                "--role",
                "ci",
                "--predicate-type",
                "*",
                "--admin-key",
                "admin.key",
                "--ca",
                &dir.join("server-ca.pem").display().to_string(),
                "--token",
                &admin_token,
            ],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    Secured {
        server,
        clients,
        server_ca: dir.join("server-ca.pem"),
        admin_token,
        submitter_token,
    }
}

fn credentials(
    s: &Secured,
    identity: Option<(String, String)>,
    token: Option<&str>,
) -> Credentials {
    Credentials {
        ca: Some(std::fs::read(&s.server_ca).unwrap()),
        identity: identity.map(|(c, k)| (c.into_bytes(), k.into_bytes())),
        token: token.map(str::to_owned),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_gives_each_certificate_its_roles_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let s = secured(dir.path()).await;
    let url = s.server.url.clone();
    let connect = |identity, token: Option<&str>| {
        let creds = credentials(&s, identity, token);
        let url = url.clone();
        async move {
            evident_client::Client::connect_with(&url, &creds)
                .await
                .unwrap()
        }
    };
    let all = Query::default;

    // The CI certificate submits; it may not read the log.
    let mut ci = connect(Some(issue_cert(&s.clients, "ci.payments", &[])), None).await;
    ci.submit(&envelope(&key(1), 1)).await.unwrap();
    assert!(
        ci.checkpoint().await.is_ok(),
        "every role reads checkpoints"
    );
    let refused = ci.query(&all()).await;
    match &refused {
        Err(ClientError::Status { code, message, .. }) => {
            assert_eq!(*code, tonic::Code::PermissionDenied);
            assert!(
                message.contains("cert:ci.payments (roles: submitter) may not query the log")
                    && message.contains("auditor"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }

    // The auditor's certificate (identity in a SAN) reads; it may not submit.
    let mut auditor = connect(
        Some(issue_cert(&s.clients, "someone", &["audit.example"])),
        None,
    )
    .await;
    assert_eq!(auditor.query(&all()).await.unwrap().hits.len(), 2);
    assert_eq!(
        code(auditor.submit(&envelope(&key(1), 2)).await),
        tonic::Code::PermissionDenied
    );

    // A certificate from the right CA for an identity with no role, and no credentials at
    // all: UNAUTHENTICATED.
    let mut nobody = connect(Some(issue_cert(&s.clients, "intern.example", &[])), None).await;
    assert_eq!(
        code(nobody.checkpoint().await),
        tonic::Code::Unauthenticated
    );
    let mut anonymous = connect(None, None).await;
    match anonymous.checkpoint().await {
        Err(ClientError::Status { code, message, .. }) => {
            assert_eq!(code, tonic::Code::Unauthenticated);
            assert!(message.contains("no credentials"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // A certificate from another CA fails the TLS handshake.
    let stranger = test_ca("stranger CA");
    let creds = credentials(&s, Some(issue_cert(&stranger, "ci.payments", &[])), None);
    let refused = match evident_client::Client::connect_with(&url, &creds).await {
        Err(_) => true,
        Ok(mut c) => c.checkpoint().await.is_err(),
    };
    assert!(
        refused,
        "a certificate the client CA did not sign is refused"
    );

    // Nothing refused changed the log: the first submission and the signer entry.
    assert_eq!(size(&s).await, 2);
}

/// The log's size, read with the admin token.
async fn size(s: &Secured) -> u64 {
    let creds = credentials(s, None, Some(&s.admin_token));
    let mut c = evident_client::Client::connect_with(&s.server.url, &creds)
        .await
        .unwrap();
    let note = c.checkpoint().await.unwrap();
    evident_core::note::Checkpoint::verify(&note, &s.server.log_key)
        .unwrap()
        .size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_carry_roles_and_an_unknown_token_is_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let s = secured(dir.path()).await;
    let d = dir.path();
    let ca_arg = s.server_ca.display().to_string();
    let run = |args: &[&str]| tokio::task::block_in_place(|| cli(d, Some(&s.server), args));

    // The submitter's token submits an attestation from the CLI.
    std::fs::write(d.join("t.json"), r#"{"result": "PASSED"}"#).unwrap();
    evident_tests::write_private(&d.join("ci.key"), &format!("{}\n", hex::encode([1u8; 32])));
    let out = run(&[
        "attest",
        "--subject",
        "app=sha256:421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195",
        "--predicate-type",
        "https://in-toto.io/attestation/test-result/v0.1",
        "--predicate",
        "t.json",
        "--key",
        "ci.key",
        "--out",
        "t.dsse.json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&[
        "submit",
        "t.dsse.json",
        "--ca",
        &ca_arg,
        "--token",
        &s.submitter_token,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    // It may not change the registry: that is the admin's.
    let out = run(&[
        "signer",
        "revoke",
        "--public-key",
        &evident_tests::public(1).to_hex(),
        "--reason",
        "test",
        "--admin-key",
        "admin.key",
        "--ca",
        &ca_arg,
        "--token",
        &s.submitter_token,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("token:ci-job (roles: submitter) may not submit registry changes"),
        "{}",
        stderr(&out)
    );

    // An unknown token, and a token file others can read.
    let out = run(&["checkpoint", "--ca", &ca_arg, "--token", "evt_guess"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not one this server knows"),
        "{}",
        stderr(&out)
    );
    let token_file = d.join("token");
    std::fs::write(&token_file, &s.admin_token).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = run(&["checkpoint", "--ca", &ca_arg, "--token", "token"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = run(&["checkpoint", "--ca", &ca_arg, "--token", "token"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        size(&s).await,
        2,
        "the refused change left the log as it was"
    );
}

fn start_error(dir: &Path, extra: &str, listen: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let data = dir.join("data");
    let config = write_config(dir, &data, &[], extra);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{listen}\""),
    );
    std::fs::write(&config, text).unwrap();
    Server::start(&config, &data).unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_setups_are_refused_at_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    // Plaintext beyond loopback.
    let err = start_error(&dir.path().join("a"), "", "0.0.0.0:0");
    assert!(
        err.contains("plaintext gRPC on 0.0.0.0:0") && err.contains("--insecure-allow-plaintext"),
        "{err}"
    );
    // TLS beyond loopback, but no client configured: everyone would have every role.
    let err = start_error(&dir.path().join("b"), "[tls]", "0.0.0.0:0");
    assert!(err.contains("only allowed on loopback"), "{err}");
    // A server key others can read.
    let d = dir.path().join("c");
    std::fs::create_dir_all(&d).unwrap();
    let server_ca = test_ca("server CA");
    let (cert, key_pem) = issue_cert(&server_ca, "evidentd", &["127.0.0.1"]);
    std::fs::write(d.join("server.pem"), cert).unwrap();
    std::fs::write(d.join("server.key"), key_pem).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let extra = format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n",
            d.join("server.pem").display().to_string(),
            d.join("server.key").display().to_string()
        );
        let err = start_error(&d, &extra, "127.0.0.1:0");
        assert!(err.contains("chmod 600"), "{err}");
    }
    // A role that does not exist, and half a TLS setup.
    let err = start_error(
        &dir.path().join("d"),
        "[[token]]\nname = \"x\"\nsha256 = \"00\"\nroles = [\"root\"]\n",
        "127.0.0.1:0",
    );
    assert!(err.contains("token[0].sha256"), "{err}");
    let err = start_error(
        &dir.path().join("e"),
        "[tls]\ncert = \"x.pem\"\n",
        "127.0.0.1:0",
    );
    assert!(err.contains("tls.cert and tls.key go together"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_limit_is_refused_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (greedy, greedy_entry) = new_token("greedy", "auditor");
    let (polite, polite_entry) = new_token("polite", "auditor");
    let extra = format!(
        "[limits]\nrate_per_client = 0.5\nburst_per_client = 3\n\n{greedy_entry}\n{polite_entry}\n"
    );
    let data = dir.path().join("data");
    let server = Server::start(&write_config(dir.path(), &data, &[], &extra), &data).unwrap();
    let connect = |token: &str| {
        let creds = Credentials {
            token: Some(token.to_owned()),
            ..Credentials::default()
        };
        let url = server.url.clone();
        async move {
            evident_client::Client::connect_with(&url, &creds)
                .await
                .unwrap()
        }
    };
    let mut g = connect(&greedy).await;
    let mut refusals = Vec::new();
    for _ in 0..6 {
        if let Err(e) = g.checkpoint().await {
            refusals.push(e);
        }
    }
    assert!(refusals.len() >= 2, "a burst of 3 at 0.5/s: {refusals:?}");
    match &refusals[0] {
        ClientError::Status { code, message, .. } => {
            assert_eq!(*code, tonic::Code::ResourceExhausted);
            assert!(
                message.contains("token:greedy is over its rate limit")
                    && message.contains("limits.rate_per_client"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The other client keeps its share.
    let mut p = connect(&polite).await;
    for _ in 0..3 {
        p.checkpoint().await.unwrap();
    }
}

//! The trust registry through the real server: rejections leave the log unchanged,
//! revocation and rotation decide at the integrated time, and an offline verifier with only
//! the genesis administrator rebuilds the server's registry at every index.

use evident_client::{ClientError, Selector, SignerListing};
use evident_core::SigningKey;
use evident_core::record::EntryKind;
use evident_core::registry::{Admin, Change, Registry, sign_change};
use evident_tests::{
    ADMIN, Server, cli, envelope, key, public, stderr, stdout, store_config, write_config,
};
use tonic::Code;

fn admin_signed(change: &Change, admins: &[u8]) -> evident_core::dsse::Envelope {
    let keys: Vec<SigningKey> = admins.iter().map(|&n| key(n)).collect();
    let refs: Vec<&SigningKey> = keys.iter().collect();
    sign_change(change, &refs)
}

fn add_signer(n: u8, identity: &str, types: &[&str]) -> Change {
    Change::AddSigner {
        identity: identity.into(),
        public_key: Some(public(n).to_hex()),
        roles: vec!["ci".into()],
        predicate_types: types.iter().map(|s| s.to_string()).collect(),
        not_before: None,
        not_after: None,
        certificate: None,
    }
}

async fn refused(server: &Server, env: evident_core::dsse::Envelope, code: Code, says: &str) {
    let before = server.size().await;
    match server.client().await.submit(&env).await.unwrap_err() {
        ClientError::Status {
            code: got, message, ..
        } => {
            assert_eq!(got, code, "{message}");
            assert!(message.contains(says), "{message:?} should say {says:?}");
        }
        other => panic!("expected a status, got {other}"),
    }
    assert_eq!(
        server.size().await,
        before,
        "a refused change modified the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registry_changes_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&write_config(dir.path(), &data, &[], ""), &data).unwrap();

    refused(
        &server,
        admin_signed(&add_signer(1, "ci@x", &["*"]), &[7]),
        Code::PermissionDenied,
        "administrator",
    )
    .await;
    let unknown = Change::RevokeKey {
        public_key: public(9).to_hex(),
        from: None,
        reason: "lost".into(),
    };
    refused(
        &server,
        admin_signed(&unknown, &[ADMIN]),
        Code::FailedPrecondition,
        "revokes an unknown key",
    )
    .await;
    let last = Change::RemoveAdmin {
        public_key: public(ADMIN).to_hex(),
        threshold: None,
    };
    refused(
        &server,
        admin_signed(&last, &[ADMIN]),
        Code::FailedPrecondition,
        "leave no one",
    )
    .await;
    let bad_time = Change::AddSigner {
        identity: "ci@x".into(),
        public_key: Some(public(1).to_hex()),
        roles: vec![],
        predicate_types: vec!["*".into()],
        not_before: Some("soon".into()),
        not_after: None,
        certificate: None,
    };
    refused(
        &server,
        admin_signed(&bad_time, &[ADMIN]),
        Code::InvalidArgument,
        "not_before",
    )
    .await;
    let mut unsigned = admin_signed(&add_signer(1, "ci@x", &["*"]), &[ADMIN]);
    unsigned.signatures.clear();
    refused(&server, unsigned, Code::Unauthenticated, "no signatures").await;

    // Two administrators with a threshold of two: one signature is not enough.
    let mut client = server.client().await;
    let add = Change::AddAdmin {
        identity: "bob@x".into(),
        public_key: public(201).to_hex(),
        threshold: Some(2),
    };
    client.submit(&admin_signed(&add, &[ADMIN])).await.unwrap();
    refused(
        &server,
        admin_signed(&add_signer(1, "ci@x", &["*"]), &[ADMIN]),
        Code::PermissionDenied,
        "needs 2 administrator",
    )
    .await;
    refused(
        &server,
        admin_signed(&add_signer(1, "ci@x", &["*"]), &[ADMIN, ADMIN]),
        Code::PermissionDenied,
        "needs 2 administrator",
    )
    .await;
    let (receipt, _) = client
        .submit(&admin_signed(&add_signer(1, "ci@x", &["*"]), &[ADMIN, 201]))
        .await
        .unwrap();
    assert_eq!(receipt.kind, EntryKind::Registry);
    receipt.verify(&server.log_key).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_after_its_revocation_and_earlier_entries_stay_valid() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&write_config(dir.path(), &data, &[1], ""), &data).unwrap();
    let mut client = server.client().await;
    let (before, _) = client.submit(&envelope(&key(1), 1)).await.unwrap();

    let out = tokio::task::block_in_place(|| {
        cli(
            dir.path(),
            Some(&server),
            &[
                "signer",
                "revoke",
                "--public-key",
                &public(1).to_hex(),
                "--reason",
                "key leaked in a build log",
                "--admin-key",
                "admin.key",
            ],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));

    match client.submit(&envelope(&key(1), 2)).await.unwrap_err() {
        ClientError::Status { code, message, .. } => {
            assert_eq!(code, Code::PermissionDenied);
            assert!(message.contains("revoked"), "{message}");
            assert!(message.contains("key leaked in a build log"), "{message}");
        }
        other => panic!("{other}"),
    }
    // The attestation integrated before the revocation is still in the log, provable, and
    // authorized under the registry as of its own index and time.
    let verified = before.verify(&server.log_key).unwrap();
    let listing = client.list_signers(Some(before.index)).await.unwrap();
    let registry = rebuild(&mut client, before.index).await;
    let statement = evident_core::statement::Statement::from_envelope(&before.envelope).unwrap();
    registry
        .authorize_envelope(
            &before.envelope,
            &statement.predicate_type,
            verified.record.integrated_time_nanos(),
        )
        .unwrap();
    assert!(listing.signers.iter().all(|k| k.revoked.is_none()));
    // And the current registry shows the revocation.
    let now = client.list_signers(None).await.unwrap();
    assert!(now.signers[0].revoked.is_some());
    // As of a time: before the revocation entry the key was clean, after it revoked.
    let then = client
        .list_signers_at(None, Some(verified.record.integrated_time_nanos()))
        .await
        .unwrap();
    assert!(then.signers[0].revoked.is_none());
    assert_eq!(
        then.as_of_index, 2,
        "the revocation entry is the first one not covered"
    );
    let later = client.list_signers_at(None, Some(i64::MAX)).await.unwrap();
    assert!(later.signers[0].revoked.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_accepts_the_new_key_and_refuses_the_old_one_after_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&write_config(dir.path(), &data, &[1], ""), &data).unwrap();
    let mut client = server.client().await;
    client.submit(&envelope(&key(1), 1)).await.unwrap();
    let out = tokio::task::block_in_place(|| {
        cli(
            dir.path(),
            Some(&server),
            &[
                "signer",
                "rotate",
                "--identity",
                "signer-1@test",
                "--new-public-key",
                &public(2).to_hex(),
                "--admin-key",
                "admin.key",
            ],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    let (receipt, _) = client.submit(&envelope(&key(2), 2)).await.unwrap();
    receipt.verify(&server.log_key).unwrap();
    match client.submit(&envelope(&key(1), 3)).await.unwrap_err() {
        ClientError::Status { code, message, .. } => {
            assert_eq!(code, Code::PermissionDenied);
            assert!(message.contains("expired"), "{message}");
        }
        other => panic!("{other}"),
    }
    let out = tokio::task::block_in_place(|| {
        cli(
            dir.path(),
            Some(&server),
            &["signer", "show", "signer-1@test"],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("rotated key"), "{}", stdout(&out));
    assert!(stdout(&out).contains("expired at"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_refused_for_predicate_types_it_was_not_registered_for() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&write_config(dir.path(), &data, &[], ""), &data).unwrap();
    tokio::task::block_in_place(|| {
        server.register(
            3,
            &["scanner"],
            &["https://in-toto.io/attestation/vulns/v0.2"],
        )
    });
    match server
        .client()
        .await
        .submit(&envelope(&key(3), 1))
        .await
        .unwrap_err()
    {
        ClientError::Status { code, message, .. } => {
            assert_eq!(code, Code::PermissionDenied);
            assert!(
                message.contains(
                    "not allowed for predicate type https://in-toto.io/attestation/test-result/v0.1"
                ),
                "{message}"
            );
        }
        other => panic!("{other}"),
    }
}

/// Replays the log's registry entries below `end` from the genesis administrator alone.
async fn rebuild(client: &mut evident_client::Client, end: u64) -> Registry {
    let mut registry = Registry::genesis(
        vec![Admin {
            identity: "admin@test".into(),
            key: public(ADMIN),
        }],
        1,
    )
    .unwrap();
    for index in 0..end {
        let entry = client.entry(Selector::Index(index), None).await.unwrap();
        if entry.record.kind() == EntryKind::Registry {
            registry
                .apply(
                    index,
                    entry.record.integrated_time_nanos(),
                    entry.record.envelope(),
                )
                .unwrap();
        }
    }
    registry
}

fn same(listing: &SignerListing, registry: &Registry) -> bool {
    listing.threshold == registry.threshold()
        && listing.admins == registry.admins()
        && listing.signers == registry.signer_keys()
}

/// A small deterministic generator, so a failure can be replayed from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_rebuild_matches_the_servers_registry_at_every_index() {
    for seed in [0x9E37_79B9_7F4A_7C15u64, 0xDEAD_BEEF_CAFE_F00D, 42] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let server = Server::start(&write_config(dir.path(), &data, &[], ""), &data).unwrap();
        let mut client = server.client().await;
        let mut rng = XorShift(seed);
        let mut admins = vec![ADMIN];
        for step in 0..30u64 {
            let k = 10 + rng.next(6) as u8;
            let who = ["a@x", "b@x", "c@x"][rng.next(3) as usize];
            let change = match rng.next(6) {
                0 | 1 => add_signer(k, who, &["*"]),
                2 => Change::RotateSigner {
                    identity: who.into(),
                    new_public_key: public(k).to_hex(),
                    old_key_not_after: None,
                },
                3 => Change::RevokeKey {
                    public_key: public(k).to_hex(),
                    from: None,
                    reason: format!("step {step}"),
                },
                4 => Change::AddAdmin {
                    identity: format!("admin-{k}"),
                    public_key: public(200 + (k % 3)).to_hex(),
                    threshold: None,
                },
                _ => Change::RemoveAdmin {
                    public_key: public(200 + rng.next(3) as u8).to_hex(),
                    threshold: None,
                },
            };
            // Sign with every key that has been an administrator: extra signatures are ignored.
            let accepted = client.submit(&admin_signed(&change, &admins)).await.is_ok();
            if accepted {
                if let Change::AddAdmin { public_key, .. } = &change {
                    let n = (200..=202u8)
                        .find(|&n| public(n).to_hex() == *public_key)
                        .unwrap();
                    if !admins.contains(&n) {
                        admins.push(n);
                    }
                }
            }
            // Attestations in between, accepted or not, must not disturb the registry.
            let _ = client.submit(&envelope(&key(k), step)).await;
        }
        let size = server.size().await;
        let mut offline = Registry::genesis(
            vec![Admin {
                identity: "admin@test".into(),
                key: public(ADMIN),
            }],
            1,
        )
        .unwrap();
        let mut registry_entries = 0;
        for index in 0..=size {
            let listing = client.list_signers(Some(index)).await.unwrap();
            assert!(
                same(&listing, &offline),
                "seed {seed:#x}: registry differs before entry {index}"
            );
            if index == size {
                break;
            }
            let entry = client.entry(Selector::Index(index), None).await.unwrap();
            if entry.record.kind() == EntryKind::Registry {
                registry_entries += 1;
                offline
                    .apply(
                        index,
                        entry.record.integrated_time_nanos(),
                        entry.record.envelope(),
                    )
                    .unwrap_or_else(|e| {
                        panic!("seed {seed:#x}: entry {index} does not replay: {e}")
                    });
            }
        }
        assert!(
            registry_entries >= 5,
            "seed {seed:#x}: only {registry_entries} changes were accepted"
        );
        assert!(same(&client.list_signers(None).await.unwrap(), &offline));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_keeps_its_genesis_administrators_for_life() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[], "");
    let mut server = Server::start(&config, &data).unwrap();
    let status = tokio::task::block_in_place(|| server.terminate());
    assert!(status.success(), "{status}: {}", server.stderr());
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(&public(ADMIN).to_hex(), &public(7).to_hex()),
    )
    .unwrap();
    let err = Server::start(&config, &data).unwrap_err();
    assert!(err.contains("keeps its genesis for life"), "{err}");
    // Without genesis settings the recorded genesis is used.
    let text = std::fs::read_to_string(&config).unwrap();
    let cut = text.find("[genesis]").unwrap();
    std::fs::write(
        &config,
        format!("{}[tls]\nplaintext = true\n", &text[..cut]),
    )
    .unwrap();
    let server = Server::start(&config, &data).unwrap();
    let listing = server.client().await.list_signers(None).await.unwrap();
    assert_eq!(listing.admins[0].key, public(ADMIN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_log_without_administrators_creates_the_first_admin_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("evidentd.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\n{}[tls]\nplaintext = true\n",
            data.display().to_string(),
            store_config()
        ),
    )
    .unwrap();
    let server = Server::start(&config, &data).unwrap();
    let admin_key = data.join("admin.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&admin_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let admin = admin_key.display().to_string();
    let out = tokio::task::block_in_place(|| {
        cli(
            dir.path(),
            Some(&server),
            &[
                "signer",
                "add",
                "--identity",
                "ci@x",
                "--public-key",
                &public(1).to_hex(),
                "--predicate-type",
                "*",
                "--admin-key",
                &admin,
            ],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    server
        .client()
        .await
        .submit(&envelope(&key(1), 1))
        .await
        .unwrap();
}

//! `evidentd backup`: a verified copy of a live log, restored and served; and what a
//! client that saw a newer checkpoint says about the restored, older log.

use std::path::Path;
use std::process::Output;

use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::note::Verifier;
use evident_core::record::LeafRecord;
use evident_tests::{
    Server, cli, envelope, evidentd_bin, evidentd_offline, key, public, stderr, stdout,
    write_config,
};

/// A backup is a new data folder of the files backend, whatever the backend of the server
/// it was taken from: it is restored on files.
const RESTORED_ON_FILES: &str = "[store]\nbackend = \"files\"\n";

/// Runs `evidentd backup ARGS` (blocking, so inside `block_in_place`).
fn backup(args: &[&str]) -> Output {
    tokio::task::block_in_place(|| {
        std::process::Command::new(evidentd_bin())
            .arg("backup")
            .args(args)
            .output()
            .unwrap()
    })
}

/// Backs up `server` (its data folder `data`) into `copy`, checks it holds `entries`, and
/// returns what the command printed.
fn backup_succeeds(server: &Server, data: &Path, copy: &Path, entries: u64) -> Output {
    let out = backup(&[
        "--from",
        &server.url,
        "--data-dir",
        text(data),
        "--out",
        text(copy),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "backup of {entries} entries at checkpoint {entries} "
        )),
        "{}",
        stdout(&out)
    );
    out
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every leaf record the server holds, below its checkpoint.
async fn records(server: &Server) -> Vec<Vec<u8>> {
    let size = server.size().await;
    let mut client = server.client().await;
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        out.extend(client.entries(out.len() as u64, size).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_live_server_restores_and_an_old_restore_is_caught_by_clients() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let config = write_config(d, &data, &[1], "");
    let mut server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    for nonce in 0..3 {
        client.submit(&envelope(&key(1), nonce)).await.unwrap();
    }
    // Entry 0 registers signer 1; three attestations follow.
    assert_eq!(server.size().await, 4);

    let copy = d.join("backup");
    let out = backup_succeeds(&server, &data, &copy, 4);
    assert!(
        stdout(&out).contains("private log key: INCLUDED"),
        "{}",
        stdout(&out)
    );
    let backed_up = records(&server).await;
    for file in ["log.pub", "log.key", "genesis.json", "log", "indexes"] {
        assert!(copy.join(file).exists(), "the backup holds {file}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(copy.join("log.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the private log key stays private");
    }

    // The log goes on; a client records the newer checkpoint.
    for nonce in 10..12 {
        client.submit(&envelope(&key(1), nonce)).await.unwrap();
    }
    let out = tokio::task::block_in_place(|| cli(d, Some(&server), &["checkpoint"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let original_key = server.log_key.clone();
    assert!(tokio::task::block_in_place(|| server.terminate()).success());

    // The backup is a complete data folder: verify-store replays it as it is.
    let other = d.join("restore");
    std::fs::create_dir(&other).unwrap();
    let restored_config = write_config(&other, &copy, &[1], RESTORED_ON_FILES);
    let out = evidentd_offline(&restored_config, &["verify-store"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("OK — 4 entries"), "{}", stdout(&out));

    // Restore = start on the backup folder: it serves exactly the backed-up entries.
    let mut restored = Server::start(&restored_config, &copy).unwrap();
    assert_eq!(restored.log_key, original_key, "the same log, the same key");
    assert_eq!(restored.size().await, 4);
    let served = records(&restored).await;
    assert_eq!(served, backed_up, "the same leaf records, byte for byte");
    assert_eq!(
        LeafRecord::decode(&served[2]).unwrap().leaf_hash(),
        LeafRecord::decode(&backed_up[2]).unwrap().leaf_hash()
    );
    let mut restored_client = restored.client().await;
    let hits = restored_client
        .query(&evident_client::Query {
            signer: Some("signer-1@test".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .hits;
    assert_eq!(
        hits.iter().map(|h| h.index).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "the indexes were rebuilt with the entries"
    );

    // The client that saw 6 entries refuses the restored log of 4.
    let out = tokio::task::block_in_place(|| cli(d, Some(&restored), &["checkpoint"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("rollback"), "{}", stderr(&out));

    // The restored server signs on with the copied log key.
    restored_client
        .submit(&envelope(&key(1), 20))
        .await
        .unwrap();
    assert_eq!(restored.size().await, 5);
    assert!(tokio::task::block_in_place(|| restored.terminate()).success());
    let out = evidentd_offline(&restored_config, &["verify-store"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("OK — 5 entries"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_refuses_a_used_folder_and_a_log_that_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let config = write_config(d, &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    for nonce in 0..2 {
        client.submit(&envelope(&key(1), nonce)).await.unwrap();
    }
    let genesis = data.join("genesis.json");

    // A folder that holds anything is left alone.
    let used = d.join("used");
    std::fs::create_dir(&used).unwrap();
    std::fs::write(used.join("notes.txt"), "keep me").unwrap();
    let out = backup(&[
        "--from",
        &server.url,
        "--data-dir",
        text(&data),
        "--out",
        text(&used),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    let left: Vec<_> = std::fs::read_dir(&used)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("notes.txt")]);
    assert_eq!(
        std::fs::read_to_string(used.join("notes.txt")).unwrap(),
        "keep me"
    );

    // Another key of the same name: the served checkpoint does not verify (exit 1).
    let wrong = Verifier::new("evident.test/log", public(77))
        .unwrap()
        .to_string();
    let refused = d.join("refused");
    let out = backup(&[
        "--from",
        &server.url,
        "--log-key",
        &wrong,
        "--genesis",
        text(&genesis),
        "--out",
        text(&refused),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("checkpoint does not verify under the log key"),
        "{}",
        stderr(&out)
    );
    assert!(!refused.exists(), "nothing is written for a log that fails");

    // Another genesis: entry 0 (signed by the real administrator) does not replay (exit 1).
    let other_genesis = d.join("other-genesis.json");
    std::fs::write(
        &other_genesis,
        serde_json::json!({
            "threshold": 1,
            "admins": [{"identity": "admin@test", "public_key": public(78).to_hex()}],
        })
        .to_string(),
    )
    .unwrap();
    let out = backup(&[
        "--from",
        &server.url,
        "--log-key",
        &server.log_key.to_string(),
        "--genesis",
        text(&other_genesis),
        "--out",
        text(&refused),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("entry 0:"), "{}", stderr(&out));
    assert!(!refused.exists(), "a partial backup is removed");

    // Neither --data-dir nor --genesis: nothing to replay from (exit 2).
    let out = backup(&[
        "--from",
        &server.url,
        "--log-key",
        &server.log_key.to_string(),
        "--out",
        text(&refused),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--genesis"), "{}", stderr(&out));

    // Pinned key and genesis, no data folder: a verified copy without the private key, into
    // an empty folder that already exists.
    let keyless = d.join("keyless");
    std::fs::create_dir(&keyless).unwrap();
    let out = backup(&[
        "--from",
        &server.url,
        "--log-key",
        &server.log_key.to_string(),
        "--genesis",
        text(&genesis),
        "--out",
        text(&keyless),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("backup of 3 entries at checkpoint 3 "),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("private log key: NOT included"),
        "{}",
        stdout(&out)
    );
    assert!(!keyless.join("log.key").exists());
    assert_eq!(
        std::fs::read_to_string(keyless.join("log.pub"))
            .unwrap()
            .trim(),
        server.log_key.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_spanning_many_pages_restores_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let config = write_config(d, &data, &[1], "");
    let mut server = Server::start(&config, &data).unwrap();
    // GetEntries pages stop at about 2 MiB: entries of ~48 KiB make several pages.
    let mut client = server.client().await;
    let padding = "x".repeat(48 << 10);
    for nonce in 0..100u64 {
        let payload = serde_json::to_vec(&serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": format!("big-{nonce}"), "digest": {"sha256": "ab".repeat(32)}}],
            "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
            "predicate": {"result": "PASSED", "log": padding, "run": nonce},
        }))
        .unwrap();
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &[&key(1)]);
        client.submit(&envelope).await.unwrap();
    }
    assert_eq!(server.size().await, 101);
    let copy = d.join("backup");
    backup_succeeds(&server, &data, &copy, 101);
    let original = records(&server).await;
    assert!(tokio::task::block_in_place(|| server.terminate()).success());
    let other = d.join("restore");
    std::fs::create_dir(&other).unwrap();
    let restored_config = write_config(&other, &copy, &[1], RESTORED_ON_FILES);
    let out = evidentd_offline(&restored_config, &["verify-store"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let restored = Server::start(&restored_config, &copy).unwrap();
    assert_eq!(records(&restored).await, original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_never_sends_a_token_over_plaintext_to_another_host_whatever_the_scheme_case() {
    let dir = tempfile::tempdir().unwrap();
    for scheme in ["http", "HTTP", "HtTp"] {
        let copy = dir.path().join(format!("copy-{scheme}"));
        let from = format!("{scheme}://203.0.113.7:50051");
        let out = backup(&[
            "--from",
            &from,
            "--token",
            "s3cret-token",
            "--out",
            text(&copy),
        ]);
        assert!(!out.status.success(), "{scheme}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("is plaintext: the token would cross the network unencrypted"),
            "{scheme}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("s3cret-token"),
            "the token is never echoed"
        );
        assert!(
            !copy.exists() || std::fs::read_dir(&copy).unwrap().next().is_none(),
            "{scheme}: nothing is written"
        );
    }
}

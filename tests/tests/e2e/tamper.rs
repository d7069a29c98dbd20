//! Tampering with the store: the server refuses to start and names the entry; a client that
//! saw a newer checkpoint notices a rolled-back data folder.

use evident_tests::{Server, cli, envelope, key, stderr, write_config};

fn leaf_key(index: u64) -> Vec<u8> {
    let mut k = vec![b'L'];
    k.extend_from_slice(&index.to_be_bytes());
    k
}

async fn log_of(n: u64, config: &std::path::Path, data: &std::path::Path) {
    let mut server = Server::start(config, data).unwrap();
    let mut client = server.client().await;
    for nonce in 0..n {
        client.submit(&envelope(&key(1), nonce)).await.unwrap();
    }
    assert!(tokio::task::block_in_place(|| server.terminate()).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_changed_behind_the_ledgers_back_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    log_of(6, &config, &data).await;
    {
        // Bypass the ledger: rewrite one byte of entry 3's payload directly in sled. The
        // payload starts at byte 88 (a 54-byte header, then the payload type's 2 + 28 bytes
        // and the payload's 4-byte length).
        let db = sled::open(data.join("db")).unwrap();
        let mut bytes = db.get(leaf_key(3)).unwrap().unwrap().to_vec();
        assert_eq!(bytes[88], b'{', "the payload is a JSON Statement");
        bytes[100] ^= 0x01;
        db.insert(leaf_key(3), bytes).unwrap();
        db.flush().unwrap();
    }
    let err = Server::start(&config, &data).unwrap_err();
    assert!(err.contains("refusing to serve"), "{err}");
    assert!(err.contains("entry 3:"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_shorter_than_its_signed_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    log_of(5, &config, &data).await;
    {
        let db = sled::open(data.join("db")).unwrap();
        db.remove(leaf_key(5)).unwrap();
        db.flush().unwrap();
    }
    let err = Server::start(&config, &data).unwrap_err();
    assert!(
        err.contains("holds 5 entries but this log signed a checkpoint of 6"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_entry_in_the_middle_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    log_of(5, &config, &data).await;
    {
        let db = sled::open(data.join("db")).unwrap();
        db.remove(leaf_key(1)).unwrap();
        db.flush().unwrap();
    }
    let err = Server::start(&config, &data).unwrap_err();
    assert!(err.contains("entry 1: is missing"), "{err}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_holding_a_newer_checkpoint_detects_a_rolled_back_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let config = write_config(d, &data, &[1], "");
    log_of(3, &config, &data).await;
    let backup = d.join("backup");
    copy_dir(&data, &backup);

    let mut server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    for nonce in 10..12 {
        client.submit(&envelope(&key(1), nonce)).await.unwrap();
    }
    let out = tokio::task::block_in_place(|| cli(d, Some(&server), &["checkpoint"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(tokio::task::block_in_place(|| server.terminate()).success());

    // Restore the older copy: internally consistent, so the server serves it...
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(&backup, &data);
    let server = Server::start(&config, &data).unwrap();
    assert_eq!(server.size().await, 4);
    // ...but the client remembers 6 entries and refuses.
    let out = tokio::task::block_in_place(|| cli(d, Some(&server), &["checkpoint"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("rollback"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_index_edited_behind_the_ledgers_back_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Entry 0 registers signer 1; deleting its `R` key would make the server forget it.
    let config = write_config(dir.path(), &data, &[1], "");
    log_of(2, &config, &data).await;
    {
        let db = sled::open(data.join("db")).unwrap();
        let mut k = vec![b'R'];
        k.extend_from_slice(&0u64.to_be_bytes());
        assert!(
            db.remove(k).unwrap().is_some(),
            "entry 0 is indexed as a registry entry"
        );
        db.flush().unwrap();
    }
    let err = Server::start(&config, &data).unwrap_err();
    assert!(
        err.contains("entry 0:") && err.contains("(an edited index)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_index_key_removed_behind_the_ledgers_back_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    log_of(3, &config, &data).await;
    {
        // Entry 2's subject key: without it, a release query would miss that evidence.
        let db = sled::open(data.join("db")).unwrap();
        let key = db
            .scan_prefix(b"S")
            .keys()
            .map(|k| k.unwrap())
            .find(|k| k.ends_with(&2u64.to_be_bytes()))
            .expect("entry 2 is in the subject index");
        db.remove(key).unwrap();
        db.flush().unwrap();
    }
    let err = Server::start(&config, &data).unwrap_err();
    assert!(
        err.contains("entry 2:") && err.contains("(an edited index)"),
        "{err}"
    );
}

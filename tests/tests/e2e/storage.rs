//! The store at start: indexes that a crash left behind the log are caught up from the log
//! before anything is served, lost indexes are rebuilt, and a data folder of the old layout
//! is refused until `evidentd migrate` moved it, verified, to the current one.

use evident_client::Query;
use evident_core::merkle::Frontier;
use evident_core::note::Checkpoint;
use evident_core::record::LeafRecord;
use evident_tests::{
    Server, copy_dir, envelope, evidentd_offline, key, stderr, stdout, write_config,
};

/// Starts a server, submits attestations with these nonces, stops it cleanly.
async fn submit_all(
    config: &std::path::Path,
    data: &std::path::Path,
    nonces: std::ops::Range<u64>,
) {
    let mut server = Server::start(config, data).unwrap();
    let mut client = server.client().await;
    for nonce in nonces {
        let (_, duplicate) = client.submit(&envelope(&key(1), nonce)).await.unwrap();
        assert!(!duplicate);
    }
    assert!(tokio::task::block_in_place(|| server.terminate()).success());
}

/// How many attestations signer 1 has, by the server's signer index.
async fn signed_by_one(server: &Server) -> usize {
    let mut client = server.client().await;
    let page = client
        .query(&Query {
            signer: Some("signer-1@test".into()),
            page_size: 1000,
            ..Query::default()
        })
        .await
        .unwrap();
    assert!(page.next_cursor.is_none());
    page.hits.len()
}

/// Resubmits `nonce`: the receipt must be the original entry's, at `index`.
async fn resubmit_is_duplicate(server: &Server, nonce: u64, index: u64) {
    let mut client = server.client().await;
    let (receipt, duplicate) = client.submit(&envelope(&key(1), nonce)).await.unwrap();
    assert!(duplicate, "nonce {nonce} is already in the log");
    assert_eq!(receipt.index, index, "the original entry's receipt");
    receipt.verify(&server.log_key).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_behind_the_log_are_caught_up_before_anything_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    // Entry 0 registers signer 1; entries 1..=3 are nonces 0..3.
    submit_all(&config, &data, 0..3).await;
    let old_index = dir.path().join("old-index");
    copy_dir(&data.join("indexes"), &old_index);
    // Entries 4..=6 are nonces 3..6; then the indexes go back to before them, as a crash
    // between the log's sync and the indexes' would leave them.
    submit_all(&config, &data, 3..6).await;
    std::fs::remove_dir_all(data.join("indexes")).unwrap();
    copy_dir(&old_index, &data.join("indexes"));

    let server = Server::start(&config, &data).unwrap();
    assert!(
        server.stderr().contains("indexed the log's tail"),
        "{}",
        server.stderr()
    );
    assert_eq!(server.size().await, 7);
    assert_eq!(
        signed_by_one(&server).await,
        6,
        "the tail is in the indexes"
    );
    // Dedupe is exact: the tail's entries are found, not appended again.
    resubmit_is_duplicate(&server, 4, 5).await;
    resubmit_is_duplicate(&server, 1, 2).await;
    assert_eq!(server.size().await, 7);
    drop(server);
    let out = evidentd_offline(&config, &["verify-store"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_indexes_are_rebuilt_from_the_log_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    submit_all(&config, &data, 0..4).await;
    std::fs::remove_dir_all(data.join("indexes")).unwrap();
    let server = Server::start(&config, &data).unwrap();
    assert_eq!(server.size().await, 5);
    assert_eq!(signed_by_one(&server).await, 4);
    resubmit_is_duplicate(&server, 0, 1).await;
    resubmit_is_duplicate(&server, 3, 4).await;
    // Signer 1 is still registered: the registry came back from the log.
    let mut client = server.client().await;
    let (receipt, duplicate) = client.submit(&envelope(&key(1), 99)).await.unwrap();
    assert!(!duplicate);
    assert_eq!(receipt.index, 5);
}

/// Writes the old layout (docs: everything in one sled tree in `db/`) holding `records`.
fn write_old_layout(data: &std::path::Path, records: &[Vec<u8>], genesis: &[u8], note: &str) {
    let db = sled::open(data.join("db")).unwrap();
    let mut frontier = Frontier::new();
    for (index, record) in records.iter().enumerate() {
        let mut key = vec![b'L'];
        key.extend_from_slice(&(index as u64).to_be_bytes());
        db.insert(key, record.as_slice()).unwrap();
        let leaf = LeafRecord::decode(record).unwrap().leaf_hash();
        for node in frontier.append(leaf) {
            let mut key = vec![b'N', node.level as u8];
            key.extend_from_slice(&node.index.to_be_bytes());
            db.insert(key, node.hash.as_bytes()).unwrap();
        }
    }
    db.insert(b"Mgenesis", genesis).unwrap();
    db.insert(b"Mcheckpoint", note.as_bytes()).unwrap();
    db.flush().unwrap();
}

/// An old-layout copy of a log, beside the log it was made from.
struct OldLayout {
    config: std::path::PathBuf,
    data: std::path::PathBuf,
    /// The checkpoint it holds.
    note: String,
    /// Its leaf records.
    records: Vec<Vec<u8>>,
}

/// Writes a log of one registry entry and `attestations` attestations with a real server,
/// then the same log, its records passed through `edit`, in the old layout in `dir/old/data`
/// with the same log key and genesis.
async fn old_layout(
    dir: &std::path::Path,
    attestations: u64,
    edit: impl FnOnce(&mut Vec<Vec<u8>>),
) -> OldLayout {
    let data = dir.join("data");
    let config = write_config(dir, &data, &[1], "");
    submit_all(&config, &data, 0..attestations).await;
    let server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    let note = client.checkpoint().await.unwrap();
    let mut records = client.entries(0, attestations + 1).await.unwrap();
    drop(server);
    edit(&mut records);
    let genesis = std::fs::read(data.join("log").join("genesis")).unwrap();
    let old_dir = dir.join("old");
    let old = old_dir.join("data");
    std::fs::create_dir_all(&old).unwrap();
    for file in ["log.key", "log.pub"] {
        std::fs::copy(data.join(file), old.join(file)).unwrap();
    }
    write_old_layout(&old, &records, &genesis, &note);
    std::fs::copy(dir.join("admin.key"), old_dir.join("admin.key")).unwrap();
    OldLayout {
        config: write_config(&old_dir, &old, &[], ""),
        data: old,
        note,
        records,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_layout_folder_is_refused_then_migrated_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let OldLayout {
        config: old_config,
        data: old,
        note,
        records,
    } = old_layout(dir.path(), 5, |_| {}).await;

    let err = Server::start(&old_config, &old).unwrap_err();
    assert!(
        err.contains("old layout") && err.contains("evidentd migrate"),
        "{err}"
    );
    let out = evidentd_offline(&old_config, &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("migrated 6 entries"),
        "{}",
        stdout(&out)
    );
    assert!(old.join("db.pre-migration").exists());
    let out = evidentd_offline(&old_config, &["verify-store"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let server = Server::start(&old_config, &old).unwrap();
    let mut client = server.client().await;
    let migrated = client.checkpoint().await.unwrap();
    let (a, b) = (
        Checkpoint::verify(&note, &server.log_key).unwrap(),
        Checkpoint::verify(&migrated, &server.log_key).unwrap(),
    );
    assert_eq!((a.size, a.root), (b.size, b.root), "the same log");
    assert_eq!(client.entries(0, 6).await.unwrap(), records);
    resubmit_is_duplicate(&server, 2, 3).await;
    // A second run has nothing to do.
    drop(server);
    let out = evidentd_offline(&old_config, &["migrate"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing to migrate"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_old_layout_is_not_migrated() {
    let dir = tempfile::tempdir().unwrap();
    // Entry 2's payload edited: its signature no longer verifies.
    let OldLayout {
        config: old_config,
        data: old,
        ..
    } = old_layout(dir.path(), 3, |records| records[2][100] ^= 1).await;
    let out = evidentd_offline(&old_config, &["migrate"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("entry 2:") && stderr(&out).contains("nothing was migrated"),
        "{}",
        stderr(&out)
    );
    assert!(old.join("db").exists(), "the old store is untouched");
    assert!(
        !old.join("log").exists(),
        "nothing half-migrated is left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_cannot_open_a_live_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    client.submit(&envelope(&key(1), 1)).await.unwrap();
    let segment = data.join("log").join("segments");
    let before: Vec<_> = std::fs::read_dir(&segment)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    // Neither a maintenance command nor a second server touches the files of a live one.
    let out = evidentd_offline(&config, &["verify-store"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("in use by another process"),
        "{}",
        stderr(&out)
    );
    let err = Server::start(&config, &data).unwrap_err();
    assert!(err.contains("in use by another process"), "{err}");
    let after: Vec<_> = std::fs::read_dir(&segment)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    assert_eq!(before, after);
    let (receipt, _) = client.submit(&envelope(&key(1), 2)).await.unwrap();
    assert_eq!(receipt.index, 2, "the live server carries on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_of_the_earlier_sled_layout_are_removed_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    submit_all(&config, &data, 0..3).await;
    // An earlier version kept the indexes in a sled tree in `index/`; the current one
    // keeps runs in `indexes/`.
    std::fs::remove_dir_all(data.join("indexes")).unwrap();
    {
        let db = sled::open(data.join("index")).unwrap();
        db.insert(b"Mindexed", &4u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let server = Server::start(&config, &data).unwrap();
    assert!(!data.join("index").exists(), "the sled indexes are gone");
    assert!(
        server
            .stderr()
            .contains("removing the indexes of an earlier version"),
        "{}",
        server.stderr()
    );
    assert_eq!(signed_by_one(&server).await, 3);
    resubmit_is_duplicate(&server, 2, 3).await;
    drop(server);
    let out = evidentd_offline(&config, &["verify-store"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

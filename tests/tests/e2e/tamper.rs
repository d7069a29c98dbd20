//! Tampering with the store: the server refuses to start and names the entry; a client that
//! saw a newer checkpoint notices a rolled-back data folder.

use evident_tests::{
    IndexRecord, Server, cli, copy_dir, edit_index_records, envelope, evidentd_offline,
    flip_payload_byte, frame_of, index_list_key, index_records, index_signers_key, key,
    rot_record_byte, stderr, stdout, write_config,
};

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
    flip_payload_byte(&data, 3);
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
        // The last record cut off the segment, as a rolled-back or truncated file would.
        let (path, offset) = frame_of(&data, 5);
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(offset).unwrap();
    }
    let err = Server::start(&config, &data).unwrap_err();
    assert!(
        err.contains("refusing") || err.contains("opening the store"),
        "{err}"
    );
    assert!(
        err.contains("holds 5 entries") && err.contains("6 of its stored checkpoint"),
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
        // Entry 1's frame cut out of the segment: entry 2 follows entry 0.
        let (path, offset) = frame_of(&data, 1);
        let (_, next) = frame_of(&data, 2);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.drain(offset as usize..next as usize);
        std::fs::write(&path, bytes).unwrap();
    }
    let length = std::fs::metadata(frame_of(&data, 0).0).unwrap().len();
    let err = Server::start(&config, &data).unwrap_err();
    assert!(err.contains("refusing") || err.contains("entry 1"), "{err}");
    assert!(err.contains("entry 1"), "{err}");
    assert_eq!(
        std::fs::metadata(frame_of(&data, 0).0).unwrap().len(),
        length,
        "a damaged log is left as it is for the operator"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotten_byte_in_a_signed_entry_is_refused_not_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    log_of(5, &config, &data).await;
    rot_record_byte(&data, 2);
    let segment = frame_of(&data, 0).0;
    let length = std::fs::metadata(&segment).unwrap().len();
    let err = Server::start(&config, &data).unwrap_err();
    assert!(err.contains("entry 2"), "{err}");
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        length,
        "entries a checkpoint covers are never cut off as a torn tail"
    );
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
    // Entry 0 registers signer 1; deleting its kind key would make the server forget it.
    let config = write_config(dir.path(), &data, &[1], "");
    log_of(2, &config, &data).await;
    {
        // The registry kind's posting list: drop entry 0 from it.
        let registry = index_list_key(&[b'K', 2]);
        let mut removed = 0;
        edit_index_records(&data, |records| {
            let before = records.len();
            records.retain(|r| *r != (registry, 0));
            removed += before - records.len();
        });
        assert_eq!(removed, 1, "entry 0 is indexed as a registry entry");
    }
    let err = Server::start(&config, &data).unwrap_err();
    assert!(
        err.contains("entry 0:") && err.contains("an edited or lost index"),
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
        // Entry 2 taken off its subject's list: without it, a release query would miss
        // that evidence.
        let subject = index_list_key(
            b"Ssha256\x00421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195\x00",
        );
        let mut removed = 0;
        edit_index_records(&data, |records| {
            let before = records.len();
            records.retain(|r| *r != (subject, 2));
            removed += before - records.len();
        });
        assert_eq!(removed, 1, "entry 2 is in the subject index");
    }
    let err = Server::start(&config, &data).unwrap_err();
    assert!(
        err.contains("entry 2:") && err.contains("evidentd reindex"),
        "{err}"
    );
    // verify-store names the same entry offline; reindex rebuilds the key; then all holds.
    let out = evidentd_offline(&config, &["verify-store"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("entry 2: it is missing from the posting list Subject"),
        "{}",
        stderr(&out)
    );
    let out = evidentd_offline(&config, &["reindex"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("indexes rebuilt for 4 entries"),
        "{}",
        stdout(&out)
    );
    let out = evidentd_offline(&config, &["verify-store"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("OK — 4 entries"), "{}", stdout(&out));
    let server = Server::start(&config, &data).unwrap();
    assert_eq!(server.size().await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_store_finds_a_stray_index_key_and_a_forged_signer_list() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    log_of(3, &config, &data).await;
    let out = evidentd_offline(&config, &["verify-store"]);
    assert!(out.status.success(), "{}", stderr(&out));
    {
        // A subject list holding an entry that is not about that subject.
        let mut name = b"Ssha256\0".to_vec();
        name.extend_from_slice(&[b'a'; 64]);
        name.push(0);
        let stray = index_list_key(&name);
        let mut added = false;
        edit_index_records(&data, |records| {
            if !added {
                records.push((stray, 1));
                added = true;
            }
        });
    }
    let out = evidentd_offline(&config, &["verify-store"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("point to entries that do not have them"),
        "{}",
        stderr(&out)
    );
    assert!(evidentd_offline(&config, &["reindex"]).status.success());
    {
        // Entry 1's recorded signers swapped for entry 0's (the administrator's).
        let of = |records: &[IndexRecord], index: u64| {
            records
                .iter()
                .find(|r| r.0 == index_signers_key(index))
                .map(|r| r.1)
        };
        let all = index_records(&data);
        let (theirs, admins) = (of(&all, 1).unwrap(), of(&all, 0).unwrap());
        assert_ne!(theirs, admins);
        edit_index_records(&data, |records| {
            for r in records.iter_mut() {
                if r.0 == index_signers_key(1) {
                    r.1 = admins;
                }
            }
        });
    }
    let out = evidentd_offline(&config, &["verify-store"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("entry 1: its signer record is missing or wrong"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_store_names_an_entry_whose_signature_no_longer_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    log_of(6, &config, &data).await;
    // Entry 3's signature no longer verifies, which the replay finds before the broken
    // chain link of entry 4.
    flip_payload_byte(&data, 3);
    let out = evidentd_offline(&config, &["verify-store"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("entry 3:"), "{}", stderr(&out));
    // reindex replays the log before it touches anything: a damaged log keeps its indexes.
    let count = || index_records(&data).len();
    let before = count();
    let out = evidentd_offline(&config, &["reindex"]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("entry 3:") && stderr(&out).contains("nothing was changed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(), before);
}

/// Flips one bit of the indexes' run file at `at(its length)`, its checksums left as they
/// were: the server refuses to start, `verify-store` reports `reported`, `reindex` rebuilds
/// the indexes, and dedupe is exact again.
async fn a_damaged_run_is_refused_then_rebuilt(at: fn(usize) -> usize, reported: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    log_of(4, &config, &data).await;
    let run = std::fs::read_dir(data.join("indexes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("run-"))
        .expect("a run file");
    let mut bytes = std::fs::read(&run).unwrap();
    let at = at(bytes.len());
    bytes[at] ^= 0x10;
    std::fs::write(&run, &bytes).unwrap();
    let err = Server::start(&config, &data).unwrap_err();
    assert!(
        err.contains("fails its checksum") && err.contains("evidentd reindex"),
        "{err}"
    );
    let out = evidentd_offline(&config, &["verify-store"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(reported), "{}", stderr(&out));
    let out = evidentd_offline(&config, &["reindex"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("indexes rebuilt for 5 entries"),
        "{}",
        stdout(&out)
    );
    let out = evidentd_offline(&config, &["verify-store"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A resubmission is the original entry, not a new one.
    let server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    let (receipt, duplicate) = client.submit(&envelope(&key(1), 2)).await.unwrap();
    assert!(duplicate);
    assert_eq!(receipt.index, 3);
    assert_eq!(server.size().await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_indexes_stops_the_start_and_reindex_repairs_it() {
    // Inside the first block's fourth record: its dedupe and leaf-hash look-ups can no
    // longer be trusted, and the block's checksum says so when it is read.
    a_damaged_run_is_refused_then_rebuilt(|_| 2 + 24 * 3 + 5, "fails its checksum").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_does_not_open_is_reported_by_verify_store_and_replaced_by_reindex() {
    // In the fence table: the run no longer opens at all.
    a_damaged_run_is_refused_then_rebuilt(|len| len - 48 - 3, "fence table or trailer").await;
}

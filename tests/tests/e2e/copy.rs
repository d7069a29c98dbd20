//! `evidentd copy`: a verified log moved from a data folder's files into PostgreSQL and back,
//! served from each; and the copies it refuses — into a store that holds a log, from a
//! tampered log, under the wrong log key — leaving the destination as it was.

use std::path::Path;
use std::process::Output;

use evident_tests::postgres::Postgres;
use evident_tests::{
    Server, cli, copy_dir, envelope, evidentd_bin, flip_payload_byte, key, rot_record_byte, stderr,
    stdout, write_config,
};

/// Runs `evidentd copy ARGS` (blocking, so inside `block_in_place`).
fn copy(args: &[&str]) -> Output {
    tokio::task::block_in_place(|| {
        std::process::Command::new(evidentd_bin())
            .arg("copy")
            .args(args)
            .env_remove("EVIDENT_LOG_KEY")
            .output()
            .unwrap()
    })
}

/// Runs `evidentd copy ARGS`, which must succeed with `entries` entries.
fn copy_succeeds(args: &[&str], entries: u64) -> Output {
    let out = copy(args);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "copy checked against the signed checkpoint of {entries} entries, root "
        )),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains(&format!("copied {entries} entries from ")),
        "{}",
        stdout(&out)
    );
    out
}

/// What `evidentd migrate` says of the PostgreSQL store at `url`: its entries and genesis.
fn database_state(dir: &Path, url: &str) -> String {
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(evidentd_bin())
            .args(["--data-dir", text(dir), "--store-url", url, "migrate"])
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn pg_store(url: &str) -> String {
    format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n")
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

/// The server's latest checkpoint note.
async fn checkpoint(server: &Server) -> evident_core::note::Checkpoint {
    let note = server.client().await.checkpoint().await.unwrap();
    evident_core::note::Checkpoint::verify(&note, &server.log_key).unwrap()
}

/// `evident audit` against `server`, which must pass.
fn audit_passes(dir: &Path, server: &Server, genesis: &Path) {
    let out = tokio::task::block_in_place(|| {
        cli(dir, Some(server), &["audit", "--genesis", text(genesis)])
    });
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

/// A stopped files server's log: two signers registered, then attestations by each.
async fn files_log(d: &Path) -> (std::path::PathBuf, u64) {
    let data = d.join("data");
    let config = write_config(d, &data, &[1, 2], "");
    let mut server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    for nonce in 0..6 {
        let signer = key(1 + (nonce % 2) as u8);
        client.submit(&envelope(&signer, nonce)).await.unwrap();
    }
    let size = server.size().await;
    assert_eq!(size, 8, "two registry entries and six attestations");
    assert!(tokio::task::block_in_place(|| server.terminate()).success());
    (data, size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_moves_from_files_to_postgres_and_back_and_serves_from_each() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (data, size) = files_log(d).await;
    let config = write_config(d, &data, &[1, 2], "");
    let server = Server::start(&config, &data).unwrap();
    let (before, before_cp) = (records(&server).await, checkpoint(&server).await);
    drop(server);

    // Files → PostgreSQL: the data folder keeps the keys, the database gets the log.
    copy_succeeds(&["--from", text(&data), "--to", &pg.url], size);
    let on_pg = d.join("on-pg");
    std::fs::create_dir(&on_pg).unwrap();
    let pg_config = write_config(&on_pg, &data, &[1, 2], &pg_store(&pg.url));
    let mut server = Server::start(&pg_config, &data).unwrap();
    assert_eq!(server.size().await, size);
    let cp = checkpoint(&server).await;
    assert_eq!(
        (cp.size, cp.root),
        (before_cp.size, before_cp.root),
        "the same log, the same root"
    );
    assert_eq!(records(&server).await, before, "byte for byte");
    let genesis = data.join("genesis.json");
    audit_passes(&on_pg, &server, &genesis);
    let mut client = server.client().await;
    for nonce in 100..103 {
        let (receipt, duplicate) = client.submit(&envelope(&key(1), nonce)).await.unwrap();
        assert!(!duplicate);
        assert_eq!(receipt.index, size + nonce - 100, "appended after the copy");
    }
    let (_, duplicate) = client.submit(&envelope(&key(2), 1)).await.unwrap();
    assert!(duplicate, "the copied indexes know the copied entries");
    let grown = server.size().await;
    assert_eq!(grown, size + 3);
    let served = records(&server).await;
    assert!(tokio::task::block_in_place(|| server.terminate()).success());

    // PostgreSQL → a new folder: a complete data folder, the private key included.
    let back = d.join("back");
    let out = copy_succeeds(
        &[
            "--from",
            &pg.url,
            "--data-dir",
            text(&data),
            "--to",
            text(&back),
        ],
        grown,
    );
    assert!(
        stdout(&out).contains("private log key: INCLUDED"),
        "{}",
        stdout(&out)
    );
    let back_config_dir = d.join("back-config");
    std::fs::create_dir(&back_config_dir).unwrap();
    let back_config = write_config(&back_config_dir, &back, &[1, 2], "");
    let mut server = Server::start(&back_config, &back).unwrap();
    assert_eq!(server.size().await, grown);
    assert_eq!(records(&server).await, served, "every entry, byte for byte");
    audit_passes(&back_config_dir, &server, &back.join("genesis.json"));
    let (receipt, duplicate) = server
        .client()
        .await
        .submit(&envelope(&key(2), 200))
        .await
        .unwrap();
    assert!(!duplicate);
    assert_eq!(receipt.index, grown);
    assert!(tokio::task::block_in_place(|| server.terminate()).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_is_refused_from_a_tampered_log_under_a_wrong_key_or_into_a_store_with_a_log() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (data, size) = files_log(d).await;
    let empty = "0 entries, no genesis yet";

    // An edited payload: the replay names the entry; nothing reaches the database.
    let edited = d.join("edited");
    copy_dir(&data, &edited);
    flip_payload_byte(&edited, 4);
    let out = copy(&["--from", text(&edited), "--to", &pg.url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not verify: entry 4: ")
            && stderr(&out).contains("nothing was written to the destination"),
        "{}",
        stderr(&out)
    );
    assert!(database_state(d, &pg.url).contains(empty));

    // A rotted record, into a folder: refused naming the entry, no folder left behind.
    let rotted = d.join("rotted");
    copy_dir(&data, &rotted);
    rot_record_byte(&rotted, 3);
    let out_dir = d.join("out");
    let out = copy(&["--from", text(&rotted), "--to", text(&out_dir)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("entry 3"), "{}", stderr(&out));
    assert!(!out_dir.exists(), "nothing was written");

    // The checkpoint under another log's key.
    let other = evident_core::note::Signer::new(
        "evident.test/log",
        evident_core::SigningKey::from_bytes(&[77; 32]),
    )
    .unwrap();
    let wrong = other.verifier().to_string();
    let out = copy(&["--from", text(&data), "--to", &pg.url, "--log-key", &wrong]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not verify under the log key"),
        "{}",
        stderr(&out)
    );
    assert!(database_state(d, &pg.url).contains(empty));

    // Into a database that holds a log, or a folder that is not empty: refused, unchanged.
    copy_succeeds(&["--from", text(&data), "--to", &pg.url], size);
    let holds = format!("{size} entries, genesis recorded, signed checkpoint of {size} entries");
    assert!(database_state(d, &pg.url).contains(&holds));
    let out = copy(&["--from", text(&edited), "--to", &pg.url]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already holds a log (8 entries, a genesis)")
            && stderr(&out).contains("nothing was changed"),
        "{}",
        stderr(&out)
    );
    assert!(database_state(d, &pg.url).contains(&holds));

    let listing = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = listing(&edited);
    let out = copy(&[
        "--from",
        &pg.url,
        "--data-dir",
        text(&data),
        "--to",
        text(&edited),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    assert_eq!(listing(&edited), before);
}

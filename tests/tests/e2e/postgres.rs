//! `evidentd` on PostgreSQL: the real server keeps its log and indexes in a real
//! PostgreSQL, answers as on files, and loses nothing acknowledged when it is killed.

use evident_tests::postgres::Postgres;
use evident_tests::{Server, cli, envelope, key, stderr, stdout, write_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidentd_on_postgres_keeps_every_acknowledged_entry_through_kill_9() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = format!("[store]\nbackend = \"postgres\"\nurl = \"{}\"\n", pg.url);
    let config = write_config(dir.path(), &data, &[1], &store);
    let mut server = Server::start(&config, &data).unwrap();
    let mut receipts = Vec::new();
    for nonce in 0..20 {
        let (receipt, duplicate) = server
            .client()
            .await
            .submit(&envelope(&key(1), nonce))
            .await
            .unwrap();
        assert!(!duplicate);
        receipts.push(receipt);
    }
    // Nothing of the log is in the data folder: it holds the keys only.
    assert!(!data.join("log").exists(), "the log went to files");
    server.kill();

    // Restarted on the same database: every acknowledged entry at its index, and the same
    // content is a duplicate, not a new entry.
    let server = Server::start(&config, &data).unwrap();
    let size = server.size().await;
    assert_eq!(size, 21, "the registry entry and 20 attestations");
    let mut client = server.client().await;
    for receipt in &receipts {
        let entry = client
            .entry(evident_client::Selector::Index(receipt.index), None)
            .await
            .unwrap();
        assert_eq!(entry.leaf_hash, receipt.leaf_hash);
    }
    let (again, duplicate) = client.submit(&envelope(&key(1), 3)).await.unwrap();
    assert!(duplicate);
    assert_eq!(again.index, receipts[3].index);
    let genesis = data.join("genesis.json").display().to_string();
    let out = tokio::task::block_in_place(|| {
        cli(dir.path(), Some(&server), &["audit", "--genesis", &genesis])
    });
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // The operator's check reads the database the config names, not the data folder.
    let out = evident_tests::evidentd_offline(&config, &["verify-store"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("OK — 21 entries"), "{}", stdout(&out));
}

//! Nothing acknowledged is lost: `kill -9` the real server in the middle of a load, restart
//! it, and find every acknowledged entry where its receipt says, provable against a new
//! checkpoint that is consistent with every earlier one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use evident_client::Selector;
use evident_core::merkle;
use evident_core::note::Checkpoint;
use evident_core::receipt::Receipt;
use evident_tests::{Server, envelope, key, write_config};

async fn load_until_killed(server: &mut Server, round: u64) -> Vec<Receipt> {
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for worker in 0..16u64 {
        let mut client = server.client().await;
        let acknowledged = acknowledged.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let nonce = round << 40 | worker << 20 | i;
                match client.submit(&envelope(&key(1), nonce)).await {
                    Ok((receipt, _)) => acknowledged.lock().unwrap().push(receipt),
                    Err(_) => return, // the server is gone; this one was not acknowledged
                }
            }
        }));
    }
    // Let a few batches land, then pull the plug mid-load.
    tokio::time::sleep(Duration::from_millis(400 + 150 * round)).await;
    server.kill();
    for t in tasks {
        t.await.unwrap();
    }
    acknowledged.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_loses_no_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let mut server = Server::start(&config, &data).unwrap();
    let mut all: Vec<Receipt> = Vec::new();
    let mut latest_seen: Option<Checkpoint> = None;

    for round in 0..4 {
        let receipts = load_until_killed(&mut server, round).await;
        assert!(
            !receipts.is_empty(),
            "round {round}: no submission was acknowledged before the kill"
        );
        for r in &receipts {
            let v = r.verify(&server.log_key).unwrap();
            if latest_seen
                .as_ref()
                .is_none_or(|c| c.size < v.checkpoint.size)
            {
                latest_seen = Some(v.checkpoint);
            }
        }
        all.extend(receipts);

        server = Server::start(&config, &data)
            .unwrap_or_else(|e| panic!("restart after kill -9 failed: {e}"));
        let mut client = server.client().await;
        let note = client.checkpoint().await.unwrap();
        let now = Checkpoint::verify(&note, &server.log_key).unwrap();
        let seen = latest_seen.as_ref().unwrap();
        assert!(
            now.size >= seen.size,
            "round {round}: the log shrank from {} to {}",
            seen.size,
            now.size
        );
        if now.size > seen.size {
            let proof = client.consistency_proof(seen.size, now.size).await.unwrap();
            merkle::verify_consistency(seen.size, now.size, &proof, &seen.root, &now.root)
                .unwrap_or_else(|e| panic!("round {round}: restarted log is not consistent: {e}"));
        } else {
            assert_eq!(now.root, seen.root);
        }
        for r in &all {
            let entry = client
                .entry(Selector::Index(r.index), Some(0))
                .await
                .unwrap();
            assert_eq!(
                entry.leaf_hash, r.leaf_hash,
                "entry {} changed after a crash",
                r.index
            );
            assert_eq!(entry.record.envelope(), &r.envelope);
            let (size, proof) = entry.proof.unwrap();
            assert_eq!(size, now.size);
            merkle::verify_inclusion(r.index, size, &r.leaf_hash, &proof, &now.root).unwrap();
        }
        latest_seen = Some(now);
    }
    assert!(
        all.len() > 50,
        "only {} acknowledged submissions in all rounds",
        all.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_batch_in_progress_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let mut server = Server::start(&config, &data).unwrap();
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for worker in 0..8u64 {
        let mut client = server.client().await;
        let acknowledged = acknowledged.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                match client.submit(&envelope(&key(1), worker << 20 | i)).await {
                    Ok((receipt, _)) => acknowledged.lock().unwrap().push(receipt),
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = tokio::task::block_in_place(|| server.terminate());
    assert!(
        status.success(),
        "evidentd exited with {status}: {}",
        server.stderr()
    );
    for t in tasks {
        t.await.unwrap();
    }
    let receipts = acknowledged.lock().unwrap().clone();
    assert!(!receipts.is_empty());
    let server = Server::start(&config, &data).unwrap();
    let size = server.size().await;
    let max = receipts.iter().map(|r| r.index).max().unwrap();
    assert!(
        size > max,
        "acknowledged entry {max} is missing after a clean stop ({size} entries)"
    );
}

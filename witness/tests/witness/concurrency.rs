//! Many add-checkpoints at once for one log: the stored size never goes back.

use std::collections::BTreeMap;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_add_checkpoints_for_one_log_never_roll_back() {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(400);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    let log = std::sync::Arc::new(log);
    assert_eq!(add(witness.addr, &log.body(0, 1)).await.status, 200);
    // Accepted requests, by new size: their old size.
    let mut accepted = BTreeMap::from([(1u64, 0u64)]);
    let mut current: u64 = 1;
    for round in 0..8u64 {
        let mut tasks = Vec::new();
        for i in 0..24u64 {
            // Most requests start from the current size; some are stale, from a size the
            // witness held earlier (or never held). Every target size is distinct.
            let old = match i % 6 {
                5 => current.saturating_sub(1 + round).max(1),
                _ => current,
            };
            let new = current + 1 + i * 2 + (round % 2);
            let (log, key, addr) = (log.clone(), setup.key(), witness.addr);
            tasks.push(tokio::spawn(async move {
                let reply = add(addr, &log.body(old, new)).await;
                if reply.status == 200 {
                    check_cosigned(&key, &log.note_at(new), &reply.body);
                } else {
                    assert_eq!(reply.status, 409, "{old} -> {new}: {}", reply.body);
                    let stored: u64 = reply.body.trim().parse().unwrap();
                    assert!(stored >= current, "409 named {stored}, below {current}");
                }
                (old, new, reply.status)
            }));
        }
        for task in tasks {
            let (old, new, status) = task.await.unwrap();
            if status == 200 {
                assert!(accepted.insert(new, old).is_none());
            }
        }
        current = *accepted.keys().last().unwrap();
    }
    // The accepted requests form one chain: each started from the size the previous one
    // reached, so no cosignature was ever given over a smaller tree after a larger one.
    let mut previous = 0;
    for (&new, &old) in &accepted {
        assert_eq!(
            old, previous,
            "accepted {old} -> {new} after reaching {previous}"
        );
        previous = new;
    }
    assert!(accepted.len() > 8, "{accepted:?}");
    let served = request(witness.addr, "GET", &origin_path(ORIGIN), b"")
        .await
        .body;
    assert!(
        served.starts_with(&log.checkpoint_at(current).to_body()),
        "{served}"
    );
    witness.stop().await;
}

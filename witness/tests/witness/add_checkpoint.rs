//! Checkpoints the witness cosigns.

use evident_core::cosign::{Cosigner, CosignerKey};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_checkpoint_is_cosigned_with_old_size_zero() {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(5);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    let reply = add(witness.addr, &log.body(0, 5)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    check_cosigned(&setup.key(), &log.note(), &reply.body);
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_log_is_cosigned_at_every_size_with_consistency_proofs() {
    let mut log = TestLog::new(ORIGIN, 1);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    let mut old = 0;
    for size in [1u64, 2, 3, 4, 7, 8, 9, 16, 17, 31, 32, 100] {
        log.grow_to(size);
        let reply = add(witness.addr, &log.body(old, size)).await;
        assert_eq!(reply.status, 200, "{old} -> {size}: {}", reply.body);
        check_cosigned(&setup.key(), &log.note(), &reply.body);
        old = size;
    }
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_checkpoint_resubmitted_gets_a_fresh_cosignature() {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(3);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    assert_eq!(add(witness.addr, &log.body(0, 3)).await.status, 200);
    let again = add(witness.addr, &log.body(3, 3)).await;
    assert_eq!(again.status, 200, "{}", again.body);
    check_cosigned(&setup.key(), &log.note(), &again.body);
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_empty_tree_is_cosigned_and_then_extended_without_a_proof() {
    let mut log = TestLog::new(ORIGIN, 1);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    let reply = add(witness.addr, &log.body(0, 0)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    log.grow(4);
    let reply = add(witness.addr, &log.body(0, 4)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ml_dsa_44_witness_cosigns_what_cosigner_key_verify_note_accepts() {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(10);
    let setup = Setup::new(
        Cosigner::ml_dsa_44("witness.example/pq", [9; 32]).unwrap(),
        &[&log],
    );
    let witness = InProcess::start(&setup).await;
    let reply = add(witness.addr, &log.body(0, 10)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The verifier key text a client would be given parses back to the same key.
    let key = CosignerKey::parse(&setup.key().to_string()).unwrap();
    assert!(key.is_ml_dsa());
    check_cosigned(&key, &log.note(), &reply.body);
    log.grow(5);
    let reply = add(witness.addr, &log.body(10, 15)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    check_cosigned(&key, &log.note(), &reply.body);
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_with_two_keys_is_cosigned_when_either_signs() {
    let mut log = TestLog::new(ORIGIN, 1);
    let other = TestLog::new(ORIGIN, 2);
    log.grow(2);
    let setup = Setup::ed25519(&[&log, &other]);
    let witness = InProcess::start(&setup).await;
    assert_eq!(add(witness.addr, &log.body(0, 2)).await.status, 200);
    // The same tree signed by the second trusted key.
    let note = log.checkpoint_at(2).sign(&other.signer).unwrap();
    let reply = add(witness.addr, &body(2, &[], &note)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    witness.stop().await;
}

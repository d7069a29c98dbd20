//! Every refusal of `add-checkpoint`, with the status the specification gives it.

use evident_core::Hash;
use evident_core::merkle::empty_root;
use evident_core::note::Checkpoint;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::*;

/// A witness that has cosigned `log` at size 8.
async fn at_eight(log: &mut TestLog, setup: &Setup) -> InProcess {
    log.grow_to(8);
    let witness = InProcess::start(setup).await;
    let reply = add(witness.addr, &log.body(0, 8)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    witness
}

fn one_line(reply: &Reply) {
    assert!(
        reply.body.ends_with('\n') && reply.body.matches('\n').count() == 1 && reply.body.len() > 5,
        "{:?}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_origin_is_404() {
    let log = TestLog::new(ORIGIN, 1);
    let mut stranger = TestLog::new("other.example/log", 1);
    stranger.grow(2);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    let reply = add(witness.addr, &stranger.body(0, 2)).await;
    assert_eq!(reply.status, 404);
    one_line(&reply);
    assert!(reply.body.contains("other.example/log"), "{}", reply.body);
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_without_a_trusted_signature_is_403() {
    let log = TestLog::new(ORIGIN, 1);
    // Same origin, another key.
    let mut impostor = TestLog::new(ORIGIN, 66);
    impostor.grow(2);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    let reply = add(witness.addr, &impostor.body(0, 2)).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    one_line(&reply);
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_key_line_that_does_not_verify_is_403() {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(2);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    // Sign size 2, then swap in the body of another tree under the same signature line.
    let good = log.note_at(2);
    let (_, sig) = good.split_once("\n\n").unwrap();
    let forged = Checkpoint {
        root: Hash::sha256(b"forged"),
        ..log.checkpoint_at(2)
    };
    let note = format!("{}\n{sig}", forged.to_body());
    let reply = add(witness.addr, &body(0, &[], &note)).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.body.contains("does not verify"), "{}", reply.body);
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_size_above_the_checkpoint_size_is_400() {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(3);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    let reply = add(witness.addr, &body(4, &[], &log.note())).await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.body.contains("larger than the checkpoint size"),
        "{}",
        reply.body
    );
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_400_with_a_reason() {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(3);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    let note = log.note();
    let hash = Hash::sha256(b"h").to_base64();
    let too_many = format!("{hash}\n").repeat(64);
    for bad in [
        format!("old 00\n\n{note}"),
        format!("old x\n\n{note}"),
        format!("new 0\n\n{note}"),
        format!("old 0\n{note}"),
        format!("old 0\nnot a hash\n\n{note}"),
        format!("old 1\n{too_many}\n{note}"),
        "old 0\n\nlog.example/evident-test\n3\n".to_owned(),
        "old 0\n\n".to_owned(),
        String::new(),
    ] {
        let reply = add(witness.addr, &bad).await;
        assert_eq!(reply.status, 400, "{bad:?}: {}", reply.body);
        one_line(&reply);
    }
    let reply = request(
        witness.addr,
        "POST",
        "/add-checkpoint",
        &[0xff, 0xfe, b'\n'],
    )
    .await;
    assert_eq!(reply.status, 400);
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_size_other_than_the_stored_one_is_409_with_the_stored_size() {
    let mut log = TestLog::new(ORIGIN, 1);
    let setup = Setup::ed25519(&[&log]);
    let witness = at_eight(&mut log, &setup).await;
    log.grow_to(12);
    for old in [0, 4, 9] {
        let reply = add(witness.addr, &log.body(old, 12)).await;
        assert_eq!(reply.status, 409, "old {old}: {}", reply.body);
        assert_eq!(reply.body, "8\n");
        assert_eq!(reply.content_type, "text/x.tlog.size");
    }
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_tree_with_another_root_is_422() {
    let log = TestLog::new(ORIGIN, 1);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    let bad = Checkpoint {
        origin: ORIGIN.into(),
        size: 0,
        root: Hash::sha256(b"not empty"),
        extensions: vec![],
    };
    assert_ne!(bad.root, empty_root());
    let reply = add(witness.addr, &body(0, &[], &bad.sign(&log.signer).unwrap())).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_from_old_size_zero_is_422() {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(5);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    let proof = log.proof(2, 5);
    let reply = add(witness.addr, &body(0, &proof, &log.note())).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    one_line(&reply);
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistency_proof_that_does_not_verify_is_422() {
    let mut log = TestLog::new(ORIGIN, 1);
    let setup = Setup::ed25519(&[&log]);
    let witness = at_eight(&mut log, &setup).await;
    log.grow_to(13);
    let mut proof = log.proof(8, 13);
    // A flipped byte, a missing hash, and a proof for other sizes.
    proof[0].0[0] ^= 1;
    for bad in [
        proof,
        log.proof(8, 13)[1..].to_vec(),
        log.proof(7, 13),
        vec![],
    ] {
        let reply = add(witness.addr, &body(8, &bad, &log.note())).await;
        assert_eq!(reply.status, 422, "{}", reply.body);
        one_line(&reply);
    }
    // The witness still holds size 8 and accepts the right proof.
    assert_eq!(add(witness.addr, &log.body(8, 13)).await.status, 200);
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_to_an_older_checkpoint_is_409_with_the_stored_size() {
    let mut log = TestLog::new(ORIGIN, 1);
    let setup = Setup::ed25519(&[&log]);
    let witness = at_eight(&mut log, &setup).await;
    log.grow_to(20);
    assert_eq!(add(witness.addr, &log.body(8, 20)).await.status, 200);
    // A log (or an attacker replaying it) sends the size-8 checkpoint again.
    for old in [8, 0] {
        let reply = add(witness.addr, &body(old, &[], &log.note_at(8))).await;
        assert_eq!(reply.status, 409, "old {old}: {}", reply.body);
        assert_eq!(reply.body, "20\n");
        assert_eq!(reply.content_type, "text/x.tlog.size");
    }
    // With the right old size, a smaller checkpoint is a malformed request.
    let reply = add(witness.addr, &body(20, &[], &log.note_at(8))).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_at_the_stored_size_is_422_logged_and_kept_as_evidence() {
    let mut log = TestLog::new(ORIGIN, 1);
    let setup = Setup::ed25519(&[&log]);
    let witness = at_eight(&mut log, &setup).await;
    // The same key signs another tree of size 8.
    let mut fork = TestLog::new(ORIGIN, 1);
    for i in 0..8 {
        fork.tree.push(evident_core::merkle::leaf_hash(
            format!("other {i}").as_bytes(),
        ));
    }
    let forked_note = fork.note();
    let reply = add(witness.addr, &body(8, &[], &forked_note)).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(reply.body.starts_with("fork"), "{}", reply.body);
    one_line(&reply);
    let forks: Vec<_> = std::fs::read_dir(setup.state_dir().join("forks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(forks.len(), 1, "{forks:?}");
    let evidence = std::fs::read_to_string(&forks[0]).unwrap();
    assert!(evidence.contains(&forked_note), "{evidence}");
    assert!(evidence.contains(&log.note_at(8)[..40]), "{evidence}");
    assert!(evidence.contains(&log.checkpoint_at(8).root.to_base64()));
    assert!(evidence.contains(&fork.checkpoint_at(8).root.to_base64()));
    // The witness still holds the first tree.
    let reply = request(witness.addr, "GET", &origin_path(ORIGIN), b"").await;
    assert!(reply.body.starts_with(&log.checkpoint_at(8).to_body()));
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_64_kib_is_413_and_paths_and_methods_are_checked() {
    let log = TestLog::new(ORIGIN, 1);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    // The declared length alone is refused, before any of the body is sent.
    let mut stream = tokio::net::TcpStream::connect(witness.addr).await.unwrap();
    stream
        .write_all(b"POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nContent-Length: 65537\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let reply = parse_reply(&raw);
    assert_eq!(reply.status, 413);
    one_line(&reply);
    // A chunked body has no declared length: it is read up to the limit, no further.
    let mut stream = tokio::net::TcpStream::connect(witness.addr).await.unwrap();
    let chunk = vec![b'a'; 40 * 1024];
    let mut raw =
        b"POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..2 {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(&chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&raw).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let reply = parse_reply(&answer);
    assert_eq!(reply.status, 413, "{}", reply.body);

    let reply = request(witness.addr, "GET", "/add-checkpoint", b"").await;
    assert_eq!(reply.status, 405);
    one_line(&reply);
    let reply = request(witness.addr, "POST", &origin_path(ORIGIN), b"").await;
    assert_eq!(reply.status, 405);
    let reply = request(witness.addr, "GET", "/nothing/here", b"").await;
    assert_eq!(reply.status, 404);
    one_line(&reply);
    witness.stop().await;
}

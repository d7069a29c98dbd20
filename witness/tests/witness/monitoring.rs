//! `GET /<origin hash>/checkpoint`: the latest cosigned checkpoint, for monitors.

use evident_core::note::{Checkpoint, Note};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_cosigned_checkpoint_is_served_with_both_signatures() {
    let mut log = TestLog::new(ORIGIN, 1);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    let path = origin_path(ORIGIN);
    let reply = request(witness.addr, "GET", &path, b"").await;
    assert_eq!(reply.status, 404, "{}", reply.body);

    log.grow(6);
    assert_eq!(add(witness.addr, &log.body(0, 6)).await.status, 200);
    log.grow(3);
    let lines = add(witness.addr, &log.body(6, 9)).await.body;
    let reply = request(witness.addr, "GET", &path, b"").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, format!("{}{lines}", log.note()));
    let note = Note::parse(&reply.body).unwrap();
    note.verify(log.signer.verifier()).unwrap();
    let checkpoint = Checkpoint::parse_body(&note.text).unwrap();
    assert_eq!(checkpoint.size, 9);
    assert!(
        setup
            .key()
            .verify_note(&note, &checkpoint)
            .unwrap()
            .is_some()
    );

    // Uppercase hex and unknown hashes are not found.
    let reply = request(witness.addr, "GET", &path.to_uppercase(), b"").await;
    assert_eq!(reply.status, 404);
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resubmitted_note_keeps_one_cosignature_from_the_witness() {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(4);
    let setup = Setup::ed25519(&[&log]);
    let witness = InProcess::start(&setup).await;
    let first = add(witness.addr, &log.body(0, 4)).await.body;
    // The log sends back the note it now holds, with the witness's earlier line.
    let cosigned = format!("{}{first}", log.note());
    let reply = add(witness.addr, &body(4, &[], &cosigned)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let served = request(witness.addr, "GET", &origin_path(ORIGIN), b"")
        .await
        .body;
    assert_eq!(served.matches("witness.example/w1").count(), 1, "{served}");
    assert!(served.ends_with(&reply.body));
    witness.stop().await;
}

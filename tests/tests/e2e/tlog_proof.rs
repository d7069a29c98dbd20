//! Portable proofs: `evident receipt export` writes a receipt as a C2SP tlog-proof that
//! carries the leaf record and the witnessed checkpoint, and `evident receipt verify` checks
//! such a file offline, refusing one whose hashes, record or index were changed, one without
//! the witnesses' cosignatures, and one without the leaf record.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evident_core::hash::Hash;
use evident_core::tlog_proof::TlogProof;
use evident_tests::*;

use crate::witness::{Witness, first_start, restart_with, witnessing};

/// A log cosigned by two real witnesses, and an envelope submitted through the CLI with
/// both required: its receipt carries their cosignatures.
struct Witnessed {
    dir: tempfile::TempDir,
    server: Server,
    w1: Witness,
    w2: Witness,
}

impl Witnessed {
    async fn start() -> Witnessed {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let data = d.join("data");
        let log_key = first_start(d, &data);
        let w1 = Witness::create(&d.join("w1"), "w1.test", &log_key);
        let w2 = Witness::create(&d.join("w2"), "w2.test", &log_key);
        let server = restart_with(d, &data, &witnessing(&[&w1, &w2]));
        Witnessed {
            dir,
            server,
            w1,
            w2,
        }
    }

    fn witness_flags(&self) -> [&str; 4] {
        ["--witness", &self.w1.key, "--witness", &self.w2.key]
    }

    /// Submits a new envelope (`--witness` for each witness if `witnessed`) and returns its
    /// receipt file.
    fn submit(&self, name: &str, nonce: u64, witnessed: bool) -> PathBuf {
        let flags = self.witness_flags();
        let flags: &[&str] = if witnessed { &flags } else { &[] };
        submit(self.dir.path(), &self.server, name, nonce, flags)
    }
}

/// Writes an envelope signed by key 1 to `name` in `dir` and submits it with `flags`;
/// returns the receipt file `submit` wrote.
fn submit(dir: &Path, server: &Server, name: &str, nonce: u64, flags: &[&str]) -> PathBuf {
    std::fs::write(dir.join(name), envelope(&key(1), nonce).to_json()).unwrap();
    let mut args = vec!["submit", name];
    args.extend(flags);
    let out = tokio::task::block_in_place(|| cli(dir, Some(server), &args));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    dir.join(format!("{name}.receipt.json"))
}

/// `evident receipt export RECEIPT` (the default output file), which must succeed; the
/// proof file.
fn export(dir: &Path, server: &Server, receipt: &Path) -> PathBuf {
    let receipt = receipt.to_str().unwrap();
    let args = ["receipt", "export", receipt, "--format", "tlog-proof"];
    let out = tokio::task::block_in_place(|| cli(dir, Some(server), &args));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("exported: entry"), "{}", stdout(&out));
    let proof = PathBuf::from(format!("{receipt}.tlog-proof"));
    assert!(proof.is_file());
    proof
}

/// `evident receipt verify FILE` offline: no server, the log key given as a flag.
fn verify_offline(
    dir: &Path,
    server: &Server,
    file: &Path,
    flags: &[&str],
) -> std::process::Output {
    let log_key = server.log_key.to_string();
    let mut args = vec![
        "receipt",
        "verify",
        file.to_str().unwrap(),
        "--log-key",
        &log_key,
    ];
    args.extend(flags);
    tokio::task::block_in_place(|| cli(dir, None, &args))
}

/// A log without witnesses, and the exported proof of one envelope submitted to it.
async fn plain_proof() -> (tempfile::TempDir, Server, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let server = Server::start(&write_config(d, &data, &[1], ""), &data).unwrap();
    let receipt = submit(d, &server, "e.json", 1, &[]);
    let proof = export(d, &server, &receipt);
    (dir, server, proof)
}

/// Rewrites the proof file's lines with `edit`.
fn edit_lines(file: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    edit(&mut lines);
    std::fs::write(file, lines.join("\n")).unwrap();
}

/// Asserts a verification failure (exit 1) whose message contains `says`.
fn assert_refused(out: &std::process::Output, says: &str) {
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(out), stderr(out));
    assert!(
        stderr(out).contains("verification failed") && stderr(out).contains(says),
        "{}",
        stderr(out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_exported_as_a_tlog_proof_verifies_offline_with_the_log_key_and_two_witnesses() {
    let log = Witnessed::start().await;
    let d = log.dir.path();
    let receipt = log.submit("e.json", 1, true);
    let proof = export(d, &log.server, &receipt);

    let mut flags = log.witness_flags().to_vec();
    flags.extend(["--format", "json"]);
    let out = verify_offline(d, &log.server, &proof, &flags);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let verified: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["index"], receipt["index"]);
    assert_eq!(verified["leaf_hash"], receipt["leafHash"]);

    // The human line is the one a receipt gets.
    let out = verify_offline(d, &log.server, &proof, &log.witness_flags());
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("verified: entry {} of ", receipt["index"])),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_proof_parses_and_prints_back_to_the_same_bytes() {
    let log = Witnessed::start().await;
    let d = log.dir.path();
    let receipt = log.submit("e.json", 1, true);
    let proof = export(d, &log.server, &receipt);

    let text = std::fs::read_to_string(&proof).unwrap();
    let parsed = TlogProof::parse(&text).unwrap();
    assert_eq!(parsed.to_text(), text);
    // It carries the leaf record, and the checkpoint with both cosignatures (the log's
    // signature line and one per witness).
    assert!(parsed.extra.is_some());
    let signatures = parsed
        .checkpoint
        .lines()
        .filter(|l| l.starts_with("— "))
        .count();
    assert_eq!(signatures, 3, "{}", parsed.checkpoint);

    // `--out -` writes the same bytes to standard output.
    let args = ["receipt", "export", receipt.to_str().unwrap(), "--out", "-"];
    let out = tokio::task::block_in_place(|| cli(d, Some(&log.server), &args));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_proof_hash_extra_record_or_index_is_refused() {
    let (dir, server, proof) = plain_proof().await;
    let d = dir.path();
    let good = std::fs::read_to_string(&proof).unwrap();
    let out = verify_offline(d, &server, &proof, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let parsed = TlogProof::parse(&good).unwrap();
    assert!(
        !parsed.proof.is_empty(),
        "the entry needs a sibling: {good}"
    );

    // One inclusion proof hash changed (line 4: after the header, extra and index).
    edit_lines(&proof, |lines| {
        let mut bytes = Hash::from_base64(&lines[3]).unwrap().0;
        bytes[0] ^= 1;
        lines[3] = Hash(bytes).to_base64();
    });
    assert_refused(&verify_offline(d, &server, &proof, &[]), "does not verify");

    // One byte of the leaf record changed (the integrated time's last byte), re-encoded.
    std::fs::write(&proof, &good).unwrap();
    edit_lines(&proof, |lines| {
        let mut record = STANDARD
            .decode(lines[1].strip_prefix("extra ").unwrap())
            .unwrap();
        record[4 + 1 + 8 + 7] ^= 1;
        lines[1] = format!("extra {}", STANDARD.encode(record));
    });
    assert_refused(&verify_offline(d, &server, &proof, &[]), "does not verify");

    // A hash line that is not a hash: the file is not a tlog proof at all (exit 2), and the
    // message names the line.
    std::fs::write(&proof, &good).unwrap();
    edit_lines(&proof, |lines| lines[3] = "not base64".into());
    let out = verify_offline(d, &server, &proof, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tlog proof line 4"),
        "{}",
        stderr(&out)
    );

    // The index line changed.
    std::fs::write(&proof, &good).unwrap();
    edit_lines(&proof, |lines| {
        lines[2] = format!("index {}", parsed.index + 1);
    });
    assert_refused(
        &verify_offline(d, &server, &proof, &[]),
        &format!(
            "the leaf record is entry {}, the proof is for index {}",
            parsed.index,
            parsed.index + 1
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_whose_checkpoint_lacks_the_witnesses_cosignatures_is_refused() {
    let log = Witnessed::start().await;
    let d = log.dir.path();
    // A plain submit: the receipt's checkpoint is signed by the log alone, and exporting it
    // requires no witness.
    let receipt = log.submit("plain.json", 1, false);
    let proof = export(d, &log.server, &receipt);
    let out = verify_offline(d, &log.server, &proof, &log.witness_flags());
    assert_refused(&out, "cosigned by 0 of the trusted witnesses, 2 required");
    assert!(stderr(&out).contains("(a fork)"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(proof.to_str().unwrap()),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_without_the_leaf_record_is_refused() {
    let (dir, server, proof) = plain_proof().await;
    let d = dir.path();
    edit_lines(&proof, |lines| {
        assert!(lines[1].starts_with("extra "));
        lines.remove(1);
    });
    // Still a well-formed tlog proof, just not one Evident can tie to an entry.
    TlogProof::parse(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    let out = verify_offline(d, &server, &proof, &[]);
    assert_refused(&out, "carries no leaf record");
    assert!(
        stderr(&out).contains("evident receipt export"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_that_does_not_verify_is_not_exported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let server = Server::start(&write_config(d, &data, &[1], ""), &data).unwrap();
    let receipt = submit(d, &server, "e.json", 1, &[]);
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    let time = json["integratedTimeNanos"].as_i64().unwrap();
    json["integratedTimeNanos"] = (time + 1).into();
    std::fs::write(&receipt, serde_json::to_string_pretty(&json).unwrap()).unwrap();

    let args = ["receipt", "export", receipt.to_str().unwrap()];
    let out = tokio::task::block_in_place(|| cli(d, Some(&server), &args));
    assert_refused(&out, "e.json.receipt.json");
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("tlog-proof"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

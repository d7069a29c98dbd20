//! Witnesses: two real `evident-witness` processes cosign an `evidentd`'s checkpoints; a
//! witness down does not stop ingest; a forked or rolled-back log gets no cosignature, and a
//! fresh client that requires two of them refuses what such a log shows it.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use evident_core::cosign::{CosignerKey, WitnessPolicy};
use evident_core::note::{Checkpoint, Note, Verifier};
use evident_tests::*;

use crate::gate::{Flaw, release, team_log_in};

/// A running witness: the real binary, its key and state in `dir`.
pub(crate) struct Witness {
    child: Option<Child>,
    dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    url: String,
    /// The verifier key text.
    pub(crate) key: String,
    addr: String,
}

impl Witness {
    /// Makes a key named `name` and starts a witness that follows the log `log_key`.
    pub(crate) fn create(dir: &Path, name: &str, log_key: &Verifier) -> Witness {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new(evident_witness_bin())
            .args(["keygen", "--name", name, "--out"])
            .arg(dir.join("witness.key"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let key = stdout(&out)
            .lines()
            .find(|l| l.starts_with(name))
            .expect("keygen prints the verifier key")
            .trim()
            .to_owned();
        std::fs::write(
            dir.join("witness.toml"),
            format!(
                "listen = \"127.0.0.1:0\"\nkey_file = \"witness.key\"\nstate_dir = \"state\"\n\
                 [[log]]\norigin = \"{}\"\nkey = \"{log_key}\"\n",
                log_key.name()
            ),
        )
        .unwrap();
        let mut witness = Witness {
            child: None,
            dir: dir.to_owned(),
            url: String::new(),
            key,
            addr: "127.0.0.1:0".into(),
        };
        witness.start();
        witness
    }

    /// Starts (again) on the address it had, so the log's configuration still names it.
    fn start(&mut self) {
        let mut child = Command::new(evident_witness_bin())
            .arg("serve")
            .arg("--config")
            .arg(self.dir.join("witness.toml"))
            .args(["--listen", &self.addr])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().unwrap().unwrap();
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("witness said {line:?}"))
            .trim()
            .trim_start_matches("http://")
            .to_owned();
        std::thread::spawn(move || for _ in lines.by_ref() {});
        self.url = format!("http://{addr}");
        self.addr = addr;
        self.child = Some(child);
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The `[[witness]]` table of the log's configuration.
    fn table(&self) -> String {
        format!(
            "[[witness]]\nkey = \"{}\"\nurl = \"{}\"\n",
            self.key, self.url
        )
    }

    /// The fork evidence it kept.
    fn forks(&self) -> usize {
        std::fs::read_dir(self.dir.join("state/forks"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The configuration lines that make a log ask `witnesses` (every one of them) often.
pub(crate) fn witnessing(witnesses: &[&Witness]) -> String {
    let mut extra: String = witnesses.iter().map(|w| w.table()).collect();
    extra.push_str("[witnessing]\ninterval_ms = 100\ntimeout_ms = 2000\n");
    extra
}

/// Restarts a stopped log with `extra` added to its configuration (the same store).
pub(crate) fn restart_with(dir: &Path, data: &Path, extra: &str) -> Server {
    let config = dir.join("evidentd.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push('\n');
    text.push_str(extra);
    std::fs::write(&config, text).unwrap();
    Server::start(&config, data).unwrap()
}

/// The witnessed checkpoint once it covers `size` entries (or panics after 30 s).
async fn witnessed_at_least(server: &Server, size: u64) -> String {
    let mut client = server.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(note) = client.checkpoint_at(true).await {
            let checkpoint = Checkpoint::verify(&note, &server.log_key).unwrap();
            if checkpoint.size >= size {
                return note;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no witnessed checkpoint of {size} entries within 30 s:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn policy(witnesses: &[&Witness], threshold: usize) -> WitnessPolicy {
    let keys = witnesses
        .iter()
        .map(|w| CosignerKey::parse(&w.key).unwrap())
        .collect();
    WitnessPolicy::new(keys, threshold).unwrap()
}

/// A log that has signed its first checkpoints, then stopped; its verifier key.
pub(crate) fn first_start(dir: &Path, data: &Path) -> Verifier {
    let mut server = Server::start(&write_config(dir, data, &[1], ""), data).unwrap();
    let key = server.log_key.clone();
    assert!(server.terminate().success());
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_witnesses_cosign_every_checkpoint_and_receipts_carry_their_cosignatures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let log_key = first_start(d, &data);
    let w1 = Witness::create(&d.join("w1"), "w1.test", &log_key);
    let w2 = Witness::create(&d.join("w2"), "w2.test", &log_key);
    let server = restart_with(d, &data, &witnessing(&[&w1, &w2]));

    // A pipeline asks for a witnessed receipt: its checkpoint carries both cosignatures.
    let mut client = server.client().await;
    let (receipt, _) = client
        .submit_with(&envelope(&key(1), 1), true)
        .await
        .unwrap();
    let verified = receipt.verify(&server.log_key).unwrap();
    let cosigned = policy(&[&w1, &w2], 2)
        .check(
            &Note::parse(&receipt.checkpoint).unwrap(),
            &verified.checkpoint,
        )
        .unwrap();
    assert_eq!(cosigned.len(), 2);

    // The CLI: a receipt written by `submit` with the witnesses required carries them, and
    // verifies offline against the log key and the two witness keys.
    std::fs::write(d.join("e.json"), envelope(&key(1), 2).to_json()).unwrap();
    let witness_flags = ["--witness", &w1.key, "--witness", &w2.key];
    let mut args = vec!["submit", "e.json"];
    args.extend(witness_flags);
    let out = tokio::task::block_in_place(|| cli(d, Some(&server), &args));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mut args = vec!["receipt", "verify", "e.json.receipt.json"];
    args.extend(witness_flags);
    let out = tokio::task::block_in_place(|| cli(d, Some(&server), &args));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // The latest witnessed checkpoint, through the CLI, with both required.
    let mut args = vec!["checkpoint"];
    args.extend(witness_flags);
    let out = tokio::task::block_in_place(|| cli(d, Some(&server), &args));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // A receipt without cosignatures (a plain submit) is refused by a client that requires
    // them: exit 1, saying how many it has.
    std::fs::write(d.join("plain.json"), envelope(&key(1), 3).to_json()).unwrap();
    let out = tokio::task::block_in_place(|| cli(d, Some(&server), &["submit", "plain.json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut args = vec!["receipt", "verify", "plain.json.receipt.json"];
    args.extend(witness_flags);
    let out = tokio::task::block_in_place(|| cli(d, Some(&server), &args));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("cosigned by 0 of the trusted witnesses, 2 required"),
        "{}",
        stderr(&out)
    );

    // A witness the log never asked cannot be among the two.
    let stranger = Witness::create(&d.join("w3"), "w3.test", &log_key);
    let args = [
        "receipt",
        "verify",
        "e.json.receipt.json",
        "--witness",
        &w1.key,
        "--witness",
        &stranger.key,
    ];
    let out = tokio::task::block_in_place(|| cli(d, Some(&server), &args));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("no cosignature from w3.test"),
        "{}",
        stderr(&out)
    );
    // One of the two is enough when the client says so.
    let mut args = args.to_vec();
    args.extend(["--witness-threshold", "1"]);
    let out = tokio::task::block_in_place(|| cli(d, Some(&server), &args));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_down_does_not_stop_ingest_and_the_witnessed_checkpoint_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let log_key = first_start(d, &data);
    let w1 = Witness::create(&d.join("w1"), "w1.test", &log_key);
    let mut w2 = Witness::create(&d.join("w2"), "w2.test", &log_key);
    let server = restart_with(d, &data, &witnessing(&[&w1, &w2]));
    let mut client = server.client().await;
    client.submit(&envelope(&key(1), 1)).await.unwrap();
    let size = server.size().await;
    witnessed_at_least(&server, size).await;

    // Witness 2 goes away: submissions go on, the witnessed checkpoint stays behind.
    w2.kill();
    let before = server.size().await;
    for nonce in 2..12 {
        client.submit(&envelope(&key(1), nonce)).await.unwrap();
    }
    let after = server.size().await;
    assert!(after >= before + 10);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lagging = client.checkpoint_at(true).await.unwrap();
    let lagging = Checkpoint::verify(&lagging, &server.log_key).unwrap();
    assert!(
        lagging.size < after,
        "witnessed {} of {after}",
        lagging.size
    );

    // It comes back (same address, same state): the witnessed checkpoint catches up.
    w2.start();
    let note = witnessed_at_least(&server, after).await;
    let checkpoint = Checkpoint::verify(&note, &server.log_key).unwrap();
    policy(&[&w1, &w2], 2)
        .check(&Note::parse(&note).unwrap(), &checkpoint)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_log_gets_no_cosignature_and_a_fresh_client_requiring_two_witnesses_refuses_it() {
    // Log A, with its team and policy, first without witnesses.
    let a = tempfile::tempdir().unwrap();
    let data_a = a.path().join("data");
    let mut server_a = team_log_in(a.path(), &data_a).await;
    let log_key = server_a.log_key.clone();
    assert!(server_a.terminate().success());
    drop(server_a);
    // Log B starts from a copy of A's folder: the same log key and history so far.
    let b = tempfile::tempdir().unwrap();
    let data_b = b.path().join("data");
    copy_dir(&data_a, &data_b);
    std::fs::copy(a.path().join("admin.key"), b.path().join("admin.key")).unwrap();
    let config_b = std::fs::read_to_string(a.path().join("evidentd.toml"))
        .unwrap()
        .replace(&data_a.display().to_string(), &data_b.display().to_string());
    std::fs::write(b.path().join("evidentd.toml"), config_b).unwrap();

    let w = tempfile::tempdir().unwrap();
    let w1 = Witness::create(&w.path().join("w1"), "w1.test", &log_key);
    let w2 = Witness::create(&w.path().join("w2"), "w2.test", &log_key);
    let extra = witnessing(&[&w1, &w2]);

    // A goes on with the witnesses and logs a release.
    let server_a = restart_with(a.path(), &data_a, &extra);
    let good = release(&server_a, "good", Flaw::None).await;
    let size_a = server_a.size().await;
    witnessed_at_least(&server_a, size_a).await;

    // B, the fork, logs another release with the same log key and asks the same witnesses.
    let server_b = restart_with(b.path(), &data_b, &extra);
    let forked = release(&server_b, "forked", Flaw::None).await;
    let size_b = server_b.size().await;
    assert_eq!(size_b, size_a, "both logs grew by one release");
    let root_a = Checkpoint::verify(
        &server_a.client().await.checkpoint().await.unwrap(),
        &log_key,
    )
    .unwrap()
    .root;
    let root_b = Checkpoint::verify(
        &server_b.client().await.checkpoint().await.unwrap(),
        &log_key,
    )
    .unwrap()
    .root;
    assert_ne!(root_a, root_b, "B is a fork of A");
    // The witnesses refuse B's checkpoint and keep it as evidence of a fork.
    let deadline = Instant::now() + Duration::from_secs(20);
    while w1.forks() == 0 || w2.forks() == 0 {
        assert!(
            Instant::now() < deadline,
            "no fork evidence:\n{}",
            server_b.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = server_b
        .client()
        .await
        .checkpoint_at(true)
        .await
        .unwrap_err();
    assert!(
        status
            .to_string()
            .contains("no checkpoint has been cosigned"),
        "{status}"
    );

    let genesis = data_a.join("genesis.json").display().to_string();
    let gate = |dir: &Path, server: &Server, artifact: &str, witnesses: bool| {
        let mut args = vec![
            "gate",
            "--artifact",
            artifact,
            "--policy",
            "payments-prod",
            "--genesis",
            &genesis,
        ];
        if witnesses {
            args.extend(["--witness", &w1.key, "--witness", &w2.key]);
        }
        tokio::task::block_in_place(|| cli(dir, Some(server), &args))
    };
    // A fresh client (no saved checkpoint) that trusts only the log key passes B's fork:
    // this is what witnesses are for.
    let naive = tempfile::tempdir().unwrap();
    let out = gate(naive.path(), &server_b, &forked.artifact, false);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // A fresh client that requires both witnesses refuses B ...
    let fresh = tempfile::tempdir().unwrap();
    let out = gate(fresh.path(), &server_b, &forked.artifact, true);
    assert_ne!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("no checkpoint has been cosigned by enough witnesses"),
        "{}",
        stderr(&out)
    );
    // ... and B's evidence, however it reaches the client (here a bundle B exported), is a
    // failed verification: it lacks the witnesses' cosignatures.
    let out = tokio::task::block_in_place(|| {
        cli(
            fresh.path(),
            Some(&server_b),
            &[
                "bundle",
                "export",
                "--artifact",
                &forked.artifact,
                "--out",
                "forked.bundle.json",
            ],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tokio::task::block_in_place(|| {
        cli(
            fresh.path(),
            None,
            &[
                "bundle",
                "verify",
                "forked.bundle.json",
                "--artifact",
                &forked.artifact,
                "--policy",
                "payments-prod",
                "--genesis",
                &genesis,
                "--log-key",
                &log_key.to_string(),
                "--witness",
                &w1.key,
                "--witness",
                &w2.key,
            ],
        )
    });
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("cosigned by 0 of the trusted witnesses, 2 required"),
        "{}",
        stderr(&out)
    );
    // The honest log A passes the same fresh client.
    let honest = tempfile::tempdir().unwrap();
    let out = gate(honest.path(), &server_a, &good.artifact, true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_rolled_back_to_an_older_copy_gets_no_cosignature() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let log_key = first_start(d, &data);
    // An old copy of the log's folder, and a configuration that serves it.
    let old = d.join("old");
    copy_dir(&data, &old);
    let rolled_dir = d.join("rolled");
    std::fs::create_dir_all(&rolled_dir).unwrap();
    std::fs::write(
        rolled_dir.join("evidentd.toml"),
        std::fs::read_to_string(d.join("evidentd.toml"))
            .unwrap()
            .replace(&data.display().to_string(), &old.display().to_string()),
    )
    .unwrap();
    let w1 = Witness::create(&d.join("w1"), "w1.test", &log_key);
    let w2 = Witness::create(&d.join("w2"), "w2.test", &log_key);
    let extra = witnessing(&[&w1, &w2]);
    let mut server = restart_with(d, &data, &extra);
    let mut client = server.client().await;
    for nonce in 0..5 {
        client.submit(&envelope(&key(1), nonce)).await.unwrap();
    }
    let size = server.size().await;
    witnessed_at_least(&server, size).await;
    assert!(server.terminate().success());
    drop(server);

    // The old copy served in its place: the witnesses have cosigned a larger tree, so they
    // refuse its checkpoints, and it has no witnessed checkpoint to show.
    let rolled = restart_with(&rolled_dir, &old, &extra);
    assert!(rolled.size().await < size);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let refused = rolled.client().await.checkpoint_at(true).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("no checkpoint has been cosigned"),
        "{refused}"
    );
    // Grown back to the size the witnesses cosigned, with other entries: a fork at that
    // size, which they refuse and keep as evidence.
    let mut client = rolled.client().await;
    let mut nonce = 100;
    while rolled.size().await < size {
        client.submit(&envelope(&key(1), nonce)).await.unwrap();
        nonce += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while w1.forks() == 0 || w2.forks() == 0 {
        assert!(
            Instant::now() < deadline,
            "no fork evidence:\n{}",
            rolled.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = client.checkpoint_at(true).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("no checkpoint has been cosigned"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_requires_witnesses_is_decided_at_a_witnessed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let mut server = team_log_in(d, &data).await;
    let log_key = server.log_key.clone();
    assert!(server.terminate().success());
    drop(server);
    let w1 = Witness::create(&d.join("w1"), "w1.test", &log_key);
    let w2 = Witness::create(&d.join("w2"), "w2.test", &log_key);
    // A witness the log does not ask: it never cosigns.
    let w3 = Witness::create(&d.join("w3"), "w3.test", &log_key);
    let server = restart_with(d, &data, &witnessing(&[&w1, &w2]));
    // Version 2 requires the log's two witnesses; version 3 requires w1 and w3.
    let requiring = |version: u64, witnesses: [&Witness; 2]| {
        format!(
            "{}\n[witnesses]\nthreshold = 2\nkeys = [{:?}, {:?}]\n",
            evident_core::fixtures::PAYMENTS_PROD
                .replace("version = 1", &format!("version = {version}")),
            witnesses[0].key,
            witnesses[1].key
        )
    };
    for (version, witnesses) in [(2, [&w1, &w2]), (3, [&w1, &w3])] {
        let file = format!("policy{version}.toml");
        std::fs::write(d.join(&file), requiring(version, witnesses)).unwrap();
        let out = tokio::task::block_in_place(|| {
            cli(
                d,
                Some(&server),
                &["policy", "submit", &file, "--admin-key", "admin.key"],
            )
        });
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let good = release(&server, "good", Flaw::None).await;
    let size = server.size().await;
    witnessed_at_least(&server, size).await;
    let genesis = data.join("genesis.json").display().to_string();
    let gate = |policy: &str| {
        let fresh = tempfile::tempdir().unwrap();
        tokio::task::block_in_place(|| {
            cli(
                fresh.path(),
                Some(&server),
                &[
                    "gate",
                    "--artifact",
                    &good.artifact,
                    "--policy",
                    policy,
                    "--genesis",
                    &genesis,
                ],
            )
        })
    };
    // The gate, given no witnesses itself, decides version 2 on the witnessed evidence:
    // allowed, and the verdict says who cosigned.
    let out = gate("payments-prod@2");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("w1.test, w2.test"),
        "{}",
        stdout(&out)
    );
    // Version 3 names a witness that never cosigned: denied for that reason alone.
    let out = gate("payments-prod@3");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("no cosignature from w3.test"),
        "{}",
        stdout(&out)
    );
}

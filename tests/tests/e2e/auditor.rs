//! The auditor's desk: queries over the indexes, the release population, and the full-log
//! audit and monitor catching edits, reorders, drops and forks — each naming the index.

use evident_client::{ClientError, Query};
use evident_core::Hash;
use evident_core::record::EntryKind;
use evident_tests::{
    Server, cli, copy_store, envelope, flip_payload_byte, frame_of, key, stderr, stdout,
    write_config,
};
use serde_json::json;

use crate::gate::attest;

const TEST: &str = "https://in-toto.io/attestation/test-result/v0.1";
const VULNS: &str = "https://in-toto.io/attestation/vulns/v0.2";
const RELEASE: &str = "https://in-toto.io/attestation/release/v0.1";
const VSA: &str = "https://slsa.dev/verification_summary/v1";

fn digest(name: &str) -> String {
    Hash::sha256(name.as_bytes()).to_hex()
}

/// Entries 0–3 register signers 1 (ci), 2 (scanner), 3 (release), 4 (deploy); then:
/// 4, 5, 6 tests about app-a; 7 a scan of app-a; 8 a test of app-b; 9 the release of app-a.
async fn seeded(dir: &std::path::Path) -> Server {
    let data = dir.join("data");
    let server = Server::start(&write_config(dir, &data, &[], ""), &data).unwrap();
    tokio::task::block_in_place(|| {
        server.register(1, &["ci"], &[TEST]);
        server.register(2, &["scanner"], &[VULNS]);
        server.register(3, &["release"], &[RELEASE]);
        server.register(4, &["deploy"], &[VSA]);
    });
    let a = json!({"name": "app-a", "digest": {"sha256": digest("a")}});
    let b = json!({"name": "app-b", "digest": {"sha256": digest("b")}});
    for run in 0..3 {
        attest(
            &server,
            1,
            a.clone(),
            TEST,
            json!({"result": "PASSED", "run": run}),
        )
        .await;
    }
    attest(
        &server,
        2,
        a.clone(),
        VULNS,
        json!({"scanner": {"result": []}}),
    )
    .await;
    attest(&server, 1, b, TEST, json!({"result": "PASSED"})).await;
    attest(
        &server,
        3,
        a,
        RELEASE,
        json!({"purl": "pkg:generic/payments@1.4.0"}),
    )
    .await;
    server
}

async fn indexes(client: &mut evident_client::Client, query: Query) -> Vec<u64> {
    let page = client.query(&query).await.unwrap();
    assert!(page.next_cursor.is_none(), "one page holds these results");
    page.hits.iter().map(|h| h.index).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_filter_and_their_combinations_select_exactly_their_entries() {
    let dir = tempfile::tempdir().unwrap();
    let server = seeded(dir.path()).await;
    let mut c = server.client().await;
    let q = Query::default;
    let a = format!("sha256:{}", digest("a"));
    assert_eq!(indexes(&mut c, q()).await, (0..10).collect::<Vec<_>>());
    assert_eq!(
        indexes(
            &mut c,
            Query {
                subject_digest: Some(a.clone()),
                ..q()
            }
        )
        .await,
        vec![4, 5, 6, 7, 9]
    );
    // Algorithm names and hex digits in any case.
    assert_eq!(
        indexes(
            &mut c,
            Query {
                subject_digest: Some(a.to_uppercase()),
                ..q()
            }
        )
        .await,
        vec![4, 5, 6, 7, 9]
    );
    assert_eq!(
        indexes(
            &mut c,
            Query {
                subject_name: Some("app-b".into()),
                ..q()
            }
        )
        .await,
        vec![8]
    );
    assert_eq!(
        indexes(
            &mut c,
            Query {
                predicate_type: Some(VULNS.into()),
                ..q()
            }
        )
        .await,
        vec![7]
    );
    assert_eq!(
        indexes(
            &mut c,
            Query {
                signer: Some("signer-1@test".into()),
                ..q()
            }
        )
        .await,
        vec![4, 5, 6, 8]
    );
    assert_eq!(
        indexes(
            &mut c,
            Query {
                signer: Some("admin@test".into()),
                ..q()
            }
        )
        .await,
        vec![0, 1, 2, 3],
        "administrators are the signers of registry entries"
    );
    assert_eq!(
        indexes(
            &mut c,
            Query {
                role: Some("scanner".into()),
                ..q()
            }
        )
        .await,
        vec![7]
    );
    assert_eq!(
        indexes(
            &mut c,
            Query {
                kind: Some(EntryKind::Registry),
                ..q()
            }
        )
        .await,
        vec![0, 1, 2, 3]
    );
    assert_eq!(
        indexes(
            &mut c,
            Query {
                kind: Some(EntryKind::Attestation),
                ..q()
            }
        )
        .await,
        vec![4, 5, 6, 7, 8, 9]
    );
    for release in ["payments", "payments@1.4.0"] {
        assert_eq!(
            indexes(
                &mut c,
                Query {
                    release: Some(release.into()),
                    ..q()
                }
            )
            .await,
            vec![9],
            "{release}"
        );
    }
    assert!(
        indexes(
            &mut c,
            Query {
                release: Some("payments@9.9.9".into()),
                ..q()
            }
        )
        .await
        .is_empty()
    );
    // Combinations are intersections.
    assert_eq!(
        indexes(
            &mut c,
            Query {
                subject_digest: Some(a.clone()),
                signer: Some("signer-1@test".into()),
                ..q()
            }
        )
        .await,
        vec![4, 5, 6]
    );
    assert_eq!(
        indexes(
            &mut c,
            Query {
                subject_name: Some("app-a".into()),
                role: Some("ci".into()),
                predicate_type: Some(TEST.into()),
                kind: Some(EntryKind::Attestation),
                ..q()
            }
        )
        .await,
        vec![4, 5, 6]
    );
    assert!(
        indexes(
            &mut c,
            Query {
                subject_name: Some("app-b".into()),
                role: Some("scanner".into()),
                ..q()
            }
        )
        .await
        .is_empty()
    );
    // A time range, bounds inclusive, from the entries' own integrated times.
    let all = c.query(&q()).await.unwrap().hits;
    let (since, until) = (all[5].integrated_time_nanos, all[7].integrated_time_nanos);
    assert_eq!(
        indexes(
            &mut c,
            Query {
                since: Some(since),
                until: Some(until),
                ..q()
            }
        )
        .await,
        vec![5, 6, 7]
    );
    assert_eq!(
        indexes(
            &mut c,
            Query {
                since: Some(since),
                signer: Some("signer-1@test".into()),
                newest_first: true,
                ..q()
            }
        )
        .await,
        vec![8, 6, 5]
    );
    // Each result says what the entry is, and its leaf hash is the entry's.
    let hit = &c
        .query(&Query {
            predicate_type: Some(VULNS.into()),
            ..q()
        })
        .await
        .unwrap()
        .hits[0];
    assert_eq!(hit.signers, vec!["signer-2@test".to_owned()]);
    assert_eq!(hit.predicate_type, VULNS);
    assert_eq!(hit.kind, EntryKind::Attestation);
    assert_eq!(hit.subjects, vec![("app-a".to_owned(), vec![a.clone()])]);
    let entry = c
        .entry(evident_client::Selector::Index(7), None)
        .await
        .unwrap();
    assert_eq!(hit.leaf_hash, entry.leaf_hash);
    assert_eq!(
        hit.integrated_time_nanos,
        entry.record.integrated_time_nanos()
    );
}

fn invalid(result: Result<evident_client::QueryPage, ClientError>) -> String {
    match result {
        Err(ClientError::Status { code, message, .. }) => {
            assert_eq!(code, tonic::Code::InvalidArgument, "{message}");
            message
        }
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_refused_with_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&write_config(dir.path(), &data, &[1], ""), &data).unwrap();
    let mut c = server.client().await;
    for n in 0..3 {
        c.submit(&envelope(&key(1), n)).await.unwrap();
    }
    let q = Query::default;
    let m = invalid(
        c.query(&Query {
            subject_digest: Some("4f2a".into()),
            ..q()
        })
        .await,
    );
    assert!(m.contains("not ALGORITHM:HEX"), "{m}");
    let m = invalid(
        c.query(&Query {
            since: Some(10),
            until: Some(5),
            ..q()
        })
        .await,
    );
    assert!(m.contains("is after until"), "{m}");
    let m = invalid(
        c.query(&Query {
            page_size: 5000,
            ..q()
        })
        .await,
    );
    assert!(m.contains("above the limit of 1000"), "{m}");
    let m = invalid(
        c.query(&Query {
            cursor: Some("garbage!".into()),
            ..q()
        })
        .await,
    );
    assert!(m.contains("cursor is malformed"), "{m}");
    let first = c
        .query(&Query {
            page_size: 1,
            ..q()
        })
        .await
        .unwrap();
    let cursor = first.next_cursor.expect("more than one entry");
    let m = invalid(
        c.query(&Query {
            page_size: 1,
            cursor: Some(cursor),
            newest_first: true,
            ..q()
        })
        .await,
    );
    assert!(m.contains("other filters"), "{m}");
    let m = invalid(
        c.query(&Query {
            signer: Some("a\0b".into()),
            ..q()
        })
        .await,
    );
    assert!(m.contains("NUL"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_have_no_gaps_or_repeats_while_the_log_grows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&write_config(dir.path(), &data, &[1], ""), &data).unwrap();
    let mut c = server.client().await;
    for n in 0..25 {
        c.submit(&envelope(&key(1), n)).await.unwrap();
    }
    let subject = "sha256:421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195";
    // A pipeline keeps appending about the same subject while the auditor pages.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appender = {
        let mut c = server.client().await;
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut nonce = 1000;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.submit(&envelope(&key(1), nonce)).await.unwrap();
                nonce += 1;
            }
            nonce - 1000
        })
    };
    for newest_first in [false, true] {
        let mut query = Query {
            subject_digest: Some(subject.into()),
            page_size: 4,
            newest_first,
            ..Query::default()
        };
        let mut seen = Vec::new();
        let mut tree_size = None;
        loop {
            let page = c.query(&query).await.unwrap();
            assert_eq!(*tree_size.get_or_insert(page.tree_size), page.tree_size);
            seen.extend(page.hits.iter().map(|h| h.index));
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        let size = tree_size.unwrap();
        let mut expected: Vec<u64> = (1..size).collect();
        if newest_first {
            expected.reverse();
        }
        assert_eq!(seen, expected, "newest_first = {newest_first}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let appended = appender.await.unwrap();
    assert!(appended > 0, "entries were appended while paging");
    assert!(server.size().await > 26);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_queries_as_csv_jsonl_and_verified_and_lists_releases_with_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = seeded(d).await;
    let a = format!("sha256:{}", digest("a"));
    let run = |args: &[&str]| tokio::task::block_in_place(|| cli(d, Some(&server), args));
    let out = run(&["query", "--subject", &a, "--format", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "index,leaf_hash,integrated_time,kind,predicate_type,signers,subjects"
    );
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[1].starts_with("4,"), "{text}");
    assert!(
        lines[1].contains(&format!(",signer-1@test,app-a@{a}")),
        "{text}"
    );
    let out = run(&[
        "query",
        "--signer",
        "signer-1@test",
        "--format",
        "jsonl",
        "--newest-first",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<u64> = rows.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(got, vec![8, 6, 5, 4]);
    // --limit with a cursor to continue.
    let out = run(&["query", "--kind", "registry", "--limit", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 3);
    let cursor = stderr(&out)
        .split("--cursor ")
        .nth(1)
        .expect("a cursor for the rest")
        .trim()
        .to_owned();
    let out = run(&["query", "--kind", "registry", "--cursor", &cursor]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).trim_start().starts_with('3'),
        "{}",
        stdout(&out)
    );
    // Every result proven against a checkpoint signed by the pinned key.
    let out = run(&["query", "--predicate-type", TEST, "--verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("4 result(s) at tree size 10, each proven"),
        "{}",
        stderr(&out)
    );
    // Bad input from the command line.
    let out = run(&["query", "--since", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("neither RFC 3339"),
        "{}",
        stderr(&out)
    );

    // The release population, first without a verdict, then with the deploy job's.
    let out = run(&["releases", "--since", "2000-01-01", "--until", "2100-12-31"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("payments@1.4.0  entry 9"), "{text}");
    assert!(text.contains("verdict: none recorded"), "{text}");
    attest(
        &server,
        4,
        json!({"digest": {"sha256": digest("a")}}),
        VSA,
        json!({"verificationResult": "PASSED", "policy": {"uri": "evident:policy/payments-prod@1"}}),
    )
    .await;
    let out = run(&["releases", "--since", "2000-01-01", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listing: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let release = &listing["releases"][0];
    assert_eq!(release["name"], "payments");
    assert_eq!(release["version"], "1.4.0");
    assert_eq!(release["verdict"], "PASSED");
    assert_eq!(release["verdict_index"], 10);
    assert_eq!(release["verdict_policy"], "evident:policy/payments-prod@1");
    // The release's evidence package: the bundle, and its attestations as in-toto JSON
    // Lines that any DSSE tool can check with the signers' public keys.
    let out = run(&[
        "bundle",
        "export",
        "--release",
        "payments@1.4.0",
        "--out",
        "release.json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("proven at the checkpoint of 11 entries"),
        "{}",
        stdout(&out)
    );
    let bundle =
        evident_core::bundle::Bundle::from_json(&std::fs::read(d.join("release.json")).unwrap())
            .unwrap();
    assert_eq!(
        bundle.entries.len(),
        4 + 5 + 1,
        "registry, app-a's attestations, the verdict"
    );
    let jsonl = std::fs::read_to_string(d.join("release.intoto.jsonl")).unwrap();
    let envelopes: Vec<evident_core::dsse::Envelope> = jsonl
        .lines()
        .map(|l| evident_core::dsse::Envelope::from_json(l.as_bytes()).unwrap())
        .collect();
    assert_eq!(envelopes.len(), 6);
    let keys: Vec<_> = (1..=4).map(evident_tests::public).collect();
    for e in &envelopes {
        assert!(
            e.verify(&keys).is_ok(),
            "each line is a DSSE envelope a signer signed"
        );
    }
    // A period before the release holds none.
    let out = run(&["releases", "--until", "2001-01-01"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

/// A log of one registry entry and `n` attestations whose server checks only its last entry
/// at start, so that edits further back reach the auditors. The server is started twice:
/// the log's recovery at open then reads nothing before the end (docs/FORMAT.md, 7.8).
async fn short_checked_log(
    dir: &std::path::Path,
    n: u64,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("data");
    let config = write_config(
        dir,
        &data,
        &[1],
        "startup_check = \"tail\"\nstartup_tail_entries = 1",
    );
    let mut server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    for nonce in 0..n {
        client.submit(&envelope(&key(1), nonce)).await.unwrap();
    }
    assert!(tokio::task::block_in_place(|| server.terminate()).success());
    let mut server = Server::start(&config, &data).unwrap();
    assert!(tokio::task::block_in_place(|| server.terminate()).success());
    (config, data)
}

/// The bytes of entry `index`'s frame and where it starts in its segment.
fn frame(data: &std::path::Path, index: u64) -> (std::path::PathBuf, usize, Vec<u8>) {
    let (path, offset) = frame_of(data, index);
    let (_, next) = frame_of(data, index + 1);
    let bytes = std::fs::read(&path).unwrap();
    let (start, end) = (offset as usize, next as usize);
    (path, start, bytes[start..end].to_vec())
}

fn audit(dir: &std::path::Path, server: &Server) -> std::process::Output {
    let genesis = server.data_dir.join("genesis.json").display().to_string();
    tokio::task::block_in_place(|| cli(dir, Some(server), &["audit", "--genesis", &genesis]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_replays_a_sound_log_and_summarises_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = seeded(dir.path()).await;
    let out = audit(dir.path(), &server);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("OK: 10 entries replayed from the genesis"),
        "{text}"
    );
    assert!(text.contains("attestation: 6"), "{text}");
    assert!(text.contains("registry: 4"), "{text}");
    assert!(text.contains("signer-1@test: 4 attestation(s)"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_names_a_flipped_byte_a_reordered_and_a_dropped_entry() {
    type Edit = fn(&std::path::Path);
    let cases: [(&str, Edit, &str); 2] = [
        (
            "flipped byte",
            |data| flip_payload_byte(data, 3),
            "entry 3: ",
        ),
        (
            "reordered",
            |data| {
                let (path, at, two) = frame(data, 2);
                let (_, _, three) = frame(data, 3);
                assert_eq!(two.len(), three.len(), "equal records swap in place");
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[at..at + two.len()].copy_from_slice(&three);
                bytes[at + two.len()..at + 2 * two.len()].copy_from_slice(&two);
                std::fs::write(&path, bytes).unwrap();
            },
            // The server's log finds the record out of place and the auditor names it.
            "entry 2: the log signed a checkpoint of 6 entries but could not return this one",
        ),
    ];
    for (name, edit, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (config, data) = short_checked_log(dir.path(), 5).await;
        edit(&data);
        let server = Server::start(&config, &data)
            .unwrap_or_else(|e| panic!("{name}: the tail check lets it start: {e}"));
        let out = audit(dir.path(), &server);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{name}: {}", stderr(&out));
    }
    // A dropped entry shifts every later record out of place: the tail check reads one of
    // them and the server refuses to serve, even with the file padded back to its length.
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = short_checked_log(dir.path(), 5).await;
    let (path, at, two) = frame(&data, 2);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.drain(at..at + two.len());
    bytes.resize(bytes.len() + two.len(), 0);
    std::fs::write(&path, bytes).unwrap();
    let err = Server::start(&config, &data).unwrap_err();
    assert!(
        err.contains("refusing to serve") && err.contains("is not entry 4"),
        "{err}"
    );
}

/// Two logs with the same key and first entries that then diverge: `a` has seen 7 entries
/// of one history in `dir_a`'s state file, `b` serves 8 of another.
async fn forked(dir: &std::path::Path) -> Server {
    let data = dir.join("data");
    let config = write_config(dir, &data, &[1], "");
    let mut server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    for nonce in 0..4 {
        client.submit(&envelope(&key(1), nonce)).await.unwrap();
    }
    assert!(tokio::task::block_in_place(|| server.terminate()).success());
    let fork = dir.join("fork");
    let fork_store = copy_store(&config, &data, &fork);
    let server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    for nonce in 10..12 {
        client.submit(&envelope(&key(1), nonce)).await.unwrap();
    }
    let out = tokio::task::block_in_place(|| cli(dir, Some(&server), &["checkpoint"]));
    assert!(out.status.success(), "{}", stderr(&out));
    drop(server);
    let b_dir = dir.join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    let b = Server::start(&write_config(&b_dir, &fork, &[1], &fork_store), &fork).unwrap();
    let mut client = b.client().await;
    for nonce in 20..23 {
        client.submit(&envelope(&key(1), nonce)).await.unwrap();
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_monitor_alert_on_a_forked_log() {
    let dir = tempfile::tempdir().unwrap();
    let b = forked(dir.path()).await;
    let out = audit(dir.path(), &b);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out)
            .contains("fork: the checkpoint of 8 entries is not consistent with the one of 7"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("its history departs at or before entry 6"),
        "{}",
        stderr(&out)
    );
    let genesis = b.data_dir.join("genesis.json").display().to_string();
    let out = tokio::task::block_in_place(|| {
        cli(
            dir.path(),
            Some(&b),
            &[
                "monitor",
                "--genesis",
                &genesis,
                "--interval",
                "0.1",
                "--polls",
                "2",
            ],
        )
    });
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // The alert is a line of its own that starts `ALERT:`, as docs/AUDIT.md says, so a log
    // shipper can match it.
    assert!(
        stderr(&out).lines().any(|l| l.starts_with("ALERT: fork")),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("verification failed"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_follows_a_growing_log_and_verifies_each_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&write_config(dir.path(), &data, &[1], ""), &data).unwrap();
    let genesis = data.join("genesis.json").display().to_string();
    let mut command = std::process::Command::new(evident_tests::evident_bin());
    command
        .args([
            "monitor",
            "--genesis",
            &genesis,
            "--interval",
            "0.2",
            "--polls",
            "12",
        ])
        .env("EVIDENT_SERVER", &server.url)
        .env("EVIDENT_LOG_KEY", server.log_key.to_string())
        .env("EVIDENT_STATE", dir.path().join("state.json"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    let mut client = server.client().await;
    for nonce in 0..6 {
        client.submit(&envelope(&key(1), nonce)).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let out = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("checkpoint of 7 entries verified"), "{text}");
    assert!(
        text.lines().filter(|l| l.contains("verified (+")).count() >= 3,
        "several checkpoints were verified as the log grew: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_pages_of_entries_span_a_log_larger_than_one_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&write_config(dir.path(), &data, &[1], ""), &data).unwrap();
    let mut c = server.client().await;
    // 700 attestations of about 5 KiB: 3.5 MiB of entries, several answers' worth.
    let padding = "x".repeat(5000);
    for n in 0..700u64 {
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "big", "digest": {"sha256": digest("big")}}],
            "predicateType": TEST,
            "predicate": {"result": "PASSED", "run": n, "log": padding},
        });
        let env = evident_core::dsse::Envelope::sign(
            evident_core::dsse::IN_TOTO_PAYLOAD_TYPE,
            serde_json::to_vec(&statement).unwrap(),
            &[&key(1)],
        );
        c.submit(&env).await.unwrap();
    }
    let out = audit(dir.path(), &server);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("OK: 701 entries"),
        "{}",
        stdout(&out)
    );
    // A page of 1000 with entries stops at about 2 MiB and says where to go on.
    let mut query = Query {
        subject_name: Some("big".into()),
        page_size: 1000,
        include_entries: true,
        ..Query::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = c.query(&query).await.unwrap();
        pages += 1;
        seen.extend(page.hits.iter().map(|h| h.index));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    assert!(pages >= 2, "{pages} page(s)");
    assert_eq!(seen, (1..701).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_by_policy_control_finds_the_evidence_that_control_looks_at() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = crate::gate::team_log(d).await;
    for name in ["one", "two"] {
        crate::gate::release(&server, name, crate::gate::Flaw::None).await;
    }
    let run = |args: &[&str]| tokio::task::block_in_place(|| cli(d, Some(&server), args));
    let out = run(&[
        "query",
        "--control",
        "payments-prod:two-person-review",
        "--format",
        "jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "two approvals per release: {rows:?}");
    for row in &rows {
        assert_eq!(
            row["predicate_type"],
            "https://evident.dev/attestation/approval/v1"
        );
    }
    let out = run(&["query", "--control", "payments-prod@1:unit-tests"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    let out = run(&["query", "--control", "payments-prod:code-review"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has no control \"code-review\"")
            && stderr(&out).contains("two-person-review"),
        "{}",
        stderr(&out)
    );
}

//! The log as C2SP tlog-tiles: `evidentd export-tiles` writes the files the tiles listener
//! serves, incrementally (with the witnesses' cosignatures when the log has witnesses), and
//! refuses a folder that holds another log's export; the tiles reproduce every proof of the
//! gRPC API; and `evident audit`, `monitor` and `receipt verify` check a log from its tiles
//! alone, catching a mirror that rolls back, withholds, alters or forks it.

use std::path::{Path, PathBuf};

use evident_core::dsse::Envelope;
use evident_core::note::Checkpoint;
use evident_tests::{
    Server, copy_dir, envelope, evidentd_offline, key, stderr, stdout, write_config,
};

use crate::witness::{Witness, first_start, restart_with, witnessing};

const TILES: &str = "[tiles]\nlisten = \"127.0.0.1:0\"\n";

/// Submits `count` envelopes of signer 1 from nonce `from`, in batches.
async fn submit(server: &Server, from: u64, count: u64) {
    let mut client = server.client().await;
    let envelopes: Vec<Envelope> = (from..from + count).map(|n| envelope(&key(1), n)).collect();
    for chunk in envelopes.chunks(256) {
        for answer in client.submit_batch(chunk).await.unwrap() {
            answer.unwrap();
        }
    }
}

/// Every file under `dir`, as paths relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

#[cfg(unix)]
fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).unwrap().ino()
}

fn export(config: &Path, out: &Path) -> std::process::Output {
    evidentd_offline(config, &["export-tiles", &out.display().to_string()])
}

fn checkpoint_size(server: &Server, note: &str) -> u64 {
    Checkpoint::verify(note, &server.log_key).unwrap().size
}

/// A stopped log of 301 entries (one registry entry, 300 attestations) exported to
/// `d/export`, extended by 300 more and exported again; the server is running again at the
/// end. Returns it and the export folder.
async fn exported_twice(d: &Path) -> (Server, PathBuf) {
    let data = d.join("data");
    let config = write_config(d, &data, &[1], TILES);
    let mut server = Server::start(&config, &data).unwrap();
    submit(&server, 0, 300).await;
    assert_eq!(server.size().await, 301);
    assert!(server.terminate().success());

    let out = d.join("export");
    let first = export(&config, &out);
    assert!(first.status.success(), "{}", stderr(&first));
    // 301 entries: level 0 has one full tile and one of width 45, level 1 one of width 1.
    assert!(
        stdout(&first)
            .contains("exported the checkpoint of 301 entries: 3 tiles and 2 entry bundles"),
        "{}",
        stdout(&first)
    );
    let full_tile = out.join("tile/0/000");
    let full_bundle = out.join("tile/entries/000");
    #[cfg(unix)]
    let before = (inode(&full_tile), inode(&full_bundle));
    assert_eq!(std::fs::read(&full_tile).unwrap().len(), 256 * 32);

    let server = Server::start(&config, &data).unwrap();
    submit(&server, 300, 300).await;
    assert_eq!(server.size().await, 601);
    let mut server = server;
    assert!(server.terminate().success());
    let second = export(&config, &out);
    assert!(second.status.success(), "{}", stderr(&second));
    // Only what 601 adds: level 0 tiles 1 (full) and 2 (width 89), level 1 (width 2);
    // bundles 1 and 2.
    assert!(
        stdout(&second).contains(
            "exported the checkpoint of 601 entries (after the export of 301 entries already \
             there): 3 tiles and 2 entry bundles"
        ),
        "{}",
        stdout(&second)
    );
    #[cfg(unix)]
    assert_eq!(
        (inode(&full_tile), inode(&full_bundle)),
        before,
        "full tiles of the first export are never rewritten"
    );
    // Exporting what is already there writes nothing but the checkpoint.
    let again = export(&config, &out);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("0 tiles and 0 entry bundles"),
        "{}",
        stdout(&again)
    );

    let server = Server::start(&config, &data).unwrap();
    (server, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_tiles_writes_what_the_tiles_listener_serves_and_extends_incrementally() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, out) = exported_twice(d).await;
    let base = server
        .tiles_url
        .clone()
        .expect("the tiles listener's address");
    let http = reqwest::Client::new();
    let listed = files(&out);
    assert!(listed.contains(&PathBuf::from("checkpoint")));
    let mut compared = 0;
    for path in &listed {
        let name = path.to_str().unwrap();
        if name == "checkpoint" {
            continue;
        }
        let served = http
            .get(format!("{base}/{name}"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            served.as_ref(),
            std::fs::read(out.join(path)).unwrap(),
            "{name} differs from what the listener serves"
        );
        compared += 1;
    }
    // Level 0: tiles 0 and 1 full, 1.p/45 and 2.p/89; level 1: 0.p/1 and 0.p/2; the four
    // bundles of level 0.
    assert_eq!(compared, 10, "{listed:?}");
    let exported = std::fs::read_to_string(out.join("checkpoint")).unwrap();
    assert_eq!(checkpoint_size(&server, &exported), 601);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_tiles_refuses_a_folder_of_another_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = d.join("a");
    let b = d.join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let mut servers = Vec::new();
    for at in [&a, &b] {
        let data = at.join("data");
        let config = write_config(at, &data, &[1], "");
        let mut server = Server::start(&config, &data).unwrap();
        submit(&server, 0, 3).await;
        assert!(server.terminate().success());
        servers.push(config);
    }
    let out = d.join("export");
    let first = export(&servers[0], &out);
    assert!(first.status.success(), "{}", stderr(&first));
    let before = std::fs::read(out.join("checkpoint")).unwrap();
    let other = export(&servers[1], &out);
    assert_eq!(other.status.code(), Some(1), "{}", stderr(&other));
    assert!(
        stderr(&other).contains("does not verify under the log key"),
        "{}",
        stderr(&other)
    );
    assert_eq!(std::fs::read(out.join("checkpoint")).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_served_over_http_reproduce_every_proof_the_grpc_api_gives() {
    use evident_core::merkle;
    use evident_core::tiles::{BundleId, TileId, TiledTree, decode_bundle};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let server = Server::start(&write_config(d, &data, &[1], TILES), &data).unwrap();
    submit(&server, 0, 600).await;
    let base = server
        .tiles_url
        .clone()
        .expect("the tiles listener's address");
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{base}/{path}");
        async move {
            let answer = http.get(url).send().await.unwrap();
            assert!(answer.status().is_success(), "{path}: {}", answer.status());
            answer.bytes().await.unwrap().to_vec()
        }
    };
    // The checkpoint the tiles serve verifies under the log key.
    let note = String::from_utf8(get("checkpoint".into()).await).unwrap();
    let checkpoint = Checkpoint::verify(&note, &server.log_key).unwrap();
    let size = checkpoint.size;
    assert!(size > 512, "{size}");
    // Every tile of the tree, fetched once over HTTP.
    let mut fetched = std::collections::HashMap::new();
    for id in evident_core::tiles::tiles(size) {
        fetched.insert(id, get(id.path()).await);
    }
    let tiled = TiledTree::new(size, |id: TileId| {
        fetched
            .get(&id)
            .cloned()
            .ok_or(format!("{id} was not served"))
    });
    assert_eq!(merkle::root(&tiled, size).unwrap(), checkpoint.root);
    // Every entry: the bundle holds its leaf record, and the proof from tiles is the one
    // GetInclusionProof gives at the same size.
    let mut client = server.client().await;
    let grpc_entries = client.entries(0, size).await.unwrap();
    let mut records = Vec::new();
    for bundle in 0..size.div_ceil(256) {
        let width = (size - bundle * 256).min(256) as u16;
        let id = BundleId::new(bundle, width).unwrap();
        let bytes = get(id.path()).await;
        records.extend(
            decode_bundle(&bytes, usize::from(width))
                .unwrap()
                .into_iter()
                .map(<[u8]>::to_vec),
        );
    }
    assert_eq!(records.len() as u64, size);
    assert_eq!(&records[..grpc_entries.len()], &grpc_entries[..]);
    for index in 0..size {
        let from_tiles = merkle::inclusion_proof(&tiled, index, size).unwrap();
        let (_, from_grpc, leaf, _) = client
            .inclusion_proof(evident_client::Selector::Index(index), size)
            .await
            .unwrap();
        assert_eq!(from_tiles, from_grpc, "entry {index}");
        assert_eq!(leaf, merkle::leaf_hash(&records[index as usize]));
        merkle::verify_inclusion(index, size, &leaf, &from_tiles, &checkpoint.root).unwrap();
    }
    // Consistency proofs from tiles equal the server's, for old sizes on and off tile edges.
    for old in [1, 2, 255, 256, 257, 300, 511, 512, size - 1] {
        let from_tiles = merkle::consistency_proof(&tiled, old, size).unwrap();
        let from_grpc = client.consistency_proof(old, size).await.unwrap();
        assert_eq!(from_tiles, from_grpc, "from {old}");
    }
    // A tile the tree does not have yet is 404, with a reason.
    let beyond = TileId::new(0, size / 256 + 1, 256).unwrap();
    let answer = http
        .get(format!("{base}/{}", beyond.path()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    assert!(answer.text().await.unwrap().contains("has no such tile"));
}

/// `evident ARGS` with the log key of `server` and no gRPC at all: the server address is a
/// closed port, so anything the command verifies came from the tiles.
fn offline_cli(d: &Path, server: &Server, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(evident_tests::evident_bin());
    command
        .current_dir(d)
        .args(args)
        .env("EVIDENT_STATE", d.join("state.json"))
        .env("EVIDENT_SERVER", "http://127.0.0.1:9")
        .env("EVIDENT_LOG_KEY", server.log_key.to_string())
        .env_remove("EVIDENT_TILES");
    tokio::task::block_in_place(|| command.output().expect("running evident"))
}

/// The size of the checkpoint the state file in `d` keeps for `server`'s log.
fn state_size(d: &Path, server: &Server) -> u64 {
    let state = std::fs::read_to_string(d.join("state.json")).unwrap();
    let kept: serde_json::Value = serde_json::from_str(&state).unwrap();
    let note = kept["logs"][server.log_key.to_string()].as_str().unwrap();
    checkpoint_size(server, note)
}

fn genesis(server: &Server) -> String {
    server.data_dir.join("genesis.json").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_monitor_verify_a_log_from_its_tiles_alone_served_or_exported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, out) = exported_twice(d).await;
    let url = server
        .tiles_url
        .clone()
        .expect("the tiles listener's address");
    let genesis = genesis(&server);

    // The listener: every entry replayed from the bundles, the root held against the
    // signed checkpoint the tiles carry.
    let audit = offline_cli(
        d,
        &server,
        &["audit", "--genesis", &genesis, "--tiles", &url],
    );
    assert!(audit.status.success(), "{}", stderr(&audit));
    assert!(
        stdout(&audit).starts_with("OK: 601 entries replayed from the genesis"),
        "{}",
        stdout(&audit)
    );
    // The exported folder, as a path and as a file:// URL, with a client that has now seen
    // the same checkpoint over HTTP.
    for location in [
        out.display().to_string(),
        format!("file://{}", out.display()),
    ] {
        let audit = offline_cli(
            d,
            &server,
            &[
                "audit",
                "--genesis",
                &genesis,
                "--tiles",
                &location,
                "--format",
                "json",
            ],
        );
        assert!(audit.status.success(), "{location}: {}", stderr(&audit));
        let json: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
        assert_eq!(json["ok"], true);
        assert_eq!(json["summary"]["entries"], 601, "{json}");
    }

    // The log grows; a monitor following the listener sees the new checkpoint, proven
    // consistent with the one seen before by a proof computed from the tiles, and replays
    // what it adds.
    submit(&server, 600, 300).await;
    let grown = server.size().await;
    assert_eq!(grown, 901);
    let monitor = offline_cli(
        d,
        &server,
        &[
            "monitor",
            "--genesis",
            &genesis,
            "--tiles",
            &url,
            "--interval",
            "0.1",
            "--polls",
            "2",
        ],
    );
    assert!(monitor.status.success(), "{}", stderr(&monitor));
    assert!(
        stdout(&monitor).contains("checkpoint of 901 entries verified (+901 entries replayed)"),
        "{}",
        stdout(&monitor)
    );
    let state = std::fs::read_to_string(d.join("state.json")).unwrap();
    let kept: serde_json::Value = serde_json::from_str(&state).unwrap();
    let note = kept["logs"][server.log_key.to_string()].as_str().unwrap();
    assert_eq!(checkpoint_size(&server, note), 901);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_that_rolls_back_withholds_or_alters_the_log_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let config = write_config(d, &data, &[1], TILES);
    let mut server = Server::start(&config, &data).unwrap();
    submit(&server, 0, 300).await;
    assert!(server.terminate().success());
    // An old export of 301 entries, kept aside; then the log grows and is exported anew.
    let old = d.join("old");
    assert!(export(&config, &old).status.success());
    let server = Server::start(&config, &data).unwrap();
    submit(&server, 300, 300).await;
    let mut server = server;
    assert!(server.terminate().success());
    let new = d.join("new");
    assert!(export(&config, &new).status.success());
    let server = Server::start(&config, &data).unwrap();
    let genesis = genesis(&server);
    let new_text = new.display().to_string();

    // A client that verified the export of 601 entries …
    let audit = offline_cli(
        d,
        &server,
        &["audit", "--genesis", &genesis, "--tiles", &new_text],
    );
    assert!(audit.status.success(), "{}", stderr(&audit));
    // … refuses the old one served in its place: stale, an error (exit 2) as for a mirror
    // that lags, never accepted; its state keeps the newer checkpoint.
    let old_text = old.display().to_string();
    let rolled = offline_cli(
        d,
        &server,
        &["audit", "--genesis", &genesis, "--tiles", &old_text],
    );
    assert_eq!(rolled.status.code(), Some(2), "{}", stderr(&rolled));
    assert!(
        stderr(&rolled).contains(
            "stale: the source serves a checkpoint of 301 entries, older than the one of 601"
        ),
        "{}",
        stderr(&rolled)
    );
    assert_eq!(state_size(d, &server), 601);

    // A mirror that altered a hash tile: the consistency proof computed from it, from the
    // 301 entries a client saw to the 601 it serves, does not verify.
    let seen_old = d.join("seen-old");
    std::fs::create_dir_all(&seen_old).unwrap();
    let audit = offline_cli(
        &seen_old,
        &server,
        &["audit", "--genesis", &genesis, "--tiles", &old_text],
    );
    assert!(audit.status.success(), "{}", stderr(&audit));
    let forged = d.join("forged");
    copy_dir(&new, &forged);
    let tile = forged.join("tile/1/000.p/2");
    let mut bytes = std::fs::read(&tile).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&tile, bytes).unwrap();
    let forged_text = forged.display().to_string();
    let audit = offline_cli(
        &seen_old,
        &server,
        &["audit", "--genesis", &genesis, "--tiles", &forged_text],
    );
    assert_eq!(audit.status.code(), Some(1), "{}", stderr(&audit));
    assert!(
        stderr(&audit).contains("is not consistent with the one of 301 entries"),
        "{}",
        stderr(&audit)
    );
    assert_eq!(state_size(&seen_old, &server), 301);

    // A mirror that altered one entry's record: the replay from the genesis stops at it.
    let altered = d.join("altered");
    copy_dir(&new, &altered);
    let bundle = altered.join("tile/entries/001");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&bundle, bytes).unwrap();
    let fresh = d.join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let altered_text = altered.display().to_string();
    let audit = offline_cli(
        &fresh,
        &server,
        &["audit", "--genesis", &genesis, "--tiles", &altered_text],
    );
    assert_eq!(audit.status.code(), Some(1), "{}", stderr(&audit));
    assert!(stderr(&audit).contains("entry 511"), "{}", stderr(&audit));

    // A mirror that withholds a bundle its checkpoint covers (and its full form).
    let withheld = d.join("withheld");
    copy_dir(&new, &withheld);
    std::fs::remove_file(withheld.join("tile/entries/000")).unwrap();
    let withheld_text = withheld.display().to_string();
    let audit = offline_cli(
        &fresh,
        &server,
        &["audit", "--genesis", &genesis, "--tiles", &withheld_text],
    );
    assert_eq!(audit.status.code(), Some(1), "{}", stderr(&audit));
    assert!(
        stderr(&audit).contains("has no tile/entries/000"),
        "{}",
        stderr(&audit)
    );

    // A place that is not a log's tiles is an error (exit 2), not a finding.
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let empty_text = empty.display().to_string();
    let audit = offline_cli(
        &fresh,
        &server,
        &["audit", "--genesis", &genesis, "--tiles", &empty_text],
    );
    assert_eq!(audit.status.code(), Some(2), "{}", stderr(&audit));
    assert!(
        stderr(&audit).contains("has no checkpoint"),
        "{}",
        stderr(&audit)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipt_verify_with_tiles_proves_the_entry_still_in_the_log_and_catches_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Log A, then a copy B of its folder: the same log key and history so far.
    let (a, b) = (d.join("a"), d.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let data_a = a.join("data");
    let config_a = write_config(&a, &data_a, &[1], TILES);
    let mut server_a = Server::start(&config_a, &data_a).unwrap();
    submit(&server_a, 0, 5).await;
    assert!(server_a.terminate().success());
    let data_b = b.join("data");
    copy_dir(&data_a, &data_b);
    let config_b = write_config(&b, &data_b, &[1], TILES);
    let server_a = Server::start(&config_a, &data_a).unwrap();
    let server_b = Server::start(&config_b, &data_b).unwrap();
    assert_eq!(server_a.log_key, server_b.log_key);

    // A receipt from A, and A grows past it.
    std::fs::write(a.join("good.json"), envelope(&key(1), 100).to_json()).unwrap();
    let out = tokio::task::block_in_place(|| {
        evident_tests::cli(&a, Some(&server_a), &["submit", "good.json"])
    });
    assert!(out.status.success(), "{}", stderr(&out));
    submit(&server_a, 200, 300).await;
    let size_a = server_a.size().await;
    let url_a = server_a.tiles_url.clone().unwrap();

    // Offline but for A's tiles: the receipt's entry is still in A's latest checkpoint.
    let verify = offline_cli(
        &a,
        &server_a,
        &[
            "receipt",
            "verify",
            "good.json.receipt.json",
            "--tiles",
            &url_a,
            "--format",
            "json",
        ],
    );
    assert!(verify.status.success(), "{}", stderr(&verify));
    let json: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(json["index"], 6, "{json}");
    assert!(json["tree_size"].as_u64().unwrap() < size_a, "{json}");
    assert_eq!(json["still_included_in"]["tree_size"], size_a, "{json}");

    // B, the fork, logs something else at the same index and gives a valid receipt for it.
    std::fs::write(b.join("forked.json"), envelope(&key(1), 999).to_json()).unwrap();
    let out = tokio::task::block_in_place(|| {
        evident_tests::cli(&b, Some(&server_b), &["submit", "forked.json"])
    });
    assert!(out.status.success(), "{}", stderr(&out));
    // Offline, the forked receipt verifies: it is validly signed by the log key …
    let offline = offline_cli(
        &b,
        &server_b,
        &["receipt", "verify", "forked.json.receipt.json"],
    );
    assert!(offline.status.success(), "{}", stderr(&offline));
    // … but against A's tiles it is a fork: exit 1, and the state file keeps A's view.
    let fresh = d.join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::copy(b.join("forked.json.receipt.json"), fresh.join("r.json")).unwrap();
    let forked = offline_cli(
        &fresh,
        &server_b,
        &["receipt", "verify", "r.json", "--tiles", &url_a],
    );
    assert_eq!(forked.status.code(), Some(1), "{}", stderr(&forked));
    assert!(stderr(&forked).contains("fork"), "{}", stderr(&forked));
    // The fresh client kept A's checkpoint, read before the fork was found: its next look
    // at B is checked against A's view.
    assert_eq!(state_size(&fresh, &server_a), size_a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_tiles_carries_the_witnesses_cosignatures_or_writes_nothing_below_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let log_key = first_start(d, &data);
    let w = tempfile::tempdir().unwrap();
    let w1 = Witness::create(&w.path().join("w1"), "w1.test", &log_key);
    let mut w2 = Witness::create(&w.path().join("w2"), "w2.test", &log_key);
    let mut server = restart_with(d, &data, &witnessing(&[&w1, &w2]));
    submit(&server, 0, 300).await;
    assert!(server.terminate().success());
    let config = d.join("evidentd.toml");
    let genesis = genesis(&server);

    // Stopped, the log's last checkpoint is sent to both witnesses and exported with their
    // cosignatures: a client that requires both reads the folder.
    let out = d.join("export");
    let first = export(&config, &out);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("cosigned by 2 witnesses"),
        "{}",
        stdout(&first)
    );
    let (key1, key2) = (w1.key.clone(), w2.key.clone());
    let witnessed = ["--witness", key1.as_str(), "--witness", key2.as_str()];
    let mut args = vec!["audit", "--genesis", &genesis, "--tiles"];
    let out_text = out.display().to_string();
    args.push(&out_text);
    args.extend(witnessed);
    let audit = offline_cli(d, &server, &args);
    assert!(audit.status.success(), "{}", stderr(&audit));
    let before = std::fs::read(out.join("checkpoint")).unwrap();

    // One witness down: the log grows, and the export writes nothing (exit 2).
    w2.kill();
    let mut server = Server::start(&config, &data).unwrap();
    submit(&server, 300, 10).await;
    assert!(server.terminate().success());
    let listed = files(&out);
    let short = export(&config, &out);
    assert_eq!(short.status.code(), Some(2), "{}", stderr(&short));
    assert_eq!(files(&out), listed, "a refused export wrote files");
    assert!(
        stderr(&short).contains("cosigned by 1 of the 2 configured witnesses, 2 required"),
        "{}",
        stderr(&short)
    );
    assert_eq!(std::fs::read(out.join("checkpoint")).unwrap(), before);

    // --unwitnessed exports the log's signature alone, which a client requiring the
    // witnesses refuses (exit 1) and one that does not accepts.
    let plain = evidentd_offline(&config, &["export-tiles", &out_text, "--unwitnessed"]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let fresh = d.join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let refused = offline_cli(&fresh, &server, &args);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("cosigned by 0 of the trusted witnesses, 2 required"),
        "{}",
        stderr(&refused)
    );
    let accepted = offline_cli(
        &fresh,
        &server,
        &["audit", "--genesis", &genesis, "--tiles", &out_text],
    );
    assert!(accepted.status.success(), "{}", stderr(&accepted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_serves_tls_serves_its_tiles_over_https_with_the_same_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    // [tls] with nothing in it: TLS with a certificate the server makes itself.
    let config = write_config(d, &data, &[], &format!("[tls]\n{TILES}"));
    let mut server = Server::start(&config, &data).unwrap();
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    server.url = format!("https://127.0.0.1:{port}");
    let url = server.tiles_url.clone().unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let ca = data.join("tls/ca.pem").display().to_string();

    // A signer and an entry, over gRPC with TLS.
    let out = tokio::task::block_in_place(|| {
        evident_tests::cli(
            d,
            Some(&server),
            &[
                "signer",
                "add",
                "--identity",
                "signer-1@test",
                "--public-key",
                &evident_tests::public(1).to_hex(),
                "--role",
                "ci",
                "--predicate-type",
                "*",
                "--admin-key",
                "admin.key",
                "--ca",
                &ca,
            ],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(d.join("e.json"), envelope(&key(1), 1).to_json()).unwrap();
    let out = tokio::task::block_in_place(|| {
        evident_tests::cli(d, Some(&server), &["submit", "e.json", "--ca", &ca])
    });
    assert!(out.status.success(), "{}", stderr(&out));

    // The tiles over HTTPS, trusting the server's CA: the whole log replays, and the
    // receipt is proven still in it.
    let genesis = genesis(&server);
    let audit = offline_cli(
        d,
        &server,
        &[
            "audit",
            "--genesis",
            &genesis,
            "--tiles",
            &url,
            "--tiles-ca",
            &ca,
        ],
    );
    assert!(audit.status.success(), "{}", stderr(&audit));
    assert!(
        stdout(&audit).starts_with("OK: 2 entries replayed"),
        "{}",
        stdout(&audit)
    );
    let verify = offline_cli(
        d,
        &server,
        &[
            "receipt",
            "verify",
            "e.json.receipt.json",
            "--tiles",
            &url,
            "--tiles-ca",
            &ca,
        ],
    );
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(
        stdout(&verify).contains("still included in the log's latest checkpoint of 2 entries"),
        "{}",
        stdout(&verify)
    );
    // EVIDENT_TILES_CA set for every command does not get in the way of an audit over gRPC.
    let over_grpc = tokio::task::block_in_place(|| {
        std::process::Command::new(evident_tests::evident_bin())
            .current_dir(d)
            .args(["audit", "--genesis", &genesis, "--ca", &ca])
            .env("EVIDENT_STATE", d.join("grpc-state.json"))
            .env("EVIDENT_SERVER", &server.url)
            .env("EVIDENT_LOG_KEY", server.log_key.to_string())
            .env("EVIDENT_TILES_CA", &ca)
            .output()
            .unwrap()
    });
    assert!(over_grpc.status.success(), "{}", stderr(&over_grpc));
    // Without the CA the certificate is not trusted: an error (exit 2), not a finding.
    let untrusted = offline_cli(
        d,
        &server,
        &["audit", "--genesis", &genesis, "--tiles", &url],
    );
    assert_eq!(untrusted.status.code(), Some(2), "{}", stderr(&untrusted));
    assert!(
        stderr(&untrusted).to_lowercase().contains("certificate"),
        "{}",
        stderr(&untrusted)
    );
    // Plain HTTP to the HTTPS listener gets no answer.
    let plain = url.replacen("https://", "http://", 1);
    assert!(
        reqwest::get(format!("{plain}/checkpoint")).await.is_err(),
        "the tiles listener answered plain HTTP"
    );
}

//! Three `evidentd` instances on one PostgreSQL: any instance takes submissions, exactly one
//! sequences, and when the sequencer is killed (SIGKILL) or frozen (SIGSTOP) another takes
//! over with nothing acknowledged lost and no checkpoint that conflicts with another.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evident_core::merkle::{self, MemoryTree};
use evident_core::note::Checkpoint;
use evident_core::receipt::Receipt;
use evident_tests::postgres::Postgres;
use evident_tests::{Server, cli, envelope, key, stderr, stdout, write_config};

/// The lease the instances run with: a dead sequencer is replaced after about 1.25 s.
const LEASE_MS: u64 = 1_000;
/// The longest a takeover may take here: the lease, the takeover's check and a loaded
/// machine's slack.
const TAKEOVER_BOUND: Duration = Duration::from_secs(15);

/// One instance: its folder, config and data folder, and the process while it runs.
struct Instance {
    config: PathBuf,
    data: PathBuf,
    server: Option<Server>,
}

impl Instance {
    fn new(root: &Path, n: usize, url: &str) -> Instance {
        let dir = root.join(format!("evident-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data");
        let extra = format!(
            "metrics_listen = \"127.0.0.1:0\"\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n\
             lease_ms = {LEASE_MS}\ninstance = \"evident-{n}\"\n"
        );
        let config = write_config(&dir, &data, &[1], &extra);
        Instance {
            config,
            data,
            server: None,
        }
    }

    fn start(&mut self) {
        self.server = Some(Server::start(&self.config, &self.data).unwrap());
    }

    fn url(&self) -> Option<String> {
        self.server.as_ref().map(|s| s.url.clone())
    }

    /// Whether this instance says it sequences (`evident_sequencer 1`).
    fn sequences(&self) -> bool {
        let Some(metrics) = self.server.as_ref().and_then(|s| s.metrics_url.clone()) else {
            return false;
        };
        scrape(&metrics).lines().any(|l| l == "evident_sequencer 1")
    }
}

/// The metrics text of a running instance.
fn scrape(metrics_url: &str) -> String {
    let addr = metrics_url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap();
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// Every instance signs with the first one's log key.
/// Every leaf record below `size`, one `GetEntries` page after another (an answer may be
/// shorter than asked).
async fn every_entry(client: &mut evident_client::Client, size: u64) -> Vec<Vec<u8>> {
    let mut records: Vec<Vec<u8>> = Vec::new();
    while (records.len() as u64) < size {
        let page = client.entries(records.len() as u64, size).await.unwrap();
        assert!(!page.is_empty(), "no entries from {}", records.len());
        records.extend(page);
    }
    records
}

fn share_log_key(from: &Instance, to: &Instance) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(&to.data).unwrap();
    let target = to.data.join("log.key");
    std::fs::copy(from.data.join("log.key"), &target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The last log lines of every running instance, newest first.
fn logs(instances: &[Instance]) -> String {
    instances
        .iter()
        .filter_map(|i| i.server.as_ref().map(Server::stderr))
        .map(|log| log.lines().rev().take(30).collect::<Vec<_>>().join("\n"))
        .collect::<Vec<_>>()
        .join("\n----\n")
}

/// The instance that sequences, waited for.
fn sequencer(instances: &[Instance], within: Duration) -> Option<usize> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let leaders: Vec<usize> = (0..instances.len())
            .filter(|&i| instances[i].sequences())
            .collect();
        assert!(
            leaders.len() <= 1,
            "two instances sequence at once: {leaders:?}"
        );
        if let Some(&i) = leaders.first() {
            return Some(i);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_fail_over_under_kill_9_and_a_freeze_losing_nothing_and_never_forking() {
    let pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    let mut instances: Vec<Instance> = (1..=3)
        .map(|n| Instance::new(root.path(), n, &pg.url))
        .collect();
    instances[0].start();
    let log_key = instances[0].server.as_ref().unwrap().log_key.clone();
    for n in 1..3 {
        let (first, rest) = instances.split_at(1);
        share_log_key(&first[0], &rest[n - 1]);
    }
    for instance in &mut instances[1..] {
        instance.start();
    }
    let first = tokio::task::block_in_place(|| sequencer(&instances, TAKEOVER_BOUND))
        .expect("one instance sequences");
    assert_eq!(first, 0, "the first instance started took the lease");

    // Clients submit through every instance at once, each to its own instance's current
    // address (a restarted instance listens on a new port).
    let urls: Arc<Mutex<Vec<Option<String>>>> =
        Arc::new(Mutex::new(instances.iter().map(Instance::url).collect()));
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<Vec<(usize, Receipt)>>> = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for i in 0..3 {
        let (urls, stop, acknowledged, refused) = (
            urls.clone(),
            stop.clone(),
            acknowledged.clone(),
            refused.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut nonce = 1_000_000 * (i as u64 + 1);
            while !stop.load(Ordering::Relaxed) {
                nonce += 1;
                let url = urls.lock().unwrap()[i].clone();
                let Some(url) = url else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let answer = async {
                    let mut client = evident_client::Client::connect(&url).await?;
                    client.submit(&envelope(&key(1), nonce)).await
                };
                match tokio::time::timeout(Duration::from_secs(40), answer).await {
                    Ok(Ok((receipt, duplicate))) => {
                        assert!(!duplicate, "a new statement answered as a duplicate");
                        acknowledged.lock().unwrap().push((i, receipt));
                    }
                    _ => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }

    // Kill the sequencer three times; each time another instance takes over, and the
    // killed one comes back as a follower.
    let mut leaders = vec![first];
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let leader = tokio::task::block_in_place(|| sequencer(&instances, TAKEOVER_BOUND))
            .expect("an instance sequences");
        let before = acknowledged.lock().unwrap().len();
        let killed = Instant::now();
        urls.lock().unwrap()[leader] = None;
        instances[leader].server.as_mut().unwrap().kill();
        instances[leader].server = None;
        let next = tokio::task::block_in_place(|| sequencer(&instances, TAKEOVER_BOUND))
            .unwrap_or_else(|| {
                panic!(
                    "round {round}: no instance took over within {TAKEOVER_BOUND:?}; the \
                     instances' last log lines, newest first:\n{}",
                    logs(&instances)
                )
            });
        assert_ne!(next, leader);
        // Submissions are acknowledged again, through the instances still running.
        loop {
            let now = acknowledged.lock().unwrap().len();
            if now > before + 3 {
                break;
            }
            if killed.elapsed() > TAKEOVER_BOUND * 2 {
                panic!(
                    "round {round}: nothing acknowledged after the takeover (new sequencer: \
                     instance {next}); the instances' last log lines, newest first:\n{}",
                    logs(&instances)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        leaders.push(next);
        tokio::task::block_in_place(|| instances[leader].start());
        urls.lock().unwrap()[leader] = instances[leader].url();
    }
    // Freeze the sequencer (SIGSTOP: a long pause, a partition) instead of killing it: the
    // others take over; when it wakes it finds its lease gone, can neither write nor sign,
    // and steps down.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let frozen = tokio::task::block_in_place(|| sequencer(&instances, TAKEOVER_BOUND))
        .expect("an instance sequences");
    let pid = instances[frozen]
        .server
        .as_ref()
        .unwrap()
        .pid()
        .unwrap()
        .to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    let before = acknowledged.lock().unwrap().len();
    let others: Vec<usize> = (0..3).filter(|&i| i != frozen).collect();
    let deadline = Instant::now() + TAKEOVER_BOUND;
    let next = loop {
        if let Some(&i) = others.iter().find(|&&i| instances[i].sequences()) {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "no instance took over from the frozen one; logs:\n{}",
            logs(&instances)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    leaders.push(next);
    while acknowledged.lock().unwrap().len() <= before + 3 {
        assert!(
            Instant::now() < deadline + TAKEOVER_BOUND,
            "nothing acknowledged while the old sequencer was frozen; logs:\n{}",
            logs(&instances)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal("-CONT");
    let deadline = Instant::now() + TAKEOVER_BOUND;
    while instances[frozen].sequences() {
        assert!(
            Instant::now() < deadline,
            "the woken instance still sequences; logs:\n{}",
            logs(&instances)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    for i in 0..3 {
        assert!(
            acknowledged.iter().any(|(via, _)| *via == i),
            "instance {i} acknowledged nothing: {} refused in all",
            refused.load(Ordering::Relaxed)
        );
    }

    // The final log, read through a follower.
    let reader = instances
        .iter()
        .position(|i| !i.sequences())
        .expect("a follower");
    let mut client = instances[reader].server.as_ref().unwrap().client().await;
    let note = client.checkpoint().await.unwrap();
    let last = Checkpoint::verify(&note, &log_key).unwrap();
    let records = every_entry(&mut client, last.size).await;
    assert_eq!(records.len() as u64, last.size);
    let leaves: Vec<_> = records.iter().map(|r| merkle::leaf_hash(r)).collect();

    // Every acknowledged receipt is in the final log at its index, and proves itself
    // against the checkpoint it came with.
    let mut seen: BTreeMap<u64, Checkpoint> = BTreeMap::new();
    for (via, receipt) in &acknowledged {
        assert_eq!(
            leaves.get(receipt.index as usize),
            Some(&receipt.leaf_hash),
            "entry {} acknowledged through instance {via} is not in the log as acknowledged",
            receipt.index
        );
        let checkpoint = Checkpoint::verify(&receipt.checkpoint, &log_key).unwrap();
        merkle::verify_inclusion(
            receipt.index,
            receipt.tree_size,
            &receipt.leaf_hash,
            &receipt.proof,
            &checkpoint.root,
        )
        .unwrap();
        if let Some(other) = seen.insert(checkpoint.size, checkpoint.clone()) {
            assert_eq!(
                other.root, checkpoint.root,
                "two checkpoints of one size: a fork"
            );
        }
    }
    seen.insert(last.size, last.clone());
    // Every checkpoint any client saw is a prefix of the final log: consistent with it.
    let mut tree = MemoryTree::new();
    for (i, leaf) in leaves.iter().enumerate() {
        tree.push(*leaf);
        if let Some(checkpoint) = seen.get(&(i as u64 + 1)) {
            assert_eq!(
                tree.root(),
                checkpoint.root,
                "the checkpoint of {} entries is not a prefix of the final log",
                checkpoint.size
            );
        }
    }
    // The whole log replays.
    let server = instances[reader].server.as_ref().unwrap();
    let dir = server.config.parent().unwrap().to_owned();
    let genesis = server.data_dir.join("genesis.json").display().to_string();
    let out =
        tokio::task::block_in_place(|| cli(&dir, Some(server), &["audit", "--genesis", &genesis]));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(leaders.len() >= 5, "four takeovers: {leaders:?}");
}

/// What an instance's health service says of the ledger.
async fn health(instance: &Instance) -> i32 {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let url = instance.url().unwrap();
    let Ok(channel) = tonic::transport::Channel::from_shared(url)
        .unwrap()
        .connect()
        .await
    else {
        return -1;
    };
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "evident.v1.Ledger".into(),
        })
        .await
        .map_or(-1, |r| r.into_inner().status)
}

/// How long every instance has to say what its database's state calls for. Twice the
/// takeover bound: an instance notices a dead database at its next lease renewal or
/// checkpoint refresh, and on 2 cores shared with the rest of the suite that once took
/// longer than 15 s.
const HEALTH_BOUND: Duration = Duration::from_secs(30);

/// Waits until every instance's health says `status`.
async fn all_say(
    instances: &[Instance],
    status: tonic_health::pb::health_check_response::ServingStatus,
) {
    let deadline = Instant::now() + HEALTH_BOUND;
    loop {
        let mut all = true;
        for instance in instances {
            all &= health(instance).await == status as i32;
        }
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the instances do not all say {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_survive_postgres_going_away_and_coming_back_losing_nothing() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    let mut instances: Vec<Instance> = (1..=2)
        .map(|n| Instance::new(root.path(), n, &pg.url))
        .collect();
    instances[0].start();
    let log_key = instances[0].server.as_ref().unwrap().log_key.clone();
    {
        let (first, rest) = instances.split_at(1);
        share_log_key(&first[0], &rest[0]);
    }
    instances[1].start();
    all_say(&instances, ServingStatus::Serving).await;
    let mut acknowledged = Vec::new();
    let mut nonce = 0;
    for instance in &instances {
        let mut client = instance.server.as_ref().unwrap().client().await;
        for _ in 0..5 {
            nonce += 1;
            acknowledged.push(client.submit(&envelope(&key(1), nonce)).await.unwrap().0);
        }
    }

    // The database crashes: both instances stop serving, and say why to a submitter.
    tokio::task::block_in_place(|| pg.kill());
    all_say(&instances, ServingStatus::NotServing).await;
    for instance in &instances {
        let mut client = instance.server.as_ref().unwrap().client().await;
        nonce += 1;
        let err = client.submit(&envelope(&key(1), nonce)).await.unwrap_err();
        let evident_client::ClientError::Status { code, message, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(*code, tonic::Code::Unavailable, "{err}");
        assert!(message.contains("PostgreSQL"), "{err}");
    }

    // It comes back: the instances reconnect on their own and take submissions again, on
    // both, with everything acknowledged before still in the log.
    tokio::task::block_in_place(|| pg.restart());
    all_say(&instances, ServingStatus::Serving).await;
    for instance in &instances {
        let deadline = Instant::now() + TAKEOVER_BOUND;
        let mut client = instance.server.as_ref().unwrap().client().await;
        loop {
            nonce += 1;
            match client.submit(&envelope(&key(1), nonce)).await {
                Ok((receipt, _)) => {
                    acknowledged.push(receipt);
                    break;
                }
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "no submission taken after the database came back: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    let mut client = instances[1].server.as_ref().unwrap().client().await;
    let note = client.checkpoint().await.unwrap();
    let last = Checkpoint::verify(&note, &log_key).unwrap();
    let records = every_entry(&mut client, last.size).await;
    for receipt in &acknowledged {
        assert_eq!(
            records
                .get(receipt.index as usize)
                .map(|r| merkle::leaf_hash(r)),
            Some(receipt.leaf_hash),
            "entry {} was acknowledged and is not in the log",
            receipt.index
        );
    }
}

/// An instance that follows another's sequencer proves answers complete too: it keeps the
/// verifiable index from the database's key frames as the log grows, and its proofs verify
/// against the checkpoints the sequencer signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_proves_answers_complete_as_the_log_grows() {
    let pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    let mut instances: Vec<Instance> = (1..=2)
        .map(|n| Instance::new(root.path(), n, &pg.url))
        .collect();
    instances[0].start();
    share_log_key(&instances[0], &instances[1]);
    instances[1].start();
    let leader = tokio::task::block_in_place(|| sequencer(&instances, TAKEOVER_BOUND))
        .expect("one instance sequences");
    let follower = 1 - leader;
    let subject = "sha256:421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195";
    let verify = |instance: &Instance, dir: &Path| {
        let server = instance.server.as_ref().unwrap();
        tokio::task::block_in_place(|| {
            cli(
                dir,
                Some(server),
                &[
                    "query",
                    "--subject",
                    subject,
                    "--verify",
                    "--format",
                    "json",
                ],
            )
        })
    };
    for round in 0..2u64 {
        let mut client = evident_client::Client::connect(&instances[leader].url().unwrap())
            .await
            .unwrap();
        for n in 0..5 {
            client
                .submit(&envelope(&key(1), 10 * round + n))
                .await
                .unwrap();
        }
        let size = instances[leader].server.as_ref().unwrap().size().await;
        // The follower catches up with the checkpoint, then proves.
        let deadline = Instant::now() + TAKEOVER_BOUND;
        loop {
            let seen = instances[follower].server.as_ref().unwrap().size().await;
            if seen >= size {
                break;
            }
            assert!(Instant::now() < deadline, "the follower did not catch up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = verify(&instances[follower], dir.path());
        assert!(out.status.success(), "{}", stderr(&out));
        let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(answer["complete"], true, "{answer}");
        assert_eq!(answer["total"], 5 * (round + 1), "{answer}");
    }
    // Built once, then moved on batch by batch from the key frames.
    let log = instances[follower].server.as_ref().unwrap().stderr();
    assert_eq!(
        log.matches("rebuilt the verifiable index").count(),
        1,
        "{log}"
    );
}

//! What an auditor's query costs on a real store of 1,000,000 entries (the log's files and
//! the indexes' runs, as `evidentd` writes them).
//!
//! Before any timing, the benchmark builds a store in a fresh temporary folder, the way the
//! sequencer writes one: `Store::open`, then `Store::append` of batches of 10,000 entries,
//! each with its Merkle nodes (`Frontier::append`) and its secondary index keys
//! (`store::secondary_keys` of the entry's `audit::Facts`). Every entry is an attestation:
//! an in-toto Statement v1 in a DSSE envelope signed by its signer's Ed25519 key. The facts
//! come from `Facts::of_attestation` of the parsed Statement, as the sequencer computes them.
//! The build runs in builder processes of 100,000 entries each (see [`build`] for why).
//!
//! The log imitates an organisation's year of evidence:
//!
//! - 50 signer identities: 20 with role `ci` (SLSA provenance and test results), 15
//!   `scanner` (vulnerability scans), 10 `reviewer` (approvals), 5 `release` (release
//!   attestations); so 5 predicate types in all.
//! - One artifact digest per 10 entries (100,000 at 1 M entries), each attestation about one
//!   artifact picked at random over the whole log, so an artifact has about 10 attestations
//!   spread over the log; 500 artifact names.
//! - 1% of the entries are release attestations (`facts.release` is set).
//! - Integrated times 30 seconds apart: 2,880 entries a day, so 1 M entries span 347 days
//!   and one day is a small slice of the log, as it would be in production.
//!
//! The build prints its time, the store's size on disk and the bytes of records, tree nodes
//! and index keys written, so the cost of the indexes is visible.
//!
//! Then it times `query::run` (one page, as `QueryEntries` answers it) for: one subject
//! digest; one signer's first page of 100, oldest and newest first; signer and predicate
//! type together; role `release` within one day in the middle of the log; the 50th page of
//! one signer (resumed from a cursor got by paging before the timing); one day with no other
//! filter; a subject digest that is not in the log. It also times `first_at_or_after`, the
//! binary search from a time to an index, alone. Each query is timed warm: criterion's
//! warm-up reads the pages it touches into the page cache first.
//!
//! `EVIDENT_BENCH_ENTRIES` sets the number of entries (default 1,000,000; 10,000 makes a
//! quick check); nothing is cached between runs. `EVIDENT_BENCH_SECONDARY_INDEXES=0` builds
//! the same log without secondary index keys, prints its size, and times nothing. Run with
//! `cargo bench -p evident-benches --bench query`; the figures are in `docs/PERFORMANCE.md`.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use serde_json::{Value, json};

use evident_core::audit::Facts;
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::merkle::{self, Frontier};
use evident_core::predicates;
use evident_core::record::{EntryKind, LeafRecord};
use evident_core::registry::Authorized;
use evident_core::statement::Statement;
use evident_core::{Hash, PublicKey, SigningKey};
use evident_server::query::{self, Cursor, Filters};
use evident_server::store::{self, NewEntry, Posting, Store};

/// Entries when `EVIDENT_BENCH_ENTRIES` is not set.
const DEFAULT_ENTRIES: u64 = 1_000_000;
/// Entries per `Store::append`, as a large sequencer batch.
const BATCH: u64 = 10_000;
/// Entries per builder process (see [`build`]).
const PART: u64 = 100_000;
/// Set (to `start end`) in a builder process.
const BUILDER_VAR: &str = "EVIDENT_BENCH_QUERY_BUILDER";
/// The store's folder, in a builder process.
const BUILDER_DIR_VAR: &str = "EVIDENT_BENCH_QUERY_DIR";
/// Starts the summary line a builder process prints.
const WRITTEN_TAG: &str = "written:";
/// Attestations per artifact digest, on average.
const ATTESTATIONS_PER_ARTIFACT: u64 = 10;
/// Distinct artifact names (image repositories).
const ARTIFACT_NAMES: u64 = 500;
/// Integrated time of entry 0: 2026-01-01T00:00:00Z.
const START_NANOS: i64 = 1_767_225_600 * NANOS_PER_SECOND;
/// Integrated times are this far apart.
const SPACING_NANOS: i64 = 30 * NANOS_PER_SECOND;
const NANOS_PER_SECOND: i64 = 1_000_000_000;
const DAY_NANOS: i64 = 86_400 * NANOS_PER_SECOND;
/// Results per page, the server's default.
const PAGE: usize = query::DEFAULT_PAGE;
/// The page the deep-page benchmark resumes at.
const DEEP_PAGE: usize = 50;
/// The signer whose pages are read.
const SIGNER: &str = "ci-07@build.example.com";

/// A role and the signers that have it.
struct Role {
    name: &'static str,
    count: u64,
    domain: &'static str,
}

const ROLES: [Role; 4] = [
    Role {
        name: "ci",
        count: 20,
        domain: "build.example.com",
    },
    Role {
        name: "scanner",
        count: 15,
        domain: "security.example.com",
    },
    Role {
        name: "reviewer",
        count: 10,
        domain: "example.com",
    },
    Role {
        name: "release",
        count: 5,
        domain: "release.example.com",
    },
];

/// One signer identity with its key and role.
struct Signer {
    authorized: Authorized,
    key: SigningKey,
}

fn signers() -> Vec<Vec<Signer>> {
    let mut seed = 0u8;
    ROLES
        .iter()
        .map(|role| {
            (0..role.count)
                .map(|n| {
                    seed += 1;
                    let key = SigningKey::from_bytes(&[seed; 32]);
                    Signer {
                        authorized: Authorized {
                            identity: format!("{}-{n:02}@{}", role.name, role.domain),
                            key: PublicKey::from_signing_key(&key).to_bytes(),
                            key_id: PublicKey::from_signing_key(&key).key_id(),
                            roles: [role.name.to_owned()].into(),
                            certificate: None,
                            signed_at: None,
                        },
                        key,
                    }
                })
                .collect()
        })
        .collect()
}

/// A deterministic pseudo-random number for `x` (SplitMix64).
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The sha256 digest (hex) of artifact `k`.
fn artifact_digest(k: u64) -> String {
    Hash::sha256(format!("artifact {k}").as_bytes()).to_hex()
}

/// The integrated time of entry `index`.
fn time_of(index: u64) -> i64 {
    START_NANOS + SPACING_NANOS * i64::try_from(index).expect("fewer than 2^63 entries")
}

/// The role (index into [`ROLES`]), predicate type and predicate of entry `index` about
/// artifact `k` named `service`.
fn predicate(index: u64, k: u64, service: &str) -> (usize, &'static str, Value) {
    let r = mix(index ^ 0x5eed);
    let commit = &Hash::sha256(format!("commit {k}").as_bytes()).to_hex()[..40];
    match r % 100 {
        0 => (
            3,
            predicates::RELEASE_V0_1,
            json!({
                "purl": format!("pkg:oci/{service}@1.{}.0", k / ARTIFACT_NAMES),
                "releaseId": format!("{service}@1.{}.0", k / ARTIFACT_NAMES),
            }),
        ),
        1..=30 => (
            0,
            predicates::SLSA_PROVENANCE_V1,
            json!({
                "buildDefinition": {
                    "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                    "externalParameters": {"workflow": {
                        "ref": "refs/heads/main",
                        "repository": format!("https://github.com/example/{service}"),
                        "path": ".github/workflows/release.yml",
                    }},
                    "resolvedDependencies": [{
                        "uri": format!("git+https://github.com/example/{service}@refs/heads/main"),
                        "digest": {"gitCommit": commit},
                    }],
                },
                "runDetails": {
                    "builder": {"id": "https://github.com/actions/runner"},
                    "metadata": {"invocationId": format!("https://github.com/example/{service}/actions/runs/{index}")},
                },
            }),
        ),
        31..=60 => (
            0,
            predicates::TEST_RESULT_V0_1,
            json!({
                "result": "PASSED",
                "configuration": [{"name": "ci.yml", "digest": {"gitCommit": commit}}],
                "url": format!("https://github.com/example/{service}/actions/runs/{index}"),
                "passedTests": ["unit", "integration", "contract"],
                "warnedTests": [],
                "failedTests": [],
            }),
        ),
        61..=85 => (
            1,
            predicates::VULNS_V0_2,
            json!({
                "scanner": {
                    "uri": "pkg:github/aquasecurity/trivy@0.58.1",
                    "version": "0.58.1",
                    "db": {"uri": "pkg:github/aquasecurity/trivy-db", "version": "2026-01-01"},
                    "result": [{"id": "CVE-2025-0001", "severity": [{"method": "nvd", "score": "LOW"}]}],
                },
                "metadata": {"scanStartedOn": "2026-01-01T00:00:00Z", "scanFinishedOn": "2026-01-01T00:01:00Z"},
            }),
        ),
        _ => (
            2,
            predicates::APPROVAL_V1,
            json!({
                "reviewer": "reviewer@example.com",
                "decision": "approved",
                "change": format!("https://github.com/example/{service}/pull/{}", k % 10_000),
            }),
        ),
    }
}

/// The envelope of entry `index` of a log of `entries`, and who signed it.
fn attestation(index: u64, entries: u64, signers: &[Vec<Signer>]) -> (Envelope, &Signer) {
    let artifacts = (entries / ATTESTATIONS_PER_ARTIFACT).max(1);
    let k = mix(index) % artifacts;
    let service = format!("service-{:03}", k % ARTIFACT_NAMES);
    let (role, predicate_type, predicate) = predicate(index, k, &service);
    let of_role = &signers[role];
    let signer = &of_role
        [usize::try_from(mix(index ^ 0x51_9e) % of_role.len() as u64).expect("an index below 50")];
    let payload = serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{
            "name": format!("registry.example.com/team-{:02}/{service}", k % 25),
            "digest": {"sha256": artifact_digest(k)},
        }],
        "predicateType": predicate_type,
        "predicate": predicate,
    }))
    .expect("JSON serializes");
    // Every envelope is signed for real, so records have their true size; the query path
    // never verifies signatures.
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &[&signer.key]);
    (envelope, signer)
}

/// What one builder process wrote, and what it cost.
#[derive(Default, Clone, Copy)]
struct Written {
    /// Bytes of `L` keys and leaf records.
    records: u64,
    /// Bytes of `H` and `E` keys and values.
    lookup_keys: u64,
    /// Unused (kept for the line format).
    secondary_keys: u64,
    /// Posting-list memberships.
    secondary_count: u64,
    /// Bytes of `N` keys and values.
    nodes: u64,
    /// Number of tree nodes.
    node_count: u64,
    /// Entries by role, in [`ROLES`] order.
    roles: [u64; 4],
    /// Entries signed by [`SIGNER`].
    of_signer: u64,
    /// Microseconds spent making entries (signing, encoding, hashing, facts, index keys).
    preparing_us: u64,
    /// Microseconds spent in `Store::append`.
    appending_us: u64,
    /// Peak resident memory of the builder process, KiB.
    peak_rss_kib: u64,
}

impl Written {
    /// One line of numbers, for the parent process.
    fn to_line(self) -> String {
        let mut numbers = vec![
            self.records,
            self.lookup_keys,
            self.secondary_keys,
            self.secondary_count,
            self.nodes,
            self.node_count,
        ];
        numbers.extend(self.roles);
        numbers.extend([
            self.of_signer,
            self.preparing_us,
            self.appending_us,
            self.peak_rss_kib,
        ]);
        let text: Vec<String> = numbers.iter().map(u64::to_string).collect();
        format!("{WRITTEN_TAG} {}", text.join(" "))
    }

    fn from_line(line: &str) -> Written {
        let n: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|t| t.parse().expect("a number from the builder"))
            .collect();
        assert_eq!(n.len(), 14, "the builder's summary line: {line}");
        Written {
            records: n[0],
            lookup_keys: n[1],
            secondary_keys: n[2],
            secondary_count: n[3],
            nodes: n[4],
            node_count: n[5],
            roles: [n[6], n[7], n[8], n[9]],
            of_signer: n[10],
            preparing_us: n[11],
            appending_us: n[12],
            peak_rss_kib: n[13],
        }
    }

    fn add(&mut self, o: Written) {
        self.records += o.records;
        self.lookup_keys += o.lookup_keys;
        self.secondary_keys += o.secondary_keys;
        self.secondary_count += o.secondary_count;
        self.nodes += o.nodes;
        self.node_count += o.node_count;
        for (a, b) in self.roles.iter_mut().zip(o.roles) {
            *a += b;
        }
        self.of_signer += o.of_signer;
        self.preparing_us += o.preparing_us;
        self.appending_us += o.appending_us;
        self.peak_rss_kib = self.peak_rss_kib.max(o.peak_rss_kib);
    }
}

/// Allocated bytes and file lengths of everything under `dir`.
fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut allocated, mut length) = (0, 0);
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("listing the store") {
            let entry = entry.expect("listing the store");
            let meta = entry.metadata().expect("reading file metadata");
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                allocated += meta.blocks() * 512;
                length += meta.len();
            }
        }
    }
    (allocated, length)
}

/// A memory figure of this process from `/proc/self/status` (`VmRSS`, `VmHWM`), in KiB.
fn memory_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// In a builder process: appends entries `start..end` of a log of `entries` to the store
/// in `dir`, which holds entries `0..start`, and prints a [`Written`] line on stdout.
fn build_part(dir: &Path, start: u64, end: u64, entries: u64) {
    let store = Store::open(dir).expect("opening the store");
    assert_eq!(store.size().expect("reading the size"), start);
    let mut frontier = Frontier::from_source(&store, start).expect("reading the frontier");
    let mut previous = match start.checked_sub(1) {
        None => Hash::ZERO,
        Some(last) => merkle::leaf_hash(
            &store
                .entry(last)
                .expect("reading the last entry")
                .expect("the last entry is stored"),
        ),
    };
    let signers = signers();
    let mut written = Written::default();
    let mut at = start;
    while at < end {
        let batch_end = (at + BATCH).min(end);
        let prepare = Instant::now();
        let mut batch = Vec::with_capacity(BATCH as usize);
        let mut nodes = Vec::new();
        for index in at..batch_end {
            let (envelope, signer) = attestation(index, entries, &signers);
            let statement = Statement::from_envelope(&envelope).expect("a valid Statement");
            let facts = Facts::of_attestation(&statement, std::slice::from_ref(&signer.authorized));
            for role in &facts.roles {
                if let Some(r) = ROLES.iter().position(|x| x.name == role) {
                    written.roles[r] += 1;
                }
            }
            written.of_signer += u64::from(facts.signers.iter().any(|s| s == SIGNER));
            let content_digest = facts.dedupe_key(&envelope);
            let leaf = LeafRecord::new(
                index,
                time_of(index),
                previous,
                EntryKind::Attestation,
                envelope,
            )
            .expect("the envelope fits a record");
            let bytes = leaf.encode();
            let leaf_hash = merkle::leaf_hash(&bytes);
            previous = leaf_hash;
            let new_nodes = frontier.append(leaf_hash);
            let facts = if secondary_indexes() {
                facts
            } else {
                // Only what dedupe and the kind list need.
                Facts {
                    signers: facts.signers,
                    signer_keys: facts.signer_keys,
                    ..Facts::default()
                }
            };
            let indexed = store::Indexed {
                index,
                leaf_hash,
                dedupe_key: content_digest,
                kind: EntryKind::Attestation,
                facts,
            };
            written.records += 9 + bytes.len() as u64;
            // The leaf-hash and dedupe look-ups: a 33-byte key and an 8-byte value each.
            written.lookup_keys += 2 * (33 + 8);
            written.secondary_count += indexed.postings().len() as u64;
            written.node_count += new_nodes.len() as u64;
            written.nodes += new_nodes.len() as u64 * 32;
            nodes.extend(new_nodes);
            batch.push(NewEntry {
                record: bytes,
                indexed,
            });
        }
        written.preparing_us += prepare.elapsed().as_micros() as u64;
        let append = Instant::now();
        store.append(batch, &nodes).expect("appending a batch");
        written.appending_us += append.elapsed().as_micros() as u64;
        at = batch_end;
    }
    written.peak_rss_kib = memory_kib("VmHWM");
    drop(store);
    println!("{}", written.to_line());
}

/// Builds the store of `entries` entries in `dir`, [`PART`] entries per builder process.
///
/// Each part runs in a new process that reopens the store, resumes the Merkle frontier from
/// it, appends, and exits. (When the indexes were a sled tree, a process writing through it
/// grew by 35–40 KB of resident memory per entry and could not write 1 M entries on this
/// machine; the parts, which also exercise reopening, stayed.)
fn build(dir: &Path, entries: u64) -> Store {
    let started = Instant::now();
    let mut written = Written::default();
    let mut start = 0;
    while start < entries {
        let end = (start + PART).min(entries);
        let output =
            std::process::Command::new(std::env::current_exe().expect("the benchmark's own path"))
                .env(BUILDER_VAR, format!("{start} {end}"))
                .env(BUILDER_DIR_VAR, dir)
                .env("EVIDENT_BENCH_ENTRIES", entries.to_string())
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("starting a builder process");
        assert!(
            output.status.success(),
            "the builder of {start}..{end} failed"
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with(WRITTEN_TAG))
            .expect("the builder's summary line");
        let part = Written::from_line(line);
        eprintln!(
            "  entries {start}..{end}: Store::append {:.1} s, peak memory {} MiB, {:.0} s so far",
            part.appending_us as f64 / 1e6,
            part.peak_rss_kib / 1024,
            started.elapsed().as_secs_f64()
        );
        written.add(part);
        start = end;
    }
    let opening = Instant::now();
    let store = Store::open(dir).expect("opening the store");
    let opened = opening.elapsed().as_secs_f64();
    // Where one builder took over from another, the hash chain must still hold.
    for boundary in (PART..entries).step_by(PART as usize) {
        let read = |index: u64| {
            store
                .entry(index)
                .expect("reading an entry")
                .expect("the entry is stored")
        };
        LeafRecord::decode(&read(boundary))
            .expect("a stored record decodes")
            .check_follows(Some((boundary - 1, merkle::leaf_hash(&read(boundary - 1)))))
            .expect("the hash chain holds across builder processes");
    }
    let total = started.elapsed().as_secs_f64();
    let (allocated, length) = disk_usage(dir);
    let n = entries as f64;
    let appending = written.appending_us as f64 / 1e6;
    eprintln!("query bench: built a store of {entries} entries in {total:.1} s");
    eprintln!(
        "  making the entries (sign, encode, hash, facts, index keys): {:.1} s; \
         Store::append of {} batches: {appending:.1} s ({:.0} entries/s); \
         {} builder processes, peak memory {} MiB; opening the store here: {opened:.1} s, \
         {} MiB resident",
        written.preparing_us as f64 / 1e6,
        entries.div_ceil(BATCH),
        n / appending,
        entries.div_ceil(PART),
        written.peak_rss_kib / 1024,
        memory_kib("VmRSS") / 1024,
    );
    eprintln!(
        "  on disk: {allocated} bytes allocated ({:.0} per entry), {length} bytes of files",
        allocated as f64 / n
    );
    eprintln!(
        "  written per entry: leaf record {:.0} B; H and E lookups {:.0} B; on {:.1} posting \
         lists; {:.2} tree nodes {:.0} B",
        written.records as f64 / n,
        written.lookup_keys as f64 / n,
        written.secondary_count as f64 / n,
        written.node_count as f64 / n,
        written.nodes as f64 / n,
    );
    let roles: Vec<String> = ROLES
        .iter()
        .zip(written.roles)
        .map(|(r, count)| format!("{} {count}", r.name))
        .collect();
    eprintln!(
        "  entries by role: {}; signed by {SIGNER}: {}",
        roles.join(", "),
        written.of_signer
    );
    store
}

/// Entries from `EVIDENT_BENCH_ENTRIES` (underscores allowed), or the default.
fn entries() -> u64 {
    match std::env::var("EVIDENT_BENCH_ENTRIES") {
        Ok(text) => text
            .replace('_', "")
            .parse()
            .expect("EVIDENT_BENCH_ENTRIES must be a positive whole number"),
        Err(_) => DEFAULT_ENTRIES,
    }
}

/// Whether entries get their secondary index keys: yes, unless
/// `EVIDENT_BENCH_SECONDARY_INDEXES=0`, which builds the same log without them (to compare
/// the store's size) and times no query.
fn secondary_indexes() -> bool {
    std::env::var("EVIDENT_BENCH_SECONDARY_INDEXES").map_or(true, |v| v != "0")
}

fn filters(postings: Vec<Posting>) -> Filters {
    Filters {
        postings,
        ..Filters::default()
    }
}

fn queries(c: &mut Criterion) {
    let entries = entries();
    assert!(entries > 0, "EVIDENT_BENCH_ENTRIES must be positive");
    let dir = tempfile::tempdir().expect("creating a temporary folder");
    let store = build(dir.path(), entries);
    let size = store.size().expect("reading the size");
    assert_eq!(size, entries);
    if !secondary_indexes() {
        eprintln!("query bench: built without secondary indexes, so no query is timed");
        return;
    }

    let artifacts = (entries / ATTESTATIONS_PER_ARTIFACT).max(1);
    let subject = |digest: String| Posting::Subject("sha256".into(), digest);
    let signer = Posting::Signer(SIGNER.into());
    let middle = time_of(entries / 2);
    let one_day = |postings: Vec<Posting>| Filters {
        postings,
        since: Some(middle),
        until: Some(middle + DAY_NANOS - 1),
        newest_first: false,
    };

    let by_subject = filters(vec![subject(artifact_digest(artifacts / 2))]);
    let by_signer = filters(vec![signer.clone()]);
    let by_signer_newest = Filters {
        newest_first: true,
        ..by_signer.clone()
    };
    let by_signer_and_type = filters(vec![
        signer.clone(),
        Posting::PredicateType(predicates::TEST_RESULT_V0_1.into()),
    ]);
    let releases_one_day = one_day(vec![Posting::Role("release".into())]);
    let time_only = one_day(Vec::new());
    let absent = filters(vec![subject(Hash::sha256(b"not in the log").to_hex())]);

    // The cursor of the deep page: page through the signer's list before any timing.
    let mut cursor: Option<Cursor> = None;
    let mut page_number = 1;
    while page_number < DEEP_PAGE {
        let page = query::run(&store, &by_signer, size, cursor, PAGE).expect("a query");
        match page.next {
            Some(next) => {
                cursor = Some(next);
                page_number += 1;
            }
            None => break,
        }
    }

    let cases: Vec<(&str, &Filters, Option<Cursor>)> = vec![
        ("subject_digest", &by_subject, None),
        ("signer_first_page_oldest", &by_signer, None),
        ("signer_first_page_newest", &by_signer_newest, None),
        ("signer_and_predicate_type", &by_signer_and_type, None),
        ("role_release_in_one_day", &releases_one_day, None),
        ("signer_deep_page", &by_signer, cursor),
        ("one_day_no_filter", &time_only, None),
        ("subject_digest_absent", &absent, None),
    ];
    eprintln!("query bench: {SIGNER} deep page is page {page_number}");
    for (name, f, cursor) in &cases {
        let page = query::run(&store, f, size, *cursor, PAGE).expect("a query");
        eprintln!(
            "  {name}: {} result(s), {} seeks{}",
            page.indexes.len(),
            page.seeks,
            if page.next.is_some() {
                ", more pages"
            } else {
                ""
            }
        );
    }

    let mut group = c.benchmark_group("query");
    for (name, f, cursor) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| query::run(&store, black_box(f), size, *cursor, PAGE).expect("a query"))
        });
    }
    group.bench_function("first_at_or_after", |b| {
        b.iter(|| query::first_at_or_after(&store, black_box(middle), size).expect("a search"))
    });
    group.finish();
    eprintln!(
        "query bench: resident memory after the queries: {} MiB",
        memory_kib("VmRSS") / 1024
    );
    drop(store);
    drop(dir);
}

criterion_group!(benches, queries);

/// Runs the benchmarks, or, in a builder process started by [`build`], one part of the
/// build.
fn main() {
    if let Ok(range) = std::env::var(BUILDER_VAR) {
        let dir = std::env::var_os(BUILDER_DIR_VAR).expect("the store's folder");
        let bounds: Vec<u64> = range
            .split_whitespace()
            .map(|t| t.parse().expect("a bound"))
            .collect();
        build_part(Path::new(&dir), bounds[0], bounds[1], entries());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

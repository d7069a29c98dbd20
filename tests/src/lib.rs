//! The harness of Evident's end-to-end tests: builds the real binaries once, starts
//! `evidentd` processes on `127.0.0.1:0` in temporary data folders, and runs the `evident`
//! CLI against them.

pub mod postgres;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::note::Verifier;
use evident_core::{PublicKey, SigningKey};

/// The folder the workspace's binaries are built into.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ is inside the workspace")
            .to_owned();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&workspace)
            .args([
                "build",
                "--locked",
                "-p",
                "evident-server",
                "-p",
                "evident-client",
                "-p",
                "evident-release",
                "-p",
                "evident-witness",
                "--bins",
            ])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building evidentd and evident failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        target.join("debug")
    })
}

/// Path of the `evidentd` binary.
pub fn evidentd_bin() -> PathBuf {
    bin_dir().join("evidentd")
}

/// Path of the `evident` binary.
pub fn evident_bin() -> PathBuf {
    bin_dir().join("evident")
}

/// Path of the `evident-witness` binary (a C2SP tlog-witness).
pub fn evident_witness_bin() -> PathBuf {
    bin_dir().join("evident-witness")
}

/// Path of the `evident-release` binary (the evidence of Evident's own release builds).
pub fn evident_release_bin() -> PathBuf {
    bin_dir().join("evident-release")
}

/// A deterministic signing key: seed byte `n` repeated.
pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// The public half of [`key`].
pub fn public(n: u8) -> PublicKey {
    PublicKey::from_signing_key(&key(n))
}

/// An in-toto test-result Statement about `name` with digest `sha256`, made unique by
/// `nonce`.
pub fn statement(name: &str, sha256: &str, nonce: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": sha256}}],
        "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
        "predicate": {"result": "PASSED", "passedTests": ["unit"], "run": nonce},
    }))
    .expect("JSON serializes")
}

/// A signed attestation envelope, unique per `nonce`.
pub fn envelope(signer: &SigningKey, nonce: u64) -> Envelope {
    Envelope::sign(
        IN_TOTO_PAYLOAD_TYPE,
        statement(
            "payments-api",
            "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195",
            nonce,
        ),
        &[signer],
    )
}

/// A running `evidentd` process.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The log's verifier key.
    pub log_key: Verifier,
    /// The data folder.
    pub data_dir: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// `http://127.0.0.1:PORT/metrics`, when the config sets `metrics_listen`.
    pub metrics_url: Option<String>,
    /// `http://127.0.0.1:PORT`, the tlog-tiles listener, when the config sets `[tiles]
    /// listen`.
    pub tiles_url: Option<String>,
    stderr_log: PathBuf,
}

/// Seed byte of the genesis administrator key of every test log.
pub const ADMIN: u8 = 200;

/// The `[store]` section of a new test server's config in this run of the suite: none
/// (the files in `data_dir`) unless `EVIDENT_TEST_STORE=postgres`, then a fresh database
/// of its own in this run's PostgreSQL server ([`postgres::fresh_database`]).
pub fn store_config() -> String {
    match std::env::var("EVIDENT_TEST_STORE").as_deref() {
        Err(_) | Ok("" | "files") => String::new(),
        Ok("postgres") => format!(
            "[store]\nbackend = \"postgres\"\nurl = {:?}\n",
            postgres::fresh_database()
        ),
        Ok(other) => panic!("EVIDENT_TEST_STORE={other:?}: use files or postgres"),
    }
}

/// Writes a config whose genesis administrator is [`ADMIN`]; the seed keys `signers` are
/// registered (identities `signer-N@test`, role `ci`, any predicate type) by
/// [`Server::start`] when it starts the log for the first time. The store is this run's
/// ([`store_config`]) unless `extra` has a `[store]` of its own.
pub fn write_config(dir: &Path, data_dir: &Path, signers: &[u8], extra: &str) -> PathBuf {
    // Plaintext on loopback unless the test sets up TLS itself.
    let tls = if extra.contains("[tls]") {
        ""
    } else {
        "[tls]\nplaintext = true\n"
    };
    let store = if extra.contains("[store]") {
        String::new()
    } else {
        store_config()
    };
    let text = format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\norigin = \"evident.test/log\"\n{extra}\n\
         {store}[genesis]\n[[genesis.admin]]\nidentity = \"admin@test\"\npublic_key = \"{}\"\n{tls}",
        data_dir.display().to_string(),
        public(ADMIN).to_hex()
    );
    let path = dir.join("evidentd.toml");
    std::fs::write(&path, text).expect("writing the config");
    write_private(
        &admin_key_file(dir),
        &format!("{}\n", hex::encode([ADMIN; 32])),
    );
    let list: Vec<String> = signers.iter().map(u8::to_string).collect();
    std::fs::write(path.with_extension("signers"), list.join(" "))
        .expect("writing the signer list");
    path
}

/// The file holding [`ADMIN`]'s signing key, beside the config.
pub fn admin_key_file(dir: &Path) -> PathBuf {
    dir.join("admin.key")
}

impl Server {
    /// Starts `evidentd --config CONFIG` and waits until it listens.
    pub fn start(config: &Path, data_dir: &Path) -> Result<Server, String> {
        let stderr_log = data_dir.with_extension(format!(
            "stderr.{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time after 1970")
                .as_nanos()
        ));
        let stderr = std::fs::File::create(&stderr_log).expect("creating the stderr log");
        let mut child = Command::new(evidentd_bin())
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting evidentd");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut log_key = None;
        let mut entries = None;
        loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.wait();
                return Err(std::fs::read_to_string(&stderr_log).unwrap_or_default());
            };
            if let Some(k) = line.strip_prefix("log verifier key: ") {
                log_key = Some(Verifier::parse(k).expect("a verifier key"));
            }
            if let Some(n) = line.strip_prefix("entries: ") {
                entries = n.parse::<u64>().ok();
            }
            if let Some(addr) = line.strip_prefix("listening on ") {
                // With metrics configured, the next line is their address; with tiles, the
                // line after that is theirs.
                let text = std::fs::read_to_string(config).unwrap_or_default();
                let metrics_url = text
                    .contains("metrics_listen")
                    .then(|| lines.next())
                    .flatten()
                    .and_then(Result::ok)
                    .and_then(|l| l.strip_prefix("metrics on ").map(str::to_owned));
                let tiles_url = text
                    .contains("[tiles]")
                    .then(|| lines.next())
                    .flatten()
                    .and_then(Result::ok)
                    .and_then(|l| l.strip_prefix("tiles on ").map(str::to_owned));
                // Keep draining stdout so the server never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines.by_ref() {});
                let server = Server {
                    child: Some(child),
                    url: format!("http://{addr}"),
                    log_key: log_key.expect("the key is printed before the address"),
                    data_dir: data_dir.to_owned(),
                    config: config.to_owned(),
                    metrics_url,
                    tiles_url,
                    stderr_log,
                };
                if entries == Some(0) {
                    server.register_listed_signers();
                }
                return Ok(server);
            }
        }
    }

    /// Registers the signers `write_config` listed, through the real CLI.
    fn register_listed_signers(&self) {
        let list =
            std::fs::read_to_string(self.config.with_extension("signers")).unwrap_or_default();
        for n in list.split_whitespace() {
            let n: u8 = n.parse().expect("a seed byte");
            self.register(n, &["ci"], &["*"]);
        }
    }

    /// Registers seed key `n` as `signer-N@test` with roles and predicate types, signed by
    /// [`ADMIN`], through the real CLI. Panics if the CLI fails.
    pub fn register(&self, n: u8, roles: &[&str], predicate_types: &[&str]) {
        let dir = self.config.parent().expect("the config is in a folder");
        let identity = format!("signer-{n}@test");
        let public_key = public(n).to_hex();
        let admin = admin_key_file(dir).display().to_string();
        let mut args = vec![
            "signer",
            "add",
            "--identity",
            &identity,
            "--public-key",
            &public_key,
            "--admin-key",
            &admin,
        ];
        for r in roles {
            args.extend(["--role", r]);
        }
        for p in predicate_types {
            args.extend(["--predicate-type", p]);
        }
        let out = cli(dir, Some(self), &args);
        assert!(
            out.status.success(),
            "registering signer {n}: {}",
            stderr(&out)
        );
    }

    /// Connects the client library.
    pub async fn client(&self) -> evident_client::Client {
        evident_client::Client::connect(&self.url)
            .await
            .expect("connecting to evidentd")
    }

    /// The current tree size, from a verified checkpoint.
    pub async fn size(&self) -> u64 {
        let note = self.client().await.checkpoint().await.expect("checkpoint");
        evident_core::note::Checkpoint::verify(&note, &self.log_key)
            .expect("checkpoint verifies")
            .size
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaping evidentd");
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("sending SIGTERM");
        for _ in 0..200 {
            if let Some(status) = child.try_wait().expect("polling evidentd") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().expect("SIGKILL after a stuck shutdown");
        panic!("evidentd did not stop within 10 s of SIGTERM");
    }

    /// What the server wrote to stderr.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the `evident` CLI in `dir` against `server`, with its log key pinned and its state
/// file in `dir`.
pub fn cli(dir: &Path, server: Option<&Server>, args: &[&str]) -> Output {
    let mut command = Command::new(evident_bin());
    command
        .current_dir(dir)
        .args(args)
        .env("EVIDENT_STATE", dir.join("state.json"))
        .env_remove("EVIDENT_SERVER")
        .env_remove("EVIDENT_LOG_KEY");
    if let Some(server) = server {
        command
            .env("EVIDENT_SERVER", &server.url)
            .env("EVIDENT_LOG_KEY", server.log_key.to_string());
    }
    command.output().expect("running evident")
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Copies a folder tree (a stopped server's data folder, say).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating the copy");
    for entry in std::fs::read_dir(from).expect("listing the folder") {
        let entry = entry.expect("listing the folder");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copying a file");
        }
    }
}

/// Copies a stopped server's store into a second one, the start of a fork of its log: the
/// data folder `data` into `to` and, on PostgreSQL, the database of `config` into a new
/// one. Returns the `[store]` section of the copy, for [`write_config`]'s `extra` (empty on
/// files).
pub fn copy_store(config: &Path, data: &Path, to: &Path) -> String {
    copy_dir(data, to);
    match postgres::url_of_config(config) {
        None => String::new(),
        Some(url) => format!(
            "[store]\nbackend = \"postgres\"\nurl = {:?}\n",
            postgres::copy_database(&url)
        ),
    }
}

/// A certificate authority made for a test (rcgen), that can issue certificates.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// Its certificate, PEM.
    pub pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A new CA named `name`.
pub fn test_ca(name: &str) -> TestCa {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().expect("a key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).expect("a CA certificate");
    TestCa {
        issuer: rcgen::Issuer::new(params, key),
        pem: cert.pem(),
    }
}

/// A certificate for `common_name` (and subject alternative names `sans`) issued by `ca`:
/// (certificate PEM, key PEM).
pub fn issue_cert(ca: &TestCa, common_name: &str, sans: &[&str]) -> (String, String) {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let key = KeyPair::generate().expect("a key");
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("certificate parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let cert = params.signed_by(&key, &ca.issuer).expect("a certificate");
    (cert.pem(), key.serialize_pem())
}

/// Writes a secret file, mode 0600.
pub fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("writing a secret file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .expect("setting its mode");
    }
}

/// Where entry `index`'s frame is in a stopped server's log files (docs/FORMAT.md, "The
/// log's files"): the segment file and the frame's byte offset in it.
pub fn frame_of(data_dir: &Path, index: u64) -> (PathBuf, u64) {
    let segments = data_dir.join("log").join("segments");
    let first = std::fs::read_dir(&segments)
        .expect("listing the segments")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".seg")?.parse::<u64>().ok()
        })
        .filter(|&first| first <= index)
        .max()
        .expect("a segment holds the entry");
    let offsets = std::fs::read(segments.join(format!("{first:020}.idx"))).expect("the offsets");
    let at = usize::try_from(8 * (index - first)).expect("a small log");
    let offset = u64::from_be_bytes(offsets[at..at + 8].try_into().expect("8 bytes"));
    (segments.join(format!("{first:020}.seg")), offset)
}

/// Flips one byte of entry `index`'s record in a stopped server's log, as a disk would:
/// the frame's checksum no longer matches.
pub fn rot_record_byte(data_dir: &Path, index: u64) {
    let (path, offset) = frame_of(data_dir, index);
    let mut bytes = std::fs::read(&path).expect("reading the segment");
    let at = usize::try_from(offset).expect("a small log") + 8 + 100;
    bytes[at] ^= 0x01;
    std::fs::write(&path, bytes).expect("writing the segment");
}

/// Bypasses the ledger: flips one byte inside entry `index`'s payload in a stopped server's
/// log and rewrites the frame's checksum, as someone editing the files would. The payload
/// of the harness's envelopes starts at byte 88 of the record (a 54-byte header, then the
/// payload type's 2 + 28 bytes and the payload's 4-byte length); byte 100 is inside the
/// JSON Statement.
pub fn flip_payload_byte(data_dir: &Path, index: u64) {
    let (path, offset) = frame_of(data_dir, index);
    let mut bytes = std::fs::read(&path).expect("reading the segment");
    let frame = usize::try_from(offset).expect("a small log");
    let len = u32::from_be_bytes(bytes[frame..frame + 4].try_into().expect("4 bytes")) as usize;
    let record = frame + 8;
    assert_eq!(bytes[record + 88], b'{', "the payload is a JSON Statement");
    bytes[record + 100] ^= 0x01;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[frame..frame + 4]);
    crc.update(&bytes[record..record + len]);
    bytes[frame + 4..frame + 8].copy_from_slice(&crc.finalize().to_be_bytes());
    std::fs::write(&path, bytes).expect("writing the segment");
}

/// Runs an offline `evidentd` command (`verify-store`, `reindex`, `migrate`, …) with
/// `--config CONFIG`, off the async workers.
pub fn evidentd_offline(config: &Path, args: &[&str]) -> Output {
    let run = || {
        Command::new(evidentd_bin())
            .arg("--config")
            .arg(config)
            .args(args)
            .output()
            .expect("running evidentd")
    };
    match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::block_in_place(run),
        Err(_) => run(),
    }
}

/// The frames of a request body that [`half_sent_call`] leaves open.
pub type OpenBody =
    tokio::sync::mpsc::Sender<Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>>;

/// Calls `method` (e.g. `Submit`) of the ledger service at `url` without credentials, with
/// a body whose first gRPC message announces 60 KiB (within every limit) but sends 16 KiB
/// and then nothing. A server that reads the body before checking credentials never
/// answers. Returns the status of the answer (which must arrive within 20 s) and the body's
/// sender, still open: drop it only after the answer was checked.
pub async fn half_sent_call(url: &str, method: &str) -> (tonic::Status, OpenBody) {
    let mut channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("a server URL")
        .connect()
        .await
        .expect("connecting");
    let (frames, rx) = tokio::sync::mpsc::channel(4);
    let mut first = vec![0u8];
    first.extend_from_slice(&(60u32 * 1024).to_be_bytes());
    first.extend(std::iter::repeat_n(0x0a, 16 * 1024));
    frames
        .send(Ok(http_body::Frame::data(bytes::Bytes::from(first))))
        .await
        .expect("the body is open");
    let body = tonic::body::Body::new(http_body_util::StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let request = http::Request::post(format!("{url}/evident.v1.Ledger/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .expect("a request");
    std::future::poll_fn(|cx| tonic::client::GrpcService::poll_ready(&mut channel, cx))
        .await
        .expect("the channel is ready");
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        tonic::client::GrpcService::call(&mut channel, request),
    )
    .await
    .expect("the refusal arrives while the body is still unfinished")
    .expect("an answer");
    let status = tonic::Status::from_header_map(answer.headers())
        .expect("a trailers-only answer carries the status in its headers");
    (status, frames)
}

/// One record of the indexes' run files (docs/FORMAT.md section 7.9): a 16-byte key and a
/// value.
pub type IndexRecord = ([u8; 16], u64);

/// The key of a posting list's records: `L`, then the first 15 bytes of SHA-256 of the
/// list's name (a tag byte, then each part followed by a NUL byte).
pub fn index_list_key(name: &[u8]) -> [u8; 16] {
    let digest = evident_core::Hash::sha256(name);
    let mut key = [b'L'; 16];
    key[1..].copy_from_slice(&digest.as_bytes()[..15]);
    key
}

/// The key of entry `index`'s signer-set record.
pub fn index_signers_key(index: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[0] = b'F';
    key[1..9].copy_from_slice(&index.to_be_bytes());
    key
}

/// The run files of a stopped server's indexes, by name.
fn index_runs(data: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(data.join("indexes"))
        .expect("the indexes folder")
        .map(|e| e.expect("a folder entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("run-") && !n.ends_with(".tmp"))
        })
        .collect();
    runs.sort();
    runs
}

/// Every record of the index run file at `path`, read as docs/FORMAT.md section 7.9 says,
/// with the run's `lo` and `hi`.
fn read_index_run(path: &Path) -> (u64, u64, u32, Vec<IndexRecord>) {
    let bytes = std::fs::read(path).expect("a run file");
    let word =
        |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("a fixed-size field"));
    let end = bytes.len();
    assert_eq!(&bytes[end - 48..end - 40], b"EVIDRUN1");
    let (lo, hi, blocks) = (word(end - 40), word(end - 32), word(end - 16) as usize);
    let catalog_len = u32::from_be_bytes(
        bytes[end - 8..end - 4]
            .try_into()
            .expect("a fixed-size field"),
    );
    let mut records = Vec::new();
    for block in bytes[..blocks * 4096].chunks_exact(4096) {
        let crc = u32::from_be_bytes(block[4092..].try_into().expect("a fixed-size field"));
        assert_eq!(crc32fast::hash(&block[..4092]), crc, "{}", path.display());
        let n = u16::from_be_bytes([block[0], block[1]]) as usize;
        for r in block[2..2 + n * 24].chunks_exact(24) {
            records.push((
                r[..16].try_into().expect("a fixed-size field"),
                u64::from_be_bytes(r[16..].try_into().expect("a fixed-size field")),
            ));
        }
    }
    (lo, hi, catalog_len, records)
}

/// Writes `records` (sorted here) as the index run file at `path`, checksums and all.
fn write_index_run(path: &Path, lo: u64, hi: u64, catalog_len: u32, mut records: Vec<IndexRecord>) {
    records.sort();
    let mut out = Vec::new();
    let mut fences = Vec::new();
    for chunk in records.chunks(170) {
        let mut block = vec![0u8; 4096];
        block[..2].copy_from_slice(&(chunk.len() as u16).to_be_bytes());
        for (i, (key, value)) in chunk.iter().enumerate() {
            block[2 + i * 24..18 + i * 24].copy_from_slice(key);
            block[18 + i * 24..26 + i * 24].copy_from_slice(&value.to_be_bytes());
        }
        let crc = crc32fast::hash(&block[..4092]);
        block[4092..].copy_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&block);
        fences.push(chunk[0]);
    }
    let tail_start = out.len();
    for (key, value) in &fences {
        out.extend_from_slice(key);
        out.extend_from_slice(&value.to_be_bytes());
    }
    out.extend_from_slice(b"EVIDRUN1");
    for word in [lo, hi, records.len() as u64, fences.len() as u64] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(&catalog_len.to_be_bytes());
    let crc = crc32fast::hash(&out[tail_start..]);
    out.extend_from_slice(&crc.to_be_bytes());
    std::fs::write(path, out).expect("writing a run file");
}

/// Edits every record of a stopped server's indexes, run by run, as someone with write
/// access to the data folder could, keeping every checksum valid.
pub fn edit_index_records(data: &Path, mut edit: impl FnMut(&mut Vec<IndexRecord>)) {
    for path in index_runs(data) {
        let (lo, hi, catalog_len, mut records) = read_index_run(&path);
        edit(&mut records);
        write_index_run(&path, lo, hi, catalog_len, records);
    }
}

/// Every record of a stopped server's indexes.
pub fn index_records(data: &Path) -> Vec<IndexRecord> {
    index_runs(data)
        .iter()
        .flat_map(|p| read_index_run(p).3)
        .collect()
}

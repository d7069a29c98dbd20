//! A real log (Merkle tree + note signer), a witness on 127.0.0.1:0 (in process through
//! `run`, or the real binary), and a raw HTTP/1.1 client over TCP.

#![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use evident_core::cosign::{Cosigner, CosignerKey, add_signature_lines};
use evident_core::merkle::{MemoryTree, consistency_proof, leaf_hash};
use evident_core::note::{Checkpoint, Note, Signer};
use evident_core::{Hash, SigningKey};
use evident_witness::Config;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

pub const ORIGIN: &str = "log.example/evident-test";

/// A log: a tree and the key that signs its checkpoints.
pub struct TestLog {
    pub signer: Signer,
    pub tree: MemoryTree,
    pub origin: String,
}

impl TestLog {
    pub fn new(origin: &str, seed: u8) -> TestLog {
        TestLog {
            signer: Signer::new(origin, SigningKey::from_bytes(&[seed; 32])).unwrap(),
            tree: MemoryTree::new(),
            origin: origin.to_owned(),
        }
    }

    pub fn grow(&mut self, n: u64) {
        for _ in 0..n {
            let i = self.tree.size();
            self.tree.push(leaf_hash(format!("entry {i}").as_bytes()));
        }
    }

    pub fn grow_to(&mut self, size: u64) {
        let n = size - self.tree.size();
        self.grow(n);
    }

    pub fn checkpoint_at(&self, size: u64) -> Checkpoint {
        let root = if size == self.tree.size() {
            self.tree.root()
        } else {
            evident_core::merkle::root(&self.tree, size).unwrap()
        };
        Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
            extensions: vec![],
        }
    }

    /// The signed checkpoint of the first `size` entries.
    pub fn note_at(&self, size: u64) -> String {
        self.checkpoint_at(size).sign(&self.signer).unwrap()
    }

    pub fn note(&self) -> String {
        self.note_at(self.tree.size())
    }

    pub fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        if old == 0 || old == new {
            return vec![];
        }
        consistency_proof(&self.tree, old, new).unwrap()
    }

    /// The request body from `old` to `new` with a correct proof.
    pub fn body(&self, old: u64, new: u64) -> String {
        body(old, &self.proof(old, new), &self.note_at(new))
    }

    pub fn verifier_text(&self) -> String {
        self.signer.verifier().to_string()
    }
}

pub fn body(old: u64, proof: &[Hash], note: &str) -> String {
    let mut out = format!("old {old}\n");
    for h in proof {
        out.push_str(&h.to_base64());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(note);
    out
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// One request on a fresh connection (`Connection: close`), read to the end.
pub async fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: witness\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    parse_reply(&raw)
}

pub fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut content_type = String::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        if name.eq_ignore_ascii_case("content-type") {
            content_type = value.trim().to_owned();
        }
    }
    Reply {
        status,
        content_type,
        body: body.to_owned(),
    }
}

pub async fn add(addr: SocketAddr, body: &str) -> Reply {
    request(addr, "POST", "/add-checkpoint", body.as_bytes()).await
}

pub fn origin_path(origin: &str) -> String {
    format!("/{}/checkpoint", Hash::sha256(origin.as_bytes()).to_hex())
}

/// Checks that `lines` (an add-checkpoint answer) hold a valid cosignature by `key` on
/// `note`, and returns the cosigned note.
pub fn check_cosigned(key: &CosignerKey, note: &str, lines: &str) -> String {
    assert!(
        lines.starts_with('\u{2014}') && lines.ends_with('\n'),
        "{lines:?}"
    );
    let cosigned = add_signature_lines(note, lines).unwrap();
    let parsed = Note::parse(&cosigned).unwrap();
    let checkpoint = Checkpoint::parse_body(&parsed.text).unwrap();
    let found = key
        .verify_note(&parsed, &checkpoint)
        .unwrap()
        .expect("a cosignature");
    assert!(found.timestamp > 1_600_000_000, "{found:?}");
    cosigned
}

/// A witness's files: its key, state directory and configuration.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub cosigner: Cosigner,
    pub config_path: PathBuf,
}

impl Setup {
    pub fn new(cosigner: Cosigner, logs: &[&TestLog]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("witness.key"), cosigner.to_private_text()).unwrap();
        let mut config = String::from(
            "listen = \"127.0.0.1:0\"\nkey_file = \"witness.key\"\nstate_dir = \"state\"\n",
        );
        for log in logs {
            config.push_str(&format!(
                "\n[[log]]\norigin = \"{}\"\nkey = \"{}\"\n",
                log.origin,
                log.verifier_text()
            ));
        }
        let config_path = dir.path().join("witness.toml");
        std::fs::write(&config_path, config).unwrap();
        Setup {
            dir,
            cosigner,
            config_path,
        }
    }

    pub fn ed25519(logs: &[&TestLog]) -> Setup {
        Setup::new(
            Cosigner::ed25519("witness.example/w1", SigningKey::from_bytes(&[42; 32])).unwrap(),
            logs,
        )
    }

    pub fn key(&self) -> CosignerKey {
        self.cosigner.key().clone()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path).unwrap()
    }
}

/// A witness served in this process by `evident_witness::run`.
pub struct InProcess {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl InProcess {
    pub async fn start(setup: &Setup) -> InProcess {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = setup.config();
        let task = tokio::spawn(async move {
            evident_witness::run(listener, config, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        InProcess {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// The real binary, `serve`d on 127.0.0.1:0.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_evident-witness")
}

impl Process {
    pub fn start(config: &Path) -> Process {
        let mut command = Command::new(binary());
        command
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"]);
        Process::spawn(command)
    }

    /// Starts `command` (a `serve`) and reads the address from its first line.
    pub fn spawn(mut command: Command) -> Process {
        let mut child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {line:?}"))
            .parse()
            .unwrap();
        Process { child, addr }
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

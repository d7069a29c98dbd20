//! Proven populations: an answer for one list and a period proves that nothing was left
//! out. A proxy between the real server and the real CLI rewrites answers — an entry
//! removed, moved or added, a period's bound moved, the proof dropped — and the CLI refuses
//! each; a log that signs a wrong index root is caught by `evident audit` and `evident
//! monitor`.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use evident_core::note::{Checkpoint, Signer};
use evident_proto::v1 as pb;
use evident_proto::v1::ledger_client::LedgerClient;
use evident_proto::v1::ledger_server::{Ledger, LedgerServer};
use evident_tests::{Server, evident_bin, stderr, stdout, write_config};
use serde_json::json;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::gate::attest;

const RELEASE: &str = "https://in-toto.io/attestation/release/v0.1";
const TEST: &str = "https://in-toto.io/attestation/test-result/v0.1";

/// What the proxy does to an answer on its way to the client.
type Rewrite = Arc<dyn Fn(&mut pb::QueryResponse) + Send + Sync>;
/// What the proxy does to a checkpoint note on its way to the client.
type Resign = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// A gRPC server that forwards every call to the real one and rewrites what comes back.
#[derive(Clone)]
struct Proxy {
    upstream: LedgerClient<Channel>,
    query: Option<Rewrite>,
    note: Option<Resign>,
}

impl Proxy {
    fn up(&self) -> LedgerClient<Channel> {
        self.upstream.clone()
    }

    fn note(&self, note: &mut String) {
        if let Some(resign) = &self.note {
            if !note.is_empty() {
                *note = resign(note);
            }
        }
    }
}

#[tonic::async_trait]
impl Ledger for Proxy {
    type SubmitStreamStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::SubmitStreamResponse, Status>>;

    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        self.up().submit(request.into_inner()).await
    }

    async fn submit_batch(
        &self,
        request: Request<pb::SubmitBatchRequest>,
    ) -> Result<Response<pb::SubmitBatchResponse>, Status> {
        self.up().submit_batch(request.into_inner()).await
    }

    async fn list_signers(
        &self,
        request: Request<pb::ListSignersRequest>,
    ) -> Result<Response<pb::ListSignersResponse>, Status> {
        self.up().list_signers(request.into_inner()).await
    }

    async fn get_signer_history(
        &self,
        request: Request<pb::GetSignerHistoryRequest>,
    ) -> Result<Response<pb::GetSignerHistoryResponse>, Status> {
        self.up().get_signer_history(request.into_inner()).await
    }

    async fn list_policies(
        &self,
        request: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesResponse>, Status> {
        self.up().list_policies(request.into_inner()).await
    }

    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::GetPolicyResponse>, Status> {
        self.up().get_policy(request.into_inner()).await
    }

    async fn get_release_evidence(
        &self,
        request: Request<pb::GetReleaseEvidenceRequest>,
    ) -> Result<Response<pb::GetReleaseEvidenceResponse>, Status> {
        self.up().get_release_evidence(request.into_inner()).await
    }

    async fn verify_release(
        &self,
        request: Request<pb::VerifyReleaseRequest>,
    ) -> Result<Response<pb::VerifyReleaseResponse>, Status> {
        self.up().verify_release(request.into_inner()).await
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::GetEntryResponse>, Status> {
        self.up().get_entry(request.into_inner()).await
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        self.up().get_inclusion_proof(request.into_inner()).await
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        self.up().get_consistency_proof(request.into_inner()).await
    }

    async fn submit_stream(
        &self,
        _request: Request<tonic::Streaming<pb::SubmitStreamRequest>>,
    ) -> Result<Response<Self::SubmitStreamStream>, Status> {
        Err(Status::unimplemented("not through this proxy"))
    }

    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let mut answer = self.up().query(request.into_inner()).await?.into_inner();
        if let Some(rewrite) = &self.query {
            rewrite(&mut answer);
        }
        self.note(&mut answer.checkpoint);
        Ok(Response::new(answer))
    }

    async fn get_entries(
        &self,
        request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        let mut answer = self
            .up()
            .get_entries(request.into_inner())
            .await?
            .into_inner();
        self.note(&mut answer.checkpoint);
        Ok(Response::new(answer))
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let mut answer = self
            .up()
            .get_checkpoint(request.into_inner())
            .await?
            .into_inner();
        self.note(&mut answer.checkpoint);
        Ok(Response::new(answer))
    }
}

/// Starts a proxy in front of `server`; returns its URL.
async fn proxy(server: &Server, query: Option<Rewrite>, note: Option<Resign>) -> String {
    let upstream = LedgerClient::connect(server.url.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Proxy {
        upstream,
        query,
        note,
    };
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(LedgerServer::new(service))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    format!("http://{addr}")
}

/// Runs the CLI against `url` with `server`'s log key pinned, its state file in `dir`.
fn cli_via(dir: &Path, url: &str, server: &Server, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| {
        Command::new(evident_bin())
            .current_dir(dir)
            .args(args)
            .env("EVIDENT_STATE", dir.join("state.json"))
            .env("EVIDENT_SERVER", url)
            .env("EVIDENT_LOG_KEY", server.log_key.to_string())
            .output()
            .expect("running evident")
    })
}

fn artifact(n: u32) -> serde_json::Value {
    json!({"name": format!("payments-{n}"), "digest": {"sha256": evident_core::Hash::sha256(&n.to_be_bytes()).to_hex()}})
}

/// Signers 1 (ci) and 3 (release); six releases of `payments`, 1.0.0 to 1.0.5, with a test
/// result before each and a release of `ledger` among them. Returns the server and the
/// integrated time of each payments release, in order.
async fn releases(dir: &Path) -> (Server, Vec<i64>) {
    let data = dir.join("data");
    let server = Server::start(&write_config(dir, &data, &[], ""), &data).unwrap();
    tokio::task::block_in_place(|| {
        server.register(1, &["ci"], &[TEST]);
        server.register(3, &["release"], &[RELEASE]);
    });
    let mut times = Vec::new();
    let mut client = server.client().await;
    for n in 0..6u32 {
        attest(
            &server,
            1,
            artifact(n),
            TEST,
            json!({"result": "PASSED", "n": n}),
        )
        .await;
        attest(
            &server,
            3,
            artifact(n),
            RELEASE,
            json!({"purl": format!("pkg:generic/payments@1.0.{n}")}),
        )
        .await;
        if n == 2 {
            attest(
                &server,
                3,
                artifact(100),
                RELEASE,
                json!({"purl": "pkg:generic/ledger@2.0.0"}),
            )
            .await;
        }
        let size = server.size().await;
        let entry = client
            .entry(evident_client::Selector::Index(size - 1), None)
            .await
            .unwrap();
        times.push(entry.record.integrated_time_nanos());
        // Distinct times, so that a period can start exactly at a release.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    (server, times)
}

fn refused(out: &Output, words: &str) {
    assert!(
        !out.status.success(),
        "a tampered answer was accepted: {}{}",
        stdout(out),
        stderr(out)
    );
    assert!(stderr(out).contains(words), "{}", stderr(out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_period_of_releases_is_proven_complete_and_a_rewritten_answer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, times) = releases(d).await;
    let rfc = |t: i64| {
        chrono::DateTime::from_timestamp_nanos(t)
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    };
    // Releases 1.0.1 to 1.0.4: the period starts exactly at 1.0.1 and ends exactly at 1.0.4.
    let (since, until) = (rfc(times[1]), rfc(times[4]));
    let args = [
        "query",
        "--release",
        "payments",
        "--since",
        &since,
        "--until",
        &until,
        "--verify",
        "--format",
        "json",
    ];
    let honest = proxy(&server, None, None).await;
    let out = cli_via(d, &honest, &server, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["complete"], true, "{answer}");
    assert_eq!(answer["total"], 4, "{answer}");
    let got: Vec<u64> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(got.len(), 4);
    assert!(
        answer["completeness"]
            .as_str()
            .unwrap()
            .starts_with("complete: proven against the checkpoint of"),
        "{answer}"
    );
    // The human line says so too.
    let out = cli_via(d, &honest, &server, &args[..8]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("4 result(s) at tree size")
            && stderr(&out).contains("complete: proven against the checkpoint of"),
        "{}",
        stderr(&out)
    );

    // The release population of the period, proven complete; without the name, every
    // release attestation (the ledger release inside the period too).
    for (name, count) in [(Some("payments"), 4), (None, 5)] {
        let mut args = vec!["releases", "--since", &since, "--until", &until, "--verify"];
        if let Some(name) = name {
            args.extend(["--name", name]);
        }
        let out = cli_via(d, &honest, &server, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("complete: proven against the checkpoint of"),
            "{}",
            stderr(&out)
        );
        assert_eq!(stdout(&out).lines().count(), count, "{}", stdout(&out));
        args.extend(["--format", "json"]);
        let out = cli_via(d, &honest, &server, &args);
        let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(listed["complete"], true, "{listed}");
        let dropping = proxy(
            &server,
            Some(Arc::new(|a: &mut pb::QueryResponse| {
                a.results.pop();
            })),
            None,
        )
        .await;
        let out = cli_via(d, &dropping, &server, &args);
        refused(&out, "left out");
    }

    let cases: Vec<(&str, Rewrite, &str)> = vec![
        (
            "an entry removed from the results",
            Arc::new(|a: &mut pb::QueryResponse| {
                a.results.remove(1);
            }),
            "left out",
        ),
        (
            "two entries swapped",
            Arc::new(|a: &mut pb::QueryResponse| a.results.swap(0, 1)),
            "is not the proven one",
        ),
        (
            "an entry added (a second copy of the first)",
            Arc::new(|a: &mut pb::QueryResponse| {
                let extra = a.results[0].clone();
                a.results.push(extra);
            }),
            "more results than the proof",
        ),
        (
            "an entry removed from the results and from the proof",
            Arc::new(|a: &mut pb::QueryResponse| {
                a.results.remove(1);
                let proof = a.index_proof.as_mut().unwrap();
                proof.elements.remove(2);
            }),
            "not proven complete",
        ),
        (
            "the period's start moved by one entry",
            Arc::new(|a: &mut pb::QueryResponse| {
                let proof = a.index_proof.as_mut().unwrap();
                proof.since.as_mut().unwrap().index += 1;
            }),
            "not proven complete",
        ),
        (
            "the proof left out",
            Arc::new(|a: &mut pb::QueryResponse| a.index_proof = None),
            "no proof that the answer is complete",
        ),
        (
            "the proof of another list",
            Arc::new(|a: &mut pb::QueryResponse| {
                a.index_proof.as_mut().unwrap().key = b"Wledger\0".to_vec();
            }),
            "another list",
        ),
    ];
    for (what, rewrite, words) in cases {
        let url = proxy(&server, Some(rewrite), None).await;
        let out = cli_via(d, &url, &server, &args);
        eprintln!("{what}: {}", stderr(&out));
        refused(&out, words);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attestation_about_an_artifact_and_everything_a_key_signed_are_proven_complete() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, _) = releases(d).await;
    let honest = proxy(&server, None, None).await;
    let subject = format!(
        "sha256:{}",
        evident_core::Hash::sha256(&2u32.to_be_bytes()).to_hex()
    );
    for (args, total) in [
        (vec!["query", "--subject", subject.as_str()], 2),
        (vec!["query", "--signer", "signer-3@test"], 7),
        (
            vec!["query", "--signer", "signer-3@test", "--newest-first"],
            7,
        ),
        (vec!["query", "--kind", "registry"], 2),
        (vec!["query", "--subject-name", "nobody"], 0),
    ] {
        let mut args = args.clone();
        args.extend(["--verify", "--format", "json"]);
        let out = cli_via(d, &honest, &server, &args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(answer["complete"], true, "{args:?}: {answer}");
        assert_eq!(answer["total"], total, "{args:?}: {answer}");
        assert_eq!(
            answer["results"].as_array().unwrap().len(),
            total,
            "{answer}"
        );
    }
    // Two filters: each result is proven, completeness is not claimed.
    let out = cli_via(
        d,
        &honest,
        &server,
        &[
            "query",
            "--signer",
            "signer-3@test",
            "--kind",
            "attestation",
            "--verify",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("completeness not proven"),
        "{}",
        stderr(&out)
    );
    // An empty answer whose proof is swapped for a non-empty list's is refused too.
    let url = proxy(
        &server,
        Some(Arc::new(|a: &mut pb::QueryResponse| {
            let proof = a.index_proof.as_mut().unwrap();
            proof.map.as_mut().unwrap().siblings.clear();
        })),
        None,
    )
    .await;
    let out = cli_via(
        d,
        &url,
        &server,
        &["query", "--signer", "signer-3@test", "--verify"],
    );
    refused(&out, "not proven complete");
}

/// The checkpoint note with its index line replaced and signed again with the log's key:
/// what a log that lies about its index would serve.
fn wrong_index_root(signer: &Signer, note: &str) -> String {
    let body = note.split("\n\n").next().unwrap();
    let mut checkpoint = Checkpoint::parse_body(&format!("{body}\n")).unwrap();
    for line in &mut checkpoint.extensions {
        if line.starts_with("evident-index ") {
            *line = evident_core::vindex::extension(&evident_core::Hash::sha256(b"a lie"));
        }
    }
    checkpoint.sign(signer).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_monitor_catch_a_log_that_signs_a_wrong_index_root() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, _) = releases(d).await;
    let genesis = server.data_dir.join("genesis.json");
    // The honest log audits clean.
    let honest = proxy(&server, None, None).await;
    let out = cli_via(
        d,
        &honest,
        &server,
        &["audit", "--genesis", genesis.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The same entries under checkpoints that sign another index root.
    let key = std::fs::read_to_string(server.data_dir.join("log.key")).unwrap();
    let signer = Arc::new(Signer::parse_private(&key).unwrap());
    let resign: Resign = {
        let signer = signer.clone();
        Arc::new(move |note: &str| wrong_index_root(&signer, note))
    };
    let lying = proxy(&server, None, Some(resign)).await;
    // A client that verified the honest note refuses the other one of the same size.
    let out = cli_via(d, &lying, &server, &["checkpoint"]);
    refused(&out, "sign different lines");
    let fresh = tempfile::tempdir().unwrap();
    let out = cli_via(
        fresh.path(),
        &lying,
        &server,
        &["audit", "--genesis", genesis.to_str().unwrap()],
    );
    refused(&out, "verifiable index does not match its log");
    let fresh = tempfile::tempdir().unwrap();
    let out = cli_via(
        fresh.path(),
        &lying,
        &server,
        &[
            "monitor",
            "--genesis",
            genesis.to_str().unwrap(),
            "--polls",
            "1",
            "--interval",
            "0.1",
        ],
    );
    refused(&out, "verifiable index does not match its log");
}

/// Rewrites the first key of the first batch in the indexes' key log, with a valid
/// checksum: an edit that only the index root can catch.
fn edit_key_log(data: &Path) {
    let path = data.join("indexes").join("keys");
    let mut bytes = std::fs::read(&path).unwrap();
    let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    // Body: first index (8), entries (4), keys (4), then the first key hash.
    bytes[8 + 16] ^= 0x01;
    let crc = crc32fast::hash(&bytes[8..8 + len]);
    bytes[4..8].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(&path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_index_key_log_is_refused_at_start_and_by_verify_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut server, _) = releases(d).await;
    let config = server.config.clone();
    let data = server.data_dir.clone();
    assert!(tokio::task::block_in_place(|| server.terminate()).success());
    let out = evident_tests::evidentd_offline(&config, &["verify-store"]);
    assert!(out.status.success(), "{}", stderr(&out));
    edit_key_log(&data);
    let out = evident_tests::evidentd_offline(&config, &["verify-store"]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the indexes' key lists give verifiable index root"),
        "{}",
        stderr(&out)
    );
    let Err(err) = Server::start(&config, &data) else {
        panic!("the server started with an edited key log");
    };
    assert!(
        err.contains("the verifiable index rebuilt from the indexes has root"),
        "{err}"
    );
    // reindex rebuilds the lists from the entries; then all is well again.
    let out = evident_tests::evidentd_offline(&config, &["reindex"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = evident_tests::evidentd_offline(&config, &["verify-store"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let server = Server::start(&config, &data).unwrap();
    let honest = proxy(&server, None, None).await;
    let out = cli_via(
        d,
        &honest,
        &server,
        &["query", "--release", "payments", "--verify"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("complete: proven"),
        "{}",
        stderr(&out)
    );
}

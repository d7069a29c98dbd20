//! What operators and generic gRPC tools see: the health service and server reflection.

use evident_tests::{Server, envelope, flip_payload_byte, key, write_config};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn channel(server: &Server) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_the_ledger_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&write_config(dir.path(), &data, &[1], ""), &data).unwrap();
    let mut health = HealthClient::new(channel(&server).await);
    let status = health
        .check(HealthCheckRequest {
            service: "evident.v1.Ledger".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_ledger_service() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&write_config(dir.path(), &data, &[1], ""), &data).unwrap();
    let mut reflection = ServerReflectionClient::new(channel(&server).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("expected a service list, got {:?}", answer.message_response);
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"evident.v1.Ledger".to_owned()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
}

fn evidentd(args: &[&str]) -> std::process::Output {
    std::process::Command::new(evident_tests::evidentd_bin())
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_accepts_a_good_file_and_names_the_first_bad_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[], "");
    let path = config.display().to_string();
    let out = evidentd(&["config", "check", &path]);
    assert!(out.status.success(), "{}", evident_tests::stderr(&out));
    let text = evident_tests::stdout(&out);
    assert!(
        text.contains(": OK") && text.contains("transport: PLAINTEXT"),
        "{text}"
    );
    assert!(!data.exists(), "checking a config touches no data folder");
    let good = std::fs::read_to_string(&config).unwrap();
    for (edit, field) in [
        ("max_envelope_bytes = 10\n", "max_envelope_bytes"),
        ("store_cahce_mb = 64\n", "store_cahce_mb"),
        ("[limits]\nrate_per_client = 0\n", "limits.rate_per_client"),
    ] {
        // Tables go last, plain fields first.
        let text = if edit.starts_with('[') {
            format!("{good}{edit}")
        } else {
            format!("{edit}{good}")
        };
        std::fs::write(&config, text).unwrap();
        let out = evidentd(&["--config", &path, "config", "check"]);
        assert_eq!(out.status.code(), Some(1), "{edit}");
        assert!(
            evident_tests::stderr(&out).contains(field),
            "{edit}: {}",
            evident_tests::stderr(&out)
        );
    }
    // A TLS key others can read.
    std::fs::write(dir.path().join("k.pem"), "key").unwrap();
    std::fs::write(dir.path().join("c.pem"), "cert").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            dir.path().join("k.pem"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let tls = format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n",
            dir.path().join("c.pem").display().to_string(),
            dir.path().join("k.pem").display().to_string()
        );
        let config = write_config(dir.path(), &data, &[], &tls);
        let out = evidentd(&["config", "check", &config.display().to_string()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            evident_tests::stderr(&out).contains("chmod 600"),
            "{}",
            evident_tests::stderr(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let mut server = Server::start(&config, &data).unwrap();
    assert!(tokio::task::block_in_place(|| server.terminate()).success());
    let out = evidentd(&[
        "--log-format",
        "json",
        "--config",
        &config.display().to_string(),
        "verify-store",
    ]);
    assert!(out.status.success(), "{}", evident_tests::stderr(&out));
    let logs = evident_tests::stderr(&out);
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "verify-store logs its progress");
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_while_the_store_is_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    // A log big enough that the full start-up check takes a while.
    let mut server = Server::start(&config, &data).unwrap();
    let mut tasks = Vec::new();
    for worker in 0..16u64 {
        let mut c = server.client().await;
        tasks.push(tokio::spawn(async move {
            for n in 0..250u64 {
                c.submit(&evident_tests::envelope(
                    &evident_tests::key(1),
                    worker * 1000 + n,
                ))
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(tokio::task::block_in_place(|| server.terminate()).success());
    // A known free port, so the health probe can start before the server announces it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&config, text).unwrap();
    let mut child = std::process::Command::new(evident_tests::evidentd_bin())
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let status = match tonic::transport::Channel::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
        {
            Err(_) => None,
            Ok(channel) => HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: "evident.v1.Ledger".into(),
                })
                .await
                .ok()
                .map(|r| r.into_inner().status),
        };
        if let Some(status) = status {
            if seen.last() != Some(&status) {
                seen.push(status);
            }
            if status == ServingStatus::Serving as i32 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        seen,
        vec![
            ServingStatus::NotServing as i32,
            ServingStatus::Serving as i32
        ],
        "health during and after the start-up check"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_verification_finds_an_entry_edited_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "verify_every_seconds = 1");
    let server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    for nonce in 0..5 {
        client.submit(&envelope(&key(1), nonce)).await.unwrap();
    }
    let status = || async {
        HealthClient::new(channel(&server).await)
            .check(HealthCheckRequest {
                service: "evident.v1.Ledger".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server
        .stderr()
        .contains("verified the store in the background")
    {
        assert!(std::time::Instant::now() < deadline, "{}", server.stderr());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status().await, ServingStatus::Serving as i32);
    // Entry 3's Statement edited on disk, its checksum made to match: only the tree, which
    // the log's key signed, can tell.
    flip_payload_byte(&data, 3);
    while status().await != ServingStatus::NotServing as i32 {
        assert!(std::time::Instant::now() < deadline, "{}", server.stderr());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let logged = server.stderr();
    assert!(
        logged.contains("background verification of the store failed")
            && logged.contains("entry 3")
            && logged.contains("evidentd verify-store"),
        "{logged}"
    );
}

//! The real binary: its state survives SIGKILL, a corrupt state file stops it from
//! starting, and `keygen` writes keys it then serves with.

use std::process::Command;

use evident_core::cosign::CosignerKey;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_survives_kill_9_and_a_restart() {
    let mut log = TestLog::new(ORIGIN, 1);
    let setup = Setup::ed25519(&[&log]);
    let witness = Process::start(&setup.config_path);
    let mut old = 0;
    for size in [3, 10, 25] {
        log.grow_to(size);
        let reply = add(witness.addr, &log.body(old, size)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        old = size;
    }
    // The answer came back, so the checkpoint is durable: no grace, no flush.
    witness.kill_9();

    let witness = Process::start(&setup.config_path);
    let reply = request(witness.addr, "GET", &origin_path(ORIGIN), b"").await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.starts_with(&log.note_at(25)), "{}", reply.body);
    // A log that forgot the witness is told the size it holds, then continues from it.
    log.grow_to(30);
    let reply = add(witness.addr, &log.body(0, 30)).await;
    assert_eq!((reply.status, reply.body.as_str()), (409, "25\n"));
    let reply = add(witness.addr, &log.body(25, 30)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    check_cosigned(&setup.key(), &log.note(), &reply.body);
    // And a rollback is still refused after the restart.
    let reply = add(witness.addr, &body(25, &[], &log.note_at(25))).await;
    assert_eq!((reply.status, reply.body.as_str()), (409, "30\n"));
}

#[test]
fn a_corrupt_state_file_stops_the_start_naming_the_file() {
    let log = TestLog::new(ORIGIN, 1);
    let setup = Setup::ed25519(&[&log]);
    let logs = setup.state_dir().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let file = logs.join(format!(
        "{}.checkpoint",
        evident_core::Hash::sha256(ORIGIN.as_bytes()).to_hex()
    ));
    std::fs::write(&file, "log.example/evident-test\n12\nnot a hash\n\n").unwrap();
    let output = Command::new(binary())
        .args(["serve", "--config"])
        .arg(&setup.config_path)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_writes_a_private_key_the_witness_serves_with() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("witness.key");
    for ml_dsa in [true, false] {
        let _ = std::fs::remove_file(&key_file);
        let mut args = vec!["keygen", "--name", "witness.example/kg", "--out"];
        if ml_dsa {
            args.insert(1, "--ml-dsa");
        }
        let output = Command::new(binary())
            .args(&args)
            .arg(&key_file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let printed = String::from_utf8(output.stdout).unwrap();
        let key = CosignerKey::parse(printed.trim()).unwrap();
        assert_eq!(key.is_ml_dsa(), ml_dsa);
        assert_eq!(key.name(), "witness.example/kg");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&key_file).unwrap();
        assert!(!printed.contains(text.trim()));
        // Never overwritten.
        let again = Command::new(binary())
            .args(&args)
            .arg(&key_file)
            .output()
            .unwrap();
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
        assert_eq!(std::fs::read_to_string(&key_file).unwrap(), text);

        // The witness serves with it, and its cosignatures verify under the printed key.
        let mut log = TestLog::new(ORIGIN, 1);
        log.grow(2);
        let config = dir.path().join("witness.toml");
        std::fs::write(
            &config,
            format!(
                "key_file = \"witness.key\"\nstate_dir = \"state-{ml_dsa}\"\n[[log]]\norigin = \"{ORIGIN}\"\nkey = \"{}\"\n",
                log.verifier_text()
            ),
        )
        .unwrap();
        let witness = Process::start(&config);
        let reply = add(witness.addr, &log.body(0, 2)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        check_cosigned(&key, &log.note(), &reply.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listen_address_comes_from_the_environment_over_the_config() {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(1);
    let setup = Setup::ed25519(&[&log]);
    // An address no interface has: binding it would fail.
    let config = std::fs::read_to_string(&setup.config_path)
        .unwrap()
        .replace("127.0.0.1:0", "192.0.2.1:7380");
    std::fs::write(&setup.config_path, config).unwrap();
    let mut command = Command::new(binary());
    command
        .env("EVIDENT_WITNESS_CONFIG", &setup.config_path)
        .env("EVIDENT_WITNESS_LISTEN", "127.0.0.1:0")
        .arg("serve");
    let witness = Process::spawn(command);
    assert_eq!(add(witness.addr, &log.body(0, 1)).await.status, 200);
}

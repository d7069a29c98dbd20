//! Packaging: the systemd units' hardening, the example production configs accepted by the
//! real server (the single server's, and the three instances' of `packaging/scale-out/`),
//! and `systemd-analyze verify` on the units and on the units that `docs/DEPLOY.md` tells
//! operators to install.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use evident_tests::{
    evident_bin, evidentd_bin, issue_cert, stderr, stdout, test_ca, write_private,
};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(workspace().join(relative))
        .unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

/// A unit file as systemd reads it: `(section, key, value)` in order, comments and blank
/// lines left out, values trimmed (an empty value is an assignment too: it resets a list).
fn parse_unit(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "line {}: keep directives on one line",
            n + 1
        );
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not KEY=VALUE: {line}", n + 1));
        out.push((
            section.clone(),
            key.trim().to_owned(),
            value.trim().to_owned(),
        ));
    }
    out
}

/// Every value assigned to `key` in `section`, in order.
fn values<'a>(unit: &'a [(String, String, String)], section: &str, key: &str) -> Vec<&'a str> {
    unit.iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
        .collect()
}

/// The one value of a single-valued directive.
fn single<'a>(unit: &'a [(String, String, String)], section: &str, key: &str) -> &'a str {
    match values(unit, section, key).as_slice() {
        [v] => v,
        other => panic!("[{section}] {key}= must be set exactly once, found {other:?}"),
    }
}

/// A systemd time span in seconds: `90`, `90s`, `2min`, `1min 30s`.
fn seconds(span: &str) -> u64 {
    span.split_whitespace()
        .map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            let n: u64 = digits
                .parse()
                .unwrap_or_else(|_| panic!("a time span: {span}"));
            match &part[digits.len()..] {
                "" | "s" | "sec" => n,
                "min" | "m" => n * 60,
                other => panic!("unit {other:?} of {span}"),
            }
        })
        .sum()
}

/// The value of the one line `KEY = VALUE` of a TOML text (any table), as written.
fn toml_value<'a>(text: &'a str, key: &str) -> &'a str {
    let found: Vec<&str> = text
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix(key)?.trim_start();
            Some(rest.strip_prefix('=')?.trim())
        })
        .collect();
    match found.as_slice() {
        [v] => v,
        other => panic!("`{key}` must be set exactly once, found {other:?}"),
    }
}

/// `text` with the value of its one `KEY = …` line replaced.
fn set(text: &str, key: &str, value: &str) -> String {
    toml_value(text, key);
    text.lines()
        .map(|line| {
            let is_it = line
                .trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='));
            if is_it {
                format!("{key} = {value}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn the_unit_runs_the_server_unprivileged_and_hardened() {
    let unit = parse_unit(&read("packaging/evidentd.service"));
    let service = |key| single(&unit, "Service", key);

    assert_eq!(
        service("ExecStart"),
        "/usr/local/bin/evidentd --config /etc/evident/evidentd.toml"
    );
    for (key, want) in [
        ("StateDirectory", "evident"),
        ("ReadWritePaths", "/var/lib/evident"),
    ] {
        assert_eq!(service(key), want, "{key}=");
    }
    hardened(&unit);

    // The unit and the example config agree: the data folder is the state directory, the
    // ports need no privilege, and a stop waits longer than a request may take.
    let config = read("packaging/evidentd.toml");
    assert_eq!(toml_value(&config, "data_dir"), "\"/var/lib/evident\"");
    agrees_with_unit(&unit, &config);
}

/// What every evidentd unit holds to: an unprivileged account, a file system read-only but
/// for the state directory, no capabilities, the kernel off limits, a system call filter,
/// and a clean stop on SIGTERM.
fn hardened(unit: &[(String, String, String)]) {
    let service = |key| single(unit, "Service", key);
    for (key, want) in [
        // evidentd prints "listening on" when ready; it does not speak sd_notify.
        ("Type", "simple"),
        ("Restart", "on-failure"),
        ("User", "evident"),
        ("Group", "evident"),
        ("KillSignal", "SIGTERM"),
        ("StateDirectoryMode", "0700"),
        ("ConfigurationDirectory", "evident"),
        ("UMask", "0077"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        // Empty: no capabilities at all (the ports are above 1024).
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(service(key), want, "{key}=");
    }
    let mut families: Vec<&str> = service("RestrictAddressFamilies")
        .split_whitespace()
        .collect();
    families.sort_unstable();
    assert_eq!(families, ["AF_INET", "AF_INET6", "AF_UNIX"]);
    // The allow list first, then the deny list: systemd applies them in order.
    assert_eq!(
        values(unit, "Service", "SystemCallFilter"),
        ["@system-service", "~@privileged @resources"]
    );
    let nofile: u64 = service("LimitNOFILE").parse().expect("a number");
    assert!(nofile >= 8192, "LimitNOFILE={nofile}");
    assert_eq!(single(unit, "Install", "WantedBy"), "multi-user.target");
}

/// A unit and the config it runs agree: the ports need no privilege, and a stop waits
/// longer than a request may take.
fn agrees_with_unit(unit: &[(String, String, String)], config: &str) {
    let service = |key| single(unit, "Service", key);
    for key in ["listen", "metrics_listen"] {
        let addr = toml_value(config, key).trim_matches('"');
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        assert!(port >= 1024, "{key} = {addr}: a privileged port");
    }
    let request_timeout_ms: u64 = toml_value(config, "request_timeout_ms").parse().unwrap();
    let stop = seconds(service("TimeoutStopSec"));
    assert!(
        stop * 1000 > request_timeout_ms + 10_000,
        "TimeoutStopSec={stop}s leaves too little after a {request_timeout_ms} ms request"
    );
}

/// The three instances of `packaging/scale-out/`, as `evidentd@N` runs them.
const INSTANCES: [u8; 3] = [1, 2, 3];

/// The keys whose values differ between the instances' configs.
const PER_INSTANCE: [&str; 4] = ["listen", "metrics_listen", "data_dir", "instance"];

/// A line's key when it assigns one (`KEY = …`), comments and tables left out.
fn toml_key(line: &str) -> Option<&str> {
    let line = line.trim();
    if line.starts_with('#') || line.starts_with('[') {
        return None;
    }
    line.split_once('=').map(|(key, _)| key.trim())
}

#[test]
fn the_scale_out_unit_runs_each_instance_hardened_on_its_own_config() {
    let unit = parse_unit(&read("packaging/scale-out/evidentd@.service"));
    let service = |key| single(&unit, "Service", key);
    for (key, want) in [
        (
            "ExecStart",
            "/usr/local/bin/evidentd --config /etc/evident/evidentd-%i.toml",
        ),
        ("StateDirectory", "evident/%i"),
        ("ReadWritePaths", "/var/lib/evident/%i"),
        // The connection string with its password, out of the config.
        ("EnvironmentFile", "/etc/evident/store.env"),
    ] {
        assert_eq!(service(key), want, "{key}=");
    }
    hardened(&unit);

    let configs: Vec<String> = INSTANCES
        .iter()
        .map(|n| read(&format!("packaging/scale-out/evidentd-{n}.toml")))
        .collect();
    let mut ports = Vec::new();
    for (n, config) in INSTANCES.iter().zip(&configs) {
        agrees_with_unit(&unit, config);
        // %i is the instance's number: its data folder is the unit's state directory.
        assert_eq!(
            toml_value(config, "data_dir"),
            format!("\"/var/lib/evident/{n}\"")
        );
        for key in ["listen", "metrics_listen"] {
            ports.push(
                toml_value(config, key)
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .to_owned(),
            );
        }
        assert_eq!(toml_value(config, "backend"), "\"postgres\"");
        // TLS always, and no password in the config (it is in store.env).
        let url = toml_value(config, "url").trim_matches('"');
        assert!(url.contains("sslmode=require"), "evidentd-{n}.toml: {url}");
        let user = url
            .strip_prefix("postgres://")
            .and_then(|rest| rest.split_once('@'))
            .map(|(user, _)| user)
            .unwrap_or_else(|| panic!("evidentd-{n}.toml: a postgres:// url with a user: {url}"));
        assert!(
            !user.contains(':'),
            "evidentd-{n}.toml: a password in {url}"
        );
        // Set, or commented out with its value for an evidentd that does not know it yet.
        let named = config.lines().any(|line| {
            let line = line.trim();
            line.strip_prefix('#').unwrap_or(line).trim() == format!("instance = \"evident-{n}\"")
        });
        assert!(named, "evidentd-{n}.toml names its instance evident-{n}");
    }
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        ports.len(),
        "the instances share a port: {ports:?}"
    );

    // Any instance may become the sequencer: the configs are one file but for the lines
    // marked PER-INSTANCE (and comments).
    let first: Vec<&str> = configs[0].lines().collect();
    for (n, config) in INSTANCES.iter().zip(&configs).skip(1) {
        let lines: Vec<&str> = config.lines().collect();
        assert_eq!(
            lines.len(),
            first.len(),
            "evidentd-{n}.toml and evidentd-1.toml"
        );
        for (a, b) in first.iter().zip(&lines) {
            if a == b {
                continue;
            }
            match (toml_key(a), toml_key(b)) {
                (None, None) => {}
                (Some(k), Some(l)) if k == l && PER_INSTANCE.contains(&k) => {}
                _ => panic!("evidentd-{n}.toml differs from evidentd-1.toml in `{b}`"),
            }
        }
    }
}

#[test]
fn evidentd_config_check_accepts_the_scale_out_configs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let org = test_ca("Example Org CA");
    let clients = test_ca("Evident clients CA");
    let database = test_ca("Example database CA");
    std::fs::write(d.join("clients-ca.pem"), &clients.pem).unwrap();
    std::fs::write(d.join("pg-ca.pem"), &database.pem).unwrap();
    let quoted = |p: PathBuf| format!("{:?}", p.display().to_string());
    for n in INSTANCES {
        let (cert, key) = issue_cert(
            &org,
            "ledger.example.com",
            &["ledger.example.com", &format!("evident-{n}.example.com")],
        );
        std::fs::write(d.join(format!("server-{n}.pem")), cert).unwrap();
        write_private(&d.join(format!("server-{n}.key")), &key);
        // Only the host paths move into the test's folder; the database is never reached.
        let mut text = read(&format!("packaging/scale-out/evidentd-{n}.toml"));
        for (key, value) in [
            ("data_dir", quoted(d.join(format!("data-{n}")))),
            ("cert", quoted(d.join(format!("server-{n}.pem")))),
            ("key", quoted(d.join(format!("server-{n}.key")))),
            ("client_ca", quoted(d.join("clients-ca.pem"))),
            ("ca", quoted(d.join("pg-ca.pem"))),
        ] {
            text = set(&text, key, &value);
        }
        let config = d.join(format!("evidentd-{n}.toml"));
        std::fs::write(&config, &text).unwrap();
        let out = Command::new(evidentd_bin())
            .args(["config", "check"])
            .arg(&config)
            .env_remove("EVIDENT_STORE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success() && stdout(&out).contains(": OK"),
            "evidentd config check refused evidentd-{n}.toml:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stdout(&out).contains(&format!("listen 0.0.0.0:5005{n}")),
            "{}",
            stdout(&out)
        );
    }
}

/// Whether the built `evidentd` has `config check`.
fn has_config_check() -> bool {
    let out = Command::new(evidentd_bin()).arg("--help").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .any(|l| l.split_whitespace().next() == Some("config"))
}

/// `evidentd` killed when the test ends, however it ends.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_config_starts_the_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Stand-ins for the organisation's CA and the clients CA of docs/DEPLOY.md.
    let org = test_ca("Example Org CA");
    let clients = test_ca("Evident clients CA");
    let (cert, key) = issue_cert(&org, "ledger.example.com", &["localhost", "127.0.0.1"]);
    std::fs::write(d.join("server.pem"), cert).unwrap();
    write_private(&d.join("server.key"), &key);
    std::fs::write(d.join("org-ca.pem"), &org.pem).unwrap();
    std::fs::write(d.join("clients-ca.pem"), &clients.pem).unwrap();
    let (cert, key) = issue_cert(&clients, "ci.payments.example.com", &[]);
    std::fs::write(d.join("ci.pem"), cert).unwrap();
    write_private(&d.join("ci.key"), &key);

    // The example, with only its host paths and addresses moved into the test's folder:
    // everything else (clients, tokens, limits, batch, genesis) as shipped.
    let quoted = |p: PathBuf| format!("{:?}", p.display().to_string());
    let mut text = read("packaging/evidentd.toml");
    for (key, value) in [
        ("listen", "\"127.0.0.1:0\"".to_owned()),
        ("metrics_listen", "\"127.0.0.1:0\"".to_owned()),
        ("data_dir", quoted(d.join("data"))),
        ("cert", quoted(d.join("server.pem"))),
        ("key", quoted(d.join("server.key"))),
        ("client_ca", quoted(d.join("clients-ca.pem"))),
    ] {
        text = set(&text, key, &value);
    }
    let config = d.join("evidentd.toml");
    std::fs::write(&config, &text).unwrap();

    if has_config_check() {
        let out = Command::new(evidentd_bin())
            .args(["config", "check"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success() && stdout(&out).contains(": OK"),
            "evidentd config check refused the example:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
    } else {
        eprintln!("evidentd has no `config check`: starting the server is the check");
    }

    let stderr_log = d.join("evidentd.stderr");
    let mut child = Command::new(evidentd_bin())
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_log).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut server = Running(Some(child));
    // Read the start-up lines on a thread: a server that hangs fails the test, not CI.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    let addr = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let addr = line.strip_prefix("listening on ").map(str::to_owned);
                banner.push(line);
                if let Some(addr) = addr {
                    break addr;
                }
            }
            Err(e) => panic!(
                "evidentd did not reach `listening on` ({e}) with the example config:\n{}\n{}",
                banner.join("\n"),
                std::fs::read_to_string(&stderr_log).unwrap_or_default()
            ),
        }
    };
    let banner = banner.join("\n");
    assert!(
        banner.contains(
            "administrators: alice@example.com, bob@example.com, carol@example.com (threshold 2)"
        ),
        "{banner}"
    );
    assert!(
        banner.contains(&format!(
            "transport: TLS with {}; mutual TLS: client certificates verified against {}",
            d.join("server.pem").display(),
            d.join("clients-ca.pem").display()
        )),
        "{banner}"
    );
    assert!(!banner.contains("clients: OPEN"), "{banner}");
    let log_key = banner
        .lines()
        .find_map(|l| l.strip_prefix("log verifier key: "))
        .expect("the log key is printed")
        .to_owned();
    assert!(log_key.starts_with("ledger.example.com/prod+"), "{log_key}");
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let https = format!("https://127.0.0.1:{port}");

    // What `grpcurl -cacert org-ca.pem … grpc.health.v1.Health/Check` asks in DEPLOY.md.
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&org.pem))
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(https.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "evident.v1.Ledger".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    // A pipeline's client certificate, named by the example's [[client]] entry, gets a
    // verified checkpoint; without a credential the server refuses.
    let path = |name: &str| d.join(name).display().to_string();
    let checkpoint = |credentials: &[&str]| {
        // Connection flags follow the command that connects.
        let mut args = vec![
            "checkpoint".to_owned(),
            "--server".to_owned(),
            https.clone(),
            "--ca".to_owned(),
            path("org-ca.pem"),
            "--log-key".to_owned(),
            log_key.clone(),
            "--state".to_owned(),
            path("state.json"),
        ];
        args.extend(credentials.iter().map(|s| s.to_string()));
        tokio::task::block_in_place(|| Command::new(evident_bin()).args(&args).output().unwrap())
    };
    let out = checkpoint(&["--cert", &path("ci.pem"), "--cert-key", &path("ci.key")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = checkpoint(&[]);
    assert!(
        !out.status.success(),
        "no credential, yet: {}",
        stdout(&out)
    );

    // The unit stops it with SIGTERM: a clean exit.
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let child = server.0.as_mut().unwrap();
    let mut status = None;
    for _ in 0..300 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.expect("evidentd stops within 30 s of SIGTERM");
    assert!(
        status.success(),
        "{status}: {}",
        std::fs::read_to_string(&stderr_log).unwrap_or_default()
    );
    server.0 = None;
}

/// `systemd-analyze` on this machine, or a failure that says how to get it.
fn systemd_analyze() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|dir| dir.join("systemd-analyze"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "systemd-analyze is not installed; it checks the packaged units. On Debian \
             or Ubuntu: apt-get install systemd (scripts/test installs it when it is missing)"
        )
    })
}

/// The unit files to check, written into `dir` as systemd would find them: the packaged
/// units and every other `ini` block of docs/DEPLOY.md that starts with
/// `# /etc/systemd/system/NAME` (a packaged unit that DEPLOY.md shows must be shown as
/// packaged). The binaries are the ones built here, so that
/// `systemd-analyze` finds executables where the real units name /usr/local/bin.
fn units_in(dir: &Path) -> Vec<PathBuf> {
    let local = |text: &str| {
        text.replace(
            "/usr/local/bin/evidentd",
            &evidentd_bin().display().to_string(),
        )
        .replace(
            "/usr/local/bin/evident",
            &evident_bin().display().to_string(),
        )
    };
    let packaged = [
        ("evidentd.service", "packaging/evidentd.service"),
        ("evidentd@.service", "packaging/scale-out/evidentd@.service"),
    ];
    let mut units: Vec<(String, String)> = packaged
        .iter()
        .map(|(name, path)| ((*name).to_owned(), local(&read(path))))
        .collect();
    let mut shown = Vec::new();
    let deploy = read("docs/DEPLOY.md");
    let mut rest = deploy.as_str();
    while let Some(start) = rest.find("```ini\n") {
        let block = &rest[start + "```ini\n".len()..];
        let end = block.find("```").expect("a closed code block");
        let body = &block[..end];
        rest = &block[end + 3..];
        let name = body
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# /etc/systemd/system/"))
            .unwrap_or_else(|| panic!("an ini block of DEPLOY.md names its file: {body}"));
        shown.push(name.to_owned());
        // A packaged unit that DEPLOY.md shows is shown as it is packaged.
        if let Some((_, path)) = packaged.iter().find(|(n, _)| *n == name) {
            assert_eq!(body, read(path), "DEPLOY.md shows {path} as it is");
            continue;
        }
        units.push((name.to_owned(), local(body)));
    }
    let names: Vec<&str> = shown.iter().map(String::as_str).collect();
    for want in [
        "evidentd@.service",
        "evident-backup.service",
        "evident-backup.timer",
        "evident-monitor.service",
        "evident-audit.service",
        "evident-audit.timer",
    ] {
        assert!(names.contains(&want), "DEPLOY.md shows {want}: {names:?}");
    }
    units
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

/// `systemd-analyze verify` on `units`: the lines it printed about them. It exits 0 even
/// for unknown directives and values it cannot parse (it says "ignoring"), so the output is
/// what counts. Lines about the machine's own units (a path outside `dir`, e.g. a vendor
/// unit that `multi-user.target` pulls in) are printed and left out: they are not ours.
fn verify(dir: &Path, units: &[PathBuf]) -> Vec<String> {
    let out = Command::new(systemd_analyze())
        .args(["verify", "--man=no"])
        .args(units)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let mut problems: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with('/') && !line.starts_with(&*dir.to_string_lossy()) {
            eprintln!("systemd-analyze, about the machine's units: {line}");
        } else {
            problems.push(line.to_owned());
        }
    }
    if !out.status.success() {
        problems.push(format!("systemd-analyze verify exited {}", out.status));
    }
    problems
}

#[test]
fn systemd_analyze_verifies_the_unit_and_the_deploy_units() {
    let analyze = systemd_analyze();
    let dir = tempfile::tempdir().unwrap();
    let units = units_in(dir.path());
    let problems = verify(dir.path(), &units);
    assert!(
        problems.is_empty(),
        "systemd-analyze verify:\n{}",
        problems.join("\n")
    );

    // The check is not vacuous: a misspelt directive is reported (with exit 0).
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    let text = std::fs::read_to_string(&units[0])
        .unwrap()
        .replace("ProtectSystem=strict", "ProtectSystm=strict");
    std::fs::write(broken.join("evidentd.service"), text).unwrap();
    let problems = verify(&broken, &[broken.join("evidentd.service")]);
    assert!(
        problems.iter().any(|p| p.contains("ProtectSystm")),
        "a misspelt directive went unnoticed: {problems:?}"
    );

    // The hardening as systemd itself rates it (0 safest, 10 worst): at most 2.0, "OK", for
    // the packaged units (the first two).
    for unit in &units[..2] {
        let out = Command::new(&analyze)
            .args(["security", "--offline=true", "--threshold=20"])
            .arg(unit)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = format!("{}{}", stdout(&out), stderr(&out));
        if text.contains("unrecognized option") {
            eprintln!("this systemd-analyze cannot rate a unit offline: {text}");
        } else {
            assert!(
                out.status.success(),
                "{}: exposure above 2.0:\n{}",
                unit.display(),
                text.lines()
                    .filter(|l| l.contains('✗') || l.contains("Overall"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

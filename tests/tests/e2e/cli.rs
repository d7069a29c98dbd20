//! The CLI's conventions: connection flags only on the commands that connect, `--format`
//! limited to what a command writes, timeouts and retries, shell completions.

use evident_tests::{cli, stderr, stdout};

/// `evident ARGS` in a scratch folder, with no server.
fn run(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    cli(dir.path(), None, args)
}

const CONNECTION_FLAGS: [&str; 7] = [
    "--server",
    "--ca",
    "--cert",
    "--cert-key",
    "--token",
    "--timeout",
    "--retries",
];

#[test]
fn offline_commands_show_no_connection_flags() {
    for command in [
        &["keygen"][..],
        &["frameworks"],
        &["attest"],
        &["receipt", "verify"],
        &["receipt", "export"],
        &["verify-receipt"],
        &["bundle", "verify"],
        &["completion"],
    ] {
        let out = run(&[command, &["--help"]].concat());
        assert!(out.status.success(), "{command:?}: {}", stderr(&out));
        let help = stdout(&out);
        assert!(!help.contains("Connection"), "{command:?}:\n{help}");
        for flag in CONNECTION_FLAGS {
            assert!(
                !help.contains(&format!("{flag} ")) && !help.contains(&format!("{flag}\n")),
                "{command:?} shows {flag}:\n{help}"
            );
        }
    }
    // Nor do they take them.
    let out = run(&["keygen", "--server", "http://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--server"), "{}", stderr(&out));
}

#[test]
fn connecting_commands_show_connection_flags_under_their_heading() {
    for command in [
        &["checkpoint"][..],
        &["submit"],
        &["signer", "list"],
        &["policy", "submit"],
        &["bundle", "export"],
        &["query"],
        &["gate"],
        &["verify"],
    ] {
        let out = run(&[command, &["--help"]].concat());
        assert!(out.status.success(), "{command:?}: {}", stderr(&out));
        let help = stdout(&out);
        let connection = help
            .find("Connection:")
            .unwrap_or_else(|| panic!("{command:?}:\n{help}"));
        for flag in CONNECTION_FLAGS {
            let at = help
                .find(&format!("{flag} "))
                .unwrap_or_else(|| panic!("{command:?} lacks {flag}:\n{help}"));
            assert!(at > connection, "{command:?}: {flag} not under Connection");
        }
    }
}

#[test]
fn a_format_a_command_cannot_write_is_refused_naming_the_allowed_ones() {
    let out = run(&["checkpoint", "--format", "csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("[possible values: human, json]"),
        "{}",
        stderr(&out)
    );
    let out = run(&["keygen", "--format", "jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("[possible values: human, json]"),
        "{}",
        stderr(&out)
    );
    let out = run(&["query", "--format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("[possible values: human, json, jsonl, csv]"),
        "{}",
        stderr(&out)
    );
    // A command that writes files, not a listing, has no --format.
    let out = run(&["attest", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--format"), "{}", stderr(&out));
}

#[test]
fn an_unreachable_server_fails_after_the_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("http://127.0.0.1:{port}");
    let out = run(&[
        "policy",
        "list",
        "--server",
        &server,
        "--retries",
        "2",
        "--timeout",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains(&server), "{}", stderr(&out));
    let out = run(&["checkpoint", "--timeout", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--timeout"), "{}", stderr(&out));
}

#[test]
fn completion_prints_a_script_for_each_shell() {
    let out = run(&["completion", "bash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = stdout(&out);
    assert!(script.contains("_evident()"), "{script}");
    assert!(script.contains("complete -F _evident"), "{script}");
    for shell in ["zsh", "fish"] {
        let out = run(&["completion", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        assert!(stdout(&out).contains("evident"), "{shell}");
    }
    let out = run(&["completion", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn old_command_names_work_but_are_not_listed() {
    let out = run(&["--help"]);
    let help = stdout(&out);
    assert!(help.contains("gate") && help.contains("receipt"), "{help}");
    assert!(
        !help.contains("verify-receipt")
            && !help.lines().any(|l| l.trim_start().starts_with("verify ")),
        "{help}"
    );
    // `evident verify` is `evident gate`, and `evident verify-receipt` is `evident receipt
    // verify`: the same flags, the same checks.
    for (old, new) in [
        (&["verify", "--help"][..], &["gate", "--help"][..]),
        (
            &["verify-receipt", "--help"],
            &["receipt", "verify", "--help"],
        ),
    ] {
        let (old, new) = (run(old), run(new));
        assert!(
            old.status.success() && new.status.success(),
            "{}",
            stderr(&old)
        );
        let flags = |text: String| -> Vec<String> {
            text.lines()
                .filter(|l| l.trim_start().starts_with("--"))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(flags(stdout(&old)), flags(stdout(&new)));
    }
    let out = run(&["verify-receipt", "missing.json", "--log-key", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[cfg(unix)]
#[test]
fn signing_keys_others_may_read_are_refused_as_ssh_does() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = cli(d, None, &["keygen", "--out", "ci.key"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // keygen writes the key for its owner only.
    let mode = std::fs::metadata(d.join("ci.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::set_permissions(d.join("ci.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let public = std::fs::read_to_string(d.join("ci.key.pub")).unwrap();
    for args in [
        &[
            "attest",
            "--subject",
            "app=sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "--predicate-type",
            "https://example.com/p",
            "--key",
            "ci.key",
        ][..],
        // Refused before connecting: no server is needed to tell.
        &[
            "signer",
            "add",
            "--identity",
            "ci@test",
            "--public-key",
            public.trim(),
            "--predicate-type",
            "*",
            "--admin-key",
            "ci.key",
            "--server",
            "http://127.0.0.1:1",
        ],
    ] {
        let out = cli(d, None, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("ci.key has mode 644")
                && stderr(&out).contains("(chmod 600 ci.key)"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing signed");
    }
    std::fs::set_permissions(d.join("ci.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = cli(
        d,
        None,
        &[
            "attest",
            "--subject",
            "app=sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "--predicate-type",
            "https://example.com/p",
            "--key",
            "ci.key",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

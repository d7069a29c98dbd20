//! `evident-release`: the evidence of Evident's own release builds.
//!
//! - `sbom`: a CycloneDX 1.5 SBOM of the crates compiled into the shipped binaries, from
//!   `cargo metadata` (the dependency graph, licences) and `Cargo.lock` (each crate's
//!   SHA-256 as crates.io serves it), and the predicate that names it by digest (an SBOM
//!   is larger than a log entry should be).
//! - `provenance`: a SLSA provenance v1 predicate for the built artifacts: the source
//!   commit, the lock file's digest, the toolchain, the builder.
//!
//! Each writes a predicate (JSON) for `evident attest`; `scripts/release-evidence` signs
//! them, submits them to an Evident log and gates the release with
//! `packaging/evident-release.policy.toml` (docs/SUPPLY-CHAIN.md). Deterministic: the same
//! commit, lock file and `SOURCE_DATE_EPOCH` give the same SBOM.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use clap::Parser;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The packages whose binaries a release ships.
const SHIPPED: [&str; 2] = ["evident-server", "evident-client"];

/// The build type of Evident's release builds (docs/SUPPLY-CHAIN.md defines it).
pub const BUILD_TYPE: &str = "https://evident.dev/release-build/v1";

/// The command a release build runs.
const BUILD_COMMAND: &str = "cargo build --release --locked --bin evidentd --bin evident";

#[derive(Debug, Parser)]
#[command(
    version,
    about = "The SBOM and SLSA provenance of Evident's release builds"
)]
enum Cli {
    /// Writes a CycloneDX 1.5 JSON SBOM of the shipped binaries' crates, and the
    /// predicate that references it by digest.
    Sbom {
        /// The workspace root (the folder holding Cargo.lock).
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Where to write the SBOM.
        #[arg(long)]
        out: PathBuf,
        /// Where to write the `https://evident.dev/attestation/sbom/v1` predicate naming
        /// the SBOM by its SHA-256 (default: standard output).
        #[arg(long)]
        predicate_out: Option<PathBuf>,
    },
    /// Writes a SLSA provenance v1 predicate for the built artifacts.
    Provenance {
        /// The workspace root, a git work tree.
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// A built artifact (repeatable).
        #[arg(long = "artifact", required = true)]
        artifacts: Vec<PathBuf>,
        /// The builder's identity, e.g. the CI system's URL.
        #[arg(long)]
        builder_id: String,
        /// The source repository's URI (default: the git remote `origin`).
        #[arg(long)]
        repository: Option<String>,
        /// When the build started (RFC 3339; default: now).
        #[arg(long)]
        started_on: Option<String>,
        /// A unique id of this build run (a CI job URL, say).
        #[arg(long)]
        invocation_id: Option<String>,
        /// Where to write it (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let (value, out) = match Cli::parse() {
        Cli::Sbom {
            workspace,
            out,
            predicate_out,
        } => {
            let bom = sbom(&workspace)?;
            let text = format!("{}\n", serde_json::to_string_pretty(&bom)?);
            std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
            (sbom_predicate(&bom, &out, text.as_bytes()), predicate_out)
        }
        Cli::Provenance {
            workspace,
            artifacts,
            builder_id,
            repository,
            started_on,
            invocation_id,
            out,
        } => {
            let build = Build {
                builder_id,
                repository,
                started_on,
                invocation_id,
            };
            (provenance(&workspace, &artifacts, &build)?, out)
        }
    };
    let text = serde_json::to_string_pretty(&value)?;
    match out {
        Some(path) => std::fs::write(&path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(())
}

/// What `cargo metadata` says, the parts the SBOM uses.
#[derive(Debug, Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    resolve: Resolve,
}

#[derive(Debug, Deserialize)]
struct Package {
    id: String,
    name: String,
    version: String,
    license: Option<String>,
    source: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
struct Node {
    id: String,
    deps: Vec<NodeDep>,
}

#[derive(Debug, Deserialize)]
struct NodeDep {
    pkg: String,
    dep_kinds: Vec<DepKind>,
}

#[derive(Debug, Deserialize)]
struct DepKind {
    /// `null` for a normal dependency, `"build"` or `"dev"`.
    kind: Option<String>,
}

/// A `Cargo.lock` package.
#[derive(Debug, Deserialize)]
struct Locked {
    name: String,
    version: String,
    checksum: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Lock {
    package: Vec<Locked>,
}

fn run(workspace: &Path, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(workspace)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The package URL of a crate.
fn purl(name: &str, version: &str) -> String {
    format!("pkg:cargo/{name}@{version}")
}

/// The time the evidence states: `SOURCE_DATE_EPOCH` (reproducible builds), else the
/// commit's time, else now.
fn timestamp(workspace: &Path) -> String {
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .or_else(|| run(workspace, "git", &["log", "-1", "--format=%ct"]).ok())
        .and_then(|s| s.parse::<i64>().ok());
    let time = seconds
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or_else(chrono::Utc::now);
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A UUID (version 4 layout) derived from `seed`: the same inputs give the same serial
/// number.
fn uuid_of(seed: &[u8]) -> String {
    let mut b: [u8; 16] = Sha256::digest(seed)[..16]
        .try_into()
        .expect("a SHA-256 digest has 16 bytes and more");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The CycloneDX 1.5 SBOM of the crates compiled into the shipped binaries on this
/// platform: normal dependencies only (build scripts' and tests' crates do not ship).
fn sbom(workspace: &Path) -> anyhow::Result<Value> {
    let lock_text =
        std::fs::read_to_string(workspace.join("Cargo.lock")).context("reading Cargo.lock")?;
    let lock: Lock = toml::from_str(&lock_text).context("Cargo.lock does not parse")?;
    let checksums: BTreeMap<(String, String), String> = lock
        .package
        .into_iter()
        .filter_map(|p| p.checksum.map(|c| ((p.name, p.version), c)))
        .collect();
    let host = run(workspace, "rustc", &["-vV"])?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc -vV names no host")?;
    let text = run(
        workspace,
        &cargo(),
        &[
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
            &host,
        ],
    )?;
    let metadata: Metadata = serde_json::from_str(&text).context("cargo metadata's output")?;
    let packages: BTreeMap<&str, &Package> = metadata
        .packages
        .iter()
        .map(|p| (p.id.as_str(), p))
        .collect();
    let nodes: BTreeMap<&str, &Node> = metadata
        .resolve
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n))
        .collect();
    let normal = |d: &&NodeDep| d.dep_kinds.iter().any(|k| k.kind.is_none());
    // The crates reachable from the shipped packages through normal dependencies.
    let roots: Vec<&str> = metadata
        .packages
        .iter()
        .filter(|p| SHIPPED.contains(&p.name.as_str()))
        .map(|p| p.id.as_str())
        .collect();
    if roots.len() != SHIPPED.len() {
        bail!("the workspace does not hold the packages {SHIPPED:?}");
    }
    let mut shipped: BTreeSet<&str> = BTreeSet::new();
    let mut todo = roots.clone();
    while let Some(id) = todo.pop() {
        if !shipped.insert(id) {
            continue;
        }
        if let Some(node) = nodes.get(id) {
            todo.extend(node.deps.iter().filter(normal).map(|d| d.pkg.as_str()));
        }
    }
    let reference = |id: &str| {
        let p = packages[id];
        purl(&p.name, &p.version)
    };
    let mut components = Vec::new();
    let mut dependencies = Vec::new();
    for id in &shipped {
        let p = packages[id];
        let mut component = json!({
            "type": if roots.contains(id) { "application" } else { "library" },
            "bom-ref": reference(id),
            "name": p.name,
            "version": p.version,
            "purl": purl(&p.name, &p.version),
        });
        if let Some(license) = &p.license {
            component["licenses"] = json!([{"expression": license}]);
        }
        if let Some(sum) = checksums.get(&(p.name.clone(), p.version.clone())) {
            component["hashes"] = json!([{"alg": "SHA-256", "content": sum}]);
        }
        if p.source.is_none() {
            // A workspace crate: built from the commit the provenance names.
            component["scope"] = json!("required");
        }
        components.push(component);
        let depends_on: BTreeSet<String> = nodes
            .get(id)
            .map(|n| {
                n.deps
                    .iter()
                    .filter(normal)
                    .map(|d| reference(&d.pkg))
                    .collect()
            })
            .unwrap_or_default();
        dependencies.push(json!({"ref": reference(id), "dependsOn": depends_on}));
    }
    let version = packages[roots[0]].version.clone();
    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", uuid_of(lock_text.as_bytes())),
        "version": 1,
        "metadata": {
            "timestamp": timestamp(workspace),
            "tools": {"components": [{
                "type": "application",
                "name": "evident-release",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": {
                "type": "application",
                "bom-ref": "evident",
                "name": "evident",
                "version": version,
                "purl": purl("evident", &version),
            },
        },
        "components": components,
        "dependencies": dependencies,
    }))
}

/// The predicate type of an SBOM reference (docs/PREDICATES.md).
pub const SBOM_PREDICATE: &str = "https://evident.dev/attestation/sbom/v1";

/// The `https://evident.dev/attestation/sbom/v1` predicate of an SBOM document: its
/// format, serial number and size, and the document itself by digest. A log entry stays
/// small however large the SBOM; whoever holds the document (published beside the
/// binaries) checks it against the digest.
fn sbom_predicate(bom: &Value, path: &Path, bytes: &[u8]) -> Value {
    json!({
        "bomFormat": bom["bomFormat"],
        "specVersion": bom["specVersion"],
        "serialNumber": bom["serialNumber"],
        "components": bom["components"].as_array().map_or(0, Vec::len),
        "document": {
            "name": path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "mediaType": "application/vnd.cyclonedx+json",
            "digest": {"sha256": sha256_hex(bytes)},
        },
    })
}

/// Who built, and when.
#[derive(Debug)]
struct Build {
    builder_id: String,
    repository: Option<String>,
    started_on: Option<String>,
    invocation_id: Option<String>,
}

/// The SLSA provenance v1 predicate of a release build of `artifacts` from the work
/// tree's commit.
fn provenance(workspace: &Path, artifacts: &[PathBuf], build: &Build) -> anyhow::Result<Value> {
    let commit = run(workspace, "git", &["rev-parse", "HEAD"])?;
    let dirty = !run(
        workspace,
        "git",
        &["status", "--porcelain", "--untracked-files=no"],
    )?
    .is_empty();
    if dirty {
        bail!("the work tree has uncommitted changes: a release is built from a commit");
    }
    let repository = match &build.repository {
        Some(r) => r.clone(),
        None => run(workspace, "git", &["remote", "get-url", "origin"])
            .unwrap_or_else(|_| "https://github.com/evident-dev/evident".to_owned()),
    };
    let lock = std::fs::read(workspace.join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut built = Vec::new();
    for path in artifacts {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading artifact {}", path.display()))?;
        built.push(json!({
            "name": path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "digest": {"sha256": sha256_hex(&bytes)},
        }));
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut metadata = json!({
        "startedOn": build.started_on.clone().unwrap_or_else(|| now.clone()),
        "finishedOn": now,
    });
    if let Some(id) = &build.invocation_id {
        metadata["invocationId"] = json!(id);
    }
    Ok(json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "repository": repository,
                "ref": commit,
                "command": BUILD_COMMAND,
            },
            "internalParameters": {
                "rustc": run(workspace, "rustc", &["--version"])?,
                "cargo": run(workspace, &cargo(), &["--version"])?,
            },
            "resolvedDependencies": [
                {"uri": format!("git+{repository}"), "digest": {"gitCommit": commit}},
                {"uri": "Cargo.lock", "digest": {"sha256": sha256_hex(&lock)}},
            ],
        },
        "runDetails": {
            "builder": {"id": build.builder_id},
            "metadata": metadata,
            "byproducts": built,
        },
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

    #[test]
    fn the_serial_number_is_a_version_4_uuid_fixed_by_its_seed() {
        let a = uuid_of(b"lock");
        assert_eq!(a, uuid_of(b"lock"));
        assert_ne!(a, uuid_of(b"other lock"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    /// The SBOM of this workspace: every shipped crate and no test-only one, each with
    /// its purl, and the crates.io ones with the lock file's checksum.
    #[test]
    fn the_sbom_lists_the_shipped_crates_with_their_checksums() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let bom = sbom(root).unwrap();
        assert_eq!(bom["bomFormat"], "CycloneDX");
        assert_eq!(bom["specVersion"], "1.5");
        let components = bom["components"].as_array().unwrap();
        let named = |name: &str| components.iter().find(|c| c["name"] == name);
        for shipped in [
            "evident-server",
            "evident-client",
            "evident-core",
            "tonic",
            "sled",
        ] {
            assert!(named(shipped).is_some(), "{shipped} is missing");
        }
        // Test-only and bench-only crates do not ship.
        for unshipped in ["proptest", "criterion", "evident-tests", "evident-benches"] {
            assert!(
                named(unshipped).is_none(),
                "{unshipped} should not be listed"
            );
        }
        let tonic = named("tonic").unwrap();
        assert!(
            tonic["purl"]
                .as_str()
                .unwrap()
                .starts_with("pkg:cargo/tonic@")
        );
        assert_eq!(tonic["hashes"][0]["alg"], "SHA-256");
        assert_eq!(tonic["hashes"][0]["content"].as_str().unwrap().len(), 64);
        // Every dependency reference names a listed component.
        let refs: BTreeSet<&str> = components
            .iter()
            .map(|c| c["bom-ref"].as_str().unwrap())
            .collect();
        for d in bom["dependencies"].as_array().unwrap() {
            for on in d["dependsOn"].as_array().unwrap() {
                assert!(
                    refs.contains(on.as_str().unwrap()),
                    "{on} is not a component"
                );
            }
        }
    }
}

//! `evident signer`: signers in the trust registry, changed by administrators, listed and shown.

use clap::Subcommand;
use evident_client::keyfile::read_signer_key;
use evident_client::output::{
    AdminOutput, SignerEventOutput, SignerKeyOutput, SignerListOutput, SignerShowOutput,
    SigstoreRootOutput,
};
use evident_client::report::escape_terminal;
use evident_client::signers::key_status;
use evident_client::{now_nanos, time_text};
use evident_core::registry::{CertificateRule, Change};

use super::admin::submit_change;
use crate::{AdminKeys, Cli, Format, connect, print_json};

#[derive(Debug, Subcommand)]
pub(crate) enum SignerCommand {
    /// Register a signer: the identity and its key, or (keyless) the Sigstore certificates
    /// that stand for it.
    Add {
        /// Who the signer is in the registry, e.g. ci@payments-pipeline.
        #[arg(long)]
        identity: String,
        /// The public key: 64 hex digits (Ed25519), a PEM public key (ECDSA P-256/P-384 as
        /// in cosign.pub, or Ed25519), or a file holding either.
        #[arg(long, required_unless_present_any = ["certificate_subject", "github_workflow"])]
        public_key: Option<String>,
        #[command(flatten)]
        certificate: CertificateArgs,
        /// A role, e.g. ci, scanner, reviewer, release (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A predicate type the key may attest, or * for any (repeatable).
        #[arg(long = "predicate-type", required = true)]
        predicate_types: Vec<String>,
        /// RFC 3339: not valid before.
        #[arg(long)]
        not_before: Option<String>,
        /// RFC 3339: not valid from.
        #[arg(long)]
        not_after: Option<String>,
        #[command(flatten)]
        admins: AdminKeys,
    },
    /// Give a signer a new key; the old key ends now (or at --old-key-not-after).
    Rotate {
        /// The signer.
        #[arg(long)]
        identity: String,
        /// The new public key (64 hex digits) or a file holding it.
        #[arg(long)]
        new_public_key: String,
        /// RFC 3339: when the old key stops being valid.
        #[arg(long)]
        old_key_not_after: Option<String>,
        #[command(flatten)]
        admins: AdminKeys,
    },
    /// Revoke a signer key, or everything a signer signs with (--identity, how a keyless
    /// signer is revoked), from a time on (default: when the change is integrated).
    Revoke {
        /// The public key (hex, PEM, or a file holding it).
        #[arg(
            long,
            required_unless_present = "identity",
            conflicts_with = "identity"
        )]
        public_key: Option<String>,
        /// The signer: revokes all its keys and its certificate rule.
        #[arg(long)]
        identity: Option<String>,
        /// Why, for auditors.
        #[arg(long)]
        reason: String,
        /// RFC 3339: revoked from.
        #[arg(long)]
        from: Option<String>,
        #[command(flatten)]
        admins: AdminKeys,
    },
    /// List administrators and signer keys, now, as of an entry index, or as of a time.
    List {
        /// The registry as it was before this entry.
        #[arg(long, conflicts_with = "as_of_time")]
        as_of_index: Option<u64>,
        /// RFC 3339: the registry after every entry integrated at or before this time.
        #[arg(long)]
        as_of_time: Option<String>,
    },
    /// One signer's keys and history.
    Show {
        /// The signer.
        identity: String,
    },
}

/// The certificate rule of a keyless signer (`signer add` without `--public-key`).
#[derive(Debug, clap::Args)]
pub(crate) struct CertificateArgs {
    /// Keyless: the certificates' OIDC issuer, exactly (e.g.
    /// https://token.actions.githubusercontent.com).
    #[arg(long, requires = "certificate_subject", conflicts_with_all = ["public_key", "github_workflow"])]
    certificate_issuer: Option<String>,
    /// Keyless: the certificates' subject (SAN), exact or with `*` for any run of
    /// characters other than / and @.
    #[arg(long, requires = "certificate_issuer")]
    certificate_subject: Option<String>,
    /// Keyless, GitHub Actions: the workflow that signs, ORG/REPO/PATH@REF (e.g.
    /// acme/payments/.github/workflows/release.yml@refs/heads/main); sets the issuer to
    /// GitHub's and the subject to https://github.com/ORG/REPO/PATH@REF.
    #[arg(long, conflicts_with = "public_key")]
    github_workflow: Option<String>,
    /// Keyless: a Fulcio certificate extension that must match, NAME=VALUE (e.g.
    /// source_repository_ref=refs/heads/main, runner_environment=github-hosted; repeatable).
    #[arg(long = "certificate-extension", value_name = "NAME=VALUE")]
    extensions: Vec<String>,
    /// Keyless: the Sigstore trusted root (as named by `evident sigstore trust`) the
    /// certificates must chain to; any trusted root when not given.
    #[arg(long)]
    trusted_root: Option<String>,
}

/// GitHub Actions' OIDC issuer.
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

impl CertificateArgs {
    /// The rule these flags give, if any.
    fn rule(&self) -> anyhow::Result<Option<CertificateRule>> {
        let mut github_repository = None;
        let (issuer, subject) = match (
            &self.certificate_issuer,
            &self.certificate_subject,
            &self.github_workflow,
        ) {
            (Some(issuer), Some(subject), None) => (issuer.clone(), subject.clone()),
            (None, None, Some(workflow)) => {
                let workflow = workflow.trim_start_matches("https://github.com/");
                let segments: Vec<&str> = workflow
                    .split('@')
                    .next()
                    .unwrap_or("")
                    .split('/')
                    .collect();
                if !workflow.contains('@') || segments.len() < 3 {
                    anyhow::bail!(
                        "--github-workflow {workflow:?}: write ORG/REPO/PATH@REF, e.g. \
                         acme/payments/.github/workflows/release.yml@refs/heads/main"
                    );
                }
                if segments[..2]
                    .iter()
                    .any(|s| s.contains('*') || s.is_empty())
                {
                    anyhow::bail!(
                        "--github-workflow {workflow:?}: name the organization and repository \
                         exactly (a pattern there would admit other owners' workflows)"
                    );
                }
                // The run must be in the workflow's own repository: a reusable workflow
                // called from elsewhere signs with its own name as the subject.
                github_repository = Some(format!(
                    "https://github.com/{}/{}",
                    segments[0], segments[1]
                ));
                (
                    GITHUB_ISSUER.to_owned(),
                    format!("https://github.com/{workflow}"),
                )
            }
            (None, None, None) if self.extensions.is_empty() && self.trusted_root.is_none() => {
                return Ok(None);
            }
            _ => anyhow::bail!(
                "a keyless signer needs --certificate-issuer and --certificate-subject, or \
                 --github-workflow"
            ),
        };
        let mut extensions = std::collections::BTreeMap::new();
        for pair in &self.extensions {
            let Some((name, value)) = pair.split_once('=') else {
                anyhow::bail!("--certificate-extension {pair:?}: write NAME=VALUE");
            };
            extensions.insert(name.trim().to_owned(), value.trim().to_owned());
        }
        if let Some(repository) = github_repository {
            extensions
                .entry("source_repository_uri".to_owned())
                .or_insert(repository);
        }
        Ok(Some(CertificateRule {
            issuer,
            subject,
            extensions,
            trusted_root: self.trusted_root.clone(),
        }))
    }
}

pub(crate) async fn run(cli: &Cli, command: &SignerCommand) -> anyhow::Result<()> {
    let (change, admins) = match command {
        SignerCommand::Add {
            identity,
            public_key,
            certificate,
            roles,
            predicate_types,
            not_before,
            not_after,
            admins,
        } => (
            Change::AddSigner {
                identity: identity.clone(),
                public_key: public_key
                    .as_deref()
                    .map(|k| read_signer_key("--public-key", k))
                    .transpose()?,
                certificate: certificate.rule()?,
                roles: roles.clone(),
                predicate_types: predicate_types.clone(),
                not_before: not_before.clone(),
                not_after: not_after.clone(),
            },
            admins,
        ),
        SignerCommand::Rotate {
            identity,
            new_public_key,
            old_key_not_after,
            admins,
        } => (
            Change::RotateSigner {
                identity: identity.clone(),
                new_public_key: read_signer_key("--new-public-key", new_public_key)?,
                old_key_not_after: old_key_not_after.clone(),
            },
            admins,
        ),
        SignerCommand::Revoke {
            public_key,
            identity,
            reason,
            from,
            admins,
        } => (
            match (public_key, identity) {
                (Some(key), _) => Change::RevokeKey {
                    public_key: read_signer_key("--public-key", key)?,
                    from: from.clone(),
                    reason: reason.clone(),
                },
                (None, Some(identity)) => Change::RevokeSigner {
                    identity: identity.clone(),
                    from: from.clone(),
                    reason: reason.clone(),
                },
                (None, None) => anyhow::bail!("give --public-key or --identity"),
            },
            admins,
        ),
        SignerCommand::List {
            as_of_index,
            as_of_time,
        } => return list_signers(cli, *as_of_index, as_of_time.as_deref()).await,
        SignerCommand::Show { identity } => return show_signer(cli, identity).await,
    };
    submit_change(cli, &change, admins).await
}
async fn list_signers(
    cli: &Cli,
    as_of_index: Option<u64>,
    as_of_time: Option<&str>,
) -> anyhow::Result<()> {
    let time = as_of_time
        .map(|t| evident_core::registry::parse_time("--as-of-time", t))
        .transpose()?;
    let mut client = connect(cli).await?;
    let listing = client.list_signers_at(as_of_index, time).await?;
    // Key status is shown at the time asked about.
    let now = time.unwrap_or_else(now_nanos);
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&SignerListOutput {
            as_of_index: listing.as_of_index,
            threshold: listing.threshold,
            admins: listing.admins.iter().map(AdminOutput::from).collect(),
            signers: listing
                .signers
                .iter()
                .map(|k| SignerKeyOutput::new(k, now))
                .collect(),
            sigstore_roots: listing
                .sigstore_roots
                .iter()
                .map(|(name, digest)| SigstoreRootOutput {
                    name: name.clone(),
                    sha256: digest.to_hex(),
                })
                .collect(),
        }),
        Format::Human => {
            println!(
                "registry after {} entries; administrators ({} must sign):",
                listing.as_of_index, listing.threshold
            );
            for a in &listing.admins {
                println!(
                    "  {}  {}",
                    escape_terminal(&a.identity),
                    &a.key.key_id()[..16]
                );
            }
            if !listing.sigstore_roots.is_empty() {
                println!("Sigstore trusted roots:");
                for (name, digest) in &listing.sigstore_roots {
                    println!(
                        "  {}  sha256 {}",
                        escape_terminal(name),
                        &digest.to_hex()[..16]
                    );
                }
            }
            println!("signer keys:");
            for k in &listing.signers {
                println!(
                    "  {}  {}  roles [{}]  predicates [{}]  {}",
                    escape_terminal(&k.identity),
                    escape_terminal(&short_credential(&k.credential)),
                    escape_terminal(&k.roles.iter().cloned().collect::<Vec<_>>().join(", ")),
                    escape_terminal(
                        &k.predicate_types
                            .iter()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    escape_terminal(&key_status(k, now))
                );
            }
        }
    }
    Ok(())
}

async fn show_signer(cli: &Cli, identity: &str) -> anyhow::Result<()> {
    let mut client = connect(cli).await?;
    let history = client.signer_history(identity).await?;
    let now = now_nanos();
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&SignerShowOutput {
            identity: identity.to_owned(),
            keys: history
                .keys
                .iter()
                .map(|k| SignerKeyOutput::new(k, now))
                .collect(),
            history: history.events.iter().map(SignerEventOutput::from).collect(),
        }),
        Format::Human => {
            println!("{}", escape_terminal(identity));
            for k in &history.keys {
                println!(
                    "  {}  {}",
                    escape_terminal(&short_credential(&k.credential)),
                    escape_terminal(&key_status(k, now))
                );
            }
            for e in &history.events {
                println!(
                    "  entry {} at {}: {}",
                    e.index,
                    time_text(e.time),
                    escape_terminal(&e.summary)
                );
            }
        }
    }
    Ok(())
}

/// A credential in one short phrase: a key id prefix, or a keyless signer's certificates.
fn short_credential(credential: &evident_core::registry::Credential) -> String {
    use evident_core::registry::Credential;
    match credential {
        Credential::Ed25519(_) => format!("key {}", &credential.key_id()[..16]),
        Credential::Ecdsa(key) => {
            format!("{} key {}", key.curve().name(), &credential.key_id()[..16])
        }
        Credential::Certificate(rule) => rule.describe(),
    }
}

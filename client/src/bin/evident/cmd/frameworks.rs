//! `evident frameworks`: the framework catalogue (built in, and a user's extension), and
//! what a policy's controls evidence (docs/FRAMEWORKS.md). Offline.

use std::path::PathBuf;

use anyhow::Context as _;
use evident_client::output::FrameworksOutput;
use evident_client::report::escape_terminal;
use evident_core::frameworks::Catalogue;
use evident_core::policy::Policy;

use crate::{Cli, Format, print_json};

/// `evident frameworks` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A catalogue file of the same form that extends the built-in one (new frameworks,
    /// controls and mappings); refused whole if any of it is wrong.
    #[arg(long, value_name = "FILE", env = "EVIDENT_CATALOGUE")]
    pub(crate) catalogue: Option<PathBuf>,
    /// A policy document (TOML, as `evident policy submit` takes it): show what each of its
    /// controls evidences.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy_file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) output: crate::DocOutput,
}

/// The built-in catalogue, extended by `--catalogue` when given.
pub(crate) fn catalogue(file: Option<&std::path::Path>) -> anyhow::Result<Catalogue> {
    let mut catalogue = Catalogue::builtin();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--catalogue: reading {}", path.display()))?;
        catalogue
            .extend(&text)
            .with_context(|| format!("--catalogue {}", path.display()))?;
    }
    Ok(catalogue)
}

pub(crate) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    let catalogue = catalogue(args.catalogue.as_deref())?;
    let policy = match &args.policy_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--policy-file: reading {}", path.display()))?;
            Some(Policy::parse(&text).with_context(|| format!("{}", path.display()))?)
        }
        None => None,
    };
    let out = FrameworksOutput::new(&catalogue, policy.as_ref());
    if cli.format != Format::Human {
        print_json(&out);
        return Ok(());
    }
    let e = |text: &str| escape_terminal(text).into_owned();
    match &out.policy {
        None => {
            for f in &out.frameworks {
                println!("{} — {}", e(&f.id), e(&f.name));
                println!("  source:  {}", e(&f.source));
                println!("  licence: {}", e(&f.licence));
                for c in &f.controls {
                    match &c.title {
                        Some(title) => println!("  {}  {} ({})", e(&c.id), e(title), e(&c.section)),
                        None => println!("  {}  ({})", e(&c.id), e(&c.section)),
                    }
                }
            }
            println!("{} mappings (--format json lists them)", out.mappings.len());
        }
        Some(p) => {
            println!("policy {}@{}", e(&p.name), p.version);
            for c in &p.controls {
                println!("{} ({})", e(&c.id), e(&c.predicate_type));
                if c.evidences.is_empty() {
                    println!("  evidences nothing the catalogue maps");
                }
                for ev in &c.evidences {
                    let mut from = Vec::new();
                    if ev.named_by_policy {
                        from.push("named by the policy");
                    }
                    if !ev.mapped_because.is_empty() {
                        from.push("mapped by the catalogue");
                    }
                    let title = ev
                        .title
                        .as_deref()
                        .map(|t| format!(" {}", e(t)))
                        .unwrap_or_default();
                    let unknown = if ev.known {
                        ""
                    } else {
                        " [not in the catalogue]"
                    };
                    println!(
                        "  {}{title}{unknown}: {}",
                        e(&ev.reference),
                        from.join(", ")
                    );
                }
            }
        }
    }
    Ok(())
}

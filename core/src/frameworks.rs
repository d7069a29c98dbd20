//! The auditor's frameworks: which controls of SOC 2, PCI DSS, NIST SP 800-53, the SSDF
//! (NIST SP 800-218) and ISO/IEC 27001 a policy control evidences.
//!
//! A [`Catalogue`] lists frameworks (each with its source document and licence) and their
//! controls (each with the section it comes from, and its title only where the licence lets
//! it be quoted), and mappings: the framework controls that evidence of a predicate type
//! evidences, with why. The built-in catalogue is `core/catalogue/frameworks.toml`
//! ([`Catalogue::builtin`]); a user's file of the same form extends it
//! ([`Catalogue::extend`]). A policy control can name framework controls itself
//! ([`crate::policy::Control::evidences`]); [`Catalogue::evidenced_by`] gives both, each
//! with where the link comes from.
//!
//! A mapping says what the evidence is *relevant to*, never that a framework control is
//! met: that is the auditor's judgement, over the evidence the report shows.

use std::fmt;

use serde::Deserialize;

use crate::policy::Control;

/// The built-in catalogue's text.
pub const BUILTIN: &str = include_str!("../catalogue/frameworks.toml");

/// The catalogue format this build reads.
pub const VERSION: u64 = 1;

/// A framework control named `FRAMEWORK:CONTROL`, e.g. `soc2:CC8.1`,
/// `nist-800-53r5:CM-3(2)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ControlRef {
    /// The framework's id in the catalogue.
    pub framework: String,
    /// The control's id in that framework.
    pub control: String,
}

impl ControlRef {
    /// Reads `FRAMEWORK:CONTROL`: both parts non-empty, no spaces or control characters.
    pub fn parse(text: &str) -> Result<ControlRef, String> {
        let (framework, control) = text.split_once(':').ok_or_else(|| {
            format!(
                "{text:?} is not FRAMEWORK:CONTROL (e.g. \"soc2:CC8.1\", \"nist-800-53r5:CM-3\")"
            )
        })?;
        let bad = |part: &str| {
            part.is_empty() || part.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        if bad(framework) || bad(control) {
            return Err(format!(
                "{text:?} is not FRAMEWORK:CONTROL: both parts must be non-empty, without spaces"
            ));
        }
        Ok(ControlRef {
            framework: framework.to_owned(),
            control: control.to_owned(),
        })
    }
}

impl fmt::Display for ControlRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.framework, self.control)
    }
}

/// A property of a policy control that a mapping can require besides its predicate type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// `separation_of_duties = true`.
    SeparationOfDuties,
    /// `min_approvals` is set.
    MinApprovals,
    /// `no_changes_requested = true`.
    NoChangesRequested,
    /// `reviewed_commit_is_built = true`.
    ReviewedCommitIsBuilt,
    /// `max_severity` is set.
    MaxSeverity,
    /// `max_age` is set.
    MaxAge,
    /// A `require` condition is set.
    Require,
}

impl Feature {
    /// The field of a policy control it names, e.g. `separation_of_duties`.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::SeparationOfDuties => "separation_of_duties",
            Feature::MinApprovals => "min_approvals",
            Feature::NoChangesRequested => "no_changes_requested",
            Feature::ReviewedCommitIsBuilt => "reviewed_commit_is_built",
            Feature::MaxSeverity => "max_severity",
            Feature::MaxAge => "max_age",
            Feature::Require => "require",
        }
    }

    /// Whether `control` has this property.
    pub fn of(self, control: &Control) -> bool {
        match self {
            Feature::SeparationOfDuties => control.separation_of_duties,
            Feature::MinApprovals => control.min_approvals.is_some(),
            Feature::NoChangesRequested => control.no_changes_requested,
            Feature::ReviewedCommitIsBuilt => control.reviewed_commit_is_built,
            Feature::MaxSeverity => control.max_severity.is_some(),
            Feature::MaxAge => control.max_age_nanos.is_some(),
            Feature::Require => control.require.is_some(),
        }
    }
}

/// A framework, with its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framework {
    /// Its id, the `FRAMEWORK` of `FRAMEWORK:CONTROL`.
    pub id: String,
    /// Its name for people.
    pub name: String,
    /// The document its controls come from.
    pub source: String,
    /// Where that document is published.
    pub url: Option<String>,
    /// What the source's licence allows this catalogue to reproduce.
    pub licence: String,
    /// Whether control titles may be quoted (else controls carry none).
    pub quote_titles: bool,
    /// Its controls.
    pub controls: Vec<FrameworkControl>,
}

/// `[[framework]]` as written: a new framework gives every field; one that extends a
/// framework already listed gives its id and controls only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFramework {
    id: String,
    name: Option<String>,
    source: Option<String>,
    url: Option<String>,
    licence: Option<String>,
    quote_titles: Option<bool>,
    #[serde(rename = "control", default)]
    controls: Vec<FrameworkControl>,
}

/// A control of a framework.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameworkControl {
    /// Its identifier in the framework, e.g. `CC8.1`, `CM-3(2)`, `PW.7`, `A.8.32`.
    pub id: String,
    /// Its title, only where the framework's licence allows quoting it.
    #[serde(default)]
    pub title: Option<String>,
    /// The section of the source it comes from.
    pub section: String,
}

/// What evidence of one predicate type evidences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The predicate type of the policy control's evidence.
    pub predicate_type: String,
    /// What the policy control must check besides, for the mapping to hold.
    pub features: Vec<Feature>,
    /// The framework controls it evidences.
    pub evidences: Vec<ControlRef>,
    /// Why, in words an auditor reads.
    pub rationale: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    version: u64,
    #[serde(rename = "framework", default)]
    frameworks: Vec<RawFramework>,
    #[serde(rename = "mapping", default)]
    mappings: Vec<RawMapping>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    predicate_type: String,
    #[serde(default)]
    features: Vec<Feature>,
    evidences: Vec<String>,
    rationale: String,
}

/// Why a catalogue was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("framework catalogue: {0}")]
pub struct CatalogueError(pub String);

/// Where the link between a policy control and a framework control comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The policy control names it (`evidences`).
    Policy,
    /// A catalogue mapping, with its rationale.
    Mapping(String),
}

/// A framework control a policy control evidences, resolved against the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidenced {
    /// The framework control.
    pub reference: ControlRef,
    /// Where the link comes from (a control both names and maps has both).
    pub sources: Vec<Source>,
    /// Whether the catalogue lists it (a policy may name controls it does not).
    pub known: bool,
}

/// Frameworks, their controls, and what Evident's evidence evidences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    frameworks: Vec<Framework>,
    mappings: Vec<Mapping>,
}

impl Catalogue {
    /// The built-in catalogue (`core/catalogue/frameworks.toml`).
    pub fn builtin() -> Catalogue {
        Catalogue::parse(BUILTIN).expect("the built-in catalogue is valid (a test checks it)")
    }

    /// Reads a catalogue on its own: every id unique, no title where the framework's
    /// licence does not allow one, every mapping naming controls the catalogue lists.
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let mut catalogue = Catalogue {
            frameworks: Vec::new(),
            mappings: Vec::new(),
        };
        catalogue.extend(text)?;
        Ok(catalogue)
    }

    /// Adds a user's file of the same form: new frameworks, new controls of a framework
    /// already listed (under its id, with no other field), and new mappings. Nothing
    /// already listed is changed; on an error the catalogue is as it was.
    pub fn extend(&mut self, text: &str) -> Result<(), CatalogueError> {
        let raw: RawCatalogue = toml::from_str(text).map_err(|e| CatalogueError(e.to_string()))?;
        if raw.version != VERSION {
            return Err(CatalogueError(format!(
                "version {} is not the version this build reads ({VERSION})",
                raw.version
            )));
        }
        let mut next = self.clone();
        for framework in raw.frameworks {
            next.add_framework(framework)?;
        }
        for mapping in raw.mappings {
            let evidences = mapping
                .evidences
                .iter()
                .map(|r| ControlRef::parse(r).map_err(CatalogueError))
                .collect::<Result<Vec<_>, _>>()?;
            if mapping.predicate_type.trim().is_empty() || mapping.rationale.trim().is_empty() {
                return Err(CatalogueError(
                    "a mapping needs a predicate_type and a rationale".into(),
                ));
            }
            if evidences.is_empty() {
                return Err(CatalogueError(format!(
                    "the mapping of {} evidences nothing",
                    mapping.predicate_type
                )));
            }
            if let Some(unknown) = evidences.iter().find(|r| next.control(r).is_none()) {
                return Err(CatalogueError(format!(
                    "the mapping of {} names {unknown}, which the catalogue does not list",
                    mapping.predicate_type
                )));
            }
            next.mappings.push(Mapping {
                predicate_type: mapping.predicate_type,
                features: mapping.features,
                evidences,
                rationale: mapping.rationale,
            });
        }
        *self = next;
        Ok(())
    }

    fn add_framework(&mut self, raw: RawFramework) -> Result<(), CatalogueError> {
        let id = raw.id;
        if id.is_empty() || id.contains(':') || id.chars().any(char::is_whitespace) {
            return Err(CatalogueError(format!(
                "framework id {id:?} must be non-empty, without ':' or spaces"
            )));
        }
        let existing = self.frameworks.iter().position(|f| f.id == id);
        let framework = match existing {
            Some(i) => {
                if raw.name.is_some()
                    || raw.source.is_some()
                    || raw.url.is_some()
                    || raw.licence.is_some()
                    || raw.quote_titles.is_some()
                {
                    return Err(CatalogueError(format!(
                        "framework {id} is already listed: to add controls to it, give its id \
                         and the controls only"
                    )));
                }
                &mut self.frameworks[i]
            }
            None => {
                let need = |field: Option<String>, name: &str| {
                    field.filter(|f| !f.trim().is_empty()).ok_or_else(|| {
                        CatalogueError(format!(
                            "framework {id} needs `{name}`: a new framework names its source \
                             document and what its licence allows"
                        ))
                    })
                };
                self.frameworks.push(Framework {
                    name: need(raw.name, "name")?,
                    source: need(raw.source, "source")?,
                    licence: need(raw.licence, "licence")?,
                    url: raw.url,
                    quote_titles: raw.quote_titles.ok_or_else(|| {
                        CatalogueError(format!(
                            "framework {id} needs `quote_titles`: whether its licence lets \
                             control titles be quoted"
                        ))
                    })?,
                    id: id.clone(),
                    controls: Vec::new(),
                });
                self.frameworks.last_mut().expect("just pushed")
            }
        };
        for control in raw.controls {
            ControlRef::parse(&format!("{id}:{}", control.id)).map_err(CatalogueError)?;
            if framework.controls.iter().any(|c| c.id == control.id) {
                return Err(CatalogueError(format!(
                    "{id}:{} is listed twice",
                    control.id
                )));
            }
            if control.title.is_some() && !framework.quote_titles {
                return Err(CatalogueError(format!(
                    "{id}:{} has a title, but the licence of {id} does not allow quoting its \
                     titles (quote_titles = false): reference it by identifier and section",
                    control.id
                )));
            }
            if control.section.trim().is_empty() {
                return Err(CatalogueError(format!(
                    "{id}:{} names no section of its source",
                    control.id
                )));
            }
            framework.controls.push(control);
        }
        Ok(())
    }

    /// The frameworks, in the catalogue's order.
    pub fn frameworks(&self) -> &[Framework] {
        &self.frameworks
    }

    /// The mappings, in the catalogue's order.
    pub fn mappings(&self) -> &[Mapping] {
        &self.mappings
    }

    /// A framework by id.
    pub fn framework(&self, id: &str) -> Option<&Framework> {
        self.frameworks.iter().find(|f| f.id == id)
    }

    /// A framework control, with its framework.
    pub fn control(&self, reference: &ControlRef) -> Option<(&Framework, &FrameworkControl)> {
        let framework = self.framework(&reference.framework)?;
        let control = framework
            .controls
            .iter()
            .find(|c| c.id == reference.control)?;
        Some((framework, control))
    }

    /// The framework controls `control` evidences: those it names, then those of every
    /// mapping of its predicate type whose features it has; each once, with every source.
    pub fn evidenced_by(&self, control: &Control) -> Vec<Evidenced> {
        let mut out: Vec<Evidenced> = Vec::new();
        let mut add = |reference: &ControlRef, source: Source| match out
            .iter_mut()
            .find(|e| &e.reference == reference)
        {
            Some(e) => {
                if !e.sources.contains(&source) {
                    e.sources.push(source);
                }
            }
            None => out.push(Evidenced {
                reference: reference.clone(),
                sources: vec![source],
                known: self.control(reference).is_some(),
            }),
        };
        for reference in &control.evidences {
            add(reference, Source::Policy);
        }
        for mapping in &self.mappings {
            if mapping.predicate_type == control.predicate_type
                && mapping.features.iter().all(|f| f.of(control))
            {
                for reference in &mapping.evidences {
                    add(reference, Source::Mapping(mapping.rationale.clone()));
                }
            }
        }
        out
    }
}

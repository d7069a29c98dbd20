//! The one check for names the server indexes, logs and prints: predicate types, subject
//! names, identities, roles, policy names, release names and versions.
//!
//! These strings end up in index keys (where a NUL separates fields), in one-line log
//! records, and on auditors' terminals and reports. A control character, a line or
//! paragraph separator or a bidirectional override in one can forge a log line, repaint a
//! terminal, reorder what a reader sees, or break an index. The server, audit replay and
//! offline verifiers call this same check where they parse the value, so they agree on what
//! a log may hold. It never rewrites a value: a bad one is refused, naming the field.

/// The longest name accepted, in bytes: room for any URI a predicate type uses.
pub const MAX_NAME_BYTES: usize = 1024;

/// Why a name cannot be carried by the indexes, logs or outputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty (or only whitespace) where one is required.
    #[error("{field} is empty")]
    Empty {
        /// What the name is, e.g. `predicateType`.
        field: String,
    },
    /// The name is longer than [`MAX_NAME_BYTES`].
    #[error("{field} is {len} bytes long, the limit is {MAX_NAME_BYTES}")]
    TooLong {
        /// What the name is.
        field: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The name holds a character that logs, terminals or indexes cannot carry safely.
    #[error(
        "{field} holds {what} (U+{code:04X}) at byte {at}: names may not hold control \
         characters, line or paragraph separators or bidirectional controls"
    )]
    Forbidden {
        /// What the name is.
        field: String,
        /// The character's code point.
        code: u32,
        /// Its byte offset in the name.
        at: usize,
        /// What kind of character it is.
        what: &'static str,
    },
}

/// What is wrong with `c` in a name, if anything.
fn forbidden(c: char) -> Option<&'static str> {
    match c {
        '\u{0}'..='\u{1f}' | '\u{7f}' => Some("a control character"),
        '\u{80}'..='\u{9f}' => Some("a C1 control character"),
        '\u{2028}' => Some("a line separator"),
        '\u{2029}' => Some("a paragraph separator"),
        '\u{200e}'
        | '\u{200f}'
        | '\u{061c}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => Some("a bidirectional control"),
        _ => None,
    }
}

/// Checks a required name: not empty, at most [`MAX_NAME_BYTES`], no forbidden character.
pub fn check_name(field: &str, value: &str) -> Result<(), NameError> {
    if value.trim().is_empty() {
        return Err(NameError::Empty {
            field: field.to_owned(),
        });
    }
    check_optional_name(field, value)
}

/// Like [`check_name`], but an empty value is accepted (an optional name, such as a
/// subject's).
pub fn check_optional_name(field: &str, value: &str) -> Result<(), NameError> {
    if value.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong {
            field: field.to_owned(),
            len: value.len(),
        });
    }
    match value
        .char_indices()
        .find_map(|(at, c)| forbidden(c).map(|what| (at, c, what)))
    {
        Some((at, c, what)) => Err(NameError::Forbidden {
            field: field.to_owned(),
            code: u32::from(c),
            at,
            what,
        }),
        None => Ok(()),
    }
}

//! Queries over the secondary indexes: filters intersected by leapfrogging over posting
//! lists, so a page costs a few index seeks (one block read each) per result, whatever the
//! log's size.
//!
//! Every posting list is sorted by entry index. To find the next entry on all of them, the
//! query seeks each list to the current candidate; a list that answers with a later index
//! moves the candidate there, and the round repeats until every list agrees. A time range
//! becomes an index range by binary search, since integrated times never go backwards.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::store::{Posting, Store, StoreError};

/// Most results per page.
pub const MAX_PAGE: usize = 1000;
/// Results per page when none is asked for.
pub const DEFAULT_PAGE: usize = 100;
/// Most index seeks one page may take. Filters whose lists interleave without meeting
/// could otherwise walk far through the log for one page; when the budget is spent the page
/// ends early, with a cursor to continue from.
pub const SEEK_BUDGET: u64 = 20_000;

/// What a query asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Lists every result must be on.
    pub postings: Vec<Posting>,
    /// Integrated time at or after (Unix nanoseconds).
    pub since: Option<i64>,
    /// Integrated time at or before.
    pub until: Option<i64>,
    /// Newest first.
    pub newest_first: bool,
}

impl Filters {
    /// A short digest of the filters, bound into cursors so that a cursor is only used with
    /// the query it came from.
    fn fingerprint(&self) -> [u8; 8] {
        let digest = Sha256::digest(format!("{self:?}").as_bytes());
        digest[..8].try_into().expect("8 of 32 bytes")
    }
}

/// Where a paginated query stands: the tree size it runs at and the next index to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The tree size fixed by the first page.
    pub size: u64,
    /// The next index to consider (inclusive).
    pub next: u64,
    fingerprint: [u8; 8],
}

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a cursor this server wrote.
    #[error("the cursor is malformed: pass next_cursor from the previous page unchanged")]
    Malformed,
    /// From a query with other filters.
    #[error(
        "the cursor belongs to a query with other filters: repeat the same filters, or drop the cursor to start over"
    )]
    OtherQuery,
}

impl Cursor {
    /// The text form handed to clients.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(24);
        bytes.extend_from_slice(&self.size.to_be_bytes());
        bytes.extend_from_slice(&self.next.to_be_bytes());
        bytes.extend_from_slice(&self.fingerprint);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A cursor that continues a query with `filters` at tree size `size` from index `next`.
    pub fn new(size: u64, next: u64, filters: &Filters) -> Cursor {
        Cursor {
            size,
            next,
            fingerprint: filters.fingerprint(),
        }
    }

    /// Reads a cursor for a query with `filters`.
    pub fn decode(text: &str, filters: &Filters) -> Result<Cursor, CursorError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| CursorError::Malformed)?;
        if bytes.len() != 24 {
            return Err(CursorError::Malformed);
        }
        let word = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let cursor = Cursor {
            size: word(0),
            next: word(8),
            fingerprint: bytes[16..24].try_into().expect("8 bytes"),
        };
        if cursor.fingerprint != filters.fingerprint() {
            return Err(CursorError::OtherQuery);
        }
        Ok(cursor)
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Matching entry indexes, in the order asked for.
    pub indexes: Vec<u64>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
    /// The tree size the query ran at.
    pub size: u64,
    /// Index seeks the page took (what its cost follows).
    pub seeks: u64,
}

/// The first index in `0..size` whose integrated time is at or after `time` (`size` when
/// none is).
pub fn first_at_or_after(store: &Store, time: i64, size: u64) -> Result<u64, StoreError> {
    let (mut lo, mut hi) = (0, size);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if store.time_of(mid)? < time {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Runs one page of a query over the first `size` entries (or the cursor's size).
pub fn run(
    store: &Store,
    filters: &Filters,
    size: u64,
    cursor: Option<Cursor>,
    page_size: usize,
) -> Result<Page, StoreError> {
    let size = cursor.map_or(size, |c| c.size.min(size));
    let lo = match filters.since {
        Some(t) => first_at_or_after(store, t, size)?,
        None => 0,
    };
    let hi = match filters.until {
        Some(t) if t < i64::MAX => first_at_or_after(store, t + 1, size)?,
        _ => size,
    };
    let lists: Vec<Posting> = if filters.postings.is_empty() {
        vec![Posting::All]
    } else {
        filters.postings.clone()
    };
    let forward = !filters.newest_first;
    let mut at = match (cursor, forward) {
        (Some(c), _) => Some(c.next),
        (None, true) => Some(lo),
        (None, false) => hi.checked_sub(1),
    };
    let mut indexes = Vec::new();
    let page_size = page_size.clamp(1, MAX_PAGE);
    let mut next = None;
    let mut budget = SEEK_BUDGET;
    while let Some(from) = at {
        let found = match next_match(store, &lists, from, forward, lo, hi, &mut budget)? {
            Match::None => break,
            Match::Spent(candidate) => {
                next = Some(Cursor::new(size, candidate, filters));
                break;
            }
            Match::Found(found) => found,
        };
        if indexes.len() == page_size {
            next = Some(Cursor::new(size, found, filters));
            break;
        }
        indexes.push(found);
        at = if forward {
            found.checked_add(1)
        } else {
            found.checked_sub(1)
        };
    }
    Ok(Page {
        indexes,
        next,
        size,
        seeks: SEEK_BUDGET - budget,
    })
}

/// What a search for the next match found.
enum Match {
    /// An index on every list.
    Found(u64),
    /// None in range.
    None,
    /// The seek budget ran out; the search can go on from this candidate.
    Spent(u64),
}

/// The first index from `from` on (or back) that is on every list, within `lo..hi`.
///
/// The lists take turns: each seeks to the candidate; one that answers with a later index
/// (earlier, going back) moves the candidate and is the first to agree with it; the search
/// ends when every list in a row has agreed. A single list costs one seek per result.
fn next_match(
    store: &Store,
    lists: &[Posting],
    from: u64,
    forward: bool,
    lo: u64,
    hi: u64,
    budget: &mut u64,
) -> Result<Match, StoreError> {
    let mut candidate = from;
    let mut agreeing = 0;
    for list in lists.iter().cycle() {
        if *budget == 0 {
            return Ok(Match::Spent(candidate));
        }
        *budget -= 1;
        match store.seek(list, candidate, forward, lo, hi)? {
            None => return Ok(Match::None),
            Some(found) if found != candidate => {
                candidate = found;
                agreeing = 1;
            }
            Some(_) => agreeing += 1,
        }
        if agreeing == lists.len() {
            return Ok(Match::Found(candidate));
        }
    }
    Ok(Match::None)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use evident_core::Hash;
    use evident_core::audit::Facts;
    use evident_core::dsse::Envelope;
    use evident_core::merkle::Frontier;
    use evident_core::record::{EntryKind, LeafRecord};

    use crate::store::{Indexed, NewEntry};

    /// A store of `n` attestations, entry `i` integrated at nanosecond `1_000 + i`;
    /// `facts(i)` says what entry `i` is indexed under.
    pub(crate) fn store_of(n: u64, facts: impl Fn(u64) -> Facts) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut frontier = Frontier::new();
        let mut previous = Hash::ZERO;
        let mut start = 0;
        while start < n {
            let mut entries = Vec::new();
            let mut nodes = Vec::new();
            for index in start..n.min(start + 5_000) {
                let envelope = Envelope {
                    payload: index.to_be_bytes().to_vec(),
                    payload_type: "test".into(),
                    // Queries never verify signatures; a record needs one.
                    signatures: vec![evident_core::dsse::Signature {
                        sig: vec![0; 64],
                        keyid: String::new(),
                    }],
                    sigstore: None,
                };
                let record = LeafRecord::new(
                    index,
                    1_000 + index as i64,
                    previous,
                    EntryKind::Attestation,
                    envelope,
                )
                .unwrap();
                let bytes = record.encode();
                let leaf_hash = record.leaf_hash();
                nodes.extend(frontier.append(leaf_hash));
                entries.push(NewEntry {
                    record: bytes,
                    indexed: Indexed {
                        index,
                        leaf_hash,
                        dedupe_key: Hash::sha256(&index.to_be_bytes()),
                        kind: EntryKind::Attestation,
                        facts: facts(index),
                    },
                });
                previous = leaf_hash;
            }
            store.append(entries, &nodes).unwrap();
            start += 5_000;
        }
        (dir, store)
    }

    #[test]
    fn lists_that_interleave_without_meeting_end_a_page_early_with_a_cursor() {
        // Signer "a" on even entries, role "r" on odd ones, except the last, which has both.
        let n = SEEK_BUDGET;
        let (_dir, store) = store_of(n, |i| Facts {
            signers: if i % 2 == 0 || i == n - 1 {
                vec!["a".into()]
            } else {
                vec![]
            },
            roles: if i % 2 == 1 { vec!["r".into()] } else { vec![] },
            ..Facts::default()
        });
        let filters = Filters {
            postings: vec![Posting::Signer("a".into()), Posting::Role("r".into())],
            ..Filters::default()
        };
        let mut cursor = None;
        let mut pages = 0;
        let found = loop {
            let page = run(&store, &filters, n, cursor, 10).unwrap();
            pages += 1;
            if !page.indexes.is_empty() {
                break page.indexes;
            }
            cursor = Some(page.next.expect("a spent page says where to go on"));
        };
        assert_eq!(found, vec![n - 1]);
        assert!(pages > 1, "the first page stopped at the seek budget");
    }

    #[test]
    fn time_ranges_and_directions_select_exact_bounds() {
        let (_dir, store) = store_of(100, |i| Facts {
            signers: vec![if i % 3 == 0 { "x" } else { "y" }.into()],
            ..Facts::default()
        });
        let filters = Filters {
            postings: vec![Posting::Signer("x".into())],
            since: Some(1_010),
            until: Some(1_030),
            newest_first: false,
        };
        let page = run(&store, &filters, 100, None, 100).unwrap();
        assert_eq!(page.indexes, vec![12, 15, 18, 21, 24, 27, 30]);
        assert_eq!(page.seeks, 8, "one seek per result, one to find the end");
        let newest = Filters {
            newest_first: true,
            ..filters.clone()
        };
        let page = run(&store, &newest, 100, None, 3).unwrap();
        assert_eq!(page.indexes, vec![30, 27, 24]);
        let rest = run(&store, &newest, 100, page.next, 100).unwrap();
        assert_eq!(rest.indexes, vec![21, 18, 15, 12]);
        assert!(rest.next.is_none());
        // Entry 0 newest-first, and an empty log.
        let all_x = Filters {
            postings: vec![Posting::Signer("x".into())],
            newest_first: true,
            ..Filters::default()
        };
        let page = run(&store, &all_x, 4, None, 10).unwrap();
        assert_eq!(page.indexes, vec![3, 0]);
        assert!(run(&store, &all_x, 0, None, 10).unwrap().indexes.is_empty());
    }

    #[test]
    fn a_cursor_round_trips_and_is_bound_to_its_filters() {
        let filters = Filters {
            postings: vec![Posting::Signer("ci".into())],
            ..Filters::default()
        };
        let cursor = Cursor {
            size: 10,
            next: 4,
            fingerprint: filters.fingerprint(),
        };
        assert_eq!(Cursor::decode(&cursor.encode(), &filters), Ok(cursor));
        let other = Filters {
            newest_first: true,
            ..filters.clone()
        };
        assert_eq!(
            Cursor::decode(&cursor.encode(), &other),
            Err(CursorError::OtherQuery)
        );
        assert_eq!(
            Cursor::decode("not a cursor", &filters),
            Err(CursorError::Malformed)
        );
    }
}

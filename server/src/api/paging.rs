//! Pages of the list calls, `ListSigners` and `ListPolicies` (AIP-158): the page size a
//! request gets, and the page token that brings the next page.
//!
//! A token is opaque to clients (base64url of `LIST:AS_OF:OFFSET`); it pins what the first
//! page listed (the registry as of an entry, or the policies below a log size), so the
//! pages of one listing never skip or repeat an item while the log grows. It carries no
//! secret and needs no signature: a forged one can only name another page of what the
//! caller may read anyway, and every field is checked before use.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tonic::Status;

/// The page size when a request gives none: the whole listing, up to this many items, so
/// a client that predates paging (and ignores `next_page_token`) still sees every signer
/// key or policy version of any registry it is likely to meet; bounded, so an answer
/// stays a few MiB.
pub const DEFAULT_PAGE: usize = 10_000;
/// The largest page a request may ask for; a larger page size is lowered to it, as
/// AIP-158 asks.
pub const MAX_PAGE: usize = 1000;

/// Which call a token belongs to: a token of one call is refused by the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// `ListSigners`.
    Signers,
    /// `ListPolicies`.
    Policies,
}

impl List {
    fn tag(self) -> &'static str {
        match self {
            List::Signers => "signers",
            List::Policies => "policies",
        }
    }

    fn call(self) -> &'static str {
        match self {
            List::Signers => "ListSigners",
            List::Policies => "ListPolicies",
        }
    }
}

/// Where a listing continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// The number of log entries the listing covers, fixed by its first page.
    pub as_of: u64,
    /// The position of the next item.
    pub offset: usize,
}

impl Token {
    /// The token of a request: `None` for the first page.
    pub fn parse(text: &str, list: List) -> Result<Option<Token>, Status> {
        if text.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            Status::invalid_argument(format!(
                "page_token is not a token {} gave: pass the previous page's next_page_token \
                 unchanged, or none for the first page",
                list.call()
            ))
        };
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let mut parts = text.split(':');
        let (Some(tag), Some(as_of), Some(offset), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if tag != list.tag() {
            return Err(invalid());
        }
        Ok(Some(Token {
            as_of: as_of.parse().map_err(|_| invalid())?,
            offset: offset.parse().map_err(|_| invalid())?,
        }))
    }

    fn encode(self, list: List) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}:{}", list.tag(), self.as_of, self.offset))
    }
}

/// The page size a request gets: [`DEFAULT_PAGE`] for 0, else at most [`MAX_PAGE`].
pub fn page_size(requested: u32) -> usize {
    match usize::try_from(requested) {
        Ok(0) => DEFAULT_PAGE,
        Ok(n) => n.min(MAX_PAGE),
        Err(_) => MAX_PAGE,
    }
}

/// The page of `items` from `offset`, and the next page's token (empty after the last). An
/// offset past the end is a token this listing did not give.
pub fn page<T>(
    items: Vec<T>,
    list: List,
    as_of: u64,
    offset: usize,
    page_size: usize,
) -> Result<(Vec<T>, String), Status> {
    if offset > items.len() {
        return Err(Status::invalid_argument(format!(
            "page_token is past the end of the listing ({} items): pass the previous page's \
             next_page_token unchanged, or none for the first page",
            items.len()
        )));
    }
    let end = offset.saturating_add(page_size).min(items.len());
    let next = if end < items.len() {
        Token { as_of, offset: end }.encode(list)
    } else {
        String::new()
    };
    Ok((
        items.into_iter().skip(offset).take(end - offset).collect(),
        next,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

    #[test]
    fn pages_cover_the_listing_once_in_order() {
        let items: Vec<u32> = (0..25).collect();
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let at = Token::parse(&token, List::Signers).unwrap();
            let offset = at.map_or(0, |t| t.offset);
            let (page, next) = page(items.clone(), List::Signers, 9, offset, 10).unwrap();
            assert!(page.len() <= 10);
            seen.extend(page);
            if next.is_empty() {
                break;
            }
            assert_eq!(
                Token::parse(&next, List::Signers).unwrap().unwrap().as_of,
                9
            );
            token = next;
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn a_token_of_another_call_or_garbage_is_refused() {
        let (_, next) = page(vec![1, 2, 3], List::Policies, 3, 0, 1).unwrap();
        assert!(Token::parse(&next, List::Policies).unwrap().is_some());
        for bad in [next.as_str(), "x", "!!", "c2lnbmVyczox"] {
            let refused = Token::parse(bad, List::Signers).unwrap_err();
            assert_eq!(refused.code(), tonic::Code::InvalidArgument);
            assert!(refused.message().contains("page_token"), "{refused:?}");
        }
        assert!(page(vec![1], List::Signers, 1, 2, 1).is_err());
    }

    #[test]
    fn page_sizes_have_a_default_and_a_ceiling() {
        assert_eq!(page_size(0), DEFAULT_PAGE);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(u32::MAX), MAX_PAGE);
    }
}

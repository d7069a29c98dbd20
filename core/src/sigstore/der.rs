//! A strict, allocation-free DER reader for the few structures x509-parser does not cover
//! (RFC 3161 timestamps, SCT reconstruction, SubjectPublicKeyInfo).
//!
//! Only definite, minimally encoded lengths and single-byte tags are accepted: DER has one
//! encoding per value, and a reader that accepts more lets two byte strings mean the same
//! thing. It never panics and never recurses on its own.

/// Universal and context tags used by the callers.
pub(crate) mod tag {
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const UTF8_STRING: u8 = 0x0c;
    pub const GENERALIZED_TIME: u8 = 0x18;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
    pub const CONTEXT_0: u8 = 0xa0;
    pub const CONTEXT_1: u8 = 0xa1;
    pub const CONTEXT_3: u8 = 0xa3;
    pub const IMPLICIT_0: u8 = 0x80;
}

/// Why bytes are not the DER expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DerError(pub String);

impl std::fmt::Display for DerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One tag-length-value element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    /// The identifier octet.
    pub tag: u8,
    /// The contents octets.
    pub body: &'a [u8],
    /// The whole element, header included.
    pub raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// A reader over the contents (for constructed elements).
    pub fn reader(&self) -> Reader<'a> {
        Reader::new(self.body)
    }
}

/// Reads consecutive elements from a byte string.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from `data`.
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    /// Whether every element was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The tag of the next element, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// The next element.
    pub fn next_tlv(&mut self) -> Result<Tlv<'a>, DerError> {
        let data = self.data;
        let (&tag, rest) = data
            .split_first()
            .ok_or_else(|| DerError("unexpected end of DER".into()))?;
        if tag & 0x1f == 0x1f {
            return Err(DerError("multi-byte DER tags are not supported".into()));
        }
        let (&first, rest) = rest
            .split_first()
            .ok_or_else(|| DerError("DER element has no length".into()))?;
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(DerError("indefinite or oversized DER length".into()));
            }
            let bytes = rest
                .get(..n)
                .ok_or_else(|| DerError("truncated DER length".into()))?;
            if bytes[0] == 0 {
                return Err(DerError("DER length is not minimally encoded".into()));
            }
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            if len < 0x80 {
                return Err(DerError("DER length is not minimally encoded".into()));
            }
            (len, 2 + n)
        };
        let end = header
            .checked_add(len)
            .ok_or_else(|| DerError("DER length overflows".into()))?;
        if end > data.len() {
            return Err(DerError(format!(
                "DER element of {len} bytes runs past the end of its container"
            )));
        }
        self.data = &data[end..];
        Ok(Tlv {
            tag,
            body: &data[header..end],
            raw: &data[..end],
        })
    }

    /// The next element, which must carry `tag`.
    pub fn expect(&mut self, want: u8) -> Result<Tlv<'a>, DerError> {
        let tlv = self.next_tlv()?;
        if tlv.tag != want {
            return Err(DerError(format!(
                "expected DER tag 0x{want:02x}, found 0x{:02x}",
                tlv.tag
            )));
        }
        Ok(tlv)
    }

    /// The next element if it carries `tag`.
    pub fn optional(&mut self, want: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(want) {
            self.next_tlv().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails unless every element was read.
    pub fn finish(&self) -> Result<(), DerError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(DerError(format!(
                "{} trailing bytes after DER element",
                self.data.len()
            )))
        }
    }
}

/// Parses `data` as exactly one element with `tag`.
pub(crate) fn single(data: &[u8], want: u8) -> Result<Tlv<'_>, DerError> {
    let mut reader = Reader::new(data);
    let tlv = reader.expect(want)?;
    reader.finish()?;
    Ok(tlv)
}

/// Encodes one element.
pub(crate) fn encode(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push(tag);
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// The DER contents of a dotted OID, e.g. `"1.2.840.10045.2.1"`.
pub(crate) fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').filter_map(|a| a.parse().ok()).collect();
    let mut out = Vec::new();
    if arcs.len() < 2 {
        return out;
    }
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        out.extend_from_slice(&tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for a in &arcs[2..] {
        push(*a);
    }
    out
}

/// The dotted form of OID contents, for messages.
pub(crate) fn oid_text(body: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for b in body {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
        if acc > u64::MAX >> 8 {
            return hex::encode(body);
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Parses a GeneralizedTime (`YYYYMMDDHHMMSS[.f+]Z`) into nanoseconds since the epoch.
pub(crate) fn generalized_time(body: &[u8]) -> Result<i64, DerError> {
    let text =
        std::str::from_utf8(body).map_err(|_| DerError("GeneralizedTime is not ASCII".into()))?;
    let bad = || {
        DerError(format!(
            "GeneralizedTime `{text}` is not YYYYMMDDHHMMSS[.f]Z"
        ))
    };
    let text_z = text.strip_suffix('Z').ok_or_else(bad)?;
    let (whole, frac) = match text_z.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text_z, ""),
    };
    if whole.len() != 14
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 9
        || frac.ends_with('0')
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| whole[r].parse::<u32>().map_err(|_| bad());
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(4..6)?, num(6..8)?)
        .ok_or_else(bad)?;
    let time = date
        .and_hms_opt(num(8..10)?, num(10..12)?, num(12..14)?)
        .ok_or_else(bad)?;
    let mut nanos: i64 = 0;
    if !frac.is_empty() {
        let padded = format!("{frac:0<9}");
        nanos = padded.parse().map_err(|_| bad())?;
    }
    time.and_utc()
        .timestamp_nanos_opt()
        .and_then(|t| t.checked_add(nanos))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_elements() {
        let inner = encode(tag::INTEGER, &[5]);
        let outer = encode(tag::SEQUENCE, &inner);
        let seq = single(&outer, tag::SEQUENCE).expect("a sequence");
        let mut r = seq.reader();
        assert_eq!(r.expect(tag::INTEGER).expect("an integer").body, &[5]);
        assert!(r.finish().is_ok());
    }

    #[test]
    fn long_lengths_round_trip() {
        let body = vec![7u8; 300];
        let enc = encode(tag::OCTET_STRING, &body);
        assert_eq!(&enc[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(
            single(&enc, tag::OCTET_STRING).expect("parses").body,
            &body[..]
        );
    }

    #[test]
    fn refuses_non_minimal_and_indefinite_lengths() {
        assert!(single(&[0x04, 0x81, 0x01, 0x00], tag::OCTET_STRING).is_err());
        assert!(single(&[0x04, 0x82, 0x00, 0x81], tag::OCTET_STRING).is_err());
        assert!(single(&[0x30, 0x80, 0x00, 0x00], tag::SEQUENCE).is_err());
    }

    #[test]
    fn refuses_truncation_and_trailing_bytes() {
        assert!(single(&[0x04, 0x05, 0x00], tag::OCTET_STRING).is_err());
        assert!(single(&[0x04, 0x01, 0x00, 0x00], tag::OCTET_STRING).is_err());
        assert!(single(&[], tag::OCTET_STRING).is_err());
        assert!(single(&[0x1f, 0x01, 0x00], 0x1f).is_err());
    }

    #[test]
    fn oids_round_trip() {
        let body = oid("1.2.840.10045.4.3.2");
        assert_eq!(body, [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
        assert_eq!(oid_text(&body), "1.2.840.10045.4.3.2");
    }

    #[test]
    fn generalized_times() {
        assert_eq!(generalized_time(b"19700101000001Z"), Ok(1_000_000_000));
        assert_eq!(generalized_time(b"19700101000001.5Z"), Ok(1_500_000_000));
        assert!(generalized_time(b"19700101000001.50Z").is_err());
        assert!(generalized_time(b"19700101000001").is_err());
        assert!(generalized_time(b"19701301000001Z").is_err());
    }
}

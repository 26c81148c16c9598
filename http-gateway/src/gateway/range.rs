//! Single byte-range requests (RFC 9110 §14). Several ranges in one request are answered with
//! the whole content (200), which the RFC allows; a header that does not parse is ignored.

use std::ops::Range;

use http_range_header::{EndPosition, StartPosition, parse_range_header};

/// What to send of a `size`-byte representation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selected {
    /// Everything (no `Range`, an unparsable one, or several ranges): 200.
    Full,
    /// These bytes (end exclusive): 206.
    Part(Range<u64>),
    /// The range starts at or past the end: 416.
    Unsatisfiable,
}

/// Applies a `Range` header value to a representation of `size` bytes.
pub(crate) fn select(header: Option<&str>, size: u64) -> Selected {
    let Some(header) = header else {
        return Selected::Full;
    };
    let Ok(parsed) = parse_range_header(header) else {
        return Selected::Full;
    };
    let [range] = parsed.ranges.as_slice() else {
        return Selected::Full;
    };
    let start = match range.start {
        StartPosition::Index(i) => i,
        // A suffix longer than the content selects all of it (RFC 9110 §14.1.3); nothing can be
        // selected from empty content.
        StartPosition::FromLast(n) => size.saturating_sub(n),
    };
    let end = match range.end {
        EndPosition::Index(last) if last < start => return Selected::Full,
        EndPosition::Index(last) => last.saturating_add(1).min(size),
        EndPosition::LastByte => size,
    };
    if start >= size {
        return Selected::Unsatisfiable;
    }
    Selected::Part(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        let s = |h: &str, size| select(Some(h), size);
        assert_eq!(s("bytes=0-0", 10), Selected::Part(0..1));
        assert_eq!(s("bytes=2-5", 10), Selected::Part(2..6));
        assert_eq!(s("bytes=2-", 10), Selected::Part(2..10));
        assert_eq!(s("bytes=5-100", 10), Selected::Part(5..10));
        assert_eq!(s("bytes=-3", 10), Selected::Part(7..10));
        assert_eq!(s("bytes=-30", 10), Selected::Part(0..10));
        assert_eq!(s("bytes=10-", 10), Selected::Unsatisfiable);
        assert_eq!(s("bytes=10-20", 10), Selected::Unsatisfiable);
        assert_eq!(s("bytes=0-", 0), Selected::Unsatisfiable);
        assert_eq!(s("bytes=-5", 0), Selected::Unsatisfiable);
        assert_eq!(select(None, 10), Selected::Full);
    }

    #[test]
    fn what_is_ignored() {
        for h in [
            "bytes=5-2",
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=",
            "",
        ] {
            assert_eq!(select(Some(h), 10), Selected::Full, "{h:?}");
        }
    }
}

//! Content paths: `/ipfs/<cid>[/name...]` or `<cid>[/name...]`, as the CLI and the gateway take
//! them.
//!
//! Segments are percent-decoded once and must then be plain names: no `.` or `..`, no `/`, no NUL,
//! nothing empty between two slashes. A path is never normalised: a request that tries to climb
//! out of its root is refused, not reinterpreted.

use std::fmt;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use thiserror::Error;

use crate::limits::{MAX_PATH_LEN, MAX_PATH_SEGMENTS};
use crate::{Cid, CidError, parse_cid};

/// Why a content path was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// Nothing to resolve.
    #[error("empty content path: expected /ipfs/<cid>[/path]")]
    Empty,
    /// The path has a namespace other than `/ipfs/` (IPNS is not resolved here).
    #[error("unsupported namespace in {path:?}: only /ipfs/<cid>[/path] is supported")]
    UnsupportedNamespace {
        /// The path (truncated).
        path: String,
    },
    /// The first segment is not a CID we can use.
    #[error("invalid root of content path: {0}")]
    Cid(#[from] CidError),
    /// The path is longer than any we resolve (decoded, or as text with escapes).
    #[error("content path of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The path has more segments than we resolve.
    #[error("content path has {count} segments, more than the limit of {max}")]
    TooManySegments {
        /// How many it has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// `a//b`: an empty name in the middle of the path.
    #[error("empty segment at position {position} of {path:?}")]
    EmptySegment {
        /// 1-based position after the root.
        position: usize,
        /// The path (truncated).
        path: String,
    },
    /// `.` or `..`: paths are resolved inside the DAG, never relative to anything.
    #[error("segment {segment:?} is not allowed in a content path")]
    DotSegment {
        /// The segment.
        segment: String,
    },
    /// A `%` not followed by two hex digits, or an escape that does not decode to UTF-8.
    #[error("bad percent-encoding in segment {segment:?}")]
    BadEncoding {
        /// The raw segment (truncated).
        segment: String,
    },
    /// A decoded segment holding a character no UnixFS name may hold (`/`, NUL).
    #[error("segment {segment:?} contains {what}, which no name can contain")]
    ForbiddenCharacter {
        /// The decoded segment (truncated, escaped for display).
        segment: String,
        /// The character, named.
        what: &'static str,
    },
}

/// A parsed, checked content path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentPath {
    root: Cid,
    segments: Vec<String>,
    trailing_slash: bool,
}

/// What [`ContentPath`]'s `Display` escapes in segments: controls, space, and the characters
/// that have a meaning in URLs.
const SEGMENT_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

impl ContentPath {
    /// Parses `/ipfs/<cid>[/seg...]` or `<cid>[/seg...]`, percent-decoding each segment.
    /// A trailing slash is allowed and remembered (gateways redirect on it).
    ///
    /// # Errors
    /// [`PathError`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        // Checked before any work; the limit on what the path means comes after decoding.
        if text.len() > MAX_ESCAPED_LEN {
            return Err(PathError::TooLong {
                len: text.len(),
                max: MAX_ESCAPED_LEN,
            });
        }
        let rest = if let Some(rest) = text.strip_prefix("/ipfs/") {
            rest
        } else if text.starts_with('/') {
            return Err(PathError::UnsupportedNamespace {
                path: truncate(text),
            });
        } else {
            text
        };
        let mut parts = rest.split('/');
        let root = match parts.next() {
            None | Some("") => return Err(PathError::Empty),
            Some(cid) => parse_cid(cid)?,
        };
        let raw: Vec<&str> = parts.collect();
        let trailing_slash = raw.last() == Some(&"");
        let raw = if trailing_slash {
            &raw[..raw.len() - 1]
        } else {
            &raw[..]
        };
        if raw.len() > MAX_PATH_SEGMENTS {
            return Err(PathError::TooManySegments {
                count: raw.len(),
                max: MAX_PATH_SEGMENTS,
            });
        }
        let mut segments = Vec::with_capacity(raw.len());
        for (i, seg) in raw.iter().enumerate() {
            if seg.is_empty() {
                return Err(PathError::EmptySegment {
                    position: i + 1,
                    path: truncate(text),
                });
            }
            segments.push(decode_segment(seg)?);
        }
        check_len(&root, &segments)?;
        Ok(Self {
            root,
            segments,
            trailing_slash,
        })
    }

    /// A path from already-decoded names, each checked as [`ContentPath::parse`] checks them.
    ///
    /// # Errors
    /// [`PathError`] for a forbidden or empty name, or too many of them.
    pub fn new(root: Cid, segments: Vec<String>) -> Result<Self, PathError> {
        if segments.len() > MAX_PATH_SEGMENTS {
            return Err(PathError::TooManySegments {
                count: segments.len(),
                max: MAX_PATH_SEGMENTS,
            });
        }
        for (i, s) in segments.iter().enumerate() {
            if s.is_empty() {
                return Err(PathError::EmptySegment {
                    position: i + 1,
                    path: s.clone(),
                });
            }
            check_name(s)?;
        }
        check_len(&root, &segments)?;
        Ok(Self {
            root,
            segments,
            trailing_slash: false,
        })
    }

    /// The CID the path starts from, as given.
    pub fn root(&self) -> &Cid {
        &self.root
    }

    /// The decoded names below the root.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Whether the text ended with `/`.
    pub fn has_trailing_slash(&self) -> bool {
        self.trailing_slash
    }
}

/// `/ipfs/<root>/<seg>...`, segments percent-encoded so that the text parses back to the same path.
impl fmt::Display for ContentPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/ipfs/{}", self.root)?;
        for s in &self.segments {
            write!(f, "/{}", utf8_percent_encode(s, SEGMENT_ESCAPES))?;
        }
        if self.trailing_slash {
            f.write_str("/")?;
        }
        Ok(())
    }
}

/// Longest path text accepted: a path at the limit with every byte percent-escaped.
const MAX_ESCAPED_LEN: usize = 3 * MAX_PATH_LEN;

/// Applies [`MAX_PATH_LEN`] to what the path means, `/ipfs/<cid>/<decoded names>`, so that the
/// limit does not depend on how the text was escaped or which multibase spelled the CID.
fn check_len(root: &Cid, segments: &[String]) -> Result<(), PathError> {
    let len = "/ipfs/".len()
        + root.to_string().len()
        + segments.iter().map(|s| 1 + s.len()).sum::<usize>();
    if len > MAX_PATH_LEN {
        return Err(PathError::TooLong {
            len,
            max: MAX_PATH_LEN,
        });
    }
    Ok(())
}

fn decode_segment(raw: &str) -> Result<String, PathError> {
    let bad = || PathError::BadEncoding {
        segment: truncate(raw),
    };
    // percent_decode passes malformed escapes through unchanged; we refuse them instead.
    let bytes = raw.as_bytes();
    for (i, _) in raw.match_indices('%') {
        let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(bad());
        }
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| bad())?
        .into_owned();
    check_name(&decoded)?;
    Ok(decoded)
}

fn check_name(name: &str) -> Result<(), PathError> {
    if name == "." || name == ".." {
        return Err(PathError::DotSegment {
            segment: name.to_owned(),
        });
    }
    let forbidden = |what| PathError::ForbiddenCharacter {
        segment: truncate(&name.escape_default().to_string()),
        what,
    };
    if name.contains('\0') {
        return Err(forbidden("NUL"));
    }
    if name.contains('/') {
        return Err(forbidden("'/'"));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CID: &str = "bafkqaaa";

    #[test]
    fn parses_both_forms() {
        let a = ContentPath::parse(&format!("/ipfs/{CID}/a/b%20c")).unwrap();
        let b = ContentPath::parse(&format!("{CID}/a/b%20c")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.root().to_string(), CID);
        assert_eq!(a.segments(), ["a", "b c"]);
        assert!(!a.has_trailing_slash());
        let dir = ContentPath::parse(&format!("/ipfs/{CID}/a/")).unwrap();
        assert!(dir.has_trailing_slash());
        assert_eq!(dir.segments(), ["a"]);
        let bare = ContentPath::parse(CID).unwrap();
        assert!(bare.segments().is_empty());
        assert!(
            ContentPath::parse(&format!("/ipfs/{CID}/"))
                .unwrap()
                .has_trailing_slash()
        );
    }

    #[test]
    fn rejects_tricks_with_typed_errors() {
        type Check = fn(&PathError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, PathError::Empty)),
            ("/ipfs/", |e| matches!(e, PathError::Empty)),
            ("/ipns/example.com", |e| {
                matches!(e, PathError::UnsupportedNamespace { .. })
            }),
            ("/etc/passwd", |e| {
                matches!(e, PathError::UnsupportedNamespace { .. })
            }),
            ("/ipfs/notacid/a", |e| matches!(e, PathError::Cid(_))),
            ("/ipfs/bafkqaaa/a//b", |e| {
                matches!(e, PathError::EmptySegment { position: 2, .. })
            }),
            ("/ipfs/bafkqaaa/..", |e| {
                matches!(e, PathError::DotSegment { .. })
            }),
            ("/ipfs/bafkqaaa/a/.", |e| {
                matches!(e, PathError::DotSegment { .. })
            }),
            ("/ipfs/bafkqaaa/%2e%2E", |e| {
                matches!(e, PathError::DotSegment { .. })
            }),
            ("/ipfs/bafkqaaa/a%2Fb", |e| {
                matches!(e, PathError::ForbiddenCharacter { .. })
            }),
            ("/ipfs/bafkqaaa/a%00", |e| {
                matches!(e, PathError::ForbiddenCharacter { what: "NUL", .. })
            }),
            ("/ipfs/bafkqaaa/a\0", |e| {
                matches!(e, PathError::ForbiddenCharacter { what: "NUL", .. })
            }),
            ("/ipfs/bafkqaaa/%zz", |e| {
                matches!(e, PathError::BadEncoding { .. })
            }),
            ("/ipfs/bafkqaaa/%4", |e| {
                matches!(e, PathError::BadEncoding { .. })
            }),
            ("/ipfs/bafkqaaa/%ff", |e| {
                matches!(e, PathError::BadEncoding { .. })
            }),
        ];
        for (text, check) in cases {
            let err = ContentPath::parse(text).expect_err(text);
            assert!(check(&err), "{text:?} gave {err:?}");
        }
    }

    #[test]
    fn enforces_limits() {
        let long = format!("/ipfs/{CID}/{}", "a".repeat(MAX_PATH_LEN));
        assert!(matches!(
            ContentPath::parse(&long),
            Err(PathError::TooLong { .. })
        ));
        let huge = "a".repeat(MAX_ESCAPED_LEN + 1);
        assert!(matches!(
            ContentPath::parse(&huge),
            Err(PathError::TooLong { .. })
        ));
        // Escapes do not count against the limit; what they decode to does.
        let fits = MAX_PATH_LEN - "/ipfs/".len() - CID.len() - 1;
        let escaped = format!("/ipfs/{CID}/{}", "%22".repeat(fits));
        let p = ContentPath::parse(&escaped).unwrap();
        assert_eq!(ContentPath::parse(&p.to_string()).unwrap(), p);
        let over = format!("/ipfs/{CID}/{}", "%22".repeat(fits + 1));
        assert!(matches!(
            ContentPath::parse(&over),
            Err(PathError::TooLong { .. })
        ));
        let many = format!("/ipfs/{CID}{}", "/a".repeat(MAX_PATH_SEGMENTS + 1));
        assert!(matches!(
            ContentPath::parse(&many),
            Err(PathError::TooManySegments { .. })
        ));
        let just = format!("/ipfs/{CID}{}", "/a".repeat(MAX_PATH_SEGMENTS));
        assert!(ContentPath::parse(&just).is_ok());
    }

    proptest! {
        #[test]
        fn display_parses_back(names in proptest::collection::vec("[^/\0]{1,12}", 0..6)) {
            let names: Vec<String> = names.into_iter().filter(|n| n != "." && n != "..").collect();
            let root = parse_cid(CID).unwrap();
            let path = ContentPath::new(root, names).unwrap();
            prop_assert_eq!(ContentPath::parse(&path.to_string()).unwrap(), path);
        }

        #[test]
        fn never_panics(text in ".{0,80}") {
            let _ = ContentPath::parse(&text);
        }
    }
}

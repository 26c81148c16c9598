//! The fast DAG transfer between Stargate instances (`/stargate/car/1.0.0`): the wire format.
//!
//! One stream per transfer. The receiver writes a [`TransferRequest`] (varint length, then
//! dag-cbor) and closes its side; the provider answers with a [`TransferResponse`] (same
//! framing) and, when its status is [`TransferStatus::Ok`], a CARv1 whose roots are the request's
//! root and whose blocks are those [`crate::unixfs::export::walk_blocks`] yields for the request,
//! in that order, the first `skip` of them left out. The CAR is the trustless gateway's: the same
//! walk, the same writer.
//!
//! The receiver runs the same walk over what arrives, so it knows which block comes next and when
//! the DAG is complete; a block out of that order, or one more than the walk needs, is a protocol
//! violation, as is a block that does not match its CID.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::Cid;
use crate::limits::{MAX_PATH_LEN, MAX_PATH_SEGMENTS};
use crate::unixfs::export::{DagScope, EntityBytes};

/// The protocol name.
pub const PROTOCOL: &str = "/stargate/car/1.0.0";

/// Largest request body: a CID, a path within [`MAX_PATH_LEN`] and a few integers.
pub const MAX_REQUEST_SIZE: usize = MAX_PATH_LEN + 512;

/// Largest response header body: a status and a short message.
pub const MAX_RESPONSE_SIZE: usize = 1024;

/// Longest message a response carries; longer ones are cut.
const MAX_MESSAGE_CHARS: usize = 256;

/// What a receiver asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRequest {
    /// The DAG's root.
    pub root: Cid,
    /// A UnixFS path below the root; its blocks come first (as in a trustless gateway CAR).
    pub path: Vec<String>,
    /// Which blocks below the end of the path.
    pub scope: DagScope,
    /// Part of a file (implies entity scope unless the scope is `Block`).
    pub entity_bytes: Option<EntityBytes>,
    /// Blocks of the walk the receiver already has (a resumed transfer): the provider leaves out
    /// the first `skip` blocks of the walk.
    pub skip: u64,
}

impl TransferRequest {
    /// A request for the whole DAG under `root`.
    pub fn dag(root: Cid) -> Self {
        Self {
            root,
            path: Vec::new(),
            scope: DagScope::All,
            entity_bytes: None,
            skip: 0,
        }
    }
}

/// How a provider answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferStatus {
    /// A CAR follows.
    Ok,
    /// The provider does not have the root (or the path's blocks).
    NotFound,
    /// The request is malformed or names something that cannot be walked.
    BadRequest,
    /// The provider serves as many transfers as it allows; try later or elsewhere.
    Busy,
    /// The provider failed (its store); try elsewhere.
    Failed,
}

impl TransferStatus {
    fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::NotFound => 1,
            Self::BadRequest => 2,
            Self::Busy => 3,
            Self::Failed => 4,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Ok,
            1 => Self::NotFound,
            2 => Self::BadRequest,
            3 => Self::Busy,
            4 => Self::Failed,
            _ => return None,
        })
    }
}

/// The provider's answer, before the CAR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferResponse {
    /// Whether a CAR follows.
    pub status: TransferStatus,
    /// Why not, for the receiver's logs (at most 256 characters).
    pub message: String,
}

impl TransferResponse {
    /// An answer; `message` is cut to 256 characters.
    pub fn new(status: TransferStatus, message: impl AsRef<str>) -> Self {
        Self {
            status,
            message: message.as_ref().chars().take(MAX_MESSAGE_CHARS).collect(),
        }
    }
}

/// Why a request or response could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferWireError {
    /// The body is larger than the limit.
    #[error("transfer message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not the dag-cbor we expect.
    #[error("malformed transfer message: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
}

fn malformed(reason: impl std::fmt::Display) -> TransferWireError {
    TransferWireError::Malformed {
        reason: reason.to_string(),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestWire {
    root: Cid,
    path: Vec<String>,
    scope: String,
    from: Option<i64>,
    to: Option<i64>,
    skip: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseWire {
    status: u8,
    message: String,
}

fn scope_name(scope: DagScope) -> &'static str {
    match scope {
        DagScope::Block => "block",
        DagScope::Entity => "entity",
        DagScope::All => "all",
    }
}

/// `body` with its varint length prefix.
fn framed(body: &[u8]) -> Bytes {
    let mut buf = unsigned_varint::encode::usize_buffer();
    let prefix = unsigned_varint::encode::usize(body.len(), &mut buf);
    let mut out = BytesMut::with_capacity(prefix.len() + body.len());
    out.put_slice(prefix);
    out.put_slice(body);
    out.freeze()
}

/// Decodes canonical dag-cbor only: what re-encodes to other bytes is refused, so that one
/// request has one encoding.
fn decode_canonical<T>(body: &[u8], max: usize) -> Result<T, TransferWireError>
where
    T: Serialize + for<'de> Deserialize<'de>,
{
    if body.len() > max {
        return Err(TransferWireError::TooLarge {
            len: body.len(),
            max,
        });
    }
    let value: T = serde_ipld_dagcbor::from_slice(body).map_err(malformed)?;
    let again = serde_ipld_dagcbor::to_vec(&value).map_err(malformed)?;
    if again != body {
        return Err(malformed("not canonical dag-cbor"));
    }
    Ok(value)
}

impl TransferRequest {
    /// The request as sent: varint length, then dag-cbor.
    pub fn encode(&self) -> Bytes {
        let wire = RequestWire {
            root: self.root,
            path: self.path.clone(),
            scope: scope_name(self.scope).to_owned(),
            from: self.entity_bytes.map(|eb| eb.from),
            to: self.entity_bytes.and_then(|eb| eb.to),
            skip: self.skip,
        };
        // A struct of a CID, strings and integers always serialises.
        framed(&serde_ipld_dagcbor::to_vec(&wire).unwrap_or_default())
    }

    /// A request body (without its length prefix).
    ///
    /// # Errors
    /// [`TransferWireError`] for an oversized or malformed body, an unknown scope, a `to`
    /// without a `from`, or a path over the limits.
    pub fn decode(body: &[u8]) -> Result<Self, TransferWireError> {
        let wire: RequestWire = decode_canonical(body, MAX_REQUEST_SIZE)?;
        let scope = wire.scope.parse::<DagScope>().map_err(malformed)?;
        let entity_bytes = match (wire.from, wire.to) {
            (Some(from), to) => Some(EntityBytes { from, to }),
            (None, None) => None,
            (None, Some(_)) => return Err(malformed("entity-bytes end without a start")),
        };
        if wire.path.len() > MAX_PATH_SEGMENTS
            || wire.path.iter().map(String::len).sum::<usize>() > MAX_PATH_LEN
        {
            return Err(malformed("path over the length limits"));
        }
        if wire
            .path
            .iter()
            .any(|s| s.is_empty() || s.contains('/') || s == "." || s == "..")
        {
            return Err(malformed("path segments must be non-empty names"));
        }
        Ok(Self {
            root: wire.root,
            path: wire.path,
            scope,
            entity_bytes,
            skip: wire.skip,
        })
    }
}

impl TransferResponse {
    /// The response header as sent: varint length, then dag-cbor.
    pub fn encode(&self) -> Bytes {
        let wire = ResponseWire {
            status: self.status.code(),
            message: self.message.chars().take(MAX_MESSAGE_CHARS).collect(),
        };
        framed(&serde_ipld_dagcbor::to_vec(&wire).unwrap_or_default())
    }

    /// A response header body (without its length prefix).
    ///
    /// # Errors
    /// [`TransferWireError`] for an oversized or malformed body or an unknown status.
    pub fn decode(body: &[u8]) -> Result<Self, TransferWireError> {
        let wire: ResponseWire = decode_canonical(body, MAX_RESPONSE_SIZE)?;
        let status = TransferStatus::from_code(wire.status)
            .ok_or_else(|| malformed(format!("unknown status {}", wire.status)))?;
        if wire.message.chars().count() > MAX_MESSAGE_CHARS {
            return Err(malformed("message over 256 characters"));
        }
        Ok(Self {
            status,
            message: wire.message,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{Codec, HashCode, Version};

    fn body(framed: &Bytes) -> &[u8] {
        let (len, rest) = unsigned_varint::decode::usize(framed).unwrap();
        assert_eq!(len, rest.len());
        rest
    }

    fn any_request() -> impl Strategy<Value = TransferRequest> {
        (
            any::<[u8; 8]>(),
            proptest::collection::vec("[a-z0-9._-]{1,12}", 0..4),
            0u8..3,
            proptest::option::of((any::<i64>(), proptest::option::of(any::<i64>()))),
            any::<u64>(),
        )
            .prop_filter("no . or .. segments", |(_, path, ..)| {
                path.iter().all(|s| s != "." && s != "..")
            })
            .prop_map(|(seed, path, scope, eb, skip)| {
                let block = crate::Block::encode(
                    Version::V1,
                    Codec::Raw,
                    HashCode::Sha2_256,
                    seed.to_vec(),
                )
                .unwrap();
                TransferRequest {
                    root: *block.cid(),
                    path,
                    scope: [DagScope::Block, DagScope::Entity, DagScope::All][scope as usize],
                    entity_bytes: eb.map(|(from, to)| EntityBytes { from, to }),
                    skip,
                }
            })
    }

    proptest! {
        #[test]
        fn requests_round_trip(req in any_request()) {
            let framed = req.encode();
            prop_assert!(framed.len() <= MAX_REQUEST_SIZE);
            prop_assert_eq!(TransferRequest::decode(body(&framed)), Ok(req));
        }

        #[test]
        fn responses_round_trip(status in 0u8..5, message in ".{0,300}") {
            let resp = TransferResponse::new(TransferStatus::from_code(status).unwrap(), &message);
            let framed = resp.encode();
            prop_assert!(framed.len() <= MAX_RESPONSE_SIZE + 2);
            prop_assert_eq!(TransferResponse::decode(body(&framed)), Ok(resp));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = TransferRequest::decode(&bytes);
            let _ = TransferResponse::decode(&bytes);
        }
    }

    #[test]
    fn bad_requests_are_refused() {
        let root = *crate::Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, &b"r"[..])
            .unwrap()
            .cid();
        let encode = |scope: &str, path: Vec<&str>, from: Option<i64>, to: Option<i64>| {
            serde_ipld_dagcbor::to_vec(&RequestWire {
                root,
                path: path.into_iter().map(str::to_owned).collect(),
                scope: scope.to_owned(),
                from,
                to,
                skip: 0,
            })
            .unwrap()
        };
        assert!(TransferRequest::decode(&encode("all", vec![], None, None)).is_ok());
        for bad in [
            encode("most", vec![], None, None),
            encode("all", vec![], None, Some(3)),
            encode("all", vec![".."], None, None),
            encode("all", vec!["a/b"], None, None),
            encode("all", vec![""], None, None),
            vec![0u8; MAX_REQUEST_SIZE + 1],
        ] {
            assert!(TransferRequest::decode(&bad).is_err());
        }
        assert!(
            TransferResponse::decode(
                &serde_ipld_dagcbor::to_vec(&ResponseWire {
                    status: 9,
                    message: String::new()
                })
                .unwrap()
            )
            .is_err()
        );
    }
}

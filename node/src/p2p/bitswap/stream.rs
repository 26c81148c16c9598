//! Bitswap streams: protocol negotiation (1.2.0 preferred, 1.1.0 and 1.0.0 accepted) and
//! length-prefixed messages on them.
//!
//! Kubo (boxo) keeps one outbound stream per peer for its wantlists and opens a new stream for
//! every message its server sends, writing once and closing; either way the reader reads
//! messages until EOF. We do the same (see the handler).

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{Ready, ready};
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::Stream;
use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade, UpgradeInfo};
use stargate_protocol::Bytes;
use stargate_protocol::bitswap::{MAX_MESSAGE_SIZE, ProtocolVersion};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Negotiates any Bitswap version; yields the stream and the version agreed on.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Upgrade;

impl UpgradeInfo for Upgrade {
    type Info = &'static str;
    type InfoIter = std::array::IntoIter<&'static str, 4>;

    fn protocol_info(&self) -> Self::InfoIter {
        ProtocolVersion::PROTOCOLS.into_iter()
    }
}

fn negotiated(stream: Stream, info: &str) -> Ready<Result<(Stream, ProtocolVersion), Infallible>> {
    // Only names from `protocol_info` can be negotiated.
    ready(Ok((
        stream,
        ProtocolVersion::from_protocol(info).unwrap_or(ProtocolVersion::V100),
    )))
}

impl InboundUpgrade<Stream> for Upgrade {
    type Output = (Stream, ProtocolVersion);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, stream: Stream, info: Self::Info) -> Self::Future {
        negotiated(stream, info)
    }
}

impl OutboundUpgrade<Stream> for Upgrade {
    type Output = (Stream, ProtocolVersion);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, stream: Stream, info: Self::Info) -> Self::Future {
        negotiated(stream, info)
    }
}

/// How long a message body (at most 4 MiB) may take to arrive once its length is read: room
/// for 4 MiB at about 140 KB/s.
const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// Why a message could not be read.
#[derive(Debug)]
pub(super) enum ReadError {
    /// The peer announced a message over the limit: a protocol violation.
    TooLarge { len: usize, max: usize },
    /// The length prefix is not a varint: a protocol violation.
    BadLength,
    /// The stream failed or ended inside a message (a reset or a lost connection).
    Io(io::Error),
}

/// Memory for messages being received, shared by every connection: a message's length is taken
/// from it before its body is read, and given back once the message has been verified.
#[derive(Debug, Clone)]
pub(crate) struct InboundBudget(Arc<Semaphore>, /* bytes */ usize);

/// Bytes held from an [`InboundBudget`]; given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    _permit: OwnedSemaphorePermit,
}

impl InboundBudget {
    /// A budget of `bytes` (at least one largest message).
    pub(crate) fn new(bytes: usize) -> Self {
        let bytes = bytes.max(MAX_MESSAGE_SIZE);
        Self(Arc::new(Semaphore::new(kib(bytes) as usize)), bytes)
    }

    /// Waits for room for `bytes` (at most the budget); `None` only if the budget was closed,
    /// which nothing does.
    pub(super) async fn hold(&self, bytes: usize) -> Option<Held> {
        let permit = Arc::clone(&self.0)
            .acquire_many_owned(kib(bytes.min(self.1)))
            .await
            .ok()?;
        Some(Held { _permit: permit })
    }
}

fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes / 1024 + 1).unwrap_or(u32::MAX)
}

/// Reads the next message body from `stream`: `Ok(None)` at a clean end of the stream (EOF
/// before any byte of a new message). A length over `max` is refused before its body is read;
/// the body is read only once `budget` has room for it, so the memory that peers can make us hold
/// is bounded by what they actually send and by the budget.
pub(super) async fn read_message(
    stream: &mut Stream,
    max: usize,
    budget: &InboundBudget,
) -> Result<Option<(Bytes, Held)>, ReadError> {
    let mut prefix = [0u8; 10];
    let mut n = 0;
    loop {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await.map_err(ReadError::Io)? == 0 {
            if n == 0 {
                return Ok(None);
            }
            return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        let Some(slot) = prefix.get_mut(n) else {
            return Err(ReadError::BadLength);
        };
        *slot = byte[0];
        n += 1;
        if unsigned_varint::decode::is_last(byte[0]) {
            break;
        }
    }
    let (len, _) =
        unsigned_varint::decode::usize(&prefix[..n]).map_err(|_| ReadError::BadLength)?;
    if len > max {
        return Err(ReadError::TooLarge { len, max });
    }
    let held = budget
        .hold(len)
        .await
        .ok_or_else(|| ReadError::Io(io::ErrorKind::BrokenPipe.into()))?;
    // The body holds room in the budget shared by every peer, so a peer trickling it out must
    // not keep that room: the body arrives by a deadline or the stream is dropped.
    let mut body = Vec::with_capacity(len);
    let mut limited = (&mut *stream).take(len as u64);
    match tokio::time::timeout(BODY_DEADLINE, limited.read_to_end(&mut body)).await {
        Ok(result) => {
            result.map_err(ReadError::Io)?;
        }
        Err(_) => return Err(ReadError::Io(io::ErrorKind::TimedOut.into())),
    }
    if body.len() < len {
        return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(Some((Bytes::from(body), held)))
}

/// Writes one already framed message and flushes it.
pub(super) async fn write_frame(stream: &mut Stream, frame: &[u8]) -> io::Result<()> {
    stream.write_all(frame).await?;
    stream.flush().await
}

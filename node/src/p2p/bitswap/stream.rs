//! Bitswap streams: protocol negotiation (1.2.0 preferred, 1.1.0 and 1.0.0 accepted) and
//! length-prefixed messages on them.
//!
//! Kubo (boxo) keeps one outbound stream per peer for its wantlists and opens a new stream for
//! every message its server sends, writing once and closing; either way the reader reads
//! messages until EOF. We do the same (see the handler).

use std::convert::Infallible;
use std::io;

use futures::future::{Ready, ready};
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::Stream;
use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade, UpgradeInfo};
use stargate_protocol::Bytes;
use stargate_protocol::bitswap::ProtocolVersion;

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

/// Reads the next message body from `stream`: `Ok(None)` at a clean end of the stream (EOF
/// before any byte of a new message). A length over `max` is refused before its body is read.
pub(super) async fn read_message(
    stream: &mut Stream,
    max: usize,
) -> Result<Option<Bytes>, ReadError> {
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
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.map_err(ReadError::Io)?;
    Ok(Some(Bytes::from(body)))
}

/// Writes one already framed message and flushes it.
pub(super) async fn write_frame(stream: &mut Stream, frame: &[u8]) -> io::Result<()> {
    stream.write_all(frame).await?;
    stream.flush().await
}

//! The protocol name and the length-prefixed messages that open each stream (the request, the
//! response header) before the CAR.

use libp2p::StreamProtocol;
use stargate_protocol::transfer::PROTOCOL as PROTOCOL_NAME;

/// The protocol as libp2p negotiates it.
pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new(PROTOCOL_NAME);

/// Why a length-prefixed message could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum FrameError {
    /// The stream failed or ended inside the message.
    #[error("reading the stream failed: {0}")]
    Io(#[from] std::io::Error),
    /// The stream ended before the message began.
    #[error("the stream ended before the message")]
    Ended,
    /// The length prefix is not a varint, or announces more than allowed: a protocol violation.
    #[error("bad message length: {0}")]
    Length(String),
}

/// Reads one message (varint length, then that many bytes, at most `max`) from `stream`.
pub(super) async fn read_frame<R>(stream: &mut R, max: usize) -> Result<bytes::Bytes, FrameError>
where
    R: futures::AsyncRead + Unpin,
{
    use futures::AsyncReadExt;
    let mut prefix = [0u8; 10];
    let mut n = 0;
    loop {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await? == 0 {
            return Err(if n == 0 {
                FrameError::Ended
            } else {
                FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())
            });
        }
        let Some(slot) = prefix.get_mut(n) else {
            return Err(FrameError::Length("longer than a varint".to_owned()));
        };
        *slot = byte[0];
        n += 1;
        if unsigned_varint::decode::is_last(byte[0]) {
            break;
        }
    }
    let (len, _) = unsigned_varint::decode::usize(&prefix[..n])
        .map_err(|e| FrameError::Length(e.to_string()))?;
    if len > max {
        return Err(FrameError::Length(format!(
            "{len} bytes, over the {max}-byte limit"
        )));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok(bytes::Bytes::from(body))
}

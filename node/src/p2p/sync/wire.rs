//! Sync messages on a libp2p stream: framing, the per-message timeout, the session's byte
//! budget and the byte counts.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use stargate_protocol::reconcile::{MAX_MESSAGE_SIZE, PROTOCOL as PROTOCOL_NAME, SyncMessage};
use unsigned_varint::io::ReadError;

use super::metrics::SyncMetrics;

/// The protocol as libp2p negotiates it.
pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new(PROTOCOL_NAME);

/// Why a stream's exchange ended early.
#[derive(Debug, thiserror::Error)]
pub(super) enum SyncError {
    /// The peer broke the protocol: it is cut off and counted.
    #[error("peer misbehaved ({reason}): {detail}")]
    Misbehaving {
        reason: &'static str,
        detail: String,
    },
    /// The peer serves as many sessions as it allows.
    #[error("peer is busy")]
    Busy,
    /// The stream failed or the peer went away.
    #[error("stream failed: {0}")]
    Io(String),
    /// The peer did not answer in time, or the session ran past its limit.
    #[error("timed out")]
    Timeout,
    /// This node is stopping (the intake of learned entries is gone).
    #[error("stopped")]
    Stopped,
}

impl SyncError {
    pub(super) fn misbehaving(reason: &'static str, detail: impl ToString) -> Self {
        Self::Misbehaving {
            reason,
            detail: detail.to_string(),
        }
    }

    /// The session outcome label.
    pub(super) fn outcome(&self) -> &'static str {
        match self {
            Self::Misbehaving { .. } => "misbehaving",
            Self::Busy => "busy",
            Self::Io(_) => "io",
            Self::Timeout => "timeout",
            Self::Stopped => "stopped",
        }
    }
}

/// One stream of the protocol, counting what moves over it.
pub(super) struct Wire {
    stream: Stream,
    metrics: SyncMetrics,
    timeout: Duration,
    /// Bytes this side may still receive on the stream.
    budget: u64,
}

impl Wire {
    pub(super) fn new(
        stream: Stream,
        metrics: SyncMetrics,
        timeout: Duration,
        budget: u64,
    ) -> Self {
        Self {
            stream,
            metrics,
            timeout,
            budget,
        }
    }

    /// Opens a stream of the protocol to `peer`.
    pub(super) async fn open(
        control: &mut libp2p_stream::Control,
        peer: PeerId,
        metrics: SyncMetrics,
        timeout: Duration,
        budget: u64,
    ) -> Result<Self, SyncError> {
        let stream = control
            .open_stream(peer, PROTOCOL)
            .await
            .map_err(|e| SyncError::Io(e.to_string()))?;
        Ok(Self::new(stream, metrics, timeout, budget))
    }

    /// Writes one message.
    pub(super) async fn send(&mut self, message: &SyncMessage) -> Result<(), SyncError> {
        let frame = message
            .to_frame()
            .map_err(|e| SyncError::Io(format!("cannot encode a {}: {e}", message.name())))?;
        tokio::time::timeout(self.timeout, self.stream.write_all(&frame))
            .await
            .map_err(|_| SyncError::Timeout)?
            .map_err(|e| SyncError::Io(e.to_string()))?;
        self.metrics.sent(frame.len());
        Ok(())
    }

    /// Reads one message within the timeout and the byte budget.
    pub(super) async fn recv(&mut self) -> Result<SyncMessage, SyncError> {
        tokio::time::timeout(self.timeout, self.read())
            .await
            .map_err(|_| SyncError::Timeout)?
    }

    async fn read(&mut self) -> Result<SyncMessage, SyncError> {
        let len = match unsigned_varint::aio::read_usize(&mut self.stream).await {
            Ok(len) => len,
            Err(ReadError::Io(e)) => return Err(SyncError::Io(e.to_string())),
            Err(e) => return Err(SyncError::misbehaving("malformed", e)),
        };
        if len > MAX_MESSAGE_SIZE {
            return Err(SyncError::misbehaving(
                "too_large",
                format!("a message of {len} bytes"),
            ));
        }
        let frame = len as u64 + 1;
        if frame > self.budget {
            return Err(SyncError::misbehaving(
                "over_budget",
                "the session's byte budget is spent",
            ));
        }
        let mut body = vec![0u8; len];
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| SyncError::Io(e.to_string()))?;
        self.budget -= frame;
        self.metrics.received(len + varint_len(len));
        SyncMessage::decode(&body).map_err(|e| SyncError::misbehaving(e.reason(), e))
    }

    /// Closes this side of the stream (best effort).
    pub(super) async fn close(mut self) {
        let _ = tokio::time::timeout(self.timeout, self.stream.close()).await;
    }
}

fn varint_len(n: usize) -> usize {
    unsigned_varint::encode::usize(n, &mut unsigned_varint::encode::usize_buffer()).len()
}

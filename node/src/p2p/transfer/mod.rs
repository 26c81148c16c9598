//! Fast DAG transfer between Stargate instances: `/stargate/car/1.0.0` (wire format in
//! `stargate_protocol::transfer`) on libp2p streams (`libp2p-stream`).
//!
//! # Interface
//!
//! ```text
//! Transfer::new(control, store, config, penalise)   // control: libp2p_stream::Behaviour's
//! transfer.serve(shutdown)                          // answer peers' requests from the store
//! transfer.fetch(peer, request, pin) -> stream of blocks, each verified and handed to the store
//! transfer.fetch_all(peer, request, pin) -> FetchSummary
//! ```
//!
//! - Provider ([`server`]): reads a small request, resolves and walks it from the store with the
//!   trustless gateway's code (`resolve` + `walk_blocks` + `car_stream`), leaves out the first
//!   `skip` blocks, and streams the CAR. Transfers served at once are bounded per peer and in
//!   total; a receiver that stops reading is cut off after the stall timeout.
//! - Receiver ([`client`]): reads frames as they come and hashes them on rayon's pool (both
//!   cores), with a bound on bytes received but not yet used; runs the same walk over what
//!   arrived ([`arrivals`]), so it checks that every block is the one the walk needs next and
//!   knows when the DAG is complete; writes what the walk yields with one `BlockWriter`, pinning
//!   the root at the end only if asked. A stream that breaks is resumed (a new stream asking to
//!   skip what arrived); a block that does not match its CID, a block out of walk order or one
//!   too many, or a garbled stream makes the peer misbehaving: the stream is dropped, the peer
//!   is disconnected (`penalise`), and nothing of the bad block is stored.

mod arrivals;
mod client;
mod server;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use libp2p::{PeerId, StreamProtocol};
use stargate_protocol::Block;
use stargate_protocol::limits::{MAX_BLOCK_SIZE, MAX_CID_BYTES};
use stargate_protocol::transfer::{PROTOCOL as PROTOCOL_NAME, TransferRequest, TransferStatus};
use stargate_storage::Store;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The protocol as libp2p negotiates it.
pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new(PROTOCOL_NAME);

/// Limits of both sides. Start from [`Config::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Transfers served at once to one peer.
    pub(crate) max_served_per_peer: usize,
    /// Transfers served at once to all peers.
    pub(crate) max_served: usize,
    /// Transfers fetched at once.
    pub(crate) max_fetches: usize,
    /// Bytes of one fetch received but not yet walked (being hashed or waiting their turn).
    pub(crate) max_in_flight_bytes: usize,
    /// A transfer that moves no block for this long is cut (and, when fetching, resumed).
    pub(crate) stall_timeout: Duration,
    /// Resumes in a row that bring no new block before a fetch gives up.
    pub(crate) max_resumes: u32,
    /// Bytes per second one served transfer sends at most (`None`: no cap).
    pub(crate) serve_bytes_per_sec: Option<std::num::NonZeroU64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_served_per_peer: 4,
            max_served: 32,
            max_fetches: 8,
            max_in_flight_bytes: 32 << 20,
            stall_timeout: Duration::from_secs(30),
            max_resumes: 3,
            serve_bytes_per_sec: None,
        }
    }
}

impl Config {
    /// The configuration with every limit in its valid range.
    fn checked(mut self) -> Self {
        self.max_served_per_peer = self.max_served_per_peer.max(1);
        self.max_served = self.max_served.max(1);
        self.max_fetches = self.max_fetches.max(1);
        // One frame at least must fit, and semaphore permits are counted in u32.
        self.max_in_flight_bytes = self
            .max_in_flight_bytes
            .clamp(MAX_BLOCK_SIZE + MAX_CID_BYTES, u32::MAX as usize >> 1);
        self.stall_timeout = self.stall_timeout.max(Duration::from_millis(100));
        self
    }
}

/// What a finished fetch received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FetchSummary {
    /// Blocks of the walk, all stored.
    pub(crate) blocks: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum TransferError {
    /// The request cannot be served as asked.
    #[error("invalid transfer request for {root}: {reason}")]
    BadRequest { root: String, reason: String },
    /// No stream could be opened to the peer (not reachable, or not a Stargate node).
    #[error("cannot open a transfer stream to {peer}: {reason}")]
    Open { peer: PeerId, reason: String },
    /// The provider answered with something else than a CAR.
    #[error("{peer} refused the transfer ({status:?}): {message}")]
    Refused {
        peer: PeerId,
        status: TransferStatus,
        message: String,
    },
    /// The provider broke the protocol (a wrong block, a block out of order, garbage); it has
    /// been disconnected and nothing of what it sent wrong was stored.
    #[error("{peer} misbehaved during a transfer and was disconnected: {reason}")]
    Misbehaved { peer: PeerId, reason: String },
    /// The provider's streams kept ending before the DAG was complete.
    #[error("transfer from {peer} incomplete after {resumes} resumes: {reason}")]
    Incomplete {
        peer: PeerId,
        resumes: u32,
        reason: String,
    },
    /// The received blocks could not be stored.
    #[error("storing a transferred block failed: {reason}")]
    Store { reason: String },
    /// The node is shutting down.
    #[error("the transfer was stopped")]
    Stopped,
}

/// Called with a peer that broke the protocol: disconnects it.
pub(crate) type Penalise = Arc<dyn Fn(PeerId, &str) + Send + Sync>;

/// Both sides of the transfer protocol. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Transfer {
    control: libp2p_stream::Control,
    store: Store,
    config: Arc<Config>,
    fetches: Arc<Semaphore>,
    penalise: Penalise,
    /// Where fetches read their streams: the runtime that runs the swarm, so that stream and
    /// connection hand frames to each other on one thread, whoever consumes the blocks.
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Transfer {
    /// Both sides, opening and accepting streams through `control`. Must be called on the
    /// runtime that runs the swarm.
    pub(crate) fn new(
        control: libp2p_stream::Control,
        store: Store,
        config: Config,
        penalise: Penalise,
    ) -> Self {
        let config = config.checked();
        Self {
            control,
            store,
            fetches: Arc::new(Semaphore::new(config.max_fetches)),
            config: Arc::new(config),
            penalise,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// The limits in force.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Answers peers' requests until `shutdown`.
    ///
    /// # Errors
    /// When something else already accepts the protocol on this swarm.
    pub(crate) fn serve(&self, shutdown: CancellationToken) -> anyhow::Result<JoinHandle<()>> {
        let incoming = self
            .control
            .clone()
            .accept(PROTOCOL)
            .map_err(|e| anyhow::anyhow!("registering {PROTOCOL}: {e}"))?;
        Ok(tokio::spawn(server::run(
            incoming,
            self.store.clone(),
            Arc::clone(&self.config),
            shutdown,
        )))
    }

    /// Fetches what `request` names from `peer` (its `skip` is ignored: resuming is done here).
    /// The stream yields the blocks of the walk in order, each verified and handed to the store;
    /// it ends after the last one is durably stored (and, with `pin`, the root pinned), or with
    /// one error. Dropping it cancels the transfer (what arrived stays stored, unpinned).
    pub(crate) fn fetch(
        &self,
        peer: PeerId,
        request: TransferRequest,
        pin: bool,
    ) -> BoxStream<'static, Result<Block, TransferError>> {
        client::fetch(self.clone(), peer, request, pin)
    }

    /// [`Transfer::fetch`], counting the blocks.
    ///
    /// # Errors
    /// The first error of the fetch.
    pub(crate) async fn fetch_all(
        &self,
        peer: PeerId,
        request: TransferRequest,
        pin: bool,
    ) -> Result<FetchSummary, TransferError> {
        use futures::StreamExt;
        let mut blocks = self.fetch(peer, request, pin);
        // Counted on the network runtime, where the blocks arrive: handing each one to the
        // caller's runtime would wake one of its workers per block.
        let count = async move {
            let mut summary = FetchSummary::default();
            while let Some(block) = blocks.next().await {
                let block = block?;
                summary.blocks += 1;
                summary.bytes += block.data().len() as u64;
            }
            Ok(summary)
        };
        // Aborted when dropped, so a caller that goes away stops the fetch as before.
        tokio_util::task::AbortOnDropHandle::new(self.runtime.spawn(count))
            .await
            .map_err(|_| TransferError::Stopped)?
    }
}

/// Why a length-prefixed message could not be read.
#[derive(Debug, thiserror::Error)]
enum FrameError {
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
async fn read_frame<R>(stream: &mut R, max: usize) -> Result<bytes::Bytes, FrameError>
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

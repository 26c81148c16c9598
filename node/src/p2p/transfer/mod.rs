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
//! - Receiver ([`client`]): reads frames as they come and hashes them on rayon's pool (both cores),
//!   with a bound on bytes received but not yet used; runs the same walk over what arrived
//!   ([`arrivals`]), so it checks that every block is the one the walk needs next and knows when
//!   the DAG is complete; hands what the walk yields to one `BlockWriter` ([`writer`]), pinning the
//!   root at the end only if asked. A stream that breaks is resumed (a new stream asking to skip
//!   what arrived); a block that does not match its CID, a block out of walk order or one too many,
//!   or a garbled stream makes the peer misbehaving: the stream is dropped, the peer is
//!   disconnected (`penalise`), and nothing of the bad block is stored.

mod arrivals;
mod client;
mod config;
mod error;
mod server;
#[cfg(test)]
mod tests;
mod wire;
mod writer;

use std::sync::Arc;

use futures::stream::BoxStream;
use libp2p::PeerId;
use stargate_protocol::Block;
use stargate_protocol::transfer::TransferRequest;
use stargate_storage::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use client::{FetchSummary, Penalise};
pub(crate) use config::Config;
pub(crate) use error::TransferError;
pub(crate) use wire::PROTOCOL;

/// Both sides of the transfer protocol. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Transfer {
    client: client::Client,
    control: libp2p_stream::Control,
    store: Store,
    config: Arc<Config>,
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
        let config = Arc::new(config.checked());
        Self {
            client: client::Client::new(
                control.clone(),
                store.clone(),
                Arc::clone(&config),
                penalise,
            ),
            control,
            store,
            config,
        }
    }

    /// The stream control of the swarm, for other protocols on plain streams (`sync/`).
    pub(crate) fn control(&self) -> libp2p_stream::Control {
        self.control.clone()
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
        server::spawn(
            &self.control,
            self.store.clone(),
            Arc::clone(&self.config),
            shutdown,
        )
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
        self.client.fetch(peer, request, pin)
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
        self.client.fetch_all(peer, request, pin).await
    }
}

//! What every handler works with, and the narrow traits the node implements for it.

use std::sync::Arc;
use std::time::Duration;

use stargate_protocol::Cid;
use stargate_protocol::unixfs::export::BlockSource;
use stargate_storage::Store;

use crate::anchoring::Anchoring;
use crate::mirror::Mirror;
use crate::network::{Network, NetworkError};
use crate::pubsub::PubSub;
use crate::stego::Stego;

/// Limits and timeouts of the HTTP surface.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Longest a gateway request may wait for content before it is answered with 504.
    pub timeout: Duration,
    /// Most requests served at once per listener; more wait their turn.
    pub max_concurrent_requests: usize,
    /// Most requests waiting for a slot per listener, each at most `timeout`; more are answered
    /// 503 at once.
    pub max_waiting_requests: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_concurrent_requests: 1024,
            max_waiting_requests: 1024,
        }
    }
}

/// Shared state of the gateway and API handlers. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    store: Store,
    blocks: Arc<dyn BlockSource>,
    options: HttpOptions,
    network: Option<Arc<dyn Network>>,
    anchoring: Option<Arc<dyn Anchoring>>,
    mirror: Option<Arc<dyn Mirror>>,
    stego: Option<Arc<dyn Stego>>,
    pubsub: Option<Arc<dyn PubSub>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.inner.store.dir())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `store`. `blocks` is where reads go: the store itself, or (in a daemon) the
    /// store backed by retrieval from peers.
    pub fn new(store: Store, blocks: Arc<dyn BlockSource>, options: HttpOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                blocks,
                options,
                network: None,
                anchoring: None,
                mirror: None,
                stego: None,
                pubsub: None,
            }),
        }
    }

    /// The same state with the node's network behind `id`, `swarm` and `routing` (a daemon;
    /// without it those commands answer that they need one).
    pub fn with_network(self, network: Arc<dyn Network>) -> Self {
        let mut inner = (*self.inner).clone();
        inner.network = Some(network);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The same state with the node's chain service behind `/api/v1/anchors` and the `anchor`
    /// and `wallet` commands (a daemon with a chain backend; without it they answer that they
    /// need one).
    pub fn with_anchoring(self, anchoring: Arc<dyn Anchoring>) -> Self {
        let mut inner = (*self.inner).clone();
        inner.anchoring = Some(anchoring);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The same state with the node's mirror behind `/api/v1/mirror/*` and `add`'s `announce`
    /// option (a daemon that mirrors).
    pub fn with_mirror(self, mirror: Arc<dyn Mirror>) -> Self {
        let mut inner = (*self.inner).clone();
        inner.mirror = Some(mirror);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The same state with the node's stego side behind the approval callback (a daemon that
    /// announces stego results).
    pub fn with_stego(self, stego: Arc<dyn Stego>) -> Self {
        let mut inner = (*self.inner).clone();
        inner.stego = Some(stego);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The stego side, if this node runs one.
    pub(crate) fn stego(&self) -> Option<&dyn Stego> {
        self.inner.stego.as_deref()
    }

    /// The mirror, if this node runs one.
    pub(crate) fn mirror(&self) -> Option<&dyn Mirror> {
        self.inner.mirror.as_deref()
    }

    /// The same state with the node's pubsub behind `pubsub pub|sub|ls|peers` (a daemon;
    /// without it they answer that they need one).
    pub fn with_pubsub(self, pubsub: Arc<dyn PubSub>) -> Self {
        let mut inner = (*self.inner).clone();
        inner.pubsub = Some(pubsub);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The pubsub, or the error that commands needing it answer.
    pub(crate) fn pubsub(&self) -> Result<&dyn PubSub, NetworkError> {
        self.inner.pubsub.as_deref().ok_or_else(|| {
            NetworkError::Failed(
                "this command needs a running daemon (start one with `stargate daemon`)".into(),
            )
        })
    }

    /// The chain service, if this node runs one.
    pub(crate) fn anchoring(&self) -> Option<&dyn Anchoring> {
        self.inner.anchoring.as_deref()
    }

    /// The network, or the error that commands needing one answer.
    pub(crate) fn network(&self) -> Result<&dyn Network, NetworkError> {
        self.inner.network.as_deref().ok_or_else(|| {
            NetworkError::Failed(
                "this command needs a running daemon (start one with `stargate daemon`)".into(),
            )
        })
    }

    /// Tells the network (if any) that `cid` was added or pinned, for providing.
    pub(crate) fn content_added(&self, cid: Cid, pinned: bool) {
        if let Some(network) = &self.inner.network {
            network.content_added(cid, pinned);
        }
    }

    /// The local store (writes, pins, maintenance).
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Where content is read from.
    pub(crate) fn blocks(&self) -> &dyn BlockSource {
        self.inner.blocks.as_ref()
    }

    /// Where content is read from, shareable with streams that outlive the handler.
    pub(crate) fn blocks_arc(&self) -> Arc<dyn BlockSource> {
        Arc::clone(&self.inner.blocks)
    }

    /// The limits.
    pub(crate) fn options(&self) -> &HttpOptions {
        &self.inner.options
    }
}

//! What every handler works with, and the narrow traits the node implements for it.

use std::sync::Arc;
use std::time::Duration;

use stargate_protocol::unixfs::export::BlockSource;
use stargate_storage::Store;

/// Limits and timeouts of the HTTP surface.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Longest a gateway request may wait for content before it is answered with 504.
    pub timeout: Duration,
    /// Most requests served at once per listener; more wait their turn.
    pub max_concurrent_requests: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_concurrent_requests: 1024,
        }
    }
}

/// Shared state of the gateway and API handlers. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    blocks: Arc<dyn BlockSource>,
    options: HttpOptions,
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
            }),
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

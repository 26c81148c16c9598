//! The HTTP surface of Stargate Node.
//!
//! - the IPFS path gateway and trustless gateway (`/ipfs/<cid>[/path]`), read-only;
//! - the Kubo-compatible RPC subset (`POST /api/v0/...`) that the `stargate` CLI speaks, whether
//!   to a running daemon over TCP or to an in-process router when no daemon runs;
//! - the Stargate API's anchors (`/api/v1/anchors`), behind the [`Anchoring`] trait;
//! - the stego approval callback and the ingestion pull API (`/api/v1/stego/callback`,
//!   `/api/v1/ingestions`), behind the [`Stego`] trait and the store;
//! - who may call the API listener ([`Authorizations`]: Kubo's `API.Authorizations` and the
//!   guide's API key);
//! - the status page (`/webui`) on the API listener;
//! - `/health` and Prometheus `/metrics` on both listeners.
//!
//! This crate depends on `protocol` and `storage` and on narrow traits that the node implements
//! (block retrieval from peers, the [`Network`] behind `id`/`swarm`/`routing`, the [`Anchoring`] behind
//! anchors, later publishing); never on the node itself.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod anchoring;
mod anchors_api;
mod authorization;
mod gateway;
mod health;
mod limit;
mod metrics;
mod mirror;
mod mirror_api;
mod network;
mod pubsub;
mod rpc;
mod serve;
mod state;
mod stego;
mod stego_api;
mod webui;

pub use crate::anchoring::{
    AnchorEntry, AnchorState, Anchoring, AnchoringError, AnchoringSummary, SyncProgress,
    WalletBalance,
};
pub use crate::anchors_api::{ApiAuth, anchors_router};
pub use crate::authorization::{AuthSecretError, Authorizations};
pub use crate::gateway::gateway_router;
pub use crate::limit::RequestLimits;
pub use crate::metrics::{HttpMetrics, Observability, register_store_metrics};
pub use crate::mirror::{MAX_LS_LIMIT, Mirror, MirrorError, MirrorQuery};
pub use crate::mirror_api::mirror_router;
pub use crate::network::{
    Bandwidth, ConnectedPeer, DagFetched, Direction, Network, NetworkError, PeerIdentity, Provider,
};
pub use crate::pubsub::{PubSub, PubSubMessage};
pub use crate::rpc::{InProcess, ListenAddrs, api_router};
pub use crate::serve::serve;
pub use crate::state::{AppState, HttpOptions};
pub use crate::stego::{Stego, StegoAuth, StegoError};
pub use crate::stego_api::{MAX_INGEST_PAGE, stego_callback_router, stego_router};
pub use crate::webui::webui_router;

//! Mirroring between instances (issue 12): what happens to an announcement, the download
//! queue and its workers, this node's own uploads, manifests, and what operators see.
//!
//! - `intake.rs`: every message on the mirror topic is judged before gossipsub forwards it
//!   (decode, allow/deny lists, per-publisher rate, queue bound); accepted ones are recorded
//!   and queued, refused ones counted by reason and never fetched. Entries from manifests go
//!   through the same checks.
//! - `download.rs`: workers take due records off the persisted queue, fetch the DAG (over the
//!   CAR transfer from the publisher or another Stargate peer, else over Bitswap and the DHT),
//!   refuse it when its root says it is larger than `mirror_max_bytes`, pin it and record it;
//!   failures are retried with exponential backoff up to a limit.
//! - `manifests.rs`: this node's signed manifest, published when what it holds changed (and
//!   announced again when a new peer joins the topic), and the latest manifests of others,
//!   read every poll interval.
//! - `status.rs`: the status and listings of the API and CLI.
//!
//! State lives in the store (`stargate_storage::Store::mirror_*`), so a restart resumes where
//! the node left off; one [`Mirror`] handle is shared by the tasks and the API.

mod blocking;
mod download;
mod entries;
mod intake;
mod manifests;
mod metrics;
mod rate;
mod running;
mod settings;
mod status;
mod sync;

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use stargate_http_gateway::{MirrorError, MirrorQuery};
use stargate_protocol::Cid;

pub(crate) use blocking::blocking;
pub(crate) use metrics::MirrorMetrics;
pub(crate) use rate::PublisherRate;
pub(crate) use running::Mirror;
pub(crate) use settings::Settings;

impl stargate_http_gateway::Mirror for Mirror {
    fn announce(
        &self,
        cid: Cid,
        kind: String,
        metadata: Map<String, Value>,
    ) -> BoxFuture<'_, Result<(), MirrorError>> {
        Box::pin(self.announce_upload(cid, kind, metadata))
    }

    fn status(&self) -> BoxFuture<'_, Result<Value, MirrorError>> {
        Box::pin(self.status_json())
    }

    fn list(&self, query: MirrorQuery) -> BoxFuture<'_, Result<Value, MirrorError>> {
        Box::pin(self.list_json(query))
    }
}

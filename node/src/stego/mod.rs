//! Stego results (issue 13): the platform's approved stego images and their payloads, pinned
//! and announced on the stego topic, mirrored by every instance that hears them, and turned into
//! ingestion records the platform pulls.
//!
//! - `approval.rs`: the signed callback's verdict (checked by the HTTP layer): an approval is
//!   recorded as this node's upload, fetched if need be, pinned and then announced; a
//!   rejection is recorded and nothing else.
//! - `announce.rs`: an approval's announcement on the stego topic, published again with backoff
//!   when publishing failed (no peer yet), kept in the store until then.
//! - `intake.rs`: every message on the stego topic is judged before gossipsub forwards it
//!   (decode, allow/deny lists, per-publisher rate), and an accepted one recorded to fetch;
//!   stego entries from manifests and reconciliations (handed over by the mirror) go the same
//!   way. Every upload's id is in the mirror's reconciled set.
//! - `fetch.rs`: waiting uploads are fetched and pinned through the mirror's download path,
//!   retried with backoff up to a limit; once both CIDs are stored the ingestion record is made
//!   at once, and a sweep every `ingest_sync_interval_sec` makes any that were missed.
//! - `status.rs`: the figures `stargate mirror status` shows.
//!
//! State lives in the store (`stargate_storage::Store::stego_*`, `ingest_*`), so a restart
//! loses nothing: waiting uploads stay queued, stored ones without a record are swept.

mod announce;
mod approval;
mod fetch;
mod intake;
mod metrics;
mod running;
mod status;

use futures::future::BoxFuture;
use stargate_http_gateway::StegoError;
use stargate_protocol::stego::Callback;

pub(crate) use metrics::StegoMetrics;
pub(crate) use running::Stego;

impl stargate_http_gateway::Stego for Stego {
    fn approve(&self, callback: Callback) -> BoxFuture<'_, Result<(), StegoError>> {
        Box::pin(self.approved(callback))
    }

    fn reject(&self, callback: Callback) -> BoxFuture<'_, Result<(), StegoError>> {
        Box::pin(self.rejected(callback))
    }

    fn status(&self) -> BoxFuture<'_, Result<serde_json::Value, StegoError>> {
        Box::pin(self.status_json())
    }
}

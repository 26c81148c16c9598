//! The stego and ingestion figures of `stargate mirror status` and its JSON.

use serde_json::{Value, json};
use stargate_http_gateway::StegoError;
use stargate_storage::Store;

use super::running::Stego;
use crate::mirror::blocking;

impl Stego {
    pub(super) async fn status_json(&self) -> Result<Value, StegoError> {
        let inner = &self.inner;
        let counts = blocking(&inner.store, Store::stego_counts)
            .await
            .map_err(|e| StegoError::Failed(format!("reading the stego counts: {e}")))?;
        Ok(json!({
            "topic": inner.settings.stego_topic,
            "announce_enabled": inner.settings.stego_announce,
            "sync_enabled": inner.settings.stego_sync,
            "ingest_enabled": inner.settings.ingest,
            "announced": inner.metrics.announced_count(),
            "waiting": counts.waiting,
            "stored": counts.stored,
            "rejected": counts.rejected,
            "failed": counts.failed,
            "failed_by_reason": counts.failed_by_reason,
            "records": counts.records,
            "records_pending": counts.pending,
            "callbacks_refused": inner.auth.refused_callbacks(),
        }))
    }
}

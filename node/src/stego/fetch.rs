//! The fetcher and the ingestion sweep.
//!
//! Waiting uploads come off the persisted queue when due; the image and then the payload are
//! fetched and pinned through the mirror's download path (its sources, size cap, timeout, and
//! its error metric), and an upload that fails waits `stego_sync_interval_sec`, doubling with
//! each failure, until `mirror_max_attempts`. An upload stays queued while it is fetched, so a
//! restart in between loses nothing. Once both are stored its ingestion record is made at once;
//! an approval of this node's is announced then. The sweep makes any record that was missed
//! (a crash between the two writes, ingestion switched on later).

use std::time::Duration;

use futures::StreamExt;
use stargate_storage::{IngestMade, StegoOutcome, StegoUpload};

use super::running::Stego;
use crate::clock::now_ms;
use crate::mirror::blocking;

/// Uploads taken off the queue per round.
const ROUND: usize = 64;
/// The fetcher looks at the queue at least this often.
const IDLE_WAKE: Duration = Duration::from_secs(60);

impl Stego {
    /// Fetches due uploads, a round at a time, until shutdown.
    pub(super) async fn fetch_waiting(self) {
        let inner = &self.inner;
        let concurrency = inner.settings.concurrency;
        loop {
            match blocking(&inner.store, |s| s.stego_due(now_ms(), ROUND)).await {
                Ok(due) if !due.is_empty() => {
                    let settle = futures::stream::iter(due)
                        .for_each_concurrent(concurrency, |upload| self.settle(upload));
                    tokio::select! {
                        () = inner.shutdown.cancelled() => return,
                        () = settle => {}
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading the stego queue"),
            }
            let wait = match blocking(&inner.store, |s| s.stego_next_due()).await {
                Ok(Some(at)) => Duration::from_millis(at.saturating_sub(now_ms())).min(IDLE_WAKE),
                _ => IDLE_WAKE,
            };
            tokio::select! {
                () = inner.shutdown.cancelled() => return,
                () = inner.work.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One attempt at both CIDs of `upload`, to its recorded outcome.
    async fn settle(&self, upload: StegoUpload) {
        let inner = &self.inner;
        let mut outcome = StegoOutcome::Stored;
        for cid in [upload.image, upload.payload] {
            let Err(failure) = inner.mirror.fetch_pinned(cid, upload.publisher).await else {
                continue;
            };
            let attempts = upload.attempts.saturating_add(1);
            tracing::info!(%cid, reason = failure.reason, attempts, "stego fetch failed");
            outcome = if failure.permanent || attempts >= inner.settings.max_attempts {
                StegoOutcome::Failed {
                    reason: failure.reason.to_owned(),
                }
            } else {
                StegoOutcome::Retry {
                    at: self.retry_at(upload.attempts),
                }
            };
            break;
        }
        let stored = outcome == StegoOutcome::Stored;
        let id = upload.id();
        if let Err(e) = blocking(&inner.store, move |s| s.stego_finish(&id, outcome)).await {
            tracing::warn!(error = %e, "recording a stego fetch");
            return;
        }
        if !stored {
            return;
        }
        if inner.settings.ingest {
            self.make_record(id).await;
        }
        if upload.publisher == inner.local {
            self.announce(&upload.announcement()).await;
        }
    }

    async fn make_record(&self, id: stargate_protocol::mirror::EntryId) {
        match blocking(&self.inner.store, move |s| s.ingest_make(&id, now_ms())).await {
            Ok(IngestMade::New(record)) => {
                self.inner.metrics.record_made();
                tracing::debug!(record, "ingestion record made");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "making an ingestion record"),
        }
    }

    /// Every `ingest_sync_interval_sec`, makes the records of stored uploads that have none,
    /// up to `ingest_sync_max_entries` a time, in one transaction.
    pub(super) async fn sweep(self) {
        let inner = &self.inner;
        let max = inner.settings.ingest_max_entries;
        loop {
            let made = blocking(&inner.store, move |s| {
                let ids = s.stego_unrecorded(max)?;
                s.ingest_make_many(&ids, now_ms())
            })
            .await;
            match made {
                Ok(made) => {
                    for _ in made.iter().filter(|m| matches!(m, IngestMade::New(_))) {
                        inner.metrics.record_made();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "making the missed ingestion records"),
            }
            tokio::select! {
                () = inner.shutdown.cancelled() => return,
                () = tokio::time::sleep(inner.settings.ingest_interval) => {}
            }
        }
    }
}

//! Announcing this node's approved results on the stego topic, and announcing again those that
//! could not be: while no peer is on the topic, every `stego_sync_interval_sec` (a look at the
//! topic's peers, nothing sent); when publishing failed, after that interval doubled with each
//! failure, until `mirror_max_attempts`. What is still to announce is kept in the store, so a
//! restart loses none. Peers that missed it also learn of it through the reconciled set and the
//! manifest.

use std::time::Duration;

use stargate_protocol::mirror::EntryId;
use stargate_protocol::stego::StegoAnnouncement;
use stargate_storage::AnnounceDue;

use super::running::Stego;
use crate::clock::now_ms;
use crate::mirror::blocking;

/// Announcements published again per round.
const ROUND: usize = 64;
/// The loop looks at what is due at least this often.
const IDLE_WAKE: Duration = Duration::from_secs(60);

impl Stego {
    /// Publishes `announcement` on the stego topic; when it cannot be, that is logged and it
    /// is published again later. The result stays recorded and pinned here either way.
    pub(super) async fn announce(&self, announcement: &StegoAnnouncement) {
        if let Err(e) = self.publish(announcement).await {
            tracing::warn!(
                image = %announcement.image,
                error = %e,
                "announcing a stego result failed; it is announced again later"
            );
            self.announce_later(announcement.id(), 0).await;
        }
    }

    /// Publishes `announcement` if some peer is on the stego topic. Gossipsub takes a message
    /// for an empty topic without complaint (as Kubo does) and it then reaches no one, so an
    /// empty topic is a failure here.
    async fn publish(&self, announcement: &StegoAnnouncement) -> Result<(), Unpublished> {
        let inner = &self.inner;
        let topic = &inner.settings.stego_topic;
        let peers = inner
            .network
            .gossip_peers(Some(topic))
            .await
            .map_err(|e| Unpublished::Failed(e.to_string()))?;
        if peers.is_empty() {
            return Err(Unpublished::NoPeers);
        }
        inner
            .network
            .gossip_publish(topic, announcement.encode())
            .await
            .map_err(|e| Unpublished::Failed(e.to_string()))?;
        inner.metrics.announced();
        tracing::info!(image = %announcement.image, payload = %announcement.payload, "stego result announced");
        Ok(())
    }

    /// When the attempt after `failures` failed ones is due (Unix ms): `stego_sync_interval_sec`,
    /// doubled with each failure.
    pub(super) fn retry_at(&self, failures: u32) -> u64 {
        let backoff = self
            .inner
            .settings
            .stego_sync_interval
            .saturating_mul(1 << failures.min(16));
        now_ms().saturating_add(u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX))
    }

    async fn announce_later(&self, id: EntryId, failures: u32) {
        let at = self.retry_at(failures);
        match blocking(&self.inner.store, move |s| {
            s.stego_announce_later(&id, at, failures)
        })
        .await
        {
            Ok(()) => self.inner.announce_work.notify_one(),
            Err(e) => tracing::warn!(error = %e, "keeping a stego announcement to publish again"),
        }
    }

    /// Publishes again the announcements that are due, until shutdown.
    pub(super) async fn announce_again(self) {
        let inner = &self.inner;
        loop {
            let wait = match blocking(&inner.store, |s| s.stego_announce_due(now_ms(), ROUND)).await
            {
                Ok(AnnounceDue { due, next }) => {
                    for (upload, failures) in due {
                        self.publish_again(&upload.announcement(), failures).await;
                    }
                    next.map_or(IDLE_WAKE, |at| {
                        Duration::from_millis(at.saturating_sub(now_ms())).min(IDLE_WAKE)
                    })
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the stego announcements to publish again");
                    IDLE_WAKE
                }
            };
            tokio::select! {
                () = inner.shutdown.cancelled() => return,
                () = inner.announce_work.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn publish_again(&self, announcement: &StegoAnnouncement, failures: u32) {
        let id = announcement.id();
        let failures = match self.publish(announcement).await {
            Ok(()) => None,
            // Costs nothing but a look at the topic: tried again, no failure counted.
            Err(Unpublished::NoPeers) => Some(failures),
            Err(e @ Unpublished::Failed(_)) => {
                let failures = failures.saturating_add(1);
                tracing::info!(image = %announcement.image, failures, error = %e, "announcing a stego result again failed");
                (failures < self.inner.settings.max_attempts).then_some(failures)
            }
        };
        match failures {
            Some(failures) => self.announce_later(id, failures).await,
            None => {
                if let Err(e) =
                    blocking(&self.inner.store, move |s| s.stego_announce_done(&id)).await
                {
                    tracing::warn!(error = %e, "dropping a stego announcement to publish again");
                }
            }
        }
    }
}

/// Why an announcement was not published.
#[derive(Debug, thiserror::Error)]
enum Unpublished {
    #[error("no peer on the stego topic yet")]
    NoPeers,
    #[error("{0}")]
    Failed(String),
}

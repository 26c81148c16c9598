//! The running stego part: its parts and its start, which spawns the loops the sibling modules
//! define.

use std::sync::Arc;

use anyhow::{Context, Result};
use libp2p::PeerId;
use stargate_http_gateway::StegoAuth;
use stargate_storage::Store;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::metrics::StegoMetrics;
use crate::mirror::{self, Mirror, PublisherRate, blocking};
use crate::p2p::Network;

/// The running stego part. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Stego {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) settings: mirror::Settings,
    pub(super) store: Store,
    pub(super) network: Network,
    /// Whose download path fetches and pins the image and the payload.
    pub(super) mirror: Mirror,
    pub(super) local: PeerId,
    pub(super) metrics: StegoMetrics,
    pub(super) rate: PublisherRate,
    /// The callback's refusals, for the status.
    pub(super) auth: StegoAuth,
    /// Wakes the fetcher: something waits, or a record may be due.
    pub(super) work: Notify,
    /// Wakes the loop that announces again: an announcement failed.
    pub(super) announce_work: Notify,
    pub(super) shutdown: CancellationToken,
}

impl Stego {
    /// Starts the stego part over a running mirror (`auth` is the callback's, whose refusals
    /// the status shows): adds the stego uploads to the mirror's reconciled set, joins the
    /// stego topic as its validator and spawns the intakes (the topic's, and the stego entries
    /// the mirror learns from peers), the fetcher, the loop that announces again and the
    /// ingestion sweep. They stop when `shutdown` is cancelled.
    ///
    /// # Errors
    /// The store cannot be read, or the network refuses the topic.
    pub(crate) async fn start(
        settings: mirror::Settings,
        store: Store,
        network: Network,
        mirror: Mirror,
        metrics: StegoMetrics,
        auth: StegoAuth,
        shutdown: CancellationToken,
    ) -> Result<(Self, Vec<(&'static str, JoinHandle<()>)>)> {
        let set = mirror.reconciled_set();
        for id in blocking(&store, Store::stego_ids)
            .await
            .context("reading the stego uploads")?
        {
            set.insert(id);
        }
        let learned = mirror
            .take_stego_entries()
            .context("the mirror's stego entries are taken already")?;
        let messages = network
            .gossip_validate(&settings.stego_topic)
            .await
            .context("joining the stego topic")?;
        let stego = Self {
            inner: Arc::new(Inner {
                rate: PublisherRate::new(settings.rate_per_min),
                settings,
                store,
                local: network.local_peer_id(),
                network,
                mirror,
                metrics,
                auth,
                work: Notify::new(),
                announce_work: Notify::new(),
                shutdown,
            }),
        };
        let mut tasks = vec![
            ("stego intake", tokio::spawn(stego.clone().intake(messages))),
            ("stego fetcher", tokio::spawn(stego.clone().fetch_waiting())),
            ("stego learned", tokio::spawn(stego.clone().learn(learned))),
            (
                "stego announcements",
                tokio::spawn(stego.clone().announce_again()),
            ),
        ];
        if stego.inner.settings.ingest {
            tasks.push(("ingestion sweep", tokio::spawn(stego.clone().sweep())));
        }
        tracing::info!(topic = %stego.inner.settings.stego_topic, "stego started");
        Ok((stego, tasks))
    }
}

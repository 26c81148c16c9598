//! The running mirror: its parts (settings, store, network, metrics, the reconciled set) and
//! its start, which spawns the loops the sibling modules define.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use libp2p::PeerId;
use libp2p::identity::Keypair;
use stargate_protocol::mirror::Entry;
use stargate_protocol::unixfs::export::BlockSource;
use stargate_storage::Store;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::blocking::blocking;
use super::entries::StoreEntries;
use super::metrics::MirrorMetrics;
use super::rate::PublisherRate;
use super::settings::Settings;
use crate::p2p::sync::{SyncPeers, SyncSet};
use crate::p2p::{self, Network};

/// Reconciliation results waiting for the intake.
const LEARNED_QUEUE: usize = 16;
/// Batches of stego entries (from manifests and reconciliations) waiting for the stego intake.
const STEGO_QUEUE: usize = 16;

/// The running mirror. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Mirror {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) settings: Settings,
    pub(super) store: Store,
    pub(super) network: Network,
    /// The store, then peers: where Bitswap downloads and manifests are read through.
    pub(super) blocks: Arc<dyn BlockSource>,
    pub(super) keypair: Keypair,
    pub(super) local: PeerId,
    pub(super) metrics: MirrorMetrics,
    pub(super) rate: PublisherRate,
    /// The id of every recorded entry: the set the sync protocol reconciles.
    pub(super) set: SyncSet,
    /// Entries learned through set reconciliation since start.
    pub(super) learned: AtomicU64,
    /// The peers the sync protocol reconciles with (none when it is off): their manifests are
    /// not read.
    pub(super) reconciling: SyncPeers,
    /// Wakes the download scheduler: something was queued, or a download ended.
    pub(super) work: Notify,
    /// Where stego entries learned from peers go: the stego part's intake (`sync.rs`).
    pub(super) stego_entries: mpsc::Sender<Vec<Entry>>,
    /// Its other end, until the stego part takes it.
    pub(super) stego_inbox: Mutex<Option<mpsc::Receiver<Vec<Entry>>>>,
    pub(super) shutdown: CancellationToken,
}

impl Mirror {
    /// Starts the mirror: resumes downloads cut short by the last stop, joins the mirror
    /// topic (the stego topic is the stego part's), and spawns the intake, the download
    /// scheduler and the manifest loops. They stop when `shutdown` is cancelled.
    ///
    /// # Errors
    /// The store cannot be read, or the network refuses the topics.
    pub(crate) async fn start(
        settings: Settings,
        store: Store,
        network: Network,
        blocks: Arc<dyn BlockSource>,
        keypair: Keypair,
        metrics: MirrorMetrics,
        shutdown: CancellationToken,
    ) -> Result<(Self, Vec<(&'static str, JoinHandle<()>)>)> {
        let resumed = blocking(&store, Store::mirror_resume)
            .await
            .context("resuming mirror downloads")?;
        if resumed > 0 {
            tracing::info!(
                resumed,
                "mirror downloads cut short by the last stop resume"
            );
        }
        let set = SyncSet::new();
        for id in blocking(&store, Store::mirror_ids)
            .await
            .context("reading the mirrored set")?
        {
            set.insert(id);
        }
        let validated = network
            .gossip_validate(&settings.topic)
            .await
            .context("joining the mirror topic")?;
        let (learned, to_learn) = mpsc::channel(LEARNED_QUEUE);
        let sync = match metrics.sync.clone() {
            Some(sync_metrics) => Some(
                p2p::sync::start(
                    &network,
                    set.clone(),
                    Arc::new(StoreEntries(store.clone())),
                    learned,
                    p2p::sync::Config::default(),
                    sync_metrics,
                    shutdown.clone(),
                )
                .await
                .context("starting the sync protocol")?,
            ),
            None => None,
        };
        let (stego_entries, stego_inbox) = mpsc::channel(STEGO_QUEUE);
        let reconciling = sync
            .as_ref()
            .map(|(_, peers)| peers.clone())
            .unwrap_or_default();
        let mirror = Self {
            inner: Arc::new(Inner {
                rate: PublisherRate::new(settings.rate_per_min),
                local: keypair.public().to_peer_id(),
                settings,
                store,
                network,
                blocks,
                keypair,
                metrics,
                set,
                learned: AtomicU64::new(0),
                reconciling,
                work: Notify::new(),
                stego_entries,
                stego_inbox: Mutex::new(Some(stego_inbox)),
                shutdown,
            }),
        };
        mirror.refresh_gauges().await;
        let mut tasks = vec![
            (
                "mirror intake",
                tokio::spawn(mirror.clone().intake(validated)),
            ),
            (
                "mirror manifests",
                tokio::spawn(mirror.clone().publish_manifests()),
            ),
        ];
        if mirror.inner.settings.download {
            tasks.push((
                "mirror downloads",
                tokio::spawn(mirror.clone().schedule_downloads()),
            ));
            tasks.push((
                "mirror manifest poll",
                tokio::spawn(mirror.clone().poll_manifests()),
            ));
        }
        if let Some((protocol, _)) = sync {
            tasks.push(("sync protocol", protocol));
            tasks.push((
                "mirror sync intake",
                tokio::spawn(mirror.clone().learn(to_learn)),
            ));
        }
        tracing::info!(topic = %mirror.inner.settings.topic, "mirror started");
        Ok((mirror, tasks))
    }

    /// The gauges, from the store's counts.
    pub(super) async fn refresh_gauges(&self) {
        match blocking(&self.inner.store, Store::mirror_counts).await {
            Ok(counts) => self.inner.metrics.counts(&counts),
            Err(e) => tracing::warn!(error = %e, "reading the mirror counts"),
        }
    }
}

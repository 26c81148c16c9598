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

mod download;
mod intake;
mod manifests;
mod metrics;
mod rate;
mod settings;
mod status;
mod sync;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use futures::StreamExt;
use futures::future::BoxFuture;
use libp2p::PeerId;
use libp2p::identity::Keypair;
use serde_json::{Map, Value};
use stargate_http_gateway::{MirrorError, MirrorQuery};
use stargate_protocol::Cid;
use stargate_protocol::unixfs::export::BlockSource;
use stargate_storage::Store;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use metrics::MirrorMetrics;
pub(crate) use settings::Settings;

use crate::p2p::sync::SyncSet;
use crate::p2p::{self, Network};
use rate::PublisherRate;

/// The running mirror. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Mirror {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    store: Store,
    network: Network,
    /// The store, then peers: where Bitswap downloads and manifests are read through.
    blocks: Arc<dyn BlockSource>,
    keypair: Keypair,
    local: PeerId,
    metrics: MirrorMetrics,
    rate: PublisherRate,
    /// The id of every recorded entry: the set the sync protocol reconciles.
    set: SyncSet,
    /// Entries learned through set reconciliation since start.
    learned: AtomicU64,
    /// Wakes the download scheduler: something was queued, or a download ended.
    work: Notify,
    shutdown: CancellationToken,
}

impl Mirror {
    /// Starts the mirror: resumes downloads cut short by the last stop, joins the mirror and
    /// stego topics, and spawns the intake, the download scheduler and the manifest loops.
    /// They stop when `shutdown` is cancelled.
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
        let stego = network
            .gossip_subscribe(&settings.stego_topic)
            .await
            .context("joining the stego topic")?;
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
                work: Notify::new(),
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
                "stego topic",
                tokio::spawn(mirror.clone().hold_stego(stego)),
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
        if let Some(sync_metrics) = mirror.inner.metrics.sync.clone() {
            let (learned, to_learn) = tokio::sync::mpsc::channel(sync::LEARNED_QUEUE);
            let protocol = p2p::sync::start(
                &mirror.inner.network,
                mirror.inner.set.clone(),
                mirror.sync_entries(),
                learned,
                p2p::sync::Config::default(),
                sync_metrics,
                mirror.inner.shutdown.clone(),
            )
            .await
            .context("starting the sync protocol")?;
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
    async fn refresh_gauges(&self) {
        match blocking(&self.inner.store, Store::mirror_counts).await {
            Ok(counts) => self.inner.metrics.counts(&counts),
            Err(e) => tracing::warn!(error = %e, "reading the mirror counts"),
        }
    }

    /// The stego topic is joined so that the instance receives it; its intake is the stego
    /// part's (step 6). Until then messages are read and dropped, so the subscription's buffer
    /// never holds the topic back.
    async fn hold_stego(self, mut stego: crate::p2p::GossipStream) {
        loop {
            tokio::select! {
                () = self.inner.shutdown.cancelled() => return,
                message = stego.next() => match message {
                    Some(m) => tracing::debug!(from = %m.from, bytes = m.data.len(), "stego announcement"),
                    None => return,
                },
            }
        }
    }
}

/// Runs a store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    store: &Store,
    call: impl FnOnce(&Store) -> Result<T, stargate_storage::StoreError> + Send + 'static,
) -> Result<T, stargate_storage::StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .map_err(|e| stargate_storage::StoreError::Database {
            context: "a mirror task",
            reason: e.to_string(),
        })?
}

fn now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Unix seconds.
fn now_s() -> u64 {
    now().as_secs()
}

/// Unix milliseconds.
fn now_ms() -> u64 {
    u64::try_from(now().as_millis()).unwrap_or(u64::MAX)
}

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

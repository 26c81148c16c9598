//! The mirror's Prometheus metrics, under the guide's `ipfs_mirror_` prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use stargate_storage::MirrorCounts;

use crate::p2p::sync::SyncMetrics;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// The mirror's metrics; clones share them.
#[derive(Debug, Clone)]
pub(crate) struct MirrorMetrics {
    received: Counter,
    accepted: Counter,
    rejected: Family<ReasonLabels, Counter>,
    errors: Family<ReasonLabels, Counter>,
    fetch_seconds: Histogram,
    queue: Gauge,
    in_flight: Gauge,
    stored: Gauge,
    manifests_published: Counter,
    manifests_read: Counter,
    /// The sync protocol's, when it runs.
    pub(crate) sync: Option<SyncMetrics>,
}

impl MirrorMetrics {
    /// Creates the metrics and registers them in `registry`; with `sync`, the sync
    /// protocol's too.
    pub(crate) fn register(registry: &mut Registry, sync: bool) -> Self {
        let m = Self {
            received: Counter::default(),
            accepted: Counter::default(),
            rejected: Family::default(),
            errors: Family::default(),
            fetch_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            queue: Gauge::default(),
            in_flight: Gauge::default(),
            stored: Gauge::default(),
            manifests_published: Counter::default(),
            manifests_read: Counter::default(),
            sync: sync.then(|| SyncMetrics::register(registry)),
        };
        registry.register(
            "ipfs_mirror_announcements_received",
            "Announcements received on the mirror topic",
            m.received.clone(),
        );
        registry.register(
            "ipfs_mirror_announcements_accepted",
            "Announcements accepted (recorded, forwarded)",
            m.accepted.clone(),
        );
        registry.register(
            "ipfs_mirror_announcements_rejected",
            "Announcements, manifests and entries refused, by reason; nothing is fetched for them",
            m.rejected.clone(),
        );
        registry.register(
            "ipfs_mirror_errors",
            "Mirrored downloads that failed, by reason",
            m.errors.clone(),
        );
        registry.register(
            "ipfs_mirror_fetch_duration_seconds",
            "Time to fetch, verify and pin one mirrored DAG",
            m.fetch_seconds.clone(),
        );
        registry.register(
            "ipfs_mirror_queue_length",
            "Downloads waiting in the queue",
            m.queue.clone(),
        );
        registry.register(
            "ipfs_mirror_in_flight",
            "Downloads under way",
            m.in_flight.clone(),
        );
        registry.register(
            "ipfs_mirror_stored",
            "Mirrored uploads held and pinned",
            m.stored.clone(),
        );
        registry.register(
            "ipfs_mirror_manifests_published",
            "Manifests this node published",
            m.manifests_published.clone(),
        );
        registry.register(
            "ipfs_mirror_manifests_read",
            "Manifests of other instances read and queued from",
            m.manifests_read.clone(),
        );
        m
    }

    pub(crate) fn received(&self) {
        self.received.inc();
    }

    pub(crate) fn accepted(&self) {
        self.accepted.inc();
    }

    pub(crate) fn rejected(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub(crate) fn error(&self, reason: &str) {
        self.errors
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub(crate) fn fetched(&self, seconds: f64) {
        self.fetch_seconds.observe(seconds);
    }

    pub(crate) fn manifest_published(&self) {
        self.manifests_published.inc();
    }

    pub(crate) fn manifest_read(&self) {
        self.manifests_read.inc();
    }

    /// The gauges, from the store's counts.
    pub(crate) fn counts(&self, counts: &MirrorCounts) {
        let set = |g: &Gauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        set(&self.queue, counts.queued);
        set(&self.in_flight, counts.fetching);
        set(&self.stored, counts.stored);
    }
}

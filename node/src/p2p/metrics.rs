//! Prometheus metrics of the network: connections, the DHT, providing, Bitswap, retrieval,
//! pubsub.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::bandwidth::{Bandwidth, BandwidthCollector};
use super::bitswap;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The path that brought a fetched block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetrievalPath {
    /// The CAR transfer from a Stargate node (`/stargate/car/1.0.0`).
    Transfer,
    /// Bitswap (Kubo, the public network, and the fallback between Stargate nodes).
    Bitswap,
}

impl RetrievalPath {
    fn label(self) -> &'static str {
        match self {
            Self::Transfer => "transfer",
            Self::Bitswap => "bitswap",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    path: &'static str,
}

/// The network's metrics; clones share them.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    connections: Gauge,
    routing_table: Gauge,
    provider_records: Gauge,
    provider_records_refused: Counter,
    provides: Family<OutcomeLabels, Counter>,
    provides_pending: Family<LaneLabels, Gauge>,
    provides_in_flight: Gauge,
    /// The transport's byte counts (`stats/bw` reads them too).
    pub(crate) bandwidth: Bandwidth,
    bitswap: Family<BitswapLabels, Counter>,
    bitswap_wants: Gauge,
    retrieved_blocks: Family<PathLabels, Counter>,
    retrieved_bytes: Family<PathLabels, Counter>,
    pubsub_received: Family<VerdictLabels, Counter>,
    pubsub_published: Family<OutcomeLabels, Counter>,
    pubsub_dropped: Counter,
    pubsub_topics: Gauge,
    pubsub_mesh_peers: Gauge,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabels {
    lane: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BitswapLabels {
    what: &'static str,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            connections: Gauge::default(),
            routing_table: Gauge::default(),
            provider_records: Gauge::default(),
            provider_records_refused: Counter::default(),
            provides: Family::default(),
            provides_pending: Family::default(),
            provides_in_flight: Gauge::default(),
            bandwidth: Bandwidth::default(),
            bitswap: Family::default(),
            bitswap_wants: Gauge::default(),
            retrieved_blocks: Family::default(),
            retrieved_bytes: Family::default(),
            pubsub_received: Family::default(),
            pubsub_published: Family::default(),
            pubsub_dropped: Counter::default(),
            pubsub_topics: Gauge::default(),
            pubsub_mesh_peers: Gauge::default(),
        };
        registry.register(
            "stargate_p2p_connections",
            "Open peer-to-peer connections",
            m.connections.clone(),
        );
        registry.register(
            "stargate_dht_routing_table_peers",
            "Peers in the DHT routing table",
            m.routing_table.clone(),
        );
        registry.register(
            "stargate_dht_provider_records",
            "Provider records of other peers held for the DHT",
            m.provider_records.clone(),
        );
        registry.register(
            "stargate_dht_provider_records_refused",
            "Provider records of other peers dropped because the record store was full",
            m.provider_records_refused.clone(),
        );
        registry.register(
            "stargate_dht_provides",
            "Provider records this node announced, by outcome (ok, failed)",
            m.provides.clone(),
        );
        registry.register(
            "stargate_dht_provides_pending",
            "Announcements waiting in the provide queue, by lane (added: adds, pins and fetched \
             blocks; mirrored: DAGs the mirror stored, held until it is quiet); each stands for \
             one or more provider records",
            m.provides_pending.clone(),
        );
        registry.register(
            "stargate_dht_provides_in_flight",
            "Provider records being announced now",
            m.provides_in_flight.clone(),
        );
        registry.register_collector(Box::new(BandwidthCollector(m.bandwidth.clone())));
        registry.register(
            "stargate_bitswap",
            "Bitswap counts since start, by what (blocks_received, block_bytes_received, \
             duplicate_blocks, blocks_sent, bytes_sent, bytes_received, misbehaving_peers, \
             dropped_wants, store_errors)",
            m.bitswap.clone(),
        );
        registry.register(
            "stargate_bitswap_wants",
            "Blocks this node wants from peers now",
            m.bitswap_wants.clone(),
        );
        registry.register(
            "stargate_retrieval_blocks",
            "Blocks fetched from peers for cat, get, the gateway and pin add, by the path that \
             brought them (transfer: the CAR transfer from a Stargate node; bitswap)",
            m.retrieved_blocks.clone(),
        );
        registry.register(
            "stargate_retrieval_bytes",
            "Bytes of the blocks fetched from peers, by path (transfer, bitswap)",
            m.retrieved_bytes.clone(),
        );
        registry.register(
            "stargate_pubsub_messages_received",
            "Pubsub messages received from peers, by verdict (accept, reject, ignore: a \
             validator's; unvalidated: a topic without one; overflow: its validator was too busy)",
            m.pubsub_received.clone(),
        );
        registry.register(
            "stargate_pubsub_messages_published",
            "Pubsub messages this node published, by outcome (sent, no_peers, held, failed)",
            m.pubsub_published.clone(),
        );
        registry.register(
            "stargate_pubsub_subscriber_drops",
            "Pubsub messages not handed to a `pubsub/sub` stream that was too slow",
            m.pubsub_dropped.clone(),
        );
        registry.register(
            "stargate_pubsub_topics",
            "Pubsub topics this node is subscribed to",
            m.pubsub_topics.clone(),
        );
        registry.register(
            "stargate_pubsub_mesh_peers",
            "Peers in this node's gossipsub meshes (a peer counts once)",
            m.pubsub_mesh_peers.clone(),
        );
        m
    }

    /// A message from a peer got `verdict`.
    pub(super) fn pubsub_received(&self, verdict: &'static str) {
        self.pubsub_received
            .get_or_create(&VerdictLabels { verdict })
            .inc();
    }

    pub(super) fn pubsub_published(&self, outcome: &'static str) {
        self.pubsub_published
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub(super) fn pubsub_dropped(&self) {
        self.pubsub_dropped.inc();
    }

    pub(super) fn set_pubsub(&self, topics: usize, mesh_peers: usize) {
        self.pubsub_topics.set(as_gauge(topics));
        self.pubsub_mesh_peers.set(as_gauge(mesh_peers));
    }

    /// A block of `bytes` bytes was fetched over `path`.
    pub(crate) fn retrieved(&self, path: RetrievalPath, bytes: usize) {
        let labels = PathLabels { path: path.label() };
        self.retrieved_blocks.get_or_create(&labels).inc();
        self.retrieved_bytes
            .get_or_create(&labels)
            .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    /// Brings the Bitswap metrics up to `now`, given what they were set from last time.
    pub(super) fn set_bitswap(&self, last: &bitswap::Stats, now: &bitswap::Stats) {
        let counts = [
            ("blocks_received", last.blocks_received, now.blocks_received),
            (
                "block_bytes_received",
                last.block_bytes_received,
                now.block_bytes_received,
            ),
            (
                "duplicate_blocks",
                last.duplicate_blocks,
                now.duplicate_blocks,
            ),
            ("blocks_sent", last.blocks_sent, now.blocks_sent),
            ("bytes_sent", last.bytes_sent, now.bytes_sent),
            ("bytes_received", last.bytes_received, now.bytes_received),
            (
                "misbehaving_peers",
                last.misbehaving_peers,
                now.misbehaving_peers,
            ),
            ("dropped_wants", last.dropped_wants, now.dropped_wants),
            ("store_errors", last.store_errors, now.store_errors),
        ];
        for (what, before, after) in counts {
            self.bitswap
                .get_or_create(&BitswapLabels { what })
                .inc_by(after.saturating_sub(before));
        }
        self.bitswap_wants
            .set(i64::try_from(now.wants).unwrap_or(i64::MAX));
    }

    pub(super) fn set_connections(&self, connections: usize) {
        self.connections.set(as_gauge(connections));
    }

    /// `refused` is the record store's total since start.
    pub(super) fn set_dht(&self, routing_table: usize, records: usize, refused: u64) {
        self.routing_table.set(as_gauge(routing_table));
        self.provider_records.set(as_gauge(records));
        self.provider_records_refused
            .inc_by(refused.saturating_sub(self.provider_records_refused.get()));
    }

    /// The gauge of announcements waiting in `lane` (`added`, `mirrored`).
    pub(super) fn provides_pending(&self, lane: &'static str) -> Gauge {
        self.provides_pending
            .get_or_create(&LaneLabels { lane })
            .clone()
    }

    /// The gauge of provider records being announced.
    pub(super) fn provides_in_flight(&self) -> &Gauge {
        &self.provides_in_flight
    }

    pub(super) fn provided(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.provides
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}

fn as_gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

//! Prometheus metrics of the network: connections, the DHT, providing.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The network's metrics; clones share them.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    connections: Gauge,
    routing_table: Gauge,
    provider_records: Gauge,
    provides: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            connections: Gauge::default(),
            routing_table: Gauge::default(),
            provider_records: Gauge::default(),
            provides: Family::default(),
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
            "stargate_dht_provides",
            "Provider records this node announced, by outcome (ok, failed)",
            m.provides.clone(),
        );
        m
    }

    pub(super) fn set_counts(&self, connections: usize, routing_table: usize, records: usize) {
        let as_gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.connections.set(as_gauge(connections));
        self.routing_table.set(as_gauge(routing_table));
        self.provider_records.set(as_gauge(records));
    }

    pub(super) fn provided(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.provides
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}

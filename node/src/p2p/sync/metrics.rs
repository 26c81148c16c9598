//! Prometheus metrics of the sync protocol.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    role: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The sync protocol's metrics; clones share them.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncMetrics {
    rounds: Counter,
    sessions: Family<SessionLabels, Counter>,
    bytes: Family<DirectionLabels, Counter>,
    digests: Family<DirectionLabels, Counter>,
    learned: Counter,
    misbehaving: Family<ReasonLabels, Counter>,
}

/// Which side of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Initiator,
    Responder,
}

impl SyncMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "stargate_sync_rounds",
            "Reconciliation rounds (Negentropy messages answered or sent) with other Stargate nodes",
            m.rounds.clone(),
        );
        registry.register(
            "stargate_sync_sessions",
            "Sync sessions by role (initiator, responder) and outcome (ok, busy, timeout, \
             io, misbehaving, stopped)",
            m.sessions.clone(),
        );
        registry.register(
            "stargate_sync_bytes",
            "Bytes of sync messages (digests and sessions), by direction (sent, received)",
            m.bytes.clone(),
        );
        registry.register(
            "stargate_sync_digests",
            "Set digests exchanged with Stargate peers, by direction (sent, received)",
            m.digests.clone(),
        );
        registry.register(
            "stargate_sync_entries_learned",
            "Entries this node lacked, learned from peers by reconciliation",
            m.learned.clone(),
        );
        registry.register(
            "stargate_sync_misbehaving",
            "Sync streams cut off because the peer broke the protocol, by reason",
            m.misbehaving.clone(),
        );
        m
    }

    pub(super) fn round(&self) {
        self.rounds.inc();
    }

    pub(super) fn session(&self, role: Role, outcome: &'static str) {
        let role = match role {
            Role::Initiator => "initiator",
            Role::Responder => "responder",
        };
        self.sessions
            .get_or_create(&SessionLabels { role, outcome })
            .inc();
    }

    pub(super) fn sent(&self, bytes: usize) {
        self.add_bytes("sent", bytes);
    }

    pub(super) fn received(&self, bytes: usize) {
        self.add_bytes("received", bytes);
    }

    fn add_bytes(&self, direction: &'static str, bytes: usize) {
        self.bytes
            .get_or_create(&DirectionLabels { direction })
            .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    pub(super) fn digest(&self, sent: bool) {
        let direction = if sent { "sent" } else { "received" };
        self.digests
            .get_or_create(&DirectionLabels { direction })
            .inc();
    }

    pub(super) fn learned(&self, entries: usize) {
        self.learned
            .inc_by(u64::try_from(entries).unwrap_or(u64::MAX));
    }

    pub(super) fn misbehaving(&self, reason: &'static str) {
        self.misbehaving
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Bytes sent and received so far.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> (u64, u64) {
        let get = |direction| {
            self.bytes
                .get_or_create(&DirectionLabels { direction })
                .get()
        };
        (get("sent"), get("received"))
    }

    /// Sessions with `outcome` so far, both roles.
    #[cfg(test)]
    pub(super) fn sessions(&self, outcome: &'static str) -> u64 {
        ["initiator", "responder"]
            .into_iter()
            .map(|role| {
                self.sessions
                    .get_or_create(&SessionLabels { role, outcome })
                    .get()
            })
            .sum()
    }

    #[cfg(test)]
    pub(super) fn digests_sent(&self) -> u64 {
        self.digests
            .get_or_create(&DirectionLabels { direction: "sent" })
            .get()
    }

    #[cfg(test)]
    pub(super) fn rounds(&self) -> u64 {
        self.rounds.get()
    }
}

//! Reachability as AutoNAT finds it, and, while we are unreachable, listening through relays
//! (connected peers that serve circuit relay v2).

use std::collections::{HashMap, HashSet};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, Swarm, autonat, relay};

use super::identify::Identify;
use super::peers::Peers;
use crate::p2p::behaviour::Behaviour;

/// Relays listened through at once while unreachable.
const MAX_RELAYS: usize = 2;

/// Whether AutoNAT found us reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reachability {
    Unknown,
    Public,
    Private,
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Relays {
    reachability: Reachability,
    /// Listeners through relays, and the relay of each.
    listeners: HashMap<ListenerId, PeerId>,
}

impl Relays {
    pub(super) fn new() -> Self {
        Self {
            reachability: Reachability::Unknown,
            listeners: HashMap::new(),
        }
    }

    pub(super) fn status_changed(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peers: &Peers,
        identify: &Identify,
        old: &autonat::NatStatus,
        new: &autonat::NatStatus,
    ) {
        tracing::info!(?old, ?new, "reachability changed");
        self.reachability = match new {
            autonat::NatStatus::Public(_) => Reachability::Public,
            autonat::NatStatus::Private => Reachability::Private,
            autonat::NatStatus::Unknown => Reachability::Unknown,
        };
        match self.reachability {
            Reachability::Private => self.listen(swarm, peers, identify),
            Reachability::Public => {
                for id in std::mem::take(&mut self.listeners).into_keys() {
                    swarm.remove_listener(id);
                }
            }
            Reachability::Unknown => {}
        }
    }

    /// `peer` identified itself: if it is a relay and we are unreachable, it may be listened
    /// through.
    pub(super) fn identified(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peers: &Peers,
        identify: &Identify,
        peer: &PeerId,
    ) {
        if identify.info(peer).is_some_and(is_relay) && self.reachability == Reachability::Private {
            self.listen(swarm, peers, identify);
        }
    }

    /// Replaces relays that went away.
    pub(super) fn on_tick(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peers: &Peers,
        identify: &Identify,
    ) {
        if self.reachability == Reachability::Private {
            self.listen(swarm, peers, identify);
        }
    }

    pub(super) fn listener_closed(&mut self, id: ListenerId, reason: &Result<(), std::io::Error>) {
        if let Some(relay) = self.listeners.remove(&id) {
            tracing::info!(%relay, ?reason, "stopped listening through relay");
        }
    }

    /// Listens through connected relays, up to [`MAX_RELAYS`] at once.
    fn listen(&mut self, swarm: &mut Swarm<Behaviour>, peers: &Peers, identify: &Identify) {
        if !swarm.behaviour().relay.is_enabled() {
            return;
        }
        let using: HashSet<PeerId> = self.listeners.values().copied().collect();
        let candidates: Vec<(PeerId, Multiaddr)> = peers
            .ids()
            .filter(|id| !using.contains(id))
            .filter(|id| identify.info(id).is_some_and(is_relay))
            .filter_map(|id| {
                peers
                    .remotes(id)
                    .find(|a| !is_relayed(a))
                    .map(|a| (*id, a.clone()))
            })
            .take(MAX_RELAYS.saturating_sub(using.len()))
            .collect();
        for (relay, addr) in candidates {
            let circuit = addr.with(Protocol::P2p(relay)).with(Protocol::P2pCircuit);
            match swarm.listen_on(circuit.clone()) {
                Ok(id) => {
                    tracing::info!(%relay, "listening through relay");
                    self.listeners.insert(id, relay);
                }
                Err(e) => tracing::debug!(%circuit, error = %e, "cannot listen through relay"),
            }
        }
    }
}

fn is_relay(info: &libp2p::identify::Info) -> bool {
    info.protocols.contains(&relay::HOP_PROTOCOL_NAME)
}

fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

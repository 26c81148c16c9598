//! The DHT: bootstrap, provider searches (streamed to the caller, the providers dialled if
//! asked), provides, the routing table, the record store, and the peers' addresses that the
//! routing table learns from identify.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm};
use stargate_http_gateway::NetworkError;
use tokio::sync::{mpsc, oneshot};

use super::addresses::usable;
use super::identify::Identify;
use super::peers::Peers;
use crate::p2p::behaviour::{Behaviour, KAD_PROTOCOL};
use crate::p2p::command::{DhtCommand, FoundProvider};
use crate::p2p::metrics::Metrics;

/// `find_providers` queries running at once; more are refused.
const MAX_PROVIDER_QUERIES: usize = 256;
/// Provide queries running at once (the reprovider keeps below this by itself).
const MAX_PROVIDE_QUERIES: usize = 1024;

/// A running `find_providers`.
#[derive(Debug)]
struct ProvidersQuery {
    found: mpsc::Sender<FoundProvider>,
    seen: HashSet<PeerId>,
    limit: usize,
    dial: bool,
}

/// The DHT queries under way.
#[derive(Debug, Default)]
pub(super) struct Dht {
    provider_queries: HashMap<QueryId, ProvidersQuery>,
    provide_queries: HashMap<QueryId, oneshot::Sender<Result<(), NetworkError>>>,
}

impl Dht {
    /// Dials the bootstrap peers and starts a bootstrap with them.
    pub(super) fn bootstrap(
        swarm: &mut Swarm<Behaviour>,
        bootstrap: &[(PeerId, Vec<Multiaddr>)],
    ) -> Self {
        for (peer, addrs) in bootstrap {
            for addr in addrs {
                swarm.behaviour_mut().kad.add_address(peer, addr.clone());
            }
            let dial = DialOpts::peer_id(*peer).addresses(addrs.clone()).build();
            if let Err(e) = swarm.dial(dial) {
                tracing::debug!(%peer, error = %e, "bootstrap dial failed");
            }
        }
        if !bootstrap.is_empty() {
            // Fails only with an empty routing table, which the bootstrap peers just filled.
            let _ = swarm.behaviour_mut().kad.bootstrap();
        }
        Self::default()
    }

    pub(super) fn on_command(&mut self, swarm: &mut Swarm<Behaviour>, command: DhtCommand) {
        match command {
            DhtCommand::FindProviders {
                key,
                limit,
                dial,
                found,
            } => {
                if self.provider_queries.len() >= MAX_PROVIDER_QUERIES {
                    tracing::warn!("too many provider queries at once; refusing one");
                    return;
                }
                let id = swarm.behaviour_mut().kad.get_providers(key);
                self.provider_queries.insert(
                    id,
                    ProvidersQuery {
                        found,
                        seen: HashSet::new(),
                        limit,
                        dial,
                    },
                );
            }
            DhtCommand::Provide { key, reply } => {
                if routing_table_size(swarm) == 0 {
                    let _ = reply.send(Err(NetworkError::Failed(
                        "cannot provide: no peers in the DHT routing table (connect to the network first)"
                            .into(),
                    )));
                    return;
                }
                if self.provide_queries.len() >= MAX_PROVIDE_QUERIES {
                    let _ = reply.send(Err(NetworkError::Failed(
                        "too many provide queries at once; try again later".into(),
                    )));
                    return;
                }
                match swarm.behaviour_mut().kad.start_providing(key) {
                    Ok(id) => {
                        self.provide_queries.insert(id, reply);
                    }
                    Err(e) => {
                        let _ =
                            reply.send(Err(NetworkError::Failed(format!("cannot provide: {e}"))));
                    }
                }
            }
            DhtCommand::RoutingTableSize { reply } => {
                let _ = reply.send(routing_table_size(swarm));
            }
        }
    }

    pub(super) fn on_event(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peers: &Peers,
        identify: &Identify,
        event: kad::Event,
    ) {
        let kad::Event::OutboundQueryProgressed {
            id, result, step, ..
        } = event
        else {
            if let kad::Event::ModeChanged { new_mode } = event {
                tracing::info!(mode = %new_mode, "DHT mode changed");
            }
            return;
        };
        match result {
            QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
                self.on_providers(swarm, peers, identify, id, providers);
                if step.last {
                    self.provider_queries.remove(&id);
                }
            }
            QueryResult::GetProviders(_) => {
                // Finished (or timed out): dropping the sender ends the caller's stream.
                self.provider_queries.remove(&id);
            }
            QueryResult::StartProviding(result) => {
                if let Some(reply) = self.provide_queries.remove(&id) {
                    let _ = reply.send(
                        result
                            .map(|_| ())
                            .map_err(|e| NetworkError::Failed(format!("providing failed: {e}"))),
                    );
                }
            }
            QueryResult::Bootstrap(Ok(ok)) if ok.num_remaining == 0 => {
                tracing::debug!(peers = routing_table_size(swarm), "DHT bootstrap done");
            }
            _ => {}
        }
    }

    /// `peer` identified itself: if it is a DHT server, its announced addresses that are worth
    /// it (see [`usable`]) go to the routing table.
    pub(super) fn identified(
        &self,
        swarm: &mut Swarm<Behaviour>,
        peers: &Peers,
        identify: &Identify,
        peer: &PeerId,
    ) {
        let Some(info) = identify.info(peer) else {
            return;
        };
        if !info.protocols.contains(&KAD_PROTOCOL) {
            return;
        }
        for addr in info
            .listen_addrs
            .iter()
            .filter(|a| peers.remotes(peer).any(|via| usable(a, via)))
        {
            swarm.behaviour_mut().kad.add_address(peer, addr.clone());
        }
    }

    /// Drops expired provider records and brings the DHT metrics up to date.
    pub(super) fn on_tick(&self, swarm: &mut Swarm<Behaviour>, metrics: &Metrics) {
        let records = swarm.behaviour_mut().kad.store_mut();
        records.prune(Instant::now());
        let (held, refused) = (records.len(), records.refused());
        metrics.set_dht(routing_table_size(swarm), held, refused);
    }

    fn on_providers(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peers: &Peers,
        identify: &Identify,
        id: QueryId,
        providers: HashSet<PeerId>,
    ) {
        let local = *swarm.local_peer_id();
        let Some(query) = self.provider_queries.get_mut(&id) else {
            return;
        };
        let mut fresh = Vec::new();
        for p in providers {
            if query.seen.len() >= query.limit {
                break;
            }
            if p != local && query.seen.insert(p) {
                fresh.push(p);
            }
        }
        let dial = query.dial;
        let limit_reached = query.seen.len() >= query.limit;
        for peer in fresh {
            if dial && !swarm.is_connected(&peer) {
                // The query still holds the addresses the providers came with; kad hands them
                // to this dial.
                let _ = swarm.dial(
                    DialOpts::peer_id(peer)
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build(),
                );
            }
            let addrs = known_addrs(swarm, peers, identify, &peer);
            let Some(query) = self.provider_queries.get_mut(&id) else {
                return;
            };
            match query.found.try_send(FoundProvider { peer, addrs }) {
                Ok(()) => {}
                // A slow reader loses providers rather than growing a queue.
                Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.finish_providers_query(swarm, id);
                    return;
                }
            }
        }
        if limit_reached {
            self.finish_providers_query(swarm, id);
        }
    }

    fn finish_providers_query(&mut self, swarm: &mut Swarm<Behaviour>, id: QueryId) {
        self.provider_queries.remove(&id);
        if let Some(mut q) = swarm.behaviour_mut().kad.query_mut(&id) {
            q.finish();
        }
    }
}

fn routing_table_size(swarm: &mut Swarm<Behaviour>) -> usize {
    swarm
        .behaviour_mut()
        .kad
        .kbuckets()
        .map(|b| b.num_entries())
        .sum()
}

/// Addresses of `peer` we know: its connections, what it announced, its DHT entry.
fn known_addrs(
    swarm: &mut Swarm<Behaviour>,
    peers: &Peers,
    identify: &Identify,
    peer: &PeerId,
) -> Vec<Multiaddr> {
    let mut addrs: Vec<Multiaddr> = peers.remotes(peer).cloned().collect();
    if let Some(info) = identify.info(peer) {
        addrs.extend(info.listen_addrs.iter().cloned());
    }
    if let Some(bucket) = swarm.behaviour_mut().kad.kbucket(*peer) {
        for entry in bucket.iter() {
            if entry.node.key.preimage() == peer {
                addrs.extend(entry.node.value.iter().cloned());
            }
        }
    }
    let mut seen = HashSet::new();
    addrs.retain(|a| seen.insert(a.clone()));
    addrs
}

//! The [`Network`] handle: what the rest of the node and the RPC API ask of the network. Its
//! requests travel to the event loop on a bounded channel and are answered on oneshot channels;
//! the CAR transfer and the announcement queue are used directly.

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use libp2p::kad::RecordKey;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use stargate_http_gateway::{
    ConnectedPeer, DagFetched, NetworkError, PeerIdentity, Provider, PubSubMessage,
};
use stargate_protocol::transfer::TransferRequest;
use stargate_protocol::{Block, Cid};
use tokio::sync::{mpsc, oneshot};

use super::announcements::Announcements;
use super::command::{
    Command, DhtCommand, FoundProvider, GossipCommand, GossipMessage, IdentifyCommand, PeerCommand,
    Verdict, WantCommand,
};
use super::metrics::{Metrics, RetrievalPath};
use super::records::dht_key;
use super::settings::split_peer;
use super::transfer::{self, FetchSummary, TransferError};

/// Providers buffered per `find_providers` stream.
const PROVIDER_BUFFER: usize = 32;

/// Stargate peer events queued for a watcher.
const STARGATE_EVENTS: usize = 1024;

/// A block wanted through [`Network::want`]. Dropping it withdraws the want (unless others
/// want the same block).
#[derive(Debug)]
pub(crate) struct Want {
    pub(crate) block: oneshot::Receiver<Result<Block, NetworkError>>,
    pub(crate) exhausted: oneshot::Receiver<()>,
    cid: Cid,
    commands: mpsc::Sender<Command>,
}

impl Drop for Want {
    fn drop(&mut self) {
        // A full queue only delays the cleanup: the event loop also sweeps abandoned wants.
        let _ = self
            .commands
            .try_send(Command::Want(WantCommand::Abandoned { cid: self.cid }));
    }
}

/// Messages to a validator (the mirror) waiting for its verdicts; when it is full, messages from
/// the network are ignored (not forwarded, nobody penalised).
#[allow(
    dead_code,
    reason = "the mirror (node/src/mirror/) validates announcements"
)]
const VALIDATOR_BUFFER: usize = 256;
/// Messages buffered per subscription; a subscriber that falls further behind misses messages,
/// as Kubo's do.
const SUBSCRIBER_BUFFER: usize = 64;

/// Accepted messages on one topic, as [`Network::gossip_subscribe`] gives them. Dropping it
/// ends the subscription (the topic's, if nobody else listens).
#[derive(Debug)]
pub(crate) struct GossipStream {
    messages: mpsc::Receiver<GossipMessage>,
    topic: String,
    commands: mpsc::Sender<Command>,
}

impl futures::Stream for GossipStream {
    type Item = GossipMessage;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<GossipMessage>> {
        self.messages.poll_recv(cx)
    }
}

impl Drop for GossipStream {
    fn drop(&mut self) {
        self.messages.close();
        // A full queue only delays the cleanup: the event loop also sweeps closed receivers.
        let _ = self
            .commands
            .try_send(Command::Gossip(GossipCommand::Closed {
                topic: std::mem::take(&mut self.topic),
            }));
    }
}

/// A handle on the running network. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    commands: mpsc::Sender<Command>,
    local_peer_id: PeerId,
    announcements: Announcements,
    metrics: Metrics,
    transfer: transfer::Transfer,
}

impl Network {
    /// The handle on the parts [`super::spawn`] started: the event loop reading `commands`, the
    /// announcement queue and the CAR transfer.
    pub(super) fn new(
        commands: mpsc::Sender<Command>,
        local_peer_id: PeerId,
        announcements: Announcements,
        metrics: Metrics,
        transfer: transfer::Transfer,
    ) -> Self {
        Self {
            commands,
            local_peer_id,
            announcements,
            metrics,
            transfer,
        }
    }

    /// This node's peer ID.
    pub(crate) fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The mirror stored and pinned the DAG of `root` (a mirrored upload, or its own manifest):
    /// it is announced in the DHT in the mirror's lane, a little later (see `providing.rs`).
    pub(crate) fn provide_soon(&self, root: Cid) {
        self.announcements.push_mirrored(root);
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| NetworkError::Stopped)?;
        answer.await.map_err(|_| NetworkError::Stopped)
    }

    /// Providers of `key` as the DHT finds them (at most `limit`); with `dial`, each is dialled
    /// as soon as it is found. The stream ends when the query does.
    pub(crate) async fn providers(
        &self,
        key: RecordKey,
        limit: usize,
        dial: bool,
    ) -> Result<mpsc::Receiver<FoundProvider>, NetworkError> {
        let (found, receiver) = mpsc::channel(PROVIDER_BUFFER.min(limit.max(1)));
        self.commands
            .send(Command::Dht(DhtCommand::FindProviders {
                key,
                limit,
                dial,
                found,
            }))
            .await
            .map_err(|_| NetworkError::Stopped)?;
        Ok(receiver)
    }

    /// Announces this node as a provider of `key`; returns when the DHT query ends.
    pub(crate) async fn start_providing(&self, key: RecordKey) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Dht(DhtCommand::Provide { key, reply }))
            .await?
    }

    /// Fetches what `request` names (a whole DAG, a path's entity, an `entity-bytes` range) from
    /// `peer`, a Stargate node (identify agent `stargate/...`), over the CAR transfer protocol.
    /// Yields the blocks in walk order, each verified and handed to the store; ends once all
    /// are durably stored (and, with `pin`, the root pinned), or with one error. Broken streams
    /// are resumed; a peer that sends a wrong block is disconnected. Dropping the stream cancels.
    pub(crate) fn fetch_dag(
        &self,
        peer: PeerId,
        request: TransferRequest,
        pin: bool,
    ) -> BoxStream<'static, Result<stargate_protocol::Block, TransferError>> {
        self.transfer.fetch(peer, request, pin)
    }

    /// [`Network::fetch_dag`] to the end: how many blocks and bytes the DAG has.
    ///
    /// # Errors
    /// The first error of the transfer.
    pub(crate) async fn fetch_dag_all(
        &self,
        peer: PeerId,
        request: TransferRequest,
        pin: bool,
    ) -> Result<FetchSummary, TransferError> {
        self.transfer.fetch_all(peer, request, pin).await
    }

    /// Wants `cid` from the connected peers over Bitswap; the block arrives verified (not
    /// stored) on [`Want::block`].
    pub(crate) async fn want(&self, cid: Cid) -> Result<Want, NetworkError> {
        let (block, block_rx) = oneshot::channel();
        let (exhausted, exhausted_rx) = oneshot::channel();
        self.commands
            .send(Command::Want(WantCommand::Want {
                cid,
                block,
                exhausted,
            }))
            .await
            .map_err(|_| NetworkError::Stopped)?;
        Ok(Want {
            block: block_rx,
            exhausted: exhausted_rx,
            cid,
            commands: self.commands.clone(),
        })
    }

    /// Adds `peers` (dialled if need be) as candidates for the want of `cid`.
    pub(crate) async fn add_peers(&self, cid: Cid, peers: Vec<PeerId>) -> Result<(), NetworkError> {
        self.commands
            .send(Command::Want(WantCommand::AddPeers { cid, peers }))
            .await
            .map_err(|_| NetworkError::Stopped)
    }

    /// Connected peers that identified themselves as Stargate nodes (identify agent
    /// `stargate/...`): the ones the CAR transfer can fetch from. Peers connected a moment ago
    /// are waited for (at most `identify_wait`) until they identify themselves.
    pub(crate) async fn stargate_peers(
        &self,
        identify_wait: std::time::Duration,
    ) -> Result<Vec<PeerId>, NetworkError> {
        let (mut stargate, pending) = self
            .ask(|reply| Command::Identify(IdentifyCommand::StargatePeers { reply }))
            .await?;
        if pending.is_empty() {
            return Ok(stargate);
        }
        let answers = tokio::time::timeout(
            identify_wait,
            futures::future::join_all(pending.iter().map(|p| self.is_stargate(*p))),
        )
        .await
        .unwrap_or_default();
        stargate.extend(
            pending
                .into_iter()
                .zip(answers)
                .filter_map(|(p, a)| matches!(a, Ok(Some(true))).then_some(p)),
        );
        Ok(stargate)
    }

    /// Whether `peer` is a Stargate node; waits for its identify message if it has not come
    /// yet (bound the wait). `None` for a peer that is not connected or disconnects first.
    pub(crate) async fn is_stargate(&self, peer: PeerId) -> Result<Option<bool>, NetworkError> {
        self.ask(|reply| Command::Identify(IdentifyCommand::IsStargate { peer, reply }))
            .await
    }

    pub(super) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Events of the Stargate peers: those connected now, then each that comes or goes. Events
    /// that do not fit the receiver's queue are dropped (the sync protocol's digests cover them).
    pub(super) async fn stargate_peer_events(
        &self,
    ) -> Result<mpsc::Receiver<super::command::StargatePeer>, NetworkError> {
        let (events, receiver) = mpsc::channel(STARGATE_EVENTS);
        self.commands
            .send(Command::Identify(IdentifyCommand::WatchStargate { events }))
            .await
            .map_err(|_| NetworkError::Stopped)?;
        Ok(receiver)
    }

    /// The swarm's control of plain streams (the sync protocol's).
    pub(super) fn stream_control(&self) -> libp2p_stream::Control {
        self.transfer.control()
    }

    /// What disconnects a peer that broke a protocol.
    pub(super) fn penaliser(&self) -> transfer::Penalise {
        penalise(self.commands.downgrade())
    }

    /// Counts blocks fetched from peers by the path that brought them.
    pub(crate) fn retrieved(&self, path: RetrievalPath, bytes: usize) {
        self.metrics.retrieved(path, bytes);
    }

    /// The limits of the CAR transfer.
    pub(crate) fn transfer_limits(&self) -> &transfer::Config {
        self.transfer.config()
    }

    /// Queues a block fetched from peers for providing (only the `all` strategy announces it).
    pub(crate) fn block_fetched(&self, cid: Cid) {
        self.announcements.push_fetched(cid);
    }

    /// Every message on `topic` (remote ones before they are forwarded, and the node's own
    /// publishes with `source: None`) goes to the returned receiver; remote ones wait for
    /// [`Network::gossip_report`]. One validator per topic. Subscribes to the topic.
    #[allow(
        dead_code,
        reason = "the mirror (node/src/mirror/) validates announcements with it"
    )]
    pub(crate) async fn gossip_validate(
        &self,
        topic: &str,
    ) -> Result<mpsc::Receiver<GossipMessage>, NetworkError> {
        let (messages, receiver) = mpsc::channel(VALIDATOR_BUFFER);
        let topic = topic.to_owned();
        self.ask(|reply| {
            Command::Gossip(GossipCommand::Validate {
                topic,
                messages,
                reply,
            })
        })
        .await??;
        Ok(receiver)
    }

    /// The validator's verdict on a message from [`Network::gossip_validate`]: accepted ones
    /// are forwarded and delivered to subscribers, rejected ones count against the peer that
    /// forwarded them. Nothing to do for the node's own publishes.
    #[allow(
        dead_code,
        reason = "the mirror (node/src/mirror/) reports its verdicts with it"
    )]
    pub(crate) fn gossip_report(&self, message: &GossipMessage, verdict: Verdict) {
        if message.source.is_none() {
            return;
        }
        let command = Command::Gossip(GossipCommand::Report {
            message: message.clone(),
            verdict,
        });
        // A full queue means a busy node: the message is then neither forwarded nor delivered,
        // and gossipsub forgets it with its history.
        if self.commands.try_send(command).is_err() {
            tracing::debug!(id = %message.id, "pubsub verdict dropped: the network is busy");
        }
    }

    /// Accepted (or unvalidated) messages on `topic`, own ones included, as Kubo delivers them
    /// to `pubsub sub`; dropping the stream unsubscribes when nobody else listens.
    pub(crate) async fn gossip_subscribe(&self, topic: &str) -> Result<GossipStream, NetworkError> {
        let (messages, receiver) = mpsc::channel(SUBSCRIBER_BUFFER);
        let name = topic.to_owned();
        self.ask(|reply| {
            Command::Gossip(GossipCommand::Subscribe {
                topic: name,
                messages,
                reply,
            })
        })
        .await??;
        Ok(GossipStream {
            messages: receiver,
            topic: topic.to_owned(),
            commands: self.commands.clone(),
        })
    }

    /// Publishes `data` on `topic` (subscribed or not), signed by this node; its own
    /// subscribers of the topic get it too.
    pub(crate) async fn gossip_publish(
        &self,
        topic: &str,
        data: Vec<u8>,
    ) -> Result<(), NetworkError> {
        let topic = topic.to_owned();
        let data = bytes::Bytes::from(data);
        self.ask(|reply| Command::Gossip(GossipCommand::Publish { topic, data, reply }))
            .await?
    }

    /// The topics this node is subscribed to, sorted.
    pub(crate) async fn gossip_topics(&self) -> Result<Vec<String>, NetworkError> {
        self.ask(|reply| Command::Gossip(GossipCommand::Topics { reply }))
            .await?
    }

    /// Peers speaking gossipsub, or (given a topic) those subscribed to it; sorted.
    pub(crate) async fn gossip_peers(
        &self,
        topic: Option<&str>,
    ) -> Result<Vec<PeerId>, NetworkError> {
        let topic = topic.map(str::to_owned);
        self.ask(|reply| Command::Gossip(GossipCommand::Peers { topic, reply }))
            .await?
    }

    /// Peers in the DHT routing table.
    pub(crate) async fn routing_table_size(&self) -> Result<usize, NetworkError> {
        self.ask(|reply| Command::Dht(DhtCommand::RoutingTableSize { reply }))
            .await
    }
}

/// Disconnects a peer that broke a protocol, through the event loop (if it still runs).
pub(super) fn penalise(commands: mpsc::WeakSender<Command>) -> transfer::Penalise {
    std::sync::Arc::new(move |peer, reason: &str| {
        tracing::warn!(%peer, reason, "disconnecting a misbehaving peer");
        let (reply, _) = oneshot::channel();
        if let Some(commands) = commands.upgrade() {
            // A full queue means a busy node; the stream is dropped in any case.
            let _ = commands.try_send(Command::Peers(PeerCommand::Disconnect { peer, reply }));
        }
    })
}

fn invalid(input: &str, reason: impl std::fmt::Display) -> NetworkError {
    NetworkError::Invalid {
        input: input.to_owned(),
        reason: reason.to_string(),
    }
}

/// A peer named by a multiaddr ending in `/p2p/<id>`, or by a bare peer ID.
fn peer_of(text: &str) -> Result<PeerId, NetworkError> {
    if let Ok(peer) = text.parse::<PeerId>() {
        return Ok(peer);
    }
    let addr: Multiaddr = text.parse().map_err(|e| invalid(text, e))?;
    split_peer(&addr)
        .map(|(peer, _)| peer)
        .ok_or_else(|| invalid(text, "the address does not end in /p2p/<peer id>"))
}

impl stargate_http_gateway::Network for Network {
    fn identity(&self, peer: Option<String>) -> BoxFuture<'_, Result<PeerIdentity, NetworkError>> {
        Box::pin(async move {
            let peer = peer
                .map(|p| p.parse::<PeerId>().map_err(|e| invalid(&p, e)))
                .transpose()?;
            self.ask(|reply| Command::Identify(IdentifyCommand::Identity { peer, reply }))
                .await?
        })
    }

    fn connect(&self, addr: String) -> BoxFuture<'_, Result<String, NetworkError>> {
        Box::pin(async move {
            let parsed: Multiaddr = addr.parse().map_err(|e| invalid(&addr, e))?;
            if !parsed.iter().any(|p| {
                matches!(
                    p,
                    Protocol::Tcp(_) | Protocol::Udp(_) | Protocol::P2pCircuit
                )
            }) {
                return Err(invalid(
                    &addr,
                    "the address names no transport (tcp, udp/quic-v1)",
                ));
            }
            let peer = self
                .ask(|reply| {
                    Command::Peers(PeerCommand::Connect {
                        addr: parsed,
                        reply,
                    })
                })
                .await??;
            Ok(peer.to_string())
        })
    }

    fn disconnect(&self, addr: String) -> BoxFuture<'_, Result<String, NetworkError>> {
        Box::pin(async move {
            let peer = peer_of(&addr)?;
            self.ask(|reply| Command::Peers(PeerCommand::Disconnect { peer, reply }))
                .await??;
            Ok(peer.to_string())
        })
    }

    fn peers(&self) -> BoxFuture<'_, Result<Vec<ConnectedPeer>, NetworkError>> {
        Box::pin(self.ask(|reply| Command::Peers(PeerCommand::List { reply })))
    }

    fn find_providers(
        &self,
        cid: Cid,
        limit: usize,
    ) -> BoxStream<'static, Result<Provider, NetworkError>> {
        let network = self.clone();
        futures::stream::once(async move { network.providers(dht_key(&cid), limit, false).await })
            .flat_map(|found| match found {
                Ok(receiver) => tokio_stream_of(receiver)
                    .map(|p| {
                        Ok(Provider::new(
                            p.peer.to_string(),
                            p.addrs.iter().map(ToString::to_string).collect(),
                        ))
                    })
                    .boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            })
            .boxed()
    }

    fn provide(&self, cid: Cid) -> BoxFuture<'_, Result<(), NetworkError>> {
        Box::pin(self.start_providing(dht_key(&cid)))
    }

    fn fetch_dag(
        &self,
        peer: String,
        cid: Cid,
        pin: bool,
    ) -> BoxFuture<'_, Result<DagFetched, NetworkError>> {
        Box::pin(async move {
            // A multiaddr is dialled first (the transfer dials known peers by ID only).
            let peer = match peer.parse::<PeerId>() {
                Ok(id) => id,
                Err(_) => {
                    let id = stargate_http_gateway::Network::connect(self, peer).await?;
                    peer_of(&id)?
                }
            };
            let fetched = self
                .fetch_dag_all(peer, TransferRequest::dag(cid), pin)
                .await
                .map_err(|e| NetworkError::Failed(e.to_string()))?;
            Ok(DagFetched::new(fetched.blocks, fetched.bytes))
        })
    }

    fn content_added(&self, cid: Cid, pinned: bool) {
        self.announcements.push(cid, pinned);
    }

    fn bandwidth(&self) -> stargate_http_gateway::Bandwidth {
        let t = self.metrics.bandwidth.traffic();
        stargate_http_gateway::Bandwidth::new(t.total_in, t.total_out, t.rate_in, t.rate_out)
    }
}

/// A receiver as a stream.
fn tokio_stream_of<T: Send + 'static>(receiver: mpsc::Receiver<T>) -> BoxStream<'static, T> {
    futures::stream::unfold(
        receiver,
        |mut r| async move { r.recv().await.map(|v| (v, r)) },
    )
    .boxed()
}

impl stargate_http_gateway::PubSub for Network {
    fn publish(
        &self,
        topic: String,
        data: bytes::Bytes,
    ) -> BoxFuture<'_, Result<(), NetworkError>> {
        Box::pin(async move { self.gossip_publish(&topic, Vec::from(data)).await })
    }

    fn subscribe(
        &self,
        topic: String,
    ) -> BoxFuture<'_, Result<BoxStream<'static, PubSubMessage>, NetworkError>> {
        Box::pin(async move {
            let messages = self.gossip_subscribe(&topic).await?;
            Ok(messages
                .map(|m| PubSubMessage::new(m.from.to_string(), m.data, m.seqno, m.topic))
                .boxed())
        })
    }

    fn topics(&self) -> BoxFuture<'_, Result<Vec<String>, NetworkError>> {
        Box::pin(self.gossip_topics())
    }

    fn peers(&self, topic: Option<String>) -> BoxFuture<'_, Result<Vec<String>, NetworkError>> {
        Box::pin(async move {
            let peers = self.gossip_peers(topic.as_deref()).await?;
            Ok(peers.iter().map(ToString::to_string).collect())
        })
    }
}

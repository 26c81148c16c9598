//! Gossipsub, wire-compatible with Kubo's pubsub (go-libp2p-pubsub): raw topic strings, signed
//! messages under strict validation, go's message id (publisher peer id bytes followed by the
//! 8-byte big-endian sequence number), 1 MiB messages. Every message is validated by the
//! application: a topic with a validator (the mirror's) waits for its verdict, which peer
//! scoring turns into a penalty for peers that forward rejected messages; a topic without one
//! (a plain `pubsub/sub`) accepts at once.
//!
//! Remote topic state is bounded: a peer's subscriptions beyond `max_peer_topics`, or more than
//! `max_subscriptions_per_request` in one message, are ignored (the pattern of CVE-2026-46679,
//! endless unique topics from one peer); peers themselves are bounded by the connection limits.
//!
//! Sequence numbers only grow, across restarts too: gossipsub starts its counter at the clock
//! (nanoseconds) when the behaviour is built, and the highest one published is kept in redb.
//! If the clock is not past it at start (it stepped back), the start waits when that is a matter
//! of two seconds at most; otherwise publishing is held, with a clear error and a log line,
//! since Kubo would silently drop the messages, and a restart with a correct clock lifts it
//! (gossipsub's counter cannot be moved once it is built).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use bytes::Bytes;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, PublishError, TopicHash};
use libp2p::{PeerId, Swarm};
use stargate_http_gateway::NetworkError;
use stargate_storage::Store;
use tokio::sync::{mpsc, watch};

use crate::p2p::behaviour::Behaviour;
use crate::p2p::command::{GossipCommand, GossipMessage, Verdict};
use crate::p2p::gossip_behaviour::{
    GossipBehaviour, MAX_MESSAGE_BYTES, seqno_of, validated_topic_params,
};
use crate::p2p::metrics::Metrics;
use crate::p2p::settings::Pubsub;

/// Kubo's answer when pubsub is off; clients look for its beginning.
const DISABLED: &str = "experimental pubsub feature not enabled. Set [pubsub] enabled = true \
                        (STARGATE_PUBSUB_ENABLED=true) to use.";
/// A clock behind the last sequence number used by less than this (nanoseconds) is waited
/// for at start; further behind, publishing is held.
const CLOCK_WAIT_NANOS: u64 = 2_000_000_000;

/// The clock in nanoseconds, as gossipsub starts its counter.
fn clock_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Where publishing stands with respect to the sequence numbers already used.
#[derive(Debug)]
struct Seqnos {
    /// The highest sequence number recorded before this start.
    floor: u64,
    /// A lower bound of gossipsub's counter: the clock before it was built, then the last
    /// sequence number it gave.
    counter: u64,
    /// The last one used, for the task that records it.
    record: watch::Sender<u64>,
}

impl Seqnos {
    /// The next sequence number is known to be above every one used before.
    fn may_publish(&self) -> bool {
        self.counter >= self.floor
    }

    fn held_error(&self) -> NetworkError {
        let ahead = Duration::from_nanos(self.floor.saturating_sub(self.counter));
        NetworkError::Failed(format!(
            "publishing is held: this node already published with sequence numbers up to \
             {} and its clock was {ahead:?} behind that when it started, so peers (Kubo) would \
             drop its messages; restart the node once its clock is right",
            self.floor
        ))
    }

    fn published(&mut self, seqno: u64) {
        self.counter = self.counter.max(seqno);
        self.record.send_replace(seqno);
    }
}

/// Records the last sequence number used in the store, off the event loop; the newest value
/// wins when publishes come faster than the disk.
fn spawn_recorder(store: Store, mut last: watch::Receiver<u64>) {
    tokio::spawn(async move {
        while last.changed().await.is_ok() {
            let seqno = *last.borrow_and_update();
            let store = store.clone();
            match tokio::task::spawn_blocking(move || store.gossip_record_seqno(seqno)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "recording the pubsub sequence number"),
                Err(e) => tracing::error!(error = %e, "recording the pubsub sequence number"),
            }
        }
    });
}

/// A topic this node is subscribed to, and who listens on it.
#[derive(Debug, Default)]
struct Topic {
    validator: Option<mpsc::Sender<GossipMessage>>,
    subscribers: Vec<mpsc::Sender<GossipMessage>>,
}

impl Topic {
    fn forget_closed(&mut self) {
        if self.validator.as_ref().is_some_and(mpsc::Sender::is_closed) {
            self.validator = None;
        }
        self.subscribers.retain(|s| !s.is_closed());
    }

    fn is_unused(&self) -> bool {
        self.validator.is_none() && self.subscribers.is_empty()
    }
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Gossip {
    settings: Pubsub,
    topics: HashMap<TopicHash, Topic>,
    seqnos: Seqnos,
    metrics: Metrics,
    local_peer_id: PeerId,
}

impl Gossip {
    /// Reads the last sequence number used; call it just before the swarm (and so gossipsub's
    /// counter) is built. Starts the task that records new ones.
    pub(crate) fn start(
        store: &Store,
        settings: Pubsub,
        metrics: Metrics,
        local_peer_id: PeerId,
    ) -> Result<Self> {
        let floor = store
            .gossip_last_seqno()
            .context("reading the last pubsub sequence number")?
            .unwrap_or(0);
        let behind = floor.saturating_sub(clock_nanos());
        if settings.enabled && behind > 0 && behind < CLOCK_WAIT_NANOS {
            // A small step back (NTP): wait it out here, before gossipsub reads the clock.
            tracing::warn!(
                wait_ms = behind / 1_000_000,
                "the clock is behind the last pubsub sequence number used; waiting for it"
            );
            std::thread::sleep(Duration::from_nanos(behind.saturating_add(1)));
        }
        let (record, recorded) = watch::channel(floor);
        let seqnos = Seqnos {
            floor,
            counter: clock_nanos(),
            record,
        };
        if settings.enabled && !seqnos.may_publish() {
            tracing::error!(
                last_seqno = floor,
                "the clock is behind the pubsub sequence numbers this node already used; \
                 publishing is held until a restart with a correct clock"
            );
        }
        spawn_recorder(store.clone(), recorded);
        Ok(Self {
            settings,
            topics: HashMap::new(),
            seqnos,
            metrics,
            local_peer_id,
        })
    }

    pub(super) fn on_command(&mut self, swarm: &mut Swarm<Behaviour>, command: GossipCommand) {
        let Some(gossip) = swarm.behaviour_mut().gossip.as_mut() else {
            refuse(command);
            return;
        };
        match command {
            GossipCommand::Validate {
                topic,
                messages,
                reply,
            } => {
                let result = self.listen(gossip, &topic, messages, true);
                let _ = reply.send(result);
            }
            GossipCommand::Subscribe {
                topic,
                messages,
                reply,
            } => {
                let result = self.listen(gossip, &topic, messages, false);
                let _ = reply.send(result);
            }
            GossipCommand::Report { message, verdict } => {
                self.report(gossip, message, verdict);
            }
            GossipCommand::Closed { topic } => self.closed(gossip, &TopicHash::from_raw(topic)),
            GossipCommand::Publish { topic, data, reply } => {
                let _ = reply.send(self.publish(gossip, topic, data));
            }
            GossipCommand::Topics { reply } => {
                let mut topics: Vec<String> =
                    gossip.topics().map(|t| t.as_str().to_owned()).collect();
                topics.sort();
                let _ = reply.send(Ok(topics));
            }
            GossipCommand::Peers { topic, reply } => {
                let topic = topic.map(TopicHash::from_raw);
                let mut peers: Vec<PeerId> = gossip
                    .all_peers()
                    .filter(|(_, topics)| topic.as_ref().is_none_or(|t| topics.contains(&t)))
                    .map(|(p, _)| *p)
                    .collect();
                peers.sort();
                let _ = reply.send(Ok(peers));
            }
        }
    }

    /// Adds a validator or a subscriber of `topic`, subscribing to it if need be.
    fn listen(
        &mut self,
        gossip: &mut GossipBehaviour,
        topic: &str,
        messages: mpsc::Sender<GossipMessage>,
        validator: bool,
    ) -> Result<(), NetworkError> {
        let hash = TopicHash::from_raw(topic);
        for t in self.topics.values_mut() {
            t.forget_closed();
        }
        let subscribers: usize = self.topics.values().map(|t| t.subscribers.len()).sum();
        if !validator && subscribers >= self.settings.max_subscribers {
            return Err(NetworkError::Failed(format!(
                "too many pubsub subscriptions ({subscribers}, [pubsub] max_subscribers)"
            )));
        }
        if !self.topics.contains_key(&hash) {
            self.drop_unused(gossip);
            if self.topics.len() >= self.settings.max_topics {
                return Err(NetworkError::Failed(format!(
                    "too many pubsub topics ({}, [pubsub] max_topics)",
                    self.topics.len()
                )));
            }
            gossip
                .subscribe(&IdentTopic::new(topic))
                .map_err(|e| NetworkError::Failed(format!("subscribing to {topic:?}: {e:?}")))?;
        }
        let entry = self.topics.entry(hash).or_default();
        if validator {
            if entry.validator.is_some() {
                return Err(NetworkError::Failed(format!(
                    "topic {topic:?} already has a validator"
                )));
            }
            entry.validator = Some(messages);
            gossip
                .set_topic_params(IdentTopic::new(topic), validated_topic_params())
                .map_err(|e| NetworkError::Failed(e.to_owned()))?;
        } else {
            entry.subscribers.push(messages);
        }
        Ok(())
    }

    /// Unsubscribes from the topics nobody listens on any more.
    fn drop_unused(&mut self, gossip: &mut GossipBehaviour) {
        self.topics.retain(|hash, t| {
            t.forget_closed();
            let keep = !t.is_unused();
            if !keep {
                gossip.unsubscribe(&IdentTopic::new(hash.as_str()));
            }
            keep
        });
    }

    fn closed(&mut self, gossip: &mut GossipBehaviour, topic: &TopicHash) {
        if let Some(t) = self.topics.get_mut(topic) {
            t.forget_closed();
            if t.is_unused() {
                self.topics.remove(topic);
                gossip.unsubscribe(&IdentTopic::new(topic.as_str()));
            }
        }
    }

    fn publish(
        &mut self,
        gossip: &mut GossipBehaviour,
        topic: String,
        data: Bytes,
    ) -> Result<(), NetworkError> {
        if !self.seqnos.may_publish() {
            self.metrics.pubsub_published("held");
            return Err(self.seqnos.held_error());
        }
        if data.len() > MAX_MESSAGE_BYTES {
            self.metrics.pubsub_published("failed");
            return Err(NetworkError::Invalid {
                input: format!("{} bytes", data.len()),
                reason: format!("a pubsub message holds at most {MAX_MESSAGE_BYTES} bytes"),
            });
        }
        let hash = TopicHash::from_raw(topic.clone());
        let seqno = match gossip.publish(hash.clone(), data.to_vec()) {
            Ok(id) => {
                self.metrics.pubsub_published("sent");
                let seqno = seqno_of(&id);
                if let Some(seqno) = seqno {
                    self.seqnos.published(seqno);
                }
                seqno
            }
            // Kubo publishes into an empty topic without complaint; the message reaches only
            // this node's own subscribers.
            Err(PublishError::NoPeersSubscribedToTopic) => {
                self.metrics.pubsub_published("no_peers");
                // Gossipsub used a sequence number but does not say which; the local copy
                // gets one no lower.
                self.seqnos.counter = self.seqnos.counter.saturating_add(1);
                None
            }
            Err(e) => {
                self.metrics.pubsub_published("failed");
                return Err(NetworkError::Failed(format!(
                    "publishing on {topic:?}: {e}"
                )));
            }
        };
        let from = self.local_peer_id;
        let seqno = seqno.unwrap_or(self.seqnos.counter);
        let mut id = from.to_bytes();
        id.extend_from_slice(&seqno.to_be_bytes());
        let message = GossipMessage {
            id: MessageId::new(&id),
            source: None,
            from,
            seqno,
            topic,
            data,
        };
        if let Some(t) = self.topics.get_mut(&hash) {
            if let Some(validator) = &t.validator {
                // The validator learns of the node's own publishes; no verdict is awaited.
                let _ = validator.try_send(message.clone());
            }
            self.deliver(&hash, &message);
        }
        Ok(())
    }

    /// A message from the network, not yet forwarded.
    pub(super) fn on_event(&mut self, swarm: &mut Swarm<Behaviour>, event: gossipsub::Event) {
        let Some(gossip) = swarm.behaviour_mut().gossip.as_mut() else {
            return;
        };
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let (Some(from), Some(seqno)) = (message.source, message.sequence_number) else {
                    // Strict validation lets no unsigned message through; reject if one came.
                    self.metrics.pubsub_received("reject");
                    gossip.report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Reject,
                    );
                    return;
                };
                let hash = message.topic;
                let message = GossipMessage {
                    id: message_id,
                    source: Some(propagation_source),
                    from,
                    seqno,
                    topic: hash.as_str().to_owned(),
                    data: Bytes::from(message.data),
                };
                let validator = self.topics.get(&hash).and_then(|t| t.validator.as_ref());
                match validator.map(|v| v.try_send(message.clone()).is_ok()) {
                    Some(true) => {}
                    Some(false) => {
                        // Too busy (or gone): not forwarded, and no one is penalised.
                        self.metrics.pubsub_received("overflow");
                        gossip.report_message_validation_result(
                            &message.id,
                            &propagation_source,
                            MessageAcceptance::Ignore,
                        );
                    }
                    None => {
                        self.metrics.pubsub_received("unvalidated");
                        gossip.report_message_validation_result(
                            &message.id,
                            &propagation_source,
                            MessageAcceptance::Accept,
                        );
                        self.deliver(&hash, &message);
                    }
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                tracing::debug!(peer = %peer_id, %topic, "peer subscribed");
            }
            gossipsub::Event::SlowPeer { peer_id, .. } => {
                tracing::debug!(peer = %peer_id, "pubsub peer too slow to take messages");
            }
            _ => {}
        }
    }

    /// A validator's verdict on a message from the network.
    fn report(&mut self, gossip: &mut GossipBehaviour, message: GossipMessage, verdict: Verdict) {
        let Some(source) = message.source else {
            return;
        };
        let (acceptance, label) = match verdict {
            Verdict::Accept => (MessageAcceptance::Accept, "accept"),
            Verdict::Reject => (MessageAcceptance::Reject, "reject"),
            Verdict::Ignore => (MessageAcceptance::Ignore, "ignore"),
        };
        self.metrics.pubsub_received(label);
        gossip.report_message_validation_result(&message.id, &source, acceptance);
        if verdict == Verdict::Accept {
            self.deliver(&TopicHash::from_raw(message.topic.clone()), &message);
        }
    }

    /// Hands `message` to the topic's subscribers; a full one misses it (as Kubo's do).
    fn deliver(&mut self, topic: &TopicHash, message: &GossipMessage) {
        let Some(t) = self.topics.get_mut(topic) else {
            return;
        };
        for subscriber in &t.subscribers {
            if let Err(mpsc::error::TrySendError::Full(_)) = subscriber.try_send(message.clone()) {
                self.metrics.pubsub_dropped();
            }
        }
    }

    pub(super) fn on_tick(&mut self, swarm: &mut Swarm<Behaviour>) {
        let Some(gossip) = swarm.behaviour_mut().gossip.as_mut() else {
            return;
        };
        self.drop_unused(gossip);
        let topics = gossip.topics().count();
        let mesh = gossip.all_mesh_peers().count();
        self.metrics.set_pubsub(topics, mesh);
    }
}

/// Answers a command with Kubo's error for pubsub switched off.
fn refuse(command: GossipCommand) {
    let error = || NetworkError::Failed(DISABLED.to_owned());
    match command {
        GossipCommand::Validate { reply, .. }
        | GossipCommand::Subscribe { reply, .. }
        | GossipCommand::Publish { reply, .. } => {
            let _ = reply.send(Err(error()));
        }
        GossipCommand::Topics { reply } => {
            let _ = reply.send(Err(error()));
        }
        GossipCommand::Peers { reply, .. } => {
            let _ = reply.send(Err(error()));
        }
        GossipCommand::Report { .. } | GossipCommand::Closed { .. } => {}
    }
}

#[cfg(test)]
mod tests;

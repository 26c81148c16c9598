//! The gossipsub behaviour as Kubo's pubsub needs it (go's message id, strict signing, 1 MiB
//! messages, bounded remote topics, peer scoring of validated topics); `event_loop/gossip.rs`
//! drives it.

use anyhow::{Context, Result};
use libp2p::gossipsub::{
    self, AllowAllSubscriptionFilter, IdentityTransform, MaxCountSubscriptionFilter,
    MessageAuthenticity, MessageId, PeerScoreParams, PeerScoreThresholds, TopicScoreParams,
    ValidationMode,
};
use libp2p::identity::Keypair;

use super::settings::Pubsub;

/// go-libp2p-pubsub's default maximum message size (rust's is 64 KiB).
pub(crate) const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// The gossipsub versions spoken, as `id` lists them.
pub(crate) const PROTOCOLS: [&str; 4] = [
    "/meshsub/1.0.0",
    "/meshsub/1.1.0",
    "/meshsub/1.2.0",
    "/meshsub/1.3.0",
];
/// How much one invalid message delivered on a validated topic weighs: squared by the count
/// (P4 of the score), two rejected messages take a peer below the graylist threshold (-80).
const INVALID_DELIVERY_WEIGHT: f64 = -50.0;
/// The invalid-delivery count decays by this factor every second (half-life about 70 s).
const INVALID_DELIVERY_DECAY: f64 = 0.99;

/// The behaviour, with the subscription filter that bounds remote topic state.
pub(crate) type GossipBehaviour =
    gossipsub::Behaviour<IdentityTransform, MaxCountSubscriptionFilter<AllowAllSubscriptionFilter>>;

/// go-libp2p-pubsub's `DefaultMsgIdFn`: the publisher's peer id bytes, then the sequence
/// number as it travels (8 bytes, big-endian), so IHAVE/IWANT ids match Kubo's.
pub(crate) fn message_id(message: &gossipsub::Message) -> MessageId {
    let mut id = message.source.map(|p| p.to_bytes()).unwrap_or_default();
    if let Some(seqno) = message.sequence_number {
        id.extend_from_slice(&seqno.to_be_bytes());
    }
    MessageId::new(&id)
}

/// The sequence number at the end of a message id built by [`message_id`].
pub(crate) fn seqno_of(id: &MessageId) -> Option<u64> {
    let tail = id.0.len().checked_sub(8).and_then(|at| id.0.get(at..))?;
    tail.try_into().ok().map(u64::from_be_bytes)
}

/// The gossipsub behaviour of the node's swarm, `None` when `[pubsub] enabled = false`.
pub(crate) fn behaviour(key: &Keypair, settings: &Pubsub) -> Result<Option<GossipBehaviour>> {
    if !settings.enabled {
        return Ok(None);
    }
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .message_id_fn(message_id)
        .max_transmit_size(MAX_MESSAGE_BYTES)
        .validate_messages()
        .build()
        .context("configuring gossipsub")?;
    let filter = MaxCountSubscriptionFilter {
        filter: AllowAllSubscriptionFilter {},
        max_subscribed_topics: settings.max_peer_topics,
        max_subscriptions_per_request: settings.max_subscriptions_per_request,
    };
    let mut gossip = GossipBehaviour::new_with_subscription_filter(
        MessageAuthenticity::Signed(key.clone()),
        config,
        filter,
    )
    .map_err(|e| anyhow::anyhow!("setting up gossipsub: {e}"))?;
    let params = PeerScoreParams {
        // Mirror instances often share a host or a NAT; scoring them down for it would cut
        // them off from each other.
        ip_colocation_factor_weight: 0.0,
        ..PeerScoreParams::default()
    };
    gossip
        .with_peer_score(params, PeerScoreThresholds::default())
        .map_err(|e| anyhow::anyhow!("setting up gossipsub peer scoring: {e}"))?;
    Ok(Some(gossip))
}

/// Score parameters of a validated topic: only invalid deliveries count against a peer (a
/// quiet topic must not penalise mesh peers for delivering little).
pub(crate) fn validated_topic_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: INVALID_DELIVERY_WEIGHT,
        invalid_message_deliveries_decay: INVALID_DELIVERY_DECAY,
        ..TopicScoreParams::default()
    }
}

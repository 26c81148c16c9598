//! The gossip part's tests: our gossipsub against a plain one over the memory transport
//! (bounded remote topics, peer scoring), and whole networks on 127.0.0.1 (validators and
//! subscribers through `Network`).

use std::future::poll_fn;
use std::task::Poll;

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p_swarm_test::SwarmExt;

use super::*;
use libp2p::gossipsub::{
    AllowAllSubscriptionFilter, IdentityTransform, MessageAuthenticity, PeerScoreThresholds,
};
use libp2p::identity::Keypair;

use crate::p2p::gossip_behaviour::{behaviour, message_id};

const DEADLINE: Duration = Duration::from_secs(60);

/// A peer with no subscription filter (none of our limits), signing like any Kubo node.
type Plain = gossipsub::Behaviour<IdentityTransform, AllowAllSubscriptionFilter>;

fn settings() -> Pubsub {
    Pubsub {
        enabled: true,
        max_topics: 64,
        max_subscribers: 16,
        max_peer_topics: 100,
        max_subscriptions_per_request: 100,
    }
}

/// Our gossipsub and a plain one, connected over the memory transport.
async fn pair() -> (Swarm<GossipBehaviour>, Swarm<Plain>) {
    pair_after(|_| ()).await
}

/// [`pair`], with `prepare` done to the plain one before it connects.
async fn pair_after(
    prepare: impl FnOnce(&mut Swarm<Plain>),
) -> (Swarm<GossipBehaviour>, Swarm<Plain>) {
    let mut ours = Swarm::new_ephemeral_tokio(|key| {
        behaviour(&key, &settings())
            .unwrap()
            .expect("pubsub is enabled")
    });
    let mut theirs = Swarm::new_ephemeral_tokio(|key| {
        let config = gossipsub::ConfigBuilder::default()
            .message_id_fn(message_id)
            .build()
            .unwrap();
        Plain::new(MessageAuthenticity::Signed(key), config).unwrap()
    });
    prepare(&mut theirs);
    ours.listen().with_memory_addr_external().await;
    theirs.connect(&mut ours).await;
    (ours, theirs)
}

/// Polls both swarms until `f` picks something out of our events.
async fn until<T>(
    ours: &mut Swarm<GossipBehaviour>,
    theirs: &mut Swarm<Plain>,
    mut f: impl FnMut(&mut Swarm<GossipBehaviour>, gossipsub::Event) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            let event = poll_fn(|cx| {
                while let Poll::Ready(Some(_)) = theirs.poll_next_unpin(cx) {}
                ours.poll_next_unpin(cx)
            })
            .await;
            if let Some(SwarmEvent::Behaviour(e)) = event
                && let Some(t) = f(ours, e)
            {
                return t;
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .expect("event within the deadline")
}

/// A whole network (`p2p::spawn`) on loopback, its metrics, and what keeps it alive.
struct Node {
    network: crate::p2p::Network,
    registry: prometheus_client::registry::Registry,
    _shutdown: tokio_util::sync::DropGuard,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), stargate_storage::StoreOptions::default()).unwrap();
        let mut config = crate::config::Config::default();
        config.swarm.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        config.swarm.bootstrap = Vec::new();
        config.swarm.mdns = false;
        config.swarm.upnp = false;
        config.swarm.autonat = false;
        config.swarm.relay_client = false;
        config.swarm.hole_punching = false;
        let settings =
            crate::p2p::Settings::new(&config.swarm, &config.routing, &config.transfer).unwrap();
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Metrics::register(&mut registry);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (network, _task) = crate::p2p::spawn(
            Keypair::generate_ed25519(),
            settings,
            store,
            metrics,
            shutdown.clone(),
        )
        .unwrap();
        Self {
            network,
            registry,
            _shutdown: shutdown.drop_guard(),
            _dir: dir,
        }
    }

    async fn connect(&self, other: &Node) {
        use stargate_http_gateway::Network as _;
        let addr = crate::p2p::testutil::tcp_address(&other.network, DEADLINE).await;
        self.network.connect(addr).await.unwrap();
    }

    /// Waits until `peer` is seen on `topic`.
    async fn sees(&self, peer: PeerId, topic: &str) {
        tokio::time::timeout(DEADLINE, async {
            while !self
                .network
                .gossip_peers(Some(topic))
                .await
                .unwrap()
                .contains(&peer)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the peer shows on the topic");
    }

    fn received(&self, verdict: &str) -> u64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        let series = format!("stargate_pubsub_messages_received_total{{verdict=\"{verdict}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .map_or(0, |n| n.trim().parse().unwrap())
    }
}

#[tokio::test]
async fn a_validator_decides_what_subscribers_get() {
    let (ours, theirs) = (Node::start(), Node::start());
    ours.connect(&theirs).await;
    let topic = "stargate-uploads";
    let mut validator = ours.network.gossip_validate(topic).await.unwrap();
    let mut subscription = ours.network.gossip_subscribe(topic).await.unwrap();
    let err = ours.network.gossip_validate(topic).await.unwrap_err();
    assert!(err.to_string().contains("already has a validator"), "{err}");
    theirs.sees(ours.network.local_peer_id(), topic).await;

    let publisher = theirs.network.local_peer_id();
    for data in ["bad", "good"] {
        theirs
            .network
            .gossip_publish(topic, data.into())
            .await
            .unwrap();
        let message = tokio::time::timeout(DEADLINE, validator.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(message.from, publisher);
        assert_eq!(message.source, Some(publisher));
        assert_eq!(message.data, data.as_bytes());
        assert_eq!(seqno_of(&message.id), Some(message.seqno));
        let verdict = if data == "good" {
            Verdict::Accept
        } else {
            Verdict::Reject
        };
        ours.network.gossip_report(&message, verdict);
    }
    // Only the accepted one reaches the subscriber.
    let delivered = tokio::time::timeout(DEADLINE, subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivered.data, "good".as_bytes());
    assert_eq!((ours.received("reject"), ours.received("accept")), (1, 1));

    // Our own publishes reach the validator (no source) and the subscriber.
    ours.network
        .gossip_publish(topic, b"own".to_vec())
        .await
        .unwrap();
    let own = validator.recv().await.unwrap();
    assert_eq!((own.source, own.data.as_ref()), (None, "own".as_bytes()));
    let own = subscription.next().await.unwrap();
    assert_eq!(own.from, ours.network.local_peer_id());

    // Dropping the last listener is not enough while the validator stays; both gone, the
    // topic is left.
    drop(subscription);
    assert_eq!(ours.network.gossip_topics().await.unwrap(), [topic]);
    drop(validator);
    let _other = ours.network.gossip_subscribe("other").await.unwrap();
    assert_eq!(ours.network.gossip_topics().await.unwrap(), ["other"]);
}

#[tokio::test]
async fn a_peer_subscribing_to_thousands_of_topics_stays_bounded() {
    let (mut ours, mut theirs) = pair().await;
    let attacker = *theirs.local_peer_id();
    let flood = 5000;
    for n in 0..flood {
        theirs
            .behaviour_mut()
            .subscribe(&IdentTopic::new(format!("t{n}")))
            .unwrap();
    }
    // Unsubscribing from the first comes after every subscription on the same stream:
    // once it is seen, all of them were handled.
    theirs.behaviour_mut().unsubscribe(&IdentTopic::new("t0"));
    let mut accepted = 0;
    until(&mut ours, &mut theirs, |_, e| match e {
        gossipsub::Event::Subscribed { .. } => {
            accepted += 1;
            None
        }
        gossipsub::Event::Unsubscribed { topic, .. } => (topic.as_str() == "t0").then_some(()),
        _ => None,
    })
    .await;
    let known: usize = ours
        .behaviour()
        .all_peers()
        .filter(|(p, _)| **p == attacker)
        .map(|(_, topics)| topics.len())
        .sum();
    assert_eq!(accepted, settings().max_peer_topics, "of {flood}");
    assert_eq!(known, settings().max_peer_topics - 1);
}

#[tokio::test]
async fn a_greeting_with_too_many_subscriptions_is_ignored_whole() {
    let too_many = settings().max_subscriptions_per_request + 1;
    let (mut ours, mut theirs) = pair_after(|theirs| {
        for n in 0..too_many {
            theirs
                .behaviour_mut()
                .subscribe(&IdentTopic::new(format!("t{n}")))
                .unwrap();
        }
    })
    .await;
    let attacker = *theirs.local_peer_id();
    // A later, single subscription is taken: by then the greeting was handled.
    theirs
        .behaviour_mut()
        .subscribe(&IdentTopic::new("marker"))
        .unwrap();
    until(&mut ours, &mut theirs, |_, e| match e {
        gossipsub::Event::Subscribed { topic, .. } => {
            assert_eq!(
                topic.as_str(),
                "marker",
                "a topic of the greeting was taken"
            );
            Some(())
        }
        _ => None,
    })
    .await;
    let known: Vec<_> = ours
        .behaviour()
        .all_peers()
        .filter(|(p, _)| **p == attacker)
        .flat_map(|(_, topics)| topics.into_iter().map(|t| t.as_str().to_owned()))
        .collect();
    assert_eq!(known, ["marker"]);
}

#[tokio::test]
async fn a_peer_forwarding_rejected_messages_falls_below_the_graylist() {
    let (mut ours, mut theirs) = pair().await;
    let attacker = *theirs.local_peer_id();
    let topic = IdentTopic::new("stargate-uploads");
    ours.behaviour_mut().subscribe(&topic).unwrap();
    ours.behaviour_mut()
        .set_topic_params(topic.clone(), validated_topic_params())
        .unwrap();
    theirs.behaviour_mut().subscribe(&topic).unwrap();
    until(&mut ours, &mut theirs, |_, e| {
        matches!(e, gossipsub::Event::Subscribed { peer_id, .. } if peer_id == attacker)
            .then_some(())
    })
    .await;
    // Their side must also have heard of our subscription before it publishes.
    tokio::time::timeout(DEADLINE, async {
        loop {
            let ready = theirs
                .behaviour()
                .all_peers()
                .any(|(_, topics)| topics.contains(&&topic.hash()));
            if ready {
                break;
            }
            poll_fn(|cx| {
                while let Poll::Ready(Some(_)) = ours.poll_next_unpin(cx) {}
                theirs.poll_next_unpin(cx)
            })
            .await;
        }
    })
    .await
    .expect("they learn of our subscription");
    assert!(ours.behaviour().peer_score(&attacker).unwrap_or(0.0) >= 0.0);

    // Two are enough (see INVALID_DELIVERY_WEIGHT); past that we ignore the peer.
    for n in 0..2 {
        theirs
            .behaviour_mut()
            .publish(topic.clone(), format!("not an announcement {n}"))
            .unwrap();
        until(&mut ours, &mut theirs, |ours, e| match e {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                ..
            } => {
                ours.behaviour_mut().report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    MessageAcceptance::Reject,
                );
                Some(())
            }
            _ => None,
        })
        .await;
    }
    let score = ours.behaviour().peer_score(&attacker).expect("scored");
    assert!(
        score < PeerScoreThresholds::default().graylist_threshold,
        "score {score}"
    );
}

#[test]
fn message_ids_are_go_libp2p_pubsubs() {
    let peer = PeerId::random();
    let message = gossipsub::Message {
        source: Some(peer),
        data: b"x".to_vec(),
        sequence_number: Some(0x0102_0304_0506_0708),
        topic: TopicHash::from_raw("stargate-uploads"),
    };
    let id = message_id(&message);
    let mut expected = peer.to_bytes();
    expected.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(id.0, expected);
    assert_eq!(seqno_of(&id), Some(0x0102_0304_0506_0708));
    assert_eq!(seqno_of(&MessageId::new(b"short")), None);
}

#[test]
fn publishing_is_held_while_the_clock_is_behind_the_last_seqno() {
    let (record, _) = watch::channel(0);
    let now = clock_nanos();
    let mut seqnos = Seqnos {
        floor: now + 3_600_000_000_000,
        counter: now,
        record,
    };
    assert!(!seqnos.may_publish());
    let error = seqnos.held_error().to_string();
    assert!(error.contains("publishing is held"), "{error}");
    assert!(error.contains("restart"), "{error}");
    seqnos.published(now + 3_600_000_000_001);
    assert!(seqnos.may_publish());
    assert_eq!(*seqnos.record.borrow(), now + 3_600_000_000_001);

    let (record, _) = watch::channel(0);
    let fresh = Seqnos {
        floor: now - 1,
        counter: now,
        record,
    };
    assert!(fresh.may_publish());
}

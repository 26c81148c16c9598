//! The node's pubsub (gossipsub) as the RPC API sees it: a narrow trait the node implements,
//! as [`Network`](crate::Network) is. Topics cross it as text, peer IDs as their text form.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::network::NetworkError;

/// One message as `pubsub sub` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PubSubMessage {
    /// The publisher's peer ID.
    pub from: String,
    pub data: Bytes,
    /// The sequence number, 8 bytes big-endian as it travels.
    pub seqno: [u8; 8],
    pub topic: String,
}

impl PubSubMessage {
    /// A message with these fields.
    pub fn new(from: String, data: Bytes, seqno: u64, topic: String) -> Self {
        Self {
            from,
            data,
            seqno: seqno.to_be_bytes(),
            topic,
        }
    }
}

/// The operations behind `pubsub pub|sub|ls|peers`.
pub trait PubSub: Send + Sync {
    /// Publishes `data` on `topic`.
    fn publish(&self, topic: String, data: Bytes) -> BoxFuture<'_, Result<(), NetworkError>>;
    /// Messages on `topic` from now on; dropping the stream ends the subscription.
    fn subscribe(
        &self,
        topic: String,
    ) -> BoxFuture<'_, Result<BoxStream<'static, PubSubMessage>, NetworkError>>;
    /// The topics this node is subscribed to.
    fn topics(&self) -> BoxFuture<'_, Result<Vec<String>, NetworkError>>;
    /// Peers speaking pubsub with this node, or (given a topic) those subscribed to it.
    fn peers(&self, topic: Option<String>) -> BoxFuture<'_, Result<Vec<String>, NetworkError>>;
}

//! Test support shared by the p2p modules' tests.

use futures::StreamExt;
use libp2p::Multiaddr;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};

/// `swarm` listening on a free TCP port of 127.0.0.1, and that address.
pub(crate) async fn listen_on_loopback<B: NetworkBehaviour>(
    swarm: &mut libp2p::Swarm<B>,
) -> Multiaddr {
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            return address;
        }
    }
}

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

/// The TCP address (with `/p2p/`) a running node listens on, once it does; panics after
/// `deadline`.
pub(crate) async fn tcp_address(network: &super::Network, deadline: std::time::Duration) -> String {
    use stargate_http_gateway::Network as _;
    tokio::time::timeout(deadline, async {
        loop {
            let id = network.identity(None).await.unwrap();
            if let Some(a) = id.addresses.into_iter().find(|a| a.contains("/tcp/")) {
                return a;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("listening within the deadline")
}

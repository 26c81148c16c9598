//! Our own addresses (where we listen, what we announce, how peers see us) and how far an
//! address reaches.

use std::collections::VecDeque;
use std::net::IpAddr;

use anyhow::{Result, bail};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, Swarm};

use crate::p2p::behaviour::Behaviour;

/// Observed addresses remembered for `id`.
const MAX_OBSERVED: usize = 8;

/// Starts listening on `listen` and announces `announce`.
///
/// # Errors
/// When none of `listen` can be listened on.
pub(super) fn listen(
    swarm: &mut Swarm<Behaviour>,
    listen: &[Multiaddr],
    announce: &[Multiaddr],
) -> Result<()> {
    let mut listening = 0;
    for addr in listen {
        match swarm.listen_on(addr.clone()) {
            Ok(_) => listening += 1,
            Err(e) => tracing::warn!(%addr, error = %e, "cannot listen"),
        }
    }
    if listening == 0 {
        bail!(
            "could not listen on any [swarm] listen address ({}): is another node using the port?",
            list(listen)
        );
    }
    for addr in announce {
        swarm.add_external_address(addr.clone());
    }
    Ok(())
}

/// The addresses peers told us they see us at (the newest [`MAX_OBSERVED`]).
#[derive(Debug, Default)]
pub(super) struct Addresses {
    observed: VecDeque<Multiaddr>,
}

impl Addresses {
    /// A peer sees us at `address` (a candidate until confirmed).
    pub(super) fn observed(&mut self, address: Multiaddr) {
        if self.observed.contains(&address) {
            return;
        }
        if self.observed.len() >= MAX_OBSERVED {
            self.observed.pop_front();
        }
        self.observed.push_back(address);
    }

    /// Where we can be reached, as `id` lists it: listeners, then external and observed
    /// addresses.
    pub(super) fn own(&self, swarm: &Swarm<Behaviour>) -> Vec<Multiaddr> {
        let mut addrs: Vec<Multiaddr> = swarm.listeners().cloned().collect();
        for a in swarm.external_addresses().chain(self.observed.iter()) {
            if !addrs.contains(a) {
                addrs.push(a.clone());
            }
        }
        addrs
    }
}

fn list(addrs: &[Multiaddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How far an address reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Loopback,
    Private,
    Global,
}

fn scope(addr: &Multiaddr) -> Scope {
    let ip = addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    });
    match ip {
        Some(ip) if ip.is_loopback() => Scope::Loopback,
        // 100.64.0.0/10 is carrier-grade NAT space.
        Some(IpAddr::V4(ip))
            if ip.is_private()
                || ip.is_link_local()
                || (ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64) =>
        {
            Scope::Private
        }
        // fc00::/7 unique local, fe80::/10 link local.
        Some(IpAddr::V6(ip))
            if (ip.segments()[0] & 0xfe00) == 0xfc00 || (ip.segments()[0] & 0xffc0) == 0xfe80 =>
        {
            Scope::Private
        }
        // Public IPs, DNS names, relay circuits.
        _ => Scope::Global,
    }
}

/// Whether a peer's announced `addr` is worth putting in the DHT routing table, given that we
/// reach the peer `via` this address: a public peer's private addresses are not (they lead to
/// someone else's LAN), a peer on our LAN or host may use them.
pub(super) fn usable(addr: &Multiaddr, via: &Multiaddr) -> bool {
    scope(addr) >= scope(via)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn address_scopes() {
        let lo = a("/ip4/127.0.0.1/tcp/1");
        let lan = a("/ip4/192.168.1.5/tcp/1");
        let public = a("/ip4/8.8.8.8/tcp/1");
        let ula = a("/ip6/fd00::1/tcp/1");
        assert!(usable(&lo, &lo));
        assert!(usable(&lan, &lo) && usable(&public, &lo));
        assert!(!usable(&lo, &lan) && usable(&lan, &lan));
        assert!(!usable(&lan, &public) && !usable(&ula, &public) && usable(&public, &public));
        assert!(usable(&a("/dns4/example.com/tcp/1"), &public));
    }

    #[test]
    fn observed_addresses_are_bounded_and_kept_once() {
        let mut addresses = Addresses::default();
        for port in 0..(MAX_OBSERVED as u16 + 2) {
            addresses.observed(a(&format!("/ip4/1.2.3.4/tcp/{port}")));
            addresses.observed(a(&format!("/ip4/1.2.3.4/tcp/{port}")));
        }
        assert_eq!(addresses.observed.len(), MAX_OBSERVED);
        assert_eq!(addresses.observed.front(), Some(&a("/ip4/1.2.3.4/tcp/2")));
    }
}

//! How many announcements each publisher gets through per minute, so one noisy or hostile
//! instance cannot fill the queue or the disk. Bounded: past [`MAX_TRACKED`] publishers in
//! the current minute, announcements from new ones wait for the next.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Publishers counted at once.
const MAX_TRACKED: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(60);

/// Announcements per publisher per minute (fixed windows).
#[derive(Debug)]
pub(crate) struct PublisherRate {
    per_window: u32,
    counts: Mutex<HashMap<PeerId, (Instant, u32)>>,
}

impl PublisherRate {
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_window: per_minute,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one announcement of `publisher` at `now`; false when it is over its rate.
    pub(crate) fn allow(&self, publisher: PeerId, now: Instant) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if !counts.contains_key(&publisher) && counts.len() >= MAX_TRACKED {
            counts.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if counts.len() >= MAX_TRACKED {
                return false;
            }
        }
        let (start, count) = counts.entry(publisher).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        if *count >= self.per_window {
            return false;
        }
        *count += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_publisher_per_minute() {
        let rate = PublisherRate::new(2);
        let (a, b) = (PeerId::random(), PeerId::random());
        let t = Instant::now();
        assert!(rate.allow(a, t) && rate.allow(a, t));
        assert!(!rate.allow(a, t));
        assert!(rate.allow(b, t));
        assert!(rate.allow(a, t + WINDOW));
    }
}

//! Wall-clock times as the store records them.

use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Unix seconds.
pub(crate) fn now_s() -> u64 {
    now().as_secs()
}

/// Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(now().as_millis()).unwrap_or(u64::MAX)
}

//! Reading away what is left of a refused request body.
//!
//! An HTTP/1.1 client still writing its request when the answer arrives may fail on the write
//! (the server closed the connection on an unread body) and never read the answer. So a command
//! that refuses its multipart body first reads the rest of it, within bounds, then answers.

use std::time::Duration;

use axum::extract::Multipart;

/// Most bytes read away.
const MAX_DRAIN: usize = 64 << 20;
/// Longest time spent reading them.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Reads and drops the rest of `multipart`, up to [`MAX_DRAIN`] bytes or [`DRAIN_TIME`];
/// stops at the first malformed part.
pub(crate) async fn drain(multipart: &mut Multipart) {
    let rest = async {
        let mut left = MAX_DRAIN;
        while let Ok(Some(mut field)) = multipart.next_field().await {
            while let Ok(Some(chunk)) = field.chunk().await {
                left = left.saturating_sub(chunk.len());
                if left == 0 {
                    return;
                }
            }
        }
    };
    // Past the bounds the connection closes on the unread rest, as it would have.
    let _ = tokio::time::timeout(DRAIN_TIME, rest).await;
}

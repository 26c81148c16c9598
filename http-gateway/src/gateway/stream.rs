//! Response bodies streamed from exports: bounded by the export's prefetch window, and ended
//! (the client sees a truncated response) when the content stalls or a block cannot be had.

use std::fmt::Display;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

/// A body from `chunks`: each chunk must arrive within `stall` of the previous one, so a slow
/// but progressing transfer runs to its end while a stuck one is cut off. The first error ends
/// the body; hyper then aborts the response, which clients see as incomplete.
pub(crate) fn body<S, E>(chunks: S, stall: Duration) -> Body
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let chunks: BoxStream<'static, Result<Bytes, E>> = chunks.boxed();
    let guarded = futures::stream::unfold(Some(chunks), move |state| async move {
        let mut chunks = state?;
        match tokio::time::timeout(stall, chunks.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(chunks))),
            Ok(None) => None,
            Ok(Some(Err(e))) => {
                tracing::info!(error = %e, "gateway response cut short");
                Some((Err(std::io::Error::other(e.to_string())), None))
            }
            Err(_) => {
                tracing::info!(?stall, "gateway response stalled; cut short");
                Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no content for {stall:?}"),
                    )),
                    None,
                ))
            }
        }
    });
    Body::from_stream(guarded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn progressing_streams_run_to_the_end_and_stalled_ones_are_cut() {
        let slow = futures::stream::iter(0..5).then(|i| async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok::<_, std::io::Error>(Bytes::from(vec![i; 2]))
        });
        // 150 ms in all, but never more than 30 ms between chunks.
        let all = body(slow, Duration::from_millis(100))
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(all.len(), 10);

        let stuck = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"a"))])
            .chain(futures::stream::pending());
        let err = body(stuck, Duration::from_millis(50)).collect().await;
        assert!(err.is_err());

        let failing = futures::stream::iter([
            Ok(Bytes::from_static(b"a")),
            Err("block missing"),
            Ok(Bytes::from_static(b"never")),
        ]);
        let err = body(failing, Duration::from_secs(1)).collect().await;
        assert!(err.is_err());
    }
}

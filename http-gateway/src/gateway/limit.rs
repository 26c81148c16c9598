//! The concurrency limit: at most `max_concurrent_requests` requests are served at once, each
//! holding its slot until its body has been sent (a streaming download counts for as long as it
//! runs). A request waits for a slot at most `timeout`, then gets 503.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::GatewayError;
use crate::HttpOptions;

/// The slots and how long a request may wait for one.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl Gate {
    pub(crate) fn new(options: &HttpOptions) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(options.max_concurrent_requests.max(1))),
            wait: options.timeout,
        }
    }
}

/// Middleware: takes a slot, serves, and hands the slot to the response body.
pub(crate) async fn limit(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let slot = tokio::time::timeout(gate.wait, Arc::clone(&gate.slots).acquire_owned()).await;
    let Ok(Ok(permit)) = slot else {
        return GatewayError::Busy(gate.wait).into_response();
    };
    let (parts, body) = next.run(req).await.into_parts();
    Response::from_parts(
        parts,
        Body::new(Holding {
            body,
            _permit: permit,
        }),
    )
}

/// A body that keeps a slot taken until it is finished or dropped.
struct Holding {
    body: Body,
    _permit: OwnedSemaphorePermit,
}

impl HttpBody for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_slot_is_held_until_the_body_is_done() {
        let options = HttpOptions {
            max_concurrent_requests: 1,
            timeout: Duration::from_millis(100),
        };
        let gate = Gate::new(&options);
        let app = Router::new()
            .route("/", get(|| async { "body" }))
            .layer(axum::middleware::from_fn_with_state(gate, limit));
        let req = || Request::get("/").body(Body::empty()).unwrap();

        let first = app.clone().oneshot(req()).await.unwrap();
        assert_eq!(first.status(), 200);
        // The first body is not consumed yet: its slot is still taken.
        let second = app.clone().oneshot(req()).await.unwrap();
        assert_eq!(second.status(), 503);
        assert!(second.headers().contains_key("retry-after"));
        let text = first.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&text[..], b"body");
        let third = app.oneshot(req()).await.unwrap();
        assert_eq!(third.status(), 200);
    }
}

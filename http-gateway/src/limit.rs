//! Load shedding per listener: at most `max_concurrent_requests` requests are served at once,
//! each holding its slot until its body has been sent (a streaming download counts for as long
//! as it runs). At most `max_waiting_requests` more wait for a slot, each at most `timeout`.
//! Past either bound a request is answered 503 with `Retry-After` at once, and counted: a
//! client that backs off gets served, and the node's memory stays bounded by the two numbers
//! instead of growing with the crowd.
//!
//! `/health` and `/metrics` stay outside (see `Observability::wrap`): an overloaded node must
//! not look dead to its supervisor.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::HttpOptions;

/// How long a client told "queue full" should wait: a slot frees as soon as any request ends.
const RETRY_QUEUE_FULL: Duration = Duration::from_secs(1);
/// Most of a refused request's body read and dropped before the 503, and how long that may take.
/// Answering without reading it would close the connection under a client still writing (it sees
/// a broken pipe, not the 503) or after it wrote everything (its next request on that pooled
/// connection fails). Past this the connection is closed anyway; a client that sends
/// `Expect: 100-continue` never sends the body at all.
const DRAIN_BYTES: usize = 1 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    listener: &'static str,
    reason: &'static str,
}

/// The limits of every listener and the count of requests they turned away.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    options: HttpOptions,
    shed: Family<ShedLabels, Counter>,
}

impl RequestLimits {
    /// Limits from `options`; registers `http_requests_shed_total{listener,reason}`.
    pub fn register(registry: &mut Registry, options: HttpOptions) -> Self {
        let shed = Family::default();
        registry.register(
            "http_requests_shed",
            "Requests answered 503 because the listener was at its limits, by listener and \
             reason (queue_full: max_waiting_requests were already waiting; waited: no slot \
             freed within the timeout)",
            shed.clone(),
        );
        Self { options, shed }
    }

    /// `router` behind its own slots and queue, counted under `listener`.
    pub fn wrap(&self, listener: &'static str, router: Router) -> Router {
        let gate = Gate {
            slots: Arc::new(Semaphore::new(self.options.max_concurrent_requests.max(1))),
            queue: Arc::new(Semaphore::new(self.options.max_waiting_requests)),
            wait: self.options.timeout,
            listener,
            shed: self.shed.clone(),
        };
        router.layer(axum::middleware::from_fn_with_state(gate, limit))
    }
}

#[derive(Debug, Clone)]
struct Gate {
    slots: Arc<Semaphore>,
    queue: Arc<Semaphore>,
    wait: Duration,
    listener: &'static str,
    shed: Family<ShedLabels, Counter>,
}

impl Gate {
    /// A slot now, or after waiting in the queue; `Err` is the answer to give instead.
    async fn enter(&self) -> Result<OwnedSemaphorePermit, Response> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(permit);
        }
        let Ok(_place) = self.queue.try_acquire() else {
            return Err(self.refuse("queue_full", RETRY_QUEUE_FULL));
        };
        match tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(self.refuse("waited", self.wait)),
        }
    }

    fn refuse(&self, reason: &'static str, retry_after: Duration) -> Response {
        self.shed
            .get_or_create(&ShedLabels {
                listener: self.listener,
                reason,
            })
            .inc();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(
                header::RETRY_AFTER,
                retry_after.as_secs().max(1).to_string(),
            )],
            "service unavailable: too many requests at once; try again later\n",
        )
            .into_response()
    }
}

/// Middleware: takes a slot, serves, and hands the slot to the response body.
async fn limit(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let permit = match gate.enter().await {
        Ok(permit) => permit,
        Err(refused) => {
            let expects_continue = req
                .headers()
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            if !expects_continue {
                // Whether it all came in or not, the answer is the same 503.
                let _ = tokio::time::timeout(DRAIN_TIME, drain(req.into_body())).await;
            }
            return refused;
        }
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

/// Reads and drops up to [`DRAIN_BYTES`] of `body`.
async fn drain(mut body: Body) {
    let mut read = 0;
    while read < DRAIN_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
            _ => return,
        }
    }
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
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app(max_concurrent_requests: usize, max_waiting_requests: usize) -> (Router, Registry) {
        let mut registry = Registry::default();
        let options = HttpOptions {
            max_concurrent_requests,
            max_waiting_requests,
            timeout: Duration::from_millis(100),
        };
        let limits = RequestLimits::register(&mut registry, options);
        let router = Router::new().route("/", get(|| async { "body" }));
        (limits.wrap("test", router), registry)
    }

    fn req() -> Request {
        Request::get("/").body(Body::empty()).unwrap()
    }

    fn metrics(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[tokio::test]
    async fn a_slot_is_held_until_the_body_is_done() {
        let (app, registry) = app(1, 1);
        let first = app.clone().oneshot(req()).await.unwrap();
        assert_eq!(first.status(), 200);
        // The first body is not consumed yet: its slot is still taken, the second waits in
        // the queue for 100 ms and gives up.
        let second = app.clone().oneshot(req()).await.unwrap();
        assert_eq!(second.status(), 503);
        assert_eq!(second.headers()["retry-after"], "1");
        let text = first.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&text[..], b"body");
        let third = app.oneshot(req()).await.unwrap();
        assert_eq!(third.status(), 200);
        let text = metrics(&registry);
        assert!(
            text.contains(r#"http_requests_shed_total{listener="test",reason="waited"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn past_the_queue_requests_are_refused_at_once_and_waiters_get_freed_slots() {
        let (app, registry) = app(1, 1);
        let first = app.clone().oneshot(req()).await.unwrap();
        let waiter = tokio::spawn(app.clone().oneshot(req()));
        // Let the waiter take the one place in the queue.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let refused = app.clone().oneshot(req()).await.unwrap();
        assert_eq!(refused.status(), 503);
        assert_eq!(refused.headers()["retry-after"], "1");
        // The first body ends within the waiter's 100 ms: the waiter is served.
        first.into_body().collect().await.unwrap();
        let served = waiter.await.unwrap().unwrap();
        assert_eq!(served.status(), 200);
        let text = metrics(&registry);
        assert!(
            text.contains(r#"http_requests_shed_total{listener="test",reason="queue_full"} 1"#),
            "{text}"
        );
    }
}

//! A request id for every gateway request: sent back in `X-Request-Id`, written in the log line
//! of a failure, and named in a 5xx body, so an operator can find the detail that the public
//! answer leaves out (database paths, error chains, peers).

use std::fmt;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The response header carrying the id.
pub(crate) const HEADER: &str = "x-request-id";

tokio::task_local! {
    static CURRENT: RequestId;
}

/// A random 64-bit id, written as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestId(u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl RequestId {
    /// The id of the request being answered on this task, if the middleware gave it one.
    pub(crate) fn current() -> Option<Self> {
        CURRENT.try_with(|id| *id).ok()
    }
}

/// Middleware: gives the request an id that everything answering it can read, and names it in
/// the response. A client's own `X-Request-Id` is not trusted: it would let anyone plant ids in
/// our logs.
pub(crate) async fn assign(req: Request, next: Next) -> Response {
    let id = RequestId(rand::random());
    let mut res = CURRENT.scope(id, next.run(req)).await;
    if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
        res.headers_mut().insert(HEADER, value);
    }
    res
}

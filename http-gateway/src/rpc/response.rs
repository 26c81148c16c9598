//! How RPC answers are shaped, as Kubo's command library (go-ipfs-cmds) shapes them.
//!
//! - A failure before anything was sent is an HTTP error status with Kubo's error JSON
//!   (`{"Message", "Code", "Type": "error"}`); never status 200.
//! - A streamed answer ([`JsonLines`]) sends its head only once it has something to say: its
//!   first value, its failure, or its end. A failure after the head ends the body with an
//!   `X-Stream-Error` trailer (Kubo's), or, for a client that did not say `TE: trailers` (hyper
//!   then sends no trailer), cuts the body short, which every HTTP client reports as an error.
//! - A command that reads a request body holds its head until the body is read to its end
//!   ([`Answer::respond_after`]), so a client that only reads once it has written its request
//!   cannot wait on us while we wait on it.

use std::future::Future;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt};
use http_body::Frame;
use serde::Serialize;
use tokio::sync::mpsc;

use super::error::{RpcError, RpcResult};
use super::params::Params;

/// Kubo's trailer for a failure after the answer started.
const STREAM_ERROR: &str = "x-stream-error";

/// The body of a streamed answer: `chunks` as they come, a failure ending it as
/// [`failure_frame`] says.
pub(crate) fn streamed_body<S>(chunks: S, trailers: bool) -> Body
where
    S: Stream<Item = RpcResult<Bytes>> + Send + 'static,
{
    let frames = chunks.map(move |chunk| match chunk {
        Ok(bytes) => Ok(Frame::data(bytes)),
        Err(e) => failure_frame(e, trailers),
    });
    Body::new(http_body_util::StreamBody::new(until_failure(frames)))
}

/// How a failure after the head reaches the client: an `X-Stream-Error` trailer when it reads
/// trailers (`trailers`), else an error that cuts the body short.
pub(crate) fn failure_frame(e: RpcError, trailers: bool) -> Result<Frame<Bytes>, std::io::Error> {
    e.log();
    if trailers {
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_static(STREAM_ERROR),
            header_text(e.message()),
        );
        Ok(Frame::trailers(map))
    } else {
        Err(std::io::Error::other(e.message().to_owned()))
    }
}

/// `frames` up to and including the first that is not data (trailers or an error): nothing
/// may follow either.
pub(crate) fn until_failure<S>(frames: S) -> impl Stream<Item = S::Item> + Send
where
    S: Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send,
{
    frames.scan(false, |ended, frame| {
        let item = (!*ended).then_some(frame);
        *ended = item
            .as_ref()
            .is_some_and(|f| f.as_ref().map_or(true, |f| !f.is_data()));
        futures::future::ready(item)
    })
}

/// `text` as a header value: control characters (a multi-line error) become spaces.
fn header_text(text: &str) -> HeaderValue {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static("error"))
}

/// Headers of a streamed answer: its type, Kubo's marker for the kind of stream
/// (`x-chunked-output` for values, `x-stream-output` for bytes), and its error trailer.
fn stream_headers(res: &mut Response, content_type: &'static str, marker: &'static str) {
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::TRAILER, HeaderValue::from_static("X-Stream-Error"));
    headers.insert(marker, HeaderValue::from_static("1"));
}

/// A byte stream (`cat`, `get`) as Kubo streams one, errors after the head as in
/// [`streamed_body`].
pub(crate) fn byte_stream<S>(chunks: S, params: &Params, content_type: &'static str) -> Response
where
    S: Stream<Item = RpcResult<Bytes>> + Send + 'static,
{
    let mut res = streamed_body(chunks, params.trailers()).into_response();
    stream_headers(&mut res, content_type, "x-stream-output");
    res
}

/// Values waiting to be sent per streamed answer.
const STREAM_BUFFER: usize = 64;
/// Most bytes of answer held back while a request body is still being read; past this the
/// head goes out and the rest streams (a client reading only after writing its whole request
/// then depends on the socket buffers for the remainder).
const MAX_HELD: usize = 4 << 20;

/// The sending side of a newline-delimited JSON answer (Kubo's channel output).
#[derive(Debug, Clone)]
pub(crate) struct JsonLines(mpsc::Sender<RpcResult<Bytes>>);

/// The receiving side, which becomes the HTTP response once it has something to say.
#[derive(Debug)]
pub(crate) struct Answer {
    values: mpsc::Receiver<RpcResult<Bytes>>,
    trailers: bool,
}

impl JsonLines {
    /// A stream of values for a call made with `params`.
    pub(crate) fn new(params: &Params) -> (Self, Answer) {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        (
            Self(tx),
            Answer {
                values: rx,
                trailers: params.trailers(),
            },
        )
    }

    fn line(value: &impl Serialize) -> Option<Bytes> {
        let mut line = serde_json::to_vec(value).ok()?;
        line.push(b'\n');
        Some(line.into())
    }

    /// Sends one value; false when the client went away.
    pub(crate) async fn send(&self, value: &impl Serialize) -> bool {
        match Self::line(value) {
            Some(line) => self.0.send(Ok(line)).await.is_ok(),
            None => false,
        }
    }

    /// Sends a value from a blocking thread; false when the client went away.
    pub(crate) fn blocking_send(&self, value: &impl Serialize) -> bool {
        match Self::line(value) {
            Some(line) => self.0.blocking_send(Ok(line)).is_ok(),
            None => false,
        }
    }

    /// Resolves once nobody reads the answer any more (the client went away).
    pub(crate) async fn closed(&self) {
        self.0.closed().await;
    }

    /// Whether nobody reads the answer any more (the client went away).
    pub(crate) fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Ends the answer with a failure: its status if nothing was sent yet, else its trailer.
    pub(crate) async fn fail(&self, e: RpcError) {
        // A client that went away has no use for it.
        let _ = self.0.send(Err(e)).await;
    }
}

impl Answer {
    /// Answers as soon as there is something to say.
    pub(crate) async fn respond(self) -> Response {
        self.respond_after(std::future::ready(())).await
    }

    /// Answers at once, before any value (a subscription: its client waits for the head to
    /// know it is subscribed).
    pub(crate) fn respond_now(self) -> Response {
        self.stream_after(Vec::new())
    }

    /// Answers once `body_read` (the request body was read to its end) and there is something
    /// to say, or once too much is held back. A failure before that is answered with its status.
    pub(crate) async fn respond_after(mut self, body_read: impl Future<Output = ()>) -> Response {
        let mut body_read = std::pin::pin!(body_read.fuse());
        let mut read = false;
        let mut held: Vec<Bytes> = Vec::new();
        let mut held_bytes = 0;
        loop {
            if (read && !held.is_empty()) || held_bytes > MAX_HELD {
                break;
            }
            tokio::select! {
                // Values first: a failure sent before the body's end was signalled must be
                // seen before it, so that it is answered with its status.
                biased;
                value = self.values.recv() => match value {
                    Some(Ok(line)) => {
                        held_bytes += line.len();
                        held.push(line);
                    }
                    Some(Err(e)) => return e.into_response(),
                    None => break,
                },
                () = &mut body_read, if !read => read = true,
            }
        }
        self.stream_after(held)
    }

    /// The answer: `held` first, then the values as they come.
    fn stream_after(self, held: Vec<Bytes>) -> Response {
        let rest = futures::stream::unfold(self.values, |mut values| async move {
            values.recv().await.map(|value| (value, values))
        });
        let body = futures::stream::iter(held.into_iter().map(Ok)).chain(rest);
        let mut res = streamed_body(body, self.trailers).into_response();
        stream_headers(&mut res, "application/json", "x-chunked-output");
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use http_body_util::BodyExt;
    use serde_json::json;

    async fn frames(res: Response) -> (Vec<Bytes>, Option<HeaderMap>, bool) {
        let mut body = res.into_body();
        let (mut data, mut trailers, mut failed) = (Vec::new(), None, false);
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) if f.is_data() => data.push(f.into_data().unwrap()),
                Ok(f) => trailers = f.into_trailers().ok(),
                Err(_) => failed = true,
            }
        }
        (data, trailers, failed)
    }

    fn params(trailers: bool) -> Params {
        let mut req = axum::http::Request::post("/api/v0/x");
        if trailers {
            req = req.header(header::TE, "trailers");
        }
        let (mut parts, ()) = req.body(()).unwrap().into_parts();
        futures::executor::block_on(
            <Params as axum::extract::FromRequestParts<()>>::from_request_parts(&mut parts, &()),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_failure_before_the_first_value_has_its_status() {
        let (lines, answer) = JsonLines::new(&params(true));
        lines.fail(RpcError::client("bad")).await;
        let res = answer.respond().await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let (data, _, _) = frames(res).await;
        let body: serde_json::Value = serde_json::from_slice(&data.concat()).unwrap();
        assert_eq!(
            body,
            json!({ "Message": "bad", "Code": 1, "Type": "error" })
        );
    }

    #[tokio::test]
    async fn a_failure_after_the_head_is_a_trailer_or_a_cut() {
        for trailers in [true, false] {
            let (lines, answer) = JsonLines::new(&params(trailers));
            tokio::spawn(async move {
                lines.send(&json!({ "a": 1 })).await;
                lines.fail(RpcError::failed("broke\nhere")).await;
                lines.send(&json!({ "b": 2 })).await;
            });
            let res = answer.respond().await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()[header::TRAILER], "X-Stream-Error");
            let (data, trailer, failed) = frames(res).await;
            assert_eq!(data, [Bytes::from("{\"a\":1}\n")]);
            assert_eq!(failed, !trailers);
            assert_eq!(
                trailer.map(|t| t[STREAM_ERROR].clone()),
                trailers.then(|| HeaderValue::from_static("broke here"))
            );
        }
    }

    #[tokio::test]
    async fn the_head_waits_for_the_request_body() {
        let (lines, answer) = JsonLines::new(&params(false));
        let (body_read, read) = tokio::sync::oneshot::channel::<()>();
        lines.send(&json!(1)).await;
        let mut res = std::pin::pin!(answer.respond_after(async move {
            let _ = read.await;
        }));
        // A value alone does not answer while the body is still being read.
        assert!(futures::poll!(res.as_mut()).is_pending());
        body_read.send(()).unwrap();
        drop(lines);
        let (data, _, failed) = frames(res.await).await;
        assert_eq!((data, failed), (vec![Bytes::from("1\n")], false));
    }

    #[tokio::test]
    async fn a_failure_before_the_body_ends_has_its_status() {
        let (lines, answer) = JsonLines::new(&params(false));
        lines.send(&json!(1)).await;
        lines.fail(RpcError::client("bad part")).await;
        // The failure and the body's end are both there when the answer looks.
        let res = answer.respond_after(std::future::ready(())).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn an_answer_without_values_is_empty() {
        let (lines, answer) = JsonLines::new(&params(false));
        drop(lines);
        let res = answer.respond().await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(frames(res).await.0, Vec::<Bytes>::new());
    }
}

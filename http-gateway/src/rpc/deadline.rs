//! Kubo's `timeout` option (every command has it): the whole answer within a Go duration
//! (`300ms`, `1.5s`, `2h45m`), else Kubo's "context deadline exceeded" (which clients such as
//! kubo-rpc-client turn into their timeout error): as the status if the head has not gone out,
//! after it as any other failure of a stream.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http_body_util::BodyStream;
use tokio::time::Instant;

use super::response::{failure_frame, until_failure};
use super::{Params, RpcError};

/// Kubo's words for a command that ran out of time.
const EXCEEDED: &str = "context deadline exceeded";

/// Middleware applying the `timeout` query option.
pub(crate) async fn deadline(req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let params =
        match <Params as axum::extract::FromRequestParts<()>>::from_request_parts(&mut parts, &())
            .await
        {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
    let Some(text) = params.get("timeout").filter(|t| !t.is_empty()) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let Some(limit) = parse_go_duration(text) else {
        return RpcError::client(format!("invalid timeout {text:?}: use a duration like 30s"))
            .into_response();
    };
    let until = Instant::now() + limit;
    let answering = next.run(Request::from_parts(parts, body));
    let Ok(res) = tokio::time::timeout_at(until, answering).await else {
        return RpcError::failed(EXCEEDED).into_response();
    };
    let trailers = params.trailers();
    res.map(|body| {
        let frames = BodyStream::new(body).map(|f| f.map_err(std::io::Error::other));
        let sleep = Box::pin(tokio::time::sleep_until(until));
        let timed = futures::stream::unfold(Some((frames, sleep)), move |state| async move {
            let (mut frames, mut sleep) = state?;
            tokio::select! {
                frame = frames.next() => frame.map(|f| (f, Some((frames, sleep)))),
                () = &mut sleep => Some((failure_frame(RpcError::failed(EXCEEDED), trailers), None)),
            }
        });
        Body::new(http_body_util::StreamBody::new(until_failure(timed)))
    })
}

/// A Go `time.ParseDuration` string; a negative one is already over.
pub(super) fn parse_go_duration(text: &str) -> Option<Duration> {
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    if negative {
        return Some(Duration::ZERO);
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go_duration("300ms"), Some(ms(300)));
        assert_eq!(parse_go_duration("1.5s"), Some(ms(1500)));
        assert_eq!(
            parse_go_duration("2h45m"),
            Some(ms((2 * 3600 + 45 * 60) * 1000))
        );
        assert_eq!(parse_go_duration("1m0.5s"), Some(ms(60_500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("-5s"), Some(Duration::ZERO));
        for bad in ["", "5", "5x", "s", "1..2s", "1e3s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }
}

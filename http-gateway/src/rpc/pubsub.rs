//! `pubsub pub|sub|ls|peers`, as Kubo answers them (core/commands/pubsub.go): topics travel as
//! multibase base64url arguments (`u…`), `pub` takes its data as a multipart file part, `sub`
//! streams one JSON object per message with multibase fields and ends when the client goes
//! away, `ls` and `peers` answer `{"Strings": [...]}`.

use axum::Json;
use axum::extract::{Multipart, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use multibase::Base;
use serde::Serialize;
use serde_json::json;

use super::drain::drain;
use super::response::JsonLines;
use super::{Params, RpcError, RpcResult};
use crate::AppState;
use crate::pubsub::PubSubMessage;

/// go-libp2p-pubsub's default maximum message size.
const MAX_DATA: usize = 1 << 20;

/// One line of `pubsub sub` (Kubo's `pubsubMessage`).
#[derive(Debug, Serialize, PartialEq, Eq)]
struct Line {
    from: String,
    data: String,
    seqno: String,
    #[serde(rename = "topicIDs")]
    topic_ids: Vec<String>,
}

impl From<&PubSubMessage> for Line {
    fn from(m: &PubSubMessage) -> Self {
        Self {
            from: m.from.clone(),
            data: encode(&m.data),
            seqno: encode(&m.seqno),
            topic_ids: vec![encode(m.topic.as_bytes())],
        }
    }
}

fn encode(bytes: &[u8]) -> String {
    multibase::encode(Base::Base64Url, bytes)
}

/// A topic argument: multibase base64url, as Kubo requires in URLs; and text, as topics are
/// here.
fn topic(arg: &str) -> RpcResult<String> {
    let (base, bytes) = multibase::decode(arg)
        .map_err(|e| RpcError::client(format!("URL arg must be multibase encoded: {e}")))?;
    if base != Base::Base64Url {
        return Err(RpcError::client("URL arg must be base64url encoded"));
    }
    String::from_utf8(bytes).map_err(|_| RpcError::client("the topic must be UTF-8 text"))
}

pub(crate) async fn publish(
    State(state): State<AppState>,
    params: Params,
    mut multipart: Multipart,
) -> Response {
    let read = match params.only(&[]).and_then(|()| topic(params.one_arg()?)) {
        Ok(topic) => read_data(&mut multipart).await.map(|data| (topic, data)),
        Err(e) => Err(e),
    };
    let (topic, data) = match read {
        Ok(read) => read,
        Err(e) => {
            drain(&mut multipart).await;
            return e.into_response();
        }
    };
    let published = match state.pubsub() {
        Ok(pubsub) => pubsub.publish(topic, data).await,
        Err(e) => Err(e),
    };
    match published {
        // Kubo's answer to `pub` is an empty body.
        Ok(()) => axum::http::StatusCode::OK.into_response(),
        Err(e) => RpcError::from(e).into_response(),
    }
}

/// The first file part, whole (at most [`MAX_DATA`] bytes).
async fn read_data(multipart: &mut Multipart) -> RpcResult<Bytes> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        RpcError::client(format!("reading the request: {e}"))
    };
    let Some(mut field) = multipart.next_field().await.map_err(bad)? else {
        return Err(RpcError::client("argument \"data\" is required"));
    };
    let mut data = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(bad)? {
        if data.len() + chunk.len() > MAX_DATA {
            return Err(RpcError::client(format!(
                "the message is larger than {MAX_DATA} bytes"
            )));
        }
        data.extend_from_slice(&chunk);
    }
    drop(field);
    // Kubo reads one file; anything after it is read and dropped.
    drain(multipart).await;
    Ok(data.into())
}

pub(crate) async fn subscribe(
    State(state): State<AppState>,
    params: Params,
) -> RpcResult<Response> {
    params.only(&["discover"])?;
    let topic = topic(params.one_arg()?)?;
    let mut messages = state.pubsub()?.subscribe(topic).await?;
    let (lines, answer) = JsonLines::new(&params);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(m) => {
                        if !lines.send(&Line::from(&m)).await {
                            break;
                        }
                    }
                    None => break,
                },
                // The client went away while the topic was quiet.
                () = lines.closed() => break,
            }
        }
    });
    Ok(answer.respond_now())
}

pub(crate) async fn ls(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&[])?;
    let topics = state.pubsub()?.topics().await?;
    let strings: Vec<String> = topics.iter().map(|t| encode(t.as_bytes())).collect();
    Ok(Json(json!({ "Strings": strings })).into_response())
}

pub(crate) async fn peers(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&[])?;
    let topic = match params.args().as_slice() {
        [] => None,
        [one] => Some(topic(one)?),
        _ => return Err(RpcError::client("expected at most one topic")),
    };
    let mut peers = state.pubsub()?.peers(topic).await?;
    peers.sort();
    Ok(Json(json!({ "Strings": peers })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_a_kubo_sub_line() {
        let message = PubSubMessage::new(
            "12D3KooWGsP5rL4pjbE2w3KyB9w3H2tGSYtBdv2fWdrVAvtG6UFs".into(),
            Bytes::from_static(b"{\"cid\":\"x\"}"),
            0x0102_0304_0506_0708,
            "stargate-uploads".into(),
        );
        let line = serde_json::to_value(Line::from(&message)).unwrap();
        assert_eq!(
            line,
            json!({
                "from": "12D3KooWGsP5rL4pjbE2w3KyB9w3H2tGSYtBdv2fWdrVAvtG6UFs",
                "data": "ueyJjaWQiOiJ4In0",
                "seqno": "uAQIDBAUGBwg",
                "topicIDs": ["uc3RhcmdhdGUtdXBsb2Fkcw"],
            })
        );
    }

    #[test]
    fn topics_are_base64url_multibase_text() {
        assert_eq!(
            topic("uc3RhcmdhdGUtdXBsb2Fkcw").unwrap(),
            "stargate-uploads"
        );
        // Plain text, another base, bytes that are not text: refused.
        assert!(topic("stargate-uploads").is_err());
        let base64 = multibase::encode(Base::Base64, "stargate-uploads");
        let err = topic(&base64).unwrap_err();
        assert!(err.message().contains("base64url"), "{}", err.message());
        assert!(topic(&encode(&[0xff, 0xfe])).is_err());
    }
}

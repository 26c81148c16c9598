//! The body of the platform's stego approval callback:
//! `{"image_cid": "...", "payload_cid": "...", "verdict": "approved"|"rejected", "metadata": {...}}`.
//!
//! The metadata of an approved result is announced as it is, so it is held to an announcement's
//! limits here, before anything is done. Unknown fields are refused: a callback is written
//! against this node's documentation (docs/stego-callback.md), and a typo must not pass silently.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use super::StegoAnnouncement;
use crate::Cid;
use crate::limits::MAX_STEGO_CALLBACK_SIZE;
use crate::mirror::{AnnouncementError, checked_metadata, parse_announced_cid};

/// What the platform decided about a stego result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Pin, record and announce it.
    Approved,
    /// Record the decision; announce nothing.
    Rejected,
}

/// A decoded, checked callback body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// The stego image.
    pub image: Cid,
    /// The payload hidden in it.
    pub payload: Cid,
    /// The decision.
    pub verdict: Verdict,
    /// The platform's data about it, announced with an approved result.
    pub metadata: Map<String, Value>,
}

/// Why a callback body was refused (answered 400). [`CallbackError::reason`] is its metric label.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CallbackError {
    #[error("callback body of {0} bytes is over the limit of {MAX_STEGO_CALLBACK_SIZE}")]
    TooLarge(usize),
    #[error("callback body is not the expected JSON object: {0}")]
    MalformedJson(String),
    #[error("image_cid is not a valid CID: {0}")]
    BadImage(String),
    #[error("payload_cid is not a valid CID: {0}")]
    BadPayload(String),
    #[error(transparent)]
    Metadata(AnnouncementError),
}

impl CallbackError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::MalformedJson(_) => "malformed_json",
            Self::BadImage(_) => "bad_image_cid",
            Self::BadPayload(_) => "bad_payload_cid",
            Self::Metadata(e) => e.reason(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    image_cid: String,
    payload_cid: String,
    verdict: Verdict,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Serialize)]
struct WireOut<'a> {
    image_cid: String,
    payload_cid: String,
    verdict: Verdict,
    metadata: &'a Map<String, Value>,
}

impl Callback {
    /// Reads and checks a callback body (the raw bytes whose signature was checked).
    pub fn decode(bytes: &[u8]) -> Result<Self, CallbackError> {
        if bytes.len() > MAX_STEGO_CALLBACK_SIZE {
            return Err(CallbackError::TooLarge(bytes.len()));
        }
        let wire: Wire = serde_json::from_slice(bytes)
            .map_err(|e| CallbackError::MalformedJson(e.to_string()))?;
        let image = parse_announced_cid(&wire.image_cid)
            .map_err(|e| CallbackError::BadImage(e.to_string()))?;
        let payload = parse_announced_cid(&wire.payload_cid)
            .map_err(|e| CallbackError::BadPayload(e.to_string()))?;
        let metadata = checked_metadata(wire.metadata).map_err(CallbackError::Metadata)?;
        Ok(Self {
            image,
            payload,
            verdict: wire.verdict,
            metadata,
        })
    }

    /// The body as the platform sends it (for tests, benchmarks and the documentation's vectors).
    pub fn encode(&self) -> Vec<u8> {
        let wire = WireOut {
            image_cid: self.image.to_string(),
            payload_cid: self.payload.to_string(),
            verdict: self.verdict,
            metadata: &self.metadata,
        };
        // Strings, a unit enum and a JSON map always serialize.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// The announcement of this result.
    pub fn announcement(&self) -> StegoAnnouncement {
        StegoAnnouncement {
            image: self.image,
            payload: self.payload,
            metadata: self.metadata.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::stego::announcement::tests::raw_cid;

    const IMAGE: &str = "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n";
    const PAYLOAD: &str = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

    fn decode(text: &str) -> Result<Callback, CallbackError> {
        Callback::decode(text.as_bytes())
    }

    #[test]
    fn reads_both_verdicts() {
        let body = format!(
            r#"{{"image_cid":"{IMAGE}","payload_cid":"{PAYLOAD}","verdict":"approved","metadata":{{"wish":"w-1"}}}}"#
        );
        let c = decode(&body).unwrap();
        assert_eq!(c.verdict, Verdict::Approved);
        assert_eq!(c.image.to_string(), IMAGE);
        assert_eq!(c.payload.to_string(), PAYLOAD);
        assert_eq!(c.announcement().metadata["wish"], "w-1");
        assert_eq!(String::from_utf8(c.encode()).unwrap(), body);
        let rejected = decode(&format!(
            r#"{{"image_cid":"{IMAGE}","payload_cid":"{PAYLOAD}","verdict":"rejected"}}"#
        ))
        .unwrap();
        assert_eq!(rejected.verdict, Verdict::Rejected);
        assert!(rejected.metadata.is_empty());
    }

    #[test]
    fn refuses_each_kind_of_bad_body() {
        let ok = |verdict: &str, metadata: &str| {
            format!(
                r#"{{"image_cid":"{IMAGE}","payload_cid":"{PAYLOAD}","verdict":"{verdict}","metadata":{metadata}}}"#
            )
        };
        let cases = [
            (" ".repeat(MAX_STEGO_CALLBACK_SIZE + 1), "too_large"),
            ("{".to_owned(), "malformed_json"),
            (ok("maybe", "{}"), "malformed_json"),
            (
                format!(r#"{{"image_cid":"{IMAGE}","verdict":"approved"}}"#),
                "malformed_json",
            ),
            (
                format!(
                    r#"{{"image_cid":"{IMAGE}","payload_cid":"{PAYLOAD}","verdict":"approved","typo":1}}"#
                ),
                "malformed_json",
            ),
            (
                format!(r#"{{"image_cid":"x","payload_cid":"{PAYLOAD}","verdict":"approved"}}"#),
                "bad_image_cid",
            ),
            (
                format!(r#"{{"image_cid":"{IMAGE}","payload_cid":"","verdict":"approved"}}"#),
                "bad_payload_cid",
            ),
            (ok("approved", "[]"), "metadata_not_object"),
            (
                ok("approved", &format!(r#"{{"k":"{}"}}"#, "x".repeat(9000))),
                "metadata_too_large",
            ),
        ];
        for (text, reason) in cases {
            let err = decode(&text).unwrap_err();
            assert_eq!(err.reason(), reason, "{text:.80}: {err}");
        }
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_the_same(
            image in any::<[u8; 32]>(),
            payload in any::<[u8; 32]>(),
            approved in any::<bool>(),
            metadata in proptest::collection::btree_map("[a-z_]{1,12}", any::<i64>(), 0..8),
        ) {
            let callback = Callback {
                image: raw_cid(image),
                payload: raw_cid(payload),
                verdict: if approved { Verdict::Approved } else { Verdict::Rejected },
                metadata: metadata.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
            };
            prop_assert_eq!(Callback::decode(&callback.encode()).unwrap(), callback);
        }

        #[test]
        fn decoding_anything_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Callback::decode(&bytes);
        }
    }
}

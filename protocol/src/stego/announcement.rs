//! A stego announcement on the stego topic, in the guide's shape with the payload beside the
//! image: `{"cid": "<image CID>", "payload": "<payload CID>", "type": "stego", "metadata": {...}}`.
//!
//! It is held to the limits of a mirror announcement, checked by the same code, so that the
//! refusals read and count alike on both topics. As there, the publisher is the gossipsub
//! signer, and unknown fields are ignored.

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::Cid;
use crate::mirror::{
    AnnouncementError, Entry, EntryError, EntryId, STEGO_TYPE, check_metadata_size,
    checked_metadata, decode_json, parse_announced_cid, stego_id,
};

/// An approved stego image and its payload, as announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StegoAnnouncement {
    /// The stego image.
    pub image: Cid,
    /// The payload hidden in it, stored on its own.
    pub payload: Cid,
    /// The platform's own data about it.
    pub metadata: Map<String, Value>,
}

/// Why a stego announcement was refused. [`StegoAnnouncementError::reason`] is its metric label.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum StegoAnnouncementError {
    /// What any announcement is refused for (size, JSON, image CID, metadata).
    #[error(transparent)]
    Announcement(#[from] AnnouncementError),
    #[error("stego announcement names no valid payload CID: {0}")]
    BadPayload(String),
    #[error("announcement on the stego topic is not of type {STEGO_TYPE}")]
    NotStego,
}

impl StegoAnnouncementError {
    /// A short label for metrics, the same as a mirror announcement's for the same fault.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Announcement(e) => e.reason(),
            Self::BadPayload(_) => "bad_payload_cid",
            Self::NotStego => "not_stego",
        }
    }
}

#[derive(Deserialize)]
struct Wire {
    cid: String,
    payload: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Serialize)]
struct WireOut<'a> {
    cid: String,
    payload: String,
    #[serde(rename = "type")]
    kind: &'a str,
    metadata: &'a Map<String, Value>,
}

impl StegoAnnouncement {
    /// Reads and checks a stego announcement as it arrives from the topic.
    pub fn decode(bytes: &[u8]) -> Result<Self, StegoAnnouncementError> {
        let wire: Wire = decode_json(bytes)?;
        let image = parse_announced_cid(&wire.cid)?;
        let payload = parse_announced_cid(&wire.payload)
            .map_err(|e| StegoAnnouncementError::BadPayload(e.to_string()))?;
        if wire.kind != STEGO_TYPE {
            return Err(StegoAnnouncementError::NotStego);
        }
        let metadata = checked_metadata(wire.metadata)?;
        Ok(Self {
            image,
            payload,
            metadata,
        })
    }

    /// The announcement as published.
    pub fn encode(&self) -> Vec<u8> {
        let wire = WireOut {
            cid: self.image.to_string(),
            payload: self.payload.to_string(),
            kind: STEGO_TYPE,
            metadata: &self.metadata,
        };
        // Strings and a JSON map always serialize.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Its id: the same for the same image and payload whoever announced it.
    pub fn id(&self) -> EntryId {
        stego_id(&self.image, &self.payload)
    }

    /// The entry that carries it in manifests and the reconciled set, published by
    /// `publisher`, first heard of at `time` (Unix s).
    pub fn entry(&self, publisher: PeerId, time: u64) -> Result<Entry, EntryError> {
        Ok(Entry {
            cid: self.image,
            payload: Some(self.payload),
            kind: STEGO_TYPE.to_owned(),
            metadata: check_metadata_size(&self.metadata)?,
            publisher,
            time,
        })
    }

    /// The stego upload `entry` records, if it is one.
    pub fn of_entry(entry: &Entry) -> Option<Self> {
        Some(Self {
            image: entry.cid,
            payload: entry.payload?,
            metadata: serde_json::from_str(&entry.metadata).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::limits::MAX_ANNOUNCEMENT_SIZE;

    const IMAGE: &str = "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n";
    const PAYLOAD: &str = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

    fn decode(text: &str) -> Result<StegoAnnouncement, StegoAnnouncementError> {
        StegoAnnouncement::decode(text.as_bytes())
    }

    #[test]
    fn reads_and_writes_the_stego_shape() {
        let a = decode(&format!(
            r#"{{"cid":"{IMAGE}","payload":"{PAYLOAD}","type":"stego","metadata":{{"wish":"w-1"}},"extra":1}}"#
        ))
        .unwrap();
        assert_eq!(a.image.to_string(), IMAGE);
        assert_eq!(a.payload.to_string(), PAYLOAD);
        let text = String::from_utf8(a.encode()).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"cid":"{IMAGE}","payload":"{PAYLOAD}","type":"stego","metadata":{{"wish":"w-1"}}}}"#
            )
        );
        let no_metadata = decode(&format!(
            r#"{{"cid":"{IMAGE}","payload":"{PAYLOAD}","type":"stego"}}"#
        ))
        .unwrap();
        assert!(no_metadata.metadata.is_empty());
        assert_eq!(no_metadata.id(), a.id());
    }

    #[test]
    fn its_entry_carries_it_whole() {
        let a = decode(&format!(
            r#"{{"cid":"{IMAGE}","payload":"{PAYLOAD}","type":"stego","metadata":{{"wish":"w-1"}}}}"#
        ))
        .unwrap();
        let publisher = libp2p_identity::Keypair::ed25519_from_bytes([1; 32])
            .unwrap()
            .public()
            .to_peer_id();
        let entry = a.entry(publisher, 7).unwrap();
        assert_eq!(entry.id(), a.id());
        assert_eq!(entry.kind, STEGO_TYPE);
        assert_eq!(StegoAnnouncement::of_entry(&entry), Some(a));
        let mut plain = entry.clone();
        plain.payload = None;
        assert_eq!(StegoAnnouncement::of_entry(&plain), None);
    }

    #[test]
    fn the_id_tells_image_and_payload_apart() {
        let image: Cid = IMAGE.parse().unwrap();
        let payload: Cid = PAYLOAD.parse().unwrap();
        assert_ne!(stego_id(&image, &payload), stego_id(&payload, &image));
        assert_ne!(
            stego_id(&image, &payload),
            crate::mirror::entry_id(STEGO_TYPE, &image)
        );
    }

    #[test]
    fn refuses_each_kind_of_bad_input_with_the_mirror_reasons() {
        let cases = [
            (" ".repeat(MAX_ANNOUNCEMENT_SIZE + 1), "too_large"),
            ("{not json".to_owned(), "malformed_json"),
            (
                format!(r#"{{"cid":"{IMAGE}","type":"stego"}}"#),
                "malformed_json",
            ),
            (
                format!(r#"{{"cid":"Qmnope","payload":"{PAYLOAD}","type":"stego"}}"#),
                "bad_cid",
            ),
            (
                format!(r#"{{"cid":"{IMAGE}","payload":"Qmnope","type":"stego"}}"#),
                "bad_payload_cid",
            ),
            (
                format!(r#"{{"cid":"{IMAGE}","payload":"{PAYLOAD}","type":"contract"}}"#),
                "not_stego",
            ),
            (
                format!(r#"{{"cid":"{IMAGE}","payload":"{PAYLOAD}","type":"stego","metadata":1}}"#),
                "metadata_not_object",
            ),
            (
                format!(
                    r#"{{"cid":"{IMAGE}","payload":"{PAYLOAD}","type":"stego","metadata":{{"k":"{}"}}}}"#,
                    "x".repeat(9000)
                ),
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
            metadata in proptest::collection::btree_map("[a-z_]{1,12}", ".{0,40}", 0..8),
        ) {
            let announcement = StegoAnnouncement {
                image: raw_cid(image),
                payload: raw_cid(payload),
                metadata: metadata.into_iter().map(|(k, v)| (k, Value::String(v))).collect(),
            };
            let again = StegoAnnouncement::decode(&announcement.encode()).unwrap();
            prop_assert_eq!(again, announcement);
        }

        #[test]
        fn decoding_anything_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = StegoAnnouncement::decode(&bytes);
        }
    }

    pub(crate) fn raw_cid(digest: [u8; 32]) -> Cid {
        Cid::new_v1(0x55, crate::digest(crate::HashCode::Sha2_256, &digest))
    }
}

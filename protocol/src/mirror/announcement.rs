//! An announcement on a mirror topic, in the guide's shape:
//! `{"cid": "QmAbC...", "type": "contract", "metadata": {"contract_id": "..."}}`.
//!
//! Whoever publishes it is the gossipsub signer, not a field of the message: the announcement
//! itself names only what was uploaded. Other fields are ignored, so that an instance that adds
//! one does not have its uploads refused; a missing `metadata` reads as an empty object, as a
//! Kubo-based instance may leave it out.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::Cid;
use crate::limits::{
    MAX_ANNOUNCEMENT_METADATA_SIZE, MAX_ANNOUNCEMENT_SIZE, MAX_ANNOUNCEMENT_TYPE_LEN,
    MAX_CID_STRING_LEN,
};

/// The type of the announcements that carry a manifest's CID.
pub const MANIFEST_TYPE: &str = "manifest";

/// An upload announced on a mirror topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// What was uploaded.
    pub cid: Cid,
    /// What it is to the platform (`contract`, `proposal`, ...; [`MANIFEST_TYPE`] for manifests).
    pub kind: String,
    /// The platform's own data about it.
    pub metadata: Map<String, Value>,
}

/// Why an announcement was refused. [`AnnouncementError::reason`] is its metric label.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AnnouncementError {
    #[error("announcement of {0} bytes is over the limit of {MAX_ANNOUNCEMENT_SIZE}")]
    TooLarge(usize),
    #[error("announcement is not the expected JSON object: {0}")]
    MalformedJson(String),
    #[error("announcement names no valid CID: {0}")]
    BadCid(String),
    #[error(
        "announcement type must be 1 to {MAX_ANNOUNCEMENT_TYPE_LEN} characters of letters, digits and . _ - : /"
    )]
    BadType,
    #[error("announcement metadata must be a JSON object")]
    MetadataNotObject,
    #[error(
        "announcement metadata of {0} bytes is over the limit of {MAX_ANNOUNCEMENT_METADATA_SIZE}"
    )]
    MetadataTooLarge(usize),
}

impl AnnouncementError {
    /// A short label for metrics (`ipfs_mirror_announcements_rejected_total{reason=...}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::MalformedJson(_) => "malformed_json",
            Self::BadCid(_) => "bad_cid",
            Self::BadType => "bad_type",
            Self::MetadataNotObject => "metadata_not_object",
            Self::MetadataTooLarge(_) => "metadata_too_large",
        }
    }
}

/// The wire shape, before its fields are checked.
#[derive(Deserialize)]
struct Wire {
    cid: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Serialize)]
struct WireOut<'a> {
    cid: String,
    #[serde(rename = "type")]
    kind: &'a str,
    metadata: &'a Map<String, Value>,
}

impl Announcement {
    /// Reads and checks an announcement as it arrives from a topic.
    pub fn decode(bytes: &[u8]) -> Result<Self, AnnouncementError> {
        let wire: Wire = decode_json(bytes)?;
        let cid = parse_announced_cid(&wire.cid)?;
        check_type(&wire.kind)?;
        let metadata = checked_metadata(wire.metadata)?;
        Ok(Self {
            cid,
            kind: wire.kind,
            metadata,
        })
    }

    /// The announcement as published: the guide's JSON object.
    pub fn encode(&self) -> Vec<u8> {
        let wire = WireOut {
            cid: self.cid.to_string(),
            kind: &self.kind,
            metadata: &self.metadata,
        };
        // A struct of strings and a JSON map always serializes.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Whether it announces a manifest rather than an upload.
    pub fn is_manifest(&self) -> bool {
        self.kind == MANIFEST_TYPE
    }
}

/// Reads the JSON of an announcement on any topic, within the size limit.
pub(crate) fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AnnouncementError> {
    if bytes.len() > MAX_ANNOUNCEMENT_SIZE {
        return Err(AnnouncementError::TooLarge(bytes.len()));
    }
    serde_json::from_slice(bytes).map_err(|e| AnnouncementError::MalformedJson(e.to_string()))
}

/// The metadata of an announcement: an object within the size limit, empty when left out.
pub(crate) fn checked_metadata(
    metadata: Option<Value>,
) -> Result<Map<String, Value>, AnnouncementError> {
    let metadata = match metadata {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(AnnouncementError::MetadataNotObject),
    };
    check_metadata_size(&metadata)?;
    Ok(metadata)
}

pub(crate) fn parse_announced_cid(text: &str) -> Result<Cid, AnnouncementError> {
    if text.len() > MAX_CID_STRING_LEN {
        return Err(AnnouncementError::BadCid("too long".to_owned()));
    }
    let cid = crate::parse_cid(text).map_err(|e| AnnouncementError::BadCid(e.to_string()))?;
    crate::check_supported(&cid).map_err(|e| AnnouncementError::BadCid(e.to_string()))?;
    Ok(cid)
}

/// A type is a label: short, and of characters that need no escaping in logs or metrics.
pub(crate) fn check_type(kind: &str) -> Result<(), AnnouncementError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/');
    if kind.is_empty() || kind.len() > MAX_ANNOUNCEMENT_TYPE_LEN || !kind.chars().all(allowed) {
        return Err(AnnouncementError::BadType);
    }
    Ok(())
}

/// The metadata as compact JSON text, checked against the size limit.
pub(crate) fn check_metadata_size(
    metadata: &Map<String, Value>,
) -> Result<String, AnnouncementError> {
    let text = serde_json::to_string(metadata).unwrap_or_default();
    if text.len() > MAX_ANNOUNCEMENT_METADATA_SIZE {
        return Err(AnnouncementError::MetadataTooLarge(text.len()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n";

    fn decode(text: &str) -> Result<Announcement, AnnouncementError> {
        Announcement::decode(text.as_bytes())
    }

    #[test]
    fn reads_the_guides_announcement() {
        let text = format!(
            r#"{{"cid": "{CID}", "type": "contract", "metadata": {{"contract_id": "c-1", "timestamp": "2026-01-01T00:00:00Z"}}}}"#
        );
        let a = decode(&text).unwrap();
        assert_eq!(a.cid.to_string(), CID);
        assert_eq!(a.kind, "contract");
        assert_eq!(a.metadata["contract_id"], "c-1");
        assert!(!a.is_manifest());
    }

    #[test]
    fn encodes_in_the_guides_shape_and_reads_back() {
        let a = decode(&format!(
            r#"{{"cid":"{CID}","type":"wish","metadata":{{"b":1,"a":[true]}}}}"#
        ))
        .unwrap();
        let text = String::from_utf8(a.encode()).unwrap();
        assert_eq!(
            text,
            format!(r#"{{"cid":"{CID}","type":"wish","metadata":{{"a":[true],"b":1}}}}"#)
        );
        assert_eq!(Announcement::decode(text.as_bytes()).unwrap(), a);
    }

    #[test]
    fn missing_metadata_is_empty_and_other_fields_are_ignored() {
        let a = decode(&format!(r#"{{"cid":"{CID}","type":"manifest","extra":1}}"#)).unwrap();
        assert!(a.metadata.is_empty());
        assert!(a.is_manifest());
    }

    #[test]
    fn refuses_each_kind_of_bad_input_with_its_reason() {
        let cases = [
            (" ".repeat(MAX_ANNOUNCEMENT_SIZE + 1), "too_large"),
            ("{not json".to_owned(), "malformed_json"),
            ("[1,2]".to_owned(), "malformed_json"),
            (r#"{"type":"contract"}"#.to_owned(), "malformed_json"),
            (
                r#"{"cid":"Qmnope","type":"contract"}"#.to_owned(),
                "bad_cid",
            ),
            (format!(r#"{{"cid":"{CID}","type":""}}"#), "bad_type"),
            (
                format!(r#"{{"cid":"{CID}","type":"{}"}}"#, "a".repeat(65)),
                "bad_type",
            ),
            (format!(r#"{{"cid":"{CID}","type":"a b"}}"#), "bad_type"),
            (
                format!(r#"{{"cid":"{CID}","type":"t","metadata":[1]}}"#),
                "metadata_not_object",
            ),
            (
                format!(
                    r#"{{"cid":"{CID}","type":"t","metadata":{{"k":"{}"}}}}"#,
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
}

//! One mirrored upload, as manifests and the sync protocol carry it between nodes.
//!
//! Its id is what the reconciled set holds: the same upload has the same id on every node,
//! whoever told it about it and whenever, so the id depends only on the type and the CID.
//!
//! A stego upload (issue 13) is an entry too: type [`STEGO_TYPE`], the image as its CID and the
//! payload beside it (`crate::stego::StegoAnnouncement::entry` makes one). Its id is the stego
//! id ([`stego_id`], under a domain of its own), so the two kinds share the reconciled set and
//! the manifests without ever colliding. The payload is an optional dag-cbor field, left out of
//! every other entry: those encode exactly as before.

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::announcement::{Announcement, AnnouncementError, check_metadata_size, check_type};
use crate::Cid;

/// The id of an entry in the reconciled set.
pub type EntryId = [u8; 32];

/// Keeps entry ids apart from any other SHA-256 the node computes.
const ID_DOMAIN: &[u8] = b"stargate/mirror-entry/1";

/// The type of every stego upload, on the stego topic and as an entry.
pub const STEGO_TYPE: &str = "stego";

/// Keeps stego ids apart from mirror entry ids and any other SHA-256 the node computes, so that
/// stego uploads are a namespace of their own in a reconciled set.
const STEGO_ID_DOMAIN: &[u8] = b"stargate/stego-entry/1";

/// One mirrored upload. Built only from a checked [`Announcement`] or decoded and checked, so
/// every `Entry` meets the announcement limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireEntry", into = "WireEntry")]
pub struct Entry {
    /// What was uploaded (for a stego upload, the image).
    pub cid: Cid,
    /// For a stego upload only: the payload hidden in the image. Its type is then
    /// [`STEGO_TYPE`].
    pub payload: Option<Cid>,
    /// Its announcement type.
    pub kind: String,
    /// Its announcement metadata, as compact JSON object text.
    pub metadata: String,
    /// The instance that first announced it (the gossipsub signer of the announcement).
    pub publisher: PeerId,
    /// When the node that wrote this entry first heard of it (Unix seconds). Informational: it
    /// differs between nodes and is not part of the id.
    pub time: u64,
}

/// Why an entry from a peer was refused.
#[derive(Debug, Error)]
pub enum EntryError {
    #[error(transparent)]
    Announcement(#[from] AnnouncementError),
    #[error("entry publisher is not a peer id")]
    BadPublisher,
    #[error("entry names a payload but is not of type {STEGO_TYPE}")]
    PayloadNotStego,
}

impl Entry {
    /// The entry for `announcement`, published by `publisher`, first heard of at `time`.
    pub fn new(
        announcement: &Announcement,
        publisher: PeerId,
        time: u64,
    ) -> Result<Self, EntryError> {
        Ok(Self {
            cid: announcement.cid,
            payload: None,
            kind: announcement.kind.clone(),
            metadata: check_metadata_size(&announcement.metadata)?,
            publisher,
            time,
        })
    }

    /// The id in the reconciled set: SHA-256 over a domain, the type and the binary CID; for
    /// a stego upload, its stego id.
    pub fn id(&self) -> EntryId {
        match &self.payload {
            Some(payload) => stego_id(&self.cid, payload),
            None => entry_id(&self.kind, &self.cid),
        }
    }

    /// The announcement this entry records, as it would be published again.
    pub fn announcement(&self) -> Announcement {
        let metadata =
            serde_json::from_str::<Map<String, Value>>(&self.metadata).unwrap_or_default();
        Announcement {
            cid: self.cid,
            kind: self.kind.clone(),
            metadata,
        }
    }
}

/// The id of the upload of `cid` with type `kind` (see [`Entry::id`]).
pub fn entry_id(kind: &str, cid: &Cid) -> EntryId {
    let mut hasher = Sha256::new();
    hasher.update(ID_DOMAIN);
    hasher.update([u8::try_from(kind.len()).unwrap_or(u8::MAX)]);
    hasher.update(kind.as_bytes());
    hasher.update(cid.to_bytes());
    hasher.finalize().into()
}

/// The id of the stego upload of `image` carrying `payload`: SHA-256 over a domain and both
/// binary CIDs, each behind its length. The same whoever announced it.
pub fn stego_id(image: &Cid, payload: &Cid) -> EntryId {
    let mut hasher = Sha256::new();
    hasher.update(STEGO_ID_DOMAIN);
    for cid in [image, payload] {
        let bytes = cid.to_bytes();
        hasher.update([u8::try_from(bytes.len()).unwrap_or(u8::MAX)]);
        hasher.update(bytes);
    }
    hasher.finalize().into()
}

/// The dag-cbor shape: short keys, the publisher as its binary peer id, `payload` only for a
/// stego upload (older nodes ignore it).
#[derive(Serialize, Deserialize)]
struct WireEntry {
    cid: Cid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<Cid>,
    #[serde(rename = "type")]
    kind: String,
    metadata: String,
    #[serde(with = "serde_bytes")]
    publisher: Vec<u8>,
    time: u64,
}

impl From<Entry> for WireEntry {
    fn from(entry: Entry) -> Self {
        Self {
            cid: entry.cid,
            payload: entry.payload,
            kind: entry.kind,
            metadata: entry.metadata,
            publisher: entry.publisher.to_bytes(),
            time: entry.time,
        }
    }
}

impl TryFrom<WireEntry> for Entry {
    type Error = EntryError;

    fn try_from(wire: WireEntry) -> Result<Self, EntryError> {
        crate::check_supported(&wire.cid).map_err(|e| AnnouncementError::BadCid(e.to_string()))?;
        check_type(&wire.kind)?;
        if let Some(payload) = &wire.payload {
            if wire.kind != STEGO_TYPE {
                return Err(EntryError::PayloadNotStego);
            }
            crate::check_supported(payload)
                .map_err(|e| AnnouncementError::BadCid(e.to_string()))?;
        }
        let Ok(Value::Object(metadata)) = serde_json::from_str::<Value>(&wire.metadata) else {
            return Err(AnnouncementError::MetadataNotObject.into());
        };
        let publisher =
            PeerId::from_bytes(&wire.publisher).map_err(|_| EntryError::BadPublisher)?;
        Ok(Self {
            cid: wire.cid,
            payload: wire.payload,
            kind: wire.kind,
            metadata: check_metadata_size(&metadata)?,
            publisher,
            time: wire.time,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn peer(seed: u8) -> PeerId {
        libp2p_identity::Keypair::ed25519_from_bytes([seed; 32])
            .unwrap()
            .public()
            .to_peer_id()
    }

    pub(crate) fn entry(n: u32, publisher: PeerId) -> Entry {
        let block = crate::Block::encode(
            crate::Version::V1,
            crate::Codec::Raw,
            crate::HashCode::Sha2_256,
            n.to_be_bytes().to_vec(),
        )
        .unwrap();
        let cid = *block.cid();
        let announcement = Announcement::decode(
            format!(r#"{{"cid":"{cid}","type":"contract","metadata":{{"n":{n}}}}}"#).as_bytes(),
        )
        .unwrap();
        Entry::new(&announcement, publisher, 1_700_000_000 + u64::from(n)).unwrap()
    }

    #[test]
    fn the_id_depends_on_type_and_cid_only() {
        let a = entry(1, peer(1));
        let mut b = entry(1, peer(2));
        b.time += 100;
        b.metadata = "{}".to_owned();
        assert_eq!(a.id(), b.id());
        b.kind = "proposal".to_owned();
        assert_ne!(a.id(), b.id());
        assert_ne!(a.id(), entry(2, peer(1)).id());
    }

    #[test]
    fn round_trips_through_dag_cbor_and_back_to_its_announcement() {
        let a = entry(7, peer(3));
        let bytes = serde_ipld_dagcbor::to_vec(&a).unwrap();
        let b: Entry = serde_ipld_dagcbor::from_slice(&bytes).unwrap();
        assert_eq!(a, b);
        assert_eq!(b.announcement().metadata["n"], 7);
    }

    #[test]
    fn refuses_an_entry_that_breaks_the_announcement_limits() {
        let mut wire = WireEntry::from(entry(1, peer(1)));
        wire.kind = "a b".to_owned();
        let bytes = serde_ipld_dagcbor::to_vec(&wire).unwrap();
        assert!(serde_ipld_dagcbor::from_slice::<Entry>(&bytes).is_err());

        let mut wire = WireEntry::from(entry(1, peer(1)));
        wire.publisher = vec![1, 2, 3];
        let bytes = serde_ipld_dagcbor::to_vec(&wire).unwrap();
        assert!(serde_ipld_dagcbor::from_slice::<Entry>(&bytes).is_err());

        let mut wire = WireEntry::from(entry(1, peer(1)));
        wire.metadata = "[1]".to_owned();
        let bytes = serde_ipld_dagcbor::to_vec(&wire).unwrap();
        assert!(serde_ipld_dagcbor::from_slice::<Entry>(&bytes).is_err());
    }

    pub(crate) fn stego_entry(n: u32, publisher: PeerId) -> Entry {
        let cid = |m: u32| {
            Cid::new_v1(
                0x55,
                crate::digest(crate::HashCode::Sha2_256, &m.to_be_bytes()),
            )
        };
        Entry {
            cid: cid(n),
            payload: Some(cid(n + 1_000_000)),
            kind: STEGO_TYPE.to_owned(),
            metadata: format!(r#"{{"wish":{n}}}"#),
            publisher,
            time: 1_700_000_000 + u64::from(n),
        }
    }

    /// The layout every node before stego entries wrote and read.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct OldWireEntry {
        cid: Cid,
        #[serde(rename = "type")]
        kind: String,
        metadata: String,
        #[serde(with = "serde_bytes")]
        publisher: Vec<u8>,
        time: u64,
    }

    #[test]
    fn a_stego_entry_has_the_stego_id_and_round_trips() {
        let s = stego_entry(3, peer(1));
        assert_eq!(s.id(), stego_id(&s.cid, &s.payload.unwrap()));
        assert_ne!(s.id(), entry_id(STEGO_TYPE, &s.cid));
        let bytes = serde_ipld_dagcbor::to_vec(&s).unwrap();
        assert_eq!(serde_ipld_dagcbor::from_slice::<Entry>(&bytes).unwrap(), s);
        // Another publisher, another time, other metadata: the same upload.
        let mut other = stego_entry(3, peer(2));
        other.metadata = "{}".to_owned();
        other.time = 5;
        assert_eq!(other.id(), s.id());
    }

    #[test]
    fn entries_without_a_payload_encode_as_before_and_old_nodes_read_stego_ones() {
        let e = entry(4, peer(1));
        let old = OldWireEntry {
            cid: e.cid,
            kind: e.kind.clone(),
            metadata: e.metadata.clone(),
            publisher: e.publisher.to_bytes(),
            time: e.time,
        };
        assert_eq!(
            serde_ipld_dagcbor::to_vec(&e).unwrap(),
            serde_ipld_dagcbor::to_vec(&old).unwrap()
        );
        let s = stego_entry(4, peer(1));
        let read: OldWireEntry =
            serde_ipld_dagcbor::from_slice(&serde_ipld_dagcbor::to_vec(&s).unwrap()).unwrap();
        assert_eq!((read.cid, read.kind.as_str()), (s.cid, STEGO_TYPE));
    }

    #[test]
    fn refuses_a_payload_on_another_type_or_an_unsupported_payload() {
        let mut wire = WireEntry::from(stego_entry(1, peer(1)));
        wire.kind = "contract".to_owned();
        let bytes = serde_ipld_dagcbor::to_vec(&wire).unwrap();
        let err = serde_ipld_dagcbor::from_slice::<Entry>(&bytes).unwrap_err();
        assert!(err.to_string().contains("payload"), "{err}");

        let mut wire = WireEntry::from(stego_entry(1, peer(1)));
        // A codec this node cannot interpret.
        wire.payload = Some(Cid::new_v1(
            0x0309,
            crate::digest(crate::HashCode::Sha2_256, b"x"),
        ));
        let bytes = serde_ipld_dagcbor::to_vec(&wire).unwrap();
        let err = serde_ipld_dagcbor::from_slice::<Entry>(&bytes).unwrap_err();
        assert!(err.to_string().contains("CID"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn any_entry_round_trips_with_its_id(n in 0u32..1_000_000, stego in proptest::bool::ANY, seed in 1u8..8) {
            let e = if stego { stego_entry(n, peer(seed)) } else { entry(n, peer(seed)) };
            let bytes = serde_ipld_dagcbor::to_vec(&e).unwrap();
            let back: Entry = serde_ipld_dagcbor::from_slice(&bytes).unwrap();
            proptest::prop_assert_eq!(back.id(), e.id());
            proptest::prop_assert_eq!(back, e);
        }
    }
}

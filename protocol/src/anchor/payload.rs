//! The 40-byte OP_RETURN payload: a 4-byte tag naming the format and version, then a CIDv1 or a
//! batch root.

use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::script::{PushBytesBuf, ScriptBuf};
use cid::Cid;

use super::AnchorError;

/// Length of the tag that opens every payload.
pub const TAG_LEN: usize = 4;
/// Length of every payload: the tag and 36 bytes.
pub const PAYLOAD_LEN: usize = 40;
/// Tag of a payload that holds one CIDv1 (format `C`, version 1).
pub const TAG_CID_V1: [u8; TAG_LEN] = *b"SGC\x01";
/// Tag of a payload that holds a batch's Merkle root and size (format `B`, version 1).
pub const TAG_BATCH_V1: [u8; TAG_LEN] = *b"SGB\x01";

const BODY_LEN: usize = PAYLOAD_LEN - TAG_LEN;
/// The payload script: `OP_RETURN OP_PUSHBYTES_40 <payload>`.
const SCRIPT_LEN: usize = 2 + PAYLOAD_LEN;

/// The CIDv1 form that anchors commit: the same codec and multihash as `cid`, version 1, so
/// that a CIDv0 (`Qm…`) and its CIDv1 (`bafy…`) are the same anchored content.
pub fn anchor_cid(cid: &Cid) -> Cid {
    Cid::new_v1(cid.codec(), *cid.hash())
}

/// The 40 bytes an anchor transaction carries in its OP_RETURN output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnchorPayload {
    /// One CID, held as CIDv1 whose binary form is exactly 36 bytes.
    Cid(Cid),
    /// The root of a [`super::Batch`] and its number of members.
    Batch {
        /// RFC 6962 Merkle tree hash of the members.
        root: [u8; 32],
        /// Number of members (at least 1).
        size: u32,
    },
}

impl AnchorPayload {
    /// The single-CID payload for `cid` (a CIDv0 is committed as its CIDv1).
    ///
    /// # Errors
    /// [`AnchorError::CidDoesNotFit`] when the CIDv1 is not exactly 36 bytes (a hash other than
    /// 32 bytes, or a codec whose varint takes more than one byte); such CIDs go in a batch.
    pub fn for_cid(cid: &Cid) -> Result<Self, AnchorError> {
        let v1 = anchor_cid(cid);
        let len = v1.encoded_len();
        if len != BODY_LEN {
            return Err(AnchorError::CidDoesNotFit {
                cid: cid.to_string(),
                len,
            });
        }
        Ok(Self::Cid(v1))
    }

    /// The payload's 40 bytes.
    pub fn to_bytes(&self) -> [u8; PAYLOAD_LEN] {
        let mut out = [0u8; PAYLOAD_LEN];
        match self {
            Self::Cid(cid) => {
                out[..TAG_LEN].copy_from_slice(&TAG_CID_V1);
                // The constructors guarantee a 36-byte CIDv1.
                out[TAG_LEN..].copy_from_slice(&cid.to_bytes());
            }
            Self::Batch { root, size } => {
                out[..TAG_LEN].copy_from_slice(&TAG_BATCH_V1);
                out[TAG_LEN..TAG_LEN + 32].copy_from_slice(root);
                out[TAG_LEN + 32..].copy_from_slice(&size.to_be_bytes());
            }
        }
        out
    }

    /// Decodes a payload.
    ///
    /// # Errors
    /// When `bytes` is not 40 bytes, carries an unknown tag, holds a body that is not a 36-byte
    /// CIDv1, or a batch of size zero.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AnchorError> {
        let bytes: &[u8; PAYLOAD_LEN] = bytes
            .try_into()
            .map_err(|_| AnchorError::PayloadLength { len: bytes.len() })?;
        let (tag, body) = bytes.split_at(TAG_LEN);
        match <[u8; TAG_LEN]>::try_from(tag) {
            Ok(TAG_CID_V1) => {
                let cid = Cid::try_from(body).map_err(|e| AnchorError::InvalidPayloadCid {
                    reason: e.to_string(),
                })?;
                // Cid::try_from ignores trailing bytes, accepts CIDv0 and tolerates some
                // non-canonical varints; the body must be exactly one canonical CIDv1.
                if cid.version() != cid::Version::V1 || cid.to_bytes() != body {
                    return Err(AnchorError::InvalidPayloadCid {
                        reason: format!("{cid} is not encoded as exactly these 36 bytes of CIDv1"),
                    });
                }
                Ok(Self::Cid(cid))
            }
            Ok(TAG_BATCH_V1) => {
                let mut root = [0u8; 32];
                root.copy_from_slice(&body[..32]);
                let mut size = [0u8; 4];
                size.copy_from_slice(&body[32..]);
                let size = u32::from_be_bytes(size);
                if size == 0 {
                    return Err(AnchorError::EmptyBatch);
                }
                Ok(Self::Batch { root, size })
            }
            _ => {
                let mut found = [0u8; TAG_LEN];
                found.copy_from_slice(tag);
                Err(AnchorError::UnknownTag { tag: found })
            }
        }
    }

    /// The output script that carries this payload: `OP_RETURN OP_PUSHBYTES_40 <40 bytes>`.
    pub fn script_pubkey(&self) -> ScriptBuf {
        let mut push = PushBytesBuf::new();
        // 40 bytes is far below the push limit, so this cannot fail.
        let _ = push.extend_from_slice(&self.to_bytes());
        ScriptBuf::new_op_return(push)
    }

    /// The payload an output script carries, if it is exactly `OP_RETURN OP_PUSHBYTES_40` with a
    /// well-formed Stargate payload; `None` for every other script.
    pub fn from_script(script: &bitcoin::Script) -> Option<Self> {
        let bytes = script.as_bytes();
        if bytes.len() != SCRIPT_LEN
            || bytes[0] != OP_RETURN.to_u8()
            || usize::from(bytes[1]) != PAYLOAD_LEN
        {
            return None;
        }
        Self::from_bytes(&bytes[2..]).ok()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const V0: &str = "QmPZ9gcCEpqKTo6aq61g2nXGUhM4iCL3ewB6LDXZCtioEB";

    #[test]
    fn cidv0_is_committed_as_its_cidv1() {
        let v0: Cid = V0.parse().unwrap();
        let payload = AnchorPayload::for_cid(&v0).unwrap();
        let bytes = payload.to_bytes();
        assert_eq!(&bytes[..4], b"SGC\x01");
        assert_eq!(&bytes[4..], anchor_cid(&v0).to_bytes().as_slice());
        assert_eq!(bytes[4], 0x01);
        assert_eq!(bytes[5], 0x70);
        assert_eq!(AnchorPayload::from_bytes(&bytes), Ok(payload));
    }

    #[test]
    fn long_cids_do_not_fit() {
        let sha512 = cid::multihash::Multihash::<64>::wrap(0x13, &[9; 64]).unwrap();
        let cid = Cid::new_v1(0x55, sha512);
        assert!(matches!(
            AnchorPayload::for_cid(&cid),
            Err(AnchorError::CidDoesNotFit { len: 68, .. })
        ));
        // dag-json's codec 0x0129 takes two varint bytes.
        let sha256 = cid::multihash::Multihash::<64>::wrap(0x12, &[9; 32]).unwrap();
        assert!(matches!(
            AnchorPayload::for_cid(&Cid::new_v1(0x0129, sha256)),
            Err(AnchorError::CidDoesNotFit { len: 37, .. })
        ));
    }

    #[test]
    fn bad_payloads_are_rejected() {
        assert_eq!(
            AnchorPayload::from_bytes(&[0; 39]),
            Err(AnchorError::PayloadLength { len: 39 })
        );
        let mut bytes = [0u8; 40];
        bytes[..4].copy_from_slice(b"SGX\x01");
        assert!(matches!(
            AnchorPayload::from_bytes(&bytes),
            Err(AnchorError::UnknownTag { .. })
        ));
        bytes[..4].copy_from_slice(&TAG_BATCH_V1);
        assert_eq!(
            AnchorPayload::from_bytes(&bytes),
            Err(AnchorError::EmptyBatch)
        );
        bytes[..4].copy_from_slice(&TAG_CID_V1);
        assert!(matches!(
            AnchorPayload::from_bytes(&bytes),
            Err(AnchorError::InvalidPayloadCid { .. })
        ));
        // A CIDv0 body (0x12 0x20 + 32 bytes) is 34 bytes and never a valid body.
        let v0: Cid = V0.parse().unwrap();
        bytes[4..38].copy_from_slice(&v0.to_bytes());
        assert!(AnchorPayload::from_bytes(&bytes).is_err());
    }

    #[test]
    fn non_canonical_cids_are_rejected() {
        // Found by fuzzing: a ten-byte codec varint whose last byte overflows u64 decodes, but
        // re-encodes differently.
        let bytes = [
            83, 71, 67, 1, 1, 255, 255, 255, 246, 255, 255, 255, 255, 255, 17, 255, 255, 255, 42,
            20, 21, 25, 255, 100, 73, 173, 255, 100, 250, 255, 255, 173, 255, 255, 78, 116, 40,
            141, 188, 71,
        ];
        assert!(matches!(
            AnchorPayload::from_bytes(&bytes),
            Err(AnchorError::InvalidPayloadCid { .. })
        ));
    }

    #[test]
    fn script_form_is_exact() {
        let payload = AnchorPayload::Batch {
            root: [7; 32],
            size: 1000,
        };
        let script = payload.script_pubkey();
        assert_eq!(script.len(), 42);
        assert!(script.is_op_return());
        assert_eq!(AnchorPayload::from_script(&script), Some(payload));
        // The same bytes behind a non-minimal push are not a payload.
        let mut other = vec![0x6a, 0x4c, 40];
        other.extend_from_slice(&payload.to_bytes());
        assert_eq!(
            AnchorPayload::from_script(bitcoin::Script::from_bytes(&other)),
            None
        );
    }

    proptest! {
        #[test]
        fn batch_payload_round_trips(root in any::<[u8; 32]>(), size in 1u32..) {
            let payload = AnchorPayload::Batch { root, size };
            prop_assert_eq!(AnchorPayload::from_bytes(&payload.to_bytes()), Ok(payload));
            prop_assert_eq!(AnchorPayload::from_script(&payload.script_pubkey()), Some(payload));
        }

        #[test]
        fn cid_payload_round_trips(digest in any::<[u8; 32]>(), codec in prop::sample::select(vec![0x55u64, 0x70, 0x71, 0x72])) {
            let hash = cid::multihash::Multihash::<64>::wrap(0x12, &digest).unwrap();
            let cid = Cid::new_v1(codec, hash);
            let payload = AnchorPayload::for_cid(&cid).unwrap();
            prop_assert_eq!(AnchorPayload::from_bytes(&payload.to_bytes()), Ok(payload));
        }

        #[test]
        fn decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(payload) = AnchorPayload::from_bytes(&bytes) {
                prop_assert_eq!(payload.to_bytes().to_vec(), bytes);
            }
        }
    }
}

//! IPLD documents in the codecs Kubo's `dag` commands read and write (dag-json, dag-cbor, dag-pb,
//! raw): one data model ([`Ipld`]) in between, so any of them converts to any other as Kubo's
//! go-ipld-prime converts them.
//!
//! dag-json as go-ipld-prime writes it: no whitespace, map keys sorted bytewise, links as
//! `{"/": "<cid>"}`, bytes as `{"/": {"bytes": "<base64, unpadded>"}}`; integers have no `.` or
//! exponent, everything else is a float. dag-cbor sorts keys length-first (serde_ipld_dagcbor).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
pub use ipld_core::ipld::Ipld;
use serde_json::{Map, Number, Value};
use thiserror::Error;

use crate::{Cid, Codec};

/// A document that cannot be read or written in a codec.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IpldError {
    /// The bytes are not a valid document of the codec.
    #[error("decoding {codec}: {reason}")]
    Decode { codec: &'static str, reason: String },
    /// The document has something the codec cannot hold.
    #[error("encoding {codec}: {reason}")]
    Encode { codec: &'static str, reason: String },
}

fn decode_err(codec: Codec, reason: impl std::fmt::Display) -> IpldError {
    IpldError::Decode {
        codec: codec.name(),
        reason: reason.to_string(),
    }
}

fn encode_err(codec: Codec, reason: impl std::fmt::Display) -> IpldError {
    IpldError::Encode {
        codec: codec.name(),
        reason: reason.to_string(),
    }
}

/// Reads `bytes` as a document of `codec`.
///
/// # Errors
/// [`IpldError::Decode`] when they are not one (libp2p-key is not a document codec).
pub fn decode(codec: Codec, bytes: &[u8]) -> Result<Ipld, IpldError> {
    match codec {
        Codec::Raw => Ok(Ipld::Bytes(bytes.to_vec())),
        Codec::DagCbor => serde_ipld_dagcbor::from_slice(bytes).map_err(|e| decode_err(codec, e)),
        Codec::DagPb => ipld_dagpb::to_ipld(bytes).map_err(|e| decode_err(codec, e)),
        Codec::DagJson => {
            let value: Value = serde_json::from_slice(bytes).map_err(|e| decode_err(codec, e))?;
            from_json(value).map_err(|e| decode_err(codec, e))
        }
        Codec::Libp2pKey => Err(decode_err(codec, "not a document codec")),
    }
}

/// Writes `ipld` in `codec`.
///
/// # Errors
/// [`IpldError::Encode`] when the codec cannot hold it (raw holds only bytes, dag-pb only its
/// own shape, dag-json no NaN or infinity).
pub fn encode(codec: Codec, ipld: &Ipld) -> Result<Vec<u8>, IpldError> {
    match codec {
        Codec::Raw => match ipld {
            Ipld::Bytes(b) => Ok(b.clone()),
            other => Err(encode_err(
                codec,
                format!("only bytes can be raw, not {}", kind(other)),
            )),
        },
        Codec::DagCbor => serde_ipld_dagcbor::to_vec(ipld).map_err(|e| encode_err(codec, e)),
        Codec::DagPb => ipld_dagpb::from_ipld(ipld).map_err(|e| encode_err(codec, e)),
        Codec::DagJson => {
            let value = to_json(ipld).map_err(|e| encode_err(codec, e))?;
            serde_json::to_vec(&value).map_err(|e| encode_err(codec, e))
        }
        Codec::Libp2pKey => Err(encode_err(codec, "not a document codec")),
    }
}

/// The data model kind of `ipld`, as go-ipld-prime names it.
pub fn kind(ipld: &Ipld) -> &'static str {
    match ipld {
        Ipld::Null => "null",
        Ipld::Bool(_) => "bool",
        Ipld::Integer(_) => "int",
        Ipld::Float(_) => "float",
        Ipld::String(_) => "string",
        Ipld::Bytes(_) => "bytes",
        Ipld::List(_) => "list",
        Ipld::Map(_) => "map",
        Ipld::Link(_) => "link",
    }
}

/// The one value under `"/"` of a map that has only that key: a link or bytes in dag-json.
fn slash_only(map: &Map<String, Value>) -> Option<&Value> {
    match (map.len(), map.get("/")) {
        (1, Some(v)) => Some(v),
        _ => None,
    }
}

fn from_json(value: Value) -> Result<Ipld, String> {
    Ok(match value {
        Value::Null => Ipld::Null,
        Value::Bool(b) => Ipld::Bool(b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Ipld::Integer(i.into()),
            (None, Some(u), _) => Ipld::Integer(u.into()),
            (None, None, Some(f)) => Ipld::Float(f),
            _ => return Err(format!("number {n} is out of range")),
        },
        Value::String(s) => Ipld::String(s),
        Value::Array(items) => {
            Ipld::List(items.into_iter().map(from_json).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => match slash_only(&map) {
            Some(Value::String(cid)) => Ipld::Link(
                cid.parse::<Cid>()
                    .map_err(|e| format!("link {cid:?}: {e}"))?,
            ),
            Some(Value::Object(inner)) => match (inner.len(), inner.get("bytes")) {
                (1, Some(Value::String(b64))) => Ipld::Bytes(
                    STANDARD_NO_PAD
                        .decode(b64)
                        .map_err(|e| format!("bytes {b64:?}: {e}"))?,
                ),
                _ => return Err("a map under \"/\" must be {\"bytes\": \"<base64>\"}".into()),
            },
            Some(other) => return Err(format!("\"/\" must be a link or bytes, not {other}")),
            None => Ipld::Map(
                map.into_iter()
                    .map(|(k, v)| Ok((k, from_json(v)?)))
                    .collect::<Result<BTreeMap<_, _>, String>>()?,
            ),
        },
    })
}

fn to_json(ipld: &Ipld) -> Result<Value, String> {
    let slash = |v: Value| Value::Object(Map::from_iter([("/".to_owned(), v)]));
    Ok(match ipld {
        Ipld::Null => Value::Null,
        Ipld::Bool(b) => Value::Bool(*b),
        Ipld::Integer(i) => {
            if let Ok(i) = i64::try_from(*i) {
                Value::from(i)
            } else if let Ok(u) = u64::try_from(*i) {
                Value::from(u)
            } else {
                return Err(format!("integer {i} is out of range"));
            }
        }
        Ipld::Float(f) => Value::Number(
            Number::from_f64(*f).ok_or_else(|| format!("float {f} has no JSON form"))?,
        ),
        Ipld::String(s) => Value::String(s.clone()),
        Ipld::Bytes(b) => slash(Value::Object(Map::from_iter([(
            "bytes".to_owned(),
            Value::String(STANDARD_NO_PAD.encode(b)),
        )]))),
        Ipld::List(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        // serde_json's map keeps keys sorted bytewise, as dag-json wants them.
        Ipld::Map(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v)?)))
                .collect::<Result<Map<_, _>, String>>()?,
        ),
        Ipld::Link(cid) => slash(Value::String(cid.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Block, HashCode, Version};

    const DOC: &str =
        r#"{"aa":[1,-2,1.5,null,true],"b":{"/":"bafkqaaa"},"c":{"/":{"bytes":"aGk"}},"s":"x"}"#;

    #[test]
    fn dag_json_round_trips_in_canonical_form() {
        let doc = decode(Codec::DagJson, DOC.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(encode(Codec::DagJson, &doc).unwrap()).unwrap(),
            DOC
        );
        let Ipld::Map(map) = &doc else {
            panic!("{doc:?}")
        };
        assert_eq!(map["c"], Ipld::Bytes(b"hi".to_vec()));
        assert!(matches!(map["b"], Ipld::Link(_)));
        // Whitespace and key order of the input do not matter.
        let loose = r#"{ "s": "x", "c": {"/": {"bytes": "aGk"}}, "b": {"/": "bafkqaaa"},
            "aa": [1, -2, 1.5, null, true] }"#;
        assert_eq!(decode(Codec::DagJson, loose.as_bytes()).unwrap(), doc);
    }

    #[test]
    fn dag_cbor_sorts_keys_length_first() {
        let doc = decode(Codec::DagJson, DOC.as_bytes()).unwrap();
        let cbor = encode(Codec::DagCbor, &doc).unwrap();
        // "b" (1 byte) before "aa" (2 bytes).
        let b = cbor.windows(2).position(|w| w == [0x61, b'b']).unwrap();
        let aa = cbor
            .windows(3)
            .position(|w| w == [0x62, b'a', b'a'])
            .unwrap();
        assert!(b < aa, "{cbor:x?}");
        assert_eq!(decode(Codec::DagCbor, &cbor).unwrap(), doc);
    }

    #[test]
    fn dag_pb_reads_as_kubo_shows_it() {
        let leaf =
            Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, b"x".to_vec()).unwrap();
        let node = crate::PbNode {
            links: vec![crate::PbLink {
                cid: *leaf.cid(),
                name: Some("a".into()),
                tsize: Some(1),
            }],
            data: Some(bytes::Bytes::from_static(&[8, 1])),
        };
        let encoded = node.encode();
        let doc = decode(Codec::DagPb, &encoded).unwrap();
        let json = String::from_utf8(encode(Codec::DagJson, &doc).unwrap()).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"Data":{{"/":{{"bytes":"CAE"}}}},"Links":[{{"Hash":{{"/":"{}"}},"Name":"a","Tsize":1}}]}}"#,
                leaf.cid()
            )
        );
        assert_eq!(encode(Codec::DagPb, &doc).unwrap(), encoded);
    }

    #[test]
    fn bad_documents_are_refused() {
        for bad in [
            "{",
            r#"{"/":"notacid"}"#,
            r#"{"/":{"bytes":"!!"}}"#,
            r#"{"/":{"bytes":"aGk","x":1}}"#,
            r#"{"/":5}"#,
        ] {
            assert!(decode(Codec::DagJson, bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(decode(Codec::DagCbor, &[0xff]).is_err());
        assert!(encode(Codec::Raw, &Ipld::Null).is_err());
        assert!(encode(Codec::DagJson, &Ipld::Float(f64::NAN)).is_err());
        assert!(encode(Codec::DagPb, &Ipld::String("x".into())).is_err());
    }
}

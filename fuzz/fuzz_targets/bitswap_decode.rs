//! Bitswap message decoding: never panics; whatever decodes re-encodes (1.1.0/1.2.0 framing) to
//! a message that decodes the same, within the same size limit; every block either hashes to a
//! CID under its prefix or is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stargate_protocol::Bytes;
use stargate_protocol::bitswap::{MAX_MESSAGE_SIZE, Message, ProtocolVersion};

fuzz_target!(|data: &[u8]| {
    let Ok(decoded) = Message::decode(&Bytes::copy_from_slice(data)) else {
        return;
    };
    let framed = decoded.encode_framed(ProtocolVersion::V120);
    let (len, body) = unsigned_varint::decode::usize(&framed).expect("a valid length prefix");
    assert_eq!(len, body.len());
    assert_eq!(len, decoded.encoded_len(ProtocolVersion::V120));
    let again = Message::decode(&Bytes::copy_from_slice(body)).expect("a re-encoded message decodes");
    assert_eq!(again, decoded);
    if let Ok(pieces) = decoded.clone().split(ProtocolVersion::V120, MAX_MESSAGE_SIZE) {
        for piece in pieces {
            assert!(piece.encoded_len(ProtocolVersion::V120) <= MAX_MESSAGE_SIZE);
        }
    }
    for payload in decoded.payload {
        if let Ok(block) = payload.clone().into_block() {
            assert_eq!(block.data(), &payload.data);
        }
    }
});

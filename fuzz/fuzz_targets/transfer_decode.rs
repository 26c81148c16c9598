//! Transfer request and response decoding: never panics; whatever decodes re-encodes to the
//! same bytes (one encoding per message) within the size limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stargate_protocol::transfer::{
    MAX_REQUEST_SIZE, MAX_RESPONSE_SIZE, TransferRequest, TransferResponse,
};

fn body(framed: &[u8]) -> &[u8] {
    let (len, body) = unsigned_varint::decode::usize(framed).expect("a valid length prefix");
    assert_eq!(len, body.len());
    body
}

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = TransferRequest::decode(data) {
        let framed = request.encode();
        assert_eq!(body(&framed), data);
        assert!(data.len() <= MAX_REQUEST_SIZE);
    }
    if let Ok(response) = TransferResponse::decode(data) {
        let framed = response.encode();
        assert_eq!(body(&framed), data);
        assert!(data.len() <= MAX_RESPONSE_SIZE);
    }
});

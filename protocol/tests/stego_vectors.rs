//! Checks the stego callback signature against `tests/vectors/stego-callback-v1.json`, computed
//! with Python's `hmac` independently of this crate, and that docs/stego-callback.md shows the
//! same signatures.

use serde_json::Value;
use stargate_protocol::stego::signature::CallbackSecret;
use stargate_protocol::stego::{Callback, Verdict};

#[test]
fn signatures_match_the_vectors_and_the_document() {
    let vectors: Value =
        serde_json::from_str(include_str!("vectors/stego-callback-v1.json")).unwrap();
    let document = include_str!("../../docs/stego-callback.md");
    let vectors = vectors["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 3);
    for v in vectors {
        let secret = CallbackSecret::new(v["secret"].as_str().unwrap().as_bytes()).unwrap();
        let timestamp = v["timestamp"].as_str().unwrap();
        let body = v["body"].as_str().unwrap().as_bytes();
        let signature = v["signature"].as_str().unwrap();
        assert_eq!(secret.sign(timestamp, body), signature);
        let now: u64 = timestamp.parse().unwrap();
        let checked = secret
            .verify(Some(timestamp), Some(signature), body, now + 299)
            .unwrap();
        assert_eq!(checked.timestamp, now);
        assert!(
            document.contains(signature),
            "{signature} is not in the document"
        );
        assert!(document.contains(timestamp));
        // Every vector is a body the node accepts.
        Callback::decode(body).unwrap();
    }
    let verdicts: Vec<Verdict> = vectors
        .iter()
        .map(|v| {
            Callback::decode(v["body"].as_str().unwrap().as_bytes())
                .unwrap()
                .verdict
        })
        .collect();
    assert!(verdicts.contains(&Verdict::Approved) && verdicts.contains(&Verdict::Rejected));
}

//! How the platform's stego callback is authenticated: HMAC-SHA256 under the shared callback
//! secret (the guide's `starlight-stego-callback-secret`) over `<timestamp>.<raw body>`, with
//!
//! - [`TIMESTAMP_HEADER`]: the Unix time in seconds when the platform signed, decimal digits;
//! - [`SIGNATURE_HEADER`]: `sha256=` and the 64 hex digits of the HMAC.
//!
//! A timestamp more than [`REPLAY_WINDOW_SECS`] from the node's clock (either way) is stale. A
//! signature seen before within the window is a replay; remembering them is the caller's part
//! (the node keeps them in its store, so that a restart does not reopen the window).
//! docs/stego-callback.md is the platform's side of this, with test vectors checked here.

use std::fmt;

use ring::hmac;
use thiserror::Error;

/// The header with the signing time, Unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Stargate-Timestamp";
/// The header with `sha256=<hex HMAC>`.
pub const SIGNATURE_HEADER: &str = "X-Stargate-Signature";
/// How far a callback's timestamp may be from the node's clock, and how long its signature is
/// remembered against replays.
pub const REPLAY_WINDOW_SECS: u64 = 300;

const SCHEME: &str = "sha256=";
/// Longest timestamp header read: `u64::MAX` has 20 digits.
const MAX_TIMESTAMP_DIGITS: usize = 20;

/// The callback secret, as an HMAC key. Its Debug output never shows it.
#[derive(Clone)]
pub struct CallbackSecret(hmac::Key);

impl fmt::Debug for CallbackSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackSecret(<redacted>)")
    }
}

/// A callback signature that checked out: what the replay cache remembers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// The signing time from the header.
    pub timestamp: u64,
    /// The HMAC.
    pub tag: [u8; 32],
}

/// Why a callback's signature was refused (answered 401). [`SignatureError::reason`] is its
/// metric label.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("{TIMESTAMP_HEADER} is not a Unix time in seconds")]
    BadTimestamp,
    #[error(
        "{TIMESTAMP_HEADER} {timestamp} is more than {REPLAY_WINDOW_SECS} s from this node's clock ({now})"
    )]
    Stale { timestamp: u64, now: u64 },
    #[error("{SIGNATURE_HEADER} is not sha256= and 64 hex digits")]
    Malformed,
    #[error("{SIGNATURE_HEADER} does not match the body and timestamp")]
    Mismatch,
}

impl SignatureError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing(_) => "missing_signature",
            Self::BadTimestamp => "bad_timestamp",
            Self::Stale { .. } => "stale",
            Self::Malformed => "malformed_signature",
            Self::Mismatch => "bad_signature",
        }
    }
}

impl CallbackSecret {
    /// The secret from its bytes; `None` for an empty one, which would authenticate anyone.
    pub fn new(secret: &[u8]) -> Option<Self> {
        (!secret.is_empty()).then(|| Self(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }

    /// The [`SIGNATURE_HEADER`] value for `body` sent with [`TIMESTAMP_HEADER`] `timestamp`.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let tag = hmac::sign(&self.0, &signed_bytes(timestamp, body));
        format!("{SCHEME}{}", hex::encode(tag.as_ref()))
    }

    /// Checks the two headers' values against `body` at Unix time `now`: format, freshness,
    /// then the HMAC, compared in constant time.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> Result<Signature, SignatureError> {
        let timestamp_text = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
        let signature = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
        let timestamp = parse_timestamp(timestamp_text)?;
        let tag = parse_signature(signature)?;
        if timestamp.abs_diff(now) > REPLAY_WINDOW_SECS {
            return Err(SignatureError::Stale { timestamp, now });
        }
        hmac::verify(&self.0, &signed_bytes(timestamp_text, body), &tag)
            .map_err(|_| SignatureError::Mismatch)?;
        Ok(Signature { timestamp, tag })
    }
}

fn signed_bytes(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(timestamp.len() + 1 + body.len());
    bytes.extend_from_slice(timestamp.as_bytes());
    bytes.push(b'.');
    bytes.extend_from_slice(body);
    bytes
}

fn parse_timestamp(text: &str) -> Result<u64, SignatureError> {
    if text.is_empty()
        || text.len() > MAX_TIMESTAMP_DIGITS
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(SignatureError::BadTimestamp);
    }
    text.parse().map_err(|_| SignatureError::BadTimestamp)
}

fn parse_signature(text: &str) -> Result<[u8; 32], SignatureError> {
    let hex_digits = text.strip_prefix(SCHEME).ok_or(SignatureError::Malformed)?;
    let mut tag = [0u8; 32];
    hex::decode_to_slice(hex_digits, &mut tag).map_err(|_| SignatureError::Malformed)?;
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: u64 = 1_767_225_600;

    fn secret() -> CallbackSecret {
        CallbackSecret::new(b"test-secret").unwrap()
    }

    #[test]
    fn a_signature_made_here_verifies() {
        let body = br#"{"verdict":"approved"}"#;
        let ts = NOW.to_string();
        let sig = secret().sign(&ts, body);
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        let ok = secret()
            .verify(Some(&ts), Some(&sig), body, NOW + 10)
            .unwrap();
        assert_eq!(ok.timestamp, NOW);
        assert_eq!(hex::encode(ok.tag), sig[7..]);
        let upper = format!("sha256={}", sig[7..].to_uppercase());
        assert!(secret().verify(Some(&ts), Some(&upper), body, NOW).is_ok());
    }

    #[test]
    fn refuses_each_kind_of_bad_signature() {
        let body = b"{}";
        let ts = NOW.to_string();
        let sig = secret().sign(&ts, body);
        let other = CallbackSecret::new(b"other").unwrap().sign(&ts, body);
        let old = (NOW - 301).to_string();
        let old_sig = secret().sign(&old, body);
        let future = (NOW + 301).to_string();
        let future_sig = secret().sign(&future, body);
        type Case<'a> = (Option<&'a str>, Option<&'a str>, &'a [u8], &'a str);
        let cases: [Case; 10] = [
            (None, Some(&sig), body, "missing_signature"),
            (Some(&ts), None, body, "missing_signature"),
            (Some("-5"), Some(&sig), body, "bad_timestamp"),
            (Some(""), Some(&sig), body, "bad_timestamp"),
            (Some("1e9"), Some(&sig), body, "bad_timestamp"),
            (Some(&old), Some(&old_sig), body, "stale"),
            (Some(&future), Some(&future_sig), body, "stale"),
            (Some(&ts), Some(&sig[7..]), body, "malformed_signature"),
            (Some(&ts), Some(&other), body, "bad_signature"),
            (Some(&ts), Some(&sig), b"{ }", "bad_signature"),
        ];
        for (ts, sig, body, reason) in cases {
            let err = secret().verify(ts, sig, body, NOW).unwrap_err();
            assert_eq!(err.reason(), reason, "{ts:?} {sig:?}: {err}");
        }
        // The timestamp is signed too: the same signature under another time fails.
        let later = (NOW + 1).to_string();
        assert_eq!(
            secret().verify(Some(&later), Some(&sig), body, NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_empty_secret_is_no_secret_and_debug_hides_it() {
        assert!(CallbackSecret::new(b"").is_none());
        assert_eq!(format!("{:?}", secret()), "CallbackSecret(<redacted>)");
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(
            key in proptest::collection::vec(any::<u8>(), 1..80),
            body in proptest::collection::vec(any::<u8>(), 0..512),
            skew in 0..=REPLAY_WINDOW_SECS,
        ) {
            let secret = CallbackSecret::new(&key).unwrap();
            let ts = NOW.to_string();
            let sig = secret.sign(&ts, &body);
            prop_assert!(secret.verify(Some(&ts), Some(&sig), &body, NOW + skew).is_ok());
            prop_assert!(secret.verify(Some(&ts), Some(&sig), &body, NOW - skew).is_ok());
        }

        #[test]
        fn verifying_any_headers_never_panics(ts in ".{0,30}", sig in ".{0,80}") {
            let _ = secret().verify(Some(&ts), Some(&sig), b"{}", NOW);
        }
    }
}

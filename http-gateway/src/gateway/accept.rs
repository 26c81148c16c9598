//! Choosing the response format from an `Accept` header (RFC 9110 §12.5.1, with the CAR
//! parameters of IPIP-412).

use axum::http::HeaderValue;
use mime_guess::mime::Mime;

use super::error::GatewayError;
use super::format::Format;

const RAW: &str = "application/vnd.ipld.raw";
const CAR: &str = "application/vnd.ipld.car";

/// Types the path gateway spec names that this gateway does not produce.
const UNSUPPORTED: &[&str] = &[
    "application/x-tar",
    "application/vnd.ipld.dag-json",
    "application/vnd.ipld.dag-cbor",
    "application/json",
    "application/cbor",
    "application/vnd.ipfs.ipns-record",
];

/// The most preferred format we produce among those `Accept` lists: `Some(Raw | Car)` when a
/// trustless type wins, `None` for the deserialized content (any other type, `*/*`, or nothing
/// usable in the header).
///
/// # Errors
/// [`GatewayError::NotAcceptable`] when the header lists only types (or CAR variants) we do not
/// produce.
pub(crate) fn negotiate(accept: &HeaderValue) -> Result<Option<Format>, GatewayError> {
    let Ok(text) = accept.to_str() else {
        return Ok(None);
    };
    let mut ranges: Vec<(f32, Mime)> = text
        .split(',')
        .filter_map(|part| part.trim().parse::<Mime>().ok())
        .map(|m| (quality(&m), m))
        .filter(|(q, _)| *q > 0.0)
        .collect();
    // Stable: among equal weights the header's order decides.
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut refused = Vec::new();
    for (_, mime) in &ranges {
        match mime.essence_str() {
            RAW => return Ok(Some(Format::Raw)),
            CAR if car_params_supported(mime) => return Ok(Some(Format::Car)),
            CAR => refused.push(mime.to_string()),
            t if UNSUPPORTED.contains(&t) => refused.push(t.to_owned()),
            _ => return Ok(None),
        }
    }
    if refused.is_empty() {
        return Ok(None);
    }
    Err(GatewayError::NotAcceptable(format!(
        "none of the accepted types can be produced ({}): this gateway serves \
         {RAW}, {CAR}; version=1; order=dfs; dups=n, and the content itself",
        refused.join(", ")
    )))
}

fn quality(mime: &Mime) -> f32 {
    mime.get_param("q")
        .and_then(|q| q.as_str().parse::<f32>().ok())
        .filter(|q| (0.0..=1.0).contains(q))
        .unwrap_or(1.0)
}

/// What we send: CARv1, depth-first, each block once (`order=unk` leaves the order to us).
fn car_params_supported(mime: &Mime) -> bool {
    let is = |name: &str, allowed: &[&str]| {
        mime.get_param(name)
            .is_none_or(|v| allowed.contains(&v.as_str()))
    };
    is("version", &["1"]) && is("order", &["dfs", "unk"]) && is("dups", &["n"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(accept: &str) -> Result<Option<Format>, GatewayError> {
        negotiate(&HeaderValue::from_str(accept).unwrap())
    }

    #[test]
    fn trustless_types_win_when_preferred() {
        assert_eq!(pick(RAW).unwrap(), Some(Format::Raw));
        assert_eq!(pick(CAR).unwrap(), Some(Format::Car));
        assert_eq!(
            pick("application/vnd.ipld.car; version=1; order=dfs; dups=n").unwrap(),
            Some(Format::Car)
        );
        assert_eq!(
            pick("text/html;q=0.5, application/vnd.ipld.raw").unwrap(),
            Some(Format::Raw)
        );
        assert_eq!(pick("*/*, application/vnd.ipld.raw").unwrap(), None);
        assert_eq!(
            pick("text/html,application/xhtml+xml,*/*;q=0.8").unwrap(),
            None
        );
        assert_eq!(pick("").unwrap(), None);
        assert_eq!(pick("garbage;;;").unwrap(), None);
    }

    #[test]
    fn unsupported_variants_fall_through_or_are_refused() {
        // dups=y is not produced; the next preference is.
        assert_eq!(
            pick("application/vnd.ipld.car; dups=y, application/vnd.ipld.car; dups=n; q=0.5")
                .unwrap(),
            Some(Format::Car)
        );
        for only in [
            "application/vnd.ipld.car; version=2",
            "application/vnd.ipld.car; order=foo",
            "application/vnd.ipld.car; dups=y",
            "application/vnd.ipld.dag-json",
            "application/x-tar",
            "application/vnd.ipfs.ipns-record, application/vnd.ipld.car;q=0",
        ] {
            assert!(
                matches!(pick(only), Err(GatewayError::NotAcceptable(_))),
                "{only}"
            );
        }
        assert_eq!(
            pick("application/vnd.ipld.dag-json, text/plain;q=0.1").unwrap(),
            None
        );
    }
}

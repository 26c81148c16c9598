//! Kubo's query arguments: positional `arg`s, named options, and the options every command
//! takes (Kubo's root options).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use multibase::Base;
use stargate_protocol::unixfs::export::BlockSource;
use stargate_protocol::{Cid, Version};

use super::error::RpcError;
use crate::AppState;

/// Longest query string we parse.
const MAX_QUERY: usize = 64 * 1024;

/// Options Kubo's root command gives every command. Those that change an answer are acted on
/// (`encoding`, `cid-base`, `upgrade-cidv0-in-output`, `offline`/`local`, and `timeout` in
/// [`super::deadline`]); the rest only matter to Kubo's own CLI before it sends a request.
const GLOBAL: &[&str] = &[
    "arg",
    "encoding",
    "stream-channels",
    "timeout",
    "offline",
    "local",
    "cid-base",
    "upgrade-cidv0-in-output",
    "repo-dir",
    "config-file",
    "config",
    "debug",
    "help",
    "api",
    "api-auth",
    // kubo-rpc-client puts its per-call HTTP options (`HTTPRPCOptions`) in the query of every
    // call; Kubo ignores them where they are not the command's own, and so do we.
    "headers",
    "verbose",
];

/// The parsed query of an RPC call, and whether its client reads trailers.
#[derive(Debug, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
    trailers: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = RpcError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, RpcError> {
        let query = parts.uri.query().unwrap_or("");
        if query.len() > MAX_QUERY {
            return Err(RpcError::client("query string too long"));
        }
        Ok(Self {
            pairs: form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            trailers: accepts_trailers(&parts.headers),
        })
    }
}

/// Whether the request says `TE: trailers`: only then may an HTTP/1.1 answer end with trailer
/// fields the client needs (RFC 9110 section 6.5.1), and only then does hyper send them.
fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

impl Params {
    /// Every positional argument, in order.
    pub(crate) fn args(&self) -> Vec<&str> {
        self.values("arg").collect()
    }

    /// At least one positional argument.
    pub(crate) fn required_args(&self) -> Result<Vec<&str>, RpcError> {
        let args = self.args();
        if args.is_empty() {
            return Err(RpcError::client("argument \"arg\" is required"));
        }
        Ok(args)
    }

    /// Exactly one positional argument.
    pub(crate) fn one_arg(&self) -> Result<&str, RpcError> {
        match self.args().as_slice() {
            [one] => Ok(one),
            [] => Err(RpcError::client("argument \"arg\" is required")),
            _ => Err(RpcError::client("expected exactly one argument")),
        }
    }

    pub(crate) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The last value of option `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean option: absent gives `default`; present and empty, `true`, `1` mean true.
    pub(crate) fn flag(&self, name: &str, default: bool) -> Result<bool, RpcError> {
        match self.get(name) {
            None => Ok(default),
            Some("" | "true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(RpcError::client(format!(
                "option {name:?}: {other:?} is not a boolean"
            ))),
        }
    }

    /// A numeric option.
    pub(crate) fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, RpcError> {
        self.get(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    RpcError::client(format!("option {name:?}: {v:?} is not a valid number"))
                })
            })
            .transpose()
    }

    /// Fails on an option neither this command nor Kubo's root command has (a typo must not be
    /// ignored silently), and on a root option whose value we cannot honour.
    pub(crate) fn only(&self, known: &[&str]) -> Result<(), RpcError> {
        if let Some((k, _)) = self
            .pairs
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()) && !GLOBAL.contains(&k.as_str()))
        {
            return Err(RpcError::client(format!("unknown option {k:?}")));
        }
        // Kubo's text and XML encodings are for its own CLI; JSON is what its API answers.
        if let Some(enc) = self
            .get("encoding")
            .filter(|e| !e.eq_ignore_ascii_case("json"))
        {
            return Err(RpcError::client(format!(
                "encoding {enc:?} is not supported: this API answers in JSON"
            )));
        }
        self.cid_base()?;
        self.flag("upgrade-cidv0-in-output", false)?;
        self.offline()?;
        Ok(())
    }

    /// Whether the command must not reach the network (`offline`, or the deprecated `local`).
    pub(crate) fn offline(&self) -> Result<bool, RpcError> {
        Ok(self.flag("offline", false)? || self.flag("local", false)?)
    }

    /// Where the command reads content: the store and, in a daemon, the network; only the
    /// store when the call says `offline` (Kubo's words for a block it then lacks: not found).
    pub(crate) fn block_source(&self, state: &AppState) -> Result<Arc<dyn BlockSource>, RpcError> {
        Ok(if self.offline()? {
            Arc::new(state.store().clone())
        } else {
            state.blocks_arc()
        })
    }

    /// Whether a failure after the answer started may go in an `X-Stream-Error` trailer.
    pub(crate) fn trailers(&self) -> bool {
        self.trailers
    }

    /// The multibase that `cid-base` names.
    fn cid_base(&self) -> Result<Option<Base>, RpcError> {
        let Some(name) = self.get("cid-base").filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        multibase_named(name)
            .map(Some)
            .ok_or_else(|| RpcError::client(format!("invalid cid-base {name:?}")))
    }

    /// `cid` as this call's answers show it: in the `cid-base` asked for (a CIDv0 becomes
    /// CIDv1 unless that base is base58btc), or upgraded to CIDv1 with
    /// `upgrade-cidv0-in-output`, or as it is.
    pub(crate) fn cid(&self, cid: &Cid) -> String {
        // Both options were checked by `only`.
        let base = self.cid_base().ok().flatten();
        let upgrade = self.flag("upgrade-cidv0-in-output", false).unwrap_or(false)
            || base.is_some_and(|b| b != Base::Base58Btc);
        let cid = match (cid.version(), upgrade) {
            (Version::V0, true) => Cid::new_v1(cid.codec(), *cid.hash()),
            _ => *cid,
        };
        match (cid.version(), base) {
            (Version::V1, Some(base)) => cid
                .to_string_of_base(base)
                .unwrap_or_else(|_| cid.to_string()),
            _ => cid.to_string(),
        }
    }
}

/// A multibase by its go-multibase name or its prefix character, as Kubo takes one.
pub(crate) fn multibase_named(name: &str) -> Option<Base> {
    let mut chars = name.chars();
    if let (Some(code), None) = (chars.next(), chars.next()) {
        return Base::from_code(code).ok();
    }
    Some(match name {
        "base2" => Base::Base2,
        "base8" => Base::Base8,
        "base10" => Base::Base10,
        "base16" => Base::Base16Lower,
        "base16upper" => Base::Base16Upper,
        "base32" => Base::Base32Lower,
        "base32upper" => Base::Base32Upper,
        "base32pad" => Base::Base32PadLower,
        "base32padupper" => Base::Base32PadUpper,
        "base32hex" => Base::Base32HexLower,
        "base32hexupper" => Base::Base32HexUpper,
        "base32hexpad" => Base::Base32HexPadLower,
        "base32hexpadupper" => Base::Base32HexPadUpper,
        "base32z" => Base::Base32Z,
        "base36" => Base::Base36Lower,
        "base36upper" => Base::Base36Upper,
        "base58flickr" => Base::Base58Flickr,
        "base58btc" => Base::Base58Btc,
        "base64" => Base::Base64,
        "base64pad" => Base::Base64Pad,
        "base64url" => Base::Base64Url,
        "base64urlpad" => Base::Base64UrlPad,
        "base256emoji" => Base::Base256Emoji,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params {
            pairs: form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            trailers: false,
        }
    }

    #[test]
    fn args_and_flags() {
        let p = params("arg=a&arg=b%2Fc&recursive=false&progress&cid-version=1");
        assert_eq!(p.args(), ["a", "b/c"]);
        assert!(!p.flag("recursive", true).unwrap());
        assert!(p.flag("progress", false).unwrap());
        assert!(p.flag("quiet", true).unwrap());
        assert_eq!(p.number::<u8>("cid-version").unwrap(), Some(1));
        assert!(p.one_arg().is_err());
        assert!(params("x=maybe").flag("x", false).is_err());
        assert!(params("cid-version=x").number::<u8>("cid-version").is_err());
        assert!(p.only(&["recursive", "progress"]).is_err());
        assert!(p.only(&["recursive", "progress", "cid-version"]).is_ok());
    }

    #[test]
    fn root_options() {
        let ok = "encoding=json&stream-channels=true&timeout=5s&offline=false&cid-base=base32";
        assert!(params(ok).only(&[]).is_ok());
        for bad in [
            "encoding=text",
            "cid-base=base99",
            "offline=perhaps",
            "upgrade-cidv0-in-output=x",
        ] {
            assert!(params(bad).only(&[]).is_err(), "{bad} accepted");
        }
        assert!(params("local=true").offline().unwrap());
    }

    #[test]
    fn cids_in_the_base_asked_for() {
        // The empty UnixFS directory.
        let v0: Cid = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
            .parse()
            .unwrap();
        let v1 = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354";
        assert_eq!(params("").cid(&v0), v0.to_string());
        assert_eq!(params("cid-base=base58btc").cid(&v0), v0.to_string());
        assert_eq!(params("upgrade-cidv0-in-output=true").cid(&v0), v1);
        assert_eq!(params("cid-base=base32").cid(&v0), v1);
        assert_eq!(params("cid-base=b").cid(&v0), v1);
        let v1: Cid = v1.parse().unwrap();
        assert!(params("cid-base=base36").cid(&v1).starts_with('k'));
        assert!(params("cid-base=z").cid(&v1).starts_with("zdj7"));
    }

    #[test]
    fn trailers_only_when_asked() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_trailers(&headers));
        headers.insert(header::TE, "gzip, Trailers".parse().unwrap());
        assert!(accepts_trailers(&headers));
    }
}

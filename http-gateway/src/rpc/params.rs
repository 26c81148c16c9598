//! Kubo's query arguments: positional `arg`s and named options.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::RpcError;

/// Longest query string we parse.
const MAX_QUERY: usize = 64 * 1024;

/// The parsed query of an RPC call.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = RpcError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, RpcError> {
        let query = parts.uri.query().unwrap_or("");
        if query.len() > MAX_QUERY {
            return Err(RpcError::client("query string too long"));
        }
        Ok(Self(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
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

    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The last value of option `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
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

    /// Fails on an option this command does not have (a typo must not be ignored silently).
    pub(crate) fn only(&self, known: &[&str]) -> Result<(), RpcError> {
        // Options every Kubo command accepts and that change nothing here.
        const GLOBAL: &[&str] = &["arg", "encoding", "stream-channels", "timeout", "offline"];
        match self
            .0
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()) && !GLOBAL.contains(&k.as_str()))
        {
            Some((k, _)) => Err(RpcError::client(format!("unknown option {k:?}"))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params(
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
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
}

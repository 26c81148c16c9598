//! The response formats of the gateway: the content itself, or one of the trustless types.

/// The response formats this gateway produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// File bytes, `index.html` or an HTML listing, chosen by what the path names.
    Deserialized,
    /// The single block at the end of the path (`application/vnd.ipld.raw`).
    Raw,
    /// A CARv1 of the path and the DAG below it (`application/vnd.ipld.car`).
    Car,
}

impl Format {
    /// The `format` query value naming this format.
    pub(crate) fn query_name(self) -> Option<&'static str> {
        match self {
            Self::Deserialized => None,
            Self::Raw => Some("raw"),
            Self::Car => Some("car"),
        }
    }
}

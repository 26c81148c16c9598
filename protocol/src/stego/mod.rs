//! Stego results: what the platform's approval callback says ([`Callback`]), how that callback
//! is authenticated ([`signature`]), and the announcement that tells other instances about an
//! approved stego image and its payload ([`StegoAnnouncement`]). Ingestion records are made from
//! these on every node; they are storage's business.

pub(crate) mod announcement;
mod callback;
pub mod signature;

pub use announcement::{STEGO_TYPE, StegoAnnouncement, StegoAnnouncementError, stego_id};
pub use callback::{Callback, CallbackError, Verdict};

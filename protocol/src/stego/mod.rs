//! Stego results: what the platform's approval callback says ([`Callback`]), how that callback
//! is authenticated ([`signature`]), and the announcement that tells other instances about an
//! approved stego image and its payload ([`StegoAnnouncement`]). Ingestion records are made from
//! these on every node; they are storage's business.

mod announcement;
mod callback;
pub mod signature;

pub use crate::mirror::{STEGO_TYPE, stego_id};
pub use announcement::{StegoAnnouncement, StegoAnnouncementError};
pub use callback::{Callback, CallbackError, Verdict};

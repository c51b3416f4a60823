//! Wire types, defined once with serde: HTTP bodies, WebSocket frames, NATS payloads.
//!
//! The contract's field names are the serde names here; renaming a field is a contract change.

pub mod api;
pub mod change;
pub mod events;
pub mod feed;
pub mod files;
pub mod frames;
pub mod manage;
pub mod message;
pub mod search;

pub use api::*;
pub use change::*;
pub use events::*;
pub use feed::*;
pub use files::*;
pub use frames::*;
pub use manage::*;
pub use message::*;
pub use search::*;

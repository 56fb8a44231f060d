//! Wire types. OpenAI Chat Completions is the canonical format.

#[macro_use]
pub(crate) mod extra;

pub mod anthropic;
pub mod chat;
pub mod error;
pub mod raw;
pub mod secret;
pub mod usage;

pub use chat::*;
pub use error::{ApiError, ErrorKind};
pub use raw::RawChatRequest;
pub use secret::Secret;
pub use usage::Usage;

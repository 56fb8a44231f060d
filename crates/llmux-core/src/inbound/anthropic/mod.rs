//! Anthropic's Messages API as a client speaks it (`POST /v1/messages`),
//! for deployments that are not Claude: Messages request → canonical,
//! canonical response or chunks → Messages response or events.

mod request;
mod response;
mod stream;
pub mod tokens;

pub use request::{Target, to_canonical};
pub use response::from_canonical;
pub use stream::MessagesEncoder;

#[cfg(test)]
mod fixtures;

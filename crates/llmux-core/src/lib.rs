//! llmux core: the canonical (OpenAI) types, provider translation, the model
//! catalog and cost. No I/O: usable without the server, testable with fixtures.

pub mod catalog;
pub mod cost;
pub mod deployment;
pub mod inbound;
pub mod json;
pub mod providers;
pub mod types;

pub use catalog::{Catalog, ModelEntry, ModelInfo};
pub use deployment::Deployment;
pub use providers::ProviderKind;
pub use types::{ApiError, Secret, Usage};

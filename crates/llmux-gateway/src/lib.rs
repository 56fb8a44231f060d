//! llmux gateway: configuration, routing, auth, transport and the HTTP
//! routes around the pure providers of `llmux-core`.

pub mod auth;
pub mod banner;
pub mod config;
pub mod credentials;
pub mod images;
pub mod keys;
pub mod metrics;
pub mod router;
pub mod router_sync;
pub mod routes;
pub mod server;
pub mod transport;

pub use config::{Config, ConfigError, Env};
pub use server::{ServeError, serve};

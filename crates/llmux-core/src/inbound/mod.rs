//! Client-facing formats other than the canonical one: a request in another
//! API's shape is translated to the canonical format, sent through any
//! provider, and the canonical answer translated back. One translation per
//! format, whatever the provider.

pub mod anthropic;

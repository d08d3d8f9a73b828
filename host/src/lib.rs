//! Sluice: a WebAssembly-extensible event host for the Casper network.
//!
//! The pipeline, in module order: [`source`] → [`store`] → [`plugins`] → [`bus`] → [`api`];
//! [`pipeline`] drives the middle three on one thread, [`backfill`] (after the store) fetches
//! what the streams did not bring, [`app`] wires them for `sluice run`.
//! [`watch`] hot-reloads plugins. [`event`], [`account`], [`config`] and [`rpc`] (a node's JSON-RPC)
//! are shared vocabulary; [`cli`], [`replay`], [`scaffold`] and [`harness`] sit beside, and, with
//! the `mock-nodes` feature (on by default), `mock_node` and `demo`.

#![warn(missing_docs)]

pub mod account;
pub mod api;
pub mod app;
pub mod backfill;
pub mod bus;
pub mod cli;
pub mod config;
#[cfg(feature = "mock-nodes")]
pub mod demo;
pub mod event;
pub mod harness;
#[cfg(feature = "mock-nodes")]
pub mod mock_node;
pub mod pipeline;
pub mod plugins;
pub mod replay;
pub mod rpc;
pub mod scaffold;
pub mod source;
pub mod store;
pub mod tail;
pub mod watch;

/// Make ring the process's TLS crypto provider (for https and wss sources, and every HTTP client
/// built with this crate's reqwest). Call once before building a client; later calls do nothing.
pub fn install_tls_provider() {
    _ = rustls::crypto::ring::default_provider().install_default();
}

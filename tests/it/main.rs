//! The end-to-end tests, one binary (one link of wasmtime and the host instead of one per file):
//! the real `sluice` binary, mocks of what we do not own, the plugins `cargo xtask` builds, and a
//! real database (SQLite, or PostgreSQL with `SLUICE_TEST_BACKEND=postgres`). What each module
//! covers is in the README's repository layout.

mod support;

mod ces_decoder;
mod cluster;
mod develop;
mod end_to_end;
mod history;
mod hostile;
mod nodes;
mod platform;
mod reload;
mod sdk;
mod serving;
mod stock_plugins;
mod streams;
mod subscriptions;

//! The Casper rules the Sluice host and its plugin SDK share (the host indexes and serves by
//! them; plugins built with the SDK read events by them), so a client naming an account one way
//! gets the same answer from both.

mod account;
mod contract_event;

pub use account::{account_hash, bare_hash, holder_key};
pub use contract_event::ContractEvent;

//! Stock plugin `transfers`: native CSPR transfers (2.x `transfers`, 1.x `WriteTransfer`
//! effects) indexed per account, sender and receiver alike.
//!
//! ```toml
//! [[plugins]]
//! name = "transfers"
//! path = "target/wasm32-wasip2/release/transfers.wasm"
//! ```
//!
//! `GET /plugins/transfers/accounts/{account}?limit=&cursor=`: the account's transfers, newest
//! first, for a public key or an `account-hash-…`: `{"data": [{transaction_hash, block_hash,
//! block_height, timestamp, from, to, source, target, amount, id, direction}], "next_cursor"}`.

use serde_json::json;
use sluice_plugin_sdk::casper::{CasperEvent, Processed, account_hash, bare_hash};
use sluice_plugin_sdk::{Event, Manifest, Plugin, Request, Response, storage};
use std::collections::HashMap;

/// Transfers by account: key `{account hash}.{newest-first sequence}.{index}`.
const BY_ACCOUNT: &str = "by_account";

#[derive(Default)]
struct Transfers {
    /// Heights of the blocks seen in this instance (a node sends a block before its
    /// transactions).
    heights: HashMap<String, u64>,
}

impl Plugin for Transfers {
    type Config = serde_json::Value;

    fn new(_config: serde_json::Value) -> Result<Self, String> {
        Ok(Transfers::default())
    }

    fn manifest(&self) -> Manifest {
        let kinds = ["BlockAdded", "TransactionProcessed", "DeployProcessed"];
        Manifest {
            decode: false,
            filter: false,
            index_kinds: kinds.map(String::from).to_vec(),
            routes: true,
            indexes: Vec::new(),
        }
    }

    fn index(&mut self, events: &[Event]) -> Result<(), String> {
        for event in events {
            match event.casper() {
                CasperEvent::BlockAdded(block) => {
                    if self.heights.len() > 10_000 {
                        self.heights.clear();
                    }
                    self.heights.insert(block.hash, block.height);
                }
                CasperEvent::Processed(processed) if processed.succeeded => self.record(event.sequence, &processed)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn handle(&mut self, request: Request) -> Response {
        let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
        let ("GET", ["accounts", account]) = (request.method.as_str(), segments.as_slice()) else {
            return Response::error(404, "not_found", "no such route: try GET /accounts/{account}");
        };
        let hash = match account_hash(account) {
            Ok(hash) => hash,
            Err(message) => return Response::error(400, "invalid_account", message),
        };
        match request.page_params(50) {
            Ok((cursor, limit)) => storage::page(BY_ACCOUNT, &format!("{hash}."), cursor.as_deref(), limit),
            Err(response) => response,
        }
    }
}

impl Transfers {
    fn record(&self, sequence: u64, processed: &Processed) -> Result<(), String> {
        for (index, transfer) in processed.transfers.iter().enumerate() {
            let record = |direction: &str| {
                json!({
                    "transaction_hash": processed.hash, "block_hash": processed.block_hash,
                    "block_height": self.heights.get(&processed.block_hash), "timestamp": processed.timestamp,
                    "from": transfer.from, "to": transfer.to, "source": transfer.source, "target": transfer.target,
                    "amount": transfer.amount, "id": transfer.id, "direction": direction,
                })
            };
            // Newest first in key order.
            let key = |account: &str| format!("{account}.{:020}.{index:04}", u64::MAX - sequence);
            let from = bare_hash(&transfer.from);
            storage::set(BY_ACCOUNT, &key(from), &record("out").to_string())?;
            if let Some(to) = transfer.to.as_deref().map(bare_hash).filter(|to| *to != from) {
                storage::set(BY_ACCOUNT, &key(to), &record("in").to_string())?;
            }
        }
        Ok(())
    }
}

sluice_plugin_sdk::export!(Transfers);

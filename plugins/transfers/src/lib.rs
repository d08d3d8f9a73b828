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

use sluice_plugin_sdk::prelude::*;
use std::collections::HashMap;

/// Transfers by account: key `{account hash}.{newest-first sequence}.{index}`.
const BY_ACCOUNT: Collection<serde_json::Value> = Collection::new("by_account");

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
        Manifest::new().indexing(["BlockAdded", "TransactionProcessed", "DeployProcessed"]).with_routes()
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
                CasperEvent::Processed(processed) if processed.succeeded => {
                    let height = self.heights.get(&processed.block_hash);
                    for (index, transfer) in processed.transfers.iter().enumerate() {
                        let record = |direction: &str| {
                            json!({
                                "transaction_hash": processed.hash, "block_hash": processed.block_hash,
                                "block_height": height, "timestamp": processed.timestamp, "from": transfer.from,
                                "to": transfer.to, "source": transfer.source, "target": transfer.target,
                                "amount": transfer.amount, "id": transfer.id, "direction": direction,
                            })
                        };
                        let key = |account: &str| format!("{account}.{}.{index:04}", newest_first(event.sequence));
                        let from = bare_hash(&transfer.from);
                        BY_ACCOUNT.set(&key(from), &record("out"))?;
                        if let Some(to) = transfer.to.as_deref().map(bare_hash).filter(|to| *to != from) {
                            BY_ACCOUNT.set(&key(to), &record("in"))?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn handle(&mut self, request: Request) -> Response {
        Router::new(&request)
            .get("/accounts/{account}", |p| {
                let hash = account_hash(&p["account"]).map_err(|m| Response::error(400, "invalid_account", m))?;
                Ok(BY_ACCOUNT.page(&request, &format!("{hash}.")))
            })
            .finish()
    }
}

sluice_plugin_sdk::export!(Transfers);

//! A contract event as this indexer reads it, from either shape Sluice stores: the stock CES
//! decoder's `{"ContractEvent": {…}}` or CSPR.cloud's `{"data": {…}, "extra": {…}}`. Typed
//! parsing skips what the indexer does not use (the raw bytes, …) without building it.

use serde::Deserialize;
use serde_json::Value;

/// The parts of a contract event the indexer uses.
#[derive(Deserialize)]
pub struct ContractEvent {
    /// Contract package hash (hex), when known.
    #[serde(rename = "contract_package_hash")]
    pub package: Option<String>,
    /// Contract hash (hex), when known.
    #[serde(rename = "contract_hash")]
    pub contract: Option<String>,
    /// Event name (`Transfer`, …).
    pub name: String,
    /// Decoded fields.
    pub data: Value,
    /// Its place among its transaction's events (the effect's index).
    #[serde(default, rename = "transform_id")]
    pub index: u64,
    /// The transaction or deploy (hex).
    #[serde(rename = "transaction_hash")]
    pub transaction: Option<String>,
    /// Its block's height, when known.
    pub block_height: Option<u64>,
    /// When the transaction was made.
    pub timestamp: Option<String>,
}

/// CSPR.cloud's message: the event in `data`, where it was in `extra`.
#[derive(Deserialize)]
struct CsprCloud {
    data: CsprCloudData,
    #[serde(default)]
    extra: CsprCloudExtra,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
struct CsprCloudData {
    contract_package_hash: Option<String>,
    contract_hash: Option<String>,
    name: String,
    data: Value,
}

#[derive(Deserialize, Default)]
struct CsprCloudExtra {
    deploy_hash: Option<String>,
    #[serde(default)]
    transform_id: u64,
}

#[derive(Deserialize)]
enum Decoded {
    ContractEvent(ContractEvent),
}

impl ContractEvent {
    /// Read a stored `ContractEvent`'s JSON; `None` for another shape.
    pub fn parse(json: &str) -> Option<ContractEvent> {
        let mut event = match serde_json::from_str::<Decoded>(json) {
            Ok(Decoded::ContractEvent(event)) => event,
            Err(_) => {
                let CsprCloud { data, extra, timestamp } = serde_json::from_str(json).ok()?;
                ContractEvent {
                    package: data.contract_package_hash,
                    contract: data.contract_hash,
                    name: data.name,
                    data: data.data,
                    index: extra.transform_id,
                    transaction: extra.deploy_hash,
                    block_height: None,
                    timestamp,
                }
            }
        };
        for hash in [&mut event.package, &mut event.contract, &mut event.transaction] {
            *hash = hash.take().map(|h| h.to_lowercase());
        }
        Some(event)
    }
}

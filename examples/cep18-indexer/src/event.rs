//! A contract event as this indexer reads it, from either shape Sluice stores: the stock CES
//! decoder's `{"ContractEvent": {…}}` or CSPR.cloud's `{"data": {…}, "extra": {…}}`.

use serde_json::Value;

/// The parts of a contract event the indexer uses.
pub struct ContractEvent {
    /// Contract package hash (hex), when known.
    pub package: Option<String>,
    /// Contract hash (hex), when known.
    pub contract: Option<String>,
    /// Event name (`Transfer`, …).
    pub name: String,
    /// Decoded fields.
    pub data: Value,
    /// Its place among its transaction's events (CES event id or transform index).
    pub index: u64,
    pub transaction: Option<String>,
    pub block_height: Option<u64>,
    pub timestamp: Option<String>,
}

impl ContractEvent {
    /// Read a stored `ContractEvent`'s JSON; `None` for another shape.
    pub fn parse(json: &str) -> Option<ContractEvent> {
        let value: Value = serde_json::from_str(json).ok()?;
        let text = |v: &Value| v.as_str().map(str::to_lowercase);
        if let Some(body) = value.get("ContractEvent") {
            return Some(ContractEvent {
                package: text(&body["contract_package_hash"]),
                contract: text(&body["contract_hash"]),
                name: body["name"].as_str()?.to_owned(),
                data: body["data"].clone(),
                index: body["transform_id"].as_u64().or(body["message_index"].as_u64()).unwrap_or_default(),
                transaction: text(&body["transaction_hash"]),
                block_height: body["block_height"].as_u64(),
                timestamp: body["timestamp"].as_str().map(str::to_owned),
            });
        }
        let (data, extra) = (&value["data"], &value["extra"]);
        Some(ContractEvent {
            package: text(&data["contract_package_hash"]),
            contract: text(&data["contract_hash"]),
            name: data["name"].as_str()?.to_owned(),
            data: data["data"].clone(),
            index: extra["transform_id"].as_u64().unwrap_or_default(),
            transaction: text(&extra["deploy_hash"]),
            block_height: None,
            timestamp: value["timestamp"].as_str().map(str::to_owned),
        })
    }
}

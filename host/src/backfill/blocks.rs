//! A block rebuilt from a node's JSON-RPC answers as the events the node streamed about it:
//! `chain_get_block` gives the `BlockAdded` and, in its proofs, the `FinalitySignature`s;
//! `info_get_transaction` (2.x) or `info_get_deploy` (1.x) gives each listed transaction's
//! `TransactionAccepted`/`DeployAccepted` and `TransactionProcessed`/`DeployProcessed`.
//!
//! What the answers cannot give back: a 2.x `TransactionProcessed`'s `messages` (not part of
//! `info_get_transaction`; left empty), and transactions that expired (never in a block).

use crate::event::{Frame, NodeEvent};
use serde_json::{Value, json};

/// A block as `chain_get_block` answers it.
#[derive(Debug)]
pub struct Block {
    /// Its height.
    pub height: u64,
    /// Its `BlockAdded` event.
    pub added: String,
    /// The transactions it lists, in order.
    pub transactions: Vec<Transaction>,
    /// Its `FinalitySignature` events, one per proof.
    pub signatures: Vec<String>,
}

/// A transaction a block lists, as its execution is asked for.
#[derive(Debug, PartialEq)]
pub enum Transaction {
    /// 2.x node: `info_get_transaction` with this hash (`{"Version1": h}` or `{"Deploy": h}`).
    V2(Value),
    /// 1.x node: `info_get_deploy` with this hash.
    Deploy(String),
}

impl Transaction {
    /// The JSON-RPC method and params that fetch it.
    pub fn request(&self) -> (&'static str, Value) {
        match self {
            Transaction::V2(hash) => ("info_get_transaction", json!({ "transaction_hash": hash })),
            Transaction::Deploy(hash) => ("info_get_deploy", json!({ "deploy_hash": hash })),
        }
    }

    /// Its hash, for messages.
    pub fn hash(&self) -> String {
        match self {
            Transaction::V2(hash) => hash.as_object().and_then(|h| h.values().next()).unwrap_or(hash).to_string(),
            Transaction::Deploy(hash) => hash.clone(),
        }
    }

    /// The method's result → (accepted, processed) events; `None` while it is not executed or
    /// when the answer has another shape.
    pub fn events(&self, result: &Value) -> Option<(String, String)> {
        match self {
            Transaction::V2(_) => Some((
                format!(r#"{{"TransactionAccepted":{}}}"#, result["transaction"]),
                transaction_processed(result)?,
            )),
            Transaction::Deploy(_) => {
                Some((format!(r#"{{"DeployAccepted":{}}}"#, result["deploy"]), deploy_processed(result)?))
            }
        }
    }
}

/// `chain_get_block`'s result → the block. A 2.x node answers `block_with_signatures` (the
/// block `Version2`, or `Version1` for blocks from before the upgrade, and `proofs`); a 1.x node
/// answers `block`, its proofs inside it. `chain_name_hash` (the hash of the chainspec name)
/// is what a 2.x signature carries besides the block's fields: without it, 2.x signatures are
/// left out.
pub fn block(result: &Value, chain_name_hash: Option<&str>) -> Option<Block> {
    // Events are written straight from the answer's parts (`Value`'s `Display`): `json!` would
    // copy each part through a serializer first.
    let unsigned_1x;
    let (block, inner, transactions, proofs, signed) = match result.get("block_with_signatures") {
        Some(with_signatures) => {
            let block = &with_signatures["block"];
            let (variant, inner) = block.as_object()?.iter().next()?;
            let (transactions, signed) = match variant.as_str() {
                "Version2" => {
                    let lanes = inner["body"]["transactions"].as_object()?.values();
                    (lanes.filter_map(Value::as_array).flatten().cloned().map(Transaction::V2).collect(), Signed::V2)
                }
                _ => {
                    let hashes = deploy_hashes(inner).map(|h| Transaction::V2(json!({ "Deploy": h })));
                    (hashes.collect(), Signed::V1InV2)
                }
            };
            (block, inner, transactions, &with_signatures["proofs"], signed)
        }
        None => {
            let block = result.get("block")?;
            let transactions = deploy_hashes(block).map(|h| Transaction::Deploy(h.to_owned())).collect();
            // A 1.x node streams the block before anyone signed it: with no proofs.
            let mut unsigned = block.clone();
            unsigned["proofs"] = json!([]);
            unsigned_1x = unsigned;
            (&unsigned_1x, block, transactions, &block["proofs"], Signed::Bare)
        }
    };
    let hash = inner.get("hash")?;
    let height = inner["header"]["height"].as_u64()?;
    let proofs = proofs.as_array().map(Vec::as_slice).unwrap_or_default();
    let signatures = proofs.iter().filter_map(|proof| signature(inner, proof, signed, chain_name_hash)).collect();
    let added = format!(r#"{{"BlockAdded":{{"block_hash":{hash},"block":{block}}}}}"#);
    Some(Block { height, added, transactions, signatures })
}

/// The shape of a block's signatures.
#[derive(Clone, Copy)]
enum Signed {
    /// 2.x `{"V2": {…, "block_height", "chain_name_hash"}}`.
    V2,
    /// 2.x node, a block from before the upgrade: `{"V1": {…}}`.
    V1InV2,
    /// 1.x node: the signature bare.
    Bare,
}

/// One proof (`{"public_key", "signature"}`) of `block` → its `FinalitySignature` event; a 2.x
/// one needs the chain name's hash.
fn signature(block: &Value, proof: &Value, signed: Signed, chain_name_hash: Option<&str>) -> Option<String> {
    let header = &block["header"];
    let mut fields = json!({
        "block_hash": block.get("hash")?,
        "era_id": header.get("era_id")?,
        "signature": proof.get("signature")?,
        "public_key": proof.get("public_key")?,
    });
    let event = match signed {
        Signed::V2 => {
            fields["block_height"] = header.get("height")?.clone();
            fields["chain_name_hash"] = json!(chain_name_hash?);
            json!({"FinalitySignature": {"V2": fields}})
        }
        Signed::V1InV2 => json!({"FinalitySignature": {"V1": fields}}),
        Signed::Bare => json!({"FinalitySignature": fields}),
    };
    Some(event.to_string())
}

/// A 1.x-format block's deploys and transfers.
fn deploy_hashes(block: &Value) -> impl Iterator<Item = &str> {
    let body = &block["body"];
    [&body["deploy_hashes"], &body["transfer_hashes"]]
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
}

/// 2.x `info_get_transaction`'s result → `TransactionProcessed` (its `messages` are not part of
/// the answer, so they are left empty).
fn transaction_processed(result: &Value) -> Option<String> {
    let execution = result.get("execution_info").filter(|e| !e.is_null())?;
    let execution_result = execution.get("execution_result").filter(|r| !r.is_null())?;
    let (variant, transaction) = result["transaction"].as_object()?.iter().next()?;
    let (initiator, header) = match variant.as_str() {
        "Deploy" => (format!(r#"{{"PublicKey":{}}}"#, transaction["header"]["account"]), &transaction["header"]),
        _ => (transaction["payload"]["initiator_addr"].to_string(), &transaction["payload"]),
    };
    Some(format!(
        r#"{{"TransactionProcessed":{{"transaction_hash":{{{}:{}}},"initiator_addr":{initiator},"timestamp":{},"ttl":{},"block_hash":{},"execution_result":{execution_result},"messages":[]}}}}"#,
        Value::from(variant.as_str()),
        transaction["hash"],
        header["timestamp"],
        header["ttl"],
        execution["block_hash"],
    ))
}

/// 1.x `info_get_deploy`'s result → `DeployProcessed`.
fn deploy_processed(result: &Value) -> Option<String> {
    let deploy = &result["deploy"];
    let header = &deploy["header"];
    let execution = result["execution_results"].as_array()?.first()?;
    Some(format!(
        r#"{{"DeployProcessed":{{"deploy_hash":{},"account":{},"timestamp":{},"ttl":{},"dependencies":{},"block_hash":{},"execution_result":{}}}}}"#,
        deploy["hash"],
        header["account"],
        header["timestamp"],
        header["ttl"],
        header["dependencies"],
        execution["block_hash"],
        execution["result"],
    ))
}

/// The hash of a chain's name, hex, as 2.x finality signatures carry it.
pub fn chain_name_hash(chain_name: &str) -> String {
    hex::encode(casper_types::ChainNameDigest::from_chain_name(chain_name).inner().value())
}

/// A rebuilt block's events, in the order a node streams them (transactions accepted, the block,
/// transactions processed, signatures), through the same parser as streamed ones; the first
/// that does not parse fails the block.
pub fn parsed_block(block: Block, executions: Vec<(String, String)>) -> Result<Vec<NodeEvent>, String> {
    let (accepted, processed): (Vec<String>, Vec<String>) = executions.into_iter().unzip();
    let events = accepted.into_iter().chain([block.added]).chain(processed).chain(block.signatures);
    events.map(|raw| parsed(raw).map_err(|reason| format!("block {}: {reason}", block.height))).collect()
}

/// A rebuilt event goes through the same parser as a streamed one.
fn parsed(raw: String) -> Result<NodeEvent, String> {
    match Frame::parse(raw) {
        Ok(Frame::Event(event)) => Ok(event),
        Ok(_) => Err("not an event".into()),
        Err(e) => Err(e.reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> Value {
        let text = std::fs::read_to_string(format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn event(raw: &str) -> crate::event::NodeEvent {
        parsed(raw.to_owned()).unwrap()
    }

    #[test]
    fn rpc_answers_become_the_events_the_node_streams() {
        // 2.x: a block as `chain_get_block` returns it is the fixture's BlockAdded; its proofs
        // become the signatures the node streamed.
        let streamed = fixture("casper2/block_added_event_v2.json");
        let block_json = &streamed["BlockAdded"]["block"];
        let signature = fixture("casper2/finality_signature_event_v2.json");
        let v2 = &signature["FinalitySignature"]["V2"];
        let mut block_json = block_json.clone();
        block_json["Version2"]["hash"] = v2["block_hash"].clone();
        block_json["Version2"]["header"]["height"] = v2["block_height"].clone();
        block_json["Version2"]["header"]["era_id"] = v2["era_id"].clone();
        let proofs = json!([{"public_key": v2["public_key"], "signature": v2["signature"]}]);
        let answer = json!({"api_version": "2.0.0", "block_with_signatures": {"block": block_json, "proofs": proofs}});
        let name_hash = v2["chain_name_hash"].as_str();
        let rebuilt = block(&answer, name_hash).unwrap();
        assert_eq!(rebuilt.height, v2["block_height"].as_u64().unwrap());
        let added: Value = serde_json::from_str(&rebuilt.added).unwrap();
        assert_eq!(added["BlockAdded"]["block"], block_json);
        assert!(rebuilt.transactions.is_empty());
        let [rebuilt_signature] = &rebuilt.signatures[..] else { panic!("{:?}", rebuilt.signatures) };
        assert_eq!(serde_json::from_str::<Value>(rebuilt_signature).unwrap(), signature);
        // Without the chain name's hash, no 2.x signature can be rebuilt.
        assert!(block(&answer, None).unwrap().signatures.is_empty());

        // 1.x: the block's deploys are listed for `info_get_deploy`; its proofs become bare
        // signatures, and the block is streamed without them.
        let mut streamed = fixture("casper1/block_added_event.json");
        streamed["BlockAdded"]["block"]["body"]["deploy_hashes"] = json!(["ab"]);
        let signature = fixture("casper1/finality_signature_event.json");
        let mut answer = json!({"api_version": "1.5.8", "block": streamed["BlockAdded"]["block"]});
        answer["block"]["proofs"] = json!([{
            "public_key": signature["FinalitySignature"]["public_key"],
            "signature": signature["FinalitySignature"]["signature"],
        }]);
        let rebuilt = block(&answer, None).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&rebuilt.added).unwrap(), streamed);
        assert_eq!(rebuilt.transactions, [Transaction::Deploy("ab".into())]);
        let rebuilt_signature = event(&rebuilt.signatures[0]);
        assert_eq!(rebuilt_signature.kind, "FinalitySignature");
        assert_eq!(
            rebuilt_signature.block_hash.as_ref(),
            streamed["BlockAdded"]["block_hash"].as_str().map(str::to_owned).as_ref()
        );

        // 1.x deploy: same keys, same execution result as the streamed events.
        let streamed = fixture("casper1/deploy_processed_event.json");
        let processed = &streamed["DeployProcessed"];
        let mut deploy = fixture("casper1/deploy_accepted_event.json")["DeployAccepted"].clone();
        deploy["hash"] = processed["deploy_hash"].clone();
        let answer = json!({"deploy": deploy, "execution_results": [
            {"block_hash": processed["block_hash"], "result": processed["execution_result"]}
        ]});
        let (accepted, rebuilt) = Transaction::Deploy(String::new()).events(&answer).unwrap();
        assert_eq!(event(&rebuilt).key, event(&streamed.to_string()).key);
        assert_eq!(serde_json::from_str::<Value>(&accepted).unwrap(), json!({"DeployAccepted": deploy}));
        let rebuilt: Value = serde_json::from_str(&rebuilt).unwrap();
        assert_eq!(rebuilt["DeployProcessed"]["execution_result"], processed["execution_result"]);

        // 2.x transaction: the accepted event is the transaction; the processed one has the
        // streamed key and execution; none while it is not executed.
        let streamed = fixture("casper2/transaction_processed_event_with_messages.json");
        let processed = &streamed["TransactionProcessed"];
        let accepted_fixture = fixture("casper2/transaction_accepted_event.json");
        let mut transaction = accepted_fixture["TransactionAccepted"].clone();
        transaction["Version1"]["hash"] = processed["transaction_hash"]["Version1"].clone();
        let execution =
            json!({"block_hash": processed["block_hash"], "execution_result": processed["execution_result"]});
        let v2 = Transaction::V2(processed["transaction_hash"].clone());
        let answer = json!({"transaction": transaction, "execution_info": execution});
        let (accepted, rebuilt) = v2.events(&answer).unwrap();
        assert_eq!(event(&rebuilt).key, event(&streamed.to_string()).key);
        assert_eq!(serde_json::from_str::<Value>(&accepted).unwrap(), json!({"TransactionAccepted": transaction}));
        let rebuilt: Value = serde_json::from_str(&rebuilt).unwrap();
        assert_eq!(rebuilt["TransactionProcessed"]["execution_result"], processed["execution_result"]);
        assert_eq!(v2.events(&json!({"transaction": transaction, "execution_info": null})), None);
    }
}

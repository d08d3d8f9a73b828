//! The Casper 1.x event streams, for clients that never moved to 2.x: `GET /events/main`
//! (`BlockAdded`, `DeployProcessed`, `DeployExpired`, `Fault`, `Step`), `/events/deploys`
//! (`DeployAccepted`) and `/events/sigs` (`FinalitySignature`), with Sluice's sequence numbers
//! as ids and `?start_from=` as on `/events`. Events from 1.x nodes are served as they came;
//! 2.x events are translated to their 1.x shape the way the casper-sidecar's legacy emulation
//! does, and omitted when 1.x cannot express them (2.x `Version1` transactions, initiators that
//! are account hashes). Effects that 1.x cannot express (entities, packages, messages, ...)
//! make the whole `transforms` list empty, as in the sidecar. Unlike the sidecar, 2.x `Step`
//! events are served too, their effects translated the same way.

use serde_json::{Map, Value, json};

/// A 1.x stream.
#[derive(Debug, Clone, Copy)]
pub enum Channel {
    /// `/events/main`.
    Main,
    /// `/events/deploys`.
    Deploys,
    /// `/events/sigs`.
    Sigs,
}

impl Channel {
    /// The stored event types (1.x and 2.x names) the channel serves.
    pub fn kinds(self) -> &'static [&'static str] {
        // A node's `"Shutdown"` goes out on every channel, as a 1.x node sends it on each.
        match self {
            Channel::Main => &[
                "BlockAdded",
                "DeployProcessed",
                "TransactionProcessed",
                "DeployExpired",
                "TransactionExpired",
                "Fault",
                "Step",
                "Shutdown",
            ],
            Channel::Deploys => &["DeployAccepted", "TransactionAccepted", "Shutdown"],
            Channel::Sigs => &["FinalitySignature", "Shutdown"],
        }
    }
}

/// The 1.x name of a stored event type (2.x transaction events are 1.x deploy events).
pub fn v1_name(kind: &str) -> &str {
    match kind {
        "TransactionAccepted" => "DeployAccepted",
        "TransactionProcessed" => "DeployProcessed",
        "TransactionExpired" => "DeployExpired",
        other => other,
    }
}

/// The 1.x JSON of a stored event (`raw`, of type `kind`), or `None` when 1.x has no shape for it.
pub fn to_v1(kind: &str, raw: &str) -> Option<String> {
    if kind == "Shutdown" {
        return Some(raw.to_owned());
    }
    let event: Value = serde_json::from_str(raw).ok()?;
    let body = event.get(kind)?;
    let (kind, body) = match kind {
        "BlockAdded" => ("BlockAdded", block_added(body)?),
        "TransactionAccepted" => ("DeployAccepted", body.get("Deploy")?.clone()),
        "TransactionProcessed" => ("DeployProcessed", transaction_processed(body)?),
        "TransactionExpired" => ("DeployExpired", json!({"deploy_hash": body.pointer("/transaction_hash/Deploy")?})),
        "FinalitySignature" => ("FinalitySignature", finality_signature(body)?),
        "Step" => ("Step", step(body)),
        "DeployAccepted" | "DeployProcessed" | "DeployExpired" | "Fault" => return Some(raw.to_owned()),
        _ => return None,
    };
    Some(json!({ kind: body }).to_string())
}

/// 1.x blocks as they are; `Version1` unwrapped; `Version2` rebuilt in the 1.x shape. A 1.x
/// node's block carries its `proofs`: the translated ones have none, as the sidecar sends.
fn block_added(body: &Value) -> Option<Value> {
    let block = body.get("block")?;
    let mut v1 = match (block.get("Version1"), block.get("Version2")) {
        (Some(v1), _) => v1.clone(),
        (None, Some(v2)) => block_v2_to_v1(v2)?,
        (None, None) => block.clone(),
    };
    if let Some(fields) = v1.as_object_mut() {
        fields.entry("proofs").or_insert_with(|| json!([]));
    }
    Some(json!({"block_hash": body.get("block_hash")?, "block": v1}))
}

fn block_v2_to_v1(block: &Value) -> Option<Value> {
    let header = block.get("header")?;
    let mut v1_header = Map::new();
    for field in ["parent_hash", "state_root_hash", "body_hash", "random_bit", "accumulated_seed"] {
        v1_header.insert(field.into(), header.get(field).cloned().unwrap_or(Value::Null));
    }
    v1_header.insert("era_end".into(), header.get("era_end").and_then(era_end_v1).unwrap_or(Value::Null));
    for field in ["timestamp", "era_id", "height", "protocol_version"] {
        v1_header.insert(field.into(), header.get(field).cloned().unwrap_or(Value::Null));
    }
    // Lane 0 is the mint (transfers), lanes from 3 on are standard transactions; only deploys.
    let lanes = block.pointer("/body/transactions").and_then(Value::as_object);
    let deploys_in = |wanted: &dyn Fn(u32) -> bool| -> Vec<Value> {
        let lanes = lanes.into_iter().flatten().filter(|(lane, _)| lane.parse().is_ok_and(wanted));
        lanes.filter_map(|(_, list)| list.as_array()).flatten().filter_map(|t| t.get("Deploy").cloned()).collect()
    };
    Some(json!({
        "hash": block.get("hash")?,
        "header": v1_header,
        "body": {
            "proposer": header.get("proposer")?,
            "deploy_hashes": deploys_in(&|lane| lane >= 3),
            "transfer_hashes": deploys_in(&|lane| lane == 0),
        },
    }))
}

/// A 2.x era end as 1.x's `{era_report, next_era_validator_weights}`; `None` when a reward
/// does not fit 1.x's u64.
fn era_end_v1(era_end: &Value) -> Option<Value> {
    if era_end.get("era_report").is_some() {
        return Some(era_end.clone());
    }
    let mut rewards = Vec::new();
    for (validator, amount) in era_end.get("rewards")?.as_object()? {
        // One amount, or one per rewarded era.
        let amounts = match amount {
            Value::Array(amounts) => amounts.iter().collect(),
            single => vec![single],
        };
        let mut total: u64 = 0;
        for amount in amounts {
            total = total.checked_add(amount.as_str()?.parse().ok()?)?;
        }
        rewards.push(json!({"validator": validator, "amount": total}));
    }
    Some(json!({
        "era_report": {
            "equivocators": era_end.get("equivocators")?,
            "rewards": rewards,
            "inactive_validators": era_end.get("inactive_validators")?,
        },
        "next_era_validator_weights": era_end.get("next_era_validator_weights")?,
    }))
}

/// `DeployProcessed` for a deploy sent by a public key; `None` otherwise.
fn transaction_processed(body: &Value) -> Option<Value> {
    let result = body.get("execution_result")?;
    let execution_result = match (result.get("Version1"), result.get("Version2")) {
        (Some(v1), _) => v1.clone(),
        (None, Some(v2)) => execution_result_v1(v2),
        (None, None) => return None,
    };
    Some(json!({
        "deploy_hash": body.pointer("/transaction_hash/Deploy")?,
        "account": body.pointer("/initiator_addr/PublicKey")?,
        "timestamp": body.get("timestamp")?,
        "ttl": body.get("ttl")?,
        "dependencies": [],
        "block_hash": body.get("block_hash")?,
        "execution_result": execution_result,
    }))
}

/// 1.x's `{Success|Failure: {effect, transfers, cost, error_message?}}` from a 2.x result.
fn execution_result_v1(result: &Value) -> Value {
    let mut outcome = json!({
        "effect": effect_v1(result.get("effects")),
        // 2.x has no transfer addresses.
        "transfers": [],
        "cost": result.get("cost").cloned().unwrap_or(json!("0")),
    });
    match result.get("error_message").and_then(Value::as_str) {
        Some(message) => {
            outcome["error_message"] = json!(message);
            json!({ "Failure": outcome })
        }
        None => json!({ "Success": outcome }),
    }
}

/// 1.x's `{operations, transforms}` from 2.x effects; `transforms` is empty when any effect
/// has no 1.x equivalent.
fn effect_v1(effects: Option<&Value>) -> Value {
    let transforms: Option<Vec<Value>> = effects
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|effect| Some(json!({"key": effect.get("key")?, "transform": transform_v1(effect.get("kind")?)?})))
        .collect();
    json!({"operations": [], "transforms": transforms.unwrap_or_default()})
}

fn transform_v1(kind: &Value) -> Option<Value> {
    if let Some(name) = kind.as_str() {
        return (name == "Identity").then(|| kind.clone());
    }
    let (name, value) = kind.as_object()?.iter().next()?;
    Some(match name.as_str() {
        "AddInt32" | "AddUInt64" | "AddUInt128" | "AddUInt256" | "AddUInt512" | "AddKeys" | "Prune" | "Failure" => {
            kind.clone()
        }
        "Write" => {
            let (stored, data) = value.as_object()?.iter().next()?;
            match stored.as_str() {
                "CLValue" => json!({"WriteCLValue": data}),
                "Account" => json!({"WriteAccount": data.get("account_hash")?}),
                "ContractWasm" => json!("WriteContractWasm"),
                "Contract" => json!("WriteContract"),
                "ContractPackage" => json!("WriteContractPackage"),
                "LegacyTransfer" => json!({"WriteTransfer": data}),
                "DeployInfo" => json!({"WriteDeployInfo": data}),
                "EraInfo" => json!({"WriteEraInfo": data}),
                "Bid" => json!({"WriteBid": data}),
                "Withdraw" => json!({"WriteWithdraw": data}),
                "Unbonding" => json!({"WriteUnbonding": data}),
                // `{named_key: CLValue of the key, name: CLValue of the name}`.
                "NamedKey" => json!({"AddKeys": [{
                    "name": data.pointer("/name/parsed")?,
                    "key": data.pointer("/named_key/parsed")?,
                }]}),
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// 1.x's `{block_hash, era_id, signature, public_key}`.
fn finality_signature(body: &Value) -> Option<Value> {
    let signature = body.get("V1").or_else(|| body.get("V2")).unwrap_or(body);
    let field = |name: &str| signature.get(name).cloned();
    Some(json!({
        "block_hash": field("block_hash")?,
        "era_id": field("era_id")?,
        "signature": field("signature")?,
        "public_key": field("public_key")?,
    }))
}

/// 1.x's `{era_id, execution_effect}`.
fn step(body: &Value) -> Value {
    match body.get("execution_effect") {
        Some(_) => body.clone(),
        None => json!({"era_id": body.get("era_id"), "execution_effect": effect_v1(body.get("execution_effects"))}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> (String, String) {
        let raw = std::fs::read_to_string(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let value: Value = serde_json::from_str(&raw).unwrap();
        (value.as_object().unwrap().keys().next().unwrap().clone(), raw)
    }

    fn v1(name: &str) -> Option<Value> {
        let (kind, raw) = fixture(name);
        to_v1(&kind, &raw).map(|text| serde_json::from_str(&text).unwrap())
    }

    #[test]
    fn one_x_events_pass_through_unchanged() {
        for name in ["deploy_accepted_event", "deploy_processed_event", "deploy_expired_event", "fault_event"] {
            let (kind, raw) = fixture(&format!("casper1/{name}.json"));
            assert_eq!(to_v1(&kind, &raw).as_deref(), Some(raw.as_str()), "{name}");
        }
        let block = v1("casper1/block_added_event.json").unwrap();
        assert!(block["BlockAdded"]["block"]["body"]["deploy_hashes"].is_array());
    }

    #[test]
    fn two_x_events_take_their_one_x_shape_or_are_left_out() {
        let block = v1("casper2/block_added_event_v2.json").unwrap();
        let block = &block["BlockAdded"]["block"];
        assert_eq!(block["header"]["height"], 89049);
        assert!(block["header"].get("current_gas_price").is_none() && block["header"].get("proposer").is_none());
        assert!(block["body"]["proposer"].is_string() && block["body"]["deploy_hashes"].is_array());
        assert_eq!(block["proofs"], serde_json::json!([]), "a 1.x node's block carries its proofs");

        let signature = v1("casper2/finality_signature_event_v2.json").unwrap();
        let mut fields: Vec<&String> = signature["FinalitySignature"].as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(v1_name("TransactionProcessed"), "DeployProcessed");
        assert_eq!(fields, ["block_hash", "era_id", "public_key", "signature"]);

        // 2.x `Version1` transactions have no 1.x shape.
        assert_eq!(v1("casper2/transaction_accepted_event.json"), None);
        assert_eq!(v1("casper2/transaction_processed_event_with_messages.json"), None);
        assert!(
            v1("casper2/step_event_v2_synthesized.json").unwrap()["Step"]["execution_effect"]["transforms"].is_array()
        );
    }

    #[test]
    fn a_two_x_deploy_becomes_deploy_processed_with_translated_effects() {
        let processed = json!({"TransactionProcessed": {
        "transaction_hash": {"Deploy": "aa"}, "initiator_addr": {"PublicKey": "01bb"},
        "timestamp": "t", "ttl": "30m", "block_hash": "cc",
        "execution_result": {"Version2": {"cost": "7", "error_message": "out of gas", "effects": [
            {"key": "uref-1", "kind": {"Write": {"CLValue": {"cl_type": "U8", "bytes": "01", "parsed": 1}}}},
            {"key": "balance-2", "kind": {"AddUInt512": "5"}},
            {"key": "named-key-3", "kind": {"Write": {"NamedKey": {
                "named_key": {"cl_type": "Key", "parsed": "uref-4"}, "name": {"cl_type": "String", "parsed": "counter"}}}}},
        ]}}}});
        let v1: Value = serde_json::from_str(&to_v1("TransactionProcessed", &processed.to_string()).unwrap()).unwrap();
        let deploy = &v1["DeployProcessed"];
        assert_eq!(
            (&deploy["deploy_hash"], &deploy["account"], &deploy["block_hash"]),
            (&json!("aa"), &json!("01bb"), &json!("cc"))
        );
        let failure = &deploy["execution_result"]["Failure"];
        assert_eq!((&failure["cost"], &failure["error_message"]), (&json!("7"), &json!("out of gas")));
        assert_eq!(failure["effect"]["transforms"][0]["transform"]["WriteCLValue"]["parsed"], 1);
        assert_eq!(failure["effect"]["transforms"][1]["transform"], json!({"AddUInt512": "5"}));
        assert_eq!(
            failure["effect"]["transforms"][2]["transform"],
            json!({"AddKeys": [{"name": "counter", "key": "uref-4"}]})
        );

        // One effect 1.x cannot express empties the list; an account-hash initiator drops the event.
        let mut entity = processed.clone();
        entity["TransactionProcessed"]["execution_result"]["Version2"]["effects"][1]["kind"] =
            json!({"Write": {"AddressableEntity": {}}});
        let v1: Value = serde_json::from_str(&to_v1("TransactionProcessed", &entity.to_string()).unwrap()).unwrap();
        assert_eq!(v1["DeployProcessed"]["execution_result"]["Failure"]["effect"]["transforms"], json!([]));
        let mut by_hash = processed;
        by_hash["TransactionProcessed"]["initiator_addr"] = json!({"AccountHash": "account-hash-dd"});
        assert_eq!(to_v1("TransactionProcessed", &by_hash.to_string()), None);
    }
}

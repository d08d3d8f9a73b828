//! Learning a contract from the node the operator granted: its package, the `__events`
//! dictionary's seed and the `__events_schema` value, through the host's cached JSON-RPC.

use crate::ces::parse_hash;
use crate::contracts::{Contract, Hash};
use serde_json::{Value, json};
use sluice_plugin_sdk::node;

/// Ask the node what `contract` (a contract hash) is; the schema comes back as hex.
pub fn contract(contract: &Hash) -> Result<(Contract, Option<String>), String> {
    let hex = base16::encode_lower(contract);
    let stored = stored_value(&format!("hash-{hex}"));
    let (package, named_keys) = match stored.as_ref().ok().and_then(|s| s.get("Contract")) {
        Some(legacy) => (legacy["contract_package_hash"].clone(), legacy["named_keys"].clone()),
        None => {
            // A 2.x addressable entity (no legacy `Contract` under `hash-…`) keeps its named
            // keys apart: {"entity": {"AddressableEntity": {"entity": {package_hash, …},
            // "named_keys": […]}}}.
            let params = json!({"entity_identifier": {"EntityAddr": format!("entity-contract-{hex}")}});
            let answer = node::query("state_get_entity", &params)?;
            let versioned = answer["entity"].as_object().and_then(|e| e.values().next()).cloned().unwrap_or_default();
            let body = versioned.get("entity").unwrap_or(&versioned);
            let named_keys = versioned.get("named_keys").unwrap_or(&answer["named_keys"]);
            (body["package_hash"].clone(), named_keys.clone())
        }
    };
    let named = |name: &str| {
        let keys = named_keys.as_array().into_iter().flatten();
        keys.filter(|k| k["name"] == name).find_map(|k| k["key"].as_str().and_then(parse_hash))
    };
    let known = Contract {
        package: package.as_str().and_then(parse_hash),
        events_seed: named("__events"),
        schema_uref: named("__events_schema"),
        ..Contract::default()
    };
    let schema = match known.schema_uref {
        Some(uref) => {
            let value = stored_value(&format!("uref-{}-007", base16::encode_lower(&uref)))?;
            value["CLValue"]["bytes"].as_str().map(str::to_owned)
        }
        None => None,
    };
    Ok((known, schema))
}

/// The contract versions of `package`, oldest first.
pub fn package_versions(package: &Hash) -> Result<Vec<Hash>, String> {
    let stored = stored_value(&format!("hash-{}", base16::encode_lower(package)))?;
    let body = stored.get("ContractPackage").or(stored.get("Package")).ok_or("not a contract package")?;
    let versions = body["versions"].as_array().into_iter().flatten();
    // 1.x and legacy 2.x: `contract_hash`; 2.x packages: `addressable_entity_hash`.
    let hashes = versions
        .filter_map(|v| v["contract_hash"].as_str().or(v["addressable_entity_hash"].as_str()).and_then(parse_hash));
    Ok(hashes.collect())
}

/// `query_global_state` of `key` at the latest block: its `stored_value`.
fn stored_value(key: &str) -> Result<Value, String> {
    let answer = node::query("query_global_state", &json!({"key": key, "path": []}))?;
    match answer.get("stored_value") {
        Some(value) => Ok(value.clone()),
        None => Err(format!("no stored value for {key}")),
    }
}

//! The `parsed` form a node writes beside each CLValue argument's bytes, which casper-types
//! writes only with a feature that pulls in JSON schemas.

use casper_types::U512;
use serde_json::{Value, json};

/// Add the `parsed` form beside each argument's bytes in `event`: the arguments the mock sends
/// are public keys, U512 amounts, account hashes and optional ids.
pub fn add_to(event: &mut Value) {
    fn walk(value: &mut Value) {
        match value {
            Value::Array(items) => {
                if let [Value::String(_), Value::Object(argument)] = items.as_mut_slice()
                    && let (Some(cl_type), Some(Value::String(hex))) = (argument.get("cl_type"), argument.get("bytes"))
                {
                    let parsed = parsed(cl_type, hex);
                    argument.insert("parsed".into(), parsed);
                    return;
                }
                items.iter_mut().for_each(walk);
            }
            Value::Object(fields) => fields.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(event);
}

/// The `parsed` JSON of a CLValue's `bytes` (hex), for the types the mock sends.
fn parsed(cl_type: &Value, hex: &str) -> Value {
    use casper_types::bytesrepr::FromBytes;
    let raw = hex::decode(hex).unwrap_or_default();
    match cl_type {
        Value::String(name) if name == "PublicKey" => Value::String(hex.to_owned()),
        Value::String(name) if name == "U512" => {
            U512::from_bytes(&raw).map_or(Value::Null, |(amount, _)| Value::String(amount.to_string()))
        }
        Value::Object(inner) if inner.contains_key("ByteArray") => Value::String(hex.to_owned()),
        Value::Object(inner) if inner.get("Option") == Some(&json!("U64")) => {
            Option::<u64>::from_bytes(&raw).map_or(Value::Null, |(id, _)| json!(id))
        }
        _ => Value::Null,
    }
}

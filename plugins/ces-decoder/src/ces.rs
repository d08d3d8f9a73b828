//! The Casper Event Standard's byte layout, decoded with casper-types' bytesrepr.
//!
//! A CES event is a dictionary value written under the contract's `__events` dictionary:
//! a `CLValue` of type `List(U8)` ‖ the dictionary's seed URef address ‖ the item key (the
//! event's index, in decimal). The list holds `String("event_" + name)` and then each field of
//! the event in the order of the contract's schema (`__events_schema`: a
//! `BTreeMap<String, Vec<(String, CLType)>>`).

use casper_types::bytesrepr::{Bytes, FromBytes};
use casper_types::{AccessRights, CLType, CLValue, Key, PublicKey, U128, U256, U512, URef};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Each event's fields, by event name, as the contract declared them.
pub type Schemas = BTreeMap<String, Vec<(String, CLType)>>;

/// Read a contract's `__events_schema` value.
pub fn parse_schemas(bytes: &[u8]) -> Result<Schemas, String> {
    let (schemas, rest) = Schemas::from_bytes(bytes).map_err(|e| format!("not a CES schema: {e}"))?;
    match rest.is_empty() {
        true => Ok(schemas),
        false => Err(format!("not a CES schema: {} bytes left over", rest.len())),
    }
}

/// A dictionary write that holds a CES event (not yet attributed to a contract).
#[derive(Debug, PartialEq)]
pub struct EventWrite {
    /// The dictionary's seed URef address: which contract's `__events` it is.
    pub seed: [u8; 32],
    /// The event's index in that dictionary (CES counts from 0).
    pub event_id: u64,
    /// The event's bytes: its name, then its fields.
    pub payload: Vec<u8>,
    /// The address such a value belongs under: the dictionary item's, BLAKE2b-256 of the seed
    /// and the item key. A value written anywhere else is not this dictionary's.
    pub dictionary_addr: [u8; 32],
}

/// A written dictionary value as CES writes events, or `None` when it is anything else (a
/// balance, an allowance, any value whose inner type is not `List(U8)`).
pub fn event_write(dictionary_value: &[u8]) -> Option<EventWrite> {
    let (value, rest) = CLValue::from_bytes(dictionary_value).ok()?;
    if *value.cl_type() != CLType::List(Box::new(CLType::U8)) {
        return None;
    }
    let (seed, rest) = Bytes::from_bytes(rest).ok()?;
    let seed: [u8; 32] = seed.as_slice().try_into().ok()?;
    let (item_key, _) = Bytes::from_bytes(rest).ok()?;
    let event_id = std::str::from_utf8(&item_key).ok()?.parse().ok()?;
    // The list's own bytes: a u32 count, then the bytes.
    let (payload, _) = Vec::<u8>::from_bytes(value.inner_bytes()).ok()?;
    let dictionary = Key::dictionary(URef::new(seed, AccessRights::NONE), &item_key);
    let dictionary_addr = *dictionary.as_dictionary()?;
    Some(EventWrite { seed, event_id, payload, dictionary_addr })
}

/// The name of the event in `payload` (without the `event_` prefix).
pub fn event_name(payload: &[u8]) -> Result<(String, &[u8]), String> {
    let (name, fields) = String::from_bytes(payload).map_err(|e| format!("no event name: {e}"))?;
    match name.strip_prefix("event_") {
        Some(name) => Ok((name.to_owned(), fields)),
        None => Err(format!("{name:?} does not start with \"event_\"")),
    }
}

/// One decoded event: its fields as JSON and as the bytes they came from (hex).
#[derive(Debug, PartialEq)]
pub struct Decoded {
    /// The event's name, without `event_`.
    pub name: String,
    /// Each field as JSON.
    pub data: Map<String, Value>,
    /// Each field's bytes, in hex.
    pub fields_raw: Map<String, Value>,
}

/// Decode `payload` by its contract's schemas.
pub fn decode(payload: &[u8], schemas: &Schemas) -> Result<Decoded, String> {
    let (name, mut rest) = event_name(payload)?;
    let fields = schemas.get(&name).ok_or_else(|| format!("the schema has no event {name:?}"))?;
    let (mut data, mut fields_raw) = (Map::new(), Map::new());
    for (field, cl_type) in fields {
        let (value, after) = to_json(cl_type, rest, 0)
            .ok_or_else(|| format!("field {field:?} of {name} does not decode as {cl_type}"))?;
        data.insert(field.clone(), value);
        fields_raw.insert(field.clone(), Value::String(base16::encode_lower(&rest[..rest.len() - after.len()])));
        rest = after;
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes left over after the fields of {name}", rest.len()));
    }
    Ok(Decoded { name, data, fields_raw })
}

/// Deepest type nesting decoded (casper-types allows 50).
const MAX_DEPTH: u8 = 50;

/// One value of `cl_type` from the start of `bytes` as JSON, and the bytes after it. The JSON
/// is the node's (`parsed`) and CSPR.cloud's: small integers as numbers, U128/U256/U512 as
/// decimal strings, keys and URefs formatted, byte arrays in hex, an Option as its value or
/// null, a Map as `[{"key", "value"}]`, a Result as `{"Ok": …}` or `{"Err": …}`.
fn to_json<'a>(cl_type: &CLType, bytes: &'a [u8], depth: u8) -> Option<(Value, &'a [u8])> {
    fn read<T: FromBytes>(bytes: &[u8], json: impl FnOnce(T) -> Value) -> Option<(Value, &[u8])> {
        T::from_bytes(bytes).ok().map(|(value, rest)| (json(value), rest))
    }
    if depth >= MAX_DEPTH {
        return None;
    }
    let depth = depth + 1;
    let tagged = |bytes: &'a [u8]| bytes.split_first().map(|(tag, rest)| (*tag, rest));
    match cl_type {
        CLType::Bool => read::<bool>(bytes, Value::from),
        CLType::I32 => read::<i32>(bytes, Value::from),
        CLType::I64 => read::<i64>(bytes, Value::from),
        CLType::U8 => read::<u8>(bytes, Value::from),
        CLType::U32 => read::<u32>(bytes, Value::from),
        CLType::U64 => read::<u64>(bytes, Value::from),
        CLType::U128 => read::<U128>(bytes, |v| v.to_string().into()),
        CLType::U256 => read::<U256>(bytes, |v| v.to_string().into()),
        CLType::U512 => read::<U512>(bytes, |v| v.to_string().into()),
        CLType::Unit => Some((Value::Null, bytes)),
        CLType::String => read::<String>(bytes, Value::from),
        CLType::Key => read::<Key>(bytes, |k| k.to_formatted_string().into()),
        CLType::URef => read::<URef>(bytes, |u| u.to_formatted_string().into()),
        CLType::PublicKey => read::<PublicKey>(bytes, |k| k.to_hex_string().into()),
        CLType::ByteArray(length) => {
            let length = *length as usize;
            (bytes.len() >= length).then(|| (base16::encode_lower(&bytes[..length]).into(), &bytes[length..]))
        }
        CLType::Option(inner) => match tagged(bytes)? {
            (0, rest) => Some((Value::Null, rest)),
            (1, rest) => to_json(inner, rest, depth),
            _ => None,
        },
        CLType::Result { ok, err } => match tagged(bytes)? {
            (0, rest) => to_json(err, rest, depth).map(|(v, rest)| (json!({"Err": v}), rest)),
            (1, rest) => to_json(ok, rest, depth).map(|(v, rest)| (json!({"Ok": v}), rest)),
            _ => None,
        },
        CLType::List(inner) => {
            let (count, mut rest) = u32::from_bytes(bytes).ok()?;
            check_count(count, rest, &[inner])?;
            let mut items = Vec::new();
            for _ in 0..count {
                let (item, after) = to_json(inner, rest, depth)?;
                items.push(item);
                rest = after;
            }
            Some((Value::Array(items), rest))
        }
        CLType::Map { key, value } => {
            let (count, mut rest) = u32::from_bytes(bytes).ok()?;
            check_count(count, rest, &[key, value])?;
            let mut entries = Vec::new();
            for _ in 0..count {
                let (k, after) = to_json(key, rest, depth)?;
                let (v, after) = to_json(value, after, depth)?;
                entries.push(json!({"key": k, "value": v}));
                rest = after;
            }
            Some((Value::Array(entries), rest))
        }
        CLType::Tuple1(types) => tuple(types, bytes, depth),
        CLType::Tuple2(types) => tuple(types, bytes, depth),
        CLType::Tuple3(types) => tuple(types, bytes, depth),
        // `Any` has no length of its own: nothing can follow it.
        CLType::Any => None,
    }
}

/// Most items of a list or map whose items take no bytes (`Unit`, tuples of them).
const MAX_EMPTY_ITEMS: u32 = 1024;

/// Refuse a count the bytes cannot hold: each item takes at least a byte unless every part of
/// it is zero-width (then at most [`MAX_EMPTY_ITEMS`]), so a hostile count cannot loop for
/// billions of turns.
fn check_count(count: u32, rest: &[u8], item: &[&CLType]) -> Option<()> {
    fn zero_width(cl_type: &CLType) -> bool {
        match cl_type {
            CLType::Unit => true,
            CLType::Tuple1(types) => types.iter().all(|t| zero_width(t)),
            CLType::Tuple2(types) => types.iter().all(|t| zero_width(t)),
            CLType::Tuple3(types) => types.iter().all(|t| zero_width(t)),
            _ => false,
        }
    }
    let limit = match item.iter().all(|t| zero_width(t)) {
        true => MAX_EMPTY_ITEMS as usize,
        false => rest.len(),
    };
    (count as usize <= limit).then_some(())
}

fn tuple<'a>(types: &[Box<CLType>], mut bytes: &'a [u8], depth: u8) -> Option<(Value, &'a [u8])> {
    let mut items = Vec::new();
    for cl_type in types {
        let (item, rest) = to_json(cl_type, bytes, depth)?;
        items.push(item);
        bytes = rest;
    }
    Some((Value::Array(items), bytes))
}

/// A 32-byte hash from its formatted string: bare hex, or hex after a prefix such as `hash-`,
/// `contract-package-wasm`, `entity-contract-` or `uref-` (with a URef's `-007` access suffix).
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let text = match text.strip_prefix("uref-") {
        Some(uref) => uref.rsplit_once('-').map_or(uref, |(address, _)| address),
        None => text,
    };
    let hex_part = text.get(text.len().checked_sub(64)?..)?;
    let before = text[..text.len() - 64].chars().last();
    if before.is_some_and(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut hash = [0; 32];
    hex::decode_to_slice(hex_part, &mut hash).ok()?;
    Some(hash)
}

/// A schema as JSON: `{"Transfer": [["sender", "Key"], …]}`.
pub fn schemas_json(schemas: &Schemas) -> Value {
    let events = schemas.iter().map(|(name, fields)| {
        let fields = fields.iter().map(|(field, cl_type)| serde_json::json!([field, cl_type.to_string()]));
        (name.clone(), Value::Array(fields.collect()))
    });
    Value::Object(events.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOTING_SCHEMA: &str = include_str!("../../../host/fixtures/ces/voting_schema.hex");

    #[test]
    fn schema_lists_events_in_field_order() {
        let schemas = parse_schemas(&hex::decode(VOTING_SCHEMA.trim()).unwrap()).unwrap();
        assert_eq!(schemas.len(), 8);
        let ballot: Vec<&str> = schemas["BallotCast"].iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(ballot, ["voter", "voting_id", "voting_type", "choice", "stake"]);
    }

    #[test]
    fn values_follow_their_types() {
        let option_u512 = CLType::Option(Box::new(CLType::U512));
        assert_eq!(to_json(&option_u512, &[1, 2, 0xe8, 3, 9], 0), Some((json!("1000"), &[9u8][..])));
        assert_eq!(to_json(&option_u512, &[0, 9], 0), Some((Value::Null, &[9u8][..])));
        let list = CLType::List(Box::new(CLType::U32));
        assert_eq!(to_json(&list, &[2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0], 0), Some((json!([1, 2]), &[][..])));
        assert_eq!(to_json(&CLType::String, &[5, 0, 0, 0, b'a'], 0), None);
        assert_eq!(to_json(&CLType::Any, &[1], 0), None);
        // A count no bytes can back is refused at once.
        assert_eq!(to_json(&CLType::List(Box::new(CLType::Unit)), &[0xff, 0xff, 0xff, 0xff], 0), None);
        assert_eq!(to_json(&list, &[0xff, 0xff, 0xff, 0x7f, 1], 0), None);
        assert_eq!(
            to_json(&CLType::List(Box::new(CLType::Unit)), &[2, 0, 0, 0], 0),
            Some((json!([null, null]), &[][..]))
        );
    }

    #[test]
    fn hashes_parse_with_or_without_prefixes() {
        let hex = "d2263e86f497f42e405d5d1390aa3c1a8bfc35f3699fdc3be806a5cfe139dac9";
        let expected = parse_hash(hex).unwrap();
        let prefixed = ["hash-", "uref-", "contract-package-wasm", "entity-contract-"].map(|p| format!("{p}{hex}"));
        for text in prefixed.into_iter().chain([format!("uref-{hex}-007")]) {
            assert_eq!(parse_hash(&text), Some(expected), "{text}");
        }
        assert_eq!(parse_hash("hash-12"), None);
        assert_eq!(parse_hash(&format!("a{hex}")), None);
    }
}

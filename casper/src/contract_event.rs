//! The contract event, read from either shape Sluice stores: a decoder's (the stock CES
//! decoder's) `{"ContractEvent": {…}}` or CSPR.cloud's `{"data": {…}, "extra": {…}}`.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A contract event. `D` is how its fields are read: a JSON [`Value`] by default, or
/// [`serde::de::IgnoredAny`] to read only where it comes from, at less cost.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(bound = "D: Deserialize<'de> + Default")]
pub struct ContractEvent<D = Value> {
    /// Contract package hash (lowercase hex), when known.
    #[serde(rename = "contract_package_hash")]
    pub package: Option<String>,
    /// Contract hash (lowercase hex), when known.
    #[serde(rename = "contract_hash")]
    pub contract: Option<String>,
    /// Event name (`Transfer`, …).
    pub name: String,
    /// The decoded fields.
    #[serde(default)]
    pub data: D,
    /// Its place among its transaction's events (the effect's index).
    #[serde(default, rename = "transform_id")]
    pub index: u64,
    /// The transaction or deploy (lowercase hex), when known.
    #[serde(rename = "transaction_hash")]
    pub transaction: Option<String>,
    /// Its block's height, when known.
    pub block_height: Option<u64>,
    /// When its transaction was made.
    pub timestamp: Option<String>,
}

/// CSPR.cloud's message: the event in `data`, where it was in `extra`.
#[derive(Deserialize)]
#[serde(bound = "D: Deserialize<'de> + Default")]
struct CsprCloud<D> {
    data: CsprCloudData<D>,
    #[serde(default)]
    extra: CsprCloudExtra,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(bound = "D: Deserialize<'de> + Default")]
struct CsprCloudData<D> {
    contract_package_hash: Option<String>,
    contract_hash: Option<String>,
    name: String,
    #[serde(default)]
    data: D,
}

#[derive(Deserialize, Default)]
struct CsprCloudExtra {
    deploy_hash: Option<String>,
    #[serde(default)]
    transform_id: u64,
}

#[derive(Deserialize)]
#[serde(bound = "D: Deserialize<'de> + Default")]
enum Decoded<D> {
    ContractEvent(ContractEvent<D>),
}

impl<D: DeserializeOwned + Default> ContractEvent<D> {
    /// Read a stored event's JSON; `None` when it is not a contract event.
    pub fn parse(json: &str) -> Option<ContractEvent<D>> {
        let mut event = match serde_json::from_str::<Decoded<D>>(json) {
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

    /// Whether it comes from this package and this contract (each, when given: hex, any case,
    /// bare or formatted).
    pub fn is_from(&self, package: Option<&str>, contract: Option<&str>) -> bool {
        let matches = |wanted: Option<&str>, actual: &Option<String>| {
            wanted.is_none_or(|w| actual.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(crate::bare_hash(w))))
        };
        matches(package, &self.package) && matches(contract, &self.contract)
    }
}

impl ContractEvent<Value> {
    /// Field `name` of its data as a `T` (a `String`, a number, a big integer read from its
    /// decimal string); an error naming the field when it is absent or another type.
    pub fn field<T: DeserializeOwned>(&self, name: &str) -> Result<T, String> {
        let value = self.data.get(name).ok_or_else(|| format!("{} has no field {name:?}", self.name))?;
        T::deserialize(value).map_err(|e| format!("{}.{name}: {e}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECODED: &str = r#"{"ContractEvent":{"contract_hash":"AB","contract_package_hash":"cd","name":"Transfer","transaction_hash":"EE","transform_id":3,"block_height":7,"timestamp":"2024-01-01T00:00:00Z","data":{"amount":"5","to":"account-hash-01"}}}"#;
    const CSPR_CLOUD: &str = r#"{"action":"emitted","data":{"contract_package_hash":"cd","contract_hash":"AB","name":"Transfer","data":{"amount":"5","to":"account-hash-01"}},"extra":{"deploy_hash":"EE","event_id":1,"transform_id":3},"timestamp":"2024-01-01T00:00:00Z"}"#;

    #[test]
    fn both_shapes_read_alike() {
        let decoded: ContractEvent = ContractEvent::parse(DECODED).unwrap();
        let cloud: ContractEvent = ContractEvent::parse(CSPR_CLOUD).unwrap();
        assert_eq!(ContractEvent { block_height: Some(7), ..cloud.clone() }, decoded);
        assert_eq!((cloud.package.as_deref(), cloud.contract.as_deref()), (Some("cd"), Some("ab")));
        assert_eq!((cloud.transaction.as_deref(), cloud.index), (Some("ee"), 3));
        assert_eq!(decoded.field::<String>("amount"), Ok("5".to_owned()));
        assert!(decoded.field::<u64>("amount").unwrap_err().contains("Transfer.amount"));
        assert!(decoded.field::<String>("from").unwrap_err().contains("no field \"from\""));
        assert!(decoded.is_from(Some("hash-CD"), None) && decoded.is_from(None, Some("ab")));
        assert!(!decoded.is_from(Some("cd"), Some("ff")));
        let identity: ContractEvent<serde::de::IgnoredAny> = ContractEvent::parse(CSPR_CLOUD).unwrap();
        assert_eq!(identity.name, "Transfer");
        assert!(ContractEvent::<Value>::parse(r#"{"BlockAdded":{}}"#).is_none());
    }
}

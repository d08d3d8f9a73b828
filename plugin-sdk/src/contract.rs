//! The configuration of a plugin that follows one contract.

use crate::{ContractEvent, Event};
use serde::Deserialize;

/// Which contract a plugin follows, as its `[plugins.config]` names it: `package_hash` (every
/// version of the contract) or `contract_hash` (one version), hex, bare or formatted. Use it as
/// the plugin's `Config`, or `#[serde(flatten)]` it into one.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Hashes")]
pub struct ContractConfig {
    package_hash: Option<String>,
    contract_hash: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Hashes {
    package_hash: Option<String>,
    contract_hash: Option<String>,
}

impl TryFrom<Hashes> for ContractConfig {
    type Error = String;

    fn try_from(hashes: Hashes) -> Result<ContractConfig, String> {
        match hashes {
            Hashes { package_hash: None, contract_hash: None } => {
                Err("set package_hash (or contract_hash): the contract whose events to index".into())
            }
            Hashes { package_hash, contract_hash } => Ok(ContractConfig { package_hash, contract_hash }),
        }
    }
}

impl ContractConfig {
    /// Whether `event` comes from this contract.
    pub fn matches(&self, event: &ContractEvent) -> bool {
        event.is_from(self.package_hash.as_deref(), self.contract_hash.as_deref())
    }

    /// This contract's events among `events`, each with the event it was read from.
    pub fn events_in<'e>(&self, events: &'e [Event]) -> impl Iterator<Item = (&'e Event, ContractEvent)> {
        let read = events.iter().filter_map(|event| Some((event, event.contract_event()?)));
        read.filter(|(_, contract_event)| self.matches(contract_event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_contract_or_fails() {
        let config: ContractConfig = serde_json::from_str(r#"{"package_hash": "hash-AB"}"#).unwrap();
        let event: ContractEvent =
            ContractEvent::parse(r#"{"ContractEvent":{"contract_package_hash":"ab","name":"Mint","data":{}}}"#)
                .unwrap();
        assert!(config.matches(&event));
        let other: ContractConfig = serde_json::from_str(r#"{"contract_hash": "cd"}"#).unwrap();
        assert!(!other.matches(&event));
        let error = serde_json::from_str::<ContractConfig>("{}").unwrap_err().to_string();
        assert!(error.contains("set package_hash"), "{error}");
        assert!(serde_json::from_str::<ContractConfig>(r#"{"package": "ab"}"#).is_err());
    }
}

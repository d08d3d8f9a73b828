//! Contract events (`ContractEvent`, from CSPR.cloud or a decoder plugin) by contract, package,
//! name and transaction: what identifies one, read once as it is stored so that each backend
//! indexes it, and what clients list them by.

/// What identifies a contract event: what `contract_events` indexes and stream filters match.
#[derive(Debug, Default, PartialEq)]
pub struct Identity {
    /// Contract package hash (hex, lowercase).
    pub contract_package_hash: Option<String>,
    /// Contract hash (hex, lowercase).
    pub contract_hash: Option<String>,
    /// Event name.
    pub name: Option<String>,
    /// Transaction or deploy hash (hex, lowercase).
    pub transaction_hash: Option<String>,
}

impl Identity {
    /// Read a contract event's identity from its JSON (either shape, read by the rule the plugin
    /// SDK shares); `None` for anything else.
    pub fn of(raw: &str) -> Option<Identity> {
        let event = sluice_casper::ContractEvent::<serde::de::IgnoredAny>::parse(raw)?;
        Some(Identity {
            contract_package_hash: event.package,
            contract_hash: event.contract,
            name: Some(event.name),
            transaction_hash: event.transaction,
        })
    }
}

/// Which contract events to list; every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Contract hash (lowercase hex).
    pub contract: Option<String>,
    /// Contract package hash (lowercase hex).
    pub package: Option<String>,
    /// Event name.
    pub name: Option<String>,
    /// Transaction or deploy hash (lowercase hex).
    pub transaction: Option<String>,
    /// Only events stored before this sequence number (the cursor).
    pub before: Option<u64>,
    /// At most this many.
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_are_indexed_by_the_same_fields() {
        let decoded = r#"{"ContractEvent":{"contract_hash":"AB","contract_package_hash":"cd","name":"Transfer","transaction_hash":"EE","data":{}}}"#;
        let cspr_cloud = r#"{"action":"emitted","data":{"contract_package_hash":"cd","contract_hash":"AB","name":"Transfer","data":{}},"extra":{"deploy_hash":"EE"}}"#;
        for raw in [decoded, cspr_cloud] {
            let identity = Identity::of(raw).unwrap();
            assert_eq!(identity.contract_hash.as_deref(), Some("ab"));
            assert_eq!(
                (identity.contract_package_hash.as_deref(), identity.name.as_deref()),
                (Some("cd"), Some("Transfer"))
            );
            assert_eq!(identity.transaction_hash.as_deref(), Some("ee"));
        }
        assert_eq!(Identity::of(r#"{"BlockAdded":{}}"#), None);
    }
}

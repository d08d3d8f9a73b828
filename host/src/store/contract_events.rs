//! Contract events (`ContractEvent`, from CSPR.cloud or a decoder plugin) by contract, package,
//! name and transaction: what identifies one, read once as it is stored so that each backend
//! indexes it, and what clients list them by.

/// What identifies a contract event: what `contract_events` indexes and stream filters match.
#[derive(Debug, Default, PartialEq, serde::Deserialize)]
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

/// The two shapes Sluice stores: a decoder's `{"ContractEvent": {contract_hash,
/// contract_package_hash, name, transaction_hash, …}}` and CSPR.cloud's `{"data": {contract_hash,
/// contract_package_hash, name, …}, "extra": {deploy_hash, …}}`.
#[derive(serde::Deserialize)]
struct Shapes {
    #[serde(rename = "ContractEvent")]
    decoded: Option<Identity>,
    data: Option<Identity>,
    extra: Option<Extra>,
}

#[derive(serde::Deserialize)]
struct Extra {
    deploy_hash: Option<String>,
}

impl Identity {
    /// Read a contract event's identity from its JSON (either shape); `None` for anything else.
    pub fn of(raw: &str) -> Option<Identity> {
        let shapes: Shapes = serde_json::from_str(raw).ok()?;
        let mut identity = match (shapes.decoded, shapes.data) {
            (Some(decoded), _) => decoded,
            (None, Some(data)) => Identity { transaction_hash: shapes.extra.and_then(|e| e.deploy_hash), ..data },
            (None, None) => return None,
        };
        for hash in [&mut identity.contract_package_hash, &mut identity.contract_hash, &mut identity.transaction_hash] {
            *hash = hash.take().map(|h| h.to_lowercase());
        }
        Some(identity)
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

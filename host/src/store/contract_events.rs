//! Contract events (`ContractEvent`, from CSPR.cloud or a decoder plugin) by contract, package,
//! name and transaction: the `contract_events` table the writer fills as they are stored.

use super::StoredEvent;
use rusqlite::{Connection, params_from_iter};

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

/// Index contract event `seq` (its JSON is `raw`).
pub(super) fn index(statement: &mut rusqlite::CachedStatement<'_>, seq: u64, raw: &str) -> rusqlite::Result<()> {
    let Some(identity) = Identity::of(raw) else { return Ok(()) };
    statement.execute(rusqlite::params![
        seq as i64,
        identity.contract_package_hash,
        identity.contract_hash,
        identity.name,
        identity.transaction_hash,
    ])?;
    Ok(())
}

/// The statement [`index`] runs.
pub(super) const INSERT: &str = "INSERT OR IGNORE INTO contract_events
    (seq, contract_package_hash, contract_hash, name, transaction_hash) VALUES (?1, ?2, ?3, ?4, ?5)";

/// Index every stored contract event (a database from before the index existed).
pub(super) fn index_all(conn: &Connection) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(INSERT)?;
    let mut select = conn.prepare("SELECT seq, raw FROM events WHERE kind = 'ContractEvent'")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        index(&mut insert, row.get::<_, i64>(0)? as u64, &row.get::<_, String>(1)?)?;
    }
    Ok(())
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

/// Visible contract events matching `query`, newest first, each with the height of its block
/// when that block is stored.
pub fn list(conn: &Connection, query: &Query) -> rusqlite::Result<Vec<(StoredEvent, Option<u64>)>> {
    let mut conditions = vec!["e.dropped = 0".to_owned()];
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    let filters = [
        ("c.contract_hash", &query.contract),
        ("c.contract_package_hash", &query.package),
        ("c.name", &query.name),
        ("c.transaction_hash", &query.transaction),
    ];
    for (column, value) in filters {
        if let Some(value) = value {
            values.push(value.clone().into());
            conditions.push(format!("{column} = ?{}", values.len()));
        }
    }
    if let Some(before) = query.before {
        values.push(i64::try_from(before).unwrap_or(i64::MAX).into());
        conditions.push(format!("c.seq < ?{}", values.len()));
    }
    values.push((query.limit as i64).into());
    let (event_columns, height_column) = super::reader::event_columns_of("e");
    let sql = format!(
        "SELECT {event_columns},
                (SELECT b.block_height FROM events b WHERE b.kind = 'BlockAdded' AND b.block_hash = e.block_hash)
         FROM contract_events c JOIN events e ON e.seq = c.seq
         WHERE {} ORDER BY c.seq DESC LIMIT ?{}",
        conditions.join(" AND "),
        values.len()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), |row| {
        let event = super::reader::stored_event(row)?;
        Ok((event, row.get::<_, Option<i64>>(height_column)?.map(|h| h as u64)))
    })?;
    rows.collect()
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

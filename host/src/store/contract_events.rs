//! Contract events (`ContractEvent`, from CSPR.cloud or a decoder plugin) by contract, package,
//! name and transaction: the `contract_events` table the writer fills as they are stored.

use super::StoredEvent;
use rusqlite::{Connection, params_from_iter};

/// The columns `contract_events` indexes a contract event by.
#[derive(Debug, Default, PartialEq, serde::Deserialize)]
struct Indexed {
    contract_package_hash: Option<String>,
    contract_hash: Option<String>,
    name: Option<String>,
}

/// The two shapes Sluice stores: a decoder's `{"ContractEvent": {contract_hash,
/// contract_package_hash, name, …}}` and CSPR.cloud's `{"data": {…the same…}, "extra": …}`.
#[derive(serde::Deserialize)]
struct Shapes {
    #[serde(rename = "ContractEvent")]
    decoded: Option<Indexed>,
    data: Option<Indexed>,
}

/// Index contract event `seq` (its JSON is `raw`) of `transaction`.
pub(super) fn index(
    statement: &mut rusqlite::CachedStatement<'_>,
    seq: u64,
    raw: &str,
    transaction: Option<&str>,
) -> rusqlite::Result<()> {
    let Ok(shapes) = serde_json::from_str::<Shapes>(raw) else { return Ok(()) };
    let Some(fields) = shapes.decoded.or(shapes.data) else { return Ok(()) };
    let lower = |hash: Option<String>| hash.map(|h| h.to_lowercase());
    statement.execute(rusqlite::params![
        seq as i64,
        lower(fields.contract_package_hash),
        lower(fields.contract_hash),
        fields.name,
        transaction,
    ])?;
    Ok(())
}

/// The statement [`index`] runs.
pub(super) const INSERT: &str = "INSERT OR IGNORE INTO contract_events
    (seq, contract_package_hash, contract_hash, name, transaction_hash) VALUES (?1, ?2, ?3, ?4, ?5)";

/// Index every stored contract event (a database from before the index existed).
pub(super) fn index_all(conn: &Connection) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(INSERT)?;
    let mut select = conn.prepare("SELECT seq, raw, transaction_hash FROM events WHERE kind = 'ContractEvent'")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        index(&mut insert, row.get::<_, i64>(0)? as u64, &row.get::<_, String>(1)?, row.get::<_, Option<String>>(2)?.as_deref())?;
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
    let sql = format!(
        "SELECT e.seq, e.kind, e.node, e.received_at_ms, e.raw, e.annotations, e.hidden_by,
                (SELECT b.block_height FROM events b WHERE b.kind = 'BlockAdded' AND b.block_hash = e.block_hash)
         FROM contract_events c JOIN events e ON e.seq = c.seq
         WHERE {} ORDER BY c.seq DESC LIMIT ?{}",
        conditions.join(" AND "),
        values.len()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), |row| {
        let event = super::reader::stored_event(row)?;
        Ok((event, row.get::<_, Option<i64>>(7)?.map(|h| h as u64)))
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_are_indexed_by_the_same_fields() {
        let decoded = r#"{"ContractEvent":{"contract_hash":"AB","contract_package_hash":"cd","name":"Transfer","data":{}}}"#;
        let cspr_cloud = r#"{"action":"emitted","data":{"contract_package_hash":"cd","contract_hash":"AB","name":"Transfer","data":{}},"extra":{}}"#;
        for raw in [decoded, cspr_cloud] {
            let shapes: Shapes = serde_json::from_str(raw).unwrap();
            let fields = shapes.decoded.or(shapes.data).unwrap();
            assert_eq!(fields.contract_hash.as_deref(), Some("AB"));
            assert_eq!((fields.contract_package_hash.as_deref(), fields.name.as_deref()), (Some("cd"), Some("Transfer")));
        }
    }
}

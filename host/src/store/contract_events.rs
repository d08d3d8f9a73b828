//! Contract events (`ContractEvent`, from CSPR.cloud or a decoder plugin) by contract, package,
//! name and transaction: the `contract_events` table the writer fills as they are stored.

use super::StoredEvent;
use rusqlite::{Connection, params_from_iter};

/// Index the `ContractEvent`s with `seq` in `?1..=?2`. Reads both shapes: a decoder's
/// `{"ContractEvent": {contract_hash, contract_package_hash, name, …}}` and CSPR.cloud's
/// `{"data": {contract_hash, contract_package_hash, name, …}, "extra": …}`.
pub(super) const INDEX: &str = "
INSERT OR IGNORE INTO contract_events (seq, contract_package_hash, contract_hash, name, transaction_hash)
SELECT seq,
    lower(coalesce(json_extract(raw, '$.ContractEvent.contract_package_hash'), json_extract(raw, '$.data.contract_package_hash'))),
    lower(coalesce(json_extract(raw, '$.ContractEvent.contract_hash'), json_extract(raw, '$.data.contract_hash'))),
    coalesce(json_extract(raw, '$.ContractEvent.name'), json_extract(raw, '$.data.name')),
    transaction_hash
FROM events WHERE kind = 'ContractEvent' AND seq BETWEEN ?1 AND ?2 AND json_valid(raw)";

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
        "SELECT e.seq, e.kind, e.node, e.received_at_ms, e.raw, e.annotations,
                (SELECT b.block_height FROM events b WHERE b.kind = 'BlockAdded' AND b.block_hash = e.block_hash)
         FROM contract_events c JOIN events e ON e.seq = c.seq
         WHERE {} ORDER BY c.seq DESC LIMIT ?{}",
        conditions.join(" AND "),
        values.len()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), |row| {
        let event = super::reader::stored_event(row)?;
        Ok((event, row.get::<_, Option<i64>>(6)?.map(|h| h as u64)))
    })?;
    rows.collect()
}

//! The `contract_events` table: contract events by contract, package, name and transaction,
//! filled as they are stored.

use super::rows::stored_event;
use crate::store::StoredEvent;
use crate::store::contract_events::{Identity, Query};
use crate::store::sql::event_columns_of;
use rusqlite::{Connection, params_from_iter};

/// Index contract event `seq`, identified by `identity`.
pub(super) fn index(
    statement: &mut rusqlite::CachedStatement<'_>,
    seq: u64,
    identity: &Identity,
) -> rusqlite::Result<()> {
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
        if let Some(identity) = Identity::of(&row.get::<_, String>(1)?) {
            index(&mut insert, row.get::<_, i64>(0)? as u64, &identity)?;
        }
    }
    Ok(())
}

/// Visible contract events matching `query`, newest first, each with the height of its block
/// when that block is stored.
pub(super) fn list(conn: &Connection, query: &Query) -> rusqlite::Result<Vec<(StoredEvent, Option<u64>)>> {
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
    let (event_columns, height_column) = event_columns_of("e");
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
        let event = stored_event(row)?;
        Ok((event, row.get::<_, Option<i64>>(height_column)?.map(|h| h as u64)))
    })?;
    rows.collect()
}

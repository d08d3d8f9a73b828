//! Rows of the `events` table as [`StoredEvent`]s (the columns come from `store/sql.rs`).

use crate::store::StoredEvent;
use postgres::Row;
use std::sync::Arc;

/// Map a row selected with `store::sql::EVENT_COLUMNS` (or `event_columns_of`).
pub(super) fn stored_event(row: &Row) -> Result<StoredEvent, postgres::Error> {
    Ok(StoredEvent {
        seq: row.try_get::<_, i64>(0)? as u64,
        kind: row.try_get(1)?,
        node: row.try_get(2)?,
        received_at_ms: row.try_get(3)?,
        raw: Arc::from(row.try_get::<_, &str>(4)?),
        annotations: row.try_get(5)?,
        hidden_by: row.try_get(6)?,
        account: row.try_get(7)?,
        chain_height: row.try_get::<_, i64>(8)? as u64,
    })
}

/// Every row as a [`StoredEvent`].
pub(super) fn stored_events(rows: Vec<Row>) -> Result<Vec<StoredEvent>, postgres::Error> {
    rows.iter().map(stored_event).collect()
}

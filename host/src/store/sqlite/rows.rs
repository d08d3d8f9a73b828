//! Rows of the `events` table as [`StoredEvent`]s (the columns come from `store/sql.rs`).

use crate::store::StoredEvent;
use rusqlite::Row;
use std::sync::Arc;

/// Map a row selected with `store::sql::EVENT_COLUMNS` (or `event_columns_of`).
pub(super) fn stored_event(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        seq: row.get::<_, i64>(0)? as u64,
        kind: row.get(1)?,
        node: row.get(2)?,
        received_at_ms: row.get(3)?,
        raw: Arc::from(row.get::<_, String>(4)?),
        annotations: row.get(5)?,
        hidden_by: row.get(6)?,
        account: row.get(7)?,
        chain_height: row.get::<_, i64>(8)? as u64,
    })
}

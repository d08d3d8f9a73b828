//! Rows of the `events` table as [`StoredEvent`]s, and integers as PostgreSQL holds them.

use crate::store::StoredEvent;
use postgres::Row;
use std::sync::Arc;

/// Columns of [`StoredEvent`], in the order [`stored_event`] reads them.
pub(super) const EVENT_COLUMNS: &str = "seq, kind, node, received_at_ms, raw, annotations, hidden_by, account";

/// [`EVENT_COLUMNS`] of the `events` table aliased `alias` (for joins), and how many there
/// are: a query's own columns come after them.
pub(super) fn event_columns_of(alias: &str) -> (String, usize) {
    let columns: Vec<String> = EVENT_COLUMNS.split(", ").map(|column| format!("{alias}.{column}")).collect();
    (columns.join(", "), columns.len())
}

/// Map a row selected with [`EVENT_COLUMNS`] (or [`event_columns_of`]).
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
    })
}

/// Every row as a [`StoredEvent`].
pub(super) fn stored_events(rows: Vec<Row>) -> Result<Vec<StoredEvent>, postgres::Error> {
    rows.iter().map(stored_event).collect()
}

/// PostgreSQL integers are signed: larger values saturate.
pub(super) fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

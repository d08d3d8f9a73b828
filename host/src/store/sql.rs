//! What both backends' SQL shares: the columns of a stored event, and integers as the
//! databases hold them (signed 64-bit).

/// Columns of [`super::StoredEvent`], in the order the backends' row mappings read them.
pub const EVENT_COLUMNS: &str = "seq, kind, node, received_at_ms, raw, annotations, hidden_by, account";

/// [`EVENT_COLUMNS`] of the `events` table aliased `alias` (for joins), and how many there
/// are: a query's own columns come after them.
pub fn event_columns_of(alias: &str) -> (String, usize) {
    let columns: Vec<String> = EVENT_COLUMNS.split(", ").map(|column| format!("{alias}.{column}")).collect();
    (columns.join(", "), columns.len())
}

/// A sequence number, height or count as the databases hold it: larger values saturate.
pub fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

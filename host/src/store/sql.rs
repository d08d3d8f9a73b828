//! What both backends' SQL shares: the columns of a stored event, and integers as the
//! databases hold them (signed 64-bit), plugin cursors' columns.

use super::plugin_data::{ChainCursor, PluginCursor};

/// Columns of [`super::StoredEvent`], in the order the backends' row mappings read them.
pub const EVENT_COLUMNS: &str = "seq, kind, node, received_at_ms, raw, annotations, hidden_by, account, chain_height";

/// [`EVENT_COLUMNS`] of the `events` table aliased `alias` (for joins), and how many there
/// are: a query's own columns come after them.
pub fn event_columns_of(alias: &str) -> (String, usize) {
    let columns: Vec<String> = EVENT_COLUMNS.split(", ").map(|column| format!("{alias}.{column}")).collect();
    (columns.join(", "), columns.len())
}

/// A plugin cursor from its row: `last_seq`, then the chain replay's bound, height and seq
/// (all three or none).
pub fn plugin_cursor([last_seq, bound, height, seq]: [Option<i64>; 4]) -> PluginCursor {
    let chain = match (bound, height, seq) {
        (Some(bound), Some(height), Some(seq)) => {
            Some(ChainCursor { bound: bound as u64, after: (height as u64, seq as u64) })
        }
        _ => None,
    };
    PluginCursor { last_seq: last_seq.unwrap_or(0) as u64, chain }
}

/// A chain replay's bound, height and seq as columns (`NULL`s when there is none).
pub fn chain_cursor(chain: Option<ChainCursor>) -> [Option<i64>; 3] {
    match chain {
        Some(ChainCursor { bound, after: (height, seq) }) => {
            [Some(sql_int(bound)), Some(sql_int(height)), Some(sql_int(seq))]
        }
        None => [None; 3],
    }
}

/// A sequence number, height or count as the databases hold it: larger values saturate.
pub fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

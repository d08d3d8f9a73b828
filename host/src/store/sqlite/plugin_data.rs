//! Plugins' storage on SQLite: the `plugin_data` table, plugin cursors and dead letters.

use crate::store::plugin_data::{
    Bound, CHANGES_KEPT, Change, KeyRange, Matching, Page, PluginBatch, PluginCursor, PluginRead,
};
use crate::store::sql;
use rusqlite::{Connection, OptionalExtension, params};

impl PluginRead for Connection {
    fn plugin_value(&mut self, plugin: &str, collection: &str, key: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .prepare_cached("SELECT value FROM plugin_data WHERE plugin = ?1 AND collection = ?2 AND key = ?3")?
            .query_row([plugin, collection, key], |r| r.get(0))
            .optional()?)
    }

    fn plugin_entry_size(&mut self, plugin: &str, collection: &str, key: &str) -> anyhow::Result<Option<u64>> {
        let size = self
            .prepare_cached(
                "SELECT octet_length(collection) + octet_length(key) + octet_length(value) FROM plugin_data
                 WHERE plugin = ?1 AND collection = ?2 AND key = ?3",
            )?
            .query_row([plugin, collection, key], |r| r.get::<_, i64>(0))
            .optional()?;
        Ok(size.map(|s| s as u64))
    }

    fn plugin_bytes(&mut self, plugin: &str) -> anyhow::Result<u64> {
        let bytes = self
            .prepare_cached("SELECT bytes FROM plugin_cursors WHERE plugin = ?1")?
            .query_row([plugin], |r| r.get::<_, i64>(0))
            .optional()?;
        Ok(bytes.unwrap_or(0).max(0) as u64)
    }

    fn plugin_scan(
        &mut self,
        plugin: &str,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        bound: Bound,
    ) -> anyhow::Result<Page> {
        let range = KeyRange::scan(prefix, after);
        let sql = format!(
            "SELECT key, value FROM plugin_data WHERE plugin = ?1 AND collection = ?2 AND key {} ?3 {} ORDER BY key",
            range.start_operator(),
            if range.end.is_some() { "AND key < ?4" } else { "AND ?4 IS NULL" },
        );
        let mut stmt = self.prepare_cached(&sql)?;
        let rows =
            stmt.query_map(params![plugin, collection, range.from, range.end], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(Page::within(rows, bound)?)
    }

    fn plugin_find(
        &mut self,
        plugin: &str,
        collection: &str,
        field: &str,
        value: &serde_json::Value,
        after: Option<&str>,
        bound: Bound,
    ) -> anyhow::Result<Page> {
        let sql = format!(
            "SELECT key, value FROM plugin_data
             WHERE plugin = ?1 AND collection = ?2 AND {} = ?3 AND key {} ?4 ORDER BY key",
            field_expression(field),
            if after.is_some() { ">" } else { ">=" },
        );
        let mut stmt = self.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![plugin, collection, sql_value(value), after.unwrap_or("")], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(Page::within(rows, bound)?)
    }

    fn plugin_changes(
        &mut self,
        plugin: &str,
        collection: &str,
        matching: Matching,
        after: u64,
        limit: u32,
    ) -> anyhow::Result<Vec<Change>> {
        use rusqlite::types::Value::Text;
        // ?3 is the key, the prefix or the field's value; ?6 the end of the prefix's range.
        let (condition, value, end) = match matching {
            Matching::Key(key) => ("key = ?3 AND ?6 IS NULL".to_owned(), Text(key.to_owned()), None),
            Matching::Prefix(prefix) => {
                let end = KeyRange::scan(prefix, None).end;
                ("key >= ?3 AND (?6 IS NULL OR key < ?6)".to_owned(), Text(prefix.to_owned()), end)
            }
            Matching::Field(field, value) => {
                (format!("{} = ?3 AND ?6 IS NULL", field_expression(field)), sql_value(value), None)
            }
        };
        let sql = format!(
            "SELECT id, key, value, seq FROM plugin_changes
             WHERE plugin = ?1 AND collection = ?2 AND {condition} AND id > ?4 ORDER BY id LIMIT ?5"
        );
        let mut stmt = self.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![plugin, collection, value, after as i64, limit, end], |r| {
            Ok(Change {
                id: r.get::<_, i64>(0)? as u64,
                key: r.get(1)?,
                value: r.get(2)?,
                seq: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn plugin_change_span(&mut self) -> anyhow::Result<(u64, u64)> {
        let (oldest, newest): (Option<i64>, Option<i64>) =
            self.query_row("SELECT min(id), max(id) FROM plugin_changes", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok((oldest.unwrap_or(0) as u64, newest.unwrap_or(0) as u64))
    }

    fn plugin_count(&mut self, plugin: &str, collection: &str, matching: Matching, cap: u64) -> anyhow::Result<u64> {
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let count = match matching {
            Matching::Prefix(prefix) => {
                let range = KeyRange::scan(prefix, None);
                self.prepare_cached(
                    "SELECT count(*) FROM (SELECT 1 FROM plugin_data WHERE plugin = ?1 AND collection = ?2
                     AND key >= ?3 AND (?4 IS NULL OR key < ?4) LIMIT ?5)",
                )?
                .query_row(params![plugin, collection, range.from, range.end, cap], |r| r.get::<_, i64>(0))?
            }
            Matching::Key(key) => self
                .prepare_cached("SELECT count(*) FROM plugin_data WHERE plugin = ?1 AND collection = ?2 AND key = ?3")?
                .query_row(params![plugin, collection, key], |r| r.get::<_, i64>(0))?,
            Matching::Field(field, value) => self
                .prepare_cached(&format!(
                    "SELECT count(*) FROM (SELECT 1 FROM plugin_data WHERE plugin = ?1 AND collection = ?2
                     AND {} = ?3 LIMIT ?4)",
                    field_expression(field)
                ))?
                .query_row(params![plugin, collection, sql_value(value), cap], |r| r.get::<_, i64>(0))?,
        };
        Ok(count.max(0) as u64)
    }

    fn plugin_cursor(&mut self, plugin: &str) -> anyhow::Result<Option<PluginCursor>> {
        let sql = "SELECT last_seq, chain_bound, chain_height, chain_seq FROM plugin_cursors WHERE plugin = ?1";
        let row = self.query_row(sql, [plugin], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])).optional()?;
        Ok(row.map(sql::plugin_cursor))
    }

    fn plugin_versions(&mut self, name: &str, current: &str) -> anyhow::Result<Vec<String>> {
        let mut stmt = self.prepare(
            "SELECT plugin FROM plugin_cursors WHERE substr(plugin, 1, length(?1) + 1) = ?1 || '@' AND plugin != ?2",
        )?;
        let rows = stmt.query_map([name, current], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A JSON value as `json_extract` gives it back.
fn sql_value(value: &serde_json::Value) -> rusqlite::types::Value {
    match value {
        serde_json::Value::String(s) => rusqlite::types::Value::Text(s.clone()),
        serde_json::Value::Number(n) if n.is_i64() => rusqlite::types::Value::Integer(n.as_i64().unwrap_or_default()),
        serde_json::Value::Number(n) => rusqlite::types::Value::Real(n.as_f64().unwrap_or_default()),
        serde_json::Value::Bool(b) => rusqlite::types::Value::Integer(i64::from(*b)),
        other => rusqlite::types::Value::Text(other.to_string()),
    }
}

fn field_expression(field: &str) -> String {
    format!("json_extract(value, '$.{field}')")
}

/// Create the index for JSON field `field` (checked by the caller), which every plugin and
/// collection declaring an index on a field of that name shares.
pub(super) fn create_index(conn: &Connection, field: &str) -> rusqlite::Result<()> {
    // SQLite names ignore case; fields do not.
    let name = format!("plugin_index_{}", &blake3::hash(field.as_bytes()).to_hex()[..16]);
    conn.execute_batch(&format!(
        "CREATE INDEX IF NOT EXISTS \"{name}\" ON plugin_data (plugin, collection, {}, key)",
        field_expression(field)
    ))
}

/// Remove everything stored under `storage_id`: entries and cursor (an older version's).
pub(super) fn remove_all(tx: &Connection, storage_id: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM plugin_data WHERE plugin = ?1", [storage_id])?;
    tx.execute("DELETE FROM plugin_cursors WHERE plugin = ?1", [storage_id])?;
    tx.execute("DELETE FROM plugin_changes WHERE plugin = ?1", [storage_id])?;
    Ok(())
}

/// Write one plugin's batch: its storage changes, dead letters and cursor.
pub(super) fn apply(tx: &Connection, batch: &PluginBatch, now_ms: i64) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO plugin_data (plugin, collection, key, value) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (plugin, collection, key) DO UPDATE SET value = excluded.value",
    )?;
    let mut delete = tx.prepare_cached("DELETE FROM plugin_data WHERE plugin = ?1 AND collection = ?2 AND key = ?3")?;
    for write in &batch.writes {
        match &write.value {
            Some(value) => upsert.execute(params![batch.plugin, write.collection, write.key, value])?,
            None => delete.execute(params![batch.plugin, write.collection, write.key])?,
        };
    }
    let mut log = tx.prepare_cached(
        "INSERT INTO plugin_changes (plugin, collection, key, value, seq) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut logged = false;
    for write in batch.logged_writes() {
        log.execute(params![batch.plugin, write.collection, write.key, write.value, batch.last_seq as i64])?;
        logged = true;
    }
    if logged {
        // The oldest changes past those kept (a range of the primary key: the few a batch adds).
        tx.prepare_cached("DELETE FROM plugin_changes WHERE id <= last_insert_rowid() - ?1")?
            .execute([CHANGES_KEPT as i64])?;
    }
    let mut dead_letter = tx.prepare_cached(
        "INSERT INTO plugin_failures (plugin, from_seq, to_seq, error, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (from, to, error) in &batch.failures {
        dead_letter.execute(params![batch.plugin, *from as i64, *to as i64, error, now_ms])?;
    }
    let [bound, height, seq] = sql::chain_cursor(batch.chain);
    tx.prepare_cached(
        "INSERT INTO plugin_cursors (plugin, last_seq, bytes, chain_bound, chain_height, chain_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (plugin) DO UPDATE SET last_seq = excluded.last_seq, bytes = bytes + excluded.bytes,
             chain_bound = excluded.chain_bound, chain_height = excluded.chain_height, chain_seq = excluded.chain_seq",
    )?
    .execute(params![batch.plugin, batch.last_seq as i64, batch.bytes_delta, bound, height, seq])?;
    Ok(())
}

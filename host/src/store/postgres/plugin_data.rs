//! Plugins' storage on PostgreSQL: the `plugin_data` table, plugin cursors and dead letters.

use super::Connection;
use crate::store::plugin_data::{
    Bound, CHANGES_KEPT, Change, KeyRange, Matching, Page, PluginBatch, PluginCursor, PluginRead,
};
use crate::store::sql;
use postgres::{GenericClient, Row};

impl PluginRead for Connection {
    fn plugin_value(&mut self, plugin: &str, collection: &str, key: &str) -> anyhow::Result<Option<String>> {
        let row = self.query_opt(
            "SELECT value FROM plugin_data WHERE plugin = $1 AND collection = $2 AND key = $3",
            &[&plugin, &collection, &key],
        )?;
        Ok(row.map(|row| row.get(0)))
    }

    fn plugin_entry_size(&mut self, plugin: &str, collection: &str, key: &str) -> anyhow::Result<Option<u64>> {
        let row = self.query_opt(
            "SELECT octet_length(collection) + octet_length(key) + octet_length(value) FROM plugin_data
             WHERE plugin = $1 AND collection = $2 AND key = $3",
            &[&plugin, &collection, &key],
        )?;
        Ok(row.map(|row| row.get::<_, i32>(0) as u64))
    }

    fn plugin_bytes(&mut self, plugin: &str) -> anyhow::Result<u64> {
        let row = self.query_opt("SELECT bytes FROM plugin_cursors WHERE plugin = $1", &[&plugin])?;
        Ok(row.map_or(0, |row| row.get::<_, i64>(0).max(0) as u64))
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
            "SELECT key, {SIZE} FROM plugin_data
             WHERE plugin = $1 AND collection = $2 AND key {} $3 AND ($4::text IS NULL OR key < $4)
             ORDER BY key LIMIT $5",
            range.start_operator(),
        );
        let sizes =
            self.query(&sql, &[&plugin, &collection, &range.from, &range.end, &(i64::from(bound.entries) + 1)])?;
        self.page(plugin, collection, sizes, bound)
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
            "SELECT key, {SIZE} FROM plugin_data
             WHERE plugin = $1 AND collection = $2 AND {} = $3::text::jsonb AND key {} $4 ORDER BY key LIMIT $5",
            field_expression(field),
            if after.is_some() { ">" } else { ">=" },
        );
        let params: [&(dyn postgres::types::ToSql + Sync); 5] =
            [&plugin, &collection, &value.to_string(), &after.unwrap_or(""), &(i64::from(bound.entries) + 1)];
        let sizes = self.query(&sql, &params)?;
        self.page(plugin, collection, sizes, bound)
    }

    fn plugin_changes(
        &mut self,
        plugin: &str,
        collection: &str,
        matching: Matching,
        after: u64,
        limit: u32,
    ) -> anyhow::Result<Vec<Change>> {
        // $3 is the key, the prefix or the field's value (as JSON text); $6 the prefix's end.
        let (condition, value, end) = match matching {
            Matching::Key(key) => ("key = $3 AND $6::text IS NULL".to_owned(), key.to_owned(), None),
            Matching::Prefix(prefix) => {
                let end = KeyRange::scan(prefix, None).end;
                ("key >= $3 AND ($6::text IS NULL OR key < $6)".to_owned(), prefix.to_owned(), end)
            }
            Matching::Field(field, value) => (
                format!("value IS NOT NULL AND {} = $3::text::jsonb AND $6::text IS NULL", field_expression(field)),
                value.to_string(),
                None,
            ),
        };
        let sql = format!(
            "SELECT id, key, value, seq FROM plugin_changes
             WHERE plugin = $1 AND collection = $2 AND {condition} AND id > $4 ORDER BY id LIMIT $5"
        );
        let rows = self.query(&sql, &[&plugin, &collection, &value, &(after as i64), &i64::from(limit), &end])?;
        let change = |row: &Row| Change {
            id: row.get::<_, i64>(0) as u64,
            key: row.get(1),
            value: row.get(2),
            seq: row.get::<_, i64>(3) as u64,
        };
        Ok(rows.iter().map(change).collect())
    }

    fn plugin_change_span(&mut self) -> anyhow::Result<(u64, u64)> {
        let row = self.query_one("SELECT min(id), max(id) FROM plugin_changes", &[])?;
        let (oldest, newest): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
        Ok((oldest.unwrap_or(0) as u64, newest.unwrap_or(0) as u64))
    }

    fn plugin_count(&mut self, plugin: &str, collection: &str, matching: Matching, cap: u64) -> anyhow::Result<u64> {
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let row = match matching {
            Matching::Prefix(prefix) => {
                let range = KeyRange::scan(prefix, None);
                self.query_one(
                    "SELECT count(*) FROM (SELECT 1 FROM plugin_data WHERE plugin = $1 AND collection = $2
                     AND key >= $3 AND ($4::text IS NULL OR key < $4) LIMIT $5) AS matching",
                    &[&plugin, &collection, &range.from, &range.end, &cap],
                )?
            }
            Matching::Key(key) => self.query_one(
                "SELECT count(*) FROM plugin_data WHERE plugin = $1 AND collection = $2 AND key = $3",
                &[&plugin, &collection, &key],
            )?,
            Matching::Field(field, value) => self.query_one(
                &format!(
                    "SELECT count(*) FROM (SELECT 1 FROM plugin_data WHERE plugin = $1 AND collection = $2
                     AND {} = $3::text::jsonb LIMIT $4) AS matching",
                    field_expression(field)
                ),
                &[&plugin, &collection, &value.to_string(), &cap],
            )?,
        };
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    fn plugin_cursor(&mut self, plugin: &str) -> anyhow::Result<Option<PluginCursor>> {
        let sql = "SELECT last_seq, chain_bound, chain_height, chain_seq FROM plugin_cursors WHERE plugin = $1";
        let row = self.query_opt(sql, &[&plugin])?;
        Ok(row.map(|row| sql::plugin_cursor([row.get(0), row.get(1), row.get(2), row.get(3)])))
    }

    fn plugin_versions(&mut self, name: &str, current: &str) -> anyhow::Result<Vec<String>> {
        let rows = self.query(
            "SELECT plugin FROM plugin_cursors WHERE left(plugin, length($1) + 1) = $1 || '@' AND plugin != $2",
            &[&name, &current],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

/// An entry's size (see [`crate::store::plugin_data::entry_size`]) as a query selects it, read
/// without fetching the value.
const SIZE: &str = "octet_length(key) + octet_length(value)";

impl Connection {
    /// The page of the entries whose (key, size) rows `sizes` lists, in order: the values are
    /// fetched only for the entries within `bound`, so a page never moves more bytes than it
    /// may hold (the server sends every row a query selects).
    fn page(&mut self, plugin: &str, collection: &str, sizes: Vec<Row>, bound: Bound) -> anyhow::Result<Page> {
        let (taken, cut) = bound.fit(sizes.iter().map(|row| row.get::<_, i32>(1) as usize));
        let keys: Vec<&str> = sizes.iter().take(taken).map(|row| row.get(0)).collect();
        let rows = self.query(
            "SELECT key, value FROM plugin_data WHERE plugin = $1 AND collection = $2 AND key = ANY($3) ORDER BY key",
            &[&plugin, &collection, &keys],
        )?;
        Ok(Page { entries: rows.iter().map(|row| (row.get(0), row.get(1))).collect(), cut })
    }
}

/// The value of top-level JSON field `field` (checked by the caller: letters, digits, `_`).
fn field_expression(field: &str) -> String {
    format!("(value::jsonb -> '{field}')")
}

/// Create the index for JSON field `field`, which every plugin and collection declaring an
/// index on a field of that name shares.
pub(super) fn create_index(client: &mut impl GenericClient, field: &str) -> Result<(), postgres::Error> {
    let name = format!("plugin_index_{}", &blake3::hash(field.as_bytes()).to_hex()[..16]);
    client.batch_execute(&format!(
        "CREATE INDEX IF NOT EXISTS \"{name}\" ON plugin_data (plugin, collection, {}, key)",
        field_expression(field)
    ))
}

/// Remove everything stored under `storage_id`: entries and cursor (an older version's).
pub(super) fn remove_all(tx: &mut impl GenericClient, storage_id: &str) -> Result<(), postgres::Error> {
    tx.execute("DELETE FROM plugin_data WHERE plugin = $1", &[&storage_id])?;
    tx.execute("DELETE FROM plugin_cursors WHERE plugin = $1", &[&storage_id])?;
    tx.execute("DELETE FROM plugin_changes WHERE plugin = $1", &[&storage_id])?;
    Ok(())
}

/// Write one plugin's batch: its storage changes, dead letters and cursor.
pub(super) fn apply(tx: &mut impl GenericClient, batch: &PluginBatch, now_ms: i64) -> Result<(), postgres::Error> {
    let upsert = tx.prepare(
        "INSERT INTO plugin_data (plugin, collection, key, value) VALUES ($1, $2, $3, $4)
         ON CONFLICT (plugin, collection, key) DO UPDATE SET value = excluded.value",
    )?;
    let delete = tx.prepare("DELETE FROM plugin_data WHERE plugin = $1 AND collection = $2 AND key = $3")?;
    for write in &batch.writes {
        match &write.value {
            Some(value) => tx.execute(&upsert, &[&batch.plugin, &write.collection, &write.key, value])?,
            None => tx.execute(&delete, &[&batch.plugin, &write.collection, &write.key])?,
        };
    }
    let mut newest: Option<i64> = None;
    for write in batch.logged_writes() {
        let row = tx.query_one(
            "INSERT INTO plugin_changes (plugin, collection, key, value, seq) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&batch.plugin, &write.collection, &write.key, &write.value, &(batch.last_seq as i64)],
        )?;
        newest = Some(row.get(0));
    }
    if let Some(newest) = newest {
        // The oldest changes past those kept (a range of the primary key: the few a batch adds).
        tx.execute("DELETE FROM plugin_changes WHERE id <= $1", &[&(newest - CHANGES_KEPT as i64)])?;
    }
    for (from, to, error) in &batch.failures {
        tx.execute(
            "INSERT INTO plugin_failures (plugin, from_seq, to_seq, error, at_ms) VALUES ($1, $2, $3, $4, $5)",
            &[&batch.plugin, &(*from as i64), &(*to as i64), error, &now_ms],
        )?;
    }
    let [bound, height, seq] = sql::chain_cursor(batch.chain);
    tx.execute(
        "INSERT INTO plugin_cursors (plugin, last_seq, bytes, chain_bound, chain_height, chain_seq)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (plugin) DO UPDATE SET last_seq = excluded.last_seq,
             bytes = plugin_cursors.bytes + excluded.bytes, chain_bound = excluded.chain_bound,
             chain_height = excluded.chain_height, chain_seq = excluded.chain_seq",
        &[&batch.plugin, &(batch.last_seq as i64), &batch.bytes_delta, &bound, &height, &seq],
    )?;
    Ok(())
}

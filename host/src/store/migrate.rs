//! `sluice migrate`: copy a SQLite store into an empty PostgreSQL database, so that a user moves
//! to the server without ingesting again. Every table is copied as it is (events with their
//! sequence numbers, sightings, node cursors, gaps, rejected frames, contract events, plugin
//! storage, cursors and dead letters), in one transaction, with PostgreSQL's binary `COPY`.

use super::{postgres, sqlite};
use ::postgres::binary_copy::BinaryCopyInWriter;
use ::postgres::types::{ToSql, Type};
use anyhow::{Context, bail};
use rusqlite::types::ValueRef;
use std::path::Path;

/// Every table of a store (both backends name them and their columns alike).
const TABLES: &[&str] = &[
    "events",
    "sightings",
    "rejected_frames",
    "gaps",
    "contract_events",
    "node_cursors",
    "plugin_data",
    "plugin_cursors",
    "plugin_failures",
];

/// Tables whose `id` PostgreSQL numbers itself: their counters continue after the copied ids.
const NUMBERED: &[&str] = &["rejected_frames", "gaps", "plugin_failures"];

/// Copy the SQLite store at `from` (which no `sluice run` may be writing) into the PostgreSQL
/// database at `to`, which must hold no store yet. Returns the rows copied, by table.
pub fn migrate(from: &Path, to: &str) -> anyhow::Result<Vec<(&'static str, u64)>> {
    if !from.is_file() {
        bail!("{}: no such file", from.display());
    }
    // The file's tables brought up to date, as `sluice run` would.
    drop(sqlite::Sqlite::open(from).with_context(|| from.display().to_string())?);
    let source = sqlite::open_read(from)?;
    let mut target = postgres::Connection::open_for_import(to)?;
    let name = target.name().to_owned();
    // One snapshot of the file, whatever happens to it meanwhile.
    source.execute_batch("BEGIN")?;
    let total = TABLES.iter().map(|table| rows_in(&source, table)).sum::<anyhow::Result<u64>>()?;
    let progress = indicatif::ProgressBar::new(total).with_message(format!("copying into {name}"));
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} rows, {per_sec}, {eta} left")
            .expect("a valid template"),
    );
    let mut tx = target.client().transaction()?;
    let mut copied = Vec::new();
    for &table in TABLES {
        let rows = copy_table(&source, &mut tx, table, &progress).with_context(|| format!("copying {table}"))?;
        copied.push((table, rows));
    }
    for table in NUMBERED {
        let next = format!("SELECT coalesce(max(id), 0) + 1 FROM {table}");
        tx.execute(&format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), ({next}), false)"), &[])?;
    }
    tx.commit()?;
    progress.finish_and_clear();
    // Statistics for the query planner now, not when autovacuum gets to the new tables.
    target.client().batch_execute("ANALYZE")?;
    Ok(copied)
}

fn rows_in(source: &rusqlite::Connection, table: &str) -> anyhow::Result<u64> {
    Ok(source.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get::<_, i64>(0))? as u64)
}

/// Copy `table`'s rows; how many.
fn copy_table(
    source: &rusqlite::Connection,
    tx: &mut ::postgres::Transaction<'_>,
    table: &str,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<u64> {
    let columns = tx.query(
        "SELECT attname::text, atttypid FROM pg_attribute
         WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        &[&table],
    )?;
    let names: Vec<String> = columns.iter().map(|row| row.get(0)).collect();
    let types: Vec<Type> = columns.iter().map(|row| Type::from_oid(row.get(1)).unwrap_or(Type::UNKNOWN)).collect();
    let list = names.join(", ");
    let mut select = source.prepare(&format!("SELECT {list} FROM {table}"))?;
    let sink = tx.copy_in(&format!("COPY {table} ({list}) FROM STDIN (FORMAT binary)"))?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    let mut rows = select.query([])?;
    let mut copied = 0;
    while let Some(row) = rows.next()? {
        let cells = (0..types.len())
            .map(|i| cell(row.get_ref(i)?, &types[i]).with_context(|| format!("column {}", names[i])))
            .collect::<anyhow::Result<Vec<_>>>()?;
        writer.write(&cells.iter().map(|cell| cell.as_ref() as &(dyn ToSql + Sync)).collect::<Vec<_>>())?;
        copied += 1;
        progress.inc(1);
    }
    writer.finish()?;
    Ok(copied)
}

/// A SQLite value as the PostgreSQL column of type `to` takes it.
fn cell(value: ValueRef<'_>, to: &Type) -> anyhow::Result<Box<dyn ToSql + Sync>> {
    Ok(match value {
        ValueRef::Null if *to == Type::INT8 => Box::new(None::<i64>),
        ValueRef::Null if *to == Type::INT4 => Box::new(None::<i32>),
        ValueRef::Null if *to == Type::INT2 => Box::new(None::<i16>),
        ValueRef::Null if *to == Type::TEXT => Box::new(None::<String>),
        ValueRef::Null if *to == Type::BYTEA => Box::new(None::<Vec<u8>>),
        ValueRef::Integer(v) if *to == Type::INT8 => Box::new(v),
        ValueRef::Integer(v) if *to == Type::INT4 => Box::new(i32::try_from(v)?),
        ValueRef::Integer(v) if *to == Type::INT2 => Box::new(i16::try_from(v)?),
        ValueRef::Text(text) if *to == Type::TEXT => Box::new(std::str::from_utf8(text)?.to_owned()),
        ValueRef::Blob(bytes) if *to == Type::BYTEA => Box::new(bytes.to_vec()),
        value => bail!("a {} value, where PostgreSQL holds {to}", value.data_type()),
    })
}

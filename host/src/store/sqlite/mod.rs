//! The embedded backend: one SQLite file in WAL mode, written by one connection while pooled
//! read-only connections read.

mod checkpoint;
mod connection;
mod contract_events;
mod plugin_data;
mod read;
mod rows;
mod schema;
mod write;

pub use write::Sqlite;

use std::path::Path;

/// A read connection to the database file at `path` (which the writer has created).
pub fn open_read(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    Ok(connection::open_read_only(path)?)
}

/// Bytes the database at `path` takes on disk: its file and write-ahead log.
pub fn disk_bytes(path: &Path) -> u64 {
    let wal = path.with_file_name(format!("{}-wal", path.file_name().unwrap_or_default().to_string_lossy()));
    [path.to_path_buf(), wal].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
}

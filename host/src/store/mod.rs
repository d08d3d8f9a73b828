//! The event log: every event stored once, with a store-wide sequence number, and what the
//! plugins keep. One interface ([`Read`], [`Writer`]) over a module per backend: `sqlite/`, the
//! embedded default (one file, WAL).
//!
//! One [`Writer`] (owned by the pipeline thread) appends in batches; API handlers read through
//! [`Store`], which lends out read connections from a small pool.

pub mod contract_events;
pub mod plugin_data;
pub mod read;
mod sqlite;
mod write;

pub use read::{Read, Store};
pub use write::{Derived, Outcome, Processor, Writer};

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An event as the store holds it, which is also what the bus and the API hand out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Store-wide sequence number, from 1, without gaps in insertion order.
    pub seq: u64,
    /// Event type (`BlockAdded`, ...).
    pub kind: String,
    /// Node that delivered it first.
    pub node: String,
    /// Arrival time, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// The node's JSON, as received.
    pub raw: Arc<str>,
    /// Plugin annotations as a JSON object (plugin name → value), if any plugin annotated.
    pub annotations: Option<String>,
    /// The attached filters that dropped it (comma-separated names): hidden where they are
    /// attached only.
    pub hidden_by: Option<String>,
    /// Account hash of the transaction's sender, for accepted and processed transaction events.
    pub account: Option<String>,
}

impl StoredEvent {
    /// Whether the attached filter `filter` dropped it.
    pub fn hidden_by(&self, filter: &str) -> bool {
        self.hidden_by.as_deref().is_some_and(|names| names.split(',').any(|name| name == filter))
    }
}

/// Where the database lives. `:memory:` becomes a file in a temporary directory that is
/// removed when the last handle is dropped, so readers and the writer still share it.
#[derive(Debug, Clone)]
pub struct Location {
    path: PathBuf,
    _temporary: Option<Arc<tempfile::TempDir>>,
}

impl Location {
    /// Resolve the configured `storage.path`, creating parent directories.
    pub fn resolve(configured: &str) -> std::io::Result<Location> {
        if configured == ":memory:" {
            let dir = tempfile::Builder::new().prefix("sluice-").tempdir()?;
            let path = dir.path().join("sluice.db");
            return Ok(Location { path, _temporary: Some(Arc::new(dir)) });
        }
        let path = PathBuf::from(configured);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| std::io::Error::new(e.kind(), format!("creating {}: {e}", parent.display())))?;
        }
        Ok(Location { path, _temporary: None })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A new read connection to the database at `location`.
pub fn open_read(location: &Location) -> anyhow::Result<Box<dyn Read>> {
    Ok(Box::new(sqlite::open_read(location.path())?))
}

/// The write connection to the database at `location`, its schema brought up to date.
fn open_database(location: &Location) -> anyhow::Result<Box<dyn write::Database>> {
    Ok(Box::new(sqlite::Sqlite::open(location)?))
}

use crate::event::key_hash;

//! The event log: every event stored once, with a store-wide sequence number, and what the
//! plugins keep. One interface ([`Read`], [`Writer`]) over a module per backend: `sqlite/`, the
//! embedded default (one file, WAL), and `postgres/`, a server several instances share.
//!
//! One [`Writer`] (owned by the pipeline thread) appends in batches; API handlers read through
//! [`Store`], which lends out read connections from a small pool.

pub mod appends;
mod chain_order;
pub mod contract_events;
pub mod migrate;
pub mod plugin_data;
mod postgres;
pub mod read;
mod sql;
mod sqlite;
mod write;

pub use read::{Read, Store};
pub use write::{Derived, NoPlugins, Outcome, Processor, Writer};

use anyhow::Context;
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
    /// Where it is in the chain: the height of its block, or for an event of no block the
    /// highest block stored when it was (see `chain_order.rs`). Reading by `(chain_height, seq)`
    /// is reading in chain order.
    pub chain_height: u64,
}

impl StoredEvent {
    /// Whether the attached filter `filter` dropped it.
    pub fn hidden_by(&self, filter: &str) -> bool {
        self.hidden_by.as_deref().is_some_and(|names| names.split(',').any(|name| name == filter))
    }
}

/// Where the database lives: a SQLite file, or a PostgreSQL server.
#[derive(Debug, Clone)]
pub struct Location {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    /// `:memory:` becomes a file in a temporary directory that is removed when the last handle
    /// is dropped, so readers and the writer still share it.
    Sqlite { path: PathBuf, _temporary: Option<Arc<tempfile::TempDir>> },
    /// The URL (which may hold a password: never shown) and how to name the server.
    Postgres { url: Arc<str>, name: String },
}

impl Location {
    /// Resolve the configured `storage.path`, creating parent directories.
    pub fn resolve(configured: &str) -> std::io::Result<Location> {
        if configured == ":memory:" {
            let dir = tempfile::Builder::new().prefix("sluice-").tempdir()?;
            let path = dir.path().join("sluice.db");
            return Ok(Location { backend: Backend::Sqlite { path, _temporary: Some(Arc::new(dir)) } });
        }
        let path = PathBuf::from(configured);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| std::io::Error::new(e.kind(), format!("creating {}: {e}", parent.display())))?;
        }
        Ok(Location { backend: Backend::Sqlite { path, _temporary: None } })
    }

    /// The database `[storage]` names: PostgreSQL when it gives a URL, else the SQLite file.
    pub fn of(storage: &crate::config::StorageConfig) -> anyhow::Result<Location> {
        match storage.url() {
            Some(url) => Location::postgres(&url),
            None => Ok(Location::resolve(&storage.path).context("storage.path")?),
        }
    }

    /// Where `sluice serve` reads: `[storage] read_url` (a replica) if given, else as [`Self::of`].
    pub fn for_reading(storage: &crate::config::StorageConfig) -> anyhow::Result<Location> {
        match storage.read_url() {
            Some(_) if storage.url().is_none() => {
                anyhow::bail!("storage.read_url is a replica of a PostgreSQL database: storage.url must name it too")
            }
            Some(url) => Location::postgres(&url),
            None => Location::of(storage),
        }
    }

    /// A PostgreSQL database (`postgresql://user:password@host:port/db`).
    pub fn postgres(url: &str) -> anyhow::Result<Location> {
        let name = postgres::describe(url)?;
        Ok(Location { backend: Backend::Postgres { url: Arc::from(url), name } })
    }

    /// Where compiled plugins are cached unless configured: beside a database file, else in
    /// `./data`.
    pub fn default_plugin_cache(&self) -> PathBuf {
        self.path().map_or_else(|| PathBuf::from("./data/plugin-cache"), |path| path.with_file_name("plugin-cache"))
    }

    /// The database file, when it is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite { path, .. } => Some(path),
            Backend::Postgres { .. } => None,
        }
    }
}

impl std::fmt::Display for Location {
    /// The file, or the server without credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Sqlite { path, .. } => write!(f, "{}", path.display()),
            Backend::Postgres { name, .. } => f.write_str(name),
        }
    }
}

/// A new read connection to the database at `location`.
pub fn open_read(location: &Location) -> anyhow::Result<Box<dyn Read>> {
    Ok(match &location.backend {
        Backend::Sqlite { path, .. } => Box::new(sqlite::open_read(path)?),
        Backend::Postgres { url, .. } => Box::new(postgres::Connection::open(url)?),
    })
}

/// The write connection to the database at `location`, its schema brought up to date. On
/// PostgreSQL, waits until this instance is the leader (see [`postgres::Postgres::lead`]).
fn open_database(location: &Location, on_standby: &mut dyn FnMut()) -> anyhow::Result<Box<dyn write::Database>> {
    Ok(match &location.backend {
        Backend::Sqlite { path, .. } => Box::new(sqlite::Sqlite::open(path)?),
        Backend::Postgres { url, .. } => Box::new(postgres::Postgres::lead(url, on_standby)?),
    })
}

use crate::event::key_hash;

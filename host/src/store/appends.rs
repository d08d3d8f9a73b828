//! Waking a reader when the writing instance, another process perhaps on another machine,
//! commits new events: PostgreSQL's `LISTEN`/`NOTIFY`, or polling a SQLite file.

use super::{Backend, Location};
use std::time::Duration;

/// How often a reader of a SQLite file looks for new events (a read that finds none costs one
/// index lookup).
const SQLITE_POLL: Duration = Duration::from_millis(20);

/// Wake-ups when events are appended.
pub trait Appends: Send {
    /// Return when new events may have been committed since the last call, or after `timeout`,
    /// with the highest sequence number committed if it is known. Returning early is allowed:
    /// the caller reads the log to see.
    fn wait(&mut self, timeout: Duration) -> anyhow::Result<Option<u64>>;
}

/// Wake-ups for the database at `location` (the primary: a replica cannot `LISTEN`); from now
/// on, no commit is missed.
pub fn watch(location: &Location) -> anyhow::Result<Box<dyn Appends>> {
    Ok(match &location.backend {
        Backend::Sqlite { .. } => Box::new(Polling),
        Backend::Postgres { url, .. } => Box::new(super::postgres::Listener::open(url)?),
    })
}

/// SQLite has no notifications across processes: wake up every [`SQLITE_POLL`].
struct Polling;

impl Appends for Polling {
    fn wait(&mut self, timeout: Duration) -> anyhow::Result<Option<u64>> {
        std::thread::sleep(timeout.min(SQLITE_POLL));
        Ok(None)
    }
}

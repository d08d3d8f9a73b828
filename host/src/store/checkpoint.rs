//! Copying the write-ahead log back into the database file (a checkpoint) on a thread of its
//! own. SQLite's automatic checkpoint runs inside the commit that crosses its threshold, so the
//! writer (and every event behind it) waited for it: 230 ms for a 256 MiB log, the live SSE
//! latency's p99 (BENCHMARKS.md). A passive checkpoint here runs beside the writer, which keeps
//! appending, and copies only what was written since the last one.

use super::Location;
use rusqlite::Connection;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How often the log is copied back.
const EVERY: Duration = Duration::from_secs(1);

/// The checkpointing thread; stopped when dropped.
pub struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Start checkpointing the database at `location` (which the writer has opened in WAL mode).
    pub fn start(location: &Location) -> anyhow::Result<Checkpointer> {
        let conn = Connection::open(location.path())?;
        super::schema::configure(&conn)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new().name("checkpoint".into()).spawn(move || {
            let (stopped, wake) = &*signal;
            let mut stopped = stopped.lock().expect("checkpoint lock");
            while !*stopped {
                (stopped, _) = wake.wait_timeout(stopped, EVERY).expect("checkpoint lock");
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!("checkpointing the write-ahead log failed (it is tried again): {e}");
                }
            }
        })?;
        Ok(Checkpointer { stop, thread: Some(thread) })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().expect("checkpoint lock") = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            _ = thread.join();
        }
    }
}

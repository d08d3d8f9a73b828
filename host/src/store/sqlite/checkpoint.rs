//! Copying the write-ahead log back into the database file (a checkpoint) on a thread of its
//! own. SQLite's automatic checkpoint runs inside the commit that crosses its threshold, so the
//! writer (and every event behind it) waited for it: 230 ms for a 256 MiB log, the live SSE
//! latency's p99 (BENCHMARKS.md). A passive checkpoint here runs beside the writer, which keeps
//! appending, and copies only what was written since the last one.
//!
//! The log only starts over once a checkpoint has copied all of it, and a writer that never
//! pauses keeps appending while this thread copies: on its own the log would grow without end
//! (7 GB over a million events, 30 MB/s at 1,000 live events/s). So the writer keeps SQLite's
//! automatic checkpoint as a backstop ([`set_backstop`]): a commit that finds the log that
//! long copies only the little this thread has not, and the log starts over.

use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How often the log is copied back. Every second let the log reach the backstop at 1,000 live
/// events/s (the commit that finished the copy gave a 14–32 ms maximum latency); every 200 ms
/// keeps it under 25 MiB, with the same ingest rate (BENCHMARKS.md).
const EVERY: Duration = Duration::from_millis(200);

/// The log's length, in pages, past which a commit finishes the copy (64 MiB of 16 KiB pages).
const BACKSTOP_PAGES: u32 = 4096;

/// Give the writer's connection SQLite's automatic checkpoint as the backstop.
pub fn set_backstop(writer: &Connection) -> rusqlite::Result<()> {
    writer.pragma_update(None, "wal_autocheckpoint", BACKSTOP_PAGES)
}

/// The checkpointing thread; stopped when dropped.
pub struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Start checkpointing the database at `path` (which the writer has opened in WAL mode).
    pub fn start(path: &Path) -> anyhow::Result<Checkpointer> {
        let conn = Connection::open(path)?;
        super::connection::configure(&conn)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new().name("checkpoint".into()).spawn(move || {
            let (stopped, wake) = &*signal;
            let mut stopped = stopped.lock().expect("checkpoint lock");
            // Failing since (a full disk fails every 200 ms: the log says so once, and when it ends).
            let mut failing = false;
            while !*stopped {
                (stopped, _) = wake.wait_timeout(stopped, EVERY).expect("checkpoint lock");
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    Err(e) if !failing => {
                        tracing::warn!("checkpointing the write-ahead log failed (tried again every {EVERY:?}): {e}");
                        failing = true;
                    }
                    Ok(()) if failing => {
                        tracing::info!("checkpointing the write-ahead log works again");
                        failing = false;
                    }
                    _ => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that never pauses, rewriting the same rows, writes the log 16 times the backstop's
    /// length; the log stays a few times that length (without the backstop it grew to all of it).
    #[test]
    fn the_log_stays_bounded_under_a_writer_that_never_pauses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.db");
        let writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        super::super::connection::configure(&writer).unwrap();
        set_backstop(&writer).unwrap();
        writer.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)").unwrap();
        let _checkpointer = Checkpointer::start(&path).unwrap();
        let page_size: u64 = writer.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        let backstop = u64::from(BACKSTOP_PAGES) * page_size;
        let wal = path.with_extension("db-wal");
        let (mut written, mut longest) = (0, 0);
        let row = vec![7u8; 64 * 1024];
        while written < 16 * backstop {
            let tx = writer.unchecked_transaction().unwrap();
            for id in 0..8 {
                tx.execute("INSERT OR REPLACE INTO t (id, v) VALUES (?1, ?2)", (id, &row)).unwrap();
            }
            tx.commit().unwrap();
            written += 8 * row.len() as u64;
            longest = longest.max(std::fs::metadata(&wal).unwrap().len());
        }
        assert!(longest < 4 * backstop, "the log reached {longest} bytes (backstop {backstop})");
    }
}

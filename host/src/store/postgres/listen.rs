//! Wake-ups on PostgreSQL: the leader sends a notification on [`CHANNEL`] with every batch
//! that stored events, its last sequence number as the payload (delivered when the transaction
//! commits, in commit order); readers of the log `LISTEN` on it, on the primary (a replica
//! refuses `LISTEN`), and know up to where a replica must have replayed.

use super::Connection;
use crate::store::appends::Appends;
use postgres::fallible_iterator::FallibleIterator;
use std::time::Duration;

/// The channel the leader notifies when it commits new events.
pub const CHANNEL: &str = "sluice_appended";

/// A connection listening on [`CHANNEL`].
pub struct Listener {
    connection: Connection,
    /// The connection generation that listens (notifications are the session's).
    listening: Option<u64>,
}

impl Listener {
    /// Connect to `url` and listen.
    pub fn open(url: &str) -> anyhow::Result<Listener> {
        let mut listener = Listener { connection: Connection::open(url)?, listening: None };
        listener.listen()?;
        Ok(listener)
    }

    /// Listen, on a new session if the connection was lost; whether it had to (then commits
    /// may have been missed).
    fn listen(&mut self) -> anyhow::Result<bool> {
        self.connection.reopen_if_lost()?;
        if self.listening == Some(self.connection.generation) {
            return Ok(false);
        }
        self.connection.client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        self.listening = Some(self.connection.generation);
        Ok(true)
    }
}

impl Appends for Listener {
    fn wait(&mut self, timeout: Duration) -> anyhow::Result<Option<u64>> {
        if self.listen()? {
            return Ok(None);
        }
        let mut notifications = self.connection.client.notifications();
        let first = notifications.timeout_iter(timeout).next()?;
        let mut last = first.as_ref().and_then(sequence);
        // Several commits since the last call are one wake-up.
        while let Some(notification) = notifications.iter().next()? {
            last = last.max(sequence(&notification));
        }
        Ok(last)
    }
}

/// The sequence number a notification announces (`None` if it holds none).
fn sequence(notification: &postgres::Notification) -> Option<u64> {
    notification.payload().parse().ok()
}

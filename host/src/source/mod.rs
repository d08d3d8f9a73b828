//! Node connections: each configured node is followed by its own task, which turns SSE frames
//! into [`Delivery`] values for the pipeline and reconnects (resuming with `start_from`) after
//! every drop.

mod backfill;
mod backoff;
mod casper;
mod rpc;

pub use backfill::backfill;
pub use casper::follow;

use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Where a node connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Opening the connection.
    Connecting,
    /// Receiving events.
    Connected,
    /// Waiting before the next attempt.
    Reconnecting,
}

/// Live view of one node connection, shared with the API.
#[derive(Debug, Serialize)]
pub struct NodeStatus {
    /// Configured name.
    pub name: String,
    /// Current state.
    pub state: Mutex<ConnectionState>,
    /// API version the node announced last.
    pub api_version: Mutex<Option<String>>,
    /// `build_version` from the node's REST `/status`, when `rest_url` is configured.
    pub build_version: Mutex<Option<String>>,
    /// Event API in use (`1.x` or `2.x`), once known.
    pub protocol: Mutex<Option<&'static str>>,
    /// Last SSE id received, per stream (`name` on 2.x; `name/main`, ... on 1.x).
    pub last_event_ids: Mutex<std::collections::BTreeMap<String, u32>>,
    /// Frames received (events, rejected frames and metadata).
    pub frames: AtomicU64,
    /// Frames that could not be parsed.
    pub rejected: AtomicU64,
    /// Connections lost or refused.
    pub disconnects: AtomicU64,
    /// Times the node's ids went backwards (it restarted and numbers events from 0 again).
    pub restarts: AtomicU64,
    /// Times the node started after the id asked for: its buffer no longer held those events.
    pub gaps: AtomicU64,
    /// Blocks fetched over JSON-RPC to fill gaps.
    pub backfilled_blocks: AtomicU64,
}

impl NodeStatus {
    /// A status for a node about to connect.
    pub fn new(name: &str) -> NodeStatus {
        NodeStatus {
            name: name.to_owned(),
            state: Mutex::new(ConnectionState::Connecting),
            api_version: Mutex::default(),
            build_version: Mutex::default(),
            protocol: Mutex::default(),
            last_event_ids: Mutex::default(),
            frames: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            backfilled_blocks: AtomicU64::new(0),
        }
    }

    fn set_state(&self, state: ConnectionState) {
        *self.state.lock().expect("status lock") = state;
    }

    fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}

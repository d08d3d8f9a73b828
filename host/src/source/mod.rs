//! Source connections: each configured source is followed by its own task, which turns what
//! arrives into [`Delivery`](crate::event::Delivery) values for the pipeline and reconnects after
//! every drop. Casper nodes (SSE, resuming with `start_from`, recording gaps for
//! [`crate::backfill`]) are in `casper`; CSPR.cloud and F1r3fly (WebSocket) in `cspr_cloud` and `f1r3fly`
//! over the shared `websocket` loop.

pub(crate) mod backoff;
mod casper;
mod cspr_cloud;
mod f1r3fly;
mod sse;
mod websocket;

pub use casper::follow;
pub use cspr_cloud::follow_cspr_cloud;
pub use f1r3fly::follow_f1r3fly;

use crate::event::Payload;
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
    /// The last attempt was refused for good reason (bad credentials, forbidden): retrying
    /// slowly until the operator fixes it.
    Failed,
    /// The source answered in a protocol or version Sluice does not speak: retrying slowly.
    Incompatible,
}

/// Most event types counted apart per source.
const MAX_KINDS: usize = 64;

/// The state after a source refused a connection with HTTP status `status`: credentials or
/// permissions (401, 403) need the operator; a missing endpoint (404) means the wrong protocol.
fn state_after_refusal(status: u16) -> ConnectionState {
    match status {
        401 | 403 => ConnectionState::Failed,
        404 => ConnectionState::Incompatible,
        _ => ConnectionState::Reconnecting,
    }
}

/// Live view of one source connection (a Casper node, a CSPR.cloud stream, an F1r3fly node),
/// shared with the API.
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
    /// What the source speaks: `1.x` or `2.x` (Casper event API, once known), `cspr.cloud`,
    /// `f1r3fly`.
    pub protocol: Mutex<Option<&'static str>>,
    /// Last SSE id received, per stream (`name` on 2.x; `name/main`, ... on 1.x).
    pub last_event_ids: Mutex<std::collections::BTreeMap<String, u32>>,
    /// Frames received (events, rejected frames and metadata).
    pub frames: AtomicU64,
    /// Bytes received.
    pub bytes: AtomicU64,
    /// Events received, per event type.
    pub events_by_kind: Mutex<std::collections::BTreeMap<String, u64>>,
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
    /// Why the last connection ended or failed, and when.
    pub last_error: Mutex<Option<SourceError>>,
}

/// Why a source's connection ended or failed.
#[derive(Debug, Clone, Serialize)]
pub struct SourceError {
    /// What happened.
    pub message: String,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: i64,
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
            bytes: AtomicU64::new(0),
            events_by_kind: Mutex::default(),
            rejected: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            backfilled_blocks: AtomicU64::new(0),
            last_error: Mutex::default(),
        }
    }

    /// Record why the connection ended or failed (and count the disconnect).
    fn disconnected(&self, why: &str) {
        self.count(&self.disconnects);
        let message = why.chars().take(1024).collect();
        *self.last_error.lock().expect("status lock") = Some(SourceError { message, at_ms: crate::event::now_ms() });
    }

    fn set_state(&self, state: ConnectionState) {
        *self.state.lock().expect("status lock") = state;
    }

    /// About to connect again: a `failed` or `incompatible` state stays until a connection
    /// succeeds, so it is what an operator sees while the source keeps refusing.
    fn connecting(&self) {
        let mut state = self.state.lock().expect("status lock");
        if !matches!(*state, ConnectionState::Failed | ConnectionState::Incompatible) {
            *state = ConnectionState::Connecting;
        }
    }

    /// Count what one frame (or message) from the source turned out to be.
    fn record(&self, payload: &Payload) {
        self.count(&self.frames);
        match payload {
            Payload::Event(event) => self.count_event(&event.kind),
            Payload::Rejected { .. } => self.count(&self.rejected),
            Payload::ApiVersion(version) => *self.api_version.lock().expect("status lock") = Some(version.clone()),
            Payload::Block(_) | Payload::Gap { .. } | Payload::Backfilled { .. } => {}
        }
    }

    fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Count an event under its type; past [`MAX_KINDS`] types (a source names them), under
    /// `other`.
    fn count_event(&self, kind: &str) {
        let mut kinds = self.events_by_kind.lock().expect("status lock");
        if let Some(count) = kinds.get_mut(kind) {
            *count += 1;
        } else if kinds.len() < MAX_KINDS {
            kinds.insert(kind.to_owned(), 1);
        } else {
            *kinds.entry("other".to_owned()).or_default() += 1;
        }
    }
}

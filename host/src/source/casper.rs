//! Follow one Casper node's SSE streams (2.x `GET /events`; 1.x `/events/main`, `/events/deploys`,
//! `/events/sigs`), each resuming from the last id stored for it.

use super::backoff::{Backoff, HEALTHY};
use super::sse::{SseFrame, SseSplitter};
use super::{ConnectionState, NodeStatus, state_after_refusal};
use crate::config::{NodeConfig, Protocol};
use crate::event::{Delivery, Frame, Payload, StreamCursor};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum Disconnect {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("no response within {0:?} (connect_timeout_secs)")]
    NoAnswer(Duration),
    #[error("no bytes for {0:?} (no_message_timeout_secs)")]
    Silent(Duration),
    #[error("the node closed the stream")]
    Closed,
    /// The node restarted and numbers events anew: resume from the start of its new buffer.
    #[error("the node restarted ({0})")]
    Restarted(String),
    /// The pipeline has shut down: stop following.
    #[error("shutting down")]
    Shutdown,
}

/// Follow `node` forever: find its event API, then follow each of its SSE streams (one on 2.x,
/// three on 1.x), handing every frame to `out` and reconnecting with backoff. `cursors` holds
/// where each stream stands. Returns when a delivery finds `out` closed; the caller aborts the
/// task to stop it sooner.
pub async fn follow(
    node: NodeConfig,
    cursors: HashMap<String, StreamCursor>,
    status: Arc<NodeStatus>,
    out: mpsc::Sender<Delivery>,
) {
    let name: Arc<str> = Arc::from(node.name.get_ref().as_str());
    let client = match reqwest::Client::builder().connect_timeout(node.connect_timeout()).build() {
        Ok(client) => client,
        Err(e) => return tracing::error!(node = %name, "cannot build an HTTP client: {e}"),
    };
    let build_version = match &node.rest_url {
        Some(rest_url) => read_build_version(&client, rest_url, node.connect_timeout(), &name, &status).await,
        None => None,
    };
    let mut protocol = match (node.protocol, build_version) {
        (Protocol::Auto, Some(version)) if version.starts_with("1.") => Protocol::V1,
        (Protocol::Auto, Some(_)) => Protocol::V2,
        (configured, _) => configured,
    };
    loop {
        let channels: &[&str] = if protocol == Protocol::V1 { &["main", "deploys", "sigs"] } else { &[""] };
        *status.protocol.lock().expect("status lock") = Some(if protocol == Protocol::V1 { "1.x" } else { "2.x" });
        let streams = channels.iter().map(|channel| {
            let (stream, path) = match *channel {
                "" => (name.to_string(), "events".to_owned()),
                channel => (format!("{name}/{channel}"), format!("events/{channel}")),
            };
            let stored = cursors.get(&stream).copied();
            let connection = Connection {
                name: name.clone(),
                stream: Arc::from(stream),
                path,
                status: status.clone(),
                out: out.clone(),
                last_id: stored.map(|cursor| cursor.last_id),
                last_identity: stored.and_then(|cursor| cursor.identity),
                expect: None,
                after_restart: false,
                stopped: false,
            };
            connection.follow(&client, &node, protocol == Protocol::Auto)
        });
        let ended = futures::future::join_all(streams).await;
        if protocol == Protocol::Auto && ended.contains(&Ended::NoSuchStream) {
            tracing::info!(node = %name, "no 2.x /events: following the 1.x streams");
            protocol = Protocol::V1;
            continue;
        }
        return;
    }
}

/// Why a stream stopped being followed.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The pipeline is gone.
    Shutdown,
    /// The node answered 404 while its protocol was being probed.
    NoSuchStream,
}

/// One SSE stream of a node and where it stands.
struct Connection {
    name: Arc<str>,
    /// Cursor key: the node name (2.x) or `name/main` etc. (1.x).
    stream: Arc<str>,
    /// URL path below the node's `url`: `events` or `events/main` etc.
    path: String,
    status: Arc<NodeStatus>,
    out: mpsc::Sender<Delivery>,
    last_id: Option<u32>,
    /// What identifies the frame stored under `last_id`, when it was one.
    last_identity: Option<[u8; 16]>,
    /// What the first frame of this connection must be, until it arrives.
    expect: Option<First>,
    /// The node restarted: the next connection asks from 0 and a later first id is a gap.
    after_restart: bool,
    /// The last frame was the node's `"Shutdown"`: it sent everything before it stopped.
    stopped: bool,
}

/// What the first frame of a connection must be.
#[derive(Debug, Clone, Copy)]
enum First {
    /// The frame stored last again (asked from its id): the same frame means the node's
    /// numbering goes on; another one, or a lower id, that it restarted; a higher id, a gap.
    Stored { id: u32, identity: [u8; 16] },
    /// The id asked for: a lower one means the node restarted; a higher one, a gap.
    From(u32),
}

impl Connection {
    /// Connect, deliver, reconnect with backoff, until shutdown (or, when `probing`, until the
    /// node says the stream does not exist before it ever answered).
    async fn follow(mut self, client: &reqwest::Client, node: &NodeConfig, probing: bool) -> Ended {
        let mut backoff = Backoff::new();
        let mut probing = probing;
        loop {
            let mut connected_since = None;
            let progress_from = self.last_id;
            let ended = self.run(client, node, &mut connected_since).await;
            match &ended {
                Disconnect::Shutdown => return Ended::Shutdown,
                Disconnect::Http(e) if probing && e.status() == Some(reqwest::StatusCode::NOT_FOUND) => {
                    return Ended::NoSuchStream;
                }
                _ => {}
            }
            // Once the stream has answered, a later 404 is a passing fault, not a protocol.
            probing &= connected_since.is_none();
            let status = &self.status;
            status.disconnected(&ended.to_string());
            status.set_state(match &ended {
                Disconnect::Http(e) => {
                    e.status().map_or(ConnectionState::Reconnecting, |s| state_after_refusal(s.as_u16()))
                }
                _ => ConnectionState::Reconnecting,
            });
            let healthy = self.last_id != progress_from || connected_since.is_some_and(|s| s.elapsed() >= HEALTHY);
            let delay = match ended {
                // Straight back, to read the new buffer from its start.
                Disconnect::Restarted(_) => Duration::ZERO,
                _ => backoff.next_delay(healthy),
            };
            tracing::warn!(stream = %self.stream, "disconnected ({ended}); reconnecting in {delay:.1?}");
            tokio::time::sleep(delay).await;
        }
    }

    /// One connection, from request to disconnect.
    async fn run(
        &mut self,
        client: &reqwest::Client,
        node: &NodeConfig,
        connected_since: &mut Option<Instant>,
    ) -> Disconnect {
        self.status.connecting();
        // With no stored cursor, ask for the node's whole buffer; otherwise from the frame stored
        // last, to check it is still the node's (or after it, when it cannot be checked).
        let start_from = match (self.last_id, self.last_identity) {
            (Some(id), Some(identity)) => {
                self.expect = Some(First::Stored { id, identity });
                id
            }
            (Some(id), None) => {
                self.expect = Some(First::From(id.wrapping_add(1)));
                id.wrapping_add(1)
            }
            (None, _) => {
                self.expect = self.after_restart.then_some(First::From(0));
                0
            }
        };
        let url = format!("{}/{}?start_from={start_from}", node.url.get_ref().trim_end_matches('/'), self.path);
        // A node that accepts the connection and never answers must not hold the stream.
        let wait = node.connect_timeout();
        let response = match tokio::time::timeout(wait, client.get(&url).send()).await {
            Err(_) => return Disconnect::NoAnswer(wait),
            Ok(sent) => match sent.and_then(|r| r.error_for_status()) {
                Ok(response) => response,
                Err(e) => return e.into(),
            },
        };
        tracing::info!(stream = %self.stream, %url, "connected");
        *connected_since = Some(Instant::now());
        self.status.set_state(ConnectionState::Connected);

        // Any bytes (keepalive comments included) reset the silence timer.
        let silence = node.no_message_timeout();
        let mut bytes = std::pin::pin!(tokio_stream::StreamExt::timeout(response.bytes_stream(), silence));
        let mut splitter = SseSplitter::new(node.max_frame_bytes());
        while let Some(chunk) = bytes.next().await {
            let chunk = match chunk {
                Err(_) => return Disconnect::Silent(silence),
                Ok(Err(e)) => return e.into(),
                Ok(Ok(chunk)) => chunk,
            };
            self.status.bytes.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            for frame in splitter.push(&chunk) {
                if let Err(stop) = self.deliver(frame).await {
                    return stop;
                }
            }
        }
        Disconnect::Closed
    }

    /// Parse one SSE frame and hand it to the pipeline.
    async fn deliver(&mut self, frame: SseFrame) -> Result<(), Disconnect> {
        let (id, payload) = match frame {
            SseFrame::Data { id, data } => (id, parse(&self.stream, data)),
            SseFrame::Unreadable { id, reason, raw } => {
                tracing::warn!(stream = %self.stream, ?id, "{reason}");
                (id, Payload::Rejected { reason, raw })
            }
        };
        let node_event_id = id.as_deref().and_then(|id| id.trim().parse::<u32>().ok());
        if let (Some(expected), Some(sent)) = (self.expect, node_event_id) {
            self.expect = None;
            match self.check_first(expected, sent, &payload) {
                FirstFrame::Continues => {}
                FirstFrame::AlreadyStored => return Ok(()),
                FirstFrame::After(gap) => self.hand_on(Some(sent - 1), gap).await?,
                FirstFrame::Restarted(why) => return Err(self.restarted(why).await),
            }
        }
        // Whether the node's stream ended with its "Shutdown": kept across the reconnect, where
        // frames without an id (`ApiVersion`) leave it as it is.
        match &payload {
            Payload::Event(event) if event.kind == "Shutdown" => self.stopped = true,
            _ if node_event_id.is_some() => self.stopped = false,
            _ => {}
        }
        self.status.record(&payload);
        self.hand_on(node_event_id, payload).await
    }

    /// The node restarted and numbers anew: read its new buffer from the start. Unless its
    /// stream ended with its `"Shutdown"`, what its old run sent after the last id stored may
    /// be lost: that is recorded as a gap (its end unknown: `to_id` 4294967295), so its blocks
    /// are backfilled over JSON-RPC and `/gaps` shows it.
    async fn restarted(&mut self, why: String) -> Disconnect {
        self.status.count(&self.status.restarts);
        let last_id = self.last_id.take();
        self.last_identity = None;
        self.after_restart = true;
        if let Some(last_id) = last_id.filter(|_| !std::mem::take(&mut self.stopped)) {
            tracing::warn!(stream = %self.stream, "the node restarted since id {last_id}: what it sent after may be lost");
            self.status.count(&self.status.gaps);
            let gap = Payload::Gap { from_id: last_id.wrapping_add(1), to_id: u32::MAX };
            if let Err(stop) = self.hand_on(None, gap).await {
                return stop;
            }
        }
        Disconnect::Restarted(why)
    }

    /// Check the first frame with an id of a connection against what was `expected`.
    fn check_first(&mut self, expected: First, sent: u32, payload: &Payload) -> FirstFrame {
        let (first_missing, after_restart) = (expected.first_missing(), std::mem::take(&mut self.after_restart));
        match expected {
            First::Stored { id, identity } if sent == id => match payload.identity() == Some(identity) {
                true => FirstFrame::AlreadyStored,
                false => FirstFrame::Restarted(format!("id {id} is another event than the one stored under it")),
            },
            First::Stored { id, .. } | First::From(id) if sent < id => {
                FirstFrame::Restarted(format!("asked for id {id}, it sent {sent}"))
            }
            _ if sent > first_missing => {
                self.status.count(&self.status.gaps);
                let what = if after_restart { "after its restart" } else { "its buffer moved on" };
                tracing::warn!(stream = %self.stream, "gap ({what}): ids {first_missing} to {} are gone", sent - 1);
                FirstFrame::After(Payload::Gap { from_id: first_missing, to_id: sent - 1 })
            }
            _ => FirstFrame::Continues,
        }
    }

    /// Send a delivery to the pipeline and move the cursor past it.
    async fn hand_on(&mut self, node_event_id: Option<u32>, payload: Payload) -> Result<(), Disconnect> {
        let identity = payload.identity();
        let delivery = Delivery::now(self.name.clone(), self.stream.clone(), node_event_id, payload);
        self.out.send(delivery).await.map_err(|_| Disconnect::Shutdown)?;
        if let Some(id) = node_event_id {
            (self.last_id, self.last_identity) = (Some(id), identity);
            let mut ids = self.status.last_event_ids.lock().expect("status lock");
            match ids.get_mut(&*self.stream) {
                Some(last) => *last = id,
                None => _ = ids.insert(self.stream.to_string(), id),
            }
        }
        Ok(())
    }
}

impl First {
    /// The first id not stored.
    fn first_missing(self) -> u32 {
        match self {
            First::Stored { id, .. } => id.wrapping_add(1),
            First::From(id) => id,
        }
    }
}

/// What the first frame of a connection turned out to be.
enum FirstFrame {
    /// What was asked for: go on.
    Continues,
    /// The frame stored last, sent again: skip it.
    AlreadyStored,
    /// A later one: this gap comes first.
    After(Payload),
    /// Another frame under the stored id, or a lower id: the node restarted.
    Restarted(String),
}

/// A frame's data as a delivery.
fn parse(stream: &str, data: String) -> Payload {
    match Frame::parse(data) {
        Ok(Frame::Event(event)) => Payload::Event(event),
        Ok(Frame::ApiVersion(version)) => {
            tracing::info!(%stream, %version, "node API version");
            Payload::ApiVersion(version)
        }
        Ok(Frame::Shutdown) => {
            tracing::info!(%stream, "node announced shutdown");
            Payload::Event(crate::event::NodeEvent::shutdown(stream))
        }
        Err(e) => {
            tracing::warn!(%stream, "rejected frame: {e}");
            Payload::Rejected { reason: e.reason, raw: e.raw }
        }
    }
}

/// Ask the node's REST `/status` for its `build_version`; a failure is logged, not fatal.
async fn read_build_version(
    client: &reqwest::Client,
    rest_url: &str,
    timeout: Duration,
    name: &str,
    status: &NodeStatus,
) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Status {
        build_version: String,
    }
    let url = format!("{}/status", rest_url.trim_end_matches('/'));
    let answer =
        async { client.get(&url).timeout(timeout).send().await?.error_for_status()?.json::<Status>().await }.await;
    match answer {
        Ok(answer) => {
            tracing::info!(node = %name, build_version = %answer.build_version, "node status");
            *status.build_version.lock().expect("status lock") = Some(answer.build_version.clone());
            Some(answer.build_version)
        }
        Err(e) => {
            tracing::warn!(node = %name, %url, "cannot read the node status: {e}");
            None
        }
    }
}

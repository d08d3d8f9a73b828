//! Follow one Casper node's SSE streams (2.x `GET /events`; 1.x `/events/main`, `/events/deploys`,
//! `/events/sigs`), each resuming after the last id stored for it.

use super::backoff::{Backoff, HEALTHY};
use super::{ConnectionState, NodeStatus, state_after_refusal};
use crate::config::{NodeConfig, Protocol};
use crate::event::{Delivery, Frame, Payload};
use futures::{StreamExt, TryStreamExt};
use sse_stream::{Sse, SseStream};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum Disconnect {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("stream: {0}")]
    Stream(#[from] sse_stream::Error),
    #[error("the node closed the stream")]
    Closed,
    /// Ids went backwards: the node restarted. Resume from the start of its new buffer.
    #[error("the node restarted (asked for id {asked}, it sent {sent})")]
    Restarted { asked: u32, sent: u32 },
    /// The pipeline has shut down: stop following.
    #[error("shutting down")]
    Shutdown,
}

/// Follow `node` forever: find its event API, then follow each of its SSE streams (one on 2.x,
/// three on 1.x), handing every frame to `out` and reconnecting with backoff. `cursors` holds
/// the last id stored per stream. Returns when a delivery finds `out` closed; the caller aborts
/// the task to stop it sooner.
pub async fn follow(
    node: NodeConfig,
    cursors: HashMap<String, u32>,
    status: Arc<NodeStatus>,
    out: mpsc::Sender<Delivery>,
) {
    let name: Arc<str> = Arc::from(node.name.get_ref().as_str());
    let client = match reqwest::Client::builder().connect_timeout(node.connect_timeout()).build() {
        Ok(client) => client,
        Err(e) => return tracing::error!(node = %name, "cannot build an HTTP client: {e}"),
    };
    let build_version = match &node.rest_url {
        Some(rest_url) => read_build_version(&client, rest_url, &name, &status).await,
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
            let last_id = cursors.get(&stream).copied();
            let connection = Connection {
                name: name.clone(),
                stream: Arc::from(stream),
                path,
                status: status.clone(),
                out: out.clone(),
                last_id,
                unreadable: None,
                asked: None,
                after_restart: false,
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

/// An SSE line longer than the node's `max_frame_mib`.
#[derive(Debug, thiserror::Error)]
#[error("an SSE line is longer than {0} bytes (max_frame_mib)")]
struct FrameTooLarge(usize);

/// Whether the stream broke on a frame that will come back on every resume: bytes that are not
/// UTF-8, or a line over the size limit.
fn is_unreadable(error: &sse_stream::Error) -> bool {
    match error {
        sse_stream::Error::Utf8Parse(_) => true,
        sse_stream::Error::Body(e) => e
            .downcast_ref::<std::io::Error>()
            .and_then(|e| e.get_ref())
            .is_some_and(|inner| inner.is::<FrameTooLarge>()),
        _ => false,
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
    /// Cursor at which the stream last broke on an unreadable frame, and how many times in a row.
    unreadable: Option<(Option<u32>, u32)>,
    /// The `start_from` of this connection, until the first id arrives and is checked against it.
    asked: Option<u32>,
    /// The node restarted: the next connection asks from 0 and a later first id is a gap.
    after_restart: bool,
}

/// Breaks at the same cursor before the frame after it is skipped.
const UNREADABLE_RETRIES: u32 = 3;

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
                Disconnect::Stream(error) if is_unreadable(error) => match self.skip_unreadable(error).await {
                    Ok(true) => backoff = Backoff::new(), // past the bad frame: a fresh start
                    Ok(false) => {}
                    Err(_) => return Ended::Shutdown,
                },
                _ => self.unreadable = None,
            }
            // Once the stream has answered, a later 404 is a passing fault, not a protocol.
            probing &= connected_since.is_none();
            let status = &self.status;
            status.count(&status.disconnects);
            status.set_state(match &ended {
                Disconnect::Http(e) => {
                    e.status().map_or(ConnectionState::Reconnecting, |s| state_after_refusal(s.as_u16()))
                }
                _ => ConnectionState::Reconnecting,
            });
            let healthy = self.last_id != progress_from || connected_since.is_some_and(|s| s.elapsed() >= HEALTHY);
            let delay = backoff.next_delay(healthy);
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
        // With no stored cursor, ask for the node's whole buffer; otherwise resume after it.
        let start_from = self.last_id.map_or(0, |id| id.wrapping_add(1));
        // A first connection takes whatever the buffer holds; any other is checked.
        self.asked = Some(start_from).filter(|&id| id > 0 || self.after_restart);
        let url = format!("{}/{}?start_from={start_from}", node.url.get_ref().trim_end_matches('/'), self.path);
        let response = match client.get(&url).send().await.and_then(|r| r.error_for_status()) {
            Ok(response) => response,
            Err(e) => return e.into(),
        };
        tracing::info!(stream = %self.stream, %url, "connected");
        *connected_since = Some(Instant::now());
        self.status.set_state(ConnectionState::Connected);

        // Any bytes (keepalive comments included) reset the silence timer; a line longer than
        // the limit ends the connection before it is buffered whole.
        let silence = node.no_message_timeout();
        let (limit, mut line) = (node.max_frame_bytes(), 0usize);
        let status = self.status.clone();
        let bytes = tokio_stream::StreamExt::timeout(response.bytes_stream(), silence).map(move |item| {
            let chunk = item
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no bytes for {silence:?}")))?
                .map_err(std::io::Error::other)?;
            status.bytes.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            line = match chunk.iter().rposition(|b| *b == b'\n') {
                Some(newline) => chunk.len() - newline - 1,
                None => line + chunk.len(),
            };
            if line > limit { Err(std::io::Error::other(FrameTooLarge(limit))) } else { Ok(chunk) }
        });
        let mut frames = std::pin::pin!(SseStream::from_bytes_stream(bytes.into_stream()));
        while let Some(frame) = frames.next().await {
            match frame {
                Ok(frame) => {
                    if let Err(stop) = self.deliver(frame).await {
                        return stop;
                    }
                }
                Err(e) => return e.into(),
            }
        }
        Disconnect::Closed
    }

    /// A frame the SSE parser cannot read (bytes that are not UTF-8, a line over the size limit)
    /// breaks the connection, and the node sends the same bytes again on resume. After
    /// [`UNREADABLE_RETRIES`] breaks at the same cursor, the frame after it (node ids are
    /// consecutive) is recorded as rejected (its bytes cannot be kept) and skipped, so one bad
    /// frame never stalls the node. Without any id seen yet the frame cannot be named, so
    /// nothing is skipped (and the error is logged). Returns whether a frame was skipped.
    async fn skip_unreadable(&mut self, error: &sse_stream::Error) -> Result<bool, Disconnect> {
        let times = match self.unreadable {
            Some((at, times)) if at == self.last_id => times + 1,
            _ => 1,
        };
        self.unreadable = Some((self.last_id, times));
        if times < UNREADABLE_RETRIES {
            return Ok(false);
        }
        let Some(last_id) = self.last_id else {
            tracing::error!(stream = %self.stream, "unreadable frame before any event id: cannot skip it: {error}");
            return Ok(false);
        };
        let skipped = last_id.wrapping_add(1);
        tracing::error!(stream = %self.stream, id = skipped, "skipping an unreadable frame: {error}");
        let status = &self.status;
        status.count(&status.rejected);
        let reason = format!("unreadable SSE frame, skipped after {times} attempts: {error}");
        self.hand_on(Some(skipped), Payload::Rejected { reason, raw: String::new() }).await?;
        self.unreadable = None;
        Ok(true)
    }

    /// Parse one SSE frame and hand it to the pipeline.
    async fn deliver(&mut self, frame: Sse) -> Result<(), Disconnect> {
        let Some(data) = frame.data else { return Ok(()) };
        let node_event_id = frame.id.as_deref().and_then(|id| id.trim().parse::<u32>().ok());
        if let (Some(asked), Some(sent)) = (self.asked, node_event_id)
            && let Some(gap) = self.check_first_id(asked, sent)?
        {
            // The cursor moves past the gap with it, so a restart does not record it twice.
            self.hand_on(Some(sent - 1), gap).await?;
        }
        let payload = match Frame::parse(data) {
            Ok(Frame::Event(event)) => Payload::Event(event),
            Ok(Frame::ApiVersion(version)) => {
                tracing::info!(stream = %self.stream, %version, "node API version");
                Payload::ApiVersion(version)
            }
            Ok(Frame::Shutdown) => {
                tracing::info!(stream = %self.stream, "node announced shutdown");
                self.status.count(&self.status.frames);
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(stream = %self.stream, ?node_event_id, "rejected frame: {e}");
                Payload::Rejected { reason: e.reason, raw: e.raw }
            }
        };
        self.status.record(&payload);
        self.hand_on(node_event_id, payload).await
    }

    /// Compare the first id of a connection with the `start_from` asked for. Lower: the node
    /// restarted and numbers from 0 again, so resume from the start of its new buffer (nothing is
    /// delivered from this connection; duplicates are skipped by the store). Higher: the node's
    /// buffer no longer holds the events in between: a gap, returned to be stored.
    fn check_first_id(&mut self, asked: u32, sent: u32) -> Result<Option<Payload>, Disconnect> {
        self.asked = None;
        self.after_restart = false;
        let status = &self.status;
        if sent < asked {
            status.count(&status.restarts);
            self.last_id = None;
            self.after_restart = true;
            return Err(Disconnect::Restarted { asked, sent });
        }
        if sent == asked {
            return Ok(None);
        }
        status.count(&status.gaps);
        tracing::warn!(stream = %self.stream, "gap: asked for events from id {asked}, the node starts at {sent}");
        Ok(Some(Payload::Gap { from_id: asked, to_id: sent - 1 }))
    }

    /// Send a delivery to the pipeline and move the cursor past it.
    async fn hand_on(&mut self, node_event_id: Option<u32>, payload: Payload) -> Result<(), Disconnect> {
        let delivery = Delivery::now(self.name.clone(), self.stream.clone(), node_event_id, payload);
        self.out.send(delivery).await.map_err(|_| Disconnect::Shutdown)?;
        if let Some(id) = node_event_id {
            self.last_id = Some(id);
            let mut ids = self.status.last_event_ids.lock().expect("status lock");
            match ids.get_mut(&*self.stream) {
                Some(last) => *last = id,
                None => _ = ids.insert(self.stream.to_string(), id),
            }
        }
        Ok(())
    }
}

/// Ask the node's REST `/status` for its `build_version`; a failure is logged, not fatal.
async fn read_build_version(
    client: &reqwest::Client,
    rest_url: &str,
    name: &str,
    status: &NodeStatus,
) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Status {
        build_version: String,
    }
    let url = format!("{}/status", rest_url.trim_end_matches('/'));
    let answer = async { client.get(&url).send().await?.error_for_status()?.json::<Status>().await }.await;
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

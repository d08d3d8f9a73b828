//! The loop the WebSocket sources share: connect with the source's request (URL and headers),
//! read messages under a silence timeout, let the source's [`Feed`] turn each text message into
//! a delivery, and reconnect with backoff. Neither CSPR.cloud nor F1r3fly can resume from a
//! cursor (CSPR.cloud's `Persistent-Session` aside, which the service keeps on its side), so
//! duplicates (replays, redeliveries) are expected and dropped by the store's natural keys.

use super::backoff::{Backoff, HEALTHY};
use super::{ConnectionState, NodeStatus, state_after_refusal};
use crate::event::{Delivery, Payload};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message, handshake::client::Request};

/// What a WebSocket source makes of its messages.
pub trait Feed: Send {
    /// The upgrade request to send: URL and headers (credentials included); an error is a
    /// configuration that cannot work.
    fn request(&self) -> Result<Request, String>;
    /// One text message.
    fn read(&mut self, text: &str) -> Read;
}

/// What a text message turned out to be.
pub enum Read {
    /// Something to hand to the pipeline.
    Deliver(Payload),
    /// Liveness only (a keepalive): nothing to store.
    Skip,
    /// The source speaks a version Sluice does not know: stop reading it.
    Incompatible(String),
}

/// Connection settings of a WebSocket source.
pub struct Settings {
    /// Source name (events are stored under it).
    pub name: Arc<str>,
    /// How long to wait for the connection and upgrade.
    pub connect_timeout: Duration,
    /// Reconnect when nothing at all arrives for this long.
    pub silence: Duration,
}

impl Settings {
    /// Settings from a source's configured name and timeouts (seconds).
    pub fn new(name: &str, connect_timeout_secs: u64, no_message_timeout_secs: u64) -> Settings {
        Settings {
            name: Arc::from(name),
            connect_timeout: Duration::from_secs(connect_timeout_secs),
            silence: Duration::from_secs(no_message_timeout_secs),
        }
    }
}

/// Largest message accepted from a WebSocket source (their messages are a few KB).
const MAX_MESSAGE: usize = 16 << 20;

/// Follow a WebSocket source forever; returns when `out` is closed.
pub async fn follow(mut feed: impl Feed, settings: Settings, status: Arc<NodeStatus>, out: mpsc::Sender<Delivery>) {
    let name = settings.name.clone();
    let mut backoff = Backoff::new();
    loop {
        let started = Instant::now();
        let mut delivered = false;
        let (state, why) = match run(&mut feed, &settings, &status, &out, &mut delivered).await {
            Ok(()) => return,
            Err(Ended::Incompatible(why)) => {
                tracing::error!(source = %name, "incompatible source: {why}");
                (ConnectionState::Incompatible, why)
            }
            Err(Ended::Failed(why)) => {
                tracing::error!(source = %name, "cannot connect: {why}");
                (ConnectionState::Failed, why)
            }
            Err(Ended::Refused(e)) => {
                let state = match &e {
                    tungstenite::Error::Http(response) => state_after_refusal(response.status().as_u16()),
                    _ => ConnectionState::Reconnecting,
                };
                tracing::warn!(source = %name, "cannot connect: {e}");
                (state, format!("cannot connect: {e}"))
            }
            Err(Ended::Lost(why)) => {
                tracing::warn!(source = %name, "disconnected: {why}");
                (ConnectionState::Reconnecting, why)
            }
        };
        status.disconnected(&why);
        status.set_state(state);
        let healthy = state == ConnectionState::Reconnecting && (delivered || started.elapsed() >= HEALTHY);
        tokio::time::sleep(backoff.next_delay(healthy)).await;
    }
}

/// Why a connection ended.
enum Ended {
    /// The connection or upgrade failed.
    Refused(tungstenite::Error),
    /// An established connection broke, closed or went silent.
    Lost(String),
    /// The source's messages cannot be read.
    Incompatible(String),
    /// The request cannot be made.
    Failed(String),
}

/// One connection: `Ok` only when the pipeline has shut down.
async fn run(
    feed: &mut impl Feed,
    settings: &Settings,
    status: &NodeStatus,
    out: &mpsc::Sender<Delivery>,
    delivered: &mut bool,
) -> Result<(), Ended> {
    status.connecting();
    let request = feed.request().map_err(Ended::Failed)?;
    let url = request.uri().to_string();
    let limits = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(limits), false);
    let (mut socket, _) = match tokio::time::timeout(settings.connect_timeout, connect).await {
        Ok(connected) => connected.map_err(Ended::Refused)?,
        Err(_) => return Err(Ended::Lost(format!("no connection within {:?}", settings.connect_timeout))),
    };
    tracing::info!(source = %settings.name, %url, "connected");
    status.set_state(ConnectionState::Connected);
    loop {
        let message = match tokio::time::timeout(settings.silence, socket.next()).await {
            Err(_) => return Err(Ended::Lost(format!("no message for {:?}", settings.silence))),
            Ok(None) => return Err(Ended::Lost("the source closed the connection".into())),
            Ok(Some(Err(e))) => return Err(Ended::Lost(e.to_string())),
            Ok(Some(Ok(message))) => message,
        };
        status.bytes.fetch_add(message.len() as u64, Relaxed);
        let payload = match message {
            Message::Text(text) => match feed.read(&text) {
                Read::Deliver(payload) => payload,
                Read::Skip => continue,
                Read::Incompatible(why) => return Err(Ended::Incompatible(why)),
            },
            Message::Binary(bytes) => {
                let reason = format!("a binary message of {} bytes where text was expected", bytes.len());
                Payload::Rejected { reason, raw: String::from_utf8_lossy(&bytes).into_owned() }
            }
            Message::Close(frame) => return Err(Ended::Lost(format!("the source closed the connection: {frame:?}"))),
            // Pings are answered by the library; either way they show the source is alive.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        if let Payload::Rejected { reason, .. } = &payload {
            tracing::warn!(source = %settings.name, "rejected message: {reason}");
        }
        status.record(&payload);
        let delivery = Delivery::now(settings.name.clone(), settings.name.clone(), None, payload);
        if out.send(delivery).await.is_err() {
            return Ok(());
        }
        *delivered = true;
    }
}

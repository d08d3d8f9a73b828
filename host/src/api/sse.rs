//! Server-sent events on the wire: frames rendered straight to bytes, and a `text/event-stream`
//! response that sends a keep-alive comment every 15 s. (axum's `Sse` re-arms a timer on every
//! event; with thousands of subscribers that was a measurable share of each delivery.)

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Interval, MissedTickBehavior};

/// How often a keep-alive comment is sent.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `id: <id>` (if any) and `data: <data>` lines, then a blank line. Line breaks in `data` (JSON
/// may hold them as whitespace) start a new `data:` line, as the format requires.
pub fn frame(id: Option<u64>, data: &str) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 32);
    if let Some(id) = id {
        out.extend_from_slice(format!("id: {id}\n").as_bytes());
    }
    let mut rest = data;
    loop {
        out.extend_from_slice(b"data: ");
        let Some(end) = rest.find(['\r', '\n']) else {
            out.extend_from_slice(rest.as_bytes());
            break;
        };
        out.extend_from_slice(&rest.as_bytes()[..end]);
        out.push(b'\n');
        rest = &rest[end..];
        rest = rest.strip_prefix("\r\n").unwrap_or(&rest[1..]);
    }
    out.extend_from_slice(b"\n\n");
    out.into()
}

/// A `: <text>` comment frame (`text` must hold no line break).
pub fn comment(text: &str) -> Bytes {
    debug_assert!(!text.contains(['\r', '\n']), "an SSE comment is one line");
    format!(": {text}\n\n").into()
}

/// A `text/event-stream` response sending `frames` until they end, with keep-alive comments.
pub fn response(frames: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    let mut keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let body = KeepAlive { frames: frames.boxed(), keep_alive }.map(Ok::<_, Infallible>);
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], Body::from_stream(body))
        .into_response()
}

/// Frames, with a keep-alive comment at every tick; ends with the frames.
struct KeepAlive {
    frames: Pin<Box<dyn Stream<Item = Bytes> + Send>>,
    keep_alive: Interval,
}

impl Stream for KeepAlive {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Poll::Ready(frame) = self.frames.poll_next_unpin(cx) {
            return Poll::Ready(frame);
        }
        match self.keep_alive.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(Bytes::from_static(b":\n\n"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_data_at_every_kind_of_line_break() {
        assert_eq!(frame(Some(7), r#"{"a":1}"#), "id: 7\ndata: {\"a\":1}\n\n");
        assert_eq!(frame(None, "x"), "data: x\n\n");
        assert_eq!(frame(None, "a\nb\r\nc\rd"), "data: a\ndata: b\ndata: c\ndata: d\n\n");
        assert_eq!(frame(None, "a\n"), "data: a\ndata: \n\n");
        assert_eq!(comment("bye"), ": bye\n\n");
    }
}

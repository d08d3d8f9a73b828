//! Server-sent events on the wire: frames rendered straight to bytes, and a `text/event-stream`
//! response that is never silent for 15 s: a keep-alive comment goes out when a 7.5 s tick finds
//! nothing sent since the last one. (axum's `Sse` re-arms a timer on every event; with
//! thousands of subscribers that was a measurable share of each delivery.)

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Interval, MissedTickBehavior};

/// How often a stream checks whether it needs a keep-alive comment; it is silent for less than
/// twice this.
const KEEP_ALIVE_TICK: Duration = Duration::from_millis(7500);

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

/// A `text/event-stream` response sending `frames` until they end, with keep-alive comments
/// while they are idle.
pub fn response(frames: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    let body = KeepAlive::new(frames.boxed(), KEEP_ALIVE_TICK).map(Ok::<_, Infallible>);
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], Body::from_stream(body))
        .into_response()
}

/// Frames, with a keep-alive comment at each tick that finds none sent since the previous
/// tick (a busy stream needs none: sent regardless, they were one write in 75 in the fan-out
/// benchmark); ends with the frames.
struct KeepAlive {
    frames: Pin<Box<dyn Stream<Item = Bytes> + Send>>,
    keep_alive: Interval,
    /// A frame went out since the last tick.
    sent: bool,
}

impl KeepAlive {
    /// `frames`, ticking every `period`.
    fn new(frames: Pin<Box<dyn Stream<Item = Bytes> + Send>>, period: Duration) -> KeepAlive {
        let mut keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        KeepAlive { frames, keep_alive, sent: false }
    }
}

impl Stream for KeepAlive {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Poll::Ready(frame) = self.frames.poll_next_unpin(cx) {
            self.sent = true;
            return Poll::Ready(frame);
        }
        // Returns `Pending` only once the tick is pending too, so that the next tick wakes it.
        while self.keep_alive.poll_tick(cx).is_ready() {
            if !std::mem::take(&mut self.sent) {
                return Poll::Ready(Some(Bytes::from_static(b":\n\n")));
            }
        }
        Poll::Pending
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

    #[tokio::test]
    async fn a_keep_alive_comment_goes_out_when_a_tick_finds_nothing_sent_since_the_last() {
        // A late tick is not made up for (`MissedTickBehavior::Delay`): a slow machine only
        // stretches these waits. Waiting on the stream also checks that a tick wakes it.
        let tick = Duration::from_millis(200);
        let (frames, waiting) = futures::channel::mpsc::unbounded::<Bytes>();
        let mut stream = KeepAlive::new(waiting.boxed(), tick);
        frames.unbounded_send(Bytes::from_static(b"data: 1\n\n")).unwrap();
        assert_eq!(stream.next().await.unwrap(), "data: 1\n\n");
        let first_tick = tokio::time::timeout(tick + Duration::from_millis(20), stream.next()).await;
        assert!(first_tick.is_err(), "a frame went out since the last tick: {first_tick:?}");
        for _ in 0..2 {
            let comment = tokio::time::timeout(tick * 10, stream.next()).await;
            assert_eq!(comment.expect("a tick wakes the stream").unwrap(), ":\n\n");
        }
    }
}

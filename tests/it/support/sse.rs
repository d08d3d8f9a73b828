//! Reading SSE streams as a client does: `(id, data)` frames, or the whole text.

use super::runtime;
use std::time::Duration;

/// Read an SSE stream until `frames` frames with an id and data arrived (or 60 s passed);
/// returns `(id, data)` pairs.
pub fn read_sse(url: &str, frames: usize) -> Vec<(u64, String)> {
    let mut read = read_sse_until(url, |read| read.len() >= frames);
    read.truncate(frames);
    read
}

/// Read an SSE stream until the frames read (with an id and data) are `enough` (or 60 s
/// passed); returns them as `(id, data)` pairs.
pub fn read_sse_until(url: &str, enough: impl Fn(&[(u64, String)]) -> bool) -> Vec<(u64, String)> {
    read_frames_until(url, enough)
}

/// Like [`read_sse_until`], for ids of any form (`I`: `u64`, `String`, …).
pub fn read_frames_until<I: std::str::FromStr>(url: &str, enough: impl Fn(&[(I, String)]) -> bool) -> Vec<(I, String)> {
    use futures::StreamExt;
    runtime().block_on(async {
        let response = reqwest::get(url).await.expect("SSE request");
        let mut body = response.bytes_stream();
        // Bytes, not text: a chunk may end inside a character.
        let mut bytes = Vec::new();
        let mut frames = Vec::new();
        // Bytes parsed into frames so far: whole blocks only.
        let mut parsed = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
            bytes.extend_from_slice(&chunk);
            let Some(end) = bytes[parsed..].windows(2).rposition(|pair| pair == b"\n\n") else { continue };
            let end = parsed + end + 2;
            frames.extend(parse_frames(text(&bytes[parsed..end]), usize::MAX));
            parsed = end;
            if enough(&frames) {
                break;
            }
        }
        frames
    })
}

/// Read an SSE stream as text until it ends (or 60 s passed).
pub fn read_sse_text(url: &str) -> String {
    use futures::StreamExt;
    runtime().block_on(async {
        let response = reqwest::get(url).await.expect("SSE request");
        let mut body = response.bytes_stream();
        let mut bytes = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
            bytes.extend_from_slice(&chunk);
        }
        text(&bytes).to_owned()
    })
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 SSE")
}

/// The first `frames` frames with an id and data in SSE `text`: `(id, data)` pairs.
pub fn parse_sse(text: &str, frames: usize) -> Vec<(u64, String)> {
    parse_frames(text, frames)
}

/// Like [`parse_sse`], for ids of any form.
pub fn parse_frames<I: std::str::FromStr>(text: &str, frames: usize) -> Vec<(I, String)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut id = None;
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if let (Some(id), false) = (id, data.is_empty()) {
            out.push((id, data.join("\n")));
        }
        if out.len() == frames {
            break;
        }
    }
    out
}

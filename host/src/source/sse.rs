//! Server-sent events from a node, split into frames one by one. Written here rather than taken
//! from a crate because each frame must be judged on its own: the SSE crates stop the whole
//! stream at the first frame that is not UTF-8, and buffer a frame of any size, so one bad frame
//! from a node would break every connection at the same place. Here a frame that is not UTF-8
//! or is longer than the limit becomes an [`SseFrame::Unreadable`] with its id, and the frames
//! after it are read as usual.
//!
//! The format (WHATWG HTML, "server-sent events"): lines end with CRLF, LF or CR; a blank line
//! ends a frame; `field: value` lines (one space after the colon is dropped), `data` lines
//! joined with line breaks, `:` comments.

use bytes::BytesMut;
use std::borrow::Cow;

/// One frame of the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum SseFrame {
    /// A frame with data (frames without any, such as keep-alive comments, are not reported).
    Data {
        /// Its `id:` field, if any.
        id: Option<String>,
        /// Its `data:` lines, joined with `\n`.
        data: String,
    },
    /// A frame that could not be read, and why.
    Unreadable {
        /// Its `id:`, if it had a readable one.
        id: Option<String>,
        /// Why it could not be read.
        reason: String,
        /// What could be kept of it (its text with invalid bytes replaced; nothing when too long).
        raw: String,
    },
}

/// Splits bytes into frames.
pub struct SseSplitter {
    /// Bytes of frames not yet complete (line ends made `\n`).
    pending: BytesMut,
    /// Where to look for the end of the frame next (everything before was scanned).
    scanned: usize,
    /// Longest frame read whole.
    max_frame: usize,
    /// The last byte taken in was a CR: a LF right after it belongs to it.
    after_cr: bool,
    /// A frame over the limit being skipped.
    skipping: Option<Skipped>,
}

/// What is kept of a frame being skipped: the start of its current line (enough to spot an
/// `id:` field) and the id found so far.
struct Skipped {
    line_head: Vec<u8>,
    at_line_start: bool,
    id: Option<String>,
}

/// Bytes of a line kept while skipping a frame: enough for `id:` and a 10-digit id.
const LINE_HEAD: usize = 32;

impl SseSplitter {
    /// A splitter reading frames of up to `max_frame` bytes whole.
    pub fn new(max_frame: usize) -> SseSplitter {
        SseSplitter { pending: BytesMut::new(), scanned: 0, max_frame, after_cr: false, skipping: None }
    }

    /// Take in `chunk` and return the frames it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseFrame> {
        let chunk = self.normalize(chunk);
        let mut rest: &[u8] = &chunk;
        let mut frames = Vec::new();
        if let Some(skipped) = &mut self.skipping {
            let Some(after) = skipped.skip(rest) else { return frames };
            let reason = format!("unreadable SSE frame: longer than {} bytes (max_frame_mib)", self.max_frame);
            frames.push(SseFrame::Unreadable { id: skipped.id.take(), reason, raw: String::new() });
            (self.skipping, rest) = (None, after);
        }
        self.pending.extend_from_slice(rest);
        while let Some(found) = memchr::memmem::find(&self.pending[self.scanned..], b"\n\n") {
            let frame = self.pending.split_to(self.scanned + found + 2);
            self.scanned = 0;
            frames.extend(read_frame(&frame));
        }
        // Blank lines between frames (a node may send more than one) begin no frame.
        let blank = self.pending.iter().take_while(|&&byte| byte == b'\n').count();
        _ = self.pending.split_to(blank);
        self.scanned = self.pending.len().saturating_sub(1);
        if self.pending.len() > self.max_frame {
            // Too long to buffer: skip the rest of it, looking only for its id.
            let mut skipped = Skipped { line_head: Vec::new(), at_line_start: true, id: None };
            skipped.skip(&self.pending);
            self.pending.clear();
            self.scanned = 0;
            self.skipping = Some(skipped);
        }
        frames
    }

    /// `chunk` with every line end (CRLF, CR, LF) made a LF.
    fn normalize<'a>(&mut self, chunk: &'a [u8]) -> Cow<'a, [u8]> {
        if !self.after_cr && memchr::memchr(b'\r', chunk).is_none() {
            return Cow::Borrowed(chunk);
        }
        let mut bytes = chunk;
        if self.after_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut iter = bytes.iter().copied().peekable();
        while let Some(byte) = iter.next() {
            if byte == b'\r' {
                out.push(b'\n');
                iter.next_if_eq(&b'\n');
            } else {
                out.push(byte);
            }
        }
        self.after_cr = chunk.last() == Some(&b'\r');
        Cow::Owned(out)
    }
}

impl Skipped {
    /// Skip `bytes` of the frame; what follows the frame, once its blank line is reached.
    fn skip<'a>(&mut self, mut bytes: &'a [u8]) -> Option<&'a [u8]> {
        loop {
            let Some(end) = memchr::memchr(b'\n', bytes) else {
                self.take(bytes);
                return None;
            };
            if end == 0 && self.at_line_start {
                return Some(&bytes[1..]);
            }
            self.take(&bytes[..end]);
            if let Some(value) = self.line_head.strip_prefix(b"id:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                self.id = std::str::from_utf8(value).ok().map(str::to_owned);
            }
            self.line_head.clear();
            self.at_line_start = true;
            bytes = &bytes[end + 1..];
        }
    }

    /// Part of a line.
    fn take(&mut self, part: &[u8]) {
        let room = LINE_HEAD.saturating_sub(self.line_head.len());
        self.line_head.extend_from_slice(&part[..part.len().min(room)]);
        self.at_line_start &= part.is_empty();
    }
}

/// The frame in `bytes` (a whole frame, its blank line included).
fn read_frame(bytes: &[u8]) -> Option<SseFrame> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let raw = String::from_utf8_lossy(bytes).into_owned();
            let id = fields(&raw).find(|(name, _)| *name == "id").map(|(_, id)| id.to_owned());
            let reason = format!("unreadable SSE frame: not UTF-8 (byte {})", error.valid_up_to());
            return Some(SseFrame::Unreadable { id, reason, raw });
        }
    };
    let (mut id, mut data) = (None, None::<String>);
    for (name, value) in fields(text) {
        match name {
            "id" if !value.contains('\0') => id = Some(value.to_owned()),
            "data" => match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    data.map(|data| SseFrame::Data { id, data })
}

/// The fields of a frame's lines: (name, value), comments left out.
fn fields(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split('\n').filter(|line| !line.is_empty() && !line.starts_with(':')).map(|line| {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        (name, value.strip_prefix(' ').unwrap_or(value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(id: Option<&str>, data: &str) -> SseFrame {
        SseFrame::Data { id: id.map(str::to_owned), data: data.to_owned() }
    }

    #[test]
    fn frames_split_at_blank_lines_of_any_line_end_and_in_any_chunks() {
        let text = b"data:{\"ApiVersion\":\"2.0.0\"}\n\n:\n\ndata: a\ndata:b\nid:7\n\ndata: c\r\nid: 8\r\n\r\ndata: d\rid: 9\r\r";
        let expected = vec![
            data(None, "{\"ApiVersion\":\"2.0.0\"}"),
            data(Some("7"), "a\nb"),
            data(Some("8"), "c"),
            data(Some("9"), "d"),
        ];
        for chunk in [text.len(), 1, 2, 3, 7] {
            let mut splitter = SseSplitter::new(1 << 20);
            let frames: Vec<SseFrame> = text.chunks(chunk).flat_map(|c| splitter.push(c)).collect();
            assert_eq!(frames, expected, "in chunks of {chunk}");
        }
    }

    #[test]
    fn a_frame_that_is_not_utf8_is_unreadable_with_its_id_and_the_next_is_read() {
        let mut splitter = SseSplitter::new(1 << 20);
        let frames = splitter.push(b"data:{\"a\":\"\xff\"}\nid:41\n\ndata:\xfe\n\ndata:ok\nid:42\n\n");
        assert!(
            matches!(&frames[0], SseFrame::Unreadable { id: Some(id), reason, .. }
            if id == "41" && reason.contains("not UTF-8")),
            "{frames:?}"
        );
        assert!(matches!(&frames[1], SseFrame::Unreadable { id: None, .. }), "{frames:?}");
        assert_eq!(frames[2], data(Some("42"), "ok"));
    }

    #[test]
    fn a_frame_over_the_limit_is_skipped_with_its_id_without_being_buffered() {
        let mut splitter = SseSplitter::new(100);
        // An extra blank line before the long frame starts nothing.
        let mut frames = splitter.push(b"data:ok\nid:1\n\n\ndata:");
        for _ in 0..1000 {
            frames.extend(splitter.push(&[b'x'; 1000]));
            let head = splitter.skipping.as_ref().map_or(0, |s| s.line_head.len());
            assert!(splitter.pending.len() <= 100 && head <= LINE_HEAD);
        }
        frames.extend(splitter.push(b"\nid:2\n"));
        frames.extend(splitter.push(b"\ndata:next\nid:3\n\n"));
        assert_eq!(frames[0], data(Some("1"), "ok"));
        assert!(
            matches!(&frames[1], SseFrame::Unreadable { id: Some(id), reason, .. }
            if id == "2" && reason.contains("max_frame_mib")),
            "{frames:?}"
        );
        assert_eq!(frames[2], data(Some("3"), "next"));
        assert_eq!(frames.len(), 3);
    }
}

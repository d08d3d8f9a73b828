//! The mock node's event sequence: the captured 2.x fixtures first, then an endless, deterministic
//! stream of unique blocks, transactions and signatures shaped like them.
//!
//! Event `i` is a pure function of `i`, so any `start_from` can be replayed without memory.

use std::fmt::Write;

/// The captured events, served as ids `0..FIXTURES.len()` (the `ApiVersion` is sent separately).
pub const FIXTURES: [&str; 7] = [
    include_str!("../../fixtures/casper2/block_added_event_v2.json"),
    include_str!("../../fixtures/casper2/transaction_accepted_event.json"),
    include_str!("../../fixtures/casper2/transaction_processed_event_with_messages.json"),
    include_str!("../../fixtures/casper2/transaction_expired_event.json"),
    include_str!("../../fixtures/casper2/finality_signature_event_v2.json"),
    include_str!("../../fixtures/casper2/fault_event.json"),
    include_str!("../../fixtures/casper2/step_event_v2_synthesized.json"),
];

/// Height of the first generated block (above every fixture's).
const FIRST_HEIGHT: u64 = 1_000_000;

/// Events generated per block: the block, one accepted and processed transaction, a signature.
const EVENTS_PER_BLOCK: u64 = 4;

/// Placeholders a template fills in.
#[derive(Debug, Clone, Copy)]
enum Slot {
    BlockHash,
    ParentHash,
    /// Rendered with its key: `"height":N`.
    Height,
    /// Rendered with its key: `"block_height":N`.
    BlockHeight,
    TransactionHash,
    Timestamp,
}

enum Piece {
    Text(String),
    Slot(Slot),
}

/// A fixture with some literals turned into slots; rendering is one pass of copies.
struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// `replacements` are literal substrings of the compacted fixture and the slot each becomes.
    fn new(fixture: &str, replacements: &[(&str, Slot)]) -> Template {
        let value: serde_json::Value = serde_json::from_str(fixture).expect("fixture is JSON");
        let mut rest = value.to_string();
        for (literal, _) in replacements {
            assert!(rest.contains(literal), "fixture lacks {literal}");
        }
        let mut pieces = Vec::new();
        while let Some((at, literal, slot)) = replacements
            .iter()
            .filter_map(|(literal, slot)| rest.find(literal).map(|at| (at, *literal, *slot)))
            .min_by_key(|(at, ..)| *at)
        {
            pieces.push(Piece::Text(rest[..at].to_owned()));
            pieces.push(Piece::Slot(slot));
            rest = rest[at + literal.len()..].to_owned();
        }
        pieces.push(Piece::Text(rest));
        Template { pieces }
    }

    fn render(&self, block: u64, out: &mut String) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Slot(Slot::BlockHash) => push_hash(out, block, 0xb1),
                Piece::Slot(Slot::ParentHash) => push_hash(out, block.wrapping_sub(1), 0xb1),
                Piece::Slot(Slot::TransactionHash) => push_hash(out, block, 0x7a),
                Piece::Slot(Slot::Height) => {
                    write!(out, "\"height\":{}", FIRST_HEIGHT + block).expect("write to String")
                }
                Piece::Slot(Slot::BlockHeight) => {
                    write!(out, "\"block_height\":{}", FIRST_HEIGHT + block).expect("write to String")
                }
                Piece::Slot(Slot::Timestamp) => push_timestamp(out, block),
            }
        }
    }
}

/// Renders event `i` of the mock chain.
pub struct Chain {
    block: Template,
    accepted: Template,
    processed: Template,
    signature: Template,
}

impl Chain {
    /// Prepare the templates (once per process).
    pub fn new() -> Chain {
        use Slot::*;
        Chain {
            block: Template::new(
                FIXTURES[0],
                &[
                    ("cb64adaae660d227b7d7579039a75e21f1022e2c044a5ed0ce0beefb12b95758", BlockHash),
                    ("0932fbb493af51a23be4b3c523474d7de72830ac956a233a50e51e2d86ca6cde", ParentHash),
                    ("\"height\":89049", Height),
                    ("2024-06-20T09:21:29.898Z", Timestamp),
                ],
            ),
            accepted: Template::new(
                FIXTURES[1],
                &[
                    ("446f9511258112c6e5150ee13d57c421da2bc30e0058db6165855a9d1ba4b868", TransactionHash),
                    ("2024-11-27T17:24:10.516Z", Timestamp),
                ],
            ),
            processed: Template::new(
                FIXTURES[2],
                &[
                    ("968fafb41be4d4fb1c4b3c3647bb4803de12bff05bbaa8d16d1ef3b18fc47ee1", TransactionHash),
                    ("af8368436128df76e24fd1552544ebe4ddcf2301af4d42f1764e93fa2887557f", BlockHash),
                    ("2025-07-14T16:51:43.510Z", Timestamp),
                ],
            ),
            signature: Template::new(
                FIXTURES[4],
                &[
                    ("5122b986d344e4cd0ab5a2df1b3bb398de9c557a2e463391b58de82626154428", BlockHash),
                    ("\"block_height\":89177", BlockHeight),
                ],
            ),
        }
    }

    /// Append the JSON of event `id` to `out`.
    pub fn render(&self, id: u32, out: &mut String) {
        let id = u64::from(id);
        let fixtures = FIXTURES.len() as u64;
        if id < fixtures {
            let value: serde_json::Value = serde_json::from_str(FIXTURES[id as usize]).expect("fixture is JSON");
            out.push_str(&value.to_string());
            return;
        }
        let generated = id - fixtures;
        let block = generated / EVENTS_PER_BLOCK;
        let template = match generated % EVENTS_PER_BLOCK {
            0 => &self.block,
            1 => &self.accepted,
            2 => &self.processed,
            _ => &self.signature,
        };
        template.render(block, out);
    }
}

/// A 32-byte hash in hex, unique per (`n`, `domain`).
fn push_hash(out: &mut String, n: u64, domain: u64) {
    for lane in 0..4u64 {
        write!(out, "{:016x}", splitmix(n ^ (domain << 56) ^ (lane << 48))).expect("write to String");
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One block every 8 s of a day in 2025, millisecond precision.
fn push_timestamp(out: &mut String, block: u64) {
    let seconds = block * 8;
    let (day, hour, minute, second) =
        (1 + (seconds / 86_400) % 28, (seconds / 3600) % 24, (seconds / 60) % 60, seconds % 60);
    write!(out, "2025-01-{day:02}T{hour:02}:{minute:02}:{second:02}.000Z").expect("write to String");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Frame;
    use std::collections::HashSet;

    fn render(chain: &Chain, id: u32) -> String {
        let mut out = String::new();
        chain.render(id, &mut out);
        out
    }

    #[test]
    fn generated_events_are_valid_unique_and_deterministic() {
        let chain = Chain::new();
        let mut keys = HashSet::new();
        for id in 0..2000 {
            let raw = render(&chain, id);
            assert_eq!(raw, render(&chain, id));
            match Frame::parse(raw).unwrap_or_else(|e| panic!("event {id}: {e}")) {
                Frame::Event(event) => assert!(keys.insert(event.key), "duplicate key at {id}"),
                other => panic!("event {id} is {other:?}"),
            }
        }
    }

    #[test]
    fn generated_block_has_its_height_and_parent() {
        let chain = Chain::new();
        let Frame::Event(block) = Frame::parse(render(&chain, FIXTURES.len() as u32 + 4)).unwrap() else {
            panic!("not an event")
        };
        assert_eq!((block.kind.as_str(), block.block_height), ("BlockAdded", Some(FIRST_HEIGHT + 1)));
    }
}

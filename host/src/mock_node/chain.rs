//! The mock node's event sequence: the captured 2.x fixtures first, then an endless, deterministic
//! stream of unique blocks, transactions and signatures shaped like them.
//!
//! Event `i` is a pure function of `i`, so any `start_from` can be replayed without memory.

use std::fmt::Write;

/// The captured 2.x events, served as ids `0..7` of `/events` (the `ApiVersion` is sent separately).
pub const FIXTURES: [&str; 7] = [
    include_str!("../../fixtures/casper2/block_added_event_v2.json"),
    include_str!("../../fixtures/casper2/transaction_accepted_event.json"),
    include_str!("../../fixtures/casper2/transaction_processed_event_with_messages.json"),
    include_str!("../../fixtures/casper2/transaction_expired_event.json"),
    include_str!("../../fixtures/casper2/finality_signature_event_v2.json"),
    include_str!("../../fixtures/casper2/fault_event.json"),
    include_str!("../../fixtures/casper2/step_event_v2_synthesized.json"),
];

/// The captured 1.x events of `/events/main`.
const FIXTURES_1X_MAIN: [&str; 5] = [
    include_str!("../../fixtures/casper1/block_added_event.json"),
    include_str!("../../fixtures/casper1/deploy_processed_event.json"),
    include_str!("../../fixtures/casper1/deploy_expired_event.json"),
    include_str!("../../fixtures/casper1/fault_event.json"),
    include_str!("../../fixtures/casper1/step_event.json"),
];

/// Template of the token's transactions in the 2.x chain (`Mix::Cep18`).
pub const TOKEN_TEMPLATE: usize = 4;

/// Height of the first generated block (above every fixture's).
pub const FIRST_HEIGHT: u64 = 1_000_000;

/// Placeholders a template fills in.
#[derive(Debug, Clone, Copy)]
enum Slot {
    BlockHash,
    ParentHash,
    /// Rendered with its key: `"height":N`.
    Height,
    /// Rendered with its key: `"block_height":N`.
    BlockHeight,
    /// Unique per block and position in the block.
    TransactionHash,
    /// A validator key, unique per position in the block.
    PublicKey,
    Timestamp,
    /// A 2.x block body's transaction hashes (this many), with their key: `"transactions":{…}`.
    BodyTransactions(u64),
    /// A 1.x block body's deploy hashes (this many), with their key: `"deploy_hashes":[…]`.
    DeployHashes(u64),
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

    /// Render for `block`, as the `nth` event of its kind in the block.
    fn render(&self, block: u64, nth: u64, out: &mut String) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Slot(Slot::BlockHash) => push_hash(out, block, 0xb1),
                Piece::Slot(Slot::ParentHash) => push_hash(out, block.wrapping_sub(1), 0xb1),
                Piece::Slot(Slot::TransactionHash) => push_transaction_hash(out, block, nth),
                Piece::Slot(Slot::PublicKey) => {
                    out.push_str("01");
                    push_hash(out, nth, 0x5e);
                }
                Piece::Slot(Slot::Height) => {
                    write!(out, "\"height\":{}", FIRST_HEIGHT + block).expect("write to String")
                }
                Piece::Slot(Slot::BlockHeight) => {
                    write!(out, "\"block_height\":{}", FIRST_HEIGHT + block).expect("write to String")
                }
                Piece::Slot(Slot::Timestamp) => push_timestamp(out, block),
                Piece::Slot(Slot::BodyTransactions(count)) => {
                    push_transaction_list(
                        out,
                        block,
                        *count,
                        ["\"transactions\":{\"3\":[", "{\"Version1\":\"", "\"}", "]}"],
                    );
                }
                Piece::Slot(Slot::DeployHashes(count)) => {
                    push_transaction_list(out, block, *count, ["\"deploy_hashes\":[", "\"", "\"", "]"]);
                }
            }
        }
    }
}

/// One SSE stream of the mock node: its captured fixtures (ids `0..`), then generated events, a
/// pure function of the id.
pub struct Chain {
    fixtures: Vec<String>,
    templates: Vec<Template>,
    /// One block's events on this stream: which template, as the how-many-th of its kind.
    cycle: Vec<(usize, u64)>,
    /// Each cycle entry's position among the block's events over all the node's streams.
    slots: Vec<u64>,
    /// Events per block over all the node's streams.
    per_block: u64,
}

/// How many events of each kind a generated 2.x block has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// One block, one accepted and one processed transaction, one finality signature.
    #[default]
    Simple,
    /// Per block: 20 accepted transactions, the block, 20 processed, 100 finality signatures.
    Realistic,
    /// Realistic, where every fifth processed transaction is the mock CEP-18 token's: a mint
    /// and 9 transfers, as CES events (see `token.rs`).
    Cep18,
}

impl Chain {
    fn from(
        fixtures: &[&str],
        templates: Vec<Template>,
        cycle: Vec<(usize, u64)>,
        slots: Vec<u64>,
        per_block: u64,
    ) -> Chain {
        let compact = |f: &&str| serde_json::from_str::<serde_json::Value>(f).expect("fixture is JSON").to_string();
        Chain { fixtures: fixtures.iter().map(compact).collect(), templates, cycle, slots, per_block }
    }

    /// The 2.x stream, `/events`, with blocks of the given mix.
    pub fn casper2(mix: Mix) -> Chain {
        use Slot::*;
        let processed_per_block = match mix {
            Mix::Simple => 1,
            Mix::Realistic | Mix::Cep18 => 20,
        };
        let block = Template::new(
            FIXTURES[0],
            &[
                ("cb64adaae660d227b7d7579039a75e21f1022e2c044a5ed0ce0beefb12b95758", BlockHash),
                ("0932fbb493af51a23be4b3c523474d7de72830ac956a233a50e51e2d86ca6cde", ParentHash),
                ("\"height\":89049", Height),
                ("2024-06-20T09:21:29.898Z", Timestamp),
                ("\"transactions\":{}", BodyTransactions(processed_per_block)),
            ],
        );
        let accepted = Template::new(
            FIXTURES[1],
            &[
                ("446f9511258112c6e5150ee13d57c421da2bc30e0058db6165855a9d1ba4b868", TransactionHash),
                ("2024-11-27T17:24:10.516Z", Timestamp),
            ],
        );
        let processed_template = Template::new(
            FIXTURES[2],
            &[
                ("968fafb41be4d4fb1c4b3c3647bb4803de12bff05bbaa8d16d1ef3b18fc47ee1", TransactionHash),
                ("af8368436128df76e24fd1552544ebe4ddcf2301af4d42f1764e93fa2887557f", BlockHash),
                ("2025-07-14T16:51:43.510Z", Timestamp),
            ],
        );
        let signature = Template::new(
            FIXTURES[4],
            &[
                ("5122b986d344e4cd0ab5a2df1b3bb398de9c557a2e463391b58de82626154428", BlockHash),
                ("\"block_height\":89177", BlockHeight),
                ("017536433a73f7562526f3e9fcb8d720428ae2d28788a9909f3c6f637a9d848a4b", PublicKey),
            ],
        );
        let token = Template::new(
            &super::token::transaction().to_string(),
            &[
                (super::token::TRANSACTION_PLACEHOLDER, TransactionHash),
                (super::token::BLOCK_PLACEHOLDER, BlockHash),
                ("2025-07-14T16:51:43.510Z", Timestamp),
            ],
        );
        // Simple: block, accepted, processed, signature. Realistic: accepted ×20, block,
        // processed ×20, signatures ×100 (Cep18: every fifth processed one the token's).
        let processed = |k: u64| match mix == Mix::Cep18 && k % 5 == 0 {
            true => (TOKEN_TEMPLATE, k),
            false => (2, k),
        };
        let cycle: Vec<(usize, u64)> = match mix {
            Mix::Simple => vec![(0, 0), (1, 0), (2, 0), (3, 0)],
            Mix::Realistic | Mix::Cep18 => (0..processed_per_block)
                .map(|k| (1, k))
                .chain([(0, 0)])
                .chain((0..processed_per_block).map(processed))
                .chain((0..100).map(|k| (3, k)))
                .collect(),
        };
        let per_block = cycle.len() as u64;
        let templates = vec![block, accepted, processed_template, signature, token];
        Chain::from(&FIXTURES, templates, cycle, (0..per_block).collect(), per_block)
    }

    /// The 1.x streams: `/events/main`, `/events/deploys` and `/events/sigs`.
    pub fn casper1() -> [(&'static str, Chain); 3] {
        use Slot::*;
        const DEPLOY: &str = "99483863a391510b8d3447dd5cfc446b42d65e598672d569abc4cdded85b81e6";
        let accepted_fixture = include_str!("../../fixtures/casper1/deploy_accepted_event.json");
        let signature_fixture = include_str!("../../fixtures/casper1/finality_signature_event.json");
        let block = Template::new(
            FIXTURES_1X_MAIN[0],
            &[
                ("5809c6aacc3ac0573a67677743f4cb93cd487ade1c5132c1f806f75b6248f35f", BlockHash),
                ("997d2f23c0a70ecca18043eab2f2f4fdef47fceba96519145b8e5d44609c4f80", ParentHash),
                ("\"height\":97", Height),
                ("2022-06-22T13:42:37.824Z", Timestamp),
                ("\"deploy_hashes\":[]", DeployHashes(1)),
            ],
        );
        let processed = Template::new(
            FIXTURES_1X_MAIN[1],
            &[
                (DEPLOY, TransactionHash),
                ("f19e3b63678ca5aa9fa8b30377275c83f8c1a041902b38ce7f4de50f02dbf396", BlockHash),
                ("2022-06-22T13:41:41.581Z", Timestamp),
            ],
        );
        let accepted =
            Template::new(accepted_fixture, &[(DEPLOY, TransactionHash), ("2022-06-22T13:41:41.581Z", Timestamp)]);
        let signature = Template::new(
            signature_fixture,
            &[("abbcdc782a18a9ba31826b07c838a69a6b790c8b36a0fd5f0818f757834d82f5", BlockHash)],
        );
        [
            ("main", Chain::from(&FIXTURES_1X_MAIN, vec![block, processed], vec![(0, 0), (1, 0)], vec![0, 2], 4)),
            ("deploys", Chain::from(&[accepted_fixture], vec![accepted], vec![(0, 0)], vec![1], 4)),
            ("sigs", Chain::from(&[signature_fixture], vec![signature], vec![(0, 0)], vec![3], 4)),
        ]
    }

    /// Serve `events` (node event JSON) right after the captured fixtures.
    pub fn append_fixtures(&mut self, events: impl IntoIterator<Item = serde_json::Value>) {
        self.fixtures.extend(events.into_iter().map(|event| event.to_string()));
    }

    /// Number of captured events at the start of the stream.
    pub fn fixtures(&self) -> u32 {
        self.fixtures.len() as u32
    }

    /// Events of this stream that exist once the node produced `generated` events in all.
    pub fn produced(&self, generated: u64) -> u32 {
        let (blocks, rest) = (generated / self.per_block, generated % self.per_block);
        let partial = self.slots.iter().filter(|slot| **slot < rest).count() as u64;
        let events = u64::from(self.fixtures()) + blocks * self.cycle.len() as u64 + partial;
        u32::try_from(events).unwrap_or(u32::MAX)
    }

    /// The id of generated block `block`'s `nth` event made from template `template`, if this
    /// stream has one.
    pub fn id_of(&self, template: usize, block: u64, nth: u64) -> Option<u32> {
        let position = self.cycle.iter().position(|entry| *entry == (template, nth))? as u64;
        u32::try_from(u64::from(self.fixtures()) + block * self.cycle.len() as u64 + position).ok()
    }

    /// Append the JSON of event `id` to `out`.
    pub fn render(&self, id: u32, out: &mut String) {
        match self.fixtures.get(id as usize) {
            Some(fixture) => out.push_str(fixture),
            None => {
                let generated = u64::from(id - self.fixtures());
                let per_block = self.cycle.len() as u64;
                let (template, nth) = self.cycle[(generated % per_block) as usize];
                self.templates[template].render(generated / per_block, nth, out);
            }
        }
    }
}

/// The hashes of block `block`'s first `count` transactions as a JSON list: `[open, before,
/// hash, after, ",", before, hash, after, …, close]`.
fn push_transaction_list(out: &mut String, block: u64, count: u64, [open, before, after, close]: [&str; 4]) {
    out.push_str(open);
    for nth in 0..count {
        if nth > 0 {
            out.push(',');
        }
        out.push_str(before);
        push_transaction_hash(out, block, nth);
        out.push_str(after);
    }
    out.push_str(close);
}

/// The hash of the `nth` transaction of generated block `block`.
fn push_transaction_hash(out: &mut String, block: u64, nth: u64) {
    push_hash(out, block * 1024 + nth, 0x7a);
}

/// A 32-byte hash in hex, unique per (`n`, `domain`).
pub fn push_hash(out: &mut String, n: u64, domain: u64) {
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
pub fn push_timestamp(out: &mut String, block: u64) {
    let seconds = block * 8;
    let (day, hour, minute, second) =
        (1 + (seconds / 86_400) % 28, (seconds / 3600) % 24, (seconds / 60) % 60, seconds % 60);
    write!(out, "2025-01-{day:02}T{hour:02}:{minute:02}:{second:02}.000Z").expect("write to String");
}

#[cfg(test)]
mod tests {
    #[test]
    fn streams_share_the_block_rhythm() {
        let [(_, main), (_, deploys), (_, sigs)] = Chain::casper1();
        let v2 = Chain::casper2(Mix::Simple);
        // After 2 blocks and 3 more events: main has block+processed per block plus the next block.
        assert_eq!(
            (v2.produced(11), main.produced(11), deploys.produced(11), sigs.produced(11)),
            (18, 5 + 4 + 2, 1 + 3, 1 + 2)
        );
    }

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
        // A node serves one protocol: keys are unique across all the streams of each.
        for streams in [
            vec![("", Chain::casper2(Mix::Simple))],
            vec![("", Chain::casper2(Mix::Realistic))],
            vec![("", Chain::casper2(Mix::Cep18))],
            Chain::casper1().into(),
        ] {
            let mut keys = HashSet::new();
            for (name, chain) in streams {
                for id in 0..2000 {
                    let raw = render(&chain, id);
                    assert_eq!(raw, render(&chain, id));
                    match Frame::parse(raw).unwrap_or_else(|e| panic!("{name} event {id}: {e}")) {
                        Frame::Event(event) => assert!(keys.insert(event.key), "duplicate key at {name} {id}"),
                        other => panic!("{name} event {id} is {other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn generated_block_has_its_height_and_parent() {
        let chain = Chain::casper2(Mix::Simple);
        let Frame::Event(block) = Frame::parse(render(&chain, FIXTURES.len() as u32 + 4)).unwrap() else {
            panic!("not an event")
        };
        assert_eq!((block.kind.as_str(), block.block_height), ("BlockAdded", Some(FIRST_HEIGHT + 1)));
    }
}

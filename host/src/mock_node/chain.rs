//! The mock node's event sequence: the captured fixtures first, then an endless, deterministic
//! chain of generated blocks, transactions and finality signatures ([`super::generator`], built
//! with casper-types so hashes and signatures verify) and their processed events (the captured
//! ones, with the generated hashes filled in).
//!
//! Event `i` is a pure function of `i`, so any `start_from` can be replayed without memory.

use super::generator::{GeneratedBlock, Generator, Shape};
use std::fmt::Write;
use std::sync::Arc;

pub use super::generator::FIRST_HEIGHT;

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

/// Which part of a generated block an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `BlockAdded`.
    Block,
    /// A transaction's `TransactionAccepted`/`DeployAccepted`.
    Accepted,
    /// A transaction's processed event, from this template.
    Processed(Processed),
    /// A `FinalitySignature`.
    Signature,
}

/// The processed events' templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// The captured processed transaction or deploy.
    Captured,
    /// The mock CEP-18 token's (`Mix::Cep18`).
    Token,
}

/// Placeholders a processed template fills in from its generated transaction.
#[derive(Debug, Clone, Copy)]
enum Slot {
    BlockHash,
    TransactionHash,
    /// The sender's public key.
    Initiator,
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

    /// Render for the `nth` transaction of `block`.
    fn render(&self, block: &GeneratedBlock, nth: u64, out: &mut String) {
        let transaction = &block.transactions[nth as usize];
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Slot(Slot::BlockHash) => out.push_str(&block.hash),
                Piece::Slot(Slot::TransactionHash) => out.push_str(&transaction.hash),
                Piece::Slot(Slot::Initiator) => out.push_str(&transaction.initiator),
                Piece::Slot(Slot::Timestamp) => out.push_str(&transaction.timestamp),
            }
        }
    }
}

/// One SSE stream of the mock node: its captured fixtures (ids `0..`), then generated events, a
/// pure function of the id.
pub struct Chain {
    fixtures: Vec<String>,
    generator: Arc<Generator>,
    captured: Template,
    /// The token's transactions: the chain's first, and the later ones.
    token: Option<[Template; 2]>,
    /// One block's events on this stream: which part, the how-many-th of its kind.
    cycle: Vec<(Part, u64)>,
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
    /// Realistic, where every fifth processed transaction is the mock CEP-18 token's: ten CES
    /// events, the first transaction's a mint (see `token.rs`).
    Cep18,
}

impl Chain {
    fn compact(fixtures: &[&str]) -> Vec<String> {
        let compact = |f: &&str| serde_json::from_str::<serde_json::Value>(f).expect("fixture is JSON").to_string();
        fixtures.iter().map(compact).collect()
    }

    /// The 2.x stream, `/events`, with blocks of the given mix; `capacity` generated blocks are
    /// kept.
    pub fn casper2(mix: Mix, capacity: usize) -> Chain {
        use Slot::*;
        let (transactions, signatures) = match mix {
            Mix::Simple => (1, 1),
            Mix::Realistic | Mix::Cep18 => (20, 100),
        };
        let captured = Template::new(
            FIXTURES[2],
            &[
                ("968fafb41be4d4fb1c4b3c3647bb4803de12bff05bbaa8d16d1ef3b18fc47ee1", TransactionHash),
                ("af8368436128df76e24fd1552544ebe4ddcf2301af4d42f1764e93fa2887557f", BlockHash),
                ("0118ea8b6ed62393f8d36cb1a96b9ee62b48e35317bd2ea3ceb533a6f7ff212ad6", Initiator),
                ("2025-07-14T16:51:43.510Z", Timestamp),
            ],
        );
        let token = |first| {
            Template::new(
                &super::token::transaction(first).to_string(),
                &[
                    (super::token::TRANSACTION_PLACEHOLDER, TransactionHash),
                    (super::token::BLOCK_PLACEHOLDER, BlockHash),
                    (super::token::INITIATOR_PLACEHOLDER, Initiator),
                    ("2025-07-14T16:51:43.510Z", Timestamp),
                ],
            )
        };
        // Simple: block, accepted, processed, signature. Realistic: accepted ×20, block,
        // processed ×20, signatures ×100 (Cep18: every fifth processed one the token's).
        let processed = |k: u64| match mix == Mix::Cep18 && k % 5 == 0 {
            true => (Part::Processed(Processed::Token), k),
            false => (Part::Processed(Processed::Captured), k),
        };
        let cycle: Vec<(Part, u64)> = match mix {
            Mix::Simple => vec![(Part::Block, 0), (Part::Accepted, 0), processed(0), (Part::Signature, 0)],
            Mix::Realistic | Mix::Cep18 => (0..transactions)
                .map(|k| (Part::Accepted, k))
                .chain([(Part::Block, 0)])
                .chain((0..transactions).map(processed))
                .chain((0..signatures).map(|k| (Part::Signature, k)))
                .collect(),
        };
        let per_block = cycle.len() as u64;
        Chain {
            fixtures: Chain::compact(&FIXTURES),
            generator: Arc::new(Generator::new(Shape::V2, transactions, signatures, capacity)),
            captured,
            token: Some([token(true), token(false)]),
            slots: (0..per_block).collect(),
            cycle,
            per_block,
        }
    }

    /// The 1.x streams: `/events/main`, `/events/deploys` and `/events/sigs`, over one chain.
    pub fn casper1(capacity: usize) -> [(&'static str, Chain); 3] {
        use Slot::*;
        const DEPLOY: &str = "99483863a391510b8d3447dd5cfc446b42d65e598672d569abc4cdded85b81e6";
        let accepted_fixture = include_str!("../../fixtures/casper1/deploy_accepted_event.json");
        let signature_fixture = include_str!("../../fixtures/casper1/finality_signature_event.json");
        let processed = || {
            Template::new(
                FIXTURES_1X_MAIN[1],
                &[
                    (DEPLOY, TransactionHash),
                    ("f19e3b63678ca5aa9fa8b30377275c83f8c1a041902b38ce7f4de50f02dbf396", BlockHash),
                    ("01e35e1904034db6c0bb48c6d88826a2bcf27f29f67a13d844b82aab04614f83f4", Initiator),
                    ("2022-06-22T13:41:41.581Z", Timestamp),
                ],
            )
        };
        let generator = Arc::new(Generator::new(Shape::V1, 1, 1, capacity));
        let stream = |fixtures: &[&str], cycle: Vec<(Part, u64)>, slots: Vec<u64>| Chain {
            fixtures: Chain::compact(fixtures),
            generator: generator.clone(),
            captured: processed(),
            token: None,
            cycle,
            slots,
            per_block: 4,
        };
        let processed = (Part::Processed(Processed::Captured), 0);
        [
            ("main", stream(&FIXTURES_1X_MAIN, vec![(Part::Block, 0), processed], vec![0, 2])),
            ("deploys", stream(&[accepted_fixture], vec![(Part::Accepted, 0)], vec![1])),
            ("sigs", stream(&[signature_fixture], vec![(Part::Signature, 0)], vec![3])),
        ]
    }

    /// Serve `events` (node event JSON, one each) right after the captured fixtures.
    pub fn append_fixtures(&mut self, events: impl IntoIterator<Item = String>) {
        self.fixtures.extend(events);
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

    /// The id of generated block `block`'s `nth` event of `part`, if this stream has one.
    pub fn id_of(&self, part: Part, block: u64, nth: u64) -> Option<u32> {
        let position = self.cycle.iter().position(|entry| *entry == (part, nth))? as u64;
        u32::try_from(u64::from(self.fixtures()) + block * self.cycle.len() as u64 + position).ok()
    }

    /// Generated block `b` (from 0).
    pub fn block(&self, b: u64) -> Arc<GeneratedBlock> {
        self.generator.block(b)
    }

    /// Generated blocks whose `BlockAdded` is among this stream's events `0..head` (none on a
    /// stream without blocks).
    pub fn blocks_before(&self, head: u32) -> u64 {
        let Some(position) = self.cycle.iter().position(|entry| *entry == (Part::Block, 0)) else { return 0 };
        let first = u64::from(self.fixtures()) + position as u64;
        u64::from(head).checked_sub(first).map_or(0, |after| after.div_ceil(self.cycle.len() as u64))
    }

    /// Append the JSON of event `id` to `out`.
    pub fn render(&self, id: u32, out: &mut String) {
        if let Some(fixture) = self.fixtures.get(id as usize) {
            return out.push_str(fixture);
        }
        let generated = u64::from(id - self.fixtures());
        let per_block = self.cycle.len() as u64;
        let (part, nth) = self.cycle[(generated % per_block) as usize];
        let block = self.generator.block(generated / per_block);
        match part {
            Part::Block => out.push_str(&block.block_added),
            Part::Accepted => out.push_str(&block.transactions[nth as usize].accepted),
            Part::Signature => out.push_str(&block.signatures[nth as usize]),
            Part::Processed(Processed::Captured) => self.captured.render(&block, nth, out),
            Part::Processed(Processed::Token) => {
                let [first, later] = self.token.as_ref().expect("a 2.x chain with the token");
                let template = if generated / per_block == 0 && nth == 0 { first } else { later };
                template.render(&block, nth, out)
            }
        }
    }
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
        let [(_, main), (_, deploys), (_, sigs)] = Chain::casper1(8);
        let v2 = Chain::casper2(Mix::Simple, 8);
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
            vec![("", Chain::casper2(Mix::Simple, 64))],
            vec![("", Chain::casper2(Mix::Realistic, 64))],
            vec![("", Chain::casper2(Mix::Cep18, 64))],
            Chain::casper1(64).into(),
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
        let chain = Chain::casper2(Mix::Simple, 8);
        let Frame::Event(block) = Frame::parse(render(&chain, FIXTURES.len() as u32 + 4)).unwrap() else {
            panic!("not an event")
        };
        assert_eq!((block.kind.as_str(), block.block_height), ("BlockAdded", Some(FIRST_HEIGHT + 1)));
    }
}

//! Where each stored event is in the chain (`events.chain_height`), so plugins can read the log
//! in chain order, `(chain_height, seq)`, whatever order the events arrived in (a history sync
//! stores old blocks after the live ones).
//!
//! - An event that names its block's height (`BlockAdded`, 2.x `FinalitySignature`) is at
//!   that height; one that names only its block's hash (`TransactionProcessed`, 1.x
//!   signatures) is at that block's height when the block is among the recent ones stored.
//! - In a block fetched whole over JSON-RPC, the accepted transactions are one below the block
//!   (where a live node announces them) and the rest at the block's height.
//! - Any other event (accepted and expired transactions, faults, steps, a transaction processed
//!   before its block arrived) is at the highest block stored when it arrives.
//! - An event a decoder derives is where its source is (the writer's caller says so).

use crate::event::NodeEvent;
use std::collections::{HashMap, VecDeque};

/// Gives the events of a store from before chain positions their positions: a block's height,
/// or the highest block stored before it (the same SQL on both backends).
pub const FILL: &str = "UPDATE events SET chain_height = positions.height FROM (
    SELECT seq, coalesce(block_height,
        max(CASE WHEN kind = 'BlockAdded' THEN block_height END) OVER (ORDER BY seq), 0) AS height
    FROM events
) AS positions WHERE events.seq = positions.seq";

/// Block hashes remembered with their heights.
const RECENT_BLOCKS: usize = 4096;

/// The writer's memory of the chain: the highest block stored and the recent blocks' heights.
#[derive(Debug, Default)]
pub struct ChainPositions {
    highest: u64,
    heights: HashMap<String, u64>,
    order: VecDeque<String>,
}

impl ChainPositions {
    /// Start from the highest chain position stored.
    pub fn starting_at(highest: u64) -> ChainPositions {
        ChainPositions { highest, ..ChainPositions::default() }
    }

    /// The chain position of `event`, arriving alone (`block: None`) or in a block fetched whole
    /// at height `block`; a `BlockAdded` is remembered.
    pub fn of(&mut self, event: &NodeEvent, block: Option<u64>) -> u64 {
        let by_hash = || event.block_hash.as_ref().and_then(|hash| self.heights.get(hash).copied());
        let in_block = || block.map(|height| if accepted(&event.kind) { height.saturating_sub(1) } else { height });
        let height = event.block_height.or_else(by_hash).or_else(in_block).unwrap_or(self.highest);
        if event.kind == "BlockAdded"
            && let Some(hash) = &event.block_hash
        {
            self.remember(hash, height);
        }
        height
    }

    fn remember(&mut self, hash: &str, height: u64) {
        self.highest = self.highest.max(height);
        if self.heights.insert(hash.to_owned(), height).is_none() {
            self.order.push_back(hash.to_owned());
            if self.order.len() > RECENT_BLOCKS
                && let Some(oldest) = self.order.pop_front()
            {
                self.heights.remove(&oldest);
            }
        }
    }
}

/// The height of the block among `events` (a block fetched whole), if there is one.
pub fn block_height(events: &[NodeEvent]) -> Option<u64> {
    events.iter().find(|event| event.kind == "BlockAdded").and_then(|event| event.block_height)
}

fn accepted(kind: &str) -> bool {
    matches!(kind, "TransactionAccepted" | "DeployAccepted")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, block_hash: Option<&str>, block_height: Option<u64>) -> NodeEvent {
        NodeEvent {
            kind: kind.into(),
            key: String::new(),
            block_hash: block_hash.map(String::from),
            block_height,
            transaction_hash: None,
            era_id: None,
            account: None,
            raw: String::new(),
        }
    }

    #[test]
    fn live_events_take_their_blocks_height_or_the_highest_stored() {
        let mut chain = ChainPositions::starting_at(7);
        assert_eq!(chain.of(&event("TransactionAccepted", None, None), None), 7);
        assert_eq!(chain.of(&event("TransactionProcessed", Some("b8"), None), None), 7, "its block is not here yet");
        assert_eq!(chain.of(&event("BlockAdded", Some("b8"), Some(8)), None), 8);
        assert_eq!(chain.of(&event("TransactionProcessed", Some("b8"), None), None), 8);
        assert_eq!(chain.of(&event("FinalitySignature", Some("b8"), None), None), 8, "a 1.x signature");
        assert_eq!(chain.of(&event("FinalitySignature", Some("b7"), Some(7)), None), 7, "a late signature");
        assert_eq!(chain.of(&event("Step", None, None), None), 8);
    }

    #[test]
    fn a_fetched_block_is_at_its_height_and_its_accepted_transactions_just_below() {
        let mut chain = ChainPositions::starting_at(1000);
        assert_eq!(chain.of(&event("TransactionAccepted", None, None), Some(5)), 4);
        assert_eq!(chain.of(&event("BlockAdded", Some("b5"), Some(5)), Some(5)), 5);
        assert_eq!(chain.of(&event("TransactionProcessed", Some("b5"), None), Some(5)), 5);
        assert_eq!(chain.of(&event("Step", None, None), None), 1000, "an old block leaves the highest as it was");
    }

    #[test]
    fn only_the_recent_blocks_are_remembered() {
        let mut chain = ChainPositions::default();
        for height in 0..RECENT_BLOCKS as u64 + 10 {
            chain.of(&event("BlockAdded", Some(&format!("b{height}")), Some(height)), None);
        }
        assert_eq!(chain.heights.len(), RECENT_BLOCKS);
        assert!(!chain.heights.contains_key("b0"));
    }
}

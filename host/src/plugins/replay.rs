//! How a new indexer or decoder (or a new version of one) goes through the stored log before it
//! is live: in slices between the pipeline's batches, first in chain order (the events stored
//! when it begins), then by sequence up to the head; an indexer that does not decode waits
//! while the history sync or a decoder's replay still brings events of the chain's past.

use super::Plugins;
use super::slot::{Replay, Slot};
use crate::store::plugin_data::PluginBatch;
use crate::store::{Read, Writer};
use std::sync::atomic::Ordering::Relaxed;

/// One slice of the replay of the stored log: what to commit with it
/// ([`crate::store::Writer::commit_replay`]).
pub struct CatchUp {
    /// The events decoders derived, each with its source's chain position.
    pub derived: Vec<(u64, crate::store::Derived)>,
    /// The replaying plugins' writes and cursors.
    pub batches: Vec<PluginBatch>,
    /// Storage ids of older versions to remove (their replacements reach the head).
    pub retired: Vec<String>,
    /// The most events one plugin went through.
    pub replayed: usize,
    /// Cursors before the slice, to rewind to if the commit fails.
    before: Vec<(String, u64, Replay)>,
}

impl Plugins {
    /// Whether a history sync is still storing the chain's past (indexers wait to replay).
    pub fn set_history_syncing(&mut self, syncing: bool) {
        self.history_syncing = syncing;
        for slot in &self.catching_up {
            slot.stats.waiting.store(self.waiting(slot), Relaxed);
        }
    }

    /// Whether some indexers or decoders can go on replaying the stored log.
    pub fn catching_up(&self) -> bool {
        self.catching_up.iter().any(|slot| !slot.stats.suspended.load(Relaxed) && !self.waiting(slot))
    }

    /// Whether `slot` may not begin its replay yet: an indexer waits while the history sync
    /// or a decoder's replay still brings events of the chain's past.
    fn waiting(&self, slot: &Slot) -> bool {
        let decoding = || self.catching_up.iter().any(|s| s.manifest.decode && !s.stats.suspended.load(Relaxed));
        slot.replay == Replay::Pending && slot.waits() && (self.history_syncing || decoding())
    }

    /// Replay up to `max` stored events (read through `log`, up to `head`) into each indexer
    /// and decoder that is catching up. Returns what to commit; then call
    /// [`promote`](Self::promote), or [`rewind`](Self::rewind) when the commit fails.
    pub fn catch_up(&mut self, log: &mut dyn Read, head: u64, max: usize) -> anyhow::Result<CatchUp> {
        let before = self.catching_up.iter().map(|s| (s.stats.name.clone(), s.cursor, s.replay)).collect();
        let mut slice = CatchUp { derived: Vec::new(), batches: Vec::new(), retired: Vec::new(), replayed: 0, before };
        if let Err(e) = self.replay(log, head, max, &mut slice) {
            self.rewind(&slice);
            return Err(e);
        }
        Ok(slice)
    }

    fn replay(&mut self, log: &mut dyn Read, head: u64, max: usize, slice: &mut CatchUp) -> anyhow::Result<()> {
        let waiting: Vec<bool> = self.catching_up.iter().map(|slot| self.waiting(slot)).collect();
        for (slot, waiting) in self.catching_up.iter_mut().zip(waiting) {
            slot.stats.waiting.store(waiting, Relaxed);
            if waiting || slot.stats.suspended.load(Relaxed) {
                continue;
            }
            slot.replay_slice(log, head, max, slice)?;
            if slot.reached(head) {
                slice.retired.extend(log.plugin_versions(&slot.stats.name, slot.template.storage_id())?);
            }
        }
        Ok(())
    }

    /// Replay the stored log (read through `log`) until every plugin that catches up is live
    /// or waiting, committing each slice of `max` events through `writer` and showing it to
    /// `progress` (`sluice replay` and the harness do this at once; the pipeline a slice between
    /// two batches).
    pub fn replay_all(
        &mut self,
        writer: &mut Writer,
        log: &mut dyn Read,
        max: usize,
        mut progress: impl FnMut(&CatchUp),
    ) -> anyhow::Result<()> {
        let mut head = writer.last_seq()?;
        while self.catching_up() {
            let slice = self.catch_up(log, head, max)?;
            let derived = writer.commit_replay(&slice.derived, &slice.batches, &slice.retired, self)?;
            head = derived.last().map_or(head, |(event, _)| event.seq);
            progress(&slice);
            self.promote(head);
        }
        Ok(())
    }

    /// After a catch-up's commit: those that reached `head` go live, each in place of its
    /// older version.
    pub fn promote(&mut self, head: u64) {
        while let Some(at) = self.catching_up.iter().position(|slot| slot.reached(head)) {
            let slot = self.catching_up.remove(at);
            tracing::info!(plugin = %slot.stats.name, head, "caught up with the stored log; now live");
            self.go_live(slot);
        }
        self.sync_registry();
    }

    /// On a `serve` instance, which never indexes: the indexers that the writing instance has
    /// brought up to `head` (their stored cursors say so) go live.
    pub fn promote_stored(&mut self, log: &mut dyn Read, head: u64) -> anyhow::Result<()> {
        for slot in &mut self.catching_up {
            if let Some(cursor) = log.plugin_cursor(slot.template.storage_id())?
                && cursor.chain.is_none()
            {
                (slot.cursor, slot.replay) = (cursor.last_seq, Replay::Sequence);
            }
        }
        self.promote(head);
        Ok(())
    }

    /// After a catch-up's commit failed: its slice will be replayed again.
    pub fn rewind(&mut self, catch_up: &CatchUp) {
        for slot in &mut self.catching_up {
            if let Some((_, cursor, replay)) = catch_up.before.iter().find(|(name, ..)| *name == slot.stats.name) {
                (slot.cursor, slot.replay) = (*cursor, *replay);
            }
        }
    }
}

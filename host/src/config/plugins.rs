//! `[[plugins]]` entries: a plugin's component, its limits and what it is granted.

use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// One `[[plugins]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Unique name; annotations are stored under it.
    pub name: Spanned<String>,
    /// Path of the component (`.wasm`, target `wasm32-wasip2`).
    pub path: Spanned<PathBuf>,
    /// Longest a single call may run, in milliseconds.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Most memory the plugin may use, in MiB: linear memories, tables and the storage writes
    /// its current batch keeps pending.
    #[serde(default = "defaults::memory_mib")]
    pub memory_mib: u64,
    /// After this many failed calls in a row the plugin is suspended (events pass it by).
    #[serde(default = "defaults::max_failures")]
    pub max_consecutive_failures: u32,
    /// The plugin is also suspended when this share (in percent) of its last 100 calls failed,
    /// or when (3 of them at least) its failed calls took this share of the last 10 seconds: a
    /// plugin failing often but not always must not slow the pipeline for good.
    #[serde(default = "defaults::max_failure_percent")]
    pub max_failure_percent: u32,
    /// Largest output accepted from one call (an annotation, a stored value, a response body),
    /// in KiB.
    #[serde(default = "defaults::max_output_kib")]
    pub max_output_kib: u64,
    /// What a failed call does: `skip` (record a dead letter and go on) or `halt` (suspend the
    /// plugin at once; the host keeps running).
    #[serde(default)]
    pub on_error: OnError,
    /// The `[[nodes]]` entry (with an `rpc_url`) the plugin may query, if any.
    pub node: Option<Spanned<String>>,
    /// A directory the plugin may read, seen as `/files` inside it: a copy of its regular
    /// files and directories taken when the plugin loads (bounded in files and bytes; later
    /// changes are seen at its next load).
    pub files: Option<Spanned<PathBuf>>,
    /// Filters: apply only where attached (SSE/WebSocket `?filter=NAME`, another plugin's
    /// `input`) instead of hiding what they drop from everyone.
    #[serde(default)]
    pub attached: bool,
    /// Indexers: take only the events the attached filter of this name keeps.
    pub input: Option<Spanned<String>>,
    /// Indexers: the first stored sequence a new version replays from (1: the whole log).
    #[serde(default = "defaults::replay_from")]
    pub replay_from: u64,
    /// Routes: requests answered at once, each by a warm instance on a thread of its own.
    #[serde(default = "defaults::route_workers")]
    pub route_workers: usize,
    /// Routes: requests that may wait for a worker; more are refused at once (503).
    #[serde(default = "defaults::route_queue")]
    pub route_queue: usize,
    /// Node queries per second the plugin may make (a burst of as many); beyond, a query fails.
    #[serde(default = "defaults::node_queries_per_second")]
    pub node_queries_per_second: u32,
    /// Most bytes its storage may hold (keys and values), in MiB; beyond, writes fail.
    #[serde(default = "defaults::storage_quota_mib")]
    pub storage_quota_mib: u64,
    /// Handed to the plugin's `init` as a JSON object.
    #[serde(default)]
    pub config: toml::Table,
}

/// A plugin's error policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Record the failure (a dead letter for indexers) and go on with the next event.
    #[default]
    Skip,
    /// Suspend the plugin at its first failure.
    Halt,
}

mod defaults {
    pub fn timeout_ms() -> u64 {
        100
    }
    pub fn memory_mib() -> u64 {
        64
    }
    pub fn max_failures() -> u32 {
        10
    }
    pub fn max_output_kib() -> u64 {
        1024
    }
    pub fn max_failure_percent() -> u32 {
        50
    }
    pub fn route_workers() -> usize {
        2
    }
    pub fn route_queue() -> usize {
        64
    }
    pub fn node_queries_per_second() -> u32 {
        20
    }
    pub fn storage_quota_mib() -> u64 {
        1024
    }
    pub fn replay_from() -> u64 {
        1
    }
}

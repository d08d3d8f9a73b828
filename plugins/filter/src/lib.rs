//! Stock plugin `filter`: keep or drop events by type.
//!
//! ```toml
//! [[plugins]]
//! name = "filter"
//! path = "target/wasm32-wasip2/release/filter.wasm"
//! [plugins.config]
//! drop = ["FinalitySignature"]       # or: keep = ["BlockAdded", "TransactionProcessed"]
//! ```
//! Exactly one of `keep` and `drop` must be given. Names are checked against the event types
//! Casper 1.x and 2.x nodes send, so a typo fails at start-up instead of filtering nothing.

use serde::Deserialize;
use sluice_plugin_sdk::{Event, Plugin, Verdict};
use std::collections::HashSet;

/// Every event type a Casper 1.x or 2.x node sends.
const KNOWN_KINDS: &[&str] = &[
    "BlockAdded",
    "TransactionAccepted",
    "TransactionProcessed",
    "TransactionExpired",
    "DeployAccepted",
    "DeployProcessed",
    "DeployExpired",
    "FinalitySignature",
    "Fault",
    "Step",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    keep: Option<Vec<String>>,
    drop: Option<Vec<String>>,
}

struct Filter {
    kinds: HashSet<String>,
    /// True when `kinds` lists what to keep; false when it lists what to drop.
    allow_list: bool,
}

impl Plugin for Filter {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let (kinds, allow_list) = match (config.keep, config.drop) {
            (Some(keep), None) => (keep, true),
            (None, Some(drop)) => (drop, false),
            _ => return Err("give exactly one of `keep` and `drop` (lists of event types)".into()),
        };
        if let Some(unknown) = kinds.iter().find(|k| !KNOWN_KINDS.contains(&k.as_str())) {
            return Err(format!("unknown event type {unknown:?}; known: {}", KNOWN_KINDS.join(", ")));
        }
        Ok(Filter { kinds: kinds.into_iter().collect(), allow_list })
    }

    fn on_event(&mut self, event: &Event) -> Verdict {
        if self.kinds.contains(&event.kind) == self.allow_list { Verdict::Keep } else { Verdict::Drop }
    }
}

sluice_plugin_sdk::export!(Filter);

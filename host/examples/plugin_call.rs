//! Plugin call benchmark: µs per event through `Plugins::process` with real components (warm
//! instances), for a small event (a block, 1.3 KB) and a large one (a processed transaction with
//! effects and messages, 8.7 KB) and a processed transaction of the mock CEP-18 token (10 CES
//! events). Run with `cargo xtask bench` (after the ingest benchmark).

use sluice::config::Config;
use sluice::plugins::{HostServices, Plugins, runtime};
use sluice::store::{Location, Processor, StoredEvent};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const CALLS: u32 = match option_env!("SLUICE_BENCH_CALLS") {
    Some(_) => 20_000,
    None => 100_000,
};
const REPEATS: usize = 5;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let wasm = |name: &str| root.join(format!("target/wasm32-wasip2/release/{name}.wasm")).display().to_string();
    let plugin = |name: &str, file: &str, config: &str| {
        format!("[[plugins]]\nname = \"{name}\"\npath = \"{}\"\n[plugins.config]\n{config}\n", wasm(file))
    };
    use sluice::mock_node::token;
    let decoder = token::decoder_plugin_toml("ces", &wasm("ces_decoder"));
    let scenarios = [
        ("no plugins (chain overhead)", String::new()),
        ("filter (keep/drop by kind)", plugin("filter", "filter", "drop = [\"Fault\"]")),
        ("annotating plugin", plugin("tagger", "chaos", "annotate = true")),
        ("CES decoder (one CEP-18 token)", decoder),
    ];
    let events = [
        ("block, 1.3 KB", event("BlockAdded", include_str!("../fixtures/casper2/block_added_event_v2.json"))),
        (
            "processed transaction, 8.7 KB",
            event(
                "TransactionProcessed",
                include_str!("../fixtures/casper2/transaction_processed_event_with_messages.json"),
            ),
        ),
        (
            "processed transaction with 10 CES events, 5.4 KB",
            event("TransactionProcessed", &token::transaction(true).to_string()),
        ),
    ];
    let engine = runtime::engine(&root.join("target/plugin-cache"))?;
    // Plugins read their storage from a database; this one stays empty.
    let location = Location::resolve(":memory:")?;
    sluice::store::Writer::open(&location)?;
    println!("{CALLS} calls per measurement, median of {REPEATS}:\n");
    println!("| plugins | event | µs per event |");
    println!("|---|---|---:|");
    for (name, toml) in &scenarios {
        let config = Config::parse(toml).map_err(anyhow::Error::msg)?;
        let mut plugins = Plugins::load(&engine, &config.plugins, &HostServices::new(location.clone()))?;
        for (label, event) in &events {
            let mut samples: Vec<f64> = (0..REPEATS)
                .map(|_| {
                    let start = Instant::now();
                    for _ in 0..CALLS {
                        std::hint::black_box(plugins.decide(event));
                    }
                    start.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS)
                })
                .collect();
            samples.sort_by(f64::total_cmp);
            println!("| {name} | {label} | {:.2} |", samples[REPEATS / 2]);
        }
    }
    Ok(())
}

fn event(kind: &str, json: &str) -> StoredEvent {
    let compact = serde_json::from_str::<serde_json::Value>(json).unwrap().to_string();
    StoredEvent {
        seq: 1,
        kind: kind.into(),
        node: "bench".into(),
        received_at_ms: 0,
        raw: Arc::from(compact),
        annotations: None,
        hidden_by: None,
        account: None,
        chain_height: 0,
    }
}

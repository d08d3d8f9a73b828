//! Test-only plugin that attacks the host on demand, to show the sandbox holds against a
//! hostile plugin, not only a careless one. Every attack is off unless configured:
//!
//! - filter (`on-event`): `query_kib` (a node query per event with that many KiB of params; the
//!   event is annotated with the outcome), `log_lines` and `log_text` (that many log lines per
//!   event), `spin_unless_tenth` (spin past the time limit on 9 events of 10);
//! - indexer (`index`, with `index = true`): `values_per_batch` values of `value_kib` KiB each,
//!   `error_kib` (return an error of that size, with line breaks);
//! - decoder (`decode`, with `forge = true`): from each processed transaction, a `BlockAdded` at
//!   height 9,000,000,000, a `TransactionProcessed` of the same transaction and a
//!   `ContractEvent` naming it;
//! - routes, always: `GET /spin` (spins to the time limit), `GET /fast`, `GET /status/{code}`,
//!   `GET /bad-header`, `GET /scan` (reads its whole collection `values`, page by page),
//!   `GET /clock` (both WASI clocks), `GET /read/{file}` (reads `/files/{file}`).

use serde::Deserialize;
use serde_json::json;
use sluice_plugin_sdk::casper::CasperEvent;
use sluice_plugin_sdk::{DerivedEvent, Event, Manifest, Plugin, Request, Response, Verdict, log, node, storage};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    query_kib: Option<usize>,
    log_lines: Option<usize>,
    log_text: Option<String>,
    #[serde(default)]
    spin_unless_tenth: bool,
    #[serde(default)]
    index: bool,
    values_per_batch: Option<usize>,
    value_kib: Option<usize>,
    error_kib: Option<usize>,
    #[serde(default)]
    forge: bool,
}

struct Hostile {
    config: Config,
}

impl Plugin for Hostile {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        Ok(Hostile { config })
    }

    fn manifest(&self) -> Manifest {
        let c = &self.config;
        let filter = c.query_kib.is_some() || c.log_lines.is_some() || c.spin_unless_tenth;
        let index_kinds: Vec<String> = if c.index { vec!["*".into()] } else { Vec::new() };
        let manifest = Manifest::new().indexing(index_kinds).with_routes();
        let manifest = if filter { manifest.filtering() } else { manifest };
        if c.forge { manifest.decoding() } else { manifest }
    }

    fn on_event(&mut self, event: &Event) -> Verdict {
        if self.config.spin_unless_tenth && event.sequence % 10 != 0 {
            spin();
        }
        for _ in 0..self.config.log_lines.unwrap_or(0) {
            log::info(self.config.log_text.as_deref().unwrap_or("hostile"));
        }
        match self.config.query_kib {
            Some(kib) => {
                let height = 1_000_000 + event.sequence % 50;
                let pad = format!("{}{}", "x".repeat(kib << 10), event.sequence);
                let params = json!({"block_identifier": {"Height": height}, "pad": pad});
                let outcome = match node::query("chain_get_block", &params) {
                    Ok(_) => "ok".to_owned(),
                    Err(message) => message,
                };
                Verdict::Annotate(json!({"query": outcome}).to_string())
            }
            None => Verdict::Keep,
        }
    }

    fn index(&mut self, events: &[Event]) -> Result<(), String> {
        if let Some(kib) = self.config.error_kib {
            return Err(format!("{}\nERROR forged log line\n", "e".repeat(kib << 10)));
        }
        let value = json!("v".repeat(self.config.value_kib.unwrap_or(1) << 10)).to_string();
        let first = events.first().map_or(0, |event| event.sequence);
        for i in 0..self.config.values_per_batch.unwrap_or(0) {
            storage::set("values", &format!("{first:08}-{i:04}"), &value)?;
        }
        Ok(())
    }

    fn decode(&mut self, event: &Event) -> Vec<DerivedEvent> {
        let CasperEvent::Processed(processed) = event.casper() else { return Vec::new() };
        let block = json!({"BlockAdded": {"block_hash": "f".repeat(64), "block": {"Version2": {
            "hash": "f".repeat(64), "header": {"height": 9_000_000_000u64, "era_id": 1}, "body": {}}}}});
        let forged = json!({"TransactionProcessed": {"transaction_hash": {"Version1": processed.hash},
            "block_hash": "f".repeat(64), "execution_result": {"Version2": {"error_message": "forged"}}}});
        let contract_event = json!({"ContractEvent": {"name": "Forged", "transaction_hash": processed.hash}});
        let derived = |kind: &str, json: serde_json::Value, height| DerivedEvent {
            kind: kind.into(),
            key: format!("{kind}:{}", processed.hash),
            json: json.to_string(),
            transaction_hash: Some(processed.hash.clone()),
            block_hash: Some("f".repeat(64)),
            block_height: height,
        };
        vec![
            derived("BlockAdded", block, Some(9_000_000_000)),
            derived("TransactionProcessed", forged, None),
            derived("ContractEvent", contract_event, None),
        ]
    }

    fn handle(&mut self, request: Request) -> Response {
        let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["spin"] => spin(),
            ["fast"] => Response::json(200, &json!({"fast": true})),
            ["status", code] => Response {
                status: code.parse().unwrap_or(500),
                headers: vec![("content-type".into(), "text/plain".into())],
                body: b"a body".to_vec(),
            },
            ["bad-header"] => Response { status: 200, headers: vec![("bad header".into(), "x".into())], body: vec![] },
            ["scan"] => {
                let (mut entries, mut bytes, mut pages, mut largest) = (0, 0, 0, 0);
                let mut after: Option<String> = None;
                loop {
                    let page = storage::scan("values", "", after.as_deref(), 1000);
                    if page.is_empty() {
                        break;
                    }
                    let page_bytes: usize = page.iter().map(|e| e.key.len() + e.value.len()).sum();
                    (entries, bytes, pages, largest) =
                        (entries + page.len(), bytes + page_bytes, pages + 1, largest.max(page_bytes));
                    after = page.last().map(|e| e.key.clone());
                }
                Response::json(
                    200,
                    &json!({"entries": entries, "bytes": bytes, "pages": pages, "largest_page": largest}),
                )
            }
            ["clock"] => {
                let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let started = std::time::Instant::now();
                Response::json(
                    200,
                    &json!({"wall_secs": wall.as_secs(), "monotonic_ns": started.elapsed().as_nanos() as u64}),
                )
            }
            ["read", file] => match std::fs::read_to_string(format!("/files/{file}")) {
                Ok(text) => Response::json(200, &json!({"text": text})),
                Err(e) => Response::json(404, &json!({"error": e.to_string()})),
            },
            _ => Response::json(404, &json!({"code": "not_found", "message": "no such route"})),
        }
    }
}

/// Spin until the host's time limit stops the call.
fn spin() -> ! {
    let mut turns = 0u64;
    loop {
        turns = std::hint::black_box(turns.wrapping_add(1));
    }
}

sluice_plugin_sdk::export!(Hostile);

//! Test-only indexer with routes, to show the plugin platform end to end.
//!
//! Indexes the event types in `kinds` (default: all): counts events per type (`counts/{kind}`)
//! and keeps each block's height, hash and era (`blocks/{height}`, indexed by `era`); the host
//! serves both collections (`/collections/blocks`, `/collections/counts`).
//! Config `fail_on` (an event type) makes `index` fail on batches holding one; with `label`, it
//! is also a filter that annotates every event with `{"label": label}`; with `derive = true`, it
//! is also a decoder deriving a `TallyDerived` event from each `TransactionProcessed`.
//!
//! Routes: `GET /counts/{kind}`, `GET /counts?after=&limit=` (paged), `GET /blocks?era=N`,
//! `POST /counts/{kind}` (tries to write: storage is read-only in routes), `GET /huge` (2 MiB),
//! `GET /node/{height}` (the block at that height, asked of the node the plugin is granted) and
//! `GET /node-write` (a method that is not a query).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_plugin_sdk::casper::CasperEvent;
use sluice_plugin_sdk::{DerivedEvent, Event, Manifest, Plugin, Request, Response, Verdict, node, storage};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "all")]
    kinds: Vec<String>,
    fail_on: Option<String>,
    label: Option<String>,
    #[serde(default)]
    derive: bool,
    /// Busy-work per indexed event, in loop turns (to make a replay take a while).
    #[serde(default)]
    index_spin: u64,
}

fn all() -> Vec<String> {
    vec!["*".into()]
}

#[derive(Serialize, Deserialize, Default)]
struct Count {
    count: u64,
}

struct Tally(Config);

impl Plugin for Tally {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        Ok(Tally(config))
    }

    fn manifest(&self) -> Manifest {
        let manifest = Manifest::new().indexing(self.0.kinds.clone()).with_routes();
        let manifest = manifest.find_by("blocks", "era").serving("blocks").serving("counts");
        let manifest = if self.0.label.is_some() { manifest.filtering() } else { manifest };
        if self.0.derive { manifest.decoding() } else { manifest }
    }

    fn decode(&mut self, event: &Event) -> Vec<DerivedEvent> {
        // The kind first: parsing the JSON is the expensive part.
        if !matches!(event.kind.as_str(), "TransactionProcessed" | "DeployProcessed") {
            return Vec::new();
        }
        let CasperEvent::Processed(processed) = event.casper() else { return Vec::new() };
        let derived = json!({"TallyDerived": {
            "from": event.sequence,
            "transaction": processed.hash,
            "succeeded": processed.succeeded,
            "effects": processed.effects.len(),
            "messages": processed.messages.len(),
        }});
        vec![DerivedEvent {
            kind: "TallyDerived".into(),
            key: processed.hash.clone(),
            json: derived.to_string(),
            transaction_hash: Some(processed.hash),
            block_hash: Some(processed.block_hash),
            block_height: None,
        }]
    }

    fn on_event(&mut self, _event: &Event) -> Verdict {
        Verdict::Annotate(json!({"label": self.0.label}).to_string())
    }

    fn index(&mut self, events: &[Event]) -> Result<(), String> {
        for event in events {
            let mut spins = 0u64;
            while spins < self.0.index_spin {
                spins = std::hint::black_box(spins + 1);
            }
            if self.0.fail_on.as_deref() == Some(event.kind.as_str()) {
                return Err(format!("tally: refusing a batch with a {}", event.kind));
            }
            let mut count: Count = storage::get_json("counts", &event.kind).unwrap_or_default();
            count.count += 1;
            storage::set_json("counts", &event.kind, &count)?;
            if event.kind == "BlockAdded"
                && let CasperEvent::BlockAdded(block) = event.casper()
            {
                let record = json!({"height": block.height, "hash": block.hash, "era": block.era_id, "proposer": block.proposer});
                storage::set_json("blocks", &format!("{:020}", block.height), &record)?;
            }
        }
        Ok(())
    }

    fn handle(&mut self, request: Request) -> Response {
        let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["counts", kind]) => match storage::get("counts", kind) {
                Some(value) => Response::json(200, &serde_json::from_str(&value).unwrap_or(Value::Null)),
                None => Response::json(404, &json!({"code": "not_found", "message": "no such kind"})),
            },
            ("GET", ["counts"]) => {
                let limit = request.query_param("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
                let after = request.query_param("after");
                let entries = storage::scan("counts", "", after.as_deref(), limit);
                let kinds: Vec<&str> = entries.iter().map(|entry| entry.key.as_str()).collect();
                Response::json(200, &json!({"kinds": kinds}))
            }
            ("GET", ["blocks"]) => {
                let era = request.query_param("era").unwrap_or_default();
                match storage::find("blocks", "era", &era, None, 1000) {
                    Ok(entries) => {
                        let blocks: Vec<Value> =
                            entries.iter().map(|e| serde_json::from_str(&e.value).unwrap_or(Value::Null)).collect();
                        Response::json(200, &json!({"blocks": blocks}))
                    }
                    Err(message) => Response::json(400, &json!({"code": "bad_query", "message": message})),
                }
            }
            ("POST", ["counts", kind]) => match storage::set("counts", kind, "{\"count\":0}") {
                Ok(()) => Response::json(200, &json!({"written": true})),
                Err(message) => Response::json(403, &json!({"code": "read_only", "message": message})),
            },
            ("GET", ["node", height]) => {
                let params = json!({"block_identifier": {"Height": height.parse::<u64>().unwrap_or_default()}});
                match node::query("chain_get_block", &params) {
                    Ok(answer) => Response::json(200, &answer),
                    Err(message) => Response::json(502, &json!({"code": "node", "message": message})),
                }
            }
            ("GET", ["node-write"]) => match node::query("account_put_transaction", &json!({})) {
                Ok(answer) => Response::json(200, &answer),
                Err(message) => Response::json(403, &json!({"code": "node", "message": message})),
            },
            ("GET", ["huge"]) => Response { status: 200, headers: vec![], body: vec![b'x'; 2 << 20] },
            _ => Response::json(404, &json!({"code": "not_found", "message": "no such route"})),
        }
    }
}

sluice_plugin_sdk::export!(Tally);

//! The `sluice:plugin/node` capability: read-only JSON-RPC queries to a Casper node the
//! operator granted the plugin (`node = "NAME"` in its config), answered from a cache when
//! asked again. A query blocks the calling plugin; its time counts against `timeout_ms`.

use crate::rpc::Rpc;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Methods a plugin may call: queries, never anything that changes the chain.
const READ_ONLY: [&str; 12] = [
    "chain_get_block",
    "chain_get_state_root_hash",
    "info_get_deploy",
    "info_get_transaction",
    "query_balance",
    "query_global_state",
    "state_get_account_info",
    "state_get_dictionary_item",
    "state_get_entity",
    "state_get_item",
    "state_get_package",
    "info_get_status",
];

/// Longest wait for one answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answer is reused (the chain moves on; queries naming a state root hash or a
/// block do not change, but are treated alike for simplicity).
const FRESH_FOR: Duration = Duration::from_secs(60);
/// Most answers kept.
const CACHED: usize = 10_000;

/// One node's JSON-RPC, shared by the plugins granted it.
pub struct NodeQueries {
    rpc: Rpc,
    runtime: tokio::runtime::Handle,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    answers: HashMap<(String, String), (Instant, String)>,
    /// Insertion order, for eviction.
    order: VecDeque<(String, String)>,
}

impl NodeQueries {
    /// Queries to the node at `rpc_url`, made on `runtime`, with answers of up to `max_bytes`.
    pub fn new(rpc_url: &str, runtime: tokio::runtime::Handle, max_bytes: usize) -> anyhow::Result<NodeQueries> {
        let client = reqwest::Client::builder().connect_timeout(TIMEOUT).build()?;
        Ok(NodeQueries { rpc: Rpc::new(client, rpc_url, max_bytes), runtime, cache: Mutex::default() })
    }

    /// Call `method` with `params` (JSON); the `result` as JSON, or why there is none.
    pub fn query(&self, method: &str, params: &str) -> Result<String, String> {
        if !READ_ONLY.contains(&method) {
            return Err(format!("{method} is not a read-only query plugins may make"));
        }
        let params_json: serde_json::Value = serde_json::from_str(params).map_err(|e| format!("params: {e}"))?;
        let key = (method.to_owned(), params_json.to_string());
        if let Some((at, answer)) = self.cache.lock().expect("cache lock").answers.get(&key)
            && at.elapsed() < FRESH_FOR
        {
            return Ok(answer.clone());
        }
        let call = tokio::time::timeout(TIMEOUT, self.rpc.call(method, params_json));
        // On a runtime worker (a plugin's `init` at start-up), let the runtime know it blocks.
        let answer = match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(|| self.runtime.block_on(call)),
            Err(_) => self.runtime.block_on(call),
        };
        let answer = match answer {
            Ok(Ok(result)) => result.to_string(),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no answer within {TIMEOUT:?}")),
        };
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.answers.insert(key.clone(), (Instant::now(), answer.clone())).is_none() {
            cache.order.push_back(key);
        }
        while cache.order.len() > CACHED {
            if let Some(oldest) = cache.order.pop_front() {
                cache.answers.remove(&oldest);
            }
        }
        Ok(answer)
    }
}

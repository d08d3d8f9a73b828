//! The `sluice:plugin/node` capability: read-only JSON-RPC queries to a Casper node the
//! operator granted the plugin (`node = "NAME"` in its config), answered from a cache when
//! asked again. A query blocks the calling plugin (up to 5 s); the time limit cannot interrupt
//! it, but a call that has run past `timeout_ms` is stopped as soon as the query returns.

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
/// Largest answer accepted.
const MAX_ANSWER: usize = 16 << 20;
/// Largest answer kept in the cache.
const MAX_CACHED_ANSWER: usize = 256 << 10;

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
    /// Queries to the node at `rpc_url`, made on `runtime`.
    pub fn new(rpc_url: &str, runtime: tokio::runtime::Handle) -> anyhow::Result<NodeQueries> {
        let client = reqwest::Client::builder().connect_timeout(TIMEOUT).build()?;
        Ok(NodeQueries { rpc: Rpc::new(client, rpc_url, MAX_ANSWER), runtime, cache: Mutex::default() })
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
        // The timer is made inside the runtime (the pipeline thread has none).
        let call = async { tokio::time::timeout(TIMEOUT, self.rpc.call(method, params_json)).await };
        // On a thread of its own: the caller may be anywhere (the pipeline, a blocking task, a
        // runtime worker running `init`), and only outside the runtime may one wait on it.
        let answer = std::thread::scope(|scope| scope.spawn(|| self.runtime.block_on(call)).join());
        let answer = match answer.map_err(|_| "the query panicked".to_owned())? {
            Ok(Ok(result)) => result.to_string(),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no answer within {TIMEOUT:?}")),
        };
        if answer.len() > MAX_CACHED_ANSWER {
            return Ok(answer);
        }
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

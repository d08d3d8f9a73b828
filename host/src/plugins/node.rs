//! The `sluice:plugin/node` capability: read-only JSON-RPC queries to a Casper node the
//! operator granted the plugin (`node = "NAME"` in its config), answered from a cache when
//! asked again. A query blocks the calling plugin, so it waits no longer than what is left of
//! the plugin's own time limit (and never more than 5 s). Each plugin may make
//! `node_queries_per_second` queries; params and the cache are bounded in bytes.

use crate::rpc::Rpc;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
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
/// Most bytes the cache holds (questions, answers and [`ENTRY_BYTES`] each).
const CACHE_BYTES: usize = 32 << 20;
/// What one cached answer takes beside its text: map and queue slots, times, pointers.
const ENTRY_BYTES: usize = 128;
/// Largest answer accepted.
const MAX_ANSWER: usize = 16 << 20;
/// Largest answer kept in the cache.
const MAX_CACHED_ANSWER: usize = 256 << 10;
/// Largest params a query may send (real queries send a few hundred bytes).
const MAX_PARAMS: usize = 64 << 10;

/// One node's JSON-RPC, shared by the plugins granted it.
pub struct NodeQueries {
    rpc: Rpc,
    runtime: tokio::runtime::Handle,
    cache: Mutex<Cache>,
}

/// A question: the method and its params, as compact JSON.
type Question = (String, String);

#[derive(Default)]
struct Cache {
    answers: HashMap<Arc<Question>, (Instant, String)>,
    /// Insertion order, for eviction (the same questions, shared).
    order: VecDeque<Arc<Question>>,
    /// Bytes held, counted by [`size`].
    bytes: usize,
}

/// The bytes one cached answer takes.
fn size((method, params): &Question, answer: &str) -> usize {
    method.len() + params.len() + answer.len() + ENTRY_BYTES
}

/// One plugin's grant of a node: the node, and the plugin's allowance of queries (shared by its
/// instances).
#[derive(Clone)]
pub struct NodeGrant {
    node: Arc<NodeQueries>,
    allowance: Arc<DefaultDirectRateLimiter>,
    per_second: u32,
}

impl NodeGrant {
    /// `node`, for a plugin that may query it `per_second` times a second (a burst of as many).
    pub fn new(node: Arc<NodeQueries>, per_second: u32) -> NodeGrant {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        NodeGrant { node, allowance: Arc::new(RateLimiter::direct(Quota::per_second(rate))), per_second }
    }

    /// Ask the node, within the plugin's allowance and before `deadline`. A question that
    /// cannot be asked does not spend the allowance.
    pub fn query(&self, method: &str, params: &str, deadline: Instant) -> Result<String, String> {
        if !READ_ONLY.contains(&method) {
            return Err(format!("{method} is not a read-only query plugins may make"));
        }
        if params.len() > MAX_PARAMS {
            return Err(format!("params of {} bytes are over the limit of {MAX_PARAMS}", params.len()));
        }
        let params: serde_json::Value = serde_json::from_str(params).map_err(|e| format!("params: {e}"))?;
        if self.allowance.check().is_err() {
            return Err(format!("over {} node queries per second (node_queries_per_second)", self.per_second));
        }
        self.node.query(method, params, deadline)
    }
}

impl NodeQueries {
    /// Queries to the node at `rpc_url`, made on `runtime`.
    pub fn new(rpc_url: &str, runtime: tokio::runtime::Handle) -> anyhow::Result<NodeQueries> {
        let client = reqwest::Client::builder().connect_timeout(TIMEOUT).build()?;
        Ok(NodeQueries { rpc: Rpc::new(client, rpc_url, MAX_ANSWER), runtime, cache: Mutex::default() })
    }

    /// Call `method` with `params`, waiting until `deadline` at most; the `result` as JSON, or
    /// why there is none.
    fn query(&self, method: &str, params: serde_json::Value, deadline: Instant) -> Result<String, String> {
        let question = (method.to_owned(), params.to_string());
        if let Some((at, answer)) = self.cache.lock().expect("cache lock").answers.get(&question)
            && at.elapsed() < FRESH_FOR
        {
            return Ok(answer.clone());
        }
        let wait = deadline.saturating_duration_since(Instant::now()).min(TIMEOUT);
        if wait.is_zero() {
            return Err("the call's time limit is reached: no time left for a node query".into());
        }
        // The timer is made inside the runtime (the pipeline thread has none).
        let call = async { tokio::time::timeout(wait, self.rpc.call(method, params)).await };
        // On a thread of its own: the caller may be anywhere (the pipeline, a route worker, a
        // runtime worker running `init`), and only outside the runtime may one wait on it.
        let answer = std::thread::scope(|scope| scope.spawn(|| self.runtime.block_on(call)).join());
        let answer = match answer.map_err(|_| "the query panicked".to_owned())? {
            Ok(Ok(result)) => result.to_string(),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no answer within {wait:?}")),
        };
        if answer.len() <= MAX_CACHED_ANSWER {
            self.cache.lock().expect("cache lock").insert(question, answer.clone());
        }
        Ok(answer)
    }
}

impl Cache {
    /// Keep `answer`, forgetting the oldest answers beyond [`CACHE_BYTES`].
    fn insert(&mut self, question: Question, answer: String) {
        self.bytes += size(&question, &answer);
        let question = Arc::new(question);
        match self.answers.insert(question.clone(), (Instant::now(), answer)) {
            Some((_, old)) => self.bytes -= size(&question, &old),
            None => self.order.push_back(question),
        }
        while self.bytes > CACHE_BYTES {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some((_, answer)) = self.answers.remove(&oldest) {
                self.bytes -= size(&oldest, &answer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_holds_at_most_its_bytes() {
        let mut cache = Cache::default();
        let answer = "x".repeat(MAX_CACHED_ANSWER);
        for i in 0..1000 {
            cache.insert(("m".into(), format!("{i:0>60000}")), answer.clone());
            assert!(cache.bytes <= CACHE_BYTES, "{} bytes after {i}", cache.bytes);
        }
        let held: usize = cache.answers.iter().map(|(question, (_, answer))| size(question, answer)).sum();
        assert_eq!(held, cache.bytes);
        assert_eq!(cache.answers.len(), cache.order.len());
        cache.insert(("m".into(), format!("{:0>60000}", 999)), "short".into());
        let held: usize = cache.answers.iter().map(|(question, (_, answer))| size(question, answer)).sum();
        assert_eq!(held, cache.bytes, "a replaced answer is counted once");
    }
}

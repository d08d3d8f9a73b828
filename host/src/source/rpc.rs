//! A Casper node's JSON-RPC 2.0 endpoint (`rpc_url`, usually `http://node:7777/rpc`).

use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Longest wait for one answer (a block with its proofs can be large).
const TIMEOUT: Duration = Duration::from_secs(30);

/// A JSON-RPC client for one node.
pub struct Rpc {
    client: reqwest::Client,
    url: String,
    next_id: AtomicU64,
}

/// Why a call gave no result.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The node could not be reached or did not answer JSON-RPC: worth trying again later.
    #[error("{0}")]
    Unreachable(#[from] reqwest::Error),
    /// The node answered with an error (unknown block, pruned state, ...).
    #[error("error {code}: {message}")]
    Answer {
        /// JSON-RPC error code.
        code: i64,
        /// The node's message.
        message: String,
    },
}

impl Rpc {
    /// A client for the endpoint at `url`.
    pub fn new(client: reqwest::Client, url: &str) -> Rpc {
        Rpc { client, url: url.to_owned(), next_id: AtomicU64::new(1) }
    }

    /// Call `method` with `params` and return its `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.next_id.fetch_add(1, Relaxed);
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self.client.post(&self.url).json(&request).timeout(TIMEOUT).send().await?;
        let mut answer: Value = response.error_for_status()?.json().await?;
        match answer.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => Err(RpcError::Answer {
                code: answer["error"]["code"].as_i64().unwrap_or_default(),
                message: answer["error"]["message"].as_str().unwrap_or("an answer without a result").to_owned(),
            }),
        }
    }
}

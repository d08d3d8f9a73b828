//! A Casper node's JSON-RPC 2.0 endpoint (`rpc_url`, usually `http://node:7777/rpc`), used by
//! history, gap backfill and plugins' node queries.

use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Longest wait for one answer by default (a block with its proofs can be large).
const TIMEOUT: Duration = Duration::from_secs(30);

/// A JSON-RPC client for one node.
pub struct Rpc {
    client: reqwest::Client,
    url: String,
    next_id: AtomicU64,
    /// Largest answer read, in bytes.
    max_bytes: usize,
    /// Longest wait for one answer.
    timeout: Duration,
}

/// Why a call gave no result.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The node could not be reached or did not answer JSON-RPC: worth trying again later.
    #[error("{0}")]
    Unreachable(#[from] reqwest::Error),
    /// The answer is larger than the limit (`max_frame_mib`).
    #[error("the answer is larger than {0} bytes (max_frame_mib)")]
    TooLarge(usize),
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
    /// A client for the endpoint at `url` that reads answers of up to `max_bytes`.
    pub fn new(client: reqwest::Client, url: &str, max_bytes: usize) -> Rpc {
        Rpc { client, url: url.to_owned(), next_id: AtomicU64::new(1), max_bytes, timeout: TIMEOUT }
    }

    /// The same client, waiting at most `timeout` for an answer.
    pub fn with_timeout(self, timeout: Duration) -> Rpc {
        Rpc { timeout, ..self }
    }

    /// Call `method` with `params` and return its `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.next_id.fetch_add(1, Relaxed);
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut response =
            self.client.post(&self.url).json(&request).timeout(self.timeout).send().await?.error_for_status()?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(RpcError::TooLarge(self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        let mut answer: Value = serde_json::from_slice(&body)
            .map_err(|e| RpcError::Answer { code: 0, message: format!("not a JSON-RPC answer: {e}") })?;
        match answer.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => Err(RpcError::Answer {
                code: answer["error"]["code"].as_i64().unwrap_or_default(),
                message: answer["error"]["message"].as_str().unwrap_or("an answer without a result").to_owned(),
            }),
        }
    }
}

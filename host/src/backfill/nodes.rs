//! The nodes whose JSON-RPC history and backfill may ask, shared: requests go round the nodes,
//! at most `max_requests` at once over all of them, and a failed request is tried again on
//! the next node after a pause, a few times, before it counts as failed.

use crate::rpc::{Rpc, RpcError};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Tries of one request before it fails (each on the next node).
const ATTEMPTS: u32 = 4;
/// Pause before the second try; doubled before each next one.
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// One node's JSON-RPC.
pub struct RpcNode {
    /// The node's configured name (what its answers are stored as delivered by).
    pub name: Arc<str>,
    /// Its client.
    pub rpc: Rpc,
}

/// The nodes and a bound on requests in flight.
pub struct RpcNodes {
    nodes: Vec<RpcNode>,
    next: AtomicUsize,
    in_flight: Semaphore,
}

/// A request that failed on every try.
#[derive(Debug)]
pub struct Failed {
    /// The last try's error.
    pub error: RpcError,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (after {ATTEMPTS} tries)", self.error)
    }
}

impl RpcNodes {
    /// A pool over `nodes` (at least one) with at most `max_requests` in flight.
    pub fn new(nodes: Vec<RpcNode>, max_requests: usize) -> RpcNodes {
        assert!(!nodes.is_empty(), "a pool of no nodes");
        RpcNodes { nodes, next: AtomicUsize::new(0), in_flight: Semaphore::new(max_requests.max(1)) }
    }

    /// Call `method` with `params` on the next node, trying the following ones after a pause
    /// when it fails; the result and the name of the node that answered.
    pub async fn call(&self, method: &str, params: &Value) -> Result<(Value, Arc<str>), Failed> {
        let first = self.next.fetch_add(1, Relaxed);
        let mut pause = FIRST_PAUSE;
        let mut attempt = 0;
        loop {
            let node = &self.nodes[(first + attempt as usize) % self.nodes.len()];
            let answer = {
                let _permit = self.in_flight.acquire().await.expect("the semaphore is never closed");
                node.rpc.call(method, params.clone()).await
            };
            match answer {
                Ok(result) => return Ok((result, node.name.clone())),
                Err(error) => {
                    attempt += 1;
                    if attempt == ATTEMPTS {
                        return Err(Failed { error });
                    }
                    tracing::debug!(node = %node.name, method, "JSON-RPC try failed, trying again in {pause:?}: {error}");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
    }
}

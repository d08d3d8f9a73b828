//! The stage after the store that fetches what the live streams did not bring, over the nodes'
//! JSON-RPC, and sends it down the same channel as the sources: the gaps a stream recorded
//! (`gaps.rs`, one task per node with an `rpc_url`, woken by what the pipeline commits) and the
//! chain's history (`history.rs`, `[history]`). `blocks.rs` rebuilds a block's events from the
//! answers; `nodes.rs` shares requests among the nodes.

mod blocks;
mod gaps;
mod history;
mod nodes;

pub use history::HistoryStatus;

use crate::config::Config;
use crate::event::Delivery;
use crate::pipeline::Committed;
use crate::rpc::Rpc;
use crate::source::NodeStatus;
use crate::store::Store;
use nodes::{RpcNode, RpcNodes};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Start the backfill of every node with an `rpc_url` (`statuses` in `config.nodes`' order) and,
/// with `[history]`, the history sync (whose status `history` shows).
pub fn spawn(
    config: &Config,
    statuses: &[Arc<NodeStatus>],
    store: &Store,
    out: &mpsc::Sender<Delivery>,
    committed: &watch::Receiver<Committed>,
    history: Option<Arc<HistoryStatus>>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for (node, status) in config.nodes.iter().zip(statuses) {
        if let Some(rpc_url) = &node.rpc_url {
            let fill = gaps::fill_gaps(
                node.clone(),
                rpc_url.get_ref().clone(),
                status.clone(),
                store.clone(),
                out.clone(),
                committed.clone(),
                history.clone(),
            );
            tasks.push(tokio::spawn(fill));
        }
    }
    if let (Some(history_config), Some(status)) = (&config.history, history) {
        let timeout = Duration::from_millis(history_config.request_timeout_ms);
        let mut nodes = Vec::new();
        for node in config.nodes.iter().filter(|node| node.rpc_url.is_some()) {
            let client = reqwest::Client::builder().connect_timeout(node.connect_timeout()).build()?;
            let url = node.rpc_url.as_ref().expect("filtered").get_ref();
            let rpc = Rpc::new(client, url, node.max_frame_bytes()).with_timeout(timeout);
            nodes.push(RpcNode { name: Arc::from(node.name.get_ref().as_str()), rpc });
        }
        let nodes = Arc::new(RpcNodes::new(nodes, history_config.max_requests as usize));
        let history = history::History {
            config: history_config.clone(),
            nodes,
            store: store.clone(),
            out: out.clone(),
            status,
            committed: committed.clone(),
        };
        tasks.push(tokio::spawn(history.run()));
    }
    Ok(tasks)
}

//! `GET /events/sidecar`: Sluice's own lifecycle, as the casper-sidecar's channel of the same
//! name: `{"SidecarVersion": "…"}` first, then `{"SourceState": {"name", "state"}}` when a
//! source's connection changes, `{"PluginReload": {"reloads", "failures", "error"}}` when
//! plugins are reloaded or a reload is refused, and `"Shutdown"` when Sluice stops. (Changes
//! are looked for every second.)

use super::AppState;
use super::sse;
use axum::extract::State;
use axum::response::Response;
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// How often changes are looked for.
const EVERY: Duration = Duration::from_secs(1);

/// Sluice's own lifecycle, as the casper-sidecar's channel of that name.
#[utoipa::path(get, path = "/events/sidecar", tag = "streams",
    responses((status = 200, description = "`text/event-stream`: `{\"SidecarVersion\"}`, then source and plugin changes, `\"Shutdown\"` last")))]
pub async fn serve(State(state): State<AppState>) -> Response {
    stream(&state)
}

/// The channel's frames, until the server shuts down (then `"Shutdown"`).
fn stream(state: &AppState) -> Response {
    let version = json!({"SidecarVersion": env!("CARGO_PKG_VERSION")});
    let watching = Watch { state: state.clone(), sources: Vec::new(), reloads: None, shut: false };
    let frames = futures::stream::unfold(watching, |mut watching| async move {
        let frames = watching.changes().await?;
        Some((futures::stream::iter(frames.into_iter().map(|f| sse::frame(None, &f.to_string()))), watching))
    });
    let first = futures::stream::iter([sse::frame(None, &version.to_string())]);
    sse::response(first.chain(frames.flatten()))
}

/// What was last reported.
struct Watch {
    state: AppState,
    sources: Vec<Value>,
    reloads: Option<(u64, u64)>,
    shut: bool,
}

impl Watch {
    /// The next non-empty batch of changes (the first: every source's state); `None` after
    /// `"Shutdown"`.
    async fn changes(&mut self) -> Option<Vec<Value>> {
        if self.shut {
            return None;
        }
        let mut shutdown = self.state.shutdown.clone();
        loop {
            let mut frames = Vec::new();
            let sources: Vec<Value> = (self.state.nodes.iter())
                .map(|node| json!({"name": node.name, "state": *node.state.lock().expect("status lock")}))
                .collect();
            for (i, source) in sources.iter().enumerate() {
                if self.sources.get(i) != Some(source) {
                    frames.push(json!({"SourceState": source}));
                }
            }
            self.sources = sources;
            let reload = &self.state.reload;
            let counts = (reload.reloads.load(Relaxed), reload.failures.load(Relaxed));
            if self.reloads.is_some_and(|seen| seen != counts) {
                let error = reload.last_error.lock().expect("reload lock").clone();
                frames.push(json!({"PluginReload": {"reloads": counts.0, "failures": counts.1, "error": error}}));
            }
            self.reloads = Some(counts);
            if !frames.is_empty() {
                return Some(frames);
            }
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = shutdown.changed() => {
                    self.shut = true;
                    return Some(vec![json!("Shutdown")]);
                }
            }
        }
    }
}

//! An F1r3fly node's `ws://host:port/ws/events`: first `{"event":"started","schema-version":1}`,
//! then the events the node buffered at start-up (on every connection), then live ones, each as
//! `{"event":"block-added","schema-version":1,"payload":{"block-hash":…,"block-number":…,…}}`.
//! Events are keyed by name and block hash (or what else identifies them), so replays are
//! stored once.

use super::NodeStatus;
use super::websocket::{self, Feed, Read, Settings};
use crate::config::F1r3flyConfig;
use crate::event::{Delivery, NodeEvent, Payload, fingerprint};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, handshake::client::Request};

/// The event schema this reader knows.
const SCHEMA_VERSION: u64 = 1;

/// Follow one F1r3fly node forever; returns when `out` is closed.
pub async fn follow_f1r3fly(config: F1r3flyConfig, status: Arc<NodeStatus>, out: mpsc::Sender<Delivery>) {
    *status.protocol.lock().expect("status lock") = Some("f1r3fly");
    let settings = Settings::new(config.name.get_ref(), config.connect_timeout_secs, config.no_message_timeout_secs);
    websocket::follow(F1r3fly { url: config.url.into_inner() }, settings, status, out).await;
}

struct F1r3fly {
    url: String,
}

impl Feed for F1r3fly {
    fn request(&self) -> Result<Request, String> {
        self.url.as_str().into_client_request().map_err(|e| e.to_string())
    }

    fn read(&mut self, text: &str) -> Read {
        let envelope: Envelope = match serde_json::from_str(text) {
            Ok(envelope) => envelope,
            Err(e) => {
                let reason = format!("not an F1r3fly event: {e}");
                return Read::Deliver(Payload::Rejected { reason, raw: text.to_owned() });
            }
        };
        if envelope.schema_version != SCHEMA_VERSION {
            return Read::Incompatible(format!(
                "schema-version {} (this build reads {SCHEMA_VERSION})",
                envelope.schema_version
            ));
        }
        if envelope.event == "started" {
            return Read::Deliver(Payload::ApiVersion(format!("schema-version {}", envelope.schema_version)));
        }
        Read::Deliver(Payload::Event(event(envelope, text)))
    }
}

/// Every F1r3fly message: the event name, its schema and its payload.
#[derive(Deserialize)]
struct Envelope {
    event: String,
    #[serde(rename = "schema-version")]
    schema_version: u64,
    #[serde(default)]
    payload: Value,
}

/// An event keyed by its name and what identifies it: the block hash for block and start-up
/// events (with the sender for approvals), the address for `node-started`, the content otherwise.
fn event(envelope: Envelope, raw: &str) -> NodeEvent {
    let payload = &envelope.payload;
    let text = |field: &str| payload.get(field).and_then(Value::as_str);
    let block_hash = text("block-hash").map(str::to_lowercase);
    let identity = match (envelope.event.as_str(), &block_hash) {
        ("block-approval-received", Some(hash)) => format!("{hash}:{}", text("sender").unwrap_or_default()),
        (_, Some(hash)) => hash.clone(),
        ("node-started", None) if text("address").is_some() => text("address").unwrap_or_default().to_owned(),
        _ => format!("{:016x}", fingerprint(&payload.to_string())),
    };
    NodeEvent {
        key: format!("f1r3fly:{}:{identity}", envelope.event),
        block_height: payload.get("block-number").and_then(Value::as_u64).filter(|h| i64::try_from(*h).is_ok()),
        kind: envelope.event,
        block_hash,
        transaction_hash: None,
        era_id: None,
        account: None,
        raw: raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Read {
        F1r3fly { url: String::new() }.read(text)
    }

    #[test]
    fn events_are_keyed_by_name_and_block() {
        let added = r#"{"event":"block-added","schema-version":1,"payload":{"block-hash":"AB12","block-number":300,"timestamp":1700000002000,"parent-hashes":["p"],"justification-hashes":[["j3","j4"]],"deploys":[{"id":"d","cost":100,"deployer":"x","errored":false}],"creator":"c","seq-num":43}}"#;
        let Read::Deliver(Payload::Event(event)) = read(added) else { panic!("not an event") };
        assert_eq!(
            (event.kind.as_str(), event.key.as_str(), event.block_hash.as_deref(), event.block_height),
            ("block-added", "f1r3fly:block-added:ab12", Some("ab12"), Some(300))
        );
        let started = r#"{"event":"node-started","schema-version":1,"payload":{"address":"rnode://a@h"}}"#;
        let Read::Deliver(Payload::Event(event)) = read(started) else { panic!("not an event") };
        assert_eq!(event.key, "f1r3fly:node-started:rnode://a@h");
        assert!(matches!(read(r#"{"event":"started","schema-version":1}"#), Read::Deliver(Payload::ApiVersion(_))));
        assert!(matches!(read(r#"{"event":"started","schema-version":2}"#), Read::Incompatible(_)));
        assert!(matches!(read("{not json"), Read::Deliver(Payload::Rejected { .. })));
    }
}

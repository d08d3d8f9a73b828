//! CSPR.cloud's streaming API for contract-level events:
//! `wss://streaming.<network>.cspr.cloud/contract-events?contract_package_hash=…` with the access
//! key in the `authorization` header. Each message is one CES event the service decoded:
//! `{"action":"emitted","data":{"contract_package_hash","contract_hash","name","data",…},
//! "extra":{"deploy_hash","event_id","transform_id"},"timestamp"}`; bare `Ping` text messages are
//! keepalives. It may send an event twice: events are keyed by contract package, deploy hash and
//! CES event id, so the store keeps one.

use super::NodeStatus;
use super::websocket::{self, Feed, Read, Settings};
use crate::config::CsprCloudConfig;
use crate::event::{CONTRACT_EVENT, Delivery, NodeEvent, Payload};
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, handshake::client::Request, http::HeaderValue};

/// Follow one CSPR.cloud stream forever; `access_key` is sent, never logged. Returns when `out`
/// is closed.
pub async fn follow_cspr_cloud(
    config: CsprCloudConfig,
    access_key: String,
    status: Arc<NodeStatus>,
    out: mpsc::Sender<Delivery>,
) {
    *status.protocol.lock().expect("status lock") = Some("cspr.cloud");
    let settings = Settings::new(config.name.get_ref(), config.connect_timeout_secs, config.no_message_timeout_secs);
    websocket::follow(CsprCloud { config, access_key }, settings, status, out).await;
}

struct CsprCloud {
    config: CsprCloudConfig,
    access_key: String,
}

impl Feed for CsprCloud {
    fn request(&self) -> Result<Request, String> {
        let mut url = reqwest::Url::parse(self.config.url.get_ref()).map_err(|e| e.to_string())?;
        url.path_segments_mut().map_err(|()| "the URL cannot have a path")?.pop_if_empty().push("contract-events");
        for (key, hashes) in [
            ("contract_package_hash", &self.config.contract_package_hashes),
            ("contract_hash", &self.config.contract_hashes),
        ] {
            if !hashes.is_empty() {
                url.query_pairs_mut().append_pair(key, &hashes.join(","));
            }
        }
        let mut request = url.as_str().into_client_request().map_err(|e| e.to_string())?;
        let mut key =
            HeaderValue::from_str(&self.access_key).map_err(|_| "the access key is not a valid header value")?;
        key.set_sensitive(true);
        request.headers_mut().insert("authorization", key);
        if let Some(session) = &self.config.persistent_session {
            let session =
                HeaderValue::from_str(session).map_err(|_| "persistent_session is not a valid header value")?;
            request.headers_mut().insert("persistent-session", session);
        }
        Ok(request)
    }

    fn read(&mut self, text: &str) -> Read {
        if text.trim() == "Ping" {
            return Read::Skip;
        }
        Read::Deliver(match contract_event(text) {
            Ok(event) => Payload::Event(event),
            Err(reason) => Payload::Rejected { reason, raw: text.to_owned() },
        })
    }
}

/// The fields of a CSPR.cloud message that identify it.
#[derive(Deserialize)]
struct Message {
    data: Data,
    extra: Extra,
}

#[derive(Deserialize)]
struct Data {
    contract_package_hash: String,
}

#[derive(Deserialize)]
struct Extra {
    deploy_hash: String,
    event_id: u64,
}

/// One message → an event keyed by (contract package, deploy hash, event id).
fn contract_event(text: &str) -> Result<NodeEvent, String> {
    let message: Message = serde_json::from_str(text).map_err(|e| format!("not a CSPR.cloud contract event: {e}"))?;
    let (package, deploy) =
        (message.data.contract_package_hash.to_lowercase(), message.extra.deploy_hash.to_lowercase());
    Ok(NodeEvent {
        kind: CONTRACT_EVENT.to_owned(),
        key: format!("contract-event:{package}:{deploy}:{}", message.extra.event_id),
        block_hash: None,
        block_height: None,
        transaction_hash: Some(deploy),
        era_id: None,
        account: None,
        raw: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example message of CSPR.cloud's documentation.
    const DOCUMENTED: &str = r#"{"data":{"contract_package_hash":"523bfb3f4406","contract_hash":"220cdd3eb413","data":{"choice":1,"stake":"1000000000","voter":"account-hash-f8221442","voting_id":6,"voting_type":0},"raw_data":"00f89a3b","name":"BallotCast"},"action":"emitted","extra":{"deploy_hash":"8655A223aeef1","event_id":13,"transform_id":125},"timestamp":"2023-12-15T12:16:11.041209483Z"}"#;

    #[test]
    fn messages_are_keyed_by_package_deploy_and_event_id() {
        let event = contract_event(DOCUMENTED).unwrap();
        assert_eq!(event.key, "contract-event:523bfb3f4406:8655a223aeef1:13");
        assert_eq!(event.transaction_hash.as_deref(), Some("8655a223aeef1"));
        assert_eq!(event.raw, DOCUMENTED);
        let error = contract_event(r#"{"action":"emitted","data":{}}"#).unwrap_err();
        assert!(error.contains("contract_package_hash"), "{error}");
    }
}

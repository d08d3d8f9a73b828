//! The WebSocket sources end to end: CSPR.cloud's contract-event stream and an F1r3fly node,
//! each against its mock (`sluice mock-cspr-cloud`, `sluice mock-f1r3fly`).

use crate::support::{Rig, get, get_json};
use serde_json::Value;

const PACKAGE: &str = "523bfb3f4406a3b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d";

fn cspr_cloud_toml(port: u16) -> String {
    format!(
        "[[cspr_cloud]]\nname = \"cloud\"\nurl = \"ws://127.0.0.1:{port}\"\ncontract_package_hashes = [\"{PACKAGE}\"]\n\
         access_key_env = \"TEST_CLOUD_KEY\"\npersistent_session = \"sluice-test\"\nno_message_timeout_secs = 10\n\n"
    )
}

#[test]
fn cspr_cloud_contract_events_are_stored_once() {
    // 1000 events, the connection cut every 300 (the session redelivers the last one), and every
    // 50th sent twice.
    let mock = ["--count", "1000", "--drop-after", "300", "--duplicate-every", "50", "--access-key", "s3cret-key"];
    let rig = Rig::start_source("mock-cspr-cloud", &mock, cspr_cloud_toml, &[("TEST_CLOUD_KEY", "s3cret-key")]);
    rig.wait_for_stored(1000);
    let count = |sql: &str| rig.number(sql).unwrap();
    assert_eq!(count("SELECT count(*) FROM events WHERE kind = 'ContractEvent'"), 1000);
    assert_eq!(count("SELECT count(DISTINCT transaction_hash) FROM events"), 334, "three events per deploy");
    assert_eq!(count("SELECT count(*) FROM rejected_frames"), 0);
    let health = get_json(&format!("{}/health", rig.http)).unwrap();
    assert!(health["ingest"]["duplicates"].as_u64() >= Some(20 + 3), "{health}");
    let cloud = &health["nodes"][0];
    assert_eq!((cloud["protocol"].as_str(), cloud["state"].as_str()), (Some("cspr.cloud"), Some("connected")));
    let event: Value = serde_json::from_str(&rig.text("SELECT raw FROM events WHERE seq = 1")).unwrap();
    assert_eq!(
        (event["data"]["contract_package_hash"].as_str(), event["extra"]["event_id"].as_u64()),
        (Some(PACKAGE), Some(0))
    );
    assert!(!rig.host.as_ref().unwrap().log().contains("s3cret-key"), "the access key is never logged");
}

#[test]
fn a_refused_cspr_cloud_key_is_reported_as_failed() {
    let mock = ["--access-key", "the-right-key"];
    let rig = Rig::start_source("mock-cspr-cloud", &mock, cspr_cloud_toml, &[("TEST_CLOUD_KEY", "a-wrong-key")]);
    rig.wait_for("the source to be failed", || {
        get_json(&format!("{}/health", rig.http)).is_some_and(|h| h["nodes"][0]["state"] == "failed")
    });
    assert_eq!(rig.number("SELECT count(*) FROM events"), Some(0));
    assert!(rig.host.as_ref().unwrap().log().contains("401"));
    rig.wait_for("node_statuses -1", || {
        get(&format!("{}/metrics", rig.admin)).is_some_and(|(_, m)| m.contains("node_statuses{node=\"cloud\"} -1"))
    });
}

#[test]
fn f1r3fly_events_replayed_and_live_are_stored_once() {
    // 400 blocks, 3 events each; every connection replays the 3 start-up events and is cut
    // after 500 block events.
    let toml = |port| format!("[[f1r3fly]]\nname = \"f1\"\nurl = \"ws://127.0.0.1:{port}/ws/events\"\n\n");
    let rig = Rig::start_source("mock-f1r3fly", &["--blocks", "400", "--drop-after", "500"], toml, &[]);
    rig.wait_for_stored(3 + 1200);
    let count = |sql: &str| rig.number(sql).unwrap();
    assert_eq!(count("SELECT count(*) FROM events"), 1203);
    for kind in ["block-created", "block-added", "block-finalised"] {
        assert_eq!(count(&format!("SELECT count(*) FROM events WHERE kind = '{kind}'")), 400, "{kind}");
    }
    assert_eq!(count("SELECT count(DISTINCT block_height) FROM events WHERE kind = 'block-added'"), 400);
    rig.wait_for("the start-up events of the last connection", || {
        get_json(&format!("{}/health", rig.http)).is_some_and(|h| h["ingest"]["duplicates"].as_u64() >= Some(3 * 2))
    });
    let health = get_json(&format!("{}/health", rig.http)).unwrap();
    assert_eq!(health["nodes"][0]["api_version"], "schema-version 1");
    assert_eq!(health["nodes"][0]["events_by_kind"]["node-started"], 3, "{health}");
}

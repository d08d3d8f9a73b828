//! The official Casper SDKs accept what Sluice serves: the mock node's generated chain (built
//! with casper-types) passes casper-js-sdk 5's and 2's validation of transactions and deploys
//! (`tests/sdk/check.js`) and pycspr's of deploys and finality signatures (`tests/sdk/check.py`,
//! through pycspr's own client of the 1.x channels), read from Sluice's own streams. The packages
//! are installed by `cargo xtask test`.

use crate::support::{Rig, root};

/// Run the JavaScript SDKs' check on `count` events of `url`; its summary.
fn js_check(url: &str, count: u64) -> serde_json::Value {
    let modules = installed("node_modules");
    let mut node = std::process::Command::new("node");
    node.arg(root().join("tests/sdk/check.js")).args([url, &count.to_string()]).env("NODE_PATH", &modules);
    summary(node)
}

/// Run pycspr's check on `count` events of the 1.x `channel` of the host at `http`.
fn pycspr_check(http: &str, channel: &str, count: u64) -> serde_json::Value {
    let (host, port) = http.trim_start_matches("http://").rsplit_once(':').unwrap();
    let mut python = std::process::Command::new(installed("python/bin/python"));
    python.arg(root().join("tests/sdk/check.py")).args([host, port, channel, &count.to_string()]);
    summary(python)
}

/// An SDK installed by `cargo xtask test` under `target/sdk-check`.
fn installed(path: &str) -> std::path::PathBuf {
    let path = root().join("target/sdk-check").join(path);
    assert!(path.exists(), "{} is missing: run the tests with `cargo xtask test`", path.display());
    path
}

/// Run a check; the JSON summary it printed (it must succeed).
fn summary(mut check: std::process::Command) -> serde_json::Value {
    let output = check.output().expect("the check runs");
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{summary}\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(summary.trim()).unwrap()
}

#[test]
fn the_official_sdks_accept_every_generated_transaction_and_deploy() {
    // 2.x: 20 transactions a block (`TransactionAccepted`, `Version1`), checked by js-sdk 5.
    let rig = Rig::start(&["--rate", "0", "--count", "1410", "--mix", "realistic"], "");
    rig.wait_for_stored(1417);
    let summary = js_check(&format!("{}/events?start_from=0", rig.http), 1417);
    assert_eq!(summary["transactions"], 1 + 200, "{summary}");
    // 1.x: deploys on `/events/deploys`, checked by js-sdk 5 and 2 and by pycspr; finality
    // signatures on `/events/sigs`, verified by pycspr.
    let rig = Rig::start(&["--rate", "0", "--count", "400", "--protocol", "1"], "");
    rig.wait_for_stored(407);
    let summary = js_check(&format!("{}/events/deploys?start_from=0", rig.http), 101);
    assert_eq!(summary["deploys"], 101, "{summary}");
    let summary = pycspr_check(&rig.http, "deploys", 101);
    assert_eq!(summary["deploys"], 101, "{summary}");
    let summary = pycspr_check(&rig.http, "sigs", 101);
    assert_eq!(summary["signatures"], 101, "{summary}");
}

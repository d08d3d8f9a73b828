//! The official Casper SDKs accept what Sluice serves: the mock node's generated chain (built
//! with casper-types) passes casper-js-sdk 5's and 2's validation of transactions and deploys,
//! read from Sluice's own streams (`tests/sdk/check.js`; the packages are installed by
//! `cargo xtask test`).

mod support;

use support::{Rig, root};

/// Run the SDK check on `count` events of `url`; its summary.
fn sdk_check(url: &str, count: u64) -> serde_json::Value {
    let modules = root().join("target/sdk-check/node_modules");
    assert!(modules.is_dir(), "{} is missing: run the tests with `cargo xtask test`", modules.display());
    let output = std::process::Command::new("node")
        .arg(root().join("tests/sdk/check.js"))
        .args([url, &count.to_string()])
        .env("NODE_PATH", &modules)
        .output()
        .expect("node runs");
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{summary}\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(summary.trim()).unwrap()
}

#[test]
fn the_official_sdks_accept_every_generated_transaction_and_deploy() {
    // 2.x: 20 transactions a block (`TransactionAccepted`, `Version1`), checked by js-sdk 5.
    let rig = Rig::start(&["--rate", "0", "--count", "1410", "--mix", "realistic"], "");
    rig.wait_for_stored(1417);
    let summary = sdk_check(&format!("{}/events?start_from=0", rig.http), 1417);
    assert_eq!(summary["transactions"], 1 + 200, "{summary}");
    // 1.x: deploys on `/events/deploys`, checked by js-sdk 5 and 2.
    let rig = Rig::start(&["--rate", "0", "--count", "400", "--protocol", "1"], "");
    rig.wait_for_stored(407);
    let summary = sdk_check(&format!("{}/events/deploys?start_from=0", rig.http), 101);
    assert_eq!(summary["deploys"], 101, "{summary}");
}

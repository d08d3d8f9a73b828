//! The plugin developer's loop: `sluice plugin new`, and the test harness that runs a plugin
//! inside the real host runtime.

mod support;

use sluice::harness::Harness;
use support::{plugin, root, sluice};

const TRANSACTION_PROCESSED: &str =
    include_str!("../host/fixtures/casper2/transaction_processed_event_with_messages.json");
const BLOCK_ADDED: &str = include_str!("../host/fixtures/casper2/block_added_event_v2.json");

#[test]
fn the_harness_feeds_a_plugin_and_shows_its_storage_routes_and_derived_events() {
    let wasm = std::path::PathBuf::from(plugin("tally"));
    let mut tally = Harness::load(&wasm, "derive = true\nlabel = \"x\"").unwrap();
    let fed = tally.feed(&[BLOCK_ADDED, TRANSACTION_PROCESSED]).unwrap();
    let kinds: Vec<&str> = fed.iter().map(|f| f.event.kind.as_str()).collect();
    assert_eq!(kinds, ["BlockAdded", "TransactionProcessed", "TallyDerived"]);
    assert_eq!(fed[2].event.node, "plugin:plugin");
    assert_eq!(fed[0].annotations.as_ref().unwrap()["plugin"]["label"], "x");
    assert_eq!(tally.get("counts", "BlockAdded").unwrap().unwrap()["count"], 1);
    assert_eq!(tally.get("counts", "TallyDerived").unwrap().unwrap()["count"], 1, "indexers see derived events");
    let (status, body) = tally.request("GET", "/blocks?era=", "").unwrap();
    assert_eq!(status, 400, "{body}");
    let (status, body) = tally.request("GET", "/counts?limit=2", "").unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"kinds":["BlockAdded","TallyDerived"]}"#));
    // Fed again: stored once, so counted once.
    assert!(tally.feed(&[BLOCK_ADDED]).unwrap().is_empty());
    assert_eq!(tally.get("counts", "BlockAdded").unwrap().unwrap()["count"], 1);
}

#[test]
fn plugin_new_creates_a_crate_that_builds_and_runs_in_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let output = sluice().args(["plugin", "new", "my-counter", "--dir"]).arg(dir.path()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let crate_dir = dir.path().join("my-counter");
    for file in ["Cargo.toml", "src/lib.rs", "tests/plugin.rs", "README.md"] {
        assert!(crate_dir.join(file).is_file(), "{file}");
    }
    // Built as its README says (sharing this workspace's target folder, for speed).
    let build = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", root().join("target"))
        .current_dir(&crate_dir)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", String::from_utf8_lossy(&build.stderr));
    let wasm = root().join("target/wasm32-wasip2/release/my_counter.wasm");
    let mut counter = Harness::load(&wasm, "kinds = [\"BlockAdded\"]").unwrap();
    counter.feed(&[BLOCK_ADDED, TRANSACTION_PROCESSED]).unwrap();
    let (status, body) = counter.request("GET", "/counts", "").unwrap();
    assert_eq!(status, 200, "{body}");
    let counts: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(counts["counts"]["BlockAdded"]["count"], 1);
    assert!(counts["counts"].get("TransactionProcessed").is_none(), "only the configured kinds: {counts}");
    let again = sluice().args(["plugin", "new", "my-counter", "--dir"]).arg(dir.path()).output().unwrap();
    assert!(!again.status.success(), "an existing crate is not overwritten");
}

#[test]
fn the_sdk_reads_2x_and_1x_events_alike() {
    let fixture = |path: &str| std::fs::read_to_string(root().join("host/fixtures").join(path)).unwrap();
    let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    let mut tally = Harness::load(&std::path::PathBuf::from(plugin("tally")), "derive = true").unwrap();
    let fed = tally
        .feed(&[
            &fixture("casper2/block_added_event_v2.json"),
            &fixture("casper2/transaction_processed_event_with_messages.json"),
            &fixture("casper1/block_added_event.json"),
            &fixture("casper1/deploy_processed_event.json"),
        ])
        .unwrap();
    let derived: Vec<serde_json::Value> = fed
        .iter()
        .filter(|f| f.event.kind == "TallyDerived")
        .map(|f| json(&f.event.raw)["TallyDerived"].clone())
        .collect();
    let v2 = json(&fixture("casper2/transaction_processed_event_with_messages.json"))["TransactionProcessed"].clone();
    let v1 = json(&fixture("casper1/deploy_processed_event.json"))["DeployProcessed"].clone();
    assert_eq!(derived[0]["effects"], v2["execution_result"]["Version2"]["effects"].as_array().unwrap().len());
    assert_eq!(derived[0]["messages"], v2["messages"].as_array().unwrap().len());
    assert_eq!(
        derived[1]["effects"],
        v1["execution_result"]["Success"]["effect"]["transforms"].as_array().unwrap().len()
    );
    assert_eq!(
        (&derived[0]["succeeded"], &derived[1]["succeeded"]),
        (&serde_json::json!(true), &serde_json::json!(true))
    );
    assert_eq!(derived[1]["transaction"], v1["deploy_hash"]);
    let b2 = tally.get("blocks", &format!("{:020}", 89049)).unwrap().unwrap();
    assert_eq!(b2["proposer"], "0140afe8f752e5ff100e0189c080bc207e8805b3e5e82f792ec608de2f11f39f6c");
    let b1 = tally.get("blocks", &format!("{:020}", 97)).unwrap().unwrap();
    assert_eq!(b1["proposer"], "01601bda04ea125e2ca1881e817c46403b32862eb053370e0b93adad220378578a");
}

//! Hot reload under a live stream: the real host watching its config and plugin files.

use crate::support;

use crate::support::{Rig, get_json, plugin, plugin_toml};
use serde_json::Value;

/// The host's `/status` reload report.
fn reload_status(rig: &Rig) -> Value {
    get_json(&format!("{}/status", rig.http)).unwrap()["plugin_reload"].clone()
}

fn wait_reloads(rig: &Rig, reloads: u64) {
    rig.wait_for(&format!("{reloads} reloads"), || reload_status(rig)["reloads"].as_u64() >= Some(reloads));
}

#[test]
fn a_filter_switches_between_two_events_and_loses_none() {
    // 20,000 events flow for 8 s; mid-stream the filter's config changes from v1 to v2.
    let filter = |label: &str| plugin_toml("tally", "tally", "", &format!("kinds = []\nlabel = \"{label}\""));
    let rig = Rig::start(&["--rate", "2500", "--count", "20000"], &filter("v1"));
    rig.wait_for_stored(3000);
    rig.write_config(&filter("v2"));
    wait_reloads(&rig, 1);
    rig.wait_for_stored(20_007);
    let label = |version: &str| {
        format!("FROM events WHERE {} = '{version}'", rig.database.json_text("annotations", "tally.label"))
    };
    let count = |sql: String| rig.number(&sql).unwrap();
    let (v1, v2) =
        (count(format!("SELECT count(*) {}", label("v1"))), count(format!("SELECT count(*) {}", label("v2"))));
    assert_eq!(v1 + v2, 20_007, "every event went through exactly one version");
    assert!(v1 >= 3000 && v2 > 0, "v1 {v1}, v2 {v2}");
    let (last_v1, first_v2) =
        (count(format!("SELECT max(seq) {}", label("v1"))), count(format!("SELECT min(seq) {}", label("v2"))));
    assert_eq!(last_v1 + 1, first_v2, "one switch, between two events");
    assert!(reload_status(&rig)["last_pause_us"].as_u64().is_some());
}

/// A new version of `original`: the same component with a custom section appended, so its
/// bytes (and version) differ while it behaves the same.
fn new_version(original: &[u8], tag: &str) -> Vec<u8> {
    let name = b"sluice-test";
    let mut content = vec![name.len() as u8];
    content.extend_from_slice(name);
    content.extend_from_slice(tag.as_bytes());
    let mut bytes = original.to_vec();
    bytes.extend_from_slice(&[0, content.len() as u8]);
    bytes.extend_from_slice(&content);
    bytes
}

#[test]
fn a_replaced_wasm_replays_then_takes_over_and_a_broken_one_is_refused() {
    let original = std::fs::read(plugin("tally")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("tally.wasm");
    std::fs::write(&wasm, &original).unwrap();
    let toml = format!("[[plugins]]\nname = \"tally\"\npath = \"{}\"\n\n", wasm.display());
    let rig = Rig::start(&["--rate", "2500", "--count", "10000"], &toml);
    rig.wait_for_stored(2000);
    let versions = || -> Vec<String> {
        let rows = rig.rows("SELECT plugin FROM plugin_cursors ORDER BY plugin");
        rows.iter().map(|r| r[0].as_str().unwrap().to_owned()).collect()
    };
    let first = versions();

    // A broken file: refused, the running version goes on.
    std::fs::write(&wasm, b"not a component").unwrap();
    rig.wait_for("a refused reload", || reload_status(&rig)["failures"].as_u64() >= Some(1));
    assert!(reload_status(&rig)["last_error"].as_str().unwrap().contains("tally"), "{}", reload_status(&rig));

    // A new version: it replays the log, then replaces the old one, whose storage goes.
    std::fs::write(&wasm, new_version(&original, "v2")).unwrap();
    wait_reloads(&rig, 1);
    assert!(reload_status(&rig)["last_error"].is_null());
    rig.wait_for_stored(10_007);
    rig.wait_for("the new version alone, at the head", || {
        let now = versions();
        now.len() == 1
            && now != first
            && rig.number(&format!("SELECT last_seq FROM plugin_cursors WHERE plugin = '{}'", now[0])) == Some(10_007)
    });
    let stored: Vec<(String, i64)> = rig
        .rows("SELECT kind, count(*) FROM events GROUP BY kind")
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_i64().unwrap()))
        .collect();
    for (kind, count) in stored {
        let counted = get_json(&format!("{}/plugins/tally/counts/{kind}", rig.http)).unwrap()["count"].as_i64();
        assert_eq!(counted, Some(count), "{kind}");
    }
    let leftovers = rig.number(&format!("SELECT count(*) FROM plugin_data WHERE plugin = '{}'", first[0]));
    assert_eq!(leftovers, Some(0));
}

#[test]
fn plugins_removed_and_added_in_the_config_stop_and_start() {
    let a = plugin_toml("tally_a", "tally", "", "");
    let b = plugin_toml("tally_b", "tally", "", "");
    let rig = Rig::start(&["--rate", "2000", "--count", "12000"], &a);
    rig.wait_for_stored(2000);
    // An invalid config is refused: nothing changes.
    std::fs::write(rig.config_path(), "[[plugins]\nname = ").unwrap();
    rig.wait_for("a refused config", || reload_status(&rig)["failures"].as_u64() >= Some(1));
    rig.write_config(&b);
    wait_reloads(&rig, 1);
    rig.wait_for_stored(12_007);
    rig.wait_for("tally_b at the head", || {
        rig.number("SELECT last_seq FROM plugin_cursors WHERE plugin LIKE 'tally_b@%'") == Some(12_007)
    });
    let a_cursor = rig.number("SELECT last_seq FROM plugin_cursors WHERE plugin LIKE 'tally_a@%'").unwrap();
    assert!(a_cursor < 12_007, "tally_a stopped at {a_cursor}");
    let plugins = get_json(&format!("{}/plugins", rig.admin)).unwrap();
    let names: Vec<&str> = plugins["plugins"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["tally_b"]);
    let (status, _) = support::get(&format!("{}/plugins/tally_a/counts", rig.http)).unwrap();
    assert_eq!(status, 404);
}

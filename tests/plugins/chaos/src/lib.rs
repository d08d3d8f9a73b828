//! Test-only plugin that misbehaves on purpose, so tests can show the host contains it.
//!
//! Config: `trap_on`, `loop_on`, `exhaust_memory_on`, `sleep_on` (an event type, or `*` for
//! every event) and `annotate` (bool: tag every event it survives with `{"seen": <sequence>}`).

use serde::Deserialize;
use sluice_plugin_sdk::{Event, Manifest, Plugin, Verdict};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    trap_on: Option<String>,
    loop_on: Option<String>,
    exhaust_memory_on: Option<String>,
    sleep_on: Option<String>,
    #[serde(default)]
    annotate: bool,
}

struct Chaos(Config);

impl Plugin for Chaos {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        Ok(Chaos(config))
    }

    fn manifest(&self) -> Manifest {
        Manifest::new().filtering()
    }

    fn on_event(&mut self, event: &Event) -> Verdict {
        let on = |setting: &Option<String>| setting.as_deref().is_some_and(|k| k == "*" || k == event.kind);
        if on(&self.0.trap_on) {
            panic!("chaos: trapping on {}", event.kind);
        }
        if on(&self.0.loop_on) {
            let mut spins = 0u64;
            loop {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
        }
        if on(&self.0.exhaust_memory_on) {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        if on(&self.0.sleep_on) {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
        if self.0.annotate { Verdict::Annotate(format!("{{\"seen\":{}}}", event.sequence)) } else { Verdict::Keep }
    }
}

sluice_plugin_sdk::export!(Chaos);

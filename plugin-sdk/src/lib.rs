//! Write Sluice plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`], exported with [`export!`] from a `cdylib` crate
//! built for `wasm32-wasip2`:
//!
//! ```ignore
//! use sluice_plugin_sdk::{Event, Plugin, Verdict};
//!
//! #[derive(serde::Deserialize)]
//! struct Config { kind: String }
//!
//! struct OnlyOneKind(Config);
//!
//! impl Plugin for OnlyOneKind {
//!     type Config = Config;
//!     fn new(config: Config) -> Result<Self, String> { Ok(OnlyOneKind(config)) }
//!     fn on_event(&mut self, event: &Event) -> Verdict {
//!         if event.kind == self.0.kind { Verdict::Keep } else { Verdict::Drop }
//!     }
//! }
//!
//! sluice_plugin_sdk::export!(OnlyOneKind);
//! ```

extern crate self as sluice_plugin_sdk;

/// Bindings generated from the `sluice:plugin` WIT world (`wit/sluice.wit`).
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export_world",
        default_bindings_module: "sluice_plugin_sdk::bindings",
        runtime_path: "sluice_plugin_sdk::__private::wit_bindgen::rt",
    });
}

pub use bindings::sluice::plugin::types::{Event, Verdict};

/// What a plugin implements. One value lives per instance; the host creates instances as it
/// needs (and again after a trap), each with the same configuration.
pub trait Plugin: Sized + 'static {
    /// The plugin's `[plugins.config]` table, deserialized.
    type Config: serde::de::DeserializeOwned;

    /// Build the plugin from its configuration. An error at start-up stops Sluice from loading
    /// the plugin; when an instance is rebuilt after a trap, it counts as one more failure.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// Decide what happens to one event.
    fn on_event(&mut self, event: &Event) -> Verdict;
}

/// Log through the host, tagged with the plugin's name.
pub mod log {
    use crate::bindings::sluice::plugin::host::{self, Level};

    /// Log at `info`.
    pub fn info(message: &str) {
        host::log(Level::Info, message);
    }

    /// Log at `warn`.
    pub fn warn(message: &str) {
        host::log(Level::Warn, message);
    }

    /// Log at `debug`.
    pub fn debug(message: &str) {
        host::log(Level::Debug, message);
    }
}

/// Used by [`export!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    /// Parse the host's JSON config into the plugin's own type.
    pub fn configure<P: crate::Plugin>(config: &str) -> Result<P, String> {
        let config = serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
        P::new(config)
    }
}

/// Export a [`Plugin`] type as this component's `sluice:plugin/plugin` world.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        const _: () = {
            struct Exports;

            thread_local! {
                static INSTANCE: ::core::cell::RefCell<::core::option::Option<$plugin>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            impl $crate::bindings::Guest for Exports {
                fn init(config: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                    let plugin = $crate::__private::configure::<$plugin>(&config)?;
                    INSTANCE.with(|slot| *slot.borrow_mut() = ::core::option::Option::Some(plugin));
                    ::core::result::Result::Ok(())
                }

                fn on_event(event: $crate::Event) -> $crate::Verdict {
                    INSTANCE.with(|slot| {
                        let mut slot = slot.borrow_mut();
                        let plugin = slot.as_mut().expect("the host calls init before on-event");
                        <$plugin as $crate::Plugin>::on_event(plugin, &event)
                    })
                }
            }

            $crate::bindings::export_world!(Exports);
        };
    };
}

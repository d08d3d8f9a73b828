//! Write Sluice plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`], exported with [`export!`] from a `cdylib` crate
//! built for `wasm32-wasip2`:
//!
//! ```ignore
//! use sluice_plugin_sdk::prelude::*;
//!
//! #[derive(Deserialize)]
//! struct Config { kind: String }
//!
//! struct OnlyOneKind(Config);
//!
//! impl Plugin for OnlyOneKind {
//!     type Config = Config;
//!     fn new(config: Config) -> Result<Self, String> { Ok(OnlyOneKind(config)) }
//!     fn manifest(&self) -> Manifest { Manifest::new().filtering() }
//!     fn on_event(&mut self, event: &Event) -> Verdict {
//!         if event.kind == self.0.kind { Verdict::Keep } else { Verdict::Drop }
//!     }
//! }
//!
//! sluice_plugin_sdk::export!(OnlyOneKind);
//! ```

extern crate self as sluice_plugin_sdk;

mod amount;
pub mod casper;
mod collection;
mod contract;
mod manifest;
mod router;
#[cfg(not(target_family = "wasm"))]
pub mod testing;

pub use amount::{U128, U256, U512};
pub use collection::{Collection, newest_first};
pub use contract::ContractConfig;
pub use router::{Handled, IntoResponse, Params, Router};
pub use sluice_casper::ContractEvent;

/// What most plugins use: `use sluice_plugin_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::casper::{CasperEvent, account_hash, bare_hash, holder_key};
    pub use crate::{
        Collection, ContractConfig, ContractEvent, Event, Manifest, Plugin, Request, Response, Router, U128, U256,
        U512, log, newest_first, storage,
    };
    pub use serde::{Deserialize, Serialize};
    pub use serde_json::json;
}

/// Bindings generated from the `sluice:plugin` WIT world (`wit/sluice.wit`).
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
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

pub use bindings::sluice::plugin::types::{
    DerivedEvent, Entry, Event, IndexSpec, Manifest, Request, Response, Verdict,
};

/// What a plugin implements. One value lives per instance; the host creates instances as it
/// needs (and again after a trap), each with the same configuration. Implement the methods the
/// [`manifest`](Plugin::manifest) announces; the others are never called.
pub trait Plugin: Sized + 'static {
    /// The plugin's `[plugins.config]` table, deserialized.
    type Config: serde::de::DeserializeOwned;

    /// Build the plugin from its configuration. An error at start-up stops Sluice from loading
    /// the plugin; when an instance is rebuilt after a trap, it counts as one more failure.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// What the plugin does, built from [`Manifest::new`] (which does nothing): the host calls
    /// only the methods it names.
    fn manifest(&self) -> Manifest;

    /// Decoders: events derived from one a source delivered (stored right after it).
    fn decode(&mut self, _event: &Event) -> Vec<DerivedEvent> {
        Vec::new()
    }

    /// Filters: decide what happens to one event.
    fn on_event(&mut self, _event: &Event) -> Verdict {
        Verdict::Keep
    }

    /// Indexers: handle new events, writing to [`storage`]. An error rolls back the batch's
    /// writes.
    fn index(&mut self, _events: &[Event]) -> Result<(), String> {
        Ok(())
    }

    /// Routes: answer a request under `/plugins/{name}/` (storage is read-only here).
    fn handle(&mut self, _request: Request) -> Response {
        Response::json(404, &serde_json::json!({"code": "not_found", "message": "no such route"}))
    }
}

impl Event {
    /// The event as a typed Casper view (2.x and 1.x).
    pub fn casper(&self) -> casper::CasperEvent {
        casper::CasperEvent::parse(&self.json)
    }

    /// The event as a contract event (either shape Sluice stores), if it is one.
    pub fn contract_event(&self) -> Option<ContractEvent> {
        ContractEvent::parse(&self.json)
    }
}

impl Response {
    /// An error response: `{"code": code, "message": message}` (the host's own error shape).
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
        Response::json(status, &serde_json::json!({"code": code, "message": message.into()}))
    }

    /// A response with a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }
}

impl Request {
    /// The paging parameters `cursor` and `limit` (1 to 1000, `default` when absent); a 400
    /// response when `limit` is not a number in range.
    pub fn page_params(&self, default: u32) -> Result<(Option<String>, u32), Response> {
        let limit = match self.query_param("limit") {
            Some(limit) => limit.parse().ok().filter(|l| (1..=storage::MAX_PAGE).contains(l)),
            None => Some(default),
        };
        match limit {
            Some(limit) => Ok((self.query_param("cursor"), limit)),
            None => Err(Response::error(400, "invalid_limit", format!("limit must be 1 to {}", storage::MAX_PAGE))),
        }
    }

    /// The value of query parameter `name`, if present (no percent-decoding beyond `+`).
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.replace('+', " "))
    }
}

/// The plugin's own storage: collections of JSON values by key (see the WIT `storage`
/// interface). Nothing here can reach another plugin's data.
pub mod storage {
    pub use crate::bindings::sluice::plugin::storage::{find, get, remove, scan, set};

    /// Read a value and parse it as `T`; `None` when absent or not a `T`.
    pub fn get_json<T: serde::de::DeserializeOwned>(collection: &str, key: &str) -> Option<T> {
        get(collection, key).and_then(|value| serde_json::from_str(&value).ok())
    }

    /// Store `value` as JSON.
    pub fn set_json<T: serde::Serialize>(collection: &str, key: &str, value: &T) -> Result<(), String> {
        set(collection, key, &serde_json::to_string(value).map_err(|e| e.to_string())?)
    }

    /// Most entries one scan returns (and no more than the plugin's `max_output_kib` of keys and
    /// values, but at least one entry).
    pub const MAX_PAGE: u32 = 1000;

    /// One page of the entries of `collection` under `prefix`, in key order, after `cursor`
    /// (the `next_cursor` of the page before): `{"data": [values…], "next_cursor": key | null}`
    /// as a response; 400 for a cursor that is not one of this prefix's keys.
    pub fn page(collection: &str, prefix: &str, cursor: Option<&str>, limit: u32) -> crate::Response {
        if cursor.is_some_and(|c| !c.starts_with(prefix)) {
            return crate::Response::error(400, "invalid_cursor", "not a cursor from next_cursor");
        }
        let limit = limit.min(MAX_PAGE);
        let entries = scan(collection, prefix, cursor, limit);
        // A scan also stops at a page of bytes (`max_output_kib`): a short page may not be the
        // last, so look for one entry more.
        let more = |last: &str| entries.len() == limit as usize || !scan(collection, prefix, Some(last), 1).is_empty();
        let next_cursor = entries.last().map(|last| last.key.clone()).filter(|last| more(last));
        let data: Vec<serde_json::Value> =
            entries.iter().map(|e| serde_json::from_str(&e.value).unwrap_or(serde_json::Value::Null)).collect();
        crate::Response::json(200, &serde_json::json!({"data": data, "next_cursor": next_cursor}))
    }
}

/// Read-only queries to the Casper node the operator granted this plugin (`node = "NAME"` in
/// its config).
pub mod node {
    /// Call `method` with `params` and parse the answer's `result`.
    pub fn query(method: &str, params: &serde_json::Value) -> Result<serde_json::Value, String> {
        let answer = crate::bindings::sluice::plugin::node::query(method, &params.to_string())?;
        serde_json::from_str(&answer).map_err(|e| format!("the answer is not JSON: {e}"))
    }
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
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<$crate::Manifest, ::std::string::String> {
                    let plugin = $crate::__private::configure::<$plugin>(&config)?;
                    let manifest = <$plugin as $crate::Plugin>::manifest(&plugin);
                    INSTANCE.with(|slot| *slot.borrow_mut() = ::core::option::Option::Some(plugin));
                    ::core::result::Result::Ok(manifest)
                }

                fn decode(event: $crate::Event) -> ::std::vec::Vec<$crate::DerivedEvent> {
                    with_plugin(|plugin| <$plugin as $crate::Plugin>::decode(plugin, &event))
                }

                fn on_event(event: $crate::Event) -> $crate::Verdict {
                    with_plugin(|plugin| <$plugin as $crate::Plugin>::on_event(plugin, &event))
                }

                fn index(events: ::std::vec::Vec<$crate::Event>) -> ::core::result::Result<(), ::std::string::String> {
                    with_plugin(|plugin| <$plugin as $crate::Plugin>::index(plugin, &events))
                }

                fn handle(request: $crate::Request) -> $crate::Response {
                    with_plugin(|plugin| <$plugin as $crate::Plugin>::handle(plugin, request))
                }
            }

            fn with_plugin<T>(call: impl FnOnce(&mut $plugin) -> T) -> T {
                INSTANCE.with(|slot| call(slot.borrow_mut().as_mut().expect("the host calls init first")))
            }

            $crate::bindings::export_world!(Exports);
        };
    };
}

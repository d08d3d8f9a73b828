//! Host bindings of the `sluice:plugin` world (`wit/sluice.wit`; the WIT documents them): the
//! types passed to and from plugins, the exports the host calls (`Plugin`) and the imports it
//! implements (`capabilities.rs`, `storage.rs`, `node.rs`).
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
});

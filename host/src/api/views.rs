//! How stored events look in JSON responses.

use crate::store::StoredEvent;
use serde::Serialize;
use serde_json::value::RawValue;

/// One event in a REST response: Sluice's metadata around the node's JSON, unchanged.
#[derive(Serialize)]
pub struct EventView<'a> {
    /// Store-wide sequence number.
    pub sequence: u64,
    /// Event type.
    pub kind: &'a str,
    /// Node that delivered it first.
    pub node: &'a str,
    /// Every node that delivered it, the first one first.
    pub seen_by: &'a [String],
    /// Arrival time, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// Plugin annotations (plugin name → value), if any.
    pub annotations: Option<&'a RawValue>,
    /// The node's event JSON.
    pub data: &'a RawValue,
}

impl<'a> EventView<'a> {
    /// View a stored event with the nodes that saw it; its JSON was valid when stored, so this
    /// only fails on corruption.
    pub fn of((event, seen_by): &'a (StoredEvent, Vec<String>)) -> anyhow::Result<EventView<'a>> {
        Ok(EventView {
            sequence: event.seq,
            kind: &event.kind,
            node: &event.node,
            seen_by,
            received_at_ms: event.received_at_ms,
            annotations: event.annotations.as_deref().map(serde_json::from_str).transpose()?,
            data: serde_json::from_str(&event.raw)?,
        })
    }
}

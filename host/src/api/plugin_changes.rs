//! `GET /plugins/{name}/changes/{collection}?key=…|prefix=…|{field}=…`: follow a served
//! collection over SSE. A new subscriber first gets a snapshot of what matches, then every
//! change from the change log (`plugin_changes`) as it is committed. An SSE id is
//! `{change id}@{plugin version}`: one that reconnects with `Last-Event-ID` (or `after=`) gets
//! exactly the changes since that id, when the log still holds them and the plugin is the same
//! version, else a `resync` and a new snapshot. The seam is exact: the snapshot is read between
//! two looks at the log's newest id that agree, and changes follow from that id.

use super::AppState;
use super::error::ApiError;
use super::plugin_data::{self, CollectionRequest};
use super::sse;
use super::subscription::Slot;
use crate::store::plugin_data::{Bound, Change, MAX_PAGE, Matching};
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

/// Changes read from the log per query.
const CHANGES_PER_READ: u32 = 256;
/// A subscriber reads the log at most this often (wake-ups in between are merged)…
const MIN_READ_INTERVAL: Duration = Duration::from_millis(100);
/// …and at least this often (an API-only instance, a new plugin version).
const MAX_READ_INTERVAL: Duration = Duration::from_secs(2);
/// Bytes of a snapshot (at least one entry).
const SNAPSHOT_BYTES: usize = 4 << 20;

/// Which entries a subscriber follows.
#[derive(Debug, Clone, PartialEq)]
enum Followed {
    Key(String),
    Prefix(String),
    Field(String, Value),
}

impl Followed {
    fn matching(&self) -> Matching<'_> {
        match self {
            Followed::Key(key) => Matching::Key(key),
            Followed::Prefix(prefix) => Matching::Prefix(prefix),
            Followed::Field(field, value) => Matching::Field(field, value),
        }
    }
}

/// One subscriber's place.
struct Follower {
    state: AppState,
    name: String,
    collection: String,
    followed: Followed,
    /// The storage followed (a new plugin version means a resync).
    storage_id: String,
    /// The last change delivered, or known not to match; `None` before the first snapshot.
    after: Option<u64>,
    /// The version the client's `after` came from (a resumed stream's).
    resumed_from: Option<String>,
    live: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::bus::Published>>,
    last_read: Instant,
    /// Frames ready to send.
    ready: std::collections::VecDeque<Bytes>,
    ended: bool,
    _slot: Slot,
}

/// The handler; a path whose collection is not served is the plugin's own route.
pub async fn follow(
    State(state): State<AppState>,
    Path((name, collection)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let wanted = CollectionRequest::List(collection.clone());
    let Some(served) = plugin_data::served_for(&state, &name, &wanted, request.method())? else {
        return super::plugin_routes::call(state, name, format!("/changes/{collection}"), request).await;
    };
    let (params, headers) = (plugin_data::query_params(request.uri())?, request.headers());
    let (followed, after) = parse(&params, &served.filters(&collection).collect::<Vec<_>>())?;
    let after = match headers.get("last-event-id") {
        Some(id) => Some(id.to_str().ok().and_then(StreamId::parse).ok_or_else(|| {
            ApiError::bad_request("invalid_last_event_id", "Last-Event-ID is not an id this stream sent")
        })?),
        None => after,
    };
    let slot = state.subscribers.admit()?;
    let live = state.bus.subscribe();
    let follower = Follower {
        storage_id: served.storage_id.clone(),
        state,
        name,
        collection,
        followed,
        after: after.as_ref().map(|id| id.change),
        resumed_from: after.map(|id| id.version),
        live,
        last_read: Instant::now() - MIN_READ_INTERVAL,
        ready: Default::default(),
        ended: false,
        _slot: slot,
    };
    let frames = futures::stream::unfold(follower, |mut follower| async move {
        let frame = follower.next().await?;
        Some((frame, follower))
    });
    Ok(sse::response(frames))
}

/// An SSE id of this stream: a change and the plugin version it belongs to.
#[derive(Debug, Clone, PartialEq)]
struct StreamId {
    change: u64,
    version: String,
}

impl StreamId {
    /// `{change}@{version}`.
    fn parse(text: &str) -> Option<StreamId> {
        let (change, version) = text.trim().split_once('@')?;
        Some(StreamId { change: change.parse().ok()?, version: version.to_owned() })
    }
}

/// The version part of a storage id (`name@version`).
fn version(storage_id: &str) -> &str {
    storage_id.rsplit_once('@').map_or(storage_id, |(_, version)| version)
}

/// `key`, `prefix` or one indexed field (exactly one), and `after`.
fn parse(params: &[(String, String)], filters: &[&str]) -> Result<(Followed, Option<StreamId>), ApiError> {
    let (mut followed, mut after) = (Vec::new(), None);
    for (name, value) in params {
        match name.as_str() {
            "key" => followed.push(Followed::Key(value.clone())),
            "prefix" => followed.push(Followed::Prefix(value.clone())),
            "after" => {
                let id = StreamId::parse(value);
                after =
                    Some(id.ok_or_else(|| ApiError::bad_request("invalid_after", "after is an id this stream sent"))?);
            }
            field if filters.contains(&field) => {
                followed.push(Followed::Field(field.to_owned(), plugin_data::field_value(value)))
            }
            other => {
                let known = ["key", "prefix", "after"].iter().chain(filters).copied().collect::<Vec<_>>().join(", ");
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    format!("unknown parameter {other:?}: known are {known}"),
                ));
            }
        }
    }
    match <[Followed; 1]>::try_from(followed) {
        Ok([followed]) => Ok((followed, after)),
        Err(_) => {
            Err(ApiError::bad_request("invalid_filter", "follow one key, one prefix or one indexed field's value"))
        }
    }
}

impl Follower {
    /// The next frame to send; `None` at the end.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Some(frame);
            }
            if self.ended {
                return None;
            }
            if let Err(error) = self.read().await {
                self.end(&format!("reading the change log failed: {error:#}"));
                continue;
            }
            if self.ready.is_empty() && !self.ended {
                self.wait().await;
            }
        }
    }

    /// Wait until something may have changed (a commit), a while at most.
    async fn wait(&mut self) {
        let mut shutdown = self.state.shutdown.clone();
        tokio::select! {
            received = self.live.recv() => if matches!(received, Err(RecvError::Closed)) {
                self.end("the server is shutting down");
            },
            _ = tokio::time::sleep(MAX_READ_INTERVAL) => {}
            _ = shutdown.changed() => self.end("the server is shutting down"),
        }
        let since = self.last_read.elapsed();
        if since < MIN_READ_INTERVAL {
            tokio::time::sleep(MIN_READ_INTERVAL - since).await;
        }
    }

    /// Queue what is new: a snapshot (first, or after a resync), else the next changes.
    async fn read(&mut self) -> anyhow::Result<()> {
        self.last_read = Instant::now();
        let storage_id = match self.state.routes.collections(&self.name) {
            Ok(served) if served.collections.contains(&self.collection) => served.storage_id.clone(),
            _ => {
                self.end("the plugin no longer serves this collection");
                return Ok(());
            }
        };
        if storage_id != self.storage_id {
            (self.storage_id, self.after) = (storage_id, None);
            self.ready.push_back(event(None, &json!({"type": "resync", "reason": "a new plugin version"})));
        }
        // A client back from another version of the plugin starts over.
        if let Some(resumed_from) = self.resumed_from.take()
            && resumed_from != version(&self.storage_id)
        {
            let reason = "the plugin is another version than that id's";
            self.ready.push_back(event(None, &json!({"type": "resync", "reason": reason})));
            self.after = None;
        }
        let (storage_id, collection, followed, after) =
            (self.storage_id.clone(), self.collection.clone(), self.followed.clone(), self.after);
        let read = self
            .state
            .store
            .read(move |conn| {
                let (oldest, newest) = conn.plugin_change_span()?;
                match after {
                    // Resumable: every change after `after` is still in the log.
                    Some(after) if after == newest => Ok(Read::Changes { changes: Vec::new(), newest }),
                    Some(after) if after < newest && holds_after(oldest, after) => {
                        let changes = conn.plugin_changes(
                            &storage_id,
                            &collection,
                            followed.matching(),
                            after,
                            CHANGES_PER_READ,
                        )?;
                        // Pruned meanwhile past `after`: what it read may have a hole.
                        match holds_after(conn.plugin_change_span()?.0, after) {
                            true => Ok(Read::Changes { changes, newest }),
                            false => Ok(Read::Snapshot {
                                resync: true,
                                snapshot: snapshot(conn, &storage_id, &collection, &followed)?,
                            }),
                        }
                    }
                    resume => Ok(Read::Snapshot {
                        resync: resume.is_some(),
                        snapshot: snapshot(conn, &storage_id, &collection, &followed)?,
                    }),
                }
            })
            .await?;
        match read {
            Read::Changes { changes, newest } => {
                let full = changes.len() == CHANGES_PER_READ as usize;
                let version = version(&self.storage_id).to_owned();
                for change in &changes {
                    self.ready.push_back(change_frame(change, &version));
                }
                // Past what it read, and past what did not match when the read was not cut.
                let last = changes.last().map(|change| change.id);
                self.after = Some(if full { last.unwrap_or(newest) } else { newest.max(last.unwrap_or(0)) });
            }
            Read::Snapshot { resync, snapshot: Snapshot { entries, complete, newest } } => {
                if resync {
                    let reason = "the change log no longer holds the changes after that id";
                    self.ready.push_back(event(None, &json!({"type": "resync", "reason": reason})));
                }
                let entries: Vec<Value> = entries
                    .into_iter()
                    .map(|(key, value)| json!({"key": key, "value": plugin_data::raw(value)}))
                    .collect();
                let body = json!({"type": "snapshot", "entries": entries, "complete": complete});
                let id = format!("{newest}@{}", version(&self.storage_id));
                self.ready.push_back(event(Some(&id), &body));
                self.after = Some(newest);
            }
        }
        Ok(())
    }

    fn end(&mut self, reason: &str) {
        self.ready.push_back(event(None, &json!({"type": "end", "reason": reason})));
        self.ended = true;
    }
}

/// What one read of the store found.
enum Read {
    Changes { changes: Vec<Change>, newest: u64 },
    Snapshot { resync: bool, snapshot: Snapshot },
}

/// What matches at one point of the change log.
struct Snapshot {
    entries: Vec<(String, String)>,
    /// Whether they are all (else the page's bound cut them).
    complete: bool,
    /// The newest change they include.
    newest: u64,
}

/// What matches now, and the newest change it includes: read between two looks at the log
/// that agree (a few tries; then changes after the first look may repeat what it shows).
fn snapshot(
    conn: &mut dyn crate::store::Read,
    storage_id: &str,
    collection: &str,
    followed: &Followed,
) -> anyhow::Result<Snapshot> {
    let bound = Bound { entries: MAX_PAGE, bytes: SNAPSHOT_BYTES };
    let mut tries = 0;
    loop {
        let (_, before) = conn.plugin_change_span()?;
        let (entries, complete) = match followed {
            Followed::Key(key) => {
                (conn.plugin_value(storage_id, collection, key)?.map(|v| (key.clone(), v)).into_iter().collect(), true)
            }
            Followed::Prefix(prefix) => {
                let page = conn.plugin_scan(storage_id, collection, prefix, None, bound)?;
                (page.entries, !page.cut)
            }
            Followed::Field(field, value) => {
                let page = conn.plugin_find(storage_id, collection, field, value, None, bound)?;
                (page.entries, !page.cut)
            }
        };
        let (_, after) = conn.plugin_change_span()?;
        tries += 1;
        if before == after || tries == 5 {
            return Ok(Snapshot { entries, complete, newest: before });
        }
    }
}

/// Whether a log whose oldest change is `oldest` still holds every change after `after`.
fn holds_after(oldest: u64, after: u64) -> bool {
    oldest == 0 || after + 1 >= oldest
}

fn change_frame(change: &Change, version: &str) -> Bytes {
    let value = change.value.clone().map(plugin_data::raw);
    let body = json!({"type": "change", "key": change.key, "value": value, "sequence": change.seq});
    event(Some(&format!("{}@{version}", change.id)), &body)
}

/// A frame with a text id (the stream's ids are `{change}@{version}`).
fn event(id: Option<&str>, body: &Value) -> Bytes {
    let mut frame = id.map(|id| format!("id: {id}\n").into_bytes()).unwrap_or_default();
    frame.extend_from_slice(&sse::frame(None, &body.to_string()));
    frame.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(query: &[(&str, &str)]) -> Result<(Followed, Option<StreamId>), String> {
        let params: Vec<(String, String)> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse(&params, &["era"]).map_err(|e| e.to_json()["code"].as_str().unwrap_or_default().to_owned())
    }

    #[test]
    fn a_subscriber_follows_one_key_prefix_or_field() {
        assert_eq!(parsed(&[("key", "a")]), Ok((Followed::Key("a".into()), None)));
        let id = StreamId { change: 12, version: "ab".into() };
        assert_eq!(
            parsed(&[("era", "7"), ("after", "12@ab")]),
            Ok((Followed::Field("era".into(), 7.into()), Some(id)))
        );
        assert_eq!(parsed(&[("key", "a"), ("after", "12")]).unwrap_err(), "invalid_after", "the version is part of it");
        assert_eq!(parsed(&[("prefix", "")]), Ok((Followed::Prefix(String::new()), None)));
        assert_eq!(parsed(&[]).unwrap_err(), "invalid_filter");
        assert_eq!(parsed(&[("key", "a"), ("prefix", "b")]).unwrap_err(), "invalid_filter");
        assert_eq!(parsed(&[("height", "1")]).unwrap_err(), "invalid_parameter");
        assert_eq!(parsed(&[("key", "a"), ("after", "x")]).unwrap_err(), "invalid_after");
    }
}

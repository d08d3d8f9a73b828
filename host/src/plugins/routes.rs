//! Plugins' HTTP routes. Each plugin whose manifest says `routes` gets a pool of its own: a
//! bounded queue of requests and `route_workers` threads, each with a warm instance of its own
//! (reading its storage, never writing), apart from the pipeline's instance and from the
//! threads that serve the core API's reads. So a flood of slow requests to one plugin fills
//! only that plugin's queue: beyond it requests are refused at once (503), and a request whose
//! client went away (or whose time ran out) is dropped from the queue unanswered.

use super::PluginStats;
use super::bindings::{Request, Response};
use super::instance::{CallError, Instance, Template};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The plugins that serve HTTP, by name; shared with the pipeline, which swaps a plugin's
/// entry when a new version of it goes live. When the last handle goes, every plugin's workers
/// stop and are waited for (they hold instances and granted files' copies).
#[derive(Clone, Default)]
pub struct Routes(Arc<Served>);

#[derive(Default)]
struct Served {
    live: RwLock<HashMap<String, Arc<RoutePool>>>,
    /// Collections the host serves itself, by plugin.
    collections: RwLock<HashMap<String, Arc<ServedCollections>>>,
    /// Plugins whose routes wait for their indexer to catch up (503 until then).
    pending: RwLock<HashSet<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let live = self.live.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        live.values().for_each(|pool| pool.close());
        live.values().for_each(|pool| pool.join());
    }
}

/// The collections a plugin's manifest lets the host serve read-only (the automatic read API),
/// from the storage of the version that is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedCollections {
    /// The live version's storage.
    pub storage_id: String,
    /// The collections.
    pub collections: Vec<String>,
    /// The (collection, field) pairs the plugin declared indexes on: what lists filter by.
    pub indexed: Vec<(String, String)>,
}

impl ServedCollections {
    /// The fields `collection` may be filtered by (none when it is not served).
    pub fn filters(&self, collection: &str) -> impl Iterator<Item = &str> {
        self.indexed.iter().filter(move |(c, _)| c == collection).map(|(_, field)| field.as_str())
    }
}

/// What a plugin serves over HTTP: its own routes (a pool of instances), the collections the
/// host serves for it, or both.
pub type Serving = (Option<(Template, Arc<PluginStats>, RouteLimits)>, Option<ServedCollections>);

/// How many requests one plugin answers at once, and how many may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLimits {
    /// Worker threads, each with its own instance.
    pub workers: usize,
    /// Requests that may wait for a worker; more are refused.
    pub queue: usize,
}

/// Why a request got no answer from a plugin.
#[derive(Debug)]
pub enum RouteError {
    /// No plugin of that name serves HTTP.
    NoSuchPlugin,
    /// The plugin's indexer is still replaying the stored log.
    CatchingUp,
    /// The plugin's queue is full: it is answering as many requests as it may.
    Busy,
    /// The call failed (trap, time limit, output limit, an invalid response).
    Failed(String),
}

/// What a worker sends back.
type Answer = Result<Response, String>;

/// An answer on its way: await it, or drop it to give up (the request leaves the queue).
pub struct PendingAnswer(oneshot::Receiver<Answer>);

impl Routes {
    /// Serve what plugin `name` serves (a new version replaces the old one, whose workers stop).
    pub fn serve(&self, name: &str, (pool, collections): Serving) {
        let pool = pool.map(|(template, stats, limits)| RoutePool::start(template, stats, limits));
        let old = match pool {
            Some(pool) => self.0.live.write().expect("routes lock").insert(name.to_owned(), pool),
            None => self.0.live.write().expect("routes lock").remove(name),
        };
        if let Some(old) = old {
            old.close();
        }
        let mut served = self.0.collections.write().expect("routes lock");
        match collections {
            Some(collections) => served.insert(name.to_owned(), Arc::new(collections)),
            None => served.remove(name),
        };
        self.0.pending.write().expect("routes lock").remove(name);
    }

    /// Stop serving plugin `name`.
    pub fn remove(&self, name: &str) {
        self.serve(name, (None, None));
    }

    /// The collections the host serves for plugin `name`; refused like [`submit`](Routes::submit).
    pub fn collections(&self, name: &str) -> Result<Arc<ServedCollections>, RouteError> {
        match self.0.collections.read().expect("routes lock").get(name) {
            Some(served) => Ok(served.clone()),
            None if self.0.pending.read().expect("routes lock").contains(name) => Err(RouteError::CatchingUp),
            None => Err(RouteError::NoSuchPlugin),
        }
    }

    /// Every plugin's served collections (sorted by plugin).
    pub fn all_collections(&self) -> Vec<(String, Arc<ServedCollections>)> {
        let served = self.0.collections.read().expect("routes lock");
        let mut all: Vec<_> = served.iter().map(|(name, served)| (name.clone(), served.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Mark these plugins as coming once their indexer has caught up.
    pub fn set_pending(&self, names: impl Iterator<Item = String>) {
        let live = self.0.live.read().expect("routes lock");
        let collections = self.0.collections.read().expect("routes lock");
        let mut pending = self.0.pending.write().expect("routes lock");
        pending.extend(names.filter(|name| !live.contains_key(name) && !collections.contains_key(name)));
    }

    /// The plugins serving HTTP, or soon to (sorted).
    pub fn names(&self) -> Vec<String> {
        let live = self.0.live.read().expect("routes lock");
        let pending = self.0.pending.read().expect("routes lock");
        let mut names: Vec<String> = live.keys().chain(pending.iter()).cloned().collect();
        names.sort();
        names.dedup();
        names
    }

    /// Queue `request` for plugin `name`; refused at once when there is no such plugin, it is
    /// catching up, or its queue is full.
    pub fn submit(&self, name: &str, request: Request) -> Result<PendingAnswer, RouteError> {
        let pool = self.0.live.read().expect("routes lock").get(name).cloned();
        let Some(pool) = pool else {
            let pending = self.0.pending.read().expect("routes lock").contains(name);
            return Err(if pending { RouteError::CatchingUp } else { RouteError::NoSuchPlugin });
        };
        pool.submit(request)
    }

    /// Answer `request` with plugin `name`, waiting for it (for callers outside the async
    /// runtime: the test harness).
    pub fn handle(&self, name: &str, request: Request) -> Result<Response, RouteError> {
        self.submit(name, request)?.wait_blocking()
    }
}

impl PendingAnswer {
    /// The plugin's answer.
    pub async fn wait(self) -> Result<Response, RouteError> {
        flatten(self.0.await)
    }

    fn wait_blocking(self) -> Result<Response, RouteError> {
        flatten(self.0.blocking_recv())
    }
}

fn flatten(answer: Result<Answer, oneshot::error::RecvError>) -> Result<Response, RouteError> {
    match answer {
        Ok(answer) => answer.map_err(RouteError::Failed),
        // The plugin stopped (a new version, shutdown) before it reached the request.
        Err(_) => Err(RouteError::Busy),
    }
}

/// One plugin's queue and workers.
struct RoutePool {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued or the pool closes.
    ready: Condvar,
    limits: RouteLimits,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
    /// When requests whose clients gave up were last taken out.
    purged: Option<Instant>,
}

/// How often a full queue is searched for requests whose clients gave up.
const PURGE_EVERY: Duration = Duration::from_millis(10);

struct Job {
    request: Request,
    reply: oneshot::Sender<Answer>,
}

impl RoutePool {
    fn start(template: Template, stats: Arc<PluginStats>, limits: RouteLimits) -> Arc<RoutePool> {
        let pool =
            Arc::new(RoutePool { queue: Mutex::default(), ready: Condvar::new(), limits, workers: Mutex::default() });
        for worker in 0..limits.workers.max(1) {
            let plugin = template.name().to_owned();
            let (worker_pool, template, stats) = (pool.clone(), template.clone(), stats.clone());
            let thread = std::thread::Builder::new().name(format!("routes-{worker}-{plugin}"));
            match thread.spawn(move || worker_pool.work(&template, &stats)) {
                Ok(handle) => pool.workers.lock().expect("route workers lock").push(handle),
                Err(e) => tracing::error!(%plugin, "cannot start a route worker: {e}"),
            }
        }
        pool
    }

    fn submit(&self, request: Request) -> Result<PendingAnswer, RouteError> {
        let mut queue = self.queue.lock().expect("route queue lock");
        if queue.closed {
            return Err(RouteError::Busy);
        }
        if queue.jobs.len() >= self.limits.queue {
            // Requests whose clients gave up make room first; looked for at most every
            // `PURGE_EVERY`, so a flood refused at once does not walk a long queue each time.
            if queue.purged.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                queue.jobs.retain(|job| !job.reply.is_closed());
                queue.purged = Some(Instant::now());
            }
            if queue.jobs.len() >= self.limits.queue {
                return Err(RouteError::Busy);
            }
        }
        let (reply, answer) = oneshot::channel();
        queue.jobs.push_back(Job { request, reply });
        drop(queue);
        self.ready.notify_one();
        Ok(PendingAnswer(answer))
    }

    /// Stop: queued requests are answered `Busy`, workers end after their current request.
    fn close(&self) {
        let mut queue = self.queue.lock().expect("route queue lock");
        queue.closed = true;
        queue.jobs.clear();
        drop(queue);
        self.ready.notify_all();
    }

    /// Wait for the workers to end (after [`RoutePool::close`]).
    fn join(&self) {
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        workers.into_iter().for_each(|worker| _ = worker.join());
    }

    /// The next request some client still waits for; `None` once closed.
    fn next_job(&self) -> Option<Job> {
        let mut queue = self.queue.lock().expect("route queue lock");
        loop {
            if queue.closed {
                return None;
            }
            while let Some(job) = queue.jobs.pop_front() {
                if !job.reply.is_closed() {
                    return Some(job);
                }
            }
            queue = self.ready.wait(queue).expect("route queue lock");
        }
    }

    /// A worker: answer requests on its own warm instance until the pool closes.
    fn work(&self, template: &Template, stats: &PluginStats) {
        let mut instance: Option<Instance> = None;
        while let Some(Job { request, reply }) = self.next_job() {
            let context = || format!("{} {}", request.method, request.path);
            let answer = stats
                .call(template, &mut instance, context, |instance| instance.handle(&request).and_then(valid_response));
            _ = reply.send(answer);
        }
    }
}

/// A plugin's response as HTTP may carry it: a final status (no `101 Switching Protocols`, which
/// would hand the connection over), headers that are valid, and no body where the status allows
/// none (204, 304).
fn valid_response(mut response: Response) -> Result<Response, CallError> {
    use axum::http::{HeaderName, HeaderValue, StatusCode};
    if !(200..=599).contains(&response.status) {
        return Err(CallError::Failed(format!("answered status {}; routes answer 200 to 599", response.status)));
    }
    for (name, value) in &response.headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() || HeaderValue::from_str(value).is_err() {
            return Err(CallError::Failed(format!("answered an invalid header {:?}", super::text::bounded(name))));
        }
    }
    if [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED].map(|s| s.as_u16()).contains(&response.status) {
        response.body.clear();
    }
    Ok(response)
}

//! SSE fan-out: many subscribers on raw sockets, each delivery's latency, and what the server
//! and this load generator spent on it.

use super::{Killed, now_ms, rss_mib};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Open `subscribers` SSE streams, keep them for `duration`, and return each delivery's latency
/// (ms), the number of deliveries and the host's RSS (MiB) with every subscriber connected.
/// The subscribers are plain sockets that only look for `id:` lines: the lightest client
/// possible, since it shares the host's cores.
/// `received` gives, after the run, when the server read each event id off its node (ms).
pub async fn run(
    port: u16,
    server: &Killed,
    subscribers: u64,
    duration: Duration,
    received: impl FnOnce() -> HashMap<u64, i64>,
) -> FanOut {
    let (ready, mut all_ready) = tokio::sync::mpsc::channel::<()>(subscribers as usize);
    let stop_at = Arc::new(AtomicI64::new(i64::MAX));
    let tasks: Vec<_> =
        (0..subscribers).map(|_| tokio::spawn(subscriber(port, ready.clone(), stop_at.clone()))).collect();
    drop(ready);
    let mut connected = 0;
    while connected < subscribers && all_ready.recv().await.is_some() {
        connected += 1;
    }
    let rss_with = rss_mib(server.id());
    // Deliveries while subscribers were still connecting do not count.
    let (measured_from, cpu_before) = (now_ms(), (cpu_seconds(server.id()), cpu_seconds(std::process::id())));
    let dropped_before = loopback_drops();
    tokio::time::sleep(duration).await;
    let dropped = loopback_drops() - dropped_before;
    let cpu = (cpu_seconds(server.id()) - cpu_before.0, cpu_seconds(std::process::id()) - cpu_before.1);
    stop_at.store(now_ms(), Ordering::Relaxed);
    // Each subscriber stops at its next read: the next event, or at worst a keep-alive comment.
    let waited_until = tokio::time::Instant::now() + Duration::from_secs(20);
    let (mut arrivals, mut ended_early) = (Vec::new(), Vec::new());
    for mut task in tasks {
        match tokio::time::timeout_at(waited_until, &mut task).await {
            Ok(result) => {
                let (mine, ended) = result.unwrap();
                arrivals.extend(mine);
                ended_early.extend(ended);
            }
            Err(_) => {
                task.abort();
                ended_early.push("stalled: nothing read for 20 s after the end".into());
            }
        }
    }
    let received = received();
    arrivals.retain(|(_, at)| *at >= measured_from);
    let latencies = arrivals.iter().map(|(seq, at)| (at - received[seq]) as f64).collect();
    // Per event: the first subscriber's latency, and how long the rest took after it.
    let mut per_event = HashMap::<u64, (i64, i64)>::new();
    for (seq, at) in &arrivals {
        let (first, last) = per_event.entry(*seq).or_insert((*at, *at));
        (*first, *last) = ((*first).min(*at), (*last).max(*at));
    }
    let first = per_event.iter().map(|(seq, (first, _))| (first - received[seq]) as f64).collect::<Vec<_>>();
    let spread = per_event.values().map(|(first, last)| (last - first) as f64).collect::<Vec<_>>();
    let rss_with = rss_with.max(rss_mib(server.id()));
    let (first, spread) = (super::median(&first), super::median(&spread));
    FanOut { latencies, deliveries: arrivals.len(), connected, ended_early, rss_with, cpu, first, spread, dropped }
}

/// What a fan-out run measured.
pub struct FanOut {
    /// Each delivery's latency (ms), from the host reading the event to a subscriber reading it.
    pub latencies: Vec<f64>,
    pub deliveries: usize,
    /// Subscribers whose stream started.
    pub connected: u64,
    /// Why streams ended before the end of the run.
    pub ended_early: Vec<String>,
    pub rss_with: f64,
    /// CPU seconds used during the measured time by the host and by this load generator.
    pub cpu: (f64, f64),
    /// Median over events of the first subscriber's latency (ms): the way through the pipeline.
    pub first: f64,
    /// Median over events of the time from the first subscriber's read to the last one's (ms).
    pub spread: f64,
    /// Packets the kernel dropped for want of room in its receive backlog during the measured
    /// time (each costs a retransmission, 200 ms or more, to some subscriber).
    pub dropped: u64,
}

/// One SSE subscriber on a raw socket: the `(id, arrival ms)` of every event it read before
/// `stop_at` (ms), and why its stream ended if it ended before. It looks at `stop_at` after each
/// read rather than also waiting on a channel, which takes a lock on every read, on the cores
/// the server shares.
async fn subscriber(
    port: u16,
    ready: tokio::sync::mpsc::Sender<()>,
    stop_at: Arc<AtomicI64>,
) -> (Vec<(u64, i64)>, Option<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut arrivals = Vec::new();
    let mut socket = match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(socket) => socket,
        Err(e) => return (arrivals, Some(format!("connect: {e}"))),
    };
    let request = "GET /events HTTP/1.1\r\nHost: sluice\r\nAccept: text/event-stream\r\n\r\n";
    if let Err(e) = socket.write_all(request.as_bytes()).await {
        return (arrivals, Some(format!("request: {e}")));
    }
    let (mut carry, mut buffer, mut started) = (Vec::new(), vec![0; 64 * 1024], false);
    let id_marker = memchr::memmem::Finder::new(b"\nid:");
    loop {
        let n = match socket.read(&mut buffer).await {
            Ok(0) => return (arrivals, Some("closed by the host".into())),
            Ok(n) => n,
            Err(e) => return (arrivals, Some(format!("read: {e}"))),
        };
        let now = now_ms();
        if now >= stop_at.load(Ordering::Relaxed) {
            return (arrivals, None);
        }
        carry.extend_from_slice(&buffer[..n]);
        if !started {
            let Some(end) = memchr::memmem::find(&carry, b"\r\n\r\n") else { continue };
            if !carry.starts_with(b"HTTP/1.1 200") {
                return (arrivals, Some(String::from_utf8_lossy(&carry[..end]).into_owned()));
            }
            started = true;
            _ = ready.send(()).await;
        }
        // Every complete `id: N` line (`id:N` from a node); a partial one waits for the next read.
        let (mut scan, mut partial) = (0, None);
        while let Some(found) = id_marker.find(&carry[scan..]) {
            let start = scan + found + 4;
            let Some(end) = memchr::memchr(b'\n', &carry[start..]) else {
                partial = Some(scan + found);
                break;
            };
            let id: u64 = std::str::from_utf8(&carry[start..start + end]).unwrap().trim().parse().unwrap();
            arrivals.push((id, now));
            scan = start + end;
        }
        // What cannot hold the start of a marker is done with.
        let done = partial.unwrap_or(scan.max(carry.len().saturating_sub(3)));
        carry.drain(..done);
    }
}

/// Packets dropped so far because a CPU's receive backlog was full (`/proc/net/softnet_stat`,
/// second column, in hex, per CPU).
fn loopback_drops() -> u64 {
    let stat = std::fs::read_to_string("/proc/net/softnet_stat").unwrap_or_default();
    stat.lines().filter_map(|l| l.split_whitespace().nth(1)).filter_map(|v| u64::from_str_radix(v, 16).ok()).sum()
}

/// User and system CPU seconds a process has used (`/proc/<pid>/stat`, in clock ticks of 10 ms).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

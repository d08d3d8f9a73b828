//! The floor for SSE fan-out on this machine: not Sluice, but the least a server must do.
//! It reads a node's `/events` stream and writes each frame, as received, to every connected
//! client (no HTTP framing beyond the status line, no store, no filter). Two ways:
//! - `tasks`: one task per client fed by a broadcast channel, the shape Sluice has;
//! - `direct`: one loop per core that writes each frame straight to each of its clients'
//!   sockets (a client whose socket is full is dropped), the least possible: one `write` per
//!   delivery and nothing else.
//!
//! `cargo xtask bench-serve` runs both next to Sluice with the same subscribers: the gaps
//! between the three are what Sluice itself and a task per subscriber cost.
//!
//! `fanout_floor <node /events URL> <listen address> <file> <tasks|direct>`: when each frame
//! was read, as `id ms` lines in `file` (the node's event ids).

use std::io::Write;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

fn main() {
    sluice::install_tls_provider();
    let args: Vec<String> = std::env::args().collect();
    let [_, node, listen, received, way] = &args[..] else {
        panic!("usage: fanout_floor <node /events URL> <listen address> <file> <tasks|direct>");
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (frames, _) = broadcast::channel::<Arc<[u8]>>(4096);
        let listener = TcpListener::bind(listen.as_str()).await.unwrap();
        match way.as_str() {
            "tasks" => tokio::spawn(a_task_per_client(listener, frames.clone())),
            "direct" => tokio::spawn(direct_writers(listener, frames.clone())),
            _ => panic!("{way}: tasks or direct"),
        };
        read_node(node, &frames, std::fs::File::create(received).unwrap()).await;
    });
}

/// Forward every frame of the node's stream; note when each one with an id arrived.
async fn read_node(url: &str, frames: &broadcast::Sender<Arc<[u8]>>, received: std::fs::File) {
    let mut received = std::io::BufWriter::new(received);
    let mut response = reqwest::get(url).await.expect("the node answers");
    let mut carry = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("the node's stream") {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
        carry.extend_from_slice(&chunk);
        while let Some(end) = carry.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = carry.drain(..end + 2).collect();
            let id = frame.split(|&b| b == b'\n').find_map(|line| line.strip_prefix(b"id:"));
            if let Some(id) = id {
                writeln!(received, "{} {now}", String::from_utf8_lossy(id).trim()).unwrap();
                received.flush().unwrap();
            }
            _ = frames.send(frame.into());
        }
    }
}

/// Read a client's request and answer 200; false if the client went away.
async fn start(socket: &mut TcpStream) -> bool {
    let mut request = [0; 1024];
    let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n";
    socket.read(&mut request).await.is_ok() && socket.write_all(head).await.is_ok()
}

/// The `tasks` way: each client's task writes every frame to its socket.
async fn a_task_per_client(listener: TcpListener, frames: broadcast::Sender<Arc<[u8]>>) {
    loop {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut frames = frames.subscribe();
        tokio::spawn(async move {
            if !start(&mut socket).await {
                return;
            }
            while let Ok(frame) = frames.recv().await {
                if socket.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The `direct` way: clients are dealt out to one loop per core, each writing every frame to
/// its clients' sockets in turn.
async fn direct_writers(listener: TcpListener, frames: broadcast::Sender<Arc<[u8]>>) {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let writers: Vec<Arc<Mutex<Vec<TcpStream>>>> = (0..cores).map(|_| Arc::default()).collect();
    for clients in &writers {
        let (clients, mut frames) = (clients.clone(), frames.subscribe());
        tokio::spawn(async move {
            while let Ok(frame) = frames.recv().await {
                let mut clients = clients.lock().unwrap();
                clients.retain(|socket| socket.try_write(&frame).is_ok_and(|written| written == frame.len()));
            }
        });
    }
    for clients in writers.iter().cycle() {
        let (mut socket, _) = listener.accept().await.unwrap();
        let clients = clients.clone();
        tokio::spawn(async move {
            if start(&mut socket).await {
                clients.lock().unwrap().push(socket);
            }
        });
    }
}

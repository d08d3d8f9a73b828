//! The floor for SSE fan-out on this machine: not Sluice, but the least any server must do.
//! It reads a node's `/events` stream and writes each frame, as received, to every connected
//! client (no HTTP framing beyond the status line, no store, no filter), one task per client
//! fed by a broadcast channel. `cargo xtask bench-serve` runs it next to Sluice with the same
//! subscribers: the gap between the two is what Sluice itself costs.
//!
//! `fanout_floor <node /events URL> <listen address> <file>`: when each frame was read, as
//! `id ms` lines in `file` (the node's event ids).

use std::io::Write;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

fn main() {
    sluice::install_tls_provider();
    let args: Vec<String> = std::env::args().collect();
    let [_, node, listen, received] = &args[..] else {
        panic!("usage: fanout_floor <node /events URL> <listen address> <file>");
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (frames, _) = broadcast::channel::<Arc<[u8]>>(4096);
        let listener = TcpListener::bind(listen.as_str()).await.unwrap();
        let relay = frames.clone();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                tokio::spawn(client(socket, relay.subscribe()));
            }
        });
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

/// One subscriber: read its request, answer 200, then write every frame.
async fn client(mut socket: tokio::net::TcpStream, mut frames: broadcast::Receiver<Arc<[u8]>>) {
    let mut request = [0; 1024];
    if socket.read(&mut request).await.is_err() {
        return;
    }
    let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n";
    if socket.write_all(head).await.is_err() {
        return;
    }
    while let Ok(frame) = frames.recv().await {
        if socket.write_all(&frame).await.is_err() {
            return;
        }
    }
}

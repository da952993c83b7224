//! A TCP proxy in front of a real server that loses answers the way networks do, after the server did the work.
//!
//! Each connection carries one HTTP/1.1 exchange (the proxy asks the server to close after it). The proxy reads
//! the request, forwards it, reads the server's whole response, then, by the request's `Idempotency-Key`:
//!
//! - the key's 1st attempt: the response is dropped and the client's connection **reset** (RST);
//! - the key's 2nd attempt: the response is **cut halfway through its body** (head and half the body, then FIN);
//! - later attempts, and requests without a key: the response is passed on whole.
//!
//! So every keyed call needs exactly two retries, and the server ran each request that reached it.
//!
//! [`FaultProxy::dropping_one_in`] instead drops each response (a reset, the server having done the work) with a
//! fixed probability, whatever the key and the attempt: a keyed call then needs any number of retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy did.
#[derive(Debug, Default, Clone)]
pub struct ProxyStats {
    /// Requests seen per idempotency key.
    pub attempts: HashMap<String, usize>,
    /// Responses the server sent that the client never got (connection reset).
    pub dropped: usize,
    /// Responses cut halfway through the body.
    pub cut: usize,
    /// Responses passed on whole.
    pub passed: usize,
}

/// The running proxy; stops accepting when dropped.
pub struct FaultProxy {
    pub base: String,
    stats: Arc<Mutex<ProxyStats>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `upstream` (`host:port`), failing each key's first two
    /// attempts.
    pub async fn start(upstream: &str) -> Self {
        Self::start_with(upstream, Faults::PerKey).await
    }

    /// A proxy that drops each response with probability `1 / n` (connection reset after the server answered).
    pub async fn dropping_one_in(upstream: &str, n: u32) -> Self {
        Self::start_with(upstream, Faults::OneIn(n)).await
    }

    async fn start_with(upstream: &str, faults: Faults) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let base = format!("http://{}", listener.local_addr().expect("proxy address"));
        let stats = Arc::new(Mutex::new(ProxyStats::default()));
        let upstream = upstream.to_owned();
        let shared = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                let (upstream, stats) = (upstream.clone(), Arc::clone(&shared));
                tokio::spawn(async move {
                    // A failed exchange is the client's or the server's business; the proxy just moves on.
                    let _ = exchange(client, &upstream, &stats, faults).await;
                });
            }
        });
        Self { base, stats, task }
    }

    pub fn stats(&self) -> ProxyStats {
        self.stats.lock().unwrap().clone()
    }
}

/// Which responses the proxy loses.
#[derive(Debug, Clone, Copy)]
enum Faults {
    /// A key's 1st attempt dropped, its 2nd cut halfway, later ones passed.
    PerKey,
    /// Each response dropped with probability 1 / n.
    OneIn(u32),
}

/// The index just past the blank line that ends an HTTP head.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|window| window == b"\r\n\r\n").map(|at| at + 4)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

async fn exchange(
    mut client: TcpStream,
    upstream: &str,
    stats: &Mutex<ProxyStats>,
    faults: Faults,
) -> std::io::Result<()> {
    // The request: head, then Content-Length bytes of body.
    let mut request = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_len = loop {
        if let Some(end) = head_end(&request) {
            break end;
        }
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&request[..head_len]).into_owned();
    let body_len: usize = header(&head, "content-length").and_then(|value| value.parse().ok()).unwrap_or(0);
    while request.len() < head_len + body_len {
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..read]);
    }
    let key = header(&head, "idempotency-key").map(str::to_owned);

    // Forwarded with `Connection: close`, so the server's response ends where its connection does.
    let mut forwarded: String = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .map(|line| format!("{line}\r\n"))
        .collect();
    forwarded.push_str("connection: close\r\n\r\n");
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(forwarded.as_bytes()).await?;
    server.write_all(&request[head_len..]).await?;
    let mut response = Vec::new();
    server.read_to_end(&mut response).await?;

    let attempt = match &key {
        Some(key) => {
            let mut stats = stats.lock().unwrap();
            let seen = stats.attempts.entry(key.clone()).or_default();
            *seen += 1;
            *seen
        }
        None => 0,
    };
    let attempt = match faults {
        Faults::PerKey => attempt,
        // The drop branch, or the pass branch.
        Faults::OneIn(n) if fastrand::u32(..n) == 0 => 1,
        Faults::OneIn(_) => 3,
    };
    match attempt {
        1 => {
            stats.lock().unwrap().dropped += 1;
            // The server did the work; the client hears a reset instead of the answer.
            client.set_zero_linger()?;
            drop(client);
        }
        2 => {
            let body_start = head_end(&response).unwrap_or(response.len());
            let cut_at = body_start + (response.len() - body_start) / 2;
            stats.lock().unwrap().cut += 1;
            client.write_all(&response[..cut_at]).await?;
            client.shutdown().await?;
        }
        _ => {
            stats.lock().unwrap().passed += 1;
            client.write_all(&response).await?;
            client.shutdown().await?;
        }
    }
    Ok(())
}

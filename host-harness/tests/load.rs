//! Bounded load: ACME's `send` pushes many documents at concurrency 25 to
//! GLOBEX's `serve` (two harness processes) through a proxy that delays each
//! exchange at random and drops a share of the MDNs on their way back.
//! Nothing may be lost, nothing delivered twice, and every document must end
//! `acknowledged`. Prints messages/s and p50/p99 latency.
//!
//! `AS2_LOAD_DOCUMENTS` sets the count (default 200, as CI runs it); the
//! full run: `AS2_LOAD_DOCUMENTS=2000 cargo test -p as2-harness --release
//! --test load -- --nocapture`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use common::World;

fn boxed(e: hyper::Error) -> std::io::Error {
    std::io::Error::other(e)
}

/// Share of MDNs the proxy drops, in percent.
const DROPPED_PERCENT: u64 = 5;
/// The most the proxy holds an exchange back.
const MAX_DELAY_MS: u64 = 40;

/// A small deterministic generator: reproducible runs, no extra crate.
struct XorShift(AtomicU64);

impl XorShift {
    fn next(&self) -> u64 {
        let mut x = self.0.load(Ordering::Relaxed);
        loop {
            let mut y = x;
            y ^= y << 13;
            y ^= y >> 7;
            y ^= y << 17;
            match self
                .0
                .compare_exchange(x, y, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return y,
                Err(current) => x = current,
            }
        }
    }
}

/// What the proxy did.
#[derive(Default)]
struct ProxyCounts {
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

/// Forwards every request to `target`, after a random pause, and drops the
/// answer (closes the connection instead) for a share of them.
async fn proxy(target: std::net::SocketAddr, counts: Arc<ProxyCounts>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/as2", listener.local_addr().unwrap());
    let random = Arc::new(XorShift(AtomicU64::new(0x9E37_79B9_7F4A_7C15)));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (random, counts) = (random.clone(), counts.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let (random, counts) = (random.clone(), counts.clone());
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.map_err(boxed)?.to_bytes();
                            tokio::time::sleep(Duration::from_millis(
                                random.next() % (MAX_DELAY_MS + 1),
                            ))
                            .await;
                            let upstream = tokio::net::TcpStream::connect(target).await.unwrap();
                            let (mut sender, connection) =
                                hyper::client::conn::http1::handshake(TokioIo::new(upstream))
                                    .await
                                    .unwrap();
                            tokio::spawn(connection);
                            let mut forward =
                                Request::builder().method(parts.method).uri(parts.uri);
                            for (name, value) in &parts.headers {
                                forward = forward.header(name, value);
                            }
                            let answer = sender
                                .send_request(forward.body(Full::new(body)).unwrap())
                                .await
                                .unwrap();
                            let (answer_parts, answer_body) = answer.into_parts();
                            let answer_body =
                                answer_body.collect().await.map_err(boxed)?.to_bytes();
                            counts.forwarded.fetch_add(1, Ordering::Relaxed);
                            if random.next() % 100 < DROPPED_PERCENT {
                                counts.dropped.fetch_add(1, Ordering::Relaxed);
                                // An error ends the connection without an answer.
                                return Err(std::io::Error::other("dropping the MDN"));
                            }
                            let mut response = Response::new(Full::new(answer_body));
                            *response.status_mut() = answer_parts.status;
                            *response.headers_mut() = answer_parts.headers;
                            Ok::<_, std::io::Error>(response)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[test]
fn many_documents_at_concurrency_25_none_lost_none_twice_all_acknowledged() {
    let count: usize = std::env::var("AS2_LOAD_DOCUMENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let world = World::new("load", serde_json::json!({ "send_attempts": 5 }));
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let counts = Arc::new(ProxyCounts::default());
    let target = format!("127.0.0.1:{}", world.globex_port).parse().unwrap();
    let proxy_url = tokio.block_on(proxy(target, counts.clone()));
    world.edit_config("acme.json", |config| {
        config["partner"]["url"] = proxy_url.clone().into();
        config["advanced"] = serde_json::json!({ "target_concurrency": 25 });
    });
    let globex = world.serve("globex", None);

    let folder = world.dir.join("outgoing");
    std::fs::create_dir_all(&folder).unwrap();
    let mut sent = BTreeSet::new();
    let mut args = vec!["send".to_string(), "acme.json".to_string()];
    for i in 0..count {
        let content = format!(
            "ISA*00*          *00*          *ZZ*ACME           *ZZ*GLOBEX         ~\nST*850*{i:06}~\nBEG*00*SA*PO-{i:06}**20261201~\nSE*3*{i:06}~\n"
        );
        let name = format!("po-{i:06}.x12");
        std::fs::write(folder.join(&name), &content).unwrap();
        sent.insert(content.into_bytes());
        args.push(format!("outgoing/{name}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = Instant::now();
    let output = world.run("acme", &args);
    let wall = start.elapsed();
    let _ = globex.kill();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", common::text(&output));

    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), count, "one line per document");
    let mut latencies = Vec::new();
    let mut dispositions = BTreeMap::<String, usize>::new();
    let mut ids = BTreeSet::new();
    let mut resends = 0;
    for line in &lines {
        assert_eq!(line["state"], "acknowledged", "{line}");
        assert_eq!(line["mic_matched"], true, "{line}");
        assert!(
            ids.insert(line["message_id"].to_string()),
            "one Message-ID per document: {line}"
        );
        *dispositions
            .entry(line["disposition"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
        resends += line["attempts"].as_u64().unwrap() - 1;
        latencies.push(line["elapsed_ms"].as_u64().unwrap());
    }
    let inbox = world.dir.join("globex/inbox").join(&world.acme_id);
    let mut received = BTreeSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&inbox).unwrap() {
        files += 1;
        received.insert(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert_eq!(files, count, "delivered exactly once each (no copies)");
    assert_eq!(received, sent, "nothing lost, nothing altered");
    let dropped = counts.dropped.load(Ordering::Relaxed);
    assert!(
        dropped == 0 || resends > 0,
        "every dropped MDN led to a resend"
    );

    latencies.sort_unstable();
    println!();
    println!(
        "| documents | concurrency | forwarded | MDNs dropped | resends | wall | messages/s | p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {count} | 25 | {} | {dropped} | {resends} | {:.1} s | {:.1} | {} ms | {} ms |",
        counts.forwarded.load(Ordering::Relaxed),
        wall.as_secs_f64(),
        count as f64 / wall.as_secs_f64(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
    );
    println!("dispositions: {dispositions:?}");
}

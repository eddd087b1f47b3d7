//! Several `serve` instances on one PostgreSQL database, behind HAProxy
//! (round-robin on loopback), sharing one data folder: a sender sends
//! documents at concurrency 25, one instance is killed with SIGKILL mid-run
//! and started again, and every document must be acknowledged with its MIC
//! matched and delivered exactly once, byte-equal, with nothing left
//! unfinished in the journal. Prints messages/s for one instance on the
//! folder's SQLite file, one on PostgreSQL and three on PostgreSQL, in one
//! run. `AS2_CLUSTER_DOCUMENTS` sets how many (default 1000; a quarter of
//! that for each single instance).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::{Running, World, free_port};
use serde_json::json;

/// HAProxy in front of `backends`, listening on `port`; stopped when dropped.
struct Balancer(Child);

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy() -> Option<String> {
    let found = Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("haproxy".into());
    }
    assert!(
        std::env::var_os("AS2_REQUIRE_POSTGRES").is_none(),
        "HAProxy is missing: apt install haproxy"
    );
    eprintln!("skipped: HAProxy is not installed (apt install haproxy)");
    None
}

fn start_balancer(program: &str, dir: &Path, port: u16, backends: &[u16]) -> Balancer {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, p)| format!("  server s{i} 127.0.0.1:{p} check inter 300ms fall 1 rise 1\n"))
        .collect();
    let config = format!(
        "global\n  maxconn 2000\n\
         defaults\n  mode http\n  timeout connect 2s\n  timeout client 120s\n  timeout server 120s\n  retries 3\n  option redispatch\n\
         frontend as2\n  bind 127.0.0.1:{port}\n  default_backend stations\n\
         backend stations\n  balance roundrobin\n  option httpchk GET /\n{servers}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(program)
        .arg("-f")
        .arg(&path)
        .arg("-db")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "HAProxy did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Balancer(child)
}

fn instance(world: &World, url: &str, port: u16) -> Running {
    world.serve_with("globex", &["--state-url", url], port, None)
}

/// Writes `count` distinct documents named `prefix-N.x12`; their contents by name.
fn documents(world: &World, prefix: &str, count: usize) -> BTreeMap<String, Vec<u8>> {
    (0..count)
        .map(|i| {
            let name = format!("{prefix}-{i:04}.x12");
            let content = format!(
                "ISA*00*{prefix}*{i}~\nST*850*{i:04}~\nBEG*00*SA*PO-{i}**20261207~\nSE*3*{i:04}~\n"
            );
            std::fs::write(world.dir.join(&name), &content).unwrap();
            (name, content.into_bytes())
        })
        .collect()
}

/// Sends `names` in one `send` at the connection's concurrency; its JSON
/// lines and the messages/s it took. `during` runs once the send is under way.
fn send_all(
    world: &World,
    names: &[&String],
    during: impl FnOnce(),
) -> (Vec<serde_json::Value>, f64) {
    send_over(world, "acme.json", names, during)
}

/// [`send_all`] over the connection file `config`.
fn send_over(
    world: &World,
    config: &str,
    names: &[&String],
    during: impl FnOnce(),
) -> (Vec<serde_json::Value>, f64) {
    let mut args = vec!["send", config];
    args.extend(names.iter().map(|n| n.as_str()));
    let started = Instant::now();
    let sending = Running::spawn(world.command("acme", &args));
    during();
    let (ok, stdout, stderr) = sending.finish(Duration::from_secs(900));
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        ok,
        "the send failed:\n{}",
        &stderr[stderr.len().saturating_sub(4000)..]
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, names.len() as f64 / elapsed)
}

fn assert_acknowledged(lines: &[serde_json::Value], count: usize) {
    let sent: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l.get("resumed").is_none())
        .collect();
    assert_eq!(sent.len(), count);
    for line in &sent {
        assert_eq!(line["state"], "acknowledged", "{line}");
        assert_eq!(line["mic_matched"], true, "{line}");
    }
}

#[test]
fn three_instances_on_one_database_lose_nothing_and_deliver_once_when_one_is_killed() {
    let Some(balancer_program) = haproxy() else {
        return;
    };
    let Some(cluster) = Postgres::start("cluster") else {
        return;
    };
    let count: usize = std::env::var("AS2_CLUSTER_DOCUMENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let url = cluster.database("globex");
    // ACME sends to the balancer, which listens where World puts GLOBEX.
    let world = World::new("cluster", json!({ "send_attempts": 10 }));
    world.edit_config("acme.json", |config| {
        config["advanced"] = json!({ "target_concurrency": 25 });
    });
    let ports = [free_port(), free_port(), free_port()];

    // For comparison, in the same run: one instance on the folder's SQLite
    // file, then one on PostgreSQL.
    let single = |server: Running, prefix: &str| {
        let balancer = start_balancer(
            &balancer_program,
            &world.dir,
            world.globex_port,
            &ports[..1],
        );
        let sent = documents(&world, prefix, count / 4);
        let names: Vec<&String> = sent.keys().collect();
        let (lines, rate) = send_all(&world, &names, || {});
        assert_acknowledged(&lines, sent.len());
        drop((balancer, server));
        (sent, rate)
    };
    let (on_sqlite, sqlite_rate) =
        single(world.serve_with("globex", &[], ports[0], None), "sqlite");
    let (warm, one_rate) = single(instance(&world, &url, ports[0]), "one");
    let first = instance(&world, &url, ports[0]);

    // Three instances; the second is killed mid-run and started again.
    let mut others = vec![
        instance(&world, &url, ports[1]),
        instance(&world, &url, ports[2]),
    ];
    let _balancer = start_balancer(&balancer_program, &world.dir, world.globex_port, &ports);
    let batch = documents(&world, "three", count);
    let names: Vec<&String> = batch.keys().collect();
    let inbox = world.dir.join("globex/inbox").join(&world.acme_id);
    let (lines, three_rate) = send_all(&world, &names, || {
        let start = Instant::now();
        let before = on_sqlite.len() + warm.len();
        while std::fs::read_dir(&inbox).map_or(0, |d| d.count()) < before + count / 3 {
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "no progress before the kill"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let killed = others.remove(0);
        let _ = killed.kill();
        std::thread::sleep(Duration::from_millis(500));
        others.insert(0, instance(&world, &url, ports[1]));
    });
    assert_acknowledged(&lines, count);
    let resent = lines
        .iter()
        .filter(|l| l["attempts"].as_u64() > Some(1))
        .count();

    // Every document in the inbox once, byte-equal; nothing left staged.
    let start = Instant::now();
    let staged = loop {
        let mut client = cluster.client("globex");
        let staged: i64 = client
            .query_one(
                "SELECT count(*) FROM deliveries WHERE state = 'staged'",
                &[],
            )
            .unwrap()
            .get(0);
        if staged == 0 || start.elapsed() > Duration::from_secs(30) {
            break staged;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(staged, 0, "deliveries left unfinished");

    // Asynchronous MDNs: owed by whichever instance received the message,
    // each delivered once by one of the three.
    let acme_endpoint = world.serve("acme", None);
    let acme: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(world.dir.join("acme.json")).unwrap())
            .unwrap();
    let mut asynchronous = acme.clone();
    asynchronous["partner"]["mdn_delivery"] = json!("async");
    std::fs::write(world.dir.join("acme-async.json"), asynchronous.to_string()).unwrap();
    let later = documents(&world, "async", count / 4);
    let names: Vec<&String> = later.keys().collect();
    let (lines, _) = send_over(&world, "acme-async.json", &names, || {});
    assert_eq!(lines.len(), later.len());
    let limit = (later.len() + count + 10).to_string();
    let start = Instant::now();
    loop {
        let output = world.run(
            "acme",
            &[
                "messages",
                "acme-async.json",
                "--direction",
                "out",
                "--state",
                "pending",
                "--limit",
                &limit,
            ],
        );
        let pending = String::from_utf8(output.stdout).unwrap().lines().count();
        if pending == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{pending} asynchronous MDNs never came"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // ACME has every MDN; the instance that delivered one marks it so once
    // ACME's answer is in, which may be a moment after ACME recorded it.
    let mut client = cluster.client("globex");
    let settled = Instant::now();
    let (owed, delivered_mdns, messages, most_attempts) = loop {
        let row = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE state = 'delivered'),
                        count(DISTINCT original_message_id), COALESCE(max(attempts), 0)
                 FROM outbound_mdns",
                &[],
            )
            .unwrap();
        let counts: (i64, i64, i64, i32) = (row.get(0), row.get(1), row.get(2), row.get(3));
        if counts.1 == later.len() as i64 || settled.elapsed() > Duration::from_secs(30) {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(acme_endpoint);
    assert_eq!(
        (owed, delivered_mdns, messages),
        (later.len() as i64, later.len() as i64, later.len() as i64)
    );
    assert_eq!(
        most_attempts, 1,
        "each owed MDN delivered in one attempt, by one instance"
    );

    let mut delivered: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for entry in std::fs::read_dir(&inbox).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            delivered
                .insert(name, std::fs::read(&path).unwrap())
                .is_none()
        );
    }
    let mut expected = on_sqlite.clone();
    expected.extend(warm.clone());
    expected.extend(batch.clone());
    expected.extend(later.clone());
    let extra: Vec<&String> = delivered
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(extra.is_empty(), "delivered twice or unexpected: {extra:?}");
    assert_eq!(
        delivered, expected,
        "every document delivered once, byte-equal"
    );
    let on_postgres = warm.len() + batch.len() + later.len();
    let limit = (on_postgres + 10).to_string();
    let output = world.run(
        "globex",
        &[
            "--state-url",
            &url,
            "messages",
            "globex.json",
            "--limit",
            &limit,
        ],
    );
    let received = String::from_utf8(output.stdout).unwrap().lines().count();
    assert_eq!(received, on_postgres, "each message recorded once");
    println!(
        "cluster: {count} documents at concurrency 25; SQLite, one instance: {sqlite_rate:.1} messages/s; \
         PostgreSQL, one instance: {one_rate:.1} messages/s; PostgreSQL, three instances behind HAProxy, \
         one killed and restarted: {three_rate:.1} messages/s ({resent} sent more than once)"
    );
    drop(first);
}

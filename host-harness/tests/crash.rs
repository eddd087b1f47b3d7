//! `kill -9` at the durable points of receiving and sending, and a restart:
//! no positive MDN for a document that was not stored, no document lost
//! that got one, no document delivered twice, and interrupted sends and
//! asynchronous MDN deliveries finished after the restart under the first
//! Message-ID. Each test runs the `as2-harness` binary as a user would and
//! stops it at a named point (`AS2_HARNESS_PAUSE_AT`) before killing it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DOCUMENT: &[u8] = b"ISA*00*          *00*          *ZZ*ACME           *ZZ*GLOBEX         ~\nST*850*0001~\nBEG*00*SA*PO-4711**20261201~\nSE*3*0001~\n";

fn harness() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_as2-harness"));
    command
        .env_remove("AS2_MASTER_KEY")
        .env("RUST_LOG", "info,wasmtime=warn,cranelift_codegen=warn");
    command
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `as2-harness` process whose stderr is collected as it comes.
struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (pipe, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Running { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `needle`.
    fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited ({status}) before {needle:?}:\n{}", self.stderr());
            }
            assert!(
                start.elapsed() < timeout,
                "no {needle:?} within {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`.
    fn kill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.stderr()
    }

    /// Waits for the process to end; its stdout and stderr.
    fn finish(mut self, timeout: Duration) -> (bool, String, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stdout = String::new();
                if let Some(mut pipe) = self.child.stdout.take() {
                    std::io::Read::read_to_string(&mut pipe, &mut stdout).unwrap();
                }
                std::thread::sleep(Duration::from_millis(50));
                return (status.success(), stdout, self.stderr());
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("did not finish within {timeout:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// ACME sends to GLOBEX; both have data folders, keys and configurations
/// in one temporary folder.
struct World {
    dir: PathBuf,
    globex_port: u16,
    acme_port: u16,
}

impl World {
    fn new(name: &str, partner: serde_json::Value) -> Self {
        let dir = std::env::temp_dir().join(format!("as2-crash-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let world = World {
            dir,
            globex_port: free_port(),
            acme_port: free_port(),
        };
        let mut certificates = Vec::new();
        for (data, cn) in [("acme", "ACME"), ("globex", "GLOBEX")] {
            let output = world.run(data, &["keys", "generate", data, "--common-name", cn]);
            assert!(output.status.success(), "{}", text(&output));
            certificates.push(String::from_utf8(output.stdout).unwrap());
        }
        let mut acme_partner = serde_json::json!({
            "as2_id": "GLOBEX",
            "url": format!("http://127.0.0.1:{}/as2", world.globex_port),
            "certificate": certificates[1],
            "signing": "sha256",
            "encryption": "aes256-cbc",
            "mdn": "signed",
            "send_attempts": 10,
        });
        for (key, value) in partner.as_object().unwrap() {
            acme_partner[key] = value.clone();
        }
        let acme = serde_json::json!({
            "name": "ACME to GLOBEX",
            "station": {
                "as2_id": "ACME",
                "private_key": "acme",
                "url": format!("http://127.0.0.1:{}/as2", world.acme_port),
            },
            "partner": acme_partner,
        });
        let globex = serde_json::json!({
            "name": "GLOBEX from ACME",
            "station": { "as2_id": "GLOBEX", "private_key": "globex" },
            "partner": {
                "as2_id": "ACME",
                "url": "http://127.0.0.1:9/",
                "certificate": certificates[0],
            },
        });
        std::fs::write(world.dir.join("acme.json"), acme.to_string()).unwrap();
        std::fs::write(world.dir.join("globex.json"), globex.to_string()).unwrap();
        std::fs::write(world.dir.join("po-4711.x12"), DOCUMENT).unwrap();
        world
    }

    fn command(&self, data: &str, args: &[&str]) -> Command {
        let mut command = harness();
        command
            .current_dir(&self.dir)
            .args(["--data-dir", data])
            .args(args);
        command
    }

    fn run(&self, data: &str, args: &[&str]) -> Output {
        self.command(data, args).output().unwrap()
    }

    /// `serve` for a station, stopping at `pause` when given; returns once it listens.
    fn serve(&self, data: &str, pause: Option<&str>) -> Running {
        let (config, port) = match data {
            "globex" => ("globex.json", self.globex_port),
            _ => ("acme.json", self.acme_port),
        };
        let listen = format!("127.0.0.1:{port}");
        let mut command = self.command(
            data,
            &[
                "serve",
                config,
                "--listen",
                &listen,
                "--resume-every-secs",
                "1",
            ],
        );
        if let Some(point) = pause {
            command.env("AS2_HARNESS_PAUSE_AT", point);
        }
        let mut running = Running::spawn(command);
        running.wait_for("receiving for", Duration::from_secs(60));
        running
    }

    fn send(&self) -> Running {
        Running::spawn(self.command("acme", &["send", "acme.json", "po-4711.x12"]))
    }

    /// The files GLOBEX has received from ACME.
    fn delivered(&self) -> Vec<PathBuf> {
        let inbox = self.dir.join("globex/inbox/ACME");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&inbox)
            .map(|entries| entries.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    fn assert_delivered_once(&self) {
        let files = self.delivered();
        assert_eq!(files.len(), 1, "delivered exactly once: {files:?}");
        assert_eq!(std::fs::read(&files[0]).unwrap(), DOCUMENT);
        assert!(files[0].ends_with("po-4711.x12"), "{files:?}");
        let staging = self.dir.join("globex/staging");
        let left: Vec<_> = std::fs::read_dir(&staging)
            .map(|entries| entries.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "staging is cleaned up: {left:?}");
    }

    /// The one JSON line `send` printed for the file.
    fn sent_line(stdout: &str) -> serde_json::Value {
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{stdout}");
        lines[0].clone()
    }

    /// The message IDs of every message in the partner's store.
    fn messages(&self, data: &str, config: &str) -> Vec<serde_json::Value> {
        let output = self.run(data, &["messages", config]);
        assert!(output.status.success(), "{}", text(&output));
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn status(&self, message_id: &str) -> String {
        let output = self.run("acme", &["status", message_id, "--config", "acme.json"]);
        assert!(output.status.success(), "{}", text(&output));
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The receiver is killed at `point` while ACME's `send` waits for the MDN,
/// and restarted; `send` resends under the same Message-ID.
fn receiver_killed_at(point: &str, name: &str) -> (World, serde_json::Value) {
    let world = World::new(name, serde_json::json!({}));
    let globex = world.serve("globex", Some(point));
    let send = world.send();
    let mut globex = globex;
    globex.wait_for(&format!("paused at {point}"), Duration::from_secs(60));
    let log = globex.kill();
    assert!(
        !log.contains("document stored") || point == "receive:linked",
        "{log}"
    );
    let globex = world.serve("globex", None);
    let (ok, stdout, stderr) = send.finish(Duration::from_secs(90));
    let _ = globex.kill();
    assert!(
        ok,
        "the send succeeded after the restart:\n{stdout}\n{stderr}"
    );
    let line = World::sent_line(&stdout);
    assert_eq!(line["state"], "acknowledged", "{line}");
    assert_eq!(line["mic_matched"], true, "{line}");
    assert!(line["attempts"].as_u64().unwrap() >= 2, "{line}");
    world.assert_delivered_once();
    let received = world.messages("globex", "globex.json");
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["message_id"], line["message_id"]);
    assert_eq!(received[0]["direction"], "in");
    (world, line)
}

#[test]
fn killed_after_staging_nothing_was_recorded_and_the_resend_is_processed_in_full() {
    let (_world, line) = receiver_killed_at("receive:staged", "staged");
    // Nothing was recorded before the kill: the resend is new to GLOBEX.
    assert_eq!(line["disposition"], "processed", "{line}");
}

#[test]
fn killed_after_the_record_the_restart_delivers_it_and_the_resend_is_a_duplicate() {
    let (_world, line) = receiver_killed_at("receive:committed", "committed");
    assert_eq!(
        line["disposition"], "processed/warning: duplicate-document",
        "{line}"
    );
}

#[test]
fn killed_after_the_link_the_restart_does_not_link_it_again() {
    let (_world, line) = receiver_killed_at("receive:linked", "linked");
    assert_eq!(
        line["disposition"], "processed/warning: duplicate-document",
        "{line}"
    );
}

#[test]
fn a_sender_killed_mid_exchange_resumes_under_the_same_message_id() {
    let world = World::new("sender", serde_json::json!({ "mdn_timeout_seconds": 2 }));
    let mut globex = world.serve("globex", Some("receive:committed"));
    let send = world.send();
    globex.wait_for("paused at receive:committed", Duration::from_secs(60));
    // Both die: the sender with its request in flight, the receiver before answering.
    let sender_log = send.kill();
    let _ = globex.kill();
    let pending = world.messages("acme", "acme.json");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["state"], "pending");
    let message_id = pending[0]["message_id"].as_str().unwrap().to_string();
    assert!(sender_log.contains(&message_id), "{sender_log}");

    let globex = world.serve("globex", None);
    // The first attempt's lease (MDN timeout + slack) must run out first.
    let start = Instant::now();
    let resumed = loop {
        let output = world.run("acme", &["resume", "acme.json"]);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !stdout.trim().is_empty() {
            assert!(output.status.success(), "{}", text(&output));
            break World::sent_line(&stdout);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing resumed: {}",
            text(&output)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = globex.kill();
    assert_eq!(resumed["message_id"], message_id.as_str(), "{resumed}");
    assert_eq!(resumed["state"], "acknowledged", "{resumed}");
    assert_eq!(resumed["attempts"], 2, "{resumed}");
    assert_eq!(
        resumed["disposition"], "processed/warning: duplicate-document",
        "{resumed}"
    );
    world.assert_delivered_once();
    let sent = world.messages("acme", "acme.json");
    assert_eq!(sent.len(), 1, "no second message: {sent:?}");
    let status = world.status(&message_id);
    assert!(status.contains("State:      acknowledged"), "{status}");
    assert!(status.contains("Attempts:   2"), "{status}");
    assert!(status.contains("  #1 at "), "{status}");
    assert!(
        status.contains("  #2 at ")
            && status.contains("MDN: processed/warning: duplicate-document"),
        "{status}"
    );
    assert!(
        status.contains("MDN:        processed/warning: duplicate-document"),
        "{status}"
    );
}

#[test]
fn a_sender_killed_while_waiting_to_resend_resumes_and_delivers_once() {
    let world = World::new("backoff", serde_json::json!({}));
    // GLOBEX is down: the first attempt fails and the sender waits 1 s.
    let mut send = world.send();
    send.wait_for(
        "sending it again under the same Message-ID",
        Duration::from_secs(60),
    );
    let _ = send.kill();
    let globex = world.serve("globex", None);
    // A new `send` first finishes what the stop interrupted (after its lease).
    std::thread::sleep(Duration::from_secs(7));
    let output = world.run("acme", &["resume", "acme.json"]);
    let _ = globex.kill();
    assert!(output.status.success(), "{}", text(&output));
    let line = World::sent_line(&String::from_utf8(output.stdout).unwrap());
    assert_eq!(line["state"], "acknowledged", "{line}");
    assert_eq!(line["disposition"], "processed", "{line}");
    assert_eq!(line["attempts"], 2, "{line}");
    world.assert_delivered_once();
}

#[test]
fn an_asynchronous_mdn_interrupted_by_a_kill_is_delivered_after_the_restart() {
    let world = World::new("async", serde_json::json!({ "mdn_delivery": "async" }));
    let acme = world.serve("acme", None);
    let mut globex = world.serve("globex", Some("mdn:delivering"));
    let (ok, stdout, stderr) = world.send().finish(Duration::from_secs(60));
    assert!(ok, "{stdout}\n{stderr}");
    let line = World::sent_line(&stdout);
    assert_eq!(line["state"], "pending", "awaiting the MDN: {line}");
    let message_id = line["message_id"].as_str().unwrap().to_string();
    globex.wait_for("paused at mdn:delivering", Duration::from_secs(30));
    let _ = globex.kill();
    // Stored before the 200, so already in the inbox; the MDN is still owed.
    world.assert_delivered_once();
    let globex = world.serve("globex", None);
    let start = Instant::now();
    loop {
        let status = world.status(&message_id);
        if status.contains("State:      acknowledged") {
            assert!(status.contains("MDN:        processed"), "{status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the owed MDN never settled it:\n{status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let received = world.messages("globex", "globex.json");
    let _ = (globex.kill(), acme.kill());
    // The form's informational "AS2 IP addresses" shows where `serve` listened.
    let schema = world.run("globex", &["schema"]);
    let schema: serde_json::Value = serde_json::from_slice(&schema.stdout).unwrap();
    assert_eq!(
        schema.pointer("/$defs/Station/properties/ip_addresses/default"),
        Some(&serde_json::json!(["127.0.0.1"]))
    );
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(
        received[0]["async_mdn_delivery"]["state"], "delivered",
        "{received:?}"
    );
    world.assert_delivered_once();
}

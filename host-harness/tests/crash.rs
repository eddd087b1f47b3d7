//! `kill -9` at the durable points of receiving and sending, and a restart:
//! no positive MDN for a document that was not stored, no document lost
//! that got one, no document delivered twice, and interrupted sends and
//! asynchronous MDN deliveries finished after the restart under the first
//! Message-ID. Each test runs the `as2-harness` binary as a user would and
//! stops it at a named point (`AS2_HARNESS_PAUSE_AT`) before killing it.

mod common;

use std::time::{Duration, Instant};

use common::{World, text};

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
    assert_eq!(pending.len(), 1, "{pending:?}\n{sender_log}");
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

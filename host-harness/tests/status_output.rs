//! What `status` and `messages` print after one signed, encrypted message
//! with a signed MDN: words and RFC 3339 times for people, and JSON field
//! names and values that scripts can rely on (docs/operations.md lists them).

mod common;

use std::time::Duration;

use common::World;

#[test]
fn status_speaks_words_and_messages_prints_stable_json() {
    let world = World::new("status-output", serde_json::json!({}));
    let globex = world.serve("globex", None);
    let (ok, stdout, stderr) = world.send().finish(Duration::from_secs(90));
    let _ = globex.kill();
    assert!(ok, "{stdout}\n{stderr}");
    let message_id = World::sent_line(&stdout)["message_id"]
        .as_str()
        .unwrap()
        .to_string();

    let sent = world.messages("acme", "acme.json");
    assert_eq!(sent.len(), 1, "{sent:?}");
    let line = sent[0].as_object().unwrap();
    let mut fields: Vec<&str> = line.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "answered",
            "async_mdn_delivery",
            "attempts",
            "created",
            "direction",
            "file_name",
            "mdn",
            "message_id",
            "mic",
            "partner",
            "reason",
            "state",
            "stored_at"
        ]
    );
    assert_eq!(line["direction"], "out");
    assert_eq!(line["state"], "acknowledged");
    assert_eq!(line["partner"], world.globex_id.as_str());
    assert!(line["created"].is_u64(), "{line:?}");
    let mdn = line["mdn"].as_object().unwrap();
    assert_eq!(mdn["disposition"], "processed");
    assert_eq!(mdn["signature"], "verified");
    assert_eq!(mdn["received_mic"], line["mic"]);

    let received = world.messages("globex", "globex.json");
    assert_eq!(received[0]["direction"], "in");
    assert_eq!(received[0]["state"], "received");
    assert_eq!(received[0]["answered"], "processed");

    let status = world.status(&message_id);
    assert!(status.contains("  signature: verified\n"), "{status}");
    let created = status
        .lines()
        .find_map(|l| l.strip_prefix("Created:    "))
        .unwrap_or_default();
    // RFC 3339 in UTC: 2026-12-07T05:24:55Z
    assert_eq!(created.len(), 20, "{status}");
    assert!(
        created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{status}"
    );
    assert!(!status.contains("Unix seconds"), "{status}");
    assert!(!status.contains("SignatureVerdict"), "{status}");
}

//! Several documents in one AS2 message (RFC 6362) between two `serve` and
//! `send` processes: `send --one-message` sends them together once the
//! partner has announced `multiple-attachments` (here: in the EDIINT-Features
//! of its MDNs), or when the connection says `always`; each arrives in the
//! partner's inbox under its own name, byte for byte; `never` and a partner
//! that has not announced it get one message per file.

mod common;

use common::{World, json_lines, text};

const FILES: [(&str, &[u8]); 3] = [
    ("po-1.x12", b"ISA*00*one~\nST*850*0001~\r\n"),
    ("po-2.x12", b"ISA*00*two~\r\nST*850*0002~\r\n"),
    ("notes.txt", b"no line end at the end"),
];

/// `send --one-message` of the three files: its JSON lines.
fn send_together(world: &World) -> Vec<serde_json::Value> {
    for (name, bytes) in FILES {
        std::fs::write(world.dir.join(name), bytes).unwrap();
    }
    let mut args = vec!["send", "--one-message", "acme.json"];
    args.extend(FILES.iter().map(|(name, _)| *name));
    let output = world.run("acme", &args);
    assert!(output.status.success(), "{}", text(&output));
    json_lines(&output)
}

/// The inbox holds each file once, byte for byte, and nothing else.
fn assert_each_delivered(world: &World) {
    let delivered = world.delivered();
    let mut names: Vec<String> = delivered
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected, "{delivered:?}");
    for (name, bytes) in FILES {
        let path = delivered.iter().find(|p| p.ends_with(name)).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), bytes, "{name}");
    }
}

/// Takes the delivered files out of the inbox, for the next round.
fn empty_inbox(world: &World) {
    for path in world.delivered() {
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn always_sends_the_files_in_one_message_and_each_arrives_under_its_name() {
    let world = World::new(
        "attach-always",
        serde_json::json!({ "multiple_attachments": "always" }),
    );
    let globex = world.serve("globex", None);
    let lines = send_together(&world);
    assert_eq!(lines.len(), 1, "one message: {lines:?}");
    assert_eq!(lines[0]["state"], "acknowledged", "{lines:?}");
    assert_eq!(lines[0]["mic_matched"], true, "{lines:?}");
    assert_eq!(
        lines[0]["files"],
        serde_json::json!(["po-1.x12", "po-2.x12", "notes.txt"])
    );
    assert_each_delivered(&world);
    // GLOBEX's record of the message names all three.
    let id = lines[0]["message_id"].as_str().unwrap();
    let received = world.messages("globex", "globex.json");
    let record = received
        .iter()
        .find(|m| m["message_id"] == id)
        .expect("GLOBEX's record");
    assert_eq!(record["file_name"], "po-1.x12, po-2.x12, notes.txt");
    let _ = globex.kill();
}

#[test]
fn announced_waits_for_the_partners_word_and_never_sends_one_message_per_file() {
    let world = World::new("attach-announced", serde_json::json!({}));
    let globex = world.serve("globex", None);
    // ACME has heard nothing from GLOBEX yet: one message per file. Their
    // MDNs carry GLOBEX's EDIINT-Features.
    let first = send_together(&world);
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(
        first.iter().all(|line| line["state"] == "acknowledged"),
        "{first:?}"
    );
    assert_each_delivered(&world);
    empty_inbox(&world);
    // Now announced: together.
    let second = send_together(&world);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0]["state"], "acknowledged");
    assert_each_delivered(&world);
    empty_inbox(&world);
    // `never` keeps them apart, announced or not.
    world.edit_config("acme.json", |config| {
        config["partner"]["multiple_attachments"] = "never".into();
    });
    let third = send_together(&world);
    assert_eq!(third.len(), 3, "{third:?}");
    assert_each_delivered(&world);
    let _ = globex.kill();
}

//! `cem request | list | accept | reject` between two `serve` processes:
//! what a person types to roll a certificate over with a partner.

mod common;

use common::{World, json_lines, text};

#[test]
fn a_certificate_is_offered_listed_and_accepted_from_the_command_line() {
    let world = World::new("cem-cli", serde_json::json!({}));
    // Without a next key there is nothing to offer: the field is named.
    let refused = world.run(
        "acme",
        &["cem", "request", "acme.json", "--respond-by", "+14"],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("/station/next_private_key"),
        "{}",
        text(&refused)
    );
    let refused = world.run(
        "acme",
        &["cem", "request", "acme.json", "--respond-by", "yesterday"],
    );
    assert!(text(&refused).contains("RFC 3339"), "{}", text(&refused));

    let generated = world.run(
        "acme",
        &[
            "keys",
            "generate",
            "acme-next",
            "--common-name",
            &world.acme_id,
        ],
    );
    assert!(generated.status.success(), "{}", text(&generated));
    common::register_key_file(&world.dir.join("acme/keys/acme-next.key.pem"));
    world.edit_config("acme.json", |config| {
        config["station"]["next_private_key"] = "acme-next".into();
    });
    let globex = world.serve("globex", None);
    // ACME answers at its station.url: the response comes there.
    let acme = world.serve("acme", None);
    let requested = world.run(
        "acme",
        &["cem", "request", "acme.json", "--respond-by", "+14"],
    );
    assert!(requested.status.success(), "{}", text(&requested));
    let sent = &json_lines(&requested)[0];
    assert_eq!(sent["state"], "acknowledged", "{sent}");
    let id = sent["request_id"].as_str().unwrap().to_string();

    let listed = world.run("globex", &["cem", "list", "globex.json"]);
    let received = json_lines(&listed);
    assert_eq!(received.len(), 1, "{}", text(&listed));
    assert_eq!(received[0]["request_id"], id.as_str());
    assert_eq!(received[0]["direction"], "received");
    assert_eq!(received[0]["state"], "pending");

    let accepted = world.run("globex", &["cem", "accept", "globex.json", &id]);
    assert!(accepted.status.success(), "{}", text(&accepted));
    assert_eq!(json_lines(&accepted)[0]["answer"], "accepted");
    let ours = json_lines(&world.run("acme", &["cem", "list", "acme.json"]));
    assert_eq!(ours[0]["direction"], "sent");
    assert_eq!(ours[0]["state"], "accepted", "{ours:?}");

    let unknown = world.run(
        "globex",
        &["cem", "reject", "globex.json", "no-such-request"],
    );
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("no CEM request \"no-such-request\""),
        "{}",
        text(&unknown)
    );
    let _ = acme.kill();
    let _ = globex.kill();
}

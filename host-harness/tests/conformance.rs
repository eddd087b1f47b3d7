//! `as2-harness conformance`: the matrix against a `serve` of another data
//! folder, with the asynchronous MDNs received by the verb's own
//! `--listen`, its progress on stderr, its table and its JSON report; and
//! `--against-self`.

mod common;

use common::{World, output_of, text};

/// GLOBEX requires signed and encrypted messages (the default), so the
/// table must say so: the other securities get its error MDN; the rest pass.
#[test]
fn conformance_against_a_serve_says_what_the_partner_takes() {
    let world = World::new("conformance", serde_json::json!({}));
    let globex = world.serve("globex", None);
    let listen = format!("127.0.0.1:{}", world.acme_port);
    let output = world.run(
        "acme",
        &[
            "conformance",
            "acme.json",
            "--listen",
            &listen,
            "--timeout-secs",
            "10",
            "--json",
            "report.json",
        ],
    );
    let _ = globex.kill();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("[ 1/32] sent    plain, no receipt"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[32/32]"),
        "progress for every profile: {stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(world.dir.join("report.json")).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        33,
        "the matrix, then the strongest cipher and digest together"
    );
    for row in rows {
        let (name, result) = (
            row["name"].as_str().unwrap(),
            row["result"].as_str().unwrap(),
        );
        let security = row["profile"]["security"].as_str().unwrap();
        let expected = match (security, row["profile"]["receipt"].as_str().unwrap()) {
            (_, "none") => "sent",
            ("signed-encrypted", _) => "pass",
            _ => "fail",
        };
        assert_eq!(result, expected, "{name}: {row}");
        if expected == "fail" {
            assert_eq!(
                row["disposition"], "processed/error: insufficient-message-security",
                "{name}"
            );
        }
        if expected == "pass" {
            let signature = match row["profile"]["receipt"].as_str().unwrap() {
                "signed" => "verified",
                _ => "unsigned",
            };
            assert_eq!(row["mdn_signature"], signature, "{name}: {row}");
            assert_eq!(row["mic_matched"], true, "{name}: {row}");
        }
    }
    assert!(
        stdout.contains("strongest profile that works: signed+encrypted (sha512, aes256-gcm), signed receipt, sync"),
        "{stdout}"
    );
    assert_eq!(
        report["strongest"],
        "signed+encrypted (sha512, aes256-gcm), signed receipt, sync"
    );
}

#[test]
fn conformance_against_self_passes_every_profile_with_a_receipt() {
    let dir = std::env::temp_dir().join(format!("as2-conformance-self-{}", std::process::id()));
    let output = output_of(common::harness().args([
        "--data-dir",
        &dir.display().to_string(),
        "conformance",
        "--against-self",
        "--timeout-secs",
        "10",
    ]));
    let _ = std::fs::remove_dir_all(&dir);
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("29 of 33 profiles passed (acknowledged), 0 processed without proof of receipt, 4 sent without a receipt, 0 failed, 0 skipped"),
        "{stdout}"
    );
}

//! A station whose state is in PostgreSQL (`--state-url postgres://…`), run as a
//! user would: it receives and records on the database, and while the
//! database is down it answers 503 with Retry-After, records nothing and
//! gives no MDN, and takes messages again by itself when the database is
//! back. The partner's resend then goes through and each document is
//! delivered once.

mod common;

use std::time::Duration;

use common::postgres::Postgres;
use common::{Running, World};
use serde_json::json;

#[test]
fn a_station_on_postgresql_answers_503_while_the_database_is_down_and_recovers_by_itself() {
    let Some(cluster) = Postgres::start("station") else {
        return;
    };
    let url = cluster.database("globex");
    let world = World::new("pg-station", json!({ "send_attempts": 10 }));
    let globex = world.serve_with("globex", &["--state-url", &url], world.globex_port, None);
    assert!(
        !world.dir.join("globex/state.sqlite").exists(),
        "the state went to SQLite"
    );

    let (ok, stdout, stderr) = world.send().finish(Duration::from_secs(90));
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(World::sent_line(&stdout)["state"], "acknowledged");

    // The database goes away; a message arrives; the database comes back.
    cluster.pg_ctl_stop();
    let sending = world.send();
    // Longer than the pool waits for a connection (5 s): one attempt at least is refused.
    std::thread::sleep(Duration::from_secs(8));
    let refused = globex.stderr();
    cluster.pg_ctl_start();
    let (ok, stdout, stderr) = sending.finish(Duration::from_secs(120));
    assert!(ok, "{stdout}\n{stderr}\nGLOBEX:\n{}", globex.stderr());
    let line = World::sent_line(&stdout);
    assert_eq!(line["state"], "acknowledged", "{line}");
    assert_eq!(line["mic_matched"], true, "{line}");
    let events = line["events"].to_string();
    assert!(
        events.contains("503"),
        "the first attempts were refused with 503: {line}"
    );
    assert!(
        refused.contains("unreachable") || refused.contains("STORAGE_FAILED"),
        "{refused}"
    );

    // Each of the two documents is in the inbox once, and recorded in the database.
    let delivered = world.delivered();
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    let received = world.messages_with(&["--state-url", &url], "globex", "globex.json");
    assert_eq!(received.len(), 2, "{received:?}");
    assert!(
        received.iter().all(|m| m["answered"] == "processed"),
        "{received:?}"
    );
    let _ = globex.kill();
}

#[test]
fn state_migrate_moves_a_sqlite_station_to_postgresql_record_for_record() {
    let Some(cluster) = Postgres::start("migrate") else {
        return;
    };
    let url = cluster.database("migrated");
    let world = World::new("pg-migrate", json!({}));
    let globex = world.serve("globex", None);
    let (ok, stdout, stderr) = world.send().finish(Duration::from_secs(90));
    assert!(ok, "{stdout}\n{stderr}");
    let _ = globex.kill();
    let before = world.messages("globex", "globex.json");
    assert_eq!(before.len(), 1);

    let output = world.run("globex", &["state", "migrate", "--to", &url]);
    assert!(output.status.success(), "{}", common::text(&output));
    assert!(
        common::text(&output).contains("copied"),
        "{}",
        common::text(&output)
    );
    let after = world.messages_with(&["--state-url", &url], "globex", "globex.json");
    assert_eq!(after, before, "the same messages, field for field");
    // A database that holds state already is refused, and left as it was.
    let again = world.run("globex", &["state", "migrate", "--to", &url]);
    assert!(!again.status.success());
    assert!(
        common::text(&again).contains("already holds state"),
        "{}",
        common::text(&again)
    );
    assert_eq!(
        world.messages_with(&["--state-url", &url], "globex", "globex.json"),
        before
    );

    // The migrated station receives on PostgreSQL.
    let globex = world.serve_with("globex", &["--state-url", &url], world.globex_port, None);
    let (ok, stdout, stderr) = world.send().finish(Duration::from_secs(90));
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(World::sent_line(&stdout)["state"], "acknowledged");
    assert_eq!(
        world
            .messages_with(&["--state-url", &url], "globex", "globex.json")
            .len(),
        2
    );
    let _ = globex.kill();
}

#[test]
fn interrupted_sends_resumed_by_three_processes_at_once_go_out_once_each() {
    let Some(cluster) = Postgres::start("resume") else {
        return;
    };
    let url = cluster.database("acme");
    let world = World::new("pg-resume", json!({}));
    world.edit_config("acme.json", |config| {
        config["advanced"] = json!({ "target_concurrency": 25 });
    });
    let names: Vec<String> = (0..12).map(|i| format!("po-{i:02}.x12")).collect();
    for (i, name) in names.iter().enumerate() {
        std::fs::write(
            world.dir.join(name),
            format!("ISA*00*{i}~\nST*850*{i:04}~\n"),
        )
        .unwrap();
    }
    // GLOBEX is down: every first attempt fails, and the sender is killed
    // while it waits to send again.
    let mut args = vec!["--state-url", url.as_str(), "send", "acme.json"];
    args.extend(names.iter().map(String::as_str));
    let mut send = Running::spawn(world.command("acme", &args));
    send.wait_for(
        "sending it again under the same Message-ID",
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_millis(500));
    let _ = send.kill();
    let queued = world.messages_with(&["--state-url", &url], "acme", "acme.json");
    assert!(!queued.is_empty());
    assert!(queued.iter().all(|m| m["state"] == "pending"), "{queued:?}");

    let globex = world.serve("globex", None);
    // Past the interrupted attempts' leases, three processes resume at once.
    std::thread::sleep(Duration::from_secs(7));
    let resumers: Vec<Running> = (0..3)
        .map(|_| {
            Running::spawn(world.command("acme", &["--state-url", &url, "resume", "acme.json"]))
        })
        .collect();
    let mut resumed = Vec::new();
    for resumer in resumers {
        let (_, stdout, stderr) = resumer.finish(Duration::from_secs(120));
        for line in stdout.lines() {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(line["state"], "acknowledged", "{line}\n{stderr}");
            assert_eq!(
                line["disposition"], "processed",
                "sent once, not a duplicate: {line}"
            );
            resumed.push(line["message_id"].as_str().unwrap().to_string());
        }
    }
    drop(globex);
    resumed.sort();
    let mut expected: Vec<String> = queued
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    assert_eq!(
        resumed, expected,
        "each queued message resumed by exactly one process"
    );
    assert_eq!(world.delivered().len(), queued.len());
    let received = world.messages("globex", "globex.json");
    assert_eq!(received.len(), queued.len(), "{received:?}");
}

#[test]
fn the_databases_password_comes_from_the_secret_store_and_never_shows() {
    let Some(cluster) = Postgres::start("password") else {
        return;
    };
    let url = cluster.database_without_password("secretive");
    let world = World::new("pg-password", json!({}));
    let key = common::harness()
        .args(["secrets", "new-master-key"])
        .output()
        .unwrap();
    let master_key = String::from_utf8(key.stdout).unwrap().trim().to_string();
    common::register_secret(&master_key);
    let with_key = |args: &[&str]| {
        let mut command = world.command("globex", args);
        command.env("AS2_MASTER_KEY", &master_key);
        command
    };
    let mut set = with_key(&["secrets", "set", "state-db"]);
    let mut child = set.stdin(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        cluster.password.as_bytes(),
    )
    .unwrap();
    assert!(child.wait().unwrap().success());

    // Without a password the database refuses, and the error names it.
    let refused = common::output_of(&mut with_key(&[
        "--state-url",
        &url,
        "messages",
        "globex.json",
    ]));
    assert!(!refused.status.success());
    assert!(
        common::text(&refused).contains(&url),
        "{}",
        common::text(&refused)
    );
    // With the secret store's entry it opens (and creates the schema).
    let opened = common::output_of(&mut with_key(&[
        "--state-url",
        &url,
        "--state-password-secret",
        "state-db",
        "messages",
        "globex.json",
    ]));
    assert!(opened.status.success(), "{}", common::text(&opened));
    // A password in the URL shows as *** in what the harness says.
    let wrong_database = format!(
        "postgres://as2:{}@127.0.0.1:{}/missing",
        cluster.password, cluster.port
    );
    let failed = common::output_of(&mut with_key(&[
        "--state-url",
        &wrong_database,
        "messages",
        "globex.json",
    ]));
    let said = common::text(&failed);
    assert!(!failed.status.success());
    assert!(
        said.contains(&format!(
            "postgres://as2:***@127.0.0.1:{}/missing",
            cluster.port
        )),
        "{said}"
    );
    assert!(!said.contains(&cluster.password), "{said}");
}

//! The state store's operations mean the same on SQLite and on PostgreSQL,
//! and on PostgreSQL across instances: the same contract, run against the
//! embedded SQLite file and against a throwaway PostgreSQL cluster, with
//! two stores on one database standing for two instances.

mod common;

use std::sync::{Arc, Barrier};

use as2_harness::state::{DeliveryRecord, OwedMdnRecord, StateStore};
use common::postgres::Postgres;

fn delivery(message_id: &str, staged: &str) -> DeliveryRecord {
    DeliveryRecord {
        partner: "ACME".into(),
        message_id: message_id.into(),
        staged: staged.into(),
        file_name: "po.x12".into(),
        bytes: 42,
        path: format!("/inbox/ACME/{staged}"),
    }
}

fn owed(message_id: &str) -> OwedMdnRecord {
    OwedMdnRecord {
        partner: "ACME".into(),
        original_message_id: message_id.into(),
        url: "http://127.0.0.1:9/mdn".into(),
        headers_json: r#"[["Content-Type","multipart/report"]]"#.into(),
        body: b"mdn".to_vec(),
    }
}

/// The contract, on `one` and `other`: two handles on the same state.
fn contract(one: &StateStore, other: &StateStore) {
    // Values, prefixes and the bytewise order of keys.
    for key in ["sent/b", "sent/B", "sent/a", "sentinel", "sent/a/x"] {
        one.set(key, key.as_bytes()).unwrap();
    }
    assert_eq!(
        other.get("sent/B").unwrap().as_deref(),
        Some(&b"sent/B"[..])
    );
    assert_eq!(
        other.list_keys("sent/").unwrap(),
        ["sent/B", "sent/a", "sent/a/x", "sent/b"]
    );
    other.delete("sent/a/x").unwrap();
    assert_eq!(one.get("sent/a/x").unwrap(), None);
    one.set_all(&[
        ("all/1".into(), b"1".to_vec()),
        ("all/2".into(), b"2".to_vec()),
    ])
    .unwrap();
    assert_eq!(other.list_keys("all/").unwrap(), ["all/1", "all/2"]);

    // Compare-and-swap.
    assert!(one.compare_and_swap("cas", None, b"1").unwrap());
    assert!(!other.compare_and_swap("cas", None, b"2").unwrap());
    assert!(!other.compare_and_swap("cas", Some(b"0"), b"2").unwrap());
    assert!(other.compare_and_swap("cas", Some(b"1"), b"2").unwrap());
    assert_eq!(one.get("cas").unwrap().as_deref(), Some(&b"2"[..]));

    // Concurrent increments by compare-and-swap from both: none lost.
    let (threads, increments) = (8, 20);
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let store = if thread % 2 == 0 { one } else { other };
            scope.spawn(move || {
                for _ in 0..increments {
                    loop {
                        let current = store.get("counter").unwrap();
                        let next = current
                            .as_deref()
                            .map_or(0, |v| u32::from_be_bytes(v.try_into().unwrap()))
                            + 1;
                        if store
                            .compare_and_swap("counter", current.as_deref(), &next.to_be_bytes())
                            .unwrap()
                        {
                            break;
                        }
                    }
                }
            });
        }
    });
    assert_eq!(
        one.get("counter").unwrap(),
        Some(((threads * increments) as u32).to_be_bytes().to_vec())
    );

    // The same message recorded by both at once: stored once, the other raced.
    let barrier = Arc::new(Barrier::new(2));
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = [(one, "staged-1"), (other, "staged-2")]
            .into_iter()
            .map(|(store, staged)| {
                let barrier = barrier.clone();
                scope.spawn(move || {
                    barrier.wait();
                    store
                        .record_received(
                            &[("received/ACME/<m1@acme>".into(), b"r".to_vec())],
                            &[delivery("<m1@acme>", staged)],
                            Some(&owed("<m1@acme>")),
                        )
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stored: Vec<_> = outcomes.iter().filter(|o| o.is_some()).collect();
    assert_eq!(stored.len(), 1, "{outcomes:?}");
    let owed_id = stored[0].unwrap().unwrap();
    let row = other.delivery("ACME", "<m1@acme>").unwrap().unwrap();
    assert!(!row.delivered && row.file_name == "po.x12");
    assert_eq!(one.staged_deliveries().unwrap().len(), 1);
    one.set_delivery_path("ACME", "<m1@acme>", "/inbox/ACME/po.x12")
        .unwrap();
    other.mark_delivered("ACME", "<m1@acme>").unwrap();
    let row = one.delivery("ACME", "<m1@acme>").unwrap().unwrap();
    assert!(row.delivered && row.path.as_deref() == Some("/inbox/ACME/po.x12"));
    assert!(other.staged_deliveries().unwrap().is_empty());

    // The owed MDN is leased to one of two lookers at once, then due again
    // when the lease runs out; an attempt settles it.
    let now = 2_000_000_000;
    let first = one.lease_due_mdns(now, 120).unwrap();
    let second = other.lease_due_mdns(now, 120).unwrap();
    assert_eq!(first.iter().map(|m| m.id).collect::<Vec<_>>(), [owed_id]);
    assert!(second.is_empty(), "{second:?}");
    assert_eq!(
        first[0].headers,
        [("Content-Type".to_string(), "multipart/report".to_string())]
    );
    let again = other.lease_due_mdns(now + 121, 120).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        other
            .mdn_attempted(owed_id, Some("HTTP 503"), now + 121)
            .unwrap(),
        "pending"
    );
    assert_eq!(
        one.mdn_attempted(owed_id, None, now + 130).unwrap(),
        "delivered"
    );
    let shown = other.mdn_delivery("ACME", "<m1@acme>").unwrap().unwrap();
    assert_eq!((shown.state.as_str(), shown.attempts), ("delivered", 2));
    assert!(one.lease_due_mdns(now + 10_000, 120).unwrap().is_empty());
}

#[test]
fn sqlite_keeps_the_contract() {
    let dir = std::env::temp_dir().join(format!("as2-state-contract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = StateStore::open(&dir).unwrap();
    contract(&store, &store);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn postgresql_keeps_the_contract_across_two_instances() {
    let Some(cluster) = Postgres::start("contract") else {
        return;
    };
    let url = cluster.database("contract");
    // Two stores migrate the same new database at once: one does, the other waits.
    let (one, other) = std::thread::scope(|scope| {
        let a = scope.spawn(|| StateStore::open_postgres(&url, None).unwrap());
        let b = scope.spawn(|| StateStore::open_postgres(&url, None).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(one.location(), as2_harness::state::masked_url(&url));
    assert!(!one.location().contains(&cluster.password));
    contract(&one, &other);
}

#[test]
fn an_unreachable_database_is_named_with_its_password_masked() {
    let port = common::free_port();
    let url = format!("postgres://as2:hunter2-state@127.0.0.1:{port}/as2");
    let error = match StateStore::open_postgres(&url, None) {
        Ok(_) => panic!("nothing listens on {port}"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains(&format!("postgres://as2:***@127.0.0.1:{port}/as2")),
        "{error}"
    );
    assert!(!error.contains("hunter2-state"), "{error}");
}

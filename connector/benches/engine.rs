//! The engine natively: building a signed (SHA-256) and encrypted (AES-256-CBC)
//! AS2 message, and parsing one (decrypt, verify, build the signed MDN), at
//! 1 KB, 1 MB and 10 MB. `cargo bench -p as2-connector`.

use std::time::{Duration, SystemTime};

use as2_connector::config::{Checked, Connection};
use as2_connector::crypto::rustcrypto::{GeneratedKey, RustCryptoProvider, generate_station_key};
use as2_connector::message::{self, Document};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn connection(ours: &str, theirs: &str, cert: &str) -> Checked {
    let json = format!(
        r#"{{"name":"bench","station":{{"as2_id":"{ours}","private_key":"k"}},"partner":{{"as2_id":"{theirs}","url":"http://127.0.0.1/","certificate":{}}}}}"#,
        serde_json::to_string(cert).unwrap()
    );
    Connection::check(&json, SystemTime::now()).unwrap()
}

fn keys() -> (GeneratedKey, GeneratedKey) {
    let now = SystemTime::now() - Duration::from_secs(60);
    let day = Duration::from_secs(86400);
    (
        generate_station_key("A", now, day).unwrap(),
        generate_station_key("B", now, day).unwrap(),
    )
}

fn bench(c: &mut Criterion) {
    let (a, b) = keys();
    let sender = connection("A", "B", &b.certificate_pem);
    let receiver = connection("B", "A", &a.certificate_pem);
    let provider = RustCryptoProvider;
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    for size in [1 << 10, 1 << 20, 10 << 20] {
        let document = Document {
            file_name: Some("bench.edi".into()),
            content_type: "application/edi-x12".into(),
            content: (0..size).map(|i| b"ISA*00*~ST*850*"[i % 15]).collect(),
        };
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("build", size),
            &document,
            |bench, document| {
                bench.iter(|| {
                    message::build(&sender, document, &a.key, SystemTime::now(), &provider).unwrap()
                })
            },
        );
        let outbound =
            message::build(&sender, &document, &a.key, SystemTime::now(), &provider).unwrap();
        group.bench_with_input(
            BenchmarkId::new("parse+mdn", size),
            &outbound,
            |bench, outbound| {
                bench.iter(|| {
                    let inbound = message::receive(
                        &receiver,
                        &outbound.headers,
                        &outbound.body,
                        message::StationKeys::single(&b.key),
                        &mut |_| Ok(false),
                        SystemTime::now(),
                        &provider,
                    )
                    .unwrap();
                    assert!(inbound.result.is_ok() && inbound.mdn.is_some());
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

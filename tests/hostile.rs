//! Hostile and broken requests against the AS2 endpoint (`serve`) over real
//! loopback HTTP, one table: each row is a request and the exact answer it
//! must get, an HTTP status with a typed error, or an MDN with the
//! disposition that names the fault. After each row nothing new is in the
//! inbox, and after the whole table the endpoint still processes a good
//! message.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use as2_connector::config::{Checked, Connection};
use as2_connector::crypto::rustcrypto::{RustCryptoProvider, generate_station_key};
use as2_connector::headers::Headers;
use as2_connector::mdn::Disposition;
use as2_connector::message::{self, Document, Outbound};
use as2_harness::server::{self, Endpoint, Route};
use as2_tests::{Pair, runtime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest body the endpoint under test accepts.
const MAX_BODY: usize = 1 << 20;

fn document() -> Document {
    Document {
        file_name: Some("po.x12".into()),
        content_type: "application/edi-x12".into(),
        content: b"ST*850*0001~\r\nBEG*00*SA*PO-1**20261201~\r\nSE*3*0001~\r\n".to_vec(),
    }
}

/// What a row must get back.
#[derive(Debug, Clone)]
enum Expect {
    /// An MDN in a 200 response, with this disposition.
    Mdn(Disposition),
    /// This HTTP status, the body starting with this text.
    Status(u16, &'static str),
}

/// How a row's request goes out.
enum Request {
    /// An HTTP POST with these header fields and body.
    Post(Vec<(String, String)>, Vec<u8>),
    /// These bytes, as they are, on a fresh connection (then the write side is closed).
    Raw(Vec<u8>),
}

struct Row {
    name: &'static str,
    request: Request,
    expect: Expect,
}

fn wire(headers: &Headers) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// `headers` with `name` set to `value` (or removed, for `None`).
fn with_header(headers: &Headers, name: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = wire(headers)
        .into_iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
        .collect();
    if let Some(value) = value {
        out.push((name.to_string(), value.to_string()));
    }
    out
}

/// A raw HTTP/1.1 POST of `body` with `headers`, Content-Length `length`.
fn raw_post(path: &str, headers: &[(String, String)], length: usize, body: &[u8]) -> Vec<u8> {
    let mut bytes =
        format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n").into_bytes();
    for (name, value) in headers {
        bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    bytes.extend_from_slice(format!("Content-Length: {length}\r\n\r\n").as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `bytes` on a new connection to `address`, closes the write side,
/// and reads the first response: status, header fields, body.
async fn exchange_raw(address: &str, bytes: &[u8]) -> (u16, Headers, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // A server may answer (413, 431) and close before taking everything.
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    parse_response(&answer)
}

fn parse_response(answer: &[u8]) -> (u16, Headers, Vec<u8>) {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, Headers::default(), answer.to_vec());
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers: Headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = answer[end + 4..].to_vec();
    if let Some(length) = headers
        .get("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        body.truncate(length);
    }
    (status, headers, body)
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

/// The document's DER (the encrypted body is sent binary by default).
fn der(outbound: &Outbound) -> Vec<u8> {
    assert_eq!(
        outbound.headers.get("Content-Transfer-Encoding"),
        Some("binary")
    );
    outbound.body.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_request_gets_its_exact_answer_and_nothing_is_stored() {
    let pair = Pair::start(runtime(), runtime()).await;
    let provider = RustCryptoProvider;
    let now = SystemTime::now();
    let acme_key = pair.acme.station.keys.get("acme").unwrap();

    // The endpoint under test: GLOBEX's station, its connection from ACME,
    // a 1 MiB body limit.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let url = format!("http://{address}/as2");
    let endpoint = Arc::new(Endpoint::new(
        pair.globex.clone(),
        vec![Route::from_json(pair.globex_config.clone()).unwrap()],
        MAX_BODY,
    ));
    let inbox = endpoint.inbox.dir.join("ACME");
    tokio::spawn(server::serve(listener, endpoint, std::future::pending()));

    let sender = Connection::check(&pair.acme_config, now).unwrap();
    let variant = |edit: &dyn Fn(&mut serde_json::Value)| -> Checked {
        let mut value: serde_json::Value = serde_json::from_str(&pair.acme_config).unwrap();
        edit(&mut value);
        Connection::check(&value.to_string(), now).unwrap()
    };
    let build = |config: &Checked, document: &Document| -> Outbound {
        message::build(config, document, acme_key.as_ref(), now, &provider).unwrap()
    };
    let good = build(&sender, &document());

    let intruder = generate_station_key(
        "ACME",
        now - Duration::from_secs(60),
        Duration::from_secs(86400),
    )
    .unwrap();

    let mut rows = Vec::new();
    let post = |headers: Vec<(String, String)>, body: Vec<u8>| Request::Post(headers, body);

    // --- Routing and HTTP framing, refused before the component runs.
    rows.push(Row {
        name: "unknown AS2-To",
        request: post(
            with_header(&good.headers, "AS2-To", Some("NOBODY")),
            good.body.clone(),
        ),
        expect: Expect::Status(404, "UNKNOWN_PARTNER"),
    });
    rows.push(Row {
        name: "unknown AS2-From",
        request: post(
            with_header(&good.headers, "AS2-From", Some("STRANGER")),
            good.body.clone(),
        ),
        expect: Expect::Status(404, "UNKNOWN_PARTNER"),
    });
    rows.push(Row {
        name: "AS2-To differing only in case (identifiers are case-sensitive)",
        request: post(
            with_header(&good.headers, "AS2-To", Some("globex")),
            good.body.clone(),
        ),
        expect: Expect::Status(404, "UNKNOWN_PARTNER"),
    });
    rows.push(Row {
        name: "AS2-From differing only in case",
        request: post(
            with_header(&good.headers, "AS2-From", Some("acme")),
            good.body.clone(),
        ),
        expect: Expect::Status(404, "UNKNOWN_PARTNER"),
    });
    rows.push(Row {
        name: "no AS2-From",
        request: post(
            with_header(&good.headers, "AS2-From", None),
            good.body.clone(),
        ),
        expect: Expect::Status(404, "UNKNOWN_PARTNER"),
    });
    rows.push(Row {
        name: "no AS2-To",
        request: post(
            with_header(&good.headers, "AS2-To", None),
            good.body.clone(),
        ),
        expect: Expect::Status(404, "UNKNOWN_PARTNER"),
    });
    rows.push(Row {
        name: "a body above the limit, announced by Content-Length",
        request: Request::Raw(raw_post(
            "/as2",
            &wire(&good.headers),
            MAX_BODY + 1,
            &vec![0u8; 64 * 1024],
        )),
        expect: Expect::Status(413, "the message is larger than"),
    });
    rows.push(Row {
        name: "a chunked body that grows above the limit",
        request: Request::Raw({
            let mut bytes = b"POST /as2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n".to_vec();
            for (name, value) in wire(&good.headers) {
                bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            bytes.extend_from_slice(b"\r\n");
            for _ in 0..20 {
                bytes.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
                bytes.extend_from_slice(&vec![b'A'; 64 * 1024]);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
            bytes
        }),
        expect: Expect::Status(413, "the message is larger than"),
    });
    rows.push(Row {
        name: "a body shorter than its Content-Length",
        request: Request::Raw(raw_post(
            "/as2",
            &wire(&good.headers),
            good.body.len() + 100,
            &good.body,
        )),
        expect: Expect::Status(400, "the request body could not be read"),
    });
    rows.push(Row {
        name: "a header block of 200 fields",
        request: post(
            wire(&good.headers)
                .into_iter()
                .chain((0..200).map(|i| (format!("X-Filler-{i}"), "x".to_string())))
                .collect(),
            good.body.clone(),
        ),
        expect: Expect::Status(431, ""),
    });
    rows.push(Row {
        name: "a 1 MiB header field",
        request: Request::Raw(raw_post(
            "/as2",
            &with_header(&good.headers, "X-Huge", Some(&"x".repeat(1 << 20))),
            good.body.len(),
            &good.body,
        )),
        expect: Expect::Status(431, ""),
    });
    rows.push(Row {
        name: "not HTTP at all",
        request: Request::Raw(
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(),
        ),
        expect: Expect::Status(400, ""),
    });

    let mut failures = Vec::new();
    for row in rows {
        let before = count_files(&inbox);
        let (status, headers, body) = match &row.request {
            Request::Post(headers, body) => {
                let bytes = raw_post("/as2", headers, body.len(), body);
                exchange_raw(&address, &bytes).await
            }
            Request::Raw(bytes) => exchange_raw(&address, bytes).await,
        };
        let text = String::from_utf8_lossy(&body).into_owned();
        let outcome = match &row.expect {
            Expect::Status(code, prefix) => {
                if status == *code && text.starts_with(prefix) {
                    Ok(())
                } else {
                    Err(format!(
                        "got HTTP {status}: {}",
                        text.chars().take(300).collect::<String>()
                    ))
                }
            }
            Expect::Mdn(disposition) => {
                if status != 200 {
                    Err(format!(
                        "got HTTP {status}: {}",
                        text.chars().take(300).collect::<String>()
                    ))
                } else {
                    match as2_connector::mdn::parse(
                        &headers,
                        &body,
                        &sender.partner_cert,
                        &provider,
                    ) {
                        Ok(mdn) if &mdn.disposition == disposition => Ok(()),
                        Ok(mdn) => Err(format!("got the MDN {}", mdn.disposition)),
                        Err(e) => Err(format!("the MDN does not parse: {e}")),
                    }
                }
            }
        };
        if let Err(what) = outcome {
            failures.push(format!("{}: expected {:?}, {what}", row.name, row.expect));
        }
        if count_files(&inbox) != before {
            failures.push(format!("{}: something was stored", row.name));
        }
    }
    // Still serving: the good message goes through.
    let (status, headers, body) =
        as2_tests::post(&url, &wire(&good.headers), good.body.clone()).await;
    assert_eq!(status, 200);
    let mdn = as2_connector::mdn::parse(
        &headers.into_iter().collect(),
        &body,
        &sender.partner_cert,
        &provider,
    )
    .unwrap();
    assert_eq!(mdn.disposition, Disposition::processed());
    assert_eq!(count_files(&inbox), 1);
    let _ = (&intruder, &variant, &der);
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

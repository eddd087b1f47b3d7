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
    /// An HTTP POST to the endpoint whose connection holds an expired
    /// certificate of the partner.
    PostToExpired(Vec<(String, String)>, Vec<u8>),
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

/// `der` (an EnvelopedData ContentInfo) with its first recipient's
/// encrypted key replaced by `key`.
fn with_encrypted_key(der: &[u8], key: Vec<u8>) -> Vec<u8> {
    use cms::content_info::ContentInfo;
    use cms::enveloped_data::{EnvelopedData, RecipientInfo, RecipientInfos};
    use der::{Decode, Encode};
    let mut info = ContentInfo::from_der(der).unwrap();
    let mut enveloped: EnvelopedData = info.content.decode_as().unwrap();
    let mut recipients: Vec<RecipientInfo> = enveloped.recip_infos.0.into_vec();
    let RecipientInfo::Ktri(ktri) = &mut recipients[0] else {
        panic!("a key transport recipient");
    };
    ktri.enc_key = der::asn1::OctetString::new(key).unwrap();
    enveloped.recip_infos = RecipientInfos(der::asn1::SetOfVec::try_from(recipients).unwrap());
    info.content = der::Any::encode_from(&enveloped).unwrap();
    info.to_der().unwrap()
}

/// An EnvelopedData for GLOBEX around CompressedData that inflates to 64 MiB.
fn zlib_bomb(pair: &Pair, provider: &RustCryptoProvider) -> Vec<u8> {
    let mut entity = b"Content-Type: application/edi-x12\r\n\r\n".to_vec();
    entity.resize(entity.len() + (64 << 20), 0);
    let compressed = as2_connector::compress::compress(&entity, provider).unwrap();
    assert!(compressed.len() < 256 << 10, "{}", compressed.len());
    let mut wrapper = b"Content-Type: application/pkcs7-mime; smime-type=compressed-data\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
    wrapper.extend_from_slice(&compressed);
    let globex = as2_connector::smime::Cert::from_pem(
        &std::fs::read_to_string(pair.globex.station.keys.certificate_path("globex")).unwrap(),
    )
    .unwrap();
    as2_connector::smime::encrypt(
        &wrapper,
        &globex,
        as2_connector::smime::ContentEncryption::Cbc(
            as2_connector::crypto::ContentCipher::Aes256Cbc,
        ),
        as2_connector::crypto::KeyTransport::RsaPkcs1v15,
        provider,
    )
    .unwrap()
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

    // A second endpoint whose connection from ACME holds an expired certificate for ACME.
    let expired_cert = generate_station_key(
        "ACME",
        now - Duration::from_secs(3 * 86400),
        Duration::from_secs(86400),
    )
    .unwrap();
    let mut expired_config: serde_json::Value = serde_json::from_str(&pair.globex_config).unwrap();
    expired_config["partner"]["certificate"] = expired_cert.certificate_pem.clone().into();
    let expired_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let expired_address = expired_listener.local_addr().unwrap().to_string();
    let expired_endpoint = Arc::new(Endpoint::new(
        pair.globex.clone(),
        vec![Route::from_json(expired_config.to_string()).unwrap()],
        MAX_BODY,
    ));
    tokio::spawn(server::serve(
        expired_listener,
        expired_endpoint,
        std::future::pending(),
    ));

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

    // A first good message, which a row replays.
    let first = build(&sender, &document());
    let (status, _, _) = as2_tests::post(&url, &wire(&first.headers), first.body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(count_files(&inbox), 1);

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

    // --- Message level: an MDN that names the fault.
    let mdn = |d: Disposition| Expect::Mdn(d);
    let decryption_failed = || mdn(Disposition::error("decryption-failed"));
    let fresh = || build(&sender, &document());
    let with_body = |outbound: &Outbound, body: Vec<u8>| post(wire(&outbound.headers), body);

    let m = fresh();
    rows.push(Row {
        name: "the body cut in half",
        request: with_body(&m, m.body[..m.body.len() / 2].to_vec()),
        expect: decryption_failed(),
    });
    let m = fresh();
    rows.push(Row {
        name: "an empty body",
        request: with_body(&m, Vec::new()),
        expect: decryption_failed(),
    });
    let m = fresh();
    rows.push(Row {
        name: "random bytes in place of the CMS structure",
        request: with_body(
            &m,
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        expect: decryption_failed(),
    });
    let m = fresh();
    rows.push(Row {
        name: "the DER cut inside the ContentInfo header",
        request: with_body(&m, der(&m)[..6].to_vec()),
        expect: decryption_failed(),
    });
    let m = fresh();
    rows.push(Row {
        name: "the DER cut inside the recipient infos",
        request: with_body(&m, der(&m)[..120].to_vec()),
        expect: decryption_failed(),
    });
    let m = fresh();
    let cut = der(&m).len() - 40;
    rows.push(Row {
        name: "the DER cut inside the encrypted content",
        request: with_body(&m, der(&m)[..cut].to_vec()),
        expect: decryption_failed(),
    });
    let m = fresh();
    rows.push(Row {
        name: "indefinite-length nesting 50,000 deep",
        request: with_body(&m, [0x30u8, 0x80].repeat(50_000)),
        expect: decryption_failed(),
    });
    let m = fresh();
    let mut wrong_length = der(&m);
    // The outer SEQUENCE claims far more than there is.
    wrong_length[2] = 0xff;
    rows.push(Row {
        name: "a DER length beyond the body",
        request: with_body(&m, wrong_length),
        expect: decryption_failed(),
    });
    let m = fresh();
    rows.push(Row {
        name: "Content-Transfer-Encoding: base64 over bytes that are not base64",
        request: post(
            with_header(&m.headers, "Content-Transfer-Encoding", Some("base64")),
            b"%%%% not base64 !!!! \x00\x01".to_vec(),
        ),
        expect: decryption_failed(),
    });
    let m = fresh();
    rows.push(Row {
        name: "no Content-Type",
        request: post(
            with_header(&m.headers, "Content-Type", None),
            m.body.clone(),
        ),
        expect: mdn(Disposition::error("insufficient-message-security")),
    });
    let m = fresh();
    rows.push(Row {
        name: "Content-Type text/plain on an encrypted body",
        request: post(
            with_header(&m.headers, "Content-Type", Some("text/plain")),
            m.body.clone(),
        ),
        expect: mdn(Disposition::error("insufficient-message-security")),
    });
    let m = fresh();
    rows.push(Row {
        name: "a CMS structure that is neither encrypted nor compressed (id-data)",
        request: with_body(&m, {
            use der::Encode;
            cms::content_info::ContentInfo {
                content_type: der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1"),
                content: der::Any::encode_from(
                    &der::asn1::OctetString::new(b"hello".to_vec()).unwrap(),
                )
                .unwrap(),
            }
            .to_der()
            .unwrap()
        }),
        expect: mdn(Disposition::failure("unsupported format")),
    });
    let to_intruder = variant(&|v| {
        v["partner"]["certificate"] = intruder.certificate_pem.clone().into();
    });
    let m = build(&to_intruder, &document());
    rows.push(Row {
        name: "encrypted for another certificate",
        request: with_body(&m, m.body.clone()),
        expect: decryption_failed(),
    });
    let m = fresh();
    rows.push(Row {
        name: "an RSA key transport blob of the wrong size",
        request: with_body(&m, with_encrypted_key(&der(&m), vec![0x5a; 100])),
        expect: decryption_failed(),
    });
    let m = fresh();
    rows.push(Row {
        name: "an RSA key transport blob of the right size but not ours",
        request: with_body(&m, with_encrypted_key(&der(&m), vec![0x5a; 256])),
        expect: decryption_failed(),
    });
    let mut m = fresh();
    let last = m.body.len() - 17;
    m.body[last] ^= 0x55;
    rows.push(Row {
        name: "AES-CBC ciphertext altered (bad padding)",
        request: with_body(&m, m.body.clone()),
        expect: decryption_failed(),
    });
    let gcm = variant(&|v| v["partner"]["encryption"] = "aes256-gcm".into());
    let mut m = build(&gcm, &document());
    let last = m.body.len() - 1;
    m.body[last] ^= 0x01;
    rows.push(Row {
        name: "an AES-GCM tag mismatch",
        request: with_body(&m, m.body.clone()),
        expect: decryption_failed(),
    });
    let m = message::build(&sender, &document(), &intruder.key, now, &provider).unwrap();
    rows.push(Row {
        name: "signed by a certificate with the partner's subject but another key",
        request: with_body(&m, m.body.clone()),
        expect: mdn(Disposition::error("authentication-failed")),
    });
    let unsigned = variant(&|v| v["partner"]["signing"] = "none".into());
    let m = build(&unsigned, &document());
    rows.push(Row {
        name: "unsigned where signing is required",
        request: with_body(&m, m.body.clone()),
        expect: mdn(Disposition::error("insufficient-message-security")),
    });
    let plain = variant(&|v| v["partner"]["encryption"] = "none".into());
    let m = build(&plain, &document());
    rows.push(Row {
        name: "unencrypted where encryption is required",
        request: with_body(&m, m.body.clone()),
        expect: mdn(Disposition::error("insufficient-message-security")),
    });
    let signed_only = variant(&|v| v["partner"]["encryption"] = "none".into());
    let m = build(&signed_only, &document());
    let tampered: Vec<u8> = String::from_utf8_lossy(&m.body)
        .replacen("PO-1", "PO-9", 1)
        .into_bytes();
    rows.push(Row {
        name: "signed content altered after signing (and unencrypted)",
        request: with_body(&m, tampered),
        expect: mdn(Disposition::error("integrity-check-failed")),
    });
    let m = fresh();
    rows.push(Row {
        name: "only an unsupported MIC algorithm asked for",
        request: post(
            with_header(
                &m.headers,
                "Disposition-Notification-Options",
                Some("signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, md5"),
            ),
            m.body.clone(),
        ),
        expect: mdn(Disposition::failure("unsupported MIC-algorithms")),
    });
    let m = fresh();
    rows.push(Row {
        name: "a zlib bomb inside the encryption (64 MiB of zeros in 64 KiB)",
        request: with_body(&m, zlib_bomb(&pair, &provider)),
        expect: mdn(Disposition::error("decompression-failed")),
    });
    rows.push(Row {
        name: "a replayed Message-ID",
        request: with_body(&first, first.body.clone()),
        expect: mdn(Disposition::warning("duplicate-document")),
    });
    let m = fresh();
    rows.push(Row {
        name: "no Message-ID",
        request: post(with_header(&m.headers, "Message-ID", None), m.body.clone()),
        expect: Expect::Status(400, "MALFORMED_MESSAGE"),
    });
    let m = fresh();
    rows.push(Row {
        name: "a Message-ID of 10 KB",
        request: post(
            with_header(
                &m.headers,
                "Message-ID",
                Some(&format!("<{}@ACME>", "x".repeat(10_000))),
            ),
            m.body.clone(),
        ),
        expect: Expect::Status(400, "MALFORMED_MESSAGE"),
    });
    let m = fresh();
    rows.push(Row {
        name: "an asynchronous MDN asked for at a host the connection does not know",
        request: post(
            with_header(
                &m.headers,
                "Receipt-Delivery-Option",
                Some("http://169.254.169.254/latest/meta-data"),
            ),
            m.body.clone(),
        ),
        expect: Expect::Status(403, "NOT_ALLOWED"),
    });
    let forged_mdn = as2_connector::mdn::build(
        &as2_connector::mdn::MdnFields {
            reporter: "ACME",
            recipient: "GLOBEX",
            original_message_id: "<never-sent@GLOBEX>",
            message_id: "<mdn-x@ACME>",
            disposition: &Disposition::processed(),
            mic: None,
            explanation: "processed",
        },
        Some((
            acme_key.as_ref(),
            as2_connector::signed::SigningParams {
                algorithm: as2_connector::crypto::DigestAlgorithm::Sha256,
                scheme: as2_connector::crypto::SignatureScheme::RsaPkcs1v15,
                micalg: "sha-256",
                binary_signature: false,
            },
        )),
        now,
        &provider,
    )
    .unwrap();
    rows.push(Row {
        name: "an MDN for a Message-ID never sent",
        request: post(wire(&forged_mdn.headers), forged_mdn.body.clone()),
        expect: Expect::Status(404, "NOT_FOUND"),
    });

    // Signed, not encrypted, to an endpoint that allows that, so the
    // multipart/signed structure itself is what is judged.
    let signed_only_message = build(&signed_only, &document());
    let boundary = signed_only_message
        .headers
        .get("Content-Type")
        .and_then(|ct| ct.split("boundary=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let body_text = String::from_utf8_lossy(&signed_only_message.body).into_owned();
    let unclosed = body_text.replace(&format!("--{boundary}--"), "");
    rows.push(Row {
        name: "multipart/signed without its closing boundary",
        request: with_body(&signed_only_message, unclosed.into_bytes()),
        expect: mdn(Disposition::error("integrity-check-failed")),
    });
    rows.push(Row {
        name: "multipart/signed without a boundary parameter",
        request: post(
            with_header(
                &signed_only_message.headers,
                "Content-Type",
                Some("multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256"),
            ),
            signed_only_message.body.clone(),
        ),
        expect: mdn(Disposition::error("integrity-check-failed")),
    });
    let many_parts: String = (0..200)
        .map(|i| format!("--{boundary}\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"))
        .collect::<String>()
        + &format!("--{boundary}--\r\n");
    rows.push(Row {
        name: "multipart/signed with 200 parts",
        request: with_body(&signed_only_message, many_parts.into_bytes()),
        expect: mdn(Disposition::error("integrity-check-failed")),
    });
    let mut nested = b"Content-Type: text/plain\r\n\r\nx".to_vec();
    for level in 0..40 {
        let b = format!("b{level}");
        let mut next = format!("Content-Type: multipart/signed; boundary=\"{b}\"\r\n\r\n--{b}\r\n")
            .into_bytes();
        next.extend_from_slice(&nested);
        next.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
        nested = next;
    }
    let split = nested.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    rows.push(Row {
        name: "multipart/signed nested 40 deep",
        request: post(
            with_header(
                &signed_only_message.headers,
                "Content-Type",
                Some("multipart/signed; boundary=\"b39\""),
            ),
            nested[split + 4..].to_vec(),
        ),
        expect: mdn(Disposition::error("integrity-check-failed")),
    });
    rows.push(Row {
        name: "an AS2-From that is not UTF-8",
        request: Request::Raw({
            let mut bytes = b"POST /as2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAS2-From: \xff\xfeACME\r\n".to_vec();
            for (name, value) in with_header(&good.headers, "AS2-From", None) {
                bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            bytes.extend_from_slice(format!("Content-Length: {}\r\n\r\n", good.body.len()).as_bytes());
            bytes.extend_from_slice(&good.body);
            bytes
        }),
        expect: Expect::Status(404, "UNKNOWN_PARTNER"),
    });
    rows.push(Row {
        name: "a Content-Length that is not a number",
        request: Request::Raw({
            let mut bytes = b"POST /as2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: ten\r\n".to_vec();
            for (name, value) in wire(&good.headers) {
                bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            bytes.extend_from_slice(b"\r\n");
            bytes.extend_from_slice(&good.body);
            bytes
        }),
        expect: Expect::Status(400, ""),
    });
    rows.push(Row {
        name: "a method other than POST",
        request: Request::Raw(
            b"PUT /as2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        expect: Expect::Status(405, "AS2 messages are sent with POST"),
    });
    let m = fresh();
    rows.push(Row {
        name: "the partner's configured certificate has expired",
        request: Request::PostToExpired(wire(&m.headers), m.body.clone()),
        expect: Expect::Status(503, "CERT_HAS_EXPIRED"),
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
            Request::PostToExpired(headers, body) => {
                let bytes = raw_post("/as2", headers, body.len(), body);
                exchange_raw(&expired_address, &bytes).await
            }
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
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Still serving: the good message goes through, its AS2 identifiers
    // quoted as RFC 4130 §6.2 allows ("ACME" is ACME).
    let quoted: Vec<(String, String)> = wire(&good.headers)
        .into_iter()
        .map(|(name, value)| {
            if name.eq_ignore_ascii_case("AS2-From") || name.eq_ignore_ascii_case("AS2-To") {
                (name, format!("\"{value}\""))
            } else {
                (name, value)
            }
        })
        .collect();
    let (status, headers, body) = as2_tests::post(&url, &quoted, good.body.clone()).await;
    assert_eq!(status, 200);
    let mdn = as2_connector::mdn::parse(
        &headers.into_iter().collect(),
        &body,
        &sender.partner_cert,
        &provider,
    )
    .unwrap();
    assert_eq!(mdn.disposition, Disposition::processed());
    assert_eq!(count_files(&inbox), 2);
}

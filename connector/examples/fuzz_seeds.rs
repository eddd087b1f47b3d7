//! Writes seed inputs for the fuzz targets in `fuzz/`: real AS2 messages,
//! MIME entities, CMS structures and MDNs built by the engine.
//!
//! `cargo run -p as2-connector --example fuzz_seeds -- fuzz/corpus`

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use as2_connector::compress;
use as2_connector::config::Connection;
use as2_connector::crypto::rustcrypto::{RustCryptoProvider, generate_station_key};
use as2_connector::headers::Headers;
use as2_connector::message::{self, Document};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let folder = dir.join(target);
    std::fs::create_dir_all(&folder)?;
    std::fs::write(folder.join(name), bytes)
}

fn request(headers: &Headers, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    headers.write_to(&mut out);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let provider = RustCryptoProvider;
    let now = SystemTime::now();
    let day = Duration::from_secs(86400);
    let a = generate_station_key("A", now - day, day * 30)?;
    let b = generate_station_key("B", now - day, day * 30)?;
    let config = |extra: &str| {
        format!(
            r#"{{"name":"seed","station":{{"as2_id":"A","private_key":"k"}},"partner":{{"as2_id":"B","url":"http://127.0.0.1/","certificate":{}{extra}}}}}"#,
            serde_json::to_string(&b.certificate_pem).unwrap_or_default()
        )
    };
    let receiver = format!(
        r#"{{"name":"seed","station":{{"as2_id":"B","private_key":"k"}},"partner":{{"as2_id":"A","url":"http://127.0.0.1/","certificate":{},"require_signed":false,"require_encrypted":false}}}}"#,
        serde_json::to_string(&a.certificate_pem)?
    );
    let receiver = Connection::check(&receiver, now)?;
    let document = Document {
        file_name: Some("po.x12".into()),
        content_type: "application/edi-x12".into(),
        content: b"ISA*00*          *00*~\r\nST*850*0001~\r\nSE*2*0001~\r\n".to_vec(),
    };
    let variants = [
        "",
        r#","encryption":"none""#,
        r#","signing":"none""#,
        r#","encryption":"aes128-gcm""#,
        r#","compression":"before-signing""#,
        r#","compression":"after-signing","encryption":"none","encoding":"base64""#,
        r#","signature_scheme":"pss","key_transport":"rsa-oaep-sha256""#,
        r#","encryption":"none","signature_encoding":"binary""#,
    ];
    // Multipart bodies for the differential target, which splits on "XyZ".
    for (n, parts) in [
        vec![
            &b"Content-Type: text/plain\r\n\r\nhello"[..],
            &b"A: b\r\n\r\nworld\r\n"[..],
        ],
        vec![&b"\r\nno headers"[..]],
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = b"preamble\r\n".to_vec();
        as2_connector::mime::write_multipart("XyZ", &parts, &mut body);
        write(&dir, "mime_differential", &format!("multipart-{n}"), &body)?;
    }
    for (n, extra) in variants.iter().enumerate() {
        write(
            &dir,
            "config",
            &format!("connection-{n}"),
            config(extra).as_bytes(),
        )?;
        let sender = Connection::check(&config(extra), now)?;
        let outbound = message::build(&sender, &document, &a.key, now, &provider)?;
        let whole = request(&outbound.headers, &outbound.body);
        write(&dir, "receive", &format!("message-{n}"), &whole)?;
        write(&dir, "headers", &format!("message-{n}"), &whole)?;
        write(&dir, "mime", &format!("message-{n}"), &whole)?;
        if outbound.body.starts_with(&[0x30]) {
            write(&dir, "cms", &format!("message-{n}"), &outbound.body)?;
        }
        let inbound = message::receive(
            &receiver,
            &outbound.headers,
            &outbound.body,
            message::StationKeys::single(&b.key),
            &mut |_| Ok(false),
            now,
            &provider,
        )?;
        if let Some(mdn) = inbound.mdn {
            write(
                &dir,
                "mdn",
                &format!("mdn-{n}"),
                &request(&mdn.message.headers, &mdn.message.body),
            )?;
        }
    }
    write(
        &dir,
        "cms",
        "compressed",
        &compress::compress(b"Content-Type: text/plain\r\n\r\nhello", &provider)?,
    )?;
    println!("seeds written to {}", dir.display());
    Ok(())
}

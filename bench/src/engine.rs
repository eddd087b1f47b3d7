//! Our engine, natively and through the component: building a signed
//! (SHA-256), encrypted (AES-256-CBC) message, optionally compressed, and
//! parsing one (decrypt, verify, build the signed MDN).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, ensure};
use as2_connector::config::{Checked, Connection};
use as2_connector::crypto::rustcrypto::{GeneratedKey, RustCryptoProvider, generate_station_key};
use as2_connector::message::{self, Document, Outbound};
use as2_harness::connector::{Connector, Content, InboundRequest, SendDocument};
use as2_harness::demo::disposition_text;
use as2_harness::runtime::{self, Limits, Runtime, Station};
use as2_harness::secrets::MasterKey;

/// The two parties' keys: A sends, B receives.
pub struct Keys {
    pub a: GeneratedKey,
    pub b: GeneratedKey,
}

impl Keys {
    pub fn generate() -> anyhow::Result<Keys> {
        let now = SystemTime::now() - Duration::from_secs(60);
        let day = Duration::from_secs(86400);
        Ok(Keys {
            a: generate_station_key("A", now, day)?,
            b: generate_station_key("B", now, day)?,
        })
    }

    /// Writes the keys and certificates as PEM files for openssl and
    /// pyas2lib: `a.key`, `a.crt`, `b.key`, `b.crt` in `dir`.
    pub fn write_pem(&self, dir: &Path) -> anyhow::Result<()> {
        for (name, key) in [("a", &self.a), ("b", &self.b)] {
            std::fs::write(dir.join(format!("{name}.key")), &key.private_key_pem)?;
            std::fs::write(dir.join(format!("{name}.crt")), &key.certificate_pem)?;
        }
        Ok(())
    }
}

/// A's connection to B (or B's from A) as JSON.
pub fn connection_json(ours: &str, theirs: &str, url: &str, cert: &str, compress: bool) -> String {
    serde_json::json!({
        "name": format!("{ours} to {theirs}"),
        "station": { "as2_id": ours, "private_key": ours.to_lowercase() },
        "partner": {
            "as2_id": theirs,
            "url": url,
            "certificate": cert,
            "signing": "sha256",
            "encryption": "aes256-cbc",
            "compression": if compress { "before-signing" } else { "none" },
            "mdn": "signed",
        }
    })
    .to_string()
}

/// The bench payload: EDI-looking text without line breaks, so that every
/// implementation hands back exactly these bytes.
pub fn payload(size: usize) -> Vec<u8> {
    b"ISA*00*~ST*850*"
        .iter()
        .copied()
        .cycle()
        .take(size)
        .collect()
}

pub fn document(content: Vec<u8>) -> Document {
    Document {
        file_name: Some("bench.edi".into()),
        content_type: "application/edi-x12".into(),
        content,
    }
}

/// The native engine with RustCrypto in process.
pub struct Native {
    sender: Checked,
    sender_compressing: Checked,
    receiver: Checked,
}

impl Native {
    pub fn new(keys: &Keys) -> anyhow::Result<Native> {
        let check = |json: String| {
            Connection::check(&json, SystemTime::now()).map_err(|e| anyhow::anyhow!("{e:?}"))
        };
        let url = "http://127.0.0.1:9/as2";
        Ok(Native {
            sender: check(connection_json(
                "A",
                "B",
                url,
                &keys.b.certificate_pem,
                false,
            ))?,
            sender_compressing: check(connection_json(
                "A",
                "B",
                url,
                &keys.b.certificate_pem,
                true,
            ))?,
            receiver: check(connection_json(
                "B",
                "A",
                url,
                &keys.a.certificate_pem,
                false,
            ))?,
        })
    }

    pub fn build(
        &self,
        keys: &Keys,
        document: &Document,
        compress: bool,
    ) -> anyhow::Result<(Duration, Outbound)> {
        let sender = if compress {
            &self.sender_compressing
        } else {
            &self.sender
        };
        let start = Instant::now();
        let outbound = message::build(
            sender,
            document,
            &keys.a.key,
            SystemTime::now(),
            &RustCryptoProvider,
        )?;
        Ok((start.elapsed(), outbound))
    }

    pub fn parse(
        &self,
        keys: &Keys,
        outbound: &Outbound,
        expected: &[u8],
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let inbound = message::receive(
            &self.receiver,
            &outbound.headers,
            &outbound.body,
            message::StationKeys::single(&keys.b.key),
            &mut |_| Ok(false),
            SystemTime::now(),
            &RustCryptoProvider,
        )?;
        let took = start.elapsed();
        let received = inbound
            .result
            .map_err(|e| anyhow::anyhow!("not processed: {e:?}"))?;
        ensure!(inbound.mdn.is_some(), "no MDN built");
        ensure!(
            received.document.content == expected,
            "the parsed content differs from the payload"
        );
        Ok(took)
    }
}

/// Our engine inside the component in wasmtime, with the host's primitives
/// and key store: A's `build-message` builds, B's `export` takes the request
/// the native engine built.
pub struct Component {
    pub a: Connector,
    pub b: Connector,
    pub a_config: String,
    pub a_config_compressing: String,
    pub b_config: String,
}

impl Component {
    pub fn new(dir: &Path, keys: &Keys) -> anyhow::Result<Component> {
        let runtime = Arc::new(Runtime::new(
            // Kept across runs: the component compiles once per build of it.
            Some(&std::env::temp_dir().join("as2-bench-cache")),
            Limits {
                memory_bytes: 4 << 30,
                deadline: Duration::from_secs(600),
                ..Default::default()
            },
        )?);
        let open = |name: &str, key: &GeneratedKey| -> anyhow::Result<Arc<Station>> {
            let station = Station::open_with(&dir.join(name), Some(MasterKey::generate()?))?;
            station
                .keys
                .import(name, &key.private_key_pem, &key.certificate_pem)?;
            Ok(station)
        };
        let url = "http://127.0.0.1:9/as2";
        Ok(Component {
            a: Connector::new(runtime.clone(), open("a", &keys.a)?),
            b: Connector::new(runtime.clone(), open("b", &keys.b)?),
            a_config: connection_json("A", "B", url, &keys.b.certificate_pem, false),
            a_config_compressing: connection_json("A", "B", url, &keys.b.certificate_pem, true),
            b_config: connection_json("B", "A", url, &keys.a.certificate_pem, false),
        })
    }

    pub fn build(&self, content: &[u8], compress: bool) -> anyhow::Result<Duration> {
        let config = if compress {
            &self.a_config_compressing
        } else {
            &self.a_config
        };
        let document = SendDocument {
            file_name: Some("bench.edi".into()),
            content_type: "application/edi-x12".into(),
            content: Content::Bytes(content.to_vec()),
        };
        let start = Instant::now();
        let built = self
            .a
            .build(config, document)
            .context("the component stopped")?
            .map_err(|e| {
                anyhow::anyhow!("build-message: {}", as2_harness::connector::describe(&e))
            })?;
        let took = start.elapsed();
        ensure!(
            built.body.len() > content.len() as u64 / 2 || compress,
            "the built message is too short"
        );
        Ok(took)
    }

    pub fn parse(&self, outbound: &Outbound, expected: &[u8]) -> anyhow::Result<Duration> {
        let headers = outbound
            .headers
            .iter()
            .map(|(name, value)| runtime::Header {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect();
        let request = InboundRequest::new(
            "POST",
            "/as2",
            headers,
            outbound.body.clone(),
            &self.b.station.data_dir.join("blobs"),
        );
        let start = Instant::now();
        let result = self
            .b
            .export(&self.b_config, &request)
            .context("the component stopped")?
            .map_err(|e| anyhow::anyhow!("export: {}", as2_harness::connector::describe(&e)))?;
        let took = start.elapsed();
        let disposition = disposition_text(&result.disposition);
        ensure!(disposition == "processed", "not processed: {disposition}");
        let received = match result.documents.first() {
            Some(delivered) => Some(delivered.content.to_vec()?),
            None => None,
        };
        ensure!(
            received.as_deref() == Some(expected),
            "the received content differs from the payload"
        );
        ensure!(!result.response.body.is_empty(), "no synchronous MDN");
        Ok(took)
    }
}

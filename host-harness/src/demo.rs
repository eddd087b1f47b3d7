//! `demo`: two AS2 stations on loopback, fresh keys, one signed and
//! encrypted X12 850 through the component each way, a signed MDN back.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::connector::Connector;
use crate::describe::{describe, describe_problem};
use crate::runtime::{Document, Limits, Runtime, Station, api};
use crate::secrets::MasterKey;
use crate::server::{self, Endpoint, Route};

// The demo's words for states and dispositions, under the names tests and
// the bench use.
pub use crate::describe::{disposition_text, state_text};

/// A small, valid X12 850 purchase order.
pub const SAMPLE_X12_850: &str = "ISA*00*          *00*          *ZZ*ACME           *ZZ*GLOBEX         *261128*0930*U*00401*000000905*0*T*>~\n\
GS*PO*ACME*GLOBEX*20261128*0930*905*X*004010~\n\
ST*850*0001~\n\
BEG*00*SA*PO-4711**20261128~\n\
N1*ST*ACME Distribution Center*92*DC01~\n\
PO1*1*120*EA*9.75**VP*WIDGET-42~\n\
PID*F****Blue widget, 42 mm~\n\
CTT*1~\n\
SE*7*0001~\n\
GE*1*905~\n\
IEA*1*000000905~\n";

/// What the demo showed.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    /// The Message-ID sent.
    pub message_id: String,
    /// The MDN's disposition, as text.
    pub disposition: String,
    /// Whether the MDN was signed and verified.
    pub mdn_signature_verified: bool,
    /// Whether the MDN's MIC equals the one computed when sending.
    pub mic_matched: bool,
    /// Whether the stored document equals the one sent, byte for byte.
    pub received_intact: bool,
}

/// The connection JSON for `station` talking to `partner`.
pub fn connection_json(
    name: &str,
    station: &str,
    key: &str,
    partner: &str,
    partner_url: &str,
    partner_cert_pem: &str,
) -> String {
    serde_json::json!({
        "name": name,
        "station": { "as2_id": station, "private_key": key },
        "partner": {
            "as2_id": partner,
            "url": partner_url,
            "certificate": partner_cert_pem,
            "signing": "sha256",
            "encryption": "aes256-cbc",
            "mdn": "signed"
        }
    })
    .to_string()
}

/// `config` with `/station/url` set to `url`: where partners post messages
/// and asynchronous MDNs.
pub fn with_station_url(config: &str, url: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(config).unwrap_or_default();
    value["station"]["url"] = serde_json::Value::String(url.to_string());
    value.to_string()
}

/// A station's AS2 endpoint on a loopback port, running until stopped.
pub struct LoopbackEndpoint {
    /// Its AS2 URL.
    pub url: String,
    /// Where it stores what it receives.
    pub inbox: std::path::PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl LoopbackEndpoint {
    /// Binds a loopback port; `serve` starts answering there.
    pub async fn bind() -> anyhow::Result<(tokio::net::TcpListener, String)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port")?;
        let url = format!("http://{}/as2", listener.local_addr()?);
        Ok((listener, url))
    }

    /// Serves `routes` for `connector` on `listener`.
    pub fn start(
        listener: tokio::net::TcpListener,
        url: String,
        connector: &Connector,
        routes: Vec<Route>,
    ) -> Self {
        let endpoint = Arc::new(Endpoint::new(connector.clone(), routes, 256 << 20));
        let inbox = endpoint.inbox.dir.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server::serve(listener, endpoint, async {
            let _ = stopped.await;
        }));
        LoopbackEndpoint {
            url,
            inbox,
            stop,
            server,
        }
    }

    /// Stops answering.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await?
    }
}

/// Two stations on loopback, ACME and GLOBEX, each with fresh keys, its own
/// data folder and its own AS2 endpoint: ACME sends, GLOBEX receives at
/// `url`, and ACME's endpoint takes GLOBEX's asynchronous MDNs.
pub struct TwoStations {
    /// ACME's connector (the sender).
    pub acme: Connector,
    /// GLOBEX's connector (the receiver, serving `url`).
    pub globex: Connector,
    /// ACME's connection to GLOBEX.
    pub acme_config: String,
    /// GLOBEX's connection from ACME.
    pub globex_config: String,
    /// GLOBEX's AS2 URL.
    pub url: String,
    /// ACME's AS2 URL (its `station.url`).
    pub acme_url: String,
    /// Where GLOBEX stores what it receives.
    pub inbox: std::path::PathBuf,
    endpoints: [LoopbackEndpoint; 2],
}

impl TwoStations {
    /// Creates both stations under `dir` and starts their endpoints.
    pub async fn start(
        dir: &Path,
        acme_runtime: Arc<Runtime>,
        globex_runtime: Arc<Runtime>,
    ) -> anyhow::Result<Self> {
        Self::start_with(dir, acme_runtime, globex_runtime, &serde_json::json!({})).await
    }

    /// [`TwoStations::start`] with `globex_partner`'s members set in
    /// GLOBEX's partner settings (what it requires of ACME's messages).
    pub async fn start_with(
        dir: &Path,
        acme_runtime: Arc<Runtime>,
        globex_runtime: Arc<Runtime>,
        globex_partner: &serde_json::Value,
    ) -> anyhow::Result<Self> {
        // Each station's secret store gets its own fresh master key.
        let acme = Station::open_with(&dir.join("acme"), Some(MasterKey::generate()?))?;
        let globex = Station::open_with(&dir.join("globex"), Some(MasterKey::generate()?))?;
        let year = Duration::from_secs(365 * 86400);
        let acme_cert = acme.keys.generate("acme", "ACME", year)?;
        let globex_cert = globex.keys.generate("globex", "GLOBEX", year)?;
        let (globex_listener, url) = LoopbackEndpoint::bind().await?;
        let (acme_listener, acme_url) = LoopbackEndpoint::bind().await?;
        let acme_config = with_station_url(
            &connection_json(
                "ACME to GLOBEX",
                "ACME",
                "acme",
                "GLOBEX",
                &url,
                &globex_cert,
            ),
            &acme_url,
        );
        // GLOBEX answers and never sends, so its partner URL is unused.
        let mut globex_config: serde_json::Value = serde_json::from_str(&with_station_url(
            &connection_json(
                "GLOBEX from ACME",
                "GLOBEX",
                "globex",
                "ACME",
                "http://127.0.0.1:9/",
                &acme_cert,
            ),
            &url,
        ))?;
        if let Some(settings) = globex_partner.as_object() {
            for (name, value) in settings {
                globex_config["partner"][name] = value.clone();
            }
        }
        let globex_config = globex_config.to_string();
        let acme = Connector::new(acme_runtime, acme);
        let globex = Connector::new(globex_runtime, globex);
        let globex_endpoint = LoopbackEndpoint::start(
            globex_listener,
            url.clone(),
            &globex,
            vec![Route::from_json(globex_config.clone())?],
        );
        let acme_endpoint = LoopbackEndpoint::start(
            acme_listener,
            acme_url.clone(),
            &acme,
            vec![Route::from_json(acme_config.clone())?],
        );
        Ok(TwoStations {
            inbox: globex_endpoint.inbox.clone(),
            acme,
            globex,
            acme_config,
            globex_config,
            url,
            acme_url,
            endpoints: [globex_endpoint, acme_endpoint],
        })
    }

    /// Stops both endpoints.
    pub async fn stop(self) -> anyhow::Result<()> {
        for endpoint in self.endpoints {
            endpoint.stop().await?;
        }
        Ok(())
    }
}

/// Runs the demo in `work_dir`, telling each step to `out`.
pub async fn run(work_dir: &Path, out: &mut (dyn Write + Send)) -> anyhow::Result<DemoOutcome> {
    let say = |out: &mut (dyn Write + Send), text: String| -> anyhow::Result<()> {
        writeln!(out, "{text}")?;
        out.flush()?;
        Ok(())
    };
    say(
        out,
        "AS2 connector demo: two stations on this machine, ACME sends GLOBEX a purchase order.\n"
            .into(),
    )?;

    let started = std::time::Instant::now();
    let runtime = Arc::new(
        tokio::task::spawn_blocking({
            let cache = work_dir.join("cache");
            move || Runtime::new(Some(&cache), Limits::default())
        })
        .await??,
    );
    say(
        out,
        format!(
            "1. Loaded the connector component ({} KiB) in {:.0?}.",
            crate::runtime::COMPONENT_WASM.len() / 1024,
            started.elapsed()
        ),
    )?;

    let stations = TwoStations::start(work_dir, runtime.clone(), runtime.clone()).await?;
    say(out, "2. Generated an RSA-2048 key and a self-signed certificate for each station; the keys stay in each host's key store.".into())?;
    say(
        out,
        format!("3. GLOBEX listens for AS2 messages at {}.", stations.url),
    )?;
    let (acme_connector, acme_config) = (stations.acme.clone(), stations.acme_config.clone());
    let (globex_connector, globex_config) =
        (stations.globex.clone(), stations.globex_config.clone());
    for (who, connector, config) in [
        ("ACME", &acme_connector, &acme_config),
        ("GLOBEX", &globex_connector, &globex_config),
    ] {
        let (connector, config) = (connector.clone(), config.clone());
        let problems =
            tokio::task::spawn_blocking(move || connector.validate_config(&config)).await??;
        if let Some(problem) = problems.first() {
            bail!(
                "{who}'s connection has a problem: {}",
                describe_problem(problem)
            );
        }
    }
    say(out, "4. Both connection configurations validate.".into())?;

    let document = Document {
        file_name: Some("po-4711.x12".into()),
        content_type: "application/edi-x12".into(),
        content: SAMPLE_X12_850.as_bytes().to_vec(),
    };
    say(
        out,
        format!(
            "5. ACME sends po-4711.x12 ({} bytes): signed with SHA-256, encrypted with AES-256-CBC, asking for a signed MDN.",
            document.content.len()
        ),
    )?;
    let outcomes = tokio::task::spawn_blocking({
        let (connector, config, document) = (
            acme_connector.clone(),
            acme_config.clone(),
            document.clone(),
        );
        move || connector.import(&config, &[document])
    })
    .await??;
    let outcome = match outcomes {
        Ok(mut list) if list.len() == 1 => list.remove(0),
        Ok(list) => bail!("expected one outcome, got {}", list.len()),
        Err(e) => bail!("sending failed: {}", describe(&e)),
    };
    let outcome: api::SendOutcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => bail!("sending failed: {}", describe(&e)),
    };
    let mdn = outcome.mdn.clone().context("no MDN came back")?;
    let disposition = disposition_text(&mdn.disposition);
    let verified = matches!(
        mdn.signature,
        crate::runtime::bindings::as2::connector::types::SignatureVerdict::Verified
    );
    say(
        out,
        "6. GLOBEX received it, decrypted it, verified ACME's signature and stored it; its MDN came back in the HTTP response.".to_string(),
    )?;
    say(out, format!("   Message-ID:   {}", outcome.message_id))?;
    say(
        out,
        format!(
            "   MIC sent:     {}, {}",
            outcome.mic.digest, outcome.mic.algorithm
        ),
    )?;
    if let Some(mic) = &mdn.received_mic {
        say(
            out,
            format!("   MIC returned: {}, {}", mic.digest, mic.algorithm),
        )?;
    }
    say(
        out,
        format!(
            "   MDN signature: {}",
            if verified {
                "verified with GLOBEX's certificate"
            } else {
                "NOT signed"
            }
        ),
    )?;
    say(out, format!("   Disposition:  {disposition}"))?;
    say(
        out,
        format!(
            "   MIC check:    {}",
            if outcome.mic_matched {
                "matches"
            } else {
                "DOES NOT MATCH"
            }
        ),
    )?;

    let stored = stations.inbox.join("ACME").join("po-4711.x12");
    let received_intact = std::fs::read(&stored).is_ok_and(|bytes| bytes == document.content);
    say(
        out,
        format!(
            "7. GLOBEX's copy at {} is {}.",
            stored.strip_prefix(work_dir).unwrap_or(&stored).display(),
            if received_intact {
                "identical to what ACME sent"
            } else {
                "MISSING OR DIFFERENT"
            }
        ),
    )?;

    let status = tokio::task::spawn_blocking({
        let (connector, config, id) = (
            acme_connector.clone(),
            acme_config.clone(),
            outcome.message_id.clone(),
        );
        move || connector.lookup_message(&config, &id)
    })
    .await??;
    match status {
        Ok(status) => say(
            out,
            format!(
                "8. ACME's record of the message: state {}, {} attempt(s).",
                state_text(status.state),
                status.attempts
            ),
        )?,
        Err(e) => say(
            out,
            format!("8. Looking the message up failed: {}", describe(&e)),
        )?,
    }
    stations.stop().await?;

    let outcome = DemoOutcome {
        message_id: outcome.message_id,
        disposition,
        mdn_signature_verified: verified,
        mic_matched: outcome.mic_matched,
        received_intact,
    };
    let success = outcome.disposition == "processed"
        && outcome.mic_matched
        && outcome.mdn_signature_verified
        && outcome.received_intact;
    say(
        out,
        format!(
            "\n{}",
            if success {
                "Done: the MDN says processed and the MIC matches."
            } else {
                "The demo did NOT complete as expected."
            }
        ),
    )?;
    Ok(outcome)
}

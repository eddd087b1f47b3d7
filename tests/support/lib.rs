//! Shared setup for the end-to-end tests: a runtime loaded once, stations in
//! temporary folders, and an AS2 endpoint on a loopback port.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use as2_harness::demo::TwoStations;
use as2_harness::runtime::{Document, Limits, Runtime, api};

/// A folder for one test, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty folder named after `label`.
    pub fn new(label: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("as2-test-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a temporary folder");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Marks `value` as a secret used by the tests: when `AS2_SECRET_REGISTRY`
/// names a file (CI sets it), the value is added to it, and after the whole
/// suite CI scans every log and output for it (`scripts/scan-secrets`).
/// Returns the value.
pub fn secret(value: &str) -> String {
    if let Some(path) = std::env::var_os("AS2_SECRET_REGISTRY") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("opening the secret registry");
        // One write per line, so that parallel tests do not interleave.
        file.write_all(format!("{value}\n").as_bytes())
            .expect("writing the secret registry");
    }
    value.to_string()
}

/// Registers a private key with [`secret`]: every full line of its PEM
/// body, so that a leak of any part of it is found.
pub fn secret_key(pkcs8_der: &[u8]) {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(pkcs8_der);
    for line in body.as_bytes().chunks(64).filter(|line| line.len() == 64) {
        secret(std::str::from_utf8(line).expect("base64 is ASCII"));
    }
}

/// When `AS2_TEST_LOG_DIR` names a folder (CI sets it), everything the
/// host and the component log during this test binary goes, at debug
/// level, to a file there, for the secret scan. Idempotent.
pub fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let Some(dir) = std::env::var_os("AS2_TEST_LOG_DIR") else {
            return;
        };
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("creating the test log folder");
        let path = dir.join(format!("tests-{}.log", std::process::id()));
        let file = std::fs::File::create(&path).expect("creating the test log");
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,cranelift_codegen=warn,cranelift_frontend=warn,regalloc2=warn,wasmtime=warn,wasmtime_internal_cranelift=warn,wasmtime_internal_cache=warn",
            ))
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
    });
}

/// Where compiled components are cached across test binaries.
pub fn cache_dir() -> PathBuf {
    std::env::temp_dir().join("as2-connector-test-cache")
}

/// A runtime with `limits`, the compiled component loaded from the cache.
pub fn runtime_with(limits: Limits) -> Arc<Runtime> {
    capture_logs();
    Arc::new(Runtime::new(Some(&cache_dir()), limits).expect("loading the component"))
}

/// The runtime with default limits, shared by the tests of one binary.
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| runtime_with(Limits::default()))
        .clone()
}

/// Two stations, ACME (sender) and GLOBEX (receiver, listening on loopback),
/// in a temporary folder.
pub struct Pair {
    stations: Option<TwoStations>,
    _dir: TempDir,
}

impl std::ops::Deref for Pair {
    type Target = TwoStations;
    fn deref(&self) -> &TwoStations {
        self.stations
            .as_ref()
            .expect("the stations run until the pair is dropped")
    }
}

impl Pair {
    /// ACME sends `document` to GLOBEX through the component; panics unless
    /// the send itself succeeds, and returns its outcome (MDN included).
    pub async fn send(&self, document: Document) -> api::SendOutcome {
        self.send_with(&self.acme_config, document).await
    }

    /// [`Pair::send`] over ACME's connection `config` instead of its default one.
    pub async fn send_with(&self, config: &str, document: Document) -> api::SendOutcome {
        self.try_send_with(config, document)
            .await
            .expect("the document was sent")
    }

    /// ACME sends `document` over its connection `config`; the send's own result.
    pub async fn try_send_with(
        &self,
        config: &str,
        document: Document,
    ) -> Result<api::SendOutcome, as2_harness::runtime::ConnectorError> {
        let (acme, config) = (self.acme.clone(), config.to_string());
        tokio::task::spawn_blocking(move || acme.import(&config, &[document]))
            .await
            .expect("the send task")
            .expect("the component ran")
            .expect("the configuration is valid")
            .remove(0)
    }

    /// ACME's connection `config`, checked, and the message the native engine
    /// builds from it for `document`, signed with ACME's key from its key store.
    pub fn build_natively(
        &self,
        config: &str,
        document: &as2_connector::message::Document,
    ) -> (
        as2_connector::config::Checked,
        as2_connector::message::Outbound,
    ) {
        let now = std::time::SystemTime::now();
        let key = self.acme.station.keys.get("acme").expect("ACME's key");
        let checked =
            as2_connector::config::Connection::check(config, now).expect("a valid config");
        let outbound = as2_connector::message::build(
            &checked,
            document,
            key.as_ref(),
            now,
            &as2_connector::crypto::rustcrypto::RustCryptoProvider,
        )
        .expect("the message builds");
        (checked, outbound)
    }

    /// Starts both stations: ACME on `runtime`, GLOBEX on `receiver_runtime`.
    pub async fn start(runtime: Arc<Runtime>, receiver_runtime: Arc<Runtime>) -> Pair {
        Pair::start_with(runtime, receiver_runtime, &serde_json::json!({})).await
    }

    /// [`Pair::start`] with `globex_partner`'s members set in GLOBEX's
    /// partner settings (what it requires of ACME's messages).
    pub async fn start_with(
        runtime: Arc<Runtime>,
        receiver_runtime: Arc<Runtime>,
        globex_partner: &serde_json::Value,
    ) -> Pair {
        let dir = TempDir::new("pair");
        let stations = TwoStations::start_with(&dir.0, runtime, receiver_runtime, globex_partner)
            .await
            .unwrap();
        for (station, name) in [(&stations.acme, "acme"), (&stations.globex, "globex")] {
            let (_, key) = station
                .station
                .keys
                .tls_identity(name)
                .expect("the station key");
            secret_key(key.secret_der());
        }
        Pair {
            stations: Some(stations),
            _dir: dir,
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if let (Some(stations), Ok(runtime)) =
            (self.stations.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(stations.stop());
        }
    }
}

/// POSTs raw bytes with `headers` to `url` over loopback; returns status, headers, body.
pub async fn post(
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use http_body_util::BodyExt;
    let uri: hyper::Uri = url.parse().unwrap();
    let authority = uri.authority().unwrap().to_string();
    let stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::post(uri.path()).header("host", authority);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = sender
        .send_request(
            request
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

/// A request a [`loopback_server`] received.
pub struct Received {
    /// The path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Header fields, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Received {
    /// The first header field called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a [`loopback_server`] answers: status, header fields and body, or
/// `None` to drop the connection unanswered (a network failure).
pub type Answer = Option<(u16, Vec<(String, String)>, Vec<u8>)>;

/// Serves `handler` on a loopback port for the rest of the test; returns
/// `http://127.0.0.1:PORT`.
pub async fn loopback_server<F, Fut>(handler: F) -> String
where
    F: Fn(Received) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Answer> + Send + 'static,
{
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.unwrap().to_bytes().to_vec();
                            let received = Received {
                                path: parts.uri.path().to_string(),
                                query: parts.uri.query().map(str::to_string),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(n, v)| {
                                        (n.to_string(), v.to_str().unwrap_or_default().to_string())
                                    })
                                    .collect(),
                                body,
                            };
                            let Some((status, headers, body)) = handler(received).await else {
                                return Err(std::io::Error::other("dropping the connection"));
                            };
                            let mut response = hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(body),
                            ));
                            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            for (name, value) in headers {
                                response.headers_mut().append(
                                    hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                                    hyper::header::HeaderValue::from_str(&value).unwrap(),
                                );
                            }
                            Ok(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

/// What `connector` has recorded of the message `message_id` sent over `config`.
pub async fn lookup(
    connector: &as2_harness::connector::Connector,
    config: &str,
    message_id: &str,
) -> api::MessageStatus {
    let (connector, config, id) = (
        connector.clone(),
        config.to_string(),
        message_id.to_string(),
    );
    tokio::task::spawn_blocking(move || connector.lookup_message(&config, &id))
        .await
        .expect("the lookup task")
        .expect("the component ran")
        .expect("the message is known")
}

/// The message's record once it is no longer pending (an asynchronous MDN
/// settled it), or as it stands after `within`.
pub async fn settled(
    connector: &as2_harness::connector::Connector,
    config: &str,
    message_id: &str,
    within: std::time::Duration,
) -> api::MessageStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        let status = lookup(connector, config, message_id).await;
        if !matches!(status.state, api::MessageState::Pending)
            || std::time::Instant::now() >= deadline
        {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

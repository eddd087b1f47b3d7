//! Shared setup for the end-to-end tests: a runtime loaded once, stations in
//! temporary folders, and an AS2 endpoint on a loopback port.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use as2_harness::connector::Connector;
use as2_harness::demo::connection_json;
use as2_harness::runtime::{Limits, Runtime, Station};
use as2_harness::server::{self, Endpoint, Route};

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

/// Where compiled components are cached across test binaries.
pub fn cache_dir() -> PathBuf {
    std::env::temp_dir().join("as2-connector-test-cache")
}

/// A runtime with `limits`, the compiled component loaded from the cache.
pub fn runtime_with(limits: Limits) -> Arc<Runtime> {
    Arc::new(Runtime::new(Some(&cache_dir()), limits).expect("loading the component"))
}

/// The runtime with default limits, shared by the tests of one binary.
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| runtime_with(Limits::default()))
        .clone()
}

/// Two stations, ACME (sender) and GLOBEX (receiver, listening on loopback).
pub struct Pair {
    /// Folder holding both stations.
    pub dir: TempDir,
    /// ACME's connector.
    pub acme: Connector,
    /// GLOBEX's connector.
    pub globex: Connector,
    /// ACME's connection to GLOBEX.
    pub acme_config: String,
    /// GLOBEX's connection from ACME.
    pub globex_config: String,
    /// GLOBEX's AS2 URL.
    pub url: String,
    /// GLOBEX's inbox folder.
    pub inbox: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Pair {
    /// Sets up both stations on `runtime` (GLOBEX serving on its own runtime `receiver_runtime`).
    pub async fn start(runtime: Arc<Runtime>, receiver_runtime: Arc<Runtime>) -> Pair {
        let dir = TempDir::new("pair");
        let acme_station = Station::open(&dir.0.join("acme")).unwrap();
        let globex_station = Station::open(&dir.0.join("globex")).unwrap();
        let year = Duration::from_secs(365 * 86400);
        let acme_cert = acme_station.keys.generate("acme", "ACME", year).unwrap();
        let globex_cert = globex_station
            .keys
            .generate("globex", "GLOBEX", year)
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/as2", listener.local_addr().unwrap());
        let acme_config = connection_json(
            "ACME to GLOBEX",
            "ACME",
            "acme",
            "GLOBEX",
            &url,
            &globex_cert,
        );
        let globex_config = connection_json(
            "GLOBEX from ACME",
            "GLOBEX",
            "globex",
            "ACME",
            "http://127.0.0.1:9/",
            &acme_cert,
        );
        let globex = Connector::new(receiver_runtime, globex_station.clone());
        let inbox = globex_station.data_dir.join("inbox");
        let endpoint = Arc::new(Endpoint {
            connector: globex.clone(),
            routes: vec![Route::from_json(globex_config.clone()).unwrap()],
            max_body: 256 << 20,
            inbox: inbox.clone(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::serve(listener, endpoint, async {
            let _ = stopped.await;
        }));
        Pair {
            dir,
            acme: Connector::new(runtime, acme_station),
            globex,
            acme_config,
            globex_config,
            url,
            inbox,
            stop: Some(stop),
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
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

//! Debian's Chromium driven over WebDriver (chromedriver), for the tests
//! that use a page as a person would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

use super::free_port;

/// chromedriver on a free port, stopped when dropped.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's chromium and chromedriver, when installed; with
/// `AS2_REQUIRE_BROWSER` set (`.ci/run` sets it) their absence fails the test.
pub fn browser() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    };
    match (find("chromium"), find("chromedriver")) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ if std::env::var_os("AS2_REQUIRE_BROWSER").is_some() => {
            panic!("chromium and chromedriver are missing: apt install chromium chromium-driver")
        }
        _ => {
            eprintln!(
                "skipped: chromium and chromedriver are not installed (apt install chromium chromium-driver)"
            );
            None
        }
    }
}

pub async fn start_browser(chromium: &Path, chromedriver: &Path) -> (Driver, Client) {
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver { child, port };
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000", "--disable-dev-shm-usage"],
        }
    });
    let capabilities = capabilities.as_object().unwrap().clone();
    let start = Instant::now();
    let client = loop {
        match ClientBuilder::native()
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
        {
            Ok(client) => break client,
            Err(e) if start.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver did not start a browser: {e}"),
        }
    };
    (driver, client)
}

/// Waits until the JavaScript expression `condition` is true in the page.
pub async fn wait_until(client: &Client, condition: &str, what: &str) {
    let start = Instant::now();
    loop {
        let value = client
            .execute(&format!("return !!({condition});"), vec![])
            .await
            .unwrap();
        if value == json!(true) {
            return;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let page = client
                .execute("return document.querySelector('main').innerText;", vec![])
                .await
                .unwrap_or_default();
            panic!(
                "{what}: not within 60 s; the page shows:\n{}",
                page.as_str().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the element `locator` finds.
pub async fn click(client: &Client, locator: fantoccini::Locator<'_>) {
    client.find(locator).await.unwrap().click().await.unwrap();
}

/// Puts the file at `path` into the file input `locator` finds, as a
/// person choosing it would.
pub async fn choose_file(client: &Client, locator: fantoccini::Locator<'_>, path: &str) {
    client
        .find(locator)
        .await
        .unwrap()
        .send_keys(path)
        .await
        .unwrap();
}

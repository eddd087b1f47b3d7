//! What the command-line tests share: the `as2-harness` binary run as a
//! user would, two stations (ACME sends, GLOBEX receives) in a temporary
//! folder, and processes whose output is collected as it comes.

#![allow(dead_code)]

pub mod browser;
pub mod postgres;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DOCUMENT: &[u8] = b"ISA*00*          *00*          *ZZ*ACME           *ZZ*GLOBEX         ~\nST*850*0001~\nBEG*00*SA*PO-4711**20261201~\nSE*3*0001~\n";

pub fn harness() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_as2-harness"));
    command
        .env_remove("AS2_MASTER_KEY")
        .env("RUST_LOG", "info,wasmtime=warn,cranelift_codegen=warn");
    command
}

/// Adds `value` to the secret registry when `AS2_SECRET_REGISTRY` names one
/// (CI scans every log for what it lists; see `scripts/scan-secrets`).
pub fn register_secret(value: &str) {
    if let Some(path) = std::env::var_os("AS2_SECRET_REGISTRY") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = file.write_all(format!("{value}\n").as_bytes());
        }
    }
}

/// Registers every full line of the PEM body of the private key in `path`.
pub fn register_key_file(path: &std::path::Path) {
    let pem = std::fs::read_to_string(path).unwrap();
    for line in pem.lines().filter(|line| line.len() == 64) {
        register_secret(line);
    }
}

/// A file in `AS2_TEST_LOG_DIR` (when set) that a process's output also goes to.
fn log_file() -> Option<std::fs::File> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = PathBuf::from(std::env::var_os("AS2_TEST_LOG_DIR")?);
    std::fs::create_dir_all(&dir).ok()?;
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::fs::File::create(dir.join(format!("cli-{}-{n}.log", std::process::id()))).ok()
}

/// Runs `command` to its end, its output also kept in the test log folder.
pub fn output_of(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    if let Some(mut file) = log_file() {
        use std::io::Write;
        let _ = file.write_all(&output.stdout);
        let _ = file.write_all(&output.stderr);
    }
    output
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The JSON lines a command printed on stdout (`send`, `messages`, `cem`).
pub fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `as2-harness` process whose stderr is collected as it comes.
pub struct Running {
    pub child: Child,
    stderr: Arc<Mutex<String>>,
    /// Read as it comes, so a process that prints much never blocks on a full pipe.
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Running {
    /// A process a test no longer holds is stopped, not left running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Running {
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (pipe, sink) = (child.stderr.take().unwrap(), stderr.clone());
        let mut log = log_file();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(file) = log.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(file, "{line}");
                }
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let mut pipe = child.stdout.take().unwrap();
        let stdout = Some(std::thread::spawn(move || {
            let mut all = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut all);
            all
        }));
        Running {
            child,
            stderr,
            stdout,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `needle`.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited ({status}) before {needle:?}:\n{}", self.stderr());
            }
            assert!(
                start.elapsed() < timeout,
                "no {needle:?} within {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`.
    pub fn kill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.stderr()
    }

    /// Waits for the process to end; its stdout and stderr.
    pub fn finish(mut self, timeout: Duration) -> (bool, String, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let stdout = self
                    .stdout
                    .take()
                    .map(|reader| reader.join().unwrap_or_default())
                    .unwrap_or_default();
                std::thread::sleep(Duration::from_millis(50));
                return (status.success(), stdout, self.stderr());
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("did not finish within {timeout:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// ACME sends to GLOBEX; both have data folders, keys and configurations
/// in one temporary folder.
pub struct World {
    pub dir: PathBuf,
    pub globex_port: u16,
    pub acme_port: u16,
    /// ACME's AS2 identifier, unique to the test: a stray request from
    /// another test running at the same time finds no connection here.
    pub acme_id: String,
    /// GLOBEX's AS2 identifier, unique to the test.
    pub globex_id: String,
}

impl World {
    pub fn new(name: &str, partner: serde_json::Value) -> Self {
        let dir = std::env::temp_dir().join(format!("as2-crash-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let world = World {
            dir,
            globex_port: free_port(),
            acme_port: free_port(),
            acme_id: format!("ACME-{name}"),
            globex_id: format!("GLOBEX-{name}"),
        };
        let mut certificates = Vec::new();
        for (data, cn) in [
            ("acme", world.acme_id.as_str()),
            ("globex", world.globex_id.as_str()),
        ] {
            let output = world.run(data, &["keys", "generate", data, "--common-name", cn]);
            assert!(output.status.success(), "{}", text(&output));
            certificates.push(String::from_utf8(output.stdout).unwrap());
            register_key_file(
                &world
                    .dir
                    .join(data)
                    .join("keys")
                    .join(format!("{data}.key.pem")),
            );
        }
        let mut acme_partner = serde_json::json!({
            "as2_id": world.globex_id,
            "url": format!("http://127.0.0.1:{}/as2", world.globex_port),
            "certificate": certificates[1],
            "signing": "sha256",
            "encryption": "aes256-cbc",
            "mdn": "signed",
            "send_attempts": 10,
        });
        for (key, value) in partner.as_object().unwrap() {
            acme_partner[key] = value.clone();
        }
        let acme = serde_json::json!({
            "name": "ACME to GLOBEX",
            "station": {
                "as2_id": world.acme_id,
                "private_key": "acme",
                "url": format!("http://127.0.0.1:{}/as2", world.acme_port),
            },
            "partner": acme_partner,
        });
        let globex = serde_json::json!({
            "name": "GLOBEX from ACME",
            "station": { "as2_id": world.globex_id, "private_key": "globex" },
            "partner": {
                "as2_id": world.acme_id,
                "url": "http://127.0.0.1:9/",
                "certificate": certificates[0],
            },
        });
        std::fs::write(world.dir.join("acme.json"), acme.to_string()).unwrap();
        std::fs::write(world.dir.join("globex.json"), globex.to_string()).unwrap();
        std::fs::write(world.dir.join("po-4711.x12"), DOCUMENT).unwrap();
        world
    }

    /// Rewrites the configuration file `name` with `edit`.
    pub fn edit_config(&self, name: &str, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.dir.join(name);
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut config);
        std::fs::write(&path, config.to_string()).unwrap();
    }

    pub fn command(&self, data: &str, args: &[&str]) -> Command {
        let mut command = harness();
        command
            .current_dir(&self.dir)
            .args(["--data-dir", data])
            .args(args);
        command
    }

    pub fn run(&self, data: &str, args: &[&str]) -> Output {
        output_of(&mut self.command(data, args))
    }

    /// `serve` for a station, stopping at `pause` when given; returns once it listens.
    pub fn serve(&self, data: &str, pause: Option<&str>) -> Running {
        let port = match data {
            "globex" => self.globex_port,
            _ => self.acme_port,
        };
        self.serve_with(data, &[], port, pause)
    }

    /// `serve` for a station on `port`, with global `options` before the
    /// verb (`--state-url URL`), stopping at `pause` when given; returns
    /// once it listens.
    pub fn serve_with(
        &self,
        data: &str,
        options: &[&str],
        port: u16,
        pause: Option<&str>,
    ) -> Running {
        let config = match data {
            "globex" => "globex.json",
            _ => "acme.json",
        };
        let listen = format!("127.0.0.1:{port}");
        let mut args = options.to_vec();
        args.extend([
            "serve",
            config,
            "--listen",
            &listen,
            "--resume-every-secs",
            "1",
        ]);
        let mut command = self.command(data, &args);
        if let Some(point) = pause {
            command.env("AS2_HARNESS_PAUSE_AT", point);
        }
        let mut running = Running::spawn(command);
        running.wait_for("receiving for", Duration::from_secs(120));
        running
    }

    pub fn send(&self) -> Running {
        Running::spawn(self.command("acme", &["send", "acme.json", "po-4711.x12"]))
    }

    /// The files GLOBEX has received from ACME.
    pub fn delivered(&self) -> Vec<PathBuf> {
        let inbox = self.dir.join("globex/inbox").join(&self.acme_id);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&inbox)
            .map(|entries| entries.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    pub fn assert_delivered_once(&self) {
        let files = self.delivered();
        assert_eq!(files.len(), 1, "delivered exactly once: {files:?}");
        assert_eq!(std::fs::read(&files[0]).unwrap(), DOCUMENT);
        assert!(files[0].ends_with("po-4711.x12"), "{files:?}");
        let staging = self.dir.join("globex/staging");
        let left: Vec<_> = std::fs::read_dir(&staging)
            .map(|entries| entries.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "staging is cleaned up: {left:?}");
    }

    /// The one JSON line `send` printed for the file.
    pub fn sent_line(stdout: &str) -> serde_json::Value {
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{stdout}");
        lines[0].clone()
    }

    /// The message IDs of every message in the partner's store.
    pub fn messages(&self, data: &str, config: &str) -> Vec<serde_json::Value> {
        self.messages_with(&[], data, config)
    }

    /// [`World::messages`] with global options (`--state-url URL`) before the verb.
    pub fn messages_with(
        &self,
        options: &[&str],
        data: &str,
        config: &str,
    ) -> Vec<serde_json::Value> {
        let mut args = options.to_vec();
        args.extend(["messages", config]);
        let output = self.run(data, &args);
        assert!(output.status.success(), "{}", text(&output));
        json_lines(&output)
    }

    pub fn status(&self, message_id: &str) -> String {
        let output = self.run("acme", &["status", message_id, "--config", "acme.json"]);
        assert!(output.status.success(), "{}", text(&output));
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

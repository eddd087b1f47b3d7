//! End to end through the `as2-harness` binary: ACME's `send` to GLOBEX's
//! `serve`, two processes on loopback, signed and encrypted with signed
//! synchronous MDNs; and the peak resident memory of each side for one
//! large document.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

/// Two stations in `dir`, set up with the harness's own commands.
pub struct Stations {
    harness: PathBuf,
    dir: PathBuf,
    port: u16,
    memory_limit_mib: u32,
}

/// How the messages of a run are secured: signed always, then
/// unencrypted, CBC, GCM, or compressed and CBC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Signed, not encrypted.
    Plain,
    /// Signed, AES-256-CBC.
    Cbc,
    /// Signed, AES-256-GCM.
    Gcm,
    /// Compressed before signing, signed, AES-256-CBC.
    Compressed,
}

impl Profile {
    /// Every profile, in table order.
    pub const ALL: [Profile; 4] = [
        Profile::Plain,
        Profile::Cbc,
        Profile::Gcm,
        Profile::Compressed,
    ];

    /// The profile's name in a table.
    pub fn label(self) -> &'static str {
        match self {
            Profile::Plain => "signed",
            Profile::Cbc => "signed + AES-256-CBC",
            Profile::Gcm => "signed + AES-256-GCM",
            Profile::Compressed => "compressed + signed + AES-256-CBC",
        }
    }

    fn encryption(self) -> &'static str {
        match self {
            Profile::Plain => "none",
            Profile::Gcm => "aes256-gcm",
            Profile::Cbc | Profile::Compressed => "aes256-cbc",
        }
    }

    fn compression(self) -> &'static str {
        match self {
            Profile::Compressed => "before-signing",
            _ => "none",
        }
    }
}

/// What one `send` run measured.
pub struct SendRun {
    pub wall: Duration,
    /// Per-document latency from the send's `elapsed_ms`, sorted.
    pub latencies_ms: Vec<f64>,
    /// Peak resident memory of the `send` process, KiB.
    pub sender_peak_kib: u64,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Stations {
    /// Stations that send signed and CBC-encrypted messages, each process
    /// allowed 4 GiB of guest memory.
    pub fn new(harness: &Path, dir: &Path) -> anyhow::Result<Stations> {
        Stations::with(harness, dir, Profile::Cbc, 4096)
    }

    /// Stations that send as `profile` says, each call of each process
    /// allowed `memory_limit_mib` of guest memory.
    pub fn with(
        harness: &Path,
        dir: &Path,
        profile: Profile,
        memory_limit_mib: u32,
    ) -> anyhow::Result<Stations> {
        std::fs::create_dir_all(dir)?;
        let stations = Stations {
            harness: harness.to_path_buf(),
            dir: dir.to_path_buf(),
            port: free_port()?,
            memory_limit_mib,
        };
        let mut certificates = Vec::new();
        for (data, id) in [("acme", "ACME"), ("globex", "GLOBEX")] {
            let output = stations
                .command(data, &["keys", "generate", data, "--common-name", id])
                .output()?;
            ensure!(
                output.status.success(),
                "as2-harness keys generate: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            certificates.push(String::from_utf8(output.stdout)?);
        }
        let acme = serde_json::json!({
            "name": "ACME to GLOBEX",
            "station": { "as2_id": "ACME", "private_key": "acme" },
            "partner": {
                "as2_id": "GLOBEX",
                "url": format!("http://127.0.0.1:{}/as2", stations.port),
                "certificate": certificates[1],
                "signing": "sha256",
                "encryption": profile.encryption(),
                "compression": profile.compression(),
                "mdn": "signed",
            },
        });
        let globex = serde_json::json!({
            "name": "GLOBEX from ACME",
            "station": { "as2_id": "GLOBEX", "private_key": "globex" },
            "partner": {
                "as2_id": "ACME",
                "url": "http://127.0.0.1:9/",
                "certificate": certificates[0],
                "require_encrypted": profile != Profile::Plain,
            },
        });
        std::fs::write(dir.join("acme.json"), acme.to_string())?;
        std::fs::write(dir.join("globex.json"), globex.to_string())?;
        Ok(stations)
    }

    fn command(&self, data: &str, args: &[&str]) -> Command {
        let mut command = Command::new(&self.harness);
        let memory_limit = self.memory_limit_mib.to_string();
        command
            .current_dir(&self.dir)
            .args(["--data-dir", data, "--memory-limit-mib", &memory_limit])
            .args(args)
            .env("RUST_LOG", "warn");
        command
    }

    /// Starts GLOBEX's `serve`; returns once it accepts connections.
    pub fn serve(&self) -> anyhow::Result<Server> {
        let listen = format!("127.0.0.1:{}", self.port);
        let child = self
            .command(
                "globex",
                &[
                    "serve",
                    "globex.json",
                    "--listen",
                    &listen,
                    "--max-body-mib",
                    "2048",
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting as2-harness serve")?;
        let mut server = Server { child };
        let start = Instant::now();
        while std::net::TcpStream::connect(&listen).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!("as2-harness serve exited ({status}) before listening");
            }
            ensure!(
                start.elapsed() < Duration::from_secs(60),
                "serve did not listen within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// Writes `count` documents of `size` bytes and sends them at `concurrency`.
    pub fn send(&self, count: usize, size: usize, concurrency: usize) -> anyhow::Result<SendRun> {
        let config_path = self.dir.join("acme.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config_path)?)?;
        config["advanced"] = serde_json::json!({ "target_concurrency": concurrency });
        std::fs::write(&config_path, config.to_string())?;
        let folder = self.dir.join("outgoing");
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder)?;
        let mut args = vec!["send".to_string(), "acme.json".to_string()];
        for i in 0..count {
            let name = format!("po-{i:06}.x12");
            write_document(&folder.join(&name), i, size)?;
            args.push(format!("outgoing/{name}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let start = Instant::now();
        let child = self
            .command("acme", &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting as2-harness send")?;
        let (output, peak_kib) = wait_with_peak(child)?;
        let wall = start.elapsed();
        ensure!(
            output.status.success(),
            "as2-harness send failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut latencies_ms = Vec::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let outcome: serde_json::Value = serde_json::from_str(line)?;
            ensure!(
                outcome["state"] == "acknowledged",
                "not acknowledged: {outcome}"
            );
            ensure!(
                outcome["disposition"] == "processed",
                "not processed: {outcome}"
            );
            latencies_ms.push(outcome["elapsed_ms"].as_f64().unwrap_or_default());
        }
        ensure!(
            latencies_ms.len() == count,
            "{} outcomes for {count} documents",
            latencies_ms.len()
        );
        latencies_ms.sort_by(f64::total_cmp);
        Ok(SendRun {
            wall,
            latencies_ms,
            sender_peak_kib: peak_kib,
        })
    }
}

/// Writes document `i` of `size` bytes to `path`, a piece at a time: X12
/// purchase-order lines whose numbers vary, which compress about as real
/// EDI does (a few times over, not a thousand).
fn write_document(path: &Path, i: usize, size: usize) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut written = 0;
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ i as u64;
    let mut line = format!("ST*850*{i:06}~").into_bytes();
    while written < size {
        let take = line.len().min(size - written);
        out.write_all(&line[..take])?;
        written += take;
        // xorshift64: the next line's quantity, price and item number.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        line = format!(
            "PO1*{:06}*{}*EA*{}.{:02}**VP*{:08X}~\n",
            written % 1_000_000,
            state % 500 + 1,
            (state >> 12) % 1000,
            (state >> 24) % 100,
            (state >> 32) as u32,
        )
        .into_bytes();
    }
    out.flush()?;
    Ok(())
}

/// A running `serve`, killed when dropped.
pub struct Server {
    child: Child,
}

impl Server {
    /// Peak resident memory so far (VmHWM), KiB.
    pub fn peak_kib(&self) -> anyhow::Result<u64> {
        high_water_kib(self.child.id()).context("no VmHWM in /proc/PID/status")
    }
}

/// The process's resident high-water mark (VmHWM), KiB, while it runs.
fn high_water_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` and returns its output with its peak resident memory
/// (KiB): its VmHWM, read every few milliseconds while it runs. Not wait4's
/// maxrss: a child started by vfork-and-exec inherits the parent's
/// high-water mark there, and this bench has just held the document twice.
fn wait_with_peak(mut child: Child) -> anyhow::Result<(std::process::Output, u64)> {
    use std::io::Read;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let watched = child.id();
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watching = running.clone();
    let watcher = std::thread::spawn(move || {
        let mut peak = 0;
        while watching.load(std::sync::atomic::Ordering::Relaxed) {
            peak = high_water_kib(watched).unwrap_or(0).max(peak);
            std::thread::sleep(Duration::from_millis(2));
        }
        peak
    });
    let status = child.wait()?;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak_kib = watcher.join().unwrap_or(0);
    let output = std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    Ok((output, peak_kib))
}

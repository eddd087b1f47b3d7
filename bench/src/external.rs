//! The implementations we compare against: the `openssl cms` command line
//! (each step a whole process, as a script would run it) and pyas2lib
//! (timed inside one long-lived interpreter, its start-up excluded).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

/// `openssl cms` in `dir`, where the keys are (`a.key`, `a.crt`, `b.key`, `b.crt`).
pub struct OpenSsl {
    dir: PathBuf,
}

impl OpenSsl {
    pub fn new(dir: &Path) -> anyhow::Result<OpenSsl> {
        let version = Command::new("openssl")
            .arg("version")
            .output()
            .context("running `openssl version`: is the OpenSSL command line installed?")?;
        ensure!(version.status.success(), "`openssl version` failed");
        Ok(OpenSsl {
            dir: dir.to_path_buf(),
        })
    }

    pub fn version() -> String {
        Command::new("openssl")
            .arg("version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let output = Command::new("openssl")
            .current_dir(&self.dir)
            .args(args)
            .output()
            .context("running openssl")?;
        let took = start.elapsed();
        if !output.status.success() {
            bail!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(took)
    }

    /// Sign (SHA-256, detached, multipart/signed) then encrypt (AES-256-CBC,
    /// DER) the file `payload`; leaves `enc.der`.
    pub fn build(&self, payload: &str) -> anyhow::Result<Duration> {
        let sign = self.run(&[
            "cms",
            "-sign",
            "-binary",
            "-md",
            "sha256",
            "-signer",
            "a.crt",
            "-inkey",
            "a.key",
            "-in",
            payload,
            "-out",
            "signed.eml",
        ])?;
        let encrypt = self.run(&[
            "cms",
            "-encrypt",
            "-binary",
            "-aes256",
            "-in",
            "signed.eml",
            "-outform",
            "DER",
            "-out",
            "enc.der",
            "b.crt",
        ])?;
        Ok(sign + encrypt)
    }

    /// Decrypt `enc.der` then verify the signature (not the certificate
    /// chain: the certificates are self-signed); checks the content is
    /// `expected`.
    pub fn parse(&self, expected: &[u8]) -> anyhow::Result<Duration> {
        let decrypt = self.run(&[
            "cms", "-decrypt", "-binary", "-inform", "DER", "-in", "enc.der", "-recip", "b.crt",
            "-inkey", "b.key", "-out", "dec.eml",
        ])?;
        let verify = self.run(&[
            "cms",
            "-verify",
            "-binary",
            "-noverify",
            "-in",
            "dec.eml",
            "-out",
            "content.bin",
        ])?;
        let content = std::fs::read(self.dir.join("content.bin"))?;
        ensure!(
            content == expected,
            "openssl's content differs from the payload"
        );
        Ok(decrypt + verify)
    }

    /// RSA-2048 private-key operations per second by `openssl speed`.
    pub fn rsa2048_signs_per_second(seconds: u32) -> anyhow::Result<f64> {
        let output = Command::new("openssl")
            .args(["speed", "-mr", "-seconds", &seconds.to_string(), "rsa2048"])
            .output()
            .context("running openssl speed")?;
        // Machine-readable: "+F2:<count>:2048:<signs/s>:<verifies/s>".
        let text = String::from_utf8_lossy(&output.stdout);
        for line in text.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() >= 5 && fields[0] == "+F2" && fields[2] == "2048" {
                return fields[3].parse().context("openssl speed output");
            }
        }
        bail!("no rsa2048 line in openssl speed's output: {text}")
    }
}

/// pyas2lib in one Python process (`bench/pyas2lib_worker.py`).
pub struct Pyas2lib {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Pyas2lib {
    pub fn start(python: &Path, worker: &Path, keys_dir: &Path) -> anyhow::Result<Pyas2lib> {
        let mut child = Command::new(python)
            .arg(worker)
            .current_dir(keys_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", python.display()))?;
        let input = child.stdin.take().context("the worker's stdin")?;
        let output = BufReader::new(child.stdout.take().context("the worker's stdout")?);
        let mut worker = Pyas2lib {
            child,
            input,
            output,
        };
        worker.ask(serde_json::json!({
            "op": "setup", "a_key": "a.key", "a_cert": "a.crt", "b_key": "b.key", "b_cert": "b.crt"
        }))?;
        Ok(worker)
    }

    fn ask(&mut self, command: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        writeln!(self.input, "{command}")?;
        self.input.flush()?;
        let mut line = String::new();
        self.output.read_line(&mut line)?;
        ensure!(!line.is_empty(), "the pyas2lib worker ended");
        let answer: serde_json::Value = serde_json::from_str(&line)?;
        if let Some(error) = answer.get("error") {
            bail!("pyas2lib: {error}");
        }
        Ok(answer)
    }

    fn timed(&mut self, command: serde_json::Value) -> anyhow::Result<Duration> {
        let answer = self.ask(command)?;
        let seconds = answer["seconds"]
            .as_f64()
            .context("no time in the answer")?;
        Ok(Duration::from_secs_f64(seconds))
    }

    pub fn load(&mut self, file: &Path) -> anyhow::Result<()> {
        self.ask(serde_json::json!({ "op": "load", "file": file }))?;
        Ok(())
    }

    pub fn build(&mut self, compress: bool, reps: usize) -> anyhow::Result<Duration> {
        self.timed(serde_json::json!({ "op": "build", "compress": compress, "reps": reps }))
    }

    pub fn parse(&mut self, reps: usize) -> anyhow::Result<Duration> {
        self.timed(serde_json::json!({ "op": "parse", "reps": reps }))
    }
}

impl Drop for Pyas2lib {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

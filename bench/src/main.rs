//! `as2-bench`: measures, on this machine and in one run, what an AS2
//! message costs: our engine natively, the same engine through the
//! component in wasmtime with the host's primitives, `openssl cms` and
//! pyas2lib side by side; the component's per-call overhead; the host's RSA
//! private-key operation against `openssl speed`; messages per second end to
//! end over loopback; and the harness's peak memory for large documents.
//!
//! Run it with `bench/run` (it builds in release mode and prepares
//! pyas2lib); `bench/run --quick` is the seconds-long version CI runs.

mod e2e;
mod engine;
mod external;
mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

use engine::{Component, Keys, Native};
use external::{OpenSsl, Pyas2lib};
use report::{Report, format_time, median, percentile};

/// Benchmarks the AS2 connector against openssl cms and pyas2lib.
#[derive(Parser)]
#[command(version)]
struct Options {
    /// Seconds instead of minutes: small sizes, one run, few documents (for CI).
    #[arg(long)]
    quick: bool,
    /// Measured runs per cell; medians are printed.
    #[arg(long)]
    runs: Option<usize>,
    /// Payload sizes for build and parse, e.g. 1K,1M,10M,50M.
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    sizes: Option<Vec<usize>>,
    /// Document sizes for the peak-memory runs, e.g. 50M,200M,1G.
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    memory_sizes: Option<Vec<usize>>,
    /// Only the peak-memory runs (each profile at each of --memory-sizes).
    #[arg(long)]
    memory_only: bool,
    /// Documents per end-to-end run at concurrency 25 (a fifth of it at 1).
    #[arg(long)]
    documents: Option<usize>,
    /// Measure only these implementations in the build and parse table
    /// (native, component, openssl, pyas2lib).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Write every figure as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The `as2-harness` binary (default: beside this one).
    #[arg(long)]
    harness: Option<PathBuf>,
    /// A Python with pyas2lib 1.4.4 (tests/interop/setup-venv.sh makes one).
    #[arg(long, default_value = "target/interop-venv/bin/python")]
    python: PathBuf,
    /// Instead of the table, run one operation over and over in this process
    /// and print its median: OPERATION:SIZE:COUNT, e.g. component-parse:10M:20,
    /// for a profiler to watch. Operations: native-build, native-parse,
    /// component-build, component-build-compressed, component-parse, and
    /// component-call (a fresh instance and `config-ui-schema`; SIZE unused).
    #[arg(long, value_parser = parse_repeat)]
    repeat: Option<Repeat>,
}

/// One operation to repeat (`--repeat`).
#[derive(Clone, Debug)]
struct Repeat {
    operation: Operation,
    size: usize,
    count: usize,
}

/// What `--repeat` can run.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Operation {
    NativeBuild,
    NativeParse,
    ComponentBuild,
    ComponentBuildCompressed,
    ComponentParse,
    /// A fresh instance and `config-ui-schema`.
    ComponentCall,
}

/// Each operation under the name `--repeat` takes.
const OPERATIONS: [(&str, Operation); 6] = [
    ("native-build", Operation::NativeBuild),
    ("native-parse", Operation::NativeParse),
    ("component-build", Operation::ComponentBuild),
    (
        "component-build-compressed",
        Operation::ComponentBuildCompressed,
    ),
    ("component-parse", Operation::ComponentParse),
    ("component-call", Operation::ComponentCall),
];

impl Operation {
    fn name(self) -> &'static str {
        OPERATIONS
            .iter()
            .find(|(_, operation)| *operation == self)
            .map_or("?", |(name, _)| name)
    }
}

fn parse_repeat(text: &str) -> Result<Repeat, String> {
    let usage = || format!("{text:?}: expected OPERATION:SIZE:COUNT, e.g. component-parse:10M:20");
    let mut fields = text.split(':');
    let (Some(operation), Some(size), Some(count), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(usage());
    };
    let Some(&(_, operation)) = OPERATIONS.iter().find(|(name, _)| *name == operation) else {
        let names: Vec<&str> = OPERATIONS.iter().map(|(name, _)| *name).collect();
        return Err(format!("{operation:?} is not one of {}", names.join(", ")));
    };
    let count: usize = count.parse().map_err(|_| usage())?;
    if count == 0 {
        return Err(usage());
    }
    Ok(Repeat {
        operation,
        size: parse_size(size)?,
        count,
    })
}

fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let number: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 1K, 10M or 4096"))?;
    let factor = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        _ => return Err(format!("{text:?}: the unit is K, M or G")),
    };
    Ok(number * factor)
}

/// Repetitions inside one sample, so small payloads are not all timer noise.
fn reps_for(size: usize) -> usize {
    if size <= 64 << 10 { 20 } else { 1 }
}

fn main() {
    // The component column runs in this process: the harness's settings.
    as2_harness::allocator::tune();
    let options = Options::parse();
    if let Err(e) = run(&options) {
        eprintln!("as2-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run(options: &Options) -> anyhow::Result<()> {
    let quick = options.quick;
    let runs = options.runs.unwrap_or(if quick { 1 } else { 5 }).max(1);
    let sizes = options.sizes.clone().unwrap_or_else(|| {
        if quick {
            vec![1 << 10, 64 << 10]
        } else {
            vec![1 << 10, 1 << 20, 10 << 20, 50 << 20]
        }
    });
    let memory_sizes = options.memory_sizes.clone().unwrap_or_else(|| {
        if quick {
            vec![1 << 20]
        } else {
            vec![50 << 20, 200 << 20]
        }
    });
    let documents = options.documents.unwrap_or(if quick { 50 } else { 1000 });
    let harness = match &options.harness {
        Some(path) => std::env::current_dir()?.join(path),
        None => std::env::current_exe()?
            .parent()
            .context("the bench's folder")?
            .join("as2-harness"),
    };
    anyhow::ensure!(
        harness.exists(),
        "{} is missing: build it with `cargo build --release -p as2-harness` (bench/run does)",
        harness.display()
    );

    let dir = std::env::temp_dir().join(format!("as2-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = measure(
        options,
        &dir,
        &harness,
        runs,
        &sizes,
        &memory_sizes,
        documents,
    );
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    if options.repeat.is_some() {
        return Ok(());
    }
    report.print();
    if let Some(path) = &options.json {
        let mut json = serde_json::json!({
            "machine": machine(),
            "openssl": OpenSsl::version(),
            "runs": runs,
            "throughput": report.throughput_json(),
        });
        for (key, value) in &report.json {
            json[key] = value.clone();
        }
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
        eprintln!("as2-bench: figures written to {}", path.display());
    }
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

fn progress(message: &str) {
    eprintln!("as2-bench: {message}");
}

#[allow(clippy::too_many_arguments)]
fn measure(
    options: &Options,
    dir: &Path,
    harness: &Path,
    runs: usize,
    sizes: &[usize],
    memory_sizes: &[usize],
    documents: usize,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    if options.memory_only {
        progress("peak memory");
        memory(&mut report, harness, &dir.join("memory"), memory_sizes)?;
        return Ok(report);
    }
    progress("generating keys");
    let keys = Keys::generate()?;
    keys.write_pem(dir)?;
    let native = Native::new(&keys)?;
    progress("loading the component");
    let component = Component::new(dir, &keys)?;
    if let Some(repeat) = &options.repeat {
        repeat_one(repeat, &keys, &native, &component)?;
        return Ok(report);
    }
    let openssl = OpenSsl::new(dir)?;
    let wanted = |column: &str| {
        options
            .only
            .as_ref()
            .is_none_or(|only| only.iter().any(|c| column.starts_with(c.as_str())))
    };
    let mut pyas2lib = match wanted("pyas2lib") {
        true => Some(start_pyas2lib(&options.python, dir)?),
        false => None,
    };

    for &size in sizes {
        let content = engine::payload(size);
        let payload_file = format!("payload-{size}.bin");
        std::fs::write(dir.join(&payload_file), &content)?;
        if let Some(pyas2lib) = &mut pyas2lib {
            pyas2lib.load(&dir.join(&payload_file))?;
        }
        let document = engine::document(content.clone());
        let reps = reps_for(size);
        let (_, outbound) = native.build(&keys, &document, false)?;
        // One untimed round: first calls (instances, the state database) warm up.
        if wanted("component") {
            component.build(&content, false)?;
            component.parse(&outbound, &content)?;
        }
        for run in 0..runs {
            progress(&format!(
                "{}: run {} of {runs}",
                report::size_label(size),
                run + 1
            ));
            // Interleaved: each implementation once per run, in turn.
            for (order, compress, operation) in [
                (1, true, "build, compressed"),
                (0, false, "build"),
                (2, false, "parse + signed MDN"),
            ] {
                let parse = order == 2;
                let mut sample = |column: &'static str,
                                  measure: &mut dyn FnMut() -> anyhow::Result<Duration>|
                 -> anyhow::Result<()> {
                    if wanted(column) {
                        report.sample(order, operation, size, column, measure()?);
                    }
                    Ok(())
                };
                sample("native", &mut || match parse {
                    true => per_rep(reps, || native.parse(&keys, &outbound, &content)),
                    false => per_rep(reps, || Ok(native.build(&keys, &document, compress)?.0)),
                })?;
                sample("component", &mut || match parse {
                    true => per_rep(reps, || component.parse(&outbound, &content)),
                    false => per_rep(reps, || component.build(&content, compress)),
                })?;
                // This OpenSSL has no zlib: no compressed column for it.
                if !compress {
                    sample("openssl cms", &mut || match parse {
                        true => per_rep(reps.min(5), || openssl.parse(&content)),
                        false => per_rep(reps.min(5), || openssl.build(&payload_file)),
                    })?;
                }
                if let Some(pyas2lib) = &mut pyas2lib {
                    sample("pyas2lib", &mut || match parse {
                        true => pyas2lib.parse(reps),
                        false => pyas2lib.build(compress, reps),
                    })?;
                }
            }
        }
    }
    drop(pyas2lib);

    progress("component call overhead");
    overhead(&mut report, &component, runs)?;
    progress("RSA-2048 private-key operations");
    rsa(&mut report, &keys, if options.quick { 1 } else { 3 })?;
    progress("end to end over loopback");
    end_to_end(
        &mut report,
        harness,
        &dir.join("e2e"),
        documents,
        runs.min(3),
    )?;
    progress("peak memory");
    memory(&mut report, harness, &dir.join("memory"), memory_sizes)?;
    Ok(report)
}

/// `--repeat`: one operation `count` times; prints the median and the fastest.
fn repeat_one(
    repeat: &Repeat,
    keys: &Keys,
    native: &Native,
    component: &Component,
) -> anyhow::Result<()> {
    let content = engine::payload(repeat.size);
    let document = engine::document(content.clone());
    let (_, outbound) = native.build(keys, &document, false)?;
    progress(&format!(
        "{} of {}, {} times",
        repeat.operation.name(),
        report::size_label(repeat.size),
        repeat.count
    ));
    let mut samples = Vec::with_capacity(repeat.count);
    for _ in 0..repeat.count {
        samples.push(match repeat.operation {
            Operation::NativeBuild => native.build(keys, &document, false)?.0,
            Operation::NativeParse => native.parse(keys, &outbound, &content)?,
            Operation::ComponentBuild => component.build(&content, false)?,
            Operation::ComponentBuildCompressed => component.build(&content, true)?,
            Operation::ComponentParse => component.parse(&outbound, &content)?,
            Operation::ComponentCall => {
                let start = Instant::now();
                component.a.config_ui_schema()?;
                start.elapsed()
            }
        });
    }
    let fastest = samples.iter().min().copied().unwrap_or_default();
    println!(
        "{} {}: median {}, fastest {}",
        repeat.operation.name(),
        report::size_label(repeat.size),
        format_time(median(&samples)),
        format_time(fastest)
    );
    Ok(())
}

fn start_pyas2lib(python: &Path, dir: &Path) -> anyhow::Result<Pyas2lib> {
    // Absolute, but not through the venv's symbolic link: it must stay the venv's python.
    let python = std::env::current_dir()?.join(python);
    anyhow::ensure!(
        python.exists(),
        "{}: no Python there; make the venv with tests/interop/setup-venv.sh (bench/run does)",
        python.display()
    );
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("pyas2lib_worker.py");
    Pyas2lib::start(&python, &worker, dir)
}

/// Mean time of one of `reps` calls of `f`.
fn per_rep(
    reps: usize,
    mut f: impl FnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<Duration> {
    let mut total = Duration::ZERO;
    for _ in 0..reps {
        total += f()?;
    }
    Ok(total / u32::try_from(reps).unwrap_or(1))
}

/// A fresh instance from the `InstancePre` and one call: the smallest
/// export (`config-ui-schema`) and `lookup-message` (which reads the
/// state store once).
fn overhead(report: &mut Report, component: &Component, runs: usize) -> anyhow::Result<()> {
    let calls = 200;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    let cases: [(&str, &dyn Fn() -> anyhow::Result<()>); 2] = [
        ("instance + config-ui-schema", &|| {
            component.a.config_ui_schema()?;
            Ok(())
        }),
        ("instance + lookup-message", &|| {
            let _ = component
                .a
                .lookup_message(&component.a_config, "<not-sent@bench>")?;
            Ok(())
        }),
    ];
    for (name, call) in cases {
        call()?;
        let mut samples = Vec::new();
        for _ in 0..runs.max(3) {
            let start = Instant::now();
            for _ in 0..calls {
                call()?;
            }
            samples.push(start.elapsed() / calls);
        }
        let time = median(&samples);
        rows.push(vec![name.to_string(), format_time(time)]);
        json.push(serde_json::json!({ "call": name, "median_us": time.as_secs_f64() * 1e6 }));
    }
    report.section(
        "Component call overhead (per call, median)",
        &["call", "time"],
        rows,
    );
    report.json.push(("overhead".into(), json.into()));
    Ok(())
}

/// The host key store's RSA-2048 private-key operations (a PKCS#1 v1.5
/// signature, and the decryption of a content key under each key transport)
/// against `openssl speed rsa2048`'s signature.
fn rsa(report: &mut Report, keys: &Keys, seconds: u32) -> anyhow::Result<()> {
    use as2_connector::crypto::rustcrypto::RustCryptoProvider;
    use as2_connector::crypto::{
        CryptoProvider, DigestAlgorithm, KeyTransport, PrivateKey, SignatureScheme,
    };
    let (_, pkcs8) = der_pem(&keys.b.private_key_pem)?;
    let key =
        as2_harness::hostkey::HostKey::from_pkcs8_der(&pkcs8, keys.b.certificate_der.clone())?;
    let spki = key.public_key_der()?;
    let per_op = |f: &dyn Fn() -> anyhow::Result<()>| -> anyhow::Result<Duration> {
        let count = 200;
        let mut samples = Vec::new();
        for _ in 0..3 {
            let start = Instant::now();
            for _ in 0..count {
                f()?;
            }
            samples.push(start.elapsed() / count);
        }
        Ok(median(&samples))
    };
    let digest = [7u8; 32];
    let sign = per_op(&|| {
        key.sign_digest(
            SignatureScheme::RsaPkcs1v15,
            DigestAlgorithm::Sha256,
            &digest,
        )?;
        Ok(())
    })?;
    let openssl = Duration::from_secs_f64(1.0 / OpenSsl::rsa2048_signs_per_second(seconds)?);
    let mut rows = vec![vec![
        "sign (PKCS#1 v1.5, SHA-256)".to_string(),
        format_time(sign),
        format!("{:.2}×", sign.as_secs_f64() / openssl.as_secs_f64()),
    ]];
    let mut json = serde_json::json!({ "openssl_sign_us": openssl.as_secs_f64() * 1e6, "sign_us": sign.as_secs_f64() * 1e6 });
    for (name, scheme) in [
        ("decrypt (PKCS#1 v1.5)", KeyTransport::RsaPkcs1v15),
        (
            "decrypt (OAEP SHA-256)",
            KeyTransport::oaep(DigestAlgorithm::Sha256),
        ),
    ] {
        let blob = RustCryptoProvider.rsa_encrypt(&spki, scheme, &[9u8; 32])?;
        let time = per_op(&|| {
            key.decrypt_key(scheme, &blob)?;
            Ok(())
        })?;
        rows.push(vec![
            name.to_string(),
            format_time(time),
            format!("{:.2}×", time.as_secs_f64() / openssl.as_secs_f64()),
        ]);
        json[name] = (time.as_secs_f64() * 1e6).into();
    }
    report.section(
        &format!(
            "RSA-2048 private-key operations of the host key store (openssl speed rsa2048 signs in {})",
            format_time(openssl)
        ),
        &["operation", "time", "÷ openssl speed sign"],
        rows,
    );
    report.json.push(("rsa2048".into(), json));
    Ok(())
}

fn der_pem(pem: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let (label, der) = der::pem::decode_vec(pem.trim().as_bytes())
        .map_err(|e| anyhow::anyhow!("the generated key's PEM: {e}"))?;
    Ok((label.to_string(), der))
}

/// 1 KB documents, signed and encrypted, signed synchronous MDNs: `send`
/// at concurrency 1 and 25 to `serve`, alternating, `runs` times each.
fn end_to_end(
    report: &mut Report,
    harness: &Path,
    dir: &Path,
    documents: usize,
    runs: usize,
) -> anyhow::Result<()> {
    let stations = e2e::Stations::new(harness, dir)?;
    let _server = stations.serve()?;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    /// Messages/s, p50 and p99 latency (ms) of one run.
    type Sample = (f64, f64, f64);
    let mut results: Vec<(usize, usize, Vec<Sample>)> = vec![
        (1, (documents / 5).max(10), Vec::new()),
        (25, documents, Vec::new()),
    ];
    // One untimed round first: the page cache and the database warm up.
    stations.send(10, 1 << 10, 1)?;
    for _ in 0..runs {
        for (concurrency, count, samples) in &mut results {
            let run = stations.send(*count, 1 << 10, *concurrency)?;
            samples.push((
                *count as f64 / run.wall.as_secs_f64(),
                percentile(&run.latencies_ms, 50.0),
                percentile(&run.latencies_ms, 99.0),
            ));
        }
    }
    for (concurrency, count, samples) in results {
        let mid = |pick: fn(&Sample) -> f64| {
            let mut values: Vec<f64> = samples.iter().map(pick).collect();
            values.sort_by(f64::total_cmp);
            percentile(&values, 50.0)
        };
        let (rate, p50, p99) = (mid(|s| s.0), mid(|s| s.1), mid(|s| s.2));
        rows.push(vec![
            concurrency.to_string(),
            count.to_string(),
            format!("{rate:.0}"),
            format!("{p50:.1} ms"),
            format!("{p99:.1} ms"),
        ]);
        json.push(serde_json::json!({
            "concurrency": concurrency, "documents": count, "messages_per_s": rate,
            "p50_ms": p50, "p99_ms": p99,
        }));
    }
    report.section(
        "End to end: send → serve on loopback, 1 KB signed + encrypted, signed sync MDN (medians of runs)",
        &["concurrency", "documents", "messages/s", "p50", "p99"],
        rows,
    );
    report.json.push(("end_to_end".into(), json.into()));
    Ok(())
}

/// The guest memory each call of the memory runs may use: less than the
/// smallest document, so that every size is received and sent in pieces.
const MEMORY_RUN_LIMIT_MIB: u32 = 64;

/// Peak resident memory of `send` and of `serve` for one document of each
/// size and each profile, every call capped at [`MEMORY_RUN_LIMIT_MIB`].
fn memory(report: &mut Report, harness: &Path, dir: &Path, sizes: &[usize]) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for profile in e2e::Profile::ALL {
        for &size in sizes {
            progress(&format!(
                "peak memory: {} at {}",
                profile.label(),
                report::size_label(size)
            ));
            let run_dir = dir.join(format!("{profile:?}-{size}"));
            let stations = e2e::Stations::with(harness, &run_dir, profile, MEMORY_RUN_LIMIT_MIB)?;
            let server = stations.serve()?;
            let started = std::time::Instant::now();
            let run = stations.send(1, size, 1)?;
            let wall = started.elapsed();
            let receiver_kib = server.peak_kib()?;
            drop(server);
            // A gigabyte run leaves several gigabytes of blobs behind.
            let _ = std::fs::remove_dir_all(&run_dir);
            let ratio = |kib: u64| kib as f64 * 1024.0 / size as f64;
            rows.push(vec![
                profile.label().to_string(),
                report::size_label(size),
                format!(
                    "{} MiB ({:.2}×)",
                    run.sender_peak_kib / 1024,
                    ratio(run.sender_peak_kib)
                ),
                format!("{} MiB ({:.2}×)", receiver_kib / 1024, ratio(receiver_kib)),
                format!("{:.1} s", wall.as_secs_f64()),
            ]);
            json.push(serde_json::json!({
                "profile": profile.label(), "document_bytes": size,
                "send_peak_kib": run.sender_peak_kib, "serve_peak_kib": receiver_kib,
                "wall_s": wall.as_secs_f64(), "memory_limit_mib": MEMORY_RUN_LIMIT_MIB,
            }));
        }
    }
    report.section(
        &format!(
            "Peak resident memory of the harness for one document, every call capped at {MEMORY_RUN_LIMIT_MIB} MiB (× the document size)"
        ),
        &["profile", "document", "send", "serve", "send → MDN"],
        rows,
    );
    report.json.push(("memory".into(), json.into()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_their_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("50M"), Ok(50 << 20));
        assert_eq!(parse_size("200mb"), Ok(200 << 20));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("M").is_err());
    }

    #[test]
    fn a_repeat_names_an_operation_a_size_and_a_count() {
        let repeat = parse_repeat("component-parse:10M:20").unwrap();
        assert_eq!(
            (repeat.operation, repeat.size, repeat.count),
            (Operation::ComponentParse, 10 << 20, 20)
        );
        assert!(parse_repeat("component-parse:10M").is_err());
        assert!(parse_repeat("component-parse:10M:0").is_err());
        assert!(parse_repeat("component-parse:10M:20:1").is_err());
        let unknown = parse_repeat("openssl-parse:1K:5").unwrap_err();
        assert!(unknown.contains("component-parse"), "{unknown}");
    }

    #[test]
    fn medians_and_percentiles() {
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(median(&[ms(5), ms(1), ms(3)]), ms(3));
        assert_eq!(
            median(&[ms(4), ms(1), ms(3), ms(2)]),
            Duration::from_micros(2500)
        );
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 50.0), 51.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
    }
}

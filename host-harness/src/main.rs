//! `as2-harness`: run the AS2 connector component locally.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use as2_harness::connector::{
    Connector, Content, SendDocument, describe, describe_problem, error_code, has_errors,
};
use as2_harness::describe::{direction_text, disposition_text, state_text, verdict_text};
use as2_harness::runtime::{Limits, Runtime, Station, api};
use as2_harness::server::{self, Endpoint, Route};

/// Run and test the AS2 connector WebAssembly component on this machine.
///
/// Each station keeps its keys, message state and received documents in a
/// data folder (`--data-dir`). Connection configurations are JSON files as
/// described by `as2-harness schema`.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// The station's data folder: keys/, state.sqlite, inbox/, staging/, cache/.
    #[arg(long, global = true, default_value = "as2-data", env = "AS2_DATA_DIR")]
    data_dir: PathBuf,
    /// Memory cap of one component call, in MiB.
    #[arg(long, global = true, default_value_t = 1024)]
    memory_limit_mib: usize,
    /// Deadline of one component call, in seconds (sending includes the wait
    /// for the MDN). The connector leaves a resend it could not finish
    /// within four fifths of it to `resume`; keep it well above the
    /// partners' MDN timeouts.
    #[arg(long, global = true, default_value_t = 300)]
    deadline_secs: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the JSON Schema of a connection configuration (or, with
    /// --ui, the form's JSON Forms UI schema).
    Schema {
        /// Print the UI schema: groups, order, widgets, show/hide rules.
        #[arg(long)]
        ui: bool,
    },
    /// Check a connection configuration without sending anything.
    Validate {
        /// The configuration file (JSON).
        config: PathBuf,
    },
    /// Check a configuration, the station key, and that the partner's URL answers.
    TestConnection {
        /// The configuration file (JSON).
        config: PathBuf,
    },
    /// Manage the station's private keys and certificates.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Save a connection as the form gives it: typed-in secrets move into
    /// the secret store; the saved file keeps only their names.
    Connections {
        #[command(subcommand)]
        command: ConnectionsCommand,
    },
    /// Manage passwords and tokens for partner authentication (encrypted
    /// at rest under the master key in AS2_MASTER_KEY).
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Receive AS2 messages for one or more connections on one URL.
    Serve {
        /// Configuration files of the connections to receive for.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:4080")]
        listen: String,
        /// Address to listen on for HTTPS as well (needs --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_listen: Option<String>,
        /// Key store entry whose key and certificate the HTTPS listener presents.
        #[arg(long, requires = "tls_listen")]
        tls_key: Option<String>,
        /// PEM file of intermediate CA certificates sent after the server certificate.
        #[arg(long, requires = "tls_listen")]
        tls_chain: Option<PathBuf>,
        /// PEM file of CA certificates: HTTPS clients must present a
        /// certificate issued by one of them (mutual TLS).
        #[arg(long, requires = "tls_listen")]
        tls_client_ca: Option<PathBuf>,
        /// Largest message accepted, in MiB.
        #[arg(long, default_value_t = 512)]
        max_body_mib: usize,
        /// How often to send again what the connections still owe partners
        /// (interrupted sends, overdue asynchronous MDNs), in seconds.
        #[arg(long, default_value_t = 10)]
        resume_every_secs: u64,
    },
    /// Send files to the partner; prints one JSON line per file.
    Send {
        /// The configuration file (JSON).
        config: PathBuf,
        /// The files to send.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// MIME type of the files.
        #[arg(long, default_value = "application/edi-x12")]
        content_type: String,
    },
    /// Send again what a connection still owes its partner: sends a stop
    /// interrupted, messages whose MDN is overdue (same Message-ID, same
    /// bytes). `serve` does this by itself every few seconds.
    Resume {
        /// The configuration file (JSON).
        config: PathBuf,
    },
    /// Show the state, every attempt and the MDN of a sent or received message.
    Status {
        /// The Message-ID, with or without angle brackets.
        message_id: String,
        /// The configuration file of the connection it went through.
        #[arg(long)]
        config: PathBuf,
    },
    /// List the messages sent and received through connections, newest
    /// first; prints one JSON line per message.
    Messages {
        /// Configuration files of the connections to list.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        /// Only messages with this partner (AS2 identifier).
        #[arg(long)]
        partner: Option<String>,
        /// Only this direction.
        #[arg(long, value_enum)]
        direction: Option<DirectionArg>,
        /// Only this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// Only messages from this time on: 2026-12-01, 2026-12-01T08:00:00Z, or Unix seconds.
        #[arg(long, value_parser = parse_time)]
        since: Option<u64>,
        /// Only messages before this time (same forms as --since).
        #[arg(long, value_parser = parse_time)]
        until: Option<u64>,
        /// At most this many per connection.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Two stations on loopback exchange a signed, encrypted X12 850 and a signed MDN.
    Demo {
        /// Keep the demo's keys, state and documents in this folder instead of a temporary one.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DirectionArg {
    /// Sent to the partner.
    Out,
    /// Received from the partner.
    In,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StateArg {
    Pending,
    Acknowledged,
    Failed,
    Received,
}

/// Seconds since the Unix epoch from `2026-12-01`, `2026-12-01T08:00:00Z`
/// (UTC) or a number of seconds.
fn parse_time(text: &str) -> Result<u64, String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(seconds);
    }
    let bad =
        || format!("{text:?} is not a time: give 2026-12-01, 2026-12-01T08:00:00Z or Unix seconds");
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, time.trim_end_matches('Z')),
        None => (text, "00:00:00"),
    };
    let numbers = |part: &str, sep: char| -> Result<Vec<u64>, String> {
        part.split(sep)
            .map(|n| n.parse::<u64>().map_err(|_| bad()))
            .collect()
    };
    let (ymd, hms) = (numbers(date, '-')?, numbers(time, ':')?);
    let [y, m, d] = <[u64; 3]>::try_from(ymd).map_err(|_| bad())?;
    let [hh, mm, ss] = <[u64; 3]>::try_from(hms).map_err(|_| bad())?;
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || hh > 23
        || mm > 59
        || ss > 60
    {
        return Err(bad());
    }
    // Days since the epoch of a civil (proleptic Gregorian) date.
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y / 400;
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + d - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Ok(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[derive(Subcommand)]
enum ConnectionsCommand {
    /// Read FORM, move its secrets into the secret store, write the saved
    /// configuration to OUT (never containing a secret), and validate it.
    Save {
        /// The configuration as filled in, secrets as `{"value": "…"}`.
        form: PathBuf,
        /// Where to write the saved configuration.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Store a secret; its value is read from standard input (one line), so
    /// it never appears in the shell history or the process list.
    Set {
        /// Name of the secret (used as `{"secret": "NAME"}` in a configuration).
        name: String,
    },
    /// List the stored secrets' names (never their values).
    List,
    /// Print a fresh random master key, to put into AS2_MASTER_KEY.
    NewMasterKey,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate an RSA-2048 key and a self-signed certificate.
    Generate {
        /// Name of the key in the key store (used as `station.private_key`).
        name: String,
        /// Certificate subject common name (usually your AS2 identifier).
        #[arg(long)]
        common_name: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 730)]
        days: u64,
    },
    /// Import a PKCS#8 PEM private key and its PEM certificate.
    Import {
        /// Name of the key in the key store.
        name: String,
        /// The private key file (PEM, PKCS#8).
        #[arg(long)]
        key: PathBuf,
        /// The certificate file (PEM).
        #[arg(long)]
        cert: PathBuf,
    },
    /// List the stored keys.
    List,
    /// Print a key's certificate (PEM), to give to partners.
    Show {
        /// Name of the key.
        name: String,
    },
}

fn main() -> ExitCode {
    as2_harness::allocator::tune();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn read_config(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration {}", path.display()))
}

fn connector(cli: &Cli) -> anyhow::Result<Connector> {
    let limits = Limits {
        memory_bytes: cli.memory_limit_mib << 20,
        deadline: Duration::from_secs(cli.deadline_secs),
        ..Limits::default()
    };
    let runtime = Runtime::new(Some(&cli.data_dir.join("cache")), limits)?;
    let station = Station::open(&cli.data_dir)?;
    Ok(Connector::new(Arc::new(runtime), station))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(f).await?)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Schema { ui } => {
            let (connector, ui) = (connector(&cli)?, *ui);
            let text = blocking(move || {
                if ui {
                    connector.config_ui_schema()
                } else {
                    connector.config_schema()
                }
            })
            .await??;
            // The informational "AS2 IP addresses", from where `serve` last listened.
            let text = match as2_harness::endpoint_info::EndpointInfo::load(&cli.data_dir) {
                Some(info) if !ui => info.fill_schema(&text),
                _ => text,
            };
            println!("{text}");
        }
        Command::Validate { config } => {
            let (connector, config) = (connector(&cli)?, read_config(config)?);
            let problems = blocking(move || connector.validate_config(&config)).await??;
            for problem in &problems {
                eprintln!("{}", describe_problem(problem));
            }
            if has_errors(&problems) {
                return Ok(ExitCode::FAILURE);
            }
            println!("the configuration is valid");
        }
        Command::TestConnection { config } => {
            let (connector, config) = (connector(&cli)?, read_config(config)?);
            let test = blocking(move || connector.test_connection(&config)).await??;
            for check in &test.checks {
                println!(
                    "{} {}: {}",
                    if check.passed { "ok  " } else { "FAIL" },
                    check.name,
                    check.detail
                );
            }
            println!("verdict: {}: {}", verdict_text(test.verdict), test.summary);
            if !matches!(test.verdict, api::Verdict::Ok) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Connections {
            command: ConnectionsCommand::Save { form, out },
        } => {
            let master_key = as2_harness::secrets::MasterKey::from_env()?;
            let secrets =
                as2_harness::secrets::SecretStore::open(&cli.data_dir, master_key.clone());
            let keys = as2_harness::keystore::KeyStore::open(&cli.data_dir, master_key)?;
            let (saved, names) =
                as2_harness::connections::save(&read_config(form)?, &secrets, &keys)?;
            let saved = match as2_harness::endpoint_info::EndpointInfo::load(&cli.data_dir) {
                Some(info) => {
                    let mut value: serde_json::Value = serde_json::from_str(&saved)?;
                    info.fill_config(&mut value);
                    serde_json::to_string_pretty(&value)?
                }
                None => saved,
            };
            as2_harness::files::write_durably(out, format!("{saved}\n").as_bytes())?;
            for name in &names {
                eprintln!("moved a secret into the store as {name:?}");
            }
            eprintln!("saved {}", out.display());
            let connector = connector(&cli)?;
            let problems = blocking(move || connector.validate_config(&saved)).await??;
            for problem in &problems {
                eprintln!("{}", describe_problem(problem));
            }
            if has_errors(&problems) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Secrets { command } => {
            use as2_harness::secrets::{MasterKey, SecretStore, check_name};
            match command {
                SecretsCommand::NewMasterKey => {
                    println!("{}", MasterKey::generate()?.to_base64());
                    eprintln!(
                        "keep it safe: without it the secret store cannot be read; pass it as {}",
                        as2_harness::secrets::MASTER_KEY_VARIABLE
                    );
                }
                SecretsCommand::List => {
                    let store = SecretStore::open(&cli.data_dir, None);
                    for name in store.names()? {
                        println!("{name}");
                    }
                }
                SecretsCommand::Set { name } => {
                    check_name(name)?;
                    let store = SecretStore::open(&cli.data_dir, MasterKey::from_env()?);
                    let mut value = String::new();
                    std::io::stdin().read_line(&mut value)?;
                    let value = value.trim_end_matches(['\r', '\n']);
                    if value.is_empty() {
                        bail!(
                            "no value on standard input; pipe it in: `printf %s \"$PASSWORD\" | as2-harness secrets set {name}`"
                        );
                    }
                    store.set(name, value)?;
                    eprintln!("stored secret {name:?}; refer to it as {{\"secret\": \"{name}\"}}");
                }
            }
        }
        Command::Keys { command } => {
            let master_key = as2_harness::secrets::MasterKey::from_env()?;
            if master_key.is_none()
                && matches!(
                    command,
                    KeysCommand::Generate { .. } | KeysCommand::Import { .. }
                )
            {
                eprintln!(
                    "note: {} is not set, so the private key is stored unencrypted (readable by you only); set it to store keys sealed",
                    as2_harness::secrets::MASTER_KEY_VARIABLE
                );
            }
            let keys = as2_harness::keystore::KeyStore::open(&cli.data_dir, master_key)?;
            match command {
                KeysCommand::Generate {
                    name,
                    common_name,
                    days,
                } => {
                    let cn = common_name.clone().unwrap_or_else(|| name.clone());
                    let pem = keys.generate(name, &cn, Duration::from_secs(days * 86400))?;
                    eprintln!(
                        "generated key {name:?} (RSA-2048) with a self-signed certificate for CN={cn}, valid {days} days"
                    );
                    eprintln!(
                        "give your partners this certificate (also in {}):",
                        keys.certificate_path(name).display()
                    );
                    print!("{pem}");
                }
                KeysCommand::Import { name, key, cert } => {
                    let key_pem = std::fs::read_to_string(key)
                        .with_context(|| format!("reading {}", key.display()))?;
                    let cert_pem = std::fs::read_to_string(cert)
                        .with_context(|| format!("reading {}", cert.display()))?;
                    keys.import(name, &key_pem, &cert_pem)?;
                    eprintln!("imported key {name:?}");
                }
                KeysCommand::List => {
                    for name in keys.list()? {
                        println!("{name}");
                    }
                }
                KeysCommand::Show { name } => {
                    let path = keys.certificate_path(name);
                    print!(
                        "{}",
                        std::fs::read_to_string(&path).with_context(|| format!(
                            "no certificate for key {name:?} ({})",
                            path.display()
                        ))?
                    );
                }
            }
        }
        Command::Serve {
            configs,
            listen,
            tls_listen,
            tls_key,
            tls_chain,
            tls_client_ca,
            max_body_mib,
            resume_every_secs,
        } => {
            let connector = connector(&cli)?;
            let mut routes = Vec::new();
            for path in configs {
                let route = Route::from_json(read_config(path)?)
                    .with_context(|| format!("in {}", path.display()))?;
                let (check, config) = (connector.clone(), route.config_json.clone());
                let problems = blocking(move || check.validate_config(&config)).await??;
                for problem in &problems {
                    eprintln!("{}: {}", path.display(), describe_problem(problem));
                }
                if has_errors(&problems) {
                    bail!("{}: fix the errors above first", path.display());
                }
                routes.push(route);
            }
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            let address = listener.local_addr()?;
            let tls = match (tls_listen, tls_key) {
                (Some(tls_listen), Some(tls_key)) => {
                    let read_pem = |path: &Option<PathBuf>| {
                        path.as_ref()
                            .map(|path| {
                                std::fs::read_to_string(path)
                                    .with_context(|| format!("reading {}", path.display()))
                            })
                            .transpose()
                    };
                    let acceptor = as2_harness::tls::acceptor(
                        &connector.station.keys,
                        tls_key,
                        read_pem(tls_chain)?.as_deref(),
                        read_pem(tls_client_ca)?.as_deref(),
                    )
                    .context("setting up --tls-listen (see `as2-harness keys --help`)")?;
                    let tls_listener = tokio::net::TcpListener::bind(tls_listen)
                        .await
                        .with_context(|| format!("listening on {tls_listen}"))?;
                    Some((tls_listener, acceptor))
                }
                _ => None,
            };
            let tls_address = match &tls {
                Some((tls_listener, _)) => Some(tls_listener.local_addr()?),
                None => None,
            };
            let mut listening = vec![("http", address)];
            listening.extend(tls_address.map(|address| ("https", address)));
            let info = as2_harness::endpoint_info::EndpointInfo::for_listeners(&listening);
            info.save(&cli.data_dir)?;
            eprintln!(
                "partners connect to {} (station.ip_addresses of these connections)",
                info.ip_addresses.join(", ")
            );
            for route in &routes {
                eprintln!(
                    "receiving for {} from {} at http://{address}/",
                    route.station_id, route.partner_id
                );
                if let Some(tls_address) = tls_address {
                    let client_certificates = if tls_client_ca.is_some() {
                        " (client certificate required)"
                    } else {
                        ""
                    };
                    eprintln!(
                        "receiving for {} from {} at https://{tls_address}/{client_certificates}",
                        route.station_id, route.partner_id
                    );
                }
            }
            let mut endpoint = Endpoint::new(connector, routes, max_body_mib << 20);
            endpoint.resume_every = Duration::from_secs((*resume_every_secs).max(1));
            let endpoint = Arc::new(endpoint);
            // Both listeners until Ctrl-C; either failing stops the harness.
            let http = server::serve(listener, endpoint.clone(), std::future::pending());
            let https = async {
                match tls {
                    Some((tls_listener, acceptor)) => {
                        server::serve_tls(tls_listener, acceptor, endpoint, std::future::pending())
                            .await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = http => result?,
                result = https => result.context("the HTTPS listener")?,
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Command::Send {
            config,
            files,
            content_type,
        } => {
            let (connector, config) = (connector(&cli)?, read_config(config)?);
            // What a stop interrupted goes first, under its own Message-ID.
            let (resumer, resume_config) = (connector.clone(), config.clone());
            if let Ok(Ok(outcomes)) = blocking(move || resumer.resume(&resume_config)).await? {
                for outcome in outcomes.into_iter().flatten() {
                    eprintln!(
                        "resumed {} (interrupted or overdue): {}",
                        outcome.message_id,
                        state_text(outcome.state)
                    );
                    let mut line = sent_line(None, &outcome);
                    line["resumed"] = true.into();
                    println!("{line}");
                }
            }
            // Files go out in parallel up to the connection's target
            // concurrency, each in its own call, with progress on stderr.
            let concurrency = as2_connector::config::Connection::from_json(&config)
                .map(|c| c.advanced.target_concurrency.clamp(1, 25))
                .unwrap_or(1) as usize;
            let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
            let mut tasks = tokio::task::JoinSet::new();
            for path in files.clone() {
                // Read a piece at a time as the message is built, never whole.
                std::fs::File::open(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let document = SendDocument {
                    file_name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    content_type: content_type.clone(),
                    content: Content::File(path.clone()),
                };
                let (connector, config, slots) = (connector.clone(), config.clone(), slots.clone());
                tasks.spawn(async move {
                    let _slot = slots.acquire_owned().await;
                    let started = std::time::Instant::now();
                    let outcome = blocking(move || connector.send(&config, vec![document])).await;
                    (path, outcome, started.elapsed())
                });
            }
            let (total, mut done, mut all_ok) = (files.len(), 0, true);
            while let Some(joined) = tasks.join_next().await {
                let (path, outcome, elapsed) = joined?;
                done += 1;
                let outcome = match outcome?? {
                    Ok(mut outcomes) if !outcomes.is_empty() => outcomes.remove(0),
                    Ok(_) => bail!("the connector returned no result for {}", path.display()),
                    Err(e) => Err(e),
                };
                let (line, summary) = match outcome {
                    Ok(outcome) => {
                        all_ok &= !matches!(outcome.state, api::MessageState::Failed);
                        let state = state_text(outcome.state);
                        (sent_line(Some(&path), &outcome), state.to_string())
                    }
                    Err(e) => {
                        all_ok = false;
                        (
                            serde_json::json!({
                                "file": path.display().to_string(),
                                "error": { "code": error_code(&e), "message": e.message },
                            }),
                            error_code(&e),
                        )
                    }
                };
                let mut line = line;
                // From the start of its own send to its result, MDN included.
                line["elapsed_ms"] = serde_json::json!(elapsed.as_millis() as u64);
                eprintln!("[{done}/{total}] {}: {summary}", path.display());
                println!("{line}");
            }
            if !all_ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Resume { config } => {
            let (connector, config) = (connector(&cli)?, read_config(config)?);
            let outcomes = match blocking(move || connector.resume(&config)).await?? {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    eprintln!("{}", describe(&e));
                    return Ok(ExitCode::FAILURE);
                }
            };
            if outcomes.is_empty() {
                eprintln!(
                    "nothing is owed: every message sent is settled or still in its MDN timeout"
                );
            }
            let mut all_ok = true;
            for outcome in outcomes {
                let line = match outcome {
                    Ok(outcome) => {
                        all_ok &= !matches!(outcome.state, api::MessageState::Failed);
                        sent_line(None, &outcome)
                    }
                    Err(e) => {
                        all_ok = false;
                        serde_json::json!({ "error": { "code": error_code(&e), "message": e.message } })
                    }
                };
                println!("{line}");
            }
            if !all_ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Status { message_id, config } => {
            let (connector, config) = (connector(&cli)?, read_config(config)?);
            let id = if message_id.starts_with('<') {
                message_id.clone()
            } else {
                format!("<{message_id}>")
            };
            let inbox = as2_harness::inbox::Inbox::new(connector.station.clone());
            match blocking(move || connector.lookup_message(&config, &id)).await?? {
                Ok(status) => print_status(&status, &inbox),
                Err(e) => {
                    eprintln!("{}", describe(&e));
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Command::Messages {
            configs,
            partner,
            direction,
            state,
            since,
            until,
            limit,
        } => {
            let connector = connector(&cli)?;
            let inbox = as2_harness::inbox::Inbox::new(connector.station.clone());
            let filter = api::MessageFilter {
                direction: direction.map(|d| match d {
                    DirectionArg::Out => api::Direction::Outbound,
                    DirectionArg::In => api::Direction::Inbound,
                }),
                state: state.map(|s| match s {
                    StateArg::Pending => api::MessageState::Pending,
                    StateArg::Acknowledged => api::MessageState::Acknowledged,
                    StateArg::Failed => api::MessageState::Failed,
                    StateArg::Received => api::MessageState::Received,
                }),
                since: *since,
                until: *until,
                limit: *limit,
            };
            for path in configs {
                let config = read_config(path)?;
                let connection = as2_connector::config::Connection::from_json(&config)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                if partner
                    .as_ref()
                    .is_some_and(|p| *p != connection.partner.as2_id)
                {
                    continue;
                }
                let call = connector.clone();
                let statuses =
                    match blocking(move || call.list_messages(&config, &filter)).await?? {
                        Ok(statuses) => statuses,
                        Err(e) => {
                            eprintln!("{}: {}", path.display(), describe(&e));
                            return Ok(ExitCode::FAILURE);
                        }
                    };
                for status in &statuses {
                    println!("{}", status_json(status, &inbox));
                }
            }
        }
        Command::Demo { keep } => {
            let (dir, temporary) = match keep {
                Some(dir) => (dir.clone(), false),
                None => (
                    std::env::temp_dir().join(format!("as2-demo-{}", std::process::id())),
                    true,
                ),
            };
            if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
                bail!(
                    "{} is not empty; pick an empty or new folder for --keep",
                    dir.display()
                );
            }
            let mut stdout = std::io::stdout();
            let outcome = as2_harness::demo::run(&dir, &mut stdout).await;
            if temporary {
                let _ = std::fs::remove_dir_all(&dir);
            }
            let outcome = outcome?;
            if !(outcome.disposition == "processed"
                && outcome.mic_matched
                && outcome.received_intact)
            {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One JSON line for a sent message's outcome (`send`, `resume`).
fn sent_line(file: Option<&Path>, outcome: &api::SendOutcome) -> serde_json::Value {
    serde_json::json!({
        "file": file.map(|path| path.display().to_string()),
        "message_id": outcome.message_id,
        "state": state_text(outcome.state),
        "attempts": outcome.attempts,
        "events": outcome.events,
        "mic": format!("{}, {}", outcome.mic.digest, outcome.mic.algorithm),
        "disposition": outcome.mdn.as_ref().map(|mdn| disposition_text(&mdn.disposition)),
        "mdn_signed": outcome.mdn.as_ref().map(|mdn| matches!(mdn.signature, as2_harness::runtime::bindings::as2::connector::types::SignatureVerdict::Verified)),
        "mic_matched": outcome.mic_matched,
        "warnings": outcome.mdn.as_ref().map(|mdn| mdn.warnings.clone()).unwrap_or_default(),
    })
}

/// A message's status as one JSON object (`messages`).
fn status_json(
    status: &api::MessageStatus,
    inbox: &as2_harness::inbox::Inbox,
) -> serde_json::Value {
    let inbound = matches!(status.direction, api::Direction::Inbound);
    serde_json::json!({
        "message_id": status.message_id,
        "direction": direction_text(status.direction),
        "partner": status.partner,
        "file_name": status.file_name,
        "created": status.created,
        "state": state_text(status.state),
        "attempts": status.attempts,
        "mic": format!("{}, {}", status.mic.digest, status.mic.algorithm),
        "mdn": status.mdn.as_ref().map(|mdn| serde_json::json!({
            "disposition": disposition_text(&mdn.disposition),
            "signature": format!("{:?}", mdn.signature).to_lowercase(),
            "received_mic": mdn.received_mic.as_ref().map(|mic| format!("{}, {}", mic.digest, mic.algorithm)),
        })),
        "answered": status.answered.as_ref().map(disposition_text),
        "stored_at": inbound.then(|| inbox.stored_path(&status.partner, &status.message_id)).flatten().map(|p| p.display().to_string()),
        "async_mdn_delivery": inbound.then(|| inbox.mdn_delivery(&status.partner, &status.message_id)).flatten(),
        "reason": status.reason,
    })
}

fn print_status(status: &api::MessageStatus, inbox: &as2_harness::inbox::Inbox) {
    let inbound = matches!(status.direction, api::Direction::Inbound);
    println!("Message-ID: {}", status.message_id);
    println!(
        "Direction:  {}",
        if inbound {
            "received from the partner"
        } else {
            "sent to the partner"
        }
    );
    println!("Partner:    {}", status.partner);
    if let Some(name) = &status.file_name {
        println!("File:       {name}");
    }
    println!("Created:    {} (Unix seconds)", status.created);
    println!("State:      {}", state_text(status.state));
    println!(
        "MIC:        {}, {}",
        status.mic.digest, status.mic.algorithm
    );
    if let Some(reason) = &status.reason {
        println!("Reason:     {reason}");
    }
    if inbound {
        if let Some(answered) = &status.answered {
            println!("Answered:   {}", disposition_text(answered));
        }
        if let Some(path) = inbox.stored_path(&status.partner, &status.message_id) {
            println!("Stored at:  {}", path.display());
        }
        if let Some(delivery) = inbox.mdn_delivery(&status.partner, &status.message_id) {
            println!(
                "Async MDN:  {} to {} after {} attempts{}",
                delivery.state,
                delivery.url,
                delivery.attempts,
                delivery
                    .last_error
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            );
        }
        return;
    }
    println!("Attempts:   {}", status.attempts);
    for attempt in &status.history {
        println!(
            "  #{} at {} (Unix seconds): {}",
            attempt.number, attempt.started, attempt.outcome
        );
    }
    match &status.mdn {
        Some(mdn) => {
            println!("MDN:        {}", disposition_text(&mdn.disposition));
            println!("  signature: {:?}", mdn.signature);
            if let Some(mic) = &mdn.received_mic {
                println!("  MIC:       {}, {}", mic.digest, mic.algorithm);
            }
            for warning in &mdn.warnings {
                println!("  warning:   {warning}");
            }
        }
        None => println!("MDN:        none yet"),
    }
}

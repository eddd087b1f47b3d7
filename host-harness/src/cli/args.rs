//! The command line: the verbs, their options and help texts (clap derive).
//! What each verb does is in the module of its group.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Run and test the AS2 connector WebAssembly component on this machine.
///
/// Each station keeps its keys, message state and received documents in a
/// data folder (`--data-dir`). Connection configurations are JSON files as
/// described by `as2-harness schema`.
#[derive(Parser)]
#[command(version, about, long_about)]
pub struct Cli {
    /// The station's data folder: keys/, state.sqlite, inbox/, staging/, connections/, cache/.
    #[arg(long, global = true, default_value = "as2-data", env = "AS2_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Where the message state lives: the data folder's SQLite file
    /// (the default), or a PostgreSQL database that several instances
    /// share (postgres://user@host:port/db; docs/operations.md).
    #[arg(long, global = true, env = "AS2_STATE_URL", value_name = "URL")]
    pub state_url: Option<String>,
    /// The secret store entry that holds the state database's password,
    /// when the URL has none.
    #[arg(
        long,
        global = true,
        env = "AS2_STATE_PASSWORD_SECRET",
        value_name = "NAME"
    )]
    pub state_password_secret: Option<String>,
    /// Memory cap of one component call, in MiB.
    #[arg(long, global = true, default_value_t = 1024)]
    pub memory_limit_mib: usize,
    /// Deadline of one component call, in seconds (sending includes the wait
    /// for the MDN). The connector leaves a resend it could not finish
    /// within four fifths of it to `resume`; keep it well above the
    /// partners' MDN timeouts.
    #[arg(long, global = true, default_value_t = 300)]
    pub deadline_secs: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Move the station's message state (docs/operations.md, "Running
    /// several instances").
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Receive AS2 messages for one or more connections on one URL.
    Serve(ServeArgs),
    /// Configure, test and use connections in a web page: the form made
    /// from the component's schema, test-connection, documents received
    /// and sent, message status. Receiving needs `serve` on the same
    /// --data-dir (or `serve --console`, which runs both).
    Console(ConsoleArgs),
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
        /// Send the files together in one AS2 message (RFC 6362), each
        /// with its own file name, when the partner reads that (it announced
        /// multiple-attachments, or partner.multiple_attachments is
        /// "always"); otherwise one message per file.
        #[arg(long)]
        one_message: bool,
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
        /// Print times in the system's time zone instead of UTC.
        #[arg(long)]
        local_time: bool,
    },
    /// List the messages sent and received through connections, newest
    /// first; prints one JSON line per message.
    Messages(MessagesArgs),
    /// Exchange certificates with a partner (EDIINT CEM): offer your next
    /// certificate, see and answer the partner's offers.
    Cem {
        #[command(subcommand)]
        command: CemCommand,
    },
    /// Run RFC 4130 §2.4.2's interoperability matrix against the partner
    /// of CONFIG (plain, signed, encrypted, both; no, unsigned and signed
    /// receipts, sync and async; compression; every encryption and digest),
    /// one small test document each, and print what it accepts and what its
    /// MDNs say, ending with the strongest profile that works.
    Conformance(ConformanceArgs),
    /// Two stations on loopback exchange a signed, encrypted X12 850 and a signed MDN.
    Demo {
        /// Keep the demo's keys, state and documents in this folder instead of a temporary one.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
}

/// The options of `conformance`.
#[derive(clap::Args)]
pub struct ConformanceArgs {
    /// The connection to the partner to test (JSON). Not needed with --against-self.
    #[arg(required_unless_present = "against_self")]
    pub config: Option<PathBuf>,
    /// Run against two stations of our own on loopback, made afresh in a
    /// temporary folder: a demonstration of the matrix.
    #[arg(long)]
    pub against_self: bool,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Seconds to wait for each MDN.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// Receive the asynchronous MDNs here during the run (the address
    /// station.url points to), when no `serve` of this data folder does.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// The options of `serve` (only its function reads them).
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Configuration files of the connections to receive for, besides
    /// the connections saved in <data-dir>/connections/ (by `console`),
    /// which are served too and followed as they change.
    pub(super) configs: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4080")]
    pub(super) listen: String,
    /// Run the web console in this process too, on this address
    /// (127.0.0.1:4090 when given without one).
    #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:4090")]
    pub(super) console: Option<String>,
    /// Largest file the console takes for sending, in MiB.
    #[arg(long, default_value_t = 100)]
    pub(super) max_upload_mib: usize,
    /// Address to listen on for HTTPS as well (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub(super) tls_listen: Option<String>,
    /// Key store entry whose key and certificate the HTTPS listener presents.
    #[arg(long, requires = "tls_listen")]
    pub(super) tls_key: Option<String>,
    /// PEM file of intermediate CA certificates sent after the server certificate.
    #[arg(long, requires = "tls_listen")]
    pub(super) tls_chain: Option<PathBuf>,
    /// PEM file of CA certificates: HTTPS clients must present a
    /// certificate issued by one of them (mutual TLS).
    #[arg(long, requires = "tls_listen")]
    pub(super) tls_client_ca: Option<PathBuf>,
    /// Largest message accepted, in MiB.
    #[arg(long, default_value_t = 512)]
    pub(super) max_body_mib: usize,
    /// How often to send again what the connections still owe partners
    /// (interrupted sends, overdue asynchronous MDNs), in seconds.
    #[arg(long, default_value_t = 10)]
    pub(super) resume_every_secs: u64,
}

/// The options of `console` (only its function reads them).
#[derive(clap::Args)]
pub struct ConsoleArgs {
    /// Address to listen on. Keep it on loopback: the console has no
    /// login of its own (docs/console.md).
    #[arg(long, default_value = "127.0.0.1:4090")]
    pub(super) listen: String,
    /// Largest file the console takes for sending, in MiB.
    #[arg(long, default_value_t = 100)]
    pub(super) max_upload_mib: usize,
}

/// The options of `messages` (only its function reads them).
#[derive(clap::Args)]
pub struct MessagesArgs {
    /// Configuration files of the connections to list.
    #[arg(required = true)]
    pub(super) configs: Vec<PathBuf>,
    /// Only messages with this partner (AS2 identifier).
    #[arg(long)]
    pub(super) partner: Option<String>,
    /// Only this direction.
    #[arg(long, value_enum)]
    pub(super) direction: Option<DirectionArg>,
    /// Only this state.
    #[arg(long, value_enum)]
    pub(super) state: Option<StateArg>,
    /// Only messages from this time on: 2026-12-01, 2026-12-01T08:00:00Z, or Unix seconds.
    #[arg(long, value_parser = parse_time)]
    pub(super) since: Option<u64>,
    /// Only messages before this time (same forms as --since).
    #[arg(long, value_parser = parse_time)]
    pub(super) until: Option<u64>,
    /// At most this many per connection.
    #[arg(long, default_value_t = 100)]
    pub(super) limit: u32,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DirectionArg {
    /// Sent to the partner.
    Out,
    /// Received from the partner.
    In,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum StateArg {
    Pending,
    Acknowledged,
    Failed,
    Received,
}

/// Seconds since the Unix epoch from `2026-12-01`, `2026-12-01T08:00:00Z`
/// (UTC) or a number of seconds.
pub fn parse_time(text: &str) -> Result<u64, String> {
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
pub enum ConnectionsCommand {
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
pub enum CemCommand {
    /// Offer the certificate of station.next_private_key to the partner in
    /// a CEM request; it answers at station.url (a running `serve`). Once it
    /// accepts, the station signs with that key from RESPOND_BY on.
    Request {
        /// The connection (JSON).
        config: PathBuf,
        /// When the new certificate takes over: RFC 3339
        /// (2027-01-15T00:00:00Z) or a number of days from now (+14).
        #[arg(long)]
        respond_by: String,
    },
    /// List the connection's certificate exchanges, both ways.
    List {
        /// The connection (JSON).
        config: PathBuf,
    },
    /// Accept the partner's CEM request: its certificate replaces
    /// partner.certificate from the request's respond-by date.
    Accept {
        /// The connection (JSON).
        config: PathBuf,
        /// The request's id, as `cem list` shows it.
        request_id: String,
    },
    /// Reject the partner's CEM request.
    Reject {
        /// The connection (JSON).
        config: PathBuf,
        /// The request's id, as `cem list` shows it.
        request_id: String,
        /// Why, for the partner.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum SecretsCommand {
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
pub enum StateCommand {
    /// Copy the data folder's SQLite state (message records, the receive
    /// journal, the MDNs owed) into an empty PostgreSQL database, then
    /// run with --state-url. Stop every process on the folder first.
    Migrate {
        /// The PostgreSQL database: postgres://user@host:port/db (its
        /// password in the URL, or in --state-password-secret).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
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

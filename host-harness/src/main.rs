//! `as2-harness`: run the AS2 connector component locally.
//!
//! This file parses the command line and hands each verb to its function
//! in [`cli`]; what a verb does is there.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, Command, ConnectionsCommand, StateCommand};

fn main() -> ExitCode {
    as2_harness::allocator::tune();
    let cli = Cli::parse();
    // The matrix's own progress lines are what to read; each message's log
    // lines would bury them (RUST_LOG=info shows them).
    let quiet = matches!(cli.command, Command::Conformance(_));
    let default_level = if quiet { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_level.into()),
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

/// The verb's function.
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Schema { ui } => cli::config::schema(&cli, *ui).await,
        Command::Validate { config } => cli::config::validate(&cli, config).await,
        Command::TestConnection { config } => cli::config::test_connection(&cli, config).await,
        Command::Connections {
            command: ConnectionsCommand::Save { form, out },
        } => cli::connections::save(&cli, form, out).await,
        Command::Secrets { command } => cli::secrets::run(&cli.data_dir, command),
        Command::Keys { command } => cli::keys::run(&cli.data_dir, command),
        Command::State {
            command: StateCommand::Migrate { to },
        } => cli::state::migrate(&cli, to),
        Command::Serve(args) => cli::serve::serve(&cli, args).await,
        Command::Console(args) => cli::console::console(&cli, args).await,
        Command::Send {
            config,
            files,
            content_type,
            one_message: false,
        } => cli::send::send(&cli, config, files, content_type).await,
        Command::Send {
            config,
            files,
            content_type,
            one_message: true,
        } => cli::send::send_together(&cli, config, files, content_type).await,
        Command::Resume { config } => cli::send::resume(&cli, config).await,
        Command::Status {
            message_id,
            config,
            local_time,
        } => cli::status::status(&cli, message_id, config, *local_time).await,
        Command::Messages(args) => cli::status::messages(&cli, args).await,
        Command::Conformance(args) => cli::conformance::conformance(&cli, args).await,
        Command::Cem { command } => cli::cem::run(&cli, command).await,
        Command::Demo { keep } => cli::demo::demo(keep.as_deref()).await,
    }
}

//! `schema`, `validate` and `test-connection`: what a connection
//! configuration may hold, whether one is valid, and whether it works.

use std::path::Path;
use std::process::ExitCode;

use as2_harness::describe::{describe_problem, verdict_text};
use as2_harness::endpoint_info::EndpointInfo;
use as2_harness::runtime::api;

use super::args::Cli;
use super::{blocking, connector, read_config, report_problems};

/// `schema [--ui]`.
pub async fn schema(cli: &Cli, ui: bool) -> anyhow::Result<ExitCode> {
    let connector = connector(cli)?;
    let text = blocking(move || {
        if ui {
            connector.config_ui_schema()
        } else {
            connector.config_schema()
        }
    })
    .await??;
    // The informational "AS2 IP addresses", from where `serve` last listened.
    let text = match EndpointInfo::load(&cli.data_dir) {
        Some(info) if !ui => info.fill_schema(&text),
        _ => text,
    };
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `validate CONFIG`.
pub async fn validate(cli: &Cli, config: &Path) -> anyhow::Result<ExitCode> {
    let (connector, config) = (connector(cli)?, read_config(config)?);
    let problems = blocking(move || connector.validate_config(&config)).await??;
    if report_problems(&problems) {
        return Ok(ExitCode::FAILURE);
    }
    println!("the configuration is valid");
    Ok(ExitCode::SUCCESS)
}

/// `test-connection CONFIG`.
pub async fn test_connection(cli: &Cli, config: &Path) -> anyhow::Result<ExitCode> {
    let (connector, config) = (connector(cli)?, read_config(config)?);
    let test = blocking(move || connector.test_connection(&config)).await??;
    for check in &test.checks {
        println!(
            "{} {}: {}",
            if check.passed { "ok  " } else { "FAIL" },
            check.name,
            check.detail
        );
    }
    for warning in &test.warnings {
        println!("warn {}", describe_problem(warning));
    }
    println!("verdict: {}: {}", verdict_text(test.verdict), test.summary);
    if !matches!(test.verdict, api::Verdict::Ok) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

//! `cem request | list | accept | reject`: certificate exchange with a
//! partner (EDIINT CEM).

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;

use as2_harness::connector::describe;
use as2_harness::describe::{sent_json, time_text};

use super::args::{CemCommand, Cli};
use super::{blocking, connector, read_config};

/// `--respond-by`: RFC 3339, or `+DAYS` from now.
fn respond_by(text: &str) -> anyhow::Result<u64> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    if let Some(days) = text.strip_prefix('+') {
        let days: u64 = days
            .parse()
            .map_err(|_| anyhow::anyhow!("--respond-by {text:?}: give +DAYS, e.g. +14"))?;
        return Ok(now + days * 86400);
    }
    match as2_connector::cem::parse_rfc3339(text) {
        Some(at) if at > now => Ok(at),
        Some(_) => bail!("--respond-by {text}: that has passed; give a date to come"),
        None => {
            bail!("--respond-by {text:?}: give an RFC 3339 date (2027-01-15T00:00:00Z) or +DAYS")
        }
    }
}

pub async fn run(cli: &Cli, command: &CemCommand) -> anyhow::Result<ExitCode> {
    let connector = connector(cli)?;
    match command {
        CemCommand::Request {
            config,
            respond_by: at,
        } => {
            let (config, at) = (read_config(config)?, respond_by(at)?);
            match blocking(move || connector.cem_request(&config, at)).await?? {
                Ok(sent) => {
                    let mut line = sent_json(None, &sent.outcome);
                    line["request_id"] = sent.request_id.clone().into();
                    line["respond_by"] = time_text(at, false).into();
                    eprintln!(
                        "CEM request {} sent; the partner answers at station.url, and the new key signs from {} once it accepts",
                        sent.request_id,
                        time_text(at, false)
                    );
                    println!("{line}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}", describe(&e));
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        CemCommand::List { config } => {
            let config = read_config(config)?;
            match blocking(move || connector.cem_list(&config)).await?? {
                Ok(exchanges) => {
                    if exchanges.is_empty() {
                        eprintln!("no certificate exchange with this partner yet");
                    }
                    for exchange in exchanges {
                        println!(
                            "{}",
                            serde_json::json!({
                                "request_id": exchange.request_id,
                                "direction": if exchange.sent { "sent" } else { "received" },
                                "certificate": exchange.certificate_subject,
                                "serial": exchange.certificate_serial,
                                "respond_by": time_text(exchange.respond_by, false),
                                "state": exchange.state,
                                "reason": exchange.reason,
                            })
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}", describe(&e));
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        CemCommand::Accept { config, request_id } => {
            answer(
                connector,
                read_config(config)?,
                request_id.clone(),
                true,
                None,
            )
            .await
        }
        CemCommand::Reject {
            config,
            request_id,
            reason,
        } => {
            let (config, reason) = (read_config(config)?, reason.clone());
            answer(connector, config, request_id.clone(), false, reason).await
        }
    }
}

async fn answer(
    connector: as2_harness::connector::Connector,
    config: String,
    request_id: String,
    accept: bool,
    reason: Option<String>,
) -> anyhow::Result<ExitCode> {
    let id = request_id.clone();
    let outcome =
        blocking(move || connector.cem_answer(&config, &id, accept, reason.as_deref())).await??;
    match outcome {
        Ok(outcome) => {
            let mut line = sent_json(None, &outcome);
            line["request_id"] = request_id.into();
            line["answer"] = if accept { "accepted" } else { "rejected" }.into();
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}", describe(&e));
            Ok(ExitCode::FAILURE)
        }
    }
}

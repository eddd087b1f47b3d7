//! `send` and `resume`: messages out to the partner, one JSON line each on
//! stdout and progress on stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use as2_harness::connector::{Connector, Content, SendDocument, describe, error_code};
use as2_harness::describe::{sent_json, state_text};
use as2_harness::runtime::{ConnectorError, api};

use super::args::Cli;
use super::{blocking, connector, read_config};

/// What one file's send came to, the time it took, MDN included.
type Sent = (
    PathBuf,
    anyhow::Result<as2_harness::connector::Outcome<Vec<Result<api::SendOutcome, ConnectorError>>>>,
    Duration,
);

/// `send CONFIG FILE… [--content-type]`.
pub async fn send(
    cli: &Cli,
    config: &Path,
    files: &[PathBuf],
    content_type: &str,
) -> anyhow::Result<ExitCode> {
    let (connector, config) = (connector(cli)?, read_config(config)?);
    resume_first(&connector, &config).await?;
    // Files go out in parallel up to the connection's target
    // concurrency, each in its own call, with progress on stderr.
    let concurrency = as2_connector::config::Connection::from_json(&config)
        .map(|c| c.advanced.target_concurrency.clamp(1, 25))
        .unwrap_or(1) as usize;
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    for path in files.iter().cloned() {
        let document = file_document(&path, content_type)?;
        let (connector, config, slots) = (connector.clone(), config.clone(), slots.clone());
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let started = Instant::now();
            let outcome = blocking(move || connector.send(&config, vec![document])).await;
            (path, outcome, started.elapsed())
        });
    }
    let all_ok = report_sent(tasks, files.len()).await?;
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `send --one-message CONFIG FILE…`: the files together in one message
/// when the partner reads several (RFC 6362), else one message each; a
/// JSON line per message sent, naming its files.
pub async fn send_together(
    cli: &Cli,
    config: &Path,
    files: &[PathBuf],
    content_type: &str,
) -> anyhow::Result<ExitCode> {
    let (connector, config) = (connector(cli)?, read_config(config)?);
    resume_first(&connector, &config).await?;
    let documents = files
        .iter()
        .map(|path| file_document(path, content_type))
        .collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!("sending {} files as one message", files.len());
    let started = Instant::now();
    let outcomes = match blocking(move || connector.send_together(&config, documents)).await?? {
        Ok(outcomes) => outcomes,
        Err(e) => {
            eprintln!("{}", describe(&e));
            return Ok(ExitCode::FAILURE);
        }
    };
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    // One outcome: the files went together; as many as files: one each.
    let labels: Vec<Vec<String>> = match outcomes.len() {
        1 => vec![names],
        _ => names.into_iter().map(|name| vec![name]).collect(),
    };
    let mut all_ok = true;
    for (outcome, files) in outcomes.into_iter().zip(labels) {
        let mut line = match outcome {
            Ok(outcome) => {
                all_ok &= !failed(&outcome);
                eprintln!("{}: {}", files.join(", "), state_text(outcome.state));
                sent_json(None, &outcome)
            }
            Err(e) => {
                all_ok = false;
                eprintln!("{}: {}", files.join(", "), error_code(&e));
                serde_json::json!({ "error": error_json(&e) })
            }
        };
        line["files"] = serde_json::json!(files);
        line["elapsed_ms"] = serde_json::json!(started.elapsed().as_millis() as u64);
        println!("{line}");
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The file at `path` as a document to send, read a piece at a time as
/// the message is built, never whole; refused now when it cannot be opened.
fn file_document(path: &Path, content_type: &str) -> anyhow::Result<SendDocument> {
    std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(SendDocument {
        file_name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
        content_type: content_type.to_string(),
        content: Content::File(path.to_path_buf()),
    })
}

/// What a stop interrupted goes first, under its own Message-ID.
async fn resume_first(connector: &Connector, config: &str) -> anyhow::Result<()> {
    let (resumer, resume_config) = (connector.clone(), config.to_string());
    if let Ok(Ok(outcomes)) = blocking(move || resumer.resume(&resume_config)).await? {
        for outcome in outcomes.into_iter().flatten() {
            eprintln!(
                "resumed {} (interrupted or overdue): {}",
                outcome.message_id,
                state_text(outcome.state)
            );
            let mut line = sent_json(None, &outcome);
            line["resumed"] = true.into();
            println!("{line}");
        }
    }
    Ok(())
}

/// Prints each file's line as its send ends; whether every one was
/// acknowledged or is still pending.
async fn report_sent(mut tasks: JoinSet<Sent>, total: usize) -> anyhow::Result<bool> {
    let (mut done, mut all_ok) = (0, true);
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
                all_ok &= !failed(&outcome);
                let state = state_text(outcome.state);
                (
                    sent_json(Some(&path.display().to_string()), &outcome),
                    state.to_string(),
                )
            }
            Err(e) => {
                all_ok = false;
                (
                    serde_json::json!({
                        "file": path.display().to_string(),
                        "error": error_json(&e),
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
    Ok(all_ok)
}

/// `resume CONFIG`.
pub async fn resume(cli: &Cli, config: &Path) -> anyhow::Result<ExitCode> {
    let (connector, config) = (connector(cli)?, read_config(config)?);
    let outcomes = match blocking(move || connector.resume(&config)).await?? {
        Ok(outcomes) => outcomes,
        Err(e) => {
            eprintln!("{}", describe(&e));
            return Ok(ExitCode::FAILURE);
        }
    };
    if outcomes.is_empty() {
        eprintln!("nothing is owed: every message sent is settled or still in its MDN timeout");
    }
    let mut all_ok = true;
    for outcome in outcomes {
        let line = match outcome {
            Ok(outcome) => {
                all_ok &= !failed(&outcome);
                sent_json(None, &outcome)
            }
            Err(e) => {
                all_ok = false;
                serde_json::json!({ "error": error_json(&e) })
            }
        };
        println!("{line}");
    }
    if !all_ok {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn failed(outcome: &api::SendOutcome) -> bool {
    matches!(outcome.state, api::MessageState::Failed)
}

/// The `error` member of a line whose send failed.
fn error_json(error: &ConnectorError) -> serde_json::Value {
    serde_json::json!({ "code": error_code(error), "message": error.message })
}

//! `status` and `messages`: where sent and received messages stand, for a
//! person (`status`) or as JSON lines (`messages`).

use std::path::Path;
use std::process::ExitCode;

use as2_harness::connector::describe;
use as2_harness::describe::{
    disposition_text, message_json, signature_text, state_text, time_text,
};
use as2_harness::inbox::Inbox;
use as2_harness::runtime::api;

use super::args::{Cli, DirectionArg, MessagesArgs, StateArg};
use super::{blocking, connector, read_config};

/// `status MESSAGE-ID --config CONFIG`.
pub async fn status(
    cli: &Cli,
    message_id: &str,
    config: &Path,
    local_time: bool,
) -> anyhow::Result<ExitCode> {
    let (connector, config) = (connector(cli)?, read_config(config)?);
    let id = if message_id.starts_with('<') {
        message_id.to_string()
    } else {
        format!("<{message_id}>")
    };
    let inbox = Inbox::new(connector.station.clone());
    match blocking(move || connector.lookup_message(&config, &id)).await?? {
        // The inbox's journal is read off the async threads, like every store call.
        Ok(status) => blocking(move || print_status(&status, &inbox, local_time)).await?,
        Err(e) => {
            eprintln!("{}", describe(&e));
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `messages CONFIG… [filters]`.
pub async fn messages(cli: &Cli, args: &MessagesArgs) -> anyhow::Result<ExitCode> {
    let connector = connector(cli)?;
    let inbox = Inbox::new(connector.station.clone());
    let filter = filter(args);
    for path in &args.configs {
        let config = read_config(path)?;
        let connection = as2_connector::config::Connection::from_json(&config)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if args
            .partner
            .as_ref()
            .is_some_and(|p| *p != connection.partner.as2_id)
        {
            continue;
        }
        let call = connector.clone();
        let statuses = match blocking(move || call.list_messages(&config, &filter)).await?? {
            Ok(statuses) => statuses,
            Err(e) => {
                eprintln!("{}: {}", path.display(), describe(&e));
                return Ok(ExitCode::FAILURE);
            }
        };
        let inbox = inbox.clone();
        blocking(move || {
            for status in &statuses {
                println!("{}", message_json(status, &inbox));
            }
        })
        .await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The component's filter from the options of `messages`.
fn filter(args: &MessagesArgs) -> api::MessageFilter {
    api::MessageFilter {
        direction: args.direction.map(|d| match d {
            DirectionArg::Out => api::Direction::Outbound,
            DirectionArg::In => api::Direction::Inbound,
        }),
        state: args.state.map(|s| match s {
            StateArg::Pending => api::MessageState::Pending,
            StateArg::Acknowledged => api::MessageState::Acknowledged,
            StateArg::Failed => api::MessageState::Failed,
            StateArg::Received => api::MessageState::Received,
        }),
        since: args.since,
        until: args.until,
        limit: args.limit,
    }
}

/// A message's status for a person (`status`).
fn print_status(status: &api::MessageStatus, inbox: &Inbox, local_time: bool) {
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
    println!("Created:    {}", time_text(status.created, local_time));
    println!("State:      {}", state_text(status.state));
    println!(
        "MIC:        {}, {}",
        status.mic.digest, status.mic.algorithm
    );
    if let Some(reason) = &status.reason {
        println!("Reason:     {reason}");
    }
    if inbound {
        print_received(status, inbox);
    } else {
        print_sent(status, local_time);
    }
}

/// What became of a received message: its MDN, where it was stored.
fn print_received(status: &api::MessageStatus, inbox: &Inbox) {
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
}

/// A sent message's attempts and the partner's MDN.
fn print_sent(status: &api::MessageStatus, local_time: bool) {
    println!("Attempts:   {}", status.attempts);
    for attempt in &status.history {
        println!(
            "  #{} at {}: {}",
            attempt.number,
            time_text(attempt.started, local_time),
            attempt.outcome
        );
    }
    match &status.mdn {
        Some(mdn) => {
            println!("MDN:        {}", disposition_text(&mdn.disposition));
            println!("  signature: {}", signature_text(mdn.signature));
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

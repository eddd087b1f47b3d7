//! Looking messages up: `lookup-message` and `list-messages`, from the
//! records the lifecycle keeps.

use super::bindings::exports::as2::connector::connector as api;
use super::convert::{received_status, sent_status};
use super::records;
use super::{wit, wit_error};

pub fn lookup_message(config: &str, message_id: &str) -> Result<api::MessageStatus, wit::Error> {
    let connection = super::connection::checked(config)?;
    let partner = &connection.connection.partner.as2_id;
    let message_id = message_id.trim();
    let sent = records::load_sent(message_id)?.filter(|record| &record.partner == partner);
    if let Some(record) = sent {
        return sent_status(record);
    }
    if let Some(record) = records::load_received(partner, message_id)? {
        return received_status(record);
    }
    Err(wit_error(
        wit::ErrorCode::NotFound,
        format!("no message {message_id} was sent or received through this connection"),
    ))
}

pub fn list_messages(
    config: &str,
    filter: api::MessageFilter,
) -> Result<Vec<api::MessageStatus>, wit::Error> {
    let connection = super::connection::checked(config)?;
    let partner = &connection.connection.partner.as2_id;
    let mut found = Vec::new();
    if !matches!(filter.direction, Some(api::Direction::Inbound)) {
        for record in records::all_sent()? {
            if &record.partner == partner {
                found.push(sent_status(record)?);
            }
        }
    }
    if !matches!(filter.direction, Some(api::Direction::Outbound)) {
        for record in records::all_received(partner)? {
            found.push(received_status(record)?);
        }
    }
    found.retain(|status| {
        filter
            .state
            .is_none_or(|state| same_state(state, status.state))
            && filter.since.is_none_or(|since| status.created >= since)
            && filter.until.is_none_or(|until| status.created < until)
    });
    found.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| b.message_id.cmp(&a.message_id))
    });
    found.truncate(filter.limit as usize);
    Ok(found)
}

fn same_state(a: api::MessageState, b: api::MessageState) -> bool {
    std::mem::discriminant(&a) == std::mem::discriminant(&b)
}

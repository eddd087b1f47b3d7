//! Engine values as WIT values, and back: one place for each mapping.

use crate::headers::Headers;
use crate::inbox::ReceivedRecord;
use crate::mdn::{Disposition, DispositionType, Mdn, ModifierKind};
use crate::mic::{Mic, ReportedMic};
use crate::outbox::{LogLevel, SentRecord, SentState, StoredMdn};

use super::bindings::as2::connector::log::Level;
use super::bindings::exports::as2::connector::connector as api;
use super::{to_wit_error, wit};

pub fn to_headers(headers: &[wit::Header]) -> Headers {
    headers
        .iter()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect()
}

pub fn from_headers(headers: &Headers) -> Vec<wit::Header> {
    headers
        .iter()
        .map(|(name, value)| wit::Header {
            name: name.to_string(),
            value: value.to_string(),
        })
        .collect()
}

pub fn wit_problem(problem: &crate::validate::Problem) -> api::Problem {
    api::Problem {
        severity: match problem.severity {
            crate::validate::Severity::Error => api::Severity::Error,
            crate::validate::Severity::Warning => api::Severity::Warning,
        },
        code: to_wit_error(&problem.error).code,
        field: problem.field.clone(),
        message: problem.message(),
    }
}

pub fn wit_mic(mic: &Mic) -> wit::Mic {
    wit::Mic {
        digest: mic.digest_base64(),
        algorithm: mic.spelling.clone(),
    }
}

pub fn wit_disposition(disposition: &Disposition) -> wit::Disposition {
    wit::Disposition {
        disposition_type: match disposition.disposition_type {
            DispositionType::Processed => wit::DispositionType::Processed,
            DispositionType::Failed => wit::DispositionType::Failed,
        },
        modifier: disposition.modifier.as_ref().map(|(kind, description)| {
            wit::DispositionModifier {
                kind: match kind {
                    ModifierKind::Error => wit::ModifierKind::Error,
                    ModifierKind::Warning => wit::ModifierKind::Warning,
                    ModifierKind::Failure => wit::ModifierKind::Failure,
                },
                description: description.clone(),
            }
        }),
    }
}

fn wit_mdn(mdn: &Mdn) -> wit::MdnSummary {
    wit::MdnSummary {
        message_id: mdn.message_id.clone(),
        original_message_id: mdn.original_message_id.clone(),
        disposition: wit_disposition(&mdn.disposition),
        received_mic: mdn.received_mic.as_ref().map(|mic| wit::Mic {
            digest: mic.digest_base64.clone(),
            algorithm: mic.algorithm_text.clone().unwrap_or_default(),
        }),
        signature: if mdn.signed {
            wit::SignatureVerdict::Verified
        } else {
            wit::SignatureVerdict::Unsigned
        },
        warnings: mdn.warnings.clone(),
    }
}

fn stored_mdn_summary(mdn: &StoredMdn) -> Result<wit::MdnSummary, wit::Error> {
    let disposition = Disposition::parse(&mdn.disposition).map_err(|e| to_wit_error(&e))?;
    Ok(wit_mdn(&Mdn {
        message_id: mdn.message_id.clone(),
        original_message_id: mdn.original_message_id.clone(),
        disposition,
        received_mic: mdn.received_mic.as_deref().map(ReportedMic::parse),
        signed: mdn.signed,
        warnings: mdn.warnings.clone(),
    }))
}

fn wit_state(state: SentState) -> api::MessageState {
    match state {
        SentState::Pending => api::MessageState::Pending,
        SentState::Acknowledged => api::MessageState::Acknowledged,
        SentState::Failed => api::MessageState::Failed,
    }
}

/// What a send call answers for `record`.
pub fn outcome(record: &SentRecord) -> Result<api::SendOutcome, wit::Error> {
    Ok(api::SendOutcome {
        message_id: record.message_id.clone(),
        state: wit_state(record.state),
        attempts: record.attempts,
        events: record.events.clone(),
        mic: wit_mic(&record.mic()),
        mdn: record.mdn.as_ref().map(stored_mdn_summary).transpose()?,
        mic_matched: record.mdn.as_ref().is_some_and(|mdn| mdn.mic_matched),
    })
}

pub fn sent_status(record: SentRecord) -> Result<api::MessageStatus, wit::Error> {
    Ok(api::MessageStatus {
        mic: wit_mic(&record.mic()),
        direction: api::Direction::Outbound,
        state: wit_state(record.state),
        mdn: record.mdn.as_ref().map(stored_mdn_summary).transpose()?,
        answered: None,
        history: record
            .history
            .iter()
            .map(|attempt| api::Attempt {
                number: attempt.number,
                started: attempt.started,
                outcome: attempt.outcome.clone(),
            })
            .collect(),
        created: record.created,
        file_name: record.file_name,
        message_id: record.message_id,
        partner: record.partner,
        attempts: record.attempts,
        reason: record.reason,
    })
}

pub fn received_status(record: ReceivedRecord) -> Result<api::MessageStatus, wit::Error> {
    let (digest, algorithm) = record.mic_parts();
    let mic = wit::Mic {
        digest: digest.to_string(),
        algorithm: algorithm.to_string(),
    };
    let answered = record
        .disposition
        .as_deref()
        .map(Disposition::parse)
        .transpose()
        .map_err(|e| to_wit_error(&e))?;
    Ok(api::MessageStatus {
        mic,
        direction: api::Direction::Inbound,
        state: api::MessageState::Received,
        mdn: None,
        answered: answered.as_ref().map(wit_disposition),
        history: Vec::new(),
        created: record.received,
        file_name: record.file_name,
        message_id: record.message_id,
        partner: record.partner,
        attempts: 0,
        reason: None,
    })
}

pub fn wit_level(level: LogLevel) -> Level {
    match level {
        LogLevel::Info => Level::Info,
        LogLevel::Warn => Level::Warn,
    }
}

//! The life of a received message (RFC 4130 §7): processed, recorded once
//! so that a resend is a duplicate, its document handed to the host, its
//! MDN answered in the HTTP response or owed to the partner's URL and
//! delivered with retries.
//!
//! No IO and no clock, as in [`crate::outbox`]: [`settle`] decides what
//! becomes of a processed message; [`after_mdn_attempt`] decides what
//! becomes of an owed MDN after each delivery attempt. The component and
//! the host perform what they say: the component hands the document and
//! the record to the host, which stores both in one transaction before the
//! MDN leaves (a positive MDN only for a document that is durable).

use serde::{Deserialize, Serialize};

use crate::mdn::{Disposition, HttpMessage};
use crate::message::{Inbound, Received};
use crate::outbox::{LogLevel, UnixMillis};

/// What the state store keeps of a received message
/// (`received/<partner>/<Message-ID>`), stored by the host with the
/// document: its presence makes a resend of the message a duplicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceivedRecord {
    /// Its Message-ID.
    pub message_id: String,
    /// The partner's AS2 identifier (AS2-From).
    pub partner: String,
    /// The document's file name, if it had one.
    pub file_name: Option<String>,
    /// The MIC as reported in the MDN (`digest, algorithm`).
    pub mic: String,
    /// When it was received, in seconds since the Unix epoch.
    #[serde(default)]
    pub received: u64,
    /// The document's size.
    #[serde(default)]
    pub bytes: u64,
    /// The disposition the MDN reported, as written.
    #[serde(default)]
    pub disposition: Option<String>,
}

/// The state store key of a received message's record.
pub fn received_key(partner: &str, message_id: &str) -> String {
    format!("received/{partner}/{message_id}")
}

impl ReceivedRecord {
    /// The reported MIC's digest and algorithm.
    pub fn mic_parts(&self) -> (&str, &str) {
        self.mic
            .split_once(',')
            .map(|(digest, algorithm)| (digest.trim(), algorithm.trim()))
            .unwrap_or((self.mic.as_str(), ""))
    }
}

/// How the request is answered.
#[derive(Debug, Clone)]
pub enum Reply {
    /// HTTP 200 with no body: no MDN was asked for, or it goes separately.
    Empty,
    /// The MDN, in the HTTP response.
    SyncMdn(HttpMessage),
    /// HTTP 200 now; the MDN is owed, to be POSTed to `url`.
    AsyncMdn {
        /// Where it goes.
        url: String,
        /// The MDN.
        message: HttpMessage,
    },
}

/// What becomes of a processed message.
#[derive(Debug)]
pub struct Reception {
    /// Its Message-ID.
    pub message_id: String,
    /// The partner's AS2 identifier.
    pub partner: String,
    /// For the log.
    pub log: (LogLevel, String),
    /// To store with the document, under [`received_key`]; `None` when
    /// nothing is delivered (a duplicate, a refusal).
    pub record: Option<ReceivedRecord>,
    /// The document to deliver.
    pub document: Option<Received>,
    /// What the MDN reports.
    pub disposition: Disposition,
    /// How the request is answered.
    pub reply: Reply,
}

/// Decides what becomes of `inbound`, processed at `now`: a new document
/// is delivered and recorded; a duplicate is answered and not delivered
/// again (RFC 4130 §7.4.3: `processed/warning: duplicate-document`); a
/// refusal is answered with its disposition and nothing is kept.
pub fn settle(inbound: Inbound, now: UnixMillis) -> Reception {
    let Inbound {
        message_id,
        partner,
        result,
        disposition,
        duplicate,
        mdn,
    } = inbound;
    let (log, record, document) = match result {
        Ok(_) if duplicate => (
            (
                LogLevel::Warn,
                format!(
                    "message {message_id} from {partner} was received before; not delivered again"
                ),
            ),
            None,
            None,
        ),
        Ok(received) => {
            // Several documents (RFC 6362): their names together, their sizes summed.
            let names: Vec<&str> = received
                .documents()
                .map(|d| d.file_name.as_deref().unwrap_or("document"))
                .collect();
            let bytes: u64 = received.documents().map(|d| d.content.len()).sum();
            let record = ReceivedRecord {
                message_id: message_id.clone(),
                partner: partner.clone(),
                file_name: match names.as_slice() {
                    [_] => received.document.file_name.clone(),
                    names => Some(names.join(", ")),
                },
                mic: received.mic.header_value(),
                received: now / 1000,
                bytes,
                disposition: Some(disposition.to_string()),
            };
            let count = match names.len() {
                1 => String::new(),
                n => format!("{n} documents, "),
            };
            let line = format!(
                "received {} ({count}{bytes} bytes) from {partner} as {message_id}",
                names.join(", "),
            );
            ((LogLevel::Info, line), Some(record), Some(received))
        }
        Err(error) => (
            (
                LogLevel::Warn,
                format!("message {message_id} from {partner} rejected: {error}"),
            ),
            None,
            None,
        ),
    };
    let reply = match mdn {
        None => Reply::Empty,
        Some(mdn) => match mdn.async_url {
            None => Reply::SyncMdn(mdn.message),
            Some(url) => Reply::AsyncMdn {
                url,
                message: mdn.message,
            },
        },
    };
    Reception {
        message_id,
        partner,
        log,
        record,
        document,
        disposition,
        reply,
    }
}

/// Delivery attempts for one asynchronous MDN before it is given up.
pub const MDN_ATTEMPTS: u32 = 10;

/// Pause before the next delivery attempt after `attempts` failed ones:
/// 1 s, 2 s, 4 s, … at most 5 minutes.
pub fn mdn_retry_delay_seconds(attempts: u32) -> u64 {
    (1u64 << attempts.saturating_sub(1).min(9)).min(300)
}

/// Where an owed asynchronous MDN stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwedMdnState {
    /// Still to deliver, at the time given.
    Pending {
        /// When to try again, in seconds since the Unix epoch.
        next_attempt_at: i64,
    },
    /// The partner took it (HTTP 2xx).
    Delivered,
    /// Given up after [`MDN_ATTEMPTS`] attempts.
    Failed,
}

impl OwedMdnState {
    /// How the host's journal writes it: `pending`, `delivered` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            OwedMdnState::Pending { .. } => "pending",
            OwedMdnState::Delivered => "delivered",
            OwedMdnState::Failed => "failed",
        }
    }
}

/// Decides what becomes of an owed MDN after one more delivery attempt at
/// `now` (seconds since the Unix epoch), `attempts_before` having been
/// made: returns the attempts made now and the new state.
pub fn after_mdn_attempt(attempts_before: u32, delivered: bool, now: i64) -> (u32, OwedMdnState) {
    let attempts = attempts_before + 1;
    let state = if delivered {
        OwedMdnState::Delivered
    } else if attempts >= MDN_ATTEMPTS {
        OwedMdnState::Failed
    } else {
        let delay = i64::try_from(mdn_retry_delay_seconds(attempts)).unwrap_or(i64::MAX);
        OwedMdnState::Pending {
            next_attempt_at: now.saturating_add(delay),
        }
    };
    (attempts, state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::DigestAlgorithm;
    use crate::message::{OutgoingMdn, ReceivedDocument};
    use crate::mic::Mic;

    const T0: UnixMillis = 1_800_000_000_000;

    fn inbound(result: Result<Received, crate::Error>, duplicate: bool) -> Inbound {
        Inbound {
            message_id: "<m@them>".into(),
            partner: "THEM".into(),
            result,
            disposition: Disposition::processed(),
            duplicate,
            mdn: Some(OutgoingMdn {
                message: HttpMessage {
                    headers: crate::headers::Headers::new(),
                    body: b"the mdn".to_vec(),
                },
                async_url: None,
            }),
        }
    }

    fn received() -> Received {
        Received {
            document: ReceivedDocument {
                file_name: Some("order.edi".into()),
                content_type: "application/edi-x12".into(),
                content: b"ISA*00~".to_vec().into(),
            },
            attachments: Vec::new(),
            mic: Mic {
                digest: vec![0; 32],
                algorithm: DigestAlgorithm::Sha256,
                spelling: "sha-256".into(),
            },
            signed: true,
            encrypted: true,
        }
    }

    #[test]
    fn a_new_document_is_delivered_recorded_and_answered_in_the_response() {
        let reception = settle(inbound(Ok(received()), false), T0);
        let record = reception.record.unwrap();
        assert_eq!(record.message_id, "<m@them>");
        assert_eq!(record.file_name.as_deref(), Some("order.edi"));
        assert_eq!(record.bytes, 7);
        assert_eq!(record.received, T0 / 1000);
        assert_eq!(record.disposition.as_deref(), Some("processed"));
        assert_eq!(
            record.mic_parts(),
            ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "sha-256")
        );
        assert_eq!(reception.document.unwrap().document.content, b"ISA*00~");
        assert!(matches!(reception.reply, Reply::SyncMdn(ref mdn) if mdn.body == b"the mdn"));
        assert_eq!(
            reception.log,
            (
                LogLevel::Info,
                "received order.edi (7 bytes) from THEM as <m@them>".into()
            )
        );
        assert_eq!(received_key("THEM", "<m@them>"), "received/THEM/<m@them>");
    }

    #[test]
    fn a_duplicate_is_answered_but_neither_delivered_nor_recorded_again() {
        let reception = settle(inbound(Ok(received()), true), T0);
        assert!(reception.record.is_none());
        assert!(reception.document.is_none());
        assert!(matches!(reception.reply, Reply::SyncMdn(_)));
        assert_eq!(reception.log.0, LogLevel::Warn);
        assert!(
            reception
                .log
                .1
                .ends_with("was received before; not delivered again")
        );
    }

    #[test]
    fn a_refused_message_keeps_nothing_and_owes_its_mdn_when_asked_asynchronously() {
        let mut refused = inbound(Err(crate::Error::Integrity("digest differs".into())), false);
        if let Some(mdn) = &mut refused.mdn {
            mdn.async_url = Some("http://them.test/mdn".into());
        }
        let reception = settle(refused, T0);
        assert!(reception.record.is_none() && reception.document.is_none());
        assert!(
            matches!(reception.reply, Reply::AsyncMdn { ref url, .. } if url == "http://them.test/mdn")
        );
        assert_eq!(
            reception.log.1,
            "message <m@them> from THEM rejected: integrity check failed: digest differs"
        );
    }

    #[test]
    fn an_owed_mdn_is_tried_ten_times_with_growing_pauses_then_given_up() {
        let mut now = 1_800_000_000i64;
        let mut attempts = 0;
        let mut pauses = Vec::new();
        loop {
            let (made, state) = after_mdn_attempt(attempts, false, now);
            attempts = made;
            match state {
                OwedMdnState::Pending { next_attempt_at } => {
                    pauses.push(next_attempt_at - now);
                    now = next_attempt_at;
                }
                OwedMdnState::Failed => break,
                OwedMdnState::Delivered => unreachable!(),
            }
        }
        assert_eq!(attempts, MDN_ATTEMPTS);
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 64, 128, 256]);
        assert_eq!(mdn_retry_delay_seconds(12), 300);
    }

    #[test]
    fn an_owed_mdn_the_partner_takes_is_delivered() {
        assert_eq!(after_mdn_attempt(4, true, 0), (5, OwedMdnState::Delivered));
        assert_eq!(OwedMdnState::Delivered.as_str(), "delivered");
        assert_eq!(after_mdn_attempt(9, false, 0), (10, OwedMdnState::Failed));
    }
}

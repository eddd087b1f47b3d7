//! The life of a sent message (RFC 4130 §7.3, §8): recorded before it goes
//! out, sent until the partner has it, sent again under the same Message-ID
//! after failures, settled by its MDN.
//!
//! No IO, and no clock: [`Delivery`] is a state machine in the manner of
//! quinn-proto's connection. The caller feeds it [`Event`]s with the time
//! as a value ([`Delivery::handle`]) and asks it what to do next
//! ([`Delivery::poll`]): record this change, wait until then, send the
//! message, refresh the token, check this MDN, finish. Every decision of
//! the lifecycle is made here — the resend schedule, attempts counted
//! against the bound, "too fast" waits, one token refresh a send, the
//! call's time budget, the verdict — so that all of it is tested natively
//! with simulated time. The component performs the IO and stores the
//! [`SentRecord`] the changes apply to.
//!
//! A record outlives the call that sends it: [`resume_step`] decides what a
//! later call does with a record whose lease ran out (an interrupted send,
//! an asynchronous MDN overdue), and [`Change::AsyncMdn`] settles a record
//! with the MDN the partner POSTs later.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::{Connection, MdnDelivery, MdnMode, Partner};
use crate::crypto::DigestAlgorithm;
use crate::error::{Error, ErrorCode};
use crate::headers::Headers;
use crate::message::MdnVerdict;
use crate::mic::Mic;

/// Milliseconds since the Unix epoch: the time as the lifecycle reads it.
pub type UnixMillis = u64;

/// The time `now` as [`UnixMillis`] (0 before the epoch).
pub fn unix_millis(now: SystemTime) -> UnixMillis {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long to wait on the partner before giving up on an HTTP exchange
/// that brings no synchronous MDN.
pub const HTTP_TIMEOUT_SECONDS: u64 = 60;

/// Slack added to every lease, for clocks and scheduling.
pub const LEASE_SLACK_MS: u64 = 5_000;

/// How long one `import` or `resume` call may keep sending, unless the host
/// says otherwise: hosts give a call at least 300 s (the reference host's
/// default deadline), so a resend that would end later is left to `resume`
/// instead of being cut off.
pub const DEFAULT_CALL_BUDGET_MS: u64 = 240_000;

/// The environment variable (wasi:cli/environment) in which a host tells
/// how many milliseconds a call may take, its own deadline less a margin.
pub const CALL_BUDGET_VARIABLE: &str = "AS2_CALL_BUDGET_MS";

/// What the state store keeps of a sent message (`sent/<Message-ID>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentRecord {
    /// Its Message-ID.
    pub message_id: String,
    /// The partner's AS2 identifier.
    pub partner: String,
    /// The MIC computed when it was built.
    pub mic_digest: Vec<u8>,
    /// The MIC's algorithm, as written in the MDN request.
    pub mic_algorithm: String,
    /// Where it stands.
    pub state: SentState,
    /// HTTP attempts made.
    pub attempts: u32,
    /// The MDN that settled it.
    pub mdn: Option<StoredMdn>,
    /// Why the latest attempt failed, or why it was given up.
    pub reason: Option<String>,
    /// Resends, token refreshes: what happened on the way.
    #[serde(default)]
    pub events: Vec<String>,
    /// The document's file name.
    #[serde(default)]
    pub file_name: Option<String>,
    /// When it was recorded, in seconds since the Unix epoch.
    #[serde(default)]
    pub created: u64,
    /// Every HTTP attempt, oldest first.
    #[serde(default)]
    pub history: Vec<AttemptRecord>,
    /// Until when the call that sends it is expected to act on it:
    /// [`resume_step`] leaves it alone before then.
    #[serde(default)]
    pub lease_until_ms: UnixMillis,
    /// The partner took it (HTTP 2xx) and the MDN is to come asynchronously.
    #[serde(default)]
    pub awaiting_async_mdn: bool,
    /// Whether the message asked for a signed MDN, so that an asynchronous
    /// one is judged by what was asked, not by the connection as it is
    /// when the MDN comes. `None` in records from before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_mdn_requested: Option<bool>,
    /// The MIC doctor's variants of the MIC ([`crate::doctor`]), to name
    /// what the partner did when its MDN's MIC differs; `None` for a
    /// document too large to have them taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mic_variants: Option<Vec<crate::doctor::Fingerprint>>,
}

/// One HTTP attempt of a sent message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// 1 for the first attempt.
    pub number: u32,
    /// When it started, in seconds since the Unix epoch.
    pub started: u64,
    /// What came of it, for people.
    pub outcome: String,
}

/// Where a sent message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SentState {
    /// Not settled yet: being sent, waiting to be sent again, or awaiting
    /// its asynchronous MDN.
    Pending,
    /// The partner's MDN proves receipt (or no MDN was asked for).
    Acknowledged,
    /// Given up, or the partner's MDN does not prove receipt.
    Failed,
}

/// The MDN that settled a sent message, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMdn {
    /// The MDN's own Message-ID.
    pub message_id: Option<String>,
    /// The message it acknowledges.
    pub original_message_id: String,
    /// Its disposition, as written in the MDN.
    pub disposition: String,
    /// Its Received-Content-MIC, as written.
    pub received_mic: Option<String>,
    /// Whether it was signed (and verified).
    pub signed: bool,
    /// Deviations from RFC 4130 that were tolerated.
    pub warnings: Vec<String>,
    /// Whether its MIC equals the one sent.
    #[serde(default)]
    pub mic_matched: bool,
}

/// The state store key of a sent message's record.
pub fn record_key(message_id: &str) -> String {
    format!("sent/{message_id}")
}

/// The key under which the exact bytes of a message still being sent are
/// kept (its header fields as the value, its body as the blob of the same
/// name), so that a resend after a restart is the very same message.
pub fn outbox_key(message_id: &str) -> String {
    format!("outbox/{message_id}")
}

/// The prefix of [`pending_key`].
pub const PENDING_PREFIX: &str = "pending/";

/// Index of the messages not yet settled (value: the partner), so that
/// resuming need not read every record.
pub fn pending_key(message_id: &str) -> String {
    format!("{PENDING_PREFIX}{message_id}")
}

impl SentRecord {
    /// The record of a message about to be sent for the first time: pending,
    /// no attempt yet, leased to the call that sends it.
    pub fn new(
        message_id: &str,
        partner: &str,
        mic: &Mic,
        file_name: Option<String>,
        now: UnixMillis,
    ) -> Self {
        SentRecord {
            message_id: message_id.to_string(),
            partner: partner.to_string(),
            mic_digest: mic.digest.clone(),
            mic_algorithm: mic.spelling.clone(),
            state: SentState::Pending,
            attempts: 0,
            mdn: None,
            reason: None,
            events: Vec::new(),
            file_name,
            created: now / 1000,
            history: Vec::new(),
            lease_until_ms: now + LEASE_SLACK_MS,
            awaiting_async_mdn: false,
            signed_mdn_requested: None,
            mic_variants: None,
        }
    }

    /// The MIC sent, to compare the MDN's with.
    pub fn mic(&self) -> Mic {
        let algorithm =
            DigestAlgorithm::from_micalg(&self.mic_algorithm).unwrap_or(DigestAlgorithm::Sha256);
        Mic {
            digest: self.mic_digest.clone(),
            algorithm,
            spelling: self.mic_algorithm.clone(),
        }
    }

    /// Notes what came of the latest attempt.
    fn note_attempt(&mut self, outcome: &str) {
        if let Some(last) = self.history.last_mut() {
            last.outcome = outcome.to_string();
        }
    }

    /// Records what an MDN says.
    fn apply_verdict(&mut self, verdict: &MdnVerdict) {
        self.mdn = Some(StoredMdn {
            message_id: verdict.mdn.message_id.clone(),
            original_message_id: verdict.mdn.original_message_id.clone(),
            disposition: verdict.mdn.disposition.to_string(),
            received_mic: verdict.mdn.received_mic.as_ref().map(ToString::to_string),
            signed: verdict.mdn.signed,
            warnings: verdict.mdn.warnings.clone(),
            mic_matched: verdict.mic_matched,
        });
        if verdict.proves_receipt {
            self.state = SentState::Acknowledged;
            self.reason = None;
        } else {
            self.state = SentState::Failed;
            self.reason = Some(if !verdict.mdn.disposition.is_positive() {
                format!("the partner reported {}", verdict.mdn.disposition)
            } else if !verdict.mic_matched {
                "the MDN's Received-Content-MIC does not match the MIC sent".to_string()
            } else {
                "the MDN is not signed although a signed MDN was requested".to_string()
            });
        }
    }

    /// Whether an MDN arriving now decides this message: it is pending, or
    /// it failed only because no MDN came in time. A settled record keeps
    /// the first MDN; a repeat changes nothing.
    pub fn awaits_mdn(&self) -> bool {
        self.state == SentState::Pending || (self.state == SentState::Failed && self.mdn.is_none())
    }

    /// Whether the call that held it is over: pending, and its lease ran out.
    pub fn lease_expired(&self, now: UnixMillis) -> bool {
        self.state == SentState::Pending && self.lease_until_ms <= now
    }
}

/// A change to a [`SentRecord`], named for the step of the lifecycle that
/// makes it. The caller applies it to the record as stored, by
/// compare-and-swap ([`Change::apply`]), so that a send still retrying and
/// the asynchronous MDN that answers it never lose each other's writes.
#[derive(Debug, Clone)]
pub enum Change {
    /// An HTTP attempt begins; the record is leased until its answer is due.
    AttemptStarted {
        /// When it starts.
        now: UnixMillis,
        /// How long it may take.
        timeout_seconds: u64,
    },
    /// The latest attempt failed: why, what happens next, and until when
    /// the record is leased.
    AttemptFailed {
        /// What came of the attempt.
        outcome: String,
        /// The reason kept on the record (`None` keeps the one it has).
        reason: Option<String>,
        /// For the record's events.
        event: String,
        /// The new lease.
        lease_until_ms: UnixMillis,
    },
    /// The partner refused our credentials, and the token was refreshed.
    TokenRefreshed {
        /// What came of the attempt.
        outcome: String,
        /// What was done, for the record's events.
        event: String,
    },
    /// Final: given up with this reason.
    GaveUp {
        /// Why, on the latest attempt and the record.
        reason: String,
    },
    /// The partner took it and no MDN was asked for.
    Delivered {
        /// What came of the attempt.
        outcome: String,
    },
    /// The partner took it; its MDN is to come asynchronously.
    AwaitingAsyncMdn {
        /// What came of the attempt.
        outcome: String,
        /// When to give up waiting and send again.
        lease_until_ms: UnixMillis,
    },
    /// The synchronous MDN's verdict.
    SyncMdn {
        /// What came of the attempt.
        outcome: String,
        /// The verdict.
        verdict: Box<MdnVerdict>,
    },
    /// The synchronous MDN is not valid.
    InvalidMdn {
        /// What came of the attempt.
        outcome: String,
        /// Why.
        reason: String,
    },
    /// An asynchronous MDN's verdict; when the message had been given up
    /// for want of it, the record says it came late.
    AsyncMdn(Box<MdnVerdict>),
    /// A later call takes the record over to send it again.
    Claimed {
        /// Why, for the record's events.
        why: String,
        /// The claiming call's lease.
        lease_until_ms: UnixMillis,
    },
    /// Final, outside an attempt: no asynchronous MDN came, or the stored
    /// copy to send again is gone.
    Abandoned {
        /// Why.
        reason: String,
        /// Whether the reason also goes into the record's events.
        as_event: bool,
    },
}

impl Change {
    /// Applies the change to `record`.
    pub fn apply(&self, record: &mut SentRecord) {
        match self {
            Change::AttemptStarted {
                now,
                timeout_seconds,
            } => {
                record.attempts += 1;
                record.reason = None;
                record.awaiting_async_mdn = false;
                record.lease_until_ms = now + timeout_seconds * 1000 + LEASE_SLACK_MS;
                record.history.push(AttemptRecord {
                    number: record.attempts,
                    started: now / 1000,
                    outcome: "in progress".into(),
                });
            }
            Change::AttemptFailed {
                outcome,
                reason,
                event,
                lease_until_ms,
            } => {
                record.note_attempt(outcome);
                if reason.is_some() {
                    record.reason.clone_from(reason);
                }
                record.events.push(event.clone());
                record.lease_until_ms = *lease_until_ms;
            }
            Change::TokenRefreshed { outcome, event } => {
                record.note_attempt(outcome);
                record.events.push(event.clone());
            }
            Change::GaveUp { reason } => {
                record.note_attempt(reason);
                record.state = SentState::Failed;
                record.reason = Some(reason.clone());
            }
            Change::Delivered { outcome } => {
                record.note_attempt(outcome);
                record.state = SentState::Acknowledged;
            }
            Change::AwaitingAsyncMdn {
                outcome,
                lease_until_ms,
            } => {
                record.note_attempt(outcome);
                record.awaiting_async_mdn = true;
                record.lease_until_ms = *lease_until_ms;
            }
            Change::SyncMdn { outcome, verdict } => {
                record.note_attempt(outcome);
                record.apply_verdict(verdict);
            }
            Change::InvalidMdn { outcome, reason } => {
                record.note_attempt(outcome);
                record.state = SentState::Failed;
                record.reason = Some(reason.clone());
            }
            Change::AsyncMdn(verdict) => {
                if record.state == SentState::Failed {
                    record.events.push(format!(
                        "the asynchronous MDN came after the message was given up ({})",
                        record.reason.as_deref().unwrap_or("no reason recorded")
                    ));
                }
                record.apply_verdict(verdict);
            }
            Change::Claimed {
                why,
                lease_until_ms,
            } => {
                record.lease_until_ms = *lease_until_ms;
                record.events.push(why.clone());
            }
            Change::Abandoned { reason, as_event } => {
                record.state = SentState::Failed;
                record.reason = Some(reason.clone());
                if *as_event {
                    record.events.push(reason.clone());
                }
            }
        }
    }
}

/// Pause before resend `attempt` (1-based): 1 s, 2 s, 4 s, … at most 30 s.
pub fn resend_delay_seconds(attempt: u32) -> u64 {
    (1u64 << attempt.saturating_sub(1).min(5)).min(30)
}

/// Whether the partner asked for its MDN in the HTTP response.
fn expects_sync_mdn(partner: &Partner) -> bool {
    partner.mdn != MdnMode::None && partner.mdn_delivery == MdnDelivery::Sync
}

/// How long one HTTP attempt may wait: for the synchronous MDN, the MDN
/// timeout; otherwise the plain HTTP timeout.
pub fn attempt_seconds(partner: &Partner) -> u64 {
    if expects_sync_mdn(partner) {
        u64::from(partner.mdn_timeout_seconds())
    } else {
        HTTP_TIMEOUT_SECONDS
    }
}

/// How long one call may keep sending: a resend that would end later is
/// left to a later call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallBudget {
    started: UnixMillis,
    budget_ms: u64,
}

impl CallBudget {
    /// The budget of a call that starts at `now`, as the host tells it
    /// (the value of [`CALL_BUDGET_VARIABLE`]) or [`DEFAULT_CALL_BUDGET_MS`].
    pub fn starting(now: UnixMillis, told_ms: Option<&str>) -> Self {
        let budget_ms = told_ms
            .and_then(|value| value.trim().parse::<u64>().ok())
            .unwrap_or(DEFAULT_CALL_BUDGET_MS);
        CallBudget {
            started: now,
            budget_ms,
        }
    }

    /// Whether `seconds` more from `now` still fit.
    pub fn allows(&self, now: UnixMillis, seconds: u64) -> bool {
        now.saturating_add(seconds.saturating_mul(1000))
            <= self.started.saturating_add(self.budget_ms)
    }
}

/// A partner's HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields.
    pub headers: Headers,
    /// Body.
    pub body: Vec<u8>,
}

/// How loud a [`Action::Log`] line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Progress.
    Info,
    /// Something went wrong and is being dealt with.
    Warn,
}

/// What happened, for [`Delivery::handle`]; each answers the action that
/// asked for it.
#[derive(Debug)]
pub enum Event {
    /// A [`Action::Record`] change was stored; the record now stands so.
    Recorded {
        /// Its state.
        state: SentState,
        /// Its attempts.
        attempts: u32,
    },
    /// The send slot under the partner's rate limit ([`Action::ClaimSendSlot`]).
    SlotClaimed {
        /// When the slot begins.
        at: UnixMillis,
    },
    /// The time asked for by [`Action::WaitUntil`] has come.
    TimerFired,
    /// The partner answered the POST.
    Answered(Response),
    /// The POST brought no answer (unreachable, timed out, dropped).
    Unreachable(String),
    /// A new token is stored and applies to the next attempt; what was done.
    TokenRefreshed(String),
    /// The synchronous MDN, checked ([`Action::CheckMdn`]).
    MdnChecked(Result<MdnVerdict, Error>),
}

/// What to do next, from [`Delivery::poll`].
#[derive(Debug)]
pub enum Action {
    /// Write this line to the log.
    Log(LogLevel, String),
    /// Apply the change to the stored record while it is pending; answer
    /// with [`Event::Recorded`].
    Record(Change),
    /// Claim the next send slot under the partner's rate limit; answer with
    /// [`Event::SlotClaimed`].
    ClaimSendSlot,
    /// Wait until then; answer with [`Event::TimerFired`].
    WaitUntil(UnixMillis),
    /// POST the stored message with the current credentials, waiting at
    /// most this long; answer with [`Event::Answered`] or [`Event::Unreachable`].
    Send {
        /// Bound on the exchange.
        timeout_seconds: u64,
    },
    /// Fetch a new token in place of the refused one; answer with
    /// [`Event::TokenRefreshed`].
    RefreshToken,
    /// Verify and judge the synchronous MDN in this response; answer with
    /// [`Event::MdnChecked`].
    CheckMdn(Response),
    /// Done: answer the caller.
    Finish(Finish),
}

/// How a delivery ends.
#[derive(Debug)]
pub enum Finish {
    /// With the record as it now stands (acknowledged, failed by its MDN,
    /// awaiting an asynchronous MDN, or left to a later call).
    Outcome,
    /// With this error; the record says so too.
    GaveUp {
        /// Its code.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
    },
    /// With the error of the synchronous MDN; the record says so too.
    InvalidMdn(Error),
}

/// Why one HTTP attempt did not bring an answer worth keeping.
enum AttemptFailure {
    /// Worth sending again: unreachable, 5xx, dropped before the MDN.
    Retry(String),
    /// The partner refused our credentials (the configured failure rule).
    CredentialsRefused(u16),
    /// The partner says we send too fast; wait this long before trying again.
    TooFast(u16, Duration),
    /// Final: the partner refused the message.
    Refused(u16),
}

/// What an answer awaited continues with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    /// The record of a new attempt.
    AttemptRecorded,
    /// The send slot.
    Slot,
    /// The end of the wait for the slot.
    SlotTime,
    /// The partner's answer.
    Answer,
    /// The record of a failed attempt, then a pause until then.
    FailureRecorded(UnixMillis),
    /// The end of a pause before the next attempt.
    Pause,
    /// The new token, after credentials were refused with this status.
    Token(u16),
    /// The record of the refresh; then the next attempt at once.
    RefreshRecorded,
    /// The verdict on the synchronous MDN that came with this status.
    Verdict(u16),
    /// The final record; then finish so.
    Settled(FinishWith),
    /// Nothing: finished.
    Nothing,
}

/// How to finish once the final record is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FinishWith {
    Outcome,
    /// Unless an asynchronous MDN acknowledged it meanwhile.
    GaveUp(ErrorCode),
    InvalidMdn,
}

/// Sending one message until the partner has it (and its synchronous MDN
/// is read), sending it again under the same Message-ID after failures.
/// Every step is recorded before the next is taken.
pub struct Delivery<'a> {
    connection: &'a Connection,
    message_id: String,
    budget: CallBudget,
    /// Failed attempts counted against `send_attempts`.
    failures: u32,
    /// Retries after "too fast" answers, against their own bound.
    too_fast: u32,
    /// The token was refreshed once in this send.
    refreshed: bool,
    /// The record's attempts, as last recorded.
    attempts: u32,
    awaiting: Awaiting,
    /// Why it was given up, for the caller.
    final_error: Option<String>,
    /// The synchronous MDN's error, for the caller.
    invalid_mdn: Option<Error>,
    actions: VecDeque<Action>,
}

impl<'a> Delivery<'a> {
    /// Starts delivering `message_id`, recorded as pending, at `now`;
    /// `spent` failed attempts were already made on it.
    pub fn new(
        connection: &'a Connection,
        message_id: &str,
        spent: u32,
        budget: CallBudget,
        now: UnixMillis,
    ) -> Self {
        let mut delivery = Delivery {
            connection,
            message_id: message_id.to_string(),
            budget,
            failures: spent,
            too_fast: 0,
            refreshed: false,
            attempts: 0,
            awaiting: Awaiting::Nothing,
            final_error: None,
            invalid_mdn: None,
            actions: VecDeque::new(),
        };
        delivery.start_attempt(now);
        delivery
    }

    /// The next thing to do, or `None` while an answer is awaited.
    pub fn poll(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Takes what happened at `now`. An event that answers no action asked
    /// for is ignored.
    pub fn handle(&mut self, now: UnixMillis, event: Event) {
        match (self.awaiting, event) {
            (Awaiting::AttemptRecorded, Event::Recorded { state, attempts }) => {
                self.attempts = attempts;
                if state != SentState::Pending {
                    // An asynchronous MDN for an earlier attempt settled it meanwhile.
                    self.finish(Finish::Outcome);
                } else if self.connection.rate_limit.is_some() {
                    self.ask(Action::ClaimSendSlot, Awaiting::Slot);
                } else {
                    self.send();
                }
            }
            (Awaiting::Slot, Event::SlotClaimed { at }) if at > now => {
                self.ask(Action::WaitUntil(at), Awaiting::SlotTime);
            }
            (Awaiting::Slot, Event::SlotClaimed { .. })
            | (Awaiting::SlotTime, Event::TimerFired) => {
                self.send();
            }
            (Awaiting::Answer, Event::Answered(response)) => {
                let failure = self.judge_answer(&response, now);
                match failure {
                    None => self.delivered(response, now),
                    Some(failure) => self.failed_attempt(failure, now),
                }
            }
            (Awaiting::Answer, Event::Unreachable(reason)) => {
                self.failed_attempt(AttemptFailure::Retry(format!("HTTP: {reason}")), now);
            }
            (Awaiting::FailureRecorded(until), Event::Recorded { .. }) => {
                self.ask(Action::WaitUntil(until), Awaiting::Pause);
            }
            (Awaiting::Pause, Event::TimerFired)
            | (Awaiting::RefreshRecorded, Event::Recorded { .. }) => {
                self.start_attempt(now);
            }
            (Awaiting::Token(status), Event::TokenRefreshed(event)) => {
                self.log(LogLevel::Info, format!("{}: {event}", self.message_id));
                let outcome = format!("HTTP {status}: credentials refused");
                self.ask(
                    Action::Record(Change::TokenRefreshed { outcome, event }),
                    Awaiting::RefreshRecorded,
                );
            }
            (Awaiting::Verdict(status), Event::MdnChecked(checked)) => self.judged(status, checked),
            (Awaiting::Settled(with), Event::Recorded { state, .. }) => self.settled(with, state),
            _ => {}
        }
    }

    fn ask(&mut self, action: Action, awaiting: Awaiting) {
        self.actions.push_back(action);
        self.awaiting = awaiting;
    }

    fn log(&mut self, level: LogLevel, line: String) {
        self.actions.push_back(Action::Log(level, line));
    }

    fn finish(&mut self, finish: Finish) {
        self.ask(Action::Finish(finish), Awaiting::Nothing);
    }

    fn partner(&self) -> &'a Partner {
        &self.connection.partner
    }

    fn start_attempt(&mut self, now: UnixMillis) {
        let timeout_seconds = attempt_seconds(self.partner());
        self.ask(
            Action::Record(Change::AttemptStarted {
                now,
                timeout_seconds,
            }),
            Awaiting::AttemptRecorded,
        );
    }

    fn send(&mut self) {
        let timeout_seconds = attempt_seconds(self.partner());
        self.ask(Action::Send { timeout_seconds }, Awaiting::Answer);
    }

    /// What is wrong with the partner's answer, if anything.
    fn judge_answer(&self, response: &Response, now: UnixMillis) -> Option<AttemptFailure> {
        let config = self.connection;
        let status = response.status;
        if crate::auth::is_refusal(config.auth.failure(), status, &response.body) {
            return Some(AttemptFailure::CredentialsRefused(status));
        }
        if config.advanced.auto_recover_rate_limits
            && crate::pace::is_too_fast(
                config.rate_limit.as_ref(),
                status,
                &response.headers,
                &response.body,
            )
        {
            let at = SystemTime::UNIX_EPOCH + Duration::from_millis(now);
            let wait = crate::pace::wait_before_retry(&response.headers, self.too_fast + 1, at);
            return Some(AttemptFailure::TooFast(status, wait));
        }
        match status {
            200..=299 if expects_sync_mdn(self.partner()) && response.body.is_empty() => {
                Some(AttemptFailure::Retry(format!(
                    "the partner answered HTTP {status} without the MDN"
                )))
            }
            200..=299 => None,
            500..=599 => Some(AttemptFailure::Retry(format!(
                "the partner answered HTTP {status}"
            ))),
            status => Some(AttemptFailure::Refused(status)),
        }
    }

    fn failed_attempt(&mut self, failure: AttemptFailure, now: UnixMillis) {
        let partner = self.partner();
        if matches!(failure, AttemptFailure::Retry(_)) {
            self.failures += 1;
        }
        let (reason, code) = match failure {
            AttemptFailure::TooFast(status, wait)
                if self.too_fast < crate::pace::MAX_RATE_LIMIT_RETRIES =>
            {
                return self.too_fast(status, wait, now);
            }
            AttemptFailure::TooFast(status, _) => (
                format!(
                    "the partner still answered HTTP {status} (too fast) after {} waits",
                    self.too_fast
                ),
                ErrorCode::RateLimited,
            ),
            AttemptFailure::Retry(reason) if self.failures < partner.send_attempts => {
                return self.resend(reason, now);
            }
            AttemptFailure::CredentialsRefused(status)
                if !self.refreshed && can_refresh(self.connection) =>
            {
                self.refreshed = true;
                self.ask(Action::RefreshToken, Awaiting::Token(status));
                return;
            }
            AttemptFailure::CredentialsRefused(status) => (
                format!(
                    "the partner refused our credentials (HTTP {status}); check the {} settings",
                    if self.refreshed {
                        "token refresh"
                    } else {
                        "authentication"
                    }
                ),
                ErrorCode::AuthFailed,
            ),
            AttemptFailure::Retry(reason) => (
                format!("{reason}; gave up after {} failed attempts", self.failures),
                ErrorCode::TransportFailed,
            ),
            AttemptFailure::Refused(status) => (
                format!("the partner answered HTTP {status}"),
                match status {
                    401 | 403 => ErrorCode::AuthFailed,
                    429 => ErrorCode::RateLimited,
                    _ => ErrorCode::TransportFailed,
                },
            ),
        };
        self.final_error = Some(format!(
            "sending {} to {}: {reason}",
            self.message_id,
            self.partner().url
        ));
        self.ask(
            Action::Record(Change::GaveUp { reason }),
            Awaiting::Settled(FinishWith::GaveUp(code)),
        );
    }

    /// The partner says we send too fast: wait as it asks, then try again.
    fn too_fast(&mut self, status: u16, wait: Duration, now: UnixMillis) {
        self.too_fast += 1;
        let event = format!(
            "attempt {}: the partner answered HTTP {status} (too fast); waited {} ms and sent again",
            self.attempts,
            wait.as_millis()
        );
        self.log(LogLevel::Warn, format!("{}: {event}", self.message_id));
        let until = now.saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        self.ask(
            Action::Record(Change::AttemptFailed {
                outcome: format!("HTTP {status}: too fast"),
                reason: None,
                event,
                lease_until_ms: until + LEASE_SLACK_MS,
            }),
            Awaiting::FailureRecorded(until),
        );
    }

    /// An attempt failed that is worth making again: after a pause in this
    /// call, or, when the pause and the attempt would outlast the call's
    /// budget, in a later one under the same Message-ID.
    fn resend(&mut self, reason: String, now: UnixMillis) {
        let delay = resend_delay_seconds(self.failures);
        let (attempts, id) = (self.attempts, self.message_id.clone());
        let next = now + delay * 1000;
        if !self
            .budget
            .allows(now, delay + attempt_seconds(self.partner()))
        {
            let event = format!(
                "attempt {attempts} failed ({reason}); the next attempt follows in {delay} s, outside this call (resume)"
            );
            self.log(LogLevel::Warn, format!("{id}: {event}"));
            let change = Change::AttemptFailed {
                outcome: reason.clone(),
                reason: Some(reason),
                event,
                lease_until_ms: next,
            };
            self.ask(
                Action::Record(change),
                Awaiting::Settled(FinishWith::Outcome),
            );
            return;
        }
        self.log(
            LogLevel::Warn,
            format!(
                "attempt {attempts} of {} for {id} failed ({reason}); sending it again under the same Message-ID in {delay} s",
                self.partner().send_attempts
            ),
        );
        let event = format!(
            "attempt {attempts} failed ({reason}); sent again under the same Message-ID after {delay} s"
        );
        let change = Change::AttemptFailed {
            outcome: reason.clone(),
            reason: Some(reason),
            event,
            lease_until_ms: next + LEASE_SLACK_MS,
        };
        self.ask(Action::Record(change), Awaiting::FailureRecorded(next));
    }

    /// The partner took the message (HTTP 2xx).
    fn delivered(&mut self, response: Response, now: UnixMillis) {
        let status = response.status;
        let partner = self.partner();
        if partner.mdn == MdnMode::None {
            let outcome = format!("HTTP {status}; no MDN requested");
            self.ask(
                Action::Record(Change::Delivered { outcome }),
                Awaiting::Settled(FinishWith::Outcome),
            );
        } else if !expects_sync_mdn(partner) {
            // The MDN comes later, POSTed to our endpoint; a later call
            // sends again if it does not come in time.
            let wait_ms = u64::from(partner.mdn_timeout_seconds()) * 1000;
            let outcome = format!("HTTP {status}; awaiting the asynchronous MDN");
            self.ask(
                Action::Record(Change::AwaitingAsyncMdn {
                    outcome,
                    lease_until_ms: now + wait_ms,
                }),
                Awaiting::Settled(FinishWith::Outcome),
            );
            self.log(
                LogLevel::Info,
                format!(
                    "{} accepted; awaiting the asynchronous MDN",
                    self.message_id
                ),
            );
        } else {
            self.ask(Action::CheckMdn(response), Awaiting::Verdict(status));
        }
    }

    /// The synchronous MDN, checked: its verdict settles the message; an
    /// MDN that is not valid fails it.
    fn judged(&mut self, status: u16, checked: Result<MdnVerdict, Error>) {
        match checked {
            Ok(verdict) => {
                for warning in &verdict.mdn.warnings {
                    let line = format!("MDN for {}: {warning}", self.message_id);
                    self.log(LogLevel::Warn, line);
                }
                let outcome = format!("HTTP {status}; MDN: {}", verdict.mdn.disposition);
                let change = Change::SyncMdn {
                    outcome,
                    verdict: Box::new(verdict),
                };
                self.ask(
                    Action::Record(change),
                    Awaiting::Settled(FinishWith::Outcome),
                );
            }
            Err(error) => {
                let change = Change::InvalidMdn {
                    outcome: format!("HTTP {status}; the MDN is not valid"),
                    reason: format!("the MDN is not valid: {error}"),
                };
                self.invalid_mdn = Some(error);
                self.ask(
                    Action::Record(change),
                    Awaiting::Settled(FinishWith::InvalidMdn),
                );
            }
        }
    }

    /// The final record is stored: finish as planned, or with the outcome
    /// when an asynchronous MDN acknowledged the message meanwhile.
    fn settled(&mut self, with: FinishWith, state: SentState) {
        let finish = match with {
            FinishWith::GaveUp(_) if state == SentState::Acknowledged => Finish::Outcome,
            FinishWith::Outcome => Finish::Outcome,
            FinishWith::GaveUp(code) => Finish::GaveUp {
                code,
                message: self.final_error.take().unwrap_or_default(),
            },
            FinishWith::InvalidMdn => match self.invalid_mdn.take() {
                Some(error) => Finish::InvalidMdn(error),
                None => Finish::Outcome,
            },
        };
        self.finish(finish);
    }
}

/// What a later call does with a stored record ([`resume_step`]).
#[derive(Debug, Clone)]
pub enum ResumeStep {
    /// Leave it: settled, or the call that holds it is still at work.
    Leave,
    /// Stop here: what is left does not fit in this call's budget.
    LaterCall,
    /// Give it up: apply the change while its lease is still expired.
    GiveUp {
        /// The change.
        change: Change,
        /// For the log, once applied.
        log: String,
    },
    /// Claim it (apply the change while its lease is still expired), then
    /// deliver it again with `spent` failed attempts counted.
    SendAgain {
        /// The claim.
        claim: Change,
        /// For the log, once claimed.
        log: String,
        /// Failed attempts already counted against `send_attempts`.
        spent: u32,
    },
}

/// Decides what a call resuming sends at `now` does with `record`: a send
/// the host interrupted is made again, at least once more, since that was
/// not the partner's fault; an asynchronous MDN overdue counts against the
/// attempts, and once they are used up the message is given up.
pub fn resume_step(
    record: &SentRecord,
    partner: &Partner,
    budget: &CallBudget,
    now: UnixMillis,
) -> ResumeStep {
    if !record.lease_expired(now) {
        return ResumeStep::Leave;
    }
    if !budget.allows(now, attempt_seconds(partner)) {
        return ResumeStep::LaterCall;
    }
    let id = &record.message_id;
    if record.awaiting_async_mdn && record.attempts >= partner.send_attempts {
        let reason = format!(
            "no asynchronous MDN within {} s after {} attempts",
            partner.mdn_timeout_seconds(),
            record.attempts
        );
        let log = format!("{id} failed: {reason}");
        return ResumeStep::GiveUp {
            change: Change::Abandoned {
                reason,
                as_event: true,
            },
            log,
        };
    }
    let (why, spent) = if record.awaiting_async_mdn {
        let why = format!(
            "no asynchronous MDN within {} s; sent again under the same Message-ID",
            partner.mdn_timeout_seconds()
        );
        (why, record.attempts)
    } else {
        let why =
            "sending was interrupted (the host stopped); sent again under the same Message-ID"
                .to_string();
        (
            why,
            record.attempts.min(partner.send_attempts.saturating_sub(1)),
        )
    };
    ResumeStep::SendAgain {
        log: format!("{id}: {why}"),
        claim: Change::Claimed {
            why,
            lease_until_ms: now + LEASE_SLACK_MS,
        },
        spent,
    }
}

/// The change that fails a record whose stored copy is gone.
pub fn copy_lost() -> Change {
    Change::Abandoned {
        reason: "its stored copy is gone, so it cannot be sent again".into(),
        as_event: false,
    }
}

/// What an asynchronous MDN POSTed to our endpoint (RFC 4130 §7.3) does to
/// the record of the message it acknowledges ([`match_async_mdn`]).
#[derive(Debug)]
pub enum MdnMatch {
    /// It names no message sent through this connection.
    Unknown(String),
    /// It decides the message: apply the change.
    Settles(Change),
    /// The message is settled already: the first MDN stands.
    Repeat,
}

/// Matches an asynchronous MDN, parsed and its signature verified, with the
/// record of the message it names (`None` when there is none), and judges
/// it against the MIC sent.
pub fn match_async_mdn(
    connection: &crate::config::Checked,
    mdn: crate::mdn::Mdn,
    record: Option<&SentRecord>,
) -> Result<MdnMatch, Error> {
    let original = mdn.original_message_id.trim().to_string();
    let record = record.filter(|record| record.partner == connection.connection.partner.as2_id);
    let Some(record) = record else {
        return Ok(MdnMatch::Unknown(format!(
            "the MDN acknowledges {}, which was not sent through this connection",
            crate::headers::truncate(&original, 200)
        )));
    };
    if !record.awaits_mdn() {
        return Ok(MdnMatch::Repeat);
    }
    let sent = record.mic();
    let signed_requested = record
        .signed_mdn_requested
        .unwrap_or(connection.connection.partner.mdn == crate::config::MdnMode::Signed);
    let mut verdict = crate::message::judge_mdn(mdn, &original, &sent, signed_requested)?;
    crate::doctor::consult(
        connection,
        &mut verdict,
        &sent,
        record.mic_variants.as_deref(),
    );
    Ok(MdnMatch::Settles(Change::AsyncMdn(Box::new(verdict))))
}

/// Whether a refused token can be refreshed.
fn can_refresh(connection: &Connection) -> bool {
    matches!(&connection.auth, crate::config::Auth::Token(token) if token.refresh.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mdn::{Disposition, Mdn};

    const SECOND: u64 = 1000;
    const MINUTE: u64 = 60 * SECOND;
    /// The simulated clock starts here: 2027-01-15, in milliseconds.
    const T0: UnixMillis = 1_800_000_000_000;

    /// A connection to a partner at a fixed URL; `partner` and `rest` are
    /// extra JSON members of the partner and of the connection.
    fn connection(partner: &str, rest: &str) -> Connection {
        let text = format!(
            r#"{{"name":"t","station":{{"as2_id":"US","private_key":"k"}},
                "partner":{{"as2_id":"THEM","url":"http://partner.test/as2","certificate":"c"{partner}}}{rest}}}"#
        );
        Connection::from_json(&text).unwrap()
    }

    fn mic() -> Mic {
        Mic {
            digest: vec![1, 2, 3],
            algorithm: DigestAlgorithm::Sha256,
            spelling: "sha-256".into(),
        }
    }

    fn verdict(proves_receipt: bool) -> MdnVerdict {
        MdnVerdict {
            mdn: Mdn {
                message_id: Some("<mdn@them>".into()),
                original_message_id: "<m@us>".into(),
                disposition: Disposition::processed(),
                received_mic: None,
                signed: true,
                warnings: Vec::new(),
            },
            mic_matched: proves_receipt,
            proves_receipt,
            signature_ok: true,
        }
    }

    /// What the simulated partner does with one POST.
    enum Answer {
        Status(u16, Vec<(&'static str, &'static str)>, &'static [u8]),
        Unreachable,
    }

    fn status(code: u16) -> Answer {
        Answer::Status(code, Vec::new(), b"")
    }

    /// A partner, a state store and a clock, simulated: drives a delivery
    /// to its end, answering each action as a host would, and keeps what
    /// it was asked to do.
    struct Sim {
        now: UnixMillis,
        record: SentRecord,
        /// What the partner answers, POST by POST; each exchange takes this long.
        answers: VecDeque<Answer>,
        exchange_ms: u64,
        /// The checked synchronous MDN, for each [`Action::CheckMdn`].
        mdns: VecDeque<Result<MdnVerdict, Error>>,
        /// Where the rate limit's next slot begins, from the start of a claim.
        slot_after_ms: u64,
        /// An asynchronous MDN settles the record before this attempt starts.
        settled_before_attempt: Option<(u32, SentState)>,
        logs: Vec<String>,
        /// When each POST went, from T0.
        posts: Vec<u64>,
        /// Every wait asked for, in milliseconds.
        waits: Vec<u64>,
        refreshes: u32,
    }

    impl Sim {
        fn new(answers: Vec<Answer>) -> Self {
            Sim {
                now: T0,
                record: SentRecord::new("<m@us>", "THEM", &mic(), None, T0),
                answers: answers.into(),
                exchange_ms: 100,
                mdns: VecDeque::new(),
                slot_after_ms: 0,
                settled_before_attempt: None,
                logs: Vec::new(),
                posts: Vec::new(),
                waits: Vec::new(),
                refreshes: 0,
            }
        }

        fn deliver(&mut self, connection: &Connection, spent: u32, budget: CallBudget) -> Finish {
            let mut delivery = Delivery::new(connection, "<m@us>", spent, budget, self.now);
            self.run(&mut delivery)
        }

        fn run(&mut self, delivery: &mut Delivery) -> Finish {
            loop {
                let action = delivery.poll().expect("the delivery asks for something");
                let event = match action {
                    Action::Log(_, line) => {
                        self.logs.push(line);
                        continue;
                    }
                    Action::Finish(finish) => return finish,
                    Action::Record(change) => self.record(change),
                    Action::ClaimSendSlot => Event::SlotClaimed {
                        at: self.now + self.slot_after_ms,
                    },
                    Action::WaitUntil(at) => {
                        assert!(at >= self.now, "a wait into the past");
                        self.waits.push(at - self.now);
                        self.now = at;
                        Event::TimerFired
                    }
                    Action::Send { timeout_seconds } => self.post(timeout_seconds),
                    Action::RefreshToken => {
                        self.refreshes += 1;
                        Event::TokenRefreshed("got a new token".into())
                    }
                    Action::CheckMdn(_) => Event::MdnChecked(self.mdns.pop_front().unwrap()),
                };
                delivery.handle(self.now, event);
            }
        }

        /// Applies a change as the component's compare-and-swap does: only
        /// to a record still pending.
        fn record(&mut self, change: Change) -> Event {
            if let Some((attempt, state)) = self.settled_before_attempt
                && matches!(change, Change::AttemptStarted { .. })
                && self.record.attempts + 1 == attempt
            {
                self.record.state = state;
            }
            if self.record.state == SentState::Pending {
                change.apply(&mut self.record);
            }
            Event::Recorded {
                state: self.record.state,
                attempts: self.record.attempts,
            }
        }

        fn post(&mut self, timeout_seconds: u64) -> Event {
            self.posts.push(self.now - T0);
            match self.answers.pop_front().expect("the partner has an answer") {
                Answer::Status(status, headers, body) => {
                    self.now += self.exchange_ms;
                    Event::Answered(Response {
                        status,
                        headers: headers
                            .into_iter()
                            .map(|(n, v)| (n.to_string(), v.to_string()))
                            .collect(),
                        body: body.to_vec(),
                    })
                }
                Answer::Unreachable => {
                    self.now += timeout_seconds * SECOND;
                    Event::Unreachable("connection timed out".into())
                }
            }
        }
    }

    fn budget() -> CallBudget {
        CallBudget::starting(T0, None)
    }

    fn gave_up(finish: &Finish) -> (ErrorCode, &str) {
        match finish {
            Finish::GaveUp { code, message } => (*code, message),
            other => panic!("expected a give-up, got {other:?}"),
        }
    }

    #[test]
    fn the_resend_pause_doubles_from_one_second_to_at_most_thirty() {
        let pauses: Vec<u64> = (1..=8).map(resend_delay_seconds).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn failed_attempts_are_resent_after_growing_pauses_until_send_attempts_then_given_up() {
        let connection = connection(r#","mdn":"none","send_attempts":4"#, "");
        let mut sim = Sim::new((0..4).map(|_| status(503)).collect());
        let finish = sim.deliver(&connection, 0, budget());
        let (code, message) = gave_up(&finish);
        assert_eq!(code, ErrorCode::TransportFailed);
        assert_eq!(
            message,
            "sending <m@us> to http://partner.test/as2: the partner answered HTTP 503; gave up after 4 failed attempts"
        );
        assert_eq!(sim.waits, [SECOND, 2 * SECOND, 4 * SECOND]);
        assert_eq!(sim.posts, [0, 1_100, 3_200, 7_300]);
        assert_eq!(sim.record.state, SentState::Failed);
        assert_eq!(sim.record.attempts, 4);
        let outcomes: Vec<&str> = sim
            .record
            .history
            .iter()
            .map(|a| a.outcome.as_str())
            .collect();
        assert_eq!(outcomes[0], "the partner answered HTTP 503");
        assert_eq!(
            outcomes[3],
            "the partner answered HTTP 503; gave up after 4 failed attempts"
        );
        assert_eq!(sim.record.events.len(), 3);
        assert!(sim.record.events[0].contains("sent again under the same Message-ID after 1 s"));
    }

    #[test]
    fn a_resend_that_would_outlast_the_call_budget_is_left_to_a_later_call() {
        // Each attempt waits 60 s for the synchronous MDN and times out; the
        // call may send for 240 s.
        let connection = connection(r#","send_attempts":10"#, "");
        let mut sim = Sim::new((0..3).map(|_| Answer::Unreachable).collect());
        let finish = sim.deliver(&connection, 0, budget());
        assert!(matches!(finish, Finish::Outcome), "{finish:?}");
        // 0-60 s, 61-121 s, 123-183 s; the next would run 187-247 s.
        assert_eq!(sim.posts, [0, 61 * SECOND, 123 * SECOND]);
        assert_eq!(sim.record.state, SentState::Pending);
        assert_eq!(sim.record.attempts, 3);
        assert_eq!(sim.record.lease_until_ms, T0 + 187 * SECOND);
        assert!(
            sim.record.events[2]
                .ends_with("the next attempt follows in 4 s, outside this call (resume)"),
            "{:?}",
            sim.record.events
        );
        // A later call leaves it alone until the pause is over, then sends
        // it again with the three failures counted.
        let partner = &connection.partner;
        let later = CallBudget::starting(T0 + 186 * SECOND, None);
        assert!(matches!(
            resume_step(&sim.record, partner, &later, T0 + 186 * SECOND),
            ResumeStep::Leave
        ));
        let step = resume_step(&sim.record, partner, &later, T0 + 187 * SECOND);
        let ResumeStep::SendAgain { spent, .. } = step else {
            panic!("{step:?}")
        };
        assert_eq!(spent, 3);
    }

    #[test]
    fn a_call_whose_budget_is_spent_leaves_resuming_to_the_next_call() {
        let connection = connection("", "");
        let mut record = SentRecord::new("<m@us>", "THEM", &mic(), None, T0);
        record.lease_until_ms = T0;
        // 60 s of MDN wait no longer fit 30 s before the end of the budget.
        let budget = CallBudget::starting(T0, Some("240000"));
        let step = resume_step(&record, &connection.partner, &budget, T0 + 210 * SECOND);
        assert!(matches!(step, ResumeStep::LaterCall), "{step:?}");
        let step = resume_step(&record, &connection.partner, &budget, T0 + 180 * SECOND);
        assert!(matches!(step, ResumeStep::SendAgain { .. }), "{step:?}");
    }

    #[test]
    fn the_call_budget_is_the_hosts_or_four_minutes() {
        let told = CallBudget::starting(T0, Some(" 5000 "));
        assert!(told.allows(T0, 5));
        assert!(!told.allows(T0 + 1, 5));
        let default = CallBudget::starting(T0, Some("soon"));
        assert!(default.allows(T0, 240));
        assert!(!default.allows(T0, 241));
    }

    #[test]
    fn too_fast_answers_wait_as_asked_and_do_not_count_as_failed_attempts() {
        let connection = connection(r#","mdn":"none","send_attempts":1"#, "");
        let mut sim = Sim::new(vec![
            Answer::Status(429, vec![("Retry-After", "7")], b""),
            status(429),
            status(200),
        ]);
        let finish = sim.deliver(&connection, 0, budget());
        assert!(matches!(finish, Finish::Outcome), "{finish:?}");
        assert_eq!(sim.waits, [7 * SECOND, 2 * SECOND]);
        assert_eq!(sim.record.state, SentState::Acknowledged);
        assert_eq!(sim.record.attempts, 3);
        assert_eq!(sim.record.history[0].outcome, "HTTP 429: too fast");
        assert_eq!(sim.record.history[2].outcome, "HTTP 200; no MDN requested");
        assert!(sim.record.events[0].contains("waited 7000 ms and sent again"));
        assert!(sim.logs[0].starts_with("<m@us>: attempt 1: the partner answered HTTP 429"));
    }

    #[test]
    fn too_fast_after_five_waits_is_given_up_as_rate_limited() {
        let connection = connection(r#","mdn":"none""#, "");
        let mut sim = Sim::new((0..6).map(|_| status(429)).collect());
        let finish = sim.deliver(&connection, 0, budget());
        let (code, message) = gave_up(&finish);
        assert_eq!(code, ErrorCode::RateLimited);
        assert!(message.ends_with("the partner still answered HTTP 429 (too fast) after 5 waits"));
        assert_eq!(sim.waits, [1, 2, 4, 8, 16].map(|s| s * SECOND));
    }

    #[test]
    fn too_fast_is_a_refusal_when_recovering_is_switched_off() {
        let connection = connection(
            r#","mdn":"none""#,
            r#","advanced":{"auto_recover_rate_limits":false}"#,
        );
        let mut sim = Sim::new(vec![status(429)]);
        let finish = sim.deliver(&connection, 0, budget());
        assert_eq!(gave_up(&finish).0, ErrorCode::RateLimited);
        assert!(sim.waits.is_empty());
    }

    const TOKEN_WITH_REFRESH: &str = r#","auth":{"type":"token","token":{"secret":"t"},
        "refresh":{"relative_uri":"/token"}}"#;

    #[test]
    fn refused_credentials_refresh_the_token_once_and_the_send_goes_on() {
        let connection = connection(r#","mdn":"none""#, TOKEN_WITH_REFRESH);
        let mut sim = Sim::new(vec![status(401), status(200)]);
        let finish = sim.deliver(&connection, 0, budget());
        assert!(matches!(finish, Finish::Outcome), "{finish:?}");
        assert_eq!(sim.refreshes, 1);
        assert_eq!(sim.record.state, SentState::Acknowledged);
        assert_eq!(
            sim.record.history[0].outcome,
            "HTTP 401: credentials refused"
        );
        assert_eq!(sim.record.events, ["got a new token"]);
        // No pause: the refreshed token goes out at once.
        assert!(sim.waits.is_empty());
    }

    #[test]
    fn credentials_refused_again_after_the_refresh_are_given_up() {
        let connection = connection(r#","mdn":"none""#, TOKEN_WITH_REFRESH);
        let mut sim = Sim::new(vec![status(401), status(401)]);
        let finish = sim.deliver(&connection, 0, budget());
        let (code, message) = gave_up(&finish);
        assert_eq!(code, ErrorCode::AuthFailed);
        assert!(message.ends_with(
            "the partner refused our credentials (HTTP 401); check the token refresh settings"
        ));
        assert_eq!(sim.refreshes, 1);
    }

    #[test]
    fn refused_credentials_without_a_refresh_are_given_up_at_once() {
        let connection = connection(
            r#","mdn":"none""#,
            r#","auth":{"type":"basic","username":"u","password":{"secret":"p"}}"#,
        );
        let mut sim = Sim::new(vec![status(401)]);
        let finish = sim.deliver(&connection, 0, budget());
        let (code, message) = gave_up(&finish);
        assert_eq!(code, ErrorCode::AuthFailed);
        assert!(message.ends_with("check the authentication settings"));
        assert_eq!(sim.refreshes, 0);
    }

    #[test]
    fn a_client_error_is_final_and_named_by_its_status() {
        for (answer, code) in [
            (400, ErrorCode::TransportFailed),
            (403, ErrorCode::AuthFailed),
        ] {
            let connection = connection(r#","mdn":"none""#, "");
            let mut sim = Sim::new(vec![status(answer)]);
            let finish = sim.deliver(&connection, 0, budget());
            assert_eq!(
                gave_up(&finish),
                (
                    code,
                    &*format!(
                        "sending <m@us> to http://partner.test/as2: the partner answered HTTP {answer}"
                    )
                )
            );
            assert_eq!(sim.record.attempts, 1);
        }
    }

    #[test]
    fn a_2xx_without_the_synchronous_mdn_is_sent_again() {
        let connection = connection(r#","mdn":"signed""#, "");
        let mut sim = Sim::new(vec![status(200), Answer::Status(200, Vec::new(), b"mdn")]);
        sim.mdns.push_back(Ok(verdict(true)));
        let finish = sim.deliver(&connection, 0, budget());
        assert!(matches!(finish, Finish::Outcome), "{finish:?}");
        assert_eq!(
            sim.record.history[0].outcome,
            "the partner answered HTTP 200 without the MDN"
        );
        assert_eq!(sim.record.history[1].outcome, "HTTP 200; MDN: processed");
        assert_eq!(sim.record.state, SentState::Acknowledged);
        assert!(sim.record.mdn.as_ref().unwrap().mic_matched);
    }

    #[test]
    fn a_synchronous_mdn_that_proves_no_receipt_fails_the_message() {
        let connection = connection("", "");
        let mut sim = Sim::new(vec![Answer::Status(200, Vec::new(), b"mdn")]);
        sim.mdns.push_back(Ok(verdict(false)));
        let finish = sim.deliver(&connection, 0, budget());
        assert!(matches!(finish, Finish::Outcome), "{finish:?}");
        assert_eq!(sim.record.state, SentState::Failed);
        assert_eq!(
            sim.record.reason.as_deref(),
            Some("the MDN's Received-Content-MIC does not match the MIC sent")
        );
    }

    #[test]
    fn a_synchronous_mdn_that_is_not_valid_fails_the_message_with_its_error() {
        let connection = connection("", "");
        let mut sim = Sim::new(vec![Answer::Status(200, Vec::new(), b"mdn")]);
        sim.mdns
            .push_back(Err(Error::Authentication("bad signature".into())));
        let finish = sim.deliver(&connection, 0, budget());
        let Finish::InvalidMdn(error) = finish else {
            panic!("{finish:?}")
        };
        assert_eq!(error.code(), ErrorCode::AuthenticationFailed);
        assert_eq!(sim.record.state, SentState::Failed);
        assert_eq!(
            sim.record.reason.as_deref(),
            Some("the MDN is not valid: authentication failed: bad signature")
        );
    }

    #[test]
    fn an_asynchronous_mdn_that_settled_the_message_meanwhile_ends_the_resend() {
        let connection = connection(r#","mdn":"none","send_attempts":3"#, "");
        let mut sim = Sim::new(vec![status(503)]);
        sim.settled_before_attempt = Some((2, SentState::Acknowledged));
        let finish = sim.deliver(&connection, 0, budget());
        assert!(matches!(finish, Finish::Outcome), "{finish:?}");
        assert_eq!(sim.posts.len(), 1);
        assert_eq!(sim.record.state, SentState::Acknowledged);
    }

    #[test]
    fn a_give_up_raced_by_an_acknowledgement_ends_with_the_acknowledgement() {
        let connection = connection(r#","mdn":"none""#, "");
        let mut delivery = Delivery::new(&connection, "<m@us>", 0, budget(), T0);
        assert!(matches!(delivery.poll(), Some(Action::Record(_))));
        let recorded = |state| Event::Recorded { state, attempts: 1 };
        delivery.handle(T0, recorded(SentState::Pending));
        assert!(matches!(delivery.poll(), Some(Action::Send { .. })));
        delivery.handle(
            T0,
            Event::Answered(Response {
                status: 400,
                headers: Headers::new(),
                body: Vec::new(),
            }),
        );
        assert!(matches!(
            delivery.poll(),
            Some(Action::Record(Change::GaveUp { .. }))
        ));
        delivery.handle(T0, recorded(SentState::Acknowledged));
        assert!(matches!(
            delivery.poll(),
            Some(Action::Finish(Finish::Outcome))
        ));
    }

    #[test]
    fn sends_keep_to_the_rate_limits_slots() {
        let connection = connection(
            r#","mdn":"none""#,
            r#","rate_limit":{"limit":2,"interval_seconds":1}"#,
        );
        let mut sim = Sim::new(vec![status(200)]);
        sim.slot_after_ms = 500;
        let finish = sim.deliver(&connection, 0, budget());
        assert!(matches!(finish, Finish::Outcome), "{finish:?}");
        assert_eq!(sim.waits, [500]);
        assert_eq!(sim.posts, [500]);
    }

    #[test]
    fn an_unanswered_event_changes_nothing() {
        let connection = connection("", "");
        let mut delivery = Delivery::new(&connection, "<m@us>", 0, budget(), T0);
        delivery.handle(T0, Event::TimerFired);
        assert!(matches!(
            delivery.poll(),
            Some(Action::Record(Change::AttemptStarted { .. }))
        ));
        assert!(delivery.poll().is_none());
    }

    #[test]
    fn an_overdue_asynchronous_mdn_is_sent_again_after_thirty_minutes_then_given_up() {
        let connection = connection(r#","mdn_delivery":"async","send_attempts":2"#, "");
        let partner = &connection.partner;
        let mut sim = Sim::new(vec![status(200)]);
        let finish = sim.deliver(&connection, 0, budget());
        assert!(matches!(finish, Finish::Outcome), "{finish:?}");
        assert!(sim.record.awaiting_async_mdn);
        assert_eq!(sim.record.state, SentState::Pending);
        assert_eq!(
            sim.record.history[0].outcome,
            "HTTP 200; awaiting the asynchronous MDN"
        );
        assert_eq!(sim.logs, ["<m@us> accepted; awaiting the asynchronous MDN"]);
        let accepted = sim.now;
        // A minute before the 30-minute MDN timeout: left alone.
        let almost = accepted + 29 * MINUTE;
        let call = CallBudget::starting(almost, None);
        assert!(matches!(
            resume_step(&sim.record, partner, &call, almost),
            ResumeStep::Leave
        ));
        // At the timeout: claimed and sent again, the first attempt counted.
        let overdue = accepted + 30 * MINUTE;
        let call = CallBudget::starting(overdue, None);
        let ResumeStep::SendAgain { claim, log, spent } =
            resume_step(&sim.record, partner, &call, overdue)
        else {
            panic!("expected a resend")
        };
        assert_eq!(spent, 1);
        assert_eq!(
            log,
            "<m@us>: no asynchronous MDN within 1800 s; sent again under the same Message-ID"
        );
        claim.apply(&mut sim.record);
        assert!(!sim.record.lease_expired(overdue));
        sim.now = overdue;
        sim.answers.push_back(status(200));
        let finish = sim.deliver(&connection, spent, call);
        assert!(matches!(finish, Finish::Outcome), "{finish:?}");
        assert_eq!(sim.record.attempts, 2);
        // Another 30 minutes without the MDN: both attempts are spent.
        let given_up = sim.now + 30 * MINUTE;
        let call = CallBudget::starting(given_up, None);
        let ResumeStep::GiveUp { change, log } = resume_step(&sim.record, partner, &call, given_up)
        else {
            panic!("expected a give-up")
        };
        assert_eq!(
            log,
            "<m@us> failed: no asynchronous MDN within 1800 s after 2 attempts"
        );
        change.apply(&mut sim.record);
        assert_eq!(sim.record.state, SentState::Failed);
        assert!(sim.record.awaits_mdn(), "a late MDN still decides it");
    }

    #[test]
    fn a_send_the_host_interrupted_gets_one_more_attempt_even_when_all_were_made() {
        let connection = connection(r#","send_attempts":3"#, "");
        let mut record = SentRecord::new("<m@us>", "THEM", &mic(), None, T0);
        record.attempts = 3;
        let now = record.lease_until_ms;
        let step = resume_step(&record, &connection.partner, &budget(), now);
        let ResumeStep::SendAgain { spent, log, .. } = step else {
            panic!("{step:?}")
        };
        assert_eq!(spent, 2);
        assert!(log.ends_with(
            "sending was interrupted (the host stopped); sent again under the same Message-ID"
        ));
        assert!(matches!(
            resume_step(&record, &connection.partner, &budget(), now - 1),
            ResumeStep::Leave
        ));
    }

    #[test]
    fn an_asynchronous_mdn_after_the_give_up_still_settles_it_and_says_it_came_late() {
        let mut record = SentRecord::new("<m@us>", "THEM", &mic(), None, T0);
        Change::Abandoned {
            reason: "no asynchronous MDN within 1800 s after 2 attempts".into(),
            as_event: true,
        }
        .apply(&mut record);
        assert!(record.awaits_mdn());
        Change::AsyncMdn(Box::new(verdict(true))).apply(&mut record);
        assert_eq!(record.state, SentState::Acknowledged);
        assert_eq!(record.reason, None);
        assert_eq!(
            record.events[1],
            "the asynchronous MDN came after the message was given up (no asynchronous MDN within 1800 s after 2 attempts)"
        );
        // Settled by an MDN: a repeat of it decides nothing.
        assert!(!record.awaits_mdn());
    }

    #[test]
    fn the_stored_record_keeps_its_field_names() {
        let record = SentRecord::new("<m@us>", "THEM", &mic(), Some("a.edi".into()), T0);
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["state"], "pending");
        assert_eq!(json["mic_algorithm"], "sha-256");
        assert_eq!(json["lease_until_ms"], T0 + LEASE_SLACK_MS);
        assert_eq!(json["created"], T0 / 1000);
        // Records written before the later fields existed still read.
        let old = r#"{"message_id":"<m@us>","partner":"THEM","mic_digest":[1],
            "mic_algorithm":"sha-256","state":"acknowledged","attempts":1,"mdn":null,"reason":null}"#;
        let read: SentRecord = serde_json::from_str(old).unwrap();
        assert_eq!(read.state, SentState::Acknowledged);
        assert!(read.history.is_empty());
    }
}

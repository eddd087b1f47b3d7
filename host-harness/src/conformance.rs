//! The conformance self-test: RFC 4130 §2.4.2's interoperability matrix,
//! run against a partner's real endpoint with a small test document.
//!
//! Each profile is the connection with its partner settings overridden
//! (signing, encryption, the receipt asked for, its delivery, compression,
//! an algorithm), sent once with no resend. What the partner accepts and
//! what its MDN says become a row; the report ends with the strongest
//! profile that worked. Asynchronous MDNs come to the connection's
//! `station.url`, which a `serve` of this data folder (or the caller's own
//! endpoint) must answer.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::connector::Connector;
use crate::describe::{describe, disposition_text, signature_code, state_text};
use crate::runtime::{Document, api};

/// What the profile protects the document with (RFC 4130 §2.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Security {
    /// Neither signed nor encrypted.
    Plain,
    /// Signed only.
    Signed,
    /// Encrypted only.
    Encrypted,
    /// Signed, then encrypted.
    SignedEncrypted,
}

impl Security {
    fn text(self) -> &'static str {
        match self {
            Security::Plain => "plain",
            Security::Signed => "signed",
            Security::Encrypted => "encrypted",
            Security::SignedEncrypted => "signed+encrypted",
        }
    }

    fn rank(self) -> u8 {
        match self {
            Security::Plain => 0,
            Security::Encrypted => 1,
            Security::Signed => 2,
            Security::SignedEncrypted => 3,
        }
    }
}

/// The receipt a profile asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Receipt {
    /// No MDN.
    None,
    /// An unsigned MDN.
    Unsigned,
    /// A signed MDN.
    Signed,
}

impl Receipt {
    fn setting(self) -> &'static str {
        match self {
            Receipt::None => "none",
            Receipt::Unsigned => "unsigned",
            Receipt::Signed => "signed",
        }
    }
}

/// One row of the matrix: the settings it sends with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// Signed, encrypted, both, neither.
    pub security: Security,
    /// The receipt asked for.
    pub receipt: Receipt,
    /// Whether the MDN is asked for asynchronously.
    pub asynchronous: bool,
    /// The signing digest (`sha256`), when signed.
    pub signing: Option<String>,
    /// The encryption (`aes256-cbc`), when encrypted.
    pub encryption: Option<String>,
    /// `none`, `before-signing` or `after-signing`.
    pub compression: String,
}

impl Profile {
    fn new(security: Security, receipt: Receipt, asynchronous: bool) -> Self {
        let signed = matches!(security, Security::Signed | Security::SignedEncrypted);
        let encrypted = matches!(security, Security::Encrypted | Security::SignedEncrypted);
        Profile {
            security,
            receipt,
            asynchronous,
            signing: signed.then(|| "sha256".into()),
            encryption: encrypted.then(|| "aes256-cbc".into()),
            compression: "none".into(),
        }
    }

    /// The profile in a few words: `signed+encrypted (sha256, aes256-cbc), signed receipt, async`.
    pub fn name(&self) -> String {
        let algorithms: Vec<&str> = [self.signing.as_deref(), self.encryption.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let mut name = self.security.text().to_string();
        if !algorithms.is_empty() {
            name += &format!(" ({})", algorithms.join(", "));
        }
        if self.compression != "none" {
            name += &format!(", compressed {}", self.compression);
        }
        name += match self.receipt {
            Receipt::None => ", no receipt",
            Receipt::Unsigned => ", unsigned receipt",
            Receipt::Signed => ", signed receipt",
        };
        if self.receipt != Receipt::None {
            name += if self.asynchronous {
                ", async"
            } else {
                ", sync"
            };
        }
        name
    }

    /// The connection `config` with this profile's partner settings.
    fn apply(&self, config: &Value, timeout: Duration) -> Value {
        let mut config = config.clone();
        let partner = &mut config["partner"];
        partner["signing"] = self.signing.clone().unwrap_or_else(|| "none".into()).into();
        partner["encryption"] = self
            .encryption
            .clone()
            .unwrap_or_else(|| "none".into())
            .into();
        partner["compression"] = self.compression.clone().into();
        partner["mdn"] = self.receipt.setting().into();
        partner["mdn_delivery"] = if self.asynchronous { "async" } else { "sync" }.into();
        partner["send_attempts"] = 1.into();
        partner["mdn_timeout_seconds"] = timeout.as_secs().max(1).into();
        if let Some(object) = partner.as_object_mut() {
            // The profile's own digest is the MIC's; a fixed one would hide it.
            object.remove("mdn_micalg");
        }
        config
    }

    /// How strong the profile is, to pick the best one that worked.
    fn strength(&self) -> (u8, u8, u8, u8, u8) {
        let receipt = match self.receipt {
            Receipt::None => 0,
            Receipt::Unsigned => 1,
            Receipt::Signed => 2,
        };
        let encryption = match self.encryption.as_deref() {
            None => 0,
            Some("3des") => 1,
            Some(name) if name.ends_with("gcm") => 10 + key_bits(name),
            Some(name) => 5 + key_bits(name),
        };
        let digest = match self.signing.as_deref() {
            None => 0,
            Some("sha1") => 1,
            Some(name) => name
                .trim_start_matches("sha")
                .parse::<u16>()
                .map_or(2, |bits| (bits / 64) as u8),
        };
        (
            self.security.rank(),
            receipt,
            encryption,
            digest,
            // Synchronous first among equals: it needs no reachable station URL.
            u8::from(!self.asynchronous),
        )
    }
}

fn key_bits(name: &str) -> u8 {
    match name {
        n if n.starts_with("aes128") => 1,
        n if n.starts_with("aes192") => 2,
        _ => 3,
    }
}

/// The matrix: every security × receipt × delivery of RFC 4130 §2.4.2,
/// then compression both ways, each encryption and each signing digest.
pub fn matrix() -> Vec<Profile> {
    let mut profiles = Vec::new();
    for security in [
        Security::Plain,
        Security::Signed,
        Security::Encrypted,
        Security::SignedEncrypted,
    ] {
        profiles.push(Profile::new(security, Receipt::None, false));
        for receipt in [Receipt::Unsigned, Receipt::Signed] {
            for asynchronous in [false, true] {
                profiles.push(Profile::new(security, receipt, asynchronous));
            }
        }
    }
    let strongest = || Profile::new(Security::SignedEncrypted, Receipt::Signed, false);
    for compression in ["before-signing", "after-signing"] {
        let mut profile = strongest();
        profile.compression = compression.into();
        profiles.push(profile);
    }
    for encryption in [
        "3des",
        "aes128-cbc",
        "aes192-cbc",
        "aes128-gcm",
        "aes192-gcm",
        "aes256-gcm",
    ] {
        let mut profile = strongest();
        profile.encryption = Some(encryption.into());
        profiles.push(profile);
    }
    for signing in ["sha1", "sha224", "sha384", "sha512"] {
        let mut profile = strongest();
        profile.signing = Some(signing.into());
        profiles.push(profile);
    }
    profiles
}

/// What came of one profile.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The profile.
    pub profile: Profile,
    /// Its name, as printed.
    pub name: String,
    /// `pass` (acknowledged by an MDN that proves receipt), `unproven`
    /// (the MDN says processed but proves nothing: no MIC, another MIC, or
    /// unsigned where a signed one was asked), `sent` (taken with HTTP 2xx,
    /// no receipt asked), `fail` (refused, an error MDN, no MDN) or `skipped`.
    pub result: &'static str,
    /// The MDN's disposition, when one came.
    pub disposition: Option<String>,
    /// `verified` or `unsigned`, when an MDN came.
    pub mdn_signature: Option<&'static str>,
    /// Whether the MDN's MIC was ours.
    pub mic_matched: Option<bool>,
    /// What happened, for people: the error, or the state and MDN warnings.
    pub detail: String,
    /// How long the profile took, in milliseconds.
    pub millis: u64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The partner's AS2 identifier.
    pub partner: String,
    /// Its URL.
    pub url: String,
    /// One row per profile, in the matrix's order.
    pub rows: Vec<Row>,
    /// The strongest profile that passed, by name.
    pub strongest: Option<String>,
}

/// How the run goes.
pub struct Options {
    /// How long to wait for each MDN.
    pub timeout: Duration,
    /// The profiles to run (default: [`matrix`]).
    pub profiles: Vec<Profile>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(30),
            profiles: matrix(),
        }
    }
}

/// The small test document each profile sends: an X12 997-shaped text,
/// numbered so every message differs.
fn test_document(number: usize) -> Document {
    let text = format!(
        "ISA*00*          *00*          *ZZ*CONFORMANCE    *ZZ*PARTNER        *261207*1200*U*00401*{number:09}*0*T*>~\nGS*FA*CONFORMANCE*PARTNER*20261207*1200*{number}*X*004010~\nST*997*0001~\nAK1*PO*{number}~\nAK9*A*1*1*1~\nSE*4*0001~\nGE*1*{number}~\nIEA*1*{number:09}~\n"
    );
    Document {
        file_name: Some(format!("conformance-{number:02}.x12")),
        content_type: "application/edi-x12".into(),
        content: text.into_bytes(),
    }
}

/// Runs every profile of `options` over `config` (a connection's JSON),
/// one after the other, calling `progress` with each row as it is done.
/// Blocking: call it off the async threads.
pub fn run(
    connector: &Connector,
    config: &str,
    options: &Options,
    progress: &mut dyn FnMut(usize, usize, &Row),
) -> anyhow::Result<Report> {
    let base: Value = serde_json::from_str(config)?;
    let partner = base["partner"]["as2_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let url = base["partner"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let station_url = base["station"]["url"].as_str().map(str::to_string);
    let total = options.profiles.len();
    let mut rows = Vec::new();
    for (index, profile) in options.profiles.iter().enumerate() {
        let started = Instant::now();
        let row = if profile.asynchronous && station_url.is_none() {
            Row {
                profile: profile.clone(),
                name: profile.name(),
                result: "skipped",
                disposition: None,
                mdn_signature: None,
                mic_matched: None,
                detail: "the connection has no station.url for the partner to POST the MDN to"
                    .into(),
                millis: 0,
            }
        } else {
            let config = profile.apply(&base, options.timeout).to_string();
            let mut row = run_one(connector, &config, profile, index + 1, options.timeout)?;
            row.millis = started.elapsed().as_millis() as u64;
            row
        };
        progress(index + 1, total, &row);
        rows.push(row);
    }
    // The strongest cipher and digest the partner took, together, when no
    // row tried them so.
    if let Some(profile) = combined(&rows)
        && !rows.iter().any(|row| row.profile == profile)
    {
        let started = Instant::now();
        let config = profile.apply(&base, options.timeout).to_string();
        let mut row = run_one(connector, &config, &profile, total + 1, options.timeout)?;
        row.millis = started.elapsed().as_millis() as u64;
        progress(total + 1, total + 1, &row);
        rows.push(row);
    }
    let strongest = rows
        .iter()
        .filter(|row| row.result == "pass")
        .max_by_key(|row| row.profile.strength())
        .map(|row| row.name.clone());
    Ok(Report {
        partner,
        url,
        rows,
        strongest,
    })
}

/// Signed and encrypted with a signed synchronous receipt, with the
/// strongest encryption and the strongest digest that passed so.
fn combined(rows: &[Row]) -> Option<Profile> {
    let passed: Vec<&Profile> = rows
        .iter()
        .filter(|row| row.result == "pass")
        .map(|row| &row.profile)
        .filter(|p| {
            p.security == Security::SignedEncrypted
                && p.receipt == Receipt::Signed
                && !p.asynchronous
                && p.compression == "none"
        })
        .collect();
    let encryption = passed
        .iter()
        .max_by_key(|p| p.strength().2)?
        .encryption
        .clone();
    let signing = passed
        .iter()
        .max_by_key(|p| p.strength().3)?
        .signing
        .clone();
    let mut profile = Profile::new(Security::SignedEncrypted, Receipt::Signed, false);
    profile.encryption = encryption;
    profile.signing = signing;
    Some(profile)
}

fn run_one(
    connector: &Connector,
    config: &str,
    profile: &Profile,
    number: usize,
    timeout: Duration,
) -> anyhow::Result<Row> {
    let mut row = Row {
        profile: profile.clone(),
        name: profile.name(),
        result: "fail",
        disposition: None,
        mdn_signature: None,
        mic_matched: None,
        detail: String::new(),
        millis: 0,
    };
    let sent = match connector.import(config, &[test_document(number)])? {
        Ok(mut outcomes) => outcomes.remove(0),
        Err(error) => Err(error),
    };
    let outcome = match sent {
        Ok(outcome) => outcome,
        Err(error) => {
            row.detail = describe(&error);
            return Ok(row);
        }
    };
    let (state, mdn) = if profile.asynchronous && outcome.state == api::MessageState::Pending {
        wait_for_async_mdn(connector, config, &outcome.message_id, timeout)?
    } else {
        (outcome.state, outcome.mdn.clone())
    };
    if let Some(mdn) = &mdn {
        row.disposition = Some(disposition_text(&mdn.disposition));
        row.mdn_signature = Some(signature_code(mdn.signature));
        row.mic_matched = mdn
            .received_mic
            .as_ref()
            .map(|mic| mic.digest == outcome.mic.digest);
    }
    row.result = match profile.receipt {
        // Taken with HTTP 2xx is all a profile without receipt can show:
        // whether the partner processed it, nothing says.
        Receipt::None if state != api::MessageState::Failed => "sent",
        Receipt::None => "fail",
        _ if state == api::MessageState::Acknowledged => "pass",
        // The partner says it processed the message, but its MDN proves
        // nothing: no MIC, another MIC, or unsigned where signed was asked.
        _ if mdn
            .as_ref()
            .is_some_and(|mdn| is_positive(&mdn.disposition)) =>
        {
            "unproven"
        }
        _ => "fail",
    };
    let mut detail = vec![format!("state {}", state_text(state))];
    if mdn.is_none() && profile.receipt != Receipt::None {
        detail.push("no MDN came".into());
    }
    if let Some(mdn) = &mdn {
        detail.extend(mdn.warnings.iter().cloned());
    }
    row.detail = detail.join("; ");
    Ok(row)
}

/// `processed`, or `processed/warning: …` (RFC 3798 §3.2.6).
fn is_positive(disposition: &crate::runtime::Disposition) -> bool {
    let text = disposition_text(disposition);
    text == "processed" || text.starts_with("processed/warning")
}

/// Polls the message's record until its asynchronous MDN settled it, or
/// `timeout` (plus a moment for the POST) has passed.
fn wait_for_async_mdn(
    connector: &Connector,
    config: &str,
    message_id: &str,
    timeout: Duration,
) -> anyhow::Result<(api::MessageState, Option<api::MdnSummary>)> {
    let deadline = Instant::now() + timeout + Duration::from_secs(2);
    loop {
        let status = connector.lookup_message(config, message_id)?;
        if let Ok(status) = &status
            && (status.state != api::MessageState::Pending || Instant::now() >= deadline)
        {
            return Ok((status.state, status.mdn.clone()));
        }
        if Instant::now() >= deadline {
            return Ok((api::MessageState::Pending, None));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The report as a table for people, ending with the strongest profile.
pub fn table(report: &Report) -> String {
    let width = report
        .rows
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(10)
        .max(7);
    let mdn_width = report
        .rows
        .iter()
        .filter_map(|r| r.disposition.as_ref().map(String::len))
        .max()
        .unwrap_or(3);
    let mut out = format!(
        "conformance of {} at {}\n\n{:<width$}  {:<7}  {:<mdn_width$}  {:<9}  {}\n",
        report.partner, report.url, "profile", "result", "MDN", "MDN sig", "MIC"
    );
    for row in &report.rows {
        out += &format!(
            "{:<width$}  {:<7}  {:<mdn_width$}  {:<9}  {}\n",
            row.name,
            row.result,
            row.disposition.as_deref().unwrap_or("-"),
            row.mdn_signature.unwrap_or("-"),
            match row.mic_matched {
                Some(true) => "matched",
                Some(false) => "DIFFERS",
                None => "-",
            }
        );
    }
    let count = |result: &str| report.rows.iter().filter(|r| r.result == result).count();
    out += &format!(
        "\n{} of {} profiles passed (acknowledged), {} processed without proof of receipt, {} sent without a receipt, {} failed, {} skipped\n",
        count("pass"),
        report.rows.len(),
        count("unproven"),
        count("sent"),
        count("fail"),
        count("skipped")
    );
    out += &match &report.strongest {
        Some(name) => format!("strongest profile that works: {name}\n"),
        None => "no profile worked\n".to_string(),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_covers_rfc_4130_2_4_2_and_every_algorithm() {
        let profiles = matrix();
        // 4 securities × (no receipt + 2 receipts × 2 deliveries), then
        // compression twice, six more encryptions, four more digests.
        assert_eq!(profiles.len(), 4 * 5 + 2 + 6 + 4);
        let names: Vec<String> = profiles.iter().map(Profile::name).collect();
        assert!(names.contains(&"plain, no receipt".to_string()));
        assert!(
            names.contains(
                &"signed+encrypted (sha256, aes256-cbc), signed receipt, async".to_string()
            )
        );
        assert!(
            names.contains(
                &"signed+encrypted (sha256, aes256-gcm), signed receipt, sync".to_string()
            )
        );
        let unique: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "every profile differs");
    }

    #[test]
    fn the_strongest_prefers_security_then_receipt_then_algorithms() {
        let weak = Profile::new(Security::Signed, Receipt::Signed, false);
        let strong = Profile::new(Security::SignedEncrypted, Receipt::Unsigned, false);
        assert!(strong.strength() > weak.strength());
        let mut gcm = Profile::new(Security::SignedEncrypted, Receipt::Signed, false);
        gcm.encryption = Some("aes256-gcm".into());
        let cbc = Profile::new(Security::SignedEncrypted, Receipt::Signed, false);
        assert!(gcm.strength() > cbc.strength());
        let asynchronous = Profile::new(Security::SignedEncrypted, Receipt::Signed, true);
        assert!(cbc.strength() > asynchronous.strength());
    }
}

//! EDIINT Certificate Exchange Messaging (CEM,
//! draft-meadors-certificate-exchange-14; announced as `CEM` in
//! EDIINT-Features, RFC 6017): a station tells its partner of a new
//! certificate, the date by which to answer, and where; the partner answers
//! `Accepted` or `Rejected`.
//!
//! A request travels as an ordinary AS2 message whose payload is a
//! `multipart/related` (RFC 2387) of the request's XML and the certificate
//! as PKCS#7 certs-only, referenced by Content-ID; a response is a message
//! whose payload is the response's XML. This module makes and reads both;
//! what a station does with them is the component's.

use std::fmt::Write as _;

use der::{Decode, Encode};
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::smime::Cert;

/// The XML namespace of both messages (draft §4).
pub const NAMESPACE: &str = "urn:ietf:params:xml:ns:ediintcertificateexchange";
/// The MIME type of the request's and the response's XML (draft §3).
pub const CONTENT_TYPE: &str = "application/ediint-cert-exchange+xml";
/// The MIME type of the certificate part of a request.
pub const CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";
/// The EDIINT-Features token (RFC 6017 §5).
pub const FEATURE: &str = "CEM";

/// What the certificate is for (draft §4.1, CertUsage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Encrypting messages to its owner.
    KeyEncipherment,
    /// Verifying its owner's signatures.
    DigitalSignature,
    /// The owner's TLS server.
    TlsServer,
    /// The owner's TLS client.
    TlsClient,
}

impl Usage {
    fn name(self) -> &'static str {
        match self {
            Usage::KeyEncipherment => "keyEncipherment",
            Usage::DigitalSignature => "digitalSignature",
            Usage::TlsServer => "tlsServer",
            Usage::TlsClient => "tlsClient",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [
            Usage::KeyEncipherment,
            Usage::DigitalSignature,
            Usage::TlsServer,
            Usage::TlsClient,
        ]
        .into_iter()
        .find(|usage| usage.name() == name)
    }
}

/// A certificate by its issuer and serial number (XML-DSig's
/// X509IssuerSerial), as both messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateId {
    /// The issuer's distinguished name (RFC 4514).
    pub issuer: String,
    /// The serial number, in decimal.
    pub serial: String,
}

impl CertificateId {
    /// The identifier of `cert`.
    pub fn of(cert: &Cert) -> Self {
        CertificateId {
            issuer: cert.issuer(),
            serial: decimal(&cert.serial_bytes()),
        }
    }
}

/// One certificate offered (draft §4.1, TrustRequest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRequest {
    /// What it is for.
    pub usages: Vec<Usage>,
    /// By when to answer, RFC 3339; the sender switches to the certificate then.
    pub respond_by: Option<String>,
    /// Where the response goes (an AS2 URL).
    pub response_url: String,
    /// The certificate offered.
    pub certificate: CertificateId,
    /// The Content-ID of the MIME part that carries it, without angle brackets.
    pub content_id: String,
}

/// A CEM request (draft §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Names the request; the response repeats it.
    pub request_id: String,
    /// The sender's AS2 identifier.
    pub sender: String,
    /// When it was made, RFC 3339.
    pub originated: String,
    /// The certificates offered.
    pub trust: Vec<TrustRequest>,
}

/// The answer to one certificate (draft §4.2, CertStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The partner will use it from the respond-by date.
    Accepted,
    /// The partner will not.
    Rejected,
}

impl Status {
    /// As written in the XML.
    pub fn name(self) -> &'static str {
        match self {
            Status::Accepted => "Accepted",
            Status::Rejected => "Rejected",
        }
    }
}

/// One certificate's answer (draft §4.2, TrustResponse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustResponse {
    /// Accepted or rejected.
    pub status: Status,
    /// Why, when rejected.
    pub reason: Option<String>,
    /// The certificate answered about.
    pub certificate: CertificateId,
}

/// A CEM response (draft §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The request answered.
    pub request_id: String,
    /// The responder's AS2 identifier.
    pub sender: String,
    /// When it was made, RFC 3339.
    pub originated: String,
    /// One answer per certificate.
    pub trust: Vec<TrustResponse>,
}

/// Which way an exchange went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// We offered our certificate.
    Sent,
    /// The partner offered its certificate.
    Received,
}

/// Where an exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeState {
    /// Not answered yet.
    Pending,
    /// Accepted: the certificate is used from the respond-by date.
    Accepted,
    /// Rejected.
    Rejected,
}

/// One certificate exchange, as the state store keeps it (`cem/<partner>/<request id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// The request's id.
    pub request_id: String,
    /// The partner's AS2 identifier.
    pub partner: String,
    /// Which way.
    pub direction: Direction,
    /// The certificate offered, PEM.
    pub certificate_pem: String,
    /// For a sent exchange: the key store entry of our key behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// When the certificate takes over, in seconds since the Unix epoch.
    pub respond_by: u64,
    /// Where the response goes.
    pub response_url: String,
    /// Where it stands.
    pub state: ExchangeState,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The state store key of an exchange.
pub fn exchange_key(partner: &str, request_id: &str) -> String {
    format!("cem/{partner}/{request_id}")
}

/// The state store key of the switches in effect for `partner`'s connection.
pub fn switches_key(partner: &str) -> String {
    format!("cem-switch/{partner}")
}

/// The certificates an accepted exchange puts in place at its respond-by
/// date, for one connection: the partner's (it offered, we accepted) and
/// our key (we offered, it accepted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switches {
    /// The partner's new certificate (PEM) and from when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_certificate: Option<(String, u64)>,
    /// Our key store entry to sign with, and from when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station_key: Option<(String, u64)>,
}

impl Switches {
    /// Records what `exchange`, just accepted, will switch.
    pub fn accept(&mut self, exchange: &Exchange) {
        match exchange.direction {
            Direction::Received => {
                self.partner_certificate =
                    Some((exchange.certificate_pem.clone(), exchange.respond_by));
            }
            Direction::Sent => {
                if let Some(key) = &exchange.key_name {
                    self.station_key = Some((key.clone(), exchange.respond_by));
                }
            }
        }
    }

    /// The partner's certificate to use at `now`, when a switch is due.
    pub fn partner_certificate_at(&self, now: u64) -> Option<&str> {
        self.partner_certificate
            .as_ref()
            .filter(|(_, from)| now >= *from)
            .map(|(pem, _)| pem.as_str())
    }

    /// Our key to sign with at `now`, when a switch is due.
    pub fn station_key_at(&self, now: u64) -> Option<&str> {
        self.station_key
            .as_ref()
            .filter(|(_, from)| now >= *from)
            .map(|(key, _)| key.as_str())
    }
}

/// What a received message's documents are, as far as CEM goes.
#[derive(Debug)]
pub enum Message {
    /// A request, with the certificates its parts carry.
    Request(Request, Vec<Cert>),
    /// A response.
    Response(Response),
}

/// Whether a document of `content_type` is a CEM request or response.
pub fn is_cem(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

/// A CEM request or response, when the message's first document is one
/// (its root part is `application/ediint-cert-exchange+xml`); `None` for
/// any other message.
pub fn classify(documents: &[&crate::message::Document]) -> Result<Option<Message>, Error> {
    let Some(first) = documents.first() else {
        return Ok(None);
    };
    if !is_cem(&first.content_type) {
        return Ok(None);
    }
    if contains(&first.content, b"EDIINTCertificateExchangeResponse") {
        return Ok(Some(Message::Response(Response::parse(&first.content)?)));
    }
    let request = Request::parse(&first.content)?;
    let mut certificates = Vec::new();
    for document in &documents[1..] {
        if document
            .content_type
            .to_ascii_lowercase()
            .starts_with("application/pkcs7-mime")
        {
            certificates.extend(certificates_in(&document.content)?);
        }
    }
    Ok(Some(Message::Request(request, certificates)))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// The certificate a trust request offers, among those the message carried.
pub fn offered<'a>(trust: &TrustRequest, certificates: &'a [Cert]) -> Result<&'a Cert, Error> {
    certificates
        .iter()
        .find(|cert| CertificateId::of(cert) == trust.certificate)
        .ok_or_else(|| {
            Error::malformed(format!(
                "the CEM request names the certificate issued by {} with serial {}, but carries no such certificate",
                trust.certificate.issuer, trust.certificate.serial
            ))
        })
}

/// `text` with XML's special characters escaped.
fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

fn element(out: &mut String, indent: usize, name: &str, text: &str) {
    let _ = writeln!(out, "{:indent$}<{name}>{}</{name}>", "", escape(text));
}

fn opening(root: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"{NAMESPACE}\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" requestId=\"{}\">\n",
        escape(request_id)
    )
}

fn partner_info(out: &mut String, sender: &str, originated: &str) {
    out.push_str("  <TradingPartnerInfo>\n");
    let _ = writeln!(out, "    <Name qualifier=\"AS2\">{}</Name>", escape(sender));
    element(out, 4, "MessageOriginated", originated);
    out.push_str("  </TradingPartnerInfo>\n");
}

fn certificate_id(out: &mut String, indent: usize, name: &str, id: &CertificateId) {
    let _ = writeln!(out, "{:indent$}<{name}>", "");
    element(out, indent + 2, "ds:X509IssuerName", &id.issuer);
    element(out, indent + 2, "ds:X509SerialNumber", &id.serial);
    let _ = writeln!(out, "{:indent$}</{name}>", "");
}

impl Request {
    /// The request's XML.
    pub fn to_xml(&self) -> String {
        let mut out = opening("EDIINTCertificateExchangeRequest", &self.request_id);
        partner_info(&mut out, &self.sender, &self.originated);
        for trust in &self.trust {
            out.push_str("  <TrustRequest>\n");
            for usage in &trust.usages {
                element(&mut out, 4, "CertUsage", usage.name());
            }
            if let Some(date) = &trust.respond_by {
                element(&mut out, 4, "RespondByDate", date);
            }
            element(&mut out, 4, "ResponseURL", &trust.response_url);
            out.push_str("    <EndEntity>\n");
            certificate_id(&mut out, 6, "CertificateIdentifier", &trust.certificate);
            element(&mut out, 6, "CertificateContentID", &trust.content_id);
            out.push_str("    </EndEntity>\n");
            out.push_str("  </TrustRequest>\n");
        }
        out.push_str("</EDIINTCertificateExchangeRequest>\n");
        out
    }

    /// Reads a request's XML.
    pub fn parse(xml: &[u8]) -> Result<Self, Error> {
        let document = read(xml, "EDIINTCertificateExchangeRequest")?;
        let trust = document
            .children("TrustRequest")
            .map(|node| {
                let usages = node
                    .children("CertUsage")
                    .filter_map(|u| Usage::from_name(u.text.trim()))
                    .collect();
                let end_entity = node.child("EndEntity")?;
                Ok(TrustRequest {
                    usages,
                    respond_by: node
                        .child("RespondByDate")
                        .ok()
                        .map(|n| n.text.trim().to_string()),
                    response_url: node.child("ResponseURL")?.text.trim().to_string(),
                    certificate: read_id(end_entity.child("CertificateIdentifier")?)?,
                    content_id: end_entity
                        .child("CertificateContentID")?
                        .text
                        .trim()
                        .trim_matches(['<', '>'])
                        .to_string(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if trust.is_empty() {
            return Err(Error::malformed(
                "the CEM request offers no certificate (no TrustRequest)",
            ));
        }
        let (sender, originated) = read_partner_info(&document)?;
        Ok(Request {
            request_id: document.attribute("requestId")?,
            sender,
            originated,
            trust,
        })
    }
}

impl Response {
    /// The response's XML.
    pub fn to_xml(&self) -> String {
        let mut out = opening("EDIINTCertificateExchangeResponse", &self.request_id);
        partner_info(&mut out, &self.sender, &self.originated);
        for trust in &self.trust {
            out.push_str("  <TrustResponse>\n");
            element(&mut out, 4, "CertStatus", trust.status.name());
            if let Some(reason) = &trust.reason {
                element(&mut out, 4, "ReasonForRejection", reason);
            }
            certificate_id(&mut out, 4, "CertificateReference", &trust.certificate);
            out.push_str("  </TrustResponse>\n");
        }
        out.push_str("</EDIINTCertificateExchangeResponse>\n");
        out
    }

    /// Reads a response's XML.
    pub fn parse(xml: &[u8]) -> Result<Self, Error> {
        let document = read(xml, "EDIINTCertificateExchangeResponse")?;
        let trust = document
            .children("TrustResponse")
            .map(|node| {
                let status = match node.child("CertStatus")?.text.trim() {
                    "Accepted" => Status::Accepted,
                    "Rejected" => Status::Rejected,
                    other => {
                        return Err(Error::malformed(format!(
                            "the CEM response's CertStatus is {other:?}, not Accepted or Rejected"
                        )));
                    }
                };
                Ok(TrustResponse {
                    status,
                    reason: node
                        .child("ReasonForRejection")
                        .ok()
                        .map(|n| n.text.trim().to_string()),
                    certificate: read_id(node.child("CertificateReference")?)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let (sender, originated) = read_partner_info(&document)?;
        Ok(Response {
            request_id: document.attribute("requestId")?,
            sender,
            originated,
            trust,
        })
    }
}

fn read_partner_info(document: &Node) -> Result<(String, String), Error> {
    let info = document.child("TradingPartnerInfo")?;
    Ok((
        info.child("Name")?.text.trim().to_string(),
        info.child("MessageOriginated")
            .map(|n| n.text.trim().to_string())
            .unwrap_or_default(),
    ))
}

fn read_id(node: &Node) -> Result<CertificateId, Error> {
    Ok(CertificateId {
        issuer: node.child("X509IssuerName")?.text.trim().to_string(),
        serial: node.child("X509SerialNumber")?.text.trim().to_string(),
    })
}

/// An element of the XML, by its local name (namespace prefixes dropped:
/// the documents use one namespace and XML-DSig's).
#[derive(Debug, Default)]
struct Node {
    name: String,
    attributes: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn child(&self, name: &str) -> Result<&Node, Error> {
        self.children
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::malformed(format!("the CEM {} has no {name} element", self.name)))
    }

    fn attribute(&self, name: &str) -> Result<String, Error> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                Error::malformed(format!("the CEM {} has no {name} attribute", self.name))
            })
    }
}

/// Most elements a CEM document may have: a bound for hostile input.
const MAX_ELEMENTS: usize = 10_000;

fn local_name(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    match name.rsplit_once(':') {
        Some((_, local)) => local.to_string(),
        None => name.into_owned(),
    }
}

/// The element tree of `xml`, whose root must be `root`.
fn read(xml: &[u8], root: &str) -> Result<Node, Error> {
    let bad =
        |e: &dyn std::fmt::Display| Error::malformed(format!("the CEM XML does not read: {e}"));
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut stack: Vec<Node> = Vec::new();
    let mut done: Option<Node> = None;
    let mut count = 0;
    loop {
        let event = reader.read_event().map_err(|e| bad(&e))?;
        let start = |e: &quick_xml::events::BytesStart<'_>| -> Result<Node, Error> {
            let mut attributes = Vec::new();
            for attribute in e.attributes() {
                let attribute = attribute.map_err(|e| bad(&e))?;
                let value = attribute.unescape_value().map_err(|e| bad(&e))?;
                attributes.push((local_name(attribute.key.as_ref()), value.into_owned()));
            }
            Ok(Node {
                name: local_name(e.name().as_ref()),
                attributes,
                ..Node::default()
            })
        };
        match event {
            Event::Start(e) => {
                count += 1;
                if count > MAX_ELEMENTS || stack.len() > 32 {
                    return Err(Error::malformed("the CEM XML is too large or too deep"));
                }
                stack.push(start(&e)?);
            }
            Event::Empty(e) => {
                let node = start(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => done = Some(node),
                }
            }
            Event::Text(t) => {
                if let Some(node) = stack.last_mut() {
                    let text = t.decode().map_err(|e| bad(&e))?;
                    let text = quick_xml::escape::unescape(&text).map_err(|e| bad(&e))?;
                    node.text.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(node) = stack.last_mut() {
                    let reference = format!("&{};", String::from_utf8_lossy(&r));
                    let text = quick_xml::escape::unescape(&reference).map_err(|e| bad(&e))?;
                    node.text.push_str(&text);
                }
            }
            Event::End(_) => {
                let node = stack
                    .pop()
                    .ok_or_else(|| Error::malformed("the CEM XML closes more than it opens"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => done = Some(node),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let document = done.ok_or_else(|| Error::malformed("the CEM XML has no root element"))?;
    if document.name != root {
        return Err(Error::malformed(format!(
            "the CEM XML's root is {}, not {root}",
            document.name
        )));
    }
    Ok(document)
}

/// `cert` as a PKCS#7 certs-only message (RFC 5751 §3.6): a SignedData
/// with the certificate and no signer.
pub fn certs_only(cert: &Cert) -> Result<Vec<u8>, Error> {
    use cms::content_info::ContentInfo;
    use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
    let certificate = x509_cert::Certificate::from_der(&cert.to_der()?)?;
    let signed = SignedData {
        version: cms::content_info::CmsVersion::V1,
        digest_algorithms: der::asn1::SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: crate::crypto::oids::DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(der::asn1::SetOfVec::try_from(vec![
            cms::cert::CertificateChoices::Certificate(certificate),
        ])?)),
        crls: None,
        signer_infos: SignerInfos(der::asn1::SetOfVec::new()),
    };
    let info = ContentInfo {
        content_type: crate::crypto::oids::SIGNED_DATA,
        content: der::Any::encode_from(&signed)?,
    };
    Ok(info.to_der()?)
}

/// The certificates of a PKCS#7 certs-only message.
pub fn certificates_in(der_bytes: &[u8]) -> Result<Vec<Cert>, Error> {
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;
    let info = ContentInfo::from_der(der_bytes)
        .map_err(|e| Error::malformed(format!("the certificate part is not PKCS#7: {e}")))?;
    let signed: SignedData = info.content.decode_as().map_err(|e| {
        Error::malformed(format!(
            "the certificate part is not a certs-only SignedData: {e}"
        ))
    })?;
    let mut certs = Vec::new();
    for choice in signed.certificates.iter().flat_map(|set| set.0.iter()) {
        if let cms::cert::CertificateChoices::Certificate(certificate) = choice {
            certs.push(Cert::from_der(&certificate.to_der()?)?);
        }
    }
    Ok(certs)
}

/// A big-endian unsigned integer in decimal, as XML-DSig writes serials.
fn decimal(bytes: &[u8]) -> String {
    let mut digits = vec![0u8]; // little-endian base-10 digits
    for &byte in bytes {
        let mut carry = u32::from(byte);
        for digit in digits.iter_mut() {
            let value = u32::from(*digit) * 256 + carry;
            *digit = (value % 10) as u8;
            carry = value / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

/// Seconds since the Unix epoch as RFC 3339 in UTC (`2026-12-20T00:00:00Z`).
pub fn rfc3339(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86400) as i64;
    let seconds = unix_seconds % 86400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// RFC 3339 (`2026-12-20T00:00:00Z`, fractions and `±hh:mm` offsets read)
/// as seconds since the Unix epoch.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let text = text.trim();
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut date = date.split('-');
    let year: i64 = date.next()?.parse().ok()?;
    let month: u32 = date.next()?.parse().ok()?;
    let day: u32 = date.next()?.parse().ok()?;
    let (time, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(at) => rest.split_at(at),
        None => (rest, "Z"),
    };
    let mut time = time.split(':');
    let hour: i64 = time.next()?.parse().ok()?;
    let minute: i64 = time.next()?.parse().ok()?;
    let second: i64 = time.next().unwrap_or("0").split('.').next()?.parse().ok()?;
    let offset_seconds = match offset {
        "Z" | "z" => 0,
        _ => {
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let (h, m) = offset[1..].split_once(':')?;
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let total = days * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
    u64::try_from(total).ok()
}

/// Howard Hinnant's days-from-civil (proleptic Gregorian).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(all(test, feature = "rustcrypto"))]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn cert() -> Cert {
        let key = crate::crypto::rustcrypto::generate_station_key(
            "ACME NEXT",
            SystemTime::now(),
            Duration::from_secs(86400),
        )
        .unwrap();
        Cert::from_pem(&key.certificate_pem).unwrap()
    }

    #[test]
    fn a_request_and_a_response_read_back_as_written() {
        let cert = cert();
        let request = Request {
            request_id: "req-1 & <2>".into(),
            sender: "ACME".into(),
            originated: rfc3339(1_796_600_000),
            trust: vec![TrustRequest {
                usages: vec![Usage::KeyEncipherment, Usage::DigitalSignature],
                respond_by: Some(rfc3339(1_797_000_000)),
                response_url: "http://127.0.0.1:4080/as2".into(),
                certificate: CertificateId::of(&cert),
                content_id: "cert-1@ACME".into(),
            }],
        };
        let xml = request.to_xml();
        assert!(
            xml.contains("<CertUsage>keyEncipherment</CertUsage>"),
            "{xml}"
        );
        assert!(xml.contains(&format!("xmlns=\"{NAMESPACE}\"")));
        assert_eq!(Request::parse(xml.as_bytes()).unwrap(), request);
        let response = Response {
            request_id: request.request_id.clone(),
            sender: "GLOBEX".into(),
            originated: rfc3339(1_796_600_100),
            trust: vec![TrustResponse {
                status: Status::Rejected,
                reason: Some("key too short".into()),
                certificate: CertificateId::of(&cert),
            }],
        };
        assert_eq!(
            Response::parse(response.to_xml().as_bytes()).unwrap(),
            response
        );
        // The wrong document, and no document, are refused with a reason.
        assert!(Response::parse(xml.as_bytes()).is_err());
        assert!(Request::parse(b"<EDIINTCertificateExchangeRequest").is_err());
    }

    #[test]
    fn another_products_prefixes_and_layout_read_the_same() {
        let xml = br#"<?xml version="1.0"?>
<x:EDIINTCertificateExchangeRequest xmlns:x="urn:ietf:params:xml:ns:ediintcertificateexchange" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" requestId="abc"><x:TradingPartnerInfo><x:Name qualifier="AS2">THEM</x:Name><x:MessageOriginated>2026-12-07T10:00:00-05:00</x:MessageOriginated></x:TradingPartnerInfo><x:TrustRequest><x:CertUsage>digitalSignature</x:CertUsage><x:RespondByDate>2026-12-20T00:00:00Z</x:RespondByDate><x:ResponseURL>https://them.example/as2</x:ResponseURL><x:EndEntity><x:CertificateIdentifier><ds:X509IssuerName>CN=THEM</ds:X509IssuerName><ds:X509SerialNumber>12345678901234567890</ds:X509SerialNumber></x:CertificateIdentifier><x:CertificateContentID>&lt;cert@them&gt;</x:CertificateContentID></x:EndEntity></x:TrustRequest></x:EDIINTCertificateExchangeRequest>"#;
        let request = Request::parse(xml).unwrap();
        assert_eq!(request.sender, "THEM");
        assert_eq!(request.trust[0].content_id, "cert@them");
        assert_eq!(request.trust[0].certificate.serial, "12345678901234567890");
        assert_eq!(request.trust[0].usages, vec![Usage::DigitalSignature]);
    }

    #[test]
    fn certs_only_carries_the_certificate() {
        let cert = cert();
        let der = certs_only(&cert).unwrap();
        let back = certificates_in(&der).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].to_der().unwrap(), cert.to_der().unwrap());
    }

    #[test]
    fn serials_are_decimal_and_dates_rfc_3339() {
        assert_eq!(decimal(&[0x01, 0x00]), "256");
        assert_eq!(
            decimal(&[0xab, 0x54, 0xa9, 0x8c, 0xeb, 0x1f, 0x0a, 0xd2]),
            "12345678901234567890"
        );
        assert_eq!(decimal(&[]), "0");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_797_000_000), "2026-12-11T14:40:00Z");
        assert_eq!(parse_rfc3339("2026-12-11T14:40:00Z"), Some(1_797_000_000));
        assert_eq!(
            parse_rfc3339("2026-12-11T09:40:00.250-05:00"),
            Some(1_797_000_000)
        );
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("tomorrow"), None);
    }
}

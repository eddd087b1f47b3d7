//! AS2 messages (RFC 4130 §5–7): building what we send, processing what we
//! receive, and checking the MDN that comes back. No IO: the caller moves the
//! bytes and supplies the clock, the keys and the crypto provider.

use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::bytes::{self, Base64Lines, Chain, Sink, Source, Spool, Spools, Window};
use crate::compress;
use crate::config::{Checked, Compression, MdnDelivery, MdnMode, TransferEncoding};
use crate::crypto::{CryptoProvider, DigestAlgorithm, PrivateKey, SignatureScheme, oids};
use crate::doctor;
use crate::error::Error;
use crate::headers::{self, Headers, ParameterizedValue};
use crate::mdn::{self, Disposition, HttpMessage, Mdn, MdnFields, MdnRequest};
use crate::mic::Mic;
use crate::mime;
use crate::signed::{self, SignedPlan, SigningParams};
use crate::smime::{self, ContentEncryption};

/// A business document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// File name for Content-Disposition, if any.
    pub file_name: Option<String>,
    /// MIME type, e.g. `application/edi-x12`.
    pub content_type: String,
    /// The bytes.
    pub content: Vec<u8>,
}

/// A received document's bytes: in memory, or a range of a spool the engine
/// wrote ([`bytes::Spools`]) when the document was too large to hold.
#[derive(Clone)]
pub enum Content {
    /// Held here.
    Bytes(Vec<u8>),
    /// `len` bytes of `spool` from `start`.
    Spooled {
        /// Where the bytes are.
        spool: std::rc::Rc<dyn bytes::Spool>,
        /// Where they start in it.
        start: u64,
        /// How many there are.
        len: u64,
    },
}

impl Content {
    /// The bytes as a source, read where they are.
    pub fn source(&self) -> bytes::Window<'_> {
        match self {
            Content::Bytes(held) => bytes::Window::new(held, 0..held.len() as u64),
            Content::Spooled { spool, start, len } => {
                bytes::Window::new(spool.as_ref(), *start..start + len)
            }
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(held) => held.len() as u64,
            Content::Spooled { len, .. } => *len,
        }
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes in memory, read from their spool if need be.
    pub fn to_vec(&self) -> Result<Vec<u8>, Error> {
        match self {
            Content::Bytes(held) => Ok(held.clone()),
            Content::Spooled { .. } => bytes::read_all(&self.source()),
        }
    }
}

impl From<Vec<u8>> for Content {
    fn from(bytes: Vec<u8>) -> Self {
        Content::Bytes(bytes)
    }
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::Bytes(held) => write!(f, "Content::Bytes({} bytes)", held.len()),
            Content::Spooled { len, .. } => write!(f, "Content::Spooled({len} bytes)"),
        }
    }
}

impl<T: AsRef<[u8]> + ?Sized> PartialEq<T> for Content {
    fn eq(&self, other: &T) -> bool {
        let other = other.as_ref();
        self.len() == other.len() as u64 && self.to_vec().is_ok_and(|bytes| bytes == other)
    }
}

/// A document as received: like [`Document`], with its bytes where the
/// engine left them ([`Content`]).
#[derive(Debug, Clone)]
pub struct ReceivedDocument {
    /// File name from Content-Disposition, if any. Untrusted.
    pub file_name: Option<String>,
    /// MIME type, e.g. `application/edi-x12`.
    pub content_type: String,
    /// The bytes.
    pub content: Content,
}

impl PartialEq<Document> for ReceivedDocument {
    fn eq(&self, other: &Document) -> bool {
        self.file_name == other.file_name
            && self.content_type == other.content_type
            && self.content == other.content
    }
}

/// An AS2 message ready to POST, and what must be remembered to check its MDN.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The Message-ID, angle brackets included.
    pub message_id: String,
    /// HTTP header fields.
    pub headers: Headers,
    /// HTTP body.
    pub body: Vec<u8>,
    /// The MIC the partner's MDN must return.
    pub mic: Mic,
}

/// A fresh RFC 5322 Message-ID: time, randomness, and our AS2 id as the domain.
pub fn new_message_id(station_id: &str, now: SystemTime, provider: &dyn CryptoProvider) -> String {
    let mut random = [0u8; 8];
    provider.fill_random(&mut random);
    let millis = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let domain: String = station_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("<{millis}.{random}@{domain}>")
}

/// The Content-Disposition of a payload: its file name, quoted (RFC 2183);
/// a name beyond printable ASCII also as `filename*` in UTF-8 (RFC 2231 §4),
/// after an ASCII stand-in for receivers that know only `filename`.
fn content_disposition(file_name: Option<&str>) -> String {
    match file_name {
        Some(name) if name.bytes().all(|b| (0x20..0x7f).contains(&b)) => {
            format!("attachment; filename={}", headers::quote_if_needed(name))
        }
        Some(name) => {
            let ascii: String = name
                .chars()
                .map(|c| if (' '..='~').contains(&c) { c } else { '_' })
                .collect();
            format!(
                "attachment; filename={}; filename*=UTF-8''{}",
                headers::quote_if_needed(&ascii),
                headers::percent_encode(name)
            )
        }
        None => "attachment".to_string(),
    }
}

/// A MIME entity on its way out: its header fields, and its body as pieces.
struct Part<'a> {
    headers: Headers,
    body: Chain<'a>,
}

impl Part<'_> {
    /// Header fields, blank line, body: the entity as signed or encrypted.
    fn entity(&self) -> Chain<'_> {
        let mut block = Vec::new();
        self.headers.write_to(&mut block);
        block.extend_from_slice(b"\r\n");
        let mut entity = Chain::new();
        entity.push(block);
        entity.push_source(&self.body);
        entity
    }
}

/// A compressed-data entity (RFC 5402 §3) of `entity`, its compressed
/// octets in a spool of `spools`.
fn compressed(
    entity: &dyn Source,
    provider: &dyn CryptoProvider,
    spools: &dyn Spools,
) -> Result<Part<'static>, Error> {
    let body = compress::compress_into(entity, provider, spools)?;
    let mut headers = Headers::new();
    headers.push(
        "Content-Type",
        "application/pkcs7-mime; smime-type=compressed-data; name=\"smime.p7z\"",
    );
    headers.push("Content-Transfer-Encoding", "binary");
    headers.push("Content-Disposition", "attachment; filename=\"smime.p7z\"");
    Ok(Part { headers, body })
}

/// Writes what `write` writes to `out`, in base64 lines when `encoding` says so.
fn transfer_encoded<T>(
    encoding: TransferEncoding,
    out: &mut dyn Sink,
    write: impl FnOnce(&mut dyn Sink) -> Result<T, Error>,
) -> Result<T, Error> {
    match encoding {
        TransferEncoding::Binary => write(out),
        TransferEncoding::Base64 => {
            let mut lines = Base64Lines::new(out);
            let result = write(&mut lines)?;
            lines.finish()?;
            Ok(result)
        }
    }
}

/// The HTTP content headers of an encrypted message.
fn enveloped_headers(encryption: ContentEncryption, encoding: TransferEncoding) -> Headers {
    let smime_type = match encryption {
        ContentEncryption::Cbc(_) => "enveloped-data",
        ContentEncryption::Gcm(_) => "authEnveloped-data",
    };
    let mut headers = Headers::new();
    headers.push(
        "Content-Type",
        format!("application/pkcs7-mime; smime-type={smime_type}; name=\"smime.p7m\""),
    );
    headers.push(
        "Content-Transfer-Encoding",
        match encoding {
            TransferEncoding::Binary => "binary",
            TransferEncoding::Base64 => "base64",
        },
    );
    headers.push("Content-Disposition", "attachment; filename=\"smime.p7m\"");
    headers
}

/// Encrypts `plaintext` for the partner into `out`: CBC as it is read, GCM
/// in one piece.
fn write_encrypted(
    connection: &Checked,
    encryption: ContentEncryption,
    plaintext: &dyn Source,
    provider: &dyn CryptoProvider,
    out: &mut dyn Sink,
) -> Result<(), Error> {
    let mut envelope = smime::begin_enveloped(
        plaintext.len(),
        &connection.partner_cert,
        encryption,
        connection.connection.partner.key_transport.into(),
        provider,
        out,
    )?;
    bytes::for_each_piece(plaintext, |piece| envelope.write(piece))?;
    envelope.finish()
}

/// Signs `entity` into a multipart/signed body written to `out` (its
/// Content-Type header block first when `with_header`), and returns that
/// Content-Type and the MIC (RFC 4130 §7.3.1: over the signed entity).
#[allow(clippy::too_many_arguments)]
fn write_signed(
    entity: &dyn Source,
    params: SigningParams<'_>,
    mic_algorithm: DigestAlgorithm,
    key: &dyn PrivateKey,
    now: SystemTime,
    provider: &dyn CryptoProvider,
    with_header: bool,
    out: &mut dyn Sink,
) -> Result<(String, Mic), Error> {
    let plan = SignedPlan::new(entity.len(), key, params, now, provider)?;
    let content_type = plan.content_type.clone();
    if with_header {
        out.write(&plan.header_block())?;
    }
    let mic = sign_into(plan, entity, mic_algorithm, key, provider, out)?;
    Ok((content_type, mic))
}

/// Writes the planned signed body and returns its MIC: the signature's own
/// content digest unless the partner asked for another algorithm.
fn sign_into(
    plan: SignedPlan<'_>,
    entity: &dyn Source,
    mic_algorithm: DigestAlgorithm,
    key: &dyn PrivateKey,
    provider: &dyn CryptoProvider,
    out: &mut dyn Sink,
) -> Result<Mic, Error> {
    let same = plan.algorithm() == mic_algorithm;
    let other = (!same).then(|| provider.hasher(mic_algorithm));
    let signed = plan.write(entity, key, other, provider, out)?;
    let digest = match signed.other_digest {
        Some(other) => other,
        None => signed.content_digest,
    };
    Ok(Mic::new(mic_algorithm, digest))
}

/// A message's HTTP header fields and MIC: what [`build_into`] returns
/// beside the body it wrote.
#[derive(Debug, Clone)]
pub struct OutboundHead {
    /// The Message-ID, angle brackets included.
    pub message_id: String,
    /// HTTP header fields.
    pub headers: Headers,
    /// The MIC the partner's MDN must return.
    pub mic: Mic,
    /// The MIC doctor's variants of it, `None` for a document too large.
    pub mic_variants: Option<Vec<doctor::Fingerprint>>,
}

/// What a document is, apart from its bytes.
#[derive(Debug, Clone, Copy)]
pub struct DocumentInfo<'a> {
    /// File name for Content-Disposition, if any.
    pub file_name: Option<&'a str>,
    /// MIME type, e.g. `application/edi-x12`.
    pub content_type: &'a str,
}

/// Builds the AS2 message for `document` as the connection says (RFC 4130
/// §5–6, RFC 5402): payload entity, optionally compressed before or after
/// signing (multipart/signed), optionally encrypted (EnvelopedData or, for
/// AES-GCM, AuthEnvelopedData), with the AS2 headers.
pub fn build(
    connection: &Checked,
    document: &Document,
    station_key: &dyn PrivateKey,
    now: SystemTime,
    provider: &dyn CryptoProvider,
) -> Result<Outbound, Error> {
    let info = DocumentInfo {
        file_name: document.file_name.as_deref(),
        content_type: &document.content_type,
    };
    let mut body = Vec::with_capacity(document.content.len() + 4096);
    let head = build_into(
        connection,
        info,
        &document.content.as_slice(),
        &mut body,
        station_key,
        now,
        provider,
        &bytes::InMemory::default(),
    )?;
    Ok(Outbound {
        message_id: head.message_id,
        headers: head.headers,
        body,
        mic: head.mic,
    })
}

/// [`build`] for a document read from `content` a piece at a time, the
/// HTTP body written to `body` as it is made. Signing, encryption (CBC and
/// GCM) and compression stream: the message is never held whole, and a
/// signed and encrypted document is read once, hashed as it is encrypted;
/// a compressed entity, whose length CMS states before it, and a signed
/// entity to compress go to a spool of `spools`. The MIC doctor's variants ([`crate::doctor`]) are
/// taken on the way, for documents up to [`crate::doctor::LIMIT`].
#[allow(clippy::too_many_arguments)]
pub fn build_into(
    connection: &Checked,
    document: DocumentInfo<'_>,
    content: &dyn Source,
    body: &mut dyn Sink,
    station_key: &dyn PrivateKey,
    now: SystemTime,
    provider: &dyn CryptoProvider,
    spools: &dyn Spools,
) -> Result<OutboundHead, Error> {
    let attachment = Attachment {
        info: document,
        content,
        content_id: None,
    };
    build_attachments_into(
        connection,
        &[attachment],
        body,
        station_key,
        now,
        provider,
        spools,
    )
}

/// One document of a message: what it is, and where its bytes are.
#[derive(Clone, Copy)]
pub struct Attachment<'a> {
    /// File name and MIME type.
    pub info: DocumentInfo<'a>,
    /// The bytes, read a piece at a time.
    pub content: &'a dyn Source,
    /// Its Content-ID (RFC 2392, without angle brackets), for a part that
    /// another part refers to (a CEM request's certificate).
    pub content_id: Option<&'a str>,
}

/// Most documents one message carries: a bound for the receiver's work.
pub const MAX_ATTACHMENTS: usize = 100;

/// [`build_into`] for several documents in one message (RFC 6362): a
/// `multipart/related` payload whose parts are the documents, each with its
/// own Content-Type and file name, signed, compressed and encrypted as one;
/// the MIC covers the whole `multipart/related` entity (RFC 6362 §4). One
/// document makes the ordinary single-payload message.
pub fn build_attachments_into(
    connection: &Checked,
    attachments: &[Attachment<'_>],
    body: &mut dyn Sink,
    station_key: &dyn PrivateKey,
    now: SystemTime,
    provider: &dyn CryptoProvider,
    spools: &dyn Spools,
) -> Result<OutboundHead, Error> {
    if attachments.is_empty() || attachments.len() > MAX_ATTACHMENTS {
        return Err(Error::config(
            "/documents",
            format!(
                "one message carries 1 to {MAX_ATTACHMENTS} documents, not {}",
                attachments.len()
            ),
        ));
    }
    let partner = &connection.connection.partner;
    let content_len = attachments.iter().map(|a| a.content.len()).sum();
    let mut notes = doctor::Notes::new(mic_algorithm_for(partner), content_len);
    let encryption = partner.encryption.content_encryption();
    let mut tapped = EncryptedTap::new(body, &notes, encryption, partner.encoding, provider);
    let mut head = build_noting(
        connection,
        attachments,
        &mut tapped,
        station_key,
        now,
        provider,
        spools,
        &mut notes,
    )?;
    tapped.finish(&mut notes);
    head.mic_variants = notes.finish(&head.mic);
    Ok(head)
}

/// The header fields of a document's own MIME entity.
fn document_headers(document: DocumentInfo<'_>) -> Headers {
    let mut headers = Headers::new();
    headers.push("Content-Type", document.content_type.to_string());
    // Binary: the payload is hashed and carried byte for byte, so no
    // canonicalization can make the partner's MIC differ from ours.
    headers.push("Content-Transfer-Encoding", "binary");
    headers.push(
        "Content-Disposition",
        content_disposition(document.file_name),
    );
    headers
}

/// The payload entity: the document itself, or for several a
/// `multipart/related` of them (RFC 6362 §3, RFC 2387), its root the first.
fn payload_part<'a>(attachments: &[Attachment<'a>], provider: &dyn CryptoProvider) -> Part<'a> {
    let mut body = Chain::new();
    if let [single] = attachments {
        body.push_source(single.content);
        return Part {
            headers: document_headers(single.info),
            body,
        };
    }
    let mut random = [0u8; 12];
    provider.fill_random(&mut random);
    let boundary = mime::new_boundary(&random);
    for attachment in attachments {
        let mut opening = format!("--{boundary}\r\n").into_bytes();
        let mut headers = document_headers(attachment.info);
        if let Some(id) = attachment.content_id {
            headers.push("Content-ID", format!("<{id}>"));
        }
        headers.write_to(&mut opening);
        opening.extend_from_slice(b"\r\n");
        body.push(opening);
        body.push_source(attachment.content);
        // The line break before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
        body.push(b"\r\n".to_vec());
    }
    body.push(format!("--{boundary}--\r\n").into_bytes());
    let mut headers = Headers::new();
    headers.push(
        "Content-Type",
        format!(
            "multipart/related; boundary=\"{boundary}\"; type=\"{}\"",
            attachments[0].info.content_type
        ),
    );
    Part { headers, body }
}

/// The digest algorithm of the MIC asked for in the MDN request.
fn mic_algorithm_for(partner: &crate::config::Partner) -> DigestAlgorithm {
    partner
        .mdn_micalg
        .map(DigestAlgorithm::from)
        .or(partner.signing.digest())
        .unwrap_or(DigestAlgorithm::Sha256)
}

/// The sink of an encrypted message's body that digests what passes,
/// alone and after the entity's header fields, for the MIC doctor's
/// "digested before decrypting" variants.
struct EncryptedTap<'s> {
    inner: &'s mut dyn Sink,
    digests: Option<(
        Box<dyn crate::crypto::Hasher + Send>,
        Box<dyn crate::crypto::Hasher + Send>,
    )>,
}

impl<'s> EncryptedTap<'s> {
    fn new(
        inner: &'s mut dyn Sink,
        notes: &doctor::Notes,
        encryption: Option<ContentEncryption>,
        encoding: TransferEncoding,
        provider: &dyn CryptoProvider,
    ) -> Self {
        let digests = match encryption {
            Some(encryption) if notes.enabled() => {
                let algorithm = notes.algorithm();
                let mut entity = provider.hasher(algorithm);
                let mut block = Vec::new();
                enveloped_headers(encryption, encoding).write_to(&mut block);
                block.extend_from_slice(b"\r\n");
                entity.update(&block);
                Some((entity, provider.hasher(algorithm)))
            }
            _ => None,
        };
        EncryptedTap { inner, digests }
    }

    fn finish(self, notes: &mut doctor::Notes) {
        if let Some((entity, body)) = self.digests {
            notes.note_digest(doctor::MicVariant::EncryptedEntity, &entity.finish());
            notes.note_digest(doctor::MicVariant::EncryptedBody, &body.finish());
        }
    }
}

impl Sink for EncryptedTap<'_> {
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        if let Some((entity, body)) = self.digests.as_mut() {
            entity.update(data);
            body.update(data);
        }
        self.inner.write(data)
    }
}

/// [`build_into`], with the MIC doctor's variants noted on the way.
#[allow(clippy::too_many_arguments)]
fn build_noting(
    connection: &Checked,
    attachments: &[Attachment<'_>],
    body: &mut dyn Sink,
    station_key: &dyn PrivateKey,
    now: SystemTime,
    provider: &dyn CryptoProvider,
    spools: &dyn Spools,
    notes: &mut doctor::Notes,
) -> Result<OutboundHead, Error> {
    let partner = &connection.connection.partner;
    let mut part = payload_part(attachments, provider);
    let encryption = partner.encryption.content_encryption();
    let mic_algorithm = mic_algorithm_for(partner);
    let mic_covers_entity = partner.signing.digest().is_some() || encryption.is_some();

    if partner.compression == Compression::BeforeSigning {
        if mic_covers_entity {
            notes.note(doctor::MicVariant::Uncompressed, &part.entity(), provider)?;
        }
        let compressed_part = compressed(&part.entity(), provider, spools)?;
        part = compressed_part;
    }
    if mic_covers_entity {
        notes.note(doctor::MicVariant::WithoutHeaders, &part.body, provider)?;
    }
    let signing = partner.signing.digest().map(|algorithm| SigningParams {
        algorithm,
        scheme: partner.signature_scheme.into(),
        micalg: algorithm.micalg(),
        binary_signature: encryption.is_none()
            && partner.signature_encoding == TransferEncoding::Binary,
    });
    let compress_after = partner.compression == Compression::AfterSigning;
    let mut mic = None;
    if let Some(params) = signing {
        let entity = part.entity();
        notes.covered(&entity, provider)?;
        // The multipart/signed entity into `out`, with its content headers.
        let sign = |out: &mut dyn Sink| -> Result<(Headers, Mic), Error> {
            let (content_type, mic) = write_signed(
                &entity,
                params,
                mic_algorithm,
                station_key,
                now,
                provider,
                false,
                out,
            )?;
            let mut headers = Headers::new();
            headers.push("Content-Type", content_type);
            Ok((headers, mic))
        };
        match encryption {
            // The signed entity goes straight into the cipher: its length
            // is known before its signature is, so the DER can state it first.
            Some(encryption) if !compress_after => {
                let plan = SignedPlan::new(entity.len(), station_key, params, now, provider)?;
                let header_block = plan.header_block();
                let mic = transfer_encoded(partner.encoding, body, |out| {
                    let mut envelope = smime::begin_enveloped(
                        header_block.len() as u64 + plan.body_len(),
                        &connection.partner_cert,
                        encryption,
                        partner.key_transport.into(),
                        provider,
                        out,
                    )?;
                    envelope.write(&header_block)?;
                    let mic = sign_into(
                        plan,
                        &entity,
                        mic_algorithm,
                        station_key,
                        provider,
                        &mut envelope,
                    )?;
                    envelope.finish()?;
                    Ok(mic)
                })?;
                let headers = enveloped_headers(encryption, partner.encoding);
                return Ok(finish_head(
                    connection,
                    attachments,
                    headers,
                    mic,
                    now,
                    provider,
                ));
            }
            None if !compress_after => {
                let (headers, mic) = sign(body)?;
                return Ok(finish_head(
                    connection,
                    attachments,
                    headers,
                    mic,
                    now,
                    provider,
                ));
            }
            // Compressed after signing: the signed entity to a spool, to compress.
            _ => {
                let mut signed = spools.spool(entity.len() + 8192)?;
                let (headers, signed_mic) = sign(signed.as_mut())?;
                mic = Some(signed_mic);
                drop(entity);
                let mut body = Chain::new();
                body.push_boxed(signed);
                part = Part { headers, body };
            }
        }
    }
    if compress_after {
        let compressed_part = compressed(&part.entity(), provider, spools)?;
        part = compressed_part;
        if mic.is_some() {
            notes.note(doctor::MicVariant::Compressed, &part.entity(), provider)?;
        }
    }

    let headers = match encryption {
        Some(encryption) => {
            let entity = part.entity();
            // Encrypted but unsigned: the MIC covers the entity that was encrypted.
            if mic.is_none() {
                notes.covered(&entity, provider)?;
                mic = Some(Mic::new(
                    mic_algorithm,
                    signed::digest_source(mic_algorithm, &entity, provider)?,
                ));
            }
            transfer_encoded(partner.encoding, body, |out| {
                write_encrypted(connection, encryption, &entity, provider, out)
            })?;
            enveloped_headers(encryption, partner.encoding)
        }
        None => {
            // The entity's own headers become the HTTP message's content headers.
            if mic.is_none() {
                // Neither signed nor encrypted: the MIC covers the content alone.
                notes.covered(&part.body, provider)?;
                notes.note(doctor::MicVariant::WithHeaders, &part.entity(), provider)?;
                mic = Some(Mic::new(
                    mic_algorithm,
                    signed::digest_source(mic_algorithm, &part.body, provider)?,
                ));
            }
            let is_compressed_entity = part
                .headers
                .get("Content-Type")
                .is_some_and(|t| t.starts_with("application/pkcs7-mime"));
            let encoding = if is_compressed_entity {
                partner.encoding
            } else {
                TransferEncoding::Binary
            };
            transfer_encoded(encoding, body, |out| part.body.write_to(out))?;
            if encoding == TransferEncoding::Base64 {
                part.headers = part
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        let v = if n.eq_ignore_ascii_case("Content-Transfer-Encoding") {
                            "base64"
                        } else {
                            v
                        };
                        (n.to_string(), v.to_string())
                    })
                    .collect();
            }
            part.headers
        }
    };
    let mic = mic.ok_or_else(|| Error::malformed("no MIC was computed"))?;
    Ok(finish_head(
        connection,
        attachments,
        headers,
        mic,
        now,
        provider,
    ))
}

/// What we announce in EDIINT-Features (RFC 6017), only what we implement.
/// AS2-Reliability: we detect repeated Message-IDs and answer them without
/// delivering twice, and resend under the same Message-ID.
/// multiple-attachments: we read and send several documents in one message
/// (RFC 6362). CEM: we send, read and answer certificate exchange messages
/// ([`crate::cem`]).
pub const FEATURES: &str = "AS2-Reliability, multiple-attachments, CEM";

/// Whether a partner's EDIINT-Features value announces `feature`
/// (case-insensitively, RFC 6017 §5).
pub fn announces(features: &str, feature: &str) -> bool {
    features
        .split(',')
        .any(|token| token.trim().eq_ignore_ascii_case(feature))
}

/// The AS2 header fields (RFC 4130 §6) before the message's content headers.
fn finish_head(
    connection: &Checked,
    attachments: &[Attachment<'_>],
    content_headers: Headers,
    mic: Mic,
    now: SystemTime,
    provider: &dyn CryptoProvider,
) -> OutboundHead {
    let config = &connection.connection;
    let partner = &config.partner;
    let message_id = new_message_id(&config.station.as2_id, now, provider);
    let mut http = Headers::new();
    http.push("AS2-Version", "1.2");
    http.push("AS2-From", headers::as2_id_header(&config.station.as2_id));
    http.push("AS2-To", headers::as2_id_header(&partner.as2_id));
    http.push("Message-ID", message_id.clone());
    http.push("Date", httpdate::fmt_http_date(now));
    let names: Vec<&str> = attachments
        .iter()
        .filter_map(|a| a.info.file_name)
        .collect();
    let subject = match names.as_slice() {
        [] => "AS2 message".to_string(),
        names => format!("AS2 message {}", names.join(", ")),
    };
    http.push("Subject", headers::truncate(&subject, 200));
    http.push("MIME-Version", "1.0");
    for (name, value) in content_headers.iter() {
        http.push(name, value);
    }
    if partner.mdn != MdnMode::None {
        let reply_to = config
            .station
            .url
            .clone()
            .unwrap_or_else(|| config.station.as2_id.clone());
        http.push("Disposition-Notification-To", reply_to);
    }
    if partner.mdn == MdnMode::Signed {
        http.push(
            "Disposition-Notification-Options",
            MdnRequest::signed_options(mic.algorithm),
        );
    }
    if partner.mdn != MdnMode::None && partner.mdn_delivery == MdnDelivery::Async {
        // RFC 4130 §7.3: where the partner POSTs the MDN; `check` made sure it is set.
        if let Some(url) = &config.station.url {
            http.push("Receipt-Delivery-Option", url.clone());
        }
    }
    http.push("EDIINT-Features", FEATURES);
    OutboundHead {
        message_id,
        headers: http,
        mic,
        mic_variants: None,
    }
}

/// What checking a partner's MDN concluded.
#[derive(Debug, Clone)]
pub struct MdnVerdict {
    /// The MDN as parsed.
    pub mdn: Mdn,
    /// Whether its Received-Content-MIC equals the MIC we computed.
    pub mic_matched: bool,
    /// Whether the MDN proves receipt: positive disposition, matching MIC (or
    /// a duplicate-document warning with no MIC at all), signed when we asked
    /// for a signed one.
    pub proves_receipt: bool,
    /// Whether it is signed, or an unsigned one was what we asked for.
    pub signature_ok: bool,
}

/// Checks the partner's MDN for a message we sent (RFC 4130 §7.4): the
/// signature, the Original-Message-ID, and the MIC.
pub fn check_mdn(
    connection: &Checked,
    sent_message_id: &str,
    sent_mic: &Mic,
    http_headers: &Headers,
    body: &[u8],
    provider: &dyn CryptoProvider,
) -> Result<MdnVerdict, Error> {
    let mdn = mdn::parse(http_headers, body, &connection.partner_cert, provider)?;
    let signed_requested = connection.connection.partner.mdn == MdnMode::Signed;
    judge_mdn(mdn, sent_message_id, sent_mic, signed_requested)
}

/// Judges an MDN already parsed (and its signature verified) against the
/// message it should acknowledge: [`check_mdn`] without the parsing, for an
/// asynchronous MDN whose Original-Message-ID names the message to look up.
/// `signed_requested`: whether the message asked for a signed MDN.
pub fn judge_mdn(
    mut mdn: Mdn,
    sent_message_id: &str,
    sent_mic: &Mic,
    signed_requested: bool,
) -> Result<MdnVerdict, Error> {
    if mdn.original_message_id.trim() != sent_message_id {
        return Err(Error::malformed(format!(
            "the MDN acknowledges {}, not the message sent ({sent_message_id})",
            headers::truncate(&mdn.original_message_id, 200)
        )));
    }
    let mic_matched = mdn
        .received_mic
        .as_ref()
        .is_some_and(|reported| reported.matches(sent_mic));
    // pyas2lib (and others) answer a repeat before decrypting it, so without
    // a MIC: the partner signs that it stored this Message-ID earlier.
    let duplicate_without_mic =
        mdn.received_mic.is_none() && mdn.disposition.is_duplicate_document();
    if duplicate_without_mic {
        mdn.warnings.push(
            "the partner reports this Message-ID as a duplicate of a message it received earlier, without a Received-Content-MIC".into(),
        );
    } else if mdn.received_mic.is_none() && mdn.disposition.is_positive() {
        mdn.warnings
            .push("the MDN reports no Received-Content-MIC".into());
    }
    let signature_ok = mdn.signed || !signed_requested;
    if !signature_ok {
        mdn.warnings.push(
            "a signed MDN was requested but an unsigned one came back: not proof of receipt".into(),
        );
    }
    let proves_receipt =
        mdn.disposition.is_positive() && (mic_matched || duplicate_without_mic) && signature_ok;
    Ok(MdnVerdict {
        mdn,
        mic_matched,
        proves_receipt,
        signature_ok,
    })
}

/// A document received and verified.
#[derive(Debug, Clone)]
pub struct Received {
    /// The document: the only one, or the first of several (RFC 6362).
    pub document: ReceivedDocument,
    /// The documents after the first, when the message carried several.
    pub attachments: Vec<ReceivedDocument>,
    /// Its MIC, as reported in the MDN.
    pub mic: Mic,
    /// Whether it was signed (and verified).
    pub signed: bool,
    /// Whether it was encrypted.
    pub encrypted: bool,
}

impl Received {
    /// Every document the message carried, in order.
    pub fn documents(&self) -> impl Iterator<Item = &ReceivedDocument> {
        std::iter::once(&self.document).chain(&self.attachments)
    }
}

/// The outcome of processing one inbound AS2 request.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The message's Message-ID.
    pub message_id: String,
    /// AS2-From, unquoted.
    pub partner: String,
    /// The document, when the message was processed; the error otherwise.
    pub result: Result<Received, Error>,
    /// The disposition reported in the MDN.
    pub disposition: Disposition,
    /// The message was received before (same partner, same Message-ID): its
    /// document must not be delivered again (`processed/warning: duplicate-document`).
    pub duplicate: bool,
    /// The MDN, if the sender asked for one, with where it goes.
    pub mdn: Option<OutgoingMdn>,
}

/// The station's private keys for one inbound message: the one that signs
/// MDNs, and every one that may decrypt (the current key, and during a
/// certificate rollover the next one partners may already encrypt to).
#[derive(Clone, Copy)]
pub struct StationKeys<'a> {
    /// Signs MDNs; decrypts first.
    pub current: &'a dyn PrivateKey,
    /// A newer key that also decrypts, during a rollover.
    pub next: Option<&'a dyn PrivateKey>,
}

impl<'a> StationKeys<'a> {
    /// Just the current key.
    pub fn single(current: &'a dyn PrivateKey) -> Self {
        StationKeys {
            current,
            next: None,
        }
    }

    fn decrypting(&self) -> Vec<&'a dyn PrivateKey> {
        std::iter::once(self.current).chain(self.next).collect()
    }
}

/// An MDN to deliver.
#[derive(Debug, Clone)]
pub struct OutgoingMdn {
    /// The MDN message.
    pub message: HttpMessage,
    /// Where to POST it; `None` means in the HTTP response (synchronous).
    pub async_url: Option<String>,
}

/// Checks that a request's AS2-From / AS2-To name this connection's partner
/// and station (RFC 4130 §6.2, compared unquoted).
pub fn check_addressing(connection: &Checked, http_headers: &Headers) -> Result<(), Error> {
    let config = &connection.connection;
    let from = http_headers
        .get("AS2-From")
        .map(headers::as2_id_from_header);
    let to = http_headers.get("AS2-To").map(headers::as2_id_from_header);
    if from.as_deref() != Some(config.partner.as2_id.as_str())
        || to.as_deref() != Some(config.station.as2_id.as_str())
    {
        return Err(Error::UnknownPartner(format!(
            "AS2-From {:?} / AS2-To {:?} do not match this connection ({:?} to {:?})",
            from.unwrap_or_default(),
            to.unwrap_or_default(),
            config.partner.as2_id,
            config.station.as2_id
        )));
    }
    Ok(())
}

/// The longest Message-ID accepted: an RFC 5322 §2.1.1 line.
pub const MAX_MESSAGE_ID: usize = 998;

/// The Message-ID of a received request, trimmed (RFC 4130 §5.3.3): at
/// most [`MAX_MESSAGE_ID`] visible ASCII characters, since it names the
/// message in records, file names and the MDN.
pub fn message_id(http_headers: &Headers) -> Result<String, Error> {
    let id = http_headers
        .get("Message-ID")
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::malformed("the message has no Message-ID header"))?;
    if id.len() > MAX_MESSAGE_ID {
        return Err(Error::malformed(format!(
            "the Message-ID is {} characters long; at most {MAX_MESSAGE_ID} are accepted",
            id.len()
        )));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::malformed(format!(
            "the Message-ID {} holds characters other than visible ASCII",
            headers::truncate(&id, 100)
        )));
    }
    Ok(id)
}

/// Refuses an asynchronous MDN asked for at a URL this connection does not
/// allow: one the configured `partner.async_mdn_url` would not replace and
/// whose host is not the partner's own (`partner.url`). Without this rule a
/// message could make us POST to any address (RFC 4130 §7.3 leaves the
/// choice to the receiver).
fn check_async_url(connection: &Checked, asked: Option<&str>) -> Result<(), Error> {
    let partner = &connection.connection.partner;
    let Some(asked) = asked else {
        return Ok(());
    };
    if partner.async_mdn_url.is_some() {
        return Ok(());
    }
    let host = |url: &str| {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))?;
        let authority = rest.split(['/', '?', '#']).next()?;
        let authority = authority.rsplit('@').next()?;
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next()?,
            None => authority.split(':').next()?,
        };
        Some(host.to_ascii_lowercase())
    };
    match (host(asked), host(&partner.url)) {
        (Some(asked_host), Some(partner_host)) if asked_host == partner_host => Ok(()),
        _ => Err(Error::NotAllowed(format!(
            "the message asks for its MDN at {}, which is not on the partner's host; set partner.async_mdn_url to allow another address",
            headers::truncate(asked, 200)
        ))),
    }
}

/// Processes a received AS2 request (RFC 4130 §7): checks the addressing,
/// decrypts, verifies, extracts the document, computes the MIC, and builds
/// the MDN the sender asked for. Message-level failures become the matching
/// disposition; only requests no MDN can answer (unknown partner, no
/// Message-ID) are errors.
///
/// `received_before` answers whether this partner's Message-ID was already
/// received and stored. A verified repeat is answered `processed/warning:
/// duplicate-document` with the MIC, and [`Inbound::duplicate`] tells the
/// caller not to deliver it again. It is asked only once the message has
/// verified, so a forged copy cannot pass as a duplicate.
pub fn receive(
    connection: &Checked,
    http_headers: &Headers,
    body: &[u8],
    keys: StationKeys<'_>,
    received_before: &mut dyn FnMut(&str) -> Result<bool, Error>,
    now: SystemTime,
    provider: &dyn CryptoProvider,
) -> Result<Inbound, Error> {
    receive_from(
        connection,
        http_headers,
        &body,
        keys,
        received_before,
        now,
        provider,
        &bytes::InMemory::default(),
    )
}

/// [`receive`] of a body read a piece at a time: each layer (ciphertext,
/// plaintext, inflated entity, decoded payload) is read where it lies and
/// what it makes goes to a spool of `spools`, so that memory holds no
/// layer larger than the spools' hold limit.
#[allow(clippy::too_many_arguments)]
pub fn receive_from(
    connection: &Checked,
    http_headers: &Headers,
    body: &dyn Source,
    keys: StationKeys<'_>,
    received_before: &mut dyn FnMut(&str) -> Result<bool, Error>,
    now: SystemTime,
    provider: &dyn CryptoProvider,
    spools: &dyn Spools,
) -> Result<Inbound, Error> {
    let config = &connection.connection;
    check_addressing(connection, http_headers)?;
    let message_id = message_id(http_headers)?;
    let request = MdnRequest::from_headers(http_headers);
    check_async_url(
        connection,
        request.as_ref().and_then(|r| r.async_url.as_deref()),
    )?;

    let requested_micalg = request.as_ref().and_then(|r| r.micalg.clone());
    let fallback = DigestAlgorithm::from(config.station.mdn_signing);
    let result = match request.as_ref().and_then(|r| r.unsupported_micalg.clone()) {
        Some(asked) => Err(Error::UnsupportedMic(format!(
            "none of the MIC algorithms asked for ({asked}) is supported"
        ))),
        None => unpack(
            connection,
            http_headers,
            body,
            keys,
            requested_micalg.as_ref(),
            fallback,
            provider,
            spools,
        ),
    };
    let duplicate = match &result {
        Ok(_) => received_before(&message_id)?,
        Err(_) => false,
    };
    let disposition = match &result {
        Ok(_) if duplicate => Disposition::warning("duplicate-document"),
        Ok(_) => Disposition::processed(),
        Err(error) => Disposition::for_error(error),
    };
    let mdn = match request {
        None => None,
        Some(request) => {
            let explanation = match &result {
                Ok(_) if duplicate => format!(
                    "The AS2 message {message_id} was received before; this copy was not processed again."
                ),
                Ok(_) => format!("The AS2 message {message_id} was received and processed."),
                Err(error) => format!("The AS2 message {message_id} was not processed: {error}"),
            };
            let mdn_id = new_message_id(&config.station.as2_id, now, provider);
            let fields = MdnFields {
                reporter: &config.station.as2_id,
                recipient: &config.partner.as2_id,
                original_message_id: &message_id,
                message_id: &mdn_id,
                disposition: &disposition,
                mic: result.as_ref().ok().map(|received| &received.mic),
                explanation: &explanation,
            };
            // The MDN is signed with the MIC's digest: the one asked for, else
            // the one the MIC was computed with, else the station's choice.
            let signing_digest = match (&requested_micalg, &result) {
                (Some(asked), _) => asked.clone(),
                (None, Ok(received)) => (received.mic.algorithm, received.mic.spelling.clone()),
                (None, Err(_)) => (fallback, fallback.micalg().to_string()),
            };
            // Asked only for digests we lack: the refusal goes out unsigned.
            let can_sign = request.signed && request.unsupported_micalg.is_none();
            let signer = can_sign.then(|| {
                let (algorithm, spelling) = &signing_digest;
                let params = SigningParams {
                    algorithm: *algorithm,
                    scheme: SignatureScheme::RsaPkcs1v15,
                    micalg: spelling.as_str(),
                    binary_signature: config.station.mdn_encoding == TransferEncoding::Binary,
                };
                (keys.current, params)
            });
            // A configured URL wins over the one the message names, so a
            // message cannot send our MDN somewhere the connection does not allow.
            let partner = &config.partner;
            let async_url = if partner.requires_async_mdn {
                partner.async_mdn_url.clone()
            } else {
                request
                    .async_url
                    .map(|asked| partner.async_mdn_url.clone().unwrap_or(asked))
            };
            Some(OutgoingMdn {
                message: mdn::build(&fields, signer, now, provider)?,
                async_url,
            })
        }
    };
    Ok(Inbound {
        message_id,
        partner: config.partner.as2_id.clone(),
        result,
        disposition,
        duplicate,
        mdn,
    })
}

/// The usual name of a content encryption, e.g. `AES-128-CBC`.
fn encryption_name(encryption: ContentEncryption) -> String {
    use crate::crypto::{AeadCipher, ContentCipher};
    match encryption {
        ContentEncryption::Cbc(ContentCipher::Aes128Cbc) => "AES-128-CBC".into(),
        ContentEncryption::Cbc(ContentCipher::Aes192Cbc) => "AES-192-CBC".into(),
        ContentEncryption::Cbc(ContentCipher::Aes256Cbc) => "AES-256-CBC".into(),
        ContentEncryption::Cbc(ContentCipher::DesEde3Cbc) => "3DES".into(),
        ContentEncryption::Cbc(ContentCipher::Rc2Cbc { effective_bits }) => {
            format!("RC2-{effective_bits}")
        }
        ContentEncryption::Gcm(AeadCipher::Aes128Gcm) => "AES-128-GCM".into(),
        ContentEncryption::Gcm(AeadCipher::Aes192Gcm) => "AES-192-GCM".into(),
        ContentEncryption::Gcm(AeadCipher::Aes256Gcm) => "AES-256-GCM".into(),
    }
}

/// Most S/MIME layers (encryption, compression, signature) one message may nest.
const MAX_LAYERS: usize = 6;

/// Where the entity being unpacked lies.
enum Layer<'b> {
    /// In the HTTP body.
    Body(&'b dyn Source),
    /// In a spool a layer before wrote (plaintext, inflated or decoded bytes).
    Made(Box<dyn Spool>),
    /// In a spool that several documents share.
    Shared(std::rc::Rc<dyn Spool>),
}

impl Layer<'_> {
    fn source(&self) -> &dyn Source {
        match self {
            Layer::Body(source) => *source,
            Layer::Made(spool) => spool.as_ref(),
            Layer::Shared(spool) => spool.as_ref(),
        }
    }
}

/// Where the next entity is.
enum Next {
    /// In a new spool.
    Made(Box<dyn Spool>),
    /// In the current layer, at this range.
    Within(Range<u64>),
}

/// What a CMS layer (`application/pkcs7-mime`) held.
enum Opened {
    /// The plaintext, and its signed part's digest as far as it was taken
    /// while decrypting.
    Decrypted(Box<dyn Spool>, signed::EarlyDigest),
    Decompressed(Box<dyn Spool>),
}

/// Opens one CMS layer into a new spool: decrypts it under the
/// connection's policy, or decompresses it. `encrypted`: a layer above was
/// already decrypted.
#[allow(clippy::too_many_arguments)]
fn open_cms(
    connection: &Checked,
    der: &dyn Source,
    claims_compressed: bool,
    encrypted: bool,
    keys: StationKeys<'_>,
    provider: &dyn CryptoProvider,
    spools: &dyn Spools,
) -> Result<Opened, Error> {
    let unreadable = unreadable_cms(claims_compressed);
    // The CMS content type decides, whatever smime-type says.
    let kind = smime::content_type(der).map_err(unreadable)?;
    if kind == oids::ENVELOPED_DATA || kind == oids::AUTH_ENVELOPED_DATA {
        if encrypted {
            return Err(Error::malformed("the message is encrypted twice"));
        }
        let used = smime::content_encryption_of(der)
            .map_err(unreadable)
            .map_err(Error::in_decryption)?;
        let required = connection.connection.station.decryption;
        if !required.allows(used) {
            return Err(Error::InsufficientSecurity(format!(
                "the message is encrypted with {}; this connection requires {}",
                encryption_name(used),
                crate::config::wire_name(required)
            )));
        }
        let mut early = signed::EarlyDigest::default();
        // The plaintext is a little shorter than the ciphertext.
        let mut plain = spools.spool(der.len())?;
        smime::decrypt_any(
            der,
            &keys.decrypting(),
            provider,
            plain.as_mut(),
            &mut |piece| early.observe(piece, provider),
        )
        .map_err(unreadable)
        .map_err(Error::in_decryption)?;
        Ok(Opened::Decrypted(plain, early))
    } else if kind == oids::COMPRESSED_DATA {
        let mut plain = spools.spool(0)?;
        compress::decompress_into(der, compress::max_decompressed(der.len()), plain.as_mut())?;
        Ok(Opened::Decompressed(plain))
    } else if kind == oids::SIGNED_DATA {
        Err(Error::UnsupportedFormat(
            "opaque signed messages (smime-type=signed-data) are not supported; sign with multipart/signed".into(),
        ))
    } else {
        Err(Error::UnsupportedFormat(format!("CMS content type {kind}")))
    }
}

/// The header fields of the entity at `entity` in `source`, and where its
/// body starts; only the header block is read.
fn entity_head(source: &dyn Source, entity: Range<u64>) -> Result<(Headers, u64), Error> {
    let len = entity.end - entity.start;
    let look = (headers::MAX_HEADER_BLOCK as u64 + 4096).min(len);
    let head = bytes::read_all(&Window::new(source, entity.start..entity.start + look))?;
    let (fields, body_start) = headers::parse_block(&head)?;
    if body_start as u64 == look && look < len {
        return Err(Error::malformed("header block is larger than 64 KiB"));
    }
    Ok((fields, entity.start + body_start as u64))
}

/// The body at `body` in `source` with its Content-Transfer-Encoding
/// undone: where it lies when the coding is an identity, else decoded into
/// a new spool.
fn decoded_body(
    source: &dyn Source,
    body: Range<u64>,
    coding: Option<&str>,
    spools: &dyn Spools,
) -> Result<Next, Error> {
    if mime::is_identity_coding(coding)? {
        return Ok(Next::Within(body));
    }
    let mut decoded = spools.spool((body.end - body.start) / 4 * 3)?;
    let mut decoder = mime::Base64Decoder::new(decoded.as_mut());
    bytes::copy(&Window::new(source, body), &mut decoder)?;
    decoder.finish()?;
    Ok(Next::Made(decoded))
}

/// A document's bytes at `range` of `layer`: in memory up to the spools'
/// hold limit, else left in (or copied to) a spool.
fn content_at(layer: &Layer<'_>, range: Range<u64>, spools: &dyn Spools) -> Result<Content, Error> {
    let len = range.end - range.start;
    let window = Window::new(layer.source(), range.clone());
    if len <= spools.hold_limit() {
        return Ok(Content::Bytes(bytes::read_all(&window)?));
    }
    match layer {
        Layer::Shared(spool) => Ok(Content::Spooled {
            spool: spool.clone(),
            start: range.start,
            len,
        }),
        _ => {
            let mut copied = spools.spool(len)?;
            bytes::copy(&window, copied.as_mut())?;
            Ok(Content::Spooled {
                spool: copied.into(),
                start: 0,
                len,
            })
        }
    }
}

/// The one document's bytes at `range` of `layer`, taking the layer's spool
/// rather than copying it where it can.
fn take_content(
    layer: Layer<'_>,
    range: Range<u64>,
    spools: &dyn Spools,
) -> Result<Content, Error> {
    match layer {
        Layer::Made(spool) if range.end - range.start <= spools.hold_limit() => {
            // Within a spool of at most the hold limit, which is in memory.
            let mut bytes = spool.into_vec()?;
            bytes.truncate(range.end as usize);
            bytes.drain(..range.start as usize);
            Ok(Content::Bytes(bytes))
        }
        Layer::Made(spool) => content_at(&Layer::Shared(spool.into()), range, spools),
        layer => content_at(&layer, range, spools),
    }
}

/// A body that does not even read as CMS fails the layer it claims to be:
/// decryption, or for compressed data decompression.
fn unreadable_cms(claims_compressed: bool) -> impl Fn(Error) -> Error + Copy {
    move |e| match e {
        Error::Malformed(reason) if claims_compressed => Error::Decompression(reason),
        Error::Malformed(reason) => {
            Error::Decryption(format!("the encrypted body cannot be read: {reason}"))
        }
        e => e,
    }
}

/// Whether an `application/pkcs7-mime` entity says it holds compressed data.
fn claims_compressed(content_type: &ParameterizedValue) -> bool {
    content_type
        .param("smime-type")
        .is_some_and(|t| t.eq_ignore_ascii_case("compressed-data"))
}

/// The error for a message that arrived unencrypted where encryption is required.
fn not_encrypted() -> Error {
    Error::InsufficientSecurity(
        "the message is not encrypted and this connection requires encryption".into(),
    )
}

/// Decrypts, decompresses and verifies down to the payload, in whatever
/// order the layers come (RFC 5402 allows compression before or after
/// signing). Each layer is read where it lies, a piece at a time, and what
/// it makes goes to a spool of `spools`: memory holds no more than the
/// spools' hold limit of any one layer.
#[allow(clippy::too_many_arguments)]
fn unpack(
    connection: &Checked,
    http_headers: &Headers,
    body: &dyn Source,
    keys: StationKeys<'_>,
    requested_micalg: Option<&(DigestAlgorithm, String)>,
    fallback: DigestAlgorithm,
    provider: &dyn CryptoProvider,
    spools: &dyn Spools,
) -> Result<Received, Error> {
    let partner = &connection.connection.partner;
    // RFC 4130 §7.3.1: in the algorithm asked for, spelled as asked; a
    // signed message without a request uses the signer's own digest, as
    // the sender computed its MIC that way.
    // `signed`: the signature's digest algorithm and its digest of
    // `content`, reused when the MIC is asked for in the same algorithm.
    let mic_of = |content: &dyn Source, signed: Option<(DigestAlgorithm, &[u8])>| {
        let signer = signed.map(|(algorithm, _)| algorithm);
        let (algorithm, spelling) = match (requested_micalg, signer) {
            (Some((algorithm, spelling)), _) => (*algorithm, spelling.clone()),
            (None, Some(algorithm)) => (algorithm, algorithm.micalg().to_string()),
            (None, None) => (fallback, fallback.micalg().to_string()),
        };
        let digest = match signed {
            Some((signer, digest)) if signer == algorithm => digest.to_vec(),
            _ => signed::digest_source(algorithm, content, provider)?,
        };
        Ok::<_, Error>(Mic {
            digest,
            algorithm,
            spelling,
        })
    };
    // The HTTP message as a MIME entity: its content headers and its body.
    let mut content_headers = Headers::new();
    for name in [
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
    ] {
        if let Some(value) = http_headers.get(name) {
            content_headers.push(name, value);
        }
    }
    let (mut signed, mut encrypted) = (false, false);
    let mut mic: Option<Mic> = None;
    let mut decrypted_mic: Option<Mic> = None;
    // Set when the entity at hand was just decrypted: its MIC is the
    // message's unless a signature inside gives one (RFC 4130 §7.3.1), so
    // it is taken only then.
    let mut just_decrypted = false;
    // The HTTP body's headers are the HTTP fields, not part of its bytes.
    let mut http_headers = Some(content_headers);
    // The signed part's digest as it was decrypted, while `layer` holds
    // that plaintext; `early_next` for the layer the next one makes.
    let mut early: Option<signed::EarlyDigest> = None;
    let mut early_next: Option<signed::EarlyDigest> = None;
    let mut layer = Layer::Body(body);
    let mut range = 0..body.len();

    // Set at the innermost entity: its file name, type and MIC.
    let mut payload = None;
    for depth in 0..=MAX_LAYERS {
        if depth == MAX_LAYERS {
            return Err(Error::malformed(format!(
                "more than {MAX_LAYERS} nested S/MIME layers"
            )));
        }
        let next = {
            let source = layer.source();
            let (fields, body_range) = match http_headers.take() {
                Some(fields) => (fields, range.clone()),
                None => {
                    let (fields, body_start) = entity_head(source, range.clone())?;
                    (fields, body_start..range.end)
                }
            };
            let coding = fields.get("Content-Transfer-Encoding");
            let content_type = fields.content_type();
            if std::mem::take(&mut just_decrypted) && content_type.value != "multipart/signed" {
                decrypted_mic = Some(mic_of(&Window::new(source, range.clone()), None)?);
            }
            match content_type.value.as_str() {
                "application/pkcs7-mime" | "application/x-pkcs7-mime" => {
                    let claims_compressed = claims_compressed(&content_type);
                    let decoded = decoded_body(source, body_range, coding, spools)
                        .map_err(unreadable_cms(claims_compressed))?;
                    let (der_source, der_range) = match &decoded {
                        Next::Within(within) => (source, within.clone()),
                        Next::Made(spool) => (spool.as_ref() as &dyn Source, 0..spool.len()),
                    };
                    let der = Window::new(der_source, der_range);
                    match open_cms(
                        connection,
                        &der,
                        claims_compressed,
                        encrypted,
                        keys,
                        provider,
                        spools,
                    )? {
                        Opened::Decrypted(plain, taken) => {
                            (encrypted, just_decrypted) = (true, true);
                            early_next = Some(taken);
                            Next::Made(plain)
                        }
                        Opened::Decompressed(_) if depth == 0 && partner.require_encrypted => {
                            return Err(not_encrypted());
                        }
                        Opened::Decompressed(plain) => Next::Made(plain),
                    }
                }
                "multipart/signed" => {
                    if signed {
                        return Err(Error::malformed("the message is signed twice"));
                    }
                    // The part's digest taken as it was decrypted, if it is
                    // this part's in this layer and in the signer's algorithm.
                    let mut early_here = early.take();
                    // A signed structure that does not read cannot pass its check.
                    let verified = signed::verify_parts(
                        source,
                        body_range,
                        &content_type,
                        &connection.partner_cert,
                        partner.prevent_canonicalization,
                        provider,
                        spools,
                        &mut |algorithm, part| early_here.take()?.finish(part, algorithm),
                    )
                    .map_err(|e| match e {
                        Error::Malformed(reason) => Error::Integrity(format!(
                            "the signed structure cannot be read: {reason}"
                        )),
                        e => e.in_verification(),
                    })?;
                    let required = connection.connection.station.signature_verification;
                    if !required.allows(verified.signature.digest_algorithm) {
                        return Err(Error::InsufficientSecurity(format!(
                            "the message is signed with {}; this connection requires {}",
                            verified.signature.digest_algorithm.micalg(),
                            crate::config::wire_name(required)
                        )));
                    }
                    let content = match verified.content {
                        signed::SignedContent::Within(part) => Next::Within(part),
                        signed::SignedContent::Canonical(canonical) => Next::Made(canonical),
                    };
                    let (content_source, content_range) = match &content {
                        Next::Within(within) => (source, within.clone()),
                        Next::Made(spool) => (spool.as_ref() as &dyn Source, 0..spool.len()),
                    };
                    // RFC 4130 §7.3.1: the MIC covers the signed entity, headers included.
                    mic = Some(mic_of(
                        &Window::new(content_source, content_range),
                        Some((
                            verified.signature.digest_algorithm,
                            &verified.signature.content_digest,
                        )),
                    )?);
                    signed = true;
                    content
                }
                _ => {
                    if depth == 0 && partner.require_encrypted {
                        return Err(not_encrypted());
                    }
                    if !signed && partner.require_signed {
                        return Err(Error::InsufficientSecurity(
                            "the message is not signed and this connection requires signing".into(),
                        ));
                    }
                    // Unsigned: over the decrypted entity, or over the content alone.
                    let mic = match mic.take().or(decrypted_mic.take()) {
                        Some(mic) => mic,
                        None => mic_of(&Window::new(source, body_range.clone()), None)?,
                    };
                    let content = decoded_body(source, body_range, coding, spools)?;
                    let boundary = (content_type.value == "multipart/related").then(|| {
                        content_type
                            .param("boundary")
                            .unwrap_or_default()
                            .to_string()
                    });
                    payload = Some((mime::file_name(&fields), content_type.value, mic, boundary));
                    content
                }
            }
        };
        if depth == 0 && !encrypted && partner.require_encrypted {
            return Err(not_encrypted());
        }
        match next {
            Next::Made(spool) => {
                range = 0..spool.len();
                layer = Layer::Made(spool);
                early = early_next.take();
            }
            Next::Within(within) => range = within,
        }
        if let Some((file_name, content_type, mic, related)) = payload {
            let mut documents = match related {
                Some(boundary) => attachments_of(layer, range, &boundary, spools)?,
                None => vec![ReceivedDocument {
                    file_name,
                    content_type,
                    content: take_content(layer, range, spools)?,
                }],
            }
            .into_iter();
            let document = documents
                .next()
                .ok_or_else(|| Error::malformed("the message has no payload"))?;
            return Ok(Received {
                document,
                attachments: documents.collect(),
                mic,
                signed,
                encrypted,
            });
        }
    }
    Err(Error::malformed("the message has no payload"))
}

/// The documents of a `multipart/related` payload (RFC 6362 §3), the range
/// `body` of `layer`: each part with its own type, file name and transfer
/// encoding undone.
fn attachments_of(
    layer: Layer<'_>,
    body: Range<u64>,
    boundary: &str,
    spools: &dyn Spools,
) -> Result<Vec<ReceivedDocument>, Error> {
    let layer = match layer {
        Layer::Made(spool) => Layer::Shared(spool.into()),
        layer => layer,
    };
    let parts = mime::part_ranges(layer.source(), body, boundary)
        .map_err(|e| Error::malformed(format!("the multipart/related payload: {e}")))?;
    if parts.len() > MAX_ATTACHMENTS {
        return Err(Error::malformed(format!(
            "the message carries {} documents; at most {MAX_ATTACHMENTS} are read",
            parts.len()
        )));
    }
    parts
        .into_iter()
        .map(|part| {
            let (fields, body_start) = entity_head(layer.source(), part.clone())?;
            let coding = fields.get("Content-Transfer-Encoding");
            let content = match decoded_body(layer.source(), body_start..part.end, coding, spools)?
            {
                Next::Within(within) => content_at(&layer, within, spools)?,
                Next::Made(decoded) => {
                    let len = decoded.len();
                    take_content(Layer::Made(decoded), 0..len, spools)?
                }
            };
            Ok(ReceivedDocument {
                file_name: mime::file_name(&fields),
                content_type: fields.content_type().value,
                content,
            })
        })
        .collect()
}

//! `multipart/signed` entities (RFC 1847 §2.1, RFC 5751 §3.4.3): a content
//! part and a detached CMS signature over its exact bytes.

use std::borrow::Cow;
use std::time::SystemTime;

use crate::bytes::{Sink, Source, for_each_piece};
use crate::crypto::{CryptoProvider, DigestAlgorithm, Hasher, PrivateKey, SignatureScheme};
use crate::error::Error;
use crate::headers::Headers;
use crate::mime::{self, Entity};
use crate::smime::{self, Cert, VerifiedSignature};

/// A signed entity ready to send: its Content-Type (with the boundary) and
/// the whole entity, header and multipart body in one buffer, so that a
/// large document is not copied once more to put the header in front.
#[derive(Debug, Clone)]
pub struct SignedEntity {
    /// `multipart/signed; protocol=…; micalg=…; boundary=…`
    pub content_type: String,
    /// Content-Type header, blank line, multipart body.
    entity: Vec<u8>,
    /// Where the multipart body starts in `entity`.
    body_start: usize,
    /// The digest of the signed content under the signature's algorithm
    /// (the messageDigest attribute), which is also its MIC.
    pub content_digest: Vec<u8>,
}

impl SignedEntity {
    /// The multipart body.
    pub fn body(&self) -> &[u8] {
        &self.entity[self.body_start..]
    }

    /// The whole entity: Content-Type header, blank line, body.
    pub fn into_entity(self) -> Vec<u8> {
        self.entity
    }
}

/// How to sign an entity.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    /// The digest algorithm.
    pub algorithm: DigestAlgorithm,
    /// PKCS#1 v1.5 or PSS.
    pub scheme: SignatureScheme,
    /// The `micalg` parameter as written (the partner's spelling when answering one).
    pub micalg: &'a str,
    /// Send the signature part as binary rather than base64 (which every stack reads).
    pub binary_signature: bool,
}

/// A multipart/signed body about to be written: its boundary and its exact
/// length are fixed before the content is read, so the entity can be
/// encrypted (whose DER states its length first) as it is written.
pub struct SignedPlan<'a> {
    /// `multipart/signed; protocol=…; micalg=…; boundary=…`
    pub content_type: String,
    boundary: String,
    params: SigningParams<'a>,
    content_len: u64,
    signature_len: usize,
    now: SystemTime,
}

/// What writing a signed body computed.
pub struct Signed {
    /// The digest of the content under the signature's algorithm (the
    /// messageDigest attribute, which is also its MIC).
    pub content_digest: Vec<u8>,
    /// The content's digest under the extra algorithm asked for, if any.
    pub other_digest: Option<Vec<u8>>,
}

/// The header fields of the signature part.
fn signature_headers(binary: bool) -> Vec<u8> {
    let mut headers = Headers::new();
    headers.push(
        "Content-Type",
        "application/pkcs7-signature; name=\"smime.p7s\"",
    );
    headers.push(
        "Content-Transfer-Encoding",
        if binary { "binary" } else { "base64" },
    );
    headers.push("Content-Disposition", "attachment; filename=\"smime.p7s\"");
    let mut out = Vec::new();
    headers.write_to(&mut out);
    out.extend_from_slice(b"\r\n");
    out
}

/// The length of `len` bytes in base64 lines of 76 characters plus CRLF.
fn base64_lines_len(len: usize) -> usize {
    let encoded = len.div_ceil(3) * 4;
    encoded + encoded.div_ceil(76) * 2
}

impl<'a> SignedPlan<'a> {
    /// Plans the signing of a `content_len`-byte entity by `key`.
    pub fn new(
        content_len: u64,
        key: &dyn PrivateKey,
        params: SigningParams<'a>,
        now: SystemTime,
        provider: &dyn CryptoProvider,
    ) -> Result<Self, Error> {
        let signature_len = smime::signed_data_len(
            &key.certificate_der(),
            params.algorithm,
            params.scheme,
            now,
            provider,
        )?;
        let mut random = [0u8; 12];
        provider.fill_random(&mut random);
        let boundary = mime::new_boundary(&random);
        let micalg = params.micalg;
        let content_type = format!(
            "multipart/signed; protocol=\"application/pkcs7-signature\"; micalg={micalg}; boundary=\"{boundary}\""
        );
        Ok(SignedPlan {
            content_type,
            boundary,
            params,
            content_len,
            signature_len,
            now,
        })
    }

    /// The digest algorithm of the signature.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.params.algorithm
    }

    fn signature_part_len(&self) -> usize {
        signature_headers(self.params.binary_signature).len()
            + if self.params.binary_signature {
                self.signature_len
            } else {
                base64_lines_len(self.signature_len)
            }
    }

    /// The multipart body's exact length.
    pub fn body_len(&self) -> u64 {
        // "--B\r\n" part "\r\n", twice, then "--B--\r\n" (RFC 2046 §5.1.1).
        let delimiter = self.boundary.len() as u64 + 4;
        self.content_len + self.signature_part_len() as u64 + 2 * (delimiter + 2) + delimiter + 2
    }

    /// The Content-Type header, blank line: what precedes the body in an entity.
    pub fn header_block(&self) -> Vec<u8> {
        let mut headers = Headers::new();
        headers.push("Content-Type", self.content_type.clone());
        let mut out = Vec::new();
        headers.write_to(&mut out);
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Writes the multipart body to `out`: the delimiter, the content as
    /// read from `content` (hashed on the way, also by `other` if given),
    /// then the signature over its digest.
    pub fn write(
        self,
        content: &dyn Source,
        key: &dyn PrivateKey,
        other: Option<Box<dyn Hasher + Send>>,
        provider: &dyn CryptoProvider,
        out: &mut dyn Sink,
    ) -> Result<Signed, Error> {
        if content.len() != self.content_len {
            return Err(Error::Storage(format!(
                "the content to sign is {} bytes, not the {} planned",
                content.len(),
                self.content_len
            )));
        }
        let delimiter = format!("--{}\r\n", self.boundary);
        out.write(delimiter.as_bytes())?;
        let mut hasher = provider.hasher(self.params.algorithm);
        let mut other = other;
        for_each_piece(content, |piece| {
            hasher.update(piece);
            if let Some(other) = other.as_mut() {
                other.update(piece);
            }
            out.write(piece)
        })?;
        let content_digest = hasher.finish();
        let signature = smime::sign_detached_digest(
            content_digest.clone(),
            key,
            self.params.algorithm,
            self.params.scheme,
            self.now,
            provider,
        )?;
        if signature.len() != self.signature_len {
            return Err(Error::KeyStore(format!(
                "the key store's signature came out {} bytes long, not the modulus's {}",
                signature.len(),
                self.signature_len
            )));
        }
        let mut tail = Vec::with_capacity(self.signature_part_len() + 2 * delimiter.len() + 8);
        tail.extend_from_slice(b"\r\n");
        tail.extend_from_slice(delimiter.as_bytes());
        tail.extend(signature_headers(self.params.binary_signature));
        if self.params.binary_signature {
            tail.extend_from_slice(&signature);
        } else {
            tail.extend(mime::encode_base64_lines(&signature));
        }
        tail.extend_from_slice(b"\r\n--");
        tail.extend_from_slice(self.boundary.as_bytes());
        tail.extend_from_slice(b"--\r\n");
        out.write(&tail)?;
        Ok(Signed {
            content_digest,
            other_digest: other.map(|h| h.finish()),
        })
    }
}

/// Signs `content` (a complete MIME entity) into a multipart/signed entity.
pub fn sign_entity(
    content: &[u8],
    key: &dyn PrivateKey,
    params: SigningParams<'_>,
    now: SystemTime,
    provider: &dyn CryptoProvider,
) -> Result<SignedEntity, Error> {
    let plan = SignedPlan::new(content.len() as u64, key, params, now, provider)?;
    let content_type = plan.content_type.clone();
    let mut entity = plan.header_block();
    let body_start = entity.len();
    entity.reserve(usize::try_from(plan.body_len()).unwrap_or(0));
    let signed = plan.write(&content, key, None, provider, &mut entity)?;
    Ok(SignedEntity {
        content_type,
        entity,
        body_start,
        content_digest: signed.content_digest,
    })
}

/// A verified multipart/signed entity.
#[derive(Debug, Clone)]
pub struct VerifiedEntity<'a> {
    /// The signed part: the bytes as received, or their CRLF-canonical form
    /// when that is what the signer signed.
    pub content: Cow<'a, [u8]>,
    /// What the signature told.
    pub signature: VerifiedSignature,
}

/// Verifies a multipart/signed entity with the partner's certificate, over
/// the first part's bytes exactly as received.
///
/// Unless `prevent_canonicalization` is set, a signature that fails over the
/// bytes as received is tried once more over their CRLF-canonical form
/// (RFC 5751 §3.1.1): a signer that canonicalized a text part before signing,
/// then sent it with bare LFs, is still verified.
pub fn verify_entity<'a>(
    entity: &Entity<'a>,
    partner: &Cert,
    prevent_canonicalization: bool,
    provider: &dyn CryptoProvider,
) -> Result<VerifiedEntity<'a>, Error> {
    let content_type = entity.content_type();
    let boundary = content_type
        .param("boundary")
        .ok_or_else(|| Error::malformed("multipart/signed without a boundary parameter"))?;
    let parts = mime::split_multipart(entity.body, boundary)?;
    let [content, signature_part] = parts.as_slice() else {
        return Err(Error::malformed(format!(
            "multipart/signed must have 2 parts, this one has {}",
            parts.len()
        )));
    };
    let signature_part = Entity::parse(signature_part)?;
    let signature_type = signature_part.content_type().value;
    if !matches!(
        signature_type.as_str(),
        "application/pkcs7-signature" | "application/x-pkcs7-signature"
    ) {
        return Err(Error::malformed(format!(
            "the second part of multipart/signed is {signature_type:?}, not application/pkcs7-signature"
        )));
    }
    let signature = signature_part.decoded_body()?;
    match smime::verify_detached(&signature, content, partner, provider) {
        Ok(verified) => Ok(VerifiedEntity {
            content: Cow::Borrowed(content),
            signature: verified,
        }),
        Err(Error::Integrity(reason)) if !prevent_canonicalization => {
            let canonical = canonicalize_line_ends(content);
            if canonical.as_slice() == *content {
                return Err(Error::Integrity(reason));
            }
            let verified = smime::verify_detached(&signature, &canonical, partner, provider)
                .map_err(|_| Error::Integrity(reason))?;
            Ok(VerifiedEntity {
                content: Cow::Owned(canonical),
                signature: verified,
            })
        }
        Err(other) => Err(other),
    }
}

/// Bare LF line ends become CRLF (RFC 5751 §3.1.1 canonical form).
pub fn canonicalize_line_ends(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    let mut previous = 0u8;
    for &b in bytes {
        if b == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        previous = b;
    }
    out
}

//! `multipart/signed` entities (RFC 1847 §2.1, RFC 5751 §3.4.3): a content
//! part and a detached CMS signature over its exact bytes.

use std::borrow::Cow;
use std::time::SystemTime;

use crate::crypto::{CryptoProvider, DigestAlgorithm, PrivateKey, SignatureScheme};
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

/// Signs `content` (a complete MIME entity) into a multipart/signed entity.
pub fn sign_entity(
    content: &[u8],
    key: &dyn PrivateKey,
    params: SigningParams<'_>,
    now: SystemTime,
    provider: &dyn CryptoProvider,
) -> Result<SignedEntity, Error> {
    let content_digest = provider.digest(params.algorithm, content);
    let signature = smime::sign_detached_digest(
        content_digest.clone(),
        key,
        params.algorithm,
        params.scheme,
        now,
        provider,
    )?;
    let mut signature_headers = Headers::new();
    signature_headers.push(
        "Content-Type",
        "application/pkcs7-signature; name=\"smime.p7s\"",
    );
    signature_headers.push(
        "Content-Transfer-Encoding",
        if params.binary_signature {
            "binary"
        } else {
            "base64"
        },
    );
    signature_headers.push("Content-Disposition", "attachment; filename=\"smime.p7s\"");
    let signature_body = if params.binary_signature {
        signature
    } else {
        mime::encode_base64_lines(&signature)
    };
    let signature_part = mime::entity(&signature_headers, &signature_body);
    let micalg = params.micalg;

    let mut random = [0u8; 12];
    provider.fill_random(&mut random);
    let boundary = mime::new_boundary(&random);
    let content_type = format!(
        "multipart/signed; protocol=\"application/pkcs7-signature\"; micalg={micalg}; boundary=\"{boundary}\""
    );
    let mut headers = Headers::new();
    headers.push("Content-Type", content_type.clone());
    let mut entity = Vec::with_capacity(content.len() + signature_part.len() + 512);
    headers.write_to(&mut entity);
    entity.extend_from_slice(b"\r\n");
    let body_start = entity.len();
    mime::write_multipart(&boundary, &[content, &signature_part], &mut entity);
    Ok(SignedEntity {
        content_type,
        entity,
        body_start,
        content_digest,
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

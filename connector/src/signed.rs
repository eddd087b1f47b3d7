//! `multipart/signed` entities (RFC 1847 §2.1, RFC 5751 §3.4.3): a content
//! part and a detached CMS signature over its exact bytes.

use std::time::SystemTime;

use crate::crypto::{CryptoProvider, DigestAlgorithm, PrivateKey};
use crate::error::Error;
use crate::headers::Headers;
use crate::mime::{self, Entity};
use crate::smime::{self, Cert, VerifiedSignature};

/// A signed entity ready to send: its Content-Type (with the boundary) and body.
#[derive(Debug, Clone)]
pub struct SignedEntity {
    /// `multipart/signed; protocol=…; micalg=…; boundary=…`
    pub content_type: String,
    /// The multipart body.
    pub body: Vec<u8>,
}

impl SignedEntity {
    /// The whole entity: Content-Type header, blank line, body.
    pub fn to_entity(&self) -> Vec<u8> {
        let mut headers = Headers::new();
        headers.push("Content-Type", self.content_type.clone());
        mime::entity(&headers, &self.body)
    }
}

/// Signs `content` (a complete MIME entity) into a multipart/signed entity.
/// `micalg` is the spelling written in the Content-Type parameter.
pub fn sign_entity(
    content: &[u8],
    key: &dyn PrivateKey,
    algorithm: DigestAlgorithm,
    micalg: &str,
    now: SystemTime,
    provider: &dyn CryptoProvider,
) -> Result<SignedEntity, Error> {
    let signature = smime::sign_detached(content, key, algorithm, now, provider)?;
    let mut signature_headers = Headers::new();
    signature_headers.push(
        "Content-Type",
        "application/pkcs7-signature; name=\"smime.p7s\"",
    );
    signature_headers.push("Content-Transfer-Encoding", "base64");
    signature_headers.push("Content-Disposition", "attachment; filename=\"smime.p7s\"");
    let signature_part = mime::entity(&signature_headers, &mime::encode_base64_lines(&signature));

    let mut random = [0u8; 12];
    provider.fill_random(&mut random);
    let boundary = mime::new_boundary(&random);
    let mut body = Vec::with_capacity(content.len() + signature_part.len() + 128);
    mime::write_multipart(&boundary, &[content, &signature_part], &mut body);
    Ok(SignedEntity {
        content_type: format!(
            "multipart/signed; protocol=\"application/pkcs7-signature\"; micalg={micalg}; boundary=\"{boundary}\""
        ),
        body,
    })
}

/// A verified multipart/signed entity.
#[derive(Debug, Clone)]
pub struct VerifiedEntity<'a> {
    /// The signed part, exactly as received: the entity inside.
    pub content: &'a [u8],
    /// What the signature told.
    pub signature: VerifiedSignature,
}

/// Verifies a multipart/signed entity with the partner's certificate, over
/// the first part's bytes exactly as received.
pub fn verify_entity<'a>(
    entity: &Entity<'a>,
    partner: &Cert,
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
    let verified = smime::verify_detached(&signature, content, partner, provider)?;
    Ok(VerifiedEntity {
        content,
        signature: verified,
    })
}

//! `multipart/signed` entities (RFC 1847 §2.1, RFC 5751 §3.4.3): a content
//! part and a detached CMS signature over its exact bytes.

use std::borrow::Cow;
use std::time::SystemTime;

use crate::bytes::{Sink, Source, for_each_piece};
use crate::crypto::{CryptoProvider, DigestAlgorithm, Hasher, PrivateKey, SignatureScheme};
use crate::error::Error;
use crate::headers::{self, Headers};
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
    let body: &'a [u8] = entity.body;
    let verified = verify_parts(
        &body,
        0..body.len() as u64,
        &entity.content_type(),
        partner,
        prevent_canonicalization,
        provider,
        &crate::bytes::InMemory::default(),
        &mut |_, _| None,
    )?;
    let content = match verified.content {
        SignedContent::Within(part) => Cow::Borrowed(&body[part.start as usize..part.end as usize]),
        SignedContent::Canonical(spool) => Cow::Owned(spool.into_vec()?),
    };
    Ok(VerifiedEntity {
        content,
        signature: verified.signature,
    })
}

/// Where the signed content of a verified multipart/signed body is.
pub enum SignedContent {
    /// This range of the source, as received.
    Within(std::ops::Range<u64>),
    /// Its CRLF-canonical form, which is what the signer signed.
    Canonical(Box<dyn crate::bytes::Spool>),
}

/// A verified multipart/signed body read where it lies.
pub struct VerifiedParts {
    /// The signed part.
    pub content: SignedContent,
    /// What the signature told.
    pub signature: VerifiedSignature,
}

/// The most bytes of a signature part read: a SignedData with a few
/// certificates is a few KiB.
const MAX_SIGNATURE_PART: u64 = 1 << 20;

/// [`verify_entity`] of a multipart/signed body that is the range `body`
/// of `source`, whose Content-Type is `content_type`, read a piece at a
/// time: only the signature part is held. `content_digest` may give the
/// signed part's digest (of that range, in that algorithm) where it was
/// taken already; otherwise the part is digested where it lies. A
/// canonical form, where one is needed, goes to a spool of `spools`.
#[allow(clippy::too_many_arguments)]
pub fn verify_parts(
    source: &dyn Source,
    body: std::ops::Range<u64>,
    content_type: &crate::headers::ParameterizedValue,
    partner: &Cert,
    prevent_canonicalization: bool,
    provider: &dyn CryptoProvider,
    spools: &dyn crate::bytes::Spools,
    content_digest: &mut dyn FnMut(DigestAlgorithm, std::ops::Range<u64>) -> Option<Vec<u8>>,
) -> Result<VerifiedParts, Error> {
    let boundary = content_type
        .param("boundary")
        .ok_or_else(|| Error::malformed("multipart/signed without a boundary parameter"))?;
    let parts = mime::part_ranges(source, body, boundary)?;
    let [content, signature_part] = parts.as_slice() else {
        return Err(Error::malformed(format!(
            "multipart/signed must have 2 parts, this one has {}",
            parts.len()
        )));
    };
    if signature_part.end - signature_part.start > MAX_SIGNATURE_PART {
        return Err(Error::malformed(format!(
            "the signature part is {} bytes long; at most {MAX_SIGNATURE_PART} are read",
            signature_part.end - signature_part.start
        )));
    }
    let signature_raw =
        crate::bytes::read_all(&crate::bytes::Window::new(source, signature_part.clone()))?;
    let signature_part = Entity::parse(&signature_raw)?;
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
    let part = crate::bytes::Window::new(source, content.clone());
    let mut digest = |algorithm: DigestAlgorithm| match content_digest(algorithm, content.clone()) {
        Some(taken) => Ok(taken),
        None => digest_source(algorithm, &part, provider),
    };
    match smime::verify_detached_with(&signature, &part, partner, provider, &mut digest) {
        Ok(verified) => Ok(VerifiedParts {
            content: SignedContent::Within(content.clone()),
            signature: verified,
        }),
        Err(Error::Integrity(reason)) if !prevent_canonicalization => {
            let mut canonical = spools.spool(part.len() + part.len() / 32)?;
            let mut lines = CanonicalLines::new(canonical.as_mut());
            crate::bytes::copy(&part, &mut lines)?;
            if lines.added == 0 {
                return Err(Error::Integrity(reason));
            }
            let verified = smime::verify_detached_with(
                &signature,
                canonical.as_ref(),
                partner,
                provider,
                &mut |algorithm| digest_source(algorithm, canonical.as_ref(), provider),
            )
            .map_err(|_| Error::Integrity(reason))?;
            Ok(VerifiedParts {
                content: SignedContent::Canonical(canonical),
                signature: verified,
            })
        }
        Err(other) => Err(other),
    }
}

/// The digest of all of `source`, a piece at a time.
pub fn digest_source(
    algorithm: DigestAlgorithm,
    source: &dyn Source,
    provider: &dyn CryptoProvider,
) -> Result<Vec<u8>, Error> {
    let mut hasher = provider.hasher(algorithm);
    crate::bytes::for_each_piece(source, |piece| {
        hasher.update(piece);
        Ok(())
    })?;
    Ok(hasher.finish())
}

/// Bytes written on with bare LF line ends made CRLF (RFC 5751 §3.1.1).
pub struct CanonicalLines<'s> {
    inner: &'s mut dyn Sink,
    previous: u8,
    /// How many CRs were added.
    pub added: u64,
}

impl<'s> CanonicalLines<'s> {
    /// Writes into `inner`.
    pub fn new(inner: &'s mut dyn Sink) -> Self {
        CanonicalLines {
            inner,
            previous: 0,
            added: 0,
        }
    }
}

impl Sink for CanonicalLines<'_> {
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        let mut out = Vec::with_capacity(data.len() + data.len() / 32);
        for &b in data {
            if b == b'\n' && self.previous != b'\r' {
                out.push(b'\r');
                self.added += 1;
            }
            out.push(b);
            self.previous = b;
        }
        self.inner.write(&out)
    }
}

/// Bare LF line ends become CRLF (RFC 5751 §3.1.1 canonical form).
pub fn canonicalize_line_ends(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    // Writing to a Vec does not fail.
    let _ = CanonicalLines::new(&mut out).write(bytes);
    out
}

/// The digest of a multipart/signed entity's signed part, taken while the
/// entity is still being decrypted, so that a host whose digests run beside
/// the guest (the component's) hashes the part as its bytes come out of the
/// cipher instead of after the last one.
///
/// It is a guess until [`EarlyDigest::finish`]: the algorithm is the
/// entity's `micalg` and the part is where the first delimiter line puts it
/// (RFC 1847 §2.1, RFC 2046 §5.1.1). `finish` gives a digest only for the
/// exact range and algorithm that verification asks for; anything else
/// (another algorithm in the SignerInfo, a part that ends inside the bytes
/// already hashed, a header that does not parse) leaves verification to
/// digest the part itself, as it would have without this.
pub struct EarlyDigest {
    state: EarlyState,
    /// How much plaintext has been observed.
    seen: u64,
}

enum EarlyState {
    /// The header block and the first delimiter line are not in yet: the
    /// plaintext so far.
    Looking(Vec<u8>),
    /// Hashing the signed part from `start`; `fed` is where it got to, and
    /// `held` the pieces from there on, not hashed yet.
    Hashing {
        algorithm: DigestAlgorithm,
        start: u64,
        fed: u64,
        hasher: Box<dyn Hasher + Send>,
        held: std::collections::VecDeque<Vec<u8>>,
    },
    /// Not a signed entity this can follow.
    Off,
}

/// Plaintext kept out of the early digest: the signature part and the
/// closing delimiter come after the signed part, and a part that ends before
/// the bytes already hashed cannot use the digest. A signature part is a few
/// KiB; this is far more.
const HOLD_BACK: usize = 1 << 20;
/// How far into the plaintext the header block and the first delimiter line
/// must be found.
const LOOK_LIMIT: usize = headers::MAX_HEADER_BLOCK + (8 << 10);

impl Default for EarlyDigest {
    fn default() -> Self {
        EarlyDigest {
            state: EarlyState::Looking(Vec::new()),
            seen: 0,
        }
    }
}

impl EarlyDigest {
    /// Looks at the next piece of plaintext, as it comes out of the cipher.
    pub fn observe(&mut self, piece: &[u8], provider: &dyn CryptoProvider) {
        self.seen += piece.len() as u64;
        match &mut self.state {
            EarlyState::Looking(head) => {
                // All the plaintext so far: at most LOOK_LIMIT and a piece.
                head.extend_from_slice(piece);
                if let Some((algorithm, start)) = signed_part_start(head) {
                    let held = std::collections::VecDeque::from([head[start..].to_vec()]);
                    self.state = EarlyState::Hashing {
                        algorithm,
                        start: start as u64,
                        fed: start as u64,
                        hasher: provider.hasher(algorithm),
                        held,
                    };
                } else if head.len() > LOOK_LIMIT {
                    self.state = EarlyState::Off;
                }
            }
            EarlyState::Hashing {
                fed, hasher, held, ..
            } => {
                held.push_back(piece.to_vec());
                let mut held_len: usize = held.iter().map(Vec::len).sum();
                while let Some(front) = held.pop_front() {
                    if held_len - front.len() < HOLD_BACK {
                        held.push_front(front);
                        break;
                    }
                    hasher.update(&front);
                    held_len -= front.len();
                    *fed += front.len() as u64;
                }
            }
            EarlyState::Off => {}
        }
    }

    /// The digest of the plaintext's `part` under `algorithm`, if that is
    /// what was being hashed; `None` leaves the caller to digest the part itself.
    pub fn finish(self, part: std::ops::Range<u64>, algorithm: DigestAlgorithm) -> Option<Vec<u8>> {
        let EarlyState::Hashing {
            algorithm: guessed,
            start,
            fed,
            mut hasher,
            held,
        } = self.state
        else {
            return None;
        };
        let usable =
            guessed == algorithm && part.start == start && fed <= part.end && part.end <= self.seen;
        if !usable {
            return None;
        }
        let mut rest = part.end - fed;
        for piece in &held {
            let take = usize::try_from(rest).unwrap_or(usize::MAX).min(piece.len());
            hasher.update(&piece[..take]);
            rest -= take as u64;
        }
        Some(hasher.finish())
    }
}

/// Where the first part of a multipart/signed entity starts in `plain`, and
/// the digest its `micalg` names, once the header block and the first
/// delimiter line are complete in it.
fn signed_part_start(plain: &[u8]) -> Option<(DigestAlgorithm, usize)> {
    let prefix = &plain[..plain.len().min(LOOK_LIMIT)];
    let (fields, body_start) = headers::parse_block(prefix).ok()?;
    if body_start >= prefix.len() {
        return None;
    }
    let content_type = fields.content_type();
    if content_type.value != "multipart/signed" {
        return None;
    }
    let algorithm = DigestAlgorithm::from_micalg(content_type.param("micalg")?)?;
    let delimiter = [b"--", content_type.param("boundary")?.as_bytes()].concat();
    let mut line_start = body_start;
    // Only whole lines: the delimiter line must have its LF.
    while let Some(at) = memchr::memchr(b'\n', &prefix[line_start..]) {
        let line_end = line_start + at;
        match mime::delimiter_line(&prefix[line_start..line_end], &delimiter) {
            Some(false) => return Some((algorithm, line_end + 1)),
            Some(true) => return None,
            None => line_start = line_end + 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::rustcrypto::RustCryptoProvider;

    /// A multipart/signed entity whose signed part is `part`, as the
    /// engine writes one, and where that part lies in it.
    fn entity(part: &[u8], micalg: &str) -> (Vec<u8>, std::ops::Range<usize>) {
        let boundary = "----=_Part_7";
        let mut out = format!(
            "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg={micalg};\r\n boundary=\"{boundary}\"\r\n\r\npreamble\r\n"
        )
        .into_bytes();
        let mut body = Vec::new();
        mime::write_multipart(
            boundary,
            &[
                part,
                b"Content-Type: application/pkcs7-signature\r\n\r\nMIIB\r\n",
            ],
            &mut body,
        );
        out.extend_from_slice(&body);
        let (_, body_start) = headers::parse_block(&out).unwrap();
        let parts = mime::split_multipart(&out[body_start..], boundary).unwrap();
        let start = parts[0].as_ptr() as usize - out.as_ptr() as usize;
        let range = start..start + parts[0].len();
        (out, range)
    }

    fn large_part(len: usize) -> Vec<u8> {
        let mut part = b"Content-Type: application/edi-x12\r\n\r\n".to_vec();
        part.extend((0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8));
        part
    }

    /// Observes `plain` as decryption would show it, `piece` bytes at a time.
    fn observed(plain: &[u8], piece: usize) -> EarlyDigest {
        let mut early = EarlyDigest::default();
        for chunk in plain.chunks(piece) {
            early.observe(chunk, &RustCryptoProvider);
        }
        early
    }

    fn wide(range: &std::ops::Range<usize>) -> std::ops::Range<u64> {
        range.start as u64..range.end as u64
    }

    #[test]
    fn the_early_digest_is_the_digest_of_exactly_the_signed_part() {
        let part = large_part(3 << 20);
        for (micalg, algorithm) in [
            ("sha-256", DigestAlgorithm::Sha256),
            ("sha512", DigestAlgorithm::Sha512),
        ] {
            let (plain, range) = entity(&part, micalg);
            for piece in [1000, 64 << 10, 256 << 10] {
                // Decryption shows all but the last block, which comes
                // out of the cipher's finish.
                let mut early = observed(&plain[..plain.len() - 13], piece);
                assert!(
                    matches!(early.state, EarlyState::Hashing { fed, .. } if fed > range.start as u64),
                    "{micalg}, pieces of {piece}: nothing was hashed early"
                );
                early.observe(&plain[plain.len() - 13..], &RustCryptoProvider);
                let digest = early.finish(wide(&range), algorithm);
                assert_eq!(
                    digest,
                    Some(RustCryptoProvider.digest(algorithm, &plain[range.clone()])),
                    "{micalg}, pieces of {piece}"
                );
            }
        }
    }

    #[test]
    fn another_algorithm_or_range_leaves_the_digest_to_verification() {
        let part = large_part(2 << 20);
        let (plain, range) = entity(&part, "sha-256");
        let other_algorithm =
            observed(&plain, 256 << 10).finish(wide(&range), DigestAlgorithm::Sha384);
        assert_eq!(other_algorithm, None);
        let other_start = observed(&plain, 256 << 10).finish(
            range.start as u64 + 1..range.end as u64,
            DigestAlgorithm::Sha256,
        );
        assert_eq!(other_start, None);
        // A part that ends inside the bytes already hashed.
        let early = observed(&plain, 256 << 10);
        let EarlyState::Hashing { fed, .. } = early.state else {
            panic!("nothing was hashed early");
        };
        assert_eq!(
            early.finish(range.start as u64..fed - 1, DigestAlgorithm::Sha256),
            None
        );
    }

    #[test]
    fn what_is_not_a_signed_entity_is_not_followed() {
        let part = large_part(2 << 20);
        let (signed, _) = entity(&part, "sha-256");
        let not_signed = [
            b"Content-Type: application/edi-x12\r\n\r\n".as_slice(),
            &part,
        ]
        .concat();
        let unknown_micalg = String::from_utf8_lossy(&signed[..200]).replace("sha-256", "md5");
        let unknown_micalg = [unknown_micalg.as_bytes(), &signed[200..]].concat();
        for plain in [not_signed, unknown_micalg] {
            let early = observed(&plain, 256 << 10);
            assert!(matches!(early.state, EarlyState::Off));
            assert_eq!(
                early.finish(0..plain.len() as u64, DigestAlgorithm::Sha256),
                None
            );
        }
    }
}

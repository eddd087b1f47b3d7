//! The MIC doctor: when a partner's MDN returns a MIC other than ours, it
//! finds which of the known ways of computing it wrongly the partner took.
//!
//! RFC 4130 §7.3.1 says exactly what the MIC covers, yet products differ:
//! some digest the payload without its MIME header fields, some
//! canonicalize line ends first, some digest what they received before
//! decrypting or after decompressing. A bare "MIC does not match" leaves
//! the operator guessing. So while a message is built, the digests of those
//! variants are taken beside the MIC ([`Notes`]) and kept with the sent
//! record; when the MDN's MIC differs, [`consult`] names the variant that
//! matches and the setting that accepts it (`partner.accept_mic_variants`).

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bytes::{self, Source};
use crate::config::Checked;
use crate::crypto::{CryptoProvider, DigestAlgorithm, Hasher};
use crate::error::Error;
use crate::message::MdnVerdict;
use crate::mic::{Mic, ReportedMic};

/// Documents up to this size get their variants' digests: each costs a
/// digest over the document, and a partner being diagnosed is sent small
/// test documents. A larger one's mismatch is reported without a diagnosis.
pub const LIMIT: u64 = 16 << 20;

/// A way of computing a MIC other than RFC 4130 §7.3.1's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MicVariant {
    /// Over the content alone, without the entity's MIME header fields.
    WithoutHeaders,
    /// Over the entity with its MIME header fields, where it covers the content alone.
    WithHeaders,
    /// Over the entity with its bare LF line ends turned into CRLF.
    CanonicalLineEnds,
    /// Over the entity with a CRLF added at its end.
    TrailingCrlfAdded,
    /// Over the entity without its last CRLF.
    TrailingCrlfDropped,
    /// Over the entity before compression, where it covers the compressed entity.
    Uncompressed,
    /// Over the compressed entity, where it covers the entity inside (RFC 5402 §3).
    Compressed,
    /// Over the encrypted entity with its MIME header fields, before decrypting.
    EncryptedEntity,
    /// Over the HTTP body as it came, before decrypting.
    EncryptedBody,
    /// Over the right bytes, with another digest than the one asked for.
    OtherDigest,
}

impl MicVariant {
    /// The setting's name for it, as written in `partner.accept_mic_variants`.
    pub fn name(self) -> &'static str {
        match self {
            MicVariant::WithoutHeaders => "without-headers",
            MicVariant::WithHeaders => "with-headers",
            MicVariant::CanonicalLineEnds => "canonical-line-ends",
            MicVariant::TrailingCrlfAdded => "trailing-crlf-added",
            MicVariant::TrailingCrlfDropped => "trailing-crlf-dropped",
            MicVariant::Uncompressed => "uncompressed",
            MicVariant::Compressed => "compressed",
            MicVariant::EncryptedEntity => "encrypted-entity",
            MicVariant::EncryptedBody => "encrypted-body",
            MicVariant::OtherDigest => "other-digest",
        }
    }

    /// What the partner did, for people.
    fn cause(self) -> &'static str {
        match self {
            MicVariant::WithoutHeaders => {
                "the partner digested the payload without its MIME header fields, as some products do (RFC 4130 §7.3.1 has the MIC cover the signed entity, header fields included)"
            }
            MicVariant::WithHeaders => {
                "the partner digested the payload with its MIME header fields, where an unsigned, unencrypted message's MIC covers the content alone (RFC 4130 §7.3.1)"
            }
            MicVariant::CanonicalLineEnds => {
                "the partner turned the payload's bare LF line ends into CRLF before digesting it (text canonicalization, RFC 5751 §3.1.1), which a payload sent as binary must not undergo"
            }
            MicVariant::TrailingCrlfAdded => {
                "the partner digested the entity with a CRLF added at its end: the CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1), not to the entity"
            }
            MicVariant::TrailingCrlfDropped => {
                "the partner digested the entity without its last CRLF, which is part of the entity (RFC 2046 §5.1.1)"
            }
            MicVariant::Uncompressed => {
                "the partner digested the payload after decompressing it, where the MIC covers the compressed entity that was signed (RFC 5402 §3, RFC 4130 §7.3.1)"
            }
            MicVariant::Compressed => {
                "the partner digested the compressed entity, where the MIC covers the signed entity inside it (compressed after signing, RFC 5402 §3)"
            }
            MicVariant::EncryptedEntity => {
                "the partner digested the encrypted entity before decrypting it, where the MIC covers what was inside (RFC 4130 §7.3.1)"
            }
            MicVariant::EncryptedBody => {
                "the partner digested the HTTP body as it came, before decrypting it, where the MIC covers what was inside (RFC 4130 §7.3.1)"
            }
            MicVariant::OtherDigest => "the partner computed the MIC with another digest",
        }
    }
}

/// The digest of one variant, as kept with the sent record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Which variant.
    pub variant: MicVariant,
    /// Its digest algorithm, as a micalg name (`sha-256`).
    pub algorithm: String,
    /// The digest, in base64.
    pub digest: String,
}

/// The variants' digests, collected while a message is built.
pub struct Notes {
    asked: DigestAlgorithm,
    enabled: bool,
    found: Vec<Fingerprint>,
}

impl Notes {
    /// Notes for a message whose MIC is asked in `asked`, over a document
    /// of `content_len` bytes: none are taken beyond [`LIMIT`].
    pub fn new(asked: DigestAlgorithm, content_len: u64) -> Self {
        Notes {
            asked,
            enabled: content_len <= LIMIT,
            found: Vec::new(),
        }
    }

    /// Whether variants are being taken.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The digest algorithm the MIC is asked in.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.asked
    }

    fn push(&mut self, variant: MicVariant, algorithm: DigestAlgorithm, digest: &[u8]) {
        self.found.push(Fingerprint {
            variant,
            algorithm: algorithm.micalg().to_string(),
            digest: base64::engine::general_purpose::STANDARD.encode(digest),
        });
    }

    /// `source`, digested with the asked algorithm, as `variant`.
    pub fn note(
        &mut self,
        variant: MicVariant,
        source: &dyn Source,
        provider: &dyn CryptoProvider,
    ) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        let mut hasher = provider.hasher(self.asked);
        bytes::for_each_piece(source, |piece| {
            hasher.update(piece);
            Ok(())
        })?;
        self.push(variant, self.asked, &hasher.finish());
        Ok(())
    }

    /// A digest taken elsewhere (of the encrypted entity, as it was written).
    pub fn note_digest(&mut self, variant: MicVariant, digest: &[u8]) {
        if self.enabled {
            self.push(variant, self.asked, digest);
        }
    }

    /// The variants of `entity`, the bytes the MIC covers, in one pass: a
    /// CRLF added or dropped at its end, bare LF line ends made CRLF, and
    /// every other digest algorithm.
    pub fn covered(
        &mut self,
        entity: &dyn Source,
        provider: &dyn CryptoProvider,
    ) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        let len = entity.len();
        let mut tail = [0u8; 2];
        let ends_with_crlf =
            len >= 2 && entity.read_at(len - 2, &mut tail)? == 2 && tail == *b"\r\n";
        let mut added = provider.hasher(self.asked);
        let mut dropped = ends_with_crlf.then(|| provider.hasher(self.asked));
        let mut canonical = provider.hasher(self.asked);
        let mut bare_lf = false;
        let mut previous = 0u8;
        let mut others: Vec<(DigestAlgorithm, Box<dyn Hasher + Send>)> = DigestAlgorithm::ALL
            .into_iter()
            .filter(|algorithm| *algorithm != self.asked)
            .map(|algorithm| (algorithm, provider.hasher(algorithm)))
            .collect();
        let mut offset = 0u64;
        let mut line = Vec::new();
        bytes::for_each_piece(entity, |piece| {
            added.update(piece);
            if let Some(dropped) = dropped.as_mut() {
                let keep = (len - 2).saturating_sub(offset).min(piece.len() as u64) as usize;
                dropped.update(&piece[..keep]);
            }
            line.clear();
            for &byte in piece {
                if byte == b'\n' && previous != b'\r' {
                    bare_lf = true;
                    line.push(b'\r');
                }
                line.push(byte);
                previous = byte;
            }
            canonical.update(&line);
            for (_, hasher) in others.iter_mut() {
                hasher.update(piece);
            }
            offset += piece.len() as u64;
            Ok(())
        })?;
        added.update(b"\r\n");
        self.push(MicVariant::TrailingCrlfAdded, self.asked, &added.finish());
        if let Some(dropped) = dropped {
            self.push(
                MicVariant::TrailingCrlfDropped,
                self.asked,
                &dropped.finish(),
            );
        }
        if bare_lf {
            self.push(
                MicVariant::CanonicalLineEnds,
                self.asked,
                &canonical.finish(),
            );
        }
        for (algorithm, hasher) in others {
            self.push(MicVariant::OtherDigest, algorithm, &hasher.finish());
        }
        Ok(())
    }

    /// The fingerprints taken, `None` when the document was too large.
    /// A variant whose digest is the MIC itself is left out: it explains
    /// nothing.
    pub fn finish(self, mic: &Mic) -> Option<Vec<Fingerprint>> {
        if !self.enabled {
            return None;
        }
        let mic_digest = mic.digest_base64();
        let mic_algorithm = mic.algorithm.micalg();
        Some(
            self.found
                .into_iter()
                .filter(|f| !(f.digest == mic_digest && f.algorithm == mic_algorithm))
                .collect(),
        )
    }
}

/// What the doctor found about a MIC that differs from ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnosis {
    /// The partner's MIC is the digest of this variant.
    Matched(Fingerprint),
    /// It matches none of the variants taken.
    Unexplained {
        /// How many variants were compared.
        tried: usize,
    },
    /// No variants were taken (a document over [`LIMIT`], or a message
    /// sent before the doctor existed).
    NotTaken,
}

/// Which variant, if any, `reported` is the digest of.
pub fn diagnose(reported: &ReportedMic, fingerprints: Option<&[Fingerprint]>) -> Diagnosis {
    let Some(fingerprints) = fingerprints else {
        return Diagnosis::NotTaken;
    };
    let reported_digest = base64::engine::general_purpose::STANDARD
        .decode(reported.digest_base64.as_bytes())
        .unwrap_or_default();
    let matched = fingerprints.iter().find(|f| {
        base64::engine::general_purpose::STANDARD
            .decode(f.digest.as_bytes())
            .is_ok_and(|digest| !digest.is_empty() && digest == reported_digest)
    });
    match matched {
        Some(fingerprint) => Diagnosis::Matched(fingerprint.clone()),
        None => Diagnosis::Unexplained {
            tried: fingerprints.len(),
        },
    }
}

/// The diagnosis in words, with what to do: one line for the record, the
/// log and `status`.
pub fn explain(diagnosis: &Diagnosis, reported: &ReportedMic, sent: &Mic) -> String {
    match diagnosis {
        Diagnosis::Matched(fingerprint) => {
            let cause = match fingerprint.variant {
                MicVariant::OtherDigest => {
                    let labelled = match reported.algorithm_text.as_deref() {
                        Some(label)
                            if DigestAlgorithm::from_micalg(label)
                                != DigestAlgorithm::from_micalg(&fingerprint.algorithm) =>
                        {
                            format!(" (though it labelled it {label})")
                        }
                        _ => String::new(),
                    };
                    format!(
                        "the partner computed the MIC with {} instead of the {} asked for in Disposition-Notification-Options{labelled}",
                        fingerprint.algorithm,
                        sent.algorithm.micalg()
                    )
                }
                variant => variant.cause().to_string(),
            };
            format!(
                "MIC doctor: {cause}; add \"{}\" to partner.accept_mic_variants to accept such MDNs as proof of receipt, or ask the partner to fix it",
                fingerprint.variant.name()
            )
        }
        Diagnosis::Unexplained { tried } => format!(
            "MIC doctor: the partner's MIC matches none of the {tried} known variants (MIME header fields, line ends, a trailing CRLF, compression, encryption, other digests): it digested other bytes than were sent, so the message may have been altered on the way"
        ),
        Diagnosis::NotTaken => format!(
            "MIC doctor: no variants were kept for this message (documents over {} MiB get none); send a small test document to have the mismatch diagnosed",
            LIMIT >> 20
        ),
    }
}

/// Looks at an MDN whose MIC is not ours: adds the diagnosis to its
/// warnings, and counts it as matched when the partner's setting accepts
/// the variant found. Does nothing to an MDN whose MIC matched or that has none.
pub fn consult(
    connection: &Checked,
    verdict: &mut MdnVerdict,
    sent: &Mic,
    fingerprints: Option<&[Fingerprint]>,
) {
    let partner = &connection.connection.partner;
    if verdict.mic_matched {
        return;
    }
    let Some(reported) = verdict.mdn.received_mic.clone() else {
        return;
    };
    let diagnosis = diagnose(&reported, fingerprints);
    verdict
        .mdn
        .warnings
        .push(explain(&diagnosis, &reported, sent));
    if let Diagnosis::Matched(fingerprint) = &diagnosis
        && partner.accept_mic_variants.contains(&fingerprint.variant)
    {
        verdict.mdn.warnings.push(format!(
            "the MIC is accepted as \"{}\", which partner.accept_mic_variants allows",
            fingerprint.variant.name()
        ));
        verdict.mic_matched = true;
        verdict.proves_receipt = verdict.mdn.disposition.is_positive() && verdict.signature_ok;
    }
}

/// The content's digest under every algorithm and the known variants of
/// its bytes, compared with a signature's messageDigest: why a partner's
/// signature does not cover what came (RFC 5652 §11.2). `None` when
/// nothing matches.
pub fn signed_digest_variant(
    content: &[u8],
    signed_digest: &[u8],
    signed_algorithm: DigestAlgorithm,
    provider: &dyn CryptoProvider,
) -> Option<String> {
    let canonical = crate::signed::canonicalize_line_ends(content);
    let trimmed = content.strip_suffix(b"\r\n");
    let mut with_crlf = content.to_vec();
    with_crlf.extend_from_slice(b"\r\n");
    let blank = content
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| &content[at + 4..]);
    let candidates: [(Option<&[u8]>, &str); 4] = [
        (
            Some(&canonical),
            "with its bare LF line ends turned into CRLF",
        ),
        (trimmed, "without its last CRLF"),
        (Some(&with_crlf), "with a CRLF added at its end"),
        (blank, "without its MIME header fields"),
    ];
    for (bytes, how) in candidates {
        if let Some(bytes) = bytes
            && bytes != content
            && provider.digest(signed_algorithm, bytes) == signed_digest
        {
            return Some(format!(
                "the partner signed the content {how}, not the bytes it sent"
            ));
        }
    }
    None
}

#[cfg(all(test, feature = "rustcrypto"))]
mod tests {
    use super::*;
    use crate::crypto::rustcrypto::RustCryptoProvider;

    fn mic_of(algorithm: DigestAlgorithm, bytes: &[u8]) -> Mic {
        Mic::new(algorithm, RustCryptoProvider.digest(algorithm, bytes))
    }

    fn reported(mic: &Mic) -> ReportedMic {
        ReportedMic::parse(&mic.header_value())
    }

    #[test]
    fn each_variant_of_the_covered_entity_is_named() {
        let entity: &[u8] = b"Content-Type: text/plain\r\n\r\nline one\nline two\r\n";
        let provider = RustCryptoProvider;
        let mut notes = Notes::new(DigestAlgorithm::Sha256, entity.len() as u64);
        notes.covered(&entity, &provider).unwrap();
        let mic = mic_of(DigestAlgorithm::Sha256, entity);
        let kept = notes.finish(&mic).unwrap();
        let cases: [(&[u8], DigestAlgorithm, MicVariant); 4] = [
            (
                b"Content-Type: text/plain\r\n\r\nline one\r\nline two\r\n",
                DigestAlgorithm::Sha256,
                MicVariant::CanonicalLineEnds,
            ),
            (
                b"Content-Type: text/plain\r\n\r\nline one\nline two",
                DigestAlgorithm::Sha256,
                MicVariant::TrailingCrlfDropped,
            ),
            (
                b"Content-Type: text/plain\r\n\r\nline one\nline two\r\n\r\n",
                DigestAlgorithm::Sha256,
                MicVariant::TrailingCrlfAdded,
            ),
            (entity, DigestAlgorithm::Sha1, MicVariant::OtherDigest),
        ];
        for (bytes, algorithm, variant) in cases {
            let partner = mic_of(algorithm, bytes);
            match diagnose(&reported(&partner), Some(&kept)) {
                Diagnosis::Matched(found) => assert_eq!(found.variant, variant),
                other => panic!("{variant:?}: {other:?}"),
            }
        }
        let altered = mic_of(DigestAlgorithm::Sha256, b"something else");
        assert!(matches!(
            diagnose(&reported(&altered), Some(&kept)),
            Diagnosis::Unexplained { tried } if tried == kept.len()
        ));
        assert_eq!(diagnose(&reported(&altered), None), Diagnosis::NotTaken);
    }

    #[test]
    fn the_other_digest_is_named_with_its_label() {
        let provider = RustCryptoProvider;
        let entity: &[u8] = b"abc";
        let mut notes = Notes::new(DigestAlgorithm::Sha256, 3);
        notes.covered(&entity, &provider).unwrap();
        let sent = mic_of(DigestAlgorithm::Sha256, entity);
        let kept = notes.finish(&sent).unwrap();
        let sha1 = RustCryptoProvider.digest(DigestAlgorithm::Sha1, entity);
        let mislabelled = ReportedMic::parse(&format!(
            "{}, sha-256",
            base64::engine::general_purpose::STANDARD.encode(sha1)
        ));
        let line = explain(&diagnose(&mislabelled, Some(&kept)), &mislabelled, &sent);
        assert!(line.contains("with sha-1 instead of the sha-256"), "{line}");
        assert!(line.contains("(though it labelled it sha-256)"), "{line}");
        assert!(line.contains("\"other-digest\""), "{line}");
    }

    #[test]
    fn nothing_is_taken_beyond_the_limit() {
        let notes = Notes::new(DigestAlgorithm::Sha256, LIMIT + 1);
        assert!(!notes.enabled());
        assert_eq!(notes.finish(&mic_of(DigestAlgorithm::Sha256, b"")), None);
    }

    #[test]
    fn a_signature_over_canonicalized_content_is_named() {
        let provider = RustCryptoProvider;
        let content = b"Content-Type: text/plain\r\n\r\na\nb";
        let canonical = crate::signed::canonicalize_line_ends(content);
        let digest = provider.digest(DigestAlgorithm::Sha256, &canonical);
        let found = signed_digest_variant(content, &digest, DigestAlgorithm::Sha256, &provider);
        assert_eq!(
            found.as_deref(),
            Some(
                "the partner signed the content with its bare LF line ends turned into CRLF, not the bytes it sent"
            )
        );
        let other = provider.digest(DigestAlgorithm::Sha256, b"x");
        assert_eq!(
            signed_digest_variant(content, &other, DigestAlgorithm::Sha256, &provider),
            None
        );
    }
}

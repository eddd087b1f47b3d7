//! The Message Integrity Check (RFC 4130 §7.3.1): the digest a receiver
//! returns in its MDN so the sender can prove what was received.

use base64::Engine as _;

use crate::crypto::DigestAlgorithm;

/// A MIC: digest, algorithm, and the algorithm's spelling on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mic {
    /// The digest bytes.
    pub digest: Vec<u8>,
    /// The algorithm.
    pub algorithm: DigestAlgorithm,
    /// How the algorithm is written: the partner's own spelling when they asked
    /// for one (`sha256`, `SHA-256`, …), else the RFC 5751 name.
    pub spelling: String,
}

impl Mic {
    /// A MIC spelled the RFC 5751 way.
    pub fn new(algorithm: DigestAlgorithm, digest: Vec<u8>) -> Self {
        Mic {
            digest,
            algorithm,
            spelling: algorithm.micalg().to_string(),
        }
    }

    /// The digest in base64.
    pub fn digest_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.digest)
    }

    /// The `Received-Content-MIC` value: `base64-digest, algorithm` (RFC 4130 §7.4.3).
    pub fn header_value(&self) -> String {
        format!("{}, {}", self.digest_base64(), self.spelling)
    }
}

/// A `Received-Content-MIC` as a partner reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedMic {
    /// The base64 digest as written.
    pub digest_base64: String,
    /// The algorithm as written, if any (some partners leave it out).
    pub algorithm_text: Option<String>,
}

impl ReportedMic {
    /// Parses `digest, algorithm`.
    pub fn parse(value: &str) -> Self {
        let (digest, algorithm) = match value.split_once(',') {
            Some((digest, algorithm)) => (digest, Some(algorithm.trim().to_string())),
            None => (value, None),
        };
        ReportedMic {
            digest_base64: digest.trim().to_string(),
            algorithm_text: algorithm.filter(|a| !a.is_empty()),
        }
    }

    /// The algorithm, when written and known.
    pub fn algorithm(&self) -> Option<DigestAlgorithm> {
        self.algorithm_text
            .as_deref()
            .and_then(DigestAlgorithm::from_micalg)
    }

    /// Whether this reports `expected`: same digest, and same algorithm when
    /// the algorithm is given.
    pub fn matches(&self, expected: &Mic) -> bool {
        let digest_matches = base64::engine::general_purpose::STANDARD
            .decode(self.digest_base64.as_bytes())
            .is_ok_and(|digest| digest == expected.digest);
        let algorithm_matches =
            self.algorithm_text.is_none() || self.algorithm() == Some(expected.algorithm);
        digest_matches && algorithm_matches
    }
}

impl std::fmt::Display for ReportedMic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.algorithm_text {
            Some(algorithm) => write!(f, "{}, {algorithm}", self.digest_base64),
            None => f.write_str(&self.digest_base64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_mic_matches_in_any_spelling_and_rejects_other_digests() {
        let mic = Mic::new(DigestAlgorithm::Sha256, vec![1, 2, 3]);
        assert!(ReportedMic::parse("AQID, sha256").matches(&mic));
        assert!(ReportedMic::parse(" AQID ,SHA-256").matches(&mic));
        assert!(ReportedMic::parse("AQID").matches(&mic));
        assert!(!ReportedMic::parse("AQIE, sha-256").matches(&mic));
        assert!(!ReportedMic::parse("AQID, sha-1").matches(&mic));
        assert_eq!(mic.header_value(), "AQID, sha-256");
    }
}

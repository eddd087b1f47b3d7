//! The engine's errors, and their stable codes.

use crate::crypto::CryptoError;

/// Stable error codes, mirrored one to one by the WIT `error-code` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `INVALID_CONFIG`
    InvalidConfig,
    /// `AUTH_FAILED`
    AuthFailed,
    /// `RATE_LIMITED`
    RateLimited,
    /// `CERT_HAS_EXPIRED`
    CertHasExpired,
    /// `CERT_NOT_YET_VALID`
    CertNotYetValid,
    /// `UNKNOWN_PARTNER`
    UnknownPartner,
    /// `DECRYPTION_FAILED`
    DecryptionFailed,
    /// `AUTHENTICATION_FAILED`
    AuthenticationFailed,
    /// `INTEGRITY_CHECK_FAILED`
    IntegrityCheckFailed,
    /// `INSUFFICIENT_MESSAGE_SECURITY`
    InsufficientMessageSecurity,
    /// `UNSUPPORTED_ALGORITHM`
    UnsupportedAlgorithm,
    /// `MALFORMED_MESSAGE`
    MalformedMessage,
    /// `MIC_MISMATCH`
    MicMismatch,
    /// `PARTNER_REJECTED`
    PartnerRejected,
    /// `TRANSPORT_FAILED`
    TransportFailed,
    /// `KEYSTORE_FAILED`
    KeystoreFailed,
    /// `NOT_FOUND`
    NotFound,
    /// `STORAGE_FAILED`
    StorageFailed,
    /// `INTERNAL`
    Internal,
    /// `NOT_ALLOWED`
    NotAllowed,
}

impl ErrorCode {
    /// The code's stable text form, e.g. `CERT_HAS_EXPIRED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidConfig => "INVALID_CONFIG",
            ErrorCode::AuthFailed => "AUTH_FAILED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::CertHasExpired => "CERT_HAS_EXPIRED",
            ErrorCode::CertNotYetValid => "CERT_NOT_YET_VALID",
            ErrorCode::UnknownPartner => "UNKNOWN_PARTNER",
            ErrorCode::DecryptionFailed => "DECRYPTION_FAILED",
            ErrorCode::AuthenticationFailed => "AUTHENTICATION_FAILED",
            ErrorCode::IntegrityCheckFailed => "INTEGRITY_CHECK_FAILED",
            ErrorCode::InsufficientMessageSecurity => "INSUFFICIENT_MESSAGE_SECURITY",
            ErrorCode::UnsupportedAlgorithm => "UNSUPPORTED_ALGORITHM",
            ErrorCode::MalformedMessage => "MALFORMED_MESSAGE",
            ErrorCode::MicMismatch => "MIC_MISMATCH",
            ErrorCode::PartnerRejected => "PARTNER_REJECTED",
            ErrorCode::TransportFailed => "TRANSPORT_FAILED",
            ErrorCode::KeystoreFailed => "KEYSTORE_FAILED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::StorageFailed => "STORAGE_FAILED",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::NotAllowed => "NOT_ALLOWED",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong, with what a user needs to fix it. Never holds secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration field is missing or wrong.
    #[error("invalid configuration at {field}: {reason}")]
    InvalidConfig {
        /// JSON pointer of the field, e.g. `/partner/url`.
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// The message does not parse as MIME, CMS or AS2.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message is well-formed but uses a format or encoding we do not handle.
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),
    /// Compressed content (RFC 5402) that does not inflate, or inflates
    /// beyond the bound.
    #[error("decompression failed: {0}")]
    Decompression(String),
    /// An algorithm we do not support, where no more is known of its use.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// A content-encryption or key-transport algorithm we cannot use: the
    /// MDN says `decryption-failed` (RFC 4130 §7.4.3).
    #[error("unsupported encryption: {0}")]
    UnsupportedEncryption(String),
    /// A signature or signature-digest algorithm we cannot use: the MDN says
    /// `authentication-failed`.
    #[error("unsupported signature algorithm: {0}")]
    UnsupportedSignature(String),
    /// None of the MIC algorithms the sender asked for is supported: the MDN
    /// says `unsupported MIC-algorithms` (RFC 4130 §7.3).
    #[error("unsupported MIC algorithms: {0}")]
    UnsupportedMic(String),
    /// AS2-From / AS2-To do not match this connection.
    #[error("unknown trading partner: {0}")]
    UnknownPartner(String),
    /// The message could not be decrypted.
    #[error("decryption failed: {0}")]
    Decryption(String),
    /// The message is encrypted for a certificate that is not ours.
    #[error("decryption failed: {0}")]
    NotEncryptedForUs(String),
    /// The signature is not from the partner's certificate.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// The signature does not match the content.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// The message lacks signing or encryption the connection requires.
    #[error("insufficient message security: {0}")]
    InsufficientSecurity(String),
    /// A certificate is past its notAfter.
    #[error("certificate has expired: {0}")]
    CertificateExpired(String),
    /// A certificate is before its notBefore.
    #[error("certificate is not yet valid: {0}")]
    CertificateNotYetValid(String),
    /// The MDN's MIC is not the one computed when sending.
    #[error("MIC mismatch: we computed {expected}, the MDN reports {reported}")]
    MicMismatch {
        /// The MIC computed when sending.
        expected: String,
        /// The MIC in the MDN.
        reported: String,
    },
    /// The key store failed.
    #[error("key store: {0}")]
    KeyStore(String),
    /// The partner refused our HTTP credentials, or a new token could not be had.
    #[error("the partner refused our credentials: {0}")]
    AuthRefused(String),
    /// The host's state store failed.
    #[error("state store: {0}")]
    Storage(String),
    /// The request asks for something this connection does not allow.
    #[error("not allowed: {0}")]
    NotAllowed(String),
}

impl Error {
    /// A [`Error::Malformed`] with this description.
    pub fn malformed(reason: impl Into<String>) -> Self {
        Error::Malformed(reason.into())
    }

    /// An [`Error::InvalidConfig`] for `field`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidConfig { .. } => ErrorCode::InvalidConfig,
            Error::Malformed(_) | Error::UnsupportedFormat(_) | Error::Decompression(_) => {
                ErrorCode::MalformedMessage
            }
            Error::UnsupportedAlgorithm(_)
            | Error::UnsupportedEncryption(_)
            | Error::UnsupportedSignature(_)
            | Error::UnsupportedMic(_) => ErrorCode::UnsupportedAlgorithm,
            Error::UnknownPartner(_) => ErrorCode::UnknownPartner,
            Error::Decryption(_) | Error::NotEncryptedForUs(_) => ErrorCode::DecryptionFailed,
            Error::Authentication(_) => ErrorCode::AuthenticationFailed,
            Error::Integrity(_) => ErrorCode::IntegrityCheckFailed,
            Error::InsufficientSecurity(_) => ErrorCode::InsufficientMessageSecurity,
            Error::CertificateExpired(_) => ErrorCode::CertHasExpired,
            Error::CertificateNotYetValid(_) => ErrorCode::CertNotYetValid,
            Error::MicMismatch { .. } => ErrorCode::MicMismatch,
            Error::KeyStore(_) => ErrorCode::KeystoreFailed,
            Error::Storage(_) => ErrorCode::StorageFailed,
            Error::AuthRefused(_) => ErrorCode::AuthFailed,
            Error::NotAllowed(_) => ErrorCode::NotAllowed,
        }
    }

    /// This error as met while decrypting: an algorithm we cannot use there
    /// is an encryption or key-transport algorithm.
    pub fn in_decryption(self) -> Self {
        match self {
            Error::UnsupportedAlgorithm(what) => Error::UnsupportedEncryption(what),
            e => e,
        }
    }

    /// This error as met while verifying a signature: an algorithm we
    /// cannot use there is a signature algorithm.
    pub fn in_verification(self) -> Self {
        match self {
            Error::UnsupportedAlgorithm(what) => Error::UnsupportedSignature(what),
            e => e,
        }
    }

    /// The configuration field this error concerns, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidConfig { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::UnsupportedAlgorithm(what) => Error::UnsupportedAlgorithm(what),
            CryptoError::Decryption => Error::Decryption(e.to_string()),
            CryptoError::InvalidKey(what) => Error::malformed(what),
            CryptoError::KeyStore(what) => Error::KeyStore(what),
        }
    }
}

impl From<der::Error> for Error {
    fn from(e: der::Error) -> Self {
        Error::malformed(format!("invalid ASN.1: {e}"))
    }
}

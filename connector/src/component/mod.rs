//! The WebAssembly component: a thin layer that maps the WIT world to the
//! engine and calls the host for IO. No AS2 logic lives here.

// Generated canonical-ABI glue: the only unsafe code in the crate.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "as2:connector/as2-connector",
        generate_all,
    });
}

mod cem;
mod connection;
mod convert;
#[cfg(feature = "fault-switch")]
mod faults;
mod form;
mod guest;
mod host;
mod http;
mod receive;
mod records;
mod send;
mod status;

use bindings::as2::connector::types as wit;

struct Component;

#[allow(unsafe_code)]
mod export {
    use super::{Component, bindings};
    bindings::export!(Component with_types_in bindings);
}

/// Maps an engine error to the WIT error, in one place.
fn to_wit_error(error: &crate::Error) -> wit::Error {
    wit::Error {
        code: wit_code(error.code()),
        message: error.to_string(),
        field: error.field().map(str::to_string),
    }
}

/// Maps an engine error code to the WIT one.
fn wit_code(code: crate::ErrorCode) -> wit::ErrorCode {
    use crate::ErrorCode as C;
    use wit::ErrorCode as W;
    match code {
        C::InvalidConfig => W::InvalidConfig,
        C::AuthFailed => W::AuthFailed,
        C::RateLimited => W::RateLimited,
        C::CertHasExpired => W::CertHasExpired,
        C::CertNotYetValid => W::CertNotYetValid,
        C::UnknownPartner => W::UnknownPartner,
        C::DecryptionFailed => W::DecryptionFailed,
        C::AuthenticationFailed => W::AuthenticationFailed,
        C::IntegrityCheckFailed => W::IntegrityCheckFailed,
        C::InsufficientMessageSecurity => W::InsufficientMessageSecurity,
        C::UnsupportedAlgorithm => W::UnsupportedAlgorithm,
        C::MalformedMessage => W::MalformedMessage,
        C::MicMismatch => W::MicMismatch,
        C::PartnerRejected => W::PartnerRejected,
        C::TransportFailed => W::TransportFailed,
        C::KeystoreFailed => W::KeystoreFailed,
        C::NotFound => W::NotFound,
        C::StorageFailed => W::StorageFailed,
        C::NotAllowed => W::NotAllowed,
        C::Internal => W::Internal,
    }
}

fn wit_error(code: wit::ErrorCode, message: impl Into<String>) -> wit::Error {
    wit::Error {
        code,
        message: message.into(),
        field: None,
    }
}

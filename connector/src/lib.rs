//! An AS2 (RFC 4130) engine that does no IO.
//!
//! Bytes, certificates, a clock value and a crypto provider go in; AS2
//! messages, verdicts and MDNs come out. The same code runs natively (tests,
//! fuzzing, benchmarks) and inside the WebAssembly component, where
//! [`crypto::CryptoProvider`] and [`crypto::PrivateKey`] are the host's imports.
//!
//! Modules follow the protocol's own concepts: [`headers`] and [`mime`]
//! (RFC 2045/2046/5322), [`smime`] (CMS, RFC 5652), [`signed`]
//! (multipart/signed, RFC 1847), [`mic`] (RFC 4130 §7.3.1), [`mdn`]
//! (RFC 3798), [`message`] (RFC 4130), and [`config`] (the connection form).
//! Around them, the lifecycle: [`outbox`] (a sent message, from its record
//! to its MDN, as a state machine driven by events and the time as a value)
//! and [`inbox`] (a received message and the MDN owed for it).

// The engine has no unsafe code; only the component's generated ABI glue
// (wit-bindgen) needs it, and allows it locally.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod ber;
pub mod bytes;
pub mod cem;
pub mod compress;
pub mod config;
pub mod crypto;
pub mod doctor;
pub mod error;
pub mod headers;
pub mod inbox;
pub mod mdn;
pub mod message;
pub mod mic;
pub mod mime;
pub mod outbox;
pub mod pace;
pub mod signed;
pub mod smime;
pub mod validate;

#[cfg(target_arch = "wasm32")]
mod component;

pub use error::{Error, ErrorCode};

//! The host side of the component's imports: one module per interface of
//! the `as2:connector` package, each implemented on [`CallState`], the store
//! data of one call. The WASI interfaces are wasmtime-wasi's; the
//! connection's TLS settings for outgoing https are applied by
//! [`crate::outgoing`].

pub mod blobs;
pub mod keystore;
pub mod log;
pub mod primitives;
pub mod resources;
pub mod secrets;
pub mod state;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use as2_connector::crypto::{CryptoError, DigestAlgorithm, KeyTransport, SignatureScheme};

use crate::outgoing::{CallOptions, HttpHooks};
use crate::station::Station;

/// Bindings generated from the connector world.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "as2:connector/as2-connector",
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:random": wasmtime_wasi::p2::bindings::random,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "as2:connector/keystore.private-key": crate::host::resources::KeyHandle,
            "as2:connector/primitives.hasher": crate::host::resources::HasherState,
            "as2:connector/primitives.cipher": crate::host::resources::CipherState,
            "as2:connector/primitives.aead-stream": crate::host::resources::AeadState,
            "as2:connector/primitives.deflater": crate::host::resources::DeflaterState,
            "as2:connector/types.blob": crate::blobs::Blob,
        },
        imports: { default: trappable },
        require_store_data_send: true,
    });
}

use bindings::as2::connector::types::{self, Error as ConnectorError, ErrorCode};
use bindings::as2::connector::{
    keystore as wit_keystore, log as wit_log, primitives as wit_primitives, secrets as wit_secrets,
    state as wit_state,
};

/// The store data of one call.
pub struct CallState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: StoreLimits,
    station: Arc<Station>,
    hooks: HttpHooks,
    /// What the call may still append to blobs, and its whole allowance.
    blob_allowance: u64,
    blob_limit: u64,
}

impl CallState {
    /// The store data of a call for `station`, applying `options` to its
    /// outgoing https requests: the guest's memory may grow to
    /// `memory_bytes`, and the call may write `blob_bytes` to blobs.
    pub(crate) fn new(
        wasi: WasiCtx,
        station: Arc<Station>,
        options: &CallOptions,
        memory_bytes: usize,
        blob_bytes: u64,
    ) -> Self {
        CallState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            hooks: HttpHooks::new(options, station.clone()),
            station,
            blob_allowance: blob_bytes,
            blob_limit: blob_bytes,
        }
    }

    /// The memory cap, for the store's limiter.
    pub(crate) fn store_limits(&mut self) -> &mut StoreLimits {
        &mut self.limits
    }
}

/// Adds every import of the connector world to `linker`: WASI and
/// `wasi:http` from wasmtime-wasi(-http), the `as2:connector` interfaces
/// from this module.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(linker)?;
    // Only our own interfaces: the WASI ones were added just above.
    types::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    wit_keystore::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    wit_primitives::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    wit_state::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    wit_log::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    wit_secrets::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    Ok(())
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

fn error(code: ErrorCode, message: impl Into<String>) -> ConnectorError {
    ConnectorError {
        code,
        message: message.into(),
        field: None,
    }
}

fn crypto_error(e: CryptoError) -> ConnectorError {
    let code = match e {
        CryptoError::UnsupportedAlgorithm(_) => ErrorCode::UnsupportedAlgorithm,
        CryptoError::Decryption => ErrorCode::DecryptionFailed,
        CryptoError::KeyStore(_) => ErrorCode::KeystoreFailed,
        _ => ErrorCode::MalformedMessage,
    };
    error(code, e.to_string())
}

fn digest(algorithm: types::DigestAlgorithm) -> DigestAlgorithm {
    match algorithm {
        types::DigestAlgorithm::Sha1 => DigestAlgorithm::Sha1,
        types::DigestAlgorithm::Sha224 => DigestAlgorithm::Sha224,
        types::DigestAlgorithm::Sha256 => DigestAlgorithm::Sha256,
        types::DigestAlgorithm::Sha384 => DigestAlgorithm::Sha384,
        types::DigestAlgorithm::Sha512 => DigestAlgorithm::Sha512,
    }
}

fn signature_scheme(scheme: types::SignatureScheme) -> SignatureScheme {
    match scheme {
        types::SignatureScheme::RsaPkcs1v15 => SignatureScheme::RsaPkcs1v15,
        types::SignatureScheme::RsaPss => SignatureScheme::RsaPss,
    }
}

fn key_transport(scheme: types::KeyTransport) -> KeyTransport {
    match scheme {
        types::KeyTransport::RsaPkcs1v15 => KeyTransport::RsaPkcs1v15,
        types::KeyTransport::RsaOaep(digests) => KeyTransport::RsaOaep {
            hash: digest(digests.hash),
            mgf: digest(digests.mgf1),
        },
    }
}

/// Ends a guest resource: every interface's `drop` is the same.
fn discard<T: 'static>(table: &mut ResourceTable, resource: Resource<T>) -> wasmtime::Result<()> {
    table.delete(resource)?;
    Ok(())
}

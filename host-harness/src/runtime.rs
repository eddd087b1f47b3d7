//! The wasmtime host: loads the connector component once (caching the
//! compiled artifact), instantiates it per call from an `InstancePre`, and
//! serves its imports. Each call runs under a memory cap and a deadline; a
//! trapping guest is reported as an error and the host carries on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::Context;
use sha2::Digest as _;
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use as2_connector::crypto::rustcrypto::RustCryptoProvider;
use as2_connector::crypto::{
    AeadCipher, Cipher, ContentCipher, CryptoError, CryptoProvider, DigestAlgorithm, Direction,
    Hasher, KeyTransport, PrivateKey, SignatureScheme,
};

use crate::blobs::Blob;
use crate::keystore::{self, KeyError};
pub use crate::outgoing::CallOptions;
use crate::outgoing::HttpHooks;
use crate::secrets::SecretError;
pub use crate::station::Station;

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
            "as2:connector/keystore.private-key": super::KeyHandle,
            "as2:connector/primitives.hasher": super::HasherState,
            "as2:connector/primitives.cipher": super::CipherState,
            "as2:connector/types.blob": crate::blobs::Blob,
        },
        imports: { default: trappable },
        require_store_data_send: true,
    });
}

use bindings::as2::connector::{
    keystore as wit_keystore, log as wit_log, primitives, secrets as wit_secrets,
    state as wit_state, types,
};
pub use bindings::exports::as2::connector::connector as api;
pub use types::{
    Disposition, Error as ConnectorError, ErrorCode, Header, HttpRequest, HttpResponse, Mic,
    OutgoingDocument, StateEntry,
};

/// A business document held in memory: one to send, or one received and
/// read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// File name for Content-Disposition (RFC 2183), if any.
    pub file_name: Option<String>,
    /// MIME type, e.g. `application/edi-x12`.
    pub content_type: String,
    /// Its bytes.
    pub content: Vec<u8>,
}

/// The compiled connector component, embedded at build time.
pub const COMPONENT_WASM: &[u8] = include_bytes!(env!("AS2_COMPONENT_WASM"));

/// The connector built with its fault switch (feature `fault-component`):
/// connections named `fault: loop`, `fault: allocate` or `fault: panic`
/// misbehave, for the sandbox tests.
#[cfg(feature = "fault-component")]
pub const FAULT_COMPONENT_WASM: &[u8] = include_bytes!(env!("AS2_FAULT_COMPONENT_WASM"));

/// An open key handle held for the guest: the key stays here.
pub struct KeyHandle(Arc<crate::hostkey::HostKey>);
/// A running digest held for the guest. Once it is fed large pieces it
/// runs on a thread of its own, so that a message's digest is taken while
/// the guest encrypts the same bytes: signing and encrypting a large
/// document then costs about the cipher alone, not the cipher plus the digest.
pub struct HasherState {
    algorithm: DigestAlgorithm,
    run: HasherRun,
}

enum HasherRun {
    Here(Box<dyn Hasher + Send>),
    Behind {
        pieces: std::sync::mpsc::SyncSender<Vec<u8>>,
        digest: std::thread::JoinHandle<Vec<u8>>,
    },
    Finished,
}

/// Pieces at least this large move a digest to its own thread.
const BACKGROUND_DIGEST_PIECE: usize = 64 * 1024;

impl HasherState {
    fn new(algorithm: DigestAlgorithm) -> Self {
        HasherState {
            algorithm,
            run: HasherRun::Here(RustCryptoProvider.hasher(algorithm)),
        }
    }

    fn update(&mut self, data: Vec<u8>) -> wasmtime::Result<()> {
        if data.len() >= BACKGROUND_DIGEST_PIECE
            && let HasherRun::Here(_) = self.run
            && let HasherRun::Here(mut hasher) =
                std::mem::replace(&mut self.run, HasherRun::Finished)
        {
            // A few pieces in flight: enough to overlap, bounded in memory.
            let (pieces, received) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
            let digest = std::thread::Builder::new()
                .name("digest".into())
                .spawn(move || {
                    for piece in received {
                        hasher.update(&piece);
                    }
                    hasher.finish()
                })?;
            self.run = HasherRun::Behind { pieces, digest };
        }
        match &mut self.run {
            HasherRun::Here(hasher) => hasher.update(&data),
            HasherRun::Behind { pieces, .. } => pieces
                .send(data)
                .map_err(|_| wasmtime::Error::msg("the digest thread stopped"))?,
            HasherRun::Finished => {}
        }
        Ok(())
    }

    /// The digest of everything fed; the hasher starts afresh.
    fn finish(&mut self) -> wasmtime::Result<Vec<u8>> {
        let fresh = HasherRun::Here(RustCryptoProvider.hasher(self.algorithm));
        match std::mem::replace(&mut self.run, fresh) {
            HasherRun::Here(hasher) => Ok(hasher.finish()),
            HasherRun::Behind { pieces, digest } => {
                drop(pieces);
                digest
                    .join()
                    .map_err(|_| wasmtime::Error::msg("the digest thread panicked"))
            }
            HasherRun::Finished => Err(wasmtime::Error::msg("a digest was lost")),
        }
    }
}
/// A running cipher held for the guest.
pub struct CipherState(Option<Box<dyn Cipher + Send>>);

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
        types::KeyTransport::RsaOaepSha1 => KeyTransport::RsaOaepSha1,
        types::KeyTransport::RsaOaepSha256 => KeyTransport::RsaOaepSha256,
    }
}

fn handle<'a, T: 'static>(
    table: &'a ResourceTable,
    resource: &Resource<T>,
) -> wasmtime::Result<&'a T> {
    Ok(table.get(resource)?)
}

impl types::Host for CallState {}

impl CallState {
    /// Hands `blob` to the guest.
    pub fn push_blob(&mut self, blob: Blob) -> wasmtime::Result<Resource<Blob>> {
        Ok(self.table.push(blob)?)
    }

    /// Takes back a blob the guest returned.
    pub fn take_blob(&mut self, blob: Resource<Blob>) -> wasmtime::Result<Blob> {
        Ok(self.table.delete(blob)?)
    }

    /// Where this station's blob files live.
    fn blob_dir(&self) -> PathBuf {
        self.station.data_dir.join("blobs")
    }
}

fn blob_error(e: anyhow::Error) -> ConnectorError {
    error(ErrorCode::StorageFailed, format!("{e:#}"))
}

impl types::HostBlob for CallState {
    fn new(&mut self) -> wasmtime::Result<Resource<Blob>> {
        let blob = Blob::new(&self.blob_dir());
        Ok(self.table.push(blob)?)
    }

    fn size(&mut self, blob: Resource<Blob>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&blob)?.len())
    }

    fn read(
        &mut self,
        blob: Resource<Blob>,
        offset: u64,
        length: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, ConnectorError>> {
        Ok(self
            .table
            .get(&blob)?
            .read(offset, length)
            .map_err(blob_error))
    }

    fn append(
        &mut self,
        blob: Resource<Blob>,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), ConnectorError>> {
        let allowance = self.blob_allowance;
        if data.len() as u64 > allowance {
            return Ok(Err(error(
                ErrorCode::StorageFailed,
                format!(
                    "the call wrote more than its {} MiB of message data",
                    self.blob_limit >> 20
                ),
            )));
        }
        self.blob_allowance -= data.len() as u64;
        Ok(self.table.get_mut(&blob)?.append(&data).map_err(blob_error))
    }

    fn keep(
        &mut self,
        blob: Resource<Blob>,
        name: String,
    ) -> wasmtime::Result<Result<(), ConnectorError>> {
        let state = &self.station.state;
        Ok(self
            .table
            .get_mut(&blob)?
            .keep(&name, state)
            .map_err(blob_error))
    }

    fn open(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Option<Resource<Blob>>, ConnectorError>> {
        match Blob::open_kept(&self.blob_dir(), &name, &self.station.state) {
            Ok(Some(blob)) => Ok(Ok(Some(self.table.push(blob)?))),
            Ok(None) => Ok(Ok(None)),
            Err(e) => Ok(Err(blob_error(e))),
        }
    }

    fn forget(&mut self, name: String) -> wasmtime::Result<Result<(), ConnectorError>> {
        Ok(Blob::forget(&self.blob_dir(), &name, &self.station.state).map_err(blob_error))
    }

    fn drop(&mut self, blob: Resource<Blob>) -> wasmtime::Result<()> {
        self.table.delete(blob)?;
        Ok(())
    }
}
impl wit_keystore::Host for CallState {}
impl primitives::Host for CallState {
    fn rsa_encrypt(
        &mut self,
        subject_public_key_info: Vec<u8>,
        scheme: types::KeyTransport,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, ConnectorError>> {
        Ok(
            crate::hostkey::rsa_encrypt(&subject_public_key_info, key_transport(scheme), &data)
                .map_err(crypto_error),
        )
    }

    fn rsa_verify(
        &mut self,
        subject_public_key_info: Vec<u8>,
        scheme: types::SignatureScheme,
        algorithm: types::DigestAlgorithm,
        digest_bytes: Vec<u8>,
        signature: Vec<u8>,
    ) -> wasmtime::Result<Result<bool, ConnectorError>> {
        Ok(crate::hostkey::rsa_verify(
            &subject_public_key_info,
            signature_scheme(scheme),
            digest(algorithm),
            &digest_bytes,
            &signature,
        )
        .map_err(crypto_error))
    }

    fn aead_seal(
        &mut self,
        algorithm: primitives::AeadAlgorithm,
        key: Vec<u8>,
        nonce: Vec<u8>,
        aad: Vec<u8>,
        plaintext: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, ConnectorError>> {
        Ok(RustCryptoProvider
            .aead_seal(aead(algorithm), &key, &nonce, &aad, &plaintext)
            .map_err(crypto_error))
    }

    fn aead_open(
        &mut self,
        algorithm: primitives::AeadAlgorithm,
        key: Vec<u8>,
        nonce: Vec<u8>,
        aad: Vec<u8>,
        sealed: Vec<u8>,
        tag_length: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, ConnectorError>> {
        Ok(RustCryptoProvider
            .aead_open(
                aead(algorithm),
                &key,
                &nonce,
                &aad,
                &sealed,
                tag_length as usize,
            )
            .map_err(crypto_error))
    }
}

fn aead(algorithm: primitives::AeadAlgorithm) -> AeadCipher {
    match algorithm {
        primitives::AeadAlgorithm::Aes128Gcm => AeadCipher::Aes128Gcm,
        primitives::AeadAlgorithm::Aes192Gcm => AeadCipher::Aes192Gcm,
        primitives::AeadAlgorithm::Aes256Gcm => AeadCipher::Aes256Gcm,
    }
}

impl wit_keystore::HostPrivateKey for CallState {
    fn open(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<KeyHandle>, ConnectorError>> {
        let key = match self.station.keys.get(&name) {
            Ok(key) => key,
            Err(e @ KeyError::NotFound(_)) => {
                return Ok(Err(error(ErrorCode::NotFound, e.to_string())));
            }
            Err(e) => return Ok(Err(error(ErrorCode::KeystoreFailed, e.to_string()))),
        };
        Ok(Ok(self.table.push(KeyHandle(key))?))
    }

    fn certificate(&mut self, key: Resource<KeyHandle>) -> wasmtime::Result<Vec<u8>> {
        Ok(handle(&self.table, &key)?.0.certificate_der())
    }

    fn sign_digest(
        &mut self,
        key: Resource<KeyHandle>,
        scheme: types::SignatureScheme,
        algorithm: types::DigestAlgorithm,
        digest_bytes: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, ConnectorError>> {
        let key = handle(&self.table, &key)?.0.clone();
        keystore::count(&self.station.keys.signatures);
        Ok(key
            .sign_digest(signature_scheme(scheme), digest(algorithm), &digest_bytes)
            .map_err(crypto_error))
    }

    fn decrypt_key(
        &mut self,
        key: Resource<KeyHandle>,
        scheme: types::KeyTransport,
        encrypted_key: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, ConnectorError>> {
        let key = handle(&self.table, &key)?.0.clone();
        keystore::count(&self.station.keys.decryptions);
        Ok(key
            .decrypt_key(key_transport(scheme), &encrypted_key)
            .map_err(crypto_error))
    }

    fn drop(&mut self, key: Resource<KeyHandle>) -> wasmtime::Result<()> {
        self.table.delete(key)?;
        Ok(())
    }
}

impl primitives::HostHasher for CallState {
    fn new(
        &mut self,
        algorithm: types::DigestAlgorithm,
    ) -> wasmtime::Result<Resource<HasherState>> {
        Ok(self.table.push(HasherState::new(digest(algorithm)))?)
    }

    fn update(&mut self, hasher: Resource<HasherState>, data: Vec<u8>) -> wasmtime::Result<()> {
        self.table.get_mut(&hasher)?.update(data)
    }

    fn finish(&mut self, hasher: Resource<HasherState>) -> wasmtime::Result<Vec<u8>> {
        self.table.get_mut(&hasher)?.finish()
    }

    fn drop(&mut self, hasher: Resource<HasherState>) -> wasmtime::Result<()> {
        self.table.delete(hasher)?;
        Ok(())
    }
}

impl primitives::HostCipher for CallState {
    fn open(
        &mut self,
        algorithm: primitives::CipherAlgorithm,
        direction: primitives::CipherDirection,
        key: Vec<u8>,
        iv: Vec<u8>,
    ) -> wasmtime::Result<Result<Resource<CipherState>, ConnectorError>> {
        let algorithm = match algorithm {
            primitives::CipherAlgorithm::Aes128Cbc => ContentCipher::Aes128Cbc,
            primitives::CipherAlgorithm::Aes192Cbc => ContentCipher::Aes192Cbc,
            primitives::CipherAlgorithm::Aes256Cbc => ContentCipher::Aes256Cbc,
            primitives::CipherAlgorithm::DesEde3Cbc => ContentCipher::DesEde3Cbc,
            primitives::CipherAlgorithm::Rc2Cbc40 => ContentCipher::Rc2Cbc { effective_bits: 40 },
            primitives::CipherAlgorithm::Rc2Cbc64 => ContentCipher::Rc2Cbc { effective_bits: 64 },
            primitives::CipherAlgorithm::Rc2Cbc128 => ContentCipher::Rc2Cbc {
                effective_bits: 128,
            },
        };
        let direction = match direction {
            primitives::CipherDirection::Encrypt => Direction::Encrypt,
            primitives::CipherDirection::Decrypt => Direction::Decrypt,
        };
        match RustCryptoProvider.cipher(algorithm, direction, &key, &iv) {
            Ok(cipher) => Ok(Ok(self.table.push(CipherState(Some(cipher)))?)),
            Err(e) => Ok(Err(crypto_error(e))),
        }
    }

    fn update(
        &mut self,
        cipher: Resource<CipherState>,
        data: Vec<u8>,
    ) -> wasmtime::Result<Vec<u8>> {
        match self.table.get_mut(&cipher)?.0.as_mut() {
            Some(cipher) => Ok(cipher.update(&data)),
            None => wasmtime::bail!("the guest used a cipher after finishing it"),
        }
    }

    fn finish(
        &mut self,
        cipher: Resource<CipherState>,
    ) -> wasmtime::Result<Result<Vec<u8>, ConnectorError>> {
        match self.table.get_mut(&cipher)?.0.take() {
            Some(cipher) => Ok(cipher.finish().map_err(crypto_error)),
            None => Ok(Err(error(
                ErrorCode::Internal,
                "the cipher was already finished",
            ))),
        }
    }

    fn drop(&mut self, cipher: Resource<CipherState>) -> wasmtime::Result<()> {
        self.table.delete(cipher)?;
        Ok(())
    }
}

fn storage_error(e: rusqlite::Error) -> ConnectorError {
    error(ErrorCode::StorageFailed, format!("state store: {e}"))
}

impl wit_state::Host for CallState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, ConnectorError>> {
        Ok(self.station.state.get(&key).map_err(storage_error))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), ConnectorError>> {
        Ok(self.station.state.set(&key, &value).map_err(storage_error))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), ConnectorError>> {
        Ok(self.station.state.delete(&key).map_err(storage_error))
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<bool, ConnectorError>> {
        Ok(self
            .station
            .state
            .compare_and_swap(&key, expected.as_deref(), &value)
            .map_err(storage_error))
    }

    fn list_keys(
        &mut self,
        prefix: String,
    ) -> wasmtime::Result<Result<Vec<String>, ConnectorError>> {
        Ok(self.station.state.list_keys(&prefix).map_err(storage_error))
    }
}

impl wit_secrets::Host for CallState {
    fn reveal(&mut self, name: String) -> wasmtime::Result<Result<String, ConnectorError>> {
        Ok(self.station.secrets.get(&name).map_err(|e| {
            let code = match e {
                SecretError::NotFound(_) => ErrorCode::NotFound,
                _ => ErrorCode::KeystoreFailed,
            };
            error(code, e.to_string())
        }))
    }

    fn replace(
        &mut self,
        name: String,
        value: String,
    ) -> wasmtime::Result<Result<(), ConnectorError>> {
        Ok(self
            .station
            .secrets
            .set(&name, &value)
            .map_err(|e| error(ErrorCode::KeystoreFailed, e.to_string())))
    }
}

impl wit_log::Host for CallState {
    fn emit(&mut self, level: wit_log::Level, message: String) -> wasmtime::Result<()> {
        let station = &self.station.label;
        match level {
            wit_log::Level::Trace => {
                tracing::trace!(target: "as2_connector", %station, "{message}")
            }
            wit_log::Level::Debug => {
                tracing::debug!(target: "as2_connector", %station, "{message}")
            }
            wit_log::Level::Info => tracing::info!(target: "as2_connector", %station, "{message}"),
            wit_log::Level::Warn => tracing::warn!(target: "as2_connector", %station, "{message}"),
            wit_log::Level::Error => {
                tracing::error!(target: "as2_connector", %station, "{message}")
            }
        }
        Ok(())
    }
}

/// Limits applied to every call into the component.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most linear memory the guest may grow to.
    pub memory_bytes: usize,
    /// Wall-clock deadline of one call, host calls (HTTP) included.
    pub deadline: Duration,
    /// Most bytes one call may write to blobs (the messages it builds), so
    /// that no call can fill the disk.
    pub blob_bytes: u64,
}

impl Limits {
    /// How long the component may keep sending in one call, told to it as
    /// `AS2_CALL_BUDGET_MS`: four fifths of the deadline, so that a resend
    /// that would end past it is left to `resume` rather than cut off.
    pub fn call_budget_ms(&self) -> u64 {
        u64::try_from(self.deadline.as_millis() * 4 / 5).unwrap_or(u64::MAX)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 1 << 30,
            deadline: Duration::from_secs(300),
            blob_bytes: 16 << 30,
        }
    }
}

/// Why a call into the component failed at the host level.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest trapped: a panic, the memory cap, or the deadline.
    #[error("the connector component stopped: {reason}")]
    Trap {
        /// What happened.
        reason: String,
        /// What the guest wrote to stderr (a panic message, say).
        guest_output: String,
    },
    /// The host could not run the call.
    #[error("the host could not run the connector: {0:#}")]
    Host(anyhow::Error),
}

const EPOCH_TICK: Duration = Duration::from_millis(10);
const GUEST_OUTPUT_CAPACITY: usize = 1 << 20;

/// The loaded component, ready to instantiate.
pub struct Runtime {
    engine: Engine,
    pre: bindings::As2ConnectorPre<CallState>,
    /// Limits for each call.
    pub limits: Limits,
    /// Holds calls back while every pooled instance slot is in use.
    gate: CallGate,
}

/// Instances that can run at once. Each call is a fresh instance, and with
/// wasmtime's pooling allocator it takes a reserved slot instead of mapping
/// its memory afresh: a fresh instance and the smallest call took 60 µs
/// against 107–112 µs without the pool on the project's machine
/// (docs/benchmarks.md). Calls beyond this many wait for a slot; 2 cores are
/// saturated long before.
const POOLED_INSTANCES: u32 = 128;

/// Linear memory a slot keeps resident between calls, where the kernel can
/// tell wasmtime which of its pages a call wrote (`PAGEMAP_SCAN`, Linux 6.7
/// and later): those pages are zeroed in place rather than unmapped, so the
/// next call neither faults them in again nor pays for the `madvise`.
/// Measured side by side (docs/benchmarks.md): a fresh instance and the
/// smallest call 36.8 µs with slots reset by `madvise`, 19.7 µs keeping
/// 1 MiB; a 10 MB parse 23.5 and 29.8 ms keeping 1 MiB, 19.4 and 20.5 ms
/// keeping 16 MiB, no faster at 32 MiB. The cost is memory: a slot keeps
/// what its calls wrote, up to this much, while it stays warm. Without
/// `PAGEMAP_SCAN` the kept bytes would be zeroed whole every call (53 µs at
/// 1 MiB), so nothing is kept there.
const KEEP_RESIDENT: usize = 16 << 20;

fn pool(limits: &Limits) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOLED_INSTANCES)
        // The component's core modules: the connector and the shims that
        // wasm-component-ld adds, each with at most one memory and table.
        .total_core_instances(POOLED_INSTANCES * 8)
        .total_memories(POOLED_INSTANCES * 2)
        .total_tables(POOLED_INSTANCES * 8)
        .max_memory_size(limits.memory_bytes.min(4 << 30))
        .table_keep_resident(64 << 10);
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT);
    }
    pool
}

/// Set (to anything) to have wasmtime write `/tmp/perf-<pid>.map`, so that
/// `perf report` names the component's functions (docs/benchmarks.md).
const PERF_MAP_VARIABLE: &str = "AS2_HARNESS_PERF_MAP";

/// A counting semaphore for blocking callers.
struct CallGate {
    free: Mutex<usize>,
    freed: Condvar,
}

impl CallGate {
    fn new(slots: usize) -> Self {
        CallGate {
            free: Mutex::new(slots),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free slot; it is given back when the pass is dropped.
    fn enter(&self) -> CallPass<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        CallPass(self)
    }
}

struct CallPass<'a>(&'a CallGate);

impl Drop for CallPass<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

impl Runtime {
    /// Compiles (or loads from `cache_dir`) the embedded component.
    pub fn new(cache_dir: Option<&Path>, limits: Limits) -> anyhow::Result<Self> {
        Self::with_component(COMPONENT_WASM, cache_dir, limits)
    }

    /// A runtime for another build of the connector component (`wasm`), such
    /// as the sandbox tests' fault-switch build.
    pub fn with_component(
        wasm: &[u8],
        cache_dir: Option<&Path>,
        limits: Limits,
    ) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(&limits)));
        if std::env::var_os(PERF_MAP_VARIABLE).is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;
        let component = load_component(&engine, wasm, cache_dir)?;
        let mut linker: Linker<CallState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
        // Only our own interfaces: the WASI ones were added just above.
        types::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        wit_keystore::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        primitives::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        wit_state::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        wit_log::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        wit_secrets::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        let pre = bindings::As2ConnectorPre::new(linker.instantiate_pre(&component)?)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        Ok(Runtime {
            engine,
            pre,
            limits,
            gate: CallGate::new(POOLED_INSTANCES as usize),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs `f` on a fresh instance for `station`, under the limits.
    pub fn call<R>(
        &self,
        station: &Arc<Station>,
        f: impl FnOnce(&api::Guest, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.call_with(station, &CallOptions::default(), f)
    }

    /// [`Runtime::call`] with the host-applied `options` of the call's
    /// connection (the TLS settings of its outgoing https requests, which
    /// `wasi:http` cannot express).
    pub fn call_with<R>(
        &self,
        station: &Arc<Station>,
        options: &CallOptions,
        f: impl FnOnce(&api::Guest, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let _pass = self.gate.enter();
        let guest_output = MemoryOutputPipe::new(GUEST_OUTPUT_CAPACITY);
        let wasi = WasiCtx::builder()
            .stderr(guest_output.clone())
            .env(
                "AS2_CALL_BUDGET_MS",
                self.limits.call_budget_ms().to_string(),
            )
            .build();
        let state = CallState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            station: station.clone(),
            hooks: HttpHooks::new(options, station.clone()),
            blob_allowance: self.limits.blob_bytes,
            blob_limit: self.limits.blob_bytes,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        let ticks = (self.limits.deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        // wasmtime caps what one guest-to-host call may carry at 128 MiB by
        // default, which a large message's record (`state.set` of the exact
        // bytes) exceeds. The guest cannot hold more than its memory cap,
        // which already bounds what it can make the host allocate.
        store.set_hostcall_fuel(self.limits.memory_bytes);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| CallError::Host(anyhow::anyhow!("instantiating the component: {e:?}")))?;
        let guest = instance.as2_connector_connector();
        f(guest, &mut store).map_err(|e| {
            let output = String::from_utf8_lossy(&guest_output.contents()).trim().to_string();
            let reason = match e.downcast_ref::<wasmtime::Trap>() {
                Some(wasmtime::Trap::Interrupt) => format!("it ran past its deadline of {:?}", self.limits.deadline),
                Some(wasmtime::Trap::UnreachableCodeReached) if output.contains("panicked") => "it panicked".to_string(),
                Some(wasmtime::Trap::UnreachableCodeReached) => "it aborted (out of memory or a panic)".to_string(),
                Some(trap) => trap.to_string(),
                // StoreLimits' trap on a refused memory.grow carries no Trap code.
                None if format!("{e:#}").contains("forcing trap when growing memory") => format!(
                    "it reached its memory cap of {} MiB",
                    self.limits.memory_bytes >> 20
                ),
                None => format!("{e:#}"),
            };
            tracing::error!(station = %station.label, %reason, guest_output = %output, "connector call failed");
            CallError::Trap { reason, guest_output: output }
        })
    }
}

/// Compiles the component, or loads the artifact compiled earlier into
/// `cache_dir` (keyed by the component's hash and the wasmtime version).
fn load_component(
    engine: &Engine,
    wasm: &[u8],
    cache_dir: Option<&Path>,
) -> anyhow::Result<Component> {
    let Some(cache_dir) = cache_dir else {
        return Component::new(engine, wasm)
            .map_err(anyhow::Error::from)
            .context("compiling the connector component");
    };
    let mut hasher = sha2::Sha256::new();
    hasher.update(wasm);
    hasher.update(env!("CARGO_PKG_VERSION"));
    let mut settings = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut settings);
    hasher.update(std::hash::Hasher::finish(&settings).to_le_bytes());
    let hash: String = hasher.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = cache_dir.join(format!("as2_connector-{hash}.cwasm"));
    if path.exists() {
        // SAFETY: the file is an artifact this host compiled and wrote into its
        // own cache folder, keyed by the component and the engine's settings.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring an unusable cached component: {e:#}")
            }
        }
    }
    let component = Component::new(engine, wasm)
        .map_err(anyhow::Error::from)
        .context("compiling the connector component")?;
    let bytes = component.serialize()?;
    if let Err(e) = crate::files::write_durably(&path, &bytes) {
        tracing::warn!(path = %path.display(), "could not cache the compiled component: {e:#}");
    }
    Ok(component)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_call_past_the_pool_waits_for_a_slot_and_runs_once_one_is_free() {
        let gate = Arc::new(CallGate::new(1));
        let first = gate.enter();
        let entered = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (gate, entered) = (gate.clone(), entered.clone());
            std::thread::spawn(move || {
                let _pass = gate.enter();
                entered.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !entered.load(Ordering::SeqCst),
            "entered while no slot was free"
        );
        drop(first);
        waiter.join().unwrap();
        assert!(entered.load(Ordering::SeqCst));
        assert_eq!(*gate.free.lock().unwrap(), 1, "the slot came back");
    }
}

//! The engine's crypto traits, served by the host's imports.

use crate::bytes::{Sink, Source, Spool, Spools};
use crate::crypto::{
    Aead, AeadCipher, Cbc, Cipher, ContentCipher, CryptoError, CryptoProvider, DigestAlgorithm,
    Direction, Gcm, Hasher, KeyTransport, PrivateKey, SignatureScheme, SignedDigest,
};

use super::bindings::as2::connector::{keystore, primitives, types as wit};
use super::bindings::wasi::random::random;

fn digest(algorithm: DigestAlgorithm) -> wit::DigestAlgorithm {
    match algorithm {
        DigestAlgorithm::Sha1 => wit::DigestAlgorithm::Sha1,
        DigestAlgorithm::Sha224 => wit::DigestAlgorithm::Sha224,
        DigestAlgorithm::Sha256 => wit::DigestAlgorithm::Sha256,
        DigestAlgorithm::Sha384 => wit::DigestAlgorithm::Sha384,
        DigestAlgorithm::Sha512 => wit::DigestAlgorithm::Sha512,
    }
}

fn aead(algorithm: AeadCipher) -> primitives::AeadAlgorithm {
    match algorithm {
        AeadCipher::Aes128Gcm => primitives::AeadAlgorithm::Aes128Gcm,
        AeadCipher::Aes192Gcm => primitives::AeadAlgorithm::Aes192Gcm,
        AeadCipher::Aes256Gcm => primitives::AeadAlgorithm::Aes256Gcm,
    }
}

fn signature(scheme: SignatureScheme) -> wit::SignatureScheme {
    match scheme {
        SignatureScheme::RsaPkcs1v15 => wit::SignatureScheme::RsaPkcs1v15,
        SignatureScheme::RsaPss => wit::SignatureScheme::RsaPss,
    }
}

fn transport(scheme: KeyTransport) -> wit::KeyTransport {
    match scheme {
        KeyTransport::RsaPkcs1v15 => wit::KeyTransport::RsaPkcs1v15,
        KeyTransport::RsaOaep { hash, mgf } => wit::KeyTransport::RsaOaep(wit::OaepDigests {
            hash: digest(hash),
            mgf1: digest(mgf),
        }),
    }
}

fn crypto_error(error: wit::Error) -> CryptoError {
    match error.code {
        wit::ErrorCode::DecryptionFailed => CryptoError::Decryption,
        wit::ErrorCode::UnsupportedAlgorithm => CryptoError::UnsupportedAlgorithm(error.message),
        wit::ErrorCode::KeystoreFailed | wit::ErrorCode::NotFound => {
            CryptoError::KeyStore(error.message)
        }
        _ => CryptoError::InvalidKey(error.message),
    }
}

/// The host's `primitives` as a [`CryptoProvider`]; randomness from `wasi:random`.
pub struct HostCrypto;

/// The most bytes handed to the host in one primitive call: the host then
/// copies at most this much at a time, however large the message.
const CHUNK: usize = 1 << 20;

struct HostHasher(primitives::Hasher);

impl Hasher for HostHasher {
    fn update(&mut self, data: &[u8]) {
        for chunk in data.chunks(CHUNK) {
            self.0.update(chunk);
        }
    }

    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0.finish()
    }
}

struct HostCipher(primitives::Cipher);

impl Cipher for HostCipher {
    fn update(&mut self, data: &[u8]) -> Vec<u8> {
        in_chunks(data, |chunk| self.0.update(chunk))
    }

    fn finish(self: Box<Self>) -> Result<Vec<u8>, CryptoError> {
        self.0.finish().map_err(crypto_error)
    }
}

fn cipher_direction(direction: Direction) -> primitives::CipherDirection {
    match direction {
        Direction::Encrypt => primitives::CipherDirection::Encrypt,
        Direction::Decrypt => primitives::CipherDirection::Decrypt,
    }
}

/// Output of a host stream fed `data` at most [`CHUNK`] bytes a call.
fn in_chunks(data: &[u8], mut update: impl FnMut(&[u8]) -> Vec<u8>) -> Vec<u8> {
    if data.len() <= CHUNK {
        return update(data);
    }
    let mut out = Vec::with_capacity(data.len() + 16);
    for chunk in data.chunks(CHUNK) {
        out.extend_from_slice(&update(chunk));
    }
    out
}

struct HostAead(primitives::AeadStream);

impl Aead for HostAead {
    fn update(&mut self, data: &[u8]) -> Vec<u8> {
        in_chunks(data, |chunk| self.0.update(chunk))
    }

    fn seal_finish(self: Box<Self>) -> Result<Vec<u8>, CryptoError> {
        self.0.seal_tag().map_err(crypto_error)
    }

    fn open_finish(self: Box<Self>, tag: &[u8]) -> Result<(), CryptoError> {
        self.0.check_tag(tag).map_err(crypto_error)
    }
}

struct HostDeflater(primitives::Deflater);

impl crate::compress::Deflater for HostDeflater {
    fn update(&mut self, data: &[u8]) -> Vec<u8> {
        in_chunks(data, |chunk| self.0.update(chunk))
    }

    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0.finish()
    }
}

impl CryptoProvider for HostCrypto {
    fn hasher(&self, algorithm: DigestAlgorithm) -> Box<dyn Hasher + Send> {
        Box::new(HostHasher(primitives::Hasher::new(digest(algorithm))))
    }

    fn cipher(&self, cbc: Cbc<'_>) -> Result<Box<dyn Cipher + Send>, CryptoError> {
        let algorithm = match cbc.cipher {
            ContentCipher::Aes128Cbc => primitives::CipherAlgorithm::Aes128Cbc,
            ContentCipher::Aes192Cbc => primitives::CipherAlgorithm::Aes192Cbc,
            ContentCipher::Aes256Cbc => primitives::CipherAlgorithm::Aes256Cbc,
            ContentCipher::DesEde3Cbc => primitives::CipherAlgorithm::DesEde3Cbc,
            ContentCipher::Rc2Cbc { effective_bits: 40 } => primitives::CipherAlgorithm::Rc2Cbc40,
            ContentCipher::Rc2Cbc { effective_bits: 64 } => primitives::CipherAlgorithm::Rc2Cbc64,
            ContentCipher::Rc2Cbc {
                effective_bits: 128,
            } => primitives::CipherAlgorithm::Rc2Cbc128,
            ContentCipher::Rc2Cbc { effective_bits } => {
                return Err(CryptoError::UnsupportedAlgorithm(format!(
                    "RC2 with a {effective_bits}-bit effective key"
                )));
            }
        };
        let cipher =
            primitives::Cipher::open(algorithm, cipher_direction(cbc.direction), cbc.key, cbc.iv)
                .map_err(crypto_error)?;
        Ok(Box::new(HostCipher(cipher)))
    }

    fn rsa_encrypt(
        &self,
        subject_public_key_info: &[u8],
        scheme: KeyTransport,
        data: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        primitives::rsa_encrypt(subject_public_key_info, transport(scheme), data)
            .map_err(crypto_error)
    }

    fn rsa_verify(&self, spki: &[u8], signed: SignedDigest<'_>) -> Result<bool, CryptoError> {
        primitives::rsa_verify(
            spki,
            signature(signed.scheme),
            digest(signed.algorithm),
            signed.digest,
            signed.signature,
        )
        .map_err(crypto_error)
    }

    fn aead(
        &self,
        gcm: Gcm<'_>,
        direction: Direction,
    ) -> Result<Box<dyn Aead + Send>, CryptoError> {
        let tag_len = u32::try_from(gcm.tag_len)
            .map_err(|_| CryptoError::UnsupportedAlgorithm("AES-GCM tag length".into()))?;
        let stream = primitives::AeadStream::open(
            aead(gcm.cipher),
            cipher_direction(direction),
            gcm.key,
            gcm.nonce,
            gcm.aad,
            tag_len,
        )
        .map_err(crypto_error)?;
        Ok(Box::new(HostAead(stream)))
    }

    fn deflater(&self) -> Box<dyn crate::compress::Deflater + Send> {
        Box::new(HostDeflater(primitives::Deflater::new()))
    }

    fn fill_random(&self, buf: &mut [u8]) {
        let bytes = random::get_random_bytes(buf.len() as u64);
        buf.copy_from_slice(&bytes[..buf.len()]);
    }
}

/// A station key in the host's key store, reached through its handle.
pub struct HostKey {
    handle: keystore::PrivateKey,
    certificate: Vec<u8>,
}

impl HostKey {
    /// Opens the key named in the configuration.
    pub fn open(name: &str) -> Result<Self, wit::Error> {
        let handle = keystore::PrivateKey::open(name)?;
        let certificate = handle.certificate();
        Ok(HostKey {
            handle,
            certificate,
        })
    }
}

impl PrivateKey for HostKey {
    fn certificate_der(&self) -> Vec<u8> {
        self.certificate.clone()
    }

    fn sign_digest(
        &self,
        scheme: SignatureScheme,
        algorithm: DigestAlgorithm,
        digest_bytes: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.handle
            .sign_digest(signature(scheme), digest(algorithm), digest_bytes)
            .map_err(crypto_error)
    }

    fn decrypt_key(
        &self,
        scheme: KeyTransport,
        encrypted_key: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.handle
            .decrypt_key(transport(scheme), encrypted_key)
            .map_err(crypto_error)
    }
}

/// A host blob read as the engine's [`Source`]: a piece at a time, never whole.
pub struct BlobSource<'a> {
    blob: &'a wit::Blob,
    len: u64,
}

impl<'a> BlobSource<'a> {
    /// Reads `blob`, whose length is fixed from now on.
    pub fn new(blob: &'a wit::Blob) -> Self {
        BlobSource {
            len: blob.size(),
            blob,
        }
    }
}

impl Source for BlobSource<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, crate::Error> {
        read_blob(self.blob, offset, buf)
    }
}

/// Up to `buf.len()` bytes of `blob` from `offset`.
fn read_blob(blob: &wit::Blob, offset: u64, buf: &mut [u8]) -> Result<usize, crate::Error> {
    let length = u32::try_from(buf.len()).unwrap_or(u32::MAX);
    let piece = blob
        .read(offset, length)
        .map_err(|e| crate::Error::Storage(e.message))?;
    let n = piece.len().min(buf.len());
    buf[..n].copy_from_slice(&piece[..n]);
    Ok(n)
}

/// A spool that holds its bytes in the component's memory up to a limit,
/// then moves them to a new host blob: what a layer of a large message
/// makes (plaintext, an inflated entity) stays with the host, out of the
/// component's memory, while a small message is read at memory speed.
pub struct BlobSpool {
    held: Vec<u8>,
    blob: Option<wit::Blob>,
    hold_limit: u64,
    len: u64,
}

impl Source for BlobSpool {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, crate::Error> {
        match &self.blob {
            Some(blob) => read_blob(blob, offset, buf),
            None => self.held.read_at(offset, buf),
        }
    }

    fn as_slice(&self) -> Option<&[u8]> {
        self.blob.is_none().then_some(self.held.as_slice())
    }
}

impl Sink for BlobSpool {
    fn write(&mut self, data: &[u8]) -> Result<(), crate::Error> {
        self.len += data.len() as u64;
        match &self.blob {
            Some(blob) => BlobSink(blob).write(data),
            None if self.len <= self.hold_limit => {
                self.held.extend_from_slice(data);
                Ok(())
            }
            None => {
                let blob = wit::Blob::new();
                let mut sink = BlobSink(&blob);
                for piece in self.held.chunks(crate::bytes::PIECE) {
                    sink.write(piece)?;
                }
                sink.write(data)?;
                self.held = Vec::new();
                self.blob = Some(blob);
                Ok(())
            }
        }
    }
}

impl Spool for BlobSpool {
    fn into_vec(self: Box<Self>) -> Result<Vec<u8>, crate::Error> {
        match self.blob {
            Some(_) => crate::bytes::read_all(self.as_ref()),
            None => Ok(self.held),
        }
    }
}

/// The most bytes of a request body, or of one layer of a message, held in
/// the component's memory: beyond it they stay in host blobs, so that a
/// message of any size is sent and received within the call's memory cap.
pub const SPOOL_HOLD_LIMIT: u64 = 4 << 20;

/// Spools in host blobs, each layer held in memory up to `hold_limit`.
pub struct BlobSpools {
    /// The most bytes of one layer kept in the component's memory.
    pub hold_limit: u64,
}

impl Default for BlobSpools {
    fn default() -> Self {
        BlobSpools {
            hold_limit: SPOOL_HOLD_LIMIT,
        }
    }
}

impl Spools for BlobSpools {
    fn spool(&self, expected: u64) -> Result<Box<dyn Spool>, crate::Error> {
        let held = usize::try_from(expected.min(self.hold_limit)).unwrap_or(0);
        Ok(Box::new(BlobSpool {
            held: Vec::with_capacity(held),
            blob: None,
            hold_limit: self.hold_limit,
            len: 0,
        }))
    }

    fn hold_limit(&self) -> u64 {
        self.hold_limit
    }
}

/// A host blob written as the engine's [`Sink`].
pub struct BlobSink<'a>(pub &'a wit::Blob);

impl Sink for BlobSink<'_> {
    fn write(&mut self, data: &[u8]) -> Result<(), crate::Error> {
        self.0
            .append(data)
            .map_err(|e| crate::Error::Storage(e.message))
    }
}

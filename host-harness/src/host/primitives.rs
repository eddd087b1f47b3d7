//! `as2:connector/primitives`: the cryptography that needs no private key
//! (RSA encryption and verification with a partner's public key, AEAD,
//! running digests and ciphers). It runs natively here rather than in the
//! guest, which is several times faster for the bulk work of a message.

use wasmtime::component::Resource;

use as2_connector::crypto::rustcrypto::RustCryptoProvider;
use as2_connector::crypto::{
    AeadCipher, Cbc, ContentCipher, CryptoProvider, Direction, Gcm, SignedDigest,
};

use super::bindings::as2::connector::primitives;
use super::bindings::as2::connector::types::{self, Error as ConnectorError, ErrorCode};
use super::resources::{AeadState, CipherState, DeflaterState, HasherState};
use super::{CallState, crypto_error, digest, discard, error, key_transport, signature_scheme};

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
        let signed = SignedDigest {
            scheme: signature_scheme(scheme),
            algorithm: digest(algorithm),
            digest: &digest_bytes,
            signature: &signature,
        };
        Ok(crate::hostkey::rsa_verify(&subject_public_key_info, signed).map_err(crypto_error))
    }
}

/// One AES-GCM operation from the guest's arguments: key, nonce and AAD.
fn gcm<'a>(
    algorithm: primitives::AeadAlgorithm,
    [key, nonce, aad]: [&'a [u8]; 3],
    tag_len: usize,
) -> Gcm<'a> {
    let cipher = match algorithm {
        primitives::AeadAlgorithm::Aes128Gcm => AeadCipher::Aes128Gcm,
        primitives::AeadAlgorithm::Aes192Gcm => AeadCipher::Aes192Gcm,
        primitives::AeadAlgorithm::Aes256Gcm => AeadCipher::Aes256Gcm,
    };
    Gcm {
        cipher,
        key,
        nonce,
        aad,
        tag_len,
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
        discard(&mut self.table, hasher)
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
        let cbc = Cbc {
            cipher: algorithm,
            direction: direction_of(direction),
            key: &key,
            iv: &iv,
        };
        match RustCryptoProvider.cipher(cbc) {
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
            None => Ok(Err(finished("cipher"))),
        }
    }

    fn drop(&mut self, cipher: Resource<CipherState>) -> wasmtime::Result<()> {
        discard(&mut self.table, cipher)
    }
}

fn direction_of(direction: primitives::CipherDirection) -> Direction {
    match direction {
        primitives::CipherDirection::Encrypt => Direction::Encrypt,
        primitives::CipherDirection::Decrypt => Direction::Decrypt,
    }
}

impl primitives::HostAeadStream for CallState {
    fn open(
        &mut self,
        algorithm: primitives::AeadAlgorithm,
        direction: primitives::CipherDirection,
        key: Vec<u8>,
        nonce: Vec<u8>,
        aad: Vec<u8>,
        tag_length: u32,
    ) -> wasmtime::Result<Result<Resource<AeadState>, ConnectorError>> {
        let gcm = gcm(algorithm, [&key, &nonce, &aad], tag_length as usize);
        match RustCryptoProvider.aead(gcm, direction_of(direction)) {
            Ok(aead) => Ok(Ok(self.table.push(AeadState(Some(aead)))?)),
            Err(e) => Ok(Err(crypto_error(e))),
        }
    }

    fn update(&mut self, aead: Resource<AeadState>, data: Vec<u8>) -> wasmtime::Result<Vec<u8>> {
        match self.table.get_mut(&aead)?.0.as_mut() {
            Some(aead) => Ok(aead.update(&data)),
            None => wasmtime::bail!("the guest used an AES-GCM stream after its tag"),
        }
    }

    fn seal_tag(
        &mut self,
        aead: Resource<AeadState>,
    ) -> wasmtime::Result<Result<Vec<u8>, ConnectorError>> {
        match self.table.get_mut(&aead)?.0.take() {
            Some(aead) => Ok(aead.seal_finish().map_err(crypto_error)),
            None => Ok(Err(finished("AES-GCM stream"))),
        }
    }

    fn check_tag(
        &mut self,
        aead: Resource<AeadState>,
        tag: Vec<u8>,
    ) -> wasmtime::Result<Result<(), ConnectorError>> {
        match self.table.get_mut(&aead)?.0.take() {
            Some(aead) => Ok(aead.open_finish(&tag).map_err(crypto_error)),
            None => Ok(Err(finished("AES-GCM stream"))),
        }
    }

    fn drop(&mut self, aead: Resource<AeadState>) -> wasmtime::Result<()> {
        discard(&mut self.table, aead)
    }
}

impl primitives::HostDeflater for CallState {
    fn new(&mut self) -> wasmtime::Result<Resource<DeflaterState>> {
        Ok(self
            .table
            .push(DeflaterState(Some(RustCryptoProvider.deflater())))?)
    }

    fn update(
        &mut self,
        deflater: Resource<DeflaterState>,
        data: Vec<u8>,
    ) -> wasmtime::Result<Vec<u8>> {
        match self.table.get_mut(&deflater)?.0.as_mut() {
            Some(deflater) => Ok(deflater.update(&data)),
            None => wasmtime::bail!("the guest used a deflater after finishing it"),
        }
    }

    fn finish(&mut self, deflater: Resource<DeflaterState>) -> wasmtime::Result<Vec<u8>> {
        match self.table.get_mut(&deflater)?.0.take() {
            Some(deflater) => Ok(deflater.finish()),
            None => wasmtime::bail!("the guest finished a deflater twice"),
        }
    }

    fn drop(&mut self, deflater: Resource<DeflaterState>) -> wasmtime::Result<()> {
        discard(&mut self.table, deflater)
    }
}

/// The error for a stream used after its last call.
fn finished(what: &str) -> ConnectorError {
    error(
        ErrorCode::Internal,
        format!("the {what} was already finished"),
    )
}

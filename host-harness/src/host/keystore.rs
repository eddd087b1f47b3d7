//! `as2:connector/keystore`: the station's private keys as opaque handles.
//! The guest asks for a signature or a decrypted content key; the key never
//! leaves the host.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use wasmtime::component::Resource;

use as2_connector::crypto::PrivateKey as _;

use super::bindings::as2::connector::keystore as wit_keystore;
use super::bindings::as2::connector::types::{self, Error as ConnectorError, ErrorCode};
use super::resources::KeyHandle;
use super::{CallState, crypto_error, digest, discard, error, key_transport, signature_scheme};
use crate::hostkey::HostKey;
use crate::keystore::{KeyError, KeyStore};

impl wit_keystore::Host for CallState {}

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
        Ok(self.table.get(&key)?.0.certificate_der())
    }

    fn sign_digest(
        &mut self,
        key: Resource<KeyHandle>,
        scheme: types::SignatureScheme,
        algorithm: types::DigestAlgorithm,
        digest_bytes: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, ConnectorError>> {
        let key = self.key_in_use(&key, |keys| &keys.signatures)?;
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
        let key = self.key_in_use(&key, |keys| &keys.decryptions)?;
        Ok(key
            .decrypt_key(key_transport(scheme), &encrypted_key)
            .map_err(crypto_error))
    }

    fn drop(&mut self, key: Resource<KeyHandle>) -> wasmtime::Result<()> {
        discard(&mut self.table, key)
    }
}

impl CallState {
    /// The key behind `key` for one private-key operation, counted in the
    /// station's tally that `tally` picks (signatures or decryptions).
    fn key_in_use(
        &self,
        key: &Resource<KeyHandle>,
        tally: fn(&KeyStore) -> &AtomicU64,
    ) -> wasmtime::Result<Arc<HostKey>> {
        let key = self.table.get(key)?.0.clone();
        crate::keystore::count(tally(&self.station.keys));
        Ok(key)
    }
}

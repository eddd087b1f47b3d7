//! A station private key as the key store holds it for the component's
//! handles: RSA private-key operations through OpenSSL (libcrypto), which
//! on this project's machine signs an RSA-2048 digest in 0.32 ms against
//! 1.8 ms for RustCrypto's `rsa` (`bench/run`, docs/benchmarks.md).
//!
//! PKCS#1 v1.5 key transport is the exception: its decryption must reject
//! implicitly (a wrong key or a tampered blob yields random bytes, never an
//! error whose timing tells the two apart: the Marvin attack), which OpenSSL
//! does from 3.2 on. With an older libcrypto that one operation stays with
//! RustCrypto, which always rejects implicitly.

use as2_connector::crypto::rustcrypto::SoftwareKey;
use as2_connector::crypto::{
    CryptoError, DigestAlgorithm, KeyTransport, PrivateKey, SignatureScheme,
};
use openssl::md::{Md, MdRef};
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::RsaPssSaltlen;

/// The first OpenSSL release whose PKCS#1 v1.5 decryption rejects implicitly.
const IMPLICIT_REJECTION_SINCE: i64 = 0x3020_0000;

/// A station key: OpenSSL for its private-key operations, with the
/// RustCrypto key beside it for what OpenSSL cannot do safely here.
pub struct HostKey {
    openssl: PKey<Private>,
    software: SoftwareKey,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("HostKey").finish_non_exhaustive()
    }
}

fn md(algorithm: DigestAlgorithm) -> &'static MdRef {
    match algorithm {
        DigestAlgorithm::Sha1 => Md::sha1(),
        DigestAlgorithm::Sha224 => Md::sha224(),
        DigestAlgorithm::Sha256 => Md::sha256(),
        DigestAlgorithm::Sha384 => Md::sha384(),
        DigestAlgorithm::Sha512 => Md::sha512(),
    }
}

fn failed(what: &str) -> impl Fn(openssl::error::ErrorStack) -> CryptoError + '_ {
    move |e| CryptoError::KeyStore(format!("{what} failed: {e}"))
}

impl HostKey {
    /// A key from unencrypted PKCS#8 DER and its DER certificate.
    pub fn from_pkcs8_der(pkcs8: &[u8], certificate_der: Vec<u8>) -> Result<Self, CryptoError> {
        let software = SoftwareKey::from_pkcs8_der(pkcs8, certificate_der)?;
        let openssl = PKey::private_key_from_pkcs8(pkcs8)
            .map_err(|e| CryptoError::InvalidKey(format!("OpenSSL cannot read the key: {e}")))?;
        Ok(HostKey { openssl, software })
    }

    /// The key's SubjectPublicKeyInfo, DER.
    pub fn public_key_der(&self) -> Result<Vec<u8>, CryptoError> {
        self.software.public_key_der()
    }

    /// Whether the linked OpenSSL decrypts PKCS#1 v1.5 with implicit rejection.
    pub fn openssl_rejects_implicitly() -> bool {
        openssl::version::number() >= IMPLICIT_REJECTION_SINCE
    }
}

impl PrivateKey for HostKey {
    fn certificate_der(&self) -> Vec<u8> {
        self.software.certificate_der()
    }

    fn sign_digest(
        &self,
        scheme: SignatureScheme,
        algorithm: DigestAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let signing = failed("signing");
        let mut ctx = PkeyCtx::new(&self.openssl).map_err(&signing)?;
        ctx.sign_init().map_err(&signing)?;
        match scheme {
            SignatureScheme::RsaPkcs1v15 => ctx.set_rsa_padding(Padding::PKCS1),
            SignatureScheme::RsaPss => ctx
                .set_rsa_padding(Padding::PKCS1_PSS)
                .and_then(|()| ctx.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH))
                .and_then(|()| ctx.set_rsa_mgf1_md(md(algorithm))),
        }
        .map_err(&signing)?;
        ctx.set_signature_md(md(algorithm)).map_err(&signing)?;
        let mut signature = Vec::new();
        ctx.sign_to_vec(digest, &mut signature).map_err(&signing)?;
        Ok(signature)
    }

    fn decrypt_key(
        &self,
        scheme: KeyTransport,
        encrypted_key: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let oaep = match scheme {
            KeyTransport::RsaPkcs1v15 if !Self::openssl_rejects_implicitly() => {
                return self.software.decrypt_key(scheme, encrypted_key);
            }
            KeyTransport::RsaPkcs1v15 => None,
            KeyTransport::RsaOaepSha1 => Some(Md::sha1()),
            KeyTransport::RsaOaepSha256 => Some(Md::sha256()),
        };
        let decrypt = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
            let mut ctx = PkeyCtx::new(&self.openssl)?;
            ctx.decrypt_init()?;
            match oaep {
                None => ctx.set_rsa_padding(Padding::PKCS1)?,
                Some(md) => {
                    ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
                    ctx.set_rsa_oaep_md(md)?;
                    ctx.set_rsa_mgf1_md(md)?;
                }
            }
            let mut key = Vec::new();
            ctx.decrypt_to_vec(encrypted_key, &mut key)?;
            Ok(key)
        };
        decrypt().map_err(|_| CryptoError::Decryption)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use as2_connector::crypto::CryptoProvider;
    use as2_connector::crypto::rustcrypto::{RustCryptoProvider, generate_station_key};
    use std::time::{Duration, SystemTime};

    fn key() -> (HostKey, Vec<u8>) {
        let generated =
            generate_station_key("T", SystemTime::now(), Duration::from_secs(3600)).unwrap();
        let (_, pkcs8) = der::pem::decode_vec(generated.private_key_pem.as_bytes()).unwrap();
        let key = HostKey::from_pkcs8_der(&pkcs8, generated.certificate_der).unwrap();
        let spki = key.public_key_der().unwrap();
        (key, spki)
    }

    #[test]
    fn openssl_signatures_verify_with_rustcrypto_for_every_scheme_and_digest() {
        let (key, spki) = key();
        let provider = RustCryptoProvider;
        for scheme in [SignatureScheme::RsaPkcs1v15, SignatureScheme::RsaPss] {
            for algorithm in [
                DigestAlgorithm::Sha1,
                DigestAlgorithm::Sha224,
                DigestAlgorithm::Sha256,
                DigestAlgorithm::Sha384,
                DigestAlgorithm::Sha512,
            ] {
                let digest = provider.digest(algorithm, b"signed attributes");
                let signature = key.sign_digest(scheme, algorithm, &digest).unwrap();
                assert!(
                    provider
                        .rsa_verify(&spki, scheme, algorithm, &digest, &signature)
                        .unwrap(),
                    "{scheme:?} {algorithm:?}"
                );
                let other = provider.digest(algorithm, b"other attributes");
                assert!(
                    !provider
                        .rsa_verify(&spki, scheme, algorithm, &other, &signature)
                        .unwrap()
                );
            }
        }
    }

    #[test]
    fn content_keys_encrypted_by_rustcrypto_decrypt_for_every_key_transport() {
        let (key, spki) = key();
        let (_, other_spki) = self::key();
        let provider = RustCryptoProvider;
        let content_key = [0x5au8; 32];
        for scheme in [
            KeyTransport::RsaPkcs1v15,
            KeyTransport::RsaOaepSha1,
            KeyTransport::RsaOaepSha256,
        ] {
            let blob = provider.rsa_encrypt(&spki, scheme, &content_key).unwrap();
            assert_eq!(key.decrypt_key(scheme, &blob).unwrap(), content_key);
            // Encrypted to another key: never our content key. PKCS#1 v1.5
            // may answer random bytes (implicit rejection), OAEP fails.
            let foreign = provider
                .rsa_encrypt(&other_spki, scheme, &content_key)
                .unwrap();
            match key.decrypt_key(scheme, &foreign) {
                Ok(bytes) => {
                    assert_eq!(scheme, KeyTransport::RsaPkcs1v15);
                    assert_ne!(bytes, content_key);
                }
                Err(e) => assert!(matches!(e, CryptoError::Decryption), "{e:?}"),
            }
        }
    }
}

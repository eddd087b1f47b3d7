//! The native crypto provider: RustCrypto, in-process.
//!
//! Used by the engine's tests, fuzzers and benchmarks, and by the host, which
//! serves the component's `primitives` and `keystore` imports with it.

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, BlockSizeUser, KeyIvInit};
use des::TdesEde3;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use sha2::Digest;

use super::{
    AeadCipher, Cbc, Cipher, ContentCipher, CryptoError, CryptoProvider, DigestAlgorithm,
    Direction, Gcm, Hasher, KeyTransport, PrivateKey, SignatureScheme, SignedDigest,
};

/// RustCrypto implementation of [`CryptoProvider`].
#[derive(Debug, Default, Clone, Copy)]
pub struct RustCryptoProvider;

struct DigestHasher<D>(D);

impl<D: Digest> Hasher for DigestHasher<D> {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0.finalize().to_vec()
    }
}

/// Runs `$body` with `$d` bound to the RustCrypto digest type of `$alg`.
macro_rules! with_digest {
    ($alg:expr, $d:ident => $body:expr) => {
        match $alg {
            DigestAlgorithm::Sha1 => with_digest!(@as sha1::Sha1, $d => $body),
            DigestAlgorithm::Sha224 => with_digest!(@as sha2::Sha224, $d => $body),
            DigestAlgorithm::Sha256 => with_digest!(@as sha2::Sha256, $d => $body),
            DigestAlgorithm::Sha384 => with_digest!(@as sha2::Sha384, $d => $body),
            DigestAlgorithm::Sha512 => with_digest!(@as sha2::Sha512, $d => $body),
        }
    };
    (@as $t:ty, $d:ident => $body:expr) => {{
        type $d = $t;
        $body
    }};
}

/// One CBC direction: the encryptor or the decryptor of a block cipher.
trait CbcMode: BlockSizeUser {
    fn process(&mut self, blocks: &mut [cbc::cipher::Block<Self>]);
}

impl<C: cbc::cipher::BlockCipherEncrypt> CbcMode for cbc::Encryptor<C> {
    fn process(&mut self, blocks: &mut [cbc::cipher::Block<Self>]) {
        self.encrypt_blocks(blocks)
    }
}

impl<C: cbc::cipher::BlockCipherDecrypt> CbcMode for cbc::Decryptor<C> {
    fn process(&mut self, blocks: &mut [cbc::cipher::Block<Self>]) {
        self.decrypt_blocks(blocks)
    }
}

/// Runs `$body` with `$cipher` keyed for `$gcm` and `$nonce` its nonce:
/// AES-128, -192 or -256, a tag of 12 to 16 bytes (RFC 5084 §3.2), and only
/// 12-byte nonces, the norm (RFC 5084 allows others).
macro_rules! with_gcm {
    ($gcm:expr, $cipher:ident, $nonce:ident => $body:expr) => {{
        use aes_gcm::aead::consts::{U12, U13, U14, U15, U16};
        match $gcm.tag_len {
            12 => with_gcm!(@tag U12, $gcm, $cipher, $nonce => $body),
            13 => with_gcm!(@tag U13, $gcm, $cipher, $nonce => $body),
            14 => with_gcm!(@tag U14, $gcm, $cipher, $nonce => $body),
            15 => with_gcm!(@tag U15, $gcm, $cipher, $nonce => $body),
            16 => with_gcm!(@tag U16, $gcm, $cipher, $nonce => $body),
            other => Err(CryptoError::UnsupportedAlgorithm(format!(
                "AES-GCM with a {other}-byte tag"
            ))),
        }
    }};
    (@tag $tag:ty, $gcm:expr, $cipher:ident, $nonce:ident => $body:expr) => {{
        use aes_gcm::aead::{Aead, KeyInit};
        type With<A> = aes_gcm::AesGcm<A, aes_gcm::aead::consts::U12, $tag>;
        match ($gcm.cipher, $gcm.nonce.len()) {
            (AeadCipher::Aes128Gcm, 12) => with_gcm!(@as With<Aes128>, $gcm, $cipher, $nonce => $body),
            (AeadCipher::Aes192Gcm, 12) => with_gcm!(@as With<Aes192>, $gcm, $cipher, $nonce => $body),
            (AeadCipher::Aes256Gcm, 12) => with_gcm!(@as With<Aes256>, $gcm, $cipher, $nonce => $body),
            (_, other) => Err(CryptoError::UnsupportedAlgorithm(format!(
                "AES-GCM with a {other}-byte nonce"
            ))),
        }
    }};
    (@as $t:ty, $gcm:expr, $cipher:ident, $nonce:ident => $body:expr) => {{
        let $cipher = <$t>::new_from_slice($gcm.key)
            .map_err(|_| CryptoError::InvalidKey("AES-GCM key length".into()))?;
        let $nonce = aes_gcm::aead::Nonce::<$t>::try_from($gcm.nonce)
            .map_err(|_| CryptoError::InvalidKey("AES-GCM nonce length".into()))?;
        $body
    }};
}

/// CBC over any block cipher, streaming: whole blocks go through at once; the
/// decryptor holds back the last block until `finish` so it can strip padding.
struct CbcStream<M> {
    mode: M,
    pending: Vec<u8>,
    direction: Direction,
}

impl<M: CbcMode> CbcStream<M> {
    fn run(&mut self, data: &mut [u8]) {
        let (blocks, rest) = cbc::cipher::Block::<M>::slice_as_chunks_mut(data);
        debug_assert!(rest.is_empty());
        self.mode.process(blocks);
    }
}

impl<M: CbcMode> Cipher for CbcStream<M> {
    fn update(&mut self, data: &[u8]) -> Vec<u8> {
        let block = M::block_size();
        let total = self.pending.len() + data.len();
        let mut ready = total / block * block;
        // Keep one whole block back when decrypting: it may be the padded last one.
        if self.direction == Direction::Decrypt && ready == total && ready > 0 {
            ready -= block;
        }
        // The bytes are copied once, into the output, and processed there.
        let from_pending = self.pending.len().min(ready);
        let from_data = ready - from_pending;
        let mut out = Vec::with_capacity(ready);
        out.extend_from_slice(&self.pending[..from_pending]);
        out.extend_from_slice(&data[..from_data]);
        self.pending.drain(..from_pending);
        self.pending.extend_from_slice(&data[from_data..]);
        self.run(&mut out);
        out
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<u8>, CryptoError> {
        let block = M::block_size();
        let mut last = std::mem::take(&mut self.pending);
        match self.direction {
            Direction::Encrypt => {
                let pad = block - last.len() % block;
                last.resize(last.len() + pad, pad as u8);
                self.run(&mut last);
                Ok(last)
            }
            Direction::Decrypt => {
                if last.len() != block {
                    return Err(CryptoError::Decryption);
                }
                self.run(&mut last);
                let pad = usize::from(last[block - 1]);
                let padding_ok = (1..=block).contains(&pad)
                    && last[block - pad..].iter().all(|&b| usize::from(b) == pad);
                if !padding_ok {
                    return Err(CryptoError::Decryption);
                }
                last.truncate(block - pad);
                Ok(last)
            }
        }
    }
}

fn cbc_stream<C>(setup: Cbc<'_>) -> Result<Box<dyn Cipher + Send>, CryptoError>
where
    C: cbc::cipher::BlockCipherEncrypt
        + cbc::cipher::BlockCipherDecrypt
        + cbc::cipher::KeyInit
        + Send
        + 'static,
{
    let invalid = |_| CryptoError::InvalidKey("key or IV length does not fit the cipher".into());
    let Cbc {
        direction, key, iv, ..
    } = setup;
    Ok(match direction {
        Direction::Encrypt => Box::new(CbcStream {
            mode: cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(invalid)?,
            pending: Vec::new(),
            direction,
        }),
        Direction::Decrypt => Box::new(CbcStream {
            mode: cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(invalid)?,
            pending: Vec::new(),
            direction,
        }),
    })
}

fn public_key(subject_public_key_info: &[u8]) -> Result<rsa::PublicKey, CryptoError> {
    rsa::PublicKey::from_public_key_der(subject_public_key_info)
        .map_err(|e| CryptoError::InvalidKey(format!("not an RSA public key: {e}")))
}

impl CryptoProvider for RustCryptoProvider {
    fn hasher(&self, algorithm: DigestAlgorithm) -> Box<dyn Hasher + Send> {
        with_digest!(algorithm, D => Box::new(DigestHasher(D::new())))
    }

    fn cipher(&self, setup: Cbc<'_>) -> Result<Box<dyn Cipher + Send>, CryptoError> {
        let Cbc {
            direction, key, iv, ..
        } = setup;
        match setup.cipher {
            ContentCipher::Aes128Cbc => cbc_stream::<Aes128>(setup),
            ContentCipher::Aes192Cbc => cbc_stream::<Aes192>(setup),
            ContentCipher::Aes256Cbc => cbc_stream::<Aes256>(setup),
            ContentCipher::DesEde3Cbc => cbc_stream::<TdesEde3>(setup),
            ContentCipher::Rc2Cbc { effective_bits } => {
                if direction == Direction::Encrypt {
                    return Err(CryptoError::UnsupportedAlgorithm(
                        "RC2 is accepted from legacy partners but never used to send".into(),
                    ));
                }
                let rc2 = rc2::Rc2::new_with_eff_key_len(key, usize::from(effective_bits));
                let mode =
                    <cbc::Decryptor<rc2::Rc2> as cbc::cipher::InnerIvInit>::inner_iv_slice_init(
                        rc2, iv,
                    )
                    .map_err(|_| CryptoError::InvalidKey("RC2 IV must be 8 bytes".into()))?;
                Ok(Box::new(CbcStream {
                    mode,
                    pending: Vec::new(),
                    direction,
                }))
            }
        }
    }

    fn rsa_encrypt(
        &self,
        subject_public_key_info: &[u8],
        scheme: KeyTransport,
        data: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let key = public_key(subject_public_key_info)?;
        let result = match scheme {
            KeyTransport::RsaPkcs1v15 => key.pkcs1v15_encrypt(data),
            KeyTransport::RsaOaep { hash, mgf } => with_digest!(hash, D => with_digest!(mgf, M => {
                key.encrypt(&mut getrandom::SysRng, rsa::Oaep::<D, M>::new_with_mgf_hash(), data)
            })),
        };
        result.map_err(|e| CryptoError::InvalidKey(format!("RSA encryption failed: {e}")))
    }

    fn rsa_verify(&self, spki: &[u8], signed: SignedDigest<'_>) -> Result<bool, CryptoError> {
        let key = public_key(spki)?;
        if !signed.digest_has_its_length() {
            return Ok(false);
        }
        let SignedDigest {
            digest, signature, ..
        } = signed;
        let verdict = with_digest!(signed.algorithm, D => match signed.scheme {
            SignatureScheme::RsaPkcs1v15 => key.pkcs1v15_verify_prehash::<D>(digest, signature),
            // Any salt length: OpenSSL signs with the longest salt the key allows.
            SignatureScheme::RsaPss => key.verify(
                rsa::Pss::<D> { blinded: false, digest: D::new(), salt_len: None },
                digest,
                signature,
            ),
        });
        Ok(verdict.is_ok())
    }

    fn aead(
        &self,
        gcm: Gcm<'_>,
        direction: Direction,
    ) -> Result<Box<dyn super::Aead + Send>, CryptoError> {
        Ok(Box::new(super::gcm::GcmStream::new(gcm, direction)?))
    }

    fn aead_seal(&self, gcm: Gcm<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        with_gcm!(gcm, cipher, nonce => {
            cipher
                .encrypt(&nonce, aes_gcm::aead::Payload { msg: plaintext, aad: gcm.aad })
                .map_err(|_| CryptoError::InvalidKey("AES-GCM encryption failed".into()))
        })
    }

    fn aead_open(&self, gcm: Gcm<'_>, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        with_gcm!(gcm, cipher, nonce => {
            cipher
                .decrypt(&nonce, aes_gcm::aead::Payload { msg: sealed, aad: gcm.aad })
                .map_err(|_| CryptoError::Decryption)
        })
    }

    fn fill_random(&self, buf: &mut [u8]) {
        // The OS random source failing is not recoverable and not input-driven.
        #[allow(clippy::expect_used)]
        getrandom::fill(buf).expect("the operating system's random source failed");
    }
}

/// A private key held in this process: the host's key store uses it, and so
/// do tests. Inside the component keys are only ever reached through handles.
pub struct SoftwareKey {
    key: rsa::PrivateKey,
    certificate_der: Vec<u8>,
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SoftwareKey").finish_non_exhaustive()
    }
}

impl SoftwareKey {
    /// A key from PKCS#8 DER and its DER certificate.
    pub fn from_pkcs8_der(pkcs8: &[u8], certificate_der: Vec<u8>) -> Result<Self, CryptoError> {
        let key = rsa::PrivateKey::from_pkcs8_der(pkcs8)
            .map_err(|e| CryptoError::InvalidKey(format!("not an RSA PKCS#8 private key: {e}")))?;
        Ok(SoftwareKey {
            key,
            certificate_der,
        })
    }

    /// The DER SubjectPublicKeyInfo of the key's public half.
    pub fn public_key_der(&self) -> Result<Vec<u8>, CryptoError> {
        use rsa::pkcs8::EncodePublicKey;
        self.key
            .to_public_key()
            .to_public_key_der()
            .map(|doc| doc.as_bytes().to_vec())
            .map_err(|e| CryptoError::InvalidKey(format!("public key encoding failed: {e}")))
    }

    /// A key from an `rsa` private key and its DER certificate.
    pub fn new(key: rsa::PrivateKey, certificate_der: Vec<u8>) -> Self {
        SoftwareKey {
            key,
            certificate_der,
        }
    }
}

impl PrivateKey for SoftwareKey {
    fn certificate_der(&self) -> Vec<u8> {
        self.certificate_der.clone()
    }

    fn sign_digest(
        &self,
        scheme: SignatureScheme,
        algorithm: DigestAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let signature = with_digest!(algorithm, D => match scheme {
            SignatureScheme::RsaPkcs1v15 => self.key.pkcs1v15_sign_prehash::<D>(digest),
            SignatureScheme::RsaPss => self.key.pss_sign_prehash::<D>(digest),
        });
        signature.map_err(|e| CryptoError::KeyStore(format!("signing failed: {e}")))
    }

    fn decrypt_key(
        &self,
        scheme: KeyTransport,
        encrypted_key: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let result = match scheme {
            KeyTransport::RsaPkcs1v15 => self.key.pkcs1v15_decrypt(encrypted_key),
            KeyTransport::RsaOaep { hash, mgf } => with_digest!(hash, D => with_digest!(mgf, M => {
                self.key.decrypt(rsa::Oaep::<D, M>::new_with_mgf_hash(), encrypted_key)
            })),
        };
        result.map_err(|_| CryptoError::Decryption)
    }
}

/// A freshly generated station key: the key, its self-signed certificate,
/// and both in PEM for the key store's files.
pub struct GeneratedKey {
    /// The key, ready to use.
    pub key: SoftwareKey,
    /// The certificate, DER.
    pub certificate_der: Vec<u8>,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The private key, PKCS#8 PEM. Secret: goes to the key store only.
    pub private_key_pem: String,
}

/// An AS2 station certificate profile: self-signed, end entity, for signing
/// and key transport (AS2 trust is the pinned partner certificate, RFC 4130 §6.3).
struct SelfSignedStation {
    subject: x509_cert::name::Name,
}

impl x509_cert::builder::profile::BuilderProfile for SelfSignedStation {
    fn get_issuer(&self, subject: &x509_cert::name::Name) -> x509_cert::name::Name {
        subject.clone()
    }

    fn get_subject(&self) -> x509_cert::name::Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: spki::SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: spki::SubjectPublicKeyInfoRef<'_>,
        tbs: &x509_cert::TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<x509_cert::ext::Extension>> {
        use x509_cert::ext::ToExtension;
        use x509_cert::ext::pkix::{KeyUsage, KeyUsages, SubjectKeyIdentifier};
        let mut extensions = Vec::new();
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        extensions.push(ski.to_extension(tbs.subject(), &extensions)?);
        let usage = KeyUsage(
            KeyUsages::DigitalSignature | KeyUsages::NonRepudiation | KeyUsages::KeyEncipherment,
        );
        extensions.push(usage.to_extension(tbs.subject(), &extensions)?);
        Ok(extensions)
    }
}

/// Generates an RSA-2048 key and a self-signed certificate for `common_name`,
/// valid from `not_before` for `valid_for`.
pub fn generate_station_key(
    common_name: &str,
    not_before: std::time::SystemTime,
    valid_for: std::time::Duration,
) -> Result<GeneratedKey, CryptoError> {
    use der::{Encode, EncodePem, pem::LineEnding};
    use rsa::pkcs8::EncodePrivateKey;
    use std::str::FromStr;
    use x509_cert::builder::{Builder, CertificateBuilder};

    let failed =
        |what: &str, e: &dyn std::fmt::Display| CryptoError::KeyStore(format!("{what}: {e}"));
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048)
        .map_err(|e| failed("RSA key generation failed", &e))?;
    let subject_text = format!(
        "CN={}",
        common_name.replace([',', '+', '=', '\\', '"'], "_")
    );
    let subject = x509_cert::name::Name::from_str(&subject_text)
        .map_err(|e| failed("invalid certificate subject", &e))?;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| failed("random source failed", &e))?;
    serial[0] &= 0x7f;
    let serial = x509_cert::serial_number::SerialNumber::new(&serial)
        .map_err(|e| failed("invalid serial number", &e))?;
    let validity = x509_cert::time::Validity::new(
        x509_cert::time::Time::try_from(not_before).map_err(|e| failed("invalid time", &e))?,
        x509_cert::time::Time::try_from(not_before + valid_for)
            .map_err(|e| failed("invalid time", &e))?,
    );
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let spki = spki::SubjectPublicKeyInfoOwned::from_key(&key.to_public_key())
        .map_err(|e| failed("public key encoding failed", &e))?;
    let certificate =
        CertificateBuilder::new(SelfSignedStation { subject }, serial, validity, spki)
            .map_err(|e| failed("certificate building failed", &e))?
            .build::<_, rsa::pkcs1v15::Signature>(&signer)
            .map_err(|e| failed("certificate signing failed", &e))?;
    let certificate_der = certificate
        .to_der()
        .map_err(|e| failed("certificate encoding failed", &e))?;
    let certificate_pem = certificate
        .to_pem(LineEnding::LF)
        .map_err(|e| failed("certificate encoding failed", &e))?;
    let private_key_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| failed("key encoding failed", &e))?
        .to_string();
    Ok(GeneratedKey {
        key: SoftwareKey::new(key, certificate_der.clone()),
        certificate_der,
        certificate_pem,
        private_key_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cipher_fed_in_uneven_pieces_gives_what_it_gives_in_one() {
        let provider = RustCryptoProvider;
        let key = [7u8; 32];
        let iv = [9u8; 16];
        let cbc = |direction| Cbc {
            cipher: ContentCipher::Aes256Cbc,
            direction,
            key: &key,
            iv: &iv,
        };
        for len in [0usize, 1, 15, 16, 17, 32, 1000, 4096] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 256) as u8).collect();
            let whole = provider
                .cipher_all(cbc(Direction::Encrypt), &plain)
                .unwrap();
            for piece in [1usize, 3, 16, 17, 100] {
                for (direction, input, expected) in [
                    (Direction::Encrypt, &plain, &whole),
                    (Direction::Decrypt, &whole, &plain),
                ] {
                    let mut cipher = provider.cipher(cbc(direction)).unwrap();
                    let mut out = Vec::new();
                    for chunk in input.chunks(piece) {
                        out.extend(cipher.update(chunk));
                    }
                    out.extend(cipher.finish().unwrap());
                    assert_eq!(
                        &out, expected,
                        "{direction:?} {len} bytes in pieces of {piece}"
                    );
                }
            }
        }
    }
}

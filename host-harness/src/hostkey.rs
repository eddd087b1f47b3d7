//! A station private key as the key store holds it for the component's
//! handles: RSA private-key operations through OpenSSL (libcrypto), which
//! on this project's machine signs an RSA-2048 digest in 0.27 ms against
//! 1.8 ms for RustCrypto's `rsa` (`bench/run`, docs/benchmarks.md).
//!
//! PKCS#1 v1.5 key transport must reject implicitly: a wrong key or a
//! tampered blob yields random bytes, never an error whose timing tells the
//! two apart (Bleichenbacher's attack and its timing variant, Marvin).
//! OpenSSL does so itself from 3.2 on; with an older libcrypto this module
//! does it over OpenSSL's raw RSA operation, the way OpenSSL 3.2 does
//! (draft-irtf-cfrg-rsa-guidance, "implicit rejection"), in constant time.

use as2_connector::crypto::rustcrypto::SoftwareKey;
use as2_connector::crypto::{
    CryptoError, DigestAlgorithm, KeyTransport, PrivateKey, SignatureScheme, SignedDigest,
};
use openssl::md::{Md, MdRef};
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::RsaPssSaltlen;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq, ConstantTimeLess};
use zeroize::Zeroizing;

/// The first OpenSSL release whose PKCS#1 v1.5 decryption rejects implicitly.
const IMPLICIT_REJECTION_SINCE: i64 = 0x3020_0000;

/// A station key: OpenSSL for its private-key operations, with the
/// RustCrypto key beside it for what OpenSSL cannot do safely here.
pub struct HostKey {
    openssl: PKey<Private>,
    software: SoftwareKey,
    /// SHA-256 of the private exponent: the secret behind the synthetic
    /// messages of implicit rejection.
    rejection_secret: Zeroizing<[u8; 32]>,
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
        let unreadable = |e: openssl::error::ErrorStack| {
            CryptoError::InvalidKey(format!("OpenSSL cannot read the key: {e}"))
        };
        let openssl = PKey::private_key_from_pkcs8(pkcs8).map_err(unreadable)?;
        let rsa = openssl.rsa().map_err(unreadable)?;
        let size = i32::try_from(rsa.size()).unwrap_or(i32::MAX);
        let exponent = Zeroizing::new(rsa.d().to_vec_padded(size).map_err(unreadable)?);
        let rejection_secret = Zeroizing::new(Sha256::digest(exponent.as_slice()).into());
        Ok(HostKey {
            openssl,
            software,
            rejection_secret,
        })
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
        if scheme == KeyTransport::RsaPkcs1v15 && !Self::openssl_rejects_implicitly() {
            return self.pkcs1v15_decrypt_rejecting_implicitly(encrypted_key);
        }
        self.decrypt(TransportPadding::of(scheme), encrypted_key)
            .map(|key| key.to_vec())
            .map_err(|_| CryptoError::Decryption)
    }
}

/// Minimum PKCS#1 v1.5 padding string (RFC 8017 §7.2.1: PS is at least 8 bytes).
const MIN_PADDING: usize = 8;

/// A key transport's padding as OpenSSL is told it, or none (raw RSA).
#[derive(Clone, Copy)]
enum TransportPadding {
    Raw,
    Pkcs1,
    /// OAEP with this hash and MGF1 with this digest.
    Oaep {
        hash: &'static MdRef,
        mgf: &'static MdRef,
    },
}

impl TransportPadding {
    fn of(scheme: KeyTransport) -> Self {
        match scheme {
            KeyTransport::RsaPkcs1v15 => TransportPadding::Pkcs1,
            KeyTransport::RsaOaep { hash, mgf } => TransportPadding::Oaep {
                hash: md(hash),
                mgf: md(mgf),
            },
        }
    }

    fn apply<T>(self, ctx: &mut PkeyCtx<T>) -> Result<(), openssl::error::ErrorStack> {
        match self {
            TransportPadding::Raw => ctx.set_rsa_padding(Padding::NONE),
            TransportPadding::Pkcs1 => ctx.set_rsa_padding(Padding::PKCS1),
            TransportPadding::Oaep { hash, mgf } => {
                ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
                ctx.set_rsa_oaep_md(hash)?;
                ctx.set_rsa_mgf1_md(mgf)
            }
        }
    }
}

impl HostKey {
    fn decrypt(
        &self,
        padding: TransportPadding,
        input: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, openssl::error::ErrorStack> {
        let mut ctx = PkeyCtx::new(&self.openssl)?;
        ctx.decrypt_init()?;
        padding.apply(&mut ctx)?;
        let mut output = Zeroizing::new(Vec::new());
        ctx.decrypt_to_vec(input, &mut output)?;
        Ok(output)
    }

    /// PKCS#1 v1.5 decryption (RFC 8017 §7.2.2) that answers a ciphertext
    /// whose padding is wrong with a synthetic message: pseudorandom, fixed
    /// for that key and ciphertext, of a pseudorandom length. Which of the
    /// two it returns is decided without a branch or an index on secret
    /// data.
    fn pkcs1v15_decrypt_rejecting_implicitly(
        &self,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let size = self.openssl.size();
        // Public facts about the ciphertext may fail openly.
        if size < 2 + MIN_PADDING + 1 || ciphertext.len() > size {
            return Err(CryptoError::Decryption);
        }
        let mut padded = vec![0u8; size - ciphertext.len()];
        padded.extend_from_slice(ciphertext);
        let encoded = self
            .decrypt(TransportPadding::Raw, &padded)
            .map_err(|_| CryptoError::Decryption)?;
        if encoded.len() != size {
            return Err(CryptoError::Decryption);
        }

        // The synthetic message and its length, from a key derived from the
        // secret and the ciphertext.
        let derivation = hmac_sha256(self.rejection_secret.as_slice(), &[&padded]);
        let candidates = prf(&derivation, b"length", 256);
        let synthetic = prf(&derivation, b"message", size);
        let max_length = u32::try_from(size - 2 - MIN_PADDING).unwrap_or(0);
        let mask = max_length.next_power_of_two() - 1;
        let mut synthetic_length = 0u32;
        for pair in candidates.chunks_exact(2) {
            let candidate = u32::from(u16::from_be_bytes([pair[0], pair[1]])) & mask;
            synthetic_length.conditional_assign(&candidate, candidate.ct_lt(&max_length));
        }

        // EM = 0x00 || 0x02 || PS (nonzero, ≥ 8 bytes) || 0x00 || M.
        let mut good = encoded[0].ct_eq(&0) & encoded[1].ct_eq(&2);
        let mut looking = subtle::Choice::from(1);
        let mut separator = 0u32;
        for (index, byte) in encoded.iter().enumerate().skip(2) {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let zero = byte.ct_eq(&0);
            separator.conditional_assign(&index, looking & zero);
            looking &= !zero;
        }
        good &= !looking;
        let first_message_byte = u32::try_from(2 + MIN_PADDING).unwrap_or(u32::MAX);
        good &= !separator.ct_lt(&first_message_byte);
        let size32 = u32::try_from(size).unwrap_or(u32::MAX);
        let real_length = size32.wrapping_sub(separator).wrapping_sub(1);

        let length = u32::conditional_select(&synthetic_length, &real_length, good);
        let mut chosen = Zeroizing::new(vec![0u8; size]);
        for ((out, real), fake) in chosen.iter_mut().zip(encoded.iter()).zip(synthetic.iter()) {
            *out = u8::conditional_select(fake, real, good);
        }
        let length = usize::try_from(length).unwrap_or(0).min(size);
        Ok(chosen[size - length..].to_vec())
    }
}

/// The largest RSA modulus accepted from a partner's certificate, so that a
/// hostile certificate cannot make each verification arbitrarily slow.
const MAX_PUBLIC_KEY_BITS: u32 = 16384;

/// How many partners' public keys [`public_key`] keeps parsed.
const PARSED_PUBLIC_KEYS: usize = 256;

/// The RSA public key in `subject_public_key_info`, parsed once and then
/// reused: OpenSSL 3's decoder takes about 0.2 ms per key on the project's
/// machine, five times the public-key operation itself, and every message
/// needs the partner's key once or twice.
fn public_key(subject_public_key_info: &[u8]) -> Result<PKey<openssl::pkey::Public>, CryptoError> {
    static PARSED: std::sync::Mutex<
        Option<std::collections::HashMap<Vec<u8>, PKey<openssl::pkey::Public>>>,
    > = std::sync::Mutex::new(None);
    let mut parsed = PARSED.lock().unwrap_or_else(|e| e.into_inner());
    let parsed = parsed.get_or_insert_with(Default::default);
    if let Some(key) = parsed.get(subject_public_key_info) {
        return Ok(key.clone());
    }
    let key = parse_public_key(subject_public_key_info)?;
    if parsed.len() >= PARSED_PUBLIC_KEYS {
        parsed.clear();
    }
    parsed.insert(subject_public_key_info.to_vec(), key.clone());
    Ok(key)
}

fn parse_public_key(
    subject_public_key_info: &[u8],
) -> Result<PKey<openssl::pkey::Public>, CryptoError> {
    let key = PKey::public_key_from_der(subject_public_key_info)
        .map_err(|e| CryptoError::InvalidKey(format!("not an RSA public key: {e}")))?;
    if key.id() != openssl::pkey::Id::RSA {
        return Err(CryptoError::InvalidKey("not an RSA public key".into()));
    }
    if key.bits() > MAX_PUBLIC_KEY_BITS {
        return Err(CryptoError::InvalidKey(format!(
            "an RSA key of {} bits is larger than the {MAX_PUBLIC_KEY_BITS} accepted",
            key.bits()
        )));
    }
    Ok(key)
}

/// Encrypts `data` (a content-encryption key) to the RSA public key in
/// `subject_public_key_info`, with OpenSSL.
pub fn rsa_encrypt(
    subject_public_key_info: &[u8],
    scheme: KeyTransport,
    data: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let key = public_key(subject_public_key_info)?;
    let encrypt = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let mut ctx = PkeyCtx::new(&key)?;
        ctx.encrypt_init()?;
        TransportPadding::of(scheme).apply(&mut ctx)?;
        let mut out = Vec::new();
        ctx.encrypt_to_vec(data, &mut out)?;
        Ok(out)
    };
    encrypt().map_err(|e| CryptoError::InvalidKey(format!("RSA encryption failed: {e}")))
}

/// Verifies an RSA `signature` over a precomputed `digest`, with OpenSSL;
/// PSS with MGF1 of the same digest and any salt length. `false` when the
/// signature does not match, an error only when the key is unusable.
pub fn rsa_verify(spki: &[u8], signed: SignedDigest<'_>) -> Result<bool, CryptoError> {
    let key = public_key(spki)?;
    if !signed.digest_has_its_length() {
        return Ok(false);
    }
    let verify = || -> Result<bool, openssl::error::ErrorStack> {
        let mut ctx = PkeyCtx::new(&key)?;
        ctx.verify_init()?;
        match signed.scheme {
            SignatureScheme::RsaPkcs1v15 => ctx.set_rsa_padding(Padding::PKCS1)?,
            SignatureScheme::RsaPss => {
                ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
                // On verification, "maximum" means: take the salt length the signature has.
                ctx.set_rsa_pss_saltlen(RsaPssSaltlen::MAXIMUM_LENGTH)?;
                ctx.set_rsa_mgf1_md(md(signed.algorithm))?;
            }
        }
        ctx.set_signature_md(md(signed.algorithm))?;
        ctx.verify(signed.digest, signed.signature)
    };
    // A malformed signature (wrong length, say) is a signature that does not verify.
    Ok(verify().unwrap_or(false))
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `length` pseudorandom bytes: HMAC-SHA256(key, counter ‖ label ‖ bits)
/// for counter 0, 1, …, concatenated (the PRF of implicit rejection).
fn prf(key: &[u8; 32], label: &[u8], length: usize) -> Zeroizing<Vec<u8>> {
    let bits = u16::try_from(length * 8).unwrap_or(u16::MAX).to_be_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(length + 32));
    let mut counter = 0u16;
    while out.len() < length {
        out.extend_from_slice(&hmac_sha256(key, &[&counter.to_be_bytes(), label, &bits]));
        counter = counter.wrapping_add(1);
    }
    out.truncate(length);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key transport, and a hash and MGF1 digest that differ.
    const TRANSPORTS: [KeyTransport; 7] = [
        KeyTransport::RsaPkcs1v15,
        KeyTransport::oaep(DigestAlgorithm::Sha1),
        KeyTransport::oaep(DigestAlgorithm::Sha224),
        KeyTransport::oaep(DigestAlgorithm::Sha256),
        KeyTransport::oaep(DigestAlgorithm::Sha384),
        KeyTransport::oaep(DigestAlgorithm::Sha512),
        KeyTransport::RsaOaep {
            hash: DigestAlgorithm::Sha256,
            mgf: DigestAlgorithm::Sha1,
        },
    ];

    fn signed<'a>(
        scheme: SignatureScheme,
        algorithm: DigestAlgorithm,
        digest: &'a [u8],
        signature: &'a [u8],
    ) -> SignedDigest<'a> {
        SignedDigest {
            scheme,
            algorithm,
            digest,
            signature,
        }
    }
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
                        .rsa_verify(&spki, signed(scheme, algorithm, &digest, &signature))
                        .unwrap(),
                    "{scheme:?} {algorithm:?}"
                );
                let other = provider.digest(algorithm, b"other attributes");
                assert!(
                    !provider
                        .rsa_verify(&spki, signed(scheme, algorithm, &other, &signature))
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
        for scheme in TRANSPORTS {
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

    /// `encoded` (k bytes, an EM of our choosing) encrypted with the raw
    /// public RSA operation, so the padding check can be fed any shape.
    fn raw_ciphertext(key: &HostKey, encoded: &[u8]) -> Vec<u8> {
        let rsa = key.openssl.rsa().unwrap();
        let mut out = vec![0u8; usize::try_from(rsa.size()).unwrap()];
        let n = rsa
            .public_encrypt(encoded, &mut out, Padding::NONE)
            .unwrap();
        out.truncate(n);
        out
    }

    fn encoded_message(size: usize, block_type: u8, padding_len: usize, message: &[u8]) -> Vec<u8> {
        let mut em = vec![0u8, block_type];
        em.extend(std::iter::repeat_n(0xa5u8, padding_len));
        em.push(0);
        em.extend_from_slice(message);
        // Extend the padding string up front to fill the modulus size.
        let missing = size - em.len();
        em.splice(2..2, std::iter::repeat_n(0x3cu8, missing));
        em
    }

    #[test]
    fn implicit_rejection_takes_only_well_formed_padding_and_answers_the_rest_with_a_fixed_synthetic_message()
     {
        let (key, _) = key();
        let size = key.openssl.size();
        let message = [0x42u8; 32];
        let decrypt = |ciphertext: &[u8]| {
            key.pkcs1v15_decrypt_rejecting_implicitly(ciphertext)
                .unwrap()
        };

        // Well formed, with the shortest padding string allowed (8 bytes): the message.
        let mut shortest = vec![0u8, 2];
        shortest.extend(std::iter::repeat_n(0x11u8, size - 3 - message.len()));
        shortest.push(0);
        shortest.extend_from_slice(&message);
        assert_eq!(decrypt(&raw_ciphertext(&key, &shortest)), message);
        let mut eight = vec![0u8, 2];
        eight.extend([0x11u8; 8]);
        eight.push(0);
        eight.extend(std::iter::repeat_n(0x42u8, size - 11));
        assert_eq!(
            decrypt(&raw_ciphertext(&key, &eight)),
            vec![0x42u8; size - 11]
        );

        // Malformed: block type 1, a first byte not zero, a padding string of
        // 7 bytes, no separator at all. Each answer is not the message, is the
        // same every time, and is no longer than a message could be.
        let mut seven = vec![0u8, 2];
        seven.extend([0x11u8; 7]);
        seven.push(0);
        seven.extend(std::iter::repeat_n(0x42u8, size - 10));
        let mut no_separator = vec![0u8, 2];
        no_separator.extend(std::iter::repeat_n(0x11u8, size - 2));
        let mut first_not_zero = encoded_message(size, 2, 8, &message);
        first_not_zero[0] = 1;
        let mut answers = Vec::new();
        for bad in [
            encoded_message(size, 1, 8, &message),
            first_not_zero,
            seven,
            no_separator,
        ] {
            let ciphertext = raw_ciphertext(&key, &bad);
            let answer = decrypt(&ciphertext);
            assert_ne!(answer.as_slice(), &message[..]);
            assert!(!answer.ends_with(&message));
            assert_eq!(decrypt(&ciphertext), answer, "deterministic");
            assert!(answer.len() < size - 2 - MIN_PADDING);
            answers.push(answer);
        }
        answers.sort();
        answers.dedup();
        assert_eq!(
            answers.len(),
            4,
            "each ciphertext its own synthetic message"
        );

        // Agrees with OpenSSL's own PKCS#1 v1.5 decryption where that succeeds.
        let provider = RustCryptoProvider;
        let blob = provider
            .rsa_encrypt(
                &key.public_key_der().unwrap(),
                KeyTransport::RsaPkcs1v15,
                &message,
            )
            .unwrap();
        assert_eq!(decrypt(&blob), message);
        assert_eq!(
            key.decrypt(TransportPadding::Pkcs1, &blob)
                .unwrap()
                .as_slice(),
            &message[..]
        );
        // A ciphertext longer than the modulus fails openly (public information).
        assert!(
            key.pkcs1v15_decrypt_rejecting_implicitly(&vec![1u8; size + 1])
                .is_err()
        );
    }

    #[test]
    fn public_key_operations_agree_with_rustcrypto() {
        let generated =
            generate_station_key("T", SystemTime::now(), Duration::from_secs(3600)).unwrap();
        let software = &generated.key;
        let spki = software.public_key_der().unwrap();
        let provider = RustCryptoProvider;
        for scheme in TRANSPORTS {
            let blob = rsa_encrypt(&spki, scheme, &[3u8; 24]).unwrap();
            assert_eq!(software.decrypt_key(scheme, &blob).unwrap(), [3u8; 24]);
        }
        for scheme in [SignatureScheme::RsaPkcs1v15, SignatureScheme::RsaPss] {
            for algorithm in [
                DigestAlgorithm::Sha1,
                DigestAlgorithm::Sha256,
                DigestAlgorithm::Sha512,
            ] {
                let digest = provider.digest(algorithm, b"attributes");
                let signature = software.sign_digest(scheme, algorithm, &digest).unwrap();
                assert!(rsa_verify(&spki, signed(scheme, algorithm, &digest, &signature)).unwrap());
                let other = provider.digest(algorithm, b"altered");
                assert!(!rsa_verify(&spki, signed(scheme, algorithm, &other, &signature)).unwrap());
                // Cut at the end: a signature whose first byte is zero (1 in
                // 256) is the same number without it, and may verify.
                let cut = &signature[..signature.len() - 1];
                assert!(!rsa_verify(&spki, signed(scheme, algorithm, &digest, cut)).unwrap());
            }
        }
        assert!(matches!(
            rsa_verify(
                b"not a key",
                signed(
                    SignatureScheme::RsaPkcs1v15,
                    DigestAlgorithm::Sha256,
                    &[0; 32],
                    &[0; 256]
                )
            ),
            Err(CryptoError::InvalidKey(_))
        ));
    }
}

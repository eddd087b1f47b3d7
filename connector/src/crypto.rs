//! The cryptography the engine needs, behind traits.
//!
//! As rustls does with its `CryptoProvider`, the engine never calls a crypto
//! library directly. Natively, [`rustcrypto`] implements these traits with
//! RustCrypto; inside the WebAssembly component they are the host's
//! `primitives` and `keystore` imports, so bulk work runs at native speed and
//! private keys never enter the component.

use der::oid::ObjectIdentifier;

#[cfg(feature = "rustcrypto")]
mod gcm;
#[cfg(feature = "rustcrypto")]
pub mod rustcrypto;

/// Why a cryptographic operation failed. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The algorithm is known to the engine but the provider cannot run it.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// A key, IV or public key has the wrong size or does not parse.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Decryption failed: wrong key, or the ciphertext was changed.
    #[error("decryption failed (wrong key, or the content was altered)")]
    Decryption,
    /// The key store refused or failed the operation.
    #[error("key store: {0}")]
    KeyStore(String),
}

/// Message digest algorithms (RFC 5751 §3.4.3.2, RFC 5754).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// SHA-1 (legacy partners).
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    /// Every algorithm, strongest last.
    pub const ALL: [DigestAlgorithm; 5] = [
        DigestAlgorithm::Sha1,
        DigestAlgorithm::Sha224,
        DigestAlgorithm::Sha256,
        DigestAlgorithm::Sha384,
        DigestAlgorithm::Sha512,
    ];

    /// The digest's object identifier (RFC 5754 §2).
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            DigestAlgorithm::Sha1 => oids::SHA1,
            DigestAlgorithm::Sha224 => oids::SHA224,
            DigestAlgorithm::Sha256 => oids::SHA256,
            DigestAlgorithm::Sha384 => oids::SHA384,
            DigestAlgorithm::Sha512 => oids::SHA512,
        }
    }

    /// The algorithm with this digest OID.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.oid() == *oid)
    }

    /// The `sha*WithRSAEncryption` OID (RFC 4055 §5).
    pub fn rsa_signature_oid(self) -> ObjectIdentifier {
        match self {
            DigestAlgorithm::Sha1 => oids::SHA1_WITH_RSA,
            DigestAlgorithm::Sha224 => oids::SHA224_WITH_RSA,
            DigestAlgorithm::Sha256 => oids::SHA256_WITH_RSA,
            DigestAlgorithm::Sha384 => oids::SHA384_WITH_RSA,
            DigestAlgorithm::Sha512 => oids::SHA512_WITH_RSA,
        }
    }

    /// The algorithm of a `sha*WithRSAEncryption` OID.
    pub fn from_rsa_signature_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.rsa_signature_oid() == *oid)
    }

    /// The RFC 5751 `micalg` name, e.g. `sha-256`.
    pub fn micalg(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha1 => "sha-1",
            DigestAlgorithm::Sha224 => "sha-224",
            DigestAlgorithm::Sha256 => "sha-256",
            DigestAlgorithm::Sha384 => "sha-384",
            DigestAlgorithm::Sha512 => "sha-512",
        }
    }

    /// Parses any spelling partners use for a micalg: `sha-256` (RFC 5751),
    /// `sha256` (RFC 3851), `SHA256`, `sha_256`, `sha2_256`, case-insensitively.
    pub fn from_micalg(name: &str) -> Option<Self> {
        let squashed = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        let bits = squashed
            .strip_prefix("sha2")
            .filter(|bits| bits.len() == 3)
            .or_else(|| squashed.strip_prefix("sha"))?;
        match bits {
            "1" => Some(DigestAlgorithm::Sha1),
            "224" => Some(DigestAlgorithm::Sha224),
            "256" => Some(DigestAlgorithm::Sha256),
            "384" => Some(DigestAlgorithm::Sha384),
            "512" => Some(DigestAlgorithm::Sha512),
            _ => None,
        }
    }

    /// Length of the digest in bytes.
    pub fn output_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha1 => 20,
            DigestAlgorithm::Sha224 => 28,
            DigestAlgorithm::Sha256 => 32,
            DigestAlgorithm::Sha384 => 48,
            DigestAlgorithm::Sha512 => 64,
        }
    }
}

/// RSA signature schemes (RFC 8017 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1v15,
    /// RSASSA-PSS, MGF1 with the same digest, salt length = digest length.
    RsaPss,
}

/// RSA key transport schemes (RFC 8017 §7, RFC 3560).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyTransport {
    /// RSAES-PKCS1-v1_5.
    RsaPkcs1v15,
    /// RSAES-OAEP with an empty label (RFC 8017 §7.1; its CMS parameters
    /// RFC 4055 §4.1).
    RsaOaep {
        /// The hash of the label.
        hash: DigestAlgorithm,
        /// The digest MGF1 uses; most stacks take the same as `hash`, some
        /// keep SHA-1 here whatever the hash.
        mgf: DigestAlgorithm,
    },
}

impl KeyTransport {
    /// RSAES-OAEP with `digest` both as the hash and in MGF1.
    pub const fn oaep(digest: DigestAlgorithm) -> Self {
        KeyTransport::RsaOaep {
            hash: digest,
            mgf: digest,
        }
    }
}

/// Content-encryption algorithms in CBC mode (RFC 3565, RFC 3370 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentCipher {
    /// AES-128-CBC.
    Aes128Cbc,
    /// AES-192-CBC.
    Aes192Cbc,
    /// AES-256-CBC.
    Aes256Cbc,
    /// DES-EDE3-CBC (3DES).
    DesEde3Cbc,
    /// RC2-CBC with this effective key length in bits (RFC 2268). Legacy
    /// partners only, and only to decrypt: never offered for sending.
    Rc2Cbc {
        /// Effective key bits: 40, 64 or 128.
        effective_bits: u16,
    },
}

impl ContentCipher {
    const ALL: [ContentCipher; 4] = [
        ContentCipher::Aes128Cbc,
        ContentCipher::Aes192Cbc,
        ContentCipher::Aes256Cbc,
        ContentCipher::DesEde3Cbc,
    ];

    /// The algorithm's object identifier.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            ContentCipher::Aes128Cbc => oids::AES128_CBC,
            ContentCipher::Aes192Cbc => oids::AES192_CBC,
            ContentCipher::Aes256Cbc => oids::AES256_CBC,
            ContentCipher::DesEde3Cbc => oids::DES_EDE3_CBC,
            ContentCipher::Rc2Cbc { .. } => oids::RC2_CBC,
        }
    }

    /// The algorithm with this OID (RC2 needs its parameters: see `smime`).
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.oid() == *oid)
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            ContentCipher::Aes128Cbc => 16,
            ContentCipher::Aes192Cbc | ContentCipher::DesEde3Cbc => 24,
            ContentCipher::Aes256Cbc => 32,
            ContentCipher::Rc2Cbc { effective_bits } => usize::from(effective_bits.div_ceil(8)),
        }
    }

    /// Block (and IV) length in bytes.
    pub fn block_len(self) -> usize {
        match self {
            ContentCipher::DesEde3Cbc | ContentCipher::Rc2Cbc { .. } => 8,
            _ => 16,
        }
    }
}

/// AES-GCM content encryption in AuthEnvelopedData (RFC 5083, RFC 5084).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AeadCipher {
    /// AES-128-GCM.
    Aes128Gcm,
    /// AES-192-GCM.
    Aes192Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
}

impl AeadCipher {
    const ALL: [AeadCipher; 3] = [
        AeadCipher::Aes128Gcm,
        AeadCipher::Aes192Gcm,
        AeadCipher::Aes256Gcm,
    ];

    /// The algorithm's object identifier.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            AeadCipher::Aes128Gcm => oids::AES128_GCM,
            AeadCipher::Aes192Gcm => oids::AES192_GCM,
            AeadCipher::Aes256Gcm => oids::AES256_GCM,
        }
    }

    /// The algorithm with this OID.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.oid() == *oid)
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            AeadCipher::Aes128Gcm => 16,
            AeadCipher::Aes192Gcm => 24,
            AeadCipher::Aes256Gcm => 32,
        }
    }
}

/// GCM nonce length used when sending (RFC 5084 §3.2 recommends 12).
pub const GCM_NONCE_LEN: usize = 12;
/// GCM tag length used when sending (RFC 5084 §3.2: 12 to 16; 16 is the default everywhere).
pub const GCM_TAG_LEN: usize = 16;

/// Whether a cipher encrypts or decrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Encrypt; CBC then PKCS#7-pads at the end, GCM makes the tag.
    Encrypt,
    /// Decrypt; CBC then checks and strips the PKCS#7 padding, GCM checks the tag.
    Decrypt,
}

/// A running digest.
pub trait Hasher {
    /// Feeds more bytes.
    fn update(&mut self, data: &[u8]);
    /// The digest of everything fed.
    fn finish(self: Box<Self>) -> Vec<u8>;
}

/// A streaming CBC cipher with PKCS#7 padding (RFC 5652 §6.3).
pub trait Cipher {
    /// Processes whole blocks and returns their output; keeps the rest.
    fn update(&mut self, data: &[u8]) -> Vec<u8>;
    /// Pads or unpads and returns the last output.
    fn finish(self: Box<Self>) -> Result<Vec<u8>, CryptoError>;
}

/// AES-GCM a piece at a time (NIST SP 800-38D §7), for content too large
/// to seal or open in one buffer.
///
/// Opening hands out plaintext before the tag is checked: what it gave
/// must not be used (delivered, parsed into a verdict) until
/// [`Aead::open_finish`] has said the tag matches.
pub trait Aead {
    /// Encrypts or decrypts more bytes; the output is as long as the input.
    fn update(&mut self, data: &[u8]) -> Vec<u8>;
    /// Sealing: the tag over everything processed.
    fn seal_finish(self: Box<Self>) -> Result<Vec<u8>, CryptoError>;
    /// Opening: [`CryptoError::Decryption`] unless `tag` is the content's.
    fn open_finish(self: Box<Self>, tag: &[u8]) -> Result<(), CryptoError>;
}

/// A digest and the RSA signature said to be over it (RFC 8017 §8), to verify.
#[derive(Debug, Clone, Copy)]
pub struct SignedDigest<'a> {
    /// PKCS #1 v1.5 or PSS (with MGF1 of the same digest, any salt length).
    pub scheme: SignatureScheme,
    /// The digest algorithm, also the one the signature names.
    pub algorithm: DigestAlgorithm,
    /// The precomputed digest.
    pub digest: &'a [u8],
    /// The signature value.
    pub signature: &'a [u8],
}

impl SignedDigest<'_> {
    /// Whether the digest is as long as its algorithm's output: a digest that
    /// is not cannot be the one signed, so it does not verify.
    pub fn digest_has_its_length(&self) -> bool {
        self.digest.len() == self.algorithm.output_len()
    }
}

/// A CBC cipher set up for one direction (RFC 5652 §6.3 content encryption).
#[derive(Debug, Clone, Copy)]
pub struct Cbc<'a> {
    /// The block cipher.
    pub cipher: ContentCipher,
    /// Encrypt or decrypt.
    pub direction: Direction,
    /// The content-encryption key.
    pub key: &'a [u8],
    /// The initialization vector, the algorithm's parameters in CMS.
    pub iv: &'a [u8],
}

/// The inputs of one AES-GCM operation (NIST SP 800-38D; in CMS, RFC 5084).
#[derive(Debug, Clone, Copy)]
pub struct Gcm<'a> {
    /// AES-128, -192 or -256.
    pub cipher: AeadCipher,
    /// The content-encryption key.
    pub key: &'a [u8],
    /// The nonce (IV), the GCM parameters' `aes-nonce`.
    pub nonce: &'a [u8],
    /// Additional authenticated data (empty for CMS without authenticated attributes).
    pub aad: &'a [u8],
    /// The tag's length in bytes, the GCM parameters' `aes-ICVlen` (RFC 5084
    /// §3.2: 12 to 16).
    pub tag_len: usize,
}

impl Gcm<'_> {
    /// Refuses a tag length other than [`GCM_TAG_LEN`], for the
    /// implementations that have only that one.
    pub fn require_full_tag(&self) -> Result<(), CryptoError> {
        if self.tag_len == GCM_TAG_LEN {
            Ok(())
        } else {
            Err(CryptoError::UnsupportedAlgorithm(format!(
                "AES-GCM with a {}-byte tag",
                self.tag_len
            )))
        }
    }
}

/// Public-key and bulk primitives.
pub trait CryptoProvider {
    /// Starts a digest.
    fn hasher(&self, algorithm: DigestAlgorithm) -> Box<dyn Hasher + Send>;

    /// Starts a cipher.
    fn cipher(&self, cbc: Cbc<'_>) -> Result<Box<dyn Cipher + Send>, CryptoError>;

    /// Encrypts a content-encryption key to an RSA public key (DER SubjectPublicKeyInfo).
    fn rsa_encrypt(
        &self,
        subject_public_key_info: &[u8],
        scheme: KeyTransport,
        data: &[u8],
    ) -> Result<Vec<u8>, CryptoError>;

    /// Verifies an RSA signature over a digest with the public key `spki`
    /// (DER SubjectPublicKeyInfo): `Ok(false)` when it does not match.
    fn rsa_verify(&self, spki: &[u8], signed: SignedDigest<'_>) -> Result<bool, CryptoError>;

    /// Starts AES-GCM sealing or opening a piece at a time.
    fn aead(&self, gcm: Gcm<'_>, direction: Direction)
    -> Result<Box<dyn Aead + Send>, CryptoError>;

    /// AES-GCM encryption of one buffer: returns ciphertext followed by the tag.
    fn aead_seal(&self, gcm: Gcm<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut sealing = self.aead(gcm, Direction::Encrypt)?;
        let mut sealed = sealing.update(plaintext);
        sealed.extend(sealing.seal_finish()?);
        Ok(sealed)
    }

    /// AES-GCM decryption of one buffer, ciphertext followed by its tag:
    /// [`CryptoError::Decryption`] when the tag does not match.
    fn aead_open(&self, gcm: Gcm<'_>, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (ciphertext, tag) = sealed.split_at(sealed.len().saturating_sub(gcm.tag_len));
        let mut opening = self.aead(gcm, Direction::Decrypt)?;
        let plain = opening.update(ciphertext);
        opening.open_finish(tag)?;
        Ok(plain)
    }

    /// Starts a zlib compression (RFC 1950); by default miniz_oxide in
    /// this process, which a host may replace with a faster one.
    fn deflater(&self) -> Box<dyn crate::compress::Deflater + Send> {
        Box::new(crate::compress::Zlib::default())
    }

    /// Fills `buf` with cryptographically secure random bytes.
    fn fill_random(&self, buf: &mut [u8]);

    /// Digest of one buffer.
    fn digest(&self, algorithm: DigestAlgorithm, data: &[u8]) -> Vec<u8> {
        let mut hasher = self.hasher(algorithm);
        hasher.update(data);
        hasher.finish()
    }

    /// Encrypts or decrypts one buffer.
    fn cipher_all(&self, cbc: Cbc<'_>, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut cipher = self.cipher(cbc)?;
        let mut out = cipher.update(data);
        out.extend(cipher.finish()?);
        Ok(out)
    }
}

/// A private key the engine can use but not read: the station's key in the
/// host's key store, reached through a handle.
pub trait PrivateKey {
    /// The DER certificate paired with the key.
    fn certificate_der(&self) -> Vec<u8>;

    /// Signs a precomputed digest.
    fn sign_digest(
        &self,
        scheme: SignatureScheme,
        algorithm: DigestAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, CryptoError>;

    /// Decrypts a key-transport blob and returns the content-encryption key.
    fn decrypt_key(
        &self,
        scheme: KeyTransport,
        encrypted_key: &[u8],
    ) -> Result<Vec<u8>, CryptoError>;
}

/// Object identifiers used by AS2's CMS profile.
pub mod oids {
    use der::oid::ObjectIdentifier;

    /// id-data (RFC 5652 §4).
    pub const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
    /// id-signedData (RFC 5652 §5).
    pub const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
    /// id-envelopedData (RFC 5652 §6).
    pub const ENVELOPED_DATA: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
    /// id-contentType attribute (RFC 5652 §11.1).
    pub const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
    /// id-messageDigest attribute (RFC 5652 §11.2).
    pub const MESSAGE_DIGEST: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
    /// id-signingTime attribute (RFC 5652 §11.3).
    pub const SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
    /// rsaEncryption (RFC 8017 Appendix C).
    pub const RSA_ENCRYPTION: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    /// id-RSAES-OAEP.
    pub const RSAES_OAEP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.7");
    /// id-RSASSA-PSS.
    pub const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
    /// sha1WithRSAEncryption.
    pub const SHA1_WITH_RSA: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
    /// sha224WithRSAEncryption.
    pub const SHA224_WITH_RSA: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.14");
    /// sha256WithRSAEncryption.
    pub const SHA256_WITH_RSA: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
    /// sha384WithRSAEncryption.
    pub const SHA384_WITH_RSA: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
    /// sha512WithRSAEncryption.
    pub const SHA512_WITH_RSA: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
    /// id-sha1.
    pub const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
    /// id-sha224.
    pub const SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.4");
    /// id-sha256.
    pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
    /// id-sha384.
    pub const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
    /// id-sha512.
    pub const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
    /// id-aes128-CBC.
    pub const AES128_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.2");
    /// id-aes192-CBC.
    pub const AES192_CBC: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.22");
    /// id-aes256-CBC.
    pub const AES256_CBC: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");
    /// des-ede3-cbc.
    pub const DES_EDE3_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.3.7");
    /// rc2-cbc (RFC 3370 §5.2).
    pub const RC2_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.3.2");
    /// id-aes128-GCM (RFC 5084).
    pub const AES128_GCM: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.6");
    /// id-aes192-GCM.
    pub const AES192_GCM: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.26");
    /// id-aes256-GCM.
    pub const AES256_GCM: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.46");
    /// id-ct-authEnvelopedData (RFC 5083).
    pub const AUTH_ENVELOPED_DATA: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.23");
    /// id-ct-compressedData (RFC 3274).
    pub const COMPRESSED_DATA: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.9");
    /// id-alg-zlibCompress (RFC 3274).
    pub const ZLIB: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.3.8");
    /// id-mgf1 (RFC 8017).
    pub const MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
    /// id-pSpecified (RFC 8017).
    pub const P_SPECIFIED: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.9");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micalg_spellings_partners_use_all_parse() {
        for spelling in [
            "sha-256",
            "sha256",
            "SHA256",
            "sha_256",
            "sha2_256",
            " Sha-256 ",
        ] {
            assert_eq!(
                DigestAlgorithm::from_micalg(spelling),
                Some(DigestAlgorithm::Sha256),
                "{spelling}"
            );
        }
        assert_eq!(
            DigestAlgorithm::from_micalg("sha1"),
            Some(DigestAlgorithm::Sha1)
        );
        assert_eq!(
            DigestAlgorithm::from_micalg("SHA-1"),
            Some(DigestAlgorithm::Sha1)
        );
        assert_eq!(DigestAlgorithm::from_micalg("md5"), None);
        assert_eq!(
            DigestAlgorithm::from_micalg("sha2_512"),
            Some(DigestAlgorithm::Sha512)
        );
    }
}

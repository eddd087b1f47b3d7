//! S/MIME's CMS layer (RFC 5652, RFC 5751): detached signatures and
//! key-transport envelopes, with every primitive going through the provider
//! and every private-key operation through a key handle.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{OctetString, SetOfVec, UtcTime};
use der::{Any, Decode, Encode, EncodingRules, Tagged};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use crate::crypto::{
    ContentCipher, CryptoProvider, DigestAlgorithm, Direction, KeyTransport, PrivateKey,
    SignatureScheme, oids,
};
use crate::error::Error;

/// A parsed X.509 certificate with the facts the engine needs.
#[derive(Debug, Clone)]
pub struct Cert {
    inner: Certificate,
}

impl Cert {
    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        Certificate::from_der(der)
            .map(|inner| Cert { inner })
            .map_err(|e| Error::malformed(format!("not an X.509 certificate: {e}")))
    }

    /// Parses the first certificate of a PEM text.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        use der::DecodePem;
        Certificate::from_pem(pem.trim().as_bytes())
            .map(|inner| Cert { inner })
            .map_err(|e| Error::malformed(format!("not a PEM X.509 certificate: {e}")))
    }

    /// The DER encoding.
    pub fn to_der(&self) -> Result<Vec<u8>, Error> {
        Ok(self.inner.to_der()?)
    }

    /// The subject, in RFC 4514 form.
    pub fn subject(&self) -> String {
        self.inner.tbs_certificate().subject().to_string()
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> Result<Vec<u8>, Error> {
        Ok(self
            .inner
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()?)
    }

    fn issuer_and_serial(&self) -> IssuerAndSerialNumber {
        let tbs = self.inner.tbs_certificate();
        IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        }
    }

    fn subject_key_id(&self) -> Option<SubjectKeyIdentifier> {
        self.inner
            .tbs_certificate()
            .get_extension::<SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .map(|(_, ski)| ski)
    }

    /// Whether a CMS signer or recipient identifier names this certificate:
    /// by issuer and serial number, or by subjectKeyIdentifier (RFC 5652 §5.3).
    fn is_identified_by(
        &self,
        issuer_serial: Option<&IssuerAndSerialNumber>,
        ski: Option<&SubjectKeyIdentifier>,
    ) -> bool {
        match (issuer_serial, ski) {
            (Some(ias), _) => *ias == self.issuer_and_serial(),
            (None, Some(ski)) => self.subject_key_id().as_ref() == Some(ski),
            (None, None) => false,
        }
    }

    /// Seconds since the epoch of notBefore and notAfter.
    pub fn validity(&self) -> (Duration, Duration) {
        let validity = self.inner.tbs_certificate().validity();
        (
            validity.not_before.to_unix_duration(),
            validity.not_after.to_unix_duration(),
        )
    }

    /// Fails with [`Error::CertificateExpired`] or [`Error::CertificateNotYetValid`]
    /// when `now` is outside the validity period (RFC 5280 §4.1.2.5).
    pub fn check_validity(&self, now: SystemTime, role: &str) -> Result<(), Error> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let (not_before, not_after) = self.validity();
        let validity = self.inner.tbs_certificate().validity();
        if now > not_after {
            return Err(Error::CertificateExpired(format!(
                "the {role} certificate ({}) expired on {}; install a renewed certificate",
                self.subject(),
                validity.not_after
            )));
        }
        if now < not_before {
            return Err(Error::CertificateNotYetValid(format!(
                "the {role} certificate ({}) is valid only from {}",
                self.subject(),
                validity.not_before
            )));
        }
        Ok(())
    }
}

fn algorithm(oid: der::oid::ObjectIdentifier, parameters: Option<Any>) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid, parameters }
}

fn attribute(oid: der::oid::ObjectIdentifier, value: Any) -> Result<Attribute, Error> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

/// Signs `content` with a detached CMS SignedData (RFC 5652 §5, RFC 5751
/// §3.4.3): signed attributes contentType, signingTime and messageDigest,
/// RSA PKCS#1 v1.5, the signer identified by issuer and serial number (which
/// every AS2 stack matches, where subjectKeyIdentifier is not), and the
/// signer's certificate included. Returns the DER ContentInfo.
pub fn sign_detached(
    content: &[u8],
    signer: &dyn PrivateKey,
    digest_algorithm: DigestAlgorithm,
    now: SystemTime,
    provider: &dyn CryptoProvider,
) -> Result<Vec<u8>, Error> {
    let cert_der = signer.certificate_der();
    let cert = Certificate::from_der(&cert_der)
        .map_err(|e| Error::KeyStore(format!("the station certificate does not parse: {e}")))?;
    let signer_cert = Cert {
        inner: cert.clone(),
    };
    let message_digest = provider.digest(digest_algorithm, content);
    let signing_time =
        UtcTime::from_unix_duration(now.duration_since(UNIX_EPOCH).unwrap_or_default())?;
    let signed_attrs = SetOfVec::try_from(vec![
        attribute(oids::CONTENT_TYPE, Any::encode_from(&oids::DATA)?)?,
        attribute(oids::SIGNING_TIME, Any::encode_from(&signing_time)?)?,
        attribute(
            oids::MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(message_digest)?)?,
        )?,
    ])?;
    // RFC 5652 §5.4: the signature covers the DER encoding of the SET OF attributes.
    let attrs_digest = provider.digest(digest_algorithm, &signed_attrs.to_der()?);
    let signature = signer.sign_digest(
        SignatureScheme::RsaPkcs1v15,
        digest_algorithm,
        &attrs_digest,
    )?;

    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(signer_cert.issuer_and_serial()),
        digest_alg: algorithm(digest_algorithm.oid(), None),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: algorithm(oids::RSA_ENCRYPTION, Some(Any::null())),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![algorithm(digest_algorithm.oid(), None)])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oids::DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(vec![
            cms::cert::CertificateChoices::Certificate(cert),
        ])?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    };
    Ok(ContentInfo {
        content_type: oids::SIGNED_DATA,
        content: Any::encode_from(&signed_data)?,
    }
    .to_der()?)
}

/// What a verified signature tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// The digest algorithm the signer used: the MIC algorithm to report.
    pub digest_algorithm: DigestAlgorithm,
    /// The digest of the signed content.
    pub content_digest: Vec<u8>,
}

fn decode_content_info(
    der: &[u8],
    expected: der::oid::ObjectIdentifier,
    what: &str,
) -> Result<Any, Error> {
    let info = ContentInfo::from_ber(der)
        .map_err(|e| Error::malformed(format!("the {what} is not a CMS ContentInfo: {e}")))?;
    if info.content_type != expected {
        return Err(Error::malformed(format!(
            "the {what} holds CMS content type {}, expected {expected}",
            info.content_type
        )));
    }
    Ok(info.content)
}

/// Verifies a detached CMS signature over `content` with the partner's
/// certificate (RFC 5652 §5.6). The content is hashed exactly as given: the
/// caller passes the bytes as received, never a re-serialization.
///
/// A signer other than `partner` yields [`Error::Authentication`]; content
/// that does not match the signed digest yields [`Error::Integrity`].
pub fn verify_detached(
    signature_der: &[u8],
    content: &[u8],
    partner: &Cert,
    provider: &dyn CryptoProvider,
) -> Result<VerifiedSignature, Error> {
    let signed_data: SignedData =
        decode_content_info(signature_der, oids::SIGNED_DATA, "signature")?
            .decode_as_encoding(EncodingRules::Ber)
            .map_err(|e| Error::malformed(format!("invalid SignedData: {e}")))?;
    let signer = signed_data
        .signer_infos
        .0
        .iter()
        .find(|info| match &info.sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => {
                partner.is_identified_by(Some(ias), None)
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                partner.is_identified_by(None, Some(ski))
            }
        })
        .ok_or_else(|| {
            Error::Authentication(format!(
                "the message is not signed by the partner's certificate ({})",
                partner.subject()
            ))
        })?;
    let digest_algorithm = DigestAlgorithm::from_oid(&signer.digest_alg.oid).ok_or_else(|| {
        Error::UnsupportedAlgorithm(format!(
            "signature digest algorithm {}",
            signer.digest_alg.oid
        ))
    })?;
    let scheme = signature_scheme(&signer.signature_algorithm)?;
    let content_digest = provider.digest(digest_algorithm, content);

    let signed_digest = match &signer.signed_attrs {
        Some(attrs) => {
            let message_digest = attrs
                .iter()
                .find(|attr| attr.oid == oids::MESSAGE_DIGEST)
                .and_then(|attr| attr.values.get(0))
                .ok_or_else(|| Error::malformed("the signature has no messageDigest attribute"))?
                .decode_as::<OctetString>()?;
            if message_digest.as_bytes() != content_digest.as_slice() {
                return Err(Error::Integrity(
                    "the content's digest differs from the signed messageDigest: the content was altered"
                        .into(),
                ));
            }
            provider.digest(digest_algorithm, &attrs.to_der()?)
        }
        None => content_digest.clone(),
    };
    let valid = provider.rsa_verify(
        &partner.public_key_der()?,
        scheme,
        digest_algorithm,
        &signed_digest,
        signer.signature.as_bytes(),
    )?;
    if !valid {
        return Err(Error::Authentication(format!(
            "the signature does not verify with the partner's certificate ({})",
            partner.subject()
        )));
    }
    Ok(VerifiedSignature {
        digest_algorithm,
        content_digest,
    })
}

/// The RSA scheme of a SignerInfo signatureAlgorithm. Besides rsaEncryption
/// and sha*WithRSAEncryption, some stacks put a bare digest OID there.
fn signature_scheme(algorithm: &AlgorithmIdentifierOwned) -> Result<SignatureScheme, Error> {
    let oid = &algorithm.oid;
    if *oid == oids::RSA_ENCRYPTION
        || DigestAlgorithm::from_rsa_signature_oid(oid).is_some()
        || DigestAlgorithm::from_oid(oid).is_some()
    {
        Ok(SignatureScheme::RsaPkcs1v15)
    } else if *oid == oids::RSASSA_PSS {
        Ok(SignatureScheme::RsaPss)
    } else {
        Err(Error::UnsupportedAlgorithm(format!(
            "signature algorithm {oid}"
        )))
    }
}

fn key_transport_algorithm(scheme: KeyTransport) -> Result<AlgorithmIdentifierOwned, Error> {
    match scheme {
        KeyTransport::RsaPkcs1v15 => Ok(algorithm(oids::RSA_ENCRYPTION, Some(Any::null()))),
        // RFC 3560 §2.1: absent/empty parameters mean SHA-1 and MGF1-SHA-1.
        KeyTransport::RsaOaepSha1 => Ok(algorithm(
            oids::RSAES_OAEP,
            Some(Any::new(der::Tag::Sequence, Vec::new())?),
        )),
        KeyTransport::RsaOaepSha256 => Err(Error::UnsupportedAlgorithm(
            "RSA-OAEP with SHA-256 key transport".into(),
        )),
    }
}

fn key_transport_scheme(algorithm: &AlgorithmIdentifierOwned) -> Result<KeyTransport, Error> {
    if algorithm.oid == oids::RSA_ENCRYPTION {
        return Ok(KeyTransport::RsaPkcs1v15);
    }
    if algorithm.oid == oids::RSAES_OAEP {
        let default_params = match &algorithm.parameters {
            None => true,
            Some(params) => params.tag() == der::Tag::Sequence && params.value().is_empty(),
        };
        if default_params {
            return Ok(KeyTransport::RsaOaepSha1);
        }
        return Err(Error::UnsupportedAlgorithm(
            "RSA-OAEP key transport with non-default parameters".into(),
        ));
    }
    Err(Error::UnsupportedAlgorithm(format!(
        "key transport algorithm {}",
        algorithm.oid
    )))
}

/// Encrypts `content` for the recipient's certificate: CMS EnvelopedData with
/// one KeyTransRecipientInfo (RFC 5652 §6), a fresh random content key and IV.
/// Returns the DER ContentInfo.
pub fn encrypt(
    content: &[u8],
    recipient: &Cert,
    cipher: ContentCipher,
    transport: KeyTransport,
    provider: &dyn CryptoProvider,
) -> Result<Vec<u8>, Error> {
    let mut key = vec![0u8; cipher.key_len()];
    provider.fill_random(&mut key);
    let mut iv = vec![0u8; cipher.block_len()];
    provider.fill_random(&mut iv);
    let encrypted_key = provider.rsa_encrypt(&recipient.public_key_der()?, transport, &key)?;
    let encrypted_content = provider.cipher_all(cipher, Direction::Encrypt, &key, &iv, content)?;

    let recipient_info = RecipientInfo::Ktri(KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: RecipientIdentifier::IssuerAndSerialNumber(recipient.issuer_and_serial()),
        key_enc_alg: key_transport_algorithm(transport)?,
        enc_key: OctetString::new(encrypted_key)?,
    });
    let enveloped = EnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: RecipientInfos(SetOfVec::try_from(vec![recipient_info])?),
        encrypted_content: EncryptedContentInfo {
            content_type: oids::DATA,
            content_enc_alg: algorithm(
                cipher.oid(),
                Some(Any::encode_from(&OctetString::new(iv)?)?),
            ),
            encrypted_content: Some(OctetString::new(encrypted_content)?),
        },
        unprotected_attrs: None,
    };
    Ok(ContentInfo {
        content_type: oids::ENVELOPED_DATA,
        content: Any::encode_from(&enveloped)?,
    }
    .to_der()?)
}

/// Decrypts a CMS EnvelopedData addressed to `key`'s certificate (RFC 5652 §6.2.1).
///
/// With PKCS#1 v1.5 key transport a wrong key does not fail by itself
/// (implicit rejection returns random bytes): the content-key length and the
/// padding check catch it, and every such failure is [`Error::Decryption`].
pub fn decrypt(
    enveloped_der: &[u8],
    key: &dyn PrivateKey,
    provider: &dyn CryptoProvider,
) -> Result<Vec<u8>, Error> {
    let enveloped: EnvelopedData =
        decode_content_info(enveloped_der, oids::ENVELOPED_DATA, "encrypted body")?
            .decode_as_encoding(EncodingRules::Ber)
            .map_err(|e| Error::malformed(format!("invalid EnvelopedData: {e}")))?;
    let our_cert = Cert::from_der(&key.certificate_der())?;
    let recipient = enveloped
        .recip_infos
        .0
        .iter()
        .find_map(|info| match info {
            RecipientInfo::Ktri(ktri) => {
                let matches = match &ktri.rid {
                    RecipientIdentifier::IssuerAndSerialNumber(ias) => our_cert.is_identified_by(Some(ias), None),
                    RecipientIdentifier::SubjectKeyIdentifier(ski) => our_cert.is_identified_by(None, Some(ski)),
                };
                matches.then_some(ktri)
            }
            _ => None,
        })
        .ok_or_else(|| {
            Error::Decryption(format!(
                "the message is not encrypted for our certificate ({}); the partner may be using an old certificate of ours",
                our_cert.subject()
            ))
        })?;
    let scheme = key_transport_scheme(&recipient.key_enc_alg)?;
    let content_alg = &enveloped.encrypted_content.content_enc_alg;
    let cipher = ContentCipher::from_oid(&content_alg.oid).ok_or_else(|| {
        Error::UnsupportedAlgorithm(format!("content encryption algorithm {}", content_alg.oid))
    })?;
    let iv = content_alg
        .parameters
        .as_ref()
        .ok_or_else(|| Error::malformed("the content encryption algorithm has no IV"))?
        .decode_as::<OctetString>()?;
    let content_key = key
        .decrypt_key(scheme, recipient.enc_key.as_bytes())
        .map_err(|_| {
            Error::Decryption("the content key does not decrypt with our private key".into())
        })?;
    if content_key.len() != cipher.key_len() {
        return Err(Error::Decryption(
            "the content key does not decrypt with our private key".into(),
        ));
    }
    let ciphertext = enveloped
        .encrypted_content
        .encrypted_content
        .as_ref()
        .ok_or_else(|| Error::malformed("the EnvelopedData carries no encrypted content"))?;
    provider
        .cipher_all(
            cipher,
            Direction::Decrypt,
            &content_key,
            iv.as_bytes(),
            ciphertext.as_bytes(),
        )
        .map_err(|_| {
            Error::Decryption("the content does not decrypt: wrong key or altered content".into())
        })
}

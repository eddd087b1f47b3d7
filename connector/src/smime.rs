//! S/MIME's CMS layer (RFC 5652, RFC 5751): detached signatures and
//! key-transport envelopes, with every primitive going through the provider
//! and every private-key operation through a key handle.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cms::authenveloped_data::AuthEnvelopedData;
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo, RecipientInfos,
};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{OctetString, SetOfVec, UtcTime};
use der::{Any, Decode, Encode, EncodingRules, Sequence, Tagged};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use crate::ber;
use crate::bytes::{self, Sink, Source};
use crate::crypto::{
    AeadCipher, Cbc, ContentCipher, CryptoError, CryptoProvider, DigestAlgorithm, Direction,
    GCM_NONCE_LEN, GCM_TAG_LEN, Gcm, KeyTransport, PrivateKey, SignatureScheme, SignedDigest, oids,
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

    /// The certificate in PEM form.
    pub fn to_pem(&self) -> Result<String, Error> {
        use der::EncodePem;
        Ok(self.inner.to_pem(der::pem::LineEnding::LF)?)
    }

    /// Every certificate of a PEM text such as a CA bundle, in order. Text
    /// between the blocks (the `subject=` lines some tools write) and blocks
    /// of other kinds are skipped; a text without any certificate is an error.
    pub fn all_from_pem(pem: &str) -> Result<Vec<Self>, Error> {
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        let mut certs = Vec::new();
        let mut rest = pem;
        while let Some(start) = rest.find(BEGIN) {
            let block = &rest[start..];
            let end = block.find(END).ok_or_else(|| {
                Error::malformed(format!("certificate {} has no {END} line", certs.len() + 1))
            })? + END.len();
            let cert = Self::from_pem(&block[..end])
                .map_err(|e| Error::malformed(format!("certificate {}: {e}", certs.len() + 1)))?;
            certs.push(cert);
            rest = &block[end..];
        }
        if certs.is_empty() {
            return Err(Error::malformed(format!(
                "no certificate in this PEM text (no {BEGIN} line)"
            )));
        }
        Ok(certs)
    }

    /// The DER encoding.
    pub fn to_der(&self) -> Result<Vec<u8>, Error> {
        Ok(self.inner.to_der()?)
    }

    /// The subject, in RFC 4514 form.
    pub fn subject(&self) -> String {
        self.inner.tbs_certificate().subject().to_string()
    }

    /// The issuer's distinguished name (RFC 4514).
    pub fn issuer(&self) -> String {
        self.inner.tbs_certificate().issuer().to_string()
    }

    /// The serial number's big-endian bytes.
    pub fn serial_bytes(&self) -> Vec<u8> {
        self.inner
            .tbs_certificate()
            .serial_number()
            .as_bytes()
            .to_vec()
    }

    /// The serial number in hex, as certificate tools print it.
    pub fn serial_text(&self) -> String {
        hex_text(self.inner.tbs_certificate().serial_number().as_bytes())
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> Result<Vec<u8>, Error> {
        Ok(self
            .inner
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()?)
    }

    /// The length in bytes of the RSA modulus: the length of every
    /// signature the key makes.
    pub fn rsa_modulus_len(&self) -> Result<usize, Error> {
        #[derive(Sequence)]
        struct RsaPublicKey<'a> {
            modulus: der::asn1::UintRef<'a>,
            public_exponent: der::asn1::UintRef<'a>,
        }
        let spki = self.inner.tbs_certificate().subject_public_key_info();
        let key = spki.subject_public_key.as_bytes().ok_or_else(|| {
            Error::UnsupportedAlgorithm("a public key that is not whole bytes".into())
        })?;
        let key = RsaPublicKey::from_der(key).map_err(|e| {
            Error::UnsupportedAlgorithm(format!("a public key that is not RSA: {e}"))
        })?;
        Ok(key.modulus.as_bytes().len())
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

    /// notAfter as text, e.g. `2027-12-01T21:00:00Z`.
    pub fn not_after_text(&self) -> String {
        self.inner
            .tbs_certificate()
            .validity()
            .not_after
            .to_string()
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

fn hex_text(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A CMS signer identifier for people: the issuer and serial, or the key id.
fn signer_text(sid: &SignerIdentifier) -> String {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => format!(
            "a certificate issued by {} with serial {}",
            ias.issuer,
            hex_text(ias.serial_number.as_bytes())
        ),
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            format!("the key with identifier {}", hex_text(ski.0.as_bytes()))
        }
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

/// RSASSA-PSS-params (RFC 4055 §3.1).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct RsaPssParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mask_gen: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    salt_length: Option<u32>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    trailer_field: Option<u32>,
}

/// RSAES-OAEP-params (RFC 4055 §4.1).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct RsaOaepParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mask_gen: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    p_source: Option<AlgorithmIdentifierOwned>,
}

/// GCMParameters (RFC 5084 §3.2); icvLen defaults to 12.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct GcmParams {
    nonce: OctetString,
    #[asn1(optional = "true")]
    icv_len: Option<u32>,
}

/// RC2-CBCParameter (RFC 3370 §5.2), version optional as old encoders omit it.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct Rc2Params {
    #[asn1(optional = "true")]
    version: Option<u32>,
    iv: OctetString,
}

/// The digest an RSA-PSS or RSA-OAEP hash parameter names; SHA-1 when absent.
fn hash_parameter(hash: Option<&AlgorithmIdentifierOwned>) -> Result<DigestAlgorithm, Error> {
    match hash {
        None => Ok(DigestAlgorithm::Sha1),
        Some(alg) => DigestAlgorithm::from_oid(&alg.oid).ok_or_else(|| {
            Error::UnsupportedAlgorithm(format!("hash {} in RSA parameters", alg.oid))
        }),
    }
}

/// The digest of an MGF1 parameter; SHA-1 when absent.
fn mgf1_parameter(mask_gen: Option<&AlgorithmIdentifierOwned>) -> Result<DigestAlgorithm, Error> {
    let Some(mgf) = mask_gen else {
        return Ok(DigestAlgorithm::Sha1);
    };
    if mgf.oid != oids::MGF1 {
        return Err(Error::UnsupportedAlgorithm(format!(
            "mask generation function {}",
            mgf.oid
        )));
    }
    let hash = mgf
        .parameters
        .as_ref()
        .map(|p| p.decode_as::<AlgorithmIdentifierOwned>())
        .transpose()?;
    hash_parameter(hash.as_ref())
}

fn digest_id(digest: DigestAlgorithm) -> AlgorithmIdentifierOwned {
    algorithm(digest.oid(), None)
}

fn mgf1_id(digest: DigestAlgorithm) -> Result<AlgorithmIdentifierOwned, Error> {
    Ok(algorithm(
        oids::MGF1,
        Some(Any::encode_from(&digest_id(digest))?),
    ))
}

/// The SignerInfo signatureAlgorithm for a scheme: rsaEncryption (what
/// OpenSSL and most AS2 stacks write) or RSASSA-PSS with explicit parameters.
fn signature_algorithm_id(
    scheme: SignatureScheme,
    digest: DigestAlgorithm,
) -> Result<AlgorithmIdentifierOwned, Error> {
    match scheme {
        SignatureScheme::RsaPkcs1v15 => Ok(algorithm(oids::RSA_ENCRYPTION, Some(Any::null()))),
        SignatureScheme::RsaPss => {
            let params = RsaPssParams {
                hash: Some(digest_id(digest)),
                mask_gen: Some(mgf1_id(digest)?),
                salt_length: Some(u32::try_from(digest.output_len()).unwrap_or(32)),
                trailer_field: None,
            };
            Ok(algorithm(
                oids::RSASSA_PSS,
                Some(Any::encode_from(&params)?),
            ))
        }
    }
}

/// Signs content with a detached CMS SignedData (RFC 5652 §5, RFC 5751
/// §3.4.3): signed attributes contentType, signingTime and messageDigest,
/// the signer identified by issuer and serial number (which every AS2 stack
/// matches, where subjectKeyIdentifier is not), and the signer's certificate
/// included. Returns the DER ContentInfo.
///
/// It takes the content's digest (`message_digest`, of `digest_algorithm`),
/// not the content: the MIC of a signed AS2 message is that same digest
/// (RFC 4130 §7.3.1), so it is taken once.
pub fn sign_detached_digest(
    message_digest: Vec<u8>,
    signer: &dyn PrivateKey,
    digest_algorithm: DigestAlgorithm,
    scheme: SignatureScheme,
    now: SystemTime,
    provider: &dyn CryptoProvider,
) -> Result<Vec<u8>, Error> {
    signed_data(
        message_digest,
        &signer.certificate_der(),
        digest_algorithm,
        scheme,
        now,
        provider,
        &|attrs_digest| Ok(signer.sign_digest(scheme, digest_algorithm, attrs_digest)?),
    )
}

/// How long [`sign_detached_digest`] with these arguments will be, before
/// the content's digest is known: an RSA signature is always as long as the
/// modulus (RFC 8017 §8.1.1, §8.2.1), and every other field has a fixed
/// length. Lets a signed entity be encrypted as it is written, its length
/// announced before its signature exists.
pub fn signed_data_len(
    signer_certificate: &[u8],
    digest_algorithm: DigestAlgorithm,
    scheme: SignatureScheme,
    now: SystemTime,
    provider: &dyn CryptoProvider,
) -> Result<usize, Error> {
    let modulus_len = Cert::from_der(signer_certificate)?.rsa_modulus_len()?;
    let placeholder = vec![0u8; digest_algorithm.output_len()];
    Ok(signed_data(
        placeholder,
        signer_certificate,
        digest_algorithm,
        scheme,
        now,
        provider,
        &|_| Ok(vec![0xff; modulus_len]),
    )?
    .len())
}

/// Signs the digest of the signed attributes.
type SignAttributes<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, Error> + 'a;

/// The DER ContentInfo of a detached SignedData over content whose digest
/// is `message_digest`, signed by `sign` (which gets the digest of the
/// signed attributes).
fn signed_data(
    message_digest: Vec<u8>,
    cert_der: &[u8],
    digest_algorithm: DigestAlgorithm,
    scheme: SignatureScheme,
    now: SystemTime,
    provider: &dyn CryptoProvider,
    sign: &SignAttributes<'_>,
) -> Result<Vec<u8>, Error> {
    let cert = Certificate::from_der(cert_der)
        .map_err(|e| Error::KeyStore(format!("the station certificate does not parse: {e}")))?;
    let signer_cert = Cert {
        inner: cert.clone(),
    };
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
    let signature = sign(&attrs_digest)?;

    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(signer_cert.issuer_and_serial()),
        digest_alg: digest_id(digest_algorithm),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: signature_algorithm_id(scheme, digest_algorithm)?,
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_id(digest_algorithm)])?,
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
    /// The digest algorithm the signer used.
    pub digest_algorithm: DigestAlgorithm,
    /// The digest of the signed content.
    pub content_digest: Vec<u8>,
}

/// The CMS content type of a ContentInfo, without decoding the rest.
pub fn content_type(der: &dyn Source) -> Result<der::oid::ObjectIdentifier, Error> {
    let not_cms = |e: Error| Error::malformed(format!("not a CMS ContentInfo: {e}"));
    let info = ber::expect(der, 0, SEQUENCE, "a ContentInfo SEQUENCE").map_err(not_cms)?;
    let oid = ber::expect(der, info.content_start(), OID, "a content type").map_err(not_cms)?;
    let oid = ber::read_element(der, &oid, 64).map_err(not_cms)?;
    der::oid::ObjectIdentifier::from_der(&oid)
        .map_err(|e| Error::malformed(format!("not a CMS ContentInfo: {e}")))
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
/// A signer other than `partner`, or a signature that does not verify with
/// the partner's key, yields [`Error::Authentication`]; content that does not
/// match the signed digest yields [`Error::Integrity`].
pub fn verify_detached(
    signature_der: &[u8],
    content: &[u8],
    partner: &Cert,
    provider: &dyn CryptoProvider,
) -> Result<VerifiedSignature, Error> {
    verify_detached_with(
        signature_der,
        &content,
        partner,
        provider,
        &mut |algorithm| Ok(provider.digest(algorithm, content)),
    )
}

/// [`verify_detached`] of content read where it lies, with its digest from
/// `content_digest` (given the signature's digest algorithm), for a caller
/// that may have taken it already ([`crate::signed::EarlyDigest`]) or
/// takes it a piece at a time.
pub fn verify_detached_with(
    signature_der: &[u8],
    content: &dyn Source,
    partner: &Cert,
    provider: &dyn CryptoProvider,
    content_digest: &mut dyn FnMut(DigestAlgorithm) -> Result<Vec<u8>, Error>,
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
            let signers: Vec<String> = signed_data
                .signer_infos
                .0
                .iter()
                .map(|info| signer_text(&info.sid))
                .collect();
            Error::Authentication(format!(
                "the message is not signed by the partner's certificate ({}, serial {}) but by {}: the partner may have a new certificate; ask for it and install it as partner.certificate",
                partner.subject(),
                partner.serial_text(),
                if signers.is_empty() { "no signer at all".to_string() } else { signers.join(", ") }
            ))
        })?;
    let digest_algorithm = DigestAlgorithm::from_oid(&signer.digest_alg.oid).ok_or_else(|| {
        Error::UnsupportedAlgorithm(format!(
            "signature digest algorithm {}",
            signer.digest_alg.oid
        ))
    })?;
    let scheme = signature_scheme(&signer.signature_algorithm, digest_algorithm)?;
    let content_digest = content_digest(digest_algorithm)?;
    let public_key = partner.public_key_der()?;
    let verify = |digest: &[u8]| {
        let signed = SignedDigest {
            scheme,
            algorithm: digest_algorithm,
            digest,
            signature: signer.signature.as_bytes(),
        };
        provider.rsa_verify(&public_key, signed)
    };

    let valid = match &signer.signed_attrs {
        Some(attrs) => {
            let message_digest = attrs
                .iter()
                .find(|attr| attr.oid == oids::MESSAGE_DIGEST)
                .and_then(|attr| attr.values.get(0))
                .ok_or_else(|| Error::malformed("the signature has no messageDigest attribute"))?
                .decode_as::<OctetString>()?;
            if message_digest.as_bytes() != content_digest.as_slice() {
                // The doctor looks at content it can hold ([`crate::doctor::LIMIT`]).
                let held = match content.len() <= crate::doctor::LIMIT {
                    true => bytes::whole(content).ok(),
                    false => None,
                };
                let why = held
                    .and_then(|content| {
                        crate::doctor::signed_digest_variant(
                            &content,
                            message_digest.as_bytes(),
                            digest_algorithm,
                            provider,
                        )
                    })
                    .unwrap_or_else(|| "the content was altered".into());
                return Err(Error::Integrity(format!(
                    "the content's digest differs from the signed messageDigest: {why}"
                )));
            }
            // The attributes in the order they came (what OpenSSL signs), then
            // DER-sorted (what BouncyCastle signs when it reorders them).
            let as_received = encode_set(attrs.iter())?;
            let mut sorted: Vec<Vec<u8>> =
                attrs.iter().map(|a| a.to_der()).collect::<Result<_, _>>()?;
            sorted.sort();
            let sorted = encode_set_of_encoded(&sorted)?;
            verify(&provider.digest(digest_algorithm, &as_received))?
                || (sorted != as_received && verify(&provider.digest(digest_algorithm, &sorted))?)
        }
        None => verify(&content_digest)?,
    };
    if !valid {
        let why = match signer.signed_attrs {
            // The content is what was signed, so the key is what differs.
            Some(_) => {
                "; the content matches its signed digest, so it was signed with another key than this certificate's (a new key under the same name?)"
            }
            None => "",
        };
        return Err(Error::Authentication(format!(
            "the signature does not verify with the partner's certificate ({}){why}",
            partner.subject()
        )));
    }
    Ok(VerifiedSignature {
        digest_algorithm,
        content_digest,
    })
}

fn encode_set<'a>(attrs: impl Iterator<Item = &'a Attribute>) -> Result<Vec<u8>, Error> {
    let encoded: Vec<Vec<u8>> = attrs.map(|a| a.to_der()).collect::<Result<_, _>>()?;
    encode_set_of_encoded(&encoded)
}

/// A DER SET (tag 0x31) around already encoded elements, in the order given.
fn encode_set_of_encoded(elements: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
    let len: usize = elements.iter().map(Vec::len).sum();
    let header = der::Header::new(der::Tag::Set, der::Length::try_from(len)?);
    let mut out = header.to_der()?;
    for element in elements {
        out.extend_from_slice(element);
    }
    Ok(out)
}

/// The RSA scheme of a SignerInfo signatureAlgorithm. Besides rsaEncryption
/// and sha*WithRSAEncryption, some stacks (Cleo, OpenAS2) put a bare digest OID there.
fn signature_scheme(
    algorithm: &AlgorithmIdentifierOwned,
    digest: DigestAlgorithm,
) -> Result<SignatureScheme, Error> {
    let oid = &algorithm.oid;
    if *oid == oids::RSA_ENCRYPTION
        || DigestAlgorithm::from_rsa_signature_oid(oid).is_some()
        || DigestAlgorithm::from_oid(oid).is_some()
    {
        Ok(SignatureScheme::RsaPkcs1v15)
    } else if *oid == oids::RSASSA_PSS {
        let params: RsaPssParams = match &algorithm.parameters {
            Some(params) => params.decode_as()?,
            None => return Err(Error::malformed("RSASSA-PSS without parameters")),
        };
        let hash = hash_parameter(params.hash.as_ref())?;
        let mgf = mgf1_parameter(params.mask_gen.as_ref())?;
        if hash != digest || mgf != digest {
            return Err(Error::UnsupportedAlgorithm(format!(
                "RSASSA-PSS mixing digests ({hash:?} hash, {mgf:?} MGF1, {digest:?} content digest)"
            )));
        }
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
        // RFC 4055 §4.1: SHA-1 is the default of both, and DER leaves a
        // default out, so all-SHA-1 is the empty SEQUENCE.
        KeyTransport::RsaOaep { hash, mgf } => Ok(algorithm(
            oids::RSAES_OAEP,
            Some(Any::encode_from(&RsaOaepParams {
                hash: (hash != DigestAlgorithm::Sha1).then(|| digest_id(hash)),
                mask_gen: (mgf != DigestAlgorithm::Sha1)
                    .then(|| mgf1_id(mgf))
                    .transpose()?,
                p_source: None,
            })?),
        )),
    }
}

fn key_transport_scheme(algorithm: &AlgorithmIdentifierOwned) -> Result<KeyTransport, Error> {
    if algorithm.oid == oids::RSA_ENCRYPTION {
        return Ok(KeyTransport::RsaPkcs1v15);
    }
    if algorithm.oid == oids::RSAES_OAEP {
        // Parameters may be absent or an empty SEQUENCE: both mean SHA-1 throughout.
        let params = match &algorithm.parameters {
            None => RsaOaepParams {
                hash: None,
                mask_gen: None,
                p_source: None,
            },
            Some(params) if params.tag() == der::Tag::Null => RsaOaepParams {
                hash: None,
                mask_gen: None,
                p_source: None,
            },
            Some(params) => params.decode_as::<RsaOaepParams>()?,
        };
        if params.p_source.is_some() {
            return Err(Error::UnsupportedAlgorithm("RSA-OAEP with a label".into()));
        }
        let hash = hash_parameter(params.hash.as_ref())?;
        let mgf = mgf1_parameter(params.mask_gen.as_ref())?;
        return Ok(KeyTransport::RsaOaep { hash, mgf });
    }
    Err(Error::UnsupportedAlgorithm(format!(
        "key transport algorithm {}",
        algorithm.oid
    )))
}

/// How content is encrypted: CBC in EnvelopedData, or GCM in AuthEnvelopedData.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncryption {
    /// EnvelopedData (RFC 5652 §6) with a CBC cipher.
    Cbc(ContentCipher),
    /// AuthEnvelopedData (RFC 5083) with AES-GCM (RFC 5084).
    Gcm(AeadCipher),
}

/// A fresh content-encryption key of `key_len` bytes and the one
/// KeyTransRecipientInfo that carries it to `recipient`.
fn content_key_for(
    recipient: &Cert,
    key_len: usize,
    transport: KeyTransport,
    provider: &dyn CryptoProvider,
) -> Result<(Vec<u8>, RecipientInfos), Error> {
    let mut key = vec![0u8; key_len];
    provider.fill_random(&mut key);
    let encrypted_key = provider.rsa_encrypt(&recipient.public_key_der()?, transport, &key)?;
    let recipient_info = RecipientInfo::Ktri(KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: RecipientIdentifier::IssuerAndSerialNumber(recipient.issuer_and_serial()),
        key_enc_alg: key_transport_algorithm(transport)?,
        enc_key: OctetString::new(encrypted_key)?,
    });
    Ok((
        key,
        RecipientInfos(SetOfVec::try_from(vec![recipient_info])?),
    ))
}

/// EnvelopedData (RFC 5652 §6.1) or, for AES-GCM, AuthEnvelopedData
/// (RFC 5083) being written: the DER up to the ciphertext went out when it
/// began, each plaintext piece goes through the cipher as it is written,
/// and [`Envelope::finish`] pads the last CBC block or appends the GCM tag.
/// The plaintext is never held whole, and the DER is exact: its lengths
/// were known from the plaintext's length.
pub struct Envelope<'s> {
    encrypting: Encrypting,
    out: &'s mut dyn crate::bytes::Sink,
    expected: u64,
    written: u64,
}

/// The running cipher of an [`Envelope`].
enum Encrypting {
    Cbc(Box<dyn crate::crypto::Cipher + Send>),
    Gcm(Box<dyn crate::crypto::Aead + Send>),
}

/// Starts EnvelopedData (CBC) or AuthEnvelopedData (GCM) for
/// `plaintext_len` bytes, encrypted with a fresh key for the recipient's
/// certificate (one KeyTransRecipientInfo), and writes its DER prefix to `out`.
pub fn begin_enveloped<'s>(
    plaintext_len: u64,
    recipient: &Cert,
    encryption: ContentEncryption,
    transport: KeyTransport,
    provider: &dyn CryptoProvider,
    out: &'s mut dyn crate::bytes::Sink,
) -> Result<Envelope<'s>, Error> {
    let key_len = match encryption {
        ContentEncryption::Cbc(cipher) => cipher.key_len(),
        ContentEncryption::Gcm(cipher) => cipher.key_len(),
    };
    let (key, recip_infos) = content_key_for(recipient, key_len, transport, provider)?;
    // The algorithm's DER, the ciphertext's length, the DER after the
    // ciphertext (AuthEnvelopedData's mac) and the outer content type.
    let (algorithm_der, ciphertext_len, trailer_len, outer, encrypting) = match encryption {
        ContentEncryption::Cbc(cipher) => {
            let mut iv = vec![0u8; cipher.block_len()];
            provider.fill_random(&mut iv);
            let algorithm_der = algorithm(
                cipher.oid(),
                Some(Any::encode_from(&OctetString::new(iv.clone())?)?),
            )
            .to_der()?;
            let block = cipher.block_len() as u64;
            let running = provider.cipher(Cbc {
                cipher,
                direction: Direction::Encrypt,
                key: &key,
                iv: &iv,
            })?;
            // PKCS#7 padding always adds 1 to `block` bytes (RFC 5652 §6.3).
            let ciphertext_len = (plaintext_len / block + 1) * block;
            (
                algorithm_der,
                ciphertext_len,
                0,
                oids::ENVELOPED_DATA,
                Encrypting::Cbc(running),
            )
        }
        ContentEncryption::Gcm(cipher) => {
            let mut nonce = vec![0u8; GCM_NONCE_LEN];
            provider.fill_random(&mut nonce);
            let params = GcmParams {
                nonce: OctetString::new(nonce.clone())?,
                icv_len: Some(GCM_TAG_LEN as u32),
            };
            let algorithm_der =
                algorithm(cipher.oid(), Some(Any::encode_from(&params)?)).to_der()?;
            let gcm = Gcm {
                cipher,
                key: &key,
                nonce: &nonce,
                aad: &[],
                tag_len: GCM_TAG_LEN,
            };
            let running = provider.aead(gcm, Direction::Encrypt)?;
            // RFC 5083 §2.1: the mac, an OCTET STRING, follows the content.
            let trailer_len = ber::definite_len(GCM_TAG_LEN as u64);
            (
                algorithm_der,
                plaintext_len,
                trailer_len,
                oids::AUTH_ENVELOPED_DATA,
                Encrypting::Gcm(running),
            )
        }
    };
    let content_type = oids::DATA.to_der()?;
    // encryptedContent is [0] IMPLICIT OCTET STRING: primitive, tag 0x80.
    let ciphertext_header = ber::definite_header(0x80, ciphertext_len);
    let info_len = (content_type.len() + algorithm_der.len() + ciphertext_header.len()) as u64
        + ciphertext_len;
    // RFC 5083 §2.1: AuthEnvelopedData's version is always 0, as is
    // EnvelopedData's with one KeyTransRecipientInfo by issuer and serial.
    let version = CmsVersion::V0.to_der()?;
    let recipients = recip_infos.to_der()?;
    let enveloped_len =
        (version.len() + recipients.len()) as u64 + ber::definite_len(info_len) + trailer_len;
    let outer_type = outer.to_der()?;
    let explicit_len = ber::definite_len(enveloped_len);
    let mut prefix = ber::definite_header(
        0x30,
        outer_type.len() as u64 + ber::definite_len(explicit_len),
    );
    prefix.extend_from_slice(&outer_type);
    prefix.extend(ber::definite_header(0xa0, explicit_len));
    prefix.extend(ber::definite_header(0x30, enveloped_len));
    prefix.extend_from_slice(&version);
    prefix.extend_from_slice(&recipients);
    prefix.extend(ber::definite_header(0x30, info_len));
    prefix.extend_from_slice(&content_type);
    prefix.extend_from_slice(&algorithm_der);
    prefix.extend_from_slice(&ciphertext_header);
    out.write(&prefix)?;
    Ok(Envelope {
        encrypting,
        out,
        expected: plaintext_len,
        written: 0,
    })
}

impl crate::bytes::Sink for Envelope<'_> {
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.written += data.len() as u64;
        let encrypted = match &mut self.encrypting {
            Encrypting::Cbc(cipher) => cipher.update(data),
            Encrypting::Gcm(aead) => aead.update(data),
        };
        self.out.write(&encrypted)
    }
}

impl Envelope<'_> {
    /// Pads and writes the last CBC block, or writes the GCM tag. The
    /// plaintext must have been exactly as long as announced, or the DER
    /// would lie about its lengths.
    pub fn finish(self) -> Result<(), Error> {
        if self.written != self.expected {
            return Err(Error::Storage(format!(
                "the content to encrypt was {} bytes, not the {} announced",
                self.written, self.expected
            )));
        }
        match self.encrypting {
            Encrypting::Cbc(cipher) => self.out.write(&cipher.finish()?),
            Encrypting::Gcm(aead) => {
                let tag = aead.seal_finish()?;
                self.out
                    .write(&ber::definite_header(0x04, tag.len() as u64))?;
                self.out.write(&tag)
            }
        }
    }
}

/// Encrypts `content` for the recipient's certificate with one
/// KeyTransRecipientInfo and a fresh random content key. Returns the DER ContentInfo.
pub fn encrypt(
    content: &[u8],
    recipient: &Cert,
    encryption: ContentEncryption,
    transport: KeyTransport,
    provider: &dyn CryptoProvider,
) -> Result<Vec<u8>, Error> {
    let mut der = Vec::with_capacity(content.len() + 1024);
    let mut envelope = begin_enveloped(
        content.len() as u64,
        recipient,
        encryption,
        transport,
        provider,
        &mut der,
    )?;
    crate::bytes::Sink::write(&mut envelope, content)?;
    envelope.finish()?;
    Ok(der)
}

fn find_recipient<'a>(
    infos: &'a RecipientInfos,
    ours: &Cert,
) -> Result<&'a KeyTransRecipientInfo, Error> {
    infos
        .0
        .iter()
        .find_map(|info| match info {
            RecipientInfo::Ktri(ktri) => {
                let matches = match &ktri.rid {
                    RecipientIdentifier::IssuerAndSerialNumber(ias) => ours.is_identified_by(Some(ias), None),
                    RecipientIdentifier::SubjectKeyIdentifier(ski) => ours.is_identified_by(None, Some(ski)),
                };
                matches.then_some(ktri)
            }
            _ => None,
        })
        .ok_or_else(|| {
            Error::NotEncryptedForUs(format!(
                "the message is not encrypted for our certificate ({}); the partner may be using an old certificate of ours",
                ours.subject()
            ))
        })
}

fn unwrap_content_key(
    recipient: &KeyTransRecipientInfo,
    key: &dyn PrivateKey,
    expected_len: usize,
) -> Result<Vec<u8>, Error> {
    let scheme = key_transport_scheme(&recipient.key_enc_alg)?;
    let wrong_key =
        || Error::Decryption("the content key does not decrypt with our private key".into());
    let content_key = key
        .decrypt_key(scheme, recipient.enc_key.as_bytes())
        .map_err(|_| wrong_key())?;
    // PKCS#1 v1.5 implicit rejection returns random bytes for a wrong key:
    // a length other than the cipher's gives it away.
    if content_key.len() != expected_len {
        return Err(wrong_key());
    }
    Ok(content_key)
}

/// The CBC cipher and IV of an EnvelopedData content-encryption algorithm.
fn cbc_cipher(alg: &AlgorithmIdentifierOwned) -> Result<(ContentCipher, Vec<u8>), Error> {
    let params = alg
        .parameters
        .as_ref()
        .ok_or_else(|| Error::malformed("the content encryption algorithm has no parameters"))?;
    if alg.oid == oids::RC2_CBC {
        let (version, iv) = match params.decode_as::<Rc2Params>() {
            Ok(p) => (p.version, p.iv),
            Err(_) => (None, params.decode_as::<OctetString>()?),
        };
        // RFC 2268 §6: version 160 = 40 bits, 120 = 64 bits, 58 = 128 bits; ≥ 256 is the bit count.
        let effective_bits = match version {
            Some(160) | None => 40,
            Some(120) => 64,
            Some(58) => 128,
            Some(bits) if bits >= 256 => u16::try_from(bits).unwrap_or(u16::MAX),
            Some(other) => {
                return Err(Error::UnsupportedAlgorithm(format!(
                    "RC2 parameter version {other}"
                )));
            }
        };
        return Ok((
            ContentCipher::Rc2Cbc { effective_bits },
            iv.as_bytes().to_vec(),
        ));
    }
    let cipher = ContentCipher::from_oid(&alg.oid).ok_or_else(|| {
        Error::UnsupportedAlgorithm(format!("content encryption algorithm {}", alg.oid))
    })?;
    let iv = params.decode_as::<OctetString>()?;
    if iv.as_bytes().len() != cipher.block_len() {
        return Err(Error::malformed("the IV length does not fit the cipher"));
    }
    Ok((cipher, iv.as_bytes().to_vec()))
}

/// The content encryption an EnvelopedData or AuthEnvelopedData uses,
/// read from its structure without decrypting (RFC 5652 §6.1, RFC 5083 §2.1).
pub fn content_encryption_of(enveloped: &dyn Source) -> Result<ContentEncryption, Error> {
    if let Some(layout) = EnvelopeLayout::read(enveloped)? {
        return enveloped_encryption(&layout.algorithm);
    }
    match read_envelope(enveloped)? {
        Encrypted::Enveloped(enveloped) => {
            enveloped_encryption(&enveloped.encrypted_content.content_enc_alg)
        }
        Encrypted::AuthEnveloped(enveloped) => {
            aead_cipher(&enveloped.auth_encrypted_content_info.content_enc_alg)
                .map(ContentEncryption::Gcm)
        }
        Encrypted::Other(content_type) => Err(Error::UnsupportedFormat(format!(
            "CMS content type {content_type} is not encrypted data"
        ))),
    }
}

/// The content encryption an EnvelopedData names: a CBC cipher, or AES-GCM
/// as some stacks carry it there rather than in AuthEnvelopedData.
fn enveloped_encryption(alg: &AlgorithmIdentifierOwned) -> Result<ContentEncryption, Error> {
    match AeadCipher::from_oid(&alg.oid) {
        Some(cipher) => Ok(ContentEncryption::Gcm(cipher)),
        None => cbc_cipher(alg).map(|(cipher, _)| ContentEncryption::Cbc(cipher)),
    }
}

/// What a wrong key or altered content looks like, said once for every cipher.
fn not_decryptable() -> Error {
    Error::Decryption("the content does not decrypt: wrong key or altered content".into())
}

/// [`decrypt`] with whichever of `keys` the message is encrypted for, tried
/// in order: during a certificate rollover partners encrypt to the old or the
/// new certificate. A key the message is not for costs no private-key operation.
/// The plaintext goes to `out` a piece at a time, and `observe` sees each
/// piece as it goes.
///
/// With AES-GCM the pieces come out before the tag is checked: what `out`
/// holds may be used only once this returns `Ok`.
pub fn decrypt_any(
    enveloped: &dyn Source,
    keys: &[&dyn PrivateKey],
    provider: &dyn CryptoProvider,
    out: &mut dyn Sink,
    observe: &mut dyn FnMut(&[u8]),
) -> Result<(), Error> {
    let mut not_ours = None;
    for key in keys {
        match decrypt_observed(enveloped, *key, provider, out, observe) {
            Err(error @ Error::NotEncryptedForUs(_)) => {
                not_ours.get_or_insert(error);
            }
            decrypted => return decrypted,
        }
    }
    Err(not_ours.unwrap_or_else(|| Error::Decryption("no station key to decrypt with".into())))
}

/// Decrypts CMS EnvelopedData (CBC ciphers, RC2 included, or AES-GCM with
/// the tag ending the content, as some stacks send it) or AuthEnvelopedData
/// (AES-GCM) addressed to `key`'s certificate (RFC 5652 §6.2.1, RFC 5083,
/// RFC 5084).
/// Every failure that a wrong key or altered content can cause is
/// [`Error::Decryption`]; a message for another certificate is
/// [`Error::NotEncryptedForUs`].
pub fn decrypt(
    enveloped: &dyn Source,
    key: &dyn PrivateKey,
    provider: &dyn CryptoProvider,
) -> Result<Vec<u8>, Error> {
    let mut plain = Vec::new();
    decrypt_observed(enveloped, key, provider, &mut plain, &mut |_| {})?;
    Ok(plain)
}

/// [`decrypt`] into `out`, showing `observe` each piece. Read a piece at a
/// time where the layout allows ([`EnvelopeLayout`]), so that neither the
/// ciphertext nor the plaintext is held; other forms are decoded in memory.
fn decrypt_observed(
    enveloped: &dyn Source,
    key: &dyn PrivateKey,
    provider: &dyn CryptoProvider,
    out: &mut dyn Sink,
    observe: &mut dyn FnMut(&[u8]),
) -> Result<(), Error> {
    let ours = Cert::from_der(&key.certificate_der())?;
    let mut emit = |plain: &[u8]| -> Result<(), Error> {
        observe(plain);
        out.write(plain)
    };
    if let Some(layout) = EnvelopeLayout::read(enveloped)? {
        let recipient = find_recipient(&layout.recipients, &ours)?;
        let alg = &layout.algorithm;
        let Some(cipher) = AeadCipher::from_oid(&alg.oid) else {
            if layout.authenticated {
                return Err(aead_cipher(alg).err().unwrap_or_else(not_decryptable));
            }
            let (cipher, iv) = cbc_cipher(alg)?;
            let content_key = unwrap_content_key(recipient, key, cipher.key_len())?;
            let mut decryptor = provider
                .cipher(Cbc {
                    cipher,
                    direction: Direction::Decrypt,
                    key: &content_key,
                    iv: &iv,
                })
                .map_err(|_| not_decryptable())?;
            layout.for_each_ciphertext_piece(enveloped, |piece| emit(&decryptor.update(piece)))?;
            return emit(&decryptor.finish().map_err(|_| not_decryptable())?);
        };
        let (mut opener, tag_len) = gcm_opener(cipher, alg, recipient, key, provider)?;
        let tag = if layout.authenticated {
            let end =
                layout.for_each_ciphertext_piece(enveloped, |piece| emit(&opener.update(piece)))?;
            layout.mac_after(enveloped, end)?
        } else {
            // The tag is the content's last bytes: each piece is held back
            // by as much until the next one shows it is not the end.
            let mut held: Vec<u8> = Vec::with_capacity(tag_len);
            layout.for_each_ciphertext_piece(enveloped, |piece| {
                held.extend_from_slice(piece);
                let ready = held.len().saturating_sub(tag_len);
                let plain = opener.update(&held[..ready]);
                held.drain(..ready);
                emit(&plain)
            })?;
            held
        };
        if tag.len() != tag_len {
            return Err(Error::malformed(
                "the AES-GCM tag length differs from icvLen",
            ));
        }
        return opener.open_finish(&tag).map_err(gcm_error);
    }
    match read_envelope(enveloped)? {
        Encrypted::Enveloped(enveloped) => {
            let recipient = find_recipient(&enveloped.recip_infos, &ours)?;
            let alg = &enveloped.encrypted_content.content_enc_alg;
            let ciphertext = enveloped
                .encrypted_content
                .encrypted_content
                .as_ref()
                .ok_or_else(|| {
                    Error::malformed("the EnvelopedData carries no encrypted content")
                })?;
            if let Some(cipher) = AeadCipher::from_oid(&alg.oid) {
                // The tag is the end of the encrypted content.
                let sealed = ciphertext.as_bytes().to_vec();
                return emit(&open_gcm(
                    cipher, alg, recipient, key, sealed, None, provider,
                )?);
            }
            let (cipher, iv) = cbc_cipher(alg)?;
            let content_key = unwrap_content_key(recipient, key, cipher.key_len())?;
            let plain = provider
                .cipher_all(
                    Cbc {
                        cipher,
                        direction: Direction::Decrypt,
                        key: &content_key,
                        iv: &iv,
                    },
                    ciphertext.as_bytes(),
                )
                .map_err(|_| not_decryptable())?;
            emit(&plain)
        }
        Encrypted::AuthEnveloped(enveloped) => {
            if enveloped.auth_attrs.is_some() {
                return Err(Error::UnsupportedAlgorithm(
                    "AuthEnvelopedData with authenticated attributes".into(),
                ));
            }
            let recipient = find_recipient(&enveloped.recip_infos, &ours)?;
            let alg = &enveloped.auth_encrypted_content_info.content_enc_alg;
            let cipher = aead_cipher(alg)?;
            let mac = enveloped.mac.as_bytes();
            let mut sealed = enveloped
                .auth_encrypted_content_info
                .encrypted_content
                .as_ref()
                .ok_or_else(|| {
                    Error::malformed("the AuthEnvelopedData carries no encrypted content")
                })?
                .as_bytes()
                .to_vec();
            sealed.extend_from_slice(mac);
            let plain = open_gcm(
                cipher,
                alg,
                recipient,
                key,
                sealed,
                Some(mac.len()),
                provider,
            )?;
            emit(&plain)
        }
        Encrypted::Other(content_type) => Err(Error::malformed(format!(
            "the encrypted body holds CMS content type {content_type}, not EnvelopedData or AuthEnvelopedData"
        ))),
    }
}

/// A GCM failure as the engine says it: an algorithm we lack, or content
/// that does not decrypt.
fn gcm_error(error: CryptoError) -> Error {
    match error {
        CryptoError::UnsupportedAlgorithm(what) => Error::UnsupportedAlgorithm(what),
        _ => not_decryptable(),
    }
}

/// The nonce and tag length of AES-GCM parameters (RFC 5084 §3.2): the tag
/// is as long as icvLen says, 12 when absent.
fn gcm_parameters(alg: &AlgorithmIdentifierOwned) -> Result<(Vec<u8>, usize), Error> {
    let params: GcmParams = alg
        .parameters
        .as_ref()
        .ok_or_else(|| Error::malformed("AES-GCM without parameters"))?
        .decode_as()?;
    let tag_len = params.icv_len.unwrap_or(12) as usize;
    if !(12..=16).contains(&tag_len) {
        return Err(Error::malformed(format!(
            "an AES-GCM icvLen of {tag_len} (RFC 5084 §3.2 allows 12 to 16)"
        )));
    }
    Ok((params.nonce.as_bytes().to_vec(), tag_len))
}

/// A running AES-GCM opening of the content sent to `recipient` under the
/// parameters in `alg`, and the length of the tag it must end with.
fn gcm_opener(
    cipher: AeadCipher,
    alg: &AlgorithmIdentifierOwned,
    recipient: &KeyTransRecipientInfo,
    key: &dyn PrivateKey,
    provider: &dyn CryptoProvider,
) -> Result<(Box<dyn crate::crypto::Aead + Send>, usize), Error> {
    let (nonce, tag_len) = gcm_parameters(alg)?;
    let content_key = unwrap_content_key(recipient, key, cipher.key_len())?;
    let gcm = Gcm {
        cipher,
        key: &content_key,
        nonce: &nonce,
        aad: &[],
        tag_len,
    };
    let opener = provider.aead(gcm, Direction::Decrypt).map_err(gcm_error)?;
    Ok((opener, tag_len))
}

/// Opens AES-GCM content (RFC 5084) sent to `recipient`: `sealed` is the
/// ciphertext followed by its tag; `mac_len` is the length of an
/// AuthEnvelopedData's separate tag, which must agree with icvLen.
fn open_gcm(
    cipher: AeadCipher,
    alg: &AlgorithmIdentifierOwned,
    recipient: &KeyTransRecipientInfo,
    key: &dyn PrivateKey,
    sealed: Vec<u8>,
    mac_len: Option<usize>,
    provider: &dyn CryptoProvider,
) -> Result<Vec<u8>, Error> {
    let (mut opener, tag_len) = gcm_opener(cipher, alg, recipient, key, provider)?;
    if mac_len.is_some_and(|len| len != tag_len) || sealed.len() < tag_len {
        return Err(Error::malformed(
            "the AES-GCM tag length differs from icvLen",
        ));
    }
    let (ciphertext, tag) = sealed.split_at(sealed.len() - tag_len);
    let plain = opener.update(ciphertext);
    opener.open_finish(tag).map_err(gcm_error)?;
    Ok(plain)
}

/// What an encrypted body holds (RFC 5652 §6.1, RFC 5083 §2.1).
enum Encrypted {
    Enveloped(EnvelopedData),
    AuthEnveloped(AuthEnvelopedData),
    /// Some other CMS content type.
    Other(der::oid::ObjectIdentifier),
}

/// Decodes a whole encrypted body (BER, as senders write it).
fn read_envelope(enveloped: &dyn Source) -> Result<Encrypted, Error> {
    let enveloped_der = bytes::whole(enveloped)?;
    let info = ContentInfo::from_ber(&enveloped_der).map_err(|e| {
        Error::malformed(format!("the encrypted body is not a CMS ContentInfo: {e}"))
    })?;
    if info.content_type == oids::ENVELOPED_DATA {
        info.content
            .decode_as_encoding(EncodingRules::Ber)
            .map(Encrypted::Enveloped)
            .map_err(|e| Error::malformed(format!("invalid EnvelopedData: {e}")))
    } else if info.content_type == oids::AUTH_ENVELOPED_DATA {
        info.content
            .decode_as_encoding(EncodingRules::Ber)
            .map(Encrypted::AuthEnveloped)
            .map_err(|e| Error::malformed(format!("invalid AuthEnvelopedData: {e}")))
    } else {
        Ok(Encrypted::Other(info.content_type))
    }
}

/// The AES-GCM cipher an AuthEnvelopedData names.
fn aead_cipher(alg: &AlgorithmIdentifierOwned) -> Result<AeadCipher, Error> {
    AeadCipher::from_oid(&alg.oid).ok_or_else(|| {
        Error::UnsupportedAlgorithm(format!("authenticated encryption algorithm {}", alg.oid))
    })
}

/// Identifier octets on the path to an EnvelopedData's ciphertext (X.690 §8.1.2).
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
/// `[0]`, constructed: ContentInfo's explicit content, EnvelopedData's
/// originatorInfo, a chunked encryptedContent.
const CONTEXT_0_CONSTRUCTED: u8 = 0xa0;
/// `[0]`, primitive: an encryptedContent in one piece.
const CONTEXT_0_PRIMITIVE: u8 = 0x80;

/// Where the parts of an EnvelopedData (RFC 5652 §6.1) lie in a body read
/// a piece at a time: what is needed to find the key, decoded; the
/// ciphertext, only located.
///
/// ```text
/// ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT EnvelopedData }
/// EnvelopedData ::= SEQUENCE { version, originatorInfo [0] OPTIONAL,
///     recipientInfos SET, encryptedContentInfo SEQUENCE {
///         contentType, contentEncryptionAlgorithm,
///         encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL },
///     unprotectedAttrs [1] OPTIONAL }
/// ```
///
/// The containers may use the definite or the indefinite form, and the
/// encryptedContent may be one primitive string or a constructed one of
/// primitive chunks (BER, as streaming encoders write it). Anything else
/// (originatorInfo, a recipientInfos of indefinite length, no content) is
/// left to the whole-message decoder.
pub struct EnvelopeLayout {
    recipients: RecipientInfos,
    algorithm: AlgorithmIdentifierOwned,
    /// The `[0]` encryptedContent element.
    content: ber::Header,
    /// An AuthEnvelopedData (RFC 5083), whose tag follows the content.
    authenticated: bool,
}

impl EnvelopeLayout {
    /// The layout of `source`, or `None` when it is not an EnvelopedData
    /// laid out as above.
    pub fn read(source: &dyn Source) -> Result<Option<EnvelopeLayout>, Error> {
        match Self::walk(source) {
            Ok(layout) => Ok(layout),
            // Not the expected layout: the whole-message decoder says what is wrong.
            Err(Error::Malformed(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    fn walk(source: &dyn Source) -> Result<Option<EnvelopeLayout>, Error> {
        let info = ber::expect(source, 0, SEQUENCE, "ContentInfo")?;
        let content_type = ber::expect(source, info.content_start(), OID, "contentType")?;
        let content_type = ber::read_element(source, &content_type, 64)?;
        let authenticated = match der::oid::ObjectIdentifier::from_der(&content_type)? {
            oids::ENVELOPED_DATA => false,
            oids::AUTH_ENVELOPED_DATA => true,
            _ => return Ok(None),
        };
        let explicit = ber::expect(
            source,
            info.content_start() + content_type.len() as u64,
            CONTEXT_0_CONSTRUCTED,
            "[0] content",
        )?;
        let enveloped = ber::expect(source, explicit.content_start(), SEQUENCE, "EnvelopedData")?;
        let version = ber::expect(source, enveloped.content_start(), INTEGER, "version")?;
        let next = version
            .end()
            .ok_or_else(|| Error::malformed("an indefinite version"))?;
        let recipients = ber::header_at(source, next)?;
        if recipients.tag != SET || recipients.length.is_none() {
            // originatorInfo, or an indefinite SET: rare; decoded whole.
            return Ok(None);
        }
        let recipients_der = ber::read_element(source, &recipients, 1 << 20)?;
        let recipients_end = recipients.offset + recipients_der.len() as u64;
        let recipients = RecipientInfos::decode(&mut der::SliceReader::new_with_encoding_rules(
            &recipients_der,
            EncodingRules::Ber,
        )?)?;
        let encrypted = ber::expect(source, recipients_end, SEQUENCE, "EncryptedContentInfo")?;
        let inner_type = ber::expect(source, encrypted.content_start(), OID, "contentType")?;
        let algorithm_at = inner_type
            .end()
            .ok_or_else(|| Error::malformed("an indefinite contentType"))?;
        let algorithm = ber::expect(source, algorithm_at, SEQUENCE, "contentEncryptionAlgorithm")?;
        let algorithm_der = ber::read_element(source, &algorithm, 64 << 10)?;
        let algorithm = AlgorithmIdentifierOwned::from_der(&algorithm_der)?;
        let content = ber::header_at(source, algorithm_at + algorithm_der.len() as u64)?;
        if content.tag != CONTEXT_0_PRIMITIVE && content.tag != CONTEXT_0_CONSTRUCTED {
            return Ok(None);
        }
        Ok(Some(EnvelopeLayout {
            recipients,
            algorithm,
            content,
            authenticated,
        }))
    }

    /// Calls `each` with the ciphertext, in order, at most [`PIECE`] bytes
    /// at a time: the one string, or each chunk of a constructed one.
    /// Returns where the encryptedContent element ends.
    fn for_each_ciphertext_piece(
        &self,
        source: &dyn Source,
        each: impl FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        ber::for_each_string_piece(source, &self.content, "encrypted content", each)
    }

    /// The AuthEnvelopedData's tag, the `mac` OCTET STRING after the
    /// encrypted content (at `end`) and its containers' ends (RFC 5083 §2.1).
    fn mac_after(&self, source: &dyn Source, mut at: u64) -> Result<Vec<u8>, Error> {
        // The EncryptedContentInfo ends with its content, in the definite
        // form right there, in the indefinite one after its end-of-contents.
        let info_end = ber::header_at(source, at)?;
        if info_end.is_end_of_contents() {
            at += 2;
        }
        let next = ber::header_at(source, at)?;
        if next.tag == 0xa1 {
            return Err(Error::UnsupportedAlgorithm(
                "AuthEnvelopedData with authenticated attributes".into(),
            ));
        }
        if next.tag != OCTET_STRING {
            return Err(Error::malformed(
                "the AuthEnvelopedData has no mac after its content",
            ));
        }
        let mac = ber::read_element(source, &next, 64)?;
        Ok(mac[next.header_len as usize..].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGESTS: [DigestAlgorithm; 5] = [
        DigestAlgorithm::Sha1,
        DigestAlgorithm::Sha224,
        DigestAlgorithm::Sha256,
        DigestAlgorithm::Sha384,
        DigestAlgorithm::Sha512,
    ];

    #[test]
    fn every_oaep_digest_pair_survives_its_cms_parameters() {
        for hash in DIGESTS {
            for mgf in DIGESTS {
                let transport = KeyTransport::RsaOaep { hash, mgf };
                let algorithm = key_transport_algorithm(transport).unwrap();
                assert_eq!(key_transport_scheme(&algorithm).unwrap(), transport);
            }
        }
    }

    /// RFC 4055 §4.1: SHA-1 is each field's DEFAULT, which DER leaves out.
    #[test]
    fn oaep_parameters_leave_out_their_sha1_defaults() {
        let der = |transport| {
            key_transport_algorithm(transport)
                .unwrap()
                .parameters
                .unwrap()
                .to_der()
                .unwrap()
        };
        assert_eq!(der(KeyTransport::oaep(DigestAlgorithm::Sha1)), [0x30, 0x00]);
        let mixed = der(KeyTransport::RsaOaep {
            hash: DigestAlgorithm::Sha256,
            mgf: DigestAlgorithm::Sha1,
        });
        let params: RsaOaepParams = der::Decode::from_der(&mixed).unwrap();
        assert_eq!(params.hash.unwrap().oid, oids::SHA256);
        assert!(params.mask_gen.is_none());
        // Absent parameters, or NULL as some old stacks write, mean SHA-1 throughout.
        let bare = AlgorithmIdentifierOwned {
            oid: oids::RSAES_OAEP,
            parameters: None,
        };
        assert_eq!(
            key_transport_scheme(&bare).unwrap(),
            KeyTransport::oaep(DigestAlgorithm::Sha1)
        );
    }
}

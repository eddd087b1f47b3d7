//! The connection configuration: what a user fills in on the connection form.
//!
//! The JSON Schema the flow builder renders comes from these types
//! ([`schema_json`]), so the form and the parser cannot drift apart.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crypto::{AeadCipher, ContentCipher, DigestAlgorithm, KeyTransport, SignatureScheme};
use crate::error::Error;
use crate::smime::Cert;
use crate::smime::ContentEncryption;

/// An AS2 connection between our station and one trading partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "AS2 connection")]
pub struct Connection {
    /// A name for this connection, shown in lists and logs.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Your AS2 station: how partners address you.
    pub station: Station,
    /// The trading partner's AS2 station.
    pub partner: Partner,
    /// How you authenticate to the partner's AS2 URL over HTTP.
    #[serde(default, skip_serializing_if = "Auth::is_none")]
    pub auth: Auth,
    /// Whether the rate-limit fields apply: the form's "Configure API rate
    /// limits" box. Unchecked (`false`), `rate_limit` is kept but not used;
    /// left out, `rate_limit` applies when it is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configure_rate_limits: Option<bool>,
    /// A limit on how fast you send to the partner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Less common settings.
    #[serde(default, skip_serializing_if = "Advanced::is_default")]
    pub advanced: Advanced,
}

/// A secret (a password, a token). A saved connection names it in the
/// host's secret store (`secret`); on the form it is typed in (`value`,
/// write-only), and the host moves it into its store when it saves the
/// connection. The connector refuses a configuration that still holds a value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The name of the secret in the host's secret store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The secret itself, as typed into the form; never returned once saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("writeOnly" = true))]
    pub value: Option<String>,
}

impl SecretRef {
    /// A reference to the stored secret `name`.
    pub fn named(name: impl Into<String>) -> Self {
        SecretRef {
            secret: Some(name.into()),
            value: None,
        }
    }

    /// The stored secret's name; an error naming `field` when there is none.
    pub fn name(&self, field: &str) -> Result<&str, Error> {
        match (&self.secret, &self.value) {
            (Some(name), None) if !name.trim().is_empty() => Ok(name),
            (_, Some(_)) => Err(Error::config(
                field,
                "this secret was typed into the configuration: save the connection (`as2-harness connections save`) so it moves into the secret store",
            )),
            _ => Err(Error::config(
                field,
                "name the secret store entry: {\"secret\": \"NAME\"}",
            )),
        }
    }
}

/// HTTP authentication towards the partner's AS2 URL.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum Auth {
    /// No HTTP authentication.
    #[default]
    #[serde(rename = "none")]
    None,
    /// HTTP Basic authentication (RFC 7617).
    #[serde(rename = "basic")]
    Basic(BasicAuth),
    /// A bearer or API token, in a header or a URL parameter.
    #[serde(rename = "token")]
    Token(TokenAuth),
}

impl Auth {
    /// Whether no authentication is configured.
    pub fn is_none(&self) -> bool {
        *self == Auth::None
    }

    /// The rule that tells an authentication failure, when any auth is configured.
    pub fn failure(&self) -> Option<&FailureRule> {
        match self {
            Auth::None => None,
            Auth::Basic(basic) => Some(&basic.fail),
            Auth::Token(token) => Some(&token.fail),
        }
    }
}

/// HTTP Basic credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    #[schemars(length(min = 1))]
    pub username: String,
    /// The password, kept in the host's secret store.
    pub password: SecretRef,
    /// How the partner signals that the credentials were refused.
    #[serde(default)]
    pub fail: FailureRule,
}

/// Where a token travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TokenLocation {
    /// In a header: `<header_name>: <scheme> <token>`.
    #[serde(rename = "header")]
    Header,
    /// As a URL query parameter `<parameter_name>=<token>`.
    #[serde(rename = "url")]
    Url,
    /// In the request body. An AS2 message body is the signed and encrypted
    /// S/MIME entity and cannot carry a token: refused by validation.
    #[serde(rename = "body")]
    Body,
}

/// Token authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenAuth {
    /// The token, kept in the host's secret store.
    pub token: SecretRef,
    /// Where the token travels.
    #[serde(default = "default_token_location")]
    pub location: TokenLocation,
    /// The header that carries the token.
    #[serde(default = "default_token_header")]
    pub header_name: String,
    /// The scheme before the token in the header (RFC 6750: `Bearer`); empty for the bare token.
    #[serde(default = "default_token_scheme")]
    pub scheme: String,
    /// The URL parameter that carries the token.
    #[serde(default = "default_token_parameter")]
    pub parameter_name: String,
    /// Whether the token-refresh fields apply: the form's "Configure token
    /// refresh" box. Unchecked (`false`), `refresh` is kept but not used;
    /// left out, `refresh` applies when it is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configure_refresh: Option<bool>,
    /// How to get a new token when the partner refuses the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<TokenRefresh>,
    /// How the partner signals that the token was refused.
    #[serde(default)]
    pub fail: FailureRule,
}

/// The request that fetches a new token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRefresh {
    /// The refresh token sent with the request, kept in the host's secret store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<SecretRef>,
    /// Path of the refresh endpoint, relative to the partner URL's host, e.g. `/oauth/token`.
    #[schemars(length(min = 1))]
    pub relative_uri: String,
    /// How the request body is encoded.
    #[serde(default = "default_media_type")]
    pub media_type: RefreshMediaType,
    /// The HTTP method.
    #[serde(default = "default_refresh_method")]
    pub method: RefreshMethod,
    /// JSON pointer (RFC 6901) of the new token in the response, e.g. `/access_token`.
    #[serde(default = "default_token_path")]
    pub token_path: String,
    /// Extra header fields of the refresh request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderField>,
}

/// A header field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderField {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// Body encoding of a token refresh request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RefreshMediaType {
    /// `application/json`: `{"refresh_token": "…", "grant_type": "refresh_token"}`.
    #[serde(rename = "json")]
    Json,
    /// `application/x-www-form-urlencoded` (RFC 6749 §6).
    #[serde(rename = "form")]
    Form,
}

/// HTTP method of a token refresh request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RefreshMethod {
    /// POST (RFC 6749 §6).
    #[serde(rename = "POST")]
    Post,
    /// PUT.
    #[serde(rename = "PUT")]
    Put,
    /// GET, the refresh token as a URL parameter.
    #[serde(rename = "GET")]
    Get,
}

/// How a partner signals a refusal (of credentials, or of our pace): a
/// status code, or one of some values at a JSON pointer of a JSON response body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureRule {
    /// The status code of the refusal (default: 401 for authentication, 429 for rate limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub status_code: Option<u16>,
    /// JSON pointer into a JSON response body, e.g. `/error/code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Values at `path` that mean a refusal, e.g. `["invalid_token"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A limit on how fast messages go to the partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Most calls per interval.
    #[schemars(range(min = 1))]
    pub limit: u32,
    /// The interval, in seconds.
    #[serde(default = "default_rate_interval")]
    #[schemars(range(min = 1))]
    pub interval_seconds: u32,
    /// How the partner says "too fast", besides HTTP 429 and 503.
    #[serde(default)]
    pub fail: FailureRule,
}

/// Less common settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Advanced {
    /// Retry calls the partner refuses as too fast (429, 503, or the rate
    /// limit's failure rule), after its Retry-After or a growing pause.
    #[serde(default = "default_true")]
    pub auto_recover_rate_limits: bool,
    /// Most sends in flight at once to this partner, when recovering from rate limits.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 25))]
    pub target_concurrency: u32,
    /// Warn this many days before your or the partner's certificate
    /// expires (in validation, test-connection and the connection's
    /// status); 0 turns the warning off. An expired certificate is an error
    /// whatever this says.
    #[serde(default = "default_expiry_warning_days")]
    #[schemars(range(min = 0, max = 365))]
    pub certificate_expiry_warning_days: u32,
}

impl Default for Advanced {
    fn default() -> Self {
        Advanced {
            auto_recover_rate_limits: true,
            target_concurrency: default_concurrency(),
            certificate_expiry_warning_days: default_expiry_warning_days(),
        }
    }
}

impl Advanced {
    /// How long before a certificate's expiry its warning starts.
    pub fn expiry_warning(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.certificate_expiry_warning_days) * 86400)
    }

    /// Whether every setting has its default.
    pub fn is_default(&self) -> bool {
        *self == Advanced::default()
    }
}

/// Our side of the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Station {
    /// Your AS2 identifier (AS2-From on what you send), 1–128 printable ASCII characters (RFC 4130 §6.2).
    #[schemars(length(min = 1, max = 128))]
    pub as2_id: String,
    /// The URL partners post messages and asynchronous MDNs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Name of your private key in the host's key store. The key itself never
    /// leaves the host; its certificate is the one partners encrypt to.
    #[serde(default)]
    pub private_key: String,
    /// Your private key as pasted into the form (PKCS#8 PEM, write-only).
    /// Saving the connection moves it into the host's key store with
    /// `certificate` and leaves only its name in `private_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_pem: Option<SecretRef>,
    /// During a certificate rollover: the key store entry of your next key,
    /// whose certificate partners may already encrypt to. Messages decrypt
    /// with either key; MDNs are signed with `private_key` until you switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_private_key: Option<String>,
    /// A key store entry presented as your TLS client certificate when the
    /// partner's https URL asks for one (mutual TLS). Its certificate must be
    /// issued by a CA the partner trusts; it may differ from your AS2 key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_key: Option<String>,
    /// Digest of the MIC and of the signature in the MDNs you return, when
    /// the partner names no signed-receipt-micalg and did not sign the message
    /// (a signed message's MIC uses the partner's own signing digest).
    #[serde(default = "default_digest")]
    pub mdn_signing: Digest,
    /// Transfer encoding of the signature in the MDNs you return.
    #[serde(default = "default_base64")]
    pub mdn_encoding: TransferEncoding,
    /// Your X.509 certificate (PEM), the one partners encrypt to and verify
    /// your signatures with. When given, it must be the key store entry's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// MDNs are always asked of partners: a message without one proves nothing.
    #[serde(default = "default_true")]
    #[schemars(extend("const" = true, "readOnly" = true))]
    pub require_mdn: bool,
    /// The content encryption partners must use; `any` accepts every
    /// supported one (RC2 included, for legacy partners). A message encrypted
    /// otherwise gets `insufficient-message-security`.
    #[serde(default = "default_any_encryption")]
    pub decryption: EncryptionRequirement,
    /// The signing digest partners must use; `any` accepts every supported one.
    /// A message signed otherwise gets `insufficient-message-security`.
    #[serde(default = "default_any_digest")]
    pub signature_verification: DigestRequirement,
    /// How partners should encode what they send you. Both are always read;
    /// this is what you tell your partners.
    #[serde(default = "default_base64")]
    pub incoming_encoding: TransferEncoding,
    /// The addresses your AS2 endpoint listens on, for partners' firewalls
    /// (informational: filled in by the host).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("readOnly" = true))]
    pub ip_addresses: Vec<String>,
    /// HTTP Basic credentials (RFC 7617) the partner must send with every
    /// message and asynchronous MDN to your endpoint. Missing or wrong ones
    /// are answered 401 before the message is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<InboundBasicAuth>,
}

/// Credentials a partner must present to your AS2 endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundBasicAuth {
    /// The user name the partner sends.
    #[schemars(length(min = 1))]
    pub username: String,
    /// The password the partner sends, kept in the host's secret store.
    pub password: SecretRef,
}

/// Declares an enum of a first choice of its own followed by the content
/// ciphers, each with its wire name (written here once) and its label.
macro_rules! cipher_choices {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(#[$first_meta:meta])*
            $first:ident,
        }
        labels: [$des:literal, $cbc128:literal, $cbc192:literal, $cbc256:literal,
                 $gcm128:literal, $gcm192:literal, $gcm256:literal $(,)?]
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $(#[$first_meta])*
            $first,
            #[doc = $des]
            #[serde(rename = "3des")]
            TripleDes,
            #[doc = $cbc128]
            #[serde(rename = "aes128-cbc")]
            Aes128Cbc,
            #[doc = $cbc192]
            #[serde(rename = "aes192-cbc")]
            Aes192Cbc,
            #[doc = $cbc256]
            #[serde(rename = "aes256-cbc")]
            Aes256Cbc,
            #[doc = $gcm128]
            #[serde(rename = "aes128-gcm")]
            Aes128Gcm,
            #[doc = $gcm192]
            #[serde(rename = "aes192-gcm")]
            Aes192Gcm,
            #[doc = $gcm256]
            #[serde(rename = "aes256-gcm")]
            Aes256Gcm,
        }
    };
}

cipher_choices! {
    /// A required content encryption, or any.
    pub enum EncryptionRequirement {
        /// Any supported encryption.
        #[serde(rename = "any")]
        Any,
    }
    labels: ["Triple DES only.", "AES-128-CBC only.", "AES-192-CBC only.", "AES-256-CBC only.",
             "AES-128-GCM only.", "AES-192-GCM only.", "AES-256-GCM only."]
}

impl EncryptionRequirement {
    /// Whether content encrypted with `used` meets the requirement.
    pub fn allows(self, used: ContentEncryption) -> bool {
        let required = match self {
            EncryptionRequirement::Any => return true,
            EncryptionRequirement::TripleDes => Encryption::TripleDes,
            EncryptionRequirement::Aes128Cbc => Encryption::Aes128Cbc,
            EncryptionRequirement::Aes192Cbc => Encryption::Aes192Cbc,
            EncryptionRequirement::Aes256Cbc => Encryption::Aes256Cbc,
            EncryptionRequirement::Aes128Gcm => Encryption::Aes128Gcm,
            EncryptionRequirement::Aes192Gcm => Encryption::Aes192Gcm,
            EncryptionRequirement::Aes256Gcm => Encryption::Aes256Gcm,
        };
        required.content_encryption() == Some(used)
    }
}

/// A required signing digest, or any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DigestRequirement {
    /// Any supported digest.
    #[serde(rename = "any")]
    Any,
    /// SHA-1 only.
    #[serde(rename = "sha1")]
    Sha1,
    /// SHA-224 only.
    #[serde(rename = "sha224")]
    Sha224,
    /// SHA-256 only.
    #[serde(rename = "sha256")]
    Sha256,
    /// SHA-384 only.
    #[serde(rename = "sha384")]
    Sha384,
    /// SHA-512 only.
    #[serde(rename = "sha512")]
    Sha512,
}

impl DigestRequirement {
    /// Whether a signature with `digest` meets the requirement.
    pub fn allows(self, digest: DigestAlgorithm) -> bool {
        match self {
            DigestRequirement::Any => true,
            DigestRequirement::Sha1 => digest == DigestAlgorithm::Sha1,
            DigestRequirement::Sha224 => digest == DigestAlgorithm::Sha224,
            DigestRequirement::Sha256 => digest == DigestAlgorithm::Sha256,
            DigestRequirement::Sha384 => digest == DigestAlgorithm::Sha384,
            DigestRequirement::Sha512 => digest == DigestAlgorithm::Sha512,
        }
    }
}

/// The partner's side of the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Partner {
    /// The partner's AS2 identifier (AS2-To on what you send), 1–128 printable ASCII characters.
    #[schemars(length(min = 1, max = 128))]
    pub as2_id: String,
    /// The partner's AS2 URL (http or https).
    #[schemars(length(min = 1))]
    pub url: String,
    /// The partner's X.509 certificate, PEM. Used to encrypt to them and to
    /// verify their signatures and MDNs.
    #[schemars(length(min = 1))]
    pub certificate: String,
    /// CA certificates (PEM, one or more) to trust for the partner's https
    /// URL, in addition to the system's root certificates: for a partner
    /// whose TLS server certificate comes from a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_certificates: Option<String>,
    /// How to sign what you send; `none` sends unsigned.
    #[serde(default = "default_signing")]
    pub signing: Signing,
    /// The RSA signature scheme: PKCS#1 v1.5 (what every partner reads) or RSASSA-PSS.
    #[serde(default = "default_signature_scheme")]
    pub signature_scheme: SignatureSchemeChoice,
    /// How to encrypt what you send; `none` sends unencrypted.
    #[serde(default = "default_encryption")]
    pub encryption: Encryption,
    /// How the content key is encrypted to the partner's certificate.
    #[serde(default = "default_key_transport")]
    pub key_transport: KeyTransportChoice,
    /// Compress what you send (RFC 5402), before or after signing.
    #[serde(default = "default_compression")]
    pub compression: Compression,
    /// Transfer encoding of the encrypted (or compressed) body.
    #[serde(default = "default_binary")]
    pub encoding: TransferEncoding,
    /// Transfer encoding of the signature part; applies when not encrypting.
    #[serde(default = "default_base64")]
    pub signature_encoding: TransferEncoding,
    /// The partner wants the MDNs for what it sends you delivered
    /// asynchronously, to `async_mdn_url`.
    #[serde(default)]
    pub requires_async_mdn: bool,
    /// Where your asynchronous MDNs to the partner go. When set, an MDN goes
    /// only there, whatever URL a message names (Receipt-Delivery-Option).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_mdn_url: Option<String>,
    /// The MDN to request from the partner.
    #[serde(default = "default_mdn")]
    pub mdn: MdnMode,
    /// Whether the partner returns the MDN in the HTTP response (`sync`) or
    /// POSTs it later to your station URL (`async`, RFC 4130 §7.3:
    /// Receipt-Delivery-Option). Async needs `station.url`.
    #[serde(default = "default_mdn_delivery")]
    pub mdn_delivery: MdnDelivery,
    /// How many times a message may go out: the first send plus resends under
    /// the same Message-ID when the partner cannot be reached, answers with a
    /// 5xx status, or drops the connection before the MDN (AS2-Reliability).
    /// A partner that detects duplicates stores it once.
    #[serde(default = "default_send_attempts")]
    #[schemars(range(min = 1, max = 10))]
    pub send_attempts: u32,
    /// How long to wait for the MDN before sending again, in seconds: for a
    /// synchronous MDN, the HTTP answer that carries it; for an asynchronous
    /// one, its POST to your station URL. Unset: 60 s synchronous, 1,800 s
    /// asynchronous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub mdn_timeout_seconds: Option<u32>,
    /// The MIC algorithm to ask for in signed MDNs (default: the signing digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdn_micalg: Option<Digest>,
    /// Several documents sent together go in one message (RFC 6362) when:
    /// `announced`, the partner said it reads them (EDIINT-Features:
    /// multiple-attachments, on a message or MDN it sent); `always`;
    /// `never`, one message per document.
    #[serde(default, skip_serializing_if = "MultipleAttachments::is_default")]
    pub multiple_attachments: MultipleAttachments,
    /// MICs computed in these known wrong ways still prove receipt (the
    /// MIC doctor names the way a partner's MDN took; a warning stays on
    /// each such MDN). Empty: only the RFC 4130 §7.3.1 MIC does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept_mic_variants: Vec<crate::doctor::MicVariant>,
    /// Verify the partner's signatures only over the bytes as received, never
    /// over their CRLF-canonical form.
    #[serde(default)]
    pub prevent_canonicalization: bool,
    /// Reject inbound messages that are not signed.
    #[serde(default = "default_true")]
    pub require_signed: bool,
    /// Reject inbound messages that are not encrypted.
    #[serde(default = "default_true")]
    pub require_encrypted: bool,
}

/// When several documents go in one message (RFC 6362).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MultipleAttachments {
    /// When the partner announced multiple-attachments in EDIINT-Features.
    #[default]
    Announced,
    /// Always, announced or not.
    Always,
    /// Never: one message per document.
    Never,
}

impl MultipleAttachments {
    fn is_default(&self) -> bool {
        *self == MultipleAttachments::Announced
    }
}

/// A digest algorithm choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Digest {
    /// SHA-1 (legacy partners only).
    #[serde(rename = "sha1")]
    Sha1,
    /// SHA-224.
    #[serde(rename = "sha224")]
    Sha224,
    /// SHA-256 (recommended).
    #[serde(rename = "sha256")]
    Sha256,
    /// SHA-384.
    #[serde(rename = "sha384")]
    Sha384,
    /// SHA-512.
    #[serde(rename = "sha512")]
    Sha512,
}

impl From<Digest> for DigestAlgorithm {
    fn from(digest: Digest) -> Self {
        match digest {
            Digest::Sha1 => DigestAlgorithm::Sha1,
            Digest::Sha224 => DigestAlgorithm::Sha224,
            Digest::Sha256 => DigestAlgorithm::Sha256,
            Digest::Sha384 => DigestAlgorithm::Sha384,
            Digest::Sha512 => DigestAlgorithm::Sha512,
        }
    }
}

/// Signing of outbound messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Signing {
    /// Do not sign.
    #[serde(rename = "none")]
    None,
    /// RSA PKCS#1 v1.5 with SHA-1.
    #[serde(rename = "sha1")]
    Sha1,
    /// RSA PKCS#1 v1.5 with SHA-224.
    #[serde(rename = "sha224")]
    Sha224,
    /// RSA PKCS#1 v1.5 with SHA-256 (recommended).
    #[serde(rename = "sha256")]
    Sha256,
    /// RSA PKCS#1 v1.5 with SHA-384.
    #[serde(rename = "sha384")]
    Sha384,
    /// RSA PKCS#1 v1.5 with SHA-512.
    #[serde(rename = "sha512")]
    Sha512,
}

impl From<SignatureSchemeChoice> for SignatureScheme {
    fn from(choice: SignatureSchemeChoice) -> Self {
        match choice {
            SignatureSchemeChoice::Pkcs1v15 => SignatureScheme::RsaPkcs1v15,
            SignatureSchemeChoice::Pss => SignatureScheme::RsaPss,
        }
    }
}

impl Signing {
    /// The digest, or `None` for unsigned.
    pub fn digest(self) -> Option<DigestAlgorithm> {
        match self {
            Signing::None => None,
            Signing::Sha1 => Some(DigestAlgorithm::Sha1),
            Signing::Sha224 => Some(DigestAlgorithm::Sha224),
            Signing::Sha256 => Some(DigestAlgorithm::Sha256),
            Signing::Sha384 => Some(DigestAlgorithm::Sha384),
            Signing::Sha512 => Some(DigestAlgorithm::Sha512),
        }
    }
}

/// RSA signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SignatureSchemeChoice {
    /// RSASSA-PKCS1-v1_5 (recommended: every AS2 stack reads it).
    #[serde(rename = "pkcs1v15")]
    Pkcs1v15,
    /// RSASSA-PSS, salt as long as the digest.
    #[serde(rename = "pss")]
    Pss,
}

/// RSA key transport of the content-encryption key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum KeyTransportChoice {
    /// RSAES-PKCS1-v1_5 (recommended: every AS2 stack reads it).
    #[serde(rename = "rsa-pkcs1v15")]
    RsaPkcs1v15,
    /// RSAES-OAEP with SHA-1 (and MGF1-SHA-1).
    #[serde(rename = "rsa-oaep-sha1")]
    RsaOaepSha1,
    /// RSAES-OAEP with SHA-224 (and MGF1-SHA-224).
    #[serde(rename = "rsa-oaep-sha224")]
    RsaOaepSha224,
    /// RSAES-OAEP with SHA-256 (and MGF1-SHA-256).
    #[serde(rename = "rsa-oaep-sha256")]
    RsaOaepSha256,
    /// RSAES-OAEP with SHA-384 (and MGF1-SHA-384).
    #[serde(rename = "rsa-oaep-sha384")]
    RsaOaepSha384,
    /// RSAES-OAEP with SHA-512 (and MGF1-SHA-512).
    #[serde(rename = "rsa-oaep-sha512")]
    RsaOaepSha512,
}

impl From<KeyTransportChoice> for KeyTransport {
    fn from(choice: KeyTransportChoice) -> Self {
        match choice {
            KeyTransportChoice::RsaPkcs1v15 => KeyTransport::RsaPkcs1v15,
            KeyTransportChoice::RsaOaepSha1 => KeyTransport::oaep(DigestAlgorithm::Sha1),
            KeyTransportChoice::RsaOaepSha224 => KeyTransport::oaep(DigestAlgorithm::Sha224),
            KeyTransportChoice::RsaOaepSha256 => KeyTransport::oaep(DigestAlgorithm::Sha256),
            KeyTransportChoice::RsaOaepSha384 => KeyTransport::oaep(DigestAlgorithm::Sha384),
            KeyTransportChoice::RsaOaepSha512 => KeyTransport::oaep(DigestAlgorithm::Sha512),
        }
    }
}

/// Compression of outbound messages (RFC 5402).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Compression {
    /// Do not compress.
    #[serde(rename = "none")]
    None,
    /// Compress the document, then sign the compressed entity.
    #[serde(rename = "before-signing")]
    BeforeSigning,
    /// Sign the document, then compress the signed entity.
    #[serde(rename = "after-signing")]
    AfterSigning,
}

/// A Content-Transfer-Encoding choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TransferEncoding {
    /// Raw bytes.
    #[serde(rename = "binary")]
    Binary,
    /// Base64 text.
    #[serde(rename = "base64")]
    Base64,
}

cipher_choices! {
    /// Encryption of outbound messages.
    pub enum Encryption {
        /// Do not encrypt.
        #[serde(rename = "none")]
        None,
    }
    labels: [
        "Triple DES (legacy partners only).",
        "AES-128-CBC.",
        "AES-192-CBC.",
        "AES-256-CBC (recommended).",
        "AES-128-GCM (AuthEnvelopedData, RFC 5083; not every partner reads it).",
        "AES-192-GCM.",
        "AES-256-GCM.",
    ]
}

impl Encryption {
    /// The content encryption, or `None` for unencrypted.
    pub fn content_encryption(self) -> Option<ContentEncryption> {
        match self {
            Encryption::None => None,
            Encryption::TripleDes => Some(ContentEncryption::Cbc(ContentCipher::DesEde3Cbc)),
            Encryption::Aes128Cbc => Some(ContentEncryption::Cbc(ContentCipher::Aes128Cbc)),
            Encryption::Aes192Cbc => Some(ContentEncryption::Cbc(ContentCipher::Aes192Cbc)),
            Encryption::Aes256Cbc => Some(ContentEncryption::Cbc(ContentCipher::Aes256Cbc)),
            Encryption::Aes128Gcm => Some(ContentEncryption::Gcm(AeadCipher::Aes128Gcm)),
            Encryption::Aes192Gcm => Some(ContentEncryption::Gcm(AeadCipher::Aes192Gcm)),
            Encryption::Aes256Gcm => Some(ContentEncryption::Gcm(AeadCipher::Aes256Gcm)),
        }
    }
}

/// The MDN requested from the partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MdnMode {
    /// Ask for no MDN (no proof of receipt).
    #[serde(rename = "none")]
    None,
    /// Ask for an unsigned synchronous MDN.
    #[serde(rename = "unsigned")]
    Unsigned,
    /// Ask for a signed synchronous MDN (recommended: the only legal proof of receipt).
    #[serde(rename = "signed")]
    Signed,
}

/// How the partner returns the MDN (RFC 4130 §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MdnDelivery {
    /// In the HTTP response to the message.
    #[serde(rename = "sync")]
    Sync,
    /// In a separate POST to your station URL, after the message was answered with 200.
    #[serde(rename = "async")]
    Async,
}

impl Partner {
    /// How long to wait for the MDN, in seconds (`mdn_timeout_seconds`, or
    /// its default for the delivery mode).
    pub fn mdn_timeout_seconds(&self) -> u32 {
        self.mdn_timeout_seconds.unwrap_or(match self.mdn_delivery {
            MdnDelivery::Sync => 60,
            MdnDelivery::Async => 1800,
        })
    }
}

/// A serde path (`partner.url`, `.`) as a JSON pointer (`/partner/url`, and
/// the empty pointer for the whole document, RFC 6901).
pub(crate) fn pointer(path: &str) -> String {
    if path == "." {
        String::new()
    } else {
        format!("/{}", path.replace('.', "/"))
    }
}

/// A deserialization failure as an [`Error::InvalidConfig`] at its JSON pointer.
fn field_error(e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let pointer = pointer(&e.path().to_string());
    Error::config(pointer, e.into_inner().to_string())
}

/// How a configuration value is written in JSON, e.g. `aes256-cbc`.
pub fn wire_name(value: impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The JSON Schema (draft 2020-12) of [`Connection`], pretty-printed: the
/// generated schema, with a human label (`title`) on every enum choice and
/// the rules that tie fields together as `if`/`then` inside `allOf`.
pub fn schema_json() -> String {
    let mut schema = serde_json::to_value(schemars::schema_for!(Connection)).unwrap_or_default();
    label_enum_choices(&mut schema);
    drop_nonstandard_formats(&mut schema);
    optional_as_its_type(&mut schema);
    if let Some(object) = schema.as_object_mut() {
        object.insert("allOf".into(), conditional_rules());
    }
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

/// Each enum choice's description, without its final period, as its title,
/// which form renderers show as the choice's label; the enum itself typed
/// `string`.
fn label_enum_choices(node: &mut serde_json::Value) {
    match node {
        serde_json::Value::Object(object) => {
            // A choice among strings says so at its top, as renderers
            // that pick a widget by `type` (react-jsonschema-form) need.
            let string_choices = object
                .get("oneOf")
                .and_then(|choices| choices.as_array())
                .is_some_and(|choices| {
                    choices
                        .iter()
                        .all(|c| c.get("const").is_some_and(|v| v.is_string()))
                });
            if string_choices && !object.contains_key("type") {
                object.insert("type".into(), "string".into());
            }
            if object.contains_key("const")
                && !object.contains_key("title")
                && let Some(description) = object.get("description").and_then(|d| d.as_str())
            {
                let title = description.trim().trim_end_matches('.').to_string();
                object.insert("title".into(), title.into());
            }
            for child in object.values_mut() {
                label_enum_choices(child);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(label_enum_choices),
        _ => {}
    }
}

/// Writes an optional field (`anyOf: [T, null]`) as `T`: a form leaves an
/// unset field out rather than sending null, and form renderers draw `T`'s
/// own widget (a choice, a group of fields) instead of a choice between
/// `T` and nothing. The connector still reads an explicit null as unset.
fn optional_as_its_type(node: &mut serde_json::Value) {
    match node {
        serde_json::Value::Object(object) => {
            let inner = object
                .get("anyOf")
                .and_then(|choices| choices.as_array())
                .filter(|choices| choices.len() == 2)
                .and_then(|choices| {
                    let null = serde_json::json!({ "type": "null" });
                    match (choices[0] == null, choices[1] == null) {
                        (false, true) => Some(choices[0].clone()),
                        (true, false) => Some(choices[1].clone()),
                        _ => None,
                    }
                });
            if let Some(serde_json::Value::Object(inner)) = inner {
                object.remove("anyOf");
                for (key, value) in inner {
                    object.entry(key).or_insert(value);
                }
            }
            object.values_mut().for_each(optional_as_its_type);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(optional_as_its_type),
        _ => {}
    }
}

/// Removes the `format`s schemars gives Rust's integer types (`uint16`,
/// `uint32`): they are not among JSON Schema's formats (2020-12 §7.3), and
/// form renderers' validators warn about each; `minimum`/`maximum` carry
/// the range.
fn drop_nonstandard_formats(node: &mut serde_json::Value) {
    match node {
        serde_json::Value::Object(object) => {
            if object
                .get("format")
                .and_then(|f| f.as_str())
                .is_some_and(|f| f.starts_with("uint") || f.starts_with("int"))
            {
                object.remove("format");
            }
            object.values_mut().for_each(drop_nonstandard_formats);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nonstandard_formats),
        _ => {}
    }
}

/// Rules between fields, as JSON Schema conditionals (the same rules
/// the form's check (`validate`) applies with its messages).
fn conditional_rules() -> serde_json::Value {
    serde_json::json!([
        {
            "description": "Asynchronous MDNs are POSTed to your station URL: it is required then.",
            "if": {
                "properties": {
                    "partner": {
                        "properties": { "mdn_delivery": { "const": "async" } },
                        "required": ["mdn_delivery"]
                    }
                },
                "required": ["partner"]
            },
            "then": {
                "properties": { "station": { "required": ["url"] } }
            }
        },
        {
            "description": "An AS2 message body cannot carry a token: with token authentication the location is a header or the URL.",
            "if": {
                "properties": {
                    "auth": {
                        "properties": { "type": { "const": "token" } },
                        "required": ["type"]
                    }
                },
                "required": ["auth"]
            },
            "then": {
                "properties": {
                    "auth": { "properties": { "location": { "enum": ["header", "url"] } } }
                }
            }
        }
    ])
}

/// A checked configuration: the parsed form plus the partner certificate.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The configuration as given.
    pub connection: Connection,
    /// The partner's certificate, parsed.
    pub partner_cert: Cert,
}

impl Connection {
    /// Parses JSON, naming the offending field (as a JSON pointer) on failure.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(deserializer)
            .map(Connection::in_effect)
            .map_err(field_error)
    }

    /// [`Connection::from_json`] of JSON already parsed.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, Error> {
        serde_path_to_error::deserialize(value)
            .map(Connection::in_effect)
            .map_err(field_error)
    }

    /// The connection as it acts: sections whose "Configure …" box is
    /// unchecked are left out, as the form hides them.
    fn in_effect(mut self) -> Self {
        if self.configure_rate_limits == Some(false) {
            self.rate_limit = None;
        }
        if let Auth::Token(token) = &mut self.auth
            && token.configure_refresh == Some(false)
        {
            token.refresh = None;
        }
        self
    }
}

/// The values serde fills in for the fields a configuration leaves out
/// (serde names a function for each).
macro_rules! defaults {
    ($($name:ident: $ty:ty = $value:expr;)*) => {
        $(fn $name() -> $ty { $value })*
    };
}

defaults! {
    default_rate_interval: u32 = 1;
    default_concurrency: u32 = 1;
    default_expiry_warning_days: u32 = 30;
    default_token_location: TokenLocation = TokenLocation::Header;
    default_token_header: String = "Authorization".into();
    default_token_scheme: String = "Bearer".into();
    default_token_parameter: String = "access_token".into();
    default_media_type: RefreshMediaType = RefreshMediaType::Json;
    default_refresh_method: RefreshMethod = RefreshMethod::Post;
    default_token_path: String = "/access_token".into();
    default_any_encryption: EncryptionRequirement = EncryptionRequirement::Any;
    default_any_digest: DigestRequirement = DigestRequirement::Any;
    default_send_attempts: u32 = 3;
    default_mdn_delivery: MdnDelivery = MdnDelivery::Sync;
    default_digest: Digest = Digest::Sha256;
    default_signing: Signing = Signing::Sha256;
    default_encryption: Encryption = Encryption::Aes256Cbc;
    default_mdn: MdnMode = MdnMode::Signed;
    default_signature_scheme: SignatureSchemeChoice = SignatureSchemeChoice::Pkcs1v15;
    default_key_transport: KeyTransportChoice = KeyTransportChoice::RsaPkcs1v15;
    default_compression: Compression = Compression::None;
    default_binary: TransferEncoding = TransferEncoding::Binary;
    default_base64: TransferEncoding = TransferEncoding::Base64;
    default_true: bool = true;
}

/// The connection form's layout, groups, widgets and show/hide rules: a
/// JSON Forms UI schema over [`schema_json`]'s fields.
pub const UI_SCHEMA: &str = include_str!("../../schemas/connection.uischema.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_reported_with_its_pointer() {
        let err = Connection::from_json(
            r#"{"name":"x","station":{"as2_id":"A","private_key":"k","colour":1},"partner":{}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidConfig);
        assert_eq!(err.field(), Some("/station/colour"));
    }

    #[test]
    fn serde_paths_become_json_pointers() {
        assert_eq!(pointer("."), "");
        assert_eq!(pointer("partner.url"), "/partner/url");
    }
}

//! CMS CompressedData with zlib (RFC 3274), as AS2 uses it (RFC 5402).

use cms::content_info::{CmsVersion, ContentInfo};
use der::asn1::OctetString;
use der::{Any, Decode, Encode, EncodingRules, Sequence};
use spki::AlgorithmIdentifierOwned;

use crate::crypto::{CryptoProvider, oids};
use crate::error::Error;

/// Default bound on a decompressed entity, against zlib bombs.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 1 << 30;

/// EncapsulatedContentInfo with the content as an OCTET STRING: decoding
/// through `Any` would hand back the chunk headers of a BER constructed string.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EncapsulatedOctets {
    econtent_type: der::oid::ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    econtent: Option<OctetString>,
}

/// CompressedData (RFC 3274 §1.1).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct CompressedData {
    version: CmsVersion,
    compression_alg: AlgorithmIdentifierOwned,
    encap_content_info: EncapsulatedOctets,
}

/// Compresses a MIME entity into a DER ContentInfo of CompressedData, the
/// deflate done by `provider`.
pub fn compress(entity: &[u8], provider: &dyn CryptoProvider) -> Result<Vec<u8>, Error> {
    let compressed = provider.zlib_compress(entity);
    let data = CompressedData {
        version: CmsVersion::V0,
        compression_alg: AlgorithmIdentifierOwned {
            oid: oids::ZLIB,
            parameters: None,
        },
        encap_content_info: EncapsulatedOctets {
            econtent_type: oids::DATA,
            econtent: Some(OctetString::new(compressed)?),
        },
    };
    Ok(ContentInfo {
        content_type: oids::COMPRESSED_DATA,
        content: Any::encode_from(&data)?,
    }
    .to_der()?)
}

/// The most a compressed body of `compressed_len` bytes may expand to:
/// 100 times its size (EDI and XML compress 5 to 20 times), at least
/// 16 MiB, at most [`DEFAULT_MAX_DECOMPRESSED`]. A zlib bomb (1,000:1 and
/// more) is refused long before it fills memory.
pub fn max_decompressed(compressed_len: usize) -> usize {
    compressed_len
        .saturating_mul(100)
        .clamp(16 << 20, DEFAULT_MAX_DECOMPRESSED)
}

/// Decompresses a ContentInfo of CompressedData, refusing output larger than `max_len`.
pub fn decompress(der: &[u8], max_len: usize) -> Result<Vec<u8>, Error> {
    let info = ContentInfo::from_ber(der).map_err(|e| {
        Error::malformed(format!("the compressed body is not a CMS ContentInfo: {e}"))
    })?;
    if info.content_type != oids::COMPRESSED_DATA {
        return Err(Error::malformed(format!(
            "expected CompressedData, found CMS content type {}",
            info.content_type
        )));
    }
    let data: CompressedData = info
        .content
        .decode_as_encoding(EncodingRules::Ber)
        .map_err(|e| Error::malformed(format!("invalid CompressedData: {e}")))?;
    if data.compression_alg.oid != oids::ZLIB {
        return Err(Error::UnsupportedFormat(format!(
            "compression algorithm {} (only zlib is defined for CMS)",
            data.compression_alg.oid
        )));
    }
    let compressed = data
        .encap_content_info
        .econtent
        .ok_or_else(|| Error::malformed("CompressedData without content"))?;
    miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(compressed.as_bytes(), max_len).map_err(
        |e| match e.status {
            miniz_oxide::inflate::TINFLStatus::HasMoreOutput => Error::Decompression(format!(
                "the compressed content expands beyond {max_len} bytes"
            )),
            _ => Error::Decompression("the compressed content is not valid zlib data".into()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bomb_bound() {
        let entity = b"Content-Type: text/plain\r\n\r\n"
            .iter()
            .chain([b'a'; 100_000].iter())
            .copied()
            .collect::<Vec<_>>();
        let der = compress(&entity, &crate::crypto::rustcrypto::RustCryptoProvider).unwrap();
        assert!(der.len() < 2_000);
        assert_eq!(decompress(&der, 1 << 20).unwrap(), entity);
        assert!(decompress(&der, 10_000).is_err());
        assert!(decompress(b"\x30\x03\x02\x01\x00", 10).is_err());
    }
}

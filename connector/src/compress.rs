//! CMS CompressedData with zlib (RFC 3274), as AS2 uses it (RFC 5402),
//! written and read a piece at a time: the compressed octets go to a
//! spool, the entity inflates into one.

use der::Encode;
use miniz_oxide::deflate::core::CompressorOxide;
use miniz_oxide::{DataFormat, MZFlush, MZStatus};
use spki::AlgorithmIdentifierOwned;

use crate::ber::{self, Header};
use crate::bytes::{self, Chain, Sink, Source, Spools};
use crate::crypto::{CryptoProvider, oids};
use crate::error::Error;

/// Bound on any decompressed entity, against zlib bombs. The entity goes
/// to a spool, not to memory, so this bounds disk: the harness's default
/// allowance of blob bytes for one call.
pub const DEFAULT_MAX_DECOMPRESSED: u64 = 16 << 30;

/// A running zlib compression (RFC 1950).
pub trait Deflater {
    /// Compresses more bytes; returns what is ready of the stream.
    fn update(&mut self, data: &[u8]) -> Vec<u8>;
    /// The rest of the stream, its checksum last.
    fn finish(self: Box<Self>) -> Vec<u8>;
}

/// zlib at level 6, by miniz_oxide, in this process.
pub struct Zlib(Box<CompressorOxide>);

impl Default for Zlib {
    fn default() -> Self {
        let mut compressor = Box::<CompressorOxide>::default();
        compressor.set_format_and_level(DataFormat::Zlib, 6);
        Zlib(compressor)
    }
}

impl Zlib {
    fn run(&mut self, mut data: &[u8], flush: MZFlush) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let step = miniz_oxide::deflate::stream::deflate(&mut self.0, data, &mut buf, flush);
            out.extend_from_slice(&buf[..step.bytes_written]);
            data = &data[step.bytes_consumed..];
            let ended = matches!(step.status, Ok(MZStatus::StreamEnd) | Err(_));
            let drained = data.is_empty() && step.bytes_written < buf.len();
            if ended || (flush != MZFlush::Finish && drained) {
                return out;
            }
        }
    }
}

impl Deflater for Zlib {
    fn update(&mut self, data: &[u8]) -> Vec<u8> {
        self.run(data, MZFlush::None)
    }

    fn finish(mut self: Box<Self>) -> Vec<u8> {
        self.run(&[], MZFlush::Finish)
    }
}

/// The DER of a ContentInfo of CompressedData (RFC 3274 §1.1) up to its
/// compressed octets, `zlib_len` of them:
///
/// ```text
/// ContentInfo ::= SEQUENCE { id-ct-compressedData, [0] EXPLICIT
///   CompressedData ::= SEQUENCE { version 0, compressionAlgorithm zlib,
///     encapContentInfo SEQUENCE { id-data, [0] EXPLICIT OCTET STRING } } }
/// ```
fn compressed_data_prefix(zlib_len: u64) -> Result<Vec<u8>, Error> {
    let version = cms::content_info::CmsVersion::V0.to_der()?;
    let algorithm = AlgorithmIdentifierOwned {
        oid: oids::ZLIB,
        parameters: None,
    }
    .to_der()?;
    let data_type = oids::DATA.to_der()?;
    let outer_type = oids::COMPRESSED_DATA.to_der()?;
    let octets = ber::definite_header(0x04, zlib_len);
    let explicit_content = ber::definite_header(0xa0, ber::definite_len(zlib_len));
    let encapsulated_len = data_type.len() as u64 + ber::definite_len(ber::definite_len(zlib_len));
    let compressed_len =
        (version.len() + algorithm.len()) as u64 + ber::definite_len(encapsulated_len);
    let info_content_len = ber::definite_len(compressed_len);
    let mut prefix = ber::definite_header(
        0x30,
        outer_type.len() as u64 + ber::definite_len(info_content_len),
    );
    prefix.extend_from_slice(&outer_type);
    prefix.extend(ber::definite_header(0xa0, info_content_len));
    prefix.extend(ber::definite_header(0x30, compressed_len));
    prefix.extend_from_slice(&version);
    prefix.extend_from_slice(&algorithm);
    prefix.extend(ber::definite_header(0x30, encapsulated_len));
    prefix.extend_from_slice(&data_type);
    prefix.extend(explicit_content);
    prefix.extend(octets);
    Ok(prefix)
}

/// Compresses a MIME entity into a DER ContentInfo of CompressedData: the
/// deflate done by `provider` a piece at a time into a spool of `spools`,
/// as zlib's length is known only at its end and the DER states it first.
pub fn compress_into(
    entity: &dyn Source,
    provider: &dyn CryptoProvider,
    spools: &dyn Spools,
) -> Result<Chain<'static>, Error> {
    let mut zlib = spools.spool(entity.len() / 2)?;
    let mut deflater = provider.deflater();
    bytes::for_each_piece(entity, |piece| zlib.write(&deflater.update(piece)))?;
    zlib.write(&deflater.finish())?;
    let mut der = Chain::new();
    der.push(compressed_data_prefix(zlib.len())?);
    der.push_boxed(zlib);
    Ok(der)
}

/// [`compress_into`], in memory.
pub fn compress(entity: &[u8], provider: &dyn CryptoProvider) -> Result<Vec<u8>, Error> {
    bytes::read_all(&compress_into(
        &entity,
        provider,
        &bytes::InMemory::default(),
    )?)
}

/// The most a compressed body of `compressed_len` bytes may expand to:
/// 100 times its size (EDI and XML compress 5 to 20 times), at least
/// 16 MiB, at most [`DEFAULT_MAX_DECOMPRESSED`]. A zlib bomb (1,000:1 and
/// more) is refused long before it fills a disk.
pub fn max_decompressed(compressed_len: u64) -> u64 {
    compressed_len
        .saturating_mul(100)
        .clamp(16 << 20, DEFAULT_MAX_DECOMPRESSED)
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const CONTEXT_0_CONSTRUCTED: u8 = 0xa0;

/// Where a ContentInfo of CompressedData keeps its compressed octets,
/// found without decoding the rest.
fn compressed_octets(source: &dyn Source) -> Result<Header, Error> {
    let oid_at = |at: u64, what: &str| -> Result<(der::oid::ObjectIdentifier, u64), Error> {
        let header = ber::expect(source, at, OID, what)?;
        let element = ber::read_element(source, &header, 64)?;
        let oid = <der::oid::ObjectIdentifier as der::Decode>::from_der(&element)?;
        Ok((oid, at + element.len() as u64))
    };
    let info = ber::expect(source, 0, SEQUENCE, "ContentInfo")?;
    let (content_type, after) = oid_at(info.content_start(), "contentType")?;
    if content_type != oids::COMPRESSED_DATA {
        return Err(Error::malformed(format!(
            "expected CompressedData, found CMS content type {content_type}"
        )));
    }
    let explicit = ber::expect(source, after, CONTEXT_0_CONSTRUCTED, "[0] content")?;
    let data = ber::expect(source, explicit.content_start(), SEQUENCE, "CompressedData")?;
    let version = ber::expect(source, data.content_start(), INTEGER, "version")?;
    let algorithm_at = version
        .end()
        .ok_or_else(|| Error::malformed("an indefinite version"))?;
    let algorithm = ber::expect(source, algorithm_at, SEQUENCE, "compressionAlgorithm")?;
    let algorithm_der = ber::read_element(source, &algorithm, 64 << 10)?;
    let algorithm = <AlgorithmIdentifierOwned as der::Decode>::from_der(&algorithm_der)
        .map_err(|e| Error::malformed(format!("invalid CompressedData: {e}")))?;
    if algorithm.oid != oids::ZLIB {
        return Err(Error::UnsupportedFormat(format!(
            "compression algorithm {} (only zlib is defined for CMS)",
            algorithm.oid
        )));
    }
    let encapsulated_at = algorithm_at + algorithm_der.len() as u64;
    let encapsulated = ber::expect(source, encapsulated_at, SEQUENCE, "encapContentInfo")?;
    let (_, content_at) = oid_at(encapsulated.content_start(), "eContentType")?;
    let no_content = || Error::malformed("CompressedData without content");
    if encapsulated.end() == Some(content_at) {
        return Err(no_content());
    }
    let content = ber::header_at(source, content_at)?;
    if content.tag != CONTEXT_0_CONSTRUCTED {
        return Err(no_content());
    }
    let octets = ber::header_at(source, content.content_start())?;
    if octets.tag & !ber::CONSTRUCTED != 0x04 {
        return Err(Error::malformed(
            "the compressed content is not an OCTET STRING",
        ));
    }
    Ok(octets)
}

/// Decompresses a ContentInfo of CompressedData into `out`, a piece at a
/// time, refusing output larger than `max_len`.
pub fn decompress_into(source: &dyn Source, max_len: u64, out: &mut dyn Sink) -> Result<(), Error> {
    let octets = compressed_octets(source)?;
    let invalid = || Error::Decompression("the compressed content is not valid zlib data".into());
    let mut state = miniz_oxide::inflate::stream::InflateState::new_boxed(DataFormat::Zlib);
    let mut buf = vec![0u8; bytes::PIECE];
    let mut written = 0u64;
    let mut ended = false;
    // Inflates `piece`, and whatever output the state still holds.
    let mut inflate = |mut piece: &[u8]| -> Result<(), Error> {
        loop {
            if ended {
                return match piece.is_empty() {
                    true => Ok(()),
                    false => Err(Error::Decompression(
                        "bytes follow the end of the zlib stream".into(),
                    )),
                };
            }
            let step =
                miniz_oxide::inflate::stream::inflate(&mut state, piece, &mut buf, MZFlush::None);
            piece = &piece[step.bytes_consumed..];
            written += step.bytes_written as u64;
            if written > max_len {
                return Err(Error::Decompression(format!(
                    "the compressed content expands beyond {max_len} bytes"
                )));
            }
            out.write(&buf[..step.bytes_written])?;
            match step.status {
                Ok(MZStatus::StreamEnd) => ended = true,
                Ok(_) => {}
                // No progress without more input: the next piece brings it.
                Err(miniz_oxide::MZError::Buf) => return Ok(()),
                Err(_) => return Err(invalid()),
            }
            if !ended && piece.is_empty() && step.bytes_written < buf.len() {
                return Ok(());
            }
        }
    };
    ber::for_each_string_piece(source, &octets, "compressed content", &mut inflate)?;
    inflate(&[])?;
    if !ended {
        return Err(invalid());
    }
    Ok(())
}

/// [`decompress_into`], in memory.
pub fn decompress(der: &[u8], max_len: u64) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    decompress_into(&der, max_len, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::rustcrypto::RustCryptoProvider;

    #[test]
    fn round_trip_and_bomb_bound() {
        let entity = b"Content-Type: text/plain\r\n\r\n"
            .iter()
            .chain([b'a'; 100_000].iter())
            .copied()
            .collect::<Vec<_>>();
        let der = compress(&entity, &RustCryptoProvider).unwrap();
        assert!(der.len() < 2_000);
        assert_eq!(decompress(&der, 1 << 20).unwrap(), entity);
        assert!(matches!(
            decompress(&der, 10_000),
            Err(Error::Decompression(_))
        ));
        assert!(decompress(b"\x30\x03\x02\x01\x00", 10).is_err());
    }

    /// The prefix written ahead of the zlib octets is the DER the `cms`
    /// types encode for the same CompressedData.
    #[test]
    fn the_prefix_is_the_der_of_compressed_data() {
        use cms::compressed_data::CompressedData;
        use cms::content_info::{CmsVersion, ContentInfo};
        use cms::signed_data::EncapsulatedContentInfo;
        use der::Any;
        use der::asn1::OctetString;
        for len in [0usize, 5, 127, 128, 300, 70_000] {
            let zlib = vec![0x5a; len];
            let data = CompressedData {
                version: CmsVersion::V0,
                compression_alg: AlgorithmIdentifierOwned {
                    oid: oids::ZLIB,
                    parameters: None,
                },
                encap_content_info: EncapsulatedContentInfo {
                    econtent_type: oids::DATA,
                    econtent: Some(
                        Any::encode_from(&OctetString::new(zlib.clone()).unwrap()).unwrap(),
                    ),
                },
            };
            let expected = ContentInfo {
                content_type: oids::COMPRESSED_DATA,
                content: Any::encode_from(&data).unwrap(),
            }
            .to_der()
            .unwrap();
            let mut written = compressed_data_prefix(len as u64).unwrap();
            written.extend_from_slice(&zlib);
            assert_eq!(written, expected, "{len} bytes of zlib");
        }
    }

    /// A document compressed and decompressed in pieces comes back whole,
    /// and the stream is one any zlib reads.
    #[test]
    fn pieces_deflate_to_one_zlib_stream() {
        let entity: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 7919) as u8)
            .collect();
        let mut zlib = Box::new(Zlib::default());
        let mut stream = Vec::new();
        for piece in entity.chunks(100_003) {
            stream.extend(zlib.update(piece));
        }
        stream.extend(zlib.finish());
        let inflated =
            miniz_oxide::inflate::decompress_to_vec_zlib(&stream).expect("one zlib stream");
        assert_eq!(inflated, entity);
        let der = compress(&entity, &RustCryptoProvider).unwrap();
        assert_eq!(decompress(&der, 1 << 30).unwrap(), entity);
    }

    #[test]
    fn bytes_after_the_zlib_stream_or_a_cut_stream_are_refused() {
        let entity = vec![7u8; 10_000];
        let mut stream = Box::new(Zlib::default()).finish();
        stream.clear();
        let mut zlib = Box::new(Zlib::default());
        stream.extend(zlib.update(&entity));
        stream.extend(zlib.finish());
        for octets in [
            [stream.as_slice(), b"extra"].concat(),
            stream[..stream.len() - 3].to_vec(),
        ] {
            let mut der = compressed_data_prefix(octets.len() as u64).unwrap();
            der.extend_from_slice(&octets);
            assert!(
                matches!(decompress(&der, 1 << 20), Err(Error::Decompression(_))),
                "{} octets",
                octets.len()
            );
        }
    }
}

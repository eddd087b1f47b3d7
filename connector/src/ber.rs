//! Reading BER/DER element headers (X.690 §8.1) from a [`Source`], one at a
//! time, so that a CMS structure of hundreds of megabytes can be walked to
//! the bytes that matter without being decoded, or held, whole. Whole
//! elements are still decoded by `der`; this only finds where they are.

use crate::bytes::{PIECE, Source};
use crate::error::Error;

/// Bit 6 of an identifier octet: the element holds other elements (X.690 §8.1.2.5).
pub const CONSTRUCTED: u8 = 0x20;

/// The identifier and length octets of one element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The identifier octet (low tag numbers only: a number of 31 or more
    /// is refused as nothing CMS puts on this path uses one).
    pub tag: u8,
    /// Where the element starts.
    pub offset: u64,
    /// Bytes of identifier and length octets.
    pub header_len: u64,
    /// Bytes of content; `None` for the indefinite form (X.690 §8.1.3.6),
    /// whose content ends with two zero octets.
    pub length: Option<u64>,
}

impl Header {
    /// Where its content starts.
    pub fn content_start(&self) -> u64 {
        self.offset + self.header_len
    }

    /// Where it ends, for the definite form.
    pub fn end(&self) -> Option<u64> {
        self.length.map(|length| self.content_start() + length)
    }

    /// Whether the two octets here are end-of-contents (X.690 §8.1.5).
    pub fn is_end_of_contents(&self) -> bool {
        self.tag == 0 && self.length == Some(0)
    }
}

/// The identifier and length octets of a DER element of `tag` whose
/// contents are `len` bytes (X.690 §8.1.3.5: the definite form, shortest).
pub fn definite_header(tag: u8, len: u64) -> Vec<u8> {
    if len < 0x80 {
        return vec![tag, len as u8];
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let mut out = vec![tag, 0x80 | (8 - skip) as u8];
    out.extend_from_slice(&bytes[skip..]);
    out
}

/// The length of a DER element whose contents are `len` bytes.
pub fn definite_len(len: u64) -> u64 {
    definite_header(0, len).len() as u64 + len
}

/// Identifier octets of an OCTET STRING, primitive and constructed.
const OCTET_STRING: u8 = 0x04;

/// Calls `each` with the octets of the string element `string` (an OCTET
/// STRING or one implicitly tagged), in order, at most [`PIECE`] bytes at a
/// time: the one primitive string, or each chunk of a constructed one (BER,
/// as streaming encoders write it; X.690 §8.7.3). Returns where the element
/// ends.
pub fn for_each_string_piece(
    source: &dyn Source,
    string: &Header,
    what: &str,
    mut each: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Result<u64, Error> {
    let mut buf = vec![0u8; PIECE];
    let mut read_range = |start: u64, end: u64| -> Result<(), Error> {
        let mut offset = start;
        while offset < end {
            let want = usize::try_from(end - offset).unwrap_or(PIECE).min(PIECE);
            let n = source.read_at(offset, &mut buf[..want])?;
            if n == 0 {
                return Err(Error::malformed(format!("the {what} is cut short")));
            }
            each(&buf[..n])?;
            offset += n as u64;
        }
        Ok(())
    };
    if string.tag & CONSTRUCTED == 0 {
        let end = string
            .end()
            .ok_or_else(|| Error::malformed(format!("an indefinite primitive {what}")))?;
        read_range(string.content_start(), end)?;
        return Ok(end);
    }
    let mut at = string.content_start();
    loop {
        if string.end() == Some(at) {
            return Ok(at);
        }
        let chunk = header_at(source, at)?;
        if string.length.is_none() && chunk.is_end_of_contents() {
            // The two end-of-contents octets end the element.
            return Ok(at + 2);
        }
        let end = match (chunk.tag, chunk.end()) {
            (OCTET_STRING, Some(end)) => end,
            _ => {
                return Err(Error::malformed(format!(
                    "a chunk of the {what} is not a primitive OCTET STRING"
                )));
            }
        };
        if string.end().is_some_and(|outer| end > outer) {
            return Err(Error::malformed(format!(
                "a chunk of the {what} runs past its end"
            )));
        }
        read_range(chunk.content_start(), end)?;
        at = end;
    }
}

/// Reads the header of the element at `offset`. An element whose definite
/// length runs past the end of `source` is malformed.
pub fn header_at(source: &dyn Source, offset: u64) -> Result<Header, Error> {
    let mut octets = [0u8; 10];
    let mut filled = 0;
    while filled < octets.len() {
        let n = source.read_at(offset + filled as u64, &mut octets[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let octets = &octets[..filled];
    let truncated = || Error::malformed(format!("a BER element at byte {offset} is cut short"));
    let (&tag, rest) = octets.split_first().ok_or_else(truncated)?;
    if tag & 0x1f == 0x1f {
        return Err(Error::malformed(format!(
            "a BER element at byte {offset} has a high tag number"
        )));
    }
    let (&first, rest) = rest.split_first().ok_or_else(truncated)?;
    let (header_len, length) = match first {
        0x80 if tag & CONSTRUCTED != 0 => (2, None),
        0x80 => {
            return Err(Error::malformed(format!(
                "a primitive BER element at byte {offset} has an indefinite length"
            )));
        }
        short if short < 0x80 => (2, Some(u64::from(short))),
        long => {
            let count = usize::from(long & 0x7f);
            if count > 8 {
                return Err(Error::malformed(format!(
                    "a BER element at byte {offset} has a length of {count} octets"
                )));
            }
            let digits = rest.get(..count).ok_or_else(truncated)?;
            let length = digits
                .iter()
                .fold(0u64, |length, &digit| (length << 8) | u64::from(digit));
            (2 + count as u64, Some(length))
        }
    };
    let header = Header {
        tag,
        offset,
        header_len,
        length,
    };
    let past_end = length.is_some_and(|length| {
        offset
            .checked_add(header_len)
            .and_then(|start| start.checked_add(length))
            .is_none_or(|end| end > source.len())
    });
    if past_end {
        return Err(Error::malformed(format!(
            "a BER element at byte {offset} runs past the end of the data"
        )));
    }
    Ok(header)
}

/// Reads the header at `offset` and checks its identifier octet is `tag`.
pub fn expect(source: &dyn Source, offset: u64, tag: u8, what: &str) -> Result<Header, Error> {
    let header = header_at(source, offset)?;
    if header.tag != tag {
        return Err(Error::malformed(format!(
            "expected {what} at byte {offset}, found tag 0x{:02x}",
            header.tag
        )));
    }
    Ok(header)
}

/// The whole element `header` heads, identifier and length octets
/// included, read into memory; at most `limit` bytes. Only for the definite form.
pub fn read_element(source: &dyn Source, header: &Header, limit: u64) -> Result<Vec<u8>, Error> {
    let end = header.end().ok_or_else(|| {
        Error::malformed(format!(
            "the BER element at byte {} has an indefinite length here",
            header.offset
        ))
    })?;
    let len = end - header.offset;
    if len > limit {
        return Err(Error::malformed(format!(
            "the BER element at byte {} is {len} bytes long, more than the {limit} allowed",
            header.offset
        )));
    }
    let mut out = vec![0u8; len as usize];
    let mut filled = 0;
    while filled < out.len() {
        let n = source.read_at(header.offset + filled as u64, &mut out[filled..])?;
        if n == 0 {
            return Err(Error::malformed(format!(
                "the BER element at byte {} is cut short",
                header.offset
            )));
        }
        filled += n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_short_long_and_indefinite_lengths_read() {
        let short: &[u8] = &[0x04, 0x03, 1, 2, 3];
        let header = header_at(&short, 0).unwrap();
        assert_eq!(
            (header.tag, header.header_len, header.length),
            (4, 2, Some(3))
        );

        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(7u8, 256));
        let header = header_at(&long.as_slice(), 0).unwrap();
        assert_eq!((header.header_len, header.length), (4, Some(256)));
        assert_eq!(read_element(&long.as_slice(), &header, 1024).unwrap(), long);

        let indefinite: &[u8] = &[0x30, 0x80, 0x00, 0x00];
        let header = header_at(&indefinite, 0).unwrap();
        assert_eq!(header.length, None);
        assert!(header_at(&indefinite, 2).unwrap().is_end_of_contents());
    }

    #[test]
    fn lengths_past_the_end_and_bad_forms_are_malformed() {
        for bad in [
            &[0x04, 0x05, 1, 2][..],                      // runs past the end
            &[0x04, 0x80, 0x00, 0x00][..],                // primitive, indefinite
            &[0x1f, 0x81, 0x01, 0x00][..],                // high tag number
            &[0x04, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1][..], // 9 length octets
            &[0x04][..],                                  // cut short
            &[0x04, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..], // wraps
        ] {
            assert!(
                matches!(header_at(&bad, 0), Err(Error::Malformed(_))),
                "{bad:02x?}"
            );
        }
        let header = header_at(&&[0x04u8, 0x02, 1, 2][..], 0).unwrap();
        assert!(matches!(
            read_element(&&[0x04u8, 0x02, 1, 2][..], &header, 3),
            Err(Error::Malformed(_))
        ));
    }
}

//! MIME entities and multiparts (RFC 2045, RFC 2046), read without copying so
//! that signatures are checked over the exact bytes received.

use std::borrow::Cow;

use base64::Engine as _;

use crate::error::Error;
use crate::headers::{self, Headers, ParameterizedValue};

/// A MIME entity: header fields and body, borrowed from the bytes received.
#[derive(Debug, Clone)]
pub struct Entity<'a> {
    /// The header fields.
    pub headers: Headers,
    /// The whole entity, headers included: what a signature or MIC covers.
    pub raw: &'a [u8],
    /// The body, still transfer-encoded.
    pub body: &'a [u8],
}

impl<'a> Entity<'a> {
    /// Parses an entity: header block, blank line, body.
    pub fn parse(raw: &'a [u8]) -> Result<Self, Error> {
        let (headers, body_start) = headers::parse_block(raw)?;
        Ok(Entity {
            headers,
            raw,
            body: &raw[body_start..],
        })
    }

    /// An entity whose headers came separately (an HTTP request: the headers
    /// are HTTP fields, the body is the MIME body).
    pub fn from_parts(headers: Headers, body: &'a [u8]) -> Self {
        Entity {
            headers,
            raw: body,
            body,
        }
    }

    /// The parsed Content-Type; `text/plain` when absent (RFC 2045 §5.2).
    pub fn content_type(&self) -> ParameterizedValue {
        self.headers.content_type()
    }

    /// The body with its Content-Transfer-Encoding undone.
    pub fn decoded_body(&self) -> Result<Cow<'a, [u8]>, Error> {
        decode_transfer_encoding(self.headers.get("Content-Transfer-Encoding"), self.body)
    }

    /// The file name from Content-Disposition (RFC 2183 §2.3), if any: the
    /// RFC 2231 `filename*` when it decodes, else `filename`. Not yet safe
    /// to use as a path: the host sanitises it.
    pub fn file_name(&self) -> Option<String> {
        let disposition = ParameterizedValue::parse(self.headers.get("Content-Disposition")?);
        disposition
            .param("filename*")
            .and_then(crate::headers::decode_extended_value)
            .or_else(|| disposition.param("filename").map(str::to_string))
            .filter(|name| !name.is_empty())
    }
}

/// Undoes a Content-Transfer-Encoding. `binary`, `7bit`, `8bit` and a missing
/// header leave the bytes as they are; base64 ignores line breaks and spaces.
pub fn decode_transfer_encoding<'a>(
    encoding: Option<&str>,
    body: &'a [u8],
) -> Result<Cow<'a, [u8]>, Error> {
    let encoding = encoding.unwrap_or("binary").trim().to_ascii_lowercase();
    match encoding.as_str() {
        "binary" | "7bit" | "8bit" => Ok(Cow::Borrowed(body)),
        "base64" => decode_base64(body).map(Cow::Owned),
        other => Err(Error::UnsupportedFormat(format!(
            "Content-Transfer-Encoding {other:?} is not supported (use base64 or binary)"
        ))),
    }
}

/// Decodes base64 text that may be broken into lines.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, Error> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|e| Error::malformed(format!("invalid base64 body: {e}")))
}

/// Encodes base64 in lines of 76 characters (RFC 2045 §6.8), CRLF-terminated.
pub fn encode_base64_lines(data: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    for line in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Bound on the number of parts, against hostile input.
pub const MAX_PARTS: usize = 64;

/// Splits a multipart body into its parts' raw bytes (RFC 2046 §5.1.1). The
/// line break before each delimiter belongs to the delimiter, so a part ends
/// before it: exactly the bytes a `multipart/signed` signature covers (RFC 1847 §2.1).
pub fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, Error> {
    if boundary.is_empty() || boundary.len() > 200 {
        return Err(Error::malformed(
            "the multipart boundary is empty or too long",
        ));
    }
    let delimiter = [b"--", boundary.as_bytes()].concat();
    let mut parts = Vec::new();
    // Each delimiter line starts at the beginning of the body or after a line break.
    let mut part_start: Option<usize> = None;
    let mut line_start = 0;
    while line_start <= body.len() {
        let line_end =
            memchr::memchr(b'\n', &body[line_start..]).map_or(body.len(), |i| line_start + i);
        let line = &body[line_start..line_end];
        if let Some(closing) = delimiter_line(line, &delimiter) {
            if let Some(start) = part_start {
                // Drop the CRLF (or LF) that precedes the delimiter line.
                let mut end = line_start.saturating_sub(1);
                if end > start && body.get(end - 1) == Some(&b'\r') {
                    end -= 1;
                }
                parts.push(&body[start..end.max(start)]);
                if parts.len() > MAX_PARTS {
                    return Err(Error::malformed("too many parts in a multipart body"));
                }
            }
            if closing {
                // RFC 2046 §5.1.1: at least one body part, opened by a delimiter.
                if part_start.is_none() {
                    return Err(Error::malformed(
                        "the multipart body closes before its first part",
                    ));
                }
                return Ok(parts);
            }
            part_start = Some((line_end + 1).min(body.len()));
        }
        line_start = line_end + 1;
    }
    Err(Error::malformed(format!(
        "multipart body has no closing boundary \"--{}--\"",
        headers::truncate(boundary, 70)
    )))
}

/// Whether `line` (without its LF) is a delimiter line of `delimiter`
/// (`--` and the boundary), and if so whether it is the closing one.
/// RFC 2046 §5.1.1: only transport padding (spaces, tabs) may follow.
pub fn delimiter_line(line: &[u8], delimiter: &[u8]) -> Option<bool> {
    let after = line.strip_prefix(delimiter)?;
    let after = after.strip_suffix(b"\r").unwrap_or(after);
    let closing = after.starts_with(b"--");
    let rest = if closing { &after[2..] } else { after };
    rest.iter()
        .all(|&b| b == b' ' || b == b'\t')
        .then_some(closing)
}

/// Writes a multipart body: each part (already a complete entity) between
/// delimiters, closed by the final delimiter (RFC 2046 §5.1.1).
pub fn write_multipart(boundary: &str, parts: &[&[u8]], out: &mut Vec<u8>) {
    for part in parts {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
}

/// A boundary unlikely to occur in any content: a fixed prefix with characters
/// outside base64 (`=_`) and random hex.
pub fn new_boundary(random: &[u8]) -> String {
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("----=_Part_{hex}")
}

/// Builds an entity: header fields, blank line, body.
pub fn entity(headers: &Headers, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 256);
    headers.write_to(&mut out);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_exclude_the_line_break_before_each_delimiter() {
        let body =
            b"preamble\r\n--b\r\nA: 1\r\n\r\nfirst\r\n--b\r\n\r\nsecond\r\n--b--\r\nepilogue";
        let parts = split_multipart(body, "b").unwrap();
        assert_eq!(parts, vec![&b"A: 1\r\n\r\nfirst"[..], &b"\r\nsecond"[..]]);
    }

    #[test]
    fn parts_split_with_bare_lf() {
        let body = b"--b\nX: y\n\nfirst\n--b\n\nsecond\n--b--\n";
        let parts = split_multipart(body, "b").unwrap();
        assert_eq!(parts, vec![&b"X: y\n\nfirst"[..], &b"\nsecond"[..]]);
    }

    #[test]
    fn boundary_lookalike_inside_content_is_not_a_delimiter() {
        let body = b"--b\r\n\r\n--bx is text\r\n--b--";
        assert_eq!(
            split_multipart(body, "b").unwrap(),
            vec![&b"\r\n--bx is text"[..]]
        );
    }

    #[test]
    fn missing_closing_boundary_is_an_error() {
        assert!(split_multipart(b"--b\r\n\r\nfirst\r\n", "b").is_err());
    }

    /// Found by the differential fuzz target: a close-delimiter before any
    /// part made an empty multipart, which RFC 2046 does not allow.
    #[test]
    fn closing_before_the_first_part_is_an_error() {
        let body = b"\r\n\r\nhello\r\n--XyZ--\r\n\r\n--XyZ\r\nA:*b\r\n\r\nworld\r\n--XyZ--\r\n";
        assert!(split_multipart(body, "XyZ").is_err());
        assert!(split_multipart(b"--XyZ--\r\n", "XyZ").is_err());
    }

    /// Where mail-parser (the differential target's reference) sees a
    /// delimiter, RFC 2046 §5.1.1 sees part content: a delimiter with text
    /// after it, and one in mid-line.
    #[test]
    fn delimiters_stand_alone_on_their_lines() {
        let body = b"--XyZ\r\nA: 1\r\n\r\nx --XyZ\r\n--XyZ--o\r\n--XyZ\r\n\r\ny\r\n--XyZ--\r\n";
        let parts = split_multipart(body, "XyZ").unwrap();
        assert_eq!(
            parts,
            vec![&b"A: 1\r\n\r\nx --XyZ\r\n--XyZ--o"[..], &b"\r\ny"[..]]
        );
    }

    #[test]
    fn written_multipart_splits_back_into_the_same_parts() {
        let mut out = Vec::new();
        write_multipart(
            "xyz",
            &[b"A: 1\r\n\r\none", b"B: 2\r\n\r\ntwo\r\n"],
            &mut out,
        );
        let parts = split_multipart(&out, "xyz").unwrap();
        assert_eq!(
            parts,
            vec![&b"A: 1\r\n\r\none"[..], &b"B: 2\r\n\r\ntwo\r\n"[..]]
        );
    }

    #[test]
    fn base64_with_line_breaks_decodes() {
        let lines = encode_base64_lines(&[7u8; 100]);
        assert!(lines.windows(2).any(|w| w == b"\r\n"));
        assert_eq!(decode_base64(&lines).unwrap(), vec![7u8; 100]);
    }
}

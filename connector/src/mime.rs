//! MIME entities and multiparts (RFC 2045, RFC 2046), read without copying so
//! that signatures are checked over the exact bytes received.

use std::borrow::Cow;

use base64::Engine as _;

use std::ops::Range;

use crate::bytes::{self, Source};
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
        file_name(&self.headers)
    }
}

/// Undoes a Content-Transfer-Encoding. `binary`, `7bit`, `8bit` and a missing
/// header leave the bytes as they are; base64 ignores line breaks and spaces.
pub fn decode_transfer_encoding<'a>(
    encoding: Option<&str>,
    body: &'a [u8],
) -> Result<Cow<'a, [u8]>, Error> {
    if is_identity_coding(encoding)? {
        Ok(Cow::Borrowed(body))
    } else {
        decode_base64(body).map(Cow::Owned)
    }
}

/// Whether a Content-Transfer-Encoding leaves the bytes as they are
/// (`binary`, `7bit`, `8bit`, or none given); `false` for base64, the one
/// other coding read.
pub fn is_identity_coding(encoding: Option<&str>) -> Result<bool, Error> {
    let encoding = encoding.unwrap_or("binary").trim().to_ascii_lowercase();
    match encoding.as_str() {
        "binary" | "7bit" | "8bit" => Ok(true),
        "base64" => Ok(false),
        other => Err(Error::UnsupportedFormat(format!(
            "Content-Transfer-Encoding {other:?} is not supported (use base64 or binary)"
        ))),
    }
}

/// The file name from an entity's Content-Disposition (RFC 2183 §2.3), if
/// any: the RFC 2231 `filename*` when it decodes, else `filename`. Not yet
/// safe to use as a path: the host sanitises it.
pub fn file_name(headers: &Headers) -> Option<String> {
    let disposition = ParameterizedValue::parse(headers.get("Content-Disposition")?);
    disposition
        .param("filename*")
        .and_then(crate::headers::decode_extended_value)
        .or_else(|| disposition.param("filename").map(str::to_string))
        .filter(|name| !name.is_empty())
}

/// Decodes base64 text that may be broken into lines.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut decoder = Base64Decoder::new(&mut out);
    bytes::Sink::write(&mut decoder, text)?;
    decoder.finish()?;
    Ok(out)
}

/// Base64 text, broken into lines or not, decoded into the inner sink as
/// it comes: whitespace is skipped, whole groups of four are decoded.
pub struct Base64Decoder<'s> {
    inner: &'s mut dyn bytes::Sink,
    /// Characters short of a group of four.
    pending: Vec<u8>,
}

impl<'s> Base64Decoder<'s> {
    /// Decodes into `inner`.
    pub fn new(inner: &'s mut dyn bytes::Sink) -> Self {
        Base64Decoder {
            inner,
            pending: Vec::with_capacity(bytes::PIECE),
        }
    }

    fn decode(&mut self, text: &[u8]) -> Result<(), Error> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| Error::malformed(format!("invalid base64 body: {e}")))?;
        self.inner.write(&decoded)
    }

    /// Decodes the last characters.
    pub fn finish(mut self) -> Result<(), Error> {
        let rest = std::mem::take(&mut self.pending);
        if rest.is_empty() {
            return Ok(());
        }
        self.decode(&rest)
    }
}

impl bytes::Sink for Base64Decoder<'_> {
    fn write(&mut self, text: &[u8]) -> Result<(), Error> {
        self.pending
            .extend(text.iter().copied().filter(|b| !b.is_ascii_whitespace()));
        let whole = self.pending.len() / 4 * 4;
        if whole == 0 {
            return Ok(());
        }
        let rest = self.pending.split_off(whole);
        let group = std::mem::replace(&mut self.pending, rest);
        self.decode(&group)
    }
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
    let ranges = part_ranges(&body, 0..body.len() as u64, boundary)?;
    // The ranges lie within `body`, whose length fits in memory.
    Ok(ranges
        .into_iter()
        .map(|range| &body[range.start as usize..range.end as usize])
        .collect())
}

/// Most transport padding (spaces and tabs after a delimiter) looked at:
/// a longer line is not a delimiter line.
const MAX_PADDING: usize = 1000;

/// [`split_multipart`] of `body`, a range of `source`, read a piece at a
/// time: where each part lies.
pub fn part_ranges(
    source: &dyn Source,
    body: Range<u64>,
    boundary: &str,
) -> Result<Vec<Range<u64>>, Error> {
    if boundary.is_empty() || boundary.len() > 200 {
        return Err(Error::malformed(
            "the multipart boundary is empty or too long",
        ));
    }
    let delimiter = [b"--", boundary.as_bytes()].concat();
    let longest = delimiter.len() + 4 + MAX_PADDING;
    let mut scanner = Scanner::new(source, body.end);
    let mut parts = Vec::new();
    // Each delimiter line starts at the beginning of the body or after a line break.
    let mut part_start: Option<u64> = None;
    let mut line_start = body.start;
    while line_start <= body.end {
        let view = scanner.view(line_start, longest)?;
        let view_end = line_start + view.len() as u64;
        let lf = memchr::memchr(b'\n', view);
        let line = match lf {
            Some(at) => Some(&view[..at]),
            // The last line, or one too long to be a delimiter line.
            None => (view_end == body.end).then_some(view),
        };
        let delimiter_here = line.and_then(|line| delimiter_line(line, &delimiter));
        let line_end = match lf {
            Some(at) => line_start + at as u64,
            None => scanner.find_lf(view_end)?,
        };
        if let Some(closing) = delimiter_here {
            if let Some(start) = part_start {
                // Drop the CRLF (or LF) that precedes the delimiter line.
                let mut end = line_start.saturating_sub(1);
                if end > start && scanner.view(end - 1, 1)? == b"\r" {
                    end -= 1;
                }
                parts.push(start..end.max(start));
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
            part_start = Some((line_end + 1).min(body.end));
        }
        line_start = line_end + 1;
    }
    Err(Error::malformed(format!(
        "multipart body has no closing boundary \"--{}--\"",
        headers::truncate(boundary, 70)
    )))
}

/// Reads a source up to `end` through a buffer of a piece, or borrows it
/// where it is in memory.
struct Scanner<'a> {
    source: &'a dyn Source,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> Scanner<'a> {
    fn new(source: &'a dyn Source, end: u64) -> Self {
        Scanner {
            source,
            end: end.min(source.len()),
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// Up to `want` bytes from `at`, fewer only at the end.
    fn view(&mut self, at: u64, want: usize) -> Result<&[u8], Error> {
        let at = at.min(self.end);
        let until = at.saturating_add(want as u64).min(self.end);
        if let Some(whole) = self.source.as_slice() {
            // In memory: `until` is within it.
            return Ok(&whole[at as usize..until as usize]);
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if at < self.buf_start || until > buf_end {
            let len = (until - at).max(bytes::PIECE as u64).min(self.end - at);
            self.buf.resize(len as usize, 0);
            let mut filled = 0;
            while filled < self.buf.len() {
                let n = self
                    .source
                    .read_at(at + filled as u64, &mut self.buf[filled..])?;
                if n == 0 {
                    return Err(Error::malformed("the multipart body is cut short"));
                }
                filled += n;
            }
            self.buf_start = at;
        }
        let from = (at - self.buf_start) as usize;
        Ok(&self.buf[from..from + (until - at) as usize])
    }

    /// Where the next LF from `at` is, or the end.
    fn find_lf(&mut self, mut at: u64) -> Result<u64, Error> {
        while at < self.end {
            let view = self.view(at, bytes::PIECE)?;
            match memchr::memchr(b'\n', view) {
                Some(i) => return Ok(at + i as u64),
                None => at += view.len() as u64,
            }
        }
        Ok(self.end)
    }
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
